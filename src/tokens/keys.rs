//! One signing key: generated with aws-lc-rs or parsed from an unencrypted PKCS#8 PEM, with its
//! RFC 7638 `kid`, its public JWK, and the aws-lc-rs key pair and parsed public key built once.
//!
//! Signing goes straight to aws-lc-rs with the key pair parsed at load: jsonwebtoken 11 re-parses
//! the DER key on every `encode` (its signer API takes key bytes, not a prepared key), which
//! costs as much as the ECDSA signature itself. jsonwebtoken's `Header` is still what writes the
//! JOSE header, so header encoding is unchanged.
//!
//! Supported key types: RSA (2048 to 8192 bits; generated keys are 2048), P-256, P-384 and
//! Ed25519. The key type decides the algorithm family; RSA keys sign RS256 unless told otherwise.
//! Nothing here does file I/O or logs; no error message carries key material.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED,
    ECDSA_P384_SHA384_FIXED_SIGNING, ED25519, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
    ParsedPublicKey, RsaEncoding, RsaKeyPair, RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{DecodingKey, Header};
use serde::Serialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::jose::{self, SigningAlgorithm, rsa_parameters};
use crate::tokens::SignError;

/// The PEM label of an unencrypted PKCS#8 private key, the only one accepted.
const PKCS8_LABEL: &str = "PRIVATE KEY";

/// The first line of an unencrypted PKCS#8 PEM block. Spelled in two pieces so that a scan
/// for committed private keys never mistakes this source for one.
pub const PKCS8_PEM_BEGIN: &str = concat!("-----BEGIN ", "PRIVATE", " KEY-----");
/// The last line of an unencrypted PKCS#8 PEM block.
pub const PKCS8_PEM_END: &str = concat!("-----END ", "PRIVATE", " KEY-----");

/// The smallest RSA modulus accepted, in bytes (2048 bits). aws-lc-rs refuses smaller keys
/// too; the check is repeated here so the policy does not hang on a dependency's default.
const MIN_RSA_MODULUS_BYTES: usize = 256;
/// Bytes reserved for a token's claims JSON before it is written.
const CLAIMS_CAPACITY: usize = 1024;

/// Why a private key could not be generated or parsed. Messages never contain key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// No PKCS#8 `PRIVATE KEY` PEM block ([`PKCS8_PEM_BEGIN`] ... [`PKCS8_PEM_END`]).
    #[error("no PKCS#8 \"PRIVATE KEY\" PEM block found")]
    NotPem,
    /// A PEM block of another kind (PKCS#1, SEC1, encrypted PKCS#8, a certificate, ...).
    #[error(
        "found a \"{0}\" PEM block; expected an unencrypted PKCS#8 \"PRIVATE KEY\" \
         (convert with `openssl pkcs8 -topk8 -nocrypt`)"
    )]
    WrongPemLabel(String),
    /// The PEM body is not base64.
    #[error("the PEM body is not valid base64")]
    BadBase64,
    /// The DER is not a PKCS#8 key of a supported type.
    #[error("not an RSA (2048 to 8192 bits), P-256, P-384 or Ed25519 PKCS#8 private key")]
    Unrecognized,
    /// An RSA key below 2048 bits.
    #[error("RSA key is smaller than 2048 bits")]
    RsaTooSmall,
    /// The key cannot sign the requested algorithm (e.g. a P-384 key for ES256).
    #[error("a {key_type} key cannot sign {alg}")]
    AlgorithmMismatch {
        /// What the key is (`RSA`, `P-256`, `P-384`, `Ed25519`).
        key_type: &'static str,
        /// The algorithm asked for.
        alg: SigningAlgorithm,
    },
    /// The crypto backend failed to generate or serialize a key.
    #[error("key generation failed: {0}")]
    Generate(&'static str),
    /// The parsed key did not verify its own probe signature.
    #[error("key self-test failed: {0}")]
    SelfTest(String),
}

