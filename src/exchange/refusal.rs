//! How a refused subject token or client assertion is answered: the [`Refuse`] mapping of
//! [`ValidationError`]. It lives here, beside the other exchange refusals, so `issuers` stays
//! free of the OAuth vocabulary. Pure: no HTTP types.
//!
//! The client is told [`public_text`]: which check failed, with only what its token carried
//! (its `alg`, `typ`, age, lifetime). The error's `Display` is the detail (the issuer's
//! configured limits, its key source's URL or `jwksFile` path, the fetch error) and goes to
//! the audit trail and logs only (issue 12, flaws 6 and 7).

use std::borrow::Cow;

use crate::issuers::ValidationError;
use crate::refusal::{self, Context, Refusal, Refuse};
use crate::text::echo;

/// What a client is told about a refused token: fixed text plus values from the token itself
/// (sanitised), never a configured limit, key detail, URL or path.
pub fn public_text(error: &ValidationError) -> Cow<'static, str> {
    use ValidationError as E;
    match error {
        E::TooLarge { .. } => "token is too large".into(),
        E::Malformed(what) => format!("malformed token: {}", echo(what)).into(),
        E::AlgorithmNotAllowed(alg) => {
            format!("algorithm {} is not allowed for this issuer", echo(alg)).into()
        }
        E::KeyTypeMismatch(alg) => {
            format!("the issuer key does not fit algorithm {}", echo(alg)).into()
        }
        E::WeakKey(_) => "the issuer key is too weak".into(),
        E::LifetimeTooLong { lifetime_secs, .. } => {
            format!("token lifetime of {lifetime_secs}s is longer than this issuer's maximum")
                .into()
        }
        E::TooOld { age_secs, .. } => {
            format!("token was issued {age_secs}s ago, more than this issuer's maximum age").into()
        }
        E::WrongType { found, .. } => format!(
            "token type {} is not the type this issuer's tokens carry",
            echo(found)
        )
        .into(),
        E::KeysUnavailable(_) => {
            "the issuer's signing keys cannot be obtained right now; retry later".into()
        }
        E::Encrypted
        | E::Nested
        | E::CriticalHeader
        | E::UntrustedIssuer
        | E::UnknownKey
        | E::BadSignature
        | E::MissingExpiry
        | E::Expired
        | E::NotYetValid
        | E::IssuedInFuture
        | E::BadTimeClaim(_)
        | E::MissingIssuedAt => error.to_string().into(),
    }
}

impl Refuse for ValidationError {
    /// `invalid_client`/`invalid_grant` by the token's role, except unreachable issuer keys:
    /// 503, since retrying later may work.
    fn refusal(&self, ctx: Context) -> Refusal {
        let noun = ctx.token.noun();
        let description = format!("the {noun} was refused: {}", public_text(self));
        let detail = format!("the {noun} was refused: {self}");
        let (reason, code) = match self {
            Self::KeysUnavailable(_) => {
                return Refusal::unavailable("issuer_keys_unavailable", description)
                    .with_detail(detail);
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
        Refusal::token_rejected(ctx, code, reason, description).with_detail(detail)
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

    #[test]
    fn public_texts_carry_no_configured_limit_url_or_path() {
        let url = "http://10.0.0.9/secret-internal-path/keys";
        let cases = [
            ValidationError::KeysUnavailable(format!("could not connect to \"{url}\"")),
            ValidationError::KeysUnavailable("/etc/secret-dir/jwks.json: not found".into()),
            ValidationError::TooLarge { max: 7777 },
            ValidationError::LifetimeTooLong {
                lifetime_secs: 10,
                max_secs: 7777,
            },
            ValidationError::TooOld {
                age_secs: 10,
                max_secs: 7777,
            },
            ValidationError::WrongType {
                expected: "secret+jwt".into(),
                found: "JWT".into(),
            },
            ValidationError::WeakKey("RSA 7777 bits".into()),
        ];
        for e in cases {
            let r = e.refusal(Context::default());
            for secret in ["secret", "7777", "10.0.0.9"] {
                assert!(!r.description.contains(secret), "{e:?}: {}", r.description);
            }
            assert_eq!(r.detail(), format!("the subject token was refused: {e}"));
        }
    }
}
