//! Graceful shutdown of the real binary: on SIGTERM `/readyz` turns 503 at once, requests
//! already in flight (their bodies still arriving) and the burst sent during the shutdown
//! delay all complete with 200, then the process exits 0 within the grace period.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use trustbridge::clock::{Clock, ManualClock, SystemClock};

use crate::support::TestIssuer;
use crate::support::gateway::{JWT_BEARER, encode, fixture_root};

const BIN: &str = env!("CARGO_BIN_EXE_trustbridge");

struct Gateway {
    child: Child,
    port: u16,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn start(root: &std::path::Path, extra: &[&str]) -> Gateway {
    let port = free_port();
    let child = Command::new(BIN)
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--policies")
        .arg(root.join("policies"))
        .arg("--data-dir")
        .arg(root.join("data"))
        .args(["--workers", "2"])
        .args(["--admin-listen", "off"])
        .args(extra)
        .env_remove("TRUSTBRIDGE_REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn trustbridge");
    let gw = Gateway { child, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(port, "/readyz").map(|(s, _)| s) != Some(200) {
        assert!(Instant::now() < deadline, "gateway did not become ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    gw
}

/// One request on a fresh connection (`Connection: close`); the status and body.
fn exchange(
    port: u16,
    head: &str,
    body: &[u8],
    pause: Option<(usize, Duration)>,
) -> Option<(u16, String)> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    conn.write_all(head.as_bytes()).ok()?;
    match pause {
        Some((split, wait)) => {
            conn.write_all(&body[..split]).ok()?;
            std::thread::sleep(wait);
            conn.write_all(&body[split..]).ok()?;
        }
        None => conn.write_all(body).ok()?,
    }
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    Some((status, body))
}

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let head = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    exchange(port, &head, b"", None)
}

fn token_request(port: u16, assertion: &str) -> (String, Vec<u8>) {
    let body = encode(&[
        ("grant_type", "client_credentials"),
        ("client_id", "deploy-bot"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
        ("scope", "api://payments/.default"),
    ])
    .into_bytes();
    let head = format!(
        "POST /contoso/oauth2/v2.0/token HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    (head, body)
}

/// Runs blocking socket code off the test's runtime, which also serves the test issuer.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    actix_web::rt::task::spawn_blocking(f)
        .await
        .expect("blocking task")
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[actix_web::test]
async fn sigterm_turns_not_ready_drains_in_flight_exchanges_and_exits_0() {
    // The binary reads the system clock: mint tokens for the real now.
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let issuer = TestIssuer::start(clock).await;
    let root = fixture_root("scale", &[("ISSUER", &issuer.url)]);
    let mut gw = start(
        root.path(),
        &["--shutdown-delay", "1500ms", "--shutdown-grace", "10s"],
    );
    let port = gw.port;
    let claims = |sub: &str| issuer.claims(sub, "api://trustbridge");
    let main = "repo:contoso/infra:ref:refs/heads/main";

    // Warm the issuer key cache so in-flight requests wait only on their own bodies.
    let (head, body) = token_request(port, &issuer.mint(&claims(main)));
    let warm = blocking(move || exchange(port, &head, &body, None))
        .await
        .expect("warm-up");
    assert_eq!(warm.0, 200, "{}", warm.1);

    // In flight: bodies half sent when SIGTERM arrives, finished after the listener closed.
    let mut in_flight = Vec::new();
    for _ in 0..6 {
        let (head, body) = token_request(port, &issuer.mint(&claims(main)));
        in_flight.push(actix_web::rt::task::spawn_blocking(move || {
            exchange(
                port,
                &head,
                &body,
                Some((body.len() / 2, Duration::from_millis(2500))),
            )
        }));
    }
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    sigterm(&gw.child);

    // Not ready at once, while still accepting during the shutdown delay.
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    let ready = blocking(move || get(port, "/readyz"))
        .await
        .expect("still accepting during the delay");
    assert_eq!(ready.0, 503, "{}", ready.1);

    // A burst sent during the delay is served in full.
    let mut burst = Vec::new();
    for _ in 0..10 {
        let (head, body) = token_request(port, &issuer.mint(&claims(main)));
        burst.push(actix_web::rt::task::spawn_blocking(move || {
            exchange(port, &head, &body, None)
        }));
    }
    for handle in burst {
        let (status, body) = handle.await.expect("task").expect("burst answered");
        assert_eq!(status, 200, "{body}");
    }
    for handle in in_flight {
        let (status, body) = handle.await.expect("task").expect("in-flight answered");
        assert_eq!(status, 200, "in-flight exchange lost: {body}");
    }

    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = gw.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "did not exit within the grace period"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0));
    assert!(
        signalled.elapsed() >= Duration::from_millis(1500),
        "shutdown delay honoured"
    );
    // The listener is closed now.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[actix_web::test]
async fn the_grace_period_bounds_a_stuck_request() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let issuer = TestIssuer::start(clock).await;
    let root = fixture_root("scale", &[("ISSUER", &issuer.url)]);
    let mut gw = start(root.path(), &["--shutdown-grace", "1s"]);
    let port = gw.port;
    // A client that never finishes its body.
    let (head, _) = token_request(port, "x");
    let mut stuck = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stuck.write_all(head.as_bytes()).expect("write");
    stuck.write_all(b"grant_type=client").expect("write");
    std::thread::sleep(Duration::from_millis(200));
    let signalled = Instant::now();
    sigterm(&gw.child);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = gw.child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "grace period not enforced");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "{:?}",
        signalled.elapsed()
    );
}