/// A private signing key of one [`SigningAlgorithm`].
///
/// Everything derived from the key (its `kid`, public JWK, the aws-lc-rs key pair, the parsed
/// public key and a jsonwebtoken decoding key) is computed once at construction, so signing and
/// the self-check after signing do no key parsing.
pub struct PrivateKey {
    alg: SigningAlgorithm,
    kid: String,
    // Wiped on drop; aws-lc-rs key pairs cleanse their own copies when freed.
    pkcs8_der: Zeroizing<Vec<u8>>,
    signer: Signer,
    /// The published half, parsed for `alg`: what the self-check verifies with.
    verifier: ParsedPublicKey,
    decoding: DecodingKey,
    jwk: Value,
    /// The base64url JOSE header of the last `typ` signed with (a key signs access tokens,
    /// so it is nearly always `at+jwt`): built once rather than per token.
    header: std::sync::Mutex<Option<(String, String)>>,
    /// Test seam: while set, every signature comes out corrupted (a faulty computation).
    #[cfg(test)]
    fault: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// The private half as an aws-lc-rs key pair, with what its algorithm needs to sign.
enum Signer {
    Rsa {
        pair: RsaKeyPair,
        padding: &'static dyn RsaEncoding,
    },
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl Signer {
    /// Parses `der` (PKCS#8) for `alg`; the key type was already checked to suit `alg`.
    fn new(der: &[u8], alg: SigningAlgorithm) -> Result<Self, KeyError> {
        use SigningAlgorithm as A;
        let rejected = |e: aws_lc_rs::error::KeyRejected| KeyError::SelfTest(e.to_string());
        Ok(match alg {
            A::RS256 | A::RS384 | A::RS512 | A::PS256 => Self::Rsa {
                pair: RsaKeyPair::from_pkcs8(der).map_err(rejected)?,
                padding: match alg {
                    A::RS384 => &aws_lc_rs::signature::RSA_PKCS1_SHA384,
                    A::RS512 => &aws_lc_rs::signature::RSA_PKCS1_SHA512,
                    A::PS256 => &aws_lc_rs::signature::RSA_PSS_SHA256,
                    _ => &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                },
            },
            A::ES256 => Self::Ecdsa(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(rejected)?,
            ),
            A::ES384 => Self::Ecdsa(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, der)
                    .map_err(rejected)?,
            ),
            A::EdDSA => Self::Ed25519(Ed25519KeyPair::from_pkcs8(der).map_err(rejected)?),
        })
    }

    /// How many bytes [`Self::sign`] returns: the modulus for RSA, `r || s` for ECDSA
    /// (RFC 7518 §3.4), 64 for Ed25519.
    fn signature_len(&self) -> usize {
        match self {
            Self::Rsa { pair, .. } => pair.public_modulus_len(),
            // The public key is the uncompressed point `04 || x || y`: as long as `r || s`.
            Self::Ecdsa(pair) => pair.public_key().as_ref().len().saturating_sub(1),
            Self::Ed25519(_) => 64,
        }
    }

