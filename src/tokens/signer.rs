//! Sign, then verify what was signed against the published keys before it leaves.
//!
//! The check runs on every token: it catches a key whose private half and published JWK
//! disagree, a `kid` missing from the JWKS, and header or claim drift, at the cost of one
//! verification with a public key parsed once at load (no key parsing and no claims
//! deserialisation per token: the payload is only scanned for the required claim names). It
//! reads no clock: `exp`/`nbf` are the caller's business, checked against the injected clock
//! where the claims are built.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::decode_header;
use serde::Serialize;
use serde::de::IgnoredAny;

use crate::tokens::SignError;
use crate::tokens::keys::PrivateKey;

/// Claims every token we issue must carry.
const REQUIRED_CLAIMS: [&str; 4] = ["exp", "iss", "sub", "aud"];

/// Which of [`REQUIRED_CLAIMS`] a payload holds; every other member is skipped unread.
#[derive(serde::Deserialize)]
struct RequiredClaims {
    exp: Option<IgnoredAny>,
    iss: Option<IgnoredAny>,
    sub: Option<IgnoredAny>,
    aud: Option<IgnoredAny>,
}

impl RequiredClaims {
    fn first_missing(&self) -> Option<&'static str> {
        let present = [
            self.exp.is_some(),
            self.iss.is_some(),
            self.sub.is_some(),
            self.aud.is_some(),
        ];
        REQUIRED_CLAIMS
            .into_iter()
            .zip(present)
            .find_map(|(name, ok)| (!ok).then_some(name))
    }
}

/// Signs `claims` with `signer` (header `typ`, `alg`, `kid`), then verifies the result
/// against `published` with [`verify_published`].
///
/// # Errors
/// [`SignError::Crypto`] when signing fails; [`SignError::SelfCheck`] when the result does
/// not verify.
pub(crate) fn sign_and_check<'a>(
    signer: &PrivateKey,
    typ: &str,
    claims: &impl Serialize,
    published: impl IntoIterator<Item = &'a PrivateKey>,
) -> Result<String, SignError> {
    let token = signer.sign_jwt(typ, claims)?;
    verify_published(&token, typ, published)?;
    Ok(token)
}

/// Verifies `token` as a relying party holding our JWKS would: its `kid` must name a published
/// key whose `alg` equals the header's, its `typ` must be `typ`, its signature must verify
/// with the published (public) key, and it must carry [`REQUIRED_CLAIMS`].
///
/// # Errors
/// [`SignError::SelfCheck`] naming the failed check; never the token.
pub(crate) fn verify_published<'a>(
    token: &str,
    typ: &str,
    published: impl IntoIterator<Item = &'a PrivateKey>,
) -> Result<(), SignError> {
    let fail = |why: String| SignError::SelfCheck(why);
    let header = decode_header(token).map_err(|e| fail(format!("header: {e}")))?;
    if header.typ.as_deref() != Some(typ) {
        return Err(fail(format!("typ is not {typ}")));
    }
    let kid = header.kid.as_deref().ok_or_else(|| fail("no kid".into()))?;
    let key = published
        .into_iter()
        .find(|k| k.kid() == kid)
        .ok_or_else(|| fail(format!("kid {kid} is not published")))?;
    if header.alg != key.alg().to_jsonwebtoken() {
        return Err(fail(format!(
            "header alg {:?} differs from the key's {}",
            header.alg,
            key.alg()
        )));
    }
    let (signing_input, signature) = token
        .rsplit_once('.')
        .ok_or_else(|| fail("not a compact JWS".into()))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| fail(format!("kid {kid}: InvalidSignature (not base64url)")))?;
    if !key.verify_signature(signing_input.as_bytes(), &signature) {
        return Err(fail(format!("kid {kid}: InvalidSignature")));
    }
    let payload = signing_input
        .split_once('.')
        .map(|(_, payload)| payload)
        .ok_or_else(|| fail("not a compact JWS".into()))?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| fail("payload is not base64url".into()))?;
    let claims: RequiredClaims = serde_json::from_slice(&payload)
        .map_err(|e| fail(format!("payload is not a JSON object: {e}")))?;
    match claims.first_missing() {
        Some(name) => Err(fail(format!("missing required claim {name}"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    use super::*;
    use crate::jose::SigningAlgorithm;

    fn claims() -> serde_json::Value {
        json!({"iss": "i", "sub": "s", "aud": "a", "exp": 10})
    }

    fn self_check_reason(result: Result<impl std::fmt::Debug, SignError>) -> String {
        match result {
            Err(SignError::SelfCheck(why)) => why,
            other => panic!("expected SelfCheck, got {other:?}"),
        }
    }

    #[test]
    fn signed_tokens_pass_the_check() {
        let key = PrivateKey::generate(SigningAlgorithm::ES256).unwrap();
        let token = sign_and_check(&key, "at+jwt", &claims(), [&key]).unwrap();
        assert_eq!(token.split('.').count(), 3);
    }

    #[test]
    fn a_key_whose_published_half_differs_fails_the_check() {
        let other = PrivateKey::generate(SigningAlgorithm::ES256).unwrap();
        let key = PrivateKey::generate(SigningAlgorithm::ES256)
            .unwrap()
            .with_public_half_of(&other);
        let why = self_check_reason(sign_and_check(&key, "at+jwt", &claims(), [&key]));
        assert!(why.contains("InvalidSignature"), "{why}");
    }

    #[test]
    fn an_unpublished_kid_fails_the_check() {
        let key = PrivateKey::generate(SigningAlgorithm::EdDSA).unwrap();
        let other = PrivateKey::generate(SigningAlgorithm::EdDSA).unwrap();
        let why = self_check_reason(sign_and_check(&key, "at+jwt", &claims(), [&other]));
        assert!(why.contains("not published"), "{why}");
    }

    #[test]
    fn a_tampered_signature_fails_the_check() {
        let key = PrivateKey::generate(SigningAlgorithm::EdDSA).unwrap();
        let token = key.sign_jwt("at+jwt", &claims()).unwrap();
        let (input, sig) = token.rsplit_once('.').unwrap();
        let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        sig[0] ^= 1;
        let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
        self_check_reason(verify_published(&forged, "at+jwt", [&key]));
    }

    #[test]
    fn wrong_typ_missing_claims_and_garbage_fail_the_check() {
        let key = PrivateKey::generate(SigningAlgorithm::EdDSA).unwrap();
        let token = key.sign_jwt("JWT", &claims()).unwrap();
        let why = self_check_reason(verify_published(&token, "at+jwt", [&key]));
        assert!(why.contains("typ"), "{why}");

        let no_aud = json!({"iss": "i", "sub": "s", "exp": 10});
        let why = self_check_reason(sign_and_check(&key, "at+jwt", &no_aud, [&key]));
        assert!(why.contains("aud"), "{why}");

        self_check_reason(verify_published("not.a.jwt", "at+jwt", [&key]));
        self_check_reason(verify_published("", "at+jwt", [&key]));
    }

    #[test]
    fn an_alg_differing_from_the_published_key_fails_the_check() {
        // Same RSA key material published as PS256 but signing RS256.
        let rs = PrivateKey::generate(SigningAlgorithm::RS256).unwrap();
        let ps =
            PrivateKey::from_pkcs8_pem(&rs.to_pkcs8_pem(), Some(SigningAlgorithm::PS256)).unwrap();
        assert_eq!(rs.kid(), ps.kid());
        let why = self_check_reason(sign_and_check(&rs, "at+jwt", &claims(), [&ps]));
        assert!(why.contains("alg"), "{why}");
    }
}