#[actix_web::test]
async fn nothing_granted_is_missing_from_the_audit_trail_after_sigterm_under_load() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let issuer = TestIssuer::start(clock).await;
    let root = fixture_root("scale", &[("ISSUER", &issuer.url)]);
    let audit = root.path().join("audit.jsonl");
    let audit_arg = audit.display().to_string();
    let mut gw = start(
        root.path(),
        &["--audit-log", &audit_arg, "--shutdown-grace", "10s"],
    );
    let port = gw.port;
    let main = "repo:contoso/infra:ref:refs/heads/main";
    let requests: Vec<_> = (0..400)
        .map(|_| {
            token_request(
                port,
                &issuer.mint(&issuer.claims(main, "api://trustbridge")),
            )
        })
        .collect();

    // Many clients at once; SIGTERM lands while they are still sending.
    let mut clients = Vec::new();
    for chunk in requests.chunks(25) {
        let chunk = chunk.to_vec();
        clients.push(actix_web::rt::task::spawn_blocking(move || {
            let mut jtis = Vec::new();
            for (head, body) in chunk {
                if let Some((200, text)) = exchange(port, &head, &body, None) {
                    let answer: serde_json::Value = serde_json::from_str(&text).expect("json");
                    let token = answer["access_token"].as_str().expect("token").to_owned();
                    let (_, claims) = crate::support::decode_parts(&token);
                    jtis.push(claims["jti"].as_str().expect("jti").to_owned());
                }
            }
            jtis
        }));
    }
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    sigterm(&gw.child);
    let mut received = Vec::new();
    for client in clients {
        received.extend(client.await.expect("client"));
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = gw.child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "did not exit");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0));
    assert!(!received.is_empty(), "no exchange completed before SIGTERM");

    let trail = std::fs::read_to_string(&audit).expect("audit trail");
    let audited: std::collections::HashSet<String> = trail
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("audit line is JSON"))
        .filter(|e| e["decision.outcome"] == "granted")
        .filter_map(|e| e["token.jti"].as_str().map(str::to_owned))
        .collect();
    let missing: Vec<&String> = received.iter().filter(|j| !audited.contains(*j)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} granted tokens missing from the audit trail",
        missing.len(),
        received.len()
    );
}
