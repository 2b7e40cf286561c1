//! Certificate loading (every startup error), SNI-less resolution and reload semantics.

use std::path::Path;

use rcgen::{CertificateParams, KeyPair};

use super::*;

/// A self-signed certificate for 127.0.0.1 and its key, as PEM.
fn self_signed() -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
    let cert = params.self_signed(&key).expect("cert");
    (cert.pem(), key.serialize_pem())
}

fn write_pair(dir: &Path, cert: &str, key: &str) -> TlsFiles {
    let files = TlsFiles {
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
    };
    std::fs::write(&files.cert, cert).expect("write cert");
    std::fs::write(&files.key, key).expect("write key");
    files
}

fn leaf(cert: &ServerCert) -> Vec<u8> {
    cert.current().cert[0].to_vec()
}

#[test]
fn a_valid_pair_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed();
    let files = write_pair(dir.path(), &cert, &key);
    let served = ServerCert::load(files.clone()).expect("loads");
    assert_eq!(served.files(), &files);
    assert_eq!(served.current().cert.len(), 1);
}

#[test]
fn startup_errors_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed();
    let (_, other_key) = self_signed();
    let cases: Vec<(&str, String, String, &str)> = vec![
        (
            "no certificate",
            "hello".into(),
            key.clone(),
            "no PEM 'CERTIFICATE' block",
        ),
        (
            "garbage certificate",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
            key.clone(),
            "tls.crt",
        ),
        (
            "no key",
            cert.clone(),
            "not a key".into(),
            "no PEM private key",
        ),
        (
            "garbage key",
            cert.clone(),
            format!(
                "{}\nAAAA\n{}\n",
                crate::tokens::keys::PKCS8_PEM_BEGIN,
                crate::tokens::keys::PKCS8_PEM_END
            ),
            "unusable private key",
        ),
        (
            "key swapped in",
            cert.clone(),
            other_key.clone(),
            "does not match",
        ),
    ];
    for (name, c, k, want) in cases {
        let files = write_pair(dir.path(), &c, &k);
        let err = ServerCert::load(files).expect_err(name).to_string();
        assert!(err.contains(want), "{name}: {err}");
        assert!(
            !err.contains("AAAA"),
            "{name}: no file content echoed: {err}"
        );
    }
    let missing = TlsFiles {
        cert: dir.path().join("absent.crt"),
        key: dir.path().join("tls.key"),
    };
    let err = ServerCert::load(missing).expect_err("missing").to_string();
    assert!(err.starts_with("TLS certificate file"), "{err}");
    assert!(err.contains("absent.crt"), "{err}");
}

#[test]
fn the_key_is_never_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, _) = self_signed();
    let (_, other_key) = self_signed();
    let files = write_pair(dir.path(), &cert, &other_key);
    let err = ServerCert::load(files).expect_err("mismatch");
    let body: String = other_key.lines().nth(1).expect("a base64 line").to_string();
    assert!(!format!("{err} {err:?}").contains(&body));
}

#[test]
fn reload_swaps_only_on_a_valid_change_and_reports_a_bad_one_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert_a, key_a) = self_signed();
    let files = write_pair(dir.path(), &cert_a, &key_a);
    let served = ServerCert::load(files.clone()).expect("loads");
    let first = leaf(&served);
    assert!(matches!(served.reload(), ReloadOutcome::Unchanged));

    // A half-written rotation (new cert, old key) is refused; the old pair keeps serving.
    let (cert_b, key_b) = self_signed();
    std::fs::write(&files.cert, &cert_b).expect("write");
    match served.reload() {
        ReloadOutcome::Failed(TlsError::Mismatch { .. }) => {}
        other => panic!("want mismatch, got {other:?}"),
    }
    assert_eq!(leaf(&served), first);
    // The same bad content is not reported again at the next poll.
    assert!(matches!(served.reload(), ReloadOutcome::Unchanged));

    // The key arrives: the new pair serves.
    std::fs::write(&files.key, &key_b).expect("write");
    assert!(matches!(served.reload(), ReloadOutcome::Reloaded));
    let second = leaf(&served);
    assert_ne!(second, first);

    // A vanished file is reported once and changes nothing.
    std::fs::remove_file(&files.key).expect("rm");
    assert!(matches!(
        served.reload(),
        ReloadOutcome::Failed(TlsError::Read { .. })
    ));
    assert!(matches!(served.reload(), ReloadOutcome::Unchanged));
    assert_eq!(leaf(&served), second);

    // Restoring the same content as served counts as a change back to good (a new Arc, same
    // certificate): harmless, and it clears the error state.
    std::fs::write(&files.key, &key_b).expect("write");
    assert!(matches!(served.reload(), ReloadOutcome::Reloaded));
    assert_eq!(leaf(&served), second);
}

#[test]
fn oversized_files_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, key) = self_signed();
    let files = write_pair(dir.path(), &"x".repeat(2 * 1024 * 1024), &key);
    let err = ServerCert::load(files).expect_err("too large").to_string();
    assert!(err.contains("larger than"), "{err}");
}

#[test]
fn the_certificate_is_presented_without_sni() {
    // A full in-memory handshake from a client that addresses 127.0.0.1 (so sends no SNI).
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed();
    let files = write_pair(dir.path(), &cert, &key);
    let served = Arc::new(ServerCert::load(files).expect("loads"));
    let server_config = Arc::new(served.server_config().expect("config"));

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(served.current().cert[0].clone())
        .expect("trust the self-signed cert");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client_config = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let ip = rustls::pki_types::ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let mut client = rustls::ClientConnection::new(client_config, ip).expect("client");
    let mut server = rustls::ServerConnection::new(server_config).expect("server");
    let mut buf = Vec::new();
    for _ in 0..10 {
        if !client.is_handshaking() && !server.is_handshaking() {
            break;
        }
        buf.clear();
        client.write_tls(&mut buf).expect("client out");
        let mut slice = buf.as_slice();
        while !slice.is_empty() {
            server.read_tls(&mut slice).expect("server in");
        }
        server.process_new_packets().expect("server handshake");
        assert_eq!(server.server_name(), None, "the client sent no SNI");
        buf.clear();
        server.write_tls(&mut buf).expect("server out");
        let mut slice = buf.as_slice();
        while !slice.is_empty() {
            client.read_tls(&mut slice).expect("client in");
        }
        client.process_new_packets().expect("client handshake");
    }
    assert!(!client.is_handshaking(), "handshake completed");
    assert_eq!(
        client.peer_certificates().expect("presented")[0],
        served.current().cert[0]
    );
}
