//! The admin listener (issue #14): the read-only API on its own port, its authentication off
//! loopback, the console's assets and headers, and `policy graph`.
//!
//! "Non-loopback" is tested by binding `0.0.0.0:0` and connecting through 127.0.0.1: the
//! listener is reachable from elsewhere, yet no test traffic leaves the machine.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use trustbridge::config::Layer;

use crate::support::{TestGateway, TestIssuer, clock, http};

const BIN: &str = env!("CARGO_BIN_EXE_trustbridge");
const APP_ID: &str = "6f2d3b1e-0c4a-4d8e-9b7a-1a2b3c4d5e6f";
const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdefghijklmnop";

/// Starts the admin server of `gw` on `bind` (port 0); returns its URL through 127.0.0.1.
fn start_admin(gw: &TestGateway, bind: &str) -> String {
    let listener = std::net::TcpListener::bind(bind).expect("bind admin");
    let port = listener.local_addr().expect("addr").port();
    let server = trustbridge::admin::server(gw.gateway.clone(), listener).expect("admin server");
    actix_web::rt::spawn(server);
    format!("http://127.0.0.1:{port}")
}

async fn setup(tweak: impl FnOnce(&mut Layer)) -> (TestIssuer, TestGateway) {
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    let gw = TestGateway::start_tweaked("basic", &[("ISSUER", &issuer.url)], clock, tweak).await;
    (issuer, gw)
}

fn ci_claims(issuer: &TestIssuer, sub: &str) -> Value {
    let mut claims = issuer.claims(sub, "api://trustbridge");
    claims["repository"] = json!("contoso/infra");
    claims["repository_owner_id"] = json!("1234567");
    claims
}

async fn get(url: &str, token: Option<&str>) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = http().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("get");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.expect("text"))
}

async fn explain(admin: &str, body: &Value) -> (u16, Value) {
    let resp = http()
        .post(format!("{admin}/admin/v1/explain"))
        .json(body)
        .send()
        .await
        .expect("post");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json"))
}

#[actix_web::test]
async fn graph_lists_every_identity_with_where_it_is_declared() {
    let (_issuer, gw) = setup(|_| {}).await;
    let admin = start_admin(&gw, "127.0.0.1:0");
    let (status, _, body) = get(&format!("{admin}/admin/v1/graph"), None).await;
    assert_eq!(status, 200, "{body}");
    let graph: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(graph["policy_hash"], gw.gateway.policies().content_hash());
    let nodes = graph["nodes"].as_array().expect("nodes");
    let policies = gw.gateway.policies();
    let identities = nodes
        .iter()
        .filter(|n| n["kind"] == "servicePrincipal" || n["kind"] == "managedIdentity")
        .count();
    assert_eq!(
        identities,
        policies.service_principals().len() + policies.managed_identities().len()
    );
    for n in nodes {
        assert!(
            n["file"].as_str().is_some_and(|f| f.ends_with(".yaml")),
            "{n}"
        );
        assert!(n["document"].as_u64().is_some_and(|d| d >= 1), "{n}");
        // The line is read from the file: the declaration's own text is there.
        let file = std::fs::read_to_string(n["file"].as_str().expect("file")).expect("policy file");
        let line = n["line"].as_u64().expect("a line number") as usize;
        let text = file.lines().nth(line - 1).expect("the line exists");
        if n["kind"] == "issuer" || n["kind"] == "application" {
            let name = n["name"].as_str().expect("name");
            assert!(
                text.contains("kind:") || text.contains(name),
                "line {line} of {}: {text:?} for {n}",
                n["file"]
            );
        }
    }
    let template = nodes
        .iter()
        .find(|n| n["details"]["assignment"] == "workload")
        .expect("workload-assigned template");
    assert!(template["details"]["nameFrom"].is_string());
    assert!(graph["edges"].as_array().expect("edges").iter().any(|e| {
        e["kind"] == "role"
            && e["from"] == "servicePrincipal:contoso/deploy-bot"
            && e["roles"] == json!(["Payments.Read", "Payments.Write"])
    }));
}

