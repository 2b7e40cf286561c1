//! Subject-token validation as pure functions: [`peek`] parses a compact JWS without trusting
//! it (to learn which issuer it claims), [`verify`] checks it against that issuer's policy and
//! keys at a given `now`.
//!
//! No I/O and no clock reads happen here. Header fields that point elsewhere (`jku`, `x5u`,
//! `jwk`, `x5c`) are ignored and never fetched or used as keys. JSON with a repeated member name
//! is refused at any depth: two parsers that pick different duplicates (ours and a relying
//! party's) are a classic confusion attack.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::jwks::{EcCurve, IssuerKey, KeyKind, KeySet};
use super::{MAX_TOKEN_BYTES, ValidatedToken, ValidationError};
use crate::jose::SigningAlgorithm;
use crate::policy::model::Issuer;

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// A structurally valid, not yet verified compact JWS.
#[derive(Debug, Clone)]
pub struct PeekedToken<'t> {
    /// Header `alg`, as written.
    pub alg: String,
    /// Header `kid`, when present.
    pub kid: Option<String>,
    /// Header `typ`, when present.
    pub typ: Option<String>,
    /// The unverified `iss`: only good for choosing which declared issuer to check against.
    pub iss: String,
    /// The decoded payload (parsed once, here).
    pub claims: Map<String, Value>,
    /// `header.payload` of the token text: what the signature covers.
    signing_input: &'t str,
    /// The raw signature bytes, decoded once here.
    signature: Vec<u8>,
}

// === peek ===

/// Parses `token` without verifying it.
///
/// Errors: [`ValidationError::TooLarge`] over [`MAX_TOKEN_BYTES`];
/// [`ValidationError::Encrypted`] for five parts (JWE); [`ValidationError::Malformed`] for any
/// other part count, bad base64url, JSON that is not an object or repeats a key, a missing or
/// non-string `alg`, a non-string `kid` or `iss`; [`ValidationError::CriticalHeader`] when `crit`
/// is present; [`ValidationError::Nested`] for `cty: JWT`; [`ValidationError::UntrustedIssuer`]
/// when `iss` is absent.
pub fn peek(token: &str) -> Result<PeekedToken<'_>, ValidationError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(ValidationError::TooLarge {
            max: MAX_TOKEN_BYTES,
        });
    }
    let mut parts = crate::text::split_ascii(token, b'.');
    let (header_b64, payload_b64, signature) = match (parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(payload), Some(signature)) => (header, payload, signature),
        _ => return Err(malformed("expected three dot-separated parts")),
    };
    match parts.count() {
        0 => {}
        2 => return Err(ValidationError::Encrypted),
        _ => return Err(malformed("expected three dot-separated parts")),
    }
    // The header's members are moved out, not copied: it is dropped once read.
    let mut header = decode_object(header_b64, "header")?;
    // Decoded once: bad base64 is refused early, and `verify` uses the bytes as they are.
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| malformed("signature is not base64url"))?;

    let alg = match header.remove("alg") {
        Some(Value::String(alg)) => alg,
        Some(_) => return Err(malformed("header alg is not a string")),
        None => return Err(malformed("header alg is missing")),
    };
    if header.contains_key("crit") {
        return Err(ValidationError::CriticalHeader);
    }
    if let Some(cty) = header.get("cty") {
        match cty {
            Value::String(cty) if cty.eq_ignore_ascii_case("JWT") => {
                return Err(ValidationError::Nested);
            }
            Value::String(_) => {}
            _ => return Err(malformed("header cty is not a string")),
        }
    }
    let kid = match header.remove("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid),
        Some(_) => return Err(malformed("header kid is not a string")),
    };

    let typ = match header.remove("typ") {
        None => None,
        Some(Value::String(typ)) => Some(typ),
        Some(_) => return Err(malformed("header typ is not a string")),
    };

    let claims = decode_object(payload_b64, "payload")?;
    let iss = match claims.get("iss") {
        Some(Value::String(iss)) => iss.clone(),
        Some(_) => return Err(malformed("iss is not a string")),
        None => return Err(ValidationError::UntrustedIssuer),
    };
    Ok(PeekedToken {
        alg,
        kid,
        typ,
        iss,
        claims,
        signing_input: &token[..header_b64.len() + 1 + payload_b64.len()],
        signature,
    })
}

