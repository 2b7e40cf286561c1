//! `trustbridge policy test [DIR]`: runs the test cases kept beside the policies, in
//! `*.test.yaml` files, against the policy set `serve` would load from the same directory.
//!
//! A case gives an issuer and the claims of a token, a tenant, and the request (client id,
//! scope or resource, grant), and expects an allow (identity, roles, mapped claims, lifetime)
//! or a deny (reason label and/or Entra code). No network: the claims become a
//! [`ValidatedToken`](crate::issuers::ValidatedToken) directly, standing in for the signature,
//! issuer and time checks; everything after that is the server's own code.
//!
//! ```yaml
//! cases:
//!   - name: main branch may deploy
//!     issuer: demo
//!     claims: {sub: "repo:contoso/infra:ref:refs/heads/main", aud: api://trustbridge}
//!     tenant: contoso
//!     clientId: deploy-bot
//!     scope: api://payments/.default
//!     expect:
//!       allow: {identity: deploy-bot, roles: [Payments.Read]}
//!   - name: other branches may not
//!     ...
//!     expect:
//!       deny: subject_mismatch      # or 700213, or {reason: ..., code: ...}
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::exchange::request::{GrantType, RequestContext};
use crate::exchange::{self, Grant, Limits};
use crate::policy::PolicySet;
use crate::policy::load::is_test_file;
use crate::tools::{RequestSpec, refusal, token_from_claims};

/// A `*.test.yaml` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// The cases, run in order.
    pub cases: Vec<Case>,
}

/// One test case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Case {
    /// What it shows; printed by the runner.
    pub name: String,
    /// Name of the declared Issuer the token comes from (default: the one whose URL is
    /// `claims.iss`).
    pub issuer: Option<String>,
    /// The token's claims (`sub`, `aud`, and whatever conditions and mappings read).
    #[serde(default)]
    pub claims: Map<String, Value>,
    /// Tenant name.
    pub tenant: String,
    /// `client_id`.
    pub client_id: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// `resource`.
    pub resource: Option<String>,
    /// `client_credentials` or `token_exchange` (default: by whether `clientId` is given).
    pub grant: Option<CaseGrant>,
    /// What conditions, `allowedNetworks` and `requireProofOfPossession` see of the request.
    pub request: Option<CaseRequest>,
    /// The expected outcome.
    pub expect: Expect,
}

/// `request` of a case: the facts the handler would pass in.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CaseRequest {
    /// The client address (`request.ip`); unknown when absent.
    pub ip: Option<String>,
    /// The time of the request, RFC 3339 (`request.time`); the runner's clock when absent.
    pub time: Option<String>,
    /// Whether the request came over TLS (`request.tls`).
    #[serde(default)]
    pub tls: bool,
    /// Whether the request carried a valid DPoP proof.
    #[serde(default)]
    pub proof_of_possession: bool,
}

/// `grant` of a case.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseGrant {
    /// Client credentials with a federated assertion.
    ClientCredentials,
    /// RFC 8693 token exchange.
    TokenExchange,
}

/// `expect` of a case: exactly one of `allow` and `deny`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The exchange is allowed (and looks like this).
    pub allow: Option<AllowSpec>,
    /// The exchange is denied (for this reason).
    pub deny: Option<DenySpec>,
}

/// What an allowed exchange must look like; omitted fields are not checked.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AllowSpec {
    /// The identity's name (application or managed identity).
    pub identity: Option<String>,
    /// The credential that matched.
    pub credential: Option<String>,
    /// Exactly these roles (in any order).
    pub roles: Option<Vec<String>>,
    /// These mapped claims, each with this value (others may be present).
    pub claims: Option<Map<String, Value>>,
    /// The token lifetime, e.g. `15m`.
    pub lifetime: Option<String>,
}

/// What a denial must be.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum DenySpec {
    /// A reason label (`subject_mismatch`) or an Entra code (`700213`).
    Short(String),
    /// A code given as a number.
    Code(u32),
    /// Both, or either.
    Full {
        /// Reason label.
        reason: Option<String>,
        /// Entra code.
        code: Option<u32>,
    },
}

/// Totals of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Cases that met their expectation.
    pub passed: usize,
    /// Cases that did not, or could not run.
    pub failed: usize,
}

