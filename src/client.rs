//! The CI client helper behind `trustbridge token`: find the workload's platform token, trade
//! it at a trustbridge token endpoint, hand back the access token.
//!
//! The platform token comes from, in this order: a file named on the command line; GitHub
//! Actions' OIDC request endpoint (`ACTIONS_ID_TOKEN_REQUEST_URL` and
//! `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, with `&audience=`, as `actions/core`'s `getIDToken`
//! asks); a Kubernetes projected service account token file. The exchange is Entra's grant
//! (client credentials with a federated assertion, DESIGN §4 grant A), which every trustbridge
//! tenant endpoint answers.
//!
//! This is the gateway's client, not part of it: nothing here is used by `serve`. It never
//! prints or logs a token or the Actions request token; errors name the step that failed and
//! what the server said (`error`, `error_description`), never a body that could hold a token.
//! Plain `http` is refused except to loopback addresses (local stand-ins in tests).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::issuers::fetch::check_scheme;

/// The Actions variable holding the OIDC request URL.
pub const ACTIONS_URL_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
/// The Actions variable holding the bearer token for that URL.
pub const ACTIONS_TOKEN_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";
/// Where docs/clients.md mounts the projected service account token in a pod.
pub const DEFAULT_KUBERNETES_TOKEN_FILE: &str = "/var/run/secrets/trustbridge/token";
/// Largest response body read (a token response, an Actions OIDC response).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Largest token file read.
const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Where the platform token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectSource {
    /// A file holding the token (`--subject-token-file`, or a projected Kubernetes token).
    File(PathBuf),
    /// GitHub Actions' OIDC request endpoint.
    GithubActions {
        /// `ACTIONS_ID_TOKEN_REQUEST_URL`.
        url: String,
        /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN` (a secret: never printed).
        request_token: Zeroizing<String>,
        /// The `aud` to ask for.
        audience: String,
    },
}

/// What went wrong, in the words of the step that failed. No variant carries a token.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No source of a platform token was found.
    #[error(
        "no platform token: give --subject-token-file, run in GitHub Actions with \
         `permissions: id-token: write` ({ACTIONS_URL_VAR}), or mount a projected token at {0}"
    )]
    NoSubjectToken(String),
    /// A URL is unusable or not https (plain http is allowed to loopback only).
    #[error("{what}: {url:?} must be an https URL (http only to a loopback address)")]
    BadUrl {
        /// Which URL.
        what: &'static str,
        /// The URL, as given (endpoints and the Actions URL carry no secret).
        url: String,
    },
    /// A token file could not be read.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The HTTP request failed (connect, TLS, timeout, size).
    #[error("{step}: {reason}")]
    Transport {
        /// `GitHub Actions OIDC request` or `token exchange`.
        step: &'static str,
        /// Why.
        reason: String,
    },
    /// The GitHub Actions endpoint refused or answered something unusable.
    #[error("GitHub Actions OIDC request: {0}")]
    Actions(String),
    /// The gateway refused the exchange.
    #[error("token exchange refused ({status}): {error}: {description}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// OAuth `error`.
        error: String,
        /// OAuth `error_description` (the gateway never puts a token in it).
        description: String,
    },
}

/// The exchange to perform.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// Base URL of the gateway (its public URL).
    pub endpoint: String,
    /// Tenant name.
    pub tenant: String,
    /// `client_id`: the application id or managed identity name.
    pub client_id: String,
    /// `scope`, e.g. `api://payments/.default`.
    pub scope: String,
}

impl TokenRequest {
    /// `{endpoint}/{tenant}/oauth2/v2.0/token`.
    ///
    /// # Errors
    /// [`ClientError::BadUrl`] when the endpoint is not https (or http to loopback).
    pub fn token_url(&self) -> Result<url::Url, ClientError> {
        let base = self.endpoint.trim_end_matches('/');
        let url = format!("{base}/{}/oauth2/v2.0/token", self.tenant);
        checked_url("--endpoint", &url).map_err(|_| ClientError::BadUrl {
            what: "--endpoint",
            url: self.endpoint.clone(),
        })
    }
}

/// Picks the token source from the flags and the environment (`env` looks a variable up):
/// `--subject-token-file` first, then GitHub Actions, then the Kubernetes token file when it
/// exists.
///
/// # Errors
/// [`ClientError::NoSubjectToken`] when none applies.
pub fn subject_source(
    subject_token_file: Option<&Path>,
    kubernetes_token_file: &Path,
    audience: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SubjectSource, ClientError> {
    if let Some(file) = subject_token_file {
        return Ok(SubjectSource::File(file.to_path_buf()));
    }
    let set = |name| env(name).filter(|v| !v.is_empty());
    if let (Some(url), Some(token)) = (set(ACTIONS_URL_VAR), set(ACTIONS_TOKEN_VAR)) {
        return Ok(SubjectSource::GithubActions {
            url,
            request_token: Zeroizing::new(token),
            audience: audience.to_string(),
        });
    }
    if kubernetes_token_file.is_file() {
        return Ok(SubjectSource::File(kubernetes_token_file.to_path_buf()));
    }
    Err(ClientError::NoSubjectToken(
        kubernetes_token_file.display().to_string(),
    ))
}

/// The HTTP client of the helper. Proxies from the environment are honoured (CI runners sit
/// behind them); redirects are not followed, so a token request is never replayed elsewhere.
///
/// # Errors
/// [`ClientError::Transport`] when the TLS backend cannot start.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .tls_backend_rustls()
        .connect_timeout(timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("trustbridge-token/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ClientError::Transport {
            step: "client setup",
            reason: e.to_string(),
        })
}

/// Reads the platform token from `source`.
///
/// # Errors
/// [`ClientError::File`], [`ClientError::Transport`], [`ClientError::Actions`],
/// [`ClientError::BadUrl`].
pub async fn subject_token(
    http: &reqwest::Client,
    source: &SubjectSource,
) -> Result<Zeroizing<String>, ClientError> {
    match source {
        SubjectSource::File(path) => read_token_file(path),
        SubjectSource::GithubActions {
            url,
            request_token,
            audience,
        } => actions_token(http, url, request_token, audience).await,
    }
}

fn read_token_file(path: &Path) -> Result<Zeroizing<String>, ClientError> {
    let fail = |reason: String| ClientError::File {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if meta.len() > MAX_TOKEN_FILE_BYTES {
        return Err(fail(format!("larger than {MAX_TOKEN_FILE_BYTES} bytes")));
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?);
    let token = text.trim();
    if token.is_empty() {
        return Err(fail("empty".to_string()));
    }
    Ok(Zeroizing::new(token.to_string()))
}

async fn actions_token(
    http: &reqwest::Client,
    url: &str,
    request_token: &str,
    audience: &str,
) -> Result<Zeroizing<String>, ClientError> {
    let mut url = checked_url(ACTIONS_URL_VAR, url)?;
    url.query_pairs_mut().append_pair("audience", audience);
    let response = http
        .get(url)
        .bearer_auth(request_token)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| transport("GitHub Actions OIDC request", &e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(ClientError::Actions(format!(
            "status {} (does the job have `permissions: id-token: write`?)",
            status.as_u16()
        )));
    }
    let body = read_capped(response, "GitHub Actions OIDC request").await?;
    #[derive(Deserialize)]
    struct ActionsToken {
        value: String,
    }
    let parsed: ActionsToken = serde_json::from_slice(&body)
        .map_err(|_| ClientError::Actions("the response has no `value`".to_string()))?;
    Ok(Zeroizing::new(parsed.value))
}

/// Exchanges `subject` for an access token (grant A: client credentials with the platform
/// token as the federated assertion).
///
/// # Errors
/// [`ClientError::Refused`] with the gateway's OAuth error; [`ClientError::Transport`].
pub async fn exchange(
    http: &reqwest::Client,
    request: &TokenRequest,
    subject: &str,
) -> Result<Zeroizing<String>, ClientError> {
    let url = request.token_url()?;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", request.client_id.as_str()),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", subject),
        ("scope", request.scope.as_str()),
    ];
    let body = Zeroizing::new(
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish(),
    );
    let response = http
        .post(url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(reqwest::header::ACCEPT, "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| transport("token exchange", &e))?;
    let status = response.status().as_u16();
    let body = read_capped(response, "token exchange").await?;
    #[derive(Deserialize)]
    struct Answer {
        access_token: Option<String>,
        error: Option<String>,
        error_description: Option<String>,
    }
    let answer: Answer = serde_json::from_slice(&body).map_err(|_| ClientError::Refused {
        status,
        error: "unreadable_response".to_string(),
        description: "the answer is not an OAuth JSON body".to_string(),
    })?;
    match answer {
        Answer {
            access_token: Some(token),
            ..
        } if (200..300).contains(&status) => Ok(Zeroizing::new(token)),
        other => Err(ClientError::Refused {
            status,
            error: crate::text::shown(other.error.as_deref().unwrap_or("no_access_token"), 64),
            description: crate::text::shown(other.error_description.as_deref().unwrap_or(""), 512),
        }),
    }
}

/// Writes `token` to `path` readable by its owner only (0600 on Unix), replacing the file
/// atomically so no reader sees a partial token or wider permissions.
///
/// # Errors
/// The I/O error.
pub fn write_token_file(path: &Path, token: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "token".to_string());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(token.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn checked_url(what: &'static str, url: &str) -> Result<url::Url, ClientError> {
    let bad = || ClientError::BadUrl {
        what,
        url: url.to_string(),
    };
    let parsed = url::Url::parse(url).map_err(|_| bad())?;
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    check_scheme(url, loopback).map_err(|_| bad())
}

fn transport(step: &'static str, e: &reqwest::Error) -> ClientError {
    // reqwest's message names the URL (no secret in ours) and the cause, never the body.
    ClientError::Transport {
        step,
        reason: e.to_string(),
    }
}

async fn read_capped(
    mut response: reqwest::Response,
    step: &'static str,
) -> Result<Zeroizing<Vec<u8>>, ClientError> {
    let mut body = Zeroizing::new(Vec::new());
    while let Some(chunk) = response.chunk().await.map_err(|e| transport(step, &e))? {
        if body.len().saturating_add(chunk.len()) > MAX_RESPONSE_BYTES {
            return Err(ClientError::Transport {
                step,
                reason: format!("response larger than {MAX_RESPONSE_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests;
