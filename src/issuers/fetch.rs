//! The one HTTP client that fetches issuer discovery documents and JWKS.
//!
//! Every fetch is bounded: connect and total timeouts, a body size cap (checked against
//! `Content-Length` up front and again while reading chunks), `https` only unless the issuer is
//! marked `allowInsecureHttp`, no proxies (an environment proxy must not see or steer trust
//! traffic), and at most [`MAX_REDIRECTS`] redirects, each to the same host and never from
//! `https` to `http`. This module must not be used to fetch any URL that came out of a token.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CACHE_CONTROL, CONTENT_LENGTH};
use url::Url;

use super::FetchSettings;

/// Redirects followed per fetch, at most.
pub const MAX_REDIRECTS: usize = 3;

/// Why a fetch failed. Messages carry at most the URL (operator configuration or an issuer's
/// published metadata), never response bodies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URL does not parse.
    #[error("invalid URL {url:?}")]
    InvalidUrl {
        /// The offending URL.
        url: String,
    },
    /// The URL is not `https` (and the issuer does not allow plain `http`), or has another scheme.
    #[error("refusing to fetch {url:?}: https is required")]
    InsecureScheme {
        /// The offending URL.
        url: String,
    },
    /// A redirect broke the rules (too many, another host, https→http).
    #[error("redirect refused: {reason}")]
    RedirectRefused {
        /// Which rule was broken.
        reason: String,
    },
    /// Connecting or the whole exchange took too long.
    #[error("timed out fetching {url:?}")]
    Timeout {
        /// The URL.
        url: String,
    },
    /// The issuer could not be reached.
    #[error("could not connect to {url:?}")]
    Connect {
        /// The URL.
        url: String,
    },
    /// The issuer answered with a non-success status.
    #[error("{url:?} answered with status {status}")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status code received from the issuer.
        status: u16,
    },
    /// The body was larger than the cap.
    #[error("response from {url:?} is larger than {max} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The cap.
        max: usize,
    },
    /// The HTTP client could not be built (TLS backend initialisation; a startup failure).
    #[error("cannot build the HTTP client: {reason}")]
    ClientSetup {
        /// What failed.
        reason: String,
    },
    /// The TLS handshake failed, most often because the server certificate does not chain to
    /// a trusted root (a private CA without the issuer's `caFile`, or a CA rotated since).
    #[error("TLS with {url:?} failed: {reason}")]
    Tls {
        /// The URL.
        url: String,
        /// What the TLS stack refused (no certificate content beyond its verdict).
        reason: String,
    },
    /// Any other transport failure (protocol, a body cut short).
    #[error("fetching {url:?} failed: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// A short, safe description.
        reason: String,
    },
}

/// A fetched body and the caching hint the server gave with it.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The response body (at most `max_body_bytes`).
    pub body: Vec<u8>,
    /// `Cache-Control: max-age` when present; `Some(ZERO)` for `no-store`/`no-cache` (the cache
    /// then applies its minimum TTL).
    pub max_age: Option<Duration>,
}

/// The shared fetcher: one reqwest client (connection pool, TLS config) built once and cloned
/// cheaply into every issuer's key source.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    max_body_bytes: usize,
    connect_timeout: Duration,
    timeout: Duration,
    fetches: Arc<std::sync::atomic::AtomicU64>,
}

impl fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetcher")
            .field("max_body_bytes", &self.max_body_bytes)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Why reqwest's redirect policy stopped a chain; found again in the error's source chain.
#[derive(Debug)]
struct RedirectRefusal(&'static str);

impl fmt::Display for RedirectRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl StdError for RedirectRefusal {}

/// The redirect rule. It is client-wide and cannot see the issuer's `allowInsecureHttp`, and
/// it does not need to: the first URL already passed [`check_scheme`] for that issuer, the host
/// may not change, and `https`→`http` is refused, so a chain can only reach plain `http` when
/// it started there, which the issuer allowed.
fn redirect_decision(
    previous: &Url,
    next: &Url,
    hops_so_far: usize,
) -> Result<(), RedirectRefusal> {
    if hops_so_far >= MAX_REDIRECTS {
        return Err(RedirectRefusal("too many redirects"));
    }
    if previous.scheme() == "https" && next.scheme() != "https" {
        return Err(RedirectRefusal("redirect from https to another scheme"));
    }
    if !matches!(next.scheme(), "https" | "http") {
        return Err(RedirectRefusal("redirect to an unsupported scheme"));
    }
    if previous.host_str() != next.host_str() {
        return Err(RedirectRefusal("redirect to another host"));
    }
    Ok(())
}

/// Refuses anything but `https`, or `http` too when `allow_insecure_http`.
pub fn check_scheme(url: &str, allow_insecure_http: bool) -> Result<Url, FetchError> {
    let parsed = Url::parse(url).map_err(|_| FetchError::InvalidUrl {
        url: url.to_string(),
    })?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if allow_insecure_http => Ok(parsed),
        _ => Err(FetchError::InsecureScheme {
            url: url.to_string(),
        }),
    }
}

