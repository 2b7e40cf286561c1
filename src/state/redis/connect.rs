//! How to reach Redis: the `redis://` or `rediss://` URL, the TLS material of a `rediss://`
//! connection (a private CA, a client certificate for mutual TLS) and an ACL password kept in
//! a file, turned into a `redis` [`Client`]; and what a failed connection means.
//!
//! TLS is rustls with the aws-lc-rs provider (the gateway's only TLS stack). The server is
//! verified against `--redis-ca-file` when given (and then only against it), otherwise against
//! the system roots; there is no switch to skip verification.
//!
//! Nothing here may print a URL, a password or key material: URLs carry passwords, and the
//! errors of the `redis` crate may echo either. Failures are described by
//! [`Failure`] (a kind and a fixed phrase) instead.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ::redis::{Client, IntoConnectionInfo, RedisError, TlsCertificates};

/// Largest CA, certificate, key or password file read.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Time the start-up probe gives Redis to connect and answer `PING`.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Where Redis is and how to authenticate to it: `--redis-url` and its companions. Files are
/// read by [`client`], not when settings are validated.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RedisOptions {
    /// `redis://[user:password@]host:port[/db]` or `rediss://...` (TLS).
    pub url: String,
    /// `--redis-ca-file`: PEM CA bundle the server's certificate must chain to (`rediss://`).
    pub ca_file: Option<PathBuf>,
    /// `--redis-cert`: PEM client certificate chain for mutual TLS (`rediss://`).
    pub client_cert: Option<PathBuf>,
    /// `--redis-key`: PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// `--redis-password-file`: the ACL password (trailing newline ignored); the user, if any,
    /// comes from the URL.
    pub password_file: Option<PathBuf>,
}

impl fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: only its scheme is shown.
        f.debug_struct("RedisOptions")
            .field("tls", &self.is_tls())
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field("password_file", &self.password_file)
            .finish()
    }
}

impl RedisOptions {
    /// Options for a bare URL (no TLS files, no password file).
    pub fn url(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            ..Self::default()
        }
    }

    /// Whether the URL asks for TLS (`rediss://`).
    pub fn is_tls(&self) -> bool {
        self.url.starts_with("rediss://")
    }
}

/// Why Redis settings cannot be used: the setting at fault and what is wrong with it. Never
/// carries a URL, a password or key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {reason}")]
pub struct RedisSetupError {
    /// The flag at fault (`redis-url`, `redis-ca-file`, ...).
    pub setting: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn setup(setting: &'static str, reason: impl Into<String>) -> RedisSetupError {
    RedisSetupError {
        setting,
        reason: reason.into(),
    }
}

/// Builds the client: parses the URL, adds the password from its file and, for `rediss://`,
/// the CA bundle and client certificate. Connects to nothing.
///
/// # Errors
/// [`RedisSetupError`] naming the flag: an unusable URL, an unreadable or empty file, a file
/// without the PEM it should hold.
pub fn client(options: &RedisOptions) -> Result<Client, RedisSetupError> {
    let mut info = options.url.as_str().into_connection_info().map_err(|e| {
        setup(
            "redis-url",
            format!("not a usable Redis URL ({})", e.category()),
        )
    })?;
    if let Some(path) = &options.password_file {
        let password = read_password(path)?;
        let redis = info.redis_settings().clone().set_password(password);
        info = info.set_redis_settings(redis);
    }
    if !options.is_tls() {
        return Client::open(info)
            .map_err(|e| setup("redis-url", format!("not usable ({})", e.category())));
    }
    // rustls picks the process-wide provider; make it the one the gateway uses everywhere.
    // (Installing fails harmlessly when a provider is already installed.)
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let root_cert = match &options.ca_file {
        Some(path) => Some(read_pem(path, "redis-ca-file", "CERTIFICATE")?),
        None => None,
    };
    let client_tls = match (&options.client_cert, &options.client_key) {
        (Some(cert), Some(key)) => Some(::redis::ClientTlsConfig {
            client_cert: read_pem(cert, "redis-cert", "CERTIFICATE")?,
            client_key: read_pem(key, "redis-key", "PRIVATE KEY")?,
        }),
        (None, None) => None,
        _ => return Err(setup("redis-cert", "redis-cert and redis-key go together")),
    };
    Client::build_with_tls(
        info,
        TlsCertificates {
            client_tls,
            root_cert,
        },
    )
    .map_err(|e| {
        // The crate's message names the PEM problem, never the bytes; which file is at fault
        // is not said, so both are named.
        setup(
            "redis-ca-file",
            format!(
                "the CA bundle or the client certificate/key is not usable ({})",
                e.category()
            ),
        )
    })
}

fn read_limited(path: &Path, setting: &'static str) -> Result<Vec<u8>, RedisSetupError> {
    let err = |e: std::io::Error| setup(setting, format!("{}: {}", path.display(), e.kind()));
    let len = std::fs::metadata(path).map_err(err)?.len();
    if len > MAX_FILE_BYTES {
        return Err(setup(
            setting,
            format!("{}: larger than {MAX_FILE_BYTES} bytes", path.display()),
        ));
    }
    std::fs::read(path).map_err(err)
}

/// Reads a PEM file that must hold at least one block whose label ends with `label`.
fn read_pem(path: &Path, setting: &'static str, label: &str) -> Result<Vec<u8>, RedisSetupError> {
    let bytes = read_limited(path, setting)?;
    let text = String::from_utf8_lossy(&bytes);
    let found = text.lines().any(|line| {
        line.trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
            .is_some_and(|l| l.ends_with(label))
    });
    if !found {
        return Err(setup(
            setting,
            format!("{}: no PEM {label} block found", path.display()),
        ));
    }
    Ok(bytes)
}

fn read_password(path: &Path) -> Result<String, RedisSetupError> {
    let bytes = zeroize::Zeroizing::new(read_limited(path, "redis-password-file")?);
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        setup(
            "redis-password-file",
            format!("{}: not UTF-8 text", path.display()),
        )
    })?;
    // A Secret mounted from `kubectl create secret --from-file` or written by `echo` ends
    // with a newline that is not part of the password.
    let password = text.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(setup(
            "redis-password-file",
            format!("{}: empty", path.display()),
        ));
    }
    Ok(password.to_owned())
}

