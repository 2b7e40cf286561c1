//! `trustbridge policy explain`: why a token would be allowed or denied, check by check.
//!
//! The input is a token (a file, or `-` for stdin) or a claims JSON file. A token's signature
//! and time claims are checked with the same [`IssuerRegistry`] `serve` uses when its issuer's
//! keys can be reached; `--no-verify` skips that and the output says so. The explanation comes
//! from [`crate::exchange::explain`] and the verdict from [`crate::exchange::decide`].

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use serde_json::{Map, Value};

use crate::clock::Clock;
use crate::exchange::explain::{Query, explain};
use crate::exchange::{self, Limits, Situation};
use crate::issuers::validate::peek;
use crate::issuers::{FetchSettings, IssuerRegistry, ValidatedToken};
use crate::policy::PolicySet;
use crate::tools::{RequestSpec, refusal, token_from_claims};

pub use super::EXIT_USAGE;

/// Flags of `policy explain`.
#[derive(Debug, Args, Clone, Default)]
pub struct ExplainArgs {
    /// Policy directory [default: policies]; the command line fills it from the settings
    /// (`--policies`, `TRUSTBRIDGE_POLICIES`, `--config`), as `serve` reads them.
    #[arg(skip)]
    pub policies: Option<PathBuf>,
    /// A token file, or `-` to read it from stdin.
    #[arg(long, conflicts_with = "claims", required_unless_present = "claims")]
    pub token: Option<String>,
    /// A JSON file with the token's claims instead of a token.
    #[arg(long)]
    pub claims: Option<PathBuf>,
    /// With --claims: the Issuer name [default: the one whose URL is the claims' iss].
    #[arg(long)]
    pub issuer: Option<String>,
    /// Tenant name.
    #[arg(long)]
    pub tenant: String,
    /// client_id of the request.
    #[arg(long)]
    pub client_id: Option<String>,
    /// scope of the request (`api://payments/.default`); without it (or --resource) role
    /// checks are skipped and no verdict is given.
    #[arg(long)]
    pub scope: Option<String>,
    /// resource of the request (token exchange).
    #[arg(long)]
    pub resource: Option<String>,
    /// Do not check the token's signature and time claims.
    #[arg(long)]
    pub no_verify: bool,
    /// Data directory (the demo issuer's keys); the command line fills it from the settings.
    #[arg(skip = PathBuf::from(crate::config::DEFAULT_DATA_DIR))]
    pub data_dir: PathBuf,
    /// The global issuer fetch settings (`--issuer-*`); the command line fills them from the
    /// settings, as `serve` reads them.
    #[arg(skip)]
    pub fetch: FetchSettings,
}

/// Runs `policy explain`; returns 0 when the request would be allowed, 1 when denied (or the
/// token failed verification), [`EXIT_USAGE`] when the inputs are unusable.
pub fn run(
    args: &ExplainArgs,
    clock: Arc<dyn Clock>,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
) -> i32 {
    match explain_to(args, clock, stdin, out) {
        Ok(code) => code,
        Err(message) => {
            let _ = writeln!(out, "error: {message}");
            EXIT_USAGE
        }
    }
}

