use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{DecodingKey, Validation};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

const RSA1024: &str = include_str!("../../../tests/fixtures/keys/pem/rsa1024.pem");
const RSA3072: &str = include_str!("../../../tests/fixtures/keys/pem/rsa3072.pem");
const RSA3072_PKCS1: &str = include_str!("../../../tests/fixtures/keys/pem/rsa3072-pkcs1.pem");
const P256: &str = include_str!("../../../tests/fixtures/keys/pem/p256.pem");
const P256_SEC1: &str = include_str!("../../../tests/fixtures/keys/pem/p256-sec1.pem");
const P521: &str = include_str!("../../../tests/fixtures/keys/pem/p521.pem");
const ED25519: &str = include_str!("../../../tests/fixtures/keys/pem/ed25519.pem");

fn member_names(jwk: &Value) -> BTreeSet<&str> {
    jwk.as_object()
        .expect("a JWK is an object")
        .keys()
        .map(String::as_str)
        .collect()
}

fn b64_len(jwk: &Value, member: &str) -> usize {
    URL_SAFE_NO_PAD
        .decode(jwk[member].as_str().expect("a string member"))
        .expect("base64url")
        .len()
}

/// Signs with the private key and verifies with a key rebuilt from the published JWK alone,
/// as a relying party would.
fn assert_verifies_from_jwk(key: &PrivateKey) {
    let claims = json!({"sub": "s", "exp": 2_000_000_000u64});
    let token = key.sign_jwt("JWT", &claims).expect("signs");
    let jwk: Jwk = serde_json::from_value(key.public_jwk().clone()).expect("a valid JWK");
    let decoding = DecodingKey::from_jwk(&jwk).expect("usable JWK");
    let mut validation = Validation::new(key.alg().to_jsonwebtoken());
    validation.validate_exp = false;
    let data = jsonwebtoken::decode::<Value>(&token, &decoding, &validation).expect("verifies");
    assert_eq!(data.claims, claims);
}

#[test]
fn generates_every_algorithm_with_the_right_jwk_shape() {
    for alg in SigningAlgorithm::ALL {
        let key = PrivateKey::generate(alg).expect("generates");
        assert_eq!(key.alg(), alg);
        let jwk = key.public_jwk();
        assert_eq!(jwk["kty"], alg.key_type(), "{alg}");
        assert_eq!(jwk["alg"], alg.as_str());
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["kid"], key.kid());
        // SHA-256 in unpadded base64url is 43 characters.
        assert_eq!(key.kid().len(), 43);
        let expected: BTreeSet<&str> = match alg.key_type() {
            "RSA" => ["kty", "n", "e", "kid", "alg", "use"].into(),
            "EC" => ["kty", "crv", "x", "y", "kid", "alg", "use"].into(),
            _ => ["kty", "crv", "x", "kid", "alg", "use"].into(),
        };
        assert_eq!(
            member_names(jwk),
            expected,
            "{alg}: no private members, no key_ops"
        );
        match alg {
            SigningAlgorithm::ES256 => {
                assert_eq!(jwk["crv"], "P-256");
                assert_eq!((b64_len(jwk, "x"), b64_len(jwk, "y")), (32, 32));
            }
            SigningAlgorithm::ES384 => {
                assert_eq!(jwk["crv"], "P-384");
                assert_eq!((b64_len(jwk, "x"), b64_len(jwk, "y")), (48, 48));
            }
            SigningAlgorithm::EdDSA => {
                assert_eq!(jwk["crv"], "Ed25519");
                assert_eq!(b64_len(jwk, "x"), 32);
            }
            _ => {
                assert_eq!(b64_len(jwk, "n"), 256, "RSA 2048");
                assert_eq!(jwk["e"], "AQAB");
            }
        }
        // The kid is the thumbprint an independent implementation computes from the JWK.
        let parsed: Jwk = serde_json::from_value(jwk.clone()).expect("a valid JWK");
        if alg != SigningAlgorithm::EdDSA {
            // (jsonwebtoken's thumbprint refuses OKP keys; the RFC vector below covers the
            // canonical form and the OKP form follows RFC 8037 §2.)
            assert_eq!(
                parsed.thumbprint(ThumbprintHash::SHA256).unwrap(),
                key.kid()
            );
        }
        assert_verifies_from_jwk(&key);
    }
}

