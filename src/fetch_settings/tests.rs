use std::time::Duration;

use super::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn defaults_are_unchanged_and_keep_every_relation() {
    let d = FetchSettings::default();
    assert_eq!(d.connect_timeout, secs(5));
    assert_eq!(d.timeout, secs(5));
    assert_eq!(d.max_body_bytes, 256 * 1024);
    assert_eq!(d.min_refresh_interval, secs(30));
    assert_eq!(d.default_ttl, secs(3600));
    assert_eq!(d.min_ttl, secs(300));
    assert_eq!(d.max_ttl, secs(86_400));
    assert_eq!(d.max_stale, secs(86_400));
    assert!(d.relation_problems(|f| f.setting().into()).is_empty());
    // Every default lies in its own range.
    for field in Field::ALL {
        match d.duration(field) {
            Some(v) => assert!(field.check_duration(v).is_ok(), "{field:?}"),
            None => assert!(field.check_bytes(d.max_body_bytes as u64).is_ok()),
        }
    }
}

#[test]
fn ranges_include_their_bounds_and_refuse_beyond_them() {
    struct Case {
        field: Field,
        ok: Vec<Duration>,
        refused: Vec<Duration>,
    }
    let cases = [
        Case {
            field: Field::ConnectTimeout,
            ok: vec![Duration::from_millis(100), Duration::from_secs(60)],
            refused: vec![
                Duration::from_millis(99),
                Duration::from_secs(61),
                Duration::ZERO,
            ],
        },
        Case {
            field: Field::Timeout,
            ok: vec![Duration::from_millis(100), Duration::from_secs(120)],
            refused: vec![Duration::ZERO, Duration::from_secs(121)],
        },
        Case {
            field: Field::RefreshCooldown,
            ok: vec![Duration::from_secs(1), Duration::from_secs(3600)],
            refused: vec![Duration::from_millis(999), Duration::from_secs(3601)],
        },
        Case {
            field: Field::MinTtl,
            ok: vec![Duration::from_secs(60), Duration::from_secs(7 * 86_400)],
            refused: vec![Duration::from_secs(59), Duration::from_secs(7 * 86_400 + 1)],
        },
        Case {
            field: Field::MaxStale,
            ok: vec![Duration::ZERO, Duration::from_secs(7 * 86_400)],
            refused: vec![Duration::from_secs(7 * 86_400 + 1)],
        },
    ];
    for case in cases {
        for v in &case.ok {
            assert_eq!(case.field.check_duration(*v), Ok(*v), "{:?}", case.field);
        }
        for v in &case.refused {
            let message = case.field.check_duration(*v).unwrap_err();
            assert!(
                message.contains("outside the allowed range"),
                "{:?}: {message}",
                case.field
            );
        }
    }
    let message = Field::Timeout.check_duration(secs(600)).unwrap_err();
    assert_eq!(message, "10m is outside the allowed range 100ms to 2m");
}

#[test]
fn document_size_range_and_parsing() {
    assert_eq!(parse_bytes("262144"), Ok(262_144));
    assert_eq!(parse_bytes("256KiB"), Ok(262_144));
    assert_eq!(parse_bytes(" 1 MiB "), Ok(1_048_576));
    assert_eq!(parse_bytes("64kB"), Ok(64_000));
    for bad in ["", "lots", "12 parsecs", "-5", "1e9"] {
        assert!(parse_bytes(bad).is_err(), "{bad}");
    }
    let f = Field::MaxDocumentSize;
    assert_eq!(f.check_bytes(1024), Ok(1024));
    assert_eq!(f.check_bytes(4 * 1024 * 1024), Ok(4 * 1024 * 1024));
    assert_eq!(
        f.check_bytes(1023).unwrap_err(),
        "1023B is outside the allowed range 1KiB to 4MiB"
    );
    assert!(f.check_bytes(u64::MAX).is_err());
    assert_eq!(bytes(262_144), "256KiB");
    assert_eq!(bytes(3 * 1024 * 1024), "3MiB");
    assert_eq!(bytes(1500), "1500B");
}

