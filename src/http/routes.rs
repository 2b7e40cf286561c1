//! The route table of DESIGN §4, and a JSON 404 for everything else.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::gateway::Gateway;
use crate::http::error::{ApiError, HttpRefusal};
use crate::http::extract::ErrorIds;
use crate::http::{discovery, health, token};
use crate::refusal::Context;

/// Registers every route on `cfg`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // The token endpoint first: actix-web tries routes in order, and every dynamic pattern it
    // tries before the match costs a regex run on the hottest path.
    cfg.route("/{tenant}/oauth2/v2.0/token", web::post().to(token::token))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            web::get().to(discovery::openid_configuration),
        )
        .route(
            "/{tenant}/discovery/v2.0/keys",
            web::get().to(discovery::jwks),
        )
        .route(
            "/{tenant}/oauth2/v2.0/authorize",
            web::route().to(discovery::authorize),
        )
        .default_service(web::to(not_found));
}

async fn not_found(gw: web::Data<Gateway>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let ids = ErrorIds::of(&req, gw.clock().now());
    Err(ApiError::refused(
        &HttpRefusal::NotFound,
        Context::default(),
        &ids,
    ))
}