/// What kind of failure a Redis error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Redis could not be reached or answered too late: may pass by itself.
    Unavailable,
    /// TLS verification or authentication failed: the configuration is wrong and retrying
    /// will not help.
    Misconfigured,
}

/// A Redis failure described without anything the error may have echoed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Whether it may pass by itself.
    pub kind: FailureKind,
    /// A short description (kind, category or the TLS alert; never a URL or password).
    pub what: String,
}

/// Describes `e` safely: TLS verification and authentication failures by name, the rest by
/// kind and category.
pub fn classify(e: &RedisError) -> Failure {
    let unavailable = |what: &str| Failure {
        kind: FailureKind::Unavailable,
        what: what.to_owned(),
    };
    let misconfigured = |what: String| Failure {
        kind: FailureKind::Misconfigured,
        what,
    };
    if let Some(tls) = tls_error(e) {
        return misconfigured(format!("TLS handshake failed: {tls}"));
    }
    if e.kind() == ::redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH"))
    {
        return misconfigured("authentication failed (wrong user or password)".to_owned());
    }
    if e.is_timeout() {
        unavailable("timed out")
    } else if e.is_connection_refusal() {
        unavailable("connection refused")
    } else if e.is_connection_dropped() || e.is_io_error() {
        unavailable("connection lost")
    } else {
        unavailable(e.category())
    }
}

/// The rustls error in `e`'s source chain (a failed handshake: an untrusted certificate, a
/// refused client certificate). Its text names the certificate problem or TLS alert only.
fn tls_error(e: &RedisError) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(current) = cause {
        if let Some(tls) = rustls_in(current) {
            return Some(tls.to_string());
        }
        cause = current.source();
    }
    None
}

/// `error` itself when it is a rustls error, or the rustls error it wraps: the `redis` crate
/// keeps I/O errors in an `Arc<dyn Error>`, and tokio-rustls puts the rustls error inside an
/// `io::Error` (whose `source()` skips it).
fn rustls_in<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    if let Some(shared) = error.downcast_ref::<Shared>() {
        return rustls_in(shared.as_ref());
    }
    let io = error.downcast_ref::<std::io::Error>()?;
    rustls_in(io.get_ref()?)
}

/// Connects once and sends `PING` (within [`PROBE_TIMEOUT`]), so `serve` can refuse to start
/// on a configuration that cannot work.
///
/// # Errors
/// The [`Failure`] met; the caller decides (a misconfiguration stops start-up; an unreachable
/// Redis does not, the gateway then answers per the failure policy).
pub async fn probe(client: &Client) -> Result<(), Failure> {
    let config = ::redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(PROBE_TIMEOUT))
        .set_response_timeout(Some(PROBE_TIMEOUT));
    let attempt = async {
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        ::redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(PROBE_TIMEOUT + Duration::from_secs(1), attempt).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(classify(&e)),
        Err(_) => Err(Failure {
            kind: FailureKind::Unavailable,
            what: "timed out".to_owned(),
        }),
    }
}
