//! Liveness, readiness and the Prometheus scrape.

use actix_web::{HttpResponse, web};
use prometheus::{Encoder, TextEncoder};

use crate::gateway::Gateway;

/// `GET /healthz`: the process is serving.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// `GET /readyz`: policies and signing keys are loaded and the gateway is not shutting down.
pub async fn readyz(gw: web::Data<Gateway>) -> HttpResponse {
    if gw.is_ready() {
        HttpResponse::Ok()
            .content_type("text/plain")
            .body("ready\n")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("not ready\n")
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(gw: web::Data<Gateway>) -> HttpResponse {
    // Stale trust is computed at scrape: it changes by the day, not by the request.
    gw.inventory()
        .refresh_unused_gauge(&gw.policies(), gw.clock().now())
        .await;
    let mut out = Vec::new();
    let encoder = TextEncoder::new();
    if let Err(e) = encoder.encode(&gw.registry().gather(), &mut out) {
        tracing::error!(error = %e, "metrics encoding failed");
        return HttpResponse::InternalServerError().finish();
    }
    HttpResponse::Ok()
        .content_type(encoder.format_type())
        .body(out)
}
