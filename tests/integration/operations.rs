//! Operators' tools end to end: `policy check | test | explain`, hot reload with
//! last-known-good (edit, broken edit, SIGHUP to the real binary), the audit trail and
//! audit-mode credentials.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use trustbridge::clock::Clock;
use trustbridge::policy::store::{ReloadOutcome, Trigger};
use trustbridge::tools::{cases, check, explain};

use crate::support::{TestGateway, TestIssuer, clock, decode_parts};

const BIN: &str = env!("CARGO_BIN_EXE_trustbridge");
const MAIN: &str = "repo:contoso/infra:ref:refs/heads/main";
const APP_ID: &str = "6f2d3b1e-0c4a-4d8e-9b7a-1a2b3c4d5e6f";

fn bundled() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    dir
}

const WARNED: &str = "kind: Issuer\nname: gh\nissuer: https://token.actions.githubusercontent.com\npreset: github\n---\nkind: Tenant\nname: contoso\n---\nkind: Application\nname: api\nidentifierUris: [api://x]\nappRoles: [{value: R}]\n---\nkind: Application\nname: bot\nfederatedCredentials:\n  - name: any-repo\n    issuer: gh\n    audiences: [api://trustbridge]\n    subjectPattern: 'repo:contoso/*:ref:refs/heads/main'\n---\nkind: ServicePrincipal\napplication: bot\ntenant: contoso\nappRoleAssignments: [{resource: api://x, roles: [R]}]\n";

// === policy check ===

#[test]
fn policy_check_exit_codes_and_formats() {
    let run = |dir: &Path, strict: bool, format: check::Format| {
        let mut out = Vec::new();
        let options = check::Options {
            strict,
            format,
            ..check::Options::default()
        };
        let code = check::run(dir, options, &mut out);
        (code, String::from_utf8(out).expect("utf8"))
    };
    // Clean: 0.
    let (code, text) = run(&bundled(), false, check::Format::Text);
    assert_eq!(code, check::EXIT_CLEAN, "{text}");
    assert!(!text.contains("warning"), "{text}");

    // Warnings only: 2, or 1 with --strict.
    let warned = dir_with(&[("p.yaml", WARNED)]);
    let (code, text) = run(warned.path(), false, check::Format::Text);
    assert_eq!(code, check::EXIT_WARNINGS, "{text}");
    assert!(
        text.contains(
            "p.yaml:20:5 federatedCredentials[0].subjectPattern: warning[unpinned-owner]"
        ),
        "{text}"
    );
    assert!(
        text.contains("    fix: add `condition: claims.repository_owner_id =="),
        "{text}"
    );
    assert!(text.contains(": 1 warning(s)"), "{text}");
    assert_eq!(
        run(warned.path(), true, check::Format::Text).0,
        check::EXIT_ERRORS
    );

    // JSON for CI.
    let (code, text) = run(warned.path(), false, check::Format::Json);
    assert_eq!(code, 2);
    let report: Value = serde_json::from_str(&text).expect("json report");
    assert_eq!(report["status"], "warnings");
    assert_eq!(report["exitCode"], 2);
    assert_eq!(report["errors"], json!([]));
    assert_eq!(report["warnings"][0]["code"], "unpinned-owner");
    assert_eq!(
        report["warnings"][0]["path"],
        "federatedCredentials[0].subjectPattern"
    );
    assert!(report["warnings"][0]["fix"].is_string());
    assert_eq!(report["hash"].as_str().map(str::len), Some(64));

    // Errors: 1, in both formats; a role assignment to an unexposed role is a load error.
    let broken = dir_with(&[(
        "p.yaml",
        "kind: Tenant\nname: contoso\n---\nkind: Application\nname: api\nidentifierUris: [api://x]\nappRoles: [{value: R}]\n---\nkind: Application\nname: bot\n---\nkind: ServicePrincipal\napplication: bot\ntenant: contoso\nappRoleAssignments: [{resource: api://x, roles: [Admin]}]\n",
    )]);
    let (code, text) = run(broken.path(), false, check::Format::Text);
    assert_eq!(code, check::EXIT_ERRORS);
    assert!(
        // A flow-style value: the position of its key (issue #16).
        text.contains("p.yaml:15:1 appRoleAssignments[0].roles[0]: role \"Admin\" is not exposed"),
        "{text}"
    );
    let (code, text) = run(broken.path(), false, check::Format::Json);
    assert_eq!(code, 1);
    let report: Value = serde_json::from_str(&text).expect("json report");
    assert_eq!(report["status"], "errors");
    assert_eq!(
        report["errors"][0]["location"]
            .as_str()
            .map(|l| l.ends_with("p.yaml:15:1")),
        Some(true)
    );
    assert_eq!(report["hash"], Value::Null);
    assert_eq!(report["errors"][0]["position"]["line"], 15);
    assert_eq!(report["errors"][0]["position"]["column"], 1);
}

