//! SDK compatibility suite: client libraries written by others, run unchanged against the real
//! gateway serving HTTPS with a certificate from a throwaway CA.
//!
//! - azure-identity: `ClientAssertionCredential` and `WorkloadIdentityCredential` get tokens
//!   (and msal's `ConfidentialClientApplication`, through the tenant discovery document); a
//!   denial surfaces as `ClientAuthenticationError` after exactly one request.
//! - google-auth: `external_account` / `identity_pool` credentials with a file-sourced subject
//!   token and `token_url` = the tenant token endpoint refresh to a valid token.
//! - PyJWT `PyJWKClient` and npm `jose` `createRemoteJWKSet` + `jwtVerify` validate issued
//!   tokens from the tenant discovery document alone, before and after a key rotation.
//!
//! The clients are Python and Node scripts in `tests/sdk/`. On first run the suite creates a
//! virtual environment with the exact versions of `tests/sdk/requirements.txt` and runs
//! `npm ci` on `tests/sdk/node/package-lock.json`, both under the target directory, and reuses
//! them while those files are unchanged. Without PyPI or the npm registry on that first run
//! the tests fail with a message saying so: they never pass silently.
//!
//! Each client process gets a scrubbed environment: PATH, a throwaway HOME, the test CA in
//! REQUESTS_CA_BUNDLE, SSL_CERT_FILE, CURL_CA_BUNDLE and NODE_EXTRA_CA_CERTS (the machine may
//! set the first three globally), no proxy variables, and only the variables the test names.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use trustbridge::clock::{Clock, ManualClock, SystemClock};
use trustbridge::jose::SigningAlgorithm;
use trustbridge::tokens::keys::PrivateKey;

use crate::support::gateway::{JWT_BEARER, JWT_TYPE, TOKEN_EXCHANGE};
use crate::support::tls::{TestCa, TlsGateway};
use crate::support::{TestIssuer, decode_parts};

/// `appId` of `deploy-bot` in the basic fixture.
const DEPLOY_BOT_APP_ID: &str = "6f2d3b1e-0c4a-4d8e-9b7a-1a2b3c4d5e6f";
/// Longest a single client process may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

// === preparing the client environments ===

/// The prepared client environments.
struct Sdk {
    /// The virtual environment's interpreter.
    python: PathBuf,
    /// Directory with `node_modules/jose` and the Node scripts.
    node_dir: PathBuf,
}

static SDK: OnceLock<Result<Sdk, String>> = OnceLock::new();

/// The client environments, prepared once per test process; panics with the reason when they
/// cannot be (registries unreachable on first run, no python3 or node).
fn sdk() -> &'static Sdk {
    match SDK.get_or_init(prepare) {
        Ok(sdk) => sdk,
        Err(e) => panic!("SDK compatibility suite cannot run: {e}"),
    }
}

fn sdk_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk")
}

fn prepare() -> Result<Sdk, String> {
    let work = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
    let started = Instant::now();
    let python = prepare_python(work)?;
    let python_secs = started.elapsed().as_secs_f64();
    let node_dir = prepare_node(work)?;
    eprintln!(
        "SDK suite: Python environment ready in {python_secs:.1}s, Node in {:.1}s",
        started.elapsed().as_secs_f64() - python_secs
    );
    Ok(Sdk { python, node_dir })
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs a setup command to completion, turning failure into a message with its output's tail.
fn run_setup(cmd: &mut std::process::Command, what: &str) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let tail: Vec<&str> = text.lines().rev().take(15).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(format!(
        "{what} failed ({}):\n{}",
        out.status,
        tail.join("\n")
    ))
}

