//! Claims of issued access tokens (RFC 9068 JWT profile, with Entra's app-token claims).
//!
//! Serialization is written by hand so that the fixed claims always come first and a mapped
//! claim can never replace one of them (see [`AccessTokenClaims`]).

use std::borrow::Cow;
use std::time::SystemTime;

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::clock::unix_seconds;
use crate::exchange::Grant;
use crate::jose::{FIXED_CLAIMS, is_fixed_claim};

/// The payload of a trustbridge access token.
///
/// RFC 9068 §2.2 requires `iss`, `exp`, `aud`, `sub`, `client_id`, `iat` and `jti` (all fixed
/// fields here; `nbf` is added as Entra does). The header's `typ: at+jwt` is set by the signer.
///
/// Serialized as the fixed claims in [`FIXED_CLAIMS`] order, then [`Self::mapped`] in its own
/// order. The policy loader already refuses mappings named like a fixed claim; serialization
/// skips such names anyway (defence in depth), because a mapping that overwrote `sub`, `aud`
/// or `roles` would mint a token for another identity or resource.
///
/// The values a grant decided are borrowed from its [`Grant`] (lifetime `'a`), not copied: a
/// token's claims live only until it is signed.
#[derive(Debug, Clone)]
pub struct AccessTokenClaims<'a> {
    /// Tenant issuer URL, byte-identical to the discovery `issuer`.
    pub iss: String,
    /// The identity's object id.
    pub sub: &'a str,
    /// The resource (its identifier URI).
    pub aud: &'a str,
    /// Issued at.
    pub iat: u64,
    /// Not before (= iat).
    pub nbf: u64,
    /// Expiry.
    pub exp: u64,
    /// Unique token id (random).
    pub jti: String,
    /// The client id.
    pub client_id: &'a str,
    /// Authorized party (= client_id), as Entra sets it.
    pub azp: &'a str,
    /// Object id (= sub).
    pub oid: &'a str,
    /// Tenant id.
    pub tid: &'a str,
    /// Roles granted on `aud`.
    pub roles: &'a [Cow<'a, str>],
    /// Always `app`: these are app-only tokens.
    pub idtyp: &'static str,
    /// Issuer of the exchanged subject token.
    pub src_iss: &'a str,
    /// Subject of the exchanged subject token.
    pub src_sub: &'a str,
    /// Name of the federated credential that allowed the exchange.
    pub src_cred: &'a str,
    /// The RFC 7638 thumbprint of the DPoP proof key the token is bound to, written as
    /// `cnf: {"jkt": ...}` (RFC 9449 §6); `None` (no `cnf`) for a bearer token.
    pub cnf_jkt: Option<String>,
    /// Claims from the credential's claimMappings; entries named like a fixed claim are
    /// skipped when serializing.
    pub mapped: Cow<'a, serde_json::Map<String, serde_json::Value>>,
}

impl<'a> AccessTokenClaims<'a> {
    /// The claims of the token a `grant` issues: signed by `issuer` (the grant's tenant
    /// issuer URL), valid from `now` for the grant's lifetime, identified by `jti`. The
    /// signer may still shorten `exp` to its key's end of life.
    pub fn for_grant(grant: &'a Grant<'_>, issuer: String, now: SystemTime, jti: String) -> Self {
        let iat = unix_seconds(now);
        Self {
            iss: issuer,
            sub: &grant.object_id,
            aud: &grant.resource,
            iat,
            nbf: iat,
            exp: iat + grant.lifetime.as_secs(),
            jti,
            client_id: &grant.client_id,
            azp: &grant.client_id,
            oid: &grant.object_id,
            tid: &grant.tenant_id,
            roles: &grant.roles,
            idtyp: "app",
            src_iss: &grant.source_issuer,
            src_sub: &grant.source_subject,
            src_cred: &grant.credential,
            cnf_jkt: None,
            mapped: Cow::Borrowed(&grant.mapped_claims),
        }
    }
}

