//! DPoP proofs (RFC 9449) presented at the token endpoint: [`verify`] parses one proof JWT and
//! checks everything RFC 9449 §4.3 asks of it that needs no shared state (`typ`, an asymmetric
//! `alg`, a public `jwk` that fits it, the signature, `htm`, `htu`, a fresh `iat`, a bounded
//! `jti`), and returns the key's RFC 7638 thumbprint for the access token's `cnf.jkt`.
//!
//! Pure, like `exchange::decide`: `now` is a parameter, and this module never touches the
//! replay store or HTTP types. Uniqueness of `jti` is the caller's part: the token handler
//! records [`Proof::replay_key`] through `state::guard` until [`Proof::remember_until`], so a
//! proof is accepted once across every replica. Errors name the failed check and never echo
//! the proof.

#[cfg(test)]
mod tests;

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::clock::unix_seconds;
use crate::issuers::jwks::{EcCurve, IssuerKey, KeyKind, parse_jwk};
use crate::issuers::validate::{MIN_RSA_BITS, parse_strict_json};
use crate::jose::{SigningAlgorithm, ThumbprintMembers, jwk_thumbprint};
use crate::refusal::{Context, OAuthError, Refusal, Refuse};

/// The name of the request header carrying a proof.
pub const HEADER: &str = "dpop";
/// The proof's required `typ` (RFC 9449 §4.2).
pub const PROOF_TYPE: &str = "dpop+jwt";
/// Largest proof accepted, in bytes (an RSA-8192 key and signature fit with room to spare).
pub const MAX_PROOF_BYTES: usize = 8 * 1024;
/// Longest `jti` accepted, in characters.
pub const MAX_JTI_CHARS: usize = 256;
/// How old a proof's `iat` may be by default (`--dpop-proof-window`).
pub const DEFAULT_PROOF_WINDOW: Duration = Duration::from_secs(60);
/// How far ahead of the gateway clock a proof's `iat` may be (the client's clock skew).
pub const MAX_FUTURE_SKEW: Duration = Duration::from_secs(5);
/// The proof algorithms accepted, in discovery's order (`dpop_signing_alg_values_supported`).
pub const ALGORITHMS: [SigningAlgorithm; 3] = [
    SigningAlgorithm::ES256,
    SigningAlgorithm::EdDSA,
    SigningAlgorithm::RS256,
];
/// JWK members that only a private or symmetric key has (RFC 7518 §6.2.2, §6.3.2, §6.4).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
/// Prefix of proof keys in the replay store, apart from subject tokens'.
const REPLAY_PREFIX: &str = "dpop";

/// What a proof must match: this request and the gateway's clock.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The request's method (`POST` at the token endpoint).
    pub htm: &'a str,
    /// The endpoint's public URL (`{publicUrl}/{tenant}/oauth2/v2.0/token`).
    pub htu: &'a str,
    /// The gateway's time.
    pub now: SystemTime,
    /// How old `iat` may be.
    pub window: Duration,
}

/// A verified proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// RFC 7638 SHA-256 thumbprint of the proof key, base64url: the token's `cnf.jkt`.
    pub jkt: String,
    /// The proof's `jti`.
    pub jti: String,
    /// The proof's `iat` (unix seconds).
    pub iat: u64,
}

