//! The admin listener's route table and handlers: the console's assets, the versioned JSON API
//! (`/admin/v1/graph`, `/admin/v1/explain`, `/admin/v1/decisions`, `/admin/v1/identities`) and
//! the probes and scrape shared with the public listener.
//!
//! Read-only by design: every route is a GET except `POST /admin/v1/explain`, which computes
//! an answer and changes nothing. The API answers 401 without the admin bearer token when one
//! is configured; without one (a loopback bind) it only answers requests whose `Host` is
//! loopback, so a web page cannot reach it through DNS rebinding. The console's static assets
//! hold no data and need no token. Every response carries the console's strict CSP.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{DefaultHeaders, Next, from_fn};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::admin::console;
use crate::admin::explain::{self, ExplainInput, Signature};
use crate::gateway::Gateway;
use crate::http::{extract, health};
use crate::issuers::validate::peek;
use crate::policy::graph;
use crate::telemetry::recent::Filter;
use crate::tools::token_from_claims;

/// The console's Content-Security-Policy: nothing inline, nothing from elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Decisions returned when `limit` is not given.
pub const DEFAULT_DECISIONS: usize = 100;

/// Security headers of every admin response.
pub fn headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::CACHE_CONTROL, "no-store"))
}

/// Registers every admin route on `cfg`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(console::index))
        .route("/console/{asset}", web::get().to(console::asset))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .service(
            web::scope("/admin/v1")
                .wrap(from_fn(require_admin))
                // Resources answer 405 to any other method: the API is read-only.
                .service(web::resource("/graph").route(web::get().to(graph_json)))
                .service(web::resource("/explain").route(web::post().to(explain_json)))
                .service(web::resource("/decisions").route(web::get().to(decisions)))
                .service(web::resource("/identities").route(web::get().to(identities)))
                .default_service(web::to(not_found)),
        )
        .default_service(web::to(not_found));
}

/// A JSON error body `{error, error_description}`.
fn problem(status: StatusCode, error: &str, description: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "error": error,
        "error_description": description,
    }))
}

async fn not_found() -> HttpResponse {
    problem(StatusCode::NOT_FOUND, "not_found", "no such admin route")
}

/// Whether `host` (a `Host` header value) names a loopback address or `localhost`.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn require_admin(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let token = req.app_data::<web::Data<Gateway>>().and_then(|gw| {
        gw.admin_token()
            .map(|t| t.admits(auth_header(req.request())))
    });
    let refusal = match token {
        Some(true) => None,
        Some(false) => Some(
            HttpResponse::build(StatusCode::UNAUTHORIZED)
                .insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"trustbridge-admin\""),
                ))
                .json(json!({
                    "error": "unauthorized",
                    "error_description": "the admin API requires the bearer token of --admin-token-file",
                })),
        ),
        None => {
            let host = req.connection_info().host().to_string();
            (!loopback_host(&host)).then(|| {
                problem(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "without --admin-token-file the admin API only answers requests for a loopback host",
                )
            })
        }
    };
    match refusal {
        Some(response) => Ok(req.into_response(response)),
        None => Ok(next.call(req).await?.map_into_boxed_body()),
    }
}

fn auth_header(req: &HttpRequest) -> Option<&[u8]> {
    req.headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes)
}

/// `GET /admin/v1/graph`.
async fn graph_json(gw: web::Data<Gateway>) -> HttpResponse {
    let policies = gw.policies();
    let mut built = graph::build(&policies);
    with_fetch_settings(&mut built, &policies, &gw.settings().issuer_fetch);
    // Lines from the text the serving set was loaded from: the files may since hold an edit
    // that a reload refused.
    graph::locate(&mut built, policies.sources());
    HttpResponse::Ok().json(built)
}

/// Adds to each issuer node its effective fetch settings (the global `--issuer-*` settings
/// merged with its `fetch:` block) as `details.fetch`: `{"timeout": {"value": "2s",
/// "source": "issuer"}, ...}`, `source` being `issuer` or `global`.
fn with_fetch_settings(
    built: &mut graph::Graph,
    policies: &crate::policy::PolicySet,
    global: &crate::fetch_settings::FetchSettings,
) {
    for node in &mut built.nodes {
        if node.kind != graph::NodeKind::Issuer {
            continue;
        }
        let Some(issuer) = policies.issuer(&node.name) else {
            continue;
        };
        let effective = global
            .merged(&issuer.fetch)
            .unwrap_or_else(|_| global.clone());
        let fields: serde_json::Map<String, serde_json::Value> = effective
            .entries(&issuer.fetch)
            .into_iter()
            .map(|e| {
                let source = if e.from_issuer { "issuer" } else { "global" };
                (
                    e.field.display_key().to_string(),
                    json!({ "value": e.value, "source": source }),
                )
            })
            .collect();
        node.details.insert("fetch".into(), fields.into());
    }
}

