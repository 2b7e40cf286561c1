//! What a successful decision grants: everything the signer needs, nothing it must look up.

use std::borrow::Cow;
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
///
/// Its text borrows (lifetime `'a`) from what decided it: the policy set, the validated
/// subject token and the request, which all outlive the exchange. Only what the decision
/// computed is owned: ids written from UUIDs, a workload identity's name, mapped claims.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant<'a> {
    /// Tenant name.
    pub tenant: Cow<'a, str>,
    /// Tenant id (`tid`).
    pub tenant_id: String,
    /// Kind of identity.
    pub identity_kind: IdentityKind,
    /// The identity's name (application name or managed identity name).
    pub identity_name: Cow<'a, str>,
    /// Object id (`sub`, `oid`).
    pub object_id: String,
    /// Client id (`client_id`, `azp`).
    pub client_id: Cow<'a, str>,
    /// The resource identifier URI (`aud`).
    pub resource: Cow<'a, str>,
    /// Roles granted on the resource, in assignment order.
    pub roles: Vec<Cow<'a, str>>,
    /// Token lifetime.
    pub lifetime: Duration,
    /// Claims from the credential's claimMappings.
    pub mapped_claims: serde_json::Map<String, serde_json::Value>,
    /// The federated credential that matched.
    pub credential: Cow<'a, str>,
    /// Its mode: always `Enforce` (audit-mode credentials never grant), carried so that the
    /// audit record states it rather than implies it.
    pub credential_mode: crate::policy::model::CredentialMode,
    /// Name of the source Issuer.
    pub source_issuer_name: Cow<'a, str>,
    /// `iss` of the subject token.
    pub source_issuer: Cow<'a, str>,
    /// `sub` of the subject token (empty when it had none).
    pub source_subject: Cow<'a, str>,
    /// The subject token may be exchanged only once (its credential or issuer says
    /// `oneTimeUse`); the caller enforces it against shared state.
    pub one_time_use: bool,
}

impl Grant<'_> {
    /// The same grant with every value owned, independent of what decided it (tools and
    /// tests that keep a grant longer than its policy set or token).
    pub fn into_owned(self) -> Grant<'static> {
        let owned = |text: Cow<'_, str>| Cow::Owned(text.into_owned());
        Grant {
            tenant: owned(self.tenant),
            tenant_id: self.tenant_id,
            identity_kind: self.identity_kind,
            identity_name: owned(self.identity_name),
            object_id: self.object_id,
            client_id: owned(self.client_id),
            resource: owned(self.resource),
            roles: self.roles.into_iter().map(owned).collect(),
            lifetime: self.lifetime,
            mapped_claims: self.mapped_claims,
            credential: owned(self.credential),
            credential_mode: self.credential_mode,
            source_issuer_name: owned(self.source_issuer_name),
            source_issuer: owned(self.source_issuer),
            source_subject: owned(self.source_subject),
            one_time_use: self.one_time_use,
        }
    }
}
