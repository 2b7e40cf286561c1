//! What a successful decision grants: everything the signer needs, nothing it must look up.

use std::time::Duration;

/// What kind of identity a grant is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKind {
    /// An application's service principal.
    ServicePrincipal,
    /// A user-assigned managed identity.
    ManagedIdentity,
    /// A workload-assigned managed identity (created from a `nameFrom` template).
    WorkloadIdentity,
}

impl IdentityKind {
    /// Label used in audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServicePrincipal => "servicePrincipal",
            Self::ManagedIdentity => "managedIdentity",
            Self::WorkloadIdentity => "workloadIdentity",
        }
    }
}

/// An allowed exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// Tenant name.
    pub tenant: String,
    /// Tenant id (`tid`).
    pub tenant_id: String,
    /// Kind of identity.
    pub identity_kind: IdentityKind,
    /// The identity's name (application name or managed identity name).
    pub identity_name: String,
    /// Object id (`sub`, `oid`).
    pub object_id: String,
    /// Client id (`client_id`, `azp`).
    pub client_id: String,
    /// The resource identifier URI (`aud`).
    pub resource: String,
    /// Roles granted on the resource, in assignment order.
    pub roles: Vec<String>,
    /// Token lifetime.
    pub lifetime: Duration,
    /// Claims from the credential's claimMappings.
    pub mapped_claims: serde_json::Map<String, serde_json::Value>,
    /// The federated credential that matched.
    pub credential: String,
    /// Its mode: always `Enforce` (audit-mode credentials never grant), carried so that the
    /// audit record states it rather than implies it.
    pub credential_mode: crate::policy::model::CredentialMode,
    /// Name of the source Issuer.
    pub source_issuer_name: String,
    /// `iss` of the subject token.
    pub source_issuer: String,
    /// `sub` of the subject token (empty when it had none).
    pub source_subject: String,
    /// The subject token may be exchanged only once (its credential or issuer says
    /// `oneTimeUse`); the caller enforces it against shared state.
    pub one_time_use: bool,
}
