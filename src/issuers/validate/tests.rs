#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::Algorithm;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::issuers::jwks::parse_jwks;
use crate::issuers::testkit::{T0, TestKey, claims, issuer, jwks};
use crate::policy::model::KeySourceSpec;

const ISS: &str = "https://issuer.example";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn test_issuer() -> Issuer {
    issuer("ex", ISS, KeySourceSpec::Discovery, false)
}

fn keyset(keys: &[&TestKey]) -> KeySet {
    parse_jwks(jwks(keys).to_string().as_bytes()).unwrap()
}

fn check(token: &str, keys: &KeySet, now: SystemTime) -> Result<ValidatedToken, ValidationError> {
    check_with(token, &test_issuer(), keys, now)
}

fn check_with(
    token: &str,
    issuer: &Issuer,
    keys: &KeySet,
    now: SystemTime,
) -> Result<ValidatedToken, ValidationError> {
    let mut peeked = peek(token)?;
    verify(&mut peeked, issuer, keys, now)
}

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s.as_bytes())
}

fn with(claims: Value, name: &str, value: Value) -> Value {
    let mut claims = claims;
    claims[name] = value;
    claims
}

fn without(claims: Value, name: &str) -> Value {
    let mut claims = claims;
    claims.as_object_mut().unwrap().remove(name);
    claims
}

#[test]
fn accepts_each_key_type() {
    for key in [
        TestKey::rs256("r"),
        TestKey::rsa("ps", Algorithm::PS256, 0),
        TestKey::rsa("r512", Algorithm::RS512, 1),
        TestKey::es256("e"),
        TestKey::es384("e384"),
        TestKey::ed25519("ed"),
    ] {
        let token = key.mint(&claims(ISS));
        let ok = check(&token, &keyset(&[&key]), at(T0)).unwrap();
        assert_eq!(ok.issuer_name, "ex");
        assert_eq!(ok.iss, ISS);
        assert_eq!(ok.sub.as_deref(), Some("repo:contoso/infra"));
        assert_eq!(ok.aud, ["api://trustbridge"]);
        assert_eq!(ok.exp, T0 + 600);
        assert_eq!(ok.iat, Some(T0));
        assert_eq!(ok.nbf, Some(T0));
        assert_eq!(ok.jti.as_deref(), Some("j-1"));
        assert_eq!(ok.kid.as_deref(), Some(key.kid.as_str()));
        assert_eq!(ok.alg.to_jsonwebtoken(), key.alg);
        assert_eq!(ok.claims["sub"], "repo:contoso/infra");
    }
}

