//! Gateway settings: flags > `TRUSTBRIDGE_*` environment variables > `--config` file > defaults
//! (DESIGN §3). This module only merges and validates; it opens no sockets and reads no keys.
//! Every problem is reported at once so a bad deployment fails before binding with the list.

mod redis;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::fetch_settings::{FetchSettings, Field};
use crate::jose::SigningAlgorithm;
use crate::jose::VerifyIssued;
use crate::telemetry::audit::{AuditDestination, AuditFailure};
use crate::telemetry::logging::LogFormat;

/// Lifetime of issued tokens when neither the server, the service principal nor the
/// credential says otherwise (DESIGN.md §5: one hour).
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The data directory (demo issuer key, default key directory) when none is configured.
pub const DEFAULT_DATA_DIR: &str = ".trustbridge";

/// The policy directory when none is configured.
pub const DEFAULT_POLICIES_DIR: &str = "policies";

/// Default of `--unused-after`: credentials unused for 30 days are reported stale.
pub const DEFAULT_UNUSED_AFTER: Duration = Duration::from_secs(30 * 86_400);

/// Default of `--max-workload-identities`.
pub const DEFAULT_MAX_WORKLOAD_IDENTITIES: usize = 10_000;

/// Longest lifetime an operator may configure for issued tokens.
pub const MAX_LIFETIME_CEILING: Duration = Duration::from_secs(24 * 3600);

/// Longest `--dpop-proof-window`: a proof older than this is no proof of recent possession.
pub const MAX_DPOP_PROOF_WINDOW: Duration = Duration::from_secs(600);

/// Validated settings of `trustbridge serve`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to bind.
    pub listen: SocketAddr,
    /// Base of every tenant issuer URL, without a trailing slash.
    pub public_url: String,
    /// Policy directory.
    pub policies: PathBuf,
    /// Signing key directory.
    pub keys: PathBuf,
    /// Data directory (demo issuer keys).
    pub data_dir: PathBuf,
    /// Algorithm of newly generated signing keys.
    pub signing_algorithm: SigningAlgorithm,
    /// Server-wide maximum lifetime of issued tokens.
    pub max_token_lifetime: Duration,
    /// Log format.
    pub log_format: LogFormat,
    /// Worker threads (0 = one per core).
    pub workers: usize,
    /// Certificate and key to serve HTTPS with; `None` serves plain HTTP.
    pub tls: Option<crate::tls::TlsFiles>,
    /// Where the audit trail goes (stdout by default).
    pub audit_log: AuditDestination,
    /// Whether exchanges are refused while the audit trail cannot be written (default deny).
    pub audit_failure: AuditFailure,
    /// Which issued tokens are verified again after signing (default: a sample).
    pub verify_issued: VerifyIssued,
    /// Redis for state shared between replicas (URL, TLS and password files); `None` keeps
    /// it in memory.
    pub redis: Option<crate::state::redis::RedisOptions>,
    /// Prefix of every Redis key (lets several deployments or test runs share a Redis).
    pub redis_key_prefix: String,
    /// Rate limit per identity (tenant + object id), if any.
    pub rate_limit_identity: Option<crate::state::RateLimit>,
    /// Rate limit per source issuer, if any.
    pub rate_limit_issuer: Option<crate::state::RateLimit>,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// How long the listener keeps accepting (answering not-ready) after SIGTERM, so load
    /// balancers stop sending before the socket closes.
    pub shutdown_delay: Duration,
    /// How often the key directory is checked for changes.
    pub keys_reload_interval: Duration,
    /// The admin listener (console, admin API, probes and metrics); `None` when `off`.
    pub admin_listen: Option<SocketAddr>,
    /// File holding the bearer token the admin API requires (required off loopback).
    pub admin_token_file: Option<PathBuf>,
    /// Development only: error responses carry the refusal's private detail (configured
    /// subjects, patterns, audiences, CEL errors, key URLs and paths) instead of its public
    /// description. [`Settings::resolve`] refuses it unless `listen` is a loopback address.
    pub verbose_errors: bool,
    /// Peers whose `Forwarded`/`X-Forwarded-For` headers are believed (`--trusted-proxies`);
    /// empty: the TCP peer is the client.
    pub trusted_proxies: Vec<crate::cidr::Cidr>,
    /// A credential unused for this long is reported stale by the identity inventory
    /// (`--unused-after`).
    pub unused_after: Duration,
    /// Most workload-assigned identities the inventory remembers; the least recently used is
    /// forgotten beyond it (`--max-workload-identities`).
    pub max_workload_identities: usize,
    /// How old a DPoP proof's `iat` may be (`--dpop-proof-window`); its `jti` is remembered
    /// that long.
    pub dpop_proof_window: Duration,
    /// Base URL of the OTLP/HTTP collector traces are exported to (`--otlp-endpoint`, as
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: `/v1/traces` is appended); `None` leaves the choice to
    /// the standard `OTEL_EXPORTER_OTLP_*` variables (see `telemetry::traces`).
    pub otlp_endpoint: Option<String>,
    /// Global limits of fetching issuer discovery documents and JWKS (`--issuer-*`); an
    /// Issuer's `fetch:` block may override them for that issuer.
    pub issuer_fetch: FetchSettings,
}