/// Builds `dir` afresh in a sibling directory and renames it into place, so an interrupted
/// setup never leaves a half-built environment that looks ready.
fn build_then_swap(
    dir: &Path,
    build: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<(), String> {
    let tmp = dir.with_extension(format!("building-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = build(&tmp);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&tmp, dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// A virtual environment under the target directory holding `tests/sdk/requirements.txt`,
/// rebuilt whenever that file's hash changes.
fn prepare_python(work: &Path) -> Result<PathBuf, String> {
    let requirements = sdk_src().join("requirements.txt");
    let wanted = sha256_hex(
        &std::fs::read(&requirements).map_err(|e| format!("{}: {e}", requirements.display()))?,
    );
    let venv = work.join("sdk-venv");
    let marker = venv.join(".requirements.sha256");
    let python = venv.join("bin/python");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) && python.exists()
    {
        return Ok(python);
    }
    let interpreter =
        std::env::var_os("TRUSTBRIDGE_SDK_PYTHON").unwrap_or_else(|| OsString::from("python3"));
    build_then_swap(&venv, |tmp| {
        run_setup(
            std::process::Command::new(&interpreter)
                .args(["-m", "venv"])
                .arg(tmp),
            "creating the Python virtual environment (python3 -m venv; Python 3.11 expected)",
        )?;
        run_setup(
            std::process::Command::new(tmp.join("bin/python"))
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    "--retries",
                    "2",
                    "-r",
                ])
                .arg(&requirements),
            "installing the pinned SDKs of tests/sdk/requirements.txt with pip (the suite \
             needs PyPI reachable on its first run)",
        )?;
        std::fs::write(tmp.join(".requirements.sha256"), &wanted)
            .map_err(|e| format!("venv marker: {e}"))
    })?;
    Ok(python)
}

/// `npm ci` of `tests/sdk/node/package-lock.json` under the target directory, redone whenever
/// the lock file's hash changes; the Node scripts are copied beside `node_modules` every run
/// (Node resolves `import 'jose'` from the importing file's directory).
fn prepare_node(work: &Path) -> Result<PathBuf, String> {
    let src = sdk_src().join("node");
    let lock = std::fs::read(src.join("package-lock.json"))
        .map_err(|e| format!("tests/sdk/node/package-lock.json: {e}"))?;
    let package =
        std::fs::read(src.join("package.json")).map_err(|e| format!("package.json: {e}"))?;
    let wanted = sha256_hex(&[lock.as_slice(), package.as_slice()].concat());
    let dir = work.join("sdk-node");
    let marker = dir.join(".lock.sha256");
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(wanted.as_str()) {
        build_then_swap(&dir, |tmp| {
            std::fs::create_dir_all(tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
            std::fs::write(tmp.join("package.json"), &package).map_err(|e| e.to_string())?;
            std::fs::write(tmp.join("package-lock.json"), &lock).map_err(|e| e.to_string())?;
            run_setup(
                std::process::Command::new("npm")
                    .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
                    .current_dir(tmp),
                "installing tests/sdk/node/package-lock.json with `npm ci` (the suite needs \
                 the npm registry reachable on its first run, and node/npm on PATH)",
            )?;
            std::fs::write(tmp.join(".lock.sha256"), &wanted).map_err(|e| e.to_string())
        })?;
    }
    for entry in std::fs::read_dir(&src).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|e| e == "mjs") {
            std::fs::copy(&path, dir.join(path.file_name().expect("name")))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(dir)
}

// === running clients ===

/// What a client script printed: its exit status and the JSON object on its last line.
#[derive(Debug)]
struct Run {
    success: bool,
    json: Value,
    stderr: String,
}

/// Runs `program args` with a scrubbed environment trusting only `ca`, plus `env`.
async fn run_client(
    program: &Path,
    args: &[&str],
    ca: &TestCa,
    env: &[(&str, &str)],
    cwd: &Path,
) -> Run {
    let home = tempfile::tempdir().expect("home");
    let ca_file = ca.ca_file();
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("LANG", "C.UTF-8")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("REQUESTS_CA_BUNDLE", &ca_file)
        .env("SSL_CERT_FILE", &ca_file)
        .env("CURL_CA_BUNDLE", &ca_file)
        .env("NODE_EXTRA_CA_CERTS", &ca_file)
        .env("NO_PROXY", "*")
        .env("no_proxy", "*")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(CLIENT_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{} {args:?} did not finish in time", program.display()))
        .expect("client runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "{} {args:?} printed no JSON result\nstdout: {stdout}\nstderr: {stderr}",
                program.display()
            )
        });
    Run {
        success: out.status.success(),
        json,
        stderr,
    }
}

/// Runs a Python script of `tests/sdk/` in the suite's virtual environment.
async fn python(script: &str, args: &[&str], ca: &TestCa, env: &[(&str, &str)]) -> Run {
    let sdk = sdk();
    let path = sdk_src().join(script);
    let mut all = vec![path.to_str().expect("utf8 path")];
    all.extend_from_slice(args);
    run_client(&sdk.python, &all, ca, env, &sdk_src()).await
}

/// Runs a Python script of `tests/sdk/` that talks to no server (it only builds or checks
/// tokens, e.g. `dpop_proof.py`) and returns the JSON object it printed; panics if it fails.
pub(crate) async fn python_offline(script: &str, args: &[&str]) -> Value {
    let ca = TestCa::new();
    let run = python(script, args, &ca, &[]).await;
    assert!(run.success, "{script} failed: {}", run.stderr);
    run.json
}

/// Runs a Node script of `tests/sdk/node/` next to its `node_modules`.
async fn node(script: &str, args: &[&str], ca: &TestCa) -> Run {
    let sdk = sdk();
    let mut all = vec![script];
    all.extend_from_slice(args);
    run_client(Path::new("node"), &all, ca, &[], &sdk.node_dir).await
}

// === fixtures ===

/// A clock at real time (less two minutes, so nothing the gateway issues lies in the future
/// for the clients, which read the real clock), shared by the test issuer and the gateway.
fn real_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        SystemClock.now() - Duration::from_secs(120),
    ))
}