#[test]
fn policy_check_binary_exits_2_on_warnings_and_1_with_strict() {
    let warned = dir_with(&[("p.yaml", WARNED)]);
    let status = |extra: &[&str]| {
        Command::new(BIN)
            .args(["policy", "check"])
            .arg(warned.path())
            .args(extra)
            .output()
            .expect("run")
    };
    let out = status(&[]);
    assert_eq!(out.status.code(), Some(2));
    let out = status(&["--strict", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["exitCode"], 1);
}

// === policy test ===

#[test]
fn the_bundled_policies_pass_their_tests() {
    let out = Command::new(BIN)
        .args(["policy", "test"])
        .arg(bundled())
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("ok      contoso/infra on main acts as deploy-bot"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("9 passed, 0 failed"), "{text}");
}

#[test]
fn failing_and_malformed_cases_fail_the_run() {
    let policies = std::fs::read_to_string(bundled().join("contoso.yaml")).expect("read");
    let issuers = std::fs::read_to_string(bundled().join("issuers.yaml")).expect("read");
    let cases_text = r#"
cases:
  - name: passes
    issuer: demo
    claims: {sub: "repo:contoso/infra:ref:refs/heads/main", aud: api://trustbridge}
    tenant: contoso
    clientId: deploy-bot
    scope: api://payments/.default
    expect: {allow: {identity: deploy-bot}}
  - name: wrong expectation
    issuer: demo
    claims: {sub: "repo:contoso/infra:ref:refs/heads/main", aud: api://trustbridge}
    tenant: contoso
    clientId: deploy-bot
    scope: api://payments/.default
    expect: {deny: subject_mismatch}
  - name: wrong roles
    issuer: demo
    claims: {sub: "repo:contoso/infra:ref:refs/heads/main", aud: api://trustbridge}
    tenant: contoso
    clientId: deploy-bot
    scope: api://payments/.default
    expect: {allow: {roles: [Payments.Read], lifetime: 1h}}
  - name: wrong denial
    issuer: demo
    claims: {sub: "repo:contoso/infra:ref:refs/heads/dev", aud: api://trustbridge}
    tenant: contoso
    clientId: deploy-bot
    scope: api://payments/.default
    expect: {deny: {reason: audience_mismatch, code: 700212}}
  - name: unknown issuer
    issuer: nope
    claims: {sub: x}
    tenant: contoso
    scope: api://payments/.default
    expect: {deny: 700211}
  - name: bad request is a denial too
    issuer: demo
    claims: {sub: x, aud: api://trustbridge}
    tenant: contoso
    grant: client_credentials
    scope: api://payments/.default
    expect: {deny: {reason: invalid_request, code: 900144}}
"#;
    let dir = dir_with(&[
        ("contoso.yaml", &policies),
        ("issuers.yaml", &issuers),
        ("more.test.yaml", cases_text),
        (
            "broken.test.yaml",
            "cases:\n  - name: x\n    expect: maybe\n",
        ),
    ]);
    let mut out = Vec::new();
    let code = cases::run(dir.path(), trustbridge::clock::SystemClock.now(), &mut out);
    let text = String::from_utf8(out).expect("utf8");
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("FAILED  ") && text.contains("broken.test.yaml: cannot read"),
        "{text}"
    );
    assert!(text.contains("ok      passes"), "{text}");
    assert!(text.contains("FAILED  wrong expectation\n        expected deny subject_mismatch, got allow as 'deploy-bot'"), "{text}");
    assert!(text.contains("FAILED  wrong roles\n        allowed, but roles are [Payments.Read, Payments.Write], expected [Payments.Read]; lifetime is 15m, expected 1h"), "{text}");
    assert!(text.contains("FAILED  wrong denial\n        expected deny audience_mismatch 700212, got deny subject_mismatch (700213)"), "{text}");
    assert!(
        text.contains("FAILED  unknown issuer\n        issuer 'nope' is not declared"),
        "{text}"
    );
    assert!(
        text.contains("ok      bad request is a denial too"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("2 passed, 5 failed"), "{text}");

    // A directory without case files has nothing to run: that is a failure too.
    let bare = dir_with(&[("contoso.yaml", &policies), ("issuers.yaml", &issuers)]);
    let mut out = Vec::new();
    assert_eq!(
        cases::run(bare.path(), trustbridge::clock::SystemClock.now(), &mut out),
        1
    );
    assert!(
        String::from_utf8(out)
            .expect("utf8")
            .contains("no *.test.yaml files")
    );
}

// === policy explain ===

async fn setup(
    scenario: &str,
) -> (
    TestIssuer,
    TestGateway,
    Arc<trustbridge::clock::ManualClock>,
) {
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    let gateway = TestGateway::start(scenario, &[("ISSUER", &issuer.url)], clock.clone()).await;
    (issuer, gateway, clock)
}

/// Runs `policy explain` off the test's runtime (the test issuer must keep answering).
async fn run_explain(
    args: explain::ExplainArgs,
    clock: Arc<trustbridge::clock::ManualClock>,
    stdin: String,
) -> (i32, String) {
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let code = explain::run(&args, clock, &mut stdin.as_bytes(), &mut out);
        (code, String::from_utf8(out).expect("utf8"))
    })
    .await
    .expect("explain thread")
}

#[actix_web::test]
async fn explain_verifies_tokens_and_says_why() {
    let (issuer, gw, clock) = setup("basic").await;
    let args = |scope: Option<&str>| explain::ExplainArgs {
        policies: Some(gw.policies_dir()),
        token: Some("-".into()),
        tenant: "contoso".into(),
        client_id: Some("deploy-bot".into()),
        scope: scope.map(str::to_string),
        data_dir: gw.root.path().join("data"),
        ..explain::ExplainArgs::default()
    };
    let mut claims = issuer.claims(MAIN, "api://trustbridge");
    claims["repository"] = json!("contoso/infra");
    let token = issuer.mint(&claims);

    let (code, text) = run_explain(
        args(Some("api://payments/.default")),
        clock.clone(),
        token.clone(),
    )
    .await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("signature: verified"), "{text}");
    assert!(
        text.contains("deploy-bot / infra-main  (") && text.contains("MATCH"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "  pass subject          sub '{MAIN}' equals '{MAIN}'"
        )),
        "{text}"
    );
    assert!(text.contains("  FAIL subject          sub 'repo:contoso/infra:ref:refs/heads/main' does not match pattern"), "{text}");
    assert!(text.contains("decision: ALLOW as 'deploy-bot' (servicePrincipal) via credential 'infra-main': roles [Payments.Read, Payments.Write], lifetime 15m"), "{text}");
    assert!(!text.contains(&token), "the token itself is never printed");

    // Without a scope: checks, no verdict.
    let (code, text) = run_explain(args(None), clock.clone(), token.clone()).await;
    assert_eq!(code, 1);
    assert!(text.contains("  skip role assignment"), "{text}");
    assert!(text.contains("decision: not evaluated"), "{text}");

    // A forged signature: verification fails and says so; --no-verify skips it and says so.
    let (head, rest) = token.rsplit_once('.').expect("jws");
    let forged = format!("{head}.{}", "A".repeat(rest.len()));
    let (code, text) = run_explain(
        args(Some("api://payments/.default")),
        clock.clone(),
        forged.clone(),
    )
    .await;
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("signature: FAILED: signature verification failed"),
        "{text}"
    );
    let mut unverified = args(Some("api://payments/.default"));
    unverified.no_verify = true;
    let (code, text) = run_explain(unverified, clock.clone(), forged).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("signature: SKIPPED (--no-verify)"), "{text}");

    // Claims instead of a token; a denial names its reason and Entra code.
    let claims_file = gw.root.path().join("claims.json");
    let mut other = issuer.claims("repo:contoso/infra:ref:refs/heads/dev", "api://trustbridge");
    other["repository"] = json!("contoso/infra");
    std::fs::write(&claims_file, other.to_string()).expect("write");
    let mut by_claims = args(Some("api://payments/.default"));
    by_claims.token = None;
    by_claims.claims = Some(claims_file);
    let (code, text) = run_explain(by_claims, clock.clone(), String::new()).await;
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("signature: not applicable (claims given"),
        "{text}"
    );
    assert!(
        text.contains("decision: DENY subject_mismatch (700213)"),
        "{text}"
    );

    // Unusable input: exit 64.
    let (code, text) = run_explain(args(None), clock, "not a token".into()).await;
    assert_eq!(code, explain::EXIT_USAGE);
    assert!(text.contains("error: the token cannot be read"), "{text}");
}