#[actix_web::test]
async fn decisions_hold_the_audit_events_newest_first_and_filter() {
    let (issuer, gw) = setup(|_| {}).await;
    let admin = start_admin(&gw, "127.0.0.1:0");
    let good = issuer.mint(&ci_claims(
        &issuer,
        "repo:contoso/infra:ref:refs/heads/main",
    ));
    let (status, _) = gw
        .client_credentials(APP_ID, &good, "api://payments/.default")
        .await;
    assert_eq!(status, 200);
    let bad = issuer.mint(&ci_claims(&issuer, "repo:contoso/infra:ref:refs/heads/dev"));
    let (status, _) = gw
        .client_credentials(APP_ID, &bad, "api://payments/.default")
        .await;
    assert_ne!(status, 200);

    let (status, _, body) = get(&format!("{admin}/admin/v1/decisions"), None).await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).expect("json");
    let decisions = body["decisions"].as_array().expect("decisions");
    assert_eq!(decisions.len(), 2, "{body}");
    assert_eq!(decisions[0]["decision.outcome"], "denied", "newest first");
    assert_eq!(decisions[1]["decision.outcome"], "granted");
    assert_eq!(decisions[1]["identity.name"], "deploy-bot");
    assert_eq!(body["policy_hash"], gw.gateway.policies().content_hash());
    // The same events as the audit trail, field for field.
    let audit = gw.audit_records();
    assert_eq!(audit.len(), 2);
    assert_eq!(decisions[1], audit[0]);
    assert_eq!(decisions[0], audit[1]);

    for (query, want) in [
        ("?outcome=granted", 1),
        ("?outcome=denied", 1),
        ("?identity=deploy-bot", 1),
        ("?identity=nobody", 0),
        ("?limit=1", 1),
    ] {
        let (status, _, body) = get(&format!("{admin}/admin/v1/decisions{query}"), None).await;
        assert_eq!(status, 200, "{query}: {body}");
        let body: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(
            body["decisions"].as_array().map(Vec::len),
            Some(want),
            "{query}"
        );
    }
    for query in ["?limit=0", "?limit=x", "?user=a"] {
        let (status, _, body) = get(&format!("{admin}/admin/v1/decisions{query}"), None).await;
        assert_eq!(status, 400, "{query}: {body}");
    }
    let (status, _, body) = get(&format!("{admin}/admin/v1/identities"), None).await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).expect("json");
    assert!(body["identities"].is_array(), "{body}");
}

