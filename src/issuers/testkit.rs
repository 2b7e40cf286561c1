//! Test-only helpers for the issuers module: signing keys and their JWKs, token minting, issuer
//! and policy values, and a tiny HTTP server on `127.0.0.1:0` that serves discovery and JWKS,
//! counts hits per path, and misbehaves on request.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair as _,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::jose::SigningAlgorithm;
use crate::policy::PolicySet;
use crate::policy::model::{Issuer, KeySourceSpec, Origin};
use crate::policy::presets::Preset;
use crate::policy::set::Documents;

/// Unix time the tests' clocks start at.
pub const T0: u64 = 1_700_000_000;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

// === keys ===

/// A signing key and its public JWK.
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

/// Strips the PKCS#8 wrapper from an RSA key: jsonwebtoken signs with PKCS#1 DER.
fn pkcs8_to_pkcs1(pkcs8: &[u8]) -> Vec<u8> {
    fn tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = input[0];
        let (len, header) = if input[1] < 0x80 {
            (input[1] as usize, 2)
        } else {
            let n = (input[1] & 0x7f) as usize;
            let len = input[2..2 + n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (len, 2 + n)
        };
        (tag, &input[header..header + len], &input[header + len..])
    }
    let (seq, outer, _) = tlv(pkcs8);
    assert_eq!(seq, 0x30);
    let (int, _, rest) = tlv(outer);
    assert_eq!(int, 0x02);
    let (alg_id, _, rest) = tlv(rest);
    assert_eq!(alg_id, 0x30);
    let (octets, key, _) = tlv(rest);
    assert_eq!(octets, 0x04);
    key.to_vec()
}

/// PKCS#1 private key, modulus, exponent.
type RsaMaterial = (Vec<u8>, Vec<u8>, Vec<u8>);

/// Generated once per slot per test run, since RSA key generation is slow.
fn rsa_material(slot: usize) -> &'static RsaMaterial {
    static SLOTS: [OnceLock<RsaMaterial>; 2] = [OnceLock::new(), OnceLock::new()];
    SLOTS[slot].get_or_init(|| {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let pkcs8: aws_lc_rs::encoding::Pkcs8V1Der<'_> = pair.as_der().unwrap();
        let public = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        (pkcs8_to_pkcs1(pkcs8.as_ref()), public.n, public.e)
    })
}

impl TestKey {
    /// RSA 2048 for `alg` (RS256/384/512, PS256); `slot` 0 or 1 picks one of two key pairs.
    pub fn rsa(kid: &str, alg: Algorithm, slot: usize) -> Self {
        let (private, n, e) = rsa_material(slot);
        Self {
            kid: kid.to_string(),
            alg,
            encoding: EncodingKey::from_rsa_der(private),
            jwk: json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": format!("{alg:?}"),
                        "n": b64(n), "e": b64(e)}),
        }
    }

    /// RS256 on slot 0.
    pub fn rs256(kid: &str) -> Self {
        Self::rsa(kid, Algorithm::RS256, 0)
    }

    /// A fresh P-256 key (ES256).
    pub fn es256(kid: &str) -> Self {
        Self::ec(kid, Algorithm::ES256)
    }

    /// A fresh P-384 key (ES384).
    pub fn es384(kid: &str) -> Self {
        Self::ec(kid, Algorithm::ES384)
    }

    fn ec(kid: &str, alg: Algorithm) -> Self {
        let (signing, crv, len) = match alg {
            Algorithm::ES256 => (&ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32),
            _ => (&ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48),
        };
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(signing, &SystemRandom::new()).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref()).unwrap();
        let point = pair.public_key().as_ref();
        let (x, y) = point[1..].split_at(len);
        Self {
            kid: kid.to_string(),
            alg,
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({"kty": "EC", "crv": crv, "kid": kid, "use": "sig",
                        "alg": format!("{alg:?}"), "x": b64(x), "y": b64(y)}),
        }
    }

    /// A fresh Ed25519 key (EdDSA).
    pub fn ed25519(kid: &str) -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        Self {
            kid: kid.to_string(),
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "use": "sig",
                        "alg": "EdDSA", "x": b64(pair.public_key().as_ref())}),
        }
    }

    /// The JWK without its `alg` member.
    pub fn jwk_without_alg(&self) -> Value {
        let mut jwk = self.jwk.clone();
        jwk.as_object_mut().unwrap().remove("alg");
        jwk
    }

    /// A token with header `{alg, kid, typ}` over `claims`, via `jsonwebtoken::encode`.
    pub fn mint(&self, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }

    /// A token with exactly this header and payload text, signed with this key's algorithm.
    pub fn mint_raw(&self, header_json: &str, payload_json: &str) -> String {
        let input = format!(
            "{}.{}",
            b64(header_json.as_bytes()),
            b64(payload_json.as_bytes())
        );
        let signature =
            jsonwebtoken::crypto::sign(input.as_bytes(), &self.encoding, self.alg).unwrap();
        format!("{input}.{signature}")
    }
}

