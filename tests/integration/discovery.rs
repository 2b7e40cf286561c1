//! Discovery document, JWKS, health, and the endpoints that must answer OAuth errors.

use serde_json::json;

use crate::support::{TestGateway, TestIssuer, clock};

async fn setup() -> TestGateway {
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    TestGateway::start("basic", &[("ISSUER", &issuer.url)], clock).await
}

#[actix_web::test]
async fn discovery_document_is_complete_and_consistent() {
    let gw = setup().await;
    let (status, doc) = gw
        .get_json("/contoso/v2.0/.well-known/openid-configuration")
        .await;
    assert_eq!(status, 200);
    let base = &gw.url;
    assert_eq!(doc["issuer"], format!("{base}/contoso/v2.0"));
    assert_eq!(
        doc["jwks_uri"],
        format!("{base}/contoso/discovery/v2.0/keys")
    );
    assert_eq!(
        doc["token_endpoint"],
        format!("{base}/contoso/oauth2/v2.0/token")
    );
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{base}/contoso/oauth2/v2.0/authorize")
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["ES256"])
    );
    assert_eq!(
        doc["grant_types_supported"],
        json!([
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ])
    );
    for field in [
        "response_types_supported",
        "subject_types_supported",
        "token_endpoint_auth_methods_supported",
    ] {
        assert!(
            doc[field].as_array().is_some_and(|a| !a.is_empty()),
            "{field}: {doc}"
        );
    }
}

/// An openidconnect client's discovery (`CoreProviderMetadata::discover_async`) against the
/// real gateway: it parses the document with its required fields and types, checks that
/// `issuer` is the issuer it asked for, and fetches and parses the JWKS at `jwks_uri`.
#[actix_web::test]
async fn an_openidconnect_client_discovers_the_tenant_issuer() {
    use openidconnect::core::{CoreJwsSigningAlgorithm, CoreProviderMetadata};
    use openidconnect::{IssuerUrl, JsonWebKey};

    let gw = setup().await;
    let http = crate::support::http();
    // openidconnect is built without an HTTP client here; this one is the tests' reqwest.
    let client = |request: openidconnect::HttpRequest| {
        let http = http.clone();
        async move {
            let response = http.get(request.uri().to_string()).send().await?;
            let mut built =
                openidconnect::http::Response::builder().status(response.status().as_u16());
            if let Some(content_type) = response.headers().get("content-type") {
                built = built.header("content-type", content_type.as_bytes());
            }
            let body = response.bytes().await?.to_vec();
            Ok::<_, reqwest::Error>(built.body(body).expect("response parts are valid"))
        }
    };
    let issuer = format!("{}/contoso/v2.0", gw.url);
    let metadata = CoreProviderMetadata::discover_async(
        IssuerUrl::new(issuer.clone()).expect("issuer URL"),
        &client,
    )
    .await
    .expect("an openidconnect client accepts the document");
    assert_eq!(metadata.issuer().as_str(), issuer);
    assert_eq!(
        metadata.jwks_uri().as_str(),
        format!("{}/contoso/discovery/v2.0/keys", gw.url)
    );
    assert_eq!(
        metadata.id_token_signing_alg_values_supported(),
        &vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256]
    );
    let keys = metadata.jwks().keys();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].key_id().is_some());

    // Another tenant's issuer is not this one: the client refuses the mismatch.
    let wrong = IssuerUrl::new(format!("{}/contoso/v2.0/", gw.url)).expect("issuer URL");
    assert!(
        CoreProviderMetadata::discover_async(wrong, &client)
            .await
            .is_err()
    );
}

#[actix_web::test]
async fn jwks_keys_carry_kid_alg_and_use_only() {
    let gw = setup().await;
    let (status, jwks) = gw.get_json("/contoso/discovery/v2.0/keys").await;
    assert_eq!(status, 200);
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert!(key["kid"].is_string());
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["kty"], "EC");
    assert!(key.get("key_ops").is_none());
    assert!(key.get("d").is_none(), "no private members");
}

#[actix_web::test]
async fn unknown_tenant_and_machine_only_endpoints() {
    let gw = setup().await;
    let (status, body) = gw
        .get_json("/fabrikam/v2.0/.well-known/openid-configuration")
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error_codes"], json!([90002]));
    let (status, body) = gw.get_json("/fabrikam/discovery/v2.0/keys").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = gw
        .get_json("/contoso/oauth2/v2.0/authorize?response_type=code")
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "unsupported_response_type");
    let (status, body) = gw.get_json("/no/such/path").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "invalid_request");
}

#[actix_web::test]
async fn health_and_readiness() {
    let gw = setup().await;
    assert_eq!(gw.get_text("/healthz").await, (200, "ok\n".to_string()));
    assert_eq!(gw.get_text("/readyz").await, (200, "ready\n".to_string()));
    let (_, metrics) = gw.get_text("/metrics").await;
    assert!(metrics.contains("trustbridge_ready 1"), "{metrics}");
    assert!(
        metrics.contains(r#"trustbridge_policy_objects{kind="issuer"} 1"#),
        "{metrics}"
    );
}
