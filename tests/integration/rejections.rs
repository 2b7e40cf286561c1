//! Every rejection class of the foundation issue, each through the real gateway: status, OAuth
//! error, Entra code and a fragment of the description. Each would pass a bad token if its
//! check were removed.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use trustbridge::jose::SigningAlgorithm;

use crate::support::gateway::{JWT_BEARER, JWT_TYPE, TOKEN_EXCHANGE, encode};
use crate::support::{TestGateway, TestIssuer, clock, http};

struct Env {
    issuer: TestIssuer,
    gw: TestGateway,
    clock: std::sync::Arc<trustbridge::clock::ManualClock>,
}

async fn setup() -> Env {
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    let gw = TestGateway::start("basic", &[("ISSUER", &issuer.url)], clock.clone()).await;
    Env { issuer, gw, clock }
}

const MAIN: &str = "repo:contoso/infra:ref:refs/heads/main";

fn good(env: &Env) -> Value {
    let mut c = env.issuer.claims(MAIN, "api://trustbridge");
    c["repository"] = json!("contoso/infra");
    c
}

/// Sends a client-credentials request and checks the refusal.
async fn expect_cc(
    env: &Env,
    assertion: &str,
    status: u16,
    error: &str,
    code: u32,
    fragment: &str,
) {
    let (got, body) = env
        .gw
        .client_credentials("deploy-bot", assertion, "api://payments/.default")
        .await;
    check(got, &body, status, error, code, fragment);
}

fn check(got: u16, body: &Value, status: u16, error: &str, code: u32, fragment: &str) {
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"], json!([code]), "{body}");
    let description = body["error_description"].as_str().expect("description");
    assert!(
        description.contains(fragment),
        "{description:?} lacks {fragment:?}"
    );
    for field in ["timestamp", "trace_id", "correlation_id"] {
        assert!(body[field].is_string(), "{field} missing: {body}");
    }
}

