//! Operators' tools behind `trustbridge policy check | test | explain`.
//!
//! Each shares the serve path: policies come from [`crate::policy::load_dir`], requests are
//! parsed by [`ExchangeRequest::parse`] from a form body exactly as the token endpoint parses
//! them, decisions come from [`crate::exchange::decide`], and refusals are labelled and coded
//! by the same [`crate::refusal`] vocabulary the token endpoint answers with. Output goes
//! through `&mut dyn Write` so tests read it.

pub mod cases;
pub mod check;
pub mod explain;
pub mod graph;

/// Exit code when the invocation is unusable: a usage error (unknown flag, missing argument),
/// bad settings, or unusable inputs (sysexits' `EX_USAGE`). No tool uses it for a verdict, so
/// CI never reads a typo as a result (issue #16; the table is in docs/operations.md).
pub const EXIT_USAGE: i32 = 64;

use serde_json::{Map, Value};

use crate::exchange::request::{
    ExchangeRequest, GrantType, JWT_BEARER, RequestError, TOKEN_EXCHANGE, TOKEN_TYPE_JWT,
};
use crate::issuers::ValidatedToken;
use crate::jose::SigningAlgorithm;
use crate::policy::PolicySet;
use crate::refusal::{Context, Refuse};

/// Placeholder for the subject token in requests built by the tools: the tools hand the
/// decision a [`ValidatedToken`] directly, so the form's token is never read.
const NO_TOKEN: &str = "-";

/// Expiry given to tokens made from claims without `exp`: far away, since the tools stand in
/// for time checks.
const FAR_EXPIRY: u64 = 4_102_444_800; // 2100-01-01

/// The request a client would send, as the form body the token endpoint parses.
#[derive(Debug, Clone, Default)]
pub struct RequestSpec<'a> {
    /// Tenant name (from the URL path).
    pub tenant: &'a str,
    /// `client_id`.
    pub client_id: Option<&'a str>,
    /// `scope`.
    pub scope: Option<&'a str>,
    /// `resource` (token exchange only).
    pub resource: Option<&'a str>,
    /// Grant; by default client credentials with a `client_id`, token exchange without.
    pub grant: Option<GrantType>,
}

impl RequestSpec<'_> {
    /// The grant this request uses.
    pub fn grant(&self) -> GrantType {
        self.grant.unwrap_or(if self.client_id.is_some() {
            GrantType::ClientCredentials
        } else {
            GrantType::TokenExchange
        })
    }

    /// Parses the request with the token endpoint's own parser.
    ///
    /// # Errors
    /// The same [`RequestError`] the endpoint would answer with.
    pub fn parse(&self) -> Result<ExchangeRequest, RequestError> {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        match self.grant() {
            GrantType::ClientCredentials => {
                form.append_pair("grant_type", "client_credentials");
                form.append_pair("client_assertion_type", JWT_BEARER);
                form.append_pair("client_assertion", NO_TOKEN);
            }
            GrantType::TokenExchange => {
                form.append_pair("grant_type", TOKEN_EXCHANGE);
                form.append_pair("subject_token_type", TOKEN_TYPE_JWT);
                form.append_pair("subject_token", NO_TOKEN);
            }
        }
        for (name, value) in [
            ("client_id", self.client_id),
            ("scope", self.scope),
            ("resource", self.resource),
        ] {
            if let Some(value) = value {
                form.append_pair(name, value);
            }
        }
        ExchangeRequest::parse(self.tenant, form.finish().as_bytes())
    }
}

/// The reason label and Entra code the token endpoint would answer `error` with under
/// `grant`, and the refusal's operator detail (what the audit trail records; the client gets
/// only the public description, see [`crate::refusal`]).
pub fn refusal(error: &dyn Refuse, grant: GrantType) -> (&'static str, Option<u32>, String) {
    let ctx = Context {
        token: grant.token_role(),
        ..Context::default()
    };
    let r = error.refusal(ctx);
    (r.reason, r.code, r.detail().to_string())
}

/// A [`ValidatedToken`] made from claims, standing in for a verified token: the issuer is
/// `issuer_name` or the declared issuer whose URL is `claims.iss`.
///
/// # Errors
/// A message when the issuer is unknown, `iss` disagrees with it, or a standard claim has the
/// wrong type.
pub fn token_from_claims(
    policies: &PolicySet,
    issuer_name: Option<&str>,
    mut claims: Map<String, Value>,
) -> Result<ValidatedToken, String> {
    let iss_claim = match claims.get("iss") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("claims.iss must be a string".into()),
    };
    let issuer = match (issuer_name, &iss_claim) {
        (Some(name), _) => policies.issuer(name).ok_or_else(|| {
            let known: Vec<&str> = policies.issuers().map(|i| i.name.as_str()).collect();
            format!(
                "issuer '{name}' is not declared (declared: {})",
                known.join(", ")
            )
        })?,
        (None, Some(iss)) => policies
            .issuer_for(iss)
            .ok_or_else(|| format!("no declared Issuer has the URL '{iss}' (claims.iss)"))?,
        (None, None) => return Err("name the issuer, or give claims.iss".into()),
    };
    match &iss_claim {
        Some(iss) if *iss != issuer.issuer => {
            return Err(format!(
                "claims.iss '{iss}' is not the URL of issuer '{}' ({})",
                issuer.name, issuer.issuer
            ));
        }
        Some(_) => {}
        None => {
            claims.insert("iss".into(), Value::String(issuer.issuer.clone()));
        }
    }
    let sub = match claims.get("sub") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("claims.sub must be a string".into()),
    };
    let aud = match claims.get("aud") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or("claims.aud must be a string or a list of strings")?,
        Some(_) => return Err("claims.aud must be a string or a list of strings".into()),
    };
    let number = |name: &str| claims.get(name).and_then(Value::as_u64);
    let exp = number("exp").unwrap_or(FAR_EXPIRY);
    Ok(ValidatedToken {
        issuer_name: issuer.name.clone(),
        iss: issuer.issuer.clone(),
        sub,
        aud,
        exp,
        iat: number("iat"),
        nbf: number("nbf"),
        jti: claims
            .get("jti")
            .and_then(Value::as_str)
            .map(str::to_string),
        alg: issuer
            .algorithms
            .first()
            .copied()
            .unwrap_or(SigningAlgorithm::RS256),
        kid: None,
        claims,
    })
}
