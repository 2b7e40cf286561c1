//! HTTP/2 on the TLS listener (issue #17), held back: actix-web 4 serves HTTP/2 through h2 0.3,
//! which has an unpatched denial of service (RUSTSEC-2026-0258, fixed only in h2 0.4). Until
//! actix serves h2 0.4, the TLS listener offers ALPN `http/1.1` only, and a real HTTP/2 client
//! (`curl --http2`, nghttp2) falls back to HTTP/1.1 for discovery, the JWKS and the token
//! endpoint. This test fails the day HTTP/2 is negotiated again, so the choice is revisited
//! together with the advisory.

use std::process::Command;

use crate::support::gateway::{JWT_BEARER, encode};
use crate::support::tls::{TestCa, TlsGateway};
use crate::support::{TestIssuer, clock};

/// Runs curl off the runtime thread; returns (HTTP version, status, body).
async fn curl(
    ca: &TestCa,
    version_flag: &'static str,
    url: String,
    form: Option<String>,
) -> (String, u16, String) {
    let ca_file = ca.ca_file();
    let out = actix_web::rt::task::spawn_blocking(move || {
        let mut cmd = Command::new("curl");
        cmd.args([
            "--silent",
            "--show-error",
            "--noproxy",
            "*",
            "--max-time",
            "20",
        ])
        .arg(version_flag)
        .arg("--cacert")
        .arg(&ca_file)
        .args(["--write-out", "\n%{http_version} %{http_code}"]);
        if let Some(form) = form {
            cmd.args([
                "--header",
                "content-type: application/x-www-form-urlencoded",
            ])
            .args(["--data-binary", &form]);
        }
        cmd.arg(&url).output().expect("curl is installed")
    })
    .await
    .expect("curl task");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, trailer) = text.rsplit_once('\n').expect("write-out line");
    let (version, status) = trailer.split_once(' ').expect("version and status");
    (
        version.to_owned(),
        status.parse().expect("status"),
        body.to_owned(),
    )
}

#[actix_web::test]
async fn http2_clients_fall_back_to_http1_while_h2_0_3_is_vulnerable() {
    let clock = clock();
    let ca = TestCa::new();
    let issuer = TestIssuer::start(clock.clone()).await;
    let gw = TlsGateway::start("basic", &[("ISSUER", &issuer.url)], clock, ca.issue_files()).await;

    let discovery = format!("{}/.well-known/openid-configuration", gw.issuer("contoso"));
    let (version, status, body) = curl(&ca, "--http2", discovery.clone(), None).await;
    assert_eq!((version.as_str(), status), ("1.1", 200), "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).expect("discovery json");
    let jwks_uri = doc["jwks_uri"].as_str().expect("jwks_uri").to_owned();

    let (version, status, body) = curl(&ca, "--http2", jwks_uri, None).await;
    assert_eq!((version.as_str(), status), ("1.1", 200), "{body}");
    assert!(body.contains("\"keys\""), "{body}");

    let mut claims = issuer.claims(
        "repo:contoso/infra:ref:refs/heads/main",
        "api://trustbridge",
    );
    claims["repository"] = serde_json::json!("contoso/infra");
    let form = encode(&[
        ("grant_type", "client_credentials"),
        ("client_id", "deploy-bot"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", &issuer.mint(&claims)),
        ("scope", "api://payments/.default"),
    ]);
    let (version, status, body) =
        curl(&ca, "--http2", gw.token_endpoint("contoso"), Some(form)).await;
    assert_eq!((version.as_str(), status), ("1.1", 200), "{body}");
    let token: serde_json::Value = serde_json::from_str(&body).expect("token json");
    let access_token = token["access_token"].as_str().expect("access_token");
    crate::support::logs::secret(access_token);

    // A refusal is the same RFC 6749 JSON.
    let (version, status, body) = curl(
        &ca,
        "--http2",
        gw.token_endpoint("contoso"),
        Some("grant_type=password".into()),
    )
    .await;
    assert_eq!((version.as_str(), status), ("1.1", 400), "{body}");
    assert!(body.contains("unsupported_grant_type"), "{body}");

    // HTTP/1.1 clients are served on the same port (ALPN `http/1.1`).
    let (version, status, _) = curl(&ca, "--http1.1", discovery, None).await;
    assert_eq!((version.as_str(), status), ("1.1", 200));
}
