//! Each refusal of the proof parser, and the proofs it accepts.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

use super::*;
use crate::refusal::StatusClass;
use crate::tokens::keys::PrivateKey;

const NOW: u64 = 1_767_225_600;
const HTU: &str = "https://tb.example/contoso/oauth2/v2.0/token";

fn expected() -> Expected<'static> {
    Expected {
        htm: "POST",
        htu: HTU,
        now: UNIX_EPOCH + Duration::from_secs(NOW),
        window: DEFAULT_PROOF_WINDOW,
    }
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// A proof with `header` and `claims` (as JSON text, so tests can write what serde never
/// would), signed by `key`.
fn signed_text(key: &PrivateKey, header: &str, claims: &str) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    format!("{input}.{}", key.sign_raw(input.as_bytes()).unwrap())
}

fn signed(key: &PrivateKey, header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    format!("{input}.{}", key.sign_raw(input.as_bytes()).unwrap())
}

fn header(key: &PrivateKey) -> Value {
    json!({"typ": "dpop+jwt", "alg": key.alg().as_str(), "jwk": key.public_jwk()})
}

fn claims() -> Value {
    json!({"htm": "POST", "htu": HTU, "iat": NOW, "jti": "e1j3V_bKic8-LAEB"})
}

fn es256() -> PrivateKey {
    PrivateKey::generate(SigningAlgorithm::ES256).unwrap()
}

fn refused(proof: &str) -> ProofError {
    verify(proof, &expected()).expect_err("refused")
}

#[test]
fn valid_proofs_of_each_algorithm_give_the_key_thumbprint() {
    for alg in ALGORITHMS {
        let key = PrivateKey::generate(alg).unwrap();
        let proof = verify(&signed(&key, &header(&key), &claims()), &expected()).unwrap();
        // Our signing keys' kid is their RFC 7638 thumbprint (checked there against an
        // independent implementation).
        assert_eq!(proof.jkt, key.kid(), "{alg:?}");
        assert_eq!((proof.jti.as_str(), proof.iat), ("e1j3V_bKic8-LAEB", NOW));
        assert!(
            proof
                .replay_key()
                .starts_with(&format!("dpop:{}:", key.kid()))
        );
        assert_eq!(proof.remember_until(DEFAULT_PROOF_WINDOW), NOW + 60);
    }
}

#[test]
fn structure_and_size_are_checked_first() {
    assert_eq!(
        refused(&"a".repeat(MAX_PROOF_BYTES + 1)),
        ProofError::Unreadable
    );
    for bad in ["", "a.b", "a.b.c.d", "!!.e30.AA", "e30.e30.AA"] {
        assert!(
            matches!(refused(bad), ProofError::Malformed(_) | ProofError::Type),
            "{bad}"
        );
    }
    let key = es256();
    let dup = signed_text(
        &key,
        r#"{"typ":"dpop+jwt","typ":"dpop+jwt","alg":"ES256"}"#,
        "{}",
    );
    assert!(matches!(refused(&dup), ProofError::Malformed(_)));
    let mut h = header(&key);
    h["crit"] = json!(["exp"]);
    assert!(matches!(
        refused(&signed(&key, &h, &claims())),
        ProofError::Malformed(_)
    ));
}

#[test]
fn typ_must_be_dpop_jwt() {
    let key = es256();
    for typ in [json!("JWT"), json!(null), json!("at+jwt")] {
        let mut h = header(&key);
        h["typ"] = typ;
        assert_eq!(refused(&signed(&key, &h, &claims())), ProofError::Type);
    }
    let mut h = header(&key);
    h["typ"] = json!("DPoP+JWT");
    assert!(verify(&signed(&key, &h, &claims()), &expected()).is_ok());
}

#[test]
fn none_hmac_and_unlisted_algorithms_are_refused() {
    let key = es256();
    for alg in ["none", "HS256", "ES384", "PS256", "RS512", ""] {
        let mut h = header(&key);
        h["alg"] = json!(alg);
        let unsigned = format!("{}.{}.", b64(&h), b64(&claims()));
        assert_eq!(refused(&unsigned), ProofError::Algorithm, "{alg}");
    }
}

