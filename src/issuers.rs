//! Trust in external issuers: fetching and caching their keys, and validating subject tokens.
//!
//! Nothing is ever fetched for an `iss` that no policy declares, nor from a URL taken out of a
//! token (`jku`, `x5u`, `jwk` headers are never followed). [`IssuerRegistry::validate`] is the
//! only entry point the HTTP layer uses; it yields a [`ValidatedToken`] or a
//! [`ValidationError`] in domain words.

pub mod ca_file;
pub mod cache;
pub mod discovery;
pub mod fetch;
pub mod hygiene;
pub mod jwks;
pub mod metrics;
pub mod source;
pub mod validate;

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::clock::Clock;
use crate::jose::SigningAlgorithm;
use crate::policy::PolicySet;
use crate::policy::model::Issuer;

pub use crate::fetch_settings::{FetchOverrides, FetchSettings};
use ca_file::{CaFile, CaKeySource};
use cache::{CacheError, CachingKeySource};
pub use fetch::Fetcher;
pub use metrics::IssuerMetrics;
use source::KeySource;

/// A subject token whose structure, signature, issuer and time claims were verified.
/// Audience, subject and conditions are policy matters, checked by `exchange::decide`.
#[derive(Debug, Clone)]
pub struct ValidatedToken {
    /// Name of the declared Issuer that signed it.
    pub issuer_name: String,
    /// `iss`, exactly as in the token.
    pub iss: String,
    /// `sub`, when present.
    pub sub: Option<String>,
    /// `aud`, normalised to a list (a string becomes one element).
    pub aud: Vec<String>,
    /// `exp` (seconds since the epoch); always present.
    pub exp: u64,
    /// `iat`, when present.
    pub iat: Option<u64>,
    /// `nbf`, when present.
    pub nbf: Option<u64>,
    /// `jti`, when present.
    pub jti: Option<String>,
    /// Header `alg`.
    pub alg: SigningAlgorithm,
    /// Header `kid`, when present.
    pub kid: Option<String>,
    /// Every claim, for CEL conditions and mappings.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// Why a subject token was refused. Messages name the check, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// Larger than the configured cap.
    #[error("token is larger than {max} bytes")]
    TooLarge {
        /// The cap.
        max: usize,
    },
    /// Not a compact JWS (wrong number of parts, bad base64url, bad JSON, duplicate keys ...).
    #[error("malformed token: {0}")]
    Malformed(String),
    /// A JWE (five parts) was presented.
    #[error("encrypted tokens (JWE) are not accepted")]
    Encrypted,
    /// `cty: JWT`: a nested token.
    #[error("nested tokens are not accepted")]
    Nested,
    /// A `crit` header was present.
    #[error("the crit header is not supported")]
    CriticalHeader,
    /// `iss` missing, or not declared by any Issuer policy.
    #[error("issuer is not trusted")]
    UntrustedIssuer,
    /// `alg` is not in the issuer's allowlist (or not supported at all).
    #[error("algorithm {0} is not allowed for this issuer")]
    AlgorithmNotAllowed(String),
    /// No key with this `kid` (or, without `kid`, no single key for the algorithm).
    #[error("no issuer key matches the token's kid")]
    UnknownKey,
    /// The selected key's type does not fit the algorithm.
    #[error("the issuer key does not fit algorithm {0}")]
    KeyTypeMismatch(String),
    /// The selected key is too weak (RSA under 2048 bits).
    #[error("the issuer key is too weak: {0}")]
    WeakKey(String),
    /// Signature verification failed.
    #[error("signature verification failed")]
    BadSignature,
    /// `exp` claim absent or not a number.
    #[error("the exp claim is missing or not a number")]
    MissingExpiry,
    /// `exp` is in the past beyond leeway.
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future beyond leeway.
    #[error("token is not yet valid (nbf)")]
    NotYetValid,
    /// `iat` is in the future beyond leeway.
    #[error("token was issued in the future (iat)")]
    IssuedInFuture,
    /// A time claim has the wrong type.
    #[error("claim {0} is not a number")]
    BadTimeClaim(&'static str),
    /// `exp - iat` (or `exp - now` without `iat`) is longer than the issuer allows.
    #[error(
        "token lifetime of {lifetime_secs}s is longer than this issuer's maximum of {max_secs}s"
    )]
    LifetimeTooLong {
        /// The token's lifetime in seconds.
        lifetime_secs: u64,
        /// The issuer's `maxTokenLifetime` in seconds.
        max_secs: u64,
    },
    /// `now - iat` is more than the issuer's maximum age plus leeway.
    #[error("token was issued {age_secs}s ago, more than this issuer's maximum age of {max_secs}s")]
    TooOld {
        /// Seconds since `iat`.
        age_secs: u64,
        /// The issuer's `maxTokenAge` in seconds.
        max_secs: u64,
    },
    /// `iat` is absent although the issuer's platform always sets it.
    #[error("the iat claim is missing (this issuer's tokens always carry it)")]
    MissingIssuedAt,
    /// The header `typ` is not the one the issuer's platform sets.
    #[error("token type {found} is not {expected}, the type this issuer's tokens carry")]
    WrongType {
        /// The required `typ`.
        expected: String,
        /// What the token carried (sanitised and truncated), or `none`.
        found: String,
    },
    /// The issuer's keys could not be obtained (and no usable stale copy exists).
    #[error("issuer keys are unavailable: {0}")]
    KeysUnavailable(String),
}

