//! Reading request parts that are hostile input: the body (size-capped while streaming, so an
//! oversized body is refused without being buffered) and the client's correlation id.

use actix_web::HttpRequest;
use actix_web::web::{Bytes, BytesMut, Payload};
use futures_util::StreamExt;

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