// === audit trail ===

fn records_with(gw: &TestGateway, outcome: &str) -> Vec<Value> {
    gw.audit_records()
        .into_iter()
        .filter(|r| r["decision.outcome"] == outcome)
        .collect()
}

#[actix_web::test]
async fn audit_records_for_allow_and_deny_field_by_field() {
    let (issuer, gw, _clock) = setup("basic").await;
    let hash = gw.gateway.policies().content_hash().to_string();
    let mut claims = issuer.claims(MAIN, "api://trustbridge");
    claims["repository"] = json!("contoso/infra");
    let assertion = issuer.mint(&claims);
    let (status, body) = gw
        .client_credentials(APP_ID, &assertion, "api://payments/.default")
        .await;
    assert_eq!(status, 200, "{body}");
    let access_token = body["access_token"].as_str().expect("token").to_string();
    let (_, issued) = decode_parts(&access_token);

    let allowed = records_with(&gw, "granted");
    assert_eq!(allowed.len(), 1);
    let a = &allowed[0];
    assert_eq!(a["time"], "2026-01-01T00:00:00.000Z");
    assert_eq!(a["trace_id"].as_str().map(str::len), Some(36));
    assert_eq!(a["correlation_id"], a["trace_id"]);
    assert_eq!(a["tenant"], "contoso");
    assert_eq!(a["grant"], "client_credentials");
    assert_eq!(a["client_id"], APP_ID);
    assert_eq!(a["resource"], "api://payments");
    assert_eq!(a["issuer.name"], "test");
    assert_eq!(a["subject"], MAIN);
    assert_eq!(a["credential.name"], "infra-main");
    assert_eq!(a["identity.kind"], "servicePrincipal");
    assert_eq!(a["identity.name"], "deploy-bot");
    assert_eq!(a["identity.oid"], issued["oid"]);
    assert_eq!(a["roles"], json!(["Payments.Read", "Payments.Write"]));
    assert_eq!(a["token.jti"], issued["jti"]);
    assert_eq!(a["token.lifetime_s"], 900);
    assert_eq!(a["policy.hash"], hash.as_str());
    assert!(
        a["caller.address"]
            .as_str()
            .is_some_and(|c| c.starts_with("127.0.0.1:")),
        "{a}"
    );

    // A policy denial carries the reason, the code and the shortened explanation.
    let other =
        issuer.mint(&issuer.claims("repo:contoso/infra:ref:refs/heads/dev", "api://trustbridge"));
    let (status, body) = gw
        .client_credentials(APP_ID, &other, "api://payments/.default")
        .await;
    assert_eq!(status, 401);
    let denied = records_with(&gw, "denied");
    assert_eq!(denied.len(), 1);
    let d = &denied[0];
    assert_eq!(d["trace_id"], body["trace_id"]);
    assert_eq!(d["reason"], "subject_mismatch");
    assert_eq!(d["error.code"], 700213);
    assert_eq!(d["issuer.name"], "test");
    assert_eq!(d["subject"], "repo:contoso/infra:ref:refs/heads/dev");
    assert_eq!(d["client_id"], APP_ID);
    assert_eq!(d["policy.hash"], hash.as_str());
    assert!(
        d["detail"]
            .as_str()
            .is_some_and(|s| s.contains("does not match")),
        "{d}"
    );
    let explanation = d["explanation"].as_array().expect("explanation");
    assert_eq!(explanation.len(), 2, "{d}");
    assert!(explanation[0].as_str().is_some_and(|l| l.starts_with("deploy-bot/infra-main: subject failed: sub 'repo:contoso/infra:ref:refs/heads/dev' differs")), "{d}");
    assert!(d.get("credential.name").is_none() && d.get("token.jti").is_none());

    // A token that fails validation: denied before any policy ran, no explanation.
    let (head, rest) = other.rsplit_once('.').expect("jws");
    let forged = format!("{head}.{}", "A".repeat(rest.len()));
    let (status, _) = gw
        .client_credentials(APP_ID, &forged, "api://payments/.default")
        .await;
    assert_eq!(status, 401);
    let denied = records_with(&gw, "denied");
    assert_eq!(denied[1]["reason"], "bad_signature");
    assert_eq!(denied[1]["error.code"], 700027);
    assert_eq!(denied[1]["issuer.name"], Value::Null);
    assert!(denied[1].get("explanation").is_none());

    // Never a whole token or a signature.
    let log = std::fs::read_to_string(&gw.audit_path).expect("audit log");
    for secret in [&assertion, &other, &forged] {
        let signature = secret.rsplit('.').next().expect("signature");
        assert!(
            !log.contains(signature.get(..20).expect("long signature")),
            "signature leaked"
        );
    }
    assert!(!log.contains(&access_token));
}