/// Settings as given by one layer (flags, file); `None` means "not set here".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Layer {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--public-url`.
    pub public_url: Option<String>,
    /// `--policies`.
    pub policies: Option<PathBuf>,
    /// `--keys`.
    pub keys: Option<PathBuf>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--signing-algorithm`.
    pub signing_algorithm: Option<String>,
    /// `--max-token-lifetime` (humantime, e.g. `1h`).
    pub max_token_lifetime: Option<String>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
    /// `--workers`.
    pub workers: Option<usize>,
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
    /// `--audit-log` (`-` for stdout, or a file).
    pub audit_log: Option<String>,
    /// `--audit-failure` (`deny` or `continue`).
    pub audit_failure: Option<String>,
    /// `--verify-issued` (`all`, `sample` or `load`).
    pub verify_issued: Option<String>,
    /// `--redis-url`.
    pub redis_url: Option<String>,
    /// `--redis-key-prefix`.
    pub redis_key_prefix: Option<String>,
    /// `--redis-ca-file` (PEM CA bundle for `rediss://`).
    pub redis_ca_file: Option<PathBuf>,
    /// `--redis-cert` (PEM client certificate for mutual TLS).
    pub redis_cert: Option<PathBuf>,
    /// `--redis-key` (PEM private key of `--redis-cert`).
    pub redis_key: Option<PathBuf>,
    /// `--redis-password-file` (the ACL password, kept out of the URL).
    pub redis_password_file: Option<PathBuf>,
    /// `--rate-limit-identity` (`600/m`).
    pub rate_limit_identity: Option<String>,
    /// `--rate-limit-issuer` (`6000/m`).
    pub rate_limit_issuer: Option<String>,
    /// `--shutdown-grace` (humantime).
    pub shutdown_grace: Option<String>,
    /// `--shutdown-delay` (humantime).
    pub shutdown_delay: Option<String>,
    /// `--keys-reload-interval` (humantime).
    pub keys_reload_interval: Option<String>,
    /// `--admin-listen` (an address, or `off`).
    pub admin_listen: Option<String>,
    /// `--admin-token-file`.
    pub admin_token_file: Option<PathBuf>,
    /// `--verbose-errors` (development only; loopback listeners only).
    pub verbose_errors: Option<bool>,
    /// `--trusted-proxies` (`CIDR[,CIDR...]`).
    pub trusted_proxies: Option<String>,
    /// `--unused-after` (humantime, e.g. `30d`).
    pub unused_after: Option<String>,
    /// `--max-workload-identities`.
    pub max_workload_identities: Option<usize>,
    /// `--dpop-proof-window` (humantime, e.g. `60s`).
    pub dpop_proof_window: Option<String>,
    /// `--otlp-endpoint` (an http(s) base URL such as `http://collector:4318`).
    pub otlp_endpoint: Option<String>,
    /// `--issuer-connect-timeout` (humantime).
    pub issuer_connect_timeout: Option<String>,
    /// `--issuer-timeout` (humantime).
    pub issuer_timeout: Option<String>,
    /// `--issuer-max-document-size` (size: bytes, or e.g. `256KiB`).
    pub issuer_max_document_size: Option<String>,
    /// `--issuer-refresh-cooldown` (humantime).
    pub issuer_refresh_cooldown: Option<String>,
    /// `--issuer-default-ttl` (humantime).
    pub issuer_default_ttl: Option<String>,
    /// `--issuer-min-ttl` (humantime).
    pub issuer_min_ttl: Option<String>,
    /// `--issuer-max-ttl` (humantime).
    pub issuer_max_ttl: Option<String>,
    /// `--issuer-max-stale` (humantime).
    pub issuer_max_stale: Option<String>,
}

