//! The decision itself: a pure function from (token, request, policies, now) to a grant or a
//! denial. See the module docs of `exchange` for where it sits.
//!
//! Order of checks, and why: the tenant and the resource first (cheap, and their absence is a
//! client error whatever the token says); then the identity, either named by `client_id` or,
//! for token exchange without one, found as the unique identity with a matching credential;
//! then the credential checks in a fixed order (issuer, audience, subject, condition) so that a
//! denial names the furthest check any credential reached; then enablement, role assignments,
//! requested roles and claim mappings.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use crate::exchange::denial::{Denial, MismatchStage};
use crate::exchange::grant::{Grant, IdentityKind};
use crate::exchange::request::{ExchangeRequest, RequestContext, RequestedRoles};
use crate::issuers::ValidatedToken;
use crate::policy::PolicySet;
use crate::policy::index::{CredentialRef, IdentityId};
use crate::policy::model::{
    Application, CredentialMode, FederatedCredential, ManagedIdentity, ManagedIdentityName,
    RoleAssignment, ServicePrincipal, SubjectRule,
};
use crate::text::{echo, list};

/// Server-wide limits the decision applies.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Upper bound on any issued token's lifetime.
    pub max_token_lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_token_lifetime: crate::config::DEFAULT_MAX_TOKEN_LIFETIME,
        }
    }
}

/// Longest identity name a `nameFrom` template may produce.
const MAX_IDENTITY_NAME: usize = 256;
/// Longest condition-rule message kept in a denial's detail.
const MAX_MESSAGE: usize = 200;

/// The request side of a decision: the facts the handler passed in and the decision's time.
/// Credential checks that look beyond the token (conditions on `request`, `allowedNetworks`,
/// `requireProofOfPossession`) read it.
#[derive(Debug, Clone, Copy)]
pub struct Situation<'a> {
    /// What the handler knows about the request.
    pub context: &'a RequestContext,
    /// The decision's time (`request.time`).
    pub now: SystemTime,
}

impl Situation<'static> {
    /// Nothing known about the request, at the epoch: for explanations without a request.
    /// Conditions reading `request.ip` fail, `allowedNetworks` contain nothing, and a required
    /// proof of possession is missing.
    pub const UNKNOWN: Self = Self {
        context: &RequestContext::NONE,
        now: SystemTime::UNIX_EPOCH,
    };
}

/// Decides an exchange. `now` is what conditions see as `request.time` (token time claims
/// were verified by `issuers`); `req.context` is the rest of what they see of the request.
pub fn decide<'a>(
    token: &'a ValidatedToken,
    req: &'a ExchangeRequest,
    policies: &'a PolicySet,
    limits: &Limits,
    now: SystemTime,
) -> Result<Grant<'a>, Denial> {
    let tenant = policies
        .tenant(&req.tenant)
        .ok_or_else(|| Denial::UnknownTenant(req.tenant.clone()))?;
    let resource_app = policies
        .resource(&req.target.resource)
        .ok_or_else(|| Denial::UnknownResource(req.target.resource.clone()))?;

    let at = Situation {
        context: &req.context,
        now,
    };
    let (identity, credential) = resolve_identity(token, req, policies, at)?;

    if !identity.enabled() {
        return Err(Denial::Disabled(identity.label()));
    }
    let (kind, name): (_, Cow<'a, str>) = match &identity {
        Identity::App { app, .. } => (IdentityKind::ServicePrincipal, Cow::Borrowed(&app.name)),
        Identity::Managed { mi } => match &mi.name {
            ManagedIdentityName::Fixed(name) => {
                (IdentityKind::ManagedIdentity, Cow::Borrowed(name.as_str()))
            }
            ManagedIdentityName::Template(expr) => {
                let name = expr
                    .eval_string(&token.claims)
                    .map_err(|e| Denial::NameTemplate(e.to_string()))?;
                check_identity_name(&name)?;
                (IdentityKind::WorkloadIdentity, Cow::Owned(name))
            }
        },
    };
    let (object, client_id) = match &identity {
        Identity::App { app, sp } => (sp.object_id.to_string(), Cow::Borrowed(app.app_id.as_str())),
        Identity::Managed { mi } => {
            let (object, client) = managed_ids(&req.tenant, mi, &name);
            (object, Cow::Owned(client))
        }
    };

    let roles = granted_roles(&identity, &name, resource_app, req, policies)?;

    let mut mapped = serde_json::Map::new();
    for (claim, expr) in &credential.claim_mappings {
        let value = expr
            .eval_json(&token.claims)
            .map_err(|e| Denial::ClaimMapping {
                claim: claim.clone(),
                reason: e.to_string(),
            })?;
        mapped.insert(claim.clone(), value);
    }

    let lifetime = [
        Some(limits.max_token_lifetime),
        identity.token_lifetime(),
        credential.max_token_lifetime,
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(limits.max_token_lifetime);

    Ok(Grant {
        tenant: Cow::Borrowed(&tenant.name),
        tenant_id: tenant.id.to_string(),
        identity_kind: kind,
        identity_name: name,
        object_id: object,
        client_id,
        resource: Cow::Borrowed(&req.target.resource),
        roles,
        lifetime,
        mapped_claims: mapped,
        credential: Cow::Borrowed(&credential.name),
        credential_mode: credential.mode,
        source_issuer_name: Cow::Borrowed(&token.issuer_name),
        source_issuer: Cow::Borrowed(&token.iss),
        source_subject: Cow::Borrowed(token.sub.as_deref().unwrap_or_default()),
        one_time_use: credential.one_time_use
            || policies
                .issuer(&credential.issuer)
                .is_some_and(|i| i.one_time_use),
    })
}

