//! trustbridge's own tokens: signing keys kept in a key directory, RFC 9068 access-token
//! claims, signing (and verifying what was signed before it leaves), and the published JWKS.
//!
//! # The post-signing self-check (`--verify-issued`)
//!
//! A signature computed by a faulty key or a faulty computation (a bit flip in RSA-CRT, a bad
//! ECDSA nonce) can leak the private key to whoever receives it (docs/threat-model.md). Such
//! faults are persistent (a corrupted key in memory, bad hardware, a miscompiled or mismatched
//! key) far more often than one-off, so they are caught by checking every key when it is
//! loaded and when it starts signing, and then a sample of what it signs:
//! - every key signs and verifies a probe message when it is parsed (load and reload);
//! - the first token a key signs runs that probe again (the key became current);
//! - [`VerifyIssued::Sample`] (the default) verifies the first [`VERIFY_FIRST`] tokens each key
//!   signs, then one in [`VERIFY_EVERY`]; `all` verifies every token; `load` only the probes.
//!
//! A failed check takes the key out of service for the life of the loaded set: it signs no
//! more (exchanges answer 503 `temporarily_unavailable` until another key is usable: a
//! rotation or a directory reload, whose load probe decides again), an error is logged and
//! `trustbridge_signing_key_self_check_failures_total` counts. The token that failed is
//! never returned.

pub mod claims;
pub mod keys;
pub mod rotation;
mod signer;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::clock::Clock;
use crate::jose::{SigningAlgorithm, VerifyIssued};

pub use claims::AccessTokenClaims;
pub use keys::{KeyError, PrivateKey};
pub use rotation::KeyState;
pub use store::{KeySet, StoredKey};

/// Why the key directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// Reading or writing the directory failed.
    #[error("key directory {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A key file is not a usable private key.
    #[error("key file {path}: {reason}")]
    BadKey {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The key directory itself is unsafe: another local user could add or replace keys.
    #[error("key directory {path}: {reason}")]
    UnsafeDirectory {
        /// The directory.
        path: String,
        /// Why, with the fix.
        reason: String,
    },
    /// The directory holds no key that may sign now.
    #[error("key directory {0} holds no active signing key")]
    NoActiveKey(String),
}

/// Why a token could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The crypto backend refused.
    #[error("signing failed: {0}")]
    Crypto(String),
    /// The signed token did not verify against the published keys.
    #[error("signed token failed self-verification: {0}")]
    SelfCheck(String),
    /// The key that would sign failed a self-check and is out of service.
    #[error("signing key {0} failed a self-check and is out of service")]
    KeyOutOfService(String),
}

impl crate::refusal::Refuse for SignError {
    /// A key out of service is an outage (503, retry); any other signing failure is a bug.
    fn refusal(&self, _: crate::refusal::Context) -> crate::refusal::Refusal {
        use crate::refusal::Refusal;
        match self {
            Self::KeyOutOfService(_) => Refusal::unavailable(
                "signing_key_unavailable",
                "the service cannot issue tokens right now; retry later",
            )
            .with_detail(self.to_string())
            .as_fault(),
            Self::Crypto(_) | Self::SelfCheck(_) => Refusal::server_error(),
        }
    }
}

/// What the self-check knows of one loaded key.
#[derive(Debug, Default)]
struct KeyHealth {
    signed: AtomicU64,
    out_of_service: AtomicBool,
}

/// The signing keys of a key directory, with the clock that decides which of them signs and
/// the retention that decides how long a superseded key stays published (see [`rotation`]).
///
/// The set is swapped atomically by [`SigningKeys::refresh`] when the directory's content
/// changes, so replicas pick up a rotation written to a shared (mounted) directory without a
/// restart; a directory that fails to load never replaces the set in use.
#[derive(Debug)]
pub struct SigningKeys {
    keys: ArcSwap<Loaded>,
    dir: Option<PathBuf>,
    retention: Duration,
    clock: Arc<dyn Clock>,
    verify: VerifyIssued,
    self_check_failures: prometheus::IntCounter,
}

/// One loaded version of the directory, with the self-check state of each key (same order).
#[derive(Debug)]
struct Loaded {
    keys: Vec<StoredKey>,
    health: Vec<KeyHealth>,
    fingerprint: Option<[u8; 32]>,
}