impl Layer {
    /// Fills every unset field of `self` from `lower`.
    pub fn over(self, lower: Layer) -> Layer {
        Layer {
            listen: self.listen.or(lower.listen),
            public_url: self.public_url.or(lower.public_url),
            policies: self.policies.or(lower.policies),
            keys: self.keys.or(lower.keys),
            data_dir: self.data_dir.or(lower.data_dir),
            signing_algorithm: self.signing_algorithm.or(lower.signing_algorithm),
            max_token_lifetime: self.max_token_lifetime.or(lower.max_token_lifetime),
            log_format: self.log_format.or(lower.log_format),
            workers: self.workers.or(lower.workers),
            tls_cert: self.tls_cert.or(lower.tls_cert),
            tls_key: self.tls_key.or(lower.tls_key),
            audit_log: self.audit_log.or(lower.audit_log),
            audit_failure: self.audit_failure.or(lower.audit_failure),
            verify_issued: self.verify_issued.or(lower.verify_issued),
            redis_url: self.redis_url.or(lower.redis_url),
            redis_key_prefix: self.redis_key_prefix.or(lower.redis_key_prefix),
            redis_ca_file: self.redis_ca_file.or(lower.redis_ca_file),
            redis_cert: self.redis_cert.or(lower.redis_cert),
            redis_key: self.redis_key.or(lower.redis_key),
            redis_password_file: self.redis_password_file.or(lower.redis_password_file),
            rate_limit_identity: self.rate_limit_identity.or(lower.rate_limit_identity),
            rate_limit_issuer: self.rate_limit_issuer.or(lower.rate_limit_issuer),
            shutdown_grace: self.shutdown_grace.or(lower.shutdown_grace),
            shutdown_delay: self.shutdown_delay.or(lower.shutdown_delay),
            keys_reload_interval: self.keys_reload_interval.or(lower.keys_reload_interval),
            admin_listen: self.admin_listen.or(lower.admin_listen),
            admin_token_file: self.admin_token_file.or(lower.admin_token_file),
            verbose_errors: self.verbose_errors.or(lower.verbose_errors),
            trusted_proxies: self.trusted_proxies.or(lower.trusted_proxies),
            unused_after: self.unused_after.or(lower.unused_after),
            max_workload_identities: self
                .max_workload_identities
                .or(lower.max_workload_identities),
            dpop_proof_window: self.dpop_proof_window.or(lower.dpop_proof_window),
            otlp_endpoint: self.otlp_endpoint.or(lower.otlp_endpoint),
            issuer_connect_timeout: self.issuer_connect_timeout.or(lower.issuer_connect_timeout),
            issuer_timeout: self.issuer_timeout.or(lower.issuer_timeout),
            issuer_max_document_size: self
                .issuer_max_document_size
                .or(lower.issuer_max_document_size),
            issuer_refresh_cooldown: self
                .issuer_refresh_cooldown
                .or(lower.issuer_refresh_cooldown),
            issuer_default_ttl: self.issuer_default_ttl.or(lower.issuer_default_ttl),
            issuer_min_ttl: self.issuer_min_ttl.or(lower.issuer_min_ttl),
            issuer_max_ttl: self.issuer_max_ttl.or(lower.issuer_max_ttl),
            issuer_max_stale: self.issuer_max_stale.or(lower.issuer_max_stale),
        }
    }
}

/// Every problem found in the settings.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for p in &self.0 {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

/// Reads a `--config` YAML file into a layer.
pub fn read_file(path: &Path) -> Result<Layer, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors(vec![format!("config file {}: {e}", path.display())]))?;
    serde_yaml_ng::from_str(&text)
        .map_err(|e| ConfigErrors(vec![format!("config file {}: {e}", path.display())]))
}

