use crate::jose::VERIFY_FIRST;
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
    // Caught by the load probe now (issue 13): the key never signs at all.
    assert!(matches!(
        keys.sign(&sample(Default::default())),
        Err(SignError::KeyOutOfService(_))
    ));
    // Were it in service, the check of its first token would refuse it.
    let other = PrivateKey::generate(SigningAlgorithm::ES256).unwrap();
    let broken = PrivateKey::generate(SigningAlgorithm::ES256)
        .unwrap()
        .with_public_half_of(&other);
    let why = signer::sign_and_check(
        &broken,
        ACCESS_TOKEN_TYP,
        &sample(Default::default()),
        [&broken],
    );
    assert!(matches!(why, Err(SignError::SelfCheck(_))));
}

// === reload and rotation ===

mod reload {
    use std::os::unix::fs::symlink;
    use std::path::Path;

    use super::*;
    use crate::tokens::store::write_key;

    fn rotate_into(dir: &Path, activates_at: u64) -> String {
        let key = PrivateKey::generate(SigningAlgorithm::ES256).unwrap();
        write_key(dir, &key, T0, activates_at).unwrap();
        key.kid().to_owned()
    }

    #[test]
    fn a_rotation_written_to_the_directory_is_published_before_it_signs() {
        let dir = tempfile::tempdir().unwrap();
        let clock = clock();
        let keys = SigningKeys::load_or_create(dir.path(), SigningAlgorithm::ES256, clock.clone())
            .unwrap();
        let old = keys.kids();
        assert_eq!(keys.refresh().unwrap(), Refresh::Unchanged);

        let new = rotate_into(dir.path(), T0 + 3600);
        assert_eq!(keys.refresh().unwrap(), Refresh::Reloaded);
        assert_eq!(keys.refresh().unwrap(), Refresh::Unchanged);
        assert_eq!(
            keys.kids(),
            vec![old[0].clone(), new.clone()],
            "current, then next"
        );
        let before = keys.sign(&sample(Default::default())).unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&before).unwrap().kid,
            Some(old[0].clone())
        );

        clock.advance(Duration::from_secs(3600));
        let after = keys.sign(&sample(Default::default())).unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&after).unwrap().kid,
            Some(new.clone())
        );
        assert_eq!(
            keys.kids(),
            vec![new.clone(), old[0].clone()],
            "old key retiring"
        );
        verify_with_jwks(&before, &keys.jwks());

        // One retention later the old key is expired and unpublished.
        clock.advance(Duration::from_secs(3601));
        assert_eq!(keys.kids(), vec![new]);
        let states = keys.states();
        assert!(
            states.contains(&(old[0].clone(), KeyState::Expired)),
            "{states:?}"
        );
    }

    #[test]
    fn a_broken_directory_keeps_the_keys_in_use_until_it_is_fixed() {
        let dir = tempfile::tempdir().unwrap();
        let keys =
            SigningKeys::load_or_create(dir.path(), SigningAlgorithm::ES256, clock()).unwrap();
        let before = keys.kids();
        std::fs::write(
            dir.path().join("half.pem"),
            format!("{}\nAAAA", crate::tokens::keys::PKCS8_PEM_BEGIN),
        )
        .unwrap();
        let err = keys.refresh().unwrap_err();
        assert!(err.to_string().contains("half.pem"), "{err}");
        assert_eq!(keys.kids(), before, "old set kept");
        keys.sign(&sample(Default::default())).expect("still signs");
        // Retried at the next poll (the failed fingerprint was not recorded).
        assert!(keys.refresh().is_err());
        std::fs::remove_file(dir.path().join("half.pem")).unwrap();
        let new = rotate_into(dir.path(), T0 + 60);
        assert_eq!(keys.refresh().unwrap(), Refresh::Reloaded);
        assert_eq!(keys.kids(), vec![before[0].clone(), new]);
    }

    #[test]
    fn a_directory_emptied_or_with_only_future_keys_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let keys =
            SigningKeys::load_or_create(dir.path(), SigningAlgorithm::ES256, clock()).unwrap();
        let before = keys.kids();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        assert!(
            keys.refresh().is_err(),
            "an empty directory never replaces keys"
        );
        rotate_into(dir.path(), T0 + 60);
        assert!(matches!(keys.refresh(), Err(KeyStoreError::NoActiveKey(_))));
        assert_eq!(keys.kids(), before);
    }

    #[test]
    fn a_kubernetes_secret_update_swaps_the_data_symlink() {
        // kubelet layout: ..2026_v1/ holds the files, ..data -> ..2026_v1, and each visible
        // name is a symlink into ..data. An update writes ..2026_v2 and swaps ..data.
        let dir = tempfile::tempdir().unwrap();
        let v1 = dir.path().join("..2026_v1");
        std::fs::create_dir(&v1).unwrap();
        let first = PrivateKey::generate(SigningAlgorithm::ES256).unwrap();
        write_key(&v1, &first, T0 - 10, T0 - 10).unwrap();
        symlink("..2026_v1", dir.path().join("..data")).unwrap();
        for ext in ["pem", "json"] {
            let name = format!("{}.{ext}", first.kid());
            symlink(format!("..data/{name}"), dir.path().join(&name)).unwrap();
        }
        let keys =
            SigningKeys::load_or_create(dir.path(), SigningAlgorithm::ES256, clock()).unwrap();
        assert_eq!(keys.kids(), vec![first.kid().to_owned()]);

        let v2 = dir.path().join("..2026_v2");
        std::fs::create_dir(&v2).unwrap();
        write_key(&v2, &first, T0 - 10, T0 - 10).unwrap();
        let second = PrivateKey::generate(SigningAlgorithm::ES256).unwrap();
        write_key(&v2, &second, T0, T0 + 3600).unwrap();
        symlink("..2026_v2", dir.path().join("..data_tmp")).unwrap();
        std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
        for ext in ["pem", "json"] {
            let name = format!("{}.{ext}", second.kid());
            symlink(format!("..data/{name}"), dir.path().join(&name)).unwrap();
        }
        assert_eq!(keys.refresh().unwrap(), Refresh::Reloaded);
        assert_eq!(
            keys.kids(),
            vec![first.kid().to_owned(), second.kid().to_owned()]
        );
    }

    #[test]
    fn tokens_are_capped_at_their_keys_end_of_life() {
        let dir = tempfile::tempdir().unwrap();
        let clock = clock();
        let keys = SigningKeys::load_or_create(dir.path(), SigningAlgorithm::ES256, clock.clone())
            .unwrap()
            .with_retention(Duration::from_secs(600));
        let mut claims = sample(Default::default());
        claims.exp = T0 + 86_400;
        keys.sign_capped(&mut claims).unwrap();
        assert_eq!(claims.exp, T0 + 86_400, "no successor: no cap");

        rotate_into(dir.path(), T0 + 100);
        keys.refresh().unwrap();
        let mut claims = sample(Default::default());
        claims.exp = T0 + 86_400;
        let token = keys.sign_capped(&mut claims).unwrap().into_string();
        assert_eq!(claims.exp, T0 + 700, "retirement + retention");
        let signed = verify_with_jwks(&token, &keys.jwks());
        assert_eq!(signed["exp"], T0 + 700);
    }

    #[test]
    fn metrics_count_keys_by_state_and_reloads() {
        let registry = prometheus::Registry::new();
        let metrics = KeyMetrics::register(&registry).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let keys =
            SigningKeys::load_or_create(dir.path(), SigningAlgorithm::ES256, clock()).unwrap();
        rotate_into(dir.path(), T0 + 100);
        keys.refresh().unwrap();
        metrics.observe(&keys);
        assert_eq!(metrics.keys.with_label_values(&["current"]).get(), 1);
        assert_eq!(metrics.keys.with_label_values(&["next"]).get(), 1);
        assert_eq!(metrics.keys.with_label_values(&["retiring"]).get(), 0);
    }
}

