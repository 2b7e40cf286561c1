//! The operator console in a real browser: headless Chromium driven over WebDriver (Debian's
//! `chromium` and `chromium-driver`; `.ci/run` installs them) against a gateway serving the
//! bundled `policies/`.
//!
//! The WebDriver protocol is plain HTTP + JSON, so the test speaks it with the suite's own
//! HTTP client instead of a client library. Screenshots go to `<target>/tmp/console/`; the
//! one in `docs/console.png` was taken from there. Without chromedriver the test fails with a
//! message saying so: it never passes silently.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Map, Value, json};
use trustbridge::clock::{Clock, ManualClock};

use crate::support::{TestGateway, clock, http};

const APP_ID: &str = "6f2d3b1e-0c4a-4d8e-9b7a-1a2b3c4d5e6f";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const WAIT: Duration = Duration::from_secs(20);

/// chromedriver, killed on drop.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebDriver session.
struct Session {
    base: String,
}

impl Session {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let mut req = http().request(method.clone(), &url);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("webdriver request");
        let status = resp.status();
        let body: Value = resp.json().await.expect("webdriver json");
        assert!(status.is_success(), "{method} {path}: {status} {body}");
        body["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn script(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await;
        v[ELEMENT].as_str().expect("element id").to_string()
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.post(&format!("/element/{id}/click"), json!({})).await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.post(&format!("/element/{id}/clear"), json!({})).await;
        self.post(&format!("/element/{id}/value"), json!({ "text": text }))
            .await;
    }

    /// Polls `script` until it returns something truthy; returns it.
    async fn wait_for(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self.script(script).await;
            let truthy = match &v {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64"))
            .expect("png");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write screenshot");
        path
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

async fn start_driver() -> Driver {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "the console browser test needs chromedriver (apt-get install chromium chromium-driver; .ci/run does): {e}"
            )
        });
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _profile: tempfile::tempdir().expect("profile dir"),
    };
    let deadline = Instant::now() + WAIT;
    loop {
        let ready = http()
            .get(format!("{}/status", driver.url))
            .send()
            .await
            .ok()
            .map(|r| r.status().is_success());
        if ready == Some(true) {
            return driver;
        }
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn new_session(driver: &Driver) -> Session {
    let profile = driver._profile.path().display().to_string();
    let caps = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--window-size=1500,1900",
                format!("--user-data-dir={profile}"),
            ],
        },
        "goog:loggingPrefs": {"browser": "ALL"},
    }}});
    let resp = http()
        .post(format!("{}/session", driver.url))
        .json(&caps)
        .send()
        .await
        .expect("new session");
    let body: Value = resp.json().await.expect("session json");
    let id = body["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {body}"))
        .to_string();
    Session {
        base: format!("{}/session/{id}", driver.url),
    }
}

/// A gateway over a copy of the bundled `policies/` (the demo issuer's key is made in its
/// data directory).
async fn bundled_gateway(clock: Arc<ManualClock>) -> TestGateway {
    let root = tempfile::tempdir().expect("tempdir");
    let policies = root.path().join("policies");
    std::fs::create_dir_all(&policies).expect("mkdir");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for entry in std::fs::read_dir(&src).expect("policies") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, policies.join(path.file_name().expect("name"))).expect("copy");
    }
    TestGateway::start_in(root, clock).await
}

fn demo_token(gw: &TestGateway, clock: &ManualClock, sub: &str) -> String {
    let issuer = trustbridge::demo::DemoIssuer::open_or_create(&gw.root.path().join("data"))
        .expect("demo issuer");
    let claims =
        trustbridge::demo::demo_claims(sub, "api://trustbridge", clock.unix(), 300, Map::new());
    issuer.mint(&claims).expect("mint")
}