impl Settings {
    /// Applies defaults to the merged layer and validates the result.
    pub fn resolve(layer: Layer) -> Result<Settings, ConfigErrors> {
        let mut problems = Vec::new();
        let mut scale_problems = Vec::new();
        let scale = scale_out(&layer, &mut scale_problems);
        let issuer_fetch = issuer_fetch(&layer, &mut scale_problems);
        let listen_text = layer.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
            problems.push(format!(
                "listen: '{listen_text}' is not an address like 127.0.0.1:8080"
            ));
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });
        let tls = match (layer.tls_cert, layer.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::TlsFiles { cert, key }),
            (None, None) => None,
            _ => {
                problems.push("tls-cert and tls-key must be given together".to_string());
                None
            }
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let public_url = layer
            .public_url
            .unwrap_or_else(|| format!("{scheme}://{listen}"));
        let public_url = match url::Url::parse(&public_url) {
            Ok(u)
                if (u.scheme() == "http" || u.scheme() == "https")
                    && u.host().is_some()
                    && u.query().is_none()
                    && u.fragment().is_none()
                    && u.username().is_empty()
                    && u.password().is_none() =>
            {
                public_url.trim_end_matches('/').to_string()
            }
            _ => {
                problems.push(format!(
                    "public-url: '{public_url}' must be an http(s) URL without query, fragment or credentials"
                ));
                String::new()
            }
        };
        let signing_algorithm = match layer.signing_algorithm.as_deref() {
            None => SigningAlgorithm::ES256,
            Some(name) => match SigningAlgorithm::parse(name) {
                Some(
                    alg @ (SigningAlgorithm::ES256
                    | SigningAlgorithm::ES384
                    | SigningAlgorithm::RS256
                    | SigningAlgorithm::EdDSA),
                ) => alg,
                _ => {
                    problems.push(format!(
                        "signing-algorithm: '{name}' is not one of ES256, ES384, RS256, EdDSA"
                    ));
                    SigningAlgorithm::ES256
                }
            },
        };
        let max_token_lifetime = match layer.max_token_lifetime.as_deref() {
            None => DEFAULT_MAX_TOKEN_LIFETIME,
            Some(text) => match humantime::parse_duration(text) {
                Ok(d) if d >= Duration::from_secs(60) && d <= MAX_LIFETIME_CEILING => d,
                _ => {
                    problems.push(format!(
                        "max-token-lifetime: '{text}' must be a duration between 1m and 24h"
                    ));
                    DEFAULT_MAX_TOKEN_LIFETIME
                }
            },
        };
        let data_dir = layer
            .data_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let keys = layer.keys.unwrap_or_else(|| data_dir.join("keys"));
        let audit_log = match layer.audit_log.as_deref() {
            None | Some("-") => AuditDestination::Stdout,
            Some("") => {
                problems.push("audit-log: give '-' for stdout or a file path".into());
                AuditDestination::Stdout
            }
            Some(path) => AuditDestination::File(PathBuf::from(path)),
        };
        let audit_failure = match layer.audit_failure.as_deref() {
            None => AuditFailure::default(),
            Some(text) => AuditFailure::parse(text).unwrap_or_else(|| {
                problems.push(format!(
                    "audit-failure: '{text}' is not one of deny, continue"
                ));
                AuditFailure::default()
            }),
        };
        let verify_issued = match layer.verify_issued.as_deref() {
            None => VerifyIssued::default(),
            Some(text) => VerifyIssued::parse(text).unwrap_or_else(|| {
                problems.push(format!(
                    "verify-issued: '{text}' is not one of all, sample, load"
                ));
                VerifyIssued::default()
            }),
        };
        let verbose_errors = layer.verbose_errors.unwrap_or(false);
        if verbose_errors && !listen.ip().is_loopback() {
            problems.push(format!(
                "verbose-errors: responses would disclose the policy, so it is for development on a loopback listener only; '{listen}' is not loopback (listen on 127.0.0.1 or ::1, or turn verbose-errors off)"
            ));
        }
        problems.append(&mut scale_problems);
        let trusted_proxies = match layer.trusted_proxies.as_deref() {
            None => Vec::new(),
            Some(text) => crate::cidr::parse_list(text).unwrap_or_else(|e| {
                problems.push(format!(
                    "trusted-proxies: {e}; give prefixes such as 10.0.0.0/8,fd00::/8"
                ));
                Vec::new()
            }),
        };
        let dpop_proof_window = match layer.dpop_proof_window.as_deref() {
            None => crate::dpop::DEFAULT_PROOF_WINDOW,
            Some(text) => match humantime::parse_duration(text) {
                Ok(d) if d >= Duration::from_secs(1) && d <= MAX_DPOP_PROOF_WINDOW => d,
                _ => {
                    problems.push(format!(
                        "dpop-proof-window: '{text}' must be a duration between 1s and 10m"
                    ));
                    crate::dpop::DEFAULT_PROOF_WINDOW
                }
            },
        };
        let admin_listen =
            admin_listen(&layer.admin_listen, &layer.admin_token_file, &mut problems);
        let otlp_endpoint = layer.otlp_endpoint.as_deref().and_then(|text| {
            crate::telemetry::traces::check_endpoint(text)
                // The value is not echoed: a URL with credentials in it is a secret.
                .map_err(|why| problems.push(format!("otlp-endpoint: {why}")))
                .ok()
        });
        if !problems.is_empty() {
            return Err(ConfigErrors(problems));
        }
        Ok(Settings {
            listen,
            public_url,
            policies: layer
                .policies
                .unwrap_or_else(|| PathBuf::from(DEFAULT_POLICIES_DIR)),
            keys,
            data_dir,
            signing_algorithm,
            max_token_lifetime,
            log_format: layer.log_format.unwrap_or_default(),
            workers: layer.workers.unwrap_or(0),
            tls,
            audit_log,
            audit_failure,
            verify_issued,
            redis: scale.redis,
            redis_key_prefix: scale.redis_key_prefix,
            rate_limit_identity: scale.rate_limit_identity,
            rate_limit_issuer: scale.rate_limit_issuer,
            shutdown_grace: scale.shutdown_grace,
            shutdown_delay: scale.shutdown_delay,
            keys_reload_interval: scale.keys_reload_interval,
            admin_listen,
            admin_token_file: layer.admin_token_file,
            verbose_errors,
            trusted_proxies,
            unused_after: scale.unused_after,
            max_workload_identities: scale.max_workload_identities,
            dpop_proof_window,
            otlp_endpoint,
            issuer_fetch,
        })
    }

    /// The token endpoint of `tenant`: `{public_url}/{tenant}/oauth2/v2.0/token` (discovery's
    /// `token_endpoint`, and the `htu` DPoP proofs must name).
    pub fn token_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.public_url)
    }

    /// The issuer URL of `tenant`: `{public_url}/{tenant}/v2.0`.
    pub fn tenant_issuer(&self, tenant: &str) -> String {
        format!("{}/{tenant}/v2.0", self.public_url)
    }
}