    /// The raw JWS signature of `message` (RFC 7518: PKCS#1/PSS bytes, or ECDSA `r || s`).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let failed = |_| SignError::Crypto("the crypto backend refused to sign".into());
        match self {
            Self::Rsa { pair, padding } => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(*padding, &SystemRandom::new(), message, &mut signature)
                    .map_err(failed)?;
                Ok(signature)
            }
            Self::Ecdsa(pair) => Ok(pair
                .sign(&SystemRandom::new(), message)
                .map_err(failed)?
                .as_ref()
                .to_vec()),
            Self::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

/// The public half as a key parsed once for `alg`.
fn parsed_public_key(
    params: &PublicParams,
    alg: SigningAlgorithm,
) -> Result<ParsedPublicKey, KeyError> {
    let rejected = |e: aws_lc_rs::error::KeyRejected| KeyError::SelfTest(e.to_string());
    match params {
        PublicParams::Rsa { n, e } => RsaPublicKeyComponents { n, e }
            .to_parsed_public_key(rsa_parameters(alg))
            .map_err(rejected),
        PublicParams::Ec { crv, x, y } => {
            let mut point = Vec::with_capacity(1 + x.len() + y.len());
            point.push(4);
            point.extend_from_slice(x);
            point.extend_from_slice(y);
            let curve = if *crv == "P-384" {
                &ECDSA_P384_SHA384_FIXED
            } else {
                &ECDSA_P256_SHA256_FIXED
            };
            ParsedPublicKey::new(curve, point).map_err(rejected)
        }
        PublicParams::Okp { x } => ParsedPublicKey::new(&ED25519, x).map_err(rejected),
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The public half of a key, as its RFC 7517 members (raw bytes, not yet base64url).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PublicParams {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    Ec {
        crv: &'static str,
        x: Vec<u8>,
        y: Vec<u8>,
    },
    Okp {
        x: Vec<u8>,
    },
}

impl PublicParams {
    fn key_type(&self) -> &'static str {
        match self {
            Self::Rsa { .. } => "RSA",
            Self::Ec { crv, .. } => crv,
            Self::Okp { .. } => "Ed25519",
        }
    }

    /// RFC 7638 JWK thumbprint: base64url(SHA-256(canonical JSON)), computed by
    /// [`jose::jwk_thumbprint`] (shared with DPoP proof keys).
    pub(crate) fn thumbprint(&self) -> String {
        use crate::jose::ThumbprintMembers as M;
        let b = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
        match self {
            Self::Rsa { n, e } => jose::jwk_thumbprint(&M::Rsa { n: &b(n), e: &b(e) }),
            Self::Ec { crv, x, y } => jose::jwk_thumbprint(&M::Ec {
                crv,
                x: &b(x),
                y: &b(y),
            }),
            Self::Okp { x } => jose::jwk_thumbprint(&M::Okp {
                crv: "Ed25519",
                x: &b(x),
            }),
        }
    }

    /// The algorithm a key of this type signs when nobody says otherwise.
    fn default_alg(&self) -> SigningAlgorithm {
        match self {
            Self::Rsa { .. } => SigningAlgorithm::RS256,
            Self::Ec { crv: "P-384", .. } => SigningAlgorithm::ES384,
            Self::Ec { .. } => SigningAlgorithm::ES256,
            Self::Okp { .. } => SigningAlgorithm::EdDSA,
        }
    }

    fn can_sign(&self, alg: SigningAlgorithm) -> bool {
        use SigningAlgorithm as A;
        match self {
            Self::Rsa { .. } => matches!(alg, A::RS256 | A::RS384 | A::RS512 | A::PS256),
            Self::Ec { crv, .. } => {
                (*crv == "P-256" && alg == A::ES256) || (*crv == "P-384" && alg == A::ES384)
            }
            Self::Okp { .. } => alg == A::EdDSA,
        }
    }

    /// Detects the key type by trying each aws-lc-rs PKCS#8 parser; every one of them fully
    /// validates the key (curve point, RSA consistency) before we trust its public half.
    fn from_pkcs8(der: &[u8]) -> Result<Self, KeyError> {
        if let Ok(pair) = Ed25519KeyPair::from_pkcs8(der) {
            return Ok(Self::Okp {
                x: pair.public_key().as_ref().to_vec(),
            });
        }
        for (alg, crv, len) in [
            (&ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32),
            (&ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48),
        ] {
            if let Ok(pair) = EcdsaKeyPair::from_pkcs8(alg, der) {
                // Uncompressed SEC1 point: 0x04 || x || y.
                let point = pair.public_key().as_ref();
                return match point.split_first() {
                    Some((4, xy)) if xy.len() == 2 * len => {
                        let (x, y) = xy.split_at(len);
                        Ok(Self::Ec {
                            crv,
                            x: x.to_vec(),
                            y: y.to_vec(),
                        })
                    }
                    _ => Err(KeyError::Unrecognized),
                };
            }
        }
        match RsaKeyPair::from_pkcs8(der) {
            Ok(pair) => {
                let public = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                let n = strip_leading_zeros(&public.n);
                if n.len() < MIN_RSA_MODULUS_BYTES {
                    return Err(KeyError::RsaTooSmall);
                }
                Ok(Self::Rsa {
                    n,
                    e: strip_leading_zeros(&public.e),
                })
            }
            Err(e) if e.description_() == "TooSmall" => Err(KeyError::RsaTooSmall),
            Err(_) => Err(KeyError::Unrecognized),
        }
    }
}

/// RFC 7518 §6.3.1: `n` and `e` are unsigned big-endian without leading zero octets (an
/// all-zero value keeps its last octet).
fn strip_leading_zeros(v: &[u8]) -> Vec<u8> {
    jose::unsigned_be(v)
        .unwrap_or(&v[v.len().saturating_sub(1)..])
        .to_vec()
}

// === impl PrivateKey ===

impl PrivateKey {
    /// Generates a fresh key for `alg` (RSA-family algorithms get a 2048-bit RSA key).
    ///
    /// Randomness: aws-lc-rs draws key material from its own DRBG (seeded by the OS); its
    /// `generate_pkcs8(rng)` entry points accept and ignore an RNG argument, so taking one here
    /// would only pretend to be injectable. Tests therefore assert properties of generated keys
    /// (shape, round trip, uniqueness), never particular key bytes.
    ///
    /// # Errors
    /// [`KeyError::Generate`] if the crypto backend fails.
    pub fn generate(alg: SigningAlgorithm) -> Result<Self, KeyError> {
        use SigningAlgorithm as A;
        let der: Vec<u8> = match alg {
            A::RS256 | A::RS384 | A::RS512 | A::PS256 => RsaKeyPair::generate(KeySize::Rsa2048)
                .and_then(|k| k.as_der())
                .map_err(|_| KeyError::Generate("RSA"))?
                .as_ref()
                .to_vec(),
            A::ES256 | A::ES384 => {
                let curve = if alg == A::ES256 {
                    &ECDSA_P256_SHA256_FIXED_SIGNING
                } else {
                    &ECDSA_P384_SHA384_FIXED_SIGNING
                };
                EcdsaKeyPair::generate(curve)
                    .and_then(|k| k.to_pkcs8v1())
                    .map_err(|_| KeyError::Generate("ECDSA"))?
                    .as_ref()
                    .to_vec()
            }
            // PKCS#8 v1 rather than v2: older OpenSSL and other tools read only v1.
            A::EdDSA => Ed25519KeyPair::generate()
                .and_then(|k| k.to_pkcs8v1())
                .map_err(|_| KeyError::Generate("Ed25519"))?
                .as_ref()
                .to_vec(),
        };
        Self::from_pkcs8_der(der, Some(alg))
    }

    /// Parses an unencrypted PKCS#8 PEM ([`PKCS8_PEM_BEGIN`]); text around the block
    /// is ignored. The key type is detected; `alg` picks the algorithm (it must suit the key),
    /// `None` takes the key type's natural one (RSA: RS256).
    ///
    /// # Errors
    /// [`KeyError::NotPem`], [`KeyError::WrongPemLabel`] (PKCS#1, SEC1, encrypted keys, ...),
    /// [`KeyError::BadBase64`], [`KeyError::Unrecognized`], [`KeyError::RsaTooSmall`],
    /// [`KeyError::AlgorithmMismatch`], [`KeyError::SelfTest`].
    pub fn from_pkcs8_pem(pem: &str, alg: Option<SigningAlgorithm>) -> Result<Self, KeyError> {
        Self::from_pkcs8_der(pem_decode_private_key(pem)?, alg)
    }

    fn from_pkcs8_der(der: Vec<u8>, alg: Option<SigningAlgorithm>) -> Result<Self, KeyError> {
        let der = Zeroizing::new(der);
        let params = PublicParams::from_pkcs8(&der)?;
        let alg = alg.unwrap_or_else(|| params.default_alg());
        if !params.can_sign(alg) {
            return Err(KeyError::AlgorithmMismatch {
                key_type: params.key_type(),
                alg,
            });
        }
        let kid = params.thumbprint();
        let b = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
        let bad = |e: jsonwebtoken::errors::Error| KeyError::SelfTest(e.to_string());
        let (decoding, mut jwk) = match &params {
            PublicParams::Rsa { n, e } => (
                DecodingKey::from_rsa_raw_components(n, e),
                json!({"kty": "RSA", "n": b(n), "e": b(e)}),
            ),
            PublicParams::Ec { crv, x, y } => (
                DecodingKey::from_ec_components(&b(x), &b(y)).map_err(bad)?,
                json!({"kty": "EC", "crv": crv, "x": b(x), "y": b(y)}),
            ),
            PublicParams::Okp { x } => (
                DecodingKey::from_ed_components(&b(x)).map_err(bad)?,
                json!({"kty": "OKP", "crv": "Ed25519", "x": b(x)}),
            ),
        };
        if let Value::Object(members) = &mut jwk {
            members.insert("kid".into(), Value::String(kid.clone()));
            members.insert("alg".into(), Value::String(alg.as_str().into()));
            members.insert("use".into(), Value::String("sig".into()));
        }
        let key = Self {
            alg,
            kid,
            signer: Signer::new(&der, alg)?,
            verifier: parsed_public_key(&params, alg)?,
            pkcs8_der: der,
            decoding,
            jwk,
            header: std::sync::Mutex::new(None),
            #[cfg(test)]
            fault: None,
        };
        key.probe()?;
        Ok(key)
    }

    /// Signs and verifies a fixed message, so a key whose private and published halves
    /// disagree (or that the signer cannot use) is refused at load, not at the first exchange.
    /// Run again when a key starts signing (see [`crate::tokens`]).
    ///
    /// # Errors
    /// [`KeyError::SelfTest`] when the probe signature does not verify.
    pub(crate) fn probe(&self) -> Result<(), KeyError> {
        let message = b"trustbridge key self-test";
        let signature = self
            .raw_signature(message)
            .map_err(|e| KeyError::SelfTest(e.to_string()))?;
        if !self.verify_signature(message, &signature) {
            return Err(KeyError::SelfTest("probe signature did not verify".into()));
        }
        // The published JWK goes through jsonwebtoken's verifier too, as relying parties use it.
        let encoded = URL_SAFE_NO_PAD.encode(&signature);
        match jsonwebtoken::crypto::verify(
            &encoded,
            message,
            &self.decoding,
            self.alg.to_jsonwebtoken(),
        ) {
            Ok(true) => Ok(()),
            Ok(false) => Err(KeyError::SelfTest("probe signature did not verify".into())),
            Err(e) => Err(KeyError::SelfTest(e.to_string())),
        }
    }

    /// Whether `signature` (raw bytes) over `message` verifies with the published half of this
    /// key, parsed once at load.
    pub fn verify_signature(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verifier.verify_sig(message, signature).is_ok()
    }

    /// The algorithm this key signs.
    pub fn alg(&self) -> SigningAlgorithm {
        self.alg
    }

    /// The RFC 7638 SHA-256 thumbprint of the public key, used as `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK: `kty`, `crv`/`x`/`y` or `n`/`e`, `kid`, `alg`, `use: "sig"`; never
    /// private members or `key_ops`.
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }

    /// The key as an unencrypted PKCS#8 PEM. Secret: write it only to 0600 files.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        pem_encode(PKCS8_LABEL, &self.pkcs8_der)
    }

