//! trustbridge's own tokens: signing keys kept in a key directory, RFC 9068 access-token
//! claims, signing (and verifying what was signed before it leaves), and the published JWKS.

pub mod claims;
pub mod keys;
mod signer;
pub mod store;

use std::path::Path;
use std::sync::Arc;

use crate::clock::Clock;
use crate::policy::model::SigningAlgorithm;

pub use claims::AccessTokenClaims;
pub use keys::{KeyError, PrivateKey};
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

/// The signing keys of a key directory, parsed once at load, with the clock that decides
/// which of them signs (see [`KeySet`]).
#[derive(Debug)]
pub struct SigningKeys {
    keys: Vec<StoredKey>,
    clock: Arc<dyn Clock>,
}

impl SigningKeys {
    /// Loads every key in `dir`; when it holds none, creates the directory (mode 0700) and a
    /// fresh key of `alg` (file mode 0600). A restart with the same directory reuses its keys.
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
        Ok(Self { keys, clock })
    }

    /// Keys already in memory (tests, tools).
    ///
    /// # Errors
    /// [`KeyStoreError::NoActiveKey`] when none of `keys` is active at the clock's `now`.
    pub fn from_keys(keys: Vec<StoredKey>, clock: Arc<dyn Clock>) -> Result<Self, KeyStoreError> {
        if store::current_key(&keys, clock.now()).is_none() {
            return Err(KeyStoreError::NoActiveKey("<in memory>".into()));
        }
        Ok(Self { keys, clock })
    }

    /// The keys by state at the clock's `now`; `None` only if the clock was set back before
    /// every key's activation.
    pub fn key_set(&self) -> Option<KeySet<'_>> {
        KeySet::select(&self.keys, self.clock.now())
    }

    /// The published JWK Set: every key a verifier may meet (current, next, retiring; at most
    /// [`store::MAX_PUBLISHED_KEYS`]), each with `kid`, `alg` (exactly its signing algorithm)
    /// and `use: sig`, never private members.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = match self.key_set() {
            Some(set) => set
                .published()
                .map(|k| k.key.public_jwk().clone())
                .collect(),
            // No key active yet (clock set back): every key is still ahead of use.
            None => self
                .keys
                .iter()
                .take(store::MAX_PUBLISHED_KEYS)
                .map(|k| k.key.public_jwk().clone())
                .collect(),
        };
        serde_json::json!({ "keys": keys })
    }

    /// The `kid`s of the published keys, in [`Self::jwks`] order (current first).
    pub fn kids(&self) -> Vec<String> {
        match self.key_set() {
            Some(set) => set.published().map(|k| k.key.kid().to_owned()).collect(),
            None => self.keys.iter().map(|k| k.key.kid().to_owned()).collect(),
        }
    }

    /// The algorithm of the active key (for discovery's `id_token_signing_alg_values_supported`).
    /// Should no key be active (clock set back), the one activating soonest.
    pub fn algorithm(&self) -> SigningAlgorithm {
        let now = self.clock.now();
        store::current_key(&self.keys, now)
            .or_else(|| self.keys.iter().min_by_key(|k| k.activates_at))
            .map(|k| k.key.alg())
            // Unreachable: construction guarantees at least one key.
            .unwrap_or(SigningAlgorithm::ES256)
    }

    /// Signs `claims` (header `typ: at+jwt`, `alg` and `kid` of the active key), then verifies
    /// the result against the published keys before returning it.
    ///
    /// # Errors
    /// [`SignError::Crypto`] when no key is active (clock set back) or the backend refuses;
    /// [`SignError::SelfCheck`] when the signed token does not verify against the JWKS.
    // TODO-security: cap `exp` at the signing key's end of life once rotation sets one.
    pub fn sign(&self, claims: &AccessTokenClaims) -> Result<String, SignError> {
        let now = self.clock.now();
        let current = store::current_key(&self.keys, now)
            .ok_or_else(|| SignError::Crypto("no signing key is active at this time".into()))?;
        // Every loaded key is published (current, next or retiring), so the check may search
        // them all without building a KeySet on the hot path.
        signer::sign_and_check(
            &current.key,
            ACCESS_TOKEN_TYP,
            claims,
            self.keys.iter().map(|k| &k.key),
        )
    }
}

/// The JOSE `typ` of issued access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

#[cfg(test)]
mod tests;
