//! Property tests over the whole validation path without HTTP: `peek` → `verify` against a
//! fixed key set → `exchange::decide` against a policy set loaded with `policy::load_texts`.
//!
//! - a granted token with any single claim or header field perturbed (`iss`, `aud`, `sub`,
//!   `exp`, `nbf`, `iat`, one signature byte, header `alg`, header `kid`) is refused;
//! - arbitrary bytes as a token, a JWKS or a discovery document never panic and never make a
//!   genuine token verify under a key the JWKS does not hold, nor yield a plain-http or foreign
//!   `jwks_uri`.
//!
//! Glob subject matching against a reference model lives beside the glob (src/policy/glob/tests.rs,
//! `agrees_with_reference`).

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use proptest::prelude::*;
use serde_json::{Value, json};
use trustbridge::exchange::{self, ExchangeRequest, Limits};
use trustbridge::issuers::discovery::jwks_uri_from_document;
use trustbridge::issuers::jwks::{KeySet, parse_jwks};
use trustbridge::issuers::validate::{peek, verify};
use trustbridge::jose::SigningAlgorithm;
use trustbridge::policy::{PolicySet, load_texts};
use trustbridge::tokens::PrivateKey;

const ISSUER: &str = "https://issuer.props.example";
const NOW: u64 = 1_767_225_600;
const SUBJECT: &str = "repo:contoso/infra:ref:refs/heads/main";
const AUDIENCE: &str = "api://trustbridge";
const LEEWAY: u64 = 60;

const POLICY: &str = r#"
kind: Issuer
name: props
issuer: https://issuer.props.example
jwksUri: https://issuer.props.example/keys
algorithms: [RS256, ES256]
leeway: 60s
---
kind: Tenant
name: contoso
---
kind: Application
name: payments-api
identifierUris: [api://payments]
appRoles:
  - value: Payments.Read
---
kind: Application
name: deploy-bot
federatedCredentials:
  - name: main
    issuer: props
    audiences: [api://trustbridge]
    subject: repo:contoso/infra:ref:refs/heads/main
---
kind: ServicePrincipal
application: deploy-bot
tenant: contoso
appRoleAssignments:
  - resource: api://payments
    roles: [Payments.Read]
"#;

struct Fixture {
    policies: PolicySet,
    signers: Vec<PrivateKey>,
    keys: KeySet,
    request: ExchangeRequest,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let policies = load_texts(&[("props.yaml", POLICY)]).expect("policy compiles");
    let pem = |name: &str| {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/keys/pem/{name}.pem",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture key")
    };
    let signers = vec![
        PrivateKey::from_pkcs8_pem(&pem("rsa3072"), Some(SigningAlgorithm::RS256)).expect("rsa"),
        PrivateKey::from_pkcs8_pem(&pem("p256"), Some(SigningAlgorithm::ES256)).expect("p256"),
    ];
    let jwks = json!({"keys": signers.iter().map(|k| k.public_jwk().clone()).collect::<Vec<_>>()});
    let keys = parse_jwks(jwks.to_string().as_bytes()).expect("jwks");
    let body = "grant_type=client_credentials&client_id=deploy-bot\
        &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
        &client_assertion=x&scope=api%3A%2F%2Fpayments%2F.default";
    let request = ExchangeRequest::parse("contoso", body.as_bytes()).expect("request");
    Fixture {
        policies,
        signers,
        keys,
        request,
    }
});

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn claims() -> Value {
    json!({"iss": ISSUER, "sub": SUBJECT, "aud": AUDIENCE, "iat": NOW - 10, "nbf": NOW - 10,
           "exp": NOW + 300, "jti": "j"})
}

fn header(key: &PrivateKey) -> Value {
    json!({"alg": key.alg().as_str(), "kid": key.kid(), "typ": "JWT"})
}

fn sign(key: &PrivateKey, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    format!("{input}.{}", key.sign_raw(input.as_bytes()).expect("sign"))
}

