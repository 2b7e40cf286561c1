//! Configurable issuer fetch settings (issue #17 item 4) through the real gateway, a real
//! local issuer and the real binary: the global `--issuer-*` settings and an Issuer's `fetch:`
//! block change what a fetch tolerates, a changed block rebuilds that issuer's cache on
//! reload, out-of-range or inconsistent values stop `serve` with exit 64 before binding, and
//! `policy explain` and the admin API show the effective values.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};
use trustbridge::policy::store::{ReloadOutcome, Trigger};

use crate::support::gateway::fixture_root;
use crate::support::{TestGateway, TestIssuer, clock, http};

const BIN: &str = env!("CARGO_BIN_EXE_trustbridge");
const MAIN: &str = "repo:contoso/infra:ref:refs/heads/main";

fn token(issuer: &TestIssuer) -> String {
    issuer.mint(&issuer.claims(MAIN, "api://trustbridge"))
}

async fn exchange(gw: &TestGateway, token: &str) -> (u16, Value) {
    gw.client_credentials("deploy-bot", token, "api://payments/.default")
        .await
}

/// The `detail` of the gateway's newest audit record: the refusal as operators see it.
fn last_audit_detail(gw: &TestGateway) -> String {
    gw.audit_records()
        .last()
        .and_then(|r| r["detail"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// The `issuer_trust` fixture with `fetch` (YAML lines) added to its Issuer `test`.
fn root_with_fetch_block(issuer: &TestIssuer, fetch: &str) -> tempfile::TempDir {
    let root = fixture_root("issuer_trust", &[("ISSUER", &issuer.url)]);
    let file = root.path().join("policies/policies.yaml");
    let text = std::fs::read_to_string(&file).expect("read");
    let text = text.replacen(
        "allowInsecureHttp: true\n",
        &format!("allowInsecureHttp: true\n{fetch}"),
        1,
    );
    std::fs::write(&file, text).expect("write");
    root
}

#[actix_web::test]
async fn a_short_configured_timeout_refuses_a_slow_issuer_the_default_waits_for() {
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    // 1.5 s per answer: well inside the default 5 s, far beyond a 300 ms timeout.
    issuer.respond_slowly(Some(Duration::from_millis(1500)));
    let vars = [("ISSUER", issuer.url.as_str())];

    let patient = TestGateway::start("issuer_trust", &vars, clock.clone()).await;
    let (status, body) = exchange(&patient, &token(&issuer)).await;
    assert_eq!(status, 200, "the default timeout waits: {body}");

    let hasty = TestGateway::start_tweaked("issuer_trust", &vars, clock.clone(), |layer| {
        layer.issuer_timeout = Some("300ms".into());
    })
    .await;
    let (status, body) = exchange(&hasty, &token(&issuer)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    let detail = last_audit_detail(&hasty);
    assert!(detail.contains("timed out"), "{detail}");

    // The same through the issuer's own block, with the global default left alone.
    let root = root_with_fetch_block(&issuer, "fetch:\n  timeout: 300ms\n");
    let blocked = TestGateway::start_in(root, clock.clone()).await;
    let (status, body) = exchange(&blocked, &token(&issuer)).await;
    assert_eq!(status, 503, "{body}");
    assert!(last_audit_detail(&blocked).contains("timed out"));
}

#[actix_web::test]
async fn a_per_issuer_document_size_is_enforced_and_a_changed_block_rebuilds_the_cache() {
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    // Pad the JWKS past 1 KiB with copies of the real key under other kids.
    for n in 0..3 {
        let mut jwk = issuer.public_jwk();
        jwk["kid"] = json!(format!("padding-{n}"));
        issuer.publish_jwk(jwk);
    }
    let root = root_with_fetch_block(&issuer, "fetch:\n  maxDocumentSize: 1KiB\n");
    let gw = TestGateway::start_in(root, clock.clone()).await;
    let (status, body) = exchange(&gw, &token(&issuer)).await;
    assert_eq!(status, 503, "{body}");
    let detail = last_audit_detail(&gw);
    assert!(detail.contains("larger than 1024 bytes"), "{detail}");

    // The block raised to 64 KiB: the reload rebuilds this issuer's cache, whose next load
    // accepts the document.
    let store = trustbridge::app::policy_store(&gw.gateway);
    let file = gw.policies_dir().join("policies.yaml");
    let text = std::fs::read_to_string(&file).expect("read");
    std::fs::write(
        &file,
        text.replace("maxDocumentSize: 1KiB", "maxDocumentSize: 64KiB"),
    )
    .expect("write");
    let outcome = store.reload(Trigger::Manual);
    assert!(
        matches!(outcome, ReloadOutcome::Applied { .. }),
        "{outcome:?}"
    );
    // The old cache (and its 1 KiB source) would refuse again: a 200 means it was rebuilt.
    let (status, body) = exchange(&gw, &token(&issuer)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        gw.gateway
            .snapshot()
            .issuers
            .fetch_settings("test")
            .map(|s| s.max_body_bytes),
        Some(64 * 1024)
    );

    // A block that contradicts the global settings is refused; the last good set serves on.
    let text = std::fs::read_to_string(&file).expect("read");
    std::fs::write(&file, text.replace("maxDocumentSize: 64KiB", "minTtl: 2h")).expect("write");
    let ReloadOutcome::Rejected { problems } = store.reload(Trigger::Manual) else {
        panic!("an inconsistent fetch block was accepted")
    };
    assert!(
        problems.iter().any(|p| p.contains(
            "fetch.minTtl (2h) must not be longer than the global issuer-default-ttl (1h)"
        )),
        "{problems:?}"
    );
    assert_eq!(exchange(&gw, &token(&issuer)).await.0, 200);
}

/// Runs the binary in `cwd` with no inherited `TRUSTBRIDGE_*` settings.
fn run(cwd: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(cwd).args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("TRUSTBRIDGE_") {
            cmd.env_remove(name);
        }
    }
    cmd.envs(vars.iter().copied());
    cmd.output().expect("run trustbridge")
}

/// A policy directory with one loopback issuer carrying `fetch` (YAML lines), a tenant and
/// an application trusting it.
fn policy_dir(fetch: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("policies")).expect("mkdir");
    std::fs::write(
        dir.path().join("policies/p.yaml"),
        format!(
            "kind: Issuer\nname: ci\nissuer: http://127.0.0.1:9/ci\nallowInsecureHttp: true\n\
             {fetch}---\nkind: Tenant\nname: contoso\n---\nkind: Application\nname: bot\n\
             federatedCredentials:\n  - name: main\n    issuer: ci\n    audiences: [api://tb]\n    \
             subject: s\n"
        ),
    )
    .expect("write");
    dir
}

/// Flags, environment variables, and the text stderr must hold.
type Case = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[test]
fn serve_exits_64_naming_an_out_of_range_or_inconsistent_fetch_setting() {
    let dir = policy_dir("");
    let base = ["serve", "--listen", "127.0.0.1:0", "--admin-listen", "off"];
    let cases: [Case; 4] = [
        (
            &["--issuer-timeout", "10m"],
            &[],
            "issuer-timeout: 10m is outside the allowed range 100ms to 2m",
        ),
        (
            &[],
            &[("TRUSTBRIDGE_ISSUER_MAX_DOCUMENT_SIZE", "1GiB")],
            "issuer-max-document-size: 1GiB is outside the allowed range 1KiB to 4MiB",
        ),
        (
            &["--issuer-connect-timeout", "10s", "--issuer-timeout", "2s"],
            &[],
            "issuer-connect-timeout (10s) must not be longer than issuer-timeout (2s)",
        ),
        (
            &["--issuer-max-ttl", "30m"],
            &[],
            "issuer-default-ttl (1h) must not be longer than issuer-max-ttl (30m)",
        ),
    ];
    for (flags, vars, want) in cases {
        let mut args = base.to_vec();
        args.extend_from_slice(flags);
        let out = run(dir.path(), &args, vars);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{flags:?} {vars:?}: {stderr}");
        assert!(stderr.contains(want), "{flags:?} {vars:?}: {stderr}");
        assert!(!stderr.contains("trustbridge serving"), "{stderr}");
    }

    // A policy block out of range, and one that contradicts the global settings.
    for (fetch, flags, want) in [
        (
            "fetch:\n  maxDocumentSize: 8MiB\n",
            &[][..],
            "fetch.maxDocumentSize: 8MiB is outside the allowed range 1KiB to 4MiB",
        ),
        (
            "fetch:\n  defaultTtl: 3h\n",
            &["--issuer-max-ttl", "2h"][..],
            "fetch.defaultTtl (3h) must not be longer than the global issuer-max-ttl (2h)",
        ),
    ] {
        let dir = policy_dir(fetch);
        let mut args = base.to_vec();
        args.extend_from_slice(flags);
        let out = run(dir.path(), &args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{fetch}: {stderr}");
        assert!(stderr.contains(want), "{fetch}: {stderr}");
        // Placed at file:line:column (#16 item 2), not by document number.
        assert!(
            stderr.contains("p.yaml:") && !stderr.contains("p.yaml#"),
            "names the line: {stderr}"
        );
    }

    // `policy check` reads the same settings and reports the same contradiction (exit 1).
    let dir = policy_dir("fetch:\n  defaultTtl: 3h\n");
    let out = run(
        dir.path(),
        &["policy", "check", "--issuer-max-ttl", "2h"],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "fetch.defaultTtl (3h) must not be longer than the global issuer-max-ttl (2h)"
        ),
        "{stdout}"
    );
    // Under the default 24h maximum the same block loads (exit 2: a lint warning only).
    let out = run(dir.path(), &["policy", "check"], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("policies: ok"),
        "{out:?}"
    );
}

#[test]
fn policy_explain_shows_the_effective_fetch_settings() {
    let dir = policy_dir("fetch:\n  timeout: 2s\n  maxDocumentSize: 64KiB\n");
    let claims = dir.path().join("claims.json");
    std::fs::write(
        &claims,
        json!({"iss": "http://127.0.0.1:9/ci", "sub": "s", "aud": "api://tb"}).to_string(),
    )
    .expect("write");
    let claims = claims.to_str().expect("utf8 path");
    let out = run(
        dir.path(),
        &[
            "policy",
            "explain",
            "--claims",
            claims,
            "--tenant",
            "contoso",
            "--issuer-timeout",
            "3s",
            "--issuer-max-stale",
            "1h",
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "issuer fetch: connectTimeout 2s, timeout 2s (issuer), maxDocumentSize 64KiB \
             (issuer), refreshCooldown 30s, defaultTtl 1h, minTtl 5m, maxTtl 1day, maxStale 1h"
        ),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An out-of-range global flag stops explain too, with the same words as serve.
    let out = run(
        dir.path(),
        &[
            "policy",
            "explain",
            "--claims",
            claims,
            "--tenant",
            "contoso",
            "--issuer-max-stale",
            "30d",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("issuer-max-stale: 30days is outside"),
        "{out:?}"
    );
}

#[actix_web::test]
async fn the_admin_graph_shows_each_issuers_effective_fetch_settings() {
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    let root = root_with_fetch_block(&issuer, "fetch:\n  timeout: 2s\n  refreshCooldown: 5s\n");
    let gw = TestGateway::start_in_with(root, clock, |layer| {
        layer.issuer_max_stale = Some("2h".into());
    })
    .await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind admin");
    let admin = format!("http://{}", listener.local_addr().expect("addr"));
    let server = trustbridge::admin::server(gw.gateway.clone(), listener).expect("admin server");
    actix_web::rt::spawn(server);

    let graph: Value = http()
        .get(format!("{admin}/admin/v1/graph"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let node = graph["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["id"] == "issuer:test")
        .expect("issuer node");
    let fetch = &node["details"]["fetch"];
    assert_eq!(fetch["timeout"], json!({"value": "2s", "source": "issuer"}));
    assert_eq!(
        fetch["refreshCooldown"],
        json!({"value": "5s", "source": "issuer"})
    );
    assert_eq!(
        fetch["maxStale"],
        json!({"value": "2h", "source": "global"})
    );
    assert_eq!(
        fetch["maxDocumentSize"],
        json!({"value": "256KiB", "source": "global"})
    );
    assert_eq!(
        fetch["connectTimeout"],
        json!({"value": "2s", "source": "global"})
    );

    // The console renders the block field by field.
    let js = http()
        .get(format!("{admin}/console/app.js"))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    assert!(
        js.contains("\"fetch.\" + f"),
        "console renders fetch settings"
    );
}
