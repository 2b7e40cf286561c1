//! The local demo issuer behind the README walkthrough.
//!
//! Its RSA key is generated on first use into `{data_dir}/demo-issuer/` (never committed), its
//! JWKS is written beside it for the gateway to read as a static key file, and
//! `trustbridge demo token` mints subject tokens from it. It is an ordinary Issuer with
//! `demo: true` in the bundled policies; nothing about it is trusted implicitly.

use std::path::{Path, PathBuf};

/// The `iss` of demo tokens. `.invalid` never resolves, so nothing can be fetched from it.
pub const DEMO_ISSUER_URL: &str = "https://demo-issuer.trustbridge.invalid";

/// Where the demo issuer's JWKS lives under `data_dir`.
pub fn jwks_path(data_dir: &Path) -> PathBuf {
    data_dir.join("demo-issuer").join("jwks.json")
}

// Placeholder signatures until the demo issuer lands from the tokens work.
/// The demo issuer (key and JWKS under the data directory).
pub struct DemoIssuer;
impl DemoIssuer {
    /// Opens or creates the demo issuer key.
    pub fn open_or_create(data_dir: &Path) -> Result<Self, crate::tokens::KeyStoreError> {
        todo!("{data_dir:?}")
    }
    /// Mints a token.
    pub fn mint(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, crate::tokens::SignError> {
        todo!("{claims:?}")
    }
}
/// Standard demo claims.
pub fn demo_claims(
    subject: &str,
    audience: &str,
    now: u64,
    lifetime: u64,
    extra: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    todo!("{subject}{audience}{now}{lifetime}{extra:?}")
}
