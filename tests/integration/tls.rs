//! HTTPS serving: https discovery, the certificate presented to clients that send no SNI,
//! reload without dropping connections, a bad file at reload, and startup failures.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use trustbridge::tls::ReloadOutcome;

use crate::support::gateway::JWT_BEARER;
use crate::support::tls::{TestCa, TlsGateway};
use crate::support::{TestIssuer, clock};

const BIN: &str = env!("CARGO_BIN_EXE_trustbridge");

async fn setup() -> (TestCa, TestIssuer, TlsGateway) {
    let clock = clock();
    let ca = TestCa::new();
    let issuer = TestIssuer::start(clock.clone()).await;
    let gw = TlsGateway::start("basic", &[("ISSUER", &issuer.url)], clock, ca.issue_files()).await;
    (ca, issuer, gw)
}

#[actix_web::test]
async fn discovery_over_https_advertises_https_endpoints_and_matches_iss() {
    let (ca, issuer, gw) = setup().await;
    let client = ca.client();
    let doc: serde_json::Value = client
        .get(format!(
            "{}/.well-known/openid-configuration",
            gw.issuer("contoso")
        ))
        .send()
        .await
        .expect("discovery over https")
        .json()
        .await
        .expect("json");
    assert_eq!(doc["issuer"], json!(gw.issuer("contoso")));
    for field in [
        "issuer",
        "jwks_uri",
        "token_endpoint",
        "authorization_endpoint",
    ] {
        let value = doc[field].as_str().expect(field);
        assert!(value.starts_with(&gw.url), "{field}: {value}");
        assert!(value.starts_with("https://127.0.0.1:"), "{field}: {value}");
    }
    assert_eq!(doc["token_endpoint"], json!(gw.token_endpoint("contoso")));

    let mut claims = issuer.claims(
        "repo:contoso/infra:ref:refs/heads/main",
        "api://trustbridge",
    );
    claims["repository"] = json!("contoso/infra");
    let (status, body) = gw
        .post_token(
            &client,
            "contoso",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "deploy-bot"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &issuer.mint(&claims)),
                ("scope", "api://payments/.default"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, token_claims) =
        crate::support::decode_parts(body["access_token"].as_str().expect("token"));
    assert_eq!(
        token_claims["iss"], doc["issuer"],
        "iss is the https issuer"
    );

    // Plain HTTP on the TLS port gets no answer an HTTP client would accept.
    let plain = crate::support::http()
        .get(format!("http://{}/healthz", &gw.url["https://".len()..]))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
}

/// A blocking HTTP/1.1 keep-alive client over rustls that addresses the server by IP, so it
/// sends no SNI (rustls never puts an IP literal in `server_name`).
struct IpClient {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl IpClient {
    fn connect(addr: SocketAddr, ca_pem: &str) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("ca pem");
        roots.add(ca).expect("trust ca");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
        let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
        let tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .expect("handshake");
        }
        Self { stream }
    }

    /// The leaf certificate the server presented on this connection.
    fn leaf(&self) -> Vec<u8> {
        self.stream.conn.peer_certificates().expect("peer certs")[0].to_vec()
    }

    /// GETs `path` on this connection; returns the status code and body.
    fn get(&mut self, path: &str) -> (u16, String) {
        write!(
            self.stream,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
        )
        .expect("write request");
        self.stream.flush().expect("flush");
        let mut reader = BufReader::new(&mut self.stream);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).expect("status line");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("header");
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().expect("length");
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("body");
        (status, String::from_utf8(body).expect("utf8"))
    }
}

/// Runs blocking client work off the runtime thread.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    actix_web::rt::task::spawn_blocking(f)
        .await
        .expect("blocking task")
}

fn addr_of(gw: &TlsGateway) -> SocketAddr {
    gw.url["https://".len()..].parse().expect("addr")
}

