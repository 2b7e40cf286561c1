//! Trust in external issuers: fetching and caching their keys, and validating subject tokens.
//!
//! Nothing is ever fetched for an `iss` that no policy declares, nor from a URL taken out of a
//! token (`jku`, `x5u`, `jwk` headers are never followed). [`IssuerRegistry::validate`] is the
//! only entry point the HTTP layer uses; it yields a [`ValidatedToken`] or a
//! [`ValidationError`] in domain words.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::policy::PolicySet;
use crate::policy::model::SigningAlgorithm;

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
    /// The issuer's keys could not be obtained (and no usable stale copy exists).
    #[error("issuer keys are unavailable: {0}")]
    KeysUnavailable(String),
}

/// Limits and switches of the key fetcher, shared by every issuer.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// Per-request timeout.
    pub timeout: Duration,
    /// Maximum size of a discovery or JWKS response body.
    pub max_body_bytes: usize,
    /// Minimum interval between two refreshes of one issuer triggered by unknown `kid`s.
    pub min_refresh_interval: Duration,
    /// How long fetched keys are fresh when the response sets no usable Cache-Control.
    pub default_ttl: Duration,
    /// Bounds applied to Cache-Control max-age.
    pub min_ttl: Duration,
    /// Upper bound on Cache-Control max-age.
    pub max_ttl: Duration,
    /// How long stale keys keep serving while the issuer is unreachable.
    pub max_stale: Duration,
}

impl Default for FetchSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            max_body_bytes: 256 * 1024,
            min_refresh_interval: Duration::from_secs(30),
            default_ttl: Duration::from_secs(3600),
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(24 * 3600),
            max_stale: Duration::from_secs(24 * 3600),
        }
    }
}

/// Maximum accepted subject-token size in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Keys and validation for every declared issuer.
pub struct IssuerRegistry {
    _clock: Arc<dyn Clock>,
}

impl IssuerRegistry {
    /// Builds a registry for the issuers of `policies`. Nothing is fetched until a token from an
    /// issuer arrives. `data_dir` locates the demo issuer's keys.
    pub fn new(
        policies: &PolicySet,
        settings: FetchSettings,
        clock: Arc<dyn Clock>,
        data_dir: PathBuf,
    ) -> Self {
        let _ = (policies, settings, data_dir);
        Self { _clock: clock }
    }

    /// Validates a compact JWS against the issuer it names: structure, size, algorithm,
    /// key, signature, `iss`, `exp`/`nbf`/`iat` with the issuer's leeway.
    pub async fn validate(&self, token: &str) -> Result<ValidatedToken, ValidationError> {
        todo!("{token}")
    }

    /// A registry for a newly loaded policy set that keeps the key caches of issuers whose
    /// configuration did not change (so a reload does not refetch every JWKS).
    pub fn rebuild(&self, policies: &PolicySet) -> Self {
        todo!("{policies:?}")
    }
}
