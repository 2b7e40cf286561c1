use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::state::memory::MemoryState;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn rates_parse_in_the_flag_syntax() {
    struct Case {
        text: &'static str,
        want: Option<(u64, u64)>,
    }
    let cases = [
        Case {
            text: "600/m",
            want: Some((600, 60)),
        },
        Case {
            text: "10/s",
            want: Some((10, 1)),
        },
        Case {
            text: "5000/h",
            want: Some((5000, 3600)),
        },
        Case {
            text: "50/10s",
            want: Some((50, 10)),
        },
        Case {
            text: " 7 / minute ",
            want: Some((7, 60)),
        },
        Case {
            text: "0/m",
            want: None,
        },
        Case {
            text: "10/0s",
            want: None,
        },
        Case {
            text: "10/2d",
            want: None,
        },
        Case {
            text: "ten/m",
            want: None,
        },
        Case {
            text: "600",
            want: None,
        },
        Case {
            text: "-1/m",
            want: None,
        },
        Case {
            text: "10/fortnight",
            want: None,
        },
    ];
    for case in cases {
        let got = RateLimit::parse(case.text)
            .ok()
            .map(|r| (r.limit, r.window.as_secs()));
        assert_eq!(got, case.want, "{}", case.text);
    }
    assert_eq!(RateLimit::parse("600/m").unwrap().to_string(), "600/1m");
}

#[test]
fn windows_are_aligned_to_the_epoch_and_the_verdict_names_the_wait() {
    let limit = RateLimit {
        limit: 2,
        window: Duration::from_secs(60),
    };
    assert_eq!(window_of(at(120), limit.window), (2, 180));
    assert_eq!(window_of(at(179), limit.window), (2, 180));
    assert_eq!(verdict(2, limit, at(130)), RateDecision::Allowed);
    assert_eq!(
        verdict(3, limit, at(130)),
        RateDecision::Limited { retry_after: 50 }
    );
    assert_eq!(
        verdict(3, limit, at(179)),
        RateDecision::Limited { retry_after: 1 }
    );
}

#[test]
fn replay_keys_scope_jti_to_the_issuer_and_hash_tokens_without_one() {
    let a = replay_key("github", Some("j1"), "tok");
    assert_eq!(a.len(), 64);
    assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        a,
        replay_key("github", Some("j1"), "another token, same jti")
    );
    assert_ne!(a, replay_key("gitlab", Some("j1"), "tok"));
    assert_ne!(
        replay_key("github", None, "t1"),
        replay_key("github", None, "t2")
    );
    assert_ne!(
        replay_key("g", None, "t1"),
        replay_key("g", Some("t1"), "t1")
    );
    assert_ne!(
        replay_key("g", None, "h.p1.s"),
        replay_key("g", None, "h.p2.s"),
        "another payload is another use"
    );
}

#[test]
fn replay_keys_without_jti_ignore_the_signature() {
    // ECDSA's (r, s) and (r, n - s) both verify: the signature must not make a second use.
    assert_eq!(
        replay_key("g", None, "eyJh.eyJw.c2lnMQ"),
        replay_key("g", None, "eyJh.eyJw.c2lnMg")
    );
    assert_eq!(signing_input("h.p.s"), "h.p");
    assert_eq!(signing_input("no-dots"), "no-dots");
}

proptest::proptest! {
    /// Any two tokens with the same header and payload count as one use, whatever their
    /// signature bytes; a different payload is a different use.
    #[test]
    fn replay_key_depends_only_on_the_signed_part(
        header in "[A-Za-z0-9_-]{1,40}",
        payload in "[A-Za-z0-9_-]{1,80}",
        other_payload in "[A-Za-z0-9_-]{1,80}",
        sig_a in "[A-Za-z0-9_-]{0,90}",
        sig_b in "[A-Za-z0-9_-]{0,90}",
    ) {
        let a = replay_key("issuer", None, &format!("{header}.{payload}.{sig_a}"));
        let b = replay_key("issuer", None, &format!("{header}.{payload}.{sig_b}"));
        proptest::prop_assert_eq!(&a, &b);
        if other_payload != payload {
            let c = replay_key("issuer", None, &format!("{header}.{other_payload}.{sig_a}"));
            proptest::prop_assert_ne!(a, c);
        }
    }
}

