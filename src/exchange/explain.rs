//! Why a token would be allowed or denied: every candidate credential, and for each check
//! (issuer, audience, subject, condition, name template, enabled, role assignment, claim
//! mappings) whether it passed, with the values compared.
//!
//! A pure function like [`decide`](crate::exchange::decide), built from the same check
//! functions, so the explanation cannot drift from the decision. Unlike `decide`, it does not
//! stop at the first failure: an operator debugging a policy wants to see every check.
//!
//! Two costs, two entry points. [`explain`] walks every identity of the tenant: it is for
//! `policy explain` and the operators' tools, never for the request path. The token endpoint
//! uses [`for_denial`] (the audit record of a denied exchange, shortened with
//! [`Explanation::summary`]) and [`audit_mode`] (audit-mode credentials), which trace only the
//! credential index's candidates for the token, at most [`MAX_TRACED`] of them, so that a
//! refused request costs about what a granted one does at any policy size.

use std::fmt;

use crate::exchange::decide::{
    self, Identity, Situation, check_audience, check_condition, check_issuer, check_network,
    check_proof, check_subject, granted_roles, identities_in, identity_by_client_id, indexed,
};
use crate::exchange::request::{ExchangeRequest, GrantType, Target};
use crate::issuers::ValidatedToken;
use crate::policy::PolicySet;
use crate::policy::model::{CredentialMode, FederatedCredential, ManagedIdentityName, SubjectRule};
use crate::text::{echo, list};

/// What is being asked: the tenant, and optionally the identity and the resource.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    /// Tenant name.
    pub tenant: &'a str,
    /// `client_id`, when given.
    pub client_id: Option<&'a str>,
    /// The requested resource and roles, when given (role checks are skipped without it).
    pub target: Option<&'a Target>,
    /// The request's facts and time, which conditions, `allowedNetworks` and
    /// `requireProofOfPossession` read ([`Situation::UNKNOWN`] when there is no request).
    pub request: Situation<'a>,
}

/// Which check a [`Check`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// The credential trusts the token's issuer.
    Issuer,
    /// The token's `aud` intersects the credential's audiences.
    Audience,
    /// `sub` equals `subject` or matches `subjectPattern`.
    Subject,
    /// The CEL condition is true.
    Condition,
    /// The client address is inside the credential's `allowedNetworks`.
    Network,
    /// A DPoP proof came with the request when the credential requires one.
    ProofOfPossession,
    /// A workload identity's `nameFrom` yields a usable name.
    NameTemplate,
    /// The identity is enabled in the tenant.
    Enabled,
    /// The identity holds (the requested) roles on the resource.
    RoleAssignment,
    /// Every claim mapping evaluates.
    ClaimMappings,
}

impl CheckKind {
    /// A short label (`issuer`, `audience`, ..., `role assignment`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issuer => "issuer",
            Self::Audience => "audience",
            Self::Subject => "subject",
            Self::Condition => "condition",
            Self::Network => "network",
            Self::ProofOfPossession => "proof of possession",
            Self::NameTemplate => "name template",
            Self::Enabled => "enabled",
            Self::RoleAssignment => "role assignment",
            Self::ClaimMappings => "claim mappings",
        }
    }
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It passed.
    Pass,
    /// It failed: the exchange is denied through this credential.
    Fail,
    /// It could not be run (no resource given).
    Skipped,
}

impl Status {
    /// `pass`, `FAIL`, `skip`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "FAIL",
            Self::Skipped => "skip",
        }
    }
}

/// One check of one candidate credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Which check.
    pub kind: CheckKind,
    /// Its outcome.
    pub status: Status,
    /// The values compared (bounded; token values are sanitised).
    pub detail: String,
}

