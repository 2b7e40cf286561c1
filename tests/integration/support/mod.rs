//! Test servers: [`TestIssuer`] (discovery + JWKS for keys made at start) and [`TestGateway`]
//! (the same `app::build` + `app::server` as `trustbridge serve`).

#![allow(dead_code)]

pub mod gateway;
pub mod issuer;
pub mod logs;
pub mod redis;
pub mod tls;

pub use gateway::TestGateway;
pub use issuer::TestIssuer;

use std::sync::Arc;

use trustbridge::clock::ManualClock;

/// 2026-01-01T00:00:00Z, the time base of ../shared/platform-claims.
pub const T0: u64 = 1_767_225_600;

/// A manual clock at [`T0`], shared by issuer and gateway.
pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::at_unix(T0))
}

/// An HTTP client that never uses a proxy (tests talk to 127.0.0.1 only).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("test client")
}

/// Decodes a compact JWS's header and payload without verifying (tests verify separately).
pub fn decode_parts(token: &str) -> (serde_json::Value, serde_json::Value) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let header = b64
        .decode(parts.next().expect("header"))
        .expect("b64 header");
    let payload = b64
        .decode(parts.next().expect("payload"))
        .expect("b64 payload");
    (
        serde_json::from_slice(&header).expect("header json"),
        serde_json::from_slice(&payload).expect("payload json"),
    )
}
