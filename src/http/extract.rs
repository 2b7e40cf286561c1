//! Reading request parts that are hostile input: the body (size-capped while streaming, so an
//! oversized body is refused without being buffered), the client's correlation id, and the
//! ids ([`ErrorIds`]) that tie a response to its log and audit lines, read once per request
//! (the trace id follows a valid W3C `traceparent`).

use std::time::SystemTime;

use actix_web::HttpRequest;
use actix_web::web::{Bytes, BytesMut, Data, Payload};
use futures_util::StreamExt;

use crate::gateway::Gateway;
use crate::telemetry::traces;

/// Largest token request body accepted (a subject token is capped far below this).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Over the cap.
    #[error("request body too large")]
    TooLarge,
    /// The connection failed mid-body.
    #[error("request body could not be read: {0}")]
    Read(String),
}

/// Reads the whole body, refusing it as soon as it passes `max` bytes.
pub async fn read_body(
    req: &HttpRequest,
    mut payload: Payload,
    max: usize,
) -> Result<Bytes, BodyError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > max) {
        return Err(BodyError::TooLarge);
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
        if body.len() + chunk.len() > max {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Whether the request declares a urlencoded form body (parameters after `;` ignored).
pub fn is_form(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The client's `client-request-id` (MSAL and azure-identity send one), if it is a short
/// token of safe characters; anything else is ignored rather than echoed.
pub fn correlation_id(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get("client-request-id")?.to_str().ok()?;
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    ok.then(|| value.to_string())
}

/// A request header's value when it is visible ASCII (else `None`, as if absent).
pub fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name)?.to_str().ok()
}

/// A fresh trace id for a request without a valid `traceparent`: a random UUID.
pub fn random_trace_id() -> String {
    crate::ids::uuid_v4().to_string()
}

/// The tenant from the URL as it may be echoed: no control characters, at most 64 of them.
pub fn shown_tenant(tenant: &str) -> String {
    crate::text::shown(tenant, 64)
}

/// Ids that tie a response to its log lines and audit records, carried by every error
/// response and every audit record of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorIds {
    /// Request trace id (fresh per request).
    pub trace_id: String,
    /// The client's correlation id, echoed (or the trace id when it sent none).
    pub correlation_id: String,
    /// When the request arrived; error bodies show it as [`ErrorIds::timestamp`] (formatted only
    /// when an error is rendered, not for every request).
    pub arrived: SystemTime,
    /// Whether error responses of this request carry the refusal's private detail instead of
    /// its public description: the development-only `verboseErrors` setting, which
    /// `config` allows on loopback listeners only. Off unless the gateway has it on.
    pub verbose_errors: bool,
}

impl ErrorIds {
    /// Reads the ids of `req` arriving at `now`: a fresh trace id, the client's
    /// `client-request-id` when it is safe to echo (else the trace id), the Entra timestamp,
    /// and the gateway's `verboseErrors` setting (off when no gateway is registered).
    ///
    /// The trace id is the W3C `traceparent`'s (32 hex digits) when the request carries a
    /// valid one, else a random UUID.
    pub fn of(req: &HttpRequest, now: SystemTime) -> Self {
        let trace_id = traces::trace_parent(header(req, "traceparent"))
            .map_or_else(random_trace_id, |p| p.trace_id);
        Self::with_trace_id(req, now, trace_id)
    }

    /// As [`ErrorIds::of`], with the trace id already decided (the token handler takes its
    /// `exchange` span's).
    pub fn with_trace_id(req: &HttpRequest, now: SystemTime, trace_id: String) -> Self {
        let correlation_id = correlation_id(req).unwrap_or_else(|| trace_id.clone());
        let verbose_errors = req
            .app_data::<Data<Gateway>>()
            .is_some_and(|gw| gw.settings().verbose_errors);
        Self {
            trace_id,
            correlation_id,
            arrived: now,
            verbose_errors,
        }
    }

    /// The arrival time as Entra writes it in error bodies (`YYYY-MM-DD HH:MM:SSZ`): RFC 3339
    /// seconds with a space for the `T`.
    pub fn timestamp(&self) -> String {
        humantime::format_rfc3339_seconds(self.arrived)
            .to_string()
            .replace('T', " ")
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn ids_echo_a_safe_correlation_id_and_fall_back_to_the_trace_id() {
        let now = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let req = TestRequest::default()
            .insert_header(("client-request-id", "abc-123"))
            .to_http_request();
        let ids = ErrorIds::of(&req, now);
        assert_eq!(ids.correlation_id, "abc-123");
        assert_eq!(ids.timestamp(), "2026-01-01 00:00:00Z");
        let hostile = TestRequest::default()
            .insert_header(("client-request-id", "a b\"c"))
            .to_http_request();
        let ids = ErrorIds::of(&hostile, now);
        assert_eq!(ids.correlation_id, ids.trace_id);
        assert!(!ids.verbose_errors, "off without a gateway");
    }

    #[test]
    fn the_trace_id_is_a_valid_traceparents_else_a_random_uuid() {
        let now = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let req = TestRequest::default()
            .insert_header(("traceparent", format!("00-{trace}-00f067aa0ba902b7-01")))
            .to_http_request();
        let ids = ErrorIds::of(&req, now);
        assert_eq!(ids.trace_id, trace);
        assert_eq!(
            ids.correlation_id, trace,
            "the fallback correlation id follows"
        );
        for bad in [
            format!("00-{trace}-0000000000000000-01"),
            format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)),
            format!("zz-{trace}-00f067aa0ba902b7-01"),
            "garbage".to_string(),
        ] {
            let req = TestRequest::default()
                .insert_header(("traceparent", bad.as_str()))
                .to_http_request();
            let ids = ErrorIds::of(&req, now);
            assert_eq!(ids.trace_id.len(), 36, "{bad}: a UUID");
            assert!(uuid::Uuid::parse_str(&ids.trace_id).is_ok(), "{bad}");
        }
    }
}