/// Runs every case file in `dir`; prints like a test runner; returns the exit code (0 when
/// every case passed and there was at least one).
pub fn run(dir: &Path, now: SystemTime, out: &mut dyn Write) -> i32 {
    let totals = match run_dir(dir, now, out) {
        Ok(t) => t,
        Err(message) => {
            let _ = writeln!(out, "{}: {message}", dir.display());
            return 1;
        }
    };
    let _ = writeln!(out, "\n{} passed, {} failed", totals.passed, totals.failed);
    if totals.failed == 0 && totals.passed > 0 {
        0
    } else {
        1
    }
}

/// Runs every case file in `dir`, printing each result.
///
/// # Errors
/// A message when the policies do not load or there are no case files.
pub fn run_dir(dir: &Path, now: SystemTime, out: &mut dyn Write) -> Result<Totals, String> {
    let policies = crate::policy::load_dir(dir).map_err(|e| format!("policies: {e}"))?;
    let files = case_files(dir)?;
    if files.is_empty() {
        return Err("no *.test.yaml files: nothing to run".into());
    }
    let mut totals = Totals::default();
    for file in files {
        let parsed = std::fs::read_to_string(&file)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_yaml_ng::from_str::<CaseFile>(&text).map_err(|e| e.to_string()));
        let cases = match parsed {
            Ok(f) => f.cases,
            Err(e) => {
                let _ = writeln!(out, "FAILED  {}: cannot read: {e}", file.display());
                totals.failed += 1;
                continue;
            }
        };
        let _ = writeln!(
            out,
            "running {} case(s) from {}",
            cases.len(),
            file.display()
        );
        for case in &cases {
            match run_case(case, &policies, now) {
                Ok(()) => {
                    totals.passed += 1;
                    let _ = writeln!(out, "ok      {}", case.name);
                }
                Err(why) => {
                    totals.failed += 1;
                    let _ = writeln!(out, "FAILED  {}\n        {why}", case.name);
                }
            }
        }
    }
    Ok(totals)
}

fn case_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read directory: {e}"))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| is_test_file(p) && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// The request context and decision time a case's `request` gives (`now` without one).
fn request_context(
    spec: Option<&CaseRequest>,
    now: SystemTime,
) -> Result<(RequestContext, SystemTime), String> {
    let Some(spec) = spec else {
        return Ok((RequestContext::default(), now));
    };
    let client_ip = match spec.ip.as_deref() {
        None => None,
        Some(text) => Some(
            crate::cidr::parse_ip(text)
                .map_err(|e| format!("request.ip {text:?} is not an IP address: {e}"))?,
        ),
    };
    let now = match spec.time.as_deref() {
        None => now,
        Some(text) => humantime::parse_rfc3339_weak(text).map_err(|e| {
            format!(
                "request.time {text:?} is not an RFC 3339 time such as 2026-01-01T09:00:00Z: {e}"
            )
        })?,
    };
    let context = RequestContext {
        client_ip,
        tls: spec.tls,
        proof_key: spec.proof_of_possession.then(|| "policy-test".to_string()),
    };
    Ok((context, now))
}