fn malformed(what: &str) -> ValidationError {
    ValidationError::Malformed(what.to_string())
}

fn decode_object(part: &str, name: &str) -> Result<Map<String, Value>, ValidationError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| malformed(&format!("{name} is not base64url")))?;
    match parse_strict_json(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(malformed(&format!("{name} is not a JSON object"))),
        Err(e) => Err(ValidationError::Malformed(format!("{name}: {e}"))),
    }
}

/// Parses JSON like `serde_json::from_slice::<Value>`, but refuses any object that repeats a
/// member name, at any depth.
///
/// Errors: a short description (no input echoed beyond the repeated key's length-capped name).
pub fn parse_strict_json(bytes: &[u8]) -> Result<Value, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue
        .deserialize(&mut de)
        .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(value)
}

/// Builds a [`Value`], refusing repeated object keys.
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            // One search per member: the vacant entry takes the value once it is parsed.
            match map.entry(key) {
                serde_json::map::Entry::Occupied(seen) => {
                    let shown: String = seen.key().chars().take(40).collect();
                    return Err(A::Error::custom(format_args!("duplicate key {shown:?}")));
                }
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(access.next_value_seed(StrictValue)?);
                }
            }
        }
        Ok(Value::Object(map))
    }
}

// === verify ===

/// A token-supplied string made safe to put in an error message.
fn shown(s: &str) -> String {
    crate::text::shown(s, 32)
}

/// The token's algorithm, if `issuer` allows it.
///
/// Errors: [`ValidationError::AlgorithmNotAllowed`] for unsupported names (`none`, `HS*`, ...)
/// and for supported ones outside the issuer's allowlist.
pub fn allowed_algorithm(
    peeked: &PeekedToken<'_>,
    issuer: &Issuer,
) -> Result<SigningAlgorithm, ValidationError> {
    SigningAlgorithm::parse(&peeked.alg)
        .filter(|alg| issuer.algorithms.contains(alg))
        .ok_or_else(|| ValidationError::AlgorithmNotAllowed(shown(&peeked.alg)))
}

/// Whether `key` may verify `alg`: key type, stated `alg`, curve and strength.
fn check_key(key: &IssuerKey, alg: SigningAlgorithm) -> Result<(), ValidationError> {
    let mismatch = || ValidationError::KeyTypeMismatch(alg.as_str().to_string());
    if key.kind.kty() != alg.key_type() {
        return Err(mismatch());
    }
    if key
        .alg
        .as_deref()
        .is_some_and(|stated| stated != alg.as_str())
    {
        return Err(mismatch());
    }
    match (key.kind, alg) {
        (KeyKind::Ec(EcCurve::P256), SigningAlgorithm::ES256)
        | (KeyKind::Ec(EcCurve::P384), SigningAlgorithm::ES384) => Ok(()),
        (KeyKind::Ec(_), _) => Err(mismatch()),
        (KeyKind::Rsa { bits }, _) if bits < MIN_RSA_BITS => Err(ValidationError::WeakKey(
            format!("RSA key of {bits} bits (at least {MIN_RSA_BITS} required)"),
        )),
        _ => Ok(()),
    }
}