/// Every check of one candidate credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidateTrace {
    /// The identity holding the credential (application name, managed identity label).
    pub identity: String,
    /// The credential's name.
    pub credential: String,
    /// Enforce or audit.
    pub mode: CredentialMode,
    /// Where the credential is declared: `policies/x.yaml#3 federatedCredentials[0]`.
    pub declared_at: String,
    /// The checks, in decision order.
    pub checks: Vec<Check>,
}

impl CandidateTrace {
    /// Whether every check that ran passed.
    pub fn matched(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    /// The first failing check, in decision order.
    pub fn first_failure(&self) -> Option<&Check> {
        self.checks.iter().find(|c| c.status == Status::Fail)
    }

    /// Checks passed before the first failure: how close this credential came.
    fn progress(&self) -> usize {
        self.checks
            .iter()
            .take_while(|c| c.status != Status::Fail)
            .count()
    }

    fn passed(&self, kind: CheckKind) -> bool {
        self.checks
            .iter()
            .any(|c| c.kind == kind && c.status == Status::Pass)
    }
}

/// The explanation of one token against one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// Things said before any credential: an unknown tenant, resource or client_id.
    pub notes: Vec<String>,
    /// Every candidate credential, identities in decision order.
    pub candidates: Vec<CandidateTrace>,
}

/// Explains every credential that could decide `query` for `token`.
///
/// Candidates are the credentials of the identity `client_id` names, or of every identity of
/// the tenant when it is absent or names none (then a note says so).
pub fn explain(token: &ValidatedToken, query: Query<'_>, policies: &PolicySet) -> Explanation {
    explain_where(token, query, policies, |_| true)
}

/// Most candidate credentials [`for_denial`] and [`audit_mode`] trace for one request.
pub const MAX_TRACED: usize = 16;

/// The explanation of a refused exchange, as the token endpoint records it: only credentials
/// that could have decided, at most [`MAX_TRACED`] of them, each fully traced.
///
/// With a `client_id` that names an identity, its enforce-mode credentials trusting the token's
/// issuer; otherwise (none given, or it names nobody) the enforce-mode candidates the
/// credential index finds for the token's issuer and subject. A note says how many were left
/// out. Never walks the tenant: the cost is bounded whatever the number of identities.
pub fn for_denial(token: &ValidatedToken, query: Query<'_>, policies: &PolicySet) -> Explanation {
    bounded(token, query, policies, CredentialMode::Enforce)
}

/// The audit-mode credentials that could apply to this request, each fully evaluated, at
/// most [`MAX_TRACED`]: with a `client_id` that names an identity, its audit-mode credentials
/// trusting the token's issuer; otherwise the audit-mode candidates the credential index finds
/// for the token's issuer and subject. Empty, and cheap, when the policy set holds none.
pub fn audit_mode(
    token: &ValidatedToken,
    query: Query<'_>,
    policies: &PolicySet,
) -> Vec<CandidateTrace> {
    bounded(token, query, policies, CredentialMode::Audit).candidates
}

/// Notes on the request itself (an unknown resource); `None` when the tenant is unknown, which
/// leaves nothing to explain.
fn request_notes(query: Query<'_>, policies: &PolicySet) -> Option<Vec<String>> {
    policies.tenant(query.tenant)?;
    let mut notes = Vec::new();
    if let Some(target) = query.target
        && policies.resource(&target.resource).is_none()
    {
        notes.push(format!(
            "resource '{}' was not found",
            echo(&target.resource)
        ));
    }
    Some(notes)
}

