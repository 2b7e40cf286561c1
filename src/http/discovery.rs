//! Per-tenant OpenID discovery document and JWKS: what lets any standard verifier trust
//! trustbridge's tokens. `issuer` here is byte-identical to every token's `iss`.
//!
//! The document is an `openidconnect` [`ProviderMetadata`], so the fields OpenID Connect
//! Discovery 1.0 §3 requires cannot be left out and each field has the type the specification
//! gives it (URLs parse, algorithms are JOSE names). What that type does not model (RFC 9449's
//! `dpop_signing_alg_values_supported`, the token types of RFC 8693) is in
//! [`TrustbridgeMetadata`], flattened into the same document. Each tenant's document is
//! rendered once per policy version and signing algorithm ([`Documents`]).

use std::collections::HashMap;
use std::sync::RwLock;

use actix_web::http::header::{CACHE_CONTROL, ContentType, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthUrl, IssuerUrl, JsonWebKeySetUrl, ProviderMetadata,
    ResponseTypes, Scope, TokenUrl,
};
use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::exchange::Denial;
use crate::exchange::request::{TOKEN_EXCHANGE, TOKEN_TYPE_ACCESS_TOKEN};
use crate::gateway::Gateway;
use crate::http::error::{ApiError, HttpRefusal};
use crate::http::extract::{ErrorIds, shown_tenant};
use crate::jose::SigningAlgorithm;
use crate::refusal::Context;

/// The members of trustbridge's discovery document that `openidconnect`'s
/// [`ProviderMetadata`] does not model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustbridgeMetadata {
    /// The token types the token endpoint issues (RFC 8693 `requested_token_type` values).
    pub token_types_supported: Vec<String>,
    /// The JWS algorithms accepted in DPoP proofs (RFC 9449 §5.1).
    pub dpop_signing_alg_values_supported: Vec<CoreJwsSigningAlgorithm>,
}

impl AdditionalProviderMetadata for TrustbridgeMetadata {}

/// trustbridge's discovery document: the Core types of `openidconnect` plus
/// [`TrustbridgeMetadata`].
pub type TrustbridgeProviderMetadata = ProviderMetadata<
    TrustbridgeMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// Why the discovery document could not be built. `public_url` is checked at start-up and
/// tenant names by the loader, so either means a bug, and the request answers `server_error`.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// An endpoint is not a URL.
    #[error("discovery document: {field} is not a URL: {source}")]
    Url {
        /// The document member.
        field: &'static str,
        /// Why it did not parse.
        source: openidconnect::url::ParseError,
    },
    /// The document did not serialize.
    #[error("discovery document: {0}")]
    Serialize(serde_json::Error),
}

/// The discovery document of `tenant`, whose tokens are signed with `alg`.
///
/// # Errors
/// [`DocumentError`] when an endpoint built from `settings.public_url` and `tenant` is not a
/// URL.
pub fn provider_metadata(
    settings: &Settings,
    tenant: &str,
    alg: SigningAlgorithm,
) -> Result<TrustbridgeProviderMetadata, DocumentError> {
    let base = &settings.public_url;
    let url = |field: &'static str| move |source| DocumentError::Url { field, source };
    let metadata = TrustbridgeProviderMetadata::new(
        // `new` keeps the string as given (after checking it parses), so `issuer` stays
        // byte-identical to the tokens' `iss`; `from_url` would normalise it.
        IssuerUrl::new(settings.tenant_issuer(tenant)).map_err(url("issuer"))?,
        AuthUrl::new(format!("{base}/{tenant}/oauth2/v2.0/authorize"))
            .map_err(url("authorization_endpoint"))?,
        JsonWebKeySetUrl::new(format!("{base}/{tenant}/discovery/v2.0/keys"))
            .map_err(url("jwks_uri"))?,
        // Machine flows only: `authorization_endpoint` answers an OAuth error, and the token
        // endpoint returns access tokens directly.
        vec![ResponseTypes::new(vec![CoreResponseType::Token])],
        vec![CoreSubjectIdentifierType::Public],
        vec![core_algorithm(alg)],
        TrustbridgeMetadata {
            token_types_supported: vec![TOKEN_TYPE_ACCESS_TOKEN.to_string()],
            dpop_signing_alg_values_supported: crate::dpop::ALGORITHMS.map(core_algorithm).to_vec(),
        },
    )
    .set_token_endpoint(Some(
        TokenUrl::new(settings.token_endpoint(tenant)).map_err(url("token_endpoint"))?,
    ))
    .set_token_endpoint_auth_methods_supported(Some(vec![
        CoreClientAuthMethod::PrivateKeyJwt,
        CoreClientAuthMethod::None,
    ]))
    .set_token_endpoint_auth_signing_alg_values_supported(Some(
        SigningAlgorithm::ALL.map(core_algorithm).to_vec(),
    ))
    .set_grant_types_supported(Some(vec![
        CoreGrantType::ClientCredentials,
        CoreGrantType::Extension(TOKEN_EXCHANGE.to_string()),
    ]))
    .set_scopes_supported(Some(vec![Scope::new(".default".to_string())]))
    .set_claims_supported(Some(
        crate::jose::FIXED_CLAIMS
            .map(|c| CoreClaimName::new(c.to_string()))
            .to_vec(),
    ));
    Ok(metadata)
}