/// Object id and client id of the identity `mi` gives `name` in `tenant`, as strings (see
/// [`ManagedIdentity::ids`]: a workload-assigned identity's ids depend on its declaration too).
/// The one derivation for tokens, rate-limit buckets and `client_id` lookups.
pub fn managed_ids(tenant: &str, mi: &ManagedIdentity, name: &str) -> (String, String) {
    let (object, client) = mi.ids(tenant, name);
    (object.to_string(), client.to_string())
}

// === identities ===

/// A candidate identity: a service principal, or a managed identity (fixed or template).
pub(crate) enum Identity<'a> {
    App {
        app: &'a Application,
        sp: &'a ServicePrincipal,
    },
    Managed {
        mi: &'a ManagedIdentity,
    },
}

impl<'a> Identity<'a> {
    pub(crate) fn credentials(&self) -> &'a [FederatedCredential] {
        match self {
            Self::App { app, .. } => &app.federated_credentials,
            Self::Managed { mi } => &mi.federated_credentials,
        }
    }

    fn assignments(&self) -> &'a [RoleAssignment] {
        match self {
            Self::App { sp, .. } => &sp.role_assignments,
            Self::Managed { mi } => &mi.role_assignments,
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        match self {
            Self::App { sp, .. } => sp.enabled,
            Self::Managed { mi } => mi.enabled,
        }
    }

    fn token_lifetime(&self) -> Option<Duration> {
        match self {
            Self::App { sp, .. } => sp.token_lifetime,
            Self::Managed { mi } => mi.token_lifetime,
        }
    }

    pub(crate) fn label(&self) -> String {
        match self {
            Self::App { app, .. } => app.name.clone(),
            Self::Managed { mi } => mi.label(),
        }
    }
}

/// Finds the identity the token acts as, and the credential that allows it.
fn resolve_identity<'a>(
    token: &ValidatedToken,
    req: &ExchangeRequest,
    policies: &'a PolicySet,
    at: Situation<'_>,
) -> Result<(Identity<'a>, &'a FederatedCredential), Denial> {
    let tenant = req.tenant.as_str();
    if let Some(client_id) = req.client_id.as_deref() {
        let identity = identity_by_client_id(client_id, token, tenant, policies, at)?;
        let credential = match_credentials(identity.credentials(), token, at)
            .map_err(|(stage, detail)| Denial::NoMatchingCredential { stage, detail })?;
        return Ok((identity, credential));
    }

    // Token exchange without client_id: the token itself must pick exactly one identity.
    resolve_by_token(token, tenant, policies, at)
}