#[actix_web::test]
async fn console_shows_the_graph_explains_a_denial_and_lists_fresh_decisions() {
    let clock = clock();
    let gw = bundled_gateway(clock.clone()).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind admin");
    let admin = format!("http://{}", listener.local_addr().expect("addr"));
    actix_web::rt::spawn(trustbridge::admin::server(gw.gateway.clone(), listener).expect("admin"));

    let driver = start_driver().await;
    let s = new_session(&driver).await;
    s.post("/url", json!({ "url": format!("{admin}/") })).await;

    // The graph shows every identity of policies/.
    let shown = s
        .wait_for(
            "graph nodes",
            "return [...document.querySelectorAll('#graph .node')].map(g => g.getAttribute('data-id'))",
        )
        .await;
    let shown: Vec<&str> = shown
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let graph = trustbridge::policy::graph::build(&gw.gateway.policies());
    let identities: Vec<&str> = graph
        .nodes
        .iter()
        .filter(|n| {
            matches!(
                n.kind,
                trustbridge::policy::graph::NodeKind::ServicePrincipal
                    | trustbridge::policy::graph::NodeKind::ManagedIdentity
            )
        })
        .map(|n| n.id.as_str())
        .collect();
    assert!(identities.len() >= 2, "{identities:?}");
    for id in &identities {
        assert!(shown.contains(id), "{id} not drawn: {shown:?}");
    }
    let hash = s
        .wait_for(
            "policy hash",
            "return document.getElementById('policy-hash').getAttribute('title')",
        )
        .await;
    assert!(
        hash.as_str()
            .is_some_and(|h| h.ends_with(gw.gateway.policies().content_hash())),
        "{hash}"
    );

    // Keyboard: focus a node and press Enter; the details say where it is defined.
    s.script("document.querySelector('#graph .node.servicePrincipal').focus(); return true")
        .await;
    s.post(
        "/actions",
        json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
            {"type": "keyDown", "value": "\u{E007}"},
            {"type": "keyUp", "value": "\u{E007}"},
        ]}]}),
    )
    .await;
    let details = s
        .wait_for(
            "node details",
            "const d = document.getElementById('details').textContent; return d.includes('defined in') ? d : ''",
        )
        .await;
    let details = details.as_str().unwrap_or_default();
    // Where it is defined: the file and the line of the declaration.
    assert!(details.contains("contoso.yaml:"), "{details}");
    assert!(details.contains("Payments.Read"), "{details}");
    s.screenshot("graph.png").await;

    // An issuer's details list its effective fetch settings (issue #17), field by field.
    s.script("document.querySelector('#graph .node.issuer').focus(); return true")
        .await;
    s.post(
        "/actions",
        json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
            {"type": "keyDown", "value": "\u{E007}"},
            {"type": "keyUp", "value": "\u{E007}"},
        ]}]}),
    )
    .await;
    let details = s
        .wait_for(
            "issuer details",
            "const d = document.getElementById('details').textContent; return d.includes('fetch.timeout') ? d : ''",
        )
        .await;
    let details = details.as_str().unwrap_or_default();
    assert!(details.contains("fetch.timeout5s (global)"), "{details}");
    assert!(
        details.contains("fetch.maxDocumentSize256KiB (global)"),
        "{details}"
    );

    // Who can become what: a token of the wrong branch is denied, and the console says why.
    let wrong = demo_token(&gw, &clock, "repo:contoso/infra:ref:refs/heads/feature");
    s.click("input[name=ex-mode][value=token]").await;
    s.type_into("#ex-client", APP_ID).await;
    s.click("#ex-resource option[value='api://payments']").await;
    s.type_into("#ex-input", &wrong).await;
    s.click("#ex-submit").await;
    let verdict = s
        .wait_for(
            "the verdict",
            "const v = document.getElementById('verdict'); return v ? v.textContent : ''",
        )
        .await;
    let verdict = verdict.as_str().unwrap_or_default();
    assert!(verdict.starts_with("DENY subject_mismatch"), "{verdict}");
    assert!(verdict.contains("refs/heads/feature"), "{verdict}");
    let signature = s
        .script("return document.querySelector('#explain-result .signature').textContent")
        .await;
    assert!(
        signature.as_str().unwrap_or_default().contains("verified"),
        "{signature}"
    );
    s.script("document.getElementById('explain-section').scrollIntoView(); return true")
        .await;
    s.screenshot("explain.png").await;

    // Recent decisions: a fresh exchange appears without a reload (auto-refresh).
    let good = demo_token(&gw, &clock, "repo:contoso/infra:ref:refs/heads/main");
    let (status, body) = gw
        .client_credentials(APP_ID, &good, "api://payments/.default")
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = gw
        .client_credentials(APP_ID, &wrong, "api://payments/.default")
        .await;
    assert_ne!(status, 200);
    let rows = s
        .wait_for(
            "decision rows",
            "const rows = [...document.querySelectorAll('#decisions tbody tr.granted, #decisions tbody tr.denied')]; return rows.length >= 2 ? rows.map(r => r.className + ' ' + r.textContent) : null",
        )
        .await;
    let rows: Vec<&str> = rows
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(rows[0].starts_with("denied"), "newest first: {rows:?}");
    assert!(rows[0].contains("subject_mismatch"), "{rows:?}");
    assert!(
        rows[1].starts_with("granted") && rows[1].contains("deploy-bot"),
        "{rows:?}"
    );
    s.script("window.scrollTo(0, 0); return true").await;
    s.screenshot("console.png").await;

    // No console errors (a CSP violation would be one).
    let logs = s.post("/se/log", json!({"type": "browser"})).await;
    let severe: Vec<&Value> = logs
        .as_array()
        .expect("log entries")
        .iter()
        .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
        .collect();
    assert!(severe.is_empty(), "browser console: {severe:?}");
    let _ = http().delete(&s.base).send().await;
}
