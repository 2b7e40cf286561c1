//! How a refused subject token or client assertion is answered: the [`Refuse`] mapping of
//! [`ValidationError`]. It lives here, beside the other exchange refusals, so `issuers` stays
//! free of the OAuth vocabulary. Pure: no HTTP types.

use crate::issuers::ValidationError;
use crate::refusal::{self, Context, Refusal, Refuse};

impl Refuse for ValidationError {
    /// `invalid_client`/`invalid_grant` by the token's role, except unreachable issuer keys:
    /// 503, since retrying later may work.
    fn refusal(&self, ctx: Context) -> Refusal {
        let description = format!("the {} was refused: {self}", ctx.token.noun());
        let (reason, code) = match self {
            Self::KeysUnavailable(_) => {
                return Refusal::unavailable("issuer_keys_unavailable", description);
            }
            Self::TooLarge { .. } => ("token_too_large", refusal::CODE_INVALID_TOKEN),
            Self::Malformed(_) | Self::Encrypted | Self::Nested | Self::CriticalHeader => {
                ("token_malformed", refusal::CODE_INVALID_TOKEN)
            }
            Self::UntrustedIssuer => ("untrusted_issuer", refusal::CODE_ISSUER_MISMATCH),
            Self::AlgorithmNotAllowed(_) => {
                ("algorithm_not_allowed", refusal::CODE_SIGNATURE_VALIDATION)
            }
            Self::UnknownKey => ("unknown_key", refusal::CODE_SIGNATURE_VALIDATION),
            Self::KeyTypeMismatch(_) | Self::WeakKey(_) => {
                ("bad_key", refusal::CODE_SIGNATURE_VALIDATION)
            }
            Self::BadSignature => ("bad_signature", refusal::CODE_SIGNATURE_VALIDATION),
            Self::MissingExpiry | Self::BadTimeClaim(_) | Self::MissingIssuedAt => {
                ("bad_time_claim", refusal::CODE_INVALID_TOKEN)
            }
            Self::Expired => ("token_expired", refusal::CODE_OUTSIDE_TIME_RANGE),
            Self::NotYetValid | Self::IssuedInFuture => {
                ("token_not_yet_valid", refusal::CODE_OUTSIDE_TIME_RANGE)
            }
            Self::LifetimeTooLong { .. } => {
                ("token_lifetime_too_long", refusal::CODE_OUTSIDE_TIME_RANGE)
            }
            Self::TooOld { .. } => ("token_too_old", refusal::CODE_OUTSIDE_TIME_RANGE),
            Self::WrongType { .. } => ("token_wrong_type", refusal::CODE_INVALID_TOKEN),
        };
        Refusal::token_rejected(ctx, code, reason, description)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refusal::{OAuthError, StatusClass, TokenRole};

    #[test]
    fn token_problems_depend_on_the_grant() {
        let cc = Context {
            token: TokenRole::ClientAssertion,
            ..Context::default()
        };
        let r = ValidationError::BadSignature.refusal(cc);
        assert_eq!(
            (r.error, r.status, r.code),
            (
                OAuthError::InvalidClient,
                StatusClass::Unauthorized,
                Some(700027)
            )
        );
        assert!(
            r.description
                .starts_with("the client assertion was refused")
        );
        let r = ValidationError::BadSignature.refusal(Context::default());
        assert_eq!(
            (r.error, r.status, r.code),
            (
                OAuthError::InvalidGrant,
                StatusClass::BadRequest,
                Some(700027)
            )
        );
        assert!(r.description.starts_with("the subject token was refused"));
    }

    #[test]
    fn unreachable_issuer_keys_are_503_and_not_a_fault() {
        let r = ValidationError::KeysUnavailable("down".into()).refusal(Context::default());
        assert_eq!(r.error, OAuthError::TemporarilyUnavailable);
        assert_eq!(r.code, None);
        assert_eq!(r.reason, "issuer_keys_unavailable");
        assert!(!r.fault);
    }
}