// === post-signing self-check (issue 13) ===

fn faulty_key(fault: &Arc<std::sync::atomic::AtomicBool>) -> PrivateKey {
    PrivateKey::generate(SigningAlgorithm::ES256)
        .unwrap()
        .with_fault(fault.clone())
}

fn fault() -> Arc<std::sync::atomic::AtomicBool> {
    Arc::new(std::sync::atomic::AtomicBool::new(false))
}

fn set(fault: &std::sync::atomic::AtomicBool) {
    fault.store(true, std::sync::atomic::Ordering::SeqCst);
}

#[test]
fn a_key_that_fails_its_load_probe_is_never_used() {
    let broken = fault();
    let key = faulty_key(&broken);
    set(&broken);
    let kid = key.kid().to_owned();
    let keys = SigningKeys::from_keys(vec![StoredKey::in_memory(key, T0, T0)], clock()).unwrap();
    assert_eq!(keys.out_of_service(), std::slice::from_ref(&kid));
    match keys.sign(&sample(Default::default())) {
        Err(SignError::KeyOutOfService(k)) => assert_eq!(k, kid),
        other => panic!("expected KeyOutOfService, got {other:?}"),
    }
}

#[test]
fn a_key_that_faults_after_load_is_caught_and_taken_out_of_service() {
    let broken = fault();
    let keys = SigningKeys::from_keys(
        vec![StoredKey::in_memory(faulty_key(&broken), T0, T0)],
        clock(),
    )
    .unwrap();
    let registry = prometheus::Registry::new();
    keys.register_metrics(&registry).unwrap();
    for _ in 0..3 {
        keys.sign(&sample(Default::default())).unwrap();
    }
    set(&broken);
    // The faulty token is checked (one of the first VERIFY_FIRST) and never returned ...
    assert!(matches!(
        keys.sign(&sample(Default::default())),
        Err(SignError::SelfCheck(_))
    ));
    // ... and the key signs no more, even were the fault to go away.
    broken.store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(matches!(
        keys.sign(&sample(Default::default())),
        Err(SignError::KeyOutOfService(_))
    ));
    assert_eq!(keys.self_check_failures.get(), 1);
    let refusal = crate::refusal::Refuse::refusal(
        &SignError::KeyOutOfService("k".into()),
        crate::refusal::Context::default(),
    );
    assert_eq!(
        (refusal.error.as_str(), refusal.status.code()),
        ("temporarily_unavailable", 503)
    );
}

