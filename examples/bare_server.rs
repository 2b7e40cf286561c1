//! The bare-server reference of the load benchmark (`scripts/bench-load.sh`): the least an
//! HTTP token endpoint can do for the exchange the benchmark sends, so that trustbridge can be
//! measured against it in the same run, placement and harness.
//!
//! ```sh
//! cargo run --release --example bare_server -- <listen-addr> <jwks-file> [workers]
//! ```
//!
//! One actix-web route, `POST /{tenant}/oauth2/v2.0/token`, with the same worker model as
//! trustbridge (`workers` threads, `0` or absent = one per core). Per request it parses the
//! urlencoded Entra-style client-credentials body, verifies the RS256 `client_assertion`
//! against the first RSA key of `<jwks-file>` (the demo issuer's, parsed once at start), checks
//! its `kid`, `iss` and `exp`, signs an ES256 access token (key parsed once) with a claim set of
//! the size trustbridge issues, and answers trustbridge's JSON shape and cache headers.
//!
//! It must not be mistaken for a gateway: there is no policy, no audience or subject check, no
//! audit, no metrics and no self-check of what it signs. It exists only to be measured.

use std::net::SocketAddr;
use std::path::Path;

use actix_web::http::header::{CACHE_CONTROL, HeaderValue, PRAGMA};
use actix_web::{App, HttpResponse, HttpServer, web};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
    RsaPublicKeyComponents,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::json;
use trustbridge::clock::{Clock, SystemClock, unix_seconds};
use trustbridge::demo::DEMO_ISSUER_URL;
use trustbridge::exchange::request::JWT_BEARER;

/// Lifetime of the issued token, as the bundled `infra-main` credential grants (15 min).
const LIFETIME_SECS: u64 = 900;
/// The `kid` of the ES256 key, as long as trustbridge's.
const SIGNING_KID: &str = "bare-es256-0000000000000000000000000000";

/// Keys and fixed strings, built once at start and shared by every worker.
struct Bare {
    /// The demo issuer's RS256 key from the jwks file.
    verify: ParsedPublicKey,
    /// Its `kid`: an assertion naming another key is refused.
    verify_kid: String,
    /// The ES256 signing key (generated as PKCS#8 and parsed once).
    sign: EcdsaKeyPair,
    /// base64url of the issued tokens' JOSE header, which never changes.
    header_b64: String,
    /// `http://<listen-addr>`, the prefix of the issued `iss`.
    public_url: String,
    rng: SystemRandom,
}

/// The token request fields the benchmark sends (Entra-style client credentials).
#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    client_id: String,
    client_assertion_type: String,
    client_assertion: String,
    scope: String,
}

#[derive(Deserialize)]
struct AssertionHeader {
    alg: String,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    exp: u64,
    repository: Option<String>,
}

/// The issued claims: trustbridge's fixed set (the same names, similar values) and one mapped.
#[derive(Serialize)]
struct IssuedClaims<'a> {
    iss: String,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
    jti: String,
    client_id: &'a str,
    azp: &'a str,
    oid: &'a str,
    tid: &'a str,
    roles: [&'a str; 2],
    idtyp: &'a str,
    src_iss: &'a str,
    src_sub: &'a str,
    src_cred: &'a str,
    repository: &'a str,
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: bare_server <listen-addr> <jwks-file> [workers]");
        std::process::exit(64);
    }
    let addr: SocketAddr = args[0].parse().expect("listen-addr is host:port");
    let workers: usize = args
        .get(2)
        .map_or(0, |s| s.parse().expect("workers is a number"));
    let workers = match workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let (verify, verify_kid) = load_rsa_key(Path::new(&args[1]));
    let rng = SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("ec key");
    let sign = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .expect("generated key parses");
    let header = json!({ "typ": "at+jwt", "alg": "ES256", "kid": SIGNING_KID });
    let bare = web::Data::new(Bare {
        verify,
        verify_kid,
        sign,
        header_b64: URL_SAFE_NO_PAD.encode(header.to_string()),
        public_url: format!("http://{addr}"),
        rng,
    });
    actix_web::rt::System::new().block_on(
        HttpServer::new(move || {
            App::new()
                .app_data(bare.clone())
                .route("/{tenant}/oauth2/v2.0/token", web::post().to(token))
        })
        .workers(workers)
        .bind(addr)?
        .run(),
    )
}