#[tokio::test]
async fn memory_replay_guard_accepts_once_until_expiry() {
    let store = MemoryState::default();
    assert_eq!(store.first_use("k", 200, at(100)).await, Ok(true));
    assert_eq!(store.first_use("k", 200, at(150)).await, Ok(false));
    assert_eq!(
        store.first_use("k", 200, at(200)).await,
        Ok(false),
        "until is inclusive"
    );
    assert_eq!(store.first_use("other", 200, at(150)).await, Ok(true));
    // After its expiry the token itself is refused by validation; the entry may be reused.
    assert_eq!(store.first_use("k", 400, at(201)).await, Ok(true));
    assert_eq!(store.replay_entries(), 2);
}

#[tokio::test]
async fn memory_rate_limiter_counts_per_bucket_and_window() {
    let store = MemoryState::default();
    let limit = RateLimit {
        limit: 2,
        window: Duration::from_secs(60),
    };
    assert_eq!(
        store.hit("a", limit, at(60)).await,
        Ok(RateDecision::Allowed)
    );
    assert_eq!(
        store.hit("a", limit, at(61)).await,
        Ok(RateDecision::Allowed)
    );
    assert_eq!(
        store.hit("a", limit, at(90)).await,
        Ok(RateDecision::Limited { retry_after: 30 })
    );
    assert_eq!(
        store.hit("b", limit, at(90)).await,
        Ok(RateDecision::Allowed),
        "own bucket"
    );
    assert_eq!(
        store.hit("a", limit, at(120)).await,
        Ok(RateDecision::Allowed),
        "next window"
    );
}

#[test]
fn a_bad_redis_url_is_refused_without_echoing_it() {
    let err = SharedState::redis("http://user:hunter2@example", "p:").unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert_eq!(
        SharedState::redis("redis://127.0.0.1:1", "p:")
            .unwrap()
            .backend,
        "redis"
    );
    assert_eq!(SharedState::memory().backend, "memory");
}

/// A unique key prefix so parallel test runs never share keys.
fn prefix() -> String {
    format!("tbtest:{}:", uuid::Uuid::new_v4().simple())
}

/// A local port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn redis_replay_guard_and_limiter_share_state_between_clients() {
    let prefix = prefix();
    let a = redis::RedisState::new("redis://127.0.0.1:6379", &prefix).unwrap();
    let b = redis::RedisState::new("redis://127.0.0.1:6379", &prefix).unwrap();
    let now = crate::clock::Clock::now(&crate::clock::SystemClock);
    let until = unix_seconds(now) + 60;
    assert_eq!(a.first_use("k1", until, now).await, Ok(true));
    assert_eq!(
        b.first_use("k1", until, now).await,
        Ok(false),
        "seen by the other client"
    );
    assert_eq!(b.first_use("k2", until, now).await, Ok(true));

    let limit = RateLimit {
        limit: 3,
        window: Duration::from_secs(3600),
    };
    let mut verdicts = Vec::new();
    for client in [&a, &b, &a, &b] {
        verdicts.push(client.hit("bucket", limit, now).await.unwrap());
    }
    assert_eq!(&verdicts[..3], &[RateDecision::Allowed; 3]);
    assert!(matches!(verdicts[3], RateDecision::Limited { retry_after } if retry_after >= 1));
}

#[tokio::test]
async fn redis_down_is_reported_within_the_deadline() {
    let store =
        redis::RedisState::new(&format!("redis://127.0.0.1:{}", closed_port()), &prefix()).unwrap();
    let started = std::time::Instant::now();
    let now = at(1_000);
    assert!(matches!(
        store.first_use("k", 2_000, now).await,
        Err(StateError::Unavailable(_))
    ));
    let limit = RateLimit {
        limit: 3,
        window: Duration::from_secs(60),
    };
    assert!(matches!(
        store.hit("b", limit, now).await,
        Err(StateError::Unavailable(_))
    ));
    assert!(
        started.elapsed() < redis::OP_DEADLINE * 3,
        "{:?}",
        started.elapsed()
    );
}
