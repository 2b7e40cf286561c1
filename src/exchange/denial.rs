//! Why an exchange was denied, in domain words. Each variant says its own refusal (OAuth
//! error, status class, Entra code, reason label) through [`Refuse`]; `http::error` renders
//! it. Nothing here knows about HTTP.
//!
//! A denial has two texts. Its `Display` is the operator's detail (configured subjects,
//! patterns, audiences, credential and identity names, CEL errors), which goes to the audit
//! trail and `policy explain`. [`Denial::public_description`] is what the client is told: the
//! check that failed and, at most, values the caller sent (tenant, resource, client_id,
//! requested roles), sanitised. It must never read a configured value, so anyone holding a
//! token of a trusted public issuer cannot map the policy by probing (issue 12, flaw 6).

use crate::refusal::{self, Context, OAuthError, Refusal, Refuse};
use crate::text::{echo, list};

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
    /// The client address is outside the credential's `allowedNetworks`.
    Network,
    /// The credential requires a DPoP proof and the request carried none.
    ProofOfPossession,
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

impl MismatchStage {
    /// The public account of a credential mismatch at this stage: which check failed, with no
    /// configured value.
    pub fn public_description(self) -> &'static str {
        match self {
            Self::Issuer => "no federated credential trusts the token's issuer",
            Self::Audience => "the token's audience is not accepted",
            Self::Subject => "the token's subject is not accepted",
            Self::Condition => "the token does not satisfy the credential's condition",
            Self::Network => "the request does not come from a network the credential allows",
            Self::ProofOfPossession => {
                "the credential requires a proof of possession (a DPoP header)"
            }
        }
    }
}

impl Denial {
    /// What the client is told: the failed check plus only what the caller sent (bounded,
    /// without control characters). Never a configured value, a credential or identity name,
    /// or CEL text; the `Display` text (the detail) carries those for operators.
    pub fn public_description(&self) -> String {
        match self {
            Self::UnknownTenant(tenant) => format!("tenant '{}' not found", echo(tenant)),
            Self::UnknownResource(resource) => {
                format!("resource '{}' was not found", echo(resource))
            }
            Self::UnknownClient(client_id) => format!(
                "application with identifier '{}' was not found in the tenant",
                echo(client_id)
            ),
            Self::NoMatchingCredential { stage, .. } => format!(
                "no matching federated identity record: {}",
                stage.public_description()
            ),
            Self::Ambiguous(_) => {
                "several identities in the tenant trust this token; pass client_id to choose one"
                    .into()
            }
            Self::Disabled(_) => "the identity is disabled".into(),
            Self::NotAssigned { resource, .. } => format!(
                "the identity is not assigned to a role of resource '{}'",
                echo(resource)
            ),
            Self::RolesNotAssigned(roles) => {
                format!("the requested roles are not assigned: {}", list(roles))
            }
            Self::NameTemplate(_) => {
                "the managed identity name could not be computed from the token".into()
            }
            Self::ClaimMapping { .. } => {
                "a claim mapping of the matched credential could not be evaluated on the token"
                    .into()
            }
        }
    }