/// Token exchange without `client_id`: the unique identity of `tenant` with a matching
/// enforce-mode credential, found through the policy set's credential index (only credentials
/// that trust the token's issuer and can match its subject are checked; audit-mode credentials
/// are not in it). Within an identity the most specific matching credential is the one used
/// ([`specificity`]). The outcome, including which denial detail wins, is the one a scan of
/// every identity ([`resolve_by_scan`]) gives.
///
/// Bounded: credentials are evaluated only among the index's candidates, for a grant and a
/// denial alike. A denial names the furthest failure among every credential trusting the
/// issuer, but credentials outside the candidates are known to fail the subject check, so the
/// furthest of them is found by index lookups ([`CredentialIndex::first_accepting_outside`])
/// and checked alone.
fn resolve_by_token<'a>(
    token: &ValidatedToken,
    tenant: &str,
    policies: &'a PolicySet,
    at: Situation<'_>,
) -> Result<(Identity<'a>, &'a FederatedCredential), Denial> {
    let index = policies.credential_index();
    let candidates = index.candidates(tenant, &token.issuer_name, token.sub.as_deref());
    let mut found: Vec<(&'a IdentityId, Identity<'a>, &'a FederatedCredential)> = Vec::new();
    let mut best: Option<Miss<'_>> = None;
    for &candidate in &candidates {
        // A more specific credential of the identity already matched: nothing to learn here.
        if let Some((id, _, chosen)) = found.last()
            && **id == candidate.identity
            && indexed(candidate, tenant, policies)
                .is_none_or(|(_, c)| specificity(c) <= specificity(chosen))
        {
            continue;
        }
        let Some((identity, credential)) = indexed(candidate, tenant, policies) else {
            continue;
        };
        match check_credential(credential, token, at) {
            Ok(()) => match found.last_mut() {
                Some(last) if *last.0 == candidate.identity => last.2 = credential,
                _ => found.push((&candidate.identity, identity, credential)),
            },
            Err((stage, detail)) => {
                if best.as_ref().is_none_or(|(_, s, _)| stage > *s) {
                    best = Some((candidate, stage, detail));
                }
            }
        }
    }
    match found.len() {
        1 => {
            let (_, identity, credential) = found.remove(0);
            return Ok((identity, credential));
        }
        0 => {}
        n => return Err(Denial::Ambiguous(n)),
    }
    Err(denial_outside(
        token,
        tenant,
        policies,
        &candidates,
        best,
        at,
    ))
}

/// A credential's failure to match, with where it sits in decision order.
type Miss<'i> = (&'i CredentialRef, MismatchStage, String);

/// The denial of a token no candidate matched: the furthest failure among every enforce-mode
/// credential trusting the issuer (the first in decision order on ties), given `best`, the
/// furthest among the candidates. Every credential outside the candidates fails at the
/// audience or at the subject, so only the first of them accepting the token's audience, and
/// the first trusting the issuer at all, can be the answer: each is one lookup and one check.
/// When no credential trusts the issuer, the first identity of the tenant reports it.
fn denial_outside<'p>(
    token: &ValidatedToken,
    tenant: &str,
    policies: &'p PolicySet,
    candidates: &[&'p CredentialRef],
    mut best: Option<Miss<'p>>,
    at: Situation<'_>,
) -> Denial {
    let index = policies.credential_index();
    let stage = |b: &Option<Miss<'_>>| b.as_ref().map(|b| b.1);
    // Further wins; on the same stage, the earlier in decision order.
    let beats = |at: &CredentialRef, stage: MismatchStage, b: &Option<Miss<'_>>| {
        b.as_ref()
            .is_none_or(|(r, s, _)| stage > *s || (stage == *s && at < *r))
    };
    if stage(&best) <= Some(MismatchStage::Subject)
        && let Some(outside) =
            index.first_accepting_outside(tenant, &token.issuer_name, &token.aud, candidates)
        && let Some((_, credential)) = indexed(outside, tenant, policies)
        && let Err((stage, detail)) = check_credential(credential, token, at)
        && beats(outside, stage, &best)
    {
        best = Some((outside, stage, detail));
    }
    if stage(&best) <= Some(MismatchStage::Audience)
        && let Some(first) = index.trusting(tenant, &token.issuer_name).first()
        && let Some((_, credential)) = indexed(first, tenant, policies)
        && let Err((stage, detail)) = check_credential(credential, token, at)
        && beats(first, stage, &best)
    {
        best = Some((first, stage, detail));
    }
    let miss = match best {
        Some((_, stage, detail)) => Some((stage, detail)),
        // No credential trusts the issuer: every identity fails at the issuer (or has no
        // credential), and the first one's failure is the one reported.
        None => index
            .first_identity(tenant)
            .and_then(|id| identity_of(id, tenant, policies))
            .and_then(|first| match_credentials(first.credentials(), token, at).err()),
    };
    let (stage, detail) = miss.unwrap_or((
        MismatchStage::Issuer,
        "no identity in this tenant has a federated credential".to_string(),
    ));
    Denial::NoMatchingCredential { stage, detail }
}

