//! Issue 15, request context: `--trusted-proxies`, `allowedNetworks` and conditions on
//! `request`, through the real gateway. Refusals name the failed check, never the configured
//! networks or a rule's message; the audit trail has both and the effective client address.

use serde_json::Value;

use crate::support::gateway::{JWT_BEARER, encode};
use crate::support::{TestGateway, TestIssuer, clock, http};

const SUB: &str = "repo:contoso/infra:ref:refs/heads/main";

async fn setup() -> (TestIssuer, TestGateway) {
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    let gw = TestGateway::start_tweaked("networks", &[("ISSUER", &issuer.url)], clock, |layer| {
        layer.trusted_proxies = Some("127.0.0.0/8".into())
    })
    .await;
    (issuer, gw)
}

/// A client-credentials request as if forwarded for `client` by our proxy (127.0.0.1).
async fn exchange(issuer: &TestIssuer, gw: &TestGateway, forwarded_for: &str) -> (u16, Value) {
    let assertion = issuer.mint(&issuer.claims(SUB, "api://trustbridge"));
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "net-bot"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion.as_str()),
        ("scope", "api://payments/.default"),
    ];
    let resp = http()
        .post(format!("{}/contoso/oauth2/v2.0/token", gw.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-for", forwarded_for)
        .body(encode(&form))
        .send()
        .await
        .expect("token request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json body"))
}

#[actix_web::test]
async fn the_forwarded_client_inside_the_network_is_granted_and_audited() {
    let (issuer, gw) = setup().await;
    // The client wrote 10.6.6.6 itself; our proxy appended the address it saw.
    let (status, body) = exchange(&issuer, &gw, "10.6.6.6, 198.51.100.7").await;
    assert_eq!(status, 200, "{body}");
    let records = gw.audit_records();
    let last = records.last().expect("an audit record");
    assert_eq!(last["caller.address"], "198.51.100.7", "{last}");
}

#[actix_web::test]
async fn outside_the_network_is_refused_without_naming_it() {
    let (issuer, gw) = setup().await;
    // The leftmost entry is the client's own claim and is never believed.
    let (status, body) = exchange(&issuer, &gw, "198.51.100.7, 203.0.113.9").await;
    assert_eq!(status, 401, "{body}");
    let text = body.to_string();
    assert!(text.contains("network the credential allows"), "{body}");
    assert!(
        !text.contains("198.51.100.0") && !text.contains("2001:db8"),
        "{body}"
    );
    let records = gw.audit_records();
    let last = records.last().expect("an audit record");
    assert_eq!(last["reason"], "network_not_allowed", "{last}");
    assert_eq!(last["caller.address"], "203.0.113.9", "{last}");
    assert!(last.to_string().contains("198.51.100.0/24"), "{last}");
}

#[actix_web::test]
async fn a_failing_rule_message_goes_to_the_audit_trail_only() {
    let (issuer, gw) = setup().await;
    let (status, body) = exchange(&issuer, &gw, "198.51.100.200").await;
    assert_eq!(status, 401, "{body}");
    assert!(!body.to_string().contains("guest-wifi"), "{body}");
    let records = gw.audit_records();
    let last = records.last().expect("an audit record");
    assert_eq!(last["reason"], "condition_failed", "{last}");
    assert!(
        last.to_string()
            .contains("zz-upper-half-is-the-guest-wifi-secret"),
        "{last}"
    );
}