#[actix_web::test]
async fn reload_serves_new_connections_without_dropping_open_ones() {
    let (ca, _issuer, gw) = setup().await;
    let addr = addr_of(&gw);
    let served = gw.gateway.tls().cloned().expect("tls on");
    let first_leaf = served.current().cert[0].to_vec();

    let pem = ca.pem.clone();
    let mut old = blocking(move || IpClient::connect(addr, &pem)).await;
    assert_eq!(old.leaf(), first_leaf, "certificate presented without SNI");
    let (old, (status, body)) = blocking(move || {
        let r = old.get("/healthz");
        (old, r)
    })
    .await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let mut old = old;

    // Renew the certificate in place (same files, as cert-manager does) and reload.
    let (cert, key) = ca.issue();
    std::fs::write(&gw.tls.key, key).expect("write key");
    std::fs::write(&gw.tls.cert, cert).expect("write cert");
    // The gateway's own 10 s watcher may get there first on a slow machine; either way the
    // renewed pair must be the one served now.
    let outcome = served.reload();
    assert!(
        matches!(outcome, ReloadOutcome::Reloaded | ReloadOutcome::Unchanged),
        "{outcome:?}"
    );
    let second_leaf = served.current().cert[0].to_vec();
    assert_ne!(second_leaf, first_leaf);

    // The open connection keeps working; a new one is presented the renewed certificate.
    let (status, _) = blocking(move || old.get("/readyz")).await;
    assert_eq!(
        status, 200,
        "the connection opened before the reload survives it"
    );
    let pem = ca.pem.clone();
    let new = blocking(move || IpClient::connect(addr, &pem)).await;
    assert_eq!(new.leaf(), second_leaf);

    // A broken file at reload is refused; the renewed certificate keeps serving.
    std::fs::write(
        &gw.tls.cert,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .expect("write garbage");
    let outcome = served.reload();
    assert!(
        matches!(outcome, ReloadOutcome::Failed(_) | ReloadOutcome::Unchanged),
        "{outcome:?}"
    );
    let pem = ca.pem.clone();
    let mut after = blocking(move || IpClient::connect(addr, &pem)).await;
    assert_eq!(after.leaf(), second_leaf);
    let (status, _) = blocking(move || after.get("/healthz")).await;
    assert_eq!(status, 200);
}

#[test]
fn serve_with_unusable_tls_files_exits_64_before_binding() {
    let ca = TestCa::new();
    let good = ca.issue_files();
    let (_, other_key) = ca.issue();
    let mismatched = ca.dir.path().join("other.key");
    std::fs::write(&mismatched, other_key).expect("write");
    let garbage = ca.dir.path().join("garbage.crt");
    std::fs::write(&garbage, "not a certificate").expect("write");
    let missing = ca.dir.path().join("missing.key");
    let policies = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let data = tempfile::tempdir().expect("tempdir");

    let cases: Vec<(Vec<&std::ffi::OsStr>, &str)> = vec![
        (
            vec![
                "--tls-cert".as_ref(),
                good.cert.as_os_str(),
                "--tls-key".as_ref(),
                mismatched.as_os_str(),
            ],
            "does not match the certificate",
        ),
        (
            vec![
                "--tls-cert".as_ref(),
                garbage.as_os_str(),
                "--tls-key".as_ref(),
                good.key.as_os_str(),
            ],
            "no PEM 'CERTIFICATE' block",
        ),
        (
            vec![
                "--tls-cert".as_ref(),
                good.cert.as_os_str(),
                "--tls-key".as_ref(),
                missing.as_os_str(),
            ],
            "missing.key",
        ),
        (
            vec!["--tls-cert".as_ref(), good.cert.as_os_str()],
            "tls-cert and tls-key must be given together",
        ),
    ];
    for (args, want) in cases {
        let out = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--policies"])
            .arg(&policies)
            .args(&args)
            .env("TRUSTBRIDGE_DATA_DIR", data.path())
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{want}: {stderr}");
        assert!(stderr.contains(want), "{want}: {stderr}");
        assert!(!stderr.contains("PRIVATE KEY"), "no key material: {stderr}");
    }
}

#[test]
fn tls_files_come_from_environment_variables_too() {
    let ca = TestCa::new();
    let (_, other_key) = ca.issue();
    let good = ca.issue_files();
    let mismatched = ca.dir.path().join("other.key");
    std::fs::write(&mismatched, other_key).expect("write");
    let data = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--policies"])
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
        .env("TRUSTBRIDGE_DATA_DIR", data.path())
        .env("TRUSTBRIDGE_TLS_CERT", &good.cert)
        .env("TRUSTBRIDGE_TLS_KEY", &mismatched)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("other.key"), "{stderr}");
}
