//! The compiled policy set: every compiled document of one load, with its lookups and its
//! credential index, behind read-only accessors.
//!
//! A [`PolicySet`] is assembled once, by `policy::compile` after every problem was ruled out,
//! and never changes afterwards (a reload builds a new one and swaps it). Its fields are private
//! so that nothing outside can add an issuer without its URL lookup, or a credential without
//! its index entry. Nothing here does I/O or checks policy rules: that was compile's job.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::policy::index::CredentialIndex;
use crate::policy::load::source_map::SourceMap;
use crate::policy::model::{
    Application, CredentialMode, Issuer, ManagedIdentity, ManagedIdentityName, ServicePrincipal,
    Tenant,
};

/// A validated, compiled set of policies. Immutable; reload builds a new one and swaps it.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    /// Issuers by name.
    issuers: BTreeMap<String, Arc<Issuer>>,
    /// Tenants by name.
    tenants: BTreeMap<String, Tenant>,
    /// Applications by name.
    applications: BTreeMap<String, Application>,
    /// Service principals keyed by (tenant, application name).
    service_principals: BTreeMap<(String, String), ServicePrincipal>,
    /// Managed identities, in load order.
    managed_identities: Vec<ManagedIdentity>,
    /// Issuer URL → issuer name (exact match on `iss`).
    issuer_by_url: HashMap<String, String>,
    /// appId → application name.
    app_by_id: HashMap<String, String>,
    /// Identifier URI → application name.
    resource_by_uri: HashMap<String, String>,
    /// (tenant, name or client id) → position of a user-assigned managed identity, so that
    /// resolving a `client_id` costs the same whatever the tenant's size.
    user_assigned: HashMap<(String, String), usize>,
    /// SHA-256 (hex) over the loaded files' names and contents.
    content_hash: String,
    /// How many credentials are in audit mode.
    audit_credentials: usize,
    /// The credential lookup index, built once with the set.
    credential_index: CredentialIndex,
    /// The text of the files loaded, to place lints and declarations at `file:line:column`.
    sources: Arc<SourceMap>,
}

/// The compiled documents a [`PolicySet`] is assembled from, each kind in load order.
#[derive(Debug, Default)]
pub(crate) struct Documents {
    /// Compiled `kind: Issuer` documents.
    pub issuers: Vec<Issuer>,
    /// Compiled `kind: Tenant` documents.
    pub tenants: Vec<Tenant>,
    /// Compiled `kind: Application` documents.
    pub applications: Vec<Application>,
    /// Compiled `kind: ServicePrincipal` documents.
    pub service_principals: Vec<ServicePrincipal>,
    /// Compiled `kind: ManagedIdentity` documents.
    pub managed_identities: Vec<ManagedIdentity>,
}

impl PolicySet {
    /// Assembles a set from compiled documents whose names are unique (compile refuses
    /// duplicates before it gets here): fills the lookups, counts audit-mode credentials and
    /// builds the credential index, once. `content_hash` tells policy versions apart.
    pub(crate) fn assemble(documents: Documents, content_hash: String) -> Self {
        let Documents {
            issuers,
            tenants,
            applications,
            service_principals,
            managed_identities,
        } = documents;
        let issuer_by_url = issuers
            .iter()
            .map(|i| (i.issuer.clone(), i.name.clone()))
            .collect();
        let issuers = issuers
            .into_iter()
            .map(|i| (i.name.clone(), Arc::new(i)))
            .collect();
        let tenants = tenants.into_iter().map(|t| (t.name.clone(), t)).collect();
        let mut app_by_id = HashMap::new();
        let mut resource_by_uri = HashMap::new();
        for app in &applications {
            app_by_id.insert(app.app_id.clone(), app.name.clone());
            for uri in &app.identifier_uris {
                resource_by_uri.insert(uri.clone(), app.name.clone());
            }
        }
        let applications: BTreeMap<String, Application> = applications
            .into_iter()
            .map(|a| (a.name.clone(), a))
            .collect();
        let service_principals: BTreeMap<(String, String), ServicePrincipal> = service_principals
            .into_iter()
            .map(|sp| ((sp.tenant.clone(), sp.application.clone()), sp))
            .collect();
        let audit_credentials = applications
            .values()
            .flat_map(|a| &a.federated_credentials)
            .chain(
                managed_identities
                    .iter()
                    .flat_map(|m| &m.federated_credentials),
            )
            .filter(|c| c.mode == CredentialMode::Audit)
            .count();
        let credential_index =
            CredentialIndex::build(&applications, &service_principals, &managed_identities);
        let mut user_assigned = HashMap::new();
        for (position, mi) in managed_identities.iter().enumerate() {
            if let ManagedIdentityName::Fixed(name) = &mi.name {
                let (_, client) = mi.ids(&mi.tenant, name);
                for key in [name.clone(), client.to_string()] {
                    user_assigned
                        .entry((mi.tenant.clone(), key))
                        .or_insert(position);
                }
            }
        }
        Self {
            issuers,
            tenants,
            applications,
            service_principals,
            managed_identities,
            issuer_by_url,
            app_by_id,
            resource_by_uri,
            user_assigned,
            content_hash,
            audit_credentials,
            credential_index,
            sources: Arc::default(),
        }
    }