/// Parses `Cache-Control` for `max-age`; `no-store`/`no-cache` win and yield zero.
pub fn parse_cache_control(value: &str) -> Option<Duration> {
    let mut max_age = None;
    for directive in value.split(',') {
        let directive = directive.trim();
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(Ok(secs)) = lower
            .strip_prefix("max-age=")
            .map(|secs| secs.trim_matches('"').parse::<u64>())
        {
            max_age = Some(Duration::from_secs(secs));
        }
    }
    max_age
}

impl Fetcher {
    /// Builds the client. Fails only when the TLS backend cannot be initialised (a startup
    /// problem, not a request-path one).
    pub fn new(settings: &FetchSettings) -> Result<Self, FetchError> {
        Ok(Self {
            client: Self::client(settings.connect_timeout, settings.timeout, Vec::new())?,
            max_body_bytes: settings.max_body_bytes,
            connect_timeout: settings.connect_timeout,
            timeout: settings.timeout,
            fetches: Arc::default(),
        })
    }

    /// A fetcher with the same limits (and fetch counter) that also trusts the CA
    /// certificates of the PEM bundle `pem`, for issuers whose discovery uses a private CA
    /// (a `caFile`). The system roots stay trusted. Each one is a separate connection pool:
    /// [`super::ca_file::CaFile`] builds one per distinct file content.
    ///
    /// Errors: [`FetchError::ClientSetup`] when `pem` holds no certificate or the client
    /// cannot be built with it.
    pub fn with_extra_roots(&self, pem: &[u8]) -> Result<Self, FetchError> {
        let setup = |reason: String| FetchError::ClientSetup { reason };
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| setup(format!("CA file is not a PEM certificate bundle: {e}")))?;
        if certs.is_empty() {
            return Err(setup("CA file holds no certificate".to_string()));
        }
        Ok(Self {
            client: Self::client(self.connect_timeout, self.timeout, certs)?,
            max_body_bytes: self.max_body_bytes,
            connect_timeout: self.connect_timeout,
            timeout: self.timeout,
            fetches: self.fetches.clone(),
        })
    }

    /// The same client (connection pool, TLS roots, connect timeout, fetch counter) with one
    /// issuer's total timeout and body size cap (its effective [`FetchSettings`]). Cheap: no
    /// new client is built, the timeout is set on each request.
    pub fn with_limits(&self, settings: &FetchSettings) -> Self {
        Self {
            max_body_bytes: settings.max_body_bytes,
            timeout: settings.timeout,
            ..self.clone()
        }
    }

    fn client(
        connect_timeout: Duration,
        timeout: Duration,
        extra_roots: Vec<reqwest::Certificate>,
    ) -> Result<reqwest::Client, FetchError> {
        let policy = reqwest::redirect::Policy::custom(|attempt| {
            let hops = attempt.previous().len().saturating_sub(1);
            let decision = match attempt.previous().last() {
                Some(previous) => redirect_decision(previous, attempt.url(), hops),
                None => Err(RedirectRefusal("redirect without origin")),
            };
            match decision {
                Ok(()) => attempt.follow(),
                Err(refusal) => attempt.error(refusal),
            }
        });
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .tls_backend_rustls()
            .connect_timeout(connect_timeout)
            // The client-wide bound; each request sets its issuer's own (`with_limits`).
            .timeout(timeout)
            .redirect(policy)
            .user_agent(concat!("trustbridge/", env!("CARGO_PKG_VERSION")));
        if !extra_roots.is_empty() {
            builder = builder.tls_certs_merge(extra_roots);
        }
        builder.build().map_err(|e| FetchError::ClientSetup {
            reason: e.to_string(),
        })
    }

    /// The body size cap (also applied to JWKS files).
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// The total timeout of one fetch (connect, request and body).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How many fetches this client (and its clones) started, for tests and metrics.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// GETs `url` under the rules of this module and returns its body.
    ///
    /// Errors: [`FetchError::InsecureScheme`] before any I/O when the scheme is refused; the
    /// other variants for transport failures, non-2xx statuses, oversized bodies and refused
    /// redirects.
    pub async fn get(&self, url: &str, allow_insecure_http: bool) -> Result<Fetched, FetchError> {
        let parsed = check_scheme(url, allow_insecure_http)?;
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut response = self
            .client
            .get(parsed)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| map_reqwest_error(url, &e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status {
                url: url.to_string(),
                status: status.as_u16(),
            });
        }
        let too_large = || FetchError::TooLarge {
            url: url.to_string(),
            max: self.max_body_bytes,
        };
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .or_else(|| response.content_length());
        if declared.is_some_and(|len| len > self.max_body_bytes as u64) {
            return Err(too_large());
        }
        let max_age = response
            .headers()
            .get_all(CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(parse_cache_control)
            .min();
        let mut body = Vec::with_capacity(declared.unwrap_or(0).min(64 * 1024) as usize);
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| map_reqwest_error(url, &e))?
        {
            if body.len().saturating_add(chunk.len()) > self.max_body_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched { body, max_age })
    }
}