#[test]
fn okp_thumbprint_uses_the_rfc_8037_canonical_members() {
    // RFC 8037 Appendix A.3: the thumbprint of the Ed25519 example key.
    let x = URL_SAFE_NO_PAD
        .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
        .unwrap();
    assert_eq!(
        PublicParams::Okp { x }.thumbprint(),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
}

#[test]
fn rfc_7638_example_key_has_the_published_thumbprint() {
    // RFC 7638 §3.1.
    let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B\
             JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F\
             DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4\
             vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    let params = PublicParams::Rsa {
        n: URL_SAFE_NO_PAD.decode(n).unwrap(),
        e: URL_SAFE_NO_PAD.decode("AQAB").unwrap(),
    };
    assert_eq!(
        params.thumbprint(),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

#[test]
fn pem_round_trip_keeps_kid_and_alg() {
    for alg in [
        SigningAlgorithm::ES256,
        SigningAlgorithm::ES384,
        SigningAlgorithm::EdDSA,
        SigningAlgorithm::RS256,
    ] {
        let key = PrivateKey::generate(alg).unwrap();
        let pem = key.to_pkcs8_pem();
        assert!(pem.starts_with(&format!("{PKCS8_PEM_BEGIN}\n")));
        assert!(pem.ends_with(&format!("{PKCS8_PEM_END}\n")));
        assert!(pem.lines().all(|l| l.len() <= 64));
        let back = PrivateKey::from_pkcs8_pem(&pem, None).unwrap();
        assert_eq!(back.kid(), key.kid());
        assert_eq!(back.alg(), alg, "the natural algorithm of the key type");
        assert_eq!(back.public_jwk(), key.public_jwk());
        assert_eq!(back.to_pkcs8_pem(), pem);
    }
}

#[test]
fn generated_keys_are_distinct() {
    let a = PrivateKey::generate(SigningAlgorithm::ES256).unwrap();
    let b = PrivateKey::generate(SigningAlgorithm::ES256).unwrap();
    assert_ne!(a.kid(), b.kid());
}

#[test]
fn accepts_openssl_pkcs8_keys() {
    let rsa = PrivateKey::from_pkcs8_pem(RSA3072, None).unwrap();
    assert_eq!(rsa.alg(), SigningAlgorithm::RS256);
    assert_eq!(b64_len(rsa.public_jwk(), "n"), 384, "RSA 3072 is accepted");
    assert_verifies_from_jwk(&rsa);

    let ec = PrivateKey::from_pkcs8_pem(P256, None).unwrap();
    assert_eq!(ec.alg(), SigningAlgorithm::ES256);
    assert_verifies_from_jwk(&ec);

    let ed = PrivateKey::from_pkcs8_pem(ED25519, None).unwrap();
    assert_eq!(ed.alg(), SigningAlgorithm::EdDSA);
    assert_verifies_from_jwk(&ed);

    // Text around the block (openssl pkcs12 "Bag Attributes", comments) is ignored.
    let wrapped = format!("Bag Attributes\n  friendlyName: x\n{P256}\ntrailing\n");
    assert_eq!(
        PrivateKey::from_pkcs8_pem(&wrapped, None).unwrap().kid(),
        ec.kid()
    );
}

#[test]
fn rsa_keys_may_sign_any_rsa_algorithm() {
    let key = PrivateKey::from_pkcs8_pem(RSA3072, Some(SigningAlgorithm::PS256)).unwrap();
    assert_eq!(key.alg(), SigningAlgorithm::PS256);
    assert_eq!(key.public_jwk()["alg"], "PS256");
    assert_verifies_from_jwk(&key);
}

#[test]
fn refuses_unsupported_keys_and_formats() {
    let pem = |body: &str| format!("{PKCS8_PEM_BEGIN}\n{body}");
    let cases: [(&str, String, KeyError); 9] = [
        ("RSA 1024", RSA1024.into(), KeyError::RsaTooSmall),
        (
            "PKCS#1",
            RSA3072_PKCS1.into(),
            KeyError::WrongPemLabel("RSA PRIVATE KEY".into()),
        ),
        (
            "SEC1",
            P256_SEC1.into(),
            KeyError::WrongPemLabel("EC PRIVATE KEY".into()),
        ),
        ("P-521", P521.into(), KeyError::Unrecognized),
        ("empty", String::new(), KeyError::NotPem),
        ("no end", pem("MC4CAQA=\n"), KeyError::NotPem),
        (
            "not base64",
            pem(&format!("!!!!\n{PKCS8_PEM_END}\n")),
            KeyError::BadBase64,
        ),
        (
            "empty body",
            pem(&format!("{PKCS8_PEM_END}\n")),
            KeyError::Unrecognized,
        ),
        (
            "not a key",
            pem(&format!("aGVsbG8gd29ybGQ=\n{PKCS8_PEM_END}\n")),
            KeyError::Unrecognized,
        ),
    ];
    for (name, pem, want) in cases {
        assert_eq!(
            PrivateKey::from_pkcs8_pem(&pem, None).unwrap_err(),
            want,
            "{name}"
        );
    }
}

#[test]
fn refuses_an_algorithm_the_key_cannot_sign() {
    let cases = [
        (P256, SigningAlgorithm::ES384, "P-256"),
        (P256, SigningAlgorithm::RS256, "P-256"),
        (ED25519, SigningAlgorithm::ES256, "Ed25519"),
        (RSA3072, SigningAlgorithm::EdDSA, "RSA"),
    ];
    for (pem, alg, key_type) in cases {
        assert_eq!(
            PrivateKey::from_pkcs8_pem(pem, Some(alg)).unwrap_err(),
            KeyError::AlgorithmMismatch { key_type, alg }
        );
    }
}

#[test]
fn wrong_label_message_is_bounded_and_printable() {
    let label = format!("{}\u{7}", "X".repeat(500));
    let pem = format!("-----BEGIN {label}-----\nAAAA\n-----END {label}-----\n");
    match PrivateKey::from_pkcs8_pem(&pem, None).unwrap_err() {
        KeyError::WrongPemLabel(shown) => assert_eq!(shown, "X".repeat(40)),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn sign_jwt_sets_alg_kid_and_typ() {
    let key = PrivateKey::generate(SigningAlgorithm::EdDSA).unwrap();
    let token = key.sign_jwt("at+jwt", &json!({"a": 1})).unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(header.kid.as_deref(), Some(key.kid()));
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
}

#[test]
fn the_cached_header_follows_the_typ_asked_for() {
    for alg in [SigningAlgorithm::ES256, SigningAlgorithm::RS256] {
        let key = PrivateKey::generate(alg).unwrap();
        for typ in ["at+jwt", "at+jwt", "JWT", "at+jwt", "JWT", "JWT"] {
            let token = key.sign_jwt(typ, &json!({"a": 1})).unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.typ.as_deref(), Some(typ));
            assert_eq!(header.kid.as_deref(), Some(key.kid()));
            assert_eq!(header.alg, alg.to_jsonwebtoken());
            assert!(
                key.verify_signature(
                    token.rsplit_once('.').unwrap().0.as_bytes(),
                    &base64::Engine::decode(
                        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                        token.rsplit_once('.').unwrap().1
                    )
                    .unwrap()
                )
            );
        }
    }
}

#[test]
fn debug_output_holds_no_key_material() {
    let key = PrivateKey::generate(SigningAlgorithm::ES256).unwrap();
    let debug = format!("{key:?}");
    assert!(debug.contains(key.kid()));
    let pem = key.to_pkcs8_pem();
    let body_line = pem.lines().nth(1).unwrap();
    assert!(!debug.contains(&body_line[..16]));
    assert!(!debug.contains("pkcs8"));
}

proptest! {
    #[test]
    fn pem_parser_never_panics_on_text(text in ".{0,300}") {
        let _ = PrivateKey::from_pkcs8_pem(&text, None);
    }

    #[test]
    fn random_der_is_refused(der in proptest::collection::vec(any::<u8>(), 0..400)) {
        let pem = format!(
            "{}\n{}\n{}\n",
            PKCS8_PEM_BEGIN,
            STANDARD.encode(&der),
            PKCS8_PEM_END
        );
        prop_assert!(PrivateKey::from_pkcs8_pem(&pem, None).is_err());
    }

    #[test]
    fn truncated_keys_are_refused(cut in 1usize..100) {
        let der = STANDARD
            .decode(P256.lines().filter(|l| !l.starts_with("-----")).collect::<String>())
            .unwrap();
        let pem = format!(
            "{}\n{}\n{}\n",
            PKCS8_PEM_BEGIN,
            STANDARD.encode(&der[..der.len().saturating_sub(cut)]),
            PKCS8_PEM_END
        );
        prop_assert!(PrivateKey::from_pkcs8_pem(&pem, None).is_err());
    }
}

#[test]
fn a_token_is_written_into_exactly_the_room_it_needs_for_every_algorithm() {
    // RSA-3072 besides the generated keys: the signature length follows the modulus.
    let rsa3072 = PrivateKey::from_pkcs8_pem(RSA3072, None).expect("loads");
    let keys = SigningAlgorithm::ALL
        .into_iter()
        .map(|alg| PrivateKey::generate(alg).expect("generates"))
        .chain([rsa3072]);
    for key in keys {
        let signature = key.raw_signature(b"probe").expect("signs");
        assert_eq!(key.signer.signature_len(), signature.len(), "{}", key.alg());
        for claims in [json!({}), json!({"sub": "x".repeat(5000)})] {
            let token = key.sign_jwt("at+jwt", &claims).expect("signs");
            assert_eq!(token.len(), token.capacity(), "{}", key.alg());
        }
    }
}
