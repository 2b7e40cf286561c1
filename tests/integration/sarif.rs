//! `policy check --format sarif` (issue #16): SARIF 2.1.0 that code-scanning tools accept,
//! validated against the OASIS schema vendored in tests/fixtures/sarif (see its README), with
//! every result at the `file:line:column` of the field it is about.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_trustbridge");

const WARNINGS: &str = "kind: Issuer
name: github
issuer: https://token.actions.githubusercontent.com
preset: github
---
kind: Tenant
name: t
---
kind: Application
name: bot
federatedCredentials:
  - name: main
    issuer: github
    audiences: [api://trustbridge]
    subjectPattern: repo:contoso/*:ref:refs/heads/main
---
kind: ServicePrincipal
application: bot
tenant: t
";

const ERRORS: &str = "kind: Tenant
name: ok
---
kind: Application
name: a
federatedCredentials:
  - name: c
    issuer: nope
    audiences: [x]
    subject: s
---
kind: Tenant
nme: typo
";

/// Runs `policy check --format sarif` on a directory holding `ci.yaml`; (exit code, log).
fn sarif(policy: &str, dir: &Path) -> (Option<i32>, Value) {
    std::fs::write(dir.join("ci.yaml"), policy).expect("write");
    let out = Command::new(BIN)
        .current_dir(dir)
        .args(["policy", "check", "--format", "sarif", "."])
        .env_remove("TRUSTBRIDGE_POLICIES")
        .env_remove("TRUSTBRIDGE_CONFIG")
        .output()
        .expect("run");
    let log = serde_json::from_slice(&out.stdout).expect("SARIF is JSON");
    (out.status.code(), log)
}

/// Validates `log` against the vendored SARIF 2.1.0 schema with Python's `jsonschema` (the
/// CI venv's when there is one).
fn assert_valid_sarif(log: &Value, dir: &Path) {
    let file = dir.join("out.sarif");
    std::fs::write(&file, log.to_string()).expect("write");
    let schema =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sarif/sarif-schema-2.1.0.json");
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/deploy-venv/bin/python3");
    let python = if venv.exists() {
        venv.into_os_string()
    } else {
        "python3".into()
    };
    let out = Command::new(python)
        .args([
            "-c",
            "import json, sys, jsonschema\n\
             schema = json.load(open(sys.argv[1]))\n\
             jsonschema.Draft7Validator.check_schema(schema)\n\
             errors = list(jsonschema.Draft7Validator(schema).iter_errors(json.load(open(sys.argv[2]))))\n\
             [print(e.json_path, e.message) for e in errors]\n\
             sys.exit(1 if errors else 0)",
        ])
        .arg(&schema)
        .arg(&file)
        .output()
        .expect("python3 with jsonschema (pip install jsonschema, or run .ci/run)");
    assert!(
        out.status.success(),
        "not valid SARIF 2.1.0:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (ruleId, level, uri, startLine, startColumn) of every result.
fn results(log: &Value) -> Vec<(String, String, String, u64, u64)> {
    log["runs"][0]["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            let at = &r["locations"][0]["physicalLocation"];
            (
                r["ruleId"].as_str().unwrap_or_default().to_string(),
                r["level"].as_str().unwrap_or_default().to_string(),
                at["artifactLocation"]["uri"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                at["region"]["startLine"].as_u64().unwrap_or_default(),
                at["region"]["startColumn"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn lint_warnings_are_sarif_warnings_at_their_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, log) = sarif(WARNINGS, dir.path());
    assert_eq!(code, Some(2), "warnings only");
    assert_valid_sarif(&log, dir.path());
    assert_eq!(log["version"], "2.1.0");
    assert_eq!(log["runs"][0]["tool"]["driver"]["name"], "trustbridge");
    let got = results(&log);
    let want = (
        "unpinned-owner".to_string(),
        "warning".to_string(),
        "ci.yaml".to_string(),
        15,
        5,
    );
    assert!(got.contains(&want), "{got:?}");
}

#[test]
fn load_errors_are_sarif_errors_at_their_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, log) = sarif(ERRORS, dir.path());
    assert_eq!(code, Some(1));
    assert_valid_sarif(&log, dir.path());
    let got = results(&log);
    let at = |line, column| {
        (
            "load-error".to_string(),
            "error".to_string(),
            "ci.yaml".to_string(),
            line,
            column,
        )
    };
    // federatedCredentials[0].issuer, then the misspelt `nme`.
    assert_eq!(got, [at(8, 5), at(13, 1)], "{log:#}");
}