async fn setup() -> (TestCa, TestIssuer, TlsGateway) {
    // Prepare the client environments before any server runs on this test's runtime.
    sdk();
    let clock = real_clock();
    let ca = TestCa::new();
    let issuer = TestIssuer::start(clock.clone()).await;
    let gw = TlsGateway::start("basic", &[("ISSUER", &issuer.url)], clock, ca.issue_files()).await;
    (ca, issuer, gw)
}

/// A subject token deploy-bot's `infra-main` credential accepts (or, with another subject,
/// refuses with 700213).
fn infra_token(issuer: &TestIssuer, subject: &str) -> String {
    let mut claims = issuer.claims(subject, "api://trustbridge");
    claims["repository"] = json!("contoso/infra");
    issuer.mint(&claims)
}

/// A subject token only the `nightly-job` managed identity trusts (resource api://ledger).
fn nightly_token(issuer: &TestIssuer) -> String {
    issuer.mint(&issuer.claims("repo:contoso/nightly:ref:refs/heads/main", "api://nightly"))
}

async fn exchanges(gw: &TlsGateway, ca: &TestCa, label: &str) -> f64 {
    gw.metric_sum(&ca.client(), "trustbridge_exchanges_total", label)
        .await
}

// === azure-identity ===

#[actix_web::test]
async fn azure_identity_client_assertion_and_workload_identity_get_tokens() {
    let (ca, issuer, gw) = setup().await;
    let files = tempfile::tempdir().expect("tempdir");
    let token_file = files.path().join("azure-identity-token");
    // A trailing newline, as `echo $TOKEN > file` leaves; azure-identity sends it as is.
    std::fs::write(
        &token_file,
        format!(
            "{}\n",
            infra_token(&issuer, "repo:contoso/infra:ref:refs/heads/main")
        ),
    )
    .expect("write token file");
    let token_file = token_file.to_str().expect("utf8");

    let run = python(
        "azure_identity_client.py",
        &["assertion", "api://payments/.default"],
        &ca,
        &[
            ("TENANT", "contoso"),
            ("CLIENT_ID", "deploy-bot"),
            ("AUTHORITY", &gw.url),
            ("SUBJECT_TOKEN_FILE", token_file),
        ],
    )
    .await;
    assert!(run.success, "{run:?}");
    let (header, claims) = decode_parts(run.json["access_token"].as_str().expect("token"));
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(claims["iss"], json!(gw.issuer("contoso")));
    assert_eq!(claims["aud"], "api://payments");
    assert_eq!(claims["azp"], DEPLOY_BOT_APP_ID);
    assert_eq!(claims["roles"], json!(["Payments.Read", "Payments.Write"]));
    // infra-main caps lifetimes at 15 minutes; the SDK counts from its own clock.
    let expires_in = run.json["expires_in"].as_i64().expect("expires_in");
    assert!((840..=900).contains(&expires_in), "{expires_in}");
    assert_eq!(
        claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"),
        900
    );

    // WorkloadIdentityCredential configured only by the variables AKS injects, asking for
    // one role (down-scoping through an unmodified SDK).
    let run = python(
        "azure_identity_client.py",
        &["workload", "api://payments/Payments.Read"],
        &ca,
        &[
            ("AZURE_FEDERATED_TOKEN_FILE", token_file),
            ("AZURE_AUTHORITY_HOST", &gw.url),
            ("AZURE_TENANT_ID", "contoso"),
            ("AZURE_CLIENT_ID", DEPLOY_BOT_APP_ID),
        ],
    )
    .await;
    assert!(run.success, "{run:?}");
    let (_, claims) = decode_parts(run.json["access_token"].as_str().expect("token"));
    assert_eq!(claims["aud"], "api://payments");
    assert_eq!(claims["roles"], json!(["Payments.Read"]));

    // msal itself (what azure-identity's secret and certificate credentials use) reads the
    // tenant discovery document, validates it, and posts to its token_endpoint.
    let run = python(
        "azure_identity_client.py",
        &["msal", "api://payments/.default"],
        &ca,
        &[
            ("TENANT", "contoso"),
            ("CLIENT_ID", DEPLOY_BOT_APP_ID),
            ("AUTHORITY", &gw.url),
            ("SUBJECT_TOKEN_FILE", token_file),
        ],
    )
    .await;
    assert!(run.success, "{run:?}");
    assert_eq!(run.json["expires_in"], 900);
    let (_, claims) = decode_parts(run.json["access_token"].as_str().expect("token"));
    assert_eq!(claims["aud"], "api://payments");

    assert_eq!(exchanges(&gw, &ca, "outcome=\"granted\"").await, 3.0);
}

