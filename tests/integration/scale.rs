//! Scale-out (issue #7): two real gateways sharing one key directory and one Redis agree on
//! the JWKS, accept a one-time-use token once in total, share rate limits, publish a rotation
//! before either signs with it, and follow the documented policy when Redis is unreachable.
//!
//! Every test uses its own Redis key prefix, so parallel runs never collide; the fault tests
//! start a private `redis-server` on a free port (or point at a closed one).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trustbridge::clock::ManualClock;
use trustbridge::config::Layer;

use crate::support::redis::{PrivateRedis, free_port};
use crate::support::{TestGateway, TestIssuer, clock, http};

const SHARED_REDIS: &str = "redis://127.0.0.1:6379";
const ONCE: &str = "repo:contoso/infra:ref:refs/tags/v1";
const MAIN: &str = "repo:contoso/infra:ref:refs/heads/main";
const SCOPE: &str = "api://payments/.default";

fn prefix() -> String {
    format!("tbtest:{}:", uuid::Uuid::new_v4().simple())
}

/// Two replicas on `scenario`: B shares A's key directory; both get `tweak`.
async fn replicas(
    scenario: &str,
    issuer: &TestIssuer,
    clock: Arc<ManualClock>,
    tweak: impl Fn(&mut Layer),
) -> (TestGateway, TestGateway) {
    let vars = [("ISSUER", issuer.url.as_str())];
    let a = TestGateway::start_tweaked(scenario, &vars, clock.clone(), &tweak).await;
    let keys = a.keys_dir();
    let b = TestGateway::start_tweaked(scenario, &vars, clock, |l| {
        tweak(l);
        l.keys = Some(keys);
    })
    .await;
    (a, b)
}

fn with_redis(url: &str, prefix: &str) -> impl Fn(&mut Layer) + use<> {
    let (url, prefix) = (url.to_owned(), prefix.to_owned());
    move |l: &mut Layer| {
        l.redis_url = Some(url.clone());
        l.redis_key_prefix = Some(prefix.clone());
        l.keys_reload_interval = Some("20ms".into());
    }
}

fn assertion(issuer: &TestIssuer, sub: &str) -> String {
    issuer.mint(&issuer.claims(sub, "api://trustbridge"))
}

/// Verifies `token`'s signature with the JWKS `gw` publishes (as a verifier of that replica).
async fn verifies_with(gw: &TestGateway, token: &str) -> bool {
    let (_, jwks) = gw.get_json("/contoso/discovery/v2.0/keys").await;
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).expect("jwks");
    let header = jsonwebtoken::decode_header(token).expect("header");
    let Some(jwk) = header.kid.as_deref().and_then(|k| set.find(k)) else {
        return false;
    };
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_aud = false;
    jsonwebtoken::decode::<Value>(token, &key, &validation).is_ok()
}

async fn kids(gw: &TestGateway) -> Vec<String> {
    let (_, jwks) = gw.get_json("/contoso/discovery/v2.0/keys").await;
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("header")
        .kid
        .expect("kid")
}

fn error_code(body: &Value) -> u64 {
    body["error_codes"][0].as_u64().unwrap_or(0)
}

async fn scrape(gw: &TestGateway) -> String {
    gw.get_text("/metrics").await.1
}

/// The value of the first sample of `metric` whose line contains `labels`.
fn sample(metrics: &str, metric: &str, labels: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(metric) && l.contains(labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[actix_web::test]
async fn replicas_accept_a_one_time_token_once_in_total_and_share_their_jwks() {
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    let (a, b) = replicas("scale", &issuer, clock, with_redis(SHARED_REDIS, &prefix())).await;
    assert_eq!(
        kids(&a).await,
        kids(&b).await,
        "one key directory, one JWKS"
    );

    let once = assertion(&issuer, ONCE);
    let (status, body) = a.client_credentials("deploy-bot", &once, SCOPE).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().expect("token");
    assert!(
        verifies_with(&b, token).await,
        "A's token verifies with B's JWKS"
    );

    for replica in [&b, &a] {
        let (status, body) = replica.client_credentials("deploy-bot", &once, SCOPE).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "invalid_client");
        assert_eq!(error_code(&body), 7000299);
        let text = body["error_description"].as_str().expect("description");
        assert!(text.contains("already exchanged"), "{text}");
    }
    // Under token exchange the same replay is invalid_grant.
    let (status, body) = b.token_exchange(&once, "api://payments").await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("invalid_grant")),
        "{body}"
    );
    assert!(
        scrape(&b)
            .await
            .contains("trustbridge_replays_refused_total 2")
    );

    // A token without jti is remembered by its hash.
    let mut claims = issuer.claims(ONCE, "api://trustbridge");
    claims.as_object_mut().expect("object").remove("jti");
    let no_jti = issuer.mint(&claims);
    assert_eq!(
        b.client_credentials("deploy-bot", &no_jti, SCOPE).await.0,
        200
    );
    assert_eq!(
        a.client_credentials("deploy-bot", &no_jti, SCOPE).await.0,
        401
    );

    // Ordinary credentials are not one-time-use.
    let main = assertion(&issuer, MAIN);
    assert_eq!(
        a.client_credentials("deploy-bot", &main, SCOPE).await.0,
        200
    );
    assert_eq!(
        b.client_credentials("deploy-bot", &main, SCOPE).await.0,
        200
    );
}

