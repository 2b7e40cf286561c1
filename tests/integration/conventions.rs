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
    for args in [&["--help"][..], &["--version"], &["policy", "check", "--help"]] {
        let out = run(dir.path(), args, &[]);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        assert!(!out.stdout.is_empty(), "{args:?}");
    }

    // The verdicts keep their codes: the bundled policies are clean.
    let clean = run(dir.path(), &["policy", "check", policies], &[]);
    assert_eq!(clean.status.code(), Some(0), "{clean:?}");
}
