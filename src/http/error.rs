//! The only `ResponseError` implementation: every domain error becomes an RFC 6749 error body
//! with Entra's extra fields (`error_codes`, `timestamp`, `trace_id`, `correlation_id`).
//!
//! Mapping rules, and why:
//! - Problems with the external token are `invalid_client` (401) under the client-credentials
//!   grant, where the token *is* the client's authentication (RFC 7523), and `invalid_grant`
//!   (400) under token exchange, where it is the grant (RFC 8693).
//! - A denial is never 429 or 5xx: Azure SDKs retry those many times, turning one bad policy
//!   into a storm. The only 5xx answers are `temporarily_unavailable` (issuer keys unreachable
//!   with no usable cached copy) and `server_error` for bugs, logged in full here.
//! - Descriptions name the failed check and never echo a token or a secret; values echoed from
//!   tokens were bounded and sanitised where they were produced.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, HeaderValue, PRAGMA, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::exchange::{Denial, GrantType, MismatchStage, RequestError};
use crate::issuers::ValidationError;

/// What went wrong, in the words of the layer that found it.
#[derive(Debug)]
pub enum ErrorKind {
    /// The form body was refused.
    Request(RequestError),
    /// The request body exceeded the limit.
    BodyTooLarge,
    /// The content type is not a urlencoded form.
    NotForm,
    /// The external token failed validation.
    Validation(ValidationError),
    /// The policy decision denied the exchange.
    Denial(Denial),
    /// The authorization endpoint: only machine flows are supported.
    AuthorizeUnsupported,
    /// No route matched.
    NotFound,
    /// A bug or an unexpected failure; logged in full, answered generically.
    Internal(String),
    /// A rate limit is exceeded: the only 429 answer.
    RateLimited {
        /// `identity` or `issuer`.
        scope: &'static str,
        /// Seconds until the window resets (the `Retry-After` header).
        retry_after: u64,
    },
    /// A one-time-use subject token was already exchanged.
    Replayed,
    /// One-time-use could not be checked: the shared store is unreachable (fail closed).
    StateUnavailable(crate::state::StateError),
}

/// Entra has no public code for a replayed assertion; this one is trustbridge's own.
pub const CODE_REPLAYED: u32 = 7000299;

/// An error response in the making.
#[derive(Debug)]
pub struct ApiError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// The grant in use, when known (decides invalid_client vs invalid_grant).
    pub grant: Option<GrantType>,
    /// Whether the target came from `scope` (`invalid_scope`) or `resource`/`audience`.
    pub target_from_scope: bool,
    /// Ids tying the response to log lines (boxed: errors travel in `Result`s).
    pub ids: Box<ErrorIds>,
}

/// Ids carried by every error response.
#[derive(Debug)]
pub struct ErrorIds {
    /// Request trace id.
    pub trace_id: String,
    /// The client's correlation id, echoed.
    pub correlation_id: String,
    /// `YYYY-MM-DD HH:MM:SSZ`, as Entra formats it.
    pub timestamp: String,
}

impl ApiError {
    /// An error of `kind` for a request with the given ids.
    pub fn new(kind: ErrorKind, trace_id: &str, correlation_id: &str, timestamp: &str) -> Self {
        Self {
            kind,
            grant: None,
            target_from_scope: true,
            ids: Box::new(ErrorIds {
                trace_id: trace_id.to_string(),
                correlation_id: correlation_id.to_string(),
                timestamp: timestamp.to_string(),
            }),
        }
    }

