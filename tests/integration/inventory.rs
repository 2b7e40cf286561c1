//! Issue 15, the identity inventory: exchanges through the real gateway show up in
//! `GET /admin/v1/identities` (counts, last subject, declared identities never used), two
//! gateways sharing Redis see each other's usage, and `trustbridge identities list` reads a
//! running gateway. The writer is asynchronous: tests poll with a deadline, never sleep a
//! fixed time.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trustbridge::config::Layer;

use crate::support::{TestGateway, TestIssuer, clock, http};

const BIN: &str = env!("CARGO_BIN_EXE_trustbridge");
const APP_ID: &str = "6f2d3b1e-0c4a-4d8e-9b7a-1a2b3c4d5e6f";
const MAIN: &str = "repo:contoso/infra:ref:refs/heads/main";

fn start_admin(gw: &TestGateway) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind admin");
    let port = listener.local_addr().expect("addr").port();
    let server = trustbridge::admin::server(gw.gateway.clone(), listener).expect("admin server");
    actix_web::rt::spawn(server);
    format!("http://127.0.0.1:{port}")
}

fn ci_claims(issuer: &TestIssuer, sub: &str) -> Value {
    let mut claims = issuer.claims(sub, "api://trustbridge");
    claims["repository"] = json!("contoso/infra");
    claims["repository_owner_id"] = json!("1234567");
    claims
}

async fn identities(admin: &str, query: &str) -> Value {
    let resp = http()
        .get(format!("{admin}/admin/v1/identities{query}"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.expect("json")
}

fn find<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or(&Value::Null)
}

/// Polls `admin` until `deploy-bot` shows `granted`/`denied`, or fails after a deadline.
async fn until_counted(admin: &str, granted: u64, denied: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = identities(admin, "").await;
        let bot = find(&body, "deploy-bot");
        if bot["granted"] == granted && bot["denied"] == denied {
            return body;
        }
        assert!(Instant::now() < deadline, "not counted in time: {body}");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn exchanges_show_in_the_inventory_with_counts_and_last_subject() {
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    let gw = TestGateway::start("basic", &[("ISSUER", &issuer.url)], clock).await;
    let admin = start_admin(&gw);
    let before = identities(&admin, "").await;
    let nightly = find(&before, "nightly-job");
    assert_eq!(nightly["declared"], true, "{before}");
    assert_eq!(
        nightly["first_seen"],
        Value::Null,
        "declared, never used: {before}"
    );
    assert_eq!(nightly["credentials"][0]["stale"], true);

    let good = issuer.mint(&ci_claims(&issuer, MAIN));
    let (status, _) = gw
        .client_credentials(APP_ID, &good, "api://payments/.default")
        .await;
    assert_eq!(status, 200);
    let bad = issuer.mint(&ci_claims(&issuer, "repo:contoso/infra:ref:refs/heads/dev"));
    let (status, _) = gw
        .client_credentials(APP_ID, &bad, "api://payments/.default")
        .await;
    assert_ne!(status, 200);
    // A refusal naming no known identity is not recorded per identity.
    let (status, _) = gw
        .client_credentials("nobody", &good, "api://payments/.default")
        .await;
    assert_ne!(status, 200);

    let body = until_counted(&admin, 1, 1).await;
    let bot = find(&body, "deploy-bot");
    assert_eq!(bot["kind"], "servicePrincipal");
    assert_eq!(bot["last_caller"], "127.0.0.1", "{bot}");
    assert_eq!(
        bot["last_policy_hash"],
        gw.gateway.policies().content_hash()
    );
    assert!(
        bot["first_seen"].is_u64() && bot["last_used"].is_u64(),
        "{bot}"
    );
    let main = bot["credentials"]
        .as_array()
        .expect("credentials")
        .iter()
        .find(|c| c["name"] == "infra-main")
        .expect("infra-main");
    assert_eq!(
        (main["granted"].as_u64(), main["stale"].as_bool()),
        (Some(1), Some(false))
    );
    assert_eq!(main["last_subject"], MAIN);
    assert!(find(&body, "nobody").is_null());

    // Unused for 1h: deploy-bot was just used, nightly-job never.
    let stale = identities(&admin, "?unusedFor=1h").await;
    let names: Vec<&str> = stale["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert!(names.contains(&"nightly-job"), "{stale}");
    let bot = find(&stale, "deploy-bot");
    assert!(
        bot.is_null()
            || bot["credentials"]
                .as_array()
                .is_some_and(|c| c.iter().all(|c| c["name"] != "infra-main")),
        "{stale}"
    );
    let resp = http()
        .get(format!("{admin}/admin/v1/identities?unusedFor=soon"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status().as_u16(), 400);

    // Stale trust at scrape.
    let (_, metrics) = gw.get_text("/metrics").await;
    assert!(
        metrics.lines().any(
            |l| l.starts_with("trustbridge_credentials_unused{age=\"never\"}")
                && !l.ends_with(" 0")
        ),
        "{metrics}"
    );

    // The CLI, as a real process against this gateway's admin listener.
    let url = admin.clone();
    let out = actix_web::rt::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            .args([
                "identities",
                "list",
                "--admin-url",
                &url,
                "--unused-for",
                "1h",
            ])
            .output()
            .expect("run")
    })
    .await
    .expect("join");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("contoso/nightly-job managedIdentity: granted 0"),
        "{text}"
    );
    assert!(text.contains("  nightly STALE: "), "{text}");
    let url = admin.clone();
    let out = actix_web::rt::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            .args([
                "identities",
                "list",
                "--admin-url",
                &url,
                "--format",
                "json",
            ])
            .output()
            .expect("run")
    })
    .await
    .expect("join");
    let json: Value = serde_json::from_slice(&out.stdout).expect("json output");
    assert_eq!(find(&json, "deploy-bot")["granted"], 1);
}

#[actix_web::test]
async fn replicas_sharing_redis_see_each_others_usage() {
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    let prefix = format!("tbtest:{}:", uuid::Uuid::new_v4().simple());
    let redis = |l: &mut Layer| {
        l.redis_url = Some("redis://127.0.0.1:6379".into());
        l.redis_key_prefix = Some(prefix.clone());
    };
    let vars = [("ISSUER", issuer.url.as_str())];
    let a = TestGateway::start_tweaked("basic", &vars, clock.clone(), redis).await;
    let keys = a.keys_dir();
    let b = TestGateway::start_tweaked("basic", &vars, clock, |l| {
        redis(l);
        l.keys = Some(keys);
    })
    .await;
    let admin_b = start_admin(&b);
    for _ in 0..2 {
        let good = issuer.mint(&ci_claims(&issuer, MAIN));
        let (status, _) = a
            .client_credentials(APP_ID, &good, "api://payments/.default")
            .await;
        assert_eq!(status, 200);
    }
    let body = until_counted(&admin_b, 2, 0).await;
    assert_eq!(find(&body, "deploy-bot")["last_subject"], MAIN);
}
