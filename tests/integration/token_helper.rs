//! `trustbridge token`, the CI client helper (issue #16), run as the real binary against the
//! real gateway: with a token file, and with a local stand-in of GitHub Actions' OIDC request
//! endpoint (bearer request token, `&audience=`, `{"value": ...}`).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::json;

use crate::support::gateway::TestGateway;
use crate::support::issuer::TestIssuer;
use crate::support::{clock, logs};

const BIN: &str = env!("CARGO_BIN_EXE_trustbridge");
const APP_ID: &str = "6f2d3b1e-0c4a-4d8e-9b7a-1a2b3c4d5e6f";
const MAIN: &str = "repo:contoso/infra:ref:refs/heads/main";
const SCOPE: &str = "api://payments/.default";
const REQUEST_TOKEN: &str = "actions-request-token-for-tests";

/// The helper as a child process, with no proxy or stray trustbridge/Actions variables.
fn helper(endpoint: &str, client_id: &str, extra: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["token", "--endpoint", endpoint, "--tenant", "contoso"])
        .args(["--client-id", client_id, "--scope", SCOPE])
        .args(["--kubernetes-token-file", "/nonexistent/token"])
        .args(extra);
    for (name, _) in std::env::vars() {
        let upper = name.to_ascii_uppercase();
        if upper.ends_with("_PROXY")
            || upper.starts_with("TRUSTBRIDGE_")
            || upper.starts_with("ACTIONS_")
        {
            cmd.env_remove(name);
        }
    }
    cmd
}

async fn setup() -> (TestIssuer, TestGateway, String) {
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    let gw = TestGateway::start("basic", &[("ISSUER", &issuer.url)], clock).await;
    let mut claims = issuer.claims(MAIN, "api://trustbridge");
    claims["repository"] = json!("contoso/infra");
    let subject = issuer.mint(&claims);
    logs::secret(&subject);
    (issuer, gw, subject)
}

#[actix_web::test]
async fn a_token_file_is_exchanged_and_the_access_token_printed() {
    let (_issuer, gw, subject) = setup().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("subject");
    std::fs::write(&file, format!("{subject}\n")).expect("write");
    let file = file.to_str().expect("utf8 path");

    let out = helper(&gw.url, APP_ID, &["--subject-token-file", file])
        .output()
        .await
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).expect("utf8");
    logs::secret(token.trim());
    let claims = gw.verify("contoso", token.trim()).await;
    assert_eq!(claims["aud"], "api://payments");
    assert_eq!(claims["azp"], APP_ID);

    // A refusal exits 1 with the gateway's error, and never echoes a token.
    let out = helper(&gw.url, "not-an-app", &["--subject-token-file", file])
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refused (4"), "{stderr}");
    assert!(!stderr.contains(&subject), "{stderr}");
    assert!(out.stdout.is_empty());

    // No token source at all, or plain http to a remote host: usage errors.
    let out = helper(&gw.url, APP_ID, &[]).output().await.expect("run");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("id-token: write"));
    let out = helper(
        "http://gateway.example",
        APP_ID,
        &["--subject-token-file", file],
    )
    .output()
    .await
    .expect("run");
    assert_eq!(out.status.code(), Some(64));
}

/// A stand-in for GitHub Actions' OIDC request endpoint: answers `token` when the bearer is
/// [`REQUEST_TOKEN`] and `audience` is `api://trustbridge`, 401/400 otherwise.
fn actions_stand_in(token: String, hits: Arc<AtomicUsize>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = HttpServer::new(move || {
        let token = token.clone();
        let hits = hits.clone();
        App::new().route(
            "/_apis/token",
            web::get().to(
                move |req: HttpRequest, query: web::Query<Vec<(String, String)>>| {
                    let token = token.clone();
                    let hits = hits.clone();
                    async move {
                        hits.fetch_add(1, Ordering::SeqCst);
                        let bearer = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok());
                        if bearer != Some(&format!("Bearer {REQUEST_TOKEN}")) {
                            return HttpResponse::Unauthorized().finish();
                        }
                        let has =
                            |k: &str, v: &str| query.iter().any(|(qk, qv)| qk == k && qv == v);
                        if !has("api-version", "2.0") || !has("audience", "api://trustbridge") {
                            return HttpResponse::BadRequest().finish();
                        }
                        HttpResponse::Ok().json(json!({"count": 1, "value": token}))
                    }
                },
            ),
        )
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    actix_web::rt::spawn(server);
    url
}

#[actix_web::test]
async fn github_actions_oidc_is_requested_and_the_output_file_is_owner_only() {
    let (_issuer, gw, subject) = setup().await;
    let hits = Arc::new(AtomicUsize::new(0));
    let actions = actions_stand_in(subject.clone(), hits.clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let output = dir.path().join("access-token");
    let output_text = output.to_str().expect("utf8 path");

    let out = helper(&gw.url, APP_ID, &["--output", output_text])
        .env(
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            format!("{actions}/_apis/token?api-version=2.0"),
        )
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN)
        .output()
        .await
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "the token goes to the file only");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let token = std::fs::read_to_string(&output).expect("read");
    logs::secret(token.trim());
    assert_eq!(gw.verify("contoso", token.trim()).await["azp"], APP_ID);
    assert_owner_only(&output);

    // A wrong request token: the Actions step fails, and says what to check.
    let out = helper(&gw.url, APP_ID, &[])
        .env(
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            format!("{actions}/_apis/token?api-version=2.0"),
        )
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "wrong")
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("GitHub Actions OIDC request: status 401"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong"), "{stderr}");
}

#[cfg(unix)]
fn assert_owner_only(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", path.display());
}

#[cfg(not(unix))]
fn assert_owner_only(_: &Path) {}