/// The `detail` of the newest audit record: the refusal as operators see it.
fn last_audit_detail(env: &Env) -> String {
    env.gw
        .audit_records()
        .last()
        .and_then(|r| r["detail"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

#[actix_web::test]
async fn untrusted_issuer_is_refused_without_any_fetch() {
    let env = setup().await;
    let stranger = TestIssuer::start(env.clock.clone()).await;
    let token = stranger.mint(&stranger.claims(MAIN, "api://trustbridge"));
    expect_cc(
        &env,
        &token,
        401,
        "invalid_client",
        700211,
        "issuer is not trusted",
    )
    .await;
    assert_eq!(stranger.hits("/.well-known/openid-configuration"), 0);
    assert_eq!(stranger.hits("/keys"), 0);
}

#[actix_web::test]
async fn jku_and_x5u_headers_are_never_followed() {
    let env = setup().await;
    let trap = TestIssuer::start(env.clock.clone()).await;
    let header = json!({"alg": "RS256", "kid": "nope", "jku": format!("{}/keys", trap.url), "x5u": format!("{}/keys", trap.url)});
    let token = env
        .issuer
        .mint_raw(&header.to_string(), &good(&env).to_string());
    expect_cc(&env, &token, 401, "invalid_client", 700027, "kid").await;
    assert_eq!(trap.hits("/keys"), 0);
}

#[actix_web::test]
async fn algorithm_attacks_are_refused() {
    let env = setup().await;
    let payload = b64(&good(&env).to_string());
    let none = format!("{}.{payload}.", b64(r#"{"alg":"none","typ":"JWT"}"#));
    expect_cc(&env, &none, 401, "invalid_client", 700027, "algorithm none").await;
    let kid = env.issuer.kid();
    let hs = format!(
        "{}.{payload}.c2ln",
        b64(&json!({"alg":"HS256","kid":kid}).to_string())
    );
    expect_cc(&env, &hs, 401, "invalid_client", 700027, "algorithm HS256").await;
    // PS256 is supported in general but not in this issuer's allowlist.
    let ps = format!(
        "{}.{payload}.c2ln",
        b64(&json!({"alg":"PS256","kid":kid}).to_string())
    );
    expect_cc(&env, &ps, 401, "invalid_client", 700027, "algorithm PS256").await;
}

#[actix_web::test]
async fn key_selection_and_signature_checks() {
    let env = setup().await;
    // Unknown kid (after one refresh).
    let header = json!({"alg":"RS256","kid":"not-published"});
    let token = env
        .issuer
        .mint_raw(&header.to_string(), &good(&env).to_string());
    expect_cc(&env, &token, 401, "invalid_client", 700027, "kid").await;

    // An ES256 token naming the issuer's RSA key.
    let header = json!({"alg":"ES256","kid":env.issuer.kid()});
    let token = env
        .issuer
        .mint_raw(&header.to_string(), &good(&env).to_string());
    expect_cc(&env, &token, 401, "invalid_client", 700027, "does not fit").await;

    // A tampered payload.
    let token = env.issuer.mint(&good(&env));
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let mut claims = good(&env);
    claims["sub"] = json!("repo:contoso/infra:ref:refs/heads/evil");
    parts[1] = b64(&claims.to_string());
    expect_cc(
        &env,
        &parts.join("."),
        401,
        "invalid_client",
        700027,
        "signature",
    )
    .await;
}

#[actix_web::test]
async fn weak_rsa_keys_are_refused() {
    let env = setup().await;
    let jwk: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/keys/rsa1024.jwk.json"
        ))
        .expect("fixture"),
    )
    .expect("jwk");
    env.issuer.publish_jwk(jwk);
    let token = format!(
        "{}.{}.c2ln",
        b64(r#"{"alg":"RS256","kid":"weak-1024"}"#),
        b64(&good(&env).to_string())
    );
    expect_cc(&env, &token, 401, "invalid_client", 700027, "too weak").await;
}

#[actix_web::test]
async fn time_claims_honour_leeway() {
    let env = setup().await;
    let token = env.issuer.mint(&good(&env)); // exp = T0 + 300, leeway 60 s
    env.clock.advance(Duration::from_secs(360));
    let (status, body) = env
        .gw
        .client_credentials("deploy-bot", &token, "api://payments/.default")
        .await;
    assert_eq!(status, 200, "just inside leeway: {body}");
    env.clock.advance(Duration::from_secs(1));
    expect_cc(&env, &token, 401, "invalid_client", 700024, "expired").await;

    let mut future = env.issuer.claims(MAIN, "api://trustbridge");
    future["nbf"] = json!(future["iat"].as_u64().expect("iat") + 61);
    expect_cc(
        &env,
        &env.issuer.mint(&future),
        401,
        "invalid_client",
        700024,
        "not yet valid",
    )
    .await;
    let mut just_inside = env.issuer.claims(MAIN, "api://trustbridge");
    just_inside["nbf"] = json!(just_inside["iat"].as_u64().expect("iat") + 60);
    just_inside["repository"] = json!("r");
    let (status, body) = env
        .gw
        .client_credentials(
            "deploy-bot",
            &env.issuer.mint(&just_inside),
            "api://payments/.default",
        )
        .await;
    assert_eq!(status, 200, "nbf just inside leeway: {body}");

    let mut issued_later = env.issuer.claims(MAIN, "api://trustbridge");
    issued_later["iat"] = json!(issued_later["iat"].as_u64().expect("iat") + 61);
    expect_cc(
        &env,
        &env.issuer.mint(&issued_later),
        401,
        "invalid_client",
        700024,
        "issued in the future",
    )
    .await;

    let mut no_exp = good(&env);
    no_exp.as_object_mut().expect("object").remove("exp");
    expect_cc(
        &env,
        &env.issuer.mint(&no_exp),
        401,
        "invalid_client",
        50027,
        "exp",
    )
    .await;
}

#[actix_web::test]
async fn structural_attacks_are_refused() {
    let env = setup().await;
    let kid = env.issuer.kid();
    let claims = good(&env).to_string();
    // Duplicate keys in the payload: a parser differential waiting to happen.
    let dup_payload = claims.replacen('{', &format!("{{\"sub\":\"{MAIN}\","), 1);
    let header = json!({"alg":"RS256","kid":kid}).to_string();
    expect_cc(
        &env,
        &env.issuer.mint_raw(&header, &dup_payload),
        401,
        "invalid_client",
        50027,
        "duplicate",
    )
    .await;
    // Duplicate keys in the header.
    let dup_header = format!(r#"{{"alg":"RS256","alg":"RS256","kid":"{kid}"}}"#);
    expect_cc(
        &env,
        &env.issuer.mint_raw(&dup_header, &claims),
        401,
        "invalid_client",
        50027,
        "duplicate",
    )
    .await;
    // crit.
    let crit = json!({"alg":"RS256","kid":kid,"crit":["exp"]}).to_string();
    expect_cc(
        &env,
        &env.issuer.mint_raw(&crit, &claims),
        401,
        "invalid_client",
        50027,
        "crit",
    )
    .await;
    // Nested JWT.
    let nested = json!({"alg":"RS256","kid":kid,"cty":"JWT"}).to_string();
    expect_cc(
        &env,
        &env.issuer.mint_raw(&nested, &claims),
        401,
        "invalid_client",
        50027,
        "nested",
    )
    .await;
    // JWE.
    expect_cc(
        &env,
        "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d",
        401,
        "invalid_client",
        50027,
        "JWE",
    )
    .await;
    // Garbage.
    expect_cc(
        &env,
        "not-a-token",
        401,
        "invalid_client",
        50027,
        "malformed",
    )
    .await;
    // Oversized token.
    let mut big = good(&env);
    big["pad"] = json!("x".repeat(20 * 1024));
    expect_cc(
        &env,
        &env.issuer.mint(&big),
        401,
        "invalid_client",
        50027,
        "too large",
    )
    .await;
}

#[actix_web::test]
async fn policy_checks_are_refused_with_their_codes() {
    let env = setup().await;
    // Audience.
    let mut c = good(&env);
    c["aud"] = json!(["api://someone-else", "https://github.com/contoso"]);
    expect_cc(
        &env,
        &env.issuer.mint(&c),
        401,
        "invalid_client",
        700212,
        "audience",
    )
    .await;
    // aud as an array that includes ours is fine.
    c["aud"] = json!(["https://github.com/contoso", "api://trustbridge"]);
    let (status, body) = env
        .gw
        .client_credentials(
            "deploy-bot",
            &env.issuer.mint(&c),
            "api://payments/.default",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Subject: exact and case-sensitive.
    let mut c = good(&env);
    c["sub"] = json!("repo:Contoso/infra:ref:refs/heads/main");
    expect_cc(
        &env,
        &env.issuer.mint(&c),
        401,
        "invalid_client",
        700213,
        "subject",
    )
    .await;
    // Condition false, and condition erroring (claim missing): both deny.
    let mut c = good(&env);
    c["sub"] = json!("repo:contoso/infra:ref:refs/heads/release/v1");
    c["repository_owner_id"] = json!("666");
    expect_cc(
        &env,
        &env.issuer.mint(&c),
        401,
        "invalid_client",
        70021,
        "condition",
    )
    .await;
    c.as_object_mut()
        .expect("object")
        .remove("repository_owner_id");
    expect_cc(
        &env,
        &env.issuer.mint(&c),
        401,
        "invalid_client",
        70021,
        "condition",
    )
    .await;
    // The CEL error is the operator's detail: in the audit trail, never in the response.
    let detail = last_audit_detail(&env);
    assert!(detail.contains("could not be evaluated"), "{detail}");
    c["repository_owner_id"] = json!(1234567); // a number, not the string GitHub sends
    expect_cc(
        &env,
        &env.issuer.mint(&c),
        401,
        "invalid_client",
        70021,
        "condition",
    )
    .await;
    // A claim mapping that errors denies too.
    let mut c = good(&env);
    c.as_object_mut().expect("object").remove("repository");
    expect_cc(
        &env,
        &env.issuer.mint(&c),
        401,
        "invalid_client",
        70021,
        "claim mapping",
    )
    .await;
}

#[actix_web::test]
async fn identity_and_resource_checks() {
    let env = setup().await;
    let token = env.issuer.mint(&good(&env));
    let cases: [(&str, &str, &str, u16, &str, u32, &str); 6] = [
        (
            "contoso",
            "ghost-app",
            "api://payments/.default",
            400,
            "unauthorized_client",
            700016,
            "ghost-app",
        ),
        (
            "contoso",
            "deploy-bot",
            "api://unknown/.default",
            400,
            "invalid_scope",
            500011,
            "api://unknown",
        ),
        (
            "contoso",
            "deploy-bot",
            "api://ledger/.default",
            400,
            "unauthorized_client",
            501051,
            "not assigned",
        ),
        (
            "contoso",
            "deploy-bot",
            "api://payments/Payments.Admin",
            400,
            "invalid_scope",
            70011,
            "Payments.Admin",
        ),
        (
            "fabrikam",
            "deploy-bot",
            "api://payments/.default",
            400,
            "invalid_request",
            90002,
            "fabrikam",
        ),
        (
            "contoso",
            "deploy-bot",
            "payments",
            400,
            "invalid_scope",
            70011,
            "scope",
        ),
    ];
    for (tenant, client, scope, status, error, code, fragment) in cases {
        let (got, body) = env
            .gw
            .post_token(
                tenant,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", client),
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", &token),
                    ("scope", scope),
                ],
            )
            .await;
        check(got, &body, status, error, code, fragment);
    }
    // Disabled service principal.
    let retired = env.issuer.mint(
        &env.issuer
            .claims("repo:contoso/retired:ref:refs/heads/main", "api://retired"),
    );
    let (got, body) = env
        .gw
        .client_credentials("retired-bot", &retired, "api://payments/.default")
        .await;
    check(got, &body, 400, "unauthorized_client", 7000112, "disabled");
    // Unknown resource through RFC 8693 `resource` is invalid_target.
    let (got, body) = env.gw.token_exchange(&token, "api://unknown").await;
    check(got, &body, 400, "invalid_target", 500011, "api://unknown");
}

#[actix_web::test]
async fn token_exchange_errors_are_invalid_grant() {
    let env = setup().await;
    let mut c = good(&env);
    c["sub"] = json!("repo:contoso/nobody:ref:refs/heads/main");
    let (got, body) = env
        .gw
        .token_exchange(&env.issuer.mint(&c), "api://payments")
        .await;
    check(got, &body, 400, "invalid_grant", 700213, "subject");
    let (got, body) = env.gw.token_exchange("garbage", "api://payments").await;
    check(got, &body, 400, "invalid_grant", 50027, "malformed");
}

#[actix_web::test]
async fn request_level_errors() {
    let env = setup().await;
    let token = env.issuer.mint(&good(&env));
    let post = |body: String, content_type: &'static str| {
        let url = format!("{}/contoso/oauth2/v2.0/token", env.gw.url);
        async move {
            let resp = http()
                .post(url)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .expect("post");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.expect("json"))
        }
    };
    let form = "application/x-www-form-urlencoded";
    // Unsupported grant.
    let (got, body) = post("grant_type=password&username=u&password=p".into(), form).await;
    check(
        got,
        &body,
        400,
        "unsupported_grant_type",
        70003,
        "grant type",
    );
    // Duplicated field.
    let dup = format!(
        "{}&client_id=another",
        encode(&[
            ("grant_type", "client_credentials"),
            ("client_id", "deploy-bot"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &token),
            ("scope", "api://payments/.default")
        ])
    );
    let (got, body) = post(dup, form).await;
    check(
        got,
        &body,
        400,
        "invalid_request",
        9002313,
        "more than once",
    );
    // Missing parameter.
    let (got, body) = post(
        encode(&[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", &token),
            ("resource", "api://payments"),
        ]),
        form,
    )
    .await;
    check(
        got,
        &body,
        400,
        "invalid_request",
        900144,
        "subject_token_type",
    );
    // Not a form.
    let (got, body) = post("{}".into(), "application/json").await;
    check(
        got,
        &body,
        400,
        "invalid_request",
        9002313,
        "x-www-form-urlencoded",
    );
    // Oversized body.
    let (got, body) = post(
        format!(
            "grant_type=client_credentials&pad={}",
            "x".repeat(100 * 1024)
        ),
        form,
    )
    .await;
    check(got, &body, 413, "invalid_request", 9002313, "too large");
    // Client secrets are not a thing here.
    let (got, body) = post(
        encode(&[
            ("grant_type", "client_credentials"),
            ("client_id", "deploy-bot"),
            ("client_secret", "s3cr3t"),
            ("scope", "api://payments/.default"),
        ]),
        form,
    )
    .await;
    check(got, &body, 400, "invalid_request", 9002313, "client_secret");
    assert!(!body.to_string().contains("s3cr3t"));
    // The gateway still serves.
    let (status, _) = env.gw.get_text("/healthz").await;
    assert_eq!(status, 200);
    let _ = JWT_TYPE;
}

#[actix_web::test]
async fn issuer_outage_without_cached_keys_is_temporarily_unavailable() {
    let env = setup().await;
    env.issuer.fail_with(Some(503));
    let token = env.issuer.mint(&good(&env));
    let (got, body) = env
        .gw
        .client_credentials("deploy-bot", &token, "api://payments/.default")
        .await;
    assert_eq!(got, 503, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    // Recovers once the issuer does (after the refresh interval).
    env.issuer.fail_with(None);
    env.clock.advance(Duration::from_secs(31));
    let token = env.issuer.mint(&good(&env));
    let (got, body) = env
        .gw
        .client_credentials("deploy-bot", &token, "api://payments/.default")
        .await;
    assert_eq!(got, 200, "{body}");
    let _ = SigningAlgorithm::RS256;
}
