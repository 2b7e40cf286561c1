//! Lenient parsing of an issuer's JWKS into ready-to-use verification keys.
//!
//! One odd key (an encryption key, an unknown curve, a symmetric `oct` key, broken base64) is
//! skipped rather than failing the whole set, because issuers publish such keys and the rest
//! must keep working. The document itself must still be a JSON object with a `keys` array.
//! Each key is parsed once here into an aws-lc-rs [`ParsedPublicKey`] (see [`Verifier`]), so
//! verifying a token does no key parsing.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, ParsedPublicKey,
    RsaPublicKeyComponents,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::jose::{self, SigningAlgorithm};

/// Keys kept from one JWKS, at most; the rest are ignored.
pub const MAX_KEYS: usize = 100;

/// Why a JWKS document was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// Not JSON, or not a JSON object.
    #[error("the JWKS is not a JSON object")]
    NotAnObject,
    /// No `keys` array.
    #[error("the JWKS has no keys array")]
    NoKeysArray,
    /// Every key was skipped.
    #[error("the JWKS holds no usable signing key")]
    NoUsableKeys,
}

/// An elliptic curve supported for ECDSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcCurve {
    /// NIST P-256 (ES256).
    P256,
    /// NIST P-384 (ES384).
    P384,
}

/// The kind of a parsed key, with what use-time checks need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `kty: RSA`, with its modulus length.
    Rsa {
        /// Modulus length in bits (leading zero bytes ignored).
        bits: usize,
    },
    /// `kty: EC` on a supported curve.
    Ec(EcCurve),
    /// `kty: OKP`, `crv: Ed25519`.
    Ed25519,
}

impl KeyKind {
    /// The JWK `kty`.
    pub fn kty(self) -> &'static str {
        match self {
            Self::Rsa { .. } => "RSA",
            Self::Ec(_) => "EC",
            Self::Ed25519 => "OKP",
        }
    }
}

/// One usable verification key.
#[derive(Clone)]
pub struct IssuerKey {
    /// `kid`, when the JWK has one.
    pub kid: Option<String>,
    /// Key type and parameters checked at use time.
    pub kind: KeyKind,
    /// The JWK's `alg`, when stated (any string; a token algorithm must equal it).
    pub alg: Option<String>,
    /// The verification key, parsed once.
    pub key: Verifier,
}

/// A public key parsed once for every algorithm it may verify.
///
/// aws-lc-rs binds a parsed key to one algorithm, so an RSA key holds one parsed key per RSA
/// algorithm (RS256, RS384, RS512, PS256); EC and Ed25519 keys fit exactly one. A key aws-lc-rs
/// refuses to parse (an even exponent, ...) is kept without a parsed form and verifies nothing,
/// so a token naming it fails as a bad signature, as it did when keys were parsed per token.
#[derive(Clone)]
pub struct Verifier {
    parsed: Vec<(SigningAlgorithm, ParsedPublicKey)>,
}

impl Verifier {
    /// An RSA key from its big-endian modulus and exponent.
    pub fn rsa(n: &[u8], e: &[u8]) -> Self {
        use SigningAlgorithm as A;
        let components = RsaPublicKeyComponents { n, e };
        let parsed = A::RSA
            .into_iter()
            .filter_map(|alg| {
                components
                    .to_parsed_public_key(jose::rsa_parameters(alg))
                    .ok()
                    .map(|key| (alg, key))
            })
            .collect();
        Self { parsed }
    }

    /// An EC key from its affine coordinates (each exactly the curve's size).
    pub fn ec(curve: EcCurve, x: &[u8], y: &[u8]) -> Self {
        let mut point = Vec::with_capacity(1 + x.len() + y.len());
        point.push(4);
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        let (alg, params) = match curve {
            EcCurve::P256 => (SigningAlgorithm::ES256, &ECDSA_P256_SHA256_FIXED),
            EcCurve::P384 => (SigningAlgorithm::ES384, &ECDSA_P384_SHA384_FIXED),
        };
        Self {
            parsed: ParsedPublicKey::new(params, point)
                .ok()
                .map(|key| (alg, key))
                .into_iter()
                .collect(),
        }
    }

