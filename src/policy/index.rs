//! The credential index: which federated credentials of a tenant may match a token, found
//! without looking at the others.
//!
//! Per tenant and trusted issuer name, credentials are bucketed by how their subject rule can
//! be matched: exact subjects by hash, patterns by their literal prefix (a subject is only
//! checked against patterns whose prefix it starts with), and credentials without a subject
//! rule (condition only) or whose pattern starts with `*` always. Conditions and patterns are
//! therefore evaluated only among the issuer's candidates, so a set of 10,000 credentials
//! costs about what a set of 10 does per exchange.
//!
//! Every entry keeps its position in the order `exchange::decide` walks identities (service
//! principals by application name, then managed identities in load order; each identity's
//! credentials in declaration order), and lookups return candidates in that order, so an
//! indexed decision picks exactly the identity and credential a full scan would.
//!
//! Only enforce-mode credentials are in the decision's index ([`CredentialIndex::candidates`],
//! [`CredentialIndex::trusting`]): an audit-mode credential is never a candidate of a decision,
//! so no path through `exchange::decide` can let one grant, shape a grant or make a request
//! ambiguous. Audit-mode credentials sit in a separate index of the same shape
//! ([`CredentialIndex::audit_candidates`]), read only to write their audit events.
//!
//! Built once, when a [`PolicySet`](crate::policy::PolicySet) is assembled (see
//! `PolicySet::credential_index`); it holds names and positions only, never the credentials
//! themselves. It reads the compiled documents, not the set, so the set may own it. It must
//! not evaluate anything: what a lookup returns is a bounded list to check, not a verdict.

use std::collections::{BTreeMap, HashMap};

use crate::policy::model::{
    Application, CredentialMode, FederatedCredential, ManagedIdentity, ServicePrincipal,
    SubjectRule,
};

/// An identity of a tenant, as the index names it.
///
/// The derived order is the decision order within a tenant: service principals by application
/// name, then managed identities by load position.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum IdentityId {
    /// The service principal of the application with this name.
    Application(String),
    /// The managed identity at this position of `PolicySet::managed_identities`.
    Managed(usize),
}

/// One federated credential: its identity and its position in that identity's list. The
/// derived order is the decision order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CredentialRef {
    /// The identity holding it.
    pub identity: IdentityId,
    /// Index into the identity's `federated_credentials`.
    pub credential: usize,
}

/// The index of a whole policy set.
#[derive(Debug, Clone, Default)]
pub struct CredentialIndex {
    tenants: HashMap<String, TenantIndex>,
}

#[derive(Debug, Clone, Default)]
struct TenantIndex {
    /// The tenant's first identity in decision order.
    first_identity: Option<IdentityId>,
    /// Enforce-mode credentials by trusted issuer: all a decision ever sees.
    by_issuer: HashMap<String, IssuerIndex>,
    /// Audit-mode credentials by trusted issuer: only their audit events read these.
    audit_by_issuer: HashMap<String, IssuerIndex>,
}

/// Credentials of one tenant trusting one issuer.
#[derive(Debug, Clone, Default)]
struct IssuerIndex {
    /// Every such credential, in decision order; the buckets below hold positions in it.
    all: Vec<CredentialRef>,
    exact: HashMap<String, Vec<usize>>,
    by_prefix: HashMap<String, Vec<usize>>,
    /// Distinct lengths of the keys of `by_prefix`, ascending.
    prefix_lengths: Vec<usize>,
    /// Credentials every subject (or none) must be checked against.
    always: Vec<usize>,
    /// Credentials by accepted audience, ascending: the first one outside the candidates that
    /// accepts a token's audience is found without checking the others.
    by_audience: HashMap<String, Vec<usize>>,
}

impl CredentialIndex {
    /// Indexes every federated credential of a set's applications (those with a service
    /// principal in a tenant) and managed identities.
    pub fn build(
        applications: &BTreeMap<String, Application>,
        service_principals: &BTreeMap<(String, String), ServicePrincipal>,
        managed_identities: &[ManagedIdentity],
    ) -> Self {
        let mut tenants: HashMap<String, TenantIndex> = HashMap::new();
        // Service principals are keyed (tenant, application), so within a tenant they come in
        // application-name order: the order `decide` walks them in.
        for (tenant, application) in service_principals.keys() {
            let Some(app) = applications.get(application) else {
                continue;
            };
            let entry = tenants.entry(tenant.clone()).or_default();
            entry.add_identity(
                IdentityId::Application(app.name.clone()),
                &app.federated_credentials,
            );
        }
        for (position, mi) in managed_identities.iter().enumerate() {
            let entry = tenants.entry(mi.tenant.clone()).or_default();
            entry.add_identity(IdentityId::Managed(position), &mi.federated_credentials);
        }
        for tenant in tenants.values_mut() {
            for issuer in tenant
                .by_issuer
                .values_mut()
                .chain(tenant.audit_by_issuer.values_mut())
            {
                issuer.prefix_lengths = issuer.by_prefix.keys().map(String::len).collect();
                issuer.prefix_lengths.sort_unstable();
                issuer.prefix_lengths.dedup();
            }
        }
        Self { tenants }
    }

