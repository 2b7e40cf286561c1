//! Issue 15, proof of possession: DPoP proofs (RFC 9449) built by an independent JOSE library
//! (PyJWT + cryptography, `tests/sdk/dpop_proof.py`, in the SDK suite's virtual environment)
//! against the real gateway. A valid proof binds the token (`cnf.jkt`, `token_type: DPoP`);
//! a replayed, stale, misdirected or forged one is refused with `invalid_dpop_proof`; a
//! `requireProofOfPossession` credential is granted only with a proof.

use serde_json::{Value, json};

use crate::sdk::python_offline;
use crate::support::gateway::{JWT_BEARER, encode};
use crate::support::{T0, TestGateway, TestIssuer, clock, decode_parts, http};

const OPEN: &str = "repo:contoso/open:ref:refs/heads/main";
const BOUND: &str = "repo:contoso/bound:ref:refs/heads/main";

async fn setup() -> (TestIssuer, TestGateway) {
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    let gw = TestGateway::start("dpop", &[("ISSUER", &issuer.url)], clock).await;
    (issuer, gw)
}

fn endpoint(gw: &TestGateway) -> String {
    format!("{}/contoso/oauth2/v2.0/token", gw.url)
}

/// Proofs for `cases` (name → overrides), all from one fresh key; and that key's RFC 7638
/// thumbprint as Python computes it.
async fn proofs(gw: &TestGateway, cases: Value) -> (String, Value) {
    let spec = json!({"htu": endpoint(gw), "iat": T0, "cases": cases});
    let out = python_offline("dpop_proof.py", &[&spec.to_string()]).await;
    let jkt = out["jkt"].as_str().expect("jkt").to_string();
    (jkt, out["proofs"].clone())
}

/// A client-credentials request of `client_id` for `subject`, with these `DPoP` headers.
async fn exchange(
    issuer: &TestIssuer,
    gw: &TestGateway,
    client_id: &str,
    subject: &str,
    dpop: &[&str],
) -> (u16, Value) {
    let assertion = issuer.mint(&issuer.claims(subject, "api://trustbridge"));
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion.as_str()),
        ("scope", "api://payments/.default"),
    ];
    let mut req = http()
        .post(endpoint(gw))
        .header("content-type", "application/x-www-form-urlencoded");
    for proof in dpop {
        req = req.header("DPoP", *proof);
    }
    let resp = req.body(encode(&form)).send().await.expect("token request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json body"))
}

fn assert_invalid_proof(status: u16, body: &Value, fragment: &str) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_dpop_proof", "{body}");
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(description.contains(fragment), "{fragment}: {body}");
}

#[actix_web::test]
async fn a_valid_proof_binds_the_token_and_a_replay_is_refused() {
    let (issuer, gw) = setup().await;
    let (jkt, proofs) = proofs(&gw, json!({"valid": {}})).await;
    let proof = proofs["valid"].as_str().expect("proof");

    let (status, body) = exchange(&issuer, &gw, "open-bot", OPEN, &[proof]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP", "{body}");
    let token = body["access_token"].as_str().expect("token");
    let (_, claims) = decode_parts(token);
    assert_eq!(claims["cnf"], json!({"jkt": jkt}), "{claims}");
    gw.verify("contoso", token).await;

    let (status, body) = exchange(&issuer, &gw, "open-bot", OPEN, &[proof]).await;
    assert_invalid_proof(status, &body, "already used");
    let records = gw.audit_records();
    let last = records.last().expect("an audit record");
    assert_eq!(last["reason"], "invalid_dpop_proof", "{last}");
    assert!(
        !last.to_string().contains(proof),
        "the proof is never audited"
    );

    // Without a proof the same credential still gets a bearer token without cnf.
    let (status, body) = exchange(&issuer, &gw, "open-bot", OPEN, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer", "{body}");
    let (_, claims) = decode_parts(body["access_token"].as_str().expect("token"));
    assert!(claims.get("cnf").is_none(), "{claims}");
}

#[actix_web::test]
async fn misdirected_stale_forged_and_unsigned_proofs_are_refused() {
    let (issuer, gw) = setup().await;
    let other_tenant = format!("{}/fabrikam/oauth2/v2.0/token", gw.url);
    let (_, proofs) = proofs(
        &gw,
        json!({
            "wrong_htu": {"htu": other_tenant},
            "wrong_htm": {"htm": "GET"},
            "expired": {"iat": T0 - 3600},
            "other_key": {"signer": "other"},
            "none": {"alg": "none"},
            "valid": {},
        }),
    )
    .await;
    let proof = |name: &str| proofs[name].as_str().expect("proof").to_string();
    for (name, fragment) in [
        ("wrong_htu", "htu"),
        ("wrong_htm", "htm"),
        ("expired", "too old"),
        ("other_key", "signature"),
        ("none", "alg"),
    ] {
        let (status, body) = exchange(&issuer, &gw, "open-bot", OPEN, &[&proof(name)]).await;
        assert_invalid_proof(status, &body, fragment);
    }
    // RFC 9449 §4.3: more than one DPoP header is invalid, even with valid proofs.
    let valid = proof("valid");
    let (status, body) = exchange(&issuer, &gw, "open-bot", OPEN, &[&valid, &valid]).await;
    assert_invalid_proof(status, &body, "more than one");
    let (status, body) = exchange(&issuer, &gw, "open-bot", OPEN, &[&"x".repeat(9000)]).await;
    assert_invalid_proof(status, &body, "too large");
}

#[actix_web::test]
async fn require_proof_of_possession_is_granted_only_with_a_proof() {
    let (issuer, gw) = setup().await;
    let (status, body) = exchange(&issuer, &gw, "bound-bot", BOUND, &[]).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or_default()
            .contains("proof of possession"),
        "{body}"
    );
    let records = gw.audit_records();
    assert_eq!(
        records.last().expect("audit")["reason"],
        "proof_of_possession_required"
    );

    let (jkt, proofs) = proofs(&gw, json!({"valid": {}})).await;
    let proof = proofs["valid"].as_str().expect("proof");
    let (status, body) = exchange(&issuer, &gw, "bound-bot", BOUND, &[proof]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP", "{body}");
    let (_, claims) = decode_parts(body["access_token"].as_str().expect("token"));
    assert_eq!(claims["cnf"]["jkt"], jkt.as_str(), "{claims}");
}

#[actix_web::test]
async fn discovery_advertises_the_proof_algorithms() {
    let (_issuer, gw) = setup().await;
    let (status, doc) = gw
        .get_json("/contoso/v2.0/.well-known/openid-configuration")
        .await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(
        doc["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA", "RS256"])
    );
}
