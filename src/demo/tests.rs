use std::fs;
use std::os::unix::fs::PermissionsExt;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::*;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn creates_a_private_key_and_a_public_jwks() {
    let data = tempfile::tempdir().unwrap();
    let issuer = DemoIssuer::open_or_create(data.path()).unwrap();
    assert_eq!(mode(&data.path().join("demo-issuer")), 0o700);
    assert_eq!(mode(&key_path(data.path())), 0o600);
    assert_eq!(issuer.jwks_path(), jwks_path(data.path()));
    let written: Value = serde_json::from_slice(&fs::read(issuer.jwks_path()).unwrap()).unwrap();
    assert_eq!(written, issuer.jwks());
    let jwk = &written["keys"][0];
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["alg"], "RS256");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["kid"], issuer.kid());
    assert!(jwk.get("d").is_none());
}

#[test]
fn reopening_keeps_the_key_and_repairs_the_jwks() {
    let data = tempfile::tempdir().unwrap();
    let first = DemoIssuer::open_or_create(data.path()).unwrap();
    let second = DemoIssuer::open_or_create(data.path()).unwrap();
    assert_eq!(first.kid(), second.kid());

    let jwks = jwks_path(data.path());
    let inode = || std::os::unix::fs::MetadataExt::ino(&fs::metadata(&jwks).unwrap());
    let before = inode();
    DemoIssuer::open_or_create(data.path()).unwrap();
    assert_eq!(inode(), before, "an up-to-date JWKS is left alone");
    for stale in [None, Some("{\"keys\": []}"), Some("not json")] {
        match stale {
            Some(text) => fs::write(&jwks, text).unwrap(),
            None => fs::remove_file(&jwks).unwrap(),
        }
        let again = DemoIssuer::open_or_create(data.path()).unwrap();
        assert_eq!(again.kid(), first.kid());
        let written: Value = serde_json::from_slice(&fs::read(&jwks).unwrap()).unwrap();
        assert_eq!(written, first.jwks(), "{stale:?} was rewritten");
    }
}

#[test]
fn minted_tokens_verify_against_the_written_jwks() {
    let data = tempfile::tempdir().unwrap();
    let issuer = DemoIssuer::open_or_create(data.path()).unwrap();
    let mut extra = Map::new();
    extra.insert("repository".into(), json!("contoso/infra"));
    let claims = demo_claims("repo:contoso/infra", "api://trustbridge", 1_000, 600, extra);
    let token = issuer.mint(&claims).unwrap();

    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.kid.as_deref(), Some(issuer.kid()));

    let set: JwkSet = serde_json::from_slice(&fs::read(jwks_path(data.path())).unwrap()).unwrap();
    let key = DecodingKey::from_jwk(set.find(issuer.kid()).unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.set_audience(&["api://trustbridge"]);
    validation.set_issuer(&[DEMO_ISSUER_URL]);
    let decoded = jsonwebtoken::decode::<Map<String, Value>>(&token, &key, &validation).unwrap();
    assert_eq!(decoded.claims, claims);
}

#[test]
fn a_corrupt_demo_key_is_refused_naming_the_file() {
    let data = tempfile::tempdir().unwrap();
    fs::create_dir_all(data.path().join("demo-issuer")).unwrap();
    fs::write(key_path(data.path()), "garbage").unwrap();
    match DemoIssuer::open_or_create(data.path()).unwrap_err() {
        KeyStoreError::BadKey { path, .. } => assert!(path.ends_with("key.pem"), "{path}"),
        other => panic!("expected BadKey, got {other}"),
    }
}

#[test]
fn demo_claims_are_standard_and_not_overridable() {
    let mut extra = Map::new();
    extra.insert("iss".into(), json!("https://evil.example"));
    extra.insert("ref".into(), json!("refs/heads/main"));
    let claims = demo_claims("sub-1", "api://x", 1_000, 300, extra);
    assert_eq!(claims["iss"], DEMO_ISSUER_URL);
    assert_eq!(claims["sub"], "sub-1");
    assert_eq!(claims["aud"], "api://x");
    assert_eq!(
        (claims["iat"].as_u64(), claims["nbf"].as_u64()),
        (Some(1_000), Some(1_000))
    );
    assert_eq!(claims["exp"], 1_300);
    assert_eq!(claims["ref"], "refs/heads/main");
    let jti = uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).unwrap();
    assert_eq!(jti.get_version(), Some(uuid::Version::Random));
    let other = demo_claims("sub-1", "api://x", 1_000, 300, Map::new());
    assert_ne!(other["jti"], claims["jti"], "jti is unique per token");
    assert_eq!(
        demo_claims("s", "a", u64::MAX, 10, Map::new())["exp"],
        u64::MAX
    );
}