#[actix_web::test]
async fn explain_gives_the_policy_explain_trace_for_claims_and_tokens() {
    let (issuer, gw) = setup(|_| {}).await;
    let admin = start_admin(&gw, "127.0.0.1:0");
    let before = gw.audit_records().len();
    let wrong_branch = ci_claims(&issuer, "repo:contoso/infra:ref:refs/heads/dev");
    let (status, body) = explain(
        &admin,
        &json!({"tenant": "contoso", "client_id": APP_ID, "scope": "api://payments/.default",
                "claims": wrong_branch}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["signature"]["status"], "claims");
    assert_eq!(body["decision"]["outcome"], "deny", "{body}");
    assert_eq!(body["decision"]["reason"], "subject_mismatch", "{body}");
    assert_eq!(body["decision"]["code"], 700213);
    let main = body["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .find(|c| c["credential"] == "infra-main")
        .expect("infra-main is a candidate");
    assert_eq!(main["failed_check"], "subject");
    assert!(body["text"].as_str().expect("text").contains("infra-main"));

    // A token is validated with the gateway's own issuer registry first.
    let token = issuer.mint(&ci_claims(
        &issuer,
        "repo:contoso/infra:ref:refs/heads/main",
    ));
    let (status, body) = explain(
        &admin,
        &json!({"tenant": "contoso", "client_id": APP_ID, "scope": "api://payments/.default",
                "token": token}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["signature"]["status"], "verified");
    assert_eq!(body["decision"]["outcome"], "allow", "{body}");
    assert_eq!(
        body["decision"]["roles"],
        json!(["Payments.Read", "Payments.Write"])
    );
    assert!(
        !body.to_string().contains(&token),
        "the token is never echoed"
    );

    let forged = format!("{}.AAAA", token.rsplit_once('.').expect("jws").0);
    let (status, body) = explain(
        &admin,
        &json!({"tenant": "contoso", "client_id": APP_ID, "scope": "api://payments/.default",
                "token": forged}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["signature"]["status"], "failed", "{body}");

    for bad in [
        json!({"tenant": "contoso"}),
        json!({"tenant": "contoso", "claims": {}, "token": "x"}),
        json!({"tenant": "contoso", "claims": {}, "extra": 1}),
        json!({"tenant": "contoso", "token": "not-a-jwt"}),
    ] {
        let (status, body) = explain(&admin, &bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"], "invalid_request");
    }
    let resp = http()
        .post(format!("{admin}/admin/v1/explain"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("post");
    assert_eq!(
        resp.status().as_u16(),
        400,
        "JSON only: no simple cross-site POST"
    );
    assert_eq!(
        gw.audit_records().len(),
        before,
        "explaining records nothing"
    );
}

#[actix_web::test]
async fn admin_routes_are_read_only_and_absent_from_the_public_listener() {
    let (_issuer, gw) = setup(|_| {}).await;
    let admin = start_admin(&gw, "127.0.0.1:0");
    for path in [
        "/admin/v1/graph",
        "/admin/v1/decisions",
        "/admin/v1/identities",
        "/console/app.js",
    ] {
        let (status, _, _) = get(&format!("{}{path}", gw.url), None).await;
        assert_eq!(status, 404, "{path} on the public listener");
    }
    let resp = http()
        .post(format!("{}/admin/v1/explain", gw.url))
        .json(&json!({"tenant": "contoso", "claims": {}}))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 404);
    for path in [
        "/admin/v1/graph",
        "/admin/v1/decisions",
        "/admin/v1/identities",
    ] {
        for method in [
            reqwest::Method::POST,
            reqwest::Method::PUT,
            reqwest::Method::DELETE,
        ] {
            let resp = http()
                .request(method.clone(), format!("{admin}{path}"))
                .send()
                .await
                .expect("send");
            assert_eq!(resp.status().as_u16(), 405, "{method} {path}");
        }
    }
    // Probes and the scrape are served on both listeners.
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(get(&format!("{admin}{path}"), None).await.0, 200, "{path}");
        assert_eq!(
            get(&format!("{}{path}", gw.url), None).await.0,
            200,
            "{path}"
        );
    }
    // The console: embedded, strict CSP, no inline script or style.
    let (status, headers, html) = get(&format!("{admin}/"), None).await;
    assert_eq!(status, 200);
    let csp = headers["content-security-policy"].to_str().expect("csp");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        !html.contains("<script>") && !html.contains(" style="),
        "nothing inline"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external asset"
    );
    for asset in [
        "/console/app.js",
        "/console/app.css",
        "/console/favicon.svg",
    ] {
        let (status, _, body) = get(&format!("{admin}{asset}"), None).await;
        assert_eq!(status, 200, "{asset}");
        assert!(!body.is_empty(), "{asset}");
    }
    // An unauthenticated admin API answers loopback hosts only (no DNS rebinding).
    let resp = http()
        .get(format!("{admin}/admin/v1/graph"))
        .header("host", "evil.example")
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status().as_u16(), 403);
}

#[actix_web::test]
async fn off_loopback_the_admin_api_requires_the_bearer_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n")).expect("write");
    let (_issuer, gw) = setup(|l| {
        l.admin_listen = Some("0.0.0.0:0".into());
        l.admin_token_file = Some(token_file.clone());
    })
    .await;
    let admin = start_admin(&gw, "0.0.0.0:0");
    for path in [
        "/admin/v1/graph",
        "/admin/v1/decisions",
        "/admin/v1/identities",
    ] {
        let url = format!("{admin}{path}");
        let (status, headers, body) = get(&url, None).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert!(headers.contains_key("www-authenticate"));
        assert!(!body.contains(ADMIN_TOKEN));
        assert_eq!(get(&url, Some("wrong-token")).await.0, 401, "{path}");
        let truncated = &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1];
        assert_eq!(get(&url, Some(truncated)).await.0, 401, "{path}");
        assert_eq!(get(&url, Some(ADMIN_TOKEN)).await.0, 200, "{path}");
    }
    let resp = http()
        .post(format!("{admin}/admin/v1/explain"))
        .json(&json!({"tenant": "contoso", "claims": {}}))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 401);
    // With a token, any Host is fine; the page itself holds no data and needs none.
    let resp = http()
        .get(format!("{admin}/admin/v1/graph"))
        .header("host", "trustbridge-admin.example")
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(get(&format!("{admin}/"), None).await.0, 200);
    assert_eq!(get(&format!("{admin}/readyz"), None).await.0, 200);
}

