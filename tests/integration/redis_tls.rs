//! Redis over TLS with authentication (issue #17): private `redis-server` processes speaking
//! TLS only, with a throwaway CA, mutual TLS and ACL users. Two replicas share one-time use
//! and rate limits over TLS; a wrong CA and a wrong password stop `trustbridge serve` before
//! it binds (exit 64) with a message that names the problem and never the password; the
//! connection comes back after the TLS Redis restarts.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use trustbridge::clock::ManualClock;
use trustbridge::config::Layer;

use crate::support::redis::PrivateRedis;
use crate::support::tls::TestCa;
use crate::support::{TestGateway, TestIssuer, clock, logs};

const BIN: &str = env!("CARGO_BIN_EXE_trustbridge");
const ONCE: &str = "repo:contoso/infra:ref:refs/tags/v1";
const MAIN: &str = "repo:contoso/infra:ref:refs/heads/main";
const SCOPE: &str = "api://payments/.default";

/// A fresh password, recorded so the log scan proves it never leaks.
fn password() -> String {
    let pw = format!("pw-{}", uuid::Uuid::new_v4().simple());
    logs::password(&pw);
    pw
}

fn prefix() -> String {
    format!("tbtest:{}:", uuid::Uuid::new_v4().simple())
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

/// Settings for `redis` over mutual TLS as ACL user `tb` with the password in a file.
fn over_tls(
    redis: &PrivateRedis,
    password_file: &Path,
    prefix: &str,
) -> impl Fn(&mut Layer) + use<> {
    let tls = redis.tls.as_ref().expect("tls redis");
    let (url, ca, cert, key) = (
        redis.url_for("tb"),
        tls.ca.ca_file(),
        tls.client_cert.clone(),
        tls.client_key.clone(),
    );
    let (password_file, prefix) = (password_file.to_path_buf(), prefix.to_owned());
    move |l: &mut Layer| {
        l.redis_url = Some(url.clone());
        l.redis_ca_file = Some(ca.clone());
        l.redis_cert = Some(cert.clone());
        l.redis_key = Some(key.clone());
        l.redis_password_file = Some(password_file.clone());
        l.redis_key_prefix = Some(prefix.clone());
    }
}

/// Server arguments: ACL user `tb` with `password`, and the password-less default user off.
fn acl_user(password: &str) -> Vec<String> {
    let pass = format!(">{password}");
    [
        "--user", "tb", "on", &pass, "~*", "&*", "+@all", "--user", "default", "off",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

async fn exchange(gw: &TestGateway, issuer: &TestIssuer, sub: &str) -> (u16, serde_json::Value) {
    let token = issuer.mint(&issuer.claims(sub, "api://trustbridge"));
    gw.client_credentials("deploy-bot", &token, SCOPE).await
}

#[actix_web::test]
async fn two_replicas_share_one_time_use_and_rate_limits_over_mutual_tls() {
    let pw = password();
    let redis = PrivateRedis::start_tls(true, &strs(&acl_user(&pw)));
    let secrets = tempfile::tempdir().expect("tempdir");
    let pw_file = write(secrets.path(), "redis-password", &format!("{pw}\n"));
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    let tweak = over_tls(&redis, &pw_file, &prefix());
    let vars = [("ISSUER", issuer.url.as_str())];
    let a = TestGateway::start_tweaked("scale", &vars, clock.clone(), |l| {
        tweak(l);
        l.rate_limit_identity = Some("3/m".into());
    })
    .await;
    let b = TestGateway::start_tweaked("scale", &vars, clock.clone(), |l| {
        tweak(l);
        l.rate_limit_identity = Some("3/m".into());
    })
    .await;
    trustbridge::app::preflight(a.gateway.settings())
        .await
        .expect("the start-up probe passes over mutual TLS with the ACL user");

    let once = issuer.mint(&issuer.claims(ONCE, "api://trustbridge"));
    let (status, body) = a.client_credentials("deploy-bot", &once, SCOPE).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = b.client_credentials("deploy-bot", &once, SCOPE).await;
    assert_eq!(status, 401, "replayed on the other replica: {body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or("")
            .contains("already exchanged"),
        "{body}"
    );

    // 3/m per identity, counted across both replicas (the one-time exchange counted too).
    clock.advance(Duration::from_secs(60));
    let mut statuses = Vec::new();
    for gw in [&a, &b, &a, &b] {
        statuses.push(exchange(gw, &issuer, MAIN).await.0);
    }
    assert_eq!(statuses, vec![200, 200, 200, 429]);
}

/// Runs `trustbridge serve` on `redis_flags` and returns (exit code, stderr).
fn serve_with(redis_flags: &[&str]) -> (Option<i32>, String) {
    let root = tempfile::tempdir().expect("tempdir");
    crate::support::tls::copy_fixture(
        "scale",
        &[("ISSUER", "http://127.0.0.1:9")],
        &root.path().join("policies"),
    );
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .arg("--policies")
        .arg(root.path().join("policies"))
        .arg("--data-dir")
        .arg(root.path().join("data"))
        .args(redis_flags)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run trustbridge");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            logs::child_output(&out.stdout, &out.stderr);
            panic!(
                "trustbridge serve did not exit on a bad Redis configuration: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    logs::child_output(&out.stdout, &out.stderr);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("trustbridge serving"),
        "bound before refusing: {stderr}"
    );
    (out.status.code(), stderr)
}

#[test]
fn a_wrong_ca_stops_serve_before_binding_with_a_clear_message() {
    let redis = PrivateRedis::start_tls(false, &[]);
    let other = TestCa::new();
    let url = redis.url();
    let ca = other.ca_file().display().to_string();
    let (code, stderr) = serve_with(&["--redis-url", &url, "--redis-ca-file", &ca]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("redis-url"), "{stderr}");
    assert!(stderr.contains("TLS handshake failed"), "{stderr}");
    assert!(
        stderr.contains("redis-ca-file"),
        "names what to check: {stderr}"
    );

    // The right CA starts it (stopped once it answers; here: no exit 64 within the probe).
    let right = redis
        .tls
        .as_ref()
        .expect("tls")
        .ca
        .ca_file()
        .display()
        .to_string();
    let data = tempfile::tempdir().expect("tempdir");
    let log = data.path().join("stderr.log");
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--policies", "policies"])
        .args(["--redis-url", &url, "--redis-ca-file", &right])
        .arg("--data-dir")
        .arg(data.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("run trustbridge");
    // Logs go to stderr: wait for the line that follows binding.
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("trustbridge serving") || Instant::now() > deadline {
            break text;
        }
        if child.try_wait().expect("wait").is_some() {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    logs::child_output(b"", text.as_bytes());
    assert!(
        text.contains("trustbridge serving"),
        "did not start: {text}"
    );
    assert!(text.contains("redis reachable"), "{text}");
}

#[test]
fn a_wrong_password_stops_serve_without_echoing_it() {
    let right = password();
    let wrong = password();
    // Plain redis:// with an ACL user: authentication is not only for TLS.
    let redis = PrivateRedis::start_with(&strs(&acl_user(&right)));
    let secrets = tempfile::tempdir().expect("tempdir");
    let wrong_file = write(secrets.path(), "wrong", &wrong);
    let url = redis.url_for("tb");
    let file = wrong_file.display().to_string();
    let (code, stderr) = serve_with(&["--redis-url", &url, "--redis-password-file", &file]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("authentication failed"), "{stderr}");
    assert!(stderr.contains("redis-password-file"), "{stderr}");
    assert!(
        !stderr.contains(&wrong) && !stderr.contains(&right),
        "{stderr}"
    );

    // In the URL instead of a file: the same refusal, and the URL is not echoed either.
    let in_url = url.replacen("tb@", &format!("tb:{wrong}@"), 1);
    let (code, stderr) = serve_with(&["--redis-url", &in_url]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(!stderr.contains(&wrong), "{stderr}");

    // A missing password file is named, before anything connects.
    let (code, stderr) = serve_with(&[
        "--redis-url",
        &url,
        "--redis-password-file",
        "/nonexistent/redis-password",
    ]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("redis-password-file"), "{stderr}");
}

#[actix_web::test]
async fn the_right_password_from_a_file_works_over_plain_redis() {
    let pw = password();
    let redis = PrivateRedis::start_with(&strs(&acl_user(&pw)));
    let secrets = tempfile::tempdir().expect("tempdir");
    let pw_file = write(secrets.path(), "pw", &pw);
    let clock: Arc<ManualClock> = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    let (url, prefix) = (redis.url_for("tb"), prefix());
    let gw = TestGateway::start_tweaked("scale", &[("ISSUER", &issuer.url)], clock, |l| {
        l.redis_url = Some(url.clone());
        l.redis_password_file = Some(pw_file.clone());
        l.redis_key_prefix = Some(prefix.clone());
    })
    .await;
    trustbridge::app::preflight(gw.gateway.settings())
        .await
        .expect("authenticated");
    let once = issuer.mint(&issuer.claims(ONCE, "api://trustbridge"));
    assert_eq!(
        gw.client_credentials("deploy-bot", &once, SCOPE).await.0,
        200
    );
    assert_eq!(
        gw.client_credentials("deploy-bot", &once, SCOPE).await.0,
        401
    );
}

#[actix_web::test]
async fn the_tls_connection_comes_back_after_redis_restarts() {
    let pw = password();
    let mut redis = PrivateRedis::start_tls(true, &strs(&acl_user(&pw)));
    let secrets = tempfile::tempdir().expect("tempdir");
    let pw_file = write(secrets.path(), "redis-password", &pw);
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    let tweak = over_tls(&redis, &pw_file, &prefix());
    let gw = TestGateway::start_tweaked("scale", &[("ISSUER", &issuer.url)], clock, tweak).await;

    let first = issuer.mint(&issuer.claims(ONCE, "api://trustbridge"));
    assert_eq!(
        gw.client_credentials("deploy-bot", &first, SCOPE).await.0,
        200
    );

    redis.stop();
    let second = issuer.mint(&issuer.claims(ONCE, "api://trustbridge"));
    let (status, body) = gw.client_credentials("deploy-bot", &second, SCOPE).await;
    assert_eq!(status, 503, "{body}");

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = gw.client_credentials("deploy-bot", &second, SCOPE).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            Instant::now() < deadline,
            "no recovery after Redis returned"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        gw.client_credentials("deploy-bot", &second, SCOPE).await.0,
        401
    );
}