#[actix_web::test]
async fn audit_mode_credentials_are_logged_but_never_grant() {
    let (issuer, gw, _clock) = setup("audit-mode").await;
    let mut claims = issuer.claims(MAIN, "api://trustbridge");
    claims["environment"] = json!("dev");
    let (status, body) = gw
        .client_credentials(
            "deploy-bot",
            &issuer.mint(&claims),
            "api://payments/.default",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let audit = records_with(&gw, "audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["credential.name"], "tightened");
    assert_eq!(audit[0]["credential.mode"], "audit");
    assert_eq!(audit[0]["identity.name"], "deploy-bot");
    assert_eq!(audit[0]["audit.would_allow"], false);
    assert_eq!(audit[0]["failed_check"], "condition");
    assert_eq!(
        records_with(&gw, "granted")[0]["credential.name"],
        "infra-main"
    );
    assert_eq!(
        audit[0]["trace_id"],
        records_with(&gw, "granted")[0]["trace_id"]
    );

    // An identity whose only credential is in audit mode is never granted, even on a match.
    let canary = issuer.mint(&issuer.claims(
        "repo:contoso/canary:ref:refs/heads/main",
        "api://trustbridge",
    ));
    let (status, body) = gw
        .client_credentials("canary-bot", &canary, "api://payments/.default")
        .await;
    assert_eq!(status, 401, "{body}");
    let audit = records_with(&gw, "audit");
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[1]["credential.name"], "canary");
    assert_eq!(audit[1]["audit.would_allow"], true);
    assert!(audit[1].get("failed_check").is_none());
    let denied = records_with(&gw, "denied");
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["client_id"], "canary-bot");
}

