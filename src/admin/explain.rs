//! `POST /admin/v1/explain`: "who can become what" for one token or set of claims, as JSON.
//!
//! The same trace as `trustbridge policy explain`: candidates and checks come from
//! [`crate::exchange::explain::explain`], the verdict from [`crate::exchange::decide`], the
//! refusal's label and code from the token endpoint's vocabulary ([`crate::tools::refusal`]),
//! and claims become a token with [`crate::tools::token_from_claims`]. A pasted token is
//! validated by the caller with the gateway's own issuer registry first (the route does that;
//! this module stays pure). Nothing is granted or recorded: explaining changes no state.
//! The response never echoes a pasted token.

use std::time::SystemTime;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::exchange::explain::{Query, explain};
use crate::exchange::{self, Limits, Situation};
use crate::issuers::ValidatedToken;
use crate::policy::PolicySet;
use crate::tools::{RequestSpec, refusal, token_from_claims};

/// Largest explain request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The request body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainInput {
    /// Tenant name.
    pub tenant: String,
    /// `client_id` of the request, if any.
    #[serde(default)]
    pub client_id: Option<String>,
    /// `resource` of the request (token exchange), if any.
    #[serde(default)]
    pub resource: Option<String>,
    /// `scope` of the request (`api://payments/.default`), if any.
    #[serde(default)]
    pub scope: Option<String>,
    /// With `claims`: the issuer name [default: the one whose URL is `claims.iss`].
    #[serde(default)]
    pub issuer: Option<String>,
    /// The token's claims (exactly one of `claims` and `token`).
    #[serde(default)]
    pub claims: Option<Map<String, Value>>,
    /// A subject token (exactly one of `claims` and `token`).
    #[serde(default)]
    pub token: Option<String>,
}

impl ExplainInput {
    /// Parses and checks a request body.
    ///
    /// # Errors
    /// A message naming what is wrong (never quoting a token).
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let input: Self = serde_json::from_slice(body).map_err(|e| {
            // serde's message may quote a value; keep only where it failed.
            format!(
                "the body must be a JSON object {{tenant, client_id?, resource?, scope?, issuer?, claims | token}} (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        if input.tenant.is_empty() {
            return Err("tenant is required".into());
        }
        match (&input.claims, &input.token) {
            (Some(_), None) | (None, Some(_)) => Ok(input),
            _ => Err("give exactly one of claims and token".into()),
        }
    }
}

/// How the token's signature was treated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    /// Validated by the gateway's issuer registry (signature, issuer, time claims).
    Verified,
    /// Claims were given, not a token.
    ClaimsOnly,
    /// Validation failed for this reason; the unverified claims are explained anyway.
    Failed(String),
}

impl Signature {
    fn json(&self) -> Value {
        match self {
            Self::Verified => json!({"status": "verified",
                "detail": "verified (signature, issuer and time claims)"}),
            Self::ClaimsOnly => json!({"status": "claims",
                "detail": "not applicable (claims given, not a token)"}),
            Self::Failed(why) => json!({"status": "failed",
                "detail": format!("FAILED: {why}; explaining the unverified claims anyway")}),
        }
    }
}

/// The token to explain when `input` carries claims.
///
/// # Errors
/// When the issuer is unknown or a standard claim has the wrong type.
pub fn claims_token(input: &ExplainInput, policies: &PolicySet) -> Result<ValidatedToken, String> {
    let claims = input.claims.clone().unwrap_or_default();
    token_from_claims(policies, input.issuer.as_deref(), claims)
}

/// The explanation of `token` for `input` against `policies` at `now`, as the admin API's
/// JSON: the token's summary, the request, every candidate's checks, the verdict (when a
/// resource or scope was given) and the same text `policy explain` prints.
///
/// # Errors
/// When the request itself is invalid (as the token endpoint would refuse it).
pub fn report(
    token: &ValidatedToken,
    signature: &Signature,
    input: &ExplainInput,
    policies: &PolicySet,
    now: SystemTime,
) -> Result<Value, String> {
    let spec = RequestSpec {
        tenant: &input.tenant,
        client_id: input.client_id.as_deref(),
        scope: input.scope.as_deref(),
        resource: input.resource.as_deref(),
        grant: None,
    };
    let request = if input.scope.is_some() || input.resource.is_some() {
        Some(
            spec.parse()
                .map_err(|e| format!("the request is invalid: {e}"))?,
        )
    } else {
        None
    };
    let explanation = explain(
        token,
        Query {
            tenant: &input.tenant,
            client_id: input.client_id.as_deref(),
            target: request.as_ref().map(|r| &r.target),
            request: Situation::UNKNOWN,
        },
        policies,
    );
    let candidates: Vec<Value> = explanation
        .candidates
        .iter()
        .map(|c| {
            json!({
                "identity": c.identity,
                "credential": c.credential,
                "mode": c.mode.as_str(),
                "declared_at": c.declared_at,
                "matched": c.matched(),
                "failed_check": c.first_failure().map(|f| f.kind.as_str()),
                "checks": c.checks.iter().map(|k| json!({
                    "check": k.kind.as_str(),
                    "status": k.status.as_str(),
                    "detail": k.detail,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let decision = match &request {
        None => json!({"outcome": "not evaluated",
            "detail": "give resource or scope to evaluate role checks and a verdict"}),
        Some(request) => {
            match exchange::decide(token, request, policies, &Limits::default(), now) {
                Ok(grant) => json!({
                    "outcome": "allow",
                    "identity": grant.identity_name,
                    "identity_kind": grant.identity_kind.as_str(),
                    "credential": grant.credential,
                    "resource": grant.resource,
                    "roles": grant.roles,
                    "lifetime_s": grant.lifetime.as_secs(),
                }),
                Err(denial) => {
                    let (reason, code, description) = refusal(&denial, request.grant);
                    json!({
                        "outcome": "deny",
                        "reason": reason,
                        "code": code,
                        "description": description,
                    })
                }
            }
        }
    };
    Ok(json!({
        "policy_hash": policies.content_hash(),
        "token": {
            "issuer": token.issuer_name,
            "iss": token.iss,
            "sub": token.sub,
            "aud": token.aud,
        },
        "signature": signature.json(),
        "request": {
            "tenant": input.tenant,
            "client_id": input.client_id,
            "resource": request.as_ref().map(|r| r.target.resource.clone()),
        },
        "notes": explanation.notes,
        "candidates": candidates,
        "decision": decision,
        "text": explanation.to_string(),
    }))
}