impl Loaded {
    /// `keys`, each probed once more: one that fails starts out of service (a key read from
    /// a file was probed when parsed; this also covers keys built in memory).
    fn new(keys: Vec<StoredKey>, fingerprint: Option<[u8; 32]>) -> Self {
        let health = keys
            .iter()
            .map(|k| {
                let health = KeyHealth::default();
                if let Err(e) = k.key.probe() {
                    tracing::error!(kid = k.key.kid(), error = %e, "signing key failed its load probe; it will not sign");
                    health.out_of_service.store(true, Ordering::Release);
                }
                health
            })
            .collect();
        Self {
            keys,
            health,
            fingerprint,
        }
    }
}

fn self_check_counter() -> prometheus::IntCounter {
    prometheus::IntCounter::new(
        crate::telemetry::names::SIGNING_KEY_SELF_CHECK_FAILURES_TOTAL,
        "Signing keys taken out of service by a failed self-check (probe or issued token).",
    )
    .expect("a constant, valid metric name")
}

/// What [`SigningKeys::refresh`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// The directory is as last loaded.
    Unchanged,
    /// The directory changed and its keys replaced the set in use.
    Reloaded,
}

impl SigningKeys {
    /// Loads every key in `dir`; when it holds none, creates the directory (mode 0700) and a
    /// fresh key of `alg` (file mode 0600). A restart with the same directory reuses its keys.
    /// Superseded keys stay published for an hour (see [`Self::with_retention`]).
    ///
    /// # Errors
    /// See [`store::load_or_create`]: I/O failures, unusable key files (named, never
    /// printed), or no key active at the clock's `now`.
    pub fn load_or_create(
        dir: &Path,
        alg: SigningAlgorithm,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, KeyStoreError> {
        let keys = store::load_or_create(dir, alg, clock.now())?;
        let fingerprint = store::fingerprint(dir).ok();
        Ok(Self {
            keys: ArcSwap::from_pointee(Loaded::new(keys, fingerprint)),
            dir: Some(dir.to_path_buf()),
            retention: DEFAULT_RETENTION,
            clock,
            verify: VerifyIssued::default(),
            self_check_failures: self_check_counter(),
        })
    }

    /// Keys already in memory (tests, tools); [`Self::refresh`] never changes them.
    ///
    /// # Errors
    /// [`KeyStoreError::NoActiveKey`] when none of `keys` is active at the clock's `now`.
    pub fn from_keys(keys: Vec<StoredKey>, clock: Arc<dyn Clock>) -> Result<Self, KeyStoreError> {
        if store::current_key(&keys, clock.now()).is_none() {
            return Err(KeyStoreError::NoActiveKey("<in memory>".into()));
        }
        Ok(Self {
            keys: ArcSwap::from_pointee(Loaded::new(keys, None)),
            dir: None,
            retention: DEFAULT_RETENTION,
            clock,
            verify: VerifyIssued::default(),
            self_check_failures: self_check_counter(),
        })
    }

    /// Sets how long a superseded key stays published: the longest lifetime an issued token
    /// may have (the server's `--max-token-lifetime`). Tokens are capped to fit it.
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Sets which issued tokens are verified again after signing (default: a sample).
    pub fn with_verify_issued(mut self, verify: VerifyIssued) -> Self {
        self.verify = verify;
        self
    }

    /// Registers `trustbridge_signing_key_self_check_failures_total` in `registry`.
    ///
    /// # Errors
    /// When a metric of the same name is already registered there.
    pub fn register_metrics(&self, registry: &prometheus::Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.self_check_failures.clone()))
    }

    /// The `kid`s of loaded keys a failed self-check took out of service.
    pub fn out_of_service(&self) -> Vec<String> {
        let loaded = self.keys.load();
        loaded
            .keys
            .iter()
            .zip(&loaded.health)
            .filter(|(_, h)| h.out_of_service.load(Ordering::Acquire))
            .map(|(k, _)| k.key.kid().to_owned())
            .collect()
    }

    /// Re-reads the key directory when its content changed since the last load, and swaps in
    /// its keys. A directory that fails to load (a half-written file, no active key, a bad
    /// sidecar) leaves the set in use untouched and is retried at the next call, since the
    /// fingerprint is only recorded after a successful load.
    ///
    /// # Errors
    /// The load error; the previous keys stay in force.
    pub fn refresh(&self) -> Result<Refresh, KeyStoreError> {
        let Some(dir) = &self.dir else {
            return Ok(Refresh::Unchanged);
        };
        let fingerprint = store::fingerprint(dir)?;
        if self.keys.load().fingerprint == Some(fingerprint) {
            return Ok(Refresh::Unchanged);
        }
        let keys = store::load(dir, self.clock.now())?;
        tracing::info!(
            keys.dir = %dir.display(),
            keys.count = keys.len(),
            "signing key directory changed; keys reloaded"
        );
        self.keys
            .store(Arc::new(Loaded::new(keys, Some(fingerprint))));
        Ok(Refresh::Reloaded)
    }

    /// Calls [`Self::refresh`] every `every` until `keys` is dropped; failures are logged and
    /// counted in `metrics`, and the previous keys stay in force.
    pub async fn watch(keys: std::sync::Weak<SigningKeys>, every: Duration, metrics: KeyMetrics) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let Some(keys) = keys.upgrade() else { return };
            match keys.refresh() {
                Ok(Refresh::Unchanged) => {}
                Ok(Refresh::Reloaded) => {
                    metrics.reloads.with_label_values(&["reloaded"]).inc();
                }
                Err(e) => {
                    metrics.reloads.with_label_values(&["failed"]).inc();
                    tracing::warn!(error = %e, "signing key directory did not reload; keeping the keys in use");
                }
            }
            metrics.observe(&keys);
        }
    }

    /// Number of keys in each [`KeyState`] at the clock's `now` (for metrics and `keys list`).
    pub fn states(&self) -> Vec<(String, KeyState)> {
        let loaded = self.keys.load();
        let now = self.clock.now();
        loaded
            .keys
            .iter()
            .map(|k| {
                (
                    k.key.kid().to_owned(),
                    rotation::state(&loaded.keys, k, now, self.retention),
                )
            })
            .collect()
    }

    /// The published JWK Set: every key a verifier may meet (current, next, retiring; at most
    /// [`store::MAX_PUBLISHED_KEYS`]), each with `kid`, `alg` (exactly its signing algorithm)
    /// and `use: sig`, never private members.
    pub fn jwks(&self) -> serde_json::Value {
        let loaded = self.keys.load();
        let keys: Vec<serde_json::Value> =
            rotation::published(&loaded.keys, self.clock.now(), self.retention)
                .into_iter()
                .map(|k| k.key.public_jwk().clone())
                .collect();
        serde_json::json!({ "keys": keys })
    }

    /// The `kid`s of the published keys, in [`Self::jwks`] order (current first).
    pub fn kids(&self) -> Vec<String> {
        let loaded = self.keys.load();
        rotation::published(&loaded.keys, self.clock.now(), self.retention)
            .into_iter()
            .map(|k| k.key.kid().to_owned())
            .collect()
    }

    /// The algorithm of the active key (for discovery's `id_token_signing_alg_values_supported`).
    /// Should no key be active (clock set back), the one activating soonest.
    pub fn algorithm(&self) -> SigningAlgorithm {
        let now = self.clock.now();
        let loaded = self.keys.load();
        store::current_key(&loaded.keys, now)
            .or_else(|| loaded.keys.iter().min_by_key(|k| k.activates_at))
            .map(|k| k.key.alg())
            // Unreachable: construction guarantees at least one key.
            .unwrap_or(SigningAlgorithm::ES256)
    }

    /// Runs `f` with the key that signs now, if any (benchmarks use it to time signing alone).
    pub fn with_current_key<R>(&self, f: impl FnOnce(&keys::PrivateKey) -> R) -> Option<R> {
        let loaded = self.keys.load();
        store::current_key(&loaded.keys, self.clock.now()).map(|k| f(&k.key))
    }

    /// Signs `claims` (header `typ: at+jwt`, `alg` and `kid` of the active key), then verifies
    /// the result against the published keys before returning it. `exp` is capped at the
    /// signing key's end of life (see [`Self::sign_capped`]) on a copy.
    ///
    /// # Errors
    /// As [`Self::sign_capped`].
    pub fn sign(&self, claims: &AccessTokenClaims) -> Result<String, SignError> {
        let mut claims = claims.clone();
        self.sign_capped(&mut claims).map(SignedToken::into_string)
    }

    /// Signs like [`Self::sign`], lowering `claims.exp` first to the signing key's end of life
    /// when a successor is scheduled (so the caller can report the true `expires_in`). The
    /// result is verified against the published keys as `--verify-issued` says (see the
    /// module docs); a failed check takes the key out of service.
    ///
    /// # Errors
    /// [`SignError::Crypto`] when no key is active (clock set back) or the backend refuses;
    /// [`SignError::SelfCheck`] when the signed token does not verify against the JWKS (or
    /// the key fails its first-use probe); [`SignError::KeyOutOfService`] when the active key
    /// failed a check earlier.
    pub fn sign_capped(&self, claims: &mut AccessTokenClaims) -> Result<SignedToken, SignError> {
        let now = self.clock.now();
        let loaded = self.keys.load();
        let (current, end_of_life) = rotation::signer(&loaded.keys, now, self.retention)
            .ok_or_else(|| SignError::Crypto("no signing key is active at this time".into()))?;
        let health = loaded
            .keys
            .iter()
            .position(|k| std::ptr::eq(k, current))
            .and_then(|i| loaded.health.get(i))
            .ok_or_else(|| SignError::Crypto("signing key state is missing".into()))?;
        if health.out_of_service.load(Ordering::Acquire) {
            return Err(SignError::KeyOutOfService(current.key.kid().to_owned()));
        }
        claims.exp = rotation::cap_expiry(claims.exp, end_of_life);
        let n = health.signed.fetch_add(1, Ordering::Relaxed);
        let checked = if n == 0 {
            // The key just became current here: probe it before its first token.
            current
                .key
                .probe()
                .map_err(|e| SignError::SelfCheck(e.to_string()))
                .and_then(|()| self.sign_checked(&loaded, current, claims, now))
        } else if self.verify.verifies(n) {
            self.sign_checked(&loaded, current, claims, now)
        } else {
            return current
                .key
                .sign_jwt(ACCESS_TOKEN_TYP, claims)
                .map(SignedToken);
        };
        if let Err(SignError::SelfCheck(why)) = &checked
            && !health.out_of_service.swap(true, Ordering::AcqRel)
        {
            self.self_check_failures.inc();
            tracing::error!(
                kid = current.key.kid(),
                error = %why,
                "signing key failed its self-check and is out of service; no token is issued until another key is usable"
            );
        }
        checked.map(SignedToken)
    }

    fn sign_checked(
        &self,
        loaded: &Loaded,
        current: &StoredKey,
        claims: &AccessTokenClaims,
        now: std::time::SystemTime,
    ) -> Result<String, SignError> {
        let published = rotation::published(&loaded.keys, now, self.retention);
        signer::sign_and_check(
            &current.key,
            ACCESS_TOKEN_TYP,
            claims,
            published.into_iter().map(|k| &k.key),
        )
    }
}

