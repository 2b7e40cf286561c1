//! Shared fixtures and bodies of the fuzz targets in `fuzz_targets/`, and the seed corpus
//! writer (`examples/seeds.rs`).
//!
//! Every target feeds hostile bytes to one parser of the gateway and goes as far down the real
//! request path as the input allows: a token that parses and verifies against the fixed keys
//! reaches `exchange::decide`. A panic anywhere is a crash; the invariants asserted after a
//! parser accepts are the properties an attacker must not break (for example, nothing that
//! verifies names another issuer or an expired time).

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use trustbridge::exchange::{self, ExchangeRequest, Limits};
use trustbridge::issuers::discovery::jwks_uri_from_document;
use trustbridge::issuers::jwks::{KeySet, parse_jwks};
use trustbridge::issuers::validate::{peek, verify};
use trustbridge::jose::SigningAlgorithm;
use trustbridge::policy::cel::Expression;
use trustbridge::policy::{PolicySet, load_texts};
use trustbridge::tokens::PrivateKey;

/// `iss` of the fixed issuer every token target validates against.
pub const ISSUER: &str = "https://issuer.fuzz.example";

/// The fixed "now": 2026-01-01T00:00:00Z, the time base of ../shared/platform-claims.
pub const NOW: u64 = 1_767_225_600;

/// The fixed policy set: one issuer, one tenant, a resource, an application with an exact
/// subject, a pattern and a condition, and a workload-assigned managed identity.
pub const POLICY: &str = r#"
kind: Issuer
name: fuzz
issuer: https://issuer.fuzz.example
jwksUri: https://issuer.fuzz.example/keys
algorithms: [RS256, ES256, EdDSA]
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
  - value: Payments.Write