/// Where the token stopped: `Ok(())` is a grant.
fn outcome(token: &str, keys: &KeySet) -> Result<(), String> {
    let f = &*FIXTURE;
    let mut peeked = peek(token).map_err(|e| e.to_string())?;
    let issuer = f
        .policies
        .issuer_for(&peeked.iss)
        .ok_or("untrusted issuer")?;
    let validated = verify(&mut peeked, issuer, keys, now()).map_err(|e| e.to_string())?;
    exchange::decide(
        &validated,
        &f.request,
        &f.policies,
        &Limits::default(),
        now(),
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// One single-field perturbation of a granted token.
#[derive(Debug, Clone)]
enum Perturbation {
    Iss(String),
    Aud(String),
    Sub(String),
    /// Seconds before NOW - leeway.
    ExpPast(u64),
    /// Seconds after NOW + leeway.
    NbfFuture(u64),
    IatFuture(u64),
    /// Byte index (mod signature length) and a non-zero XOR mask.
    SignatureByte(usize, u8),
    Alg(String),
    Kid(String),
}

fn perturbation() -> impl Strategy<Value = Perturbation> {
    prop_oneof![
        "\\PC{0,40}"
            .prop_filter("differs", |s| s != ISSUER)
            .prop_map(Perturbation::Iss),
        "\\PC{0,40}"
            .prop_filter("differs", |s| s != AUDIENCE)
            .prop_map(Perturbation::Aud),
        "\\PC{0,60}"
            .prop_filter("differs", |s| s != SUBJECT)
            .prop_map(Perturbation::Sub),
        (1u64..10_000_000).prop_map(Perturbation::ExpPast),
        (1u64..10_000_000).prop_map(Perturbation::NbfFuture),
        (1u64..10_000_000).prop_map(Perturbation::IatFuture),
        (any::<usize>(), 1u8..=255).prop_map(|(i, m)| Perturbation::SignatureByte(i, m)),
        prop_oneof![
            Just("none".to_string()),
            Just("HS256".to_string()),
            Just("RS384".to_string()),
            Just("PS256".to_string()),
            Just("ES384".to_string()),
            Just("EdDSA".to_string()),
            "\\PC{0,10}",
        ]
        .prop_map(Perturbation::Alg),
        "\\PC{0,50}".prop_map(Perturbation::Kid),
    ]
}

fn perturbed_token(key: &PrivateKey, p: &Perturbation) -> String {
    let mut h = header(key);
    let mut c = claims();
    match p {
        Perturbation::Iss(v) => c["iss"] = json!(v),
        Perturbation::Aud(v) => c["aud"] = json!(v),
        Perturbation::Sub(v) => c["sub"] = json!(v),
        Perturbation::ExpPast(d) => c["exp"] = json!(NOW - LEEWAY - d),
        Perturbation::NbfFuture(d) => c["nbf"] = json!(NOW + LEEWAY + d),
        Perturbation::IatFuture(d) => c["iat"] = json!(NOW + LEEWAY + d),
        Perturbation::Alg(v) => {
            if v == key.alg().as_str() {
                h["alg"] = json!(format!("{v}x"));
            } else {
                h["alg"] = json!(v);
            }
        }
        Perturbation::Kid(v) => {
            if v == key.kid() {
                h["kid"] = json!(format!("{v}x"));
            } else {
                h["kid"] = json!(v);
            }
        }
        Perturbation::SignatureByte(..) => {}
    }
    let token = sign(key, &h, &c);
    let Perturbation::SignatureByte(i, mask) = p else {
        return token;
    };
    let (input, signature) = token.rsplit_once('.').expect("three parts");
    let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(signature)
        .expect("b64");
    let i = i % raw.len();
    raw[i] ^= mask;
    format!("{input}.{}", b64(&raw))
}

#[test]
fn unperturbed_tokens_are_granted() {
    for key in &FIXTURE.signers {
        let token = sign(key, &header(key), &claims());
        assert_eq!(outcome(&token, &FIXTURE.keys), Ok(()), "{:?}", key.alg());
    }
}

/// A kid equal to another published key's kid is still a perturbation the signature catches.
#[test]
fn kid_of_the_other_key_is_refused() {
    let [rsa, ec] = [&FIXTURE.signers[0], &FIXTURE.signers[1]];
    let mut h = header(rsa);
    h["kid"] = json!(ec.kid());
    assert!(outcome(&sign(rsa, &h, &claims()), &FIXTURE.keys).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn any_single_perturbation_is_refused(slot in 0usize..2, p in perturbation()) {
        let key = &FIXTURE.signers[slot];
        let token = perturbed_token(key, &p);
        prop_assert!(outcome(&token, &FIXTURE.keys).is_err(), "{p:?} was granted");
    }

    #[test]
    fn arbitrary_token_bytes_are_never_granted(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let text = String::from_utf8_lossy(&bytes);
        prop_assert!(outcome(&text, &FIXTURE.keys).is_err());
    }

    #[test]
    fn arbitrary_jwks_never_verifies_a_foreign_token(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        keys in proptest::collection::vec(jwk(), 0..4),
    ) {
        let token = sign(&FIXTURE.signers[0], &header(&FIXTURE.signers[0]), &claims());
        for doc in [bytes, json!({"keys": keys}).to_string().into_bytes()] {
            if let Ok(set) = parse_jwks(&doc) {
                prop_assert!(!set.is_empty());
                prop_assert!(outcome(&token, &set).is_err());
            }
        }
    }

    #[test]
    fn arbitrary_discovery_documents_never_yield_foreign_or_plain_http_uris(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        issuer in prop_oneof![Just(ISSUER.to_string()), "[a-z:/.]{0,30}"],
        jwks_uri in "(https?|ftp|file)://[a-z./:]{0,30}",
    ) {
        let doc = json!({"issuer": issuer, "jwks_uri": jwks_uri}).to_string().into_bytes();
        for body in [bytes, doc] {
            if let Ok(uri) = jwks_uri_from_document(&body, ISSUER, false) {
                prop_assert!(uri.starts_with("https://"), "{uri}");
                let parsed: Value = serde_json::from_slice(&body).expect("accepted means JSON");
                prop_assert_eq!(parsed["issuer"].as_str(), Some(ISSUER));
            }
        }
    }
}

/// JWK-shaped objects: real kty/crv names with random members.
fn jwk() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just("RSA"), Just("EC"), Just("OKP"), Just("oct"), Just("")],
        prop_oneof![Just("P-256"), Just("P-384"), Just("Ed25519"), Just("X")],
        proptest::option::of("[A-Za-z0-9_-]{0,16}"),
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(kty, crv, kid, a, b)| {
            let mut jwk = json!({"kty": kty, "crv": crv, "n": b64(&a), "e": "AQAB",
                                 "x": b64(&a), "y": b64(&b)});
            if let Some(kid) = kid {
                jwk["kid"] = json!(kid);
            }
            // Sometimes the fixture key's own kid, to aim at the lookup.
            if a.first().is_some_and(|x| x % 2 == 0) {
                jwk["kid"] = json!(FIXTURE.signers[0].kid());
            }
            jwk
        })
}
