#[test]
fn trusted_proxies_are_prefixes() {
    let s = super::Settings::resolve(super::Layer {
        trusted_proxies: Some("10.0.0.0/8, ::1".into()),
        ..super::Layer::default()
    })
    .unwrap();
    assert_eq!(s.trusted_proxies.len(), 2);
    let errs = super::Settings::resolve(super::Layer {
        trusted_proxies: Some("10.0.0.0/8,proxy.local".into()),
        ..super::Layer::default()
    })
    .unwrap_err();
    assert!(errs.to_string().contains("proxy.local"), "{errs}");
}

use super::*;

#[test]
fn defaults_serve_the_bundled_demo() {
    let s = Settings::resolve(Layer::default()).expect("defaults are valid");
    assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.public_url, "http://127.0.0.1:8080");
    assert_eq!(s.policies, PathBuf::from("policies"));
    assert_eq!(s.keys, PathBuf::from(".trustbridge/keys"));
    assert_eq!(s.signing_algorithm, SigningAlgorithm::ES256);
    assert_eq!(s.max_token_lifetime, Duration::from_secs(3600));
    assert_eq!(s.tenant_issuer("demo"), "http://127.0.0.1:8080/demo/v2.0");
}

#[test]
fn higher_layers_win() {
    let flags = Layer {
        listen: Some("127.0.0.1:9000".into()),
        ..Layer::default()
    };
    let file = Layer {
        listen: Some("127.0.0.1:7000".into()),
        public_url: Some("https://tb.example.com/".into()),
        ..Layer::default()
    };
    let s = Settings::resolve(flags.over(file)).expect("valid");
    assert_eq!(s.listen.port(), 9000);
    assert_eq!(s.public_url, "https://tb.example.com");
}

#[test]
fn every_problem_is_reported() {
    let bad = Layer {
        listen: Some("nowhere".into()),
        public_url: Some("ftp://x?y".into()),
        signing_algorithm: Some("HS256".into()),
        max_token_lifetime: Some("3d".into()),
        ..Layer::default()
    };
    let errs = Settings::resolve(bad).unwrap_err().0;
    assert_eq!(errs.len(), 4, "{errs:?}");
    assert!(errs[0].starts_with("listen"));
    assert!(errs[1].starts_with("public-url"));
    assert!(errs[2].contains("HS256"));
    assert!(errs[3].contains("max-token-lifetime"));
}

#[test]
fn audit_failure_and_verify_issued_default_to_the_safe_choices() {
    let s = Settings::resolve(Layer::default()).expect("valid");
    assert_eq!(s.audit_failure, AuditFailure::Deny);
    assert_eq!(s.verify_issued, VerifyIssued::Sample);
    let s = Settings::resolve(Layer {
        audit_failure: Some("continue".into()),
        verify_issued: Some("all".into()),
        ..Layer::default()
    })
    .expect("valid");
    assert_eq!(s.audit_failure, AuditFailure::Continue);
    assert_eq!(s.verify_issued, VerifyIssued::All);
    let errs = Settings::resolve(Layer {
        audit_failure: Some("ignore".into()),
        verify_issued: Some("never".into()),
        ..Layer::default()
    })
    .unwrap_err()
    .0;
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].starts_with("audit-failure"), "{errs:?}");
    assert!(errs[1].starts_with("verify-issued"), "{errs:?}");
}

#[test]
fn verbose_errors_are_off_by_default_and_refused_off_loopback() {
    assert!(
        !Settings::resolve(Layer::default())
            .expect("valid")
            .verbose_errors
    );
    for listen in ["127.0.0.1:8080", "[::1]:8080"] {
        let s = Settings::resolve(Layer {
            listen: Some(listen.into()),
            verbose_errors: Some(true),
            ..Layer::default()
        })
        .expect("loopback may be verbose");
        assert!(s.verbose_errors);
    }
    for listen in ["0.0.0.0:8080", "10.1.2.3:8080", "[::]:8080"] {
        let errs = Settings::resolve(Layer {
            listen: Some(listen.into()),
            verbose_errors: Some(true),
            ..Layer::default()
        })
        .unwrap_err()
        .0;
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("verbose-errors"), "{errs:?}");
        assert!(errs[0].contains("loopback"), "{errs:?}");
    }
    let s = Settings::resolve(Layer {
        listen: Some("0.0.0.0:8080".into()),
        verbose_errors: Some(false),
        ..Layer::default()
    })
    .expect("off is always fine");
    assert!(!s.verbose_errors);
}