/// Runs one case against `policies`.
///
/// # Errors
/// Why the case failed: the outcome differs from the expectation, or the case is malformed
/// (unknown issuer, claims of the wrong type).
pub fn run_case(case: &Case, policies: &PolicySet, now: SystemTime) -> Result<(), String> {
    let token = token_from_claims(policies, case.issuer.as_deref(), case.claims.clone())?;
    let spec = RequestSpec {
        tenant: &case.tenant,
        client_id: case.client_id.as_deref(),
        scope: case.scope.as_deref(),
        resource: case.resource.as_deref(),
        grant: case.grant.map(|g| match g {
            CaseGrant::ClientCredentials => GrantType::ClientCredentials,
            CaseGrant::TokenExchange => GrantType::TokenExchange,
        }),
    };
    let grant_type = spec.grant();
    let (context, now) = request_context(case.request.as_ref(), now)?;
    let parsed = spec.parse().map(|mut req| {
        req.context = context;
        req
    });
    let outcome = match &parsed {
        Err(e) => Err(refusal(e, grant_type)),
        Ok(req) => exchange::decide(&token, req, policies, &Limits::default(), now)
            .map_err(|d| refusal(&d, grant_type)),
    };
    let expect = match (&case.expect.allow, &case.expect.deny) {
        (Some(allow), None) => Ok(allow),
        (None, Some(deny)) => Err(deny),
        _ => return Err("expect needs exactly one of allow and deny".into()),
    };
    match (expect, outcome) {
        (Ok(spec), Ok(grant)) => check_allow(spec, &grant),
        (Ok(_), Err((label, code, message))) => Err(format!(
            "expected allow, got deny {label}{}: {message}",
            code.map(|c| format!(" ({c})")).unwrap_or_default()
        )),
        (Err(spec), Ok(grant)) => Err(format!(
            "expected deny {}, got allow as '{}' via credential '{}' with roles [{}]",
            deny_text(spec),
            grant.identity_name,
            grant.credential,
            grant.roles.join(", ")
        )),
        (Err(spec), Err((label, code, message))) => {
            let (want_reason, want_code) = match spec {
                DenySpec::Short(s) => match s.parse::<u32>() {
                    Ok(code) => (None, Some(code)),
                    Err(_) => (Some(s.as_str()), None),
                },
                DenySpec::Code(code) => (None, Some(*code)),
                DenySpec::Full { reason, code } => (reason.as_deref(), *code),
            };
            if want_reason.is_none() && want_code.is_none() {
                return Err("deny needs a reason label or an Entra code".into());
            }
            let reason_ok = want_reason.is_none_or(|r| r == label);
            let code_ok = want_code.is_none_or(|c| Some(c) == code);
            if reason_ok && code_ok {
                Ok(())
            } else {
                Err(format!(
                    "expected deny {}, got deny {label}{}: {message}",
                    deny_text(spec),
                    code.map(|c| format!(" ({c})")).unwrap_or_default()
                ))
            }
        }
    }
}

fn deny_text(spec: &DenySpec) -> String {
    match spec {
        DenySpec::Short(s) => s.clone(),
        DenySpec::Code(c) => c.to_string(),
        DenySpec::Full { reason, code } => [reason.clone(), code.map(|c| c.to_string())]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" "),
    }
}

fn check_allow(spec: &AllowSpec, grant: &Grant<'_>) -> Result<(), String> {
    let mut problems = String::new();
    if let Some(identity) = &spec.identity
        && *identity != grant.identity_name
    {
        let _ = write!(
            problems,
            "; identity is '{}', expected '{identity}'",
            grant.identity_name
        );
    }
    if let Some(credential) = &spec.credential
        && *credential != grant.credential
    {
        let _ = write!(
            problems,
            "; credential is '{}', expected '{credential}'",
            grant.credential
        );
    }
    if let Some(roles) = &spec.roles {
        let mut want = roles.clone();
        let mut got = grant.roles.clone();
        want.sort();
        got.sort();
        if want != got {
            let _ = write!(
                problems,
                "; roles are [{}], expected [{}]",
                grant.roles.join(", "),
                roles.join(", ")
            );
        }
    }
    if let Some(claims) = &spec.claims {
        let got: BTreeMap<&String, &Value> = grant.mapped_claims.iter().collect();
        for (name, want) in claims {
            match got.get(name) {
                Some(value) if *value == want => {}
                Some(value) => {
                    let _ = write!(problems, "; claim '{name}' is {value}, expected {want}");
                }
                None => {
                    let _ = write!(problems, "; claim '{name}' is not mapped, expected {want}");
                }
            }
        }
    }
    if let Some(lifetime) = &spec.lifetime {
        match humantime::parse_duration(lifetime) {
            Ok(want) if want == grant.lifetime => {}
            Ok(_) => {
                let _ = write!(
                    problems,
                    "; lifetime is {}, expected {lifetime}",
                    humantime::format_duration(Duration::from_secs(grant.lifetime.as_secs()))
                );
            }
            Err(e) => {
                let _ = write!(problems, "; lifetime '{lifetime}' is not a duration: {e}");
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("allowed, but{}", &problems[1..]))
    }
}

#[cfg(test)]
mod request_tests {
    use std::path::Path;
    use std::time::UNIX_EPOCH;

    /// `tests/fixtures/policies/request`: networks, request conditions with messages and
    /// proof of possession, through `policy test` cases that set the request.
    #[test]
    fn request_conditions_through_policy_test() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/policies/request");
        let mut out = Vec::new();
        let totals = super::run_dir(&dir, UNIX_EPOCH, &mut out);
        let text = String::from_utf8_lossy(&out);
        let totals = totals.unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(totals.failed, 0, "{text}");
        assert_eq!(totals.passed, 7, "{text}");
    }
}
