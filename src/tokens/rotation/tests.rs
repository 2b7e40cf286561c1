use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::jose::SigningAlgorithm;
use crate::tokens::keys::PrivateKey;

const HOUR: Duration = Duration::from_secs(3600);

fn key(created_at: u64, activates_at: u64) -> StoredKey {
    StoredKey::in_memory(
        PrivateKey::generate(SigningAlgorithm::EdDSA).unwrap(),
        created_at,
        activates_at,
    )
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn kids<'a>(keys: impl IntoIterator<Item = &'a StoredKey>) -> Vec<String> {
    keys.into_iter().map(|k| k.key.kid().to_owned()).collect()
}

/// a: the first key (active at 1000); b: rotated in at 5000 (activates 5000 + 3600 = 8600).
fn rotated() -> Vec<StoredKey> {
    vec![key(1_000, 1_000), key(5_000, 8_600)]
}

#[test]
fn a_rotation_walks_next_current_retiring_expired() {
    let keys = rotated();
    let (a, b) = (&keys[0], &keys[1]);
    let clock = ManualClock::at_unix(5_000);
    struct Case {
        at: u64,
        a: KeyState,
        b: KeyState,
        published: Vec<&'static str>,
    }
    let cases = [
        Case {
            at: 5_000,
            a: KeyState::Current,
            b: KeyState::Next,
            published: vec!["a", "b"],
        },
        Case {
            at: 8_599,
            a: KeyState::Current,
            b: KeyState::Next,
            published: vec!["a", "b"],
        },
        Case {
            at: 8_600,
            a: KeyState::Retiring,
            b: KeyState::Current,
            published: vec!["b", "a"],
        },
        // a signed its last token just before 8600; with a 1 h retention it lives until 12200.
        Case {
            at: 12_200,
            a: KeyState::Retiring,
            b: KeyState::Current,
            published: vec!["b", "a"],
        },
        Case {
            at: 12_201,
            a: KeyState::Expired,
            b: KeyState::Current,
            published: vec!["b"],
        },
    ];
    for case in cases {
        clock.set(at(case.at));
        let now = clock.now();
        assert_eq!(state(&keys, a, now, HOUR), case.a, "a at {}", case.at);
        assert_eq!(state(&keys, b, now, HOUR), case.b, "b at {}", case.at);
        let want: Vec<String> = case
            .published
            .iter()
            .map(|n| if *n == "a" { a.key.kid() } else { b.key.kid() }.to_owned())
            .collect();
        assert_eq!(
            kids(published(&keys, now, HOUR)),
            want,
            "published at {}",
            case.at
        );
        let expired = case.a == KeyState::Expired;
        assert_eq!(kids(prunable(&keys, now, HOUR)).len(), usize::from(expired));
    }
}

#[test]
fn end_of_life_is_defined_once_a_successor_is_scheduled() {
    let keys = rotated();
    assert_eq!(retired_at(&keys, &keys[0]), Some(8_600));
    assert_eq!(end_of_life(&keys, &keys[0], HOUR), Some(12_200));
    assert_eq!(retired_at(&keys, &keys[1]), None);
    assert_eq!(end_of_life(&keys, &keys[1], HOUR), None);

    let (signing, eol) = signer(&keys, at(6_000), HOUR).unwrap();
    assert_eq!(signing.key.kid(), keys[0].key.kid());
    assert_eq!(eol, Some(12_200));
    assert_eq!(cap_expiry(6_000 + 24 * 3600, eol), 12_200, "capped");
    assert_eq!(
        cap_expiry(6_000 + 900, eol),
        6_900,
        "short tokens untouched"
    );
    assert_eq!(cap_expiry(99_999, None), 99_999, "no successor: no cap");
    assert!(signer(&keys, at(999), HOUR).is_none(), "nothing active yet");
}

#[test]
fn a_key_sharing_its_activation_with_a_newer_one_never_signs() {
    let keys = vec![key(10, 100), key(20, 100)];
    assert_eq!(state(&keys, &keys[0], at(100), HOUR), KeyState::Retiring);
    assert_eq!(state(&keys, &keys[1], at(100), HOUR), KeyState::Current);
    assert_eq!(
        state(&keys, &keys[0], at(100 + 3_601), HOUR),
        KeyState::Expired
    );
}

#[test]
fn rotation_activates_after_the_lead_and_never_jumps_the_queue() {
    let keys = rotated();
    assert_eq!(rotation_activation(&keys, at(9_000), HOUR), 12_600);
    // A second rotate before b activated: not before b.
    assert_eq!(rotation_activation(&keys, at(5_000), Duration::ZERO), 8_600);
    assert_eq!(rotation_activation(&[], at(5), Duration::ZERO), 5);
}

#[test]
fn replicas_with_the_same_keys_in_any_order_agree() {
    let keys = vec![key(1, 1), key(2, 50), key(3, 80), key(4, 500)];
    let mut reversed: Vec<StoredKey> = keys
        .iter()
        .rev()
        .map(|k| {
            let pem = k.key.to_pkcs8_pem();
            StoredKey::in_memory(
                PrivateKey::from_pkcs8_pem(&pem, Some(k.key.alg())).unwrap(),
                k.created_at,
                k.activates_at,
            )
        })
        .collect();
    reversed.rotate_left(1);
    for t in [1, 49, 50, 79, 80, 3_680, 3_681, 499, 500, 10_000] {
        assert_eq!(
            kids(published(&keys, at(t), HOUR)),
            kids(published(&reversed, at(t), HOUR)),
            "at {t}"
        );
        assert_eq!(
            signer(&keys, at(t), HOUR).map(|(k, e)| (k.key.kid().to_owned(), e)),
            signer(&reversed, at(t), HOUR).map(|(k, e)| (k.key.kid().to_owned(), e)),
        );
    }
}

#[test]
fn at_most_100_published_and_expired_keys_drop_first() {
    // 120 keys each activating one second after the previous: with a 10 s retention only the
    // newest 11 are unexpired at t = 120.
    let keys: Vec<StoredKey> = (0..120).map(|i| key(i, i)).collect();
    let short = Duration::from_secs(10);
    assert_eq!(published(&keys, at(120), short).len(), 11);
    assert_eq!(prunable(&keys, at(120), short).len(), 109);
    // With a long retention every key is alive; the 100 newest are published.
    let all = published(&keys, at(130), Duration::from_secs(86_400));
    assert_eq!(all.len(), MAX_PUBLISHED_KEYS);
    assert_eq!(all[0].key.kid(), keys[119].key.kid());
    assert!(!kids(all).contains(&keys[19].key.kid().to_owned()));
}

#[test]
fn before_any_key_is_active_the_future_keys_are_published() {
    let keys = vec![key(0, 100), key(0, 200)];
    assert_eq!(published(&keys, at(50), HOUR).len(), 2);
    assert!(key_set(&keys, at(50), HOUR).is_none());
    assert!(prunable(&keys, at(50), HOUR).is_empty());
}

#[test]
fn state_names() {
    let names: Vec<&str> = [
        KeyState::Next,
        KeyState::Current,
        KeyState::Retiring,
        KeyState::Expired,
    ]
    .iter()
    .map(|s| s.as_str())
    .collect();
    assert_eq!(names, ["next", "current", "retiring", "expired"]);
}