#[test]
fn config_file_rejects_unknown_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tb.yaml");
    std::fs::write(&path, "listen: 127.0.0.1:1\nlistn: x\n").expect("write");
    let err = read_file(&path).unwrap_err();
    assert!(err.to_string().contains("listn"), "{err}");
    std::fs::write(&path, "listen: 127.0.0.1:1\npublicUrl: http://a\n").expect("write");
    let layer = read_file(&path).expect("valid");
    assert_eq!(layer.public_url.as_deref(), Some("http://a"));
}

#[test]
fn tls_defaults_the_public_url_to_https() {
    let s = Settings::resolve(Layer {
        listen: Some("127.0.0.1:8443".into()),
        tls_cert: Some("tls/cert.pem".into()),
        tls_key: Some("tls/key.pem".into()),
        ..Layer::default()
    })
    .expect("valid");
    assert_eq!(s.public_url, "https://127.0.0.1:8443");
    let tls = s.tls.expect("tls on");
    assert_eq!(tls.cert, PathBuf::from("tls/cert.pem"));
    assert_eq!(tls.key, PathBuf::from("tls/key.pem"));
    // An explicit public URL wins (TLS terminated here, advertised under a DNS name).
    let s = Settings::resolve(Layer {
        public_url: Some("https://tb.example.com".into()),
        tls_cert: Some("c".into()),
        tls_key: Some("k".into()),
        ..Layer::default()
    })
    .expect("valid");
    assert_eq!(s.public_url, "https://tb.example.com");
    assert!(
        Settings::resolve(Layer::default())
            .expect("valid")
            .tls
            .is_none()
    );
}

#[test]
fn tls_cert_and_key_come_together() {
    for layer in [
        Layer {
            tls_cert: Some("c".into()),
            ..Layer::default()
        },
        Layer {
            tls_key: Some("k".into()),
            ..Layer::default()
        },
    ] {
        let errs = Settings::resolve(layer).unwrap_err().0;
        assert_eq!(errs, vec!["tls-cert and tls-key must be given together"]);
    }
}

#[test]
fn config_file_holds_tls_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tb.yaml");
    std::fs::write(&path, "tlsCert: /etc/tb/tls.crt\ntlsKey: /etc/tb/tls.key\n").expect("write");
    let file = read_file(&path).expect("valid");
    let s = Settings::resolve(Layer::default().over(file)).expect("valid");
    assert_eq!(
        s.tls,
        Some(crate::tls::TlsFiles {
            cert: "/etc/tb/tls.crt".into(),
            key: "/etc/tb/tls.key".into(),
        })
    );
}

#[test]
fn admin_listener_defaults_to_loopback_and_needs_a_token_elsewhere() {
    let s = Settings::resolve(Layer::default()).expect("defaults");
    assert_eq!(
        s.admin_listen.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:9090")
    );
    let off = Settings::resolve(Layer {
        admin_listen: Some("off".into()),
        ..Layer::default()
    })
    .expect("valid");
    assert_eq!(off.admin_listen, None);
    let open = Layer {
        admin_listen: Some("0.0.0.0:9090".into()),
        ..Layer::default()
    };
    let errs = Settings::resolve(open.clone()).unwrap_err().0;
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("--admin-token-file"), "{errs:?}");
    let guarded = Layer {
        admin_token_file: Some("/run/secrets/admin-token".into()),
        ..open
    };
    let s = Settings::resolve(guarded).expect("valid with a token");
    assert_eq!(s.admin_listen.map(|a| a.port()), Some(9090));
    let errs = Settings::resolve(Layer {
        admin_listen: Some("nowhere".into()),
        ..Layer::default()
    })
    .unwrap_err()
    .0;
    assert!(errs[0].starts_with("admin-listen"), "{errs:?}");
}

