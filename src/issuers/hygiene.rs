//! Input-token hygiene: limits a subject token must meet even when it is validly signed and
//! unexpired (per issuer, from its preset or its `maxTokenLifetime`, `maxTokenAge` and
//! `requiredType`).
//!
//! Why: a stolen long-lived token (a Kubernetes `kube-api-access` token lives a year) stays
//! usable for as long as its `exp` says unless the gateway has its own opinion of how long a
//! token from that platform may live; a platform that always sets `typ: JWT` never sends an
//! `at+jwt` or `logout+jwt`, so such a token is a confused-deputy attempt. Pure: `now` comes in.

use std::time::Duration;

use super::ValidationError;
use crate::policy::model::TokenHygiene;

/// A token-supplied string made safe for an error message.
fn shown(s: &str) -> String {
    crate::text::shown(s, 32)
}

/// Whether header `typ` names the media type `expected`: compared case-insensitively, with an
/// optional `application/` prefix (RFC 7515 §4.1.9).
pub fn type_matches(typ: &str, expected: &str) -> bool {
    let strip = |s: &str| -> String {
        let lower = s.to_ascii_lowercase();
        lower
            .strip_prefix("application/")
            .map_or(lower.clone(), str::to_string)
    };
    strip(typ) == strip(expected)
}

/// Checks `typ`, lifetime and age of a token whose `exp`/`nbf`/`iat` already passed the time
/// checks. `exp` and `iat` are seconds since the epoch; `now` is the time since the epoch.
///
/// Errors: [`ValidationError::WrongType`], [`ValidationError::MissingIssuedAt`] (when the
/// issuer's platform always sets `iat`), [`ValidationError::LifetimeTooLong`] (`exp - iat`, or
/// `exp - now` without `iat`), [`ValidationError::TooOld`] (`now - iat` beyond
/// `max_age + leeway`).
pub fn check(
    hygiene: &TokenHygiene,
    typ: Option<&str>,
    exp: u64,
    iat: Option<u64>,
    now: Duration,
    leeway: Duration,
) -> Result<(), ValidationError> {
    if let Some(expected) = &hygiene.required_type
        && !typ.is_some_and(|typ| type_matches(typ, expected))
    {
        return Err(ValidationError::WrongType {
            expected: expected.clone(),
            found: typ.map_or_else(|| "none".to_string(), shown),
        });
    }
    let max_lifetime = hygiene.max_lifetime.as_secs();
    let lifetime = match iat {
        Some(iat) => exp.saturating_sub(iat),
        None if hygiene.require_iat => return Err(ValidationError::MissingIssuedAt),
        // Without iat the whole lifetime is unknown; what is left of it must still fit.
        None => exp.saturating_sub(now.as_secs()),
    };
    if lifetime > max_lifetime {
        return Err(ValidationError::LifetimeTooLong {
            lifetime_secs: lifetime,
            max_secs: max_lifetime,
        });
    }
    if let Some(iat) = iat {
        let age = now.saturating_sub(Duration::from_secs(iat));
        if age > hygiene.max_age.saturating_add(leeway) {
            return Err(ValidationError::TooOld {
                age_secs: age.as_secs(),
                max_secs: hygiene.max_age.as_secs(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_767_225_600;

    fn hygiene(typ: Option<&str>, require_iat: bool) -> TokenHygiene {
        TokenHygiene {
            max_lifetime: Duration::from_secs(3600),
            max_age: Duration::from_secs(900),
            required_type: typ.map(str::to_string),
            require_iat,
        }
    }

    fn run(
        h: &TokenHygiene,
        typ: Option<&str>,
        exp: u64,
        iat: Option<u64>,
    ) -> Result<(), ValidationError> {
        check(
            h,
            typ,
            exp,
            iat,
            Duration::from_secs(NOW),
            Duration::from_secs(30),
        )
    }

    #[test]
    fn typ_is_compared_as_a_media_type() {
        assert!(type_matches("JWT", "JWT"));
        assert!(type_matches("jwt", "JWT"));
        assert!(type_matches("application/jwt", "JWT"));
        assert!(!type_matches("at+jwt", "JWT"));
        assert!(!type_matches("JWS", "JWT"));
        let h = hygiene(Some("JWT"), false);
        assert!(run(&h, Some("JWT"), NOW + 60, Some(NOW)).is_ok());
        assert_eq!(
            run(&h, Some("at+jwt"), NOW + 60, Some(NOW)),
            Err(ValidationError::WrongType {
                expected: "JWT".into(),
                found: "at+jwt".into()
            })
        );
        assert!(matches!(
            run(&h, None, NOW + 60, Some(NOW)),
            Err(ValidationError::WrongType { found, .. }) if found == "none"
        ));
        // No requirement: anything goes.
        assert!(run(&hygiene(None, false), Some("at+jwt"), NOW + 60, Some(NOW)).is_ok());
        assert!(run(&hygiene(None, false), None, NOW + 60, Some(NOW)).is_ok());
    }

    #[test]
    fn lifetime_is_exp_minus_iat_inclusive() {
        let h = hygiene(None, false);
        assert!(run(&h, None, NOW + 3600, Some(NOW)).is_ok());
        assert_eq!(
            run(&h, None, NOW + 3601, Some(NOW)),
            Err(ValidationError::LifetimeTooLong {
                lifetime_secs: 3601,
                max_secs: 3600
            })
        );
        // Without iat: what remains must fit.
        assert!(run(&h, None, NOW + 3600, None).is_ok());
        assert!(matches!(
            run(&h, None, NOW + 3601, None),
            Err(ValidationError::LifetimeTooLong { .. })
        ));
        // A preset issuer always sends iat.
        assert_eq!(
            run(&hygiene(None, true), None, NOW + 60, None),
            Err(ValidationError::MissingIssuedAt)
        );
        // exp before iat is not a negative lifetime.
        assert!(run(&h, None, NOW - 10, Some(NOW)).is_ok());
    }

    #[test]
    fn age_allows_leeway_then_refuses() {
        let h = hygiene(None, false);
        assert!(run(&h, None, NOW + 60, Some(NOW - 930)).is_ok());
        assert_eq!(
            run(&h, None, NOW + 60, Some(NOW - 931)),
            Err(ValidationError::TooOld {
                age_secs: 931,
                max_secs: 900
            })
        );
        // iat in the future has age zero.
        assert!(run(&h, None, NOW + 60, Some(NOW + 5)).is_ok());
    }
}
