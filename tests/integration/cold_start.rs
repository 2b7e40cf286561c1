//! Cold start: a burst of exchanges arriving before an issuer's keys are cached makes exactly
//! one discovery request and one JWKS request, and every exchange succeeds.

use futures_util::StreamExt as _;
use futures_util::future::join_all;
use serde_json::json;

use crate::support::gateway::{JWT_BEARER, encode};
use crate::support::{TestGateway, TestIssuer, clock, http};

const APP_ID: &str = "6f2d3b1e-0c4a-4d8e-9b7a-1a2b3c4d5e6f";
const BURST: usize = 1_000;
/// Connections open at once over HTTP: below the test listener's accept backlog (128), so no
/// connection attempt is dropped and retried by the kernel.
const CONNECTIONS: usize = 100;

async fn setup() -> (TestIssuer, TestGateway, String) {
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    let gateway = TestGateway::start("basic", &[("ISSUER", &issuer.url)], clock).await;
    let mut claims = issuer.claims(
        "repo:contoso/infra:ref:refs/heads/main",
        "api://trustbridge",
    );
    claims["repository"] = json!("contoso/infra");
    let token = issuer.mint(&claims);
    (issuer, gateway, token)
}

fn assert_untouched(issuer: &TestIssuer) {
    assert_eq!(issuer.hits("/.well-known/openid-configuration"), 0);
    assert_eq!(issuer.hits("/keys"), 0);
}

fn assert_fetched_once(issuer: &TestIssuer) {
    assert_eq!(
        issuer.hits("/.well-known/openid-configuration"),
        1,
        "one discovery request"
    );
    assert_eq!(issuer.hits("/keys"), 1, "one JWKS request");
}

#[actix_web::test]
async fn a_burst_of_http_exchanges_on_a_cold_cache_fetches_keys_once() {
    let (issuer, gw, token) = setup().await;
    assert_untouched(&issuer);

    let client = http();
    let url = format!("{}/contoso/oauth2/v2.0/token", gw.url);
    let body = encode(&[
        ("grant_type", "client_credentials"),
        ("client_id", APP_ID),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", &token),
        ("scope", "api://payments/.default"),
    ]);
    let statuses: Vec<u16> = futures_util::stream::iter(0..BURST)
        .map(|_| {
            client
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.clone())
                .send()
        })
        .buffer_unordered(CONNECTIONS)
        .map(|response| response.map_or(0, |r| r.status().as_u16()))
        .collect()
        .await;

    assert_eq!(statuses.len(), BURST);
    let failed = statuses.iter().filter(|s| **s != 200).count();
    assert_eq!(failed, 0, "statuses: {:?}", &statuses[..10]);
    assert_fetched_once(&issuer);
}

#[actix_web::test]
async fn validations_all_waiting_on_the_first_load_share_its_single_fetch() {
    // join_all polls every validation once before any I/O can complete, so all of them are
    // waiting for the issuer's keys before the first discovery response arrives: the
    // strictest form of "arriving before the keys are cached".
    let (issuer, gw, token) = setup().await;
    assert_untouched(&issuer);
    let registry = gw.gateway.snapshot().issuers.clone();

    let results = join_all((0..BURST).map(|_| registry.validate(&token))).await;

    assert!(
        results.iter().all(Result::is_ok),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    assert_fetched_once(&issuer);
    assert_eq!(registry.key_loads("test"), Some(1));
}
