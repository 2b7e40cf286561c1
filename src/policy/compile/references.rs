//! Name resolution between documents: what every document declares (gathered before anything
//! is compiled, broken documents included), and the checks that a reference (a credential's
//! issuer, a tenant, an application, a role assignment's resource and roles) names something
//! declared.
//!
//! Gathering first means a reference to a name declared by a document that is itself broken
//! does not add a second, misleading "unknown name" problem.

use std::collections::{BTreeMap, BTreeSet};

use crate::policy::compile::{BrokenDeclaration, Compiler, SourcedDocument};
use crate::policy::model::{Origin, RoleAssignment};
use crate::policy::raw::{self, Document};

/// How many declared names a "did you mean one of these" hint lists at most.
const MAX_LISTED: usize = 20;

/// Names and resources declared anywhere in the set, gathered before anything is compiled.
#[derive(Default)]
pub(super) struct Declared {
    pub(super) issuers: BTreeSet<String>,
    pub(super) tenants: BTreeSet<String>,
    /// Application names and appIds (client ids a managed identity name must not shadow).
    pub(super) app_names: BTreeSet<String>,
    pub(super) app_ids: BTreeMap<String, String>,
    /// identifierUri → (application name, exposed roles), first declaration wins. Roles are
    /// `None` when the declaring document is broken: role checks against it are skipped.
    pub(super) resources: BTreeMap<String, (String, Option<Vec<String>>)>,
}

impl Declared {
    /// What `documents` and the `broken` ones declare.
    pub(super) fn gather(documents: &[SourcedDocument], broken: &[BrokenDeclaration]) -> Self {
        let mut index = Declared::default();
        for b in broken {
            let Some(name) = &b.name else { continue };
            match b.kind.as_str() {
                "Issuer" => {
                    index.issuers.insert(name.clone());
                }
                "Tenant" => {
                    index.tenants.insert(name.clone());
                }
                "Application" => {
                    index.app_names.insert(name.clone());
                    let app_id = b.app_id.clone().unwrap_or_else(|| name.clone());
                    index.app_ids.entry(app_id).or_insert_with(|| name.clone());
                    for uri in &b.identifier_uris {
                        index
                            .resources
                            .entry(uri.clone())
                            .or_insert_with(|| (name.clone(), None));
                    }
                }
                _ => {}
            }
        }
        for doc in documents {
            match &doc.document {
                Document::Issuer(i) => {
                    index.issuers.insert(i.name.clone());
                }
                Document::Tenant(t) => {
                    index.tenants.insert(t.name.clone());
                }
                Document::Application(a) => {
                    index.app_names.insert(a.name.clone());
                    let app_id = a.app_id.clone().unwrap_or_else(|| a.name.clone());
                    index
                        .app_ids
                        .entry(app_id)
                        .or_insert_with(|| a.name.clone());
                    let roles: Vec<String> = a.app_roles.iter().map(|r| r.value.clone()).collect();
                    for uri in &a.identifier_uris {
                        index
                            .resources
                            .entry(uri.clone())
                            .or_insert_with(|| (a.name.clone(), Some(roles.clone())));
                    }
                }
                Document::ServicePrincipal(_) | Document::ManagedIdentity(_) => {}
            }
        }
        index
    }
}

impl Compiler {
    /// `issuer` (at `path`) must name a declared Issuer.
    pub(super) fn check_issuer(&mut self, origin: &Origin, path: String, issuer: &str) {
        if !self.declared.issuers.contains(issuer) {
            let hint = listing(&self.declared.issuers, "Issuer");
            self.problem(origin, path, format!("unknown issuer {issuer:?}; {hint}"));
        }
    }

    /// `application` must name a declared Application.
    pub(super) fn check_application(&mut self, origin: &Origin, application: &str) {
        if !self.declared.app_names.contains(application) {
            let hint = listing(&self.declared.app_names, "Application");
            self.problem(
                origin,
                "application",
                format!("unknown application {application:?}; {hint}"),
            );
        }
    }

    /// `tenant` must name a declared Tenant.
    pub(super) fn check_tenant(&mut self, origin: &Origin, tenant: &str) {
        if !self.declared.tenants.contains(tenant) {
            let hint = listing(&self.declared.tenants, "Tenant");
            self.problem(
                origin,
                "tenant",
                format!("unknown tenant {tenant:?}; {hint}"),
            );
        }
    }

    /// Role assignments, each naming a declared resource and roles it exposes.
    pub(super) fn assignments(
        &mut self,
        origin: &Origin,
        raws: &[raw::RoleAssignment],
    ) -> Vec<RoleAssignment> {
        let mut out: Vec<RoleAssignment> = Vec::with_capacity(raws.len());
        for (i, raw) in raws.iter().enumerate() {
            let path = format!("appRoleAssignments[{i}]");
            let Some((app, exposed)) = self.declared.resources.get(&raw.resource).cloned() else {
                let hint = listing(self.declared.resources.keys(), "identifierUri");
                self.problem(
                    origin,
                    format!("{path}.resource"),
                    format!("unknown resource {:?}; {hint}", raw.resource),
                );
                continue;
            };
            if out.iter().any(|a| a.resource == raw.resource) {
                self.problem(
                    origin,
                    format!("{path}.resource"),
                    format!(
                        "resource {:?} is assigned twice; list all its roles in one entry",
                        raw.resource
                    ),
                );
                continue;
            }
            if raw.roles.is_empty() {
                self.problem(origin, format!("{path}.roles"), "list at least one role");
            }
            let mut roles: Vec<String> = Vec::with_capacity(raw.roles.len());
            for (k, role) in raw.roles.iter().enumerate() {
                let role_path = format!("{path}.roles[{k}]");
                let Some(exposed) = &exposed else {
                    // The declaring document is broken and already reported.
                    continue;
                };
                if !exposed.contains(role) {
                    let exposes = if exposed.is_empty() {
                        "it exposes no appRoles".to_string()
                    } else {
                        format!("it exposes: {}", exposed.join(", "))
                    };
                    self.problem(
                        origin,
                        role_path,
                        format!(
                            "role {role:?} is not exposed by {:?} (application {app:?}); {exposes}",
                            raw.resource
                        ),
                    );
                } else if roles.contains(role) {
                    self.problem(origin, role_path, format!("duplicate role {role:?}"));
                } else {
                    roles.push(role.clone());
                }
            }
            out.push(RoleAssignment {
                resource: raw.resource.clone(),
                roles,
            });
        }
        out
    }
}

/// "declared Issuers: a, b" or "no Issuer is declared", capped at [`MAX_LISTED`] names.
pub(super) fn listing<'a>(names: impl IntoIterator<Item = &'a String>, what: &str) -> String {
    let names: Vec<&str> = names.into_iter().map(String::as_str).collect();
    if names.is_empty() {
        return format!("no {what} is declared");
    }
    let mut shown = names
        .iter()
        .take(MAX_LISTED)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > MAX_LISTED {
        shown.push_str(&format!(", ... ({} in all)", names.len()));
    }
    format!("declared {what}s: {shown}")
}
