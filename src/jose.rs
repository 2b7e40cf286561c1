//! JOSE vocabulary shared by every layer: the signing algorithms trustbridge accepts and uses,
//! the RSA parameter helpers both the issuer keys (`issuers`) and our own signing keys
//! (`tokens`) need, and the claim names access tokens fix or reserve (read by `policy` when it
//! checks `claimMappings`, by `tokens` when it serializes, by `http` for discovery).
//!
//! A leaf: it imports nothing from the crate, so `policy`, `issuers` and `tokens` can all use it
//! without importing each other. No I/O, no key material kept here.

use std::fmt;

use aws_lc_rs::signature::RsaParameters;

/// JWS algorithms trustbridge accepts on subject tokens or uses to sign. `none` and the HMAC
/// family are deliberately absent: they cannot be expressed, so they cannot be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384 (AWS outbound federation signs with it).
    ES384,
    /// Ed25519.
    EdDSA,
}

impl SigningAlgorithm {
    /// Every supported algorithm, in a stable order.
    pub const ALL: [SigningAlgorithm; 7] = [
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::ES256,
        Self::ES384,
        Self::EdDSA,
    ];

    /// The RSA-family algorithms, which any RSA key may verify or sign.
    pub const RSA: [SigningAlgorithm; 4] = [Self::RS256, Self::RS384, Self::RS512, Self::PS256];

    /// The JOSE name (`"RS256"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }

    /// Parses a JOSE name; `None` for anything not supported (including `none` and `HS*`).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// The JWK key type (`kty`) a key must have to verify this algorithm.
    pub fn key_type(self) -> &'static str {
        match self {
            Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 => "RSA",
            Self::ES256 | Self::ES384 => "EC",
            Self::EdDSA => "OKP",
        }
    }

    /// The jsonwebtoken equivalent.
    pub fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as A;
        match self {
            Self::RS256 => A::RS256,
            Self::RS384 => A::RS384,
            Self::RS512 => A::RS512,
            Self::PS256 => A::PS256,
            Self::ES256 => A::ES256,
            Self::ES384 => A::ES384,
            Self::EdDSA => A::EdDSA,
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === RSA parameters ===

/// The aws-lc-rs verification parameters of `alg` (RSA ones accept 2048 to 8192 bits). Only
/// meaningful for the RSA family; any other algorithm gets the RS256 parameters.
pub fn rsa_parameters(alg: SigningAlgorithm) -> &'static RsaParameters {
    use SigningAlgorithm as A;
    match alg {
        A::RS384 => &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA384,
        A::RS512 => &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA512,
        A::PS256 => &aws_lc_rs::signature::RSA_PSS_2048_8192_SHA256,
        _ => &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
    }
}

/// `value` without its leading zero octets (RFC 7518 §6.3.1: `n` and `e` are unsigned
/// big-endian without them); `None` when it is empty or all zeros.
pub fn unsigned_be(value: &[u8]) -> Option<&[u8]> {
    let first = value.iter().position(|&b| b != 0)?;
    Some(&value[first..])
}

/// The length in bits of an RSA modulus `n` (leading zero octets ignored); 0 for an empty or
/// all-zero modulus.
pub fn rsa_modulus_bits(n: &[u8]) -> usize {
    match unsigned_be(n) {
        Some(n) => (n.len() - 1) * 8 + (8 - n[0].leading_zeros() as usize),
        None => 0,
    }
}

// === JWK thumbprints ===

/// The members of a public JWK that its RFC 7638 thumbprint covers, base64url-encoded as the
/// JWK carries them (callers pass only values they have decoded or encoded themselves, so
/// nothing needs escaping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThumbprintMembers<'a> {
    /// `kty: RSA`.
    Rsa {
        /// Modulus.
        n: &'a str,
        /// Exponent.
        e: &'a str,
    },
    /// `kty: EC`.
    Ec {
        /// Curve name (`P-256`, `P-384`).
        crv: &'a str,
        /// X coordinate.
        x: &'a str,
        /// Y coordinate.
        y: &'a str,
    },
    /// `kty: OKP` (RFC 8037).
    Okp {
        /// Curve name (`Ed25519`).
        crv: &'a str,
        /// Public key.
        x: &'a str,
    },
}