#[test]
fn a_key_is_probed_when_it_becomes_current() {
    let clock = clock();
    let broken = fault();
    let first = PrivateKey::generate(SigningAlgorithm::ES256).unwrap();
    let next = faulty_key(&broken);
    let keys = SigningKeys::from_keys(
        vec![
            StoredKey::in_memory(first, T0, T0),
            StoredKey::in_memory(next, T0, T0 + 100),
        ],
        clock.clone(),
    )
    .unwrap()
    .with_verify_issued(VerifyIssued::Load);
    keys.sign(&sample(Default::default())).unwrap();
    // It broke while waiting to activate: its first signature is preceded by a probe, even
    // when issued tokens are not verified.
    set(&broken);
    clock.advance(Duration::from_secs(100));
    assert!(matches!(
        keys.sign(&sample(Default::default())),
        Err(SignError::SelfCheck(_))
    ));
    assert_eq!(keys.out_of_service().len(), 1);
}

#[test]
fn the_sample_verifies_the_first_tokens_then_one_in_sixty_four() {
    let sampled: Vec<u64> = (0..200)
        .filter(|n| VerifyIssued::Sample.verifies(*n))
        .collect();
    let expected: Vec<u64> = (0..VERIFY_FIRST)
        .chain([64, 128, 192])
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(sampled, expected);
    assert!((0..200).all(|n| VerifyIssued::All.verifies(n)));
    assert!((0..200).all(|n| !VerifyIssued::Load.verifies(n)));
    assert_eq!(VerifyIssued::parse("sample"), Some(VerifyIssued::Sample));
    assert_eq!(VerifyIssued::parse("some"), None);
}
