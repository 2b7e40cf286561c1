//! The route table of DESIGN §4, a JSON 404 for everything else, and the token endpoint's
//! fast path ([`TokenFastPath`]) in front of the router.

use std::future::{Ready, ready};

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::Method;
use actix_web::{FromRequest as _, HttpRequest, HttpResponse, web};
use futures_util::future::{Either, LocalBoxFuture};

use crate::gateway::Gateway;
use crate::http::error::{ApiError, HttpRefusal};
use crate::http::extract::ErrorIds;
use crate::http::{discovery, health, token};
use crate::refusal::Context;

/// Registers every route on `cfg`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // The token endpoint first: actix-web tries routes in order, and every dynamic pattern it
    // tries before the match costs a regex run on the hottest path.
    // Plain token requests never get here (see `TokenFastPath`); the route serves the rest.
    cfg.route("/{tenant}/oauth2/v2.0/token", web::post().to(token::routed))
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

/// The path of the token endpoint after the tenant segment.
const TOKEN_PATH_SUFFIX: &str = "/oauth2/v2.0/token";

/// The tenant of a `POST /{tenant}/oauth2/v2.0/token` whose tenant segment is unreserved
/// characters only (RFC 3986: letters, digits, `-._~`), so that the router would extract the
/// very same string (percent-decoding is the identity on it); `None` for anything else.
fn plain_token_tenant<'a>(method: &Method, path: &'a str) -> Option<&'a str> {
    if method != Method::POST {
        return None;
    }
    let tenant = path.strip_prefix('/')?.strip_suffix(TOKEN_PATH_SUFFIX)?;
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    (!tenant.is_empty() && tenant.bytes().all(unreserved)).then_some(tenant)
}

/// Middleware that hands a plain token request (see [`plain_token_tenant`]) straight to
/// [`token::token`], skipping the router: actix-web matches `/{tenant}/...` patterns with a
/// regex, about 18,000 instructions per request (2.3 % of an exchange). Every other request,
/// including token requests with an escaped or unusual tenant segment, goes through the route
/// table as before, to the same handler.
pub struct TokenFastPath;

impl<S, B> Transform<S, ServiceRequest> for TokenFastPath
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = TokenFastPathService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(TokenFastPathService { service }))
    }
}

/// The service [`TokenFastPath`] wraps around the application's router.
pub struct TokenFastPathService<S> {
    service: S,
}

impl<S, B> Service<ServiceRequest> for TokenFastPathService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = Either<
        LocalBoxFuture<'static, Result<Self::Response, Self::Error>>,
        LocalBoxFuture<'static, Result<Self::Response, Self::Error>>,
    >;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let fast = plain_token_tenant(req.method(), req.path()).and_then(|tenant| {
            let gw = req.app_data::<web::Data<Gateway>>()?.clone();
            Some((tenant.to_owned(), gw))
        });
        let Some((tenant, gw)) = fast else {
            let routed = self.service.call(req);
            return Either::Right(Box::pin(async move {
                routed.await.map(ServiceResponse::map_into_left_body)
            }));
        };
        let (http, mut payload) = req.into_parts();
        Either::Left(Box::pin(async move {
            let payload = web::Payload::from_request(&http, &mut payload).await?;
            let response: HttpResponse<BoxBody> =
                match token::token(gw, tenant, http.clone(), payload).await {
                    Ok(response) => response,
                    Err(err) => HttpResponse::from_error(err),
                };
            Ok(ServiceResponse::new(http, response).map_into_right_body())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_token_posts_take_the_fast_path() {
        let post = Method::POST;
        let tenant = |path| plain_token_tenant(&post, path);
        assert_eq!(tenant("/contoso/oauth2/v2.0/token"), Some("contoso"));
        assert_eq!(
            tenant("/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token"),
            Some("72f988bf-86f1-41af-91ab-2d7cd011db47")
        );
        assert_eq!(tenant("/a.b_c~d/oauth2/v2.0/token"), Some("a.b_c~d"));
        for routed in [
            "/oauth2/v2.0/token",
            "//oauth2/v2.0/token",
            "/%63ontoso/oauth2/v2.0/token",
            "/con+toso/oauth2/v2.0/token",
            "/a/b/oauth2/v2.0/token",
            "/contoso/oauth2/v2.0/token/",
            "/contoso/oauth2/v2.0/tokens",
            "/contoso/oauth2/v2.0/authorize",
            "contoso/oauth2/v2.0/token",
            "/cöntoso/oauth2/v2.0/token",
        ] {
            assert_eq!(tenant(routed), None, "{routed}");
        }
        assert_eq!(
            plain_token_tenant(&Method::GET, "/contoso/oauth2/v2.0/token"),
            None
        );
    }
}