/// The bounded explanation over credentials in `mode`: see [`for_denial`] and [`audit_mode`].
fn bounded(
    token: &ValidatedToken,
    query: Query<'_>,
    policies: &PolicySet,
    mode: CredentialMode,
) -> Explanation {
    let Some(mut notes) = request_notes(query, policies) else {
        return Explanation {
            notes: vec![format!("tenant '{}' not found", echo(query.tenant))],
            candidates: Vec::new(),
        };
    };
    let mut candidates = Vec::new();
    let mut left_out = 0usize;
    let mut add = |identity: &Identity<'_>, credential: &FederatedCredential| {
        if candidates.len() < MAX_TRACED {
            candidates.push(trace(identity, credential, token, query, policies));
        } else {
            left_out += 1;
        }
    };
    let named = match query.client_id {
        Some(client_id) => {
            match identity_by_client_id(client_id, token, query.tenant, policies, query.request) {
                Ok(identity) => Some(identity),
                Err(denial) => {
                    notes.push(format!(
                        "{denial}; showing the candidate credentials of tenant '{}'",
                        query.tenant
                    ));
                    None
                }
            }
        }
        None => None,
    };
    match named {
        Some(identity) => {
            for credential in identity
                .credentials()
                .iter()
                .filter(|c| c.mode == mode && c.issuer == token.issuer_name)
            {
                add(&identity, credential);
            }
        }
        None => {
            let index = policies.credential_index();
            let (tenant, issuer, sub) = (query.tenant, &token.issuer_name, token.sub.as_deref());
            let refs = match mode {
                CredentialMode::Enforce => index.candidates(tenant, issuer, sub),
                CredentialMode::Audit => index.audit_candidates(tenant, issuer, sub),
            };
            for reference in refs {
                if let Some((identity, credential)) = indexed(reference, tenant, policies) {
                    add(&identity, credential);
                }
            }
        }
    }
    if left_out > 0 {
        notes.push(format!(
            "{left_out} more candidate credential(s) not traced (at most {MAX_TRACED} are)"
        ));
    }
    Explanation { notes, candidates }
}

fn explain_where(
    token: &ValidatedToken,
    query: Query<'_>,
    policies: &PolicySet,
    keep: impl Fn(&FederatedCredential) -> bool,
) -> Explanation {
    let Some(mut notes) = request_notes(query, policies) else {
        return Explanation {
            notes: vec![format!("tenant '{}' not found", echo(query.tenant))],
            candidates: Vec::new(),
        };
    };
    let identities = match query.client_id {
        Some(client_id) => {
            match identity_by_client_id(client_id, token, query.tenant, policies, query.request) {
                Ok(identity) => vec![identity],
                Err(denial) => {
                    notes.push(format!(
                        "{denial}; showing every identity of tenant '{}'",
                        query.tenant
                    ));
                    identities_in(query.tenant, policies)
                }
            }
        }
        None => identities_in(query.tenant, policies),
    };
    let candidates = identities
        .iter()
        .flat_map(|identity| {
            identity
                .credentials()
                .iter()
                .filter(|c| keep(c))
                .map(move |c| trace(identity, c, token, query, policies))
        })
        .collect();
    Explanation { notes, candidates }
}