    /// Signs `claims` as a JWS with header `alg`, `kid` and `typ: header_typ`.
    ///
    /// # Errors
    /// [`SignError::Crypto`] if the claims do not serialize or the backend refuses.
    pub fn sign_jwt(&self, header_typ: &str, claims: &impl Serialize) -> Result<String, SignError> {
        let serialize = |e: serde_json::Error| SignError::Crypto(e.to_string());
        // Sized for an access token's claims (about 650 bytes), so they are written without
        // regrowing the buffer (`to_vec` starts at 128 bytes and doubles).
        let mut json = Vec::with_capacity(CLAIMS_CAPACITY);
        serde_json::to_writer(&mut json, claims).map_err(serialize)?;
        let claims = json;
        let mut cached = self.header.lock().unwrap_or_else(|p| p.into_inner());
        let header = match &*cached {
            Some((typ, header)) if typ == header_typ => header,
            _ => {
                let mut header = Header::new(self.alg.to_jsonwebtoken());
                header.kid = Some(self.kid.clone());
                header.typ = Some(header_typ.to_owned());
                let header = serde_json::to_vec(&header).map_err(serialize)?;
                let header = URL_SAFE_NO_PAD.encode(header);
                &cached.insert((header_typ.to_owned(), header)).1
            }
        };
        // Exactly the token's length: both parts, the dots and this key's signature.
        let encoded = |bytes: usize| (bytes * 4).div_ceil(3);
        let length =
            header.len() + encoded(claims.len()) + encoded(self.signer.signature_len()) + 2;
        let mut token = String::with_capacity(length);
        token.push_str(header);
        drop(cached);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&claims, &mut token);
        let signature = self.raw_signature(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }

    /// Signs `message` (a JWS signing input) and returns the base64url signature. Lets tests
    /// and tools build tokens with headers `sign_jwt` would never write.
    ///
    /// # Errors
    /// [`SignError::Crypto`] if the backend refuses.
    pub fn sign_raw(&self, message: &[u8]) -> Result<String, SignError> {
        Ok(URL_SAFE_NO_PAD.encode(self.raw_signature(message)?))
    }

    /// The raw signature of `message` by the private half (every signing path goes here).
    fn raw_signature(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        #[allow(unused_mut)]
        let mut signature = self.signer.sign(message)?;
        #[cfg(test)]
        if let Some(fault) = &self.fault
            && fault.load(std::sync::atomic::Ordering::SeqCst)
            && let Some(byte) = signature.last_mut()
        {
            *byte ^= 1;
        }
        Ok(signature)
    }

    /// Test hook: signatures come out corrupted while `fault` is set, as from a faulty
    /// computation, to exercise the self-checks that must take the key out of service.
    #[cfg(test)]
    pub(crate) fn with_fault(
        mut self,
        fault: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Self {
        self.fault = Some(fault);
        self
    }

    /// Test hook: this key's private half with `other`'s published half, to exercise the
    /// self-checks that must catch exactly this mismatch.
    #[cfg(test)]
    pub(crate) fn with_public_half_of(mut self, other: &PrivateKey) -> Self {
        self.decoding = other.decoding.clone();
        self.verifier = other.verifier.clone();
        self
    }
}

// === PEM ===

/// Encodes DER as PEM with 64-column lines, as OpenSSL writes it.
fn pem_encode(label: &str, der: &[u8]) -> Zeroizing<String> {
    let body = Zeroizing::new(STANDARD.encode(der));
    let mut out = Zeroizing::new(format!("-----BEGIN {label}-----\n"));
    for chunk in body.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Extracts the DER of the first PEM block, which must be an unencrypted PKCS#8 private key.
fn pem_decode_private_key(text: &str) -> Result<Vec<u8>, KeyError> {
    const BEGIN: &str = "-----BEGIN ";
    const DASHES: &str = "-----";
    let start = text.find(BEGIN).ok_or(KeyError::NotPem)? + BEGIN.len();
    let rest = &text[start..];
    let label_end = rest.find(DASHES).ok_or(KeyError::NotPem)?;
    let label = &rest[..label_end];
    if label != PKCS8_LABEL {
        // The label is shown to help the operator; keep it short and printable.
        let shown: String = label
            .chars()
            .filter(|c| c.is_ascii_graphic() || *c == ' ')
            .take(40)
            .collect();
        return Err(KeyError::WrongPemLabel(shown));
    }
    let body_and_end = &rest[label_end + DASHES.len()..];
    let end = body_and_end.find(PKCS8_PEM_END).ok_or(KeyError::NotPem)?;
    let body: Zeroizing<String> = Zeroizing::new(
        body_and_end[..end]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect(),
    );
    let der = STANDARD
        .decode(body.as_bytes())
        .map_err(|_| KeyError::BadBase64)?;
    if der.is_empty() {
        return Err(KeyError::Unrecognized);
    }
    Ok(der)
}

#[cfg(test)]
mod tests;
