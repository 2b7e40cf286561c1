//! Why an exchange was denied, in domain words. `http::error` maps each variant to an OAuth
//! error, a status and Entra's numeric code; nothing here knows about HTTP.

/// How far a credential got before it failed to match, in evaluation order. When several
/// credentials fail, the one that got furthest explains the denial best.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MismatchStage {
    /// No credential trusts the token's issuer.
    Issuer,
    /// The token's `aud` does not intersect the credential's audiences.
    Audience,
    /// `sub` does not equal `subject` or match `subjectPattern`.
    Subject,
    /// The CEL condition was false or failed to evaluate.
    Condition,
}

/// A denied exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// The tenant in the URL is not declared.
    #[error("tenant '{0}' not found")]
    UnknownTenant(String),
    /// The requested resource is not declared by any application.
    #[error("resource '{0}' was not found")]
    UnknownResource(String),
    /// `client_id` names no identity in this tenant.
    #[error("application with identifier '{0}' was not found in the tenant")]
    UnknownClient(String),
    /// No federated credential of the candidate identities matched the token.
    #[error("{detail}")]
    NoMatchingCredential {
        /// How far the best candidate got.
        stage: MismatchStage,
        /// Which check failed, with the compared values (never the token).
        detail: String,
    },
    /// Without `client_id`, several identities trust the token.
    #[error("{0} identities in the tenant trust this token; pass client_id to choose one")]
    Ambiguous(usize),
    /// The identity is disabled in this tenant.
    #[error("identity '{0}' is disabled")]
    Disabled(String),
    /// The identity holds no role on the resource.
    #[error("identity '{identity}' is not assigned to a role of resource '{resource}'")]
    NotAssigned {
        /// Identity name.
        identity: String,
        /// Resource identifier.
        resource: String,
    },
    /// Specific roles were requested that are not assigned.
    #[error("the requested roles are not assigned: {}", .0.join(", "))]
    RolesNotAssigned(Vec<String>),
    /// A workload identity's `nameFrom` did not produce a usable name.
    #[error("the managed identity name could not be computed: {0}")]
    NameTemplate(String),
    /// A claim mapping failed to evaluate.
    #[error("claim mapping '{claim}' failed: {reason}")]
    ClaimMapping {
        /// The mapped claim.
        claim: String,
        /// Why.
        reason: String,
    },
}

impl Denial {
    /// A stable, bounded label for metrics and audit records.
    pub fn reason_label(&self) -> &'static str {
        match self {
            Self::UnknownTenant(_) => "unknown_tenant",
            Self::UnknownResource(_) => "unknown_resource",
            Self::UnknownClient(_) => "unknown_client",
            Self::NoMatchingCredential { stage, .. } => match stage {
                MismatchStage::Issuer => "issuer_mismatch",
                MismatchStage::Audience => "audience_mismatch",
                MismatchStage::Subject => "subject_mismatch",
                MismatchStage::Condition => "condition_failed",
            },
            Self::Ambiguous(_) => "ambiguous_identity",
            Self::Disabled(_) => "identity_disabled",
            Self::NotAssigned { .. } => "not_assigned",
            Self::RolesNotAssigned(_) => "roles_not_assigned",
            Self::NameTemplate(_) => "name_template_failed",
            Self::ClaimMapping { .. } => "claim_mapping_failed",
        }
    }
}
