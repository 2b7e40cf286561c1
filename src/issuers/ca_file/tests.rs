//! `caFile` re-reading: a client per content, errors that name the file and the setting, and
//! loads that fail (rather than fall back to old roots) while the file is unusable.

use std::sync::Arc;

use super::*;
use crate::issuers::FetchSettings;
use crate::issuers::metrics;
use crate::issuers::testkit::issuer;
use crate::telemetry::names;

/// A fresh throwaway CA certificate (PEM); each call is a different CA.
fn new_ca_pem() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

fn ca_file(path: &Path) -> Arc<CaFile> {
    let base = Fetcher::new(&FetchSettings::default()).unwrap();
    Arc::new(CaFile::new(path.to_path_buf(), &base))
}

#[test]
fn an_unchanged_file_keeps_its_client_and_new_content_builds_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    let (first, second) = (new_ca_pem(), new_ca_pem());
    std::fs::write(&path, &first).unwrap();
    let ca = ca_file(&path);
    assert_eq!(ca.builds(), 0, "nothing is read before the first load");

    ca.fetcher().unwrap();
    ca.fetcher().unwrap();
    assert_eq!(ca.builds(), 1, "same content, same client");

    // A rotated CA of the same key type has the same length: content decides, not size.
    assert_eq!(first.len(), second.len());
    std::fs::write(&path, &second).unwrap();
    ca.fetcher().unwrap();
    assert_eq!(ca.builds(), 2);

    // A bundle of both (the usual rotation overlap) is new content too.
    std::fs::write(&path, format!("{first}{second}")).unwrap();
    ca.fetcher().unwrap();
    assert_eq!(ca.builds(), 3);
    ca.fetcher().unwrap();
    assert_eq!(ca.builds(), 3);
}

#[test]
fn an_unreadable_or_unusable_file_fails_every_load_until_it_is_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    let good = new_ca_pem();
    std::fs::write(&path, &good).unwrap();
    let ca = ca_file(&path);
    ca.fetcher().unwrap();

    // Removed: no fallback to the roots it held before.
    std::fs::remove_file(&path).unwrap();
    let error = ca.fetcher().unwrap_err();
    assert_eq!(error.path, path.display().to_string());
    assert!(error.reason.contains("cannot be read"), "{error}");
    assert!(error.to_string().starts_with("caFile "), "{error}");
    assert_eq!(ca.builds(), 1);

    // Back with the same content: trusted again, without building a new client.
    std::fs::write(&path, &good).unwrap();
    ca.fetcher().unwrap();
    assert_eq!(ca.builds(), 1);

    for (bad, expected) in [
        ("not pem at all".to_string(), "no certificate"),
        (
            "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n".to_string(),
            "not a PEM certificate bundle",
        ),
        ("x".repeat(MAX_CA_FILE_BYTES + 1), "larger than"),
    ] {
        std::fs::write(&path, &bad).unwrap();
        let error = ca.fetcher().unwrap_err();
        assert!(error.reason.contains(expected), "{expected}: {error}");
        // The same bad content fails again (it is remembered as bad, not as the old client).
        assert!(ca.fetcher().is_err());
    }

    std::fs::write(&path, &good).unwrap();
    ca.fetcher().unwrap();
}

#[tokio::test]
async fn a_ca_key_source_counts_an_unusable_file_as_a_ca_file_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.pem");
    let mut declared = issuer(
        "private",
        "https://private.example",
        KeySourceSpec::Discovery,
        false,
    );
    declared.ca_file = Some(path.clone());
    let ca = ca_file(&path);
    let source = CaKeySource::new(ca.clone(), &declared).unwrap();
    let error = source.load().await.unwrap_err();
    assert!(matches!(error, KeySourceError::CaFile(_)), "{error:?}");
    assert_eq!(metrics::outcome(&error), names::FETCH_CA_FILE_ERROR);
    assert!(error.to_string().contains("missing.pem"), "{error}");
    assert_eq!(
        ca.base.fetch_count(),
        0,
        "nothing is fetched without the CA"
    );
}

#[test]
fn only_http_key_sources_take_a_ca_file() {
    let ca = ca_file(Path::new("unused.pem"));
    let mut file_issuer = issuer(
        "f",
        "https://f.example",
        KeySourceSpec::JwksFile("k.json".into()),
        false,
    );
    file_issuer.ca_file = Some("unused.pem".into());
    assert!(CaKeySource::new(ca.clone(), &file_issuer).is_none());
    let uri = issuer(
        "u",
        "https://u.example",
        KeySourceSpec::JwksUri("https://u.example/keys".into()),
        false,
    );
    assert_eq!(
        http_target(&uri),
        Some(HttpTarget::JwksUri("https://u.example/keys".into()))
    );
}