#[test]
fn relations_name_both_settings() {
    let s = FetchSettings {
        connect_timeout: secs(10),
        timeout: secs(5),
        min_ttl: secs(7200),
        ..FetchSettings::default()
    };
    let problems = s.relation_problems(|f| f.setting().into());
    assert_eq!(
        problems,
        vec![
            "issuer-connect-timeout (10s) must not be longer than issuer-timeout (5s)".to_string(),
            "issuer-min-ttl (2h) must not be longer than issuer-default-ttl (1h)".to_string(),
        ]
    );
    let s = FetchSettings {
        default_ttl: secs(2 * 86_400),
        ..FetchSettings::default()
    };
    assert_eq!(s.relation_problems(|f| f.setting().into()).len(), 1);
}

#[test]
fn overrides_check_their_own_relations() {
    let o = FetchOverrides {
        min_ttl: Some(secs(600)),
        max_ttl: Some(secs(300)),
        ..FetchOverrides::default()
    };
    assert_eq!(
        o.relation_problems(),
        vec!["fetch.minTtl (10m) must not be longer than fetch.maxTtl (5m)".to_string()]
    );
    // Fields left unset are not compared here.
    let o = FetchOverrides {
        min_ttl: Some(secs(7200)),
        ..FetchOverrides::default()
    };
    assert!(o.relation_problems().is_empty());
    assert!(FetchOverrides::default().is_empty());
    assert!(!o.is_empty());
}

#[test]
fn merging_applies_overrides_and_names_who_broke_a_relation() {
    let global = FetchSettings::default();
    assert_eq!(
        global.merged(&FetchOverrides::default()),
        Ok(global.clone())
    );
    let o = FetchOverrides {
        timeout: Some(secs(2)),
        max_body_bytes: Some(4096),
        min_refresh_interval: Some(secs(5)),
        default_ttl: Some(secs(600)),
        min_ttl: Some(secs(120)),
        max_ttl: Some(secs(1200)),
        max_stale: Some(Duration::ZERO),
    };
    let merged = FetchSettings {
        connect_timeout: secs(1),
        ..global.clone()
    }
    .merged(&o)
    .expect("consistent");
    assert_eq!(merged.connect_timeout, secs(1));
    assert_eq!(merged.timeout, secs(2));
    assert_eq!(merged.max_body_bytes, 4096);
    assert_eq!(merged.min_refresh_interval, secs(5));
    assert_eq!(merged.default_ttl, secs(600));
    assert_eq!(merged.min_ttl, secs(120));
    assert_eq!(merged.max_ttl, secs(1200));
    assert_eq!(merged.max_stale, Duration::ZERO);

    // An issuer's minTtl above the global default TTL.
    let o = FetchOverrides {
        min_ttl: Some(secs(7200)),
        ..FetchOverrides::default()
    };
    assert_eq!(
        global.merged(&o),
        Err(vec![
            "fetch.minTtl (2h) must not be longer than the global issuer-default-ttl (1h)"
                .to_string()
        ])
    );
    // An issuer's timeout below the global connect timeout caps the connect timeout.
    let o = FetchOverrides {
        timeout: Some(secs(1)),
        ..FetchOverrides::default()
    };
    let merged = global.merged(&o).expect("consistent");
    assert_eq!((merged.connect_timeout, merged.timeout), (secs(1), secs(1)));
    // An issuer's maxTtl under the global default TTL.
    let o = FetchOverrides {
        max_ttl: Some(secs(1800)),
        ..FetchOverrides::default()
    };
    assert_eq!(
        global.merged(&o),
        Err(vec![
            "the global issuer-default-ttl (1h) must not be longer than fetch.maxTtl (30m)"
                .to_string()
        ])
    );
}