/// Maximum accepted subject-token size in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Keys and validation for every declared issuer.
///
/// Holds, per declared issuer URL, the compiled [`Issuer`] and its [`CachingKeySource`]. Cheap
/// to share behind an `Arc`; [`IssuerRegistry::rebuild`] makes the registry for a reloaded
/// policy set.
pub struct IssuerRegistry {
    clock: Arc<dyn Clock>,
    settings: FetchSettings,
    fetcher: Fetcher,
    /// The demo issuer's JWKS file, read by issuers declared with `demo: true`.
    demo_jwks: PathBuf,
    by_iss: HashMap<String, IssuerEntry>,
    metrics: IssuerMetrics,
    /// One [`CaFile`] per distinct `caFile` the issuers name (each its own client and
    /// connection pool, re-read at every key load), handed on by [`IssuerRegistry::rebuild`]
    /// for the files still named.
    ca_files: HashMap<PathBuf, Arc<CaFile>>,
}

#[derive(Clone)]
struct IssuerEntry {
    issuer: Arc<Issuer>,
    keys: CachingKeySource,
}

impl std::fmt::Debug for IssuerRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerRegistry")
            .field("issuers", &self.issuer_names())
            .finish_non_exhaustive()
    }
}

/// Whether two issuer declarations would load the same keys (so a reload may keep the cache).
fn same_key_config(a: &Issuer, b: &Issuer) -> bool {
    a.issuer == b.issuer
        && a.keys == b.keys
        && a.allow_insecure_http == b.allow_insecure_http
        && a.ca_file == b.ca_file
        // Limits and freshness belong to the cache and its source.
        && a.fetch == b.fetch
        // The name labels the cache's metrics.
        && a.name == b.name
}

impl IssuerRegistry {
    /// Builds a registry for the issuers of `policies`. Nothing is fetched until a token from an
    /// issuer arrives. `demo_jwks` is the demo issuer's JWKS file (read only by issuers declared
    /// with `demo: true`).
    ///
    /// Panics only if the HTTP client cannot be built (TLS backend initialisation), which is a
    /// startup failure.
    pub fn new(
        policies: &PolicySet,
        settings: FetchSettings,
        clock: Arc<dyn Clock>,
        demo_jwks: PathBuf,
    ) -> Self {
        #[allow(clippy::expect_used)]
        let fetcher = Fetcher::new(&settings)
            .expect("the HTTP client is built once at startup; its TLS backend must initialise");
        Self::with_fetcher(policies, settings, clock, demo_jwks, fetcher)
    }

    /// Like [`IssuerRegistry::new`], with a given fetcher (shared, or built with
    /// [`Fetcher::new`] to handle its error instead of panicking).
    pub fn with_fetcher(
        policies: &PolicySet,
        settings: FetchSettings,
        clock: Arc<dyn Clock>,
        demo_jwks: PathBuf,
        fetcher: Fetcher,
    ) -> Self {
        let mut registry = Self {
            clock,
            settings,
            fetcher,
            demo_jwks,
            by_iss: HashMap::new(),
            metrics: IssuerMetrics::unregistered(),
            ca_files: HashMap::new(),
        };
        registry.ca_files = registry.ca_files_for(policies.issuers());
        registry.by_iss = registry.entries(policies.issuers(), None);
        registry
    }