    /// An Ed25519 key from its 32 public bytes.
    pub fn ed25519(x: &[u8]) -> Self {
        Self {
            parsed: ParsedPublicKey::new(&ED25519, x)
                .ok()
                .map(|key| (SigningAlgorithm::EdDSA, key))
                .into_iter()
                .collect(),
        }
    }

    /// Whether `signature` (raw JWS signature bytes) over `message` verifies under `alg`.
    /// `false` for an algorithm this key does not fit.
    pub fn verify(&self, alg: SigningAlgorithm, message: &[u8], signature: &[u8]) -> bool {
        self.parsed
            .iter()
            .find(|(a, _)| *a == alg)
            .is_some_and(|(_, key)| key.verify_sig(message, signature).is_ok())
    }
}

impl std::fmt::Debug for IssuerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// The usable keys of one issuer.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<IssuerKey>,
}

impl KeySet {
    /// A set of the given keys (tests and callers that built keys themselves).
    pub fn new(keys: Vec<IssuerKey>) -> Self {
        Self { keys }
    }

    /// Every key.
    pub fn keys(&self) -> &[IssuerKey] {
        &self.keys
    }

    /// Keys whose `kid` is exactly `kid`.
    pub fn with_kid<'a, 'b>(
        &'a self,
        kid: &'b str,
    ) -> impl Iterator<Item = &'a IssuerKey> + use<'a, 'b> {
        self.keys
            .iter()
            .filter(move |k| k.kid.as_deref() == Some(kid))
    }

    /// Whether some key has this `kid`.
    pub fn contains_kid(&self, kid: &str) -> bool {
        self.with_kid(kid).next().is_some()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Parses a JWKS document, keeping every usable signing key (up to [`MAX_KEYS`]).
///
/// Errors: the document is not a JSON object with a `keys` array, or no key is usable.
pub fn parse_jwks(bytes: &[u8]) -> Result<KeySet, JwksError> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|_| JwksError::NotAnObject)?;
    let Value::Object(doc) = doc else {
        return Err(JwksError::NotAnObject);
    };
    let Some(Value::Array(entries)) = doc.get("keys") else {
        return Err(JwksError::NoKeysArray);
    };
    let keys: Vec<IssuerKey> = entries
        .iter()
        .filter_map(parse_jwk)
        .take(MAX_KEYS)
        .collect();
    if keys.is_empty() {
        return Err(JwksError::NoUsableKeys);
    }
    Ok(KeySet { keys })
}

fn b64(value: Option<&Value>) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(value?.as_str()?).ok()
}