#[test]
fn serve_refuses_a_non_loopback_admin_listener_without_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let weak = dir.path().join("weak");
    std::fs::write(&weak, "short\n").expect("write");
    let weak_arg = weak.display().to_string();
    let policies = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for (extra, want) in [
        (vec!["--admin-listen", "0.0.0.0:0"], "--admin-token-file"),
        (
            vec![
                "--admin-listen",
                "0.0.0.0:0",
                "--admin-token-file",
                weak_arg.as_str(),
            ],
            "at least 32 characters",
        ),
    ] {
        let out = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--policies"])
            .arg(&policies)
            .args(&extra)
            .env("TRUSTBRIDGE_DATA_DIR", dir.path())
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{extra:?}: {stderr}");
        assert!(stderr.contains(want), "{extra:?}: {stderr}");
        assert!(
            !stderr.contains("short"),
            "never echoes the token: {stderr}"
        );
    }
}

#[actix_web::test]
async fn serve_starts_the_admin_listener_beside_the_public_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policies = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", "1"])
        .args(["--admin-listen", "127.0.0.1:0", "--policies"])
        .arg(&policies)
        .env("TRUSTBRIDGE_DATA_DIR", dir.path())
        .env_remove("TRUSTBRIDGE_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.contains("admin console and API serving") => break line,
            Ok(_) => {}
            Err(e) => {
                let _ = child.kill();
                panic!("no admin log line: {e}");
            }
        }
    };
    let at = line.find("127.0.0.1:").expect("admin address");
    let addr: String = line[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    let mut ok = false;
    for _ in 0..100 {
        if get(&format!("http://{addr}/readyz"), None).await.0 == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let graph = get(&format!("http://{addr}/admin/v1/graph"), None).await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "admin listener on {addr} never answered");
    assert_eq!(graph.0, 200, "{}", graph.2);
}

#[test]
fn policy_graph_prints_the_bundled_policies_as_dot_mermaid_and_json() {
    let run = |format: &str| {
        let out = Command::new(BIN)
            .args(["policy", "graph", "policies", "--format", format])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8")
    };
    let json: Value = serde_json::from_str(&run("json")).expect("json");
    let nodes = json["nodes"].as_array().expect("nodes");
    let edges = json["edges"].as_array().expect("edges");
    let ids: Vec<&str> = nodes.iter().filter_map(|n| n["id"].as_str()).collect();
    for kind in [
        "issuer",
        "credential",
        "servicePrincipal",
        "managedIdentity",
        "resource",
    ] {
        assert!(nodes.iter().any(|n| n["kind"] == kind), "{kind}");
    }
    for e in edges {
        assert!(ids.contains(&e["from"].as_str().unwrap_or("")), "{e}");
        assert!(ids.contains(&e["to"].as_str().unwrap_or("")), "{e}");
    }

    let mermaid = run("mermaid");
    let mut lines = mermaid.lines();
    assert_eq!(lines.next(), Some("flowchart LR"));
    let node_lines = mermaid.lines().filter(|l| l.contains("[\"")).count();
    let edge_lines = mermaid
        .lines()
        .filter(|l| l.contains(" --> ") || l.contains(" -->|"))
        .count();
    assert_eq!(
        (node_lines, edge_lines),
        (nodes.len(), edges.len()),
        "{mermaid}"
    );

    let dot = run("dot");
    assert!(dot.starts_with("digraph trustbridge {"), "{dot}");
    assert_eq!(dot.matches(" -> ").count(), edges.len(), "{dot}");
    // Graphviz parses it, when installed (.ci/run installs it).
    if let Ok(mut child) = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(dot.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("dot");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("<svg"));
    }
    // The default directory and format: `policy graph` alone is DOT of ./policies.
    let out = Command::new(BIN)
        .args(["policy", "graph"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout), dot);
}