    /// The same registry recording into `metrics` (from [`IssuerMetrics::register`]). Call it
    /// right after construction: the key caches are made anew (nothing was fetched yet).
    pub fn with_metrics(mut self, metrics: IssuerMetrics) -> Self {
        self.metrics = metrics;
        let issuers: Vec<Arc<Issuer>> = self.by_iss.values().map(|e| e.issuer.clone()).collect();
        self.by_iss = self.entries(issuers.iter(), None);
        self
    }

    /// Loads every issuer's keys in the background and starts their refresh tickers, so the
    /// first exchanges do not wait for discovery. Failures are logged, not fatal. Safe to call
    /// again (each cache starts once); does nothing outside a Tokio runtime. Returns how many
    /// caches started.
    pub fn prewarm(&self) -> usize {
        self.by_iss
            .values()
            .filter(|entry| entry.keys.prewarm())
            .count()
    }

    /// The [`CaFile`] of every distinct `caFile` of `issuers`: this registry's own where it
    /// has one (so a reload keeps the client and the content last seen), new ones otherwise.
    fn ca_files_for<'i>(
        &self,
        issuers: impl Iterator<Item = &'i Arc<Issuer>>,
    ) -> HashMap<PathBuf, Arc<CaFile>> {
        let mut files = HashMap::new();
        for path in issuers.filter_map(|issuer| issuer.ca_file.as_ref()) {
            files.entry(path.clone()).or_insert_with(|| {
                self.ca_files
                    .get(path)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(CaFile::new(path.clone(), &self.fetcher)))
            });
        }
        files
    }

    /// Where `issuer`'s keys come from: through its [`CaFile`] when it names one, with the
    /// shared fetcher otherwise. (An issuer whose `caFile` is somehow not tracked falls back
    /// to the shared fetcher, which trusts fewer roots: it fails closed.)
    fn key_source(&self, issuer: &Issuer, settings: &FetchSettings) -> Arc<dyn KeySource> {
        let with_ca = issuer
            .ca_file
            .as_ref()
            .and_then(|path| self.ca_files.get(path))
            .and_then(|ca| CaKeySource::new(ca.clone(), issuer))
            .map(|source| source.with_limits(settings.clone()));
        match with_ca {
            Some(source) => Arc::new(source),
            None => {
                source::source_for(issuer, &self.fetcher.with_limits(settings), &self.demo_jwks)
            }
        }
    }

    /// The distinct CA files tracked (one client each at most), for tests.
    pub fn ca_files(&self) -> Vec<Arc<CaFile>> {
        self.ca_files.values().cloned().collect()
    }

    fn entries<'i>(
        &self,
        issuers: impl Iterator<Item = &'i Arc<Issuer>>,
        previous: Option<&HashMap<String, IssuerEntry>>,
    ) -> HashMap<String, IssuerEntry> {
        issuers
            .map(|issuer| {
                let reused = previous
                    .and_then(|old| old.get(&issuer.issuer))
                    .filter(|old| same_key_config(&old.issuer, issuer))
                    .map(|old| old.keys.clone());
                let keys = reused.unwrap_or_else(|| {
                    let settings = self.effective(issuer);
                    CachingKeySource::observed(
                        self.key_source(issuer, &settings),
                        settings,
                        self.clock.clone(),
                        issuer.name.clone(),
                        self.metrics.clone(),
                    )
                });
                (
                    issuer.issuer.clone(),
                    IssuerEntry {
                        issuer: issuer.clone(),
                        keys,
                    },
                )
            })
            .collect()
    }

    /// The fetch settings `issuer` runs with: the global ones with its `fetch:` block applied.
    /// Callers check [`check_fetch_settings`] before building a registry; should the merge
    /// still be inconsistent, the global settings apply and the problem is logged.
    fn effective(&self, issuer: &Issuer) -> FetchSettings {
        self.settings.merged(&issuer.fetch).unwrap_or_else(|problems| {
            tracing::error!(issuer.name = %issuer.name, problems = ?problems, "issuer fetch block inconsistent with the global settings; using the global settings");
            self.settings.clone()
        })
    }

    /// The effective fetch settings of the issuer named `name` (global merged with its
    /// `fetch:` block); `None` if undeclared.
    pub fn fetch_settings(&self, name: &str) -> Option<FetchSettings> {
        self.by_iss
            .values()
            .find(|e| e.issuer.name == name)
            .map(|e| self.effective(&e.issuer))
    }

    /// Validates a compact JWS against the issuer it names: structure, size, algorithm,
    /// key, signature, `iss`, `exp`/`nbf`/`iat` with the issuer's leeway.
    ///
    /// Nothing is fetched for an `iss` no policy declares ([`ValidationError::UntrustedIssuer`])
    /// nor for an algorithm the issuer does not allow. An unknown `kid` triggers one
    /// (rate-limited, single-flight) key refresh and one more verification.
    pub async fn validate(&self, token: &str) -> Result<ValidatedToken, ValidationError> {
        let mut peeked = validate::peek(token)?;
        let entry = self
            .by_iss
            .get(&peeked.iss)
            .ok_or(ValidationError::UntrustedIssuer)?;
        validate::allowed_algorithm(&peeked, &entry.issuer)?;
        let cached = entry.keys.keys().await.map_err(unavailable)?;
        match validate::verify(&mut peeked, &entry.issuer, &cached.keys, self.clock.now()) {
            Err(ValidationError::UnknownKey) => self.metrics.kid_miss(&entry.issuer.name),
            other => return other,
        }
        // Boxed: an unknown kid is rare, and its refresh future is larger than the rest of
        // the validation's.
        let refreshed = match Box::pin(entry.keys.refresh_for_unknown_kid(cached.generation)).await
        {
            Ok(refreshed) => refreshed,
            Err(CacheError::RefreshRateLimited) => return Err(ValidationError::UnknownKey),
            Err(error) => return Err(unavailable(error)),
        };
        validate::verify(
            &mut peeked,
            &entry.issuer,
            &refreshed.keys,
            self.clock.now(),
        )
    }

    /// A registry for a newly loaded policy set that keeps the key caches of issuers whose
    /// configuration did not change (so a reload does not refetch every JWKS). An issuer is
    /// unchanged when its name, URL, key source, `caFile`, `allowInsecureHttp` and `fetch:`
    /// block are; other fields (algorithms, leeway, hygiene) are taken from the new set. A
    /// `caFile` still named keeps its [`CaFile`] (client and last content seen); the file's
    /// content is checked at each key load, not here, so a rotated CA file needs no reload. Call
    /// [`IssuerRegistry::prewarm`] on the result to load new issuers' keys early.
    pub fn rebuild(&self, policies: &PolicySet) -> Self {
        let mut rebuilt = Self {
            clock: self.clock.clone(),
            settings: self.settings.clone(),
            fetcher: self.fetcher.clone(),
            demo_jwks: self.demo_jwks.clone(),
            by_iss: HashMap::new(),
            metrics: self.metrics.clone(),
            ca_files: self.ca_files_for(policies.issuers()),
        };
        rebuilt.by_iss = rebuilt.entries(policies.issuers(), Some(&self.by_iss));
        rebuilt
    }

    /// Names of the declared issuers, sorted (for readiness and metrics labels).
    pub fn issuer_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .by_iss
            .values()
            .map(|e| e.issuer.name.clone())
            .collect();
        names.sort();
        names
    }

    /// How many times the keys of the issuer named `name` were loaded from its source (one
    /// load is a discovery fetch plus a JWKS fetch, or one file read); `None` if undeclared.
    pub fn key_loads(&self, name: &str) -> Option<u64> {
        self.by_iss
            .values()
            .find(|e| e.issuer.name == name)
            .map(|e| e.keys.load_count())
    }

    /// HTTP fetches started by the shared fetcher, across all issuers and reloads.
    pub fn http_fetches(&self) -> u64 {
        self.fetcher.fetch_count()
    }
}

/// [`crate::policy::check_fetch_settings`] worded for a start-up or reload refusal: one line
/// per problem, `policies/x.yaml#1 fetch: fetch.minTtl (2h) must not be longer than the global
/// issuer-default-ttl (1h)`. Run before building or rebuilding a registry.
///
/// Errors: the problems, one per line.
pub fn check_fetch_settings(policies: &PolicySet, settings: &FetchSettings) -> Result<(), String> {
    crate::policy::check_fetch_settings(policies, settings).map_err(|errors| {
        errors
            .0
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })
}

fn unavailable(error: CacheError) -> ValidationError {
    ValidationError::KeysUnavailable(error.to_string())
}
