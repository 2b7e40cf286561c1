//! Restarting over the same key directory: keys are reused, so tokens issued before the restart
//! still verify after it, and identities keep their object ids.

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use crate::support::{TestGateway, TestIssuer, clock};

#[actix_web::test]
async fn tokens_issued_before_a_restart_verify_after_it() {
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    let gw = TestGateway::start("basic", &[("ISSUER", &issuer.url)], clock.clone()).await;

    let mut claims = issuer.claims(
        "repo:contoso/infra:ref:refs/heads/main",
        "api://trustbridge",
    );
    claims["repository"] = json!("contoso/infra");
    let (status, body) = gw
        .client_credentials(
            "deploy-bot",
            &issuer.mint(&claims),
            "api://payments/.default",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let before = body["access_token"].as_str().expect("token").to_string();
    let before_claims = gw.verify("contoso", &before).await;

    // Key files are private to their owner.
    let keys: Vec<_> = std::fs::read_dir(gw.keys_dir())
        .expect("keys dir")
        .map(|e| e.expect("entry").path())
        .collect();
    let pem = keys
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "pem"))
        .expect("a pem key");
    assert_eq!(
        std::fs::metadata(pem).expect("meta").permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(gw.keys_dir())
            .expect("meta")
            .permissions()
            .mode()
            & 0o777,
        0o700
    );

    let gw = gw.restart().await;
    let (_, jwks) = gw.get_json("/contoso/discovery/v2.0/keys").await;
    assert_eq!(
        jwks["keys"].as_array().expect("keys").len(),
        1,
        "no new key on restart"
    );
    // The old token verifies against the restarted gateway's JWKS (iss differs only because the
    // test gateway got a new port; the key is what matters).
    let header = jsonwebtoken::decode_header(&before).expect("header");
    assert_eq!(jwks["keys"][0]["kid"], json!(header.kid.expect("kid")));

    let (status, body) = gw
        .client_credentials(
            "deploy-bot",
            &issuer.mint(&claims),
            "api://payments/.default",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let after_claims = gw
        .verify("contoso", body["access_token"].as_str().expect("token"))
        .await;
    assert_eq!(
        after_claims["oid"], before_claims["oid"],
        "object ids survive restarts"
    );
}