#[test]
fn scale_out_settings_parse_and_never_echo_the_redis_url() {
    let s = Settings::resolve(Layer::default()).expect("defaults");
    assert_eq!(s.redis, None);
    assert_eq!(s.redis_key_prefix, "trustbridge:");
    assert_eq!(s.shutdown_grace, Duration::from_secs(10));
    assert_eq!(s.keys_reload_interval, Duration::from_secs(10));
    assert!(s.rate_limit_identity.is_none() && s.rate_limit_issuer.is_none());

    let good = Layer {
        redis_url: Some("redis://:pw@127.0.0.1:6379/0".into()),
        rate_limit_identity: Some("600/m".into()),
        rate_limit_issuer: Some("50/10s".into()),
        shutdown_grace: Some("30s".into()),
        keys_reload_interval: Some("100ms".into()),
        ..Layer::default()
    };
    let s = Settings::resolve(good).expect("valid");
    assert_eq!(s.rate_limit_identity.map(|r| r.limit), Some(600));
    assert_eq!(
        s.rate_limit_issuer.map(|r| r.window),
        Some(Duration::from_secs(10))
    );
    assert_eq!(s.shutdown_grace, Duration::from_secs(30));

    let bad = Layer {
        redis_url: Some("http://user:hunter2@host".into()),
        redis_key_prefix: Some("has space".into()),
        rate_limit_identity: Some("lots".into()),
        rate_limit_issuer: Some("0/m".into()),
        shutdown_grace: Some("1h".into()),
        keys_reload_interval: Some("0s".into()),
        ..Layer::default()
    };
    let errs = Settings::resolve(bad).unwrap_err().0;
    assert_eq!(errs.len(), 6, "{errs:?}");
    assert!(errs.iter().all(|e| !e.contains("hunter2")), "{errs:?}");
}

#[test]
fn issuer_fetch_settings_default_unchanged_and_parse() {
    use crate::fetch_settings::FetchSettings;
    let s = Settings::resolve(Layer::default()).expect("valid");
    assert_eq!(s.issuer_fetch, FetchSettings::default());
    let s = Settings::resolve(Layer {
        issuer_connect_timeout: Some("500ms".into()),
        issuer_timeout: Some("2s".into()),
        issuer_max_document_size: Some("64KiB".into()),
        issuer_refresh_cooldown: Some("10s".into()),
        issuer_default_ttl: Some("30m".into()),
        issuer_min_ttl: Some("2m".into()),
        issuer_max_ttl: Some("12h".into()),
        issuer_max_stale: Some("0s".into()),
        ..Layer::default()
    })
    .expect("valid");
    let f = &s.issuer_fetch;
    assert_eq!(f.connect_timeout, Duration::from_millis(500));
    assert_eq!(f.timeout, Duration::from_secs(2));
    assert_eq!(f.max_body_bytes, 64 * 1024);
    assert_eq!(f.min_refresh_interval, Duration::from_secs(10));
    assert_eq!(f.default_ttl, Duration::from_secs(1800));
    assert_eq!(f.min_ttl, Duration::from_secs(120));
    assert_eq!(f.max_ttl, Duration::from_secs(12 * 3600));
    assert_eq!(f.max_stale, Duration::ZERO);
    let s = Settings::resolve(Layer {
        issuer_max_document_size: Some("1048576".into()),
        ..Layer::default()
    })
    .expect("plain bytes");
    assert_eq!(s.issuer_fetch.max_body_bytes, 1024 * 1024);
    // Unset, the connect timeout follows a shorter total timeout down.
    let s = Settings::resolve(Layer {
        issuer_timeout: Some("1s".into()),
        ..Layer::default()
    })
    .expect("valid");
    assert_eq!(s.issuer_fetch.connect_timeout, Duration::from_secs(1));
}

