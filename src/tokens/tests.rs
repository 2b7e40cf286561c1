use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::Value;

use super::*;
use crate::clock::ManualClock;
use crate::tokens::claims::tests::sample;

const T0: u64 = 1_700_000_000;

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::at_unix(T0))
}

/// Verifies `token` the way a relying party does: only with the published JWKS.
fn verify_with_jwks(token: &str, jwks: &Value) -> Value {
    let set: JwkSet = serde_json::from_value(jwks.clone()).expect("a valid JWK Set");
    let header = jsonwebtoken::decode_header(token).unwrap();
    let kid = header.kid.expect("kid");
    let jwk = set.find(&kid).expect("kid is published");
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_aud = false;
    let key = DecodingKey::from_jwk(jwk).unwrap();
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("verifies with the JWKS")
        .claims
}

#[test]
fn sign_sets_the_at_jwt_header_and_verifies_with_the_jwks() {
    for alg in [
        SigningAlgorithm::ES256,
        SigningAlgorithm::ES384,
        SigningAlgorithm::EdDSA,
        SigningAlgorithm::RS256,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let keys = SigningKeys::load_or_create(dir.path(), alg, clock()).unwrap();
        assert_eq!(keys.algorithm(), alg);
        let token = keys.sign(&sample(Default::default())).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.alg, alg.to_jsonwebtoken());
        assert_eq!(header.kid.as_deref(), Some(keys.kids()[0].as_str()));
        let claims = verify_with_jwks(&token, &keys.jwks());
        assert_eq!(claims["sub"], "oid-1");
        assert_eq!(claims["idtyp"], "app");
    }
}

#[test]
fn jwks_keys_carry_kid_alg_and_use_and_nothing_private() {
    let dir = tempfile::tempdir().unwrap();
    let keys = SigningKeys::load_or_create(dir.path(), SigningAlgorithm::ES256, clock()).unwrap();
    let jwks = keys.jwks();
    let list = jwks["keys"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    let jwk = list[0].as_object().unwrap();
    assert_eq!(jwk["kid"], keys.kids()[0].as_str());
    assert_eq!(jwk["alg"], "ES256");
    assert_eq!(jwk["use"], "sig");
    for private in ["d", "p", "q", "dp", "dq", "qi", "key_ops"] {
        assert!(!jwk.contains_key(private), "{private}");
    }
}

#[test]
fn a_restart_reuses_the_keys_and_old_tokens_still_verify() {
    let dir = tempfile::tempdir().unwrap();
    let first = SigningKeys::load_or_create(dir.path(), SigningAlgorithm::ES256, clock()).unwrap();
    let token = first.sign(&sample(Default::default())).unwrap();
    // The configured algorithm changed, but the directory's key wins.
    let second = SigningKeys::load_or_create(dir.path(), SigningAlgorithm::EdDSA, clock()).unwrap();
    assert_eq!(second.kids(), first.kids());
    assert_eq!(second.algorithm(), SigningAlgorithm::ES256);
    verify_with_jwks(&token, &second.jwks());
}

#[test]
fn a_next_key_is_published_before_it_signs_and_signs_once_active() {
    let clock = clock();
    let old = PrivateKey::generate(SigningAlgorithm::ES256).unwrap();
    let new = PrivateKey::generate(SigningAlgorithm::EdDSA).unwrap();
    let (old_kid, new_kid) = (old.kid().to_owned(), new.kid().to_owned());
    let keys = SigningKeys::from_keys(
        vec![
            StoredKey::in_memory(old, T0 - 100, T0 - 100),
            StoredKey::in_memory(new, T0, T0 + 3600),
        ],
        clock.clone(),
    )
    .unwrap();

    assert_eq!(keys.kids(), [old_kid.clone(), new_kid.clone()]);
    let before = keys.sign(&sample(Default::default())).unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(&before).unwrap().kid,
        Some(old_kid.clone())
    );
    assert_eq!(keys.algorithm(), SigningAlgorithm::ES256);

    clock.advance(Duration::from_secs(3600));
    let after = keys.sign(&sample(Default::default())).unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(&after).unwrap().kid,
        Some(new_kid.clone())
    );
    assert_eq!(keys.algorithm(), SigningAlgorithm::EdDSA);
    assert_eq!(keys.kids(), [new_kid, old_kid], "old key is retiring");
    verify_with_jwks(&before, &keys.jwks());
    verify_with_jwks(&after, &keys.jwks());
}

#[test]
fn no_active_key_is_refused_at_load_and_at_sign() {
    let clock = clock();
    let future = PrivateKey::generate(SigningAlgorithm::EdDSA).unwrap();
    let err = SigningKeys::from_keys(
        vec![StoredKey::in_memory(future, T0, T0 + 10)],
        clock.clone(),
    )
    .unwrap_err();
    assert!(matches!(err, KeyStoreError::NoActiveKey(_)), "{err}");

    let key = PrivateKey::generate(SigningAlgorithm::EdDSA).unwrap();
    let kid = key.kid().to_owned();
    let keys =
        SigningKeys::from_keys(vec![StoredKey::in_memory(key, T0, T0)], clock.clone()).unwrap();
    clock.set(std::time::UNIX_EPOCH + Duration::from_secs(T0 - 1));
    assert!(matches!(
        keys.sign(&sample(Default::default())),
        Err(SignError::Crypto(_))
    ));
    // Still published, and the algorithm is still known, while the clock is behind.
    assert_eq!(keys.kids(), [kid]);
    assert_eq!(keys.jwks()["keys"].as_array().unwrap().len(), 1);
    assert_eq!(keys.algorithm(), SigningAlgorithm::EdDSA);
}

#[test]
fn a_token_that_does_not_verify_is_never_returned() {
    let other = PrivateKey::generate(SigningAlgorithm::ES256).unwrap();
    let broken = PrivateKey::generate(SigningAlgorithm::ES256)
        .unwrap()
        .with_public_half_of(&other);
    let keys = SigningKeys::from_keys(vec![StoredKey::in_memory(broken, T0, T0)], clock()).unwrap();
    assert!(matches!(
        keys.sign(&sample(Default::default())),
        Err(SignError::SelfCheck(_))
    ));
}
