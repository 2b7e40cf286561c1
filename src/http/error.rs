//! The only `ResponseError` implementation, and the one place where a [`Refusal`] becomes an
//! HTTP response: an RFC 6749 error body with Entra's extra fields (`error_codes`,
//! `timestamp`, `trace_id`, `correlation_id`), a status, and the cache and `Retry-After`
//! headers.
//!
//! What a refusal says (error, status class, Entra code, description) is decided by the
//! domain error itself (see [`crate::refusal`]); this module only renders it. The body carries
//! the refusal's public description, never its private detail (configured policy values, CEL
//! errors, key URLs and paths): that goes to the audit trail, and for a 5xx to the log line
//! beside the trace id the client got (issue 12, flaws 6 and 7). Only the development switch
//! `verboseErrors` ([`ErrorIds::verbose_errors`], loopback listeners only) renders the detail
//! instead. Descriptions never echo a token or a secret; an unexpected failure is logged in
//! full here and answered with a generic `server_error`.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, HeaderValue, PRAGMA, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::http::extract::{BodyError, ErrorIds};
use crate::refusal::{Context, OAuthError, Refusal, Refuse, StatusClass};

/// Refusals of the HTTP surface itself, before any domain code runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpRefusal {
    /// The request body exceeded the limit.
    BodyTooLarge,
    /// The content type is not a urlencoded form, or the body could not be read.
    NotForm,
    /// The authorization endpoint: only machine flows are supported.
    AuthorizeUnsupported,
    /// No route matched.
    NotFound,
}

impl From<&BodyError> for HttpRefusal {
    fn from(e: &BodyError) -> Self {
        match e {
            BodyError::TooLarge => Self::BodyTooLarge,
            BodyError::Read(_) => Self::NotForm,
        }
    }
}

impl Refuse for HttpRefusal {
    fn refusal(&self, _: Context) -> Refusal {
        use crate::refusal::CODE_INVALID_REQUEST;
        match self {
            Self::BodyTooLarge => Refusal::new(
                OAuthError::InvalidRequest,
                StatusClass::PayloadTooLarge,
                Some(CODE_INVALID_REQUEST),
                "body_too_large",
                "the request body is too large",
            ),
            Self::NotForm => Refusal::bad_request(
                OAuthError::InvalidRequest,
                Some(CODE_INVALID_REQUEST),
                "invalid_request",
                "the request body must be application/x-www-form-urlencoded",
            ),
            Self::AuthorizeUnsupported => Refusal::bad_request(
                OAuthError::UnsupportedResponseType,
                None,
                "authorize_unsupported",
                "only machine flows are supported: use the token endpoint with client_credentials and a client_assertion, or token exchange",
            ),
            Self::NotFound => Refusal::new(
                OAuthError::InvalidRequest,
                StatusClass::NotFound,
                None,
                "not_found",
                "no such endpoint",
            ),
        }
    }
}

/// An error response in the making: a refusal and the ids of its request.
#[derive(Debug)]
pub struct ApiError {
    refusal: Box<Refusal>,
    ids: Box<ErrorIds>,
    /// The full detail of an unexpected failure: logged, never sent.
    internal: Option<String>,
}

impl ApiError {
    /// An answer of `refusal` for the request with `ids`.
    pub fn new(refusal: Refusal, ids: &ErrorIds) -> Self {
        Self {
            refusal: Box::new(refusal),
            ids: Box::new(ids.clone()),
            internal: None,
        }
    }

    /// The refusal of `error` in `ctx`, for the request with `ids`.
    pub fn refused(error: &dyn Refuse, ctx: Context, ids: &ErrorIds) -> Self {
        Self::new(error.refusal(ctx), ids)
    }

    /// A bug or an unexpected failure: `detail` is logged when the response is built, the
    /// client gets a generic `server_error`.
    pub fn internal(detail: impl fmt::Display, ids: &ErrorIds) -> Self {
        Self {
            internal: Some(detail.to_string()),
            ..Self::new(Refusal::server_error(), ids)
        }
    }

    /// What the client is told.
    pub fn refusal(&self) -> &Refusal {
        &self.refusal
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.refusal.description)
    }
}