---
kind: Application
name: deploy-bot
federatedCredentials:
  - name: main
    issuer: fuzz
    audiences: [https://github.com/octo-org, api://trustbridge]
    subject: repo:octo-org/octo-repo:ref:refs/heads/main
    claimMappings:
      repository: claims.repository
  - name: release
    issuer: fuzz
    audiences: [https://github.com/octo-org]
    subjectPattern: repo:octo-org/*:ref:refs/heads/release/**
    condition: claims.repository_owner_id == "5122340"
---
kind: ServicePrincipal
application: deploy-bot
tenant: contoso
appRoleAssignments:
  - resource: api://payments
    roles: [Payments.Read]
---
kind: ManagedIdentity
tenant: contoso
nameFrom: '"k8s/" + claims["kubernetes.io"].namespace + "/" + claims["kubernetes.io"].serviceaccount.name'
federatedCredentials:
  - name: cluster
    issuer: fuzz
    audiences: [api://trustbridge, sts.amazonaws.com]
    subjectPattern: system:serviceaccount:*:*
    condition: claims["kubernetes.io"].namespace.startsWith("team-")
appRoleAssignments:
  - resource: api://payments
    roles: [Payments.Read]
"#;

/// Token requests a fuzzed token is decided against; the first input byte picks one.
pub const REQUESTS: [&str; 3] = [
    "grant_type=client_credentials&client_id=deploy-bot&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=x&scope=api%3A%2F%2Fpayments%2F.default",
    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=x&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt&resource=api%3A%2F%2Fpayments",
    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=x&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt&client_id=deploy-bot&scope=api%3A%2F%2Fpayments%2FPayments.Read",
];

/// Everything the targets share, built once per process.
pub struct Fixture {
    /// [`POLICY`], compiled.
    pub policies: PolicySet,
    /// The issuer's signing keys (checked-in throwaway test keys: RS256 3072, ES256, EdDSA).
    pub signers: Vec<PrivateKey>,
    /// Their public halves, parsed as the gateway parses a fetched JWKS.
    pub keys: KeySet,
    /// The JWKS document of [`Fixture::keys`].
    pub jwks: Value,
    /// [`REQUESTS`], parsed.
    pub requests: Vec<ExchangeRequest>,
}

/// The shared fixture.
pub static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let policies = load_texts(&[("fuzz.yaml", POLICY)]).expect("the fuzz policy compiles");
    let pem = |name: &str| match name {
        "rsa" => include_str!("../../tests/fixtures/keys/pem/rsa3072.pem"),
        "p256" => include_str!("../../tests/fixtures/keys/pem/p256.pem"),
        _ => include_str!("../../tests/fixtures/keys/pem/ed25519.pem"),
    };
    let signers = vec![
        PrivateKey::from_pkcs8_pem(pem("rsa"), Some(SigningAlgorithm::RS256)).expect("rsa key"),
        PrivateKey::from_pkcs8_pem(pem("p256"), Some(SigningAlgorithm::ES256)).expect("p256 key"),
        PrivateKey::from_pkcs8_pem(pem("ed25519"), Some(SigningAlgorithm::EdDSA))
            .expect("ed25519 key"),
    ];
    let jwks = json!({"keys": signers.iter().map(|k| k.public_jwk().clone()).collect::<Vec<_>>()});
    let keys = parse_jwks(jwks.to_string().as_bytes()).expect("fixture JWKS parses");
    let requests = REQUESTS
        .iter()
        .map(|body| ExchangeRequest::parse("contoso", body.as_bytes()).expect("request"))
        .collect();
    Fixture {
        policies,
        signers,
        keys,
        jwks,
        requests,
    }
});

/// [`NOW`] as a `SystemTime`.
pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

// === target bodies ===

/// A compact JWS through peek → issuer lookup → verify → decide. Byte 0 picks the request.
pub fn jws(data: &[u8]) {
    let Some((&selector, token)) = data.split_first() else {
        return;
    };
    let Ok(token) = std::str::from_utf8(token) else {
        return;
    };
    validate_and_decide(token, &FIXTURE.keys, usize::from(selector));
}

/// How far a token got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    /// Refused by peek, issuer lookup or verify.
    Refused,
    /// Verified, then denied by the decision.
    Denied,
    /// Verified and granted.
    Granted,
}

/// Runs the JWS target's path on one input and says how far it got (for seed statistics).
pub fn jws_reach(data: &[u8]) -> Reached {
    let Some((&selector, token)) = data.split_first() else {
        return Reached::Refused;
    };
    let Ok(token) = std::str::from_utf8(token) else {
        return Reached::Refused;
    };
    validate_and_decide(token, &FIXTURE.keys, usize::from(selector))
}

fn validate_and_decide(token: &str, keys: &KeySet, selector: usize) -> Reached {
    let f = &*FIXTURE;
    let Ok(mut peeked) = peek(token) else {
        return Reached::Refused;
    };
    let Some(issuer) = f.policies.issuer_for(&peeked.iss) else {
        return Reached::Refused;
    };
    let Ok(validated) = verify(&mut peeked, issuer, keys, now()) else {
        return Reached::Refused;
    };
    // Whatever verified must be from this issuer, in time, with an allowed algorithm.
    assert_eq!(validated.iss, ISSUER);
    assert!(validated.exp + issuer.leeway.as_secs() >= NOW);
    assert!(issuer.algorithms.contains(&validated.alg));
    let req = &f.requests[selector % f.requests.len()];
    match exchange::decide(&validated, req, &f.policies, &Limits::default(), now()) {
        Ok(grant) => {
            assert_eq!(grant.resource, "api://payments");
            assert!(grant.lifetime <= Limits::default().max_token_lifetime);
            Reached::Granted
        }
        Err(_) => Reached::Denied,
    }
}

/// A token endpoint body through `ExchangeRequest::parse`.
pub fn form(data: &[u8]) {
    if let Ok(req) = ExchangeRequest::parse("contoso", data) {
        assert!(!req.subject_token.is_empty());
        assert!(!req.target.resource.is_empty());
    }
}

/// A JWKS document through `parse_jwks`, then used to verify a genuine token: a hostile JWKS
/// must never make a token verify under a key it does not hold.
pub fn jwks(data: &[u8]) {
    let Ok(keys) = parse_jwks(data) else {
        return;
    };
    assert!(!keys.is_empty() && keys.len() <= trustbridge::issuers::jwks::MAX_KEYS);
    for key in keys.keys() {
        // Whatever kid a key has, looking it up must find that key.
        if let Some(kid) = &key.kid {
            assert!(keys.contains_kid(kid));
        }
    }
    let _ = validate_and_decide(&SAMPLE_TOKEN, &keys, 0);
}

/// A token signed by the fixture's RSA key, valid at [`NOW`].
pub static SAMPLE_TOKEN: LazyLock<String> = LazyLock::new(|| {
    let claims = json!({"iss": ISSUER, "sub": "repo:octo-org/octo-repo:ref:refs/heads/main",
        "aud": "https://github.com/octo-org", "iat": NOW, "nbf": NOW, "exp": NOW + 300,
        "repository": "octo-org/octo-repo"});
    sign(&FIXTURE.signers[0], &claims)
});

/// A discovery document through `jwks_uri_from_document`, for the fixed issuer, https only.
pub fn discovery(data: &[u8]) {
    if let Ok(uri) = jwks_uri_from_document(data, ISSUER, false) {
        assert!(uri.starts_with("https://"), "{uri}");
    }
    let _ = jwks_uri_from_document(data, "http://127.0.0.1:8080", true);
}

/// Policy YAML through `load_texts` (parse, compile, CEL, globs). Input is split into files at
/// NUL bytes, so several files (and cross-file references) get exercised.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let names = ["a.yaml", "b.yaml", "c.yaml", "d.yaml"];
    let files: Vec<(&str, &str)> = names.iter().copied().zip(text.split('\0')).collect();
    if let Ok(set) = load_texts(&files) {
        // A loaded set decides a genuine token without panicking.
        let f = &*FIXTURE;
        if let Some(issuer) = set.issuer_for(ISSUER)
            && let Ok(mut peeked) = peek(&SAMPLE_TOKEN)
            && let Ok(validated) = verify(&mut peeked, issuer, &f.keys, now())
        {
            for req in &f.requests {
                let _ = exchange::decide(&validated, req, &set, &Limits::default(), now());
            }
        }
    }
}

/// A CEL expression through `Expression::compile`, then evaluated over sample claims.
pub fn cel(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expr) = Expression::compile(source) else {
        return;
    };
    static CLAIMS: LazyLock<Map<String, Value>> = LazyLock::new(|| {
        match json!({"sub": "system:serviceaccount:team-a:builder", "aud": ["a", "b"],
            "n": 12, "f": 1.5, "b": true, "nul": null, "repository_owner_id": "5122340",
            "kubernetes.io": {"namespace": "team-a", "serviceaccount": {"name": "builder"}}})
        {
            Value::Object(map) => map,
            _ => unreachable!("a JSON object literal"),
        }
    });
    let _ = expr.eval_bool(&CLAIMS);
    let _ = expr.eval_string(&CLAIMS);
    let _ = expr.eval_json(&CLAIMS);
}

// === seeds ===

/// Signs `claims` with `key` (header: alg, kid, typ JWT).
pub fn sign(key: &PrivateKey, claims: &Value) -> String {
    let header = json!({"alg": key.alg().as_str(), "kid": key.kid(), "typ": "JWT"});
    sign_raw(key, &header.to_string(), &claims.to_string())
}

/// Signs raw header and payload text with `key`.
pub fn sign_raw(key: &PrivateKey, header: &str, payload: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let input = format!("{}.{}", b64.encode(header), b64.encode(payload));
    let signature = key.sign_raw(input.as_bytes()).expect("fixture keys sign");
    format!("{input}.{signature}")
}

/// The token endpoint every DPoP target proof is checked against.
pub const DPOP_HTU: &str = "https://tb.fuzz.example/contoso/oauth2/v2.0/token";

/// A `DPoP` header value through `dpop::verify`: whatever verifies names the endpoint, is
/// fresh within the window and yields a thumbprint of the proof key (never an empty binding).
pub fn dpop(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let expected = trustbridge::dpop::Expected {
        htm: "POST",
        htu: DPOP_HTU,
        now: UNIX_EPOCH + Duration::from_secs(NOW),
        window: Duration::from_secs(60),
    };
    if let Ok(proof) = trustbridge::dpop::verify(text, &expected) {
        assert_eq!(proof.jkt.len(), 43, "a SHA-256 thumbprint in base64url");
        assert!(!proof.jti.is_empty());
        assert!(proof.iat + 60 >= NOW && proof.iat <= NOW + 60);
    }
}

/// A valid DPoP proof for [`DPOP_HTU`] at [`NOW`], signed by a fresh key of `alg`, with the
/// `jti` given: the seed the fuzzer mutates.
pub fn dpop_seed(alg: SigningAlgorithm, jti: &str) -> String {
    use base64::Engine as _;
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
    };
    let key = PrivateKey::generate(alg).expect("key generation");
    let header = json!({"typ": "dpop+jwt", "alg": alg.as_str(), "jwk": key.public_jwk()});
    let claims = json!({"htm": "POST", "htu": DPOP_HTU, "iat": NOW, "jti": jti});
    let input = format!("{}.{}", b64(&header), b64(&claims));
    let signature = key.sign_raw(input.as_bytes()).expect("signing");
    format!("{input}.{signature}")
}

/// `Forwarded` / `X-Forwarded-For` / `X-Forwarded-Proto` values (one per line, in that order)
/// through `http::client::resolve` from a trusted proxy: no panic, and the address recorded in
/// the audit trail stays bounded whatever the chain holds.
pub fn forwarded(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let forwarded: Vec<&str> = lines.next().into_iter().collect();
    let xff: Vec<&str> = lines.next().into_iter().collect();
    let proto = lines.next();
    let trusted: Vec<trustbridge::cidr::Cidr> = ["10.0.0.0/8", "fd00::/8"]
        .iter()
        .map(|c| c.parse().expect("fixed CIDR"))
        .collect();
    let peer: std::net::SocketAddr = "10.1.2.3:443".parse().expect("fixed peer");
    let client =
        trustbridge::http::client::resolve(Some(peer), &trusted, &forwarded, &xff, proto, false);
    if let Some(address) = &client.address {
        assert!(address.len() <= 64, "unbounded caller address {address:?}");
    }
}