/// A JWKS document holding the public parts of `keys`.
pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
}

/// Claims valid at [`T0`] for `iss`.
pub fn claims(iss: &str) -> Value {
    json!({"iss": iss, "sub": "repo:contoso/infra", "aud": "api://trustbridge",
           "iat": T0, "nbf": T0, "exp": T0 + 600, "jti": "j-1"})
}

// === policy values ===

/// An issuer named `name` at `url` with every algorithm allowed and 60 s leeway.
pub fn issuer(name: &str, url: &str, keys: KeySourceSpec, allow_insecure_http: bool) -> Issuer {
    Issuer {
        name: name.to_string(),
        issuer: url.to_string(),
        preset: Preset::Generic,
        keys,
        algorithms: SigningAlgorithm::ALL.to_vec(),
        leeway: Duration::from_secs(60),
        allow_insecure_http,
        one_time_use: false,
        origin: Origin {
            file: PathBuf::from("policies/test.yaml"),
            document: 1,
        },
        hygiene: crate::policy::model::TokenHygiene::default(),
        ca_file: None,
        fetch: crate::fetch_settings::FetchOverrides::default(),
    }
}

/// A policy set declaring exactly `issuers`.
pub fn policy_set(issuers: Vec<Issuer>) -> PolicySet {
    PolicySet::assemble(
        Documents {
            issuers,
            ..Documents::default()
        },
        String::new(),
    )
}

// === HTTP server ===

/// One canned response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether to send `Content-Length` (otherwise the body ends when the connection closes).
    pub content_length: bool,
}

impl Reply {
    pub fn json(body: &Value) -> Self {
        Self {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
            content_length: true,
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn redirect(location: &str) -> Self {
        Self {
            status: 302,
            headers: vec![("Location".into(), location.to_string())],
            body: Vec::new(),
            content_length: true,
        }
    }
}

#[derive(Default)]
struct ServerState {
    routes: HashMap<String, Reply>,
    hits: HashMap<String, usize>,
    fail_with: Option<u16>,
}

/// A real HTTP/1.1 server on `127.0.0.1:0`; stops when dropped.
pub struct TestServer {
    addr: SocketAddr,
    state: Arc<Mutex<ServerState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(ServerState::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_one(stream, shared.clone()));
            }
        });
        Self { addr, state, task }
    }

    /// `http://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    /// The same server under another host name: `http://localhost:{port}`.
    pub fn localhost_url(&self) -> String {
        format!("http://localhost:{}", self.addr.port())
    }

    pub fn set(&self, path: &str, reply: Reply) {
        self.state
            .lock()
            .unwrap()
            .routes
            .insert(path.to_string(), reply);
    }

    /// Serves a discovery document at `/.well-known/openid-configuration` naming `issuer`, and
    /// `jwks` at `/jwks`.
    pub fn serve_issuer(&self, issuer: &str, jwks: &Value) {
        self.set(
            "/.well-known/openid-configuration",
            Reply::json(&json!({"issuer": issuer, "jwks_uri": format!("{}/jwks", self.url())})),
        );
        self.set("/jwks", Reply::json(jwks));
    }

    /// Answers every request with this status (an outage), or normally again with `None`.
    pub fn fail_with(&self, status: Option<u16>) {
        self.state.lock().unwrap().fail_with = status;
    }

    pub fn hits(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

async fn serve_one(mut stream: tokio::net::TcpStream, state: Arc<Mutex<ServerState>>) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request);
    let path = text
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .unwrap_or("")
        .to_string();
    let reply = {
        let mut state = state.lock().unwrap();
        *state.hits.entry(path.clone()).or_default() += 1;
        match (state.fail_with, state.routes.get(&path)) {
            (Some(status), _) => Reply {
                status,
                headers: Vec::new(),
                body: b"unavailable".to_vec(),
                content_length: true,
            },
            (None, Some(reply)) => reply.clone(),
            (None, None) => {
                eprintln!("test server: unexpected request for {path}");
                Reply {
                    status: 404,
                    headers: Vec::new(),
                    body: Vec::new(),
                    content_length: true,
                }
            }
        }
    };
    let mut head = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", reply.status);
    if reply.content_length {
        head.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
    }
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&reply.body).await;
    let _ = stream.shutdown().await;
}