fn status(class: StatusClass) -> StatusCode {
    match class {
        StatusClass::BadRequest => StatusCode::BAD_REQUEST,
        StatusClass::Unauthorized => StatusCode::UNAUTHORIZED,
        StatusClass::NotFound => StatusCode::NOT_FOUND,
        StatusClass::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        StatusClass::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        StatusClass::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        StatusClass::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
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
        status(self.refusal.status)
    }

    fn error_response(&self) -> HttpResponse {
        let refusal = &self.refusal;
        let ids = &self.ids;
        if let Some(detail) = &self.internal {
            tracing::error!(trace_id = %ids.trace_id, error = %detail, "request failed unexpectedly");
        } else if refusal.status == StatusClass::Unavailable {
            // The client only learns that a dependency is down; the operator needs which one
            // and why (the URL, the path, the fetch error), found through the trace id.
            tracing::warn!(
                trace_id = %ids.trace_id,
                reason = refusal.reason,
                detail = %refusal.detail(),
                "request refused: a dependency is unavailable"
            );
        }
        let prefix = refusal.code.map(|c| format!("TB{c}: ")).unwrap_or_default();
        let description = if ids.verbose_errors {
            refusal.detail()
        } else {
            &refusal.description
        };
        let timestamp = ids.timestamp();
        let body = Body {
            error: refusal.error.as_str(),
            error_description: format!(
                "{prefix}{description} Trace ID: {} Correlation ID: {} Timestamp: {}",
                ids.trace_id, ids.correlation_id, timestamp
            ),
            error_codes: refusal.code.into_iter().collect(),
            timestamp: &timestamp,
            trace_id: &ids.trace_id,
            correlation_id: &ids.correlation_id,
        };
        let mut response = HttpResponse::build(self.status_code());
        response
            .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .insert_header((PRAGMA, HeaderValue::from_static("no-cache")));
        if let Some(seconds) = refusal.retry_after {
            response.insert_header((RETRY_AFTER, HeaderValue::from(seconds)));
        }
        response.json(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::Denial;
    use crate::state::{GuardRefusal, StateError};

    fn ids() -> ErrorIds {
        ErrorIds {
            trace_id: "t".into(),
            correlation_id: "c".into(),
            arrived: std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_767_225_600),
            verbose_errors: false,
        }
    }

    async fn description_of(e: &ApiError) -> String {
        let body = actix_web::body::to_bytes(e.error_response().into_body())
            .await
            .expect("body");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        json["error_description"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    #[actix_web::test]
    async fn the_body_carries_the_public_description_unless_verbose() {
        let denial = Denial::Disabled("zz-secret-identity".into());
        let quiet = ApiError::refused(&denial, Context::default(), &ids());
        let text = description_of(&quiet).await;
        assert!(text.contains("the identity is disabled"), "{text}");
        assert!(!text.contains("zz-secret-identity"), "{text}");
        let verbose_ids = ErrorIds {
            verbose_errors: true,
            ..ids()
        };
        let verbose = ApiError::refused(&denial, Context::default(), &verbose_ids);
        let text = description_of(&verbose).await;
        assert!(text.contains("zz-secret-identity"), "{text}");
        assert!(text.contains("Trace ID: t"), "{text}");
    }

    #[test]
    fn body_carries_entra_fields() {
        let e = ApiError::refused(
            &Denial::UnknownTenant("x".into()),
            Context::default(),
            &ids(),
        );
        let resp = e.error_response();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            resp.headers().get(CACHE_CONTROL).map(|v| v.as_bytes()),
            Some(&b"no-store"[..])
        );
    }

    #[test]
    fn rate_limits_answer_429_with_their_retry_after() {
        let e = ApiError::refused(
            &GuardRefusal::RateLimited {
                scope: "identity",
                retry_after: 42,
            },
            Context::default(),
            &ids(),
        );
        let resp = e.error_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            resp.headers().get(RETRY_AFTER).map(|v| v.as_bytes()),
            Some(&b"42"[..])
        );
    }

    #[test]
    fn an_unreachable_store_answers_503_with_retry_after() {
        let down = GuardRefusal::Unavailable(StateError::Unavailable("x".into()));
        let resp = ApiError::refused(&down, Context::default(), &ids()).error_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            resp.headers().get(RETRY_AFTER).map(|v| v.as_bytes()),
            Some(&b"30"[..])
        );
    }

    #[test]
    fn internal_errors_are_generic_server_errors() {
        let e = ApiError::internal("key file vanished", &ids());
        assert_eq!(e.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.refusal().error, OAuthError::ServerError);
        assert!(!e.to_string().contains("vanished"));
    }

    #[test]
    fn http_refusals_keep_their_statuses() {
        let status_of = |r: HttpRefusal| status(r.refusal(Context::default()).status);
        assert_eq!(
            status_of(HttpRefusal::BodyTooLarge),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(status_of(HttpRefusal::NotForm), StatusCode::BAD_REQUEST);
        assert_eq!(status_of(HttpRefusal::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(
            status_of(HttpRefusal::AuthorizeUnsupported),
            StatusCode::BAD_REQUEST
        );
    }
}