#[actix_web::test]
async fn an_issuer_marked_one_time_use_covers_all_its_credentials() {
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    // No Redis: one replica remembers in memory.
    let gw = TestGateway::start("scale-issuer", &[("ISSUER", &issuer.url)], clock).await;
    let main = assertion(&issuer, MAIN);
    assert_eq!(
        gw.client_credentials("deploy-bot", &main, SCOPE).await.0,
        200
    );
    let (status, body) = gw.client_credentials("deploy-bot", &main, SCOPE).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(error_code(&body), 7000299);
}

#[actix_web::test]
async fn a_shared_rate_limit_trips_across_replicas_with_retry_after() {
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    let prefix = prefix();
    let redis = with_redis(SHARED_REDIS, &prefix);
    let (a, b) = replicas("scale", &issuer, clock.clone(), |l| {
        redis(l);
        l.rate_limit_identity = Some("3/m".into());
    })
    .await;
    // T0 is a whole minute: 20 s into the window, 40 s remain.
    clock.advance(Duration::from_secs(20));
    for replica in [&a, &b, &a] {
        let (status, body) = replica
            .client_credentials("deploy-bot", &assertion(&issuer, MAIN), SCOPE)
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let resp = http()
        .post(format!("{}/contoso/oauth2/v2.0/token", b.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(crate::support::gateway::encode(&[
            ("grant_type", "client_credentials"),
            ("client_id", "deploy-bot"),
            ("client_assertion_type", crate::support::gateway::JWT_BEARER),
            ("client_assertion", &assertion(&issuer, MAIN)),
            ("scope", SCOPE),
        ]))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("40")
    );
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "slow_down");
    assert!(
        scrape(&b)
            .await
            .contains("trustbridge_rate_limited_total{scope=\"identity\"} 1")
    );

    // Denials are never 429: a refused token is not rate limited into a retry storm.
    let (status, _) = a
        .client_credentials("deploy-bot", &assertion(&issuer, "repo:x:ref:y"), SCOPE)
        .await;
    assert_eq!(status, 401);

    // The next window opens for everyone.
    clock.advance(Duration::from_secs(40));
    let (status, body) = b
        .client_credentials("deploy-bot", &assertion(&issuer, MAIN), SCOPE)
        .await;
    assert_eq!(status, 200, "{body}");
}

#[actix_web::test]
async fn a_rotation_is_published_by_both_replicas_before_either_signs_with_it() {
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    let (a, b) = replicas("scale", &issuer, clock.clone(), |l| {
        l.keys_reload_interval = Some("20ms".into());
    })
    .await;
    let old = kids(&a).await;
    assert_eq!(old.len(), 1);

    // The operator rotates in the shared directory with the default 1 h lead.
    let mut out = Vec::new();
    let mut err = Vec::new();
    let rotate = trustbridge::cli::keys::KeysCommand::Rotate(trustbridge::cli::keys::RotateArgs {
        common: trustbridge::cli::keys::KeysArgs {
            settings: trustbridge::cli::ServeArgs {
                keys: Some(a.keys_dir()),
                data_dir: Some(PathBuf::from("unused")),
                max_token_lifetime: Some("1h".into()),
                ..Default::default()
            },
        },
        publication_lead: "1h".into(),
        algorithm: Some("ES256".into()),
    });
    assert_eq!(
        trustbridge::cli::keys::run(&rotate, clock.as_ref(), &mut out, &mut err),
        0
    );

    // Both replicas publish it (current first, next after) without a restart.
    let deadline = Instant::now() + Duration::from_secs(10);
    let both = loop {
        let (ka, kb) = (kids(&a).await, kids(&b).await);
        if ka.len() == 2 && kb.len() == 2 {
            break ka;
        }
        assert!(
            Instant::now() < deadline,
            "rotation not picked up: {ka:?} {kb:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(both[0], old[0], "the old key still signs");
    assert_eq!(kids(&b).await, both);
    let new = both[1].clone();

    let mut before = Vec::new();
    for replica in [&a, &b] {
        let (status, body) = replica
            .client_credentials("deploy-bot", &assertion(&issuer, MAIN), SCOPE)
            .await;
        assert_eq!(status, 200, "{body}");
        let token = body["access_token"].as_str().expect("token").to_owned();
        assert_eq!(kid_of(&token), old[0], "not yet the new key");
        before.push(token);
    }

    clock.advance(Duration::from_secs(3600));
    for replica in [&a, &b] {
        let (status, body) = replica
            .client_credentials("deploy-bot", &assertion(&issuer, MAIN), SCOPE)
            .await;
        assert_eq!(status, 200, "{body}");
        let token = body["access_token"].as_str().expect("token");
        assert_eq!(kid_of(token), new, "both switch at the activation time");
        for verifier in [&a, &b] {
            assert!(verifies_with(verifier, token).await);
            for old_token in &before {
                assert!(
                    verifies_with(verifier, old_token).await,
                    "retiring key published"
                );
            }
        }
    }
}

// === Redis failures ===

#[actix_web::test]
async fn redis_unreachable_fails_one_time_use_closed_and_rate_limits_open() {
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    let closed = format!("redis://127.0.0.1:{}", free_port());
    let redis = with_redis(&closed, &prefix());
    let gw = TestGateway::start_tweaked("scale", &[("ISSUER", &issuer.url)], clock, |l| {
        redis(l);
        l.rate_limit_identity = Some("1/m".into());
        l.rate_limit_issuer = Some("1/m".into());
    })
    .await;

    // The gateway started and is ready although Redis is down.
    assert_eq!(gw.get_text("/readyz").await.0, 200);

    // One-time-use: fail closed with 503 temporarily_unavailable and Retry-After.
    let once = assertion(&issuer, ONCE);
    let resp = http()
        .post(format!("{}/contoso/oauth2/v2.0/token", gw.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(crate::support::gateway::encode(&[
            ("grant_type", crate::support::gateway::TOKEN_EXCHANGE),
            ("subject_token", &once),
            ("subject_token_type", crate::support::gateway::JWT_TYPE),
            ("client_id", "deploy-bot"),
            ("resource", "api://payments"),
        ]))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "temporarily_unavailable");

    // Rate limits: fail open, even past the configured 1/m, and say so in the metrics.
    for _ in 0..3 {
        let (status, body) = gw
            .client_credentials("deploy-bot", &assertion(&issuer, MAIN), SCOPE)
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let metrics = scrape(&gw).await;
    assert_eq!(
        sample(
            &metrics,
            "trustbridge_rate_limit_fail_open_total",
            "scope=\"identity\""
        ),
        4.0,
        "the one-time request counted too: {metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "trustbridge_rate_limit_fail_open_total",
            "scope=\"issuer\""
        ),
        4.0,
        "the one-time request passed the issuer limit too"
    );
    assert!(
        sample(
            &metrics,
            "trustbridge_shared_state_errors_total",
            "operation=\"replay\""
        ) >= 1.0
    );
}

#[actix_web::test]
async fn redis_stopped_mid_run_then_back_recovers_without_a_restart() {
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    let mut redis = PrivateRedis::start();
    let (a, b) = replicas("scale", &issuer, clock, with_redis(&redis.url(), &prefix())).await;

    let first = assertion(&issuer, ONCE);
    assert_eq!(
        a.client_credentials("deploy-bot", &first, SCOPE).await.0,
        200
    );

    redis.stop();
    let second = assertion(&issuer, ONCE);
    let started = Instant::now();
    let (status, body) = b.client_credentials("deploy-bot", &second, SCOPE).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "bounded by the Redis deadline"
    );
    // Ordinary exchanges go on.
    let main = assertion(&issuer, MAIN);
    assert_eq!(
        b.client_credentials("deploy-bot", &main, SCOPE).await.0,
        200
    );

    redis.restart();
    // The connection comes back by itself; the refused token was not consumed.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = b.client_credentials("deploy-bot", &second, SCOPE).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            Instant::now() < deadline,
            "no recovery after Redis returned"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    // And it is one-time again, across replicas.
    assert_eq!(
        a.client_credentials("deploy-bot", &second, SCOPE).await.0,
        401
    );
    // The Redis restart lost `first` (no persistence): documented in docs/deployment.md.
}