impl Proof {
    /// The proof's key in the replay store: `dpop:<jkt>:<SHA-256 of jti>`, apart from subject
    /// tokens' keys; hashing keeps the caller's text out of the store and bounds the key.
    pub fn replay_key(&self) -> String {
        let jti: String = Sha256::digest(self.jti.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{REPLAY_PREFIX}:{}:{jti}", self.jkt)
    }

    /// Until when (unix seconds) the `jti` must be remembered: after `iat + window` the proof
    /// is refused as stale anyway.
    pub fn remember_until(&self, window: Duration) -> u64 {
        self.iat.saturating_add(window.as_secs())
    }
}

/// Why a proof was refused. Each is answered 400 `invalid_dpop_proof`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// More than one `DPoP` header (RFC 9449 §4.3 step 1).
    #[error("the request carries more than one DPoP header")]
    Multiple,
    /// Larger than [`MAX_PROOF_BYTES`], or not visible ASCII.
    #[error("the DPoP header is too large or not text")]
    Unreadable,
    /// Not a compact JWS of JSON objects (the `&str` names the part).
    #[error("the DPoP proof is not a well-formed JWT: {0}")]
    Malformed(&'static str),
    /// `typ` is not `dpop+jwt`.
    #[error("the DPoP proof's typ must be dpop+jwt")]
    Type,
    /// `alg` is missing or not one of [`ALGORITHMS`] (`none` and HMAC included).
    #[error("the DPoP proof's alg must be one of ES256, EdDSA, RS256")]
    Algorithm,
    /// No `jwk` header, or not an object.
    #[error("the DPoP proof's header carries no jwk")]
    NoKey,
    /// The `jwk` has private (or symmetric) key members.
    #[error("the DPoP proof's jwk must be a public key without private members")]
    PrivateKey,
    /// The `jwk` is not a usable signing key (unknown `kty` or curve, bad encoding, RSA under
    /// 2048 bits).
    #[error("the DPoP proof's jwk is not a usable public signing key")]
    UnusableKey,
    /// The key's `kty`/`crv` (or its own `alg`) does not fit the proof's `alg`.
    #[error("the DPoP proof's jwk does not fit its alg")]
    KeyMismatch,
    /// The signature does not verify with the header's key.
    #[error("the DPoP proof's signature does not verify with its jwk")]
    BadSignature,
    /// A required claim is missing or of the wrong type.
    #[error("the DPoP proof lacks a valid {0} claim")]
    MissingClaim(&'static str),
    /// `htm` is not this request's method.
    #[error("the DPoP proof's htm does not match the request method")]
    Method,
    /// `htu` is not this endpoint's URL (the sent value, shown bounded).
    #[error("the DPoP proof's htu does not match this token endpoint's URL")]
    Url {
        /// The proof's `htu`, sanitised and bounded.
        sent: String,
        /// The endpoint's URL.
        expected: String,
    },
    /// `iat` is older than the window.
    #[error("the DPoP proof is too old (iat outside the accepted window); send a fresh proof")]
    Stale,
    /// `iat` is in the future beyond [`MAX_FUTURE_SKEW`].
    #[error("the DPoP proof's iat is in the future")]
    Future,
    /// `jti` longer than [`MAX_JTI_CHARS`].
    #[error("the DPoP proof's jti is too long")]
    JtiTooLong,
    /// This key's `jti` was already used within the window.
    #[error("the DPoP proof was already used (its jti was seen before); send a fresh proof")]
    Replayed,
}

impl Refuse for ProofError {
    /// 400 `invalid_dpop_proof` (RFC 9449 §5), the description naming the failed check. The
    /// expected `htu` goes to the detail only.
    fn refusal(&self, _: Context) -> Refusal {
        let refusal = Refusal::bad_request(
            OAuthError::InvalidDpopProof,
            None,
            "invalid_dpop_proof",
            self.to_string(),
        );
        match self {
            Self::Url { sent, expected } => {
                refusal.with_detail(format!("{self}: sent '{sent}', expected '{expected}'"))
            }
            _ => refusal,
        }
    }
}

/// Parses and verifies the proof of one `DPoP` header value against `expected`.
///
/// # Errors
/// A [`ProofError`] naming the first failed check; [`ProofError::Multiple`] and
/// [`ProofError::Replayed`] are the caller's to detect.
pub fn verify(proof: &str, expected: &Expected<'_>) -> Result<Proof, ProofError> {
    if proof.len() > MAX_PROOF_BYTES {
        return Err(ProofError::Unreadable);
    }
    let mut parts = proof.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ProofError::Malformed("expected three dot-separated parts"));
    };
    let header = decode_object(header_b64, "the header is not a base64url JSON object")?;
    let typ = header.get("typ").and_then(Value::as_str);
    if !typ.is_some_and(|t| t.eq_ignore_ascii_case(PROOF_TYPE)) {
        return Err(ProofError::Type);
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(SigningAlgorithm::parse)
        .filter(|alg| ALGORITHMS.contains(alg))
        .ok_or(ProofError::Algorithm)?;
    if header.contains_key("crit") {
        return Err(ProofError::Malformed("crit is not supported"));
    }
    let jwk_value = header.get("jwk").ok_or(ProofError::NoKey)?;
    let jwk = jwk_value.as_object().ok_or(ProofError::NoKey)?;
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(ProofError::PrivateKey);
    }
    let key = parse_jwk(jwk_value).ok_or(ProofError::UnusableKey)?;
    check_key(&key, alg)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| ProofError::Malformed("the signature is not base64url"))?;
    let signing_input = &proof[..header_b64.len() + 1 + payload_b64.len()];
    if !key.key.verify(alg, signing_input.as_bytes(), &signature) {
        return Err(ProofError::BadSignature);
    }

    let claims = decode_object(payload_b64, "the payload is not a base64url JSON object")?;
    let text = |name: &'static str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .ok_or(ProofError::MissingClaim(name))
    };
    if text("htm")? != expected.htm {
        return Err(ProofError::Method);
    }
    let htu = text("htu")?;
    if !same_url(htu, expected.htu) {
        return Err(ProofError::Url {
            sent: crate::text::shown(htu, 200),
            expected: expected.htu.to_string(),
        });
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_u64)
        .ok_or(ProofError::MissingClaim("iat"))?;
    let now = unix_seconds(expected.now);
    if iat > now.saturating_add(MAX_FUTURE_SKEW.as_secs()) {
        return Err(ProofError::Future);
    }
    if iat.saturating_add(expected.window.as_secs()) < now {
        return Err(ProofError::Stale);
    }
    let jti = text("jti")?;
    if jti.chars().count() > MAX_JTI_CHARS {
        return Err(ProofError::JtiTooLong);
    }
    Ok(Proof {
        jkt: thumbprint(jwk, key.kind),
        jti: jti.to_string(),
        iat,
    })
}