#[test]
fn the_jwk_must_be_a_public_key_fitting_alg() {
    let key = es256();
    let mut h = header(&key);
    h.as_object_mut().unwrap().remove("jwk");
    assert_eq!(refused(&signed(&key, &h, &claims())), ProofError::NoKey);

    for member in ["d", "p", "k"] {
        let mut h = header(&key);
        h["jwk"][member] = json!("AAAA");
        assert_eq!(
            refused(&signed(&key, &h, &claims())),
            ProofError::PrivateKey,
            "{member}"
        );
    }
    let mut h = header(&key);
    h["jwk"] = json!({"kty": "oct", "kk": "AAAA"});
    assert_eq!(
        refused(&signed(&key, &h, &claims())),
        ProofError::UnusableKey
    );

    // An EC key under RS256, an Ed25519 key under ES256, a JWK whose own alg differs.
    let mut h = header(&key);
    h["alg"] = json!("RS256");
    assert_eq!(
        refused(&signed(&key, &h, &claims())),
        ProofError::KeyMismatch
    );
    let ed = PrivateKey::generate(SigningAlgorithm::EdDSA).unwrap();
    let mut h = header(&ed);
    h["alg"] = json!("ES256");
    assert_eq!(
        refused(&signed(&ed, &h, &claims())),
        ProofError::KeyMismatch
    );
    let mut h = header(&key);
    h["jwk"]["alg"] = json!("ES384");
    assert_eq!(
        refused(&signed(&key, &h, &claims())),
        ProofError::KeyMismatch
    );
}

#[test]
fn a_proof_signed_by_another_key_than_its_jwk_is_refused() {
    let key = es256();
    let other = es256();
    let proof = signed(&other, &header(&key), &claims());
    assert_eq!(refused(&proof), ProofError::BadSignature);
    let mut tampered = signed(&key, &header(&key), &claims());
    tampered.push('A');
    assert!(matches!(
        refused(&tampered),
        ProofError::BadSignature | ProofError::Malformed(_)
    ));
}

#[test]
fn htm_and_htu_must_name_this_endpoint() {
    let key = es256();
    let with = |name: &str, value: Value| {
        let mut c = claims();
        c[name] = value;
        verify(&signed(&key, &header(&key), &c), &expected())
    };
    assert_eq!(with("htm", json!("GET")), Err(ProofError::Method));
    assert_eq!(with("htm", json!("post")), Err(ProofError::Method));
    assert_eq!(with("htm", json!(1)), Err(ProofError::MissingClaim("htm")));
    for other in [
        "https://tb.example/fabrikam/oauth2/v2.0/token",
        "http://tb.example/contoso/oauth2/v2.0/token",
        "https://tb.example:8443/contoso/oauth2/v2.0/token",
        "https://evil.example/contoso/oauth2/v2.0/token",
        "not a url",
    ] {
        let err = with("htu", json!(other)).expect_err(other);
        assert!(matches!(err, ProofError::Url { .. }), "{other}");
    }
    // Scheme and host are case-insensitive; default port, query and fragment are ignored.
    for same in [
        "HTTPS://TB.Example/contoso/oauth2/v2.0/token",
        "https://tb.example:443/contoso/oauth2/v2.0/token?x=1#f",
    ] {
        assert!(with("htu", json!(same)).is_ok(), "{same}");
    }
    assert_eq!(
        with("htu", Value::Null),
        Err(ProofError::MissingClaim("htu"))
    );
}

#[test]
fn iat_must_be_inside_the_window() {
    let key = es256();
    let at = |iat: Value| {
        let mut c = claims();
        c["iat"] = iat;
        verify(&signed(&key, &header(&key), &c), &expected())
    };
    assert!(at(json!(NOW - 60)).is_ok(), "the window's edge");
    assert_eq!(at(json!(NOW - 61)), Err(ProofError::Stale));
    assert!(at(json!(NOW + 5)).is_ok(), "the skew's edge");
    assert_eq!(at(json!(NOW + 6)), Err(ProofError::Future));
    assert_eq!(at(json!("now")), Err(ProofError::MissingClaim("iat")));
    assert_eq!(at(json!(-1)), Err(ProofError::MissingClaim("iat")));
}

#[test]
fn jti_is_required_and_bounded() {
    let key = es256();
    let with = |jti: Value| {
        let mut c = claims();
        c["jti"] = jti;
        verify(&signed(&key, &header(&key), &c), &expected())
    };
    assert_eq!(with(json!("")), Err(ProofError::MissingClaim("jti")));
    assert_eq!(with(Value::Null), Err(ProofError::MissingClaim("jti")));
    assert!(with(json!("x".repeat(MAX_JTI_CHARS))).is_ok());
    assert_eq!(
        with(json!("x".repeat(MAX_JTI_CHARS + 1))),
        Err(ProofError::JtiTooLong)
    );
}

#[test]
fn every_refusal_is_a_400_invalid_dpop_proof_naming_its_check() {
    let url = ProofError::Url {
        sent: "https://evil.example/t".into(),
        expected: HTU.into(),
    };
    for err in [ProofError::Replayed, ProofError::Stale, url.clone()] {
        let r = err.refusal(Context::default());
        assert_eq!(
            (r.error.as_str(), r.status, r.reason),
            (
                "invalid_dpop_proof",
                StatusClass::BadRequest,
                "invalid_dpop_proof"
            )
        );
        assert!(r.description.contains("DPoP proof"), "{}", r.description);
    }
    let r = url.refusal(Context::default());
    assert!(r.description.contains("htu"));
    assert!(!r.description.contains(HTU), "the expected URL is detail");
    assert!(r.detail().contains(HTU));
}