#[cfg(target_os = "linux")]
#[actix_web::test]
async fn an_unwritable_audit_trail_stops_grants_until_it_is_writable_again() {
    // The audit path is a symlink to /dev/full (every write fails with ENOSPC); replacing it
    // with a real file is the repair the writer's retry (reopen by path) picks up.
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");
    std::os::unix::fs::symlink("/dev/full", &audit).expect("symlink");
    let path = audit.display().to_string();
    let gw = TestGateway::start_tweaked("basic", &[("ISSUER", &issuer.url)], clock, |l| {
        l.audit_log = Some(path);
    })
    .await;
    let mut claims = issuer.claims(MAIN, "api://trustbridge");
    claims["repository"] = json!("contoso/infra");
    let exchange = || async {
        gw.client_credentials(APP_ID, &issuer.mint(&claims), "api://payments/.default")
            .await
    };

    // The first grant's line fails to write: it is kept for retry, and grants stop.
    let (status, first) = exchange().await;
    assert_eq!(status, 200, "{first}");
    gw.gateway.audit().sync();
    let (status, body) = exchange().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(gw.get_text("/readyz").await.0, 503);
    assert_eq!(
        metric(&gw, "trustbridge_audit_healthy").await,
        "trustbridge_audit_healthy 0"
    );
    assert!(
        crate::support::logs::text().contains("audit trail cannot be written"),
        "an error is logged"
    );

    // Repaired: the writer reopens the path, writes what it kept, and grants resume.
    std::fs::remove_file(&audit).expect("unlink");
    std::fs::write(&audit, "").expect("create");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while gw.get_text("/readyz").await.0 != 200 {
        assert!(std::time::Instant::now() < deadline, "grants never resumed");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, second) = exchange().await;
    assert_eq!(status, 200, "{second}");
    gw.gateway.audit().sync();
    let trail = std::fs::read_to_string(&audit).expect("audit file");
    for token in [&first, &second] {
        let (_, issued) = decode_parts(token["access_token"].as_str().expect("token"));
        let jti = issued["jti"].as_str().expect("jti");
        assert!(
            trail.contains(jti),
            "granted jti {jti} missing from the trail"
        );
    }
    assert!(trail.contains(r#""reason":"audit_unavailable""#), "{trail}");
}

// === hot reload ===

async fn metric(gw: &TestGateway, line_start: &str) -> String {
    let (_, text) = gw.get_text("/metrics").await;
    text.lines()
        .find(|l| l.starts_with(line_start))
        .unwrap_or_else(|| panic!("no {line_start} in {text}"))
        .to_string()
}

#[actix_web::test]
async fn reload_picks_up_an_edit_and_keeps_the_last_good_set_on_a_broken_one() {
    let (issuer, gw, _clock) = setup("basic").await;
    let store = trustbridge::app::policy_store(&gw.gateway);
    let file = gw.policies_dir().join("policies.yaml");
    let original = std::fs::read_to_string(&file).expect("read");
    let token = |sub: &str| {
        let mut c = issuer.claims(sub, "api://trustbridge");
        c["repository"] = json!("contoso/infra");
        issuer.mint(&c)
    };
    let g = &gw;
    let exchange = |t: String| async move {
        g.client_credentials(APP_ID, &t, "api://payments/.default")
            .await
            .0
    };
    let prod = "repo:contoso/infra:ref:refs/heads/prod";

    assert_eq!(exchange(token(MAIN)).await, 200);
    let first_hash = gw.gateway.policies().content_hash().to_string();
    assert_eq!(gw.gateway.snapshot().issuers.key_loads("test"), Some(1));

    // An edit, picked up by the watcher's polls (debounced: two polls).
    std::fs::write(&file, original.replace(MAIN, prod)).expect("write");
    assert_eq!(store.poll(), None);
    let Some(ReloadOutcome::Applied { hash }) = store.poll() else {
        panic!("edit not applied")
    };
    assert_ne!(hash, first_hash);
    assert_eq!(gw.gateway.policies().content_hash(), hash);
    assert_eq!(exchange(token(MAIN)).await, 401);
    assert_eq!(exchange(token(prod)).await, 200);
    // The issuer's key cache survived the reload: no refetch.
    assert_eq!(gw.gateway.snapshot().issuers.key_loads("test"), Some(1));
    // Each audit record names the policy version that decided.
    let granted = records_with(&gw, "granted");
    assert_eq!(granted[0]["policy.hash"], first_hash.as_str());
    assert_eq!(granted[1]["policy.hash"], hash.as_str());

    // A broken edit is refused; the last good set keeps serving and /readyz stays ready.
    let broken = format!("{original}\n---\nkind: Tenant\nnme: typo\n");
    std::fs::write(&file, &broken).expect("write");
    let ReloadOutcome::Rejected { problems } = store.reload(Trigger::Manual) else {
        panic!("broken set accepted")
    };
    // Named by file:line:column (issue #16), the line of the misspelt key.
    let line = 1 + broken.lines().position(|l| l == "nme: typo").expect("line");
    let at = format!("policies.yaml:{line}:1 nme: ");
    assert!(
        problems.iter().any(|p| p.contains(&at)),
        "{at} in {problems:?}"
    );
    assert_eq!(gw.gateway.policies().content_hash(), hash);
    assert_eq!(exchange(token(prod)).await, 200);
    assert_eq!(gw.get_text("/readyz").await.0, 200);
    assert_eq!(
        metric(
            &gw,
            "trustbridge_policy_reloads_total{outcome=\"rejected\"}"
        )
        .await,
        "trustbridge_policy_reloads_total{outcome=\"rejected\"} 1"
    );
    assert_eq!(
        metric(&gw, "trustbridge_policy_reloads_total{outcome=\"applied\"}").await,
        "trustbridge_policy_reloads_total{outcome=\"applied\"} 1"
    );
}

#[actix_web::test]
async fn sighup_reloads_the_running_binary() {
    let root = tempfile::tempdir().expect("tempdir");
    let policies = root.path().join("policies");
    std::fs::create_dir(&policies).expect("mkdir");
    std::fs::write(policies.join("p.yaml"), "kind: Tenant\nname: contoso\n").expect("write");
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--policies",
        ])
        .arg(&policies)
        .arg("--keys")
        .arg(root.path().join("keys"))
        .arg("--data-dir")
        .arg(root.path().join("data"))
        .arg("--audit-log")
        .arg(root.path().join("audit.log"))
        .args(["--admin-listen", "off"])
        .env_remove("TRUSTBRIDGE_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |needle: &str| -> String {
        loop {
            match lines_rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(e) => panic!("no log line with {needle:?}: {e}"),
            }
        }
    };
    let serving = wait_for("trustbridge serving");
    // The text log may colour field names, so look for the address itself.
    let at = serving.find("127.0.0.1:").expect("listen address");
    let addr: String = serving[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    let url = format!("http://{addr}/fabrikam/v2.0/.well-known/openid-configuration");
    let client = crate::support::http();
    let status = client
        .get(&url)
        .send()
        .await
        .expect("get")
        .status()
        .as_u16();
    assert_eq!(status, 400, "fabrikam does not exist yet (90002)");

    std::fs::write(
        policies.join("p.yaml"),
        "kind: Tenant\nname: contoso\n---\nkind: Tenant\nname: fabrikam\n",
    )
    .expect("write");
    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let reloaded = wait_for("sighup");
    assert!(reloaded.contains("policies"), "{reloaded}");
    let status = client
        .get(&url)
        .send()
        .await
        .expect("get")
        .status()
        .as_u16();

    // A broken edit: the refusal is logged with the field's file:line:column.
    std::fs::write(
        policies.join("p.yaml"),
        "kind: Tenant\nname: contoso\n---\nkind: Tenant\nnme: fabrikam\n",
    )
    .expect("write");
    let killed = Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    let refused = wait_for("policy reload refused");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200, "the SIGHUP reload serves the new tenant");
    assert!(killed.success());
    assert!(refused.contains("p.yaml:5:1 nme: "), "{refused}");
    assert!(!refused.contains("p.yaml#2"), "{refused}");
}