/// The RFC 7638 SHA-256 thumbprint of a public key, base64url without padding: the hash of the
/// required members only, in lexicographic order, without whitespace (RFC 7638 §3.2). Our
/// signing keys' `kid` and a DPoP proof key's `cnf.jkt` (RFC 9449 §6) both use it.
pub fn jwk_thumbprint(members: &ThumbprintMembers<'_>) -> String {
    use base64::Engine as _;
    let canonical = match members {
        ThumbprintMembers::Rsa { n, e } => format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
        ThumbprintMembers::Ec { crv, x, y } => {
            format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#)
        }
        ThumbprintMembers::Okp { crv, x } => format!(r#"{{"crv":"{crv}","kty":"OKP","x":"{x}"}}"#),
    };
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

// === claim names ===

/// Every claim name `claimMappings` may not set: the fixed claims trustbridge writes itself
/// (first, in serialization order: [`FIXED_CLAIMS`] is this list's prefix), then every claim
/// with a defined authorization meaning that verifiers may act on, so a policy cannot forge
/// one. The one list for the loader, serialization and discovery; names are case-sensitive.
pub const RESERVED_CLAIMS: [&str; 56] = [
    // Fixed claims of our access tokens (RFC 7519 §4.1, RFC 9068 §2.2, Entra), serialized in
    // this order.
    "iss",
    "sub",
    "aud",
    "iat",
    "nbf",
    "exp",
    "jti",
    "client_id",
    "azp",
    "oid",
    "tid",
    "roles",
    "idtyp",
    "src_iss",
    "src_sub",
    "src_cred",
    // RFC 7800 / RFC 9449 §6 (proof of possession: `cnf.jkt`, the key the token is bound to;
    // written only on tokens issued for a DPoP proof).
    "cnf",
    // RFC 9068 §2.2.2 (authentication) and §2.2.3 (authorization: SCIM attributes, scope).
    "auth_time",
    "acr",
    "amr",
    "scope",
    "groups",
    "entitlements",
    // RFC 8693 §4 (delegation and impersonation).
    "act",
    "may_act",
    // OpenID Connect claims verifiers treat as authentication evidence.
    "nonce",
    "sid",
    "at_hash",
    "c_hash",
    // Entra ID access-token claims resources authorize on or trust.
    "scp",
    "wids",
    "typ",
    "ver",
    "appid",
    "appidacr",
    "azpacr",
    "idp",
    "hasgroups",
    "_claim_names",
    "_claim_sources",
    "upn",
    "unique_name",
    "preferred_username",
    "puid",
    "ipaddr",
    "xms_mirid",
    "xms_az_rid",
    "xms_cc",
    "xms_idrel",
    "xms_pdl",
    "xms_tpl",
    "aio",
    "rh",
    "uti",
    "deviceid",
    "onprem_sid",
];

/// Names of the fixed claims, in the order they are serialized: the head of
/// [`RESERVED_CLAIMS`]. A `claimMappings` entry with one of these names is never emitted.
pub const FIXED_CLAIMS: [&str; 17] = fixed_claims();

const fn fixed_claims() -> [&'static str; 17] {
    let mut out = [""; 17];
    let mut i = 0;
    while i < out.len() {
        out[i] = RESERVED_CLAIMS[i];
        i += 1;
    }
    out
}

/// Whether `claimMappings` may not use `name`: one of [`RESERVED_CLAIMS`].
pub fn is_reserved_claim(name: &str) -> bool {
    RESERVED_CLAIMS.contains(&name)
}

/// Every reserved claim name, for messages.
pub fn reserved_claims() -> impl Iterator<Item = &'static str> {
    RESERVED_CLAIMS.into_iter()
}

/// Whether `name` is a fixed claim that mapped claims may not use.
pub fn is_fixed_claim(name: &str) -> bool {
    FIXED_CLAIMS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_and_authorization_claims_are_reserved_from_policies() {
        let named_in_issue_12 = [
            "scope",
            "scp",
            "groups",
            "wids",
            "entitlements",
            "act",
            "may_act",
            "cnf",
            "acr",
            "amr",
            "auth_time",
            "azpacr",
            "appidacr",
            "ver",
            "nonce",
            "typ",
            "appid",
        ];
        for claim in FIXED_CLAIMS.into_iter().chain(named_in_issue_12) {
            assert!(is_reserved_claim(claim), "{claim}");
        }
        assert_eq!(FIXED_CLAIMS[..], RESERVED_CLAIMS[..17]);
        assert!(!is_reserved_claim("repository"));
        assert!(
            !is_reserved_claim("Scope"),
            "claim names are case-sensitive"
        );
        let mut names: Vec<&str> = reserved_claims().collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RESERVED_CLAIMS.len(), "no name listed twice");
    }

    #[test]
    fn algorithms_parse_only_supported_names() {
        for alg in SigningAlgorithm::ALL {
            assert_eq!(SigningAlgorithm::parse(alg.as_str()), Some(alg));
        }
        for bad in ["none", "HS256", "HS512", "rs256", ""] {
            assert_eq!(SigningAlgorithm::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn rsa_helpers_ignore_leading_zeros() {
        assert_eq!(unsigned_be(&[0, 0, 1, 0]), Some(&[1, 0][..]));
        assert_eq!(unsigned_be(&[0, 0]), None);
        assert_eq!(unsigned_be(&[]), None);
        assert_eq!(rsa_modulus_bits(&[0, 0x80, 0]), 16);
        assert_eq!(rsa_modulus_bits(&[0x01]), 1);
        assert_eq!(rsa_modulus_bits(&[0]), 0);
    }
}

// === signing self-check ===

/// Which issued tokens are verified again after signing (`--verify-issued`); see `tokens`' module
/// docs for the fault model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyIssued {
    /// Every token.
    All,
    /// Each key's first [`VERIFY_FIRST`] tokens, then one in [`VERIFY_EVERY`].
    #[default]
    Sample,
    /// Only the probes: when a key is loaded and when it starts signing.
    Load,
}

/// Tokens each key signs that [`VerifyIssued::Sample`] verifies before it starts sampling.
pub const VERIFY_FIRST: u64 = 64;
/// After [`VERIFY_FIRST`], [`VerifyIssued::Sample`] verifies one token in this many.
pub const VERIFY_EVERY: u64 = 64;

impl VerifyIssued {
    /// Parses `all`, `sample` or `load`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "all" => Some(Self::All),
            "sample" => Some(Self::Sample),
            "load" => Some(Self::Load),
            _ => None,
        }
    }

    /// Whether the `n`th token (from 0) a key signs is verified.
    pub fn verifies(self, n: u64) -> bool {
        match self {
            Self::All => true,
            Self::Sample => n < VERIFY_FIRST || n.is_multiple_of(VERIFY_EVERY),
            Self::Load => false,
        }
    }
}
