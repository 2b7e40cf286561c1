//! The CLI conventions platform teams expect (issue #16), run against the real binary: exit
//! codes that never confuse a usage error with a verdict, one settings path for every
//! subcommand, completions, man page and `--version`.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_trustbridge");

/// Runs the binary in `cwd` with no inherited `TRUSTBRIDGE_*` settings.
fn run(cwd: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(cwd).args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("TRUSTBRIDGE_") {
            cmd.env_remove(name);
        }
    }
    cmd.envs(vars.iter().copied());
    cmd.output().expect("run trustbridge")
}

fn bundled_policies() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

#[test]
fn a_usage_error_exits_64_never_a_verdict_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policies = bundled_policies();
    let policies = policies.to_str().expect("utf8 path");

    let typo = run(dir.path(), &["policy", "check", "--strcit", policies], &[]);
    assert_eq!(typo.status.code(), Some(64), "{typo:?}");
    let stderr = String::from_utf8_lossy(&typo.stderr);
    assert!(stderr.contains("--strcit"), "{stderr}");

    let unknown = run(dir.path(), &["polcy", "check"], &[]);
    assert_eq!(unknown.status.code(), Some(64), "{unknown:?}");

    // Help and version are not errors.
    for args in [
        &["--help"][..],
        &["--version"],
        &["policy", "check", "--help"],
    ] {
        let out = run(dir.path(), args, &[]);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        assert!(!out.stdout.is_empty(), "{args:?}");
    }

    // The verdicts keep their codes: the bundled policies are clean.
    let clean = run(dir.path(), &["policy", "check", policies], &[]);
    assert_eq!(clean.status.code(), Some(0), "{clean:?}");
}

/// Seconds since the epoch, for key files dated relative to the binary's own clock.
fn unix_now() -> u64 {
    trustbridge::clock::Clock::unix(&trustbridge::clock::SystemClock)
}

/// A key directory whose first key was superseded 2 h ago: a 1 h lifetime lets it go, a 4 h
/// one must keep it (a token it signed 2 h ago is still live).
fn key_retired_two_hours_ago(dir: &Path) {
    use trustbridge::jose::SigningAlgorithm;
    use trustbridge::tokens::{PrivateKey, store};
    let now = unix_now();
    let old = PrivateKey::generate(SigningAlgorithm::ES256).expect("key");
    store::write_key(dir, &old, now - 10 * 3600, now - 10 * 3600).expect("write");
    let new = PrivateKey::generate(SigningAlgorithm::ES256).expect("key");
    store::write_key(dir, &new, now - 3 * 3600, now - 2 * 3600).expect("write");
}

#[test]
fn keys_prune_reads_the_lifetime_serve_is_configured_with() {
    let root = tempfile::tempdir().expect("tempdir");
    let keys = root.path().join("keys");
    std::fs::create_dir(&keys).expect("mkdir");
    key_retired_two_hours_ago(&keys);
    let keys_text = keys.to_str().expect("utf8 path");

    // The server's config file: 4 h tokens, and the key directory (no --keys flag given).
    let config = root.path().join("trustbridge.yaml");
    std::fs::write(
        &config,
        format!("maxTokenLifetime: 4h\nkeys: {keys_text}\n"),
    )
    .expect("write");
    let config_text = config.to_str().expect("utf8 path");

    let with_config = run(
        root.path(),
        &["keys", "prune", "--dry-run", "--config", config_text],
        &[],
    );
    assert_eq!(with_config.status.code(), Some(0), "{with_config:?}");
    let stdout = String::from_utf8_lossy(&with_config.stdout);
    assert!(stdout.contains("nothing to prune"), "{stdout}");

    // The same through TRUSTBRIDGE_CONFIG.
    let with_env = run(
        root.path(),
        &["keys", "prune", "--dry-run"],
        &[("TRUSTBRIDGE_CONFIG", config_text)],
    );
    assert!(
        String::from_utf8_lossy(&with_env.stdout).contains("nothing to prune"),
        "{with_env:?}"
    );

    // The 1 h default would prune it; a flag beats the file, as for `serve`.
    let default = run(
        root.path(),
        &["keys", "prune", "--dry-run", "--keys", keys_text],
        &[],
    );
    assert!(
        String::from_utf8_lossy(&default.stdout).contains("would remove"),
        "{default:?}"
    );
    let flag_wins = run(
        root.path(),
        &[
            "keys",
            "prune",
            "--dry-run",
            "--config",
            config_text,
            "--max-token-lifetime",
            "1h",
        ],
        &[],
    );
    assert!(
        String::from_utf8_lossy(&flag_wins.stdout).contains("would remove"),
        "{flag_wins:?}"
    );

    // Invalid settings stop every subcommand the way they stop `serve`.
    let bad = run(
        root.path(),
        &["keys", "list"],
        &[("TRUSTBRIDGE_MAX_TOKEN_LIFETIME", "3d")],
    );
    assert_eq!(bad.status.code(), Some(64), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("max-token-lifetime"));
}

