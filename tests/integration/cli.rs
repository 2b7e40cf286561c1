//! The binary and its subcommands: policy check, demo token, and startup failures.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_trustbridge");

#[test]
fn policy_check_accepts_the_bundled_policies() {
    let mut out = Vec::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    assert_eq!(trustbridge::cli::policy_check(Some(dir), &mut out), 0);
    let text = String::from_utf8(out).expect("utf8");
    assert!(
        text.contains(": ok (1 issuers, 1 tenants, 2 applications"),
        "{text}"
    );
}

#[test]
fn policy_check_reports_every_problem_with_its_location() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("broken.yaml"),
        "kind: Tenant\nname: ok\n---\nkind: Application\nname: a\nfederatedCredentials:\n  - name: c\n    issuer: nope\n    audiences: [x]\n    subject: s\n---\nkind: Tenant\nnme: typo\n",
    )
    .expect("write");
    let mut out = Vec::new();
    assert_eq!(
        trustbridge::cli::policy_check(Some(dir.path().to_path_buf()), &mut out),
        1
    );
    let text = String::from_utf8(out).expect("utf8");
    // file:line:column of the field (issue #16), not the document number.
    assert!(
        text.contains("broken.yaml:8:5 federatedCredentials[0].issuer"),
        "{text}"
    );
    assert!(text.contains("broken.yaml:13:1 nme"), "{text}");
    assert!(text.contains("nme"), "{text}");
}

#[test]
fn serve_with_bad_configuration_exits_64_before_binding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "not-an-address",
            "--signing-algorithm",
            "HS256",
        ])
        .env("TRUSTBRIDGE_DATA_DIR", dir.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("listen") && stderr.contains("HS256"),
        "{stderr}"
    );

    let broken = dir.path().join("policies");
    std::fs::create_dir(&broken).expect("mkdir");
    std::fs::write(
        broken.join("x.yaml"),
        "kind: Issuer\nname: a\nissuer: http://insecure.example\n",
    )
    .expect("write");
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--policies"])
        .arg(&broken)
        .env("TRUSTBRIDGE_DATA_DIR", dir.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // file:line:column of the field (issue #16), not the document number.
    assert!(stderr.contains("x.yaml:3:1 issuer: "), "{stderr}");
    assert!(!stderr.contains("x.yaml#1"), "{stderr}");
}

/// A policy directory whose only problem is `issuer` on line 3 of `x.yaml`.
fn broken_policies(root: &std::path::Path) -> std::path::PathBuf {
    let broken = root.join("policies");
    std::fs::create_dir(&broken).expect("mkdir");
    std::fs::write(
        broken.join("x.yaml"),
        "# a comment first\nkind: Issuer\nname: a\nissuer: http://insecure.example\n",
    )
    .expect("write");
    broken
}

#[test]
fn policy_test_and_explain_place_load_errors_at_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = broken_policies(dir.path());
    let claims = dir.path().join("claims.json");
    std::fs::write(
        &claims,
        r#"{"iss":"http://insecure.example","sub":"s","aud":"x"}"#,
    )
    .expect("write");
    let runs = [
        vec!["policy".into(), "test".into(), broken.display().to_string()],
        vec![
            "policy".into(),
            "explain".into(),
            "--policies".into(),
            broken.display().to_string(),
            "--claims".into(),
            claims.display().to_string(),
            "--tenant".into(),
            "contoso".into(),
        ],
    ];
    for args in runs {
        let out = Command::new(BIN)
            .args(&args)
            .env("TRUSTBRIDGE_DATA_DIR", dir.path())
            .output()
            .expect("run");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_ne!(out.status.code(), Some(0), "{args:?}: {text}");
        assert!(text.contains("x.yaml:4:1 issuer: "), "{args:?}: {text}");
        assert!(!text.contains("x.yaml#1"), "{args:?}: {text}");
    }
}

#[test]
fn demo_token_mints_from_a_key_made_on_first_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = || {
        Command::new(BIN)
            .args([
                "demo",
                "token",
                "--subject",
                "repo:a/b:ref:refs/heads/main",
                "--claim",
                "n=5",
                "--claim",
                "s=text",
            ])
            .env("TRUSTBRIDGE_DATA_DIR", dir.path())
            .output()
            .expect("run")
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let token = String::from_utf8(first.stdout).expect("utf8");
    let (header, claims) = crate::support::decode_parts(token.trim());
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["iss"], trustbridge::demo::DEMO_ISSUER_URL);
    assert_eq!(claims["sub"], "repo:a/b:ref:refs/heads/main");
    assert_eq!(claims["aud"], "api://trustbridge");
    assert_eq!(claims["n"], 5);
    assert_eq!(claims["s"], "text");
    let second = run();
    let (header2, _) =
        crate::support::decode_parts(String::from_utf8(second.stdout).expect("utf8").trim());
    assert_eq!(header["kid"], header2["kid"], "the demo key is reused");
    assert!(trustbridge::demo::jwks_path(dir.path()).exists());
}