impl Serialize for AccessTokenClaims<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mapped = self.mapped.iter().filter(|(k, _)| !is_fixed_claim(k));
        let fixed = FIXED_CLAIMS.len() - usize::from(self.cnf_jkt.is_none());
        let mut map = serializer.serialize_map(Some(fixed + mapped.clone().count()))?;
        // Keep in step with FIXED_CLAIMS (a test checks the order).
        map.serialize_entry("iss", &self.iss)?;
        map.serialize_entry("sub", &self.sub)?;
        map.serialize_entry("aud", &self.aud)?;
        map.serialize_entry("iat", &self.iat)?;
        map.serialize_entry("nbf", &self.nbf)?;
        map.serialize_entry("exp", &self.exp)?;
        map.serialize_entry("jti", &self.jti)?;
        map.serialize_entry("client_id", &self.client_id)?;
        map.serialize_entry("azp", &self.azp)?;
        map.serialize_entry("oid", &self.oid)?;
        map.serialize_entry("tid", &self.tid)?;
        map.serialize_entry("roles", &self.roles)?;
        map.serialize_entry("idtyp", self.idtyp)?;
        map.serialize_entry("src_iss", &self.src_iss)?;
        map.serialize_entry("src_sub", &self.src_sub)?;
        map.serialize_entry("src_cred", &self.src_cred)?;
        if let Some(jkt) = &self.cnf_jkt {
            map.serialize_entry("cnf", &serde_json::json!({ "jkt": jkt }))?;
        }
        for (name, value) in mapped {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn claims_for_a_grant_copy_its_identity_and_start_now() {
        use std::time::{Duration, UNIX_EPOCH};
        let grant = Grant {
            tenant: "contoso".into(),
            tenant_id: "tid".into(),
            identity_kind: crate::exchange::IdentityKind::ServicePrincipal,
            identity_name: "deploy-bot".into(),
            object_id: "oid".into(),
            client_id: "cid".into(),
            resource: "api://payments".into(),
            roles: vec!["Payments.Read".into()],
            lifetime: Duration::from_secs(900),
            mapped_claims: serde_json::Map::new(),
            credential: "infra-main".into(),
            credential_mode: crate::policy::model::CredentialMode::Enforce,
            source_issuer_name: "demo".into(),
            source_issuer: "https://demo".into(),
            source_subject: "repo:a/b".into(),
            one_time_use: false,
        };
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        let c =
            AccessTokenClaims::for_grant(&grant, "https://tb/contoso/v2.0".into(), now, "j".into());
        assert_eq!((c.iat, c.nbf, c.exp), (1000, 1000, 1900));
        assert_eq!((c.sub, c.oid), ("oid", "oid"));
        assert_eq!((c.client_id, c.azp), ("cid", "cid"));
        assert_eq!(c.aud, "api://payments");
        assert_eq!(c.src_cred, "infra-main");
        assert_eq!(c.idtyp, "app");
    }

    /// Claims for tests, with `mapped` as given.
    pub(crate) fn sample(mapped: serde_json::Map<String, Value>) -> AccessTokenClaims<'static> {
        static ROLES: [Cow<'static, str>; 1] = [Cow::Borrowed("Payments.Read")];
        AccessTokenClaims {
            iss: "https://tb.example/contoso/v2.0".into(),
            sub: "oid-1",
            aud: "api://payments",
            iat: 1_000,
            nbf: 1_000,
            exp: 4_600,
            jti: "jti-1".into(),
            client_id: "deploy-bot",
            azp: "deploy-bot",
            oid: "oid-1",
            tid: "tid-1",
            roles: &ROLES,
            idtyp: "app",
            src_iss: "https://token.actions.githubusercontent.com",
            src_sub: "repo:contoso/infra:ref:refs/heads/main",
            src_cred: "infra-main",
            cnf_jkt: Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into()),
            mapped: Cow::Owned(mapped),
        }
    }

    #[test]
    fn fixed_claims_come_first_in_order_then_mapped() {
        let mut mapped = serde_json::Map::new();
        mapped.insert("repository".into(), json!("contoso/infra"));
        mapped.insert("aaa".into(), json!(1));
        let text = serde_json::to_string(&sample(mapped)).unwrap();
        let mut names: Vec<&str> = FIXED_CLAIMS.to_vec();
        names.extend(["aaa", "repository"]);
        let positions: Vec<usize> = names
            .iter()
            .map(|n| {
                text.find(&format!("\"{n}\":"))
                    .unwrap_or_else(|| panic!("{n} missing"))
            })
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["idtyp"], "app");
        assert_eq!(value["roles"], json!(["Payments.Read"]));
        assert_eq!(value["repository"], "contoso/infra");
        assert_eq!(
            value["cnf"],
            json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"})
        );
        assert_eq!(value.as_object().unwrap().len(), 19);
    }

    #[test]
    fn mapped_claims_never_override_fixed_ones() {
        let mut mapped = serde_json::Map::new();
        for name in FIXED_CLAIMS {
            mapped.insert(name.into(), json!("attacker"));
        }
        mapped.insert("ok".into(), json!(true));
        let text = serde_json::to_string(&sample(mapped)).unwrap();
        assert!(!text.contains("attacker"), "{text}");
        assert_eq!(text.matches("\"sub\":").count(), 1);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["sub"], "oid-1");
        assert_eq!(value["aud"], "api://payments");
        assert_eq!(value["ok"], true);
        assert_eq!(value.as_object().unwrap().len(), 18);
    }

    #[test]
    fn bearer_tokens_carry_no_cnf() {
        let mut claims = sample(serde_json::Map::new());
        claims.cnf_jkt = None;
        let value = serde_json::to_value(&claims).unwrap();
        assert!(value.get("cnf").is_none(), "{value}");
        assert_eq!(value.as_object().unwrap().len(), FIXED_CLAIMS.len() - 1);
    }

    #[test]
    fn fixed_claim_names_are_recognised() {
        assert!(is_fixed_claim("roles"));
        assert!(!is_fixed_claim("repository"));
        assert!(!is_fixed_claim("Sub"), "claim names are case-sensitive");
    }
}