    /// The operator's detail: today's full text, configured values included.
    fn detail(&self) -> String {
        match self {
            Self::NoMatchingCredential { .. } => {
                format!("no matching federated identity record: {self}")
            }
            _ => self.to_string(),
        }
    }

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
                MismatchStage::Network => "network_not_allowed",
                MismatchStage::ProofOfPossession => "proof_of_possession_required",
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

impl Refuse for Denial {
    /// Never 429 or 5xx: a denial retried by an SDK stays a denial.
    fn refusal(&self, ctx: Context) -> Refusal {
        use OAuthError::{InvalidRequest, InvalidScope, InvalidTarget, UnauthorizedClient};
        let reason = self.reason_label();
        let description = self.public_description();
        let bad =
            |error, code| Refusal::bad_request(error, Some(code), reason, description.clone());
        let refusal = match self {
            Self::UnknownTenant(_) => bad(InvalidRequest, refusal::CODE_TENANT_NOT_FOUND),
            Self::UnknownResource(_) => {
                let error = if ctx.target_from_scope {
                    InvalidScope
                } else {
                    InvalidTarget
                };
                bad(error, refusal::CODE_RESOURCE_NOT_FOUND)
            }
            Self::UnknownClient(_) => bad(UnauthorizedClient, refusal::CODE_APPLICATION_NOT_FOUND),
            Self::NoMatchingCredential { stage, .. } => {
                let code = match stage {
                    MismatchStage::Issuer => refusal::CODE_ISSUER_MISMATCH,
                    MismatchStage::Audience => refusal::CODE_AUDIENCE_MISMATCH,
                    MismatchStage::Subject => refusal::CODE_SUBJECT_MISMATCH,
                    MismatchStage::Condition
                    | MismatchStage::Network
                    | MismatchStage::ProofOfPossession => {
                        refusal::CODE_NO_MATCHING_FEDERATED_RECORD
                    }
                };
                Refusal::token_rejected(ctx, code, reason, description)
            }
            Self::Ambiguous(_) => bad(InvalidRequest, refusal::CODE_INVALID_REQUEST),
            Self::Disabled(_) => bad(UnauthorizedClient, refusal::CODE_APPLICATION_DISABLED),
            Self::NotAssigned { .. } => bad(UnauthorizedClient, refusal::CODE_NOT_ASSIGNED),
            Self::RolesNotAssigned(_) => bad(InvalidScope, refusal::CODE_INVALID_SCOPE),
            Self::NameTemplate(_) | Self::ClaimMapping { .. } => Refusal::token_rejected(
                ctx,
                refusal::CODE_NO_MATCHING_FEDERATED_RECORD,
                reason,
                description,
            ),
        };
        refusal.with_detail(self.detail())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refusal::{StatusClass, TokenRole};

    fn all() -> Vec<Denial> {
        vec![
            Denial::UnknownTenant("t".into()),
            Denial::UnknownResource("r".into()),
            Denial::UnknownClient("c".into()),
            Denial::NoMatchingCredential {
                stage: MismatchStage::Issuer,
                detail: "d".into(),
            },
            Denial::NoMatchingCredential {
                stage: MismatchStage::Audience,
                detail: "d".into(),
            },
            Denial::NoMatchingCredential {
                stage: MismatchStage::Subject,
                detail: "d".into(),
            },
            Denial::NoMatchingCredential {
                stage: MismatchStage::Condition,
                detail: "d".into(),
            },
            Denial::NoMatchingCredential {
                stage: MismatchStage::Network,
                detail: "d".into(),
            },
            Denial::NoMatchingCredential {
                stage: MismatchStage::ProofOfPossession,
                detail: "d".into(),
            },
            Denial::Ambiguous(2),
            Denial::Disabled("x".into()),
            Denial::NotAssigned {
                identity: "i".into(),
                resource: "r".into(),
            },
            Denial::RolesNotAssigned(vec!["r".into()]),
            Denial::NameTemplate("x".into()),
            Denial::ClaimMapping {
                claim: "c".into(),
                reason: "r".into(),
            },
        ]
    }

    #[test]
    fn denials_are_never_429_or_5xx() {
        for d in all() {
            for token in [TokenRole::ClientAssertion, TokenRole::SubjectToken] {
                let ctx = Context {
                    token,
                    ..Context::default()
                };
                let r = d.refusal(ctx);
                assert!(
                    matches!(
                        r.status,
                        StatusClass::BadRequest | StatusClass::Unauthorized
                    ),
                    "{d:?}"
                );
                assert!(r.code.is_some(), "{d:?}");
                assert!(!r.fault, "{d:?}");
                assert_eq!(r.reason, d.reason_label());
            }
        }
    }

    #[test]
    fn entra_codes_for_credential_stages() {
        let code = |stage| {
            Denial::NoMatchingCredential {
                stage,
                detail: String::new(),
            }
            .refusal(Context::default())
            .code
        };
        assert_eq!(code(MismatchStage::Issuer), Some(700211));
        assert_eq!(code(MismatchStage::Audience), Some(700212));
        assert_eq!(code(MismatchStage::Subject), Some(700213));
        assert_eq!(code(MismatchStage::Condition), Some(70021));
    }

    #[test]
    fn an_unknown_resource_is_named_by_where_the_target_came_from() {
        let d = Denial::UnknownResource("r".into());
        let from = |target_from_scope| {
            d.refusal(Context {
                target_from_scope,
                ..Context::default()
            })
            .error
        };
        assert_eq!(from(true), OAuthError::InvalidScope);
        assert_eq!(from(false), OAuthError::InvalidTarget);
    }

    #[test]
    fn public_descriptions_never_carry_configured_values() {
        const SECRET: &str = "zz-configured-zz";
        let configured = vec![
            Denial::NoMatchingCredential {
                stage: MismatchStage::Subject,
                detail: format!("subject 'a' does not match pattern '{SECRET}'"),
            },
            Denial::NoMatchingCredential {
                stage: MismatchStage::Network,
                detail: format!("client address outside allowedNetworks [{SECRET}]"),
            },
            Denial::NoMatchingCredential {
                stage: MismatchStage::Condition,
                detail: format!("rule 1 is false: {SECRET}"),
            },
            Denial::Ambiguous(2),
            Denial::Disabled(SECRET.into()),
            Denial::NotAssigned {
                identity: SECRET.into(),
                resource: "api://asked".into(),
            },
            Denial::NameTemplate(format!("no such key: {SECRET}")),
            Denial::ClaimMapping {
                claim: SECRET.into(),
                reason: SECRET.into(),
            },
        ];
        for d in configured {
            let r = d.refusal(Context::default());
            assert!(!r.description.contains(SECRET), "{d:?}: {}", r.description);
            assert!(!r.description.contains('2') || !matches!(d, Denial::Ambiguous(_)));
            assert!(
                r.detail().contains(SECRET) || matches!(d, Denial::Ambiguous(_)),
                "{d:?}"
            );
        }
    }

    #[test]
    fn public_descriptions_echo_what_the_caller_sent_sanitised() {
        let d = Denial::UnknownResource(format!("api://x\n{}", "y".repeat(500)));
        let r = d.refusal(Context::default());
        assert!(r.description.contains("api://x"), "{}", r.description);
        assert!(!r.description.chars().any(char::is_control));
        assert!(r.description.chars().count() < 200, "{}", r.description);
        let r = Denial::RolesNotAssigned(vec!["Payments.Admin".into()]).refusal(Context::default());
        assert!(r.description.contains("Payments.Admin"));
    }
}
