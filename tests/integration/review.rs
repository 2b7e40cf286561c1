//! Issue 12 (security review, part 3), end to end: workload-assigned identities of different
//! declarations never share an object id or a rate-limit bucket (flaw 4), and an ECDSA token
//! without `jti` is one use however its signature is written (flaw 5).

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};
use trustbridge::clock::ManualClock;
use trustbridge::jose::SigningAlgorithm;
use trustbridge::refusal::CODE_REPLAYED;

use crate::support::{TestGateway, TestIssuer, clock};

/// The prod (ES256) and dev (ES384) cluster issuers, and a gateway on the `review` fixture.
async fn setup(
    clock: Arc<ManualClock>,
    tweak: impl FnOnce(&mut trustbridge::config::Layer),
) -> (TestIssuer, TestIssuer, TestGateway) {
    let prod = TestIssuer::start_with(clock.clone(), SigningAlgorithm::ES256).await;
    let dev = TestIssuer::start_with(clock.clone(), SigningAlgorithm::ES384).await;
    let gw = TestGateway::start_tweaked(
        "review",
        &[("PROD", &prod.url), ("DEV", &dev.url)],
        clock,
        tweak,
    )
    .await;
    (prod, dev, gw)
}

fn service_account(issuer: &TestIssuer) -> Value {
    issuer.claims("system:serviceaccount:payments:api", "api://cluster")
}

#[actix_web::test]
async fn same_name_from_two_declarations_gets_two_object_ids_and_buckets() {
    let (prod, dev, gw) = setup(clock(), |l| {
        l.rate_limit_identity = Some("1/m".into());
    })
    .await;

    let mut ids = Vec::new();
    for issuer in [&prod, &dev] {
        let (status, body) = gw
            .token_exchange(&issuer.mint(&service_account(issuer)), "api://payments")
            .await;
        assert_eq!(status, 200, "its own rate-limit bucket: {body}");
        let claims = gw
            .verify("contoso", body["access_token"].as_str().expect("token"))
            .await;
        ids.push((
            claims["oid"].clone(),
            claims["client_id"].clone(),
            claims["roles"].clone(),
        ));
    }
    let (prod_ids, dev_ids) = (&ids[0], &ids[1]);
    assert_eq!(prod_ids.2, json!(["Payments.Write"]));
    assert_eq!(dev_ids.2, json!(["Payments.Read"]));
    assert_ne!(prod_ids.0, dev_ids.0, "dev must not get prod's oid");
    assert_ne!(prod_ids.1, dev_ids.1, "nor its client_id");

    // The bucket is real: prod's second exchange within the minute is limited.
    let (status, body) = gw
        .token_exchange(&prod.mint(&service_account(&prod)), "api://payments")
        .await;
    assert_eq!(status, 429, "{body}");

    // The client id resolves to its own declaration only.
    let client_id = prod_ids.1.as_str().expect("client_id");
    let (status, body) = gw
        .post_token(
            "contoso",
            &[
                ("grant_type", crate::support::gateway::TOKEN_EXCHANGE),
                ("subject_token", &dev.mint(&service_account(&dev))),
                ("subject_token_type", crate::support::gateway::JWT_TYPE),
                ("client_id", client_id),
                ("resource", "api://payments"),
            ],
        )
        .await;
    assert_eq!(
        status, 400,
        "a dev token cannot name prod's client id: {body}"
    );
}

// === ECDSA signature twins ===

/// Order of the P-256 group, big-endian.
const P256_N: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
/// Order of the P-384 group, big-endian.
const P384_N: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973";

/// `a - b` over equal-length big-endian unsigned integers (`a >= b`).
fn sub_be(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; a.len()];
    let mut borrow = 0i16;
    for i in (0..a.len()).rev() {
        let mut d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = u8::try_from(d).expect("a byte");
    }
    assert_eq!(borrow, 0, "a >= b");
    out
}

/// The same token with signature (r, n - s) instead of (r, s): as valid for ECDSA.
fn twin(token: &str, order_hex: &str) -> String {
    let (input, sig) = token.rsplit_once('.').expect("compact JWS");
    let sig = B64.decode(sig).expect("base64url");
    let half = sig.len() / 2;
    let order: Vec<u8> = (0..order_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&order_hex[i..i + 2], 16).expect("hex"))
        .collect();
    assert_eq!(order.len(), half);
    let mut flipped = sig[..half].to_vec();
    flipped.extend(sub_be(&order, &sig[half..]));
    format!("{input}.{}", B64.encode(flipped))
}

/// Whether `token` verifies under `issuer`'s EC key.
fn verifies(
    issuer: &TestIssuer,
    token: &str,
    alg: &'static dyn aws_lc_rs::signature::VerificationAlgorithm,
) -> bool {
    let jwk = issuer.public_jwk();
    let coord = |name: &str| {
        B64.decode(jwk[name].as_str().expect("coordinate"))
            .expect("b64")
    };
    let mut point = vec![4u8];
    point.extend(coord("x"));
    point.extend(coord("y"));
    let (input, sig) = token.rsplit_once('.').expect("compact JWS");
    let sig = B64.decode(sig).expect("base64url");
    aws_lc_rs::signature::UnparsedPublicKey::new(alg, point)
        .verify(input.as_bytes(), &sig)
        .is_ok()
}

#[actix_web::test]
async fn an_ecdsa_twin_signature_is_the_same_one_time_use() {
    let (prod, dev, gw) = setup(clock(), |_| {}).await;
    let cases: [(
        &TestIssuer,
        &str,
        &'static dyn aws_lc_rs::signature::VerificationAlgorithm,
    ); 2] = [
        (
            &prod,
            P256_N,
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
        ),
        (&dev, P384_N, &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED),
    ];
    for (issuer, order, alg) in cases {
        let mut claims = issuer.claims("once", "api://once");
        claims.as_object_mut().expect("object").remove("jti");
        let token = issuer.mint(&claims);
        let other = twin(&token, order);
        assert_ne!(token, other);
        assert!(verifies(issuer, &token, alg) && verifies(issuer, &other, alg));

        let (status, body) = gw.token_exchange(&token, "api://payments").await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = gw.token_exchange(&other, "api://payments").await;
        assert_eq!(status, 400, "the twin is a replay: {body}");
        assert_eq!(body["error"], "invalid_grant", "{body}");
        assert_eq!(body["error_codes"], json!([CODE_REPLAYED]), "{body}");
    }
}