    /// The OAuth `error`, HTTP status and Entra error code of this error.
    pub fn classify(&self) -> (&'static str, StatusCode, Option<u32>) {
        let token_error = match self.grant {
            Some(GrantType::ClientCredentials) => ("invalid_client", StatusCode::UNAUTHORIZED),
            _ => ("invalid_grant", StatusCode::BAD_REQUEST),
        };
        let bad = StatusCode::BAD_REQUEST;
        match &self.kind {
            ErrorKind::Request(e) => match e {
                RequestError::Missing(_) => ("invalid_request", bad, Some(900144)),
                RequestError::UnsupportedGrant => ("unsupported_grant_type", bad, Some(70003)),
                RequestError::Scope(_) => ("invalid_scope", bad, Some(70011)),
                RequestError::Target(_) => ("invalid_target", bad, Some(9002313)),
                RequestError::Duplicate(_)
                | RequestError::TooManyParameters
                | RequestError::NotForm
                | RequestError::Invalid { .. } => ("invalid_request", bad, Some(9002313)),
            },
            ErrorKind::BodyTooLarge => (
                "invalid_request",
                StatusCode::PAYLOAD_TOO_LARGE,
                Some(9002313),
            ),
            ErrorKind::NotForm => ("invalid_request", bad, Some(9002313)),
            ErrorKind::Validation(e) => match e {
                ValidationError::KeysUnavailable(_) => (
                    "temporarily_unavailable",
                    StatusCode::SERVICE_UNAVAILABLE,
                    None,
                ),
                ValidationError::UntrustedIssuer => (token_error.0, token_error.1, Some(700211)),
                ValidationError::Expired
                | ValidationError::NotYetValid
                | ValidationError::IssuedInFuture
                | ValidationError::LifetimeTooLong { .. }
                | ValidationError::TooOld { .. } => (token_error.0, token_error.1, Some(700024)),
                ValidationError::WrongType { .. } | ValidationError::MissingIssuedAt => {
                    (token_error.0, token_error.1, Some(50027))
                }
                ValidationError::AlgorithmNotAllowed(_)
                | ValidationError::UnknownKey
                | ValidationError::KeyTypeMismatch(_)
                | ValidationError::WeakKey(_)
                | ValidationError::BadSignature => (token_error.0, token_error.1, Some(700027)),
                ValidationError::TooLarge { .. }
                | ValidationError::Malformed(_)
                | ValidationError::Encrypted
                | ValidationError::Nested
                | ValidationError::CriticalHeader
                | ValidationError::MissingExpiry
                | ValidationError::BadTimeClaim(_) => (token_error.0, token_error.1, Some(50027)),
            },
            ErrorKind::Denial(d) => match d {
                Denial::UnknownTenant(_) => ("invalid_request", bad, Some(90002)),
                Denial::UnknownResource(_) if self.target_from_scope => {
                    ("invalid_scope", bad, Some(500011))
                }
                Denial::UnknownResource(_) => ("invalid_target", bad, Some(500011)),
                Denial::UnknownClient(_) => ("unauthorized_client", bad, Some(700016)),
                Denial::NoMatchingCredential { stage, .. } => {
                    let code = match stage {
                        MismatchStage::Issuer => 700211,
                        MismatchStage::Audience => 700212,
                        MismatchStage::Subject => 700213,
                        MismatchStage::Condition => 70021,
                    };
                    (token_error.0, token_error.1, Some(code))
                }
                Denial::Ambiguous(_) => ("invalid_request", bad, Some(9002313)),
                Denial::Disabled(_) => ("unauthorized_client", bad, Some(7000112)),
                Denial::NotAssigned { .. } => ("unauthorized_client", bad, Some(501051)),
                Denial::RolesNotAssigned(_) => ("invalid_scope", bad, Some(70011)),
                Denial::NameTemplate(_) | Denial::ClaimMapping { .. } => {
                    (token_error.0, token_error.1, Some(70021))
                }
            },
            ErrorKind::AuthorizeUnsupported => ("unsupported_response_type", bad, None),
            ErrorKind::NotFound => ("invalid_request", StatusCode::NOT_FOUND, None),
            ErrorKind::Internal(_) => ("server_error", StatusCode::INTERNAL_SERVER_ERROR, None),
            ErrorKind::RateLimited { .. } => ("slow_down", StatusCode::TOO_MANY_REQUESTS, None),
            ErrorKind::Replayed => (token_error.0, token_error.1, Some(CODE_REPLAYED)),
            ErrorKind::StateUnavailable(_) => (
                "temporarily_unavailable",
                StatusCode::SERVICE_UNAVAILABLE,
                None,
            ),
        }
    }

