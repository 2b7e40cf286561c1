//! Per-tenant OpenID discovery document and JWKS: what lets any standard verifier trust
//! trustbridge's tokens. `issuer` here is byte-identical to every token's `iss`.

use actix_web::http::header::{CACHE_CONTROL, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::exchange::Denial;
use crate::exchange::request::{TOKEN_EXCHANGE, TOKEN_TYPE_ACCESS_TOKEN};
use crate::gateway::Gateway;
use crate::http::error::{ApiError, HttpRefusal};
use crate::http::extract::{ErrorIds, shown_tenant};
use crate::refusal::Context;

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
pub async fn openid_configuration(
    gw: web::Data<Gateway>,
    tenant: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let tenant = known_tenant(&gw, &tenant, &req)?;
    let base = &gw.settings().public_url;
    let alg = gw.keys().algorithm().as_str();
    let doc = json!({
        "issuer": gw.settings().tenant_issuer(&tenant),
        "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
        "token_endpoint": gw.settings().token_endpoint(&tenant),
        "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [alg],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": crate::jose::SigningAlgorithm::ALL.map(|a| a.as_str()),
        "grant_types_supported": ["client_credentials", TOKEN_EXCHANGE],
        "scopes_supported": [".default"],
        "claims_supported": crate::jose::FIXED_CLAIMS,
        "token_types_supported": [TOKEN_TYPE_ACCESS_TOKEN],
        "dpop_signing_alg_values_supported": crate::dpop::ALGORITHMS.map(|a| a.as_str()),
    });
    Ok(HttpResponse::Ok()
        .insert_header((
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        ))
        .json(doc))
}

/// `GET /{tenant}/discovery/v2.0/keys`.
pub async fn jwks(
    gw: web::Data<Gateway>,
    tenant: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    known_tenant(&gw, &tenant, &req)?;
    // Short max-age: verifiers should notice a published next key well before it signs.
    Ok(HttpResponse::Ok()
        .insert_header((
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        ))
        .json(gw.keys().jwks()))
}

/// `GET|POST /{tenant}/oauth2/v2.0/authorize`: machine flows only.
pub async fn authorize(gw: web::Data<Gateway>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let ids = ErrorIds::of(&req, gw.clock().now());
    Err(ApiError::refused(
        &HttpRefusal::AuthorizeUnsupported,
        Context::default(),
        &ids,
    ))
}

fn known_tenant(gw: &Gateway, tenant: &str, req: &HttpRequest) -> Result<String, ApiError> {
    if gw.policies().tenant(tenant).is_some() {
        return Ok(tenant.to_string());
    }
    let ids = ErrorIds::of(req, gw.clock().now());
    let unknown = Denial::UnknownTenant(shown_tenant(tenant));
    Err(ApiError::refused(&unknown, Context::default(), &ids))
}