/// The `openidconnect` name of a JOSE algorithm trustbridge supports.
fn core_algorithm(alg: SigningAlgorithm) -> CoreJwsSigningAlgorithm {
    match alg {
        SigningAlgorithm::RS256 => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        SigningAlgorithm::RS384 => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
        SigningAlgorithm::RS512 => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
        SigningAlgorithm::PS256 => CoreJwsSigningAlgorithm::RsaSsaPssSha256,
        SigningAlgorithm::ES256 => CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        SigningAlgorithm::ES384 => CoreJwsSigningAlgorithm::EcdsaP384Sha384,
        SigningAlgorithm::EdDSA => CoreJwsSigningAlgorithm::EdDsa,
    }
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
pub async fn openid_configuration(
    gw: web::Data<Gateway>,
    documents: web::Data<Documents>,
    tenant: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let tenant = known_tenant(&gw, &tenant, &req)?;
    let alg = gw.keys().algorithm();
    let body = documents
        .get_or_render(gw.policies().content_hash(), &tenant, alg, || {
            let doc = provider_metadata(gw.settings(), &tenant, alg)?;
            serde_json::to_vec(&doc)
                .map(web::Bytes::from)
                .map_err(DocumentError::Serialize)
        })
        .map_err(|e| ApiError::internal(e, &ErrorIds::of(&req, gw.clock().now())))?;
    Ok(HttpResponse::Ok()
        .insert_header((
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        ))
        .content_type(ContentType::json())
        .body(body))
}

// === impl Documents ===

/// Rendered discovery documents of the serving policy version, by tenant and signing
/// algorithm.
///
/// A document depends only on the tenant, the signing key's algorithm and `public_url` (fixed
/// for the process), so it is built and serialized once, not per request: building the
/// `ProviderMetadata` parses four URLs, and building plus serializing measured 1.3 to 1.4
/// times the `json!` it replaced.
/// Bounded: entries are made only for tenants the serving set declares (unknown tenants are
/// refused first), and they are all dropped when the policy version changes.
#[derive(Debug, Default)]
pub struct Documents {
    rendered: RwLock<Rendered>,
}

#[derive(Debug, Default)]
struct Rendered {
    /// The policy version the entries belong to.
    policy_hash: String,
    by_tenant: HashMap<(String, SigningAlgorithm), web::Bytes>,
}

impl Documents {
    /// The document of `tenant` for `alg` under policy version `policy_hash`: the one rendered
    /// before, or `render`'s, kept.
    ///
    /// # Errors
    /// `render`'s error; nothing is kept then.
    pub fn get_or_render<E>(
        &self,
        policy_hash: &str,
        tenant: &str,
        alg: SigningAlgorithm,
        render: impl FnOnce() -> Result<web::Bytes, E>,
    ) -> Result<web::Bytes, E> {
        let key = (tenant.to_string(), alg);
        {
            let rendered = self.rendered.read().unwrap_or_else(|p| p.into_inner());
            if rendered.policy_hash == policy_hash
                && let Some(body) = rendered.by_tenant.get(&key)
            {
                return Ok(body.clone());
            }
        }
        let body = render()?;
        let mut rendered = self.rendered.write().unwrap_or_else(|p| p.into_inner());
        if rendered.policy_hash != policy_hash {
            rendered.by_tenant.clear();
            rendered.policy_hash = policy_hash.to_string();
        }
        rendered.by_tenant.insert(key, body.clone());
        Ok(body)
    }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::Layer;

    fn settings() -> Settings {
        Settings::resolve(Layer {
            public_url: Some("https://tb.example".into()),
            ..Layer::default()
        })
        .expect("valid settings")
    }

    /// The document as `json!` built it before it was an openidconnect `ProviderMetadata`:
    /// every member and value must stay (clients and tests read them).
    #[test]
    fn document_is_the_one_served_before_openidconnect() {
        for alg in [SigningAlgorithm::ES256, SigningAlgorithm::EdDSA] {
            let doc = provider_metadata(&settings(), "contoso", alg).expect("builds");
            let base = "https://tb.example";
            let before = json!({
                "issuer": format!("{base}/contoso/v2.0"),
                "jwks_uri": format!("{base}/contoso/discovery/v2.0/keys"),
                "token_endpoint": format!("{base}/contoso/oauth2/v2.0/token"),
                "authorization_endpoint": format!("{base}/contoso/oauth2/v2.0/authorize"),
                "response_types_supported": ["token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": [alg.as_str()],
                "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
                "token_endpoint_auth_signing_alg_values_supported": SigningAlgorithm::ALL.map(|a| a.as_str()),
                "grant_types_supported": ["client_credentials", TOKEN_EXCHANGE],
                "scopes_supported": [".default"],
                "claims_supported": crate::jose::FIXED_CLAIMS,
                "token_types_supported": [TOKEN_TYPE_ACCESS_TOKEN],
                "dpop_signing_alg_values_supported": crate::dpop::ALGORITHMS.map(|a| a.as_str()),
            });
            assert_eq!(serde_json::to_value(&doc).expect("serializes"), before);
        }
    }

    #[test]
    fn every_algorithm_keeps_its_jose_name() {
        for alg in SigningAlgorithm::ALL {
            assert_eq!(
                serde_json::to_value(core_algorithm(alg)).expect("serializes"),
                json!(alg.as_str())
            );
        }
    }

    #[test]
    fn documents_are_rendered_once_per_tenant_algorithm_and_policy_version() {
        let documents = Documents::default();
        let renders = std::cell::Cell::new(0);
        let get = |hash: &str, tenant: &str, alg| {
            documents
                .get_or_render(hash, tenant, alg, || {
                    renders.set(renders.get() + 1);
                    Ok::<_, DocumentError>(web::Bytes::from(format!("{hash}/{tenant}/{alg:?}")))
                })
                .expect("renders")
        };
        assert_eq!(
            get("h1", "contoso", SigningAlgorithm::ES256),
            "h1/contoso/ES256"
        );
        assert_eq!(
            get("h1", "contoso", SigningAlgorithm::ES256),
            "h1/contoso/ES256"
        );
        assert_eq!(renders.get(), 1);
        // Another tenant, another algorithm (a key rotated to it): rendered apart.
        assert_eq!(
            get("h1", "fabrikam", SigningAlgorithm::ES256),
            "h1/fabrikam/ES256"
        );
        assert_eq!(
            get("h1", "contoso", SigningAlgorithm::EdDSA),
            "h1/contoso/EdDSA"
        );
        assert_eq!(renders.get(), 3);
        // A new policy version drops every entry.
        assert_eq!(
            get("h2", "contoso", SigningAlgorithm::ES256),
            "h2/contoso/ES256"
        );
        assert_eq!(renders.get(), 4);
        assert_eq!(documents.rendered.read().unwrap().by_tenant.len(), 1);
        // A failed render keeps nothing.
        let failed = documents.get_or_render("h2", "x", SigningAlgorithm::ES256, || {
            Err::<web::Bytes, _>("no")
        });
        assert_eq!(failed, Err("no"));
        assert_eq!(documents.rendered.read().unwrap().by_tenant.len(), 1);
    }

    #[test]
    fn an_endpoint_that_is_not_a_url_is_an_error_not_a_panic() {
        let mut settings = settings();
        settings.public_url = "not a url".into();
        let err = provider_metadata(&settings, "contoso", SigningAlgorithm::ES256).unwrap_err();
        assert!(err.to_string().contains("issuer is not a URL"), "{err}");
    }
}