/// One JWK, or `None` when it is not a usable signing key (not an object, `use` other than
/// `sig`, an unsupported `kty` or curve, a symmetric `oct` key, bad base64 or sizes). Private
/// members are ignored here: a caller that must refuse them (DPoP) checks them itself.
pub fn parse_jwk(jwk: &Value) -> Option<IssuerKey> {
    let jwk = jwk.as_object()?;
    let string = |name: &str| match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(()),
    };
    if string("use").ok()?.is_some_and(|u| u != "sig") {
        return None;
    }
    let kid = string("kid").ok()?;
    let alg = string("alg").ok()?;
    let (kind, key) = match jwk.get("kty")?.as_str()? {
        "RSA" => {
            let n = b64(jwk.get("n"))?;
            let e = b64(jwk.get("e"))?;
            let n = jose::unsigned_be(&n)?;
            let bits = jose::rsa_modulus_bits(n);
            if e.is_empty() {
                return None;
            }
            (KeyKind::Rsa { bits }, Verifier::rsa(n, &e))
        }
        "EC" => {
            let (curve, len) = match jwk.get("crv")?.as_str()? {
                "P-256" => (EcCurve::P256, 32),
                "P-384" => (EcCurve::P384, 48),
                _ => return None,
            };
            let x = b64(jwk.get("x"))?;
            let y = b64(jwk.get("y"))?;
            if x.len() != len || y.len() != len {
                return None;
            }
            (KeyKind::Ec(curve), Verifier::ec(curve, &x, &y))
        }
        "OKP" => {
            if jwk.get("crv")?.as_str()? != "Ed25519" {
                return None;
            }
            let x = b64(jwk.get("x"))?;
            if x.len() != 32 {
                return None;
            }
            (KeyKind::Ed25519, Verifier::ed25519(&x))
        }
        // `oct` (symmetric) keys are never accepted: an issuer's public JWKS must not be able to
        // make a shared secret verify tokens.
        _ => return None,
    };
    Some(IssuerKey {
        kid,
        kind,
        alg,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rsa_jwk(n: &[u8]) -> Value {
        json!({"kty": "RSA", "kid": "r", "n": URL_SAFE_NO_PAD.encode(n), "e": "AQAB"})
    }

    #[test]
    fn documents_must_be_objects_with_keys() {
        assert_eq!(parse_jwks(b"[]").unwrap_err(), JwksError::NotAnObject);
        assert_eq!(parse_jwks(b"nope").unwrap_err(), JwksError::NotAnObject);
        assert_eq!(parse_jwks(b"{}").unwrap_err(), JwksError::NoKeysArray);
        assert_eq!(
            parse_jwks(br#"{"keys": {}}"#).unwrap_err(),
            JwksError::NoKeysArray
        );
        assert_eq!(
            parse_jwks(br#"{"keys": []}"#).unwrap_err(),
            JwksError::NoUsableKeys
        );
    }

    #[test]
    fn odd_keys_are_skipped_not_fatal() {
        let mut n = vec![0xC5u8; 256];
        n.insert(0, 0);
        let doc = json!({"keys": [
            {"kty": "RSA", "use": "enc", "kid": "enc", "n": URL_SAFE_NO_PAD.encode([0xC5u8; 256]), "e": "AQAB"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "secp256k1", "kid": "k1", "x": "AA", "y": "AA"},
            {"kty": "EC", "crv": "P-256", "kid": "short", "x": "AA", "y": "AA"},
            {"kty": "OKP", "crv": "X25519", "kid": "x", "x": URL_SAFE_NO_PAD.encode([1u8; 32])},
            {"kty": "RSA", "kid": "badb64", "n": "!!!", "e": "AQAB"},
            {"kty": "RSA", "kid": 7, "n": "AQAB", "e": "AQAB"},
            "not an object",
            {"kty": "RSA", "kid": "good", "use": "sig", "alg": "RS256", "n": URL_SAFE_NO_PAD.encode(&n), "e": "AQAB"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": URL_SAFE_NO_PAD.encode([1u8; 32])},
        ]});
        let set = parse_jwks(doc.to_string().as_bytes()).unwrap();
        let kids: Vec<_> = set.keys().iter().map(|k| k.kid.clone().unwrap()).collect();
        assert_eq!(kids, ["good", "ed"]);
        // A leading zero byte does not count towards the modulus length.
        assert_eq!(set.keys()[0].kind, KeyKind::Rsa { bits: 2048 });
        assert_eq!(set.keys()[0].alg.as_deref(), Some("RS256"));
        assert_eq!(set.keys()[1].kind, KeyKind::Ed25519);
    }

    #[test]
    fn rsa_bits_are_measured() {
        let set = parse_jwks(
            json!({"keys": [rsa_jwk(&[0x40; 128])]})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(set.keys()[0].kind, KeyKind::Rsa { bits: 1023 });
        assert!(parse_jwks(json!({"keys": [rsa_jwk(&[0; 4])]}).to_string().as_bytes()).is_err());
    }

    #[test]
    fn key_count_is_capped() {
        let keys: Vec<Value> = (0..MAX_KEYS + 20).map(|_| rsa_jwk(&[0xC0; 256])).collect();
        let set = parse_jwks(json!({ "keys": keys }).to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), MAX_KEYS);
    }
}