#[actix_web::test]
async fn azure_identity_surfaces_denials_without_retrying() {
    let (ca, issuer, gw) = setup().await;
    let files = tempfile::tempdir().expect("tempdir");
    let token_file = files.path().join("token");
    std::fs::write(
        &token_file,
        infra_token(&issuer, "repo:contoso/infra:ref:refs/heads/feature"),
    )
    .expect("write token file");
    let env = [
        ("TENANT", "contoso"),
        ("CLIENT_ID", "deploy-bot"),
        ("AUTHORITY", gw.url.as_str()),
        ("SUBJECT_TOKEN_FILE", token_file.to_str().expect("utf8")),
    ];

    // 401 invalid_client: no federated credential matches the subject.
    let run = python(
        "azure_identity_client.py",
        &["denied", "api://payments/.default"],
        &ca,
        &env,
    )
    .await;
    assert!(run.success, "{run:?}");
    assert_eq!(run.json["outcome"], "ClientAuthenticationError");
    let message = run.json["message"].as_str().expect("message");
    assert!(message.contains("invalid_client"), "{message}");
    assert!(message.contains("TB700213"), "{message}");
    assert_eq!(
        exchanges(&gw, &ca, "").await,
        1.0,
        "exactly one request reached the gateway: no retries"
    );

    // 400 invalid_scope: a role the identity does not hold.
    std::fs::write(
        &token_file,
        infra_token(&issuer, "repo:contoso/infra:ref:refs/heads/main"),
    )
    .expect("write token file");
    let run = python(
        "azure_identity_client.py",
        &["denied", "api://payments/Payments.Delete"],
        &ca,
        &env,
    )
    .await;
    assert!(run.success, "{run:?}");
    assert_eq!(run.json["outcome"], "ClientAuthenticationError");
    let message = run.json["message"].as_str().expect("message");
    assert!(message.contains("invalid_scope"), "{message}");
    assert_eq!(exchanges(&gw, &ca, "").await, 2.0, "no retries");
    assert_eq!(exchanges(&gw, &ca, "outcome=\"granted\"").await, 0.0);
}

