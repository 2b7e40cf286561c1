//! The security suite: the published attacks on JWT-accepting services, each tried against the
//! running gateway (three trusted test issuers: A RS256, B ES256, C ES384) and a trap server
//! standing for every URL an attacker puts in a token.
//!
//! Every attack must be answered with a 4xx OAuth error (or, for an issuer serving an
//! oversized JWKS, the fail-closed `temporarily_unavailable`), cause no request to any URL taken
//! from a token (the trap counts hits), leave the gateway serving (a genuine token is still
//! granted afterwards), and leave no whole token or signature in any log line: the test binary's
//! tracing output is captured in memory (JSON lines, trustbridge at TRACE) and scanned.
//!
//! Attacks already covered in rejections.rs are not repeated here: alg none and HS256 with a
//! garbage signature, jku/x5u with an unknown kid, RSA keys under 2048 bits, header and payload
//! duplicate keys, crit, nested JWT, JWE, oversized tokens and bodies, untrusted issuers.

use std::sync::Arc;

use base64::Engine;
use serde_json::{Value, json};
use trustbridge::clock::ManualClock;
use trustbridge::jose::SigningAlgorithm;

use crate::support::gateway::{JWT_BEARER, JWT_TYPE, TOKEN_EXCHANGE, encode};
use crate::support::{TestGateway, TestIssuer, clock, http};

const MAIN: &str = "repo:contoso/infra:ref:refs/heads/main";
const AUDIENCE: &str = "api://trustbridge";

// === log capture ===

/// Everything the test process logged, as JSON lines (see `support::logs`).
fn log_text() -> String {
    crate::support::logs::capture();
    crate::support::logs::text()
}

// === environment ===

struct Env {
    a: TestIssuer,
    b: TestIssuer,
    c: TestIssuer,
    /// Stands for every URL an attacker writes into a token.
    trap: TestIssuer,
    gw: TestGateway,
    clock: Arc<ManualClock>,
    /// Tokens and signatures sent in this test, which no log line may contain.
    secrets: Vec<String>,
}

async fn setup() -> Env {
    crate::support::logs::capture();
    let clock = clock();
    let a = TestIssuer::start_with(clock.clone(), SigningAlgorithm::RS256).await;
    let b = TestIssuer::start_with(clock.clone(), SigningAlgorithm::ES256).await;
    let c = TestIssuer::start_with(clock.clone(), SigningAlgorithm::ES384).await;
    let trap = TestIssuer::start(clock.clone()).await;
    let gw = TestGateway::start(
        "security",
        &[
            ("ISSUER_A", &a.url),
            ("ISSUER_B", &b.url),
            ("ISSUER_C", &c.url),
        ],
        clock.clone(),
    )
    .await;
    Env {
        a,
        b,
        c,
        trap,
        gw,
        clock,
        secrets: Vec::new(),
    }
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn claims(issuer: &TestIssuer) -> Value {
    issuer.claims(MAIN, AUDIENCE)
}

/// A token from `header` and `claims` JSON with the given raw signature bytes.
fn forged(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string()),
        b64(claims.to_string()),
        b64(signature)
    )
}

impl Env {
    /// Sends `form` to the token endpoint; asserts a 4xx OAuth error with `error`; records the
    /// token and its signature for the log scan.
    async fn attack(&mut self, token: &str, form: &[(&str, &str)], error: &str) -> Value {
        self.remember(token);
        let (status, body) = self.gw.post_token("contoso", form).await;
        assert!((400..500).contains(&status), "{status} {body}");
        assert_eq!(body["error"], error, "{body}");
        assert!(body["error_description"].is_string(), "{body}");
        assert!(!body.to_string().contains(token), "token echoed: {body}");
        body
    }

    /// Client credentials with `token` as the assertion; refused as `invalid_client`.
    async fn attack_cc(&mut self, token: &str) -> Value {
        let form = cc_form(token);
        self.attack(token, &form, "invalid_client").await
    }

    /// One genuine exchange through issuer A, so its keys are cached.
    async fn warm(&mut self) {
        let good = self.a.mint(&claims(&self.a));
        self.remember(&good);
        let (status, body) = self
            .gw
            .client_credentials("deploy-bot", &good, "api://payments/.default")
            .await;
        assert_eq!(status, 200, "{body}");
    }

    fn remember(&mut self, token: &str) {
        self.secrets.push(token.to_string());
        if let Some((_, signature)) = token.rsplit_once('.')
            && signature.len() >= 16
        {
            self.secrets.push(signature.to_string());
        }
    }