fn trace(
    identity: &Identity<'_>,
    credential: &FederatedCredential,
    token: &ValidatedToken,
    query: Query<'_>,
    policies: &PolicySet,
) -> CandidateTrace {
    let mut checks = Vec::with_capacity(8);
    let status = |r: &Result<(), _>| {
        if r.is_ok() {
            Status::Pass
        } else {
            Status::Fail
        }
    };

    let r = check_issuer(credential, token);
    let cmp = if r.is_ok() { "=" } else { "≠" };
    checks.push(Check {
        kind: CheckKind::Issuer,
        status: status(&r),
        detail: format!(
            "token issuer '{}' ({}) {cmp} credential issuer '{}'",
            token.issuer_name,
            echo(&token.iss),
            credential.issuer
        ),
    });

    let r = check_audience(credential, token);
    let cmp = if r.is_ok() {
        "∩"
    } else {
        "has nothing in common with"
    };
    checks.push(Check {
        kind: CheckKind::Audience,
        status: status(&r),
        detail: format!(
            "token aud {} {cmp} credential audiences {}",
            list(&token.aud),
            list(&credential.audiences)
        ),
    });

    let r = check_subject(credential, token);
    let sub = token.sub.as_deref().map(echo);
    let sub_text = sub
        .as_deref()
        .map_or("(no sub)".to_string(), |s| format!("'{s}'"));
    let ok = r.is_ok();
    let detail = match &credential.subject {
        SubjectRule::Exact(want) if ok => format!("sub {sub_text} equals '{want}'"),
        SubjectRule::Exact(want) => format!("sub {sub_text} differs from '{want}'"),
        SubjectRule::Pattern(p) if ok => format!("sub {sub_text} matches pattern '{}'", p.as_str()),
        SubjectRule::Pattern(p) => {
            format!("sub {sub_text} does not match pattern '{}'", p.as_str())
        }
        SubjectRule::Any => "no subject rule (the condition decides)".to_string(),
    };
    checks.push(Check {
        kind: CheckKind::Subject,
        status: status(&r),
        detail,
    });

    if let Some(condition) = credential.condition_source() {
        let r = check_condition(credential, token, query.request);
        let detail = match &r {
            Ok(()) => format!("`{condition}` is true"),
            Err((_, why)) => format!("`{condition}`: {why}"),
        };
        checks.push(Check {
            kind: CheckKind::Condition,
            status: status(&r),
            detail,
        });
    }
    if !credential.allowed_networks.is_empty() {
        let r = check_network(credential, query.request);
        let detail = match &r {
            Ok(()) => format!(
                "client address {} is inside the allowed networks",
                query
                    .request
                    .context
                    .client_ip
                    .map_or("(unknown)".to_string(), |ip| ip.to_string())
            ),
            Err((_, why)) => why.clone(),
        };
        checks.push(Check {
            kind: CheckKind::Network,
            status: status(&r),
            detail,
        });
    }
    if credential.require_proof_of_possession {
        let r = check_proof(credential, query.request);
        let detail = match &r {
            Ok(()) => "the request carried a valid DPoP proof".to_string(),
            Err((_, why)) => why.clone(),
        };
        checks.push(Check {
            kind: CheckKind::ProofOfPossession,
            status: status(&r),
            detail,
        });
    }

    let mut name = identity.label();
    if let Identity::Managed { mi } = identity
        && let ManagedIdentityName::Template(expr) = &mi.name
    {
        let check = match expr.eval_string(&token.claims) {
            Ok(n) => {
                let valid = decide::check_identity_name(&n);
                name = n;
                match valid {
                    Ok(()) => Check {
                        kind: CheckKind::NameTemplate,
                        status: Status::Pass,
                        detail: format!("nameFrom yields '{}'", echo(&name)),
                    },
                    Err(d) => Check {
                        kind: CheckKind::NameTemplate,
                        status: Status::Fail,
                        detail: d.to_string(),
                    },
                }
            }
            Err(e) => Check {
                kind: CheckKind::NameTemplate,
                status: Status::Fail,
                detail: format!("`{}`: {e}", expr.source()),
            },
        };
        checks.push(check);
    }

    let enabled = identity.enabled();
    checks.push(Check {
        kind: CheckKind::Enabled,
        status: if enabled { Status::Pass } else { Status::Fail },
        detail: format!(
            "{} is {}",
            identity.label(),
            if enabled { "enabled" } else { "disabled" }
        ),
    });

    checks.push(roles_check(identity, &name, query, policies));

    if !credential.claim_mappings.is_empty() {
        let failed = credential.claim_mappings.iter().find_map(|(claim, expr)| {
            expr.eval_json(&token.claims)
                .err()
                .map(|e| format!("claim '{claim}' (`{}`): {e}", expr.source()))
        });
        let names: Vec<&str> = credential
            .claim_mappings
            .iter()
            .map(|(c, _)| c.as_str())
            .collect();
        checks.push(match failed {
            None => Check {
                kind: CheckKind::ClaimMappings,
                status: Status::Pass,
                detail: format!("evaluated: {}", names.join(", ")),
            },
            Some(detail) => Check {
                kind: CheckKind::ClaimMappings,
                status: Status::Fail,
                detail,
            },
        });
    }

    CandidateTrace {
        identity: identity.label(),
        credential: credential.name.clone(),
        mode: credential.mode,
        declared_at: format!("{} {}", credential.origin, credential.path),
        checks,
    }
}

