//! `trustbridge token`: the CI client helper (see [`crate::client`]). Prints the access token,
//! or writes it to `--output` readable by its owner only.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::client::{self, TokenRequest};

/// Flags of `trustbridge token`.
#[derive(Debug, Args, Clone)]
pub struct TokenArgs {
    /// Base URL of the trustbridge gateway (its public URL).
    #[arg(long, env = "TRUSTBRIDGE_ENDPOINT")]
    pub endpoint: String,
    /// Tenant name.
    #[arg(long, env = "TRUSTBRIDGE_TENANT")]
    pub tenant: String,
    /// Application id or managed identity name to act as.
    #[arg(long, env = "TRUSTBRIDGE_CLIENT_ID")]
    pub client_id: String,
    /// Scope: `<resource>/.default` or `<resource>/<role>` (space-separated).
    #[arg(long, env = "TRUSTBRIDGE_SCOPE")]
    pub scope: String,
    /// Audience to request from GitHub Actions' OIDC endpoint.
    #[arg(long, default_value = "api://trustbridge")]
    pub audience: String,
    /// Read the platform token from this file (wins over GitHub Actions and Kubernetes).
    #[arg(long, env = "TRUSTBRIDGE_SUBJECT_TOKEN_FILE")]
    pub subject_token_file: Option<PathBuf>,
    /// Projected Kubernetes service account token, used when present and nothing else is.
    #[arg(long, default_value = client::DEFAULT_KUBERNETES_TOKEN_FILE)]
    pub kubernetes_token_file: PathBuf,
    /// Write the access token to this file (mode 0600) instead of printing it.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Timeout of each HTTP request.
    #[arg(long, default_value = "30s")]
    pub timeout: String,
}

/// Runs `token`: 0 with the token printed or written, 1 when the platform token cannot be had
/// or the exchange is refused, [`super::EXIT_USAGE`] when the flags or environment cannot work.
pub fn run(
    args: &TokenArgs,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let timeout = match humantime::parse_duration(&args.timeout) {
        Ok(d) if d > Duration::ZERO && d <= Duration::from_secs(600) => d,
        _ => {
            let _ = writeln!(
                err,
                "--timeout: '{}' must be between 1s and 10m",
                args.timeout
            );
            return super::EXIT_USAGE;
        }
    };
    let request = TokenRequest {
        endpoint: args.endpoint.clone(),
        tenant: args.tenant.clone(),
        client_id: args.client_id.clone(),
        scope: args.scope.clone(),
    };
    let checked = request.token_url().and_then(|_| {
        client::subject_source(
            args.subject_token_file.as_deref(),
            &args.kubernetes_token_file,
            &args.audience,
            env,
        )
    });
    let source = match checked {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "trustbridge token: {e}");
            return super::EXIT_USAGE;
        }
    };
    let Some(runtime) = super::one_shot_runtime("token", err) else {
        return 1;
    };
    let token = runtime.block_on(async {
        let http = client::http_client(timeout)?;
        let subject = client::subject_token(&http, &source).await?;
        client::exchange(&http, &request, &subject).await
    });
    let token = match token {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(err, "trustbridge token: {e}");
            return 1;
        }
    };
    let written = match &args.output {
        Some(path) => {
            client::write_token_file(path, &token).map_err(|e| format!("{}: {e}", path.display()))
        }
        None => writeln!(out, "{}", token.as_str()).map_err(|e| e.to_string()),
    };
    match written {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "trustbridge token: {e}");
            1
        }
    }
}
