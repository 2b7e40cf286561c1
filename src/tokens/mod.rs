//! trustbridge's own tokens: signing keys kept in a key directory, RFC 9068 access-token
//! claims, signing (and verifying what was signed before it leaves), and the published JWKS.

pub mod claims;

use std::path::Path;
use std::sync::Arc;

use crate::clock::Clock;
use crate::policy::model::SigningAlgorithm;

pub use claims::AccessTokenClaims;

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
}

/// The signing keys of a key directory.
#[derive(Debug)]
pub struct SigningKeys {
    _clock: Arc<dyn Clock>,
}

impl SigningKeys {
    /// Loads every key in `dir`; when it holds none, creates the directory (mode 0700) and a
    /// fresh key of `alg` (file mode 0600).
    pub fn load_or_create(
        dir: &Path,
        alg: SigningAlgorithm,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, KeyStoreError> {
        let _ = (dir, alg);
        Ok(Self { _clock: clock })
    }

    /// The published JWK Set: every key a verifier may meet, each with `kid`, `alg`, `use: sig`.
    pub fn jwks(&self) -> serde_json::Value {
        todo!()
    }

    /// The algorithm of the active key.
    pub fn algorithm(&self) -> SigningAlgorithm {
        todo!()
    }

    /// Signs `claims` (header `typ: at+jwt`, `kid` of the active key), then verifies the result
    /// against the published keys before returning it.
    pub fn sign(&self, claims: &AccessTokenClaims) -> Result<String, SignError> {
        todo!("{claims:?}")
    }
}