fn roles_check(
    identity: &Identity<'_>,
    name: &str,
    query: Query<'_>,
    policies: &PolicySet,
) -> Check {
    let kind = CheckKind::RoleAssignment;
    let Some(target) = query.target else {
        return Check {
            kind,
            status: Status::Skipped,
            detail: "no scope or resource given".into(),
        };
    };
    let Some(resource_app) = policies.resource(&target.resource) else {
        return Check {
            kind,
            status: Status::Fail,
            detail: format!("resource '{}' was not found", echo(&target.resource)),
        };
    };
    // granted_roles reads only the target; the other fields are placeholders.
    let req = ExchangeRequest {
        tenant: query.tenant.to_string(),
        grant: GrantType::TokenExchange,
        client_id: query.client_id.map(str::to_string),
        subject_token: String::new(),
        target: target.clone(),
        context: Default::default(),
    };
    match granted_roles(identity, name, resource_app, &req, policies) {
        Ok(roles) => Check {
            kind,
            status: Status::Pass,
            detail: format!("roles on '{}': {}", target.resource, roles.join(", ")),
        },
        Err(denial) => Check {
            kind,
            status: Status::Fail,
            detail: denial.to_string(),
        },
    }
}

impl Explanation {
    /// The shortened explanation of a denied exchange's audit record: at most `max` lines, the
    /// candidates of the token's issuer that came closest first, each naming its first failed
    /// check with the values compared.
    pub fn summary(&self, max: usize) -> Vec<String> {
        let mut out: Vec<String> = self.notes.iter().take(max).cloned().collect();
        let mut relevant: Vec<&CandidateTrace> = self
            .candidates
            .iter()
            .filter(|c| c.passed(CheckKind::Issuer))
            .collect();
        if relevant.is_empty() && out.is_empty() {
            out.push(if self.candidates.is_empty() {
                "no candidate credential".to_string()
            } else {
                format!(
                    "none of {} candidate credential(s) trusts the token's issuer",
                    self.candidates.len()
                )
            });
            return out;
        }
        relevant.sort_by_key(|c| std::cmp::Reverse(c.progress()));
        let room = max.saturating_sub(out.len());
        for c in relevant.iter().take(room) {
            let audit = if c.mode == CredentialMode::Audit {
                " [audit mode]"
            } else {
                ""
            };
            out.push(match c.first_failure() {
                Some(f) => format!(
                    "{}/{}{audit}: {} failed: {}",
                    c.identity,
                    c.credential,
                    f.kind.as_str(),
                    f.detail
                ),
                None => format!("{}/{}{audit}: every check passed", c.identity, c.credential),
            });
        }
        if relevant.len() > room {
            out.push(format!("… and {} more", relevant.len() - room));
        }
        out
    }
}

impl fmt::Display for Explanation {
    /// The full, human-readable explanation `policy explain` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        if self.candidates.is_empty() {
            writeln!(f, "no candidate credentials")?;
        }
        for c in &self.candidates {
            let verdict = match (c.matched(), c.mode) {
                (true, CredentialMode::Enforce) => "MATCH",
                (true, CredentialMode::Audit) => "MATCH (audit mode: logged, never grants)",
                (false, CredentialMode::Enforce) => "no match",
                (false, CredentialMode::Audit) => "no match (audit mode)",
            };
            writeln!(
                f,
                "{} / {}  ({})  {verdict}",
                c.identity, c.credential, c.declared_at
            )?;
            for check in &c.checks {
                writeln!(
                    f,
                    "  {:<4} {:<16} {}",
                    check.status.as_str(),
                    check.kind.as_str(),
                    check.detail
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