fn explain_to(
    args: &ExplainArgs,
    clock: Arc<dyn Clock>,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<i32, String> {
    let dir = args
        .policies
        .clone()
        .unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_POLICIES_DIR));
    let policies =
        crate::policy::load_dir(&dir).map_err(|e| format!("policies in {}: {e}", dir.display()))?;
    crate::issuers::check_fetch_settings(&policies, &args.fetch)
        .map_err(|problems| format!("policies in {}: {problems}", dir.display()))?;
    let (token, verified) = input_token(args, &policies, clock.clone(), stdin)?;

    let w = |out: &mut dyn Write, line: String| {
        let _ = writeln!(out, "{line}");
    };
    w(
        out,
        format!(
            "token: issuer '{}' ({}), sub {}, aud [{}]",
            token.issuer_name,
            token.iss,
            token
                .sub
                .as_deref()
                .map_or("(none)".to_string(), |s| format!("'{s}'")),
            token.aud.join(", ")
        ),
    );
    w(out, format!("signature: {}", verified.text()));
    if let Some(issuer) = policies.issuer(&token.issuer_name) {
        // Checked above: the merge is consistent.
        let effective = args
            .fetch
            .merged(&issuer.fetch)
            .unwrap_or_else(|_| args.fetch.clone());
        w(
            out,
            format!("issuer fetch: {}", effective.describe(&issuer.fetch)),
        );
    }
    let spec = RequestSpec {
        tenant: &args.tenant,
        client_id: args.client_id.as_deref(),
        scope: args.scope.as_deref(),
        resource: args.resource.as_deref(),
        grant: None,
    };
    let has_target = args.scope.is_some() || args.resource.is_some();
    let request = if has_target {
        Some(
            spec.parse()
                .map_err(|e| format!("the request is invalid: {e}"))?,
        )
    } else {
        None
    };
    w(
        out,
        format!(
            "request: tenant '{}', client_id {}, {}",
            args.tenant,
            args.client_id
                .as_deref()
                .map_or("(none)".to_string(), |c| format!("'{c}'")),
            request.as_ref().map_or(
                "no scope or resource (role checks skipped)".to_string(),
                |r| format!("resource '{}'", r.target.resource)
            )
        ),
    );
    w(out, String::new());

    let explanation = explain(
        &token,
        Query {
            tenant: &args.tenant,
            client_id: args.client_id.as_deref(),
            target: request.as_ref().map(|r| &r.target),
            request: Situation::UNKNOWN,
        },
        &policies,
    );
    let _ = write!(out, "{explanation}");
    w(out, String::new());

    let Some(request) = request else {
        w(
            out,
            "decision: not evaluated (give --scope or --resource)".into(),
        );
        return Ok(1);
    };
    let verdict = exchange::decide(&token, &request, &policies, &Limits::default(), clock.now());
    let code = match verdict {
        Ok(grant) => {
            w(
                out,
                format!(
                    "decision: ALLOW as '{}' ({}) via credential '{}': roles [{}], lifetime {}",
                    grant.identity_name,
                    grant.identity_kind.as_str(),
                    grant.credential,
                    grant.roles.join(", "),
                    humantime::format_duration(grant.lifetime)
                ),
            );
            0
        }
        Err(denial) => {
            let (label, code, message) = refusal(&denial, request.grant);
            w(
                out,
                format!(
                    "decision: DENY {label}{}: {message}",
                    code.map(|c| format!(" ({c})")).unwrap_or_default()
                ),
            );
            1
        }
    };
    Ok(if verified.failed() { 1 } else { code })
}

/// How the token's signature was treated.
enum Verified {
    Yes,
    Skipped,
    ClaimsOnly,
    Failed(String),
}

impl Verified {
    fn text(&self) -> String {
        match self {
            Self::Yes => "verified (signature, issuer and time claims)".into(),
            Self::Skipped => "SKIPPED (--no-verify): the claims below are unverified".into(),
            Self::ClaimsOnly => "not applicable (claims given, not a token)".into(),
            Self::Failed(why) => {
                format!("FAILED: {why}; explaining the unverified claims anyway")
            }
        }
    }

    fn failed(&self) -> bool {
        matches!(self, Self::Failed(_))
    }
}

fn input_token(
    args: &ExplainArgs,
    policies: &PolicySet,
    clock: Arc<dyn Clock>,
    stdin: &mut dyn Read,
) -> Result<(ValidatedToken, Verified), String> {
    if let Some(path) = &args.claims {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let claims: Map<String, Value> = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a JSON object of claims: {e}", path.display()))?;
        let token = token_from_claims(policies, args.issuer.as_deref(), claims)?;
        return Ok((token, Verified::ClaimsOnly));
    }
    let source = args.token.as_deref().unwrap_or("-");
    let mut raw = String::new();
    if source == "-" {
        stdin
            .take(crate::issuers::MAX_TOKEN_BYTES as u64 + 2)
            .read_to_string(&mut raw)
            .map_err(|e| format!("cannot read the token from stdin: {e}"))?;
    } else {
        raw = std::fs::read_to_string(source).map_err(|e| format!("cannot read {source}: {e}"))?;
    }
    let raw = raw.trim();
    let peeked = peek(raw).map_err(|e| format!("the token cannot be read: {e}"))?;
    let unverified = || token_from_claims(policies, None, peeked.claims.clone());
    if args.no_verify {
        return Ok((unverified()?, Verified::Skipped));
    }
    let registry = IssuerRegistry::new(
        policies,
        args.fetch.clone(),
        clock,
        crate::demo::jwks_path(&args.data_dir),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    match runtime.block_on(registry.validate(raw)) {
        Ok(token) => Ok((token, Verified::Yes)),
        Err(e) => Ok((unverified()?, Verified::Failed(e.to_string()))),
    }
}