    /// The set with `sources`, the texts it was loaded from (the loader attaches them).
    pub(crate) fn with_sources(self, sources: SourceMap) -> Self {
        Self {
            sources: Arc::new(sources),
            ..self
        }
    }

    /// The text of the files this set was loaded from, to show where a document or field is
    /// (`file:line:column`) as it was when loaded, whatever the files hold now.
    pub fn sources(&self) -> &SourceMap {
        &self.sources
    }

    /// The index of this set's federated credentials (by tenant, issuer and subject).
    pub fn credential_index(&self) -> &CredentialIndex {
        &self.credential_index
    }

    /// SHA-256 (hex) over the loaded files' names and contents, to tell policy versions apart.
    pub fn content_hash(&self) -> &str {
        &self.content_hash
    }

    /// How many credentials are in audit mode (when 0, exchanges skip evaluating them).
    pub fn audit_credentials(&self) -> usize {
        self.audit_credentials
    }

    /// Every issuer, by name.
    pub fn issuers(&self) -> impl ExactSizeIterator<Item = &Arc<Issuer>> {
        self.issuers.values()
    }

    /// The issuer named `name`.
    pub fn issuer(&self, name: &str) -> Option<&Arc<Issuer>> {
        self.issuers.get(name)
    }

    /// The issuer whose URL is exactly `iss`, if declared.
    pub fn issuer_for(&self, iss: &str) -> Option<&Arc<Issuer>> {
        self.issuer_by_url
            .get(iss)
            .and_then(|name| self.issuers.get(name))
    }

    /// Every tenant, by name.
    pub fn tenants(&self) -> impl ExactSizeIterator<Item = &Tenant> {
        self.tenants.values()
    }

    /// The tenant named `name`.
    pub fn tenant(&self, name: &str) -> Option<&Tenant> {
        self.tenants.get(name)
    }

    /// Every application, by name.
    pub fn applications(&self) -> impl ExactSizeIterator<Item = &Application> {
        self.applications.values()
    }

    /// The application named `name`.
    pub fn application(&self, name: &str) -> Option<&Application> {
        self.applications.get(name)
    }

    /// The application whose `appId` or name is `client_id`.
    pub fn application_by_client_id(&self, client_id: &str) -> Option<&Application> {
        self.app_by_id
            .get(client_id)
            .and_then(|name| self.applications.get(name))
            .or_else(|| self.applications.get(client_id))
    }

    /// The application exposing the identifier URI `uri`.
    pub fn resource(&self, uri: &str) -> Option<&Application> {
        self.resource_by_uri
            .get(uri)
            .and_then(|name| self.applications.get(name))
    }

    /// Every service principal, by tenant then application name.
    pub fn service_principals(&self) -> impl ExactSizeIterator<Item = &ServicePrincipal> {
        self.service_principals.values()
    }

    /// The service principal of `application` in `tenant`.
    pub fn service_principal(&self, tenant: &str, application: &str) -> Option<&ServicePrincipal> {
        self.service_principals
            .get(&(tenant.to_string(), application.to_string()))
    }

    /// Every managed identity, in load order (positions are what the credential index names).
    pub fn managed_identities(&self) -> &[ManagedIdentity] {
        &self.managed_identities
    }

    /// The position (in [`Self::managed_identities`]) of the user-assigned managed identity of
    /// `tenant` whose name or client id is `client_id`; the first declared wins.
    pub fn user_assigned(&self, tenant: &str, client_id: &str) -> Option<usize> {
        self.user_assigned
            .get(&(tenant.to_string(), client_id.to_string()))
            .copied()
    }

    /// Managed identities of `tenant`, in load order.
    pub fn managed_identities_in<'s>(
        &'s self,
        tenant: &str,
    ) -> impl Iterator<Item = &'s ManagedIdentity> {
        self.managed_identities
            .iter()
            .filter(move |mi| mi.tenant == tenant)
    }
}