    /// A bounded label for metrics and audit records.
    pub fn reason_label(&self) -> &'static str {
        match &self.kind {
            ErrorKind::Request(_) | ErrorKind::NotForm => "invalid_request",
            ErrorKind::BodyTooLarge => "body_too_large",
            ErrorKind::Validation(e) => match e {
                ValidationError::TooLarge { .. } => "token_too_large",
                ValidationError::Malformed(_)
                | ValidationError::Encrypted
                | ValidationError::Nested
                | ValidationError::CriticalHeader => "token_malformed",
                ValidationError::UntrustedIssuer => "untrusted_issuer",
                ValidationError::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
                ValidationError::UnknownKey => "unknown_key",
                ValidationError::KeyTypeMismatch(_) | ValidationError::WeakKey(_) => "bad_key",
                ValidationError::BadSignature => "bad_signature",
                ValidationError::MissingExpiry | ValidationError::BadTimeClaim(_) => {
                    "bad_time_claim"
                }
                ValidationError::Expired => "token_expired",
                ValidationError::NotYetValid | ValidationError::IssuedInFuture => {
                    "token_not_yet_valid"
                }
                ValidationError::KeysUnavailable(_) => "issuer_keys_unavailable",
                ValidationError::LifetimeTooLong { .. } => "token_lifetime_too_long",
                ValidationError::TooOld { .. } => "token_too_old",
                ValidationError::WrongType { .. } => "token_wrong_type",
                ValidationError::MissingIssuedAt => "bad_time_claim",
            },
            ErrorKind::Denial(d) => d.reason_label(),
            ErrorKind::AuthorizeUnsupported => "authorize_unsupported",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Internal(_) => "internal_error",
            ErrorKind::RateLimited { .. } => "rate_limited",
            ErrorKind::Replayed => "replayed",
            ErrorKind::StateUnavailable(_) => "state_unavailable",
        }
    }

    /// The human-readable description (without ids).
    pub fn message(&self) -> String {
        match &self.kind {
            ErrorKind::Request(e) => e.to_string(),
            ErrorKind::BodyTooLarge => "the request body is too large".into(),
            ErrorKind::NotForm => {
                "the request body must be application/x-www-form-urlencoded".into()
            }
            ErrorKind::Validation(e) => {
                let what = match self.grant {
                    Some(GrantType::ClientCredentials) => "client assertion",
                    _ => "subject token",
                };
                format!("the {what} was refused: {e}")
            }
            ErrorKind::Denial(d) => match d {
                Denial::NoMatchingCredential { .. } => {
                    format!("no matching federated identity record: {d}")
                }
                _ => d.to_string(),
            },
            ErrorKind::AuthorizeUnsupported => "only machine flows are supported: use the token endpoint with client_credentials and a client_assertion, or token exchange".into(),
            ErrorKind::NotFound => "no such endpoint".into(),
            ErrorKind::Internal(_) => "the server could not complete the request".into(),
            ErrorKind::RateLimited { scope, retry_after } => format!(
                "too many token requests for this {scope}; retry after {retry_after} seconds"
            ),
            ErrorKind::Replayed => {
                let what = match self.grant {
                    Some(GrantType::ClientCredentials) => "client assertion",
                    _ => "subject token",
                };
                format!(
                    "the {what} was already exchanged: its credential or issuer is oneTimeUse, so each token is accepted once; request a fresh token"
                )
            }
            ErrorKind::StateUnavailable(_) => "one-time-use tokens cannot be checked right now (the replay store is unreachable); retry later".into(),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'static str,
    error_description: String,
    error_codes: Vec<u32>,
    timestamp: &'a str,
    trace_id: &'a str,
    correlation_id: &'a str,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.classify().1
    }

    fn error_response(&self) -> HttpResponse {
        let (error, status, code) = self.classify();
        if let ErrorKind::Internal(detail) = &self.kind {
            tracing::error!(trace_id = %self.ids.trace_id, error = %detail, "request failed unexpectedly");
        }
        let prefix = code.map(|c| format!("TB{c}: ")).unwrap_or_default();
        let body = Body {
            error,
            error_description: format!(
                "{prefix}{} Trace ID: {} Correlation ID: {} Timestamp: {}",
                self.message(),
                self.ids.trace_id,
                self.ids.correlation_id,
                self.ids.timestamp
            ),
            error_codes: code.into_iter().collect(),
            timestamp: &self.ids.timestamp,
            trace_id: &self.ids.trace_id,
            correlation_id: &self.ids.correlation_id,
        };
        let mut response = HttpResponse::build(status);
        response
            .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .insert_header((PRAGMA, HeaderValue::from_static("no-cache")));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((RETRY_AFTER, HeaderValue::from_static("30")));
        }
        if let ErrorKind::RateLimited { retry_after, .. } = &self.kind {
            response.insert_header((RETRY_AFTER, HeaderValue::from(*retry_after)));
        }
        response.json(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: ErrorKind, grant: Option<GrantType>) -> ApiError {
        let mut e = ApiError::new(kind, "t", "c", "2026-01-01 00:00:00Z");
        e.grant = grant;
        e
    }

    #[test]
    fn token_problems_depend_on_the_grant() {
        let cc = err(
            ErrorKind::Validation(ValidationError::BadSignature),
            Some(GrantType::ClientCredentials),
        );
        assert_eq!(
            cc.classify(),
            ("invalid_client", StatusCode::UNAUTHORIZED, Some(700027))
        );
        let te = err(
            ErrorKind::Validation(ValidationError::BadSignature),
            Some(GrantType::TokenExchange),
        );
        assert_eq!(
            te.classify(),
            ("invalid_grant", StatusCode::BAD_REQUEST, Some(700027))
        );
    }

    #[test]
    fn denials_are_never_429_or_5xx() {
        let denials = [
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
        ];
        for d in denials {
            for grant in [GrantType::ClientCredentials, GrantType::TokenExchange] {
                let (_, status, code) = err(ErrorKind::Denial(d.clone()), Some(grant)).classify();
                assert!(
                    status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS,
                    "{d:?}"
                );
                assert!(code.is_some(), "{d:?}");
            }
        }
    }

    #[test]
    fn entra_codes_for_credential_stages() {
        let code = |stage| {
            err(
                ErrorKind::Denial(Denial::NoMatchingCredential {
                    stage,
                    detail: String::new(),
                }),
                Some(GrantType::TokenExchange),
            )
            .classify()
            .2
        };
        assert_eq!(code(MismatchStage::Issuer), Some(700211));
        assert_eq!(code(MismatchStage::Audience), Some(700212));
        assert_eq!(code(MismatchStage::Subject), Some(700213));
        assert_eq!(code(MismatchStage::Condition), Some(70021));
    }

    #[test]
    fn body_carries_entra_fields() {
        let e = err(ErrorKind::Denial(Denial::UnknownTenant("x".into())), None);
        let resp = e.error_response();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            resp.headers().get(CACHE_CONTROL).map(|v| v.as_bytes()),
            Some(&b"no-store"[..])
        );
    }

    #[test]
    fn only_rate_limits_answer_429_with_their_retry_after() {
        let e = err(
            ErrorKind::RateLimited {
                scope: "identity",
                retry_after: 42,
            },
            Some(GrantType::ClientCredentials),
        );
        assert_eq!(
            e.classify(),
            ("slow_down", StatusCode::TOO_MANY_REQUESTS, None)
        );
        let resp = e.error_response();
        assert_eq!(
            resp.headers().get(RETRY_AFTER).map(|v| v.as_bytes()),
            Some(&b"42"[..])
        );
        assert_eq!(e.reason_label(), "rate_limited");
    }

    #[test]
    fn replays_are_denials_and_an_unreachable_store_is_503() {
        let cc = err(ErrorKind::Replayed, Some(GrantType::ClientCredentials));
        assert_eq!(
            cc.classify(),
            (
                "invalid_client",
                StatusCode::UNAUTHORIZED,
                Some(CODE_REPLAYED)
            )
        );
        assert!(
            cc.message()
                .contains("client assertion was already exchanged")
        );
        let te = err(ErrorKind::Replayed, Some(GrantType::TokenExchange));
        assert_eq!(te.classify().0, "invalid_grant");
        assert!(te.message().contains("subject token"));

        let down = err(
            ErrorKind::StateUnavailable(crate::state::StateError::Unavailable("x".into())),
            Some(GrantType::TokenExchange),
        );
        assert_eq!(
            down.classify(),
            (
                "temporarily_unavailable",
                StatusCode::SERVICE_UNAVAILABLE,
                None
            )
        );
        assert!(down.error_response().headers().contains_key(RETRY_AFTER));
    }
}