// === google-auth ===

#[actix_web::test]
async fn google_auth_identity_pool_credentials_refresh_at_the_token_endpoint() {
    let (ca, issuer, gw) = setup().await;
    let files = tempfile::tempdir().expect("tempdir");
    let token_file = files.path().join("subject-token");
    std::fs::write(&token_file, nightly_token(&issuer)).expect("write token file");
    // What `gcloud iam workload-identity-pools create-cred-config` writes, with trustbridge's
    // token endpoint as token_url and the trustbridge resource as audience.
    let config = json!({
        "universe_domain": "googleapis.com",
        "type": "external_account",
        "audience": "api://ledger",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": gw.token_endpoint("contoso"),
        "credential_source": {
            "file": token_file,
            "format": {"type": "text"}
        }
    });
    let config_file = files.path().join("credentials.json");
    std::fs::write(&config_file, config.to_string()).expect("write config");
    let config_file = config_file.to_str().expect("utf8");

    // Without scopes, and with the scope Google client libraries add by default.
    for scopes in [None, Some("https://www.googleapis.com/auth/cloud-platform")] {
        let mut args = vec![config_file];
        args.extend(scopes);
        let run = python("google_auth_client.py", &args, &ca, &[]).await;
        assert!(run.success, "{scopes:?}: {run:?}");
        assert_eq!(run.json["type"], "google.auth.identity_pool.Credentials");
        assert_eq!(run.json["valid"], true, "{run:?}");
        // The default lifetime, one hour, counted by google-auth from its own clock.
        let expires_in = run.json["expires_in"].as_i64().expect("expires_in");
        assert!((3540..=3600).contains(&expires_in), "{expires_in}");
        let (_, claims) = decode_parts(run.json["access_token"].as_str().expect("token"));
        assert_eq!(claims["iss"], json!(gw.issuer("contoso")));
        assert_eq!(claims["aud"], "api://ledger");
        assert_eq!(claims["roles"], json!(["Ledger.Read"]));
        assert_eq!(
            claims["src_sub"],
            "repo:contoso/nightly:ref:refs/heads/main"
        );
    }
    assert_eq!(exchanges(&gw, &ca, "grant=\"token_exchange\"").await, 2.0);
    assert_eq!(exchanges(&gw, &ca, "outcome=\"granted\"").await, 2.0);
}

// === JWT validators ===