    /// Enforce-mode credentials of `tenant` trusting the issuer named `issuer` that a token
    /// with subject `sub` could match, in decision order. A credential left out cannot match:
    /// it is in audit mode, trusts another issuer, names another exact subject, or has a
    /// pattern whose literal prefix the subject does not start with. Audiences and conditions
    /// are not looked at.
    pub fn candidates<'a>(
        &'a self,
        tenant: &str,
        issuer: &str,
        sub: Option<&str>,
    ) -> Vec<&'a CredentialRef> {
        self.issuer_index(tenant, issuer)
            .map_or_else(Vec::new, |index| index.candidates(sub))
    }

    /// Audit-mode credentials of `tenant` trusting `issuer` that a token with subject `sub`
    /// could match, in decision order: what `exchange::explain::audit_mode` evaluates when no
    /// `client_id` names an identity. Never read by a decision.
    pub fn audit_candidates<'a>(
        &'a self,
        tenant: &str,
        issuer: &str,
        sub: Option<&str>,
    ) -> Vec<&'a CredentialRef> {
        self.tenants
            .get(tenant)
            .and_then(|t| t.audit_by_issuer.get(issuer))
            .map_or_else(Vec::new, |index| index.candidates(sub))
    }

    /// The first enforce-mode credential of `tenant` trusting `issuer`, in decision order,
    /// that accepts one of `audiences` and is not in `candidates` (sorted, as
    /// [`Self::candidates`] returns them). Such a credential passes the issuer and audience
    /// checks and fails the subject check: it is what a denial names when it got furthest.
    /// Costs one lookup per audience plus at most one skip per candidate.
    pub fn first_accepting_outside<'a>(
        &'a self,
        tenant: &str,
        issuer: &str,
        audiences: &[String],
        candidates: &[&CredentialRef],
    ) -> Option<&'a CredentialRef> {
        let index = self.issuer_index(tenant, issuer)?;
        audiences
            .iter()
            .filter_map(|aud| index.by_audience.get(aud))
            .filter_map(|positions| {
                positions
                    .iter()
                    .map(|&p| &index.all[p])
                    .find(|c| candidates.binary_search(c).is_err())
            })
            .min()
    }

    /// Every enforce-mode credential of `tenant` trusting the issuer named `issuer`, in
    /// decision order.
    pub fn trusting<'a>(&'a self, tenant: &str, issuer: &str) -> &'a [CredentialRef] {
        self.issuer_index(tenant, issuer)
            .map_or(&[], |index| index.all.as_slice())
    }

    /// The first identity of `tenant` in decision order; `None` when it has none.
    pub fn first_identity(&self, tenant: &str) -> Option<&IdentityId> {
        self.tenants.get(tenant)?.first_identity.as_ref()
    }

    fn issuer_index(&self, tenant: &str, issuer: &str) -> Option<&IssuerIndex> {
        self.tenants.get(tenant)?.by_issuer.get(issuer)
    }
}

impl IssuerIndex {
    fn candidates(&self, sub: Option<&str>) -> Vec<&CredentialRef> {
        let mut positions: Vec<usize> = self.always.clone();
        if let Some(sub) = sub {
            if let Some(exact) = self.exact.get(sub) {
                positions.extend_from_slice(exact);
            }
            for &len in &self.prefix_lengths {
                if len > sub.len() {
                    break;
                }
                if !sub.is_char_boundary(len) {
                    continue;
                }
                if let Some(found) = self.by_prefix.get(&sub[..len]) {
                    positions.extend_from_slice(found);
                }
            }
        }
        // Each credential sits in exactly one bucket, so sorting alone restores the order.
        positions.sort_unstable();
        positions.into_iter().map(|p| &self.all[p]).collect()
    }

    fn add(&mut self, reference: CredentialRef, credential: &FederatedCredential) {
        let at = self.all.len();
        self.all.push(reference);
        match &credential.subject {
            SubjectRule::Exact(sub) => self.exact.entry(sub.clone()).or_default().push(at),
            SubjectRule::Pattern(pattern) if !pattern.literal_prefix().is_empty() => self
                .by_prefix
                .entry(pattern.literal_prefix().to_string())
                .or_default()
                .push(at),
            SubjectRule::Pattern(_) | SubjectRule::Any => self.always.push(at),
        }
        for audience in &credential.audiences {
            let positions = self.by_audience.entry(audience.clone()).or_default();
            if positions.last() != Some(&at) {
                positions.push(at);
            }
        }
    }
}

impl TenantIndex {
    fn add_identity(&mut self, identity: IdentityId, credentials: &[FederatedCredential]) {
        if self.first_identity.is_none() {
            self.first_identity = Some(identity.clone());
        }
        for (position, credential) in credentials.iter().enumerate() {
            let by_issuer = match credential.mode {
                CredentialMode::Enforce => &mut self.by_issuer,
                CredentialMode::Audit => &mut self.audit_by_issuer,
            };
            by_issuer.entry(credential.issuer.clone()).or_default().add(
                CredentialRef {
                    identity: identity.clone(),
                    credential: position,
                },
                credential,
            );
        }
    }
}

#[cfg(test)]
mod tests;
