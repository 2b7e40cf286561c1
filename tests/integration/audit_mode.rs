//! Issue 12 through the real endpoint: audit-mode credentials never grant on either grant
//! (with and without `client_id`), audit records carry `credential.mode`, and the per-issuer
//! rate limit is spent only by exchanges the policy grants.

use serde_json::{Value, json};

use crate::support::gateway::{JWT_TYPE, TOKEN_EXCHANGE};
use crate::support::{TestGateway, TestIssuer, clock, decode_parts};

const INFRA: &str = "repo:contoso/infra:ref:refs/heads/main";
const CANARY: &str = "repo:contoso/canary:ref:refs/heads/main";

async fn setup(tweak: impl FnOnce(&mut trustbridge::config::Layer)) -> (TestIssuer, TestGateway) {
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    let gw =
        TestGateway::start_tweaked("audit-grant", &[("ISSUER", &issuer.url)], clock, tweak).await;
    (issuer, gw)
}

fn token(issuer: &TestIssuer, sub: &str) -> String {
    let mut claims = issuer.claims(sub, "api://trustbridge");
    claims["repository_owner_id"] = json!("1234");
    claims["ns"] = json!("a");
    issuer.mint(&claims)
}

/// Token exchange, with `client_id` when given.
async fn exchange(gw: &TestGateway, subject_token: &str, client_id: Option<&str>) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", TOKEN_EXCHANGE),
        ("subject_token", subject_token),
        ("subject_token_type", JWT_TYPE),
        ("resource", "api://payments"),
    ];
    if let Some(client_id) = client_id {
        form.push(("client_id", client_id));
    }
    gw.post_token("contoso", &form).await
}

fn records_with(gw: &TestGateway, outcome: &str) -> Vec<Value> {
    gw.audit_records()
        .into_iter()
        .filter(|r| r["decision.outcome"] == outcome)
        .collect()
}

/// A refusal of the policy (400 or 401, an unknown client or a credential mismatch), never a
/// token.
fn refused(status: u16, body: &Value, what: &str) {
    assert!(status == 400 || status == 401, "{what}: {status} {body}");
    assert!(body.get("access_token").is_none(), "{what}: {body}");
    assert!(
        ["invalid_grant", "invalid_client", "unauthorized_client"]
            .contains(&body["error"].as_str().unwrap_or_default()),
        "{what}: {body}"
    );
}

#[actix_web::test]
async fn audit_mode_credentials_never_grant_through_either_grant() {
    let (issuer, gw) = setup(|_| {}).await;

    // Audit-only identities: refused on every path.
    for (client_id, sub) in [
        ("canary-bot", CANARY),
        ("mi-audit", "repo:contoso/mi:ref:refs/heads/main"),
        ("wl-a", "repo:contoso/wl:ref:refs/heads/main"),
    ] {
        let t = token(&issuer, sub);
        let (status, body) = gw
            .client_credentials(client_id, &t, "api://payments/.default")
            .await;
        refused(status, &body, &format!("{client_id} client credentials"));
        let (status, body) = exchange(&gw, &t, Some(client_id)).await;
        refused(
            status,
            &body,
            &format!("{client_id} token exchange with client_id"),
        );
        let (status, body) = exchange(&gw, &t, None).await;
        refused(status, &body, &format!("{client_id} token exchange"));
        assert_eq!(body["error"], "invalid_grant");
    }

    // deploy-bot: the audit credential declared first shapes nothing, and rival-bot's audit
    // pattern does not make the exchange without client_id ambiguous.
    let t = token(&issuer, INFRA);
    let (status, body) = exchange(&gw, &t, None).await;
    assert_eq!(status, 200, "{body}");
    let (_, claims) = decode_parts(body["access_token"].as_str().expect("token"));
    assert!(claims.get("shadow").is_none(), "{claims}");
    assert_eq!(body["expires_in"], 3600);
    // Not one-time use (the audit credential is): the same token is accepted again.
    let (status, body) = exchange(&gw, &t, Some("deploy-bot")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = gw
        .client_credentials("deploy-bot", &t, "api://payments/.default")
        .await;
    assert_eq!(status, 200, "{body}");

    // Every record says which mode decided or was evaluated.
    let granted = records_with(&gw, "granted");
    assert_eq!(granted.len(), 3);
    for g in &granted {
        assert_eq!(g["credential.name"], "main");
        assert_eq!(g["credential.mode"], "enforce");
    }
    let denied = records_with(&gw, "denied");
    assert_eq!(denied.len(), 9);
    for d in &denied {
        assert_eq!(d["credential.mode"], "enforce", "{d}");
    }
    let audit = records_with(&gw, "audit");
    assert!(!audit.is_empty());
    for a in &audit {
        assert_eq!(a["credential.mode"], "audit", "{a}");
    }
    assert!(
        audit
            .iter()
            .any(|a| a["credential.name"] == "canary" && a["audit.would_allow"] == true)
    );
    assert!(
        audit
            .iter()
            .any(|a| a["credential.name"] == "rival" && a["audit.would_allow"] == true)
    );
}

#[actix_web::test]
async fn refused_tokens_do_not_spend_the_issuer_rate_limit() {
    let (issuer, gw) = setup(|l| l.rate_limit_issuer = Some("3/m".into())).await;
    // A flood of tokens of the same issuer that the tenant's policy refuses.
    for i in 0..20 {
        let stranger = token(&issuer, &format!("repo:stranger/x{i}:ref:refs/heads/main"));
        let (status, body) = exchange(&gw, &stranger, None).await;
        assert_eq!(status, 400, "{body}");
        let (status, body) = gw
            .client_credentials(
                "canary-bot",
                &token(&issuer, CANARY),
                "api://payments/.default",
            )
            .await;
        assert_eq!(status, 401, "{body}");
    }
    // A valid exchange still goes through, up to the limit...
    for _ in 0..3 {
        let (status, body) = exchange(&gw, &token(&issuer, INFRA), None).await;
        assert_eq!(status, 200, "{body}");
    }
    // ...and granted exchanges over it are still limited.
    let (status, body) = exchange(&gw, &token(&issuer, INFRA), None).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "slow_down");
}