/// The key that must verify the token.
fn select_key<'k>(
    keys: &'k KeySet,
    kid: Option<&str>,
    alg: SigningAlgorithm,
) -> Result<&'k IssuerKey, ValidationError> {
    match kid {
        Some(kid) => {
            let mut first_error = None;
            for key in keys.with_kid(kid) {
                match check_key(key, alg) {
                    Ok(()) => return Ok(key),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            Err(first_error.unwrap_or(ValidationError::UnknownKey))
        }
        None => {
            let mut fitting = keys.keys().iter().filter(|k| check_key(k, alg).is_ok());
            match (fitting.next(), fitting.next()) {
                (Some(key), None) => Ok(key),
                _ => Err(ValidationError::UnknownKey),
            }
        }
    }
}

fn time_claim(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<u64>, ValidationError> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    let Value::Number(number) = value else {
        return Err(ValidationError::BadTimeClaim(name));
    };
    if let Some(secs) = number.as_u64() {
        return Ok(Some(secs));
    }
    // NumericDate may be written as `1700000000.0`; accept whole non-negative values only.
    match number.as_f64() {
        Some(f) if f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 9.0e15 => {
            Ok(Some(f as u64))
        }
        _ => Err(ValidationError::BadTimeClaim(name)),
    }
}

fn optional_string(
    claims: &Map<String, Value>,
    name: &str,
) -> Result<Option<String>, ValidationError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(malformed(&format!("{name} is not a string"))),
    }
}

fn audiences(claims: &Map<String, Value>) -> Result<Vec<String>, ValidationError> {
    match claims.get("aud") {
        None => Ok(Vec::new()),
        Some(Value::String(aud)) => Ok(vec![aud.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(malformed("aud holds a non-string")),
            })
            .collect(),
        Some(_) => Err(malformed("aud is neither a string nor an array")),
    }
}

/// Verifies `peeked` against `issuer` with `keys` at `now`.
///
/// Order: algorithm allowlist, key selection (by `kid`, or the single key fitting the
/// algorithm), key checks, signature, `iss`, `exp` (required), `nbf`, `iat` (with the issuer's
/// leeway), the issuer's hygiene limits (`typ`, lifetime, age: [`super::hygiene::check`]),
/// then the shape of `aud`, `sub` and `jti`.
///
/// On success the claims, `iss` and `kid` are moved out of `peeked` into the result (no copy of
/// the claim map per exchange); on failure `peeked` is unchanged, so it can be verified again
/// against refreshed keys.
///
/// Errors: every [`ValidationError`] except `TooLarge`, `Encrypted`, `Nested`,
/// `CriticalHeader` and `KeysUnavailable`.
pub fn verify(
    peeked: &mut PeekedToken<'_>,
    issuer: &Issuer,
    keys: &KeySet,
    now: SystemTime,
) -> Result<ValidatedToken, ValidationError> {
    let alg = allowed_algorithm(peeked, issuer)?;
    let key = select_key(keys, peeked.kid.as_deref(), alg)?;
    if !key
        .key
        .verify(alg, peeked.signing_input.as_bytes(), &peeked.signature)
    {
        return Err(ValidationError::BadSignature);
    }
    if peeked.iss != issuer.issuer {
        return Err(ValidationError::UntrustedIssuer);
    }

    let claims = &peeked.claims;
    let now = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let leeway = issuer.leeway;
    let exp = time_claim(claims, "exp")?.ok_or(ValidationError::MissingExpiry)?;
    if now > Duration::from_secs(exp).saturating_add(leeway) {
        return Err(ValidationError::Expired);
    }
    let nbf = time_claim(claims, "nbf")?;
    if nbf.is_some_and(|nbf| now.saturating_add(leeway) < Duration::from_secs(nbf)) {
        return Err(ValidationError::NotYetValid);
    }
    let iat = time_claim(claims, "iat")?;
    if iat.is_some_and(|iat| Duration::from_secs(iat) > now.saturating_add(leeway)) {
        return Err(ValidationError::IssuedInFuture);
    }
    super::hygiene::check(
        &issuer.hygiene,
        peeked.typ.as_deref(),
        exp,
        iat,
        now,
        leeway,
    )?;
    let aud = audiences(claims)?;
    let sub = optional_string(claims, "sub")?;
    let jti = optional_string(claims, "jti")?;

    Ok(ValidatedToken {
        issuer_name: issuer.name.clone(),
        iss: std::mem::take(&mut peeked.iss),
        sub,
        aud,
        exp,
        iat,
        nbf,
        jti,
        alg,
        kid: peeked.kid.take(),
        claims: std::mem::take(&mut peeked.claims),
    })
}

#[cfg(test)]
mod tests;