/// Default address of the admin listener: loopback only, so it needs no authentication.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";

/// `--admin-listen`: an address or `off`. Off loopback the admin API shows who can become
/// what, so it must not be reachable without `--admin-token-file` (issue #14).
fn admin_listen(
    value: &Option<String>,
    token_file: &Option<PathBuf>,
    problems: &mut Vec<String>,
) -> Option<SocketAddr> {
    let text = value.as_deref().unwrap_or(DEFAULT_ADMIN_LISTEN);
    if text.eq_ignore_ascii_case("off") {
        return None;
    }
    let Ok(addr) = text.parse::<SocketAddr>() else {
        problems.push(format!(
            "admin-listen: '{text}' is not an address like 127.0.0.1:9090, or 'off'"
        ));
        return None;
    };
    if !addr.ip().is_loopback() && token_file.is_none() {
        problems.push(format!(
            "admin-listen: '{text}' is not a loopback address, so the admin API needs authentication: give --admin-token-file, or bind 127.0.0.1"
        ));
    }
    Some(addr)
}

/// The `--issuer-*` settings (issue #17): each in its range ([`Field::range`]), then the
/// relations between them (connect timeout ≤ timeout, min TTL ≤ default TTL ≤ max TTL).
fn issuer_fetch(layer: &Layer, problems: &mut Vec<String>) -> FetchSettings {
    let mut settings = FetchSettings::default();
    let mut out_of_range = false;
    for (field, value) in [
        (Field::ConnectTimeout, &layer.issuer_connect_timeout),
        (Field::Timeout, &layer.issuer_timeout),
        (Field::MaxDocumentSize, &layer.issuer_max_document_size),
        (Field::RefreshCooldown, &layer.issuer_refresh_cooldown),
        (Field::DefaultTtl, &layer.issuer_default_ttl),
        (Field::MinTtl, &layer.issuer_min_ttl),
        (Field::MaxTtl, &layer.issuer_max_ttl),
        (Field::MaxStale, &layer.issuer_max_stale),
    ] {
        let Some(text) = value.as_deref() else {
            continue;
        };
        let shown = crate::text::shown(text, 40);
        let name = field.setting();
        let result = if field == Field::MaxDocumentSize {
            crate::fetch_settings::parse_bytes(text)
                .map_err(|e| format!("{e}; allowed range {}", field.range()))
                .and_then(|n| field.check_bytes(n))
                .map(|n| settings.max_body_bytes = n)
        } else {
            match humantime::parse_duration(text.trim()) {
                Err(_) => Err(format!(
                    "'{shown}' is not a duration (write e.g. 500ms, 5s, 1h); allowed range {}",
                    field.range()
                )),
                Ok(d) => field.check_duration(d).map(|d| match field {
                    Field::ConnectTimeout => settings.connect_timeout = d,
                    Field::Timeout => settings.timeout = d,
                    Field::RefreshCooldown => settings.min_refresh_interval = d,
                    Field::DefaultTtl => settings.default_ttl = d,
                    Field::MinTtl => settings.min_ttl = d,
                    Field::MaxTtl => settings.max_ttl = d,
                    Field::MaxStale => settings.max_stale = d,
                    Field::MaxDocumentSize => {}
                }),
            }
        };
        if let Err(message) = result {
            problems.push(format!("{name}: {message}"));
            out_of_range = true;
        }
    }
    if layer.issuer_connect_timeout.is_none() {
        // Unset, the connect timeout follows a shorter total timeout down (a request's total
        // bounds its connect phase anyway); only an explicit contradiction is refused.
        settings.connect_timeout = settings.connect_timeout.min(settings.timeout);
    }
    if !out_of_range {
        problems.extend(settings.relation_problems(|f| f.setting().to_string()));
    }
    settings
}

