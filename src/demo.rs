//! The local demo issuer behind the README walkthrough.
//!
//! Its RSA key is generated on first use into `{data_dir}/demo-issuer/` (never committed), its
//! JWKS is written beside it for the gateway to read as a static key file, and
//! `trustbridge demo token` mints subject tokens from it. It is an ordinary Issuer with
//! `demo: true` in the bundled policies; nothing about it is trusted implicitly.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::jose::SigningAlgorithm;
use crate::tokens::keys::PrivateKey;
use crate::tokens::{KeyStoreError, SignError, store};

/// The `iss` of demo tokens. `.invalid` never resolves, so nothing can be fetched from it.
pub const DEMO_ISSUER_URL: &str = "https://demo-issuer.trustbridge.invalid";

/// Where the demo issuer's JWKS lives under `data_dir`.
pub fn jwks_path(data_dir: &Path) -> PathBuf {
    data_dir.join("demo-issuer").join("jwks.json")
}

/// Where the demo issuer's private key lives under `data_dir`.
pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("demo-issuer").join("key.pem")
}

/// The demo issuer: an RS256 key on disk and its published JWKS.
#[derive(Debug)]
pub struct DemoIssuer {
    key: PrivateKey,
    jwks_path: PathBuf,
}

impl DemoIssuer {
    /// Opens the demo issuer under `data_dir`, generating its RS256 key on first use
    /// (`{data_dir}/demo-issuer/key.pem`, mode 0600, directory 0700), and (re)writes
    /// [`jwks_path`] when it is missing or does not hold exactly this key's JWK.
    ///
    /// # Errors
    /// [`KeyStoreError::Io`] when the files cannot be read or written;
    /// [`KeyStoreError::BadKey`] when `key.pem` is not an RSA PKCS#8 key.
    pub fn open_or_create(data_dir: &Path) -> Result<Self, KeyStoreError> {
        let dir = data_dir.join("demo-issuer");
        store::create_private_dir(&dir)?;
        let key_file = key_path(data_dir);
        let bad = |reason: String| KeyStoreError::BadKey {
            path: key_file.display().to_string(),
            reason,
        };
        let key = if key_file.exists() {
            let pem = store::read_key_file(&key_file)?;
            PrivateKey::from_pkcs8_pem(&pem, Some(SigningAlgorithm::RS256))
                .map_err(|e| bad(e.to_string()))?
        } else {
            let key =
                PrivateKey::generate(SigningAlgorithm::RS256).map_err(|e| bad(e.to_string()))?;
            store::write_atomically(&dir, "key.pem", key.to_pkcs8_pem().as_bytes(), 0o600)?;
            key
        };
        let issuer = Self {
            key,
            jwks_path: jwks_path(data_dir),
        };
        issuer.write_jwks_if_stale(&dir)?;
        Ok(issuer)
    }

    fn write_jwks_if_stale(&self, dir: &Path) -> Result<(), KeyStoreError> {
        let want = self.jwks();
        let current = std::fs::read(&self.jwks_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
        if current.as_ref() == Some(&want) {
            return Ok(());
        }
        let mut text = serde_json::to_string_pretty(&want).unwrap_or_default();
        text.push('\n');
        // Public: the gateway reads it as the demo Issuer's `jwksFile`.
        store::write_atomically(dir, "jwks.json", text.as_bytes(), 0o644)?;
        Ok(())
    }

    /// The demo key's `kid`.
    pub fn kid(&self) -> &str {
        self.key.kid()
    }

    /// The published JWK Set (`{"keys": [<the RS256 public key>]}`).
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.key.public_jwk()] })
    }

    /// Where the JWKS was written.
    pub fn jwks_path(&self) -> &Path {
        &self.jwks_path
    }

    /// Signs `claims` as a subject token (header `typ: JWT`, `alg: RS256`, `kid`). The claims
    /// are signed as given; [`demo_claims`] builds the usual set.
    ///
    /// # Errors
    /// [`SignError::Crypto`] if signing fails.
    pub fn mint(&self, claims: &Map<String, Value>) -> Result<String, SignError> {
        self.key.sign_jwt("JWT", claims)
    }
}

/// Standard demo subject-token claims: `iss` = [`DEMO_ISSUER_URL`], `sub`, `aud`, `iat` and
/// `nbf` = `now_unix`, `exp` = `now_unix + lifetime_secs`, `jti` = a random UUIDv4, plus `extra`.
/// An `extra` entry named like a standard claim is ignored (callers wanting odd tokens, such
/// as expired ones, edit the returned map).
pub fn demo_claims(
    subject: &str,
    audience: &str,
    now_unix: u64,
    lifetime_secs: u64,
    extra: Map<String, Value>,
) -> Map<String, Value> {
    let mut claims = extra;
    for (name, value) in [
        ("iss", json!(DEMO_ISSUER_URL)),
        ("sub", json!(subject)),
        ("aud", json!(audience)),
        ("iat", json!(now_unix)),
        ("nbf", json!(now_unix)),
        ("exp", json!(now_unix.saturating_add(lifetime_secs))),
        ("jti", json!(uuid::Uuid::new_v4().to_string())),
    ] {
        claims.insert(name.to_owned(), value);
    }
    claims
}

#[cfg(test)]
mod tests;
