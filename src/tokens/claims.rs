//! Claims of issued access tokens (RFC 9068 JWT profile, with Entra's app-token claims).

use serde::Serialize;

/// The payload of a trustbridge access token.
#[derive(Debug, Clone, Serialize)]
pub struct AccessTokenClaims {
    /// Tenant issuer URL, byte-identical to the discovery `issuer`.
    pub iss: String,
    /// The identity's object id.
    pub sub: String,
    /// The resource (its identifier URI).
    pub aud: String,
    /// Issued at.
    pub iat: u64,
    /// Not before (= iat).
    pub nbf: u64,
    /// Expiry.
    pub exp: u64,
    /// Unique token id (random).
    pub jti: String,
    /// The client id.
    pub client_id: String,
    /// Authorized party (= client_id), as Entra sets it.
    pub azp: String,
    /// Object id (= sub).
    pub oid: String,
    /// Tenant id.
    pub tid: String,
    /// Roles granted on `aud`.
    pub roles: Vec<String>,
    /// Always `app`: these are app-only tokens.
    pub idtyp: &'static str,
    /// Issuer of the exchanged subject token.
    pub src_iss: String,
    /// Subject of the exchanged subject token.
    pub src_sub: String,
    /// Name of the federated credential that allowed the exchange.
    pub src_cred: String,
    /// Claims from the credential's claimMappings.
    #[serde(flatten)]
    pub mapped: serde_json::Map<String, serde_json::Value>,
}