fn map_reqwest_error(url: &str, error: &reqwest::Error) -> FetchError {
    let url = url.to_string();
    if error.is_redirect() {
        let mut source = error.source();
        while let Some(cause) = source {
            if let Some(refusal) = cause.downcast_ref::<RedirectRefusal>() {
                return FetchError::RedirectRefused {
                    reason: refusal.0.to_string(),
                };
            }
            source = cause.source();
        }
        return FetchError::RedirectRefused {
            reason: "redirect refused".to_string(),
        };
    }
    if let Some(reason) = tls_failure(error) {
        return FetchError::Tls { url, reason };
    }
    if error.is_timeout() {
        FetchError::Timeout { url }
    } else if error.is_connect() {
        FetchError::Connect { url }
    } else if error.is_body() || error.is_decode() {
        FetchError::Transport {
            url,
            reason: "response body could not be read".to_string(),
        }
    } else {
        FetchError::Transport {
            url,
            reason: "request failed".to_string(),
        }
    }
}

/// What rustls refused, when it is behind `error`. hyper and tokio-rustls wrap it in
/// `io::Error`s (nested: reqwest's connector wraps tokio-rustls' one), whose `source()` skips
/// the wrapped error, so each is opened with `get_ref`.
fn tls_failure(error: &reqwest::Error) -> Option<String> {
    let mut next: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(cause) = next {
        let mut wrapped = cause;
        loop {
            if let Some(tls) = wrapped.downcast_ref::<rustls::Error>() {
                return Some(describe_tls(tls));
            }
            match wrapped
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(inner) => wrapped = inner,
                None => break,
            }
        }
        next = cause.source();
    }
    None
}

/// An operator's reading of a TLS refusal: which check failed, never certificate content.
fn describe_tls(error: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match error {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => "the server certificate is \
             unknown: it does not chain to a trusted CA (a private CA must be named by the \
             issuer's caFile)"
            .to_string(),
        // A CA of the same name but another key: what a rotated cluster CA looks like to a
        // client still holding the old one.
        rustls::Error::InvalidCertificate(C::BadSignature) => "the server certificate is \
             unknown: it names a trusted CA but was not signed by it (a rotated CA must be \
             added to the issuer's caFile)"
            .to_string(),
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "the server certificate has expired".to_string()
        }
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => "the server certificate is not valid for this host".to_string(),
        other => format!("handshake refused: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_parses_max_age_and_no_store() {
        assert_eq!(
            parse_cache_control("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(parse_cache_control("no-store"), Some(Duration::ZERO));
        assert_eq!(
            parse_cache_control("max-age=300, no-cache"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_cache_control("private"), None);
        assert_eq!(parse_cache_control("max-age=abc"), None);
    }

    #[test]
    fn scheme_rules() {
        assert!(check_scheme("https://a.example/x", false).is_ok());
        assert!(matches!(
            check_scheme("http://a.example/x", false),
            Err(FetchError::InsecureScheme { .. })
        ));
        assert!(check_scheme("http://127.0.0.1/x", true).is_ok());
        assert!(matches!(
            check_scheme("file:///etc/passwd", true),
            Err(FetchError::InsecureScheme { .. })
        ));
        assert!(matches!(
            check_scheme("not a url", true),
            Err(FetchError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn tls_refusals_say_which_check_failed() {
        use rustls::CertificateError as C;
        let cases = [
            (C::UnknownIssuer, "does not chain to a trusted CA"),
            (C::BadSignature, "rotated CA"),
            (C::Expired, "expired"),
            (C::NotValidForName, "not valid for this host"),
            (C::Revoked, "handshake refused"),
        ];
        for (error, expected) in cases {
            let text = describe_tls(&rustls::Error::InvalidCertificate(error.clone()));
            assert!(text.contains(expected), "{error:?}: {text}");
        }
    }

    #[test]
    fn redirect_rules() {
        let https = Url::parse("https://a.example/x").unwrap();
        let http = Url::parse("http://a.example/y").unwrap();
        let other = Url::parse("https://b.example/y").unwrap();
        let same = Url::parse("https://a.example/y").unwrap();
        assert!(redirect_decision(&https, &same, 0).is_ok());
        assert!(redirect_decision(&https, &same, 2).is_ok());
        assert!(redirect_decision(&https, &same, 3).is_err());
        assert!(redirect_decision(&https, &http, 0).is_err());
        assert!(redirect_decision(&https, &other, 0).is_err());
        assert!(redirect_decision(&http, &https, 0).is_ok());
    }
}