/// An access token [`SigningKeys::sign_capped`] signed: a compact JWS, three base64url segments
/// joined by dots ([`keys::PrivateKey::sign_jwt`] writes nothing else). Only this module makes
/// one, so its text never needs escaping in JSON: the token response writes it as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedToken(String);

impl SignedToken {
    /// The token's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The token's text, owned.
    pub fn into_string(self) -> String {
        self.0
    }

    /// `claims` signed by `key` as an access token (tests that need a real one).
    #[cfg(test)]
    pub(crate) fn signed_by(key: &PrivateKey, claims: &impl serde::Serialize) -> Self {
        Self(key.sign_jwt(ACCESS_TOKEN_TYP, claims).expect("signs"))
    }
}

/// How long a superseded key stays published unless told otherwise: the default
/// `--max-token-lifetime`.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(3600);

// === KeyMetrics ===

/// Metrics of the signing keys, registered by [`KeyMetrics::register`].
#[derive(Debug, Clone)]
pub struct KeyMetrics {
    /// Directory reloads by outcome (`reloaded`, `failed`).
    pub reloads: prometheus::IntCounterVec,
    /// Keys by state (`current`, `next`, `retiring`, `expired`).
    pub keys: prometheus::IntGaugeVec,
}

impl KeyMetrics {
    /// Creates and registers the metrics in `registry`.
    ///
    /// # Errors
    /// When a metric of the same name is already registered there.
    pub fn register(registry: &prometheus::Registry) -> prometheus::Result<Self> {
        use crate::telemetry::names;
        let reloads = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                names::SIGNING_KEY_RELOADS_TOTAL,
                "Reloads of the signing key directory after a change, by outcome.",
            ),
            &["outcome"],
        )?;
        let keys = prometheus::IntGaugeVec::new(
            prometheus::Opts::new(
                names::SIGNING_KEYS,
                "Signing keys in the directory, by state.",
            ),
            &["state"],
        )?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(keys.clone()))?;
        Ok(Self { reloads, keys })
    }

    /// Sets the per-state gauge from `keys`.
    pub fn observe(&self, keys: &SigningKeys) {
        let states = keys.states();
        for state in [
            KeyState::Current,
            KeyState::Next,
            KeyState::Retiring,
            KeyState::Expired,
        ] {
            let n = states.iter().filter(|(_, s)| *s == state).count();
            self.keys
                .with_label_values(&[state.as_str()])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}

/// The JOSE `typ` of issued access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

#[cfg(test)]
mod tests;