/// `GET /admin/v1/identities?unusedFor=30d`: every declared identity and every recorded one,
/// with their credentials' usage; `unusedFor` keeps what has not been used for that long.
async fn identities(gw: web::Data<Gateway>, req: HttpRequest) -> HttpResponse {
    let mut unused_for = None;
    for (name, value) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        match name.as_ref() {
            "unusedFor" if value.is_empty() => {}
            "unusedFor" => match humantime::parse_duration(&value) {
                Ok(d) => unused_for = Some(d),
                Err(_) => {
                    return problem(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "unusedFor must be a duration such as 30d or 12h",
                    );
                }
            },
            _ => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "known parameters: unusedFor",
                );
            }
        }
    }
    let inventory = gw.inventory();
    let policies = gw.policies();
    match inventory
        .list(&policies, gw.clock().now(), unused_for)
        .await
    {
        Ok(list) => HttpResponse::Ok().json(json!({
            "policy_hash": policies.content_hash(),
            "unused_after_s": inventory.unused_after().as_secs(),
            "unused_for_s": unused_for.map(|d| d.as_secs()),
            "identities": list,
        })),
        Err(e) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            &e.to_string(),
        ),
    }
}

/// `GET /admin/v1/decisions?limit=N&outcome=&identity=`.
async fn decisions(gw: web::Data<Gateway>, req: HttpRequest) -> HttpResponse {
    let recent = gw.audit().recent();
    let mut limit = DEFAULT_DECISIONS;
    let mut outcome = None;
    let mut identity = None;
    for (name, value) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        match name.as_ref() {
            "limit" => match value.parse::<usize>() {
                Ok(n) if n >= 1 => limit = n.min(recent.capacity()),
                _ => {
                    return problem(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "limit must be a positive integer",
                    );
                }
            },
            "outcome" if !value.is_empty() => outcome = Some(value.into_owned()),
            "identity" if !value.is_empty() => identity = Some(value.into_owned()),
            "outcome" | "identity" => {}
            _ => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "known parameters: limit, outcome, identity",
                );
            }
        }
    }
    let filter = Filter {
        outcome: outcome.as_deref(),
        identity: identity.as_deref(),
    };
    let events = recent.newest(limit, &filter);
    HttpResponse::Ok().json(json!({
        "policy_hash": gw.policies().content_hash(),
        "capacity": recent.capacity(),
        "decisions": events,
    }))
}

/// `POST /admin/v1/explain`: JSON in, the explanation out; nothing is recorded.
async fn explain_json(
    gw: web::Data<Gateway>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let bad = |message: &str| problem(StatusCode::BAD_REQUEST, "invalid_request", message);
    let json_body = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json_body {
        return bad("the body must be application/json");
    }
    let body = match extract::read_body(&req, payload, explain::MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(extract::BodyError::TooLarge) => {
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "the body is larger than 64 KiB",
            );
        }
        Err(e) => return bad(&e.to_string()),
    };
    let input = match ExplainInput::parse(&body) {
        Ok(i) => i,
        Err(e) => return bad(&e),
    };
    let snapshot = gw.snapshot();
    let policies = &snapshot.policies;
    let token = match &input.token {
        None => explain::claims_token(&input, policies).map(|t| (t, Signature::ClaimsOnly)),
        Some(raw) => {
            let raw = raw.trim();
            match snapshot.issuers.validate(raw).await {
                Ok(t) => Ok((t, Signature::Verified)),
                Err(why) => peek(raw)
                    .map_err(|e| format!("the token cannot be read: {e}"))
                    .and_then(|p| token_from_claims(policies, None, p.claims))
                    .map(|t| (t, Signature::Failed(why.to_string()))),
            }
        }
    };
    let (token, signature) = match token {
        Ok(t) => t,
        Err(e) => return bad(&e),
    };
    match explain::report(&token, &signature, &input, policies, gw.clock().now()) {
        Ok(body) => HttpResponse::Ok().json(body),
        Err(e) => bad(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::loopback_host;

    #[test]
    fn only_loopback_hosts_reach_an_unauthenticated_admin_api() {
        for ok in [
            "127.0.0.1:9090",
            "localhost:9090",
            "LOCALHOST",
            "[::1]:9090",
            "127.0.0.2",
        ] {
            assert!(loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example:9090",
            "10.0.0.1:9090",
            "",
            "[::2]:1",
            "localhost.evil",
        ] {
            assert!(!loopback_host(bad), "{bad}");
        }
    }
}