#[test]
fn issuer_fetch_settings_out_of_range_name_the_setting_and_range() {
    struct Case {
        layer: Layer,
        want: &'static str,
    }
    let cases = [
        Case {
            layer: Layer {
                issuer_timeout: Some("10m".into()),
                ..Layer::default()
            },
            want: "issuer-timeout: 10m is outside the allowed range 100ms to 2m",
        },
        Case {
            layer: Layer {
                issuer_connect_timeout: Some("0s".into()),
                ..Layer::default()
            },
            want: "issuer-connect-timeout: 0s is outside the allowed range 100ms to 1m",
        },
        Case {
            layer: Layer {
                issuer_max_document_size: Some("1GiB".into()),
                ..Layer::default()
            },
            want: "issuer-max-document-size: 1GiB is outside the allowed range 1KiB to 4MiB",
        },
        Case {
            layer: Layer {
                issuer_max_document_size: Some("huge".into()),
                ..Layer::default()
            },
            want: "issuer-max-document-size: \"huge\" is not a size",
        },
        Case {
            layer: Layer {
                issuer_refresh_cooldown: Some("2h".into()),
                ..Layer::default()
            },
            want: "issuer-refresh-cooldown: 2h is outside the allowed range 1s to 1h",
        },
        Case {
            layer: Layer {
                issuer_min_ttl: Some("1s".into()),
                ..Layer::default()
            },
            want: "issuer-min-ttl: 1s is outside the allowed range 1m to 7days",
        },
        Case {
            layer: Layer {
                issuer_max_ttl: Some("30d".into()),
                ..Layer::default()
            },
            want: "issuer-max-ttl: 30days is outside the allowed range 1m to 7days",
        },
        Case {
            layer: Layer {
                issuer_default_ttl: Some("soon".into()),
                ..Layer::default()
            },
            want: "issuer-default-ttl: 'soon' is not a duration",
        },
        Case {
            layer: Layer {
                issuer_max_stale: Some("8d".into()),
                ..Layer::default()
            },
            want: "issuer-max-stale: 8days is outside the allowed range 0s to 7days",
        },
        // Relations.
        Case {
            layer: Layer {
                issuer_connect_timeout: Some("10s".into()),
                issuer_timeout: Some("5s".into()),
                ..Layer::default()
            },
            want: "issuer-connect-timeout (10s) must not be longer than issuer-timeout (5s)",
        },
        Case {
            layer: Layer {
                issuer_min_ttl: Some("2h".into()),
                ..Layer::default()
            },
            want: "issuer-min-ttl (2h) must not be longer than issuer-default-ttl (1h)",
        },
        Case {
            layer: Layer {
                issuer_default_ttl: Some("2d".into()),
                ..Layer::default()
            },
            want: "issuer-default-ttl (2days) must not be longer than issuer-max-ttl (1day)",
        },
    ];
    for case in cases {
        let errs = Settings::resolve(case.layer).unwrap_err().0;
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with(case.want),
            "{errs:?} does not start with {}",
            case.want
        );
    }
}

#[test]
fn issuer_fetch_settings_read_from_the_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tb.yaml");
    std::fs::write(
        &path,
        "issuerTimeout: 3s\nissuerMaxDocumentSize: 65536\nissuerMaxStale: 1h\n",
    )
    .expect("write");
    let file = super::read_file(&path).expect("readable");
    let s = Settings::resolve(
        Layer {
            issuer_timeout: Some("4s".into()),
            ..Layer::default()
        }
        .over(file),
    )
    .expect("valid");
    // The flag wins over the file; the file over the default.
    assert_eq!(s.issuer_fetch.timeout, Duration::from_secs(4));
    assert_eq!(s.issuer_fetch.max_body_bytes, 65_536);
    assert_eq!(s.issuer_fetch.max_stale, Duration::from_secs(3600));
}