#[test]
fn alg_none_and_hmac_are_refused() {
    let key = TestKey::es256("e");
    let keys = keyset(&[&key]);
    let payload = b64(&claims(ISS).to_string());
    let none = format!("{}.{payload}.", b64(r#"{"alg":"none","kid":"e"}"#));
    assert_eq!(
        check(&none, &keys, at(T0)).unwrap_err(),
        ValidationError::AlgorithmNotAllowed("none".into())
    );
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &claims(ISS),
        &jsonwebtoken::EncodingKey::from_secret(b"secret"),
    )
    .unwrap();
    assert_eq!(
        check(&hs, &keys, at(T0)).unwrap_err(),
        ValidationError::AlgorithmNotAllowed("HS256".into())
    );
}

#[test]
fn alg_outside_the_allowlist_is_refused() {
    let key = TestKey::es256("e");
    let mut only_rs = test_issuer();
    only_rs.algorithms = vec![SigningAlgorithm::RS256];
    assert_eq!(
        check_with(&key.mint(&claims(ISS)), &only_rs, &keyset(&[&key]), at(T0)).unwrap_err(),
        ValidationError::AlgorithmNotAllowed("ES256".into())
    );
}

#[test]
fn key_selection() {
    let a = TestKey::es256("a");
    let b = TestKey::es256("b");
    // Unknown kid.
    assert_eq!(
        check(&a.mint(&claims(ISS)), &keyset(&[&b]), at(T0)).unwrap_err(),
        ValidationError::UnknownKey
    );
    // Without kid: only when exactly one key fits the algorithm.
    let no_kid = a.mint_raw(r#"{"alg":"ES256"}"#, &claims(ISS).to_string());
    assert!(check(&no_kid, &keyset(&[&a]), at(T0)).is_ok());
    assert!(check(&no_kid, &keyset(&[&a, &TestKey::rs256("r")]), at(T0)).is_ok());
    assert_eq!(
        check(&no_kid, &keyset(&[&a, &b]), at(T0)).unwrap_err(),
        ValidationError::UnknownKey
    );
}

#[test]
fn a_failed_verification_leaves_the_token_whole_for_the_retry() {
    // The registry verifies again after refreshing keys for an unknown kid: the first,
    // failed attempt must not have moved anything out of the peeked token.
    let a = TestKey::es256("a");
    let token = a.mint(&claims(ISS));
    let mut peeked = peek(&token).unwrap();
    let before = (
        peeked.iss.clone(),
        peeked.kid.clone(),
        peeked.claims.clone(),
    );
    let stale = keyset(&[&TestKey::es256("b")]);
    assert_eq!(
        verify(&mut peeked, &test_issuer(), &stale, at(T0)).unwrap_err(),
        ValidationError::UnknownKey
    );
    assert_eq!(
        (
            peeked.iss.clone(),
            peeked.kid.clone(),
            peeked.claims.clone()
        ),
        before
    );
    let validated = verify(&mut peeked, &test_issuer(), &keyset(&[&a]), at(T0)).unwrap();
    assert_eq!(validated.iss, before.0);
    assert_eq!(validated.kid, before.1);
    assert_eq!(validated.claims, before.2);
}

#[test]
fn key_must_fit_the_algorithm() {
    let ec = TestKey::es256("k");
    let token = ec.mint(&claims(ISS));
    // An RSA key under the token's kid.
    let rsa = TestKey::rs256("k");
    assert_eq!(
        check(&token, &keyset(&[&rsa]), at(T0)).unwrap_err(),
        ValidationError::KeyTypeMismatch("ES256".into())
    );
    // A P-384 key for an ES256 token.
    let p384 = TestKey::es384("k");
    assert_eq!(
        check(&token, &keyset(&[&p384]), at(T0)).unwrap_err(),
        ValidationError::KeyTypeMismatch("ES256".into())
    );
    // The JWK states another alg.
    let mut stated = ec.jwk.clone();
    stated["alg"] = json!("ES384");
    let keys = parse_jwks(json!({ "keys": [stated] }).to_string().as_bytes()).unwrap();
    assert_eq!(
        check(&token, &keys, at(T0)).unwrap_err(),
        ValidationError::KeyTypeMismatch("ES256".into())
    );
    // Without a stated alg the key is fine.
    let keys = parse_jwks(
        json!({ "keys": [ec.jwk_without_alg()] })
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert!(check(&token, &keys, at(T0)).is_ok());
}

#[test]
fn rsa_under_2048_bits_is_weak() {
    let key = TestKey::rs256("r");
    let token = key.mint(&claims(ISS));
    let weak = json!({"keys": [{"kty": "RSA", "kid": "r",
        "n": URL_SAFE_NO_PAD.encode([0xC1u8; 128]), "e": "AQAB"}]});
    let keys = parse_jwks(weak.to_string().as_bytes()).unwrap();
    assert!(matches!(
        check(&token, &keys, at(T0)).unwrap_err(),
        ValidationError::WeakKey(_)
    ));
}

#[test]
fn bad_signatures_are_refused() {
    let key = TestKey::rs256("r");
    let other = TestKey::rsa("r", Algorithm::RS256, 1);
    let token = other.mint(&claims(ISS));
    assert_eq!(
        check(&token, &keyset(&[&key]), at(T0)).unwrap_err(),
        ValidationError::BadSignature
    );
    // A payload swapped under a valid signature.
    let good = key.mint(&claims(ISS));
    let forged_payload = b64(&with(claims(ISS), "sub", json!("admin")).to_string());
    let parts: Vec<&str> = good.split('.').collect();
    let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    assert_eq!(
        check(&forged, &keyset(&[&key]), at(T0)).unwrap_err(),
        ValidationError::BadSignature
    );
    // An empty signature.
    let empty = format!("{}.{}.", parts[0], parts[1]);
    assert_eq!(
        check(&empty, &keyset(&[&key]), at(T0)).unwrap_err(),
        ValidationError::BadSignature
    );
}

#[test]
fn time_claims_with_leeway() {
    let key = TestKey::es256("e");
    let keys = keyset(&[&key]);
    let token = key.mint(&claims(ISS));
    let exp = T0 + 600;
    // exp: accepted just inside leeway (60 s), refused just outside.
    assert!(check(&token, &keys, at(exp + 60)).is_ok());
    assert_eq!(
        check(&token, &keys, at(exp + 61)).unwrap_err(),
        ValidationError::Expired
    );
    // nbf alone.
    let nbf_only = key.mint(&without(claims(ISS), "iat"));
    assert!(check(&nbf_only, &keys, at(T0 - 60)).is_ok());
    assert_eq!(
        check(&nbf_only, &keys, at(T0 - 61)).unwrap_err(),
        ValidationError::NotYetValid
    );
    // iat alone.
    let iat_only = key.mint(&without(claims(ISS), "nbf"));
    assert!(check(&iat_only, &keys, at(T0 - 60)).is_ok());
    assert_eq!(
        check(&iat_only, &keys, at(T0 - 61)).unwrap_err(),
        ValidationError::IssuedInFuture
    );
    // Sub-second precision: half a second past the leeway is expired.
    assert_eq!(
        check(&token, &keys, at(exp + 60) + Duration::from_millis(500)).unwrap_err(),
        ValidationError::Expired
    );
}

#[test]
fn exp_is_required_and_numeric() {
    let key = TestKey::es256("e");
    let keys = keyset(&[&key]);
    assert_eq!(
        check(&key.mint(&without(claims(ISS), "exp")), &keys, at(T0)).unwrap_err(),
        ValidationError::MissingExpiry
    );
    for bad in [json!("1700000600"), json!(-5), json!(1.5), json!(null)] {
        assert_eq!(
            check(
                &key.mint(&with(claims(ISS), "exp", bad.clone())),
                &keys,
                at(T0)
            )
            .unwrap_err(),
            ValidationError::BadTimeClaim("exp"),
            "{bad}"
        );
    }
    assert_eq!(
        check(
            &key.mint(&with(claims(ISS), "nbf", json!("x"))),
            &keys,
            at(T0)
        )
        .unwrap_err(),
        ValidationError::BadTimeClaim("nbf")
    );
    assert_eq!(
        check(
            &key.mint(&with(claims(ISS), "iat", json!(true))),
            &keys,
            at(T0)
        )
        .unwrap_err(),
        ValidationError::BadTimeClaim("iat")
    );
    // A whole number written as a float is a NumericDate.
    let float_exp = key.mint_raw(
        r#"{"alg":"ES256","kid":"e"}"#,
        &format!(r#"{{"iss":"{ISS}","exp":{}.0}}"#, T0 + 600),
    );
    assert_eq!(check(&float_exp, &keys, at(T0)).unwrap().exp, T0 + 600);
}

#[test]
fn iss_must_match_exactly() {
    let key = TestKey::es256("e");
    let token = key.mint(&claims("https://issuer.example/"));
    assert_eq!(
        check(&token, &keyset(&[&key]), at(T0)).unwrap_err(),
        ValidationError::UntrustedIssuer
    );
    let no_iss = key.mint(&without(claims(ISS), "iss"));
    assert_eq!(peek(&no_iss).unwrap_err(), ValidationError::UntrustedIssuer);
    let num_iss = key.mint(&with(claims(ISS), "iss", json!(1)));
    assert!(matches!(peek(&num_iss), Err(ValidationError::Malformed(_))));
}

#[test]
fn audience_shapes() {
    let key = TestKey::es256("e");
    let keys = keyset(&[&key]);
    let array = key.mint(&with(claims(ISS), "aud", json!(["a", "b"])));
    assert_eq!(check(&array, &keys, at(T0)).unwrap().aud, ["a", "b"]);
    let single = key.mint(&with(claims(ISS), "aud", json!("a")));
    assert_eq!(check(&single, &keys, at(T0)).unwrap().aud, ["a"]);
    let absent = key.mint(&without(claims(ISS), "aud"));
    assert!(check(&absent, &keys, at(T0)).unwrap().aud.is_empty());
    for bad in [json!(["a", 1]), json!(5), json!({"a": 1})] {
        let token = key.mint(&with(claims(ISS), "aud", bad));
        assert!(matches!(
            check(&token, &keys, at(T0)),
            Err(ValidationError::Malformed(_))
        ));
    }
    let bad_sub = key.mint(&with(claims(ISS), "sub", json!(1)));
    assert!(matches!(
        check(&bad_sub, &keys, at(T0)),
        Err(ValidationError::Malformed(_))
    ));
}

#[test]
fn duplicate_json_keys_are_refused() {
    let key = TestKey::es256("e");
    let payload = claims(ISS).to_string();
    let dup_header = key.mint_raw(r#"{"alg":"ES256","kid":"e","kid":"x"}"#, &payload);
    assert!(
        matches!(peek(&dup_header), Err(ValidationError::Malformed(m)) if m.contains("duplicate"))
    );
    let dup_payload = key.mint_raw(
        r#"{"alg":"ES256","kid":"e"}"#,
        &format!(r#"{{"iss":"{ISS}","sub":"a","sub":"b","exp":1}}"#),
    );
    assert!(
        matches!(peek(&dup_payload), Err(ValidationError::Malformed(m)) if m.contains("duplicate"))
    );
    let nested = key.mint_raw(
        r#"{"alg":"ES256","kid":"e"}"#,
        &format!(r#"{{"iss":"{ISS}","x":[{{"a":1,"a":2}}],"exp":1}}"#),
    );
    assert!(matches!(peek(&nested), Err(ValidationError::Malformed(_))));
    assert!(parse_strict_json(br#"{"a":{"b":1},"c":{"b":2}}"#).is_ok());
}

#[test]
fn header_rules() {
    let key = TestKey::es256("e");
    let payload = claims(ISS).to_string();
    let crit = key.mint_raw(r#"{"alg":"ES256","kid":"e","crit":["exp"]}"#, &payload);
    assert_eq!(peek(&crit).unwrap_err(), ValidationError::CriticalHeader);
    for cty in ["JWT", "jwt"] {
        let nested = key.mint_raw(
            &format!(r#"{{"alg":"ES256","kid":"e","cty":"{cty}"}}"#),
            &payload,
        );
        assert_eq!(peek(&nested).unwrap_err(), ValidationError::Nested);
    }
    let no_alg = key.mint_raw(r#"{"kid":"e"}"#, &payload);
    assert!(matches!(peek(&no_alg), Err(ValidationError::Malformed(_))));
    let num_alg = key.mint_raw(r#"{"alg":1}"#, &payload);
    assert!(matches!(peek(&num_alg), Err(ValidationError::Malformed(_))));
    let num_kid = key.mint_raw(r#"{"alg":"ES256","kid":1}"#, &payload);
    assert!(matches!(peek(&num_kid), Err(ValidationError::Malformed(_))));
    // jku/x5u/jwk are ignored: the key still comes from the issuer's set.
    let other = TestKey::es256("e");
    let jku = other.mint_raw(
        &format!(
            r#"{{"alg":"ES256","kid":"e","jku":"https://evil.example/jwks","jwk":{}}}"#,
            other.jwk
        ),
        &payload,
    );
    assert_eq!(
        check(&jku, &keyset(&[&key]), at(T0)).unwrap_err(),
        ValidationError::BadSignature
    );
}

#[test]
fn structure_rules() {
    assert_eq!(peek("a.b.c.d.e").unwrap_err(), ValidationError::Encrypted);
    for bad in ["", "a", "a.b", "a.b.c.d", "a.b.c.d.e.f"] {
        assert!(
            matches!(peek(bad), Err(ValidationError::Malformed(_))),
            "{bad}"
        );
    }
    let big = "a".repeat(MAX_TOKEN_BYTES + 1);
    assert_eq!(
        peek(&big).unwrap_err(),
        ValidationError::TooLarge {
            max: MAX_TOKEN_BYTES
        }
    );
    let key = TestKey::es256("e");
    let token = key.mint(&claims(ISS));
    let parts: Vec<&str> = token.split('.').collect();
    for bad in [
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}+.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}*", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", b64("[1]"), parts[1], parts[2]),
        format!("{}.{}.{}", parts[0], b64("\"s\""), parts[2]),
        format!("{}.{}.{}", parts[0], b64("{} trailing"), parts[2]),
    ] {
        assert!(
            matches!(peek(&bad), Err(ValidationError::Malformed(_))),
            "{bad}"
        );
    }
}

proptest! {
    #[test]
    fn peek_never_panics_on_arbitrary_strings(token in ".{0,300}") {
        let _ = peek(&token);
    }

    #[test]
    fn arbitrary_three_part_tokens_never_verify(
        header in proptest::collection::vec(any::<u8>(), 0..80),
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        signature in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let key = TestKey::es256("e");
        let keys = keyset(&[&key]);
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(&header),
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(&signature),
        );
        prop_assert!(check(&token, &keys, at(T0)).is_err());
    }

    #[test]
    fn json_shaped_tokens_with_random_signatures_never_verify(
        alg in prop_oneof![
            Just("ES256".to_string()),
            Just("RS256".to_string()),
            Just("none".to_string()),
            Just("HS256".to_string()),
            ".{0,8}".prop_map(|s: String| s),
        ],
        kid in proptest::option::of(prop_oneof![
            Just("e".to_string()),
            ".{0,4}".prop_map(|s: String| s),
        ]),
        exp in any::<i64>(),
        signature in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let key = TestKey::es256("e");
        let keys = keyset(&[&key]);
        let mut header = json!({"alg": alg});
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        let token = format!(
            "{}.{}.{}",
            b64(&header.to_string()),
            b64(&with(claims(ISS), "exp", json!(exp)).to_string()),
            URL_SAFE_NO_PAD.encode(&signature),
        );
        prop_assert!(check(&token, &keys, at(T0)).is_err());
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        "\\PC{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("[a-z\"\\\\]{0,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    /// Without repeated names the strict parser reads exactly what serde_json reads.
    #[test]
    fn strict_json_reads_any_document_as_serde_json_does(value in json_value()) {
        let text = serde_json::to_vec(&value).unwrap();
        prop_assert_eq!(parse_strict_json(&text), Ok(value));
    }

    /// A member name repeated in any object, at any depth inside objects and arrays, is
    /// refused, whatever the values and the members around it.
    #[test]
    fn a_repeated_member_name_is_refused_at_any_depth(
        depth in 0usize..5,
        name in "[a-z\"\\\\]{0,4}",
        first in json_value(),
        second in json_value(),
        around in proptest::collection::btree_map("[A-Z]{1,3}", json_value(), 0..3),
        in_array in any::<bool>(),
    ) {
        let name = serde_json::to_string(&name).unwrap();
        let mut members: Vec<String> = around
            .iter()
            .map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).unwrap()))
            .collect();
        let at = members.len() / 2;
        members.insert(at, format!("{name}:{first}"));
        members.push(format!("{name}:{second}"));
        let mut text = format!("{{{}}}", members.join(","));
        for level in 0..depth {
            text = if in_array && level % 2 == 0 {
                format!("[1,{text}]")
            } else {
                format!("{{\"n\":{text}}}")
            };
        }
        let refused = parse_strict_json(text.as_bytes());
        prop_assert!(
            matches!(&refused, Err(e) if e.contains("duplicate key")),
            "{text}: {refused:?}"
        );
    }
}
