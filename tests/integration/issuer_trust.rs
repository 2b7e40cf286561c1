//! Issuer trust (issue #3) through the real gateway and a real local issuer: key cache
//! behaviour under rotation, outages, slowness and hostile JWKS, metrics, and realistic platform
//! tokens per preset. Each test fails if the behaviour it names is removed.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use trustbridge::clock::{Clock, ManualClock};
use trustbridge::issuers::{FetchSettings, IssuerRegistry, ValidationError};
use trustbridge::jose::SigningAlgorithm;

use crate::support::gateway::{JWT_BEARER, encode};
use crate::support::{T0, TestGateway, TestIssuer, clock};

const MAIN: &str = "repo:contoso/infra:ref:refs/heads/main";

struct Env {
    issuer: TestIssuer,
    gw: TestGateway,
    clock: Arc<ManualClock>,
}

/// A gateway trusting one generic test issuer, after its keys were pre-warmed.
async fn setup_with(prepare: impl FnOnce(&TestIssuer)) -> Env {
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    prepare(&issuer);
    let gw = TestGateway::start("issuer_trust", &[("ISSUER", &issuer.url)], clock.clone()).await;
    wait_for(|| issuer.hits("/keys") >= 1, "keys pre-warmed at start").await;
    // The load is complete (its `fetched_at` taken on the test clock) once it is counted; only
    // then may a test move the clock.
    for _ in 0..500 {
        let metrics = gw.get_text("/metrics").await.1;
        if metrics
            .contains("trustbridge_issuer_key_fetches_total{issuer=\"test\",outcome=\"ok\"} 1")
        {
            return Env { issuer, gw, clock };
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("pre-warm did not complete");
}

async fn setup() -> Env {
    setup_with(|_| {}).await
}

/// Polls a condition that another task (a server, a spawned refresh) makes true.
async fn wait_for(mut done: impl FnMut() -> bool, what: &str) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

impl Env {
    fn token(&self) -> String {
        self.issuer
            .mint(&self.issuer.claims(MAIN, "api://trustbridge"))
    }

    async fn exchange(&self, token: &str) -> (u16, Value) {
        self.gw
            .client_credentials("deploy-bot", token, "api://payments/.default")
            .await
    }

    async fn metrics(&self) -> String {
        self.gw.get_text("/metrics").await.1
    }
}

fn description(body: &Value) -> &str {
    body["error_description"].as_str().unwrap_or_default()
}

/// The `detail` of the gateway's newest audit record: the refusal as operators see it.
fn last_audit_detail(gw: &TestGateway) -> String {
    gw.audit_records()
        .last()
        .and_then(|r| r["detail"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[actix_web::test]
async fn keys_are_prewarmed_when_policies_load() {
    let env = setup().await;
    // No exchange has happened yet, and the keys are already there.
    assert_eq!(env.issuer.hits("/.well-known/openid-configuration"), 1);
    assert_eq!(env.issuer.hits("/keys"), 1);
    let (status, _) = env.exchange(&env.token()).await;
    assert_eq!(status, 200);
    assert_eq!(env.issuer.hits("/keys"), 1);
}

#[actix_web::test]
async fn thousand_concurrent_exchanges_with_an_unknown_kid_cause_one_jwks_fetch() {
    let env = setup().await;
    env.issuer.rotate_keys();
    let token = env.token();
    // A slow JWKS keeps the refresh in flight while the requests pile up behind it.
    env.issuer.respond_slowly(Some(Duration::from_millis(300)));
    let (keys_before, discovery_before) = (
        env.issuer.hits("/keys"),
        env.issuer.hits("/.well-known/openid-configuration"),
    );
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let body = encode(&[
        ("grant_type", "client_credentials"),
        ("client_id", "deploy-bot"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", &token),
        ("scope", "api://payments/.default"),
    ]);
    let url = format!("{}/contoso/oauth2/v2.0/token", env.gw.url);
    let requests = (0..1000).map(|_| {
        let request = client
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone())
            .send();
        async move { request.await.map(|r| r.status().as_u16()) }
    });
    let statuses = futures_util::future::join_all(requests).await;
    let ok = statuses.iter().filter(|s| matches!(s, Ok(200))).count();
    let jwks_fetches = env.issuer.hits("/keys") - keys_before;
    let discovery_fetches = env.issuer.hits("/.well-known/openid-configuration") - discovery_before;
    eprintln!(
        "1000 concurrent exchanges with an unknown kid: {ok} granted, {jwks_fetches} JWKS \
         fetch(es), {discovery_fetches} discovery fetch(es)"
    );
    assert_eq!(
        ok,
        1000,
        "{:?}",
        statuses.iter().find(|s| !matches!(s, Ok(200)))
    );
    assert_eq!(jwks_fetches, 1);
    assert_eq!(discovery_fetches, 1);
    // Every request that looked before the new set landed counted a miss; none fetched.
    let metrics = env.metrics().await;
    let misses: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("trustbridge_issuer_kid_misses_total{issuer=\"test\"} "))
        .and_then(|v| v.parse().ok())
        .expect("kid misses metric");
    eprintln!("kid misses recorded: {misses}");
    assert!((1..=1000).contains(&misses), "{misses}");
}

#[actix_web::test]
async fn unknown_kid_refresh_waits_for_the_cooldown() {
    let env = setup().await;
    env.issuer.rotate_keys();
    assert_eq!(env.exchange(&env.token()).await.0, 200);
    assert_eq!(env.issuer.hits("/keys"), 2);

    // Another rotation within 30 s: no fetch, the token is refused as signed by an unknown key.
    env.clock.advance(Duration::from_secs(29));
    env.issuer.rotate_keys();
    let (status, body) = env.exchange(&env.token()).await;
    assert_eq!(status, 401);
    assert_eq!(body["error_codes"], json!([700027]));
    assert_eq!(env.issuer.hits("/keys"), 2);

    // After the cooldown the new key is fetched.
    env.clock.advance(Duration::from_secs(1));
    assert_eq!(env.exchange(&env.token()).await.0, 200);
    assert_eq!(env.issuer.hits("/keys"), 3);
}

#[actix_web::test]
async fn issuer_down_for_an_hour_then_past_the_stale_window() {
    let env = setup().await;
    assert_eq!(env.exchange(&env.token()).await.0, 200);
    env.issuer.fail_with(Some(503));

    // Keys are fresh for an hour (no Cache-Control); the issuer is down from now on.
    for minutes in [60, 90, 120] {
        env.clock
            .set(std::time::UNIX_EPOCH + Duration::from_secs(T0 + minutes * 60));
        let (status, body) = env.exchange(&env.token()).await;
        assert_eq!(status, 200, "{minutes} min: {body}");
    }
    let metrics = env.metrics().await;
    assert!(metrics.contains("trustbridge_issuer_keys_stale{issuer=\"test\"} 1"));
    assert!(
        metrics.contains(
            "trustbridge_issuer_key_fetches_total{issuer=\"test\",outcome=\"http_status\"}"
        )
    );

    // Fresh until T0 + 1 h, stale-servable for 24 h more, then closed.
    env.clock
        .set(std::time::UNIX_EPOCH + Duration::from_secs(T0 + 3600 + 24 * 3600));
    assert_eq!(env.exchange(&env.token()).await.0, 200);
    env.clock.advance(Duration::from_secs(1));
    let (status, body) = env.exchange(&env.token()).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    // The client gets a generic message and the trace id; the why (stale window, the
    // issuer's 503, its URL) is the operator's, in the audit trail.
    let text = description(&body);
    assert!(text.contains("cannot be obtained right now"), "{text}");
    assert!(
        text.contains(body["trace_id"].as_str().unwrap_or("?")),
        "{text}"
    );
    assert!(!text.contains(&env.issuer.url), "{text}");
    let detail = last_audit_detail(&env.gw);
    assert!(detail.contains("1day stale window"), "{detail}");
    assert!(detail.contains("503"), "{detail}");

    // The issuer comes back: exchanges work again.
    env.issuer.fail_with(None);
    assert_eq!(env.exchange(&env.token()).await.0, 200);
}

#[actix_web::test]
async fn hostile_or_broken_jwks_is_refused_and_old_keys_kept() {
    type Break = fn(&TestIssuer);
    let cases: [(&str, Break); 5] = [
        ("http_status", |i| i.fail_with(Some(500))),
        ("malformed", |i| i.serve_malformed(true)),
        ("too_large", |i| i.serve_oversized()),
        ("redirect_refused", |i| {
            // Same port, other host name: off-host.
            let port = i.url.rsplit(':').next().unwrap_or_default().to_string();
            i.redirect_jwks_to(Some(format!("http://localhost:{port}/keys")));
        }),
        ("issuer_mismatch", |i| {
            i.set_discovery_issuer(Some(format!("{}/other", i.url)));
        }),
    ];
    for (outcome, break_issuer) in cases {
        let env = setup().await;
        let fetches = env.issuer.hits("/.well-known/openid-configuration");
        let jwks_hits = env.issuer.hits("/keys");
        break_issuer(&env.issuer);
        // Past freshness: a refresh is attempted, refused, and the old keys keep serving.
        env.clock.advance(Duration::from_secs(3600));
        let (status, body) = env.exchange(&env.token()).await;
        assert_eq!(status, 200, "{outcome}: {body}");
        assert_eq!(
            env.issuer.hits("/.well-known/openid-configuration"),
            fetches + 1,
            "{outcome}: one refresh attempt"
        );
        let metrics = env.metrics().await;
        let line = format!(
            "trustbridge_issuer_key_fetches_total{{issuer=\"test\",outcome=\"{outcome}\"}} 1"
        );
        assert!(metrics.contains(&line), "{outcome}: {metrics}");
        // A rotated key cannot be learned from the broken endpoint: refused, not trusted.
        env.issuer.rotate_keys();
        let (status, _) = env.exchange(&env.token()).await;
        assert_ne!(status, 200, "{outcome}");
        if outcome == "redirect_refused" {
            // `localhost` reaches this same server: following the redirect would show up as
            // a second /keys hit per attempt.
            let attempts = env.issuer.hits("/.well-known/openid-configuration") - fetches;
            assert_eq!(env.issuer.hits("/keys") - jwks_hits, attempts, "{outcome}");
        }
    }
}

#[actix_web::test]
async fn slow_issuer_times_out_and_old_keys_are_kept() {
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    let policies_dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        policies_dir.path().join("p.yaml"),
        format!(
            "kind: Issuer\nname: slow\nissuer: {}\nallowInsecureHttp: true\n",
            issuer.url
        ),
    )
    .expect("write");
    let policies = trustbridge::policy::load_dir(policies_dir.path()).expect("policies");
    let settings = FetchSettings {
        timeout: Duration::from_millis(300),
        ..FetchSettings::default()
    };
    let registry = IssuerRegistry::new(
        &policies,
        settings,
        clock.clone() as Arc<dyn Clock>,
        trustbridge::demo::jwks_path(&std::env::temp_dir()),
    );
    let token = issuer.mint(&issuer.claims("s", "a"));
    registry.validate(&token).await.expect("first load");

    issuer.respond_slowly(Some(Duration::from_secs(3)));
    clock.advance(Duration::from_secs(3600));
    // Stale keys serve while the slow refresh is refused.
    let token = issuer.mint(&issuer.claims("s", "a"));
    registry.validate(&token).await.expect("stale keys serve");
    assert_eq!(registry.key_loads("slow"), Some(2));

    // A kid the stale set lacks needs the slow issuer: the fetch times out.
    issuer.rotate_keys();
    clock.advance(Duration::from_secs(60));
    let token = issuer.mint(&issuer.claims("s", "a"));
    match registry.validate(&token).await {
        Err(ValidationError::KeysUnavailable(reason)) => {
            assert!(reason.contains("timed out"), "{reason}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[actix_web::test]
async fn cache_control_is_clamped_to_at_least_five_minutes() {
    let env = setup_with(|i| i.set_cache_control(Some("max-age=10"))).await;
    // 10 s would make the keys stale now; the 5-minute floor keeps them.
    env.clock.advance(Duration::from_secs(200));
    assert_eq!(env.exchange(&env.token()).await.0, 200);
    assert_eq!(env.issuer.hits("/keys"), 1);
    // Three quarters into the 5 minutes, a lookup starts one background refresh.
    env.clock.advance(Duration::from_secs(25));
    assert_eq!(env.exchange(&env.token()).await.0, 200);
    wait_for(|| env.issuer.hits("/keys") == 2, "background refresh").await;
    for _ in 0..5 {
        assert_eq!(env.exchange(&env.token()).await.0, 200);
    }
    assert_eq!(env.issuer.hits("/keys"), 2);
}

fn copies_of(jwk: &Value, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let mut k = jwk.clone();
            k["kid"] = json!(format!("filler-{i}"));
            k
        })
        .collect()
}

#[actix_web::test]
async fn at_most_one_hundred_keys_are_used() {
    // 99 other keys first: the signing key is the 100th, and used.
    let env = setup_with(|i| i.publish_jwks_first(copies_of(&i.public_jwk(), 99))).await;
    assert_eq!(env.exchange(&env.token()).await.0, 200);
    // 100 others first: the signing key is the 101st, and ignored.
    let env = setup_with(|i| i.publish_jwks_first(copies_of(&i.public_jwk(), 100))).await;
    let (status, body) = env.exchange(&env.token()).await;
    assert_eq!(status, 401);
    assert_eq!(body["error_codes"], json!([700027]));
    assert!(
        env.metrics()
            .await
            .contains("trustbridge_issuer_keys_in_use{issuer=\"test\"} 100")
    );
}

#[actix_web::test]
async fn key_metrics_are_exported_per_issuer() {
    let env = setup().await;
    let metrics = env.metrics().await;
    for line in [
        "trustbridge_issuer_key_fetches_total{issuer=\"test\",outcome=\"ok\"} 1",
        "trustbridge_issuer_keys_in_use{issuer=\"test\"} 1",
        &format!("trustbridge_issuer_keys_last_success_timestamp_seconds{{issuer=\"test\"}} {T0}"),
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
}

// === presets with realistic platform tokens ===

struct Platform {
    fixture: &'static str,
    var: &'static str,
    alg: SigningAlgorithm,
    client_id: &'static str,
}

const PLATFORMS: [Platform; 6] = [
    Platform {
        fixture: "github-actions-push-main.json",
        var: "GITHUB",
        alg: SigningAlgorithm::RS256,
        client_id: "github-deployer",
    },
    Platform {
        fixture: "gitlab-ci.json",
        var: "GITLAB",
        alg: SigningAlgorithm::RS256,
        client_id: "gitlab-deployer",
    },
    Platform {
        fixture: "kubernetes-projected-sa-custom-audience.json",
        var: "KUBERNETES",
        alg: SigningAlgorithm::RS256,
        client_id: "cluster-workload",
    },
    Platform {
        fixture: "gcp-metadata-identity-token.json",
        var: "GCP",
        alg: SigningAlgorithm::RS256,
        client_id: "gce-workload",
    },
    Platform {
        fixture: "aws-outbound-federation.json",
        var: "AWS",
        alg: SigningAlgorithm::ES384,
        client_id: "aws-workload",
    },
    Platform {
        fixture: "azure-managed-identity-v2.json",
        var: "AZURE",
        alg: SigningAlgorithm::RS256,
        client_id: "azure-workload",
    },
];

fn fixture(name: &str) -> (Value, Value) {
    let path = format!(
        "{}/tests/fixtures/platform-tokens/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    (doc["header"].clone(), doc["claims"].clone())
}

/// The fixture's token as `issuer` would mint it now: times shifted to the test clock, `iss`
/// the loopback issuer, signed with its key published under the fixture's `kid`.
fn platform_token(
    issuer: &TestIssuer,
    clock: &ManualClock,
    header: &Value,
    claims: &Value,
) -> String {
    let shift = |v: &Value| v.as_u64().map(|t| json!(t + clock.unix() - 1_767_225_600));
    let mut claims = claims.clone();
    for name in ["iat", "nbf", "exp"] {
        if let Some(shifted) = claims.get(name).and_then(shift) {
            claims[name] = shifted;
        }
    }
    claims["iss"] = json!(issuer.url);
    let kid = header["kid"].as_str().expect("fixture kid");
    let mut jwk = issuer.public_jwk();
    jwk["kid"] = json!(kid);
    issuer.publish_jwk(jwk);
    issuer.mint_raw(&header.to_string(), &claims.to_string())
}

struct Presets {
    issuers: Vec<TestIssuer>,
    gw: TestGateway,
    clock: Arc<ManualClock>,
}

async fn presets() -> Presets {
    let clock = clock();
    let mut issuers = Vec::new();
    for p in &PLATFORMS {
        issuers.push(TestIssuer::start_with(clock.clone(), p.alg).await);
    }
    let vars: Vec<(&str, &str)> = PLATFORMS
        .iter()
        .zip(&issuers)
        .map(|(p, i)| (p.var, i.url.as_str()))
        .collect();
    let gw = TestGateway::start("presets", &vars, clock.clone()).await;
    Presets { issuers, gw, clock }
}

#[actix_web::test]
async fn realistic_platform_tokens_exchange_under_their_presets() {
    let env = presets().await;
    // Time moves on a little (as it does between a job starting and asking for a token).
    env.clock.advance(Duration::from_secs(90));
    for (p, issuer) in PLATFORMS.iter().zip(&env.issuers) {
        let (header, mut claims) = fixture(p.fixture);
        if p.var == "GITHUB" {
            // Jobs request trustbridge's audience instead of the default owner URL.
            claims["aud"] = json!("https://trustbridge.example.com");
        }
        let token = platform_token(issuer, &env.clock, &header, &claims);
        let (status, body) = env
            .gw
            .client_credentials(p.client_id, &token, "api://payments/.default")
            .await;
        assert_eq!(status, 200, "{}: {body}", p.fixture);
        let issued = env
            .gw
            .verify("contoso", body["access_token"].as_str().expect("token"))
            .await;
        assert_eq!(issued["src_sub"], claims["sub"], "{}", p.fixture);
    }

    // GitHub's immutable subject form passes the same id-pinned credential.
    let (header, mut claims) = fixture("github-actions-new-sub-format.json");
    claims["aud"] = json!("https://trustbridge.example.com");
    let token = platform_token(&env.issuers[0], &env.clock, &header, &claims);
    let (status, body) = env
        .gw
        .client_credentials("github-deployer", &token, "api://payments/.default")
        .await;
    assert_eq!(status, 200, "{body}");
}

#[actix_web::test]
async fn preset_hygiene_refuses_what_the_platform_never_sends() {
    let env = presets().await;

    // GitHub always sets typ JWT: a token without it (or typed at+jwt) is refused.
    let (mut header, mut claims) = fixture("github-actions-push-main.json");
    claims["aud"] = json!("https://trustbridge.example.com");
    for typ in [None, Some("at+jwt")] {
        match typ {
            None => {
                header.as_object_mut().expect("header").remove("typ");
            }
            Some(t) => header["typ"] = json!(t),
        }
        let token = platform_token(&env.issuers[0], &env.clock, &header, &claims);
        let (status, body) = env
            .gw
            .client_credentials("github-deployer", &token, "api://payments/.default")
            .await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error_codes"], json!([50027]));
        assert!(description(&body).contains("token type"), "{body}");
    }

    // GitHub tokens live 5 minutes; one claiming 6 hours is refused (preset cap 1 h).
    let (header, mut claims) = fixture("github-actions-push-main.json");
    claims["aud"] = json!("https://trustbridge.example.com");
    claims["exp"] = json!(1_767_225_600u64 + 6 * 3600);
    let token = platform_token(&env.issuers[0], &env.clock, &header, &claims);
    let (status, body) = env
        .gw
        .client_credentials("github-deployer", &token, "api://payments/.default")
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error_codes"], json!([700024]));
    assert!(description(&body).contains("lifetime"), "{body}");
    assert!(
        !description(&body).contains("3600"),
        "no configured limit: {body}"
    );
    let detail = last_audit_detail(&env.gw);
    assert!(detail.contains("maximum of 3600s"), "{detail}");

    // The default kube-api-access token lives a year: refused even with the right audience.
    let (header, mut claims) = fixture("kubernetes-projected-sa.json");
    claims["aud"] = json!(["https://trustbridge.example.com"]);
    let token = platform_token(&env.issuers[2], &env.clock, &header, &claims);
    let (status, body) = env
        .gw
        .client_credentials("cluster-workload", &token, "api://payments/.default")
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error_codes"], json!([700024]));
    assert!(description(&body).contains("lifetime"), "{body}");

    // GitHub tokens are exchanged right after they are issued: one issued 20 minutes ago is
    // refused (preset maximum age 15 min) although it has not expired.
    let (header, mut claims) = fixture("github-actions-push-main.json");
    claims["aud"] = json!("https://trustbridge.example.com");
    claims["iat"] = json!(1_767_225_600u64 - 20 * 60);
    claims["nbf"] = json!(1_767_225_600u64 - 20 * 60);
    claims["exp"] = json!(1_767_225_600u64 + 10 * 60);
    let token = platform_token(&env.issuers[0], &env.clock, &header, &claims);
    let (status, body) = env
        .gw
        .client_credentials("github-deployer", &token, "api://payments/.default")
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error_codes"], json!([700024]));
    assert!(description(&body).contains("issued 1200s ago"), "{body}");
}