/// The scale-out settings (issue #7), validated apart so `resolve` stays readable.
struct ScaleOut {
    redis: Option<crate::state::redis::RedisOptions>,
    redis_key_prefix: String,
    rate_limit_identity: Option<crate::state::RateLimit>,
    rate_limit_issuer: Option<crate::state::RateLimit>,
    shutdown_grace: Duration,
    shutdown_delay: Duration,
    keys_reload_interval: Duration,
    unused_after: Duration,
    max_workload_identities: usize,
}

fn scale_out(layer: &Layer, problems: &mut Vec<String>) -> ScaleOut {
    let redis = redis::options(layer, problems);
    let redis_key_prefix = layer
        .redis_key_prefix
        .clone()
        .unwrap_or_else(|| "trustbridge:".into());
    if redis_key_prefix.len() > 128 || redis_key_prefix.chars().any(char::is_whitespace) {
        problems.push("redis-key-prefix: at most 128 characters, no whitespace".into());
    }
    let mut rate = |name: &str, value: &Option<String>| {
        value.as_deref().and_then(|text| {
            crate::state::RateLimit::parse(text)
                .map_err(|e| problems.push(format!("{name}: {e}")))
                .ok()
        })
    };
    let rate_limit_identity = rate("rate-limit-identity", &layer.rate_limit_identity);
    let rate_limit_issuer = rate("rate-limit-issuer", &layer.rate_limit_issuer);
    let mut duration = |name: &str,
                        value: &Option<String>,
                        default: u64,
                        min: Duration,
                        max: Duration| {
        match value.as_deref() {
            None => Duration::from_secs(default),
            Some(text) => match humantime::parse_duration(text) {
                Ok(d) if d >= min && d <= max => d,
                _ => {
                    problems.push(format!(
                        "{name}: '{text}' must be a duration between {} and {}",
                        humantime::format_duration(min),
                        humantime::format_duration(max)
                    ));
                    Duration::from_secs(default)
                }
            },
        }
    };
    let shutdown_grace = duration(
        "shutdown-grace",
        &layer.shutdown_grace,
        10,
        Duration::ZERO,
        Duration::from_secs(600),
    );
    let shutdown_delay = duration(
        "shutdown-delay",
        &layer.shutdown_delay,
        0,
        Duration::ZERO,
        Duration::from_secs(120),
    );
    let keys_reload_interval = duration(
        "keys-reload-interval",
        &layer.keys_reload_interval,
        10,
        Duration::from_millis(10),
        Duration::from_secs(3600),
    );
    let unused_after = duration(
        "unused-after",
        &layer.unused_after,
        DEFAULT_UNUSED_AFTER.as_secs(),
        Duration::from_secs(60),
        Duration::from_secs(10 * 365 * 86_400),
    );
    let max_workload_identities = layer
        .max_workload_identities
        .unwrap_or(DEFAULT_MAX_WORKLOAD_IDENTITIES);
    if max_workload_identities == 0 || max_workload_identities > 10_000_000 {
        problems.push("max-workload-identities: between 1 and 10000000".into());
    }
    ScaleOut {
        redis,
        unused_after,
        max_workload_identities,
        redis_key_prefix,
        rate_limit_identity,
        rate_limit_issuer,
        shutdown_grace,
        shutdown_delay,
        keys_reload_interval,
    }
}

#[cfg(test)]
mod tests;