#[test]
fn policy_subcommands_read_the_policy_directory_from_the_settings() {
    let root = tempfile::tempdir().expect("tempdir");
    let broken = root.path().join("broken");
    std::fs::create_dir(&broken).expect("mkdir");
    std::fs::write(broken.join("x.yaml"), "kind: Tenant\nnme: typo\n").expect("write");
    let broken_text = broken.to_str().expect("utf8 path");
    let bundled = bundled_policies();
    let bundled_text = bundled.to_str().expect("utf8 path");

    // The working directory has no policies/: only the settings can point at them.
    for args in [&["policy", "check"][..], &["policy", "test"]] {
        let env = run(root.path(), args, &[("TRUSTBRIDGE_POLICIES", bundled_text)]);
        assert_eq!(env.status.code(), Some(0), "{args:?}: {env:?}");
        let broken_env = run(root.path(), args, &[("TRUSTBRIDGE_POLICIES", broken_text)]);
        assert_eq!(
            broken_env.status.code(),
            Some(1),
            "{args:?}: {broken_env:?}"
        );
    }

    let config = root.path().join("trustbridge.yaml");
    std::fs::write(&config, format!("policies: {broken_text}\n")).expect("write");
    let config_text = config.to_str().expect("utf8 path");
    let from_file = run(
        root.path(),
        &["policy", "check", "--config", config_text],
        &[],
    );
    assert_eq!(from_file.status.code(), Some(1), "{from_file:?}");
    assert!(String::from_utf8_lossy(&from_file.stdout).contains("x.yaml"));

    // An explicit DIR wins over every setting.
    let explicit = run(
        root.path(),
        &["policy", "check", "--config", config_text, bundled_text],
        &[],
    );
    assert_eq!(explicit.status.code(), Some(0), "{explicit:?}");
}

#[test]
fn the_committed_policy_schema_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(trustbridge::cli::schema::SCHEMA_PATH);
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == trustbridge::cli::schema::policy_schema(),
        "{} is stale: run `cargo run -- policy schema > {}`",
        path.display(),
        trustbridge::cli::schema::SCHEMA_PATH
    );

    // The binary prints the same, and it is a draft 2020-12 schema of every kind.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(dir.path(), &["policy", "schema"], &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), committed);
    let schema: serde_json::Value = serde_json::from_str(&committed).expect("json");
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let kinds: Vec<&str> = schema["oneOf"]
        .as_array()
        .expect("oneOf")
        .iter()
        .filter_map(|v| v["properties"]["kind"]["const"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "Issuer",
            "Tenant",
            "Application",
            "ServicePrincipal",
            "ManagedIdentity"
        ]
    );
}

#[test]
fn bundled_policies_name_the_schema_for_editors() {
    let dir = bundled_policies();
    for entry in std::fs::read_dir(&dir).expect("policies/") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.ends_with(".yaml") || name.ends_with(".test.yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schema/policy.schema.json\n"),
            "{name} lacks the modeline"
        );
    }
}

#[test]
fn completions_man_page_and_version_with_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (shell, marker) in [
        ("bash", "_trustbridge()"),
        ("zsh", "#compdef trustbridge"),
        ("fish", "complete -c trustbridge"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = run(dir.path(), &["completions", shell], &[]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {out:?}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        // Every subcommand is completed, including the new ones.
        assert!(
            script.contains("prune") && script.contains("schema"),
            "{shell}"
        );
    }
    assert_eq!(
        run(dir.path(), &["completions", "tcsh"], &[]).status.code(),
        Some(64)
    );

    let man = run(dir.path(), &["man"], &[]);
    assert_eq!(man.status.code(), Some(0));
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(page.contains(".TH trustbridge 1"), "{page}");
    assert!(
        page.contains(".SH SUBCOMMANDS") || page.contains("policy"),
        "{page}"
    );

    let version = run(dir.path(), &["--version"], &[]);
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    let commit = version
        .strip_prefix(concat!(
            "trustbridge ",
            env!("CARGO_PKG_VERSION"),
            " (commit "
        ))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("version without commit: {version}"));
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{version}"
    );
    // Built from a git checkout (as CI clones are): the commit is HEAD's.
    let head = Command::new("git")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["rev-parse", "--short", "HEAD"])
        .output();
    if let Some(head) = head.ok().filter(|h| h.status.success()) {
        let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
        assert!(
            head.starts_with(commit) || commit.starts_with(&head),
            "{version} vs {head}"
        );
    }
}