/// The identity and credential an index entry names, if the set still holds them.
pub(crate) fn indexed<'a>(
    reference: &CredentialRef,
    tenant: &str,
    policies: &'a PolicySet,
) -> Option<(Identity<'a>, &'a FederatedCredential)> {
    let identity = identity_of(&reference.identity, tenant, policies)?;
    let credential = identity.credentials().get(reference.credential)?;
    Some((identity, credential))
}

/// The identity an index entry names, if the set still holds it.
fn identity_of<'a>(id: &IdentityId, tenant: &str, policies: &'a PolicySet) -> Option<Identity<'a>> {
    Some(match id {
        IdentityId::Application(name) => Identity::App {
            app: policies.application(name)?,
            sp: policies.service_principal(tenant, name)?,
        },
        IdentityId::Managed(position) => Identity::Managed {
            mi: policies.managed_identities().get(*position)?,
        },
    })
}

/// The same decision as [`resolve_by_token`] by checking every identity of the tenant: the
/// definition the index must agree with (tests compare the two).
#[cfg(test)]
fn resolve_by_scan<'a>(
    token: &ValidatedToken,
    tenant: &str,
    policies: &'a PolicySet,
    at: Situation<'_>,
) -> Result<(Identity<'a>, &'a FederatedCredential), Denial> {
    let mut found: Vec<(Identity<'a>, &'a FederatedCredential)> = Vec::new();
    let mut best: Option<(MismatchStage, String)> = None;
    for identity in identities_in(tenant, policies) {
        match match_credentials(identity.credentials(), token, at) {
            Ok(credential) => found.push((identity, credential)),
            Err(miss) => keep_best(&mut best, miss),
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => {
            let (stage, detail) = best.unwrap_or((
                MismatchStage::Issuer,
                "no identity in this tenant has a federated credential".to_string(),
            ));
            Err(Denial::NoMatchingCredential { stage, detail })
        }
        n => Err(Denial::Ambiguous(n)),
    }
}

/// Every identity of a tenant: service principals first, then managed identities.
pub(crate) fn identities_in<'a>(tenant: &str, policies: &'a PolicySet) -> Vec<Identity<'a>> {
    let apps = policies.applications().filter_map(|app| {
        policies
            .service_principal(tenant, &app.name)
            .map(|sp| Identity::App { app, sp })
    });
    let managed = policies
        .managed_identities_in(tenant)
        .map(|mi| Identity::Managed { mi });
    apps.chain(managed).collect()
}