    /// The closing checks every attack test ends with.
    async fn still_safe(mut self) {
        assert_eq!(
            self.trap.total_hits(),
            0,
            "the gateway fetched a URL taken from a token"
        );
        let (status, _) = self.gw.get_text("/healthz").await;
        assert_eq!(status, 200);
        let good = self.a.mint(&claims(&self.a));
        self.remember(&good);
        let (status, body) = self
            .gw
            .client_credentials("deploy-bot", &good, "api://payments/.default")
            .await;
        assert_eq!(status, 200, "a genuine token after the attacks: {body}");
        if let Some(issued) = body["access_token"].as_str() {
            self.remember(issued);
        }
        // Operational logs (tracing, captured in memory) and the audit trail (a file) both count.
        self.gw.gateway.audit().sync();
        let audit = std::fs::read_to_string(&self.gw.audit_path)
            .expect("the audit log of the test gateway");
        assert!(
            audit.contains(r#""decision.outcome":"denied""#)
                && audit.contains(r#""decision.outcome":"granted""#),
            "the audit events were not captured; the log scan would prove nothing"
        );
        assert!(
            !log_text().is_empty(),
            "no operational log was captured; the log scan would prove nothing"
        );
        let logs = format!("{}\n{audit}", log_text());
        for secret in &self.secrets {
            for line in logs.lines() {
                assert!(
                    !line.contains(secret.as_str()),
                    "a log line carries a token or signature: {line}"
                );
            }
        }
        let _ = &self.clock;
    }
}

fn cc_form(token: &str) -> Vec<(&'static str, &str)> {
    vec![
        ("grant_type", "client_credentials"),
        ("client_id", "deploy-bot"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", token),
        ("scope", "api://payments/.default"),
    ]
}

fn te_form(token: &str) -> Vec<(&'static str, &str)> {
    vec![
        ("grant_type", TOKEN_EXCHANGE),
        ("subject_token", token),
        ("subject_token_type", JWT_TYPE),
        ("resource", "api://payments"),
    ]
}

// === attacks ===

/// HS256 signed with the RSA public key as the HMAC secret, in every encoding a confused
/// verifier might use for the "secret": PEM, DER, the JWK JSON and the raw modulus.
#[actix_web::test]
async fn hs256_with_the_rsa_public_key_as_secret() {
    let mut env = setup().await;
    let pem = env.a.private_pem();
    let der = base64::engine::general_purpose::STANDARD
        .decode(
            pem.lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .expect("pem body");
    let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(&der).expect("rsa key");
    use aws_lc_rs::signature::KeyPair as _;
    let spki = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(
        pair.public_key(),
    )
    .expect("spki");
    let spki = spki.as_ref().to_vec();
    let public_pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&spki)
    );
    let jwk = env.a.public_jwk();
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwk["n"].as_str().expect("n"))
        .expect("n b64");
    let kid = env.a.kid();
    for secret in [
        public_pem.into_bytes(),
        spki,
        jwk.to_string().into_bytes(),
        n,
    ] {
        for header in [
            json!({"alg": "HS256", "kid": kid, "typ": "JWT"}),
            json!({"alg": "HS256", "typ": "JWT"}),
        ] {
            let input = format!(
                "{}.{}",
                b64(header.to_string()),
                b64(claims(&env.a).to_string())
            );
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
            let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
            let token = format!("{input}.{}", b64(tag.as_ref()));
            let body = env.attack_cc(&token).await;
            assert_eq!(body["error_codes"], json!([700027]), "{body}");
            assert!(
                body["error_description"]
                    .as_str()
                    .is_some_and(|d| d.contains("HS256")),
                "{body}"
            );
        }
    }
    env.still_safe().await;
}

/// CVE-2022-21449 ("psychic signatures"): r = s = 0 must never verify, on either curve, in
/// fixed (JOSE) and DER-ish lengths.
#[actix_web::test]
async fn psychic_ecdsa_signatures_are_refused() {
    let mut env = setup().await;
    let cases =
        [(&env.b, "ES256", 64usize), (&env.c, "ES384", 96usize)].map(|(issuer, alg, len)| {
            (
                json!({"alg": alg, "kid": issuer.kid(), "typ": "JWT"}),
                claims(issuer),
                len,
            )
        });
    for (header, claims, len) in cases {
        for signature in [
            vec![0u8; len],
            vec![0u8; len / 2],
            // DER SEQUENCE { INTEGER 0, INTEGER 0 }
            vec![0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00],
            // r = s = n would be the other degenerate; all-ones is out of range entirely.
            vec![0xffu8; len],
        ] {
            let token = forged(&header, &claims, &signature);
            let body = env.attack_cc(&token).await;
            assert_eq!(body["error_codes"], json!([700027]), "{body}");
        }
    }
    env.still_safe().await;
}

/// A key embedded in the token (`jwk`), or pointed to (`jku`, `x5u`, `x5c`), is never used
/// nor fetched, even when the token is validly signed by that attacker key and the pointed-to
/// URL serves it.
#[actix_web::test]
async fn embedded_and_referenced_keys_are_never_used_or_fetched() {
    let mut env = setup().await;
    // The trap is a real issuer whose key signs the token, so following any header would work.
    let attacker_jwk = env.trap.public_jwk();
    let attacker_kid = env.trap.kid();
    let trap = env.trap.url.clone();
    let headers = [
        json!({"alg": "RS256", "jwk": attacker_jwk}),
        json!({"alg": "RS256", "kid": attacker_kid, "jwk": attacker_jwk}),
        json!({"alg": "RS256", "kid": attacker_kid, "jku": format!("{trap}/keys")}),
        json!({"alg": "RS256", "kid": attacker_kid, "x5u": format!("{trap}/cert.pem")}),
        json!({"alg": "RS256", "kid": attacker_kid, "x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]}),
        // The trusted issuer's own kid with a jku: the key must come from A's JWKS only.
        json!({"alg": "RS256", "kid": env.a.kid(), "jku": format!("{trap}/keys")}),
    ];
    for header in headers {
        let token = env
            .trap
            .mint_raw(&header.to_string(), &claims(&env.a).to_string());
        let body = env.attack_cc(&token).await;
        assert_eq!(body["error_codes"], json!([700027]), "{header}: {body}");
    }
    env.still_safe().await;
}

/// A token signed by trusted issuer A's key, presented with trusted issuer B's (or C's) `iss`:
/// keys are looked up in the named issuer's set only.
#[actix_web::test]
async fn keys_of_one_trusted_issuer_never_verify_another() {
    let mut env = setup().await;
    let targets = [
        (env.b.url.clone(), env.b.kid()),
        (env.c.url.clone(), env.c.kid()),
    ];
    for (url, target_kid) in targets {
        let mut c = claims(&env.a);
        c["iss"] = json!(url);
        // Same kid as A's key (so a global kid index would find it), and also with the target's
        // kid (so a per-issuer lookup finds the wrong key type).
        for kid in [env.a.kid(), target_kid] {
            let header = json!({"alg": "RS256", "kid": kid, "typ": "JWT"});
            let token = env.a.mint_raw(&header.to_string(), &c.to_string());
            let body = env.attack_cc(&token).await;
            assert_eq!(body["error_codes"], json!([700027]), "{body}");
        }
    }
    // And B's EC key under A's iss.
    let mut c = claims(&env.b);
    c["iss"] = json!(env.a.url);
    let token = env.b.mint(&c);
    let body = env.attack_cc(&token).await;
    assert_eq!(body["error_codes"], json!([700027]), "{body}");
    env.still_safe().await;
}

/// Duplicate keys hidden from naive duplicate checks: escaped member names, nested objects,
/// and duplicates in the header's `kid`.
#[actix_web::test]
async fn duplicate_keys_in_disguise_are_refused() {
    let mut env = setup().await;
    let kid = env.a.kid();
    let header = json!({"alg": "RS256", "kid": kid}).to_string();
    let good = claims(&env.a);
    let base = good.to_string();
    let payloads = [
        // `s\u0075b` is `sub` once unescaped.
        base.replacen(
            '{',
            r#"{"s\u0075b":"repo:contoso/infra:ref:refs/heads/evil","#,
            1,
        ),
        // `aud` twice: one parser picks ours, another the attacker's.
        base.replacen('{', r#"{"aud":"api://elsewhere","#, 1),
        // A duplicate inside a nested claim.
        base.replacen('{', r#"{"nested":{"a":1,"a":2},"#, 1),
    ];
    for payload in payloads {
        let token = env.a.mint_raw(&header, &payload);
        let body = env.attack_cc(&token).await;
        assert_eq!(body["error_codes"], json!([50027]), "{body}");
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| d.contains("duplicate")),
            "{body}"
        );
    }
    let dup_kid = format!(r#"{{"alg":"RS256","kid":"other","k\u0069d":"{kid}"}}"#);
    let token = env.a.mint_raw(&dup_kid, &base);
    env.attack_cc(&token).await;
    env.still_safe().await;
}

/// An `iss` that merely resembles a trusted one (trailing slash, case, path, userinfo) is
/// untrusted, and nothing is fetched for it: not its discovery, not its keys.
#[actix_web::test]
async fn near_miss_issuers_are_untrusted_and_never_discovered() {
    let mut env = setup().await;
    // Keys are pre-warmed in the background at start: settle them with a genuine exchange so
    // the count below only sees what the attack causes.
    let settle = env.a.mint(&claims(&env.a));
    env.remember(&settle);
    let (status, body) = env
        .gw
        .client_credentials("deploy-bot", &settle, "api://payments/.default")
        .await;
    assert_eq!(status, 200, "{body}");
    let before = env.a.total_hits();
    let a = env.a.url.clone();
    let near_misses = [
        format!("{a}/"),
        a.to_uppercase(),
        format!("{a}/tenant"),
        a.replace("http://", "http://user@"),
        format!("{a}#"),
        format!("{a}?x=1"),
        env.trap.url.clone(),
    ];
    for iss in near_misses {
        let mut c = claims(&env.a);
        c["iss"] = json!(iss);
        let token = env.a.mint(&c);
        let body = env.attack_cc(&token).await;
        assert_eq!(body["error_codes"], json!([700211]), "{iss}: {body}");
    }
    assert_eq!(env.a.total_hits(), before, "a near-miss iss caused a fetch");
    env.still_safe().await;
}

/// Audience is checked on RFC 8693 token exchange too (not only client credentials): a token
/// for another audience, or with none, is refused as invalid_grant.
#[actix_web::test]
async fn audience_is_checked_on_token_exchange() {
    let mut env = setup().await;
    let mut cases = Vec::new();
    for aud in [
        json!("api://elsewhere"),
        json!([]),
        json!(["API://TRUSTBRIDGE"]),
    ] {
        let mut c = claims(&env.a);
        c["aud"] = aud;
        cases.push(c);
    }
    let mut no_aud = claims(&env.a);
    no_aud.as_object_mut().expect("object").remove("aud");
    cases.push(no_aud);
    for c in cases {
        let token = env.a.mint(&c);
        for form in [te_form(&token), {
            let mut f = te_form(&token);
            f.push(("client_id", "deploy-bot"));
            f
        }] {
            let body = env.attack(&token, &form, "invalid_grant").await;
            assert_eq!(body["error_codes"], json!([700212]), "{c}: {body}");
        }
    }
    env.still_safe().await;
}

/// A flood of tokens with unknown kids triggers a bounded number of JWKS fetches (the
/// unknown-kid refresh is rate limited per issuer), not one per token.
#[actix_web::test]
async fn unknown_kid_flood_causes_bounded_fetches() {
    let mut env = setup().await;
    env.warm().await;
    let keys_before = env.a.hits("/keys");
    let discovery_before = env.a.hits("/.well-known/openid-configuration");
    for i in 0..40 {
        let header = json!({"alg": "RS256", "kid": format!("flood-{i}")});
        let token = env
            .a
            .mint_raw(&header.to_string(), &claims(&env.a).to_string());
        let body = env.attack_cc(&token).await;
        assert_eq!(body["error_codes"], json!([700027]), "{body}");
    }
    let fetches = env.a.hits("/keys") - keys_before
        + env.a.hits("/.well-known/openid-configuration")
        - discovery_before;
    assert!(
        fetches <= 2,
        "40 unknown kids caused {fetches} fetches within one refresh interval"
    );
    env.still_safe().await;
}

/// `kid` values that look like paths, URLs or log injection are just unknown kids: no file or
/// URL is derived from them, and nothing of them reaches a log line raw.
#[actix_web::test]
async fn hostile_kids_are_just_unknown() {
    let mut env = setup().await;
    let trap = env.trap.url.clone();
    let kids = [
        "../../../../etc/passwd".to_string(),
        "..\\..\\windows\\win.ini".to_string(),
        "/dev/zero".to_string(),
        "keys/../../secret".to_string(),
        format!("{trap}/keys"),
        "%2e%2e%2f%2e%2e%2f".to_string(),
        "kid\u{0}nul".to_string(),
        "kid\nFORGED-LOG-LINE decision.outcome=granted".to_string(),
        "kid\r\n\u{1b}[31mred".to_string(),
        "x".repeat(4000),
    ];
    env.warm().await;
    let a_before = env.a.total_hits();
    for kid in kids {
        let header = json!({"alg": "RS256", "kid": kid});
        let token = env
            .a
            .mint_raw(&header.to_string(), &claims(&env.a).to_string());
        let body = env.attack_cc(&token).await;
        assert_eq!(body["error_codes"], json!([700027]), "{body}");
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(
            !description.chars().any(char::is_control),
            "{description:?}"
        );
    }
    // At most the one rate-limited refresh, and only of A's configured endpoints.
    assert!(env.a.total_hits() - a_before <= 2);
    for path in ["/etc/passwd", "/dev/zero", "/secret"] {
        assert_eq!(env.a.hits(path), 0);
    }
    assert!(
        !log_text().lines().any(|l| l.starts_with("FORGED-LOG-LINE")),
        "a kid injected a log line"
    );
    env.still_safe().await;
}

/// Every security-relevant field given twice is refused, including when the second copy hides
/// behind percent-encoding of its name or value.
#[actix_web::test]
async fn duplicated_form_fields_are_refused() {
    let mut env = setup().await;
    let token = env.a.mint(&claims(&env.a));
    let other = env.b.mint(&claims(&env.b));
    env.remember(&other);
    let base = encode(&cc_form(&token));
    let extras = [
        format!("&client_assertion={other}"),
        "&grant_type=client_credentials".to_string(),
        "&scope=api%3A%2F%2Fledger%2F.default".to_string(),
        "&client%5Fid=another".to_string(),
        "&%63lient_id=deploy-bot".to_string(),
        format!(
            "&client_assertion_type={}",
            encode(&[("", JWT_BEARER)]).trim_start_matches('=')
        ),
    ];
    for extra in extras {
        let body = format!("{base}{extra}");
        env.remember(&token);
        let resp = http()
            .post(format!("{}/contoso/oauth2/v2.0/token", env.gw.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("post");
        let status = resp.status().as_u16();
        let json: Value = resp.json().await.expect("json");
        assert_eq!(status, 400, "{extra}: {json}");
        assert_eq!(json["error"], "invalid_request", "{json}");
        assert!(
            json["error_description"]
                .as_str()
                .is_some_and(|d| d.contains("more than once")),
            "{json}"
        );
    }
    // Token exchange: two subject tokens, two resources.
    let te = encode(&te_form(&token));
    for extra in [
        format!("&subject_token={other}"),
        "&resource=api%3A%2F%2Fpayments".to_string(),
    ] {
        let resp = http()
            .post(format!("{}/contoso/oauth2/v2.0/token", env.gw.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("{te}{extra}"))
            .send()
            .await
            .expect("post");
        assert_eq!(resp.status().as_u16(), 400);
        let json: Value = resp.json().await.expect("json");
        assert_eq!(json["error"], "invalid_request", "{json}");
    }
    env.still_safe().await;
}

/// Size limits on the way in: a token just over the cap, a body of many small parameters, a
/// body far over the cap, and a trusted issuer serving an oversized JWKS (keys unavailable:
/// the request fails closed with `temporarily_unavailable`, never a grant).
#[actix_web::test]
async fn oversized_inputs_are_bounded() {
    let mut env = setup().await;
    // A token whose header alone is over the cap.
    let header = json!({"alg": "RS256", "kid": env.a.kid(), "pad": "x".repeat(17 * 1024)});
    let token = env
        .a
        .mint_raw(&header.to_string(), &claims(&env.a).to_string());
    let body = env.attack_cc(&token).await;
    assert_eq!(body["error_codes"], json!([50027]), "{body}");
    // Many parameters.
    let many: String = (0..200).map(|i| format!("p{i}=v&")).collect();
    let resp = http()
        .post(format!("{}/contoso/oauth2/v2.0/token", env.gw.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("{many}grant_type=client_credentials"))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 400);
    let json: Value = resp.json().await.expect("json");
    assert_eq!(json["error"], "invalid_request", "{json}");
    // A body of 8 MiB.
    let resp = http()
        .post(format!("{}/contoso/oauth2/v2.0/token", env.gw.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&pad={}",
            "x".repeat(8 << 20)
        ))
        .send()
        .await;
    if let Ok(resp) = resp {
        // The gateway may also cut the connection before reading it all; both are fine.
        assert_eq!(resp.status().as_u16(), 413);
    }
    // Issuer C rotates to a key the gateway has not seen and serves a 2 MiB JWKS: the refresh
    // for the unknown kid is refused, and the token with it.
    env.c.rotate_keys();
    env.c.serve_oversized();
    let token = env.c.mint(&claims(&env.c));
    env.remember(&token);
    let (status, body) = env
        .gw
        .client_credentials("deploy-bot", &token, "api://payments/.default")
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(body.get("access_token").is_none());
    env.still_safe().await;
}