/// Whether the proof's `htu` names `expected`: both parsed as URLs (scheme and host compared
/// case-insensitively, default ports dropped), query and fragment ignored (RFC 9449 §4.3).
pub fn same_url(htu: &str, expected: &str) -> bool {
    let strip = |text: &str| {
        url::Url::parse(text).ok().map(|mut u| {
            u.set_query(None);
            u.set_fragment(None);
            u
        })
    };
    matches!((strip(htu), strip(expected)), (Some(a), Some(b)) if a == b)
}

fn decode_object(part: &str, what: &'static str) -> Result<Map<String, Value>, ProofError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| ProofError::Malformed(what))?;
    match parse_strict_json(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ProofError::Malformed(what)),
    }
}

/// The key fits the algorithm: a P-256 key for ES256, Ed25519 for EdDSA, RSA of at least
/// [`MIN_RSA_BITS`] for RS256, and the JWK's own `alg`, if any, is the proof's.
fn check_key(key: &IssuerKey, alg: SigningAlgorithm) -> Result<(), ProofError> {
    use SigningAlgorithm as A;
    match (alg, key.kind) {
        (A::ES256, KeyKind::Ec(EcCurve::P256)) | (A::EdDSA, KeyKind::Ed25519) => {}
        (A::RS256, KeyKind::Rsa { bits }) if bits >= MIN_RSA_BITS => {}
        (A::RS256, KeyKind::Rsa { .. }) => return Err(ProofError::UnusableKey),
        _ => return Err(ProofError::KeyMismatch),
    }
    if key.alg.as_deref().is_some_and(|a| a != alg.as_str()) {
        return Err(ProofError::KeyMismatch);
    }
    Ok(())
}

/// The RFC 7638 thumbprint of a JWK [`parse_jwk`] accepted as `kind`: its members are strict
/// base64url (decoding refused padding and stray bits) and its curve one [`check_key`] allowed,
/// so they go into the canonical JSON as sent.
fn thumbprint(jwk: &Map<String, Value>, kind: KeyKind) -> String {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str).unwrap_or_default();
    let members = match kind {
        KeyKind::Rsa { .. } => ThumbprintMembers::Rsa {
            n: member("n"),
            e: member("e"),
        },
        KeyKind::Ec(_) => ThumbprintMembers::Ec {
            crv: member("crv"),
            x: member("x"),
            y: member("y"),
        },
        KeyKind::Ed25519 => ThumbprintMembers::Okp {
            crv: member("crv"),
            x: member("x"),
        },
    };
    jwk_thumbprint(&members)
}