/// Resolves `client_id`: an application's appId or name (with a service principal in the
/// tenant), a user-assigned managed identity's name or client id, or the computed name (or
/// client id) of a workload-assigned one whose enforce-mode credential matches the token.
///
/// Workload-assigned identities are looked at in load order, but only those with a credential
/// among the index's candidates for the token are evaluated, so an unknown `client_id` costs
/// name comparisons, not a condition per identity; audit-mode credentials never resolve one.
pub(crate) fn identity_by_client_id<'a>(
    client_id: &str,
    token: &ValidatedToken,
    tenant: &str,
    policies: &'a PolicySet,
    at: Situation<'_>,
) -> Result<Identity<'a>, Denial> {
    let unknown = || Denial::UnknownClient(echo(client_id));
    if let Some(app) = policies.application_by_client_id(client_id) {
        let sp = policies
            .service_principal(tenant, &app.name)
            .ok_or_else(unknown)?;
        return Ok(Identity::App { app, sp });
    }
    // Managed identities (by load position) with a candidate credential for this token.
    let mut maybe: Vec<usize> = policies
        .credential_index()
        .candidates(tenant, &token.issuer_name, token.sub.as_deref())
        .into_iter()
        .filter_map(|c| match c.identity {
            IdentityId::Managed(position) => Some(position),
            IdentityId::Application(_) => None,
        })
        .collect();
    maybe.sort_unstable();
    maybe.dedup();
    // A user-assigned identity is found by a lookup; a workload-assigned one only among the
    // index's candidates: the cost does not grow with the tenant. The identity declared first
    // wins, as a walk in load order would find it.
    let fixed = policies.user_assigned(tenant, client_id);
    let identities = policies.managed_identities();
    for position in maybe {
        if fixed.is_some_and(|f| f < position) {
            break;
        }
        let Some(mi) = identities.get(position) else {
            continue;
        };
        let ManagedIdentityName::Template(expr) = &mi.name else {
            continue;
        };
        if mi.tenant != tenant || match_credentials(&mi.federated_credentials, token, at).is_err() {
            continue;
        }
        if let Ok(name) = expr.eval_string(&token.claims) {
            let (_, mi_client) = managed_ids(tenant, mi, &name);
            if name == client_id || mi_client == client_id {
                return Ok(Identity::Managed { mi });
            }
        }
    }
    match fixed.and_then(|f| identities.get(f)) {
        Some(mi) => Ok(Identity::Managed { mi }),
        None => Err(unknown()),
    }
}

// === credentials === (in `decide/credentials.rs`)

mod credentials;
pub use credentials::check_credential;
pub(crate) use credentials::*;

// === roles ===

/// Roles the identity receives on the requested resource.
pub(crate) fn granted_roles<'a>(
    identity: &Identity<'a>,
    name: &str,
    resource_app: &Application,
    req: &'a ExchangeRequest,
    policies: &PolicySet,
) -> Result<Vec<Cow<'a, str>>, Denial> {
    let mut assigned: Vec<&'a str> = Vec::new();
    let mut any_assignment = false;
    for assignment in identity.assignments() {
        let same_resource = policies
            .resource(&assignment.resource)
            .is_some_and(|app| app.name == resource_app.name);
        if same_resource {
            any_assignment = true;
            for role in &assignment.roles {
                if !assigned.contains(&role.as_str()) {
                    assigned.push(role);
                }
            }
        }
    }
    if !any_assignment {
        return Err(Denial::NotAssigned {
            identity: name.to_string(),
            resource: req.target.resource.clone(),
        });
    }
    match &req.target.roles {
        RequestedRoles::All => Ok(assigned.into_iter().map(Cow::Borrowed).collect()),
        RequestedRoles::Specific(wanted) => {
            let missing: Vec<String> = wanted
                .iter()
                .filter(|w| !assigned.contains(&w.as_str()))
                .map(|w| echo(w))
                .collect();
            if missing.is_empty() {
                Ok(wanted
                    .iter()
                    .map(|role| Cow::Borrowed(role.as_str()))
                    .collect())
            } else {
                Err(Denial::RolesNotAssigned(missing))
            }
        }
    }
}

// === helpers ===

pub(crate) fn check_identity_name(name: &str) -> Result<(), Denial> {
    if name.is_empty() || name.len() > MAX_IDENTITY_NAME {
        return Err(Denial::NameTemplate(format!(
            "the name must be 1 to {MAX_IDENTITY_NAME} bytes long"
        )));
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Denial::NameTemplate(
            "the name contains whitespace or control characters".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod audit_mode_tests;
#[cfg(test)]
mod index_tests;
#[cfg(test)]
mod tests;