/// The first RSA key of a JWK Set file, as a parsed RS256 verification key, and its `kid`.
fn load_rsa_key(path: &Path) -> (ParsedPublicKey, String) {
    let text = std::fs::read_to_string(path).expect("read the jwks file");
    let jwks: serde_json::Value = serde_json::from_str(&text).expect("jwks file is JSON");
    let key = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kty"] == "RSA"))
        .expect("the jwks file holds an RSA key");
    let member = |name: &str| {
        let b64 = key[name].as_str().expect("n and e are strings");
        URL_SAFE_NO_PAD.decode(b64).expect("n and e are base64url")
    };
    let (n, e) = (member("n"), member("e"));
    let parsed = RsaPublicKeyComponents {
        n: &n[..],
        e: &e[..],
    }
    .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
    .expect("a valid RSA public key");
    let kid = key["kid"].as_str().unwrap_or_default().to_owned();
    (parsed, kid)
}

/// `POST /{tenant}/oauth2/v2.0/token`: verify the assertion, sign a token, answer JSON.
async fn token(
    bare: web::Data<Bare>,
    tenant: web::Path<String>,
    form: web::Form<TokenForm>,
) -> HttpResponse {
    let now = unix_seconds(SystemClock.now());
    match exchange(&bare, &tenant, &form, now) {
        Some(access_token) => HttpResponse::Ok()
            .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .insert_header((PRAGMA, HeaderValue::from_static("no-cache")))
            .json(json!({
                "token_type": "Bearer",
                "expires_in": LIFETIME_SECS,
                "ext_expires_in": LIFETIME_SECS,
                "access_token": access_token,
            })),
        None => HttpResponse::BadRequest().json(json!({ "error": "invalid_client" })),
    }
}

/// The crypto of an exchange: the RS256 verification and the ES256 signature. `None` for any
/// request that is not a well-formed, validly signed, unexpired demo-issuer assertion.
fn exchange(bare: &Bare, tenant: &str, form: &TokenForm, now: u64) -> Option<String> {
    if form.grant_type != "client_credentials" || form.client_assertion_type != JWT_BEARER {
        return None;
    }
    let (signing_input, signature) = form.client_assertion.rsplit_once('.')?;
    let (header, payload) = signing_input.split_once('.')?;
    let header: AssertionHeader =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    if header.alg != "RS256" || header.kid.as_deref() != Some(&bare.verify_kid) {
        return None;
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    bare.verify
        .verify_sig(signing_input.as_bytes(), &signature)
        .ok()?;
    let claims: AssertionClaims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    if claims.iss != DEMO_ISSUER_URL || claims.exp <= now {
        return None;
    }

    let resource = form.scope.strip_suffix("/.default").unwrap_or(&form.scope);
    let object_id = "0b4f6a52-86f4-5c8e-9d0a-3f1e2c7b5a91";
    let issued = IssuedClaims {
        iss: format!("{}/{tenant}/v2.0", bare.public_url),
        sub: object_id,
        aud: resource,
        iat: now,
        nbf: now,
        exp: now + LIFETIME_SECS,
        jti: uuid::Uuid::new_v4().to_string(),
        client_id: &form.client_id,
        azp: &form.client_id,
        oid: object_id,
        tid: "5d1c3e7a-2b9f-5a4d-8c6e-1f0a9b8c7d6e",
        roles: ["Payments.Read", "Payments.Write"],
        idtyp: "app",
        src_iss: DEMO_ISSUER_URL,
        src_sub: &claims.sub,
        src_cred: "infra-main",
        repository: claims.repository.as_deref().unwrap_or("unknown"),
    };
    let payload = serde_json::to_vec(&issued).ok()?;
    let mut token = String::with_capacity(bare.header_b64.len() + payload.len() * 4 / 3 + 100);
    token.push_str(&bare.header_b64);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    let signature = bare.sign.sign(&bare.rng, token.as_bytes()).ok()?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut token);
    Some(token)
}