/// Issues a deploy-bot token for api://payments over HTTPS.
async fn payments_token(gw: &TlsGateway, ca: &TestCa, issuer: &TestIssuer) -> String {
    let (status, body) = gw
        .post_token(
            &ca.client(),
            "contoso",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "deploy-bot"),
                ("client_assertion_type", JWT_BEARER),
                (
                    "client_assertion",
                    &infra_token(issuer, "repo:contoso/infra:ref:refs/heads/main"),
                ),
                ("scope", "api://payments/.default"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().expect("token").to_string()
}

/// Runs both validators on `tokens` expecting `audience`.
async fn validate(gw: &TlsGateway, ca: &TestCa, audience: &str, tokens: &[&str]) -> [Run; 2] {
    let issuer = gw.issuer("contoso");
    let mut args = vec![issuer.as_str(), audience];
    args.extend_from_slice(tokens);
    let pyjwt = python("pyjwt_verify.py", &args, ca, &[]).await;
    let jose = node("jose_verify.mjs", &args, ca).await;
    [pyjwt, jose]
}

#[actix_web::test]
async fn jwt_validators_trust_issued_tokens_from_discovery_across_a_key_rotation() {
    let (ca, issuer, gw) = setup().await;
    let before = payments_token(&gw, &ca, &issuer).await;
    let (header_before, _) = decode_parts(&before);

    for run in validate(&gw, &ca, "api://payments", &[&before]).await {
        assert!(run.success, "{run:?}");
        let claims = &run.json["claims"][0];
        assert_eq!(claims["iss"], json!(gw.issuer("contoso")));
        assert_eq!(claims["aud"], "api://payments");
        assert_eq!(claims["azp"], DEPLOY_BOT_APP_ID);
    }

    // The validators really validate: a token for another audience, and a tampered one.
    let (status, body) = gw
        .post_token(
            &ca.client(),
            "contoso",
            &[
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", &nightly_token(&issuer)),
                ("subject_token_type", JWT_TYPE),
                ("resource", "api://ledger"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let ledger = body["access_token"].as_str().expect("token").to_string();
    let [pyjwt, jose] = validate(&gw, &ca, "api://payments", &[&ledger]).await;
    assert!(!pyjwt.success, "{pyjwt:?}");
    assert!(
        pyjwt.json["error"]
            .as_str()
            .is_some_and(|e| e.contains("InvalidAudienceError")),
        "{pyjwt:?}"
    );
    assert!(!jose.success, "{jose:?}");
    assert!(
        jose.json["error"]
            .as_str()
            .is_some_and(|e| e.contains("ERR_JWT_CLAIM_VALIDATION_FAILED")),
        "{jose:?}"
    );
    let mut tampered = before.clone();
    let payload_end = tampered.rfind('.').expect("signature");
    tampered.replace_range(payload_end - 2..payload_end, "AA");
    for run in validate(&gw, &ca, "api://payments", &[&tampered]).await {
        assert!(!run.success, "tampered token refused: {run:?}");
    }

    // Rotation: a new key joins the directory (activating now), the gateway restarts on the
    // same address. The new key signs; the old one stays published for the tokens it signed.
    gw.clock.advance(Duration::from_secs(10));
    let now = gw.clock.unix();
    let key = PrivateKey::generate(SigningAlgorithm::ES256).expect("key");
    trustbridge::tokens::store::write_key(&gw.keys_dir(), &key, now, now).expect("write key");
    let gw = gw.restart().await;
    let jwks: Value = ca
        .client()
        .get(format!("{}/contoso/discovery/v2.0/keys", gw.url))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks json");
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2, "new and previous key published: {jwks}");
    for k in keys {
        assert_eq!(
            (&k["alg"], &k["use"]),
            (&json!("ES256"), &json!("sig")),
            "{k}"
        );
        assert!(k["kid"].is_string() && k.get("key_ops").is_none(), "{k}");
    }
    let after = payments_token(&gw, &ca, &issuer).await;
    let (header_after, _) = decode_parts(&after);
    assert_eq!(header_after["kid"], json!(key.kid()));
    assert_ne!(header_after["kid"], header_before["kid"]);

    let [pyjwt, jose] = validate(&gw, &ca, "api://payments", &[&before, &after]).await;
    for run in [&pyjwt, &jose] {
        assert!(run.success, "{run:?}");
        let claims = run.json["claims"].as_array().expect("claims");
        assert_eq!(claims.len(), 2, "{run:?}");
        assert_eq!(claims[1]["iss"], json!(gw.issuer("contoso")));
    }
    assert_eq!(jose.json["claims"][0]["_kid"], header_before["kid"]);
    assert_eq!(jose.json["claims"][1]["_kid"], header_after["kid"]);
    assert!(jose.stderr.is_empty(), "{}", jose.stderr);
}
