//! Test-only builders shared by the decision, explanation and index tests: a policy set from
//! YAML text (through the same loader as `serve`) and a token as `issuers` would hand it over.

use serde_json::{Value, json};

use crate::issuers::ValidatedToken;
use crate::jose::SigningAlgorithm;
use crate::policy::PolicySet;

/// Loads `yaml` as one policy file; panics with the problems if it does not load.
pub(crate) fn policies(yaml: &str) -> PolicySet {
    crate::policy::load_texts(&[("all.yaml", yaml)])
        .unwrap_or_else(|errors| panic!("fixture policies load: {errors}"))
}

/// A validated token from `https://{issuer}.example.com` (issuer name `issuer`) with `sub`
/// (when given), `aud`, `exp`, and every member of `extra` as further claims.
pub(crate) fn validated(
    issuer: &str,
    sub: Option<&str>,
    aud: &str,
    extra: Value,
) -> ValidatedToken {
    let iss = format!("https://{issuer}.example.com");
    let mut claims = serde_json::Map::new();
    claims.insert("iss".into(), json!(iss));
    if let Some(sub) = sub {
        claims.insert("sub".into(), json!(sub));
    }
    claims.insert("aud".into(), json!(aud));
    claims.insert("exp".into(), json!(2_000_000_000u64));
    if let Value::Object(extra) = extra {
        claims.extend(extra);
    }
    ValidatedToken {
        issuer_name: issuer.to_string(),
        iss,
        sub: sub.map(str::to_string),
        aud: vec![aud.to_string()],
        exp: 2_000_000_000,
        iat: None,
        nbf: None,
        jti: None,
        alg: SigningAlgorithm::RS256,
        kid: None,
        claims,
    }
}
