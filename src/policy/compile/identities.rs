//! Compiling the identity documents (`Tenant`, `Application`, `ServicePrincipal`,
//! `ManagedIdentity`) and the federated credentials they hold: names and their uniqueness, CEL,
//! subject rules, claim mappings and lifetimes.
//!
//! Whether a referenced name exists is `references`' job; this module only calls its checks.

use std::collections::HashMap;
use std::time::Duration;

use crate::cidr::Cidr;
use crate::jose::{is_reserved_claim, reserved_claims};
use crate::policy::cel::Expression;
use crate::policy::compile::Compiler;
use crate::policy::glob::SubjectPattern;
use crate::policy::model::{
    self, Application, ConditionRule, CredentialMode, FederatedCredential, ManagedIdentity,
    ManagedIdentityName, Origin, ServicePrincipal, SubjectRule, Tenant,
};
use crate::policy::raw::{self, HumanDuration};

/// Largest accepted `maxTokenLifetime` / `tokenLifetime`.
pub const MAX_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// Longest tenant name (it is a URL path segment).
pub const MAX_TENANT_NAME: usize = 64;

impl Compiler {
    // === Tenant ===

    pub(super) fn tenant(&mut self, origin: &Origin, raw: &raw::Tenant) -> Option<Tenant> {
        let name = &raw.name;
        let valid_chars = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if name.is_empty() || name.len() > MAX_TENANT_NAME || !valid_chars {
            self.problem(
                origin,
                "name",
                format!(
                    "tenant name {name:?} is invalid: it is a URL path segment, so use 1 to \
                     {MAX_TENANT_NAME} characters of A-Z a-z 0-9 . _ -"
                ),
            );
            return None;
        }
        if name == "." || name == ".." {
            self.problem(
                origin,
                "name",
                format!("tenant name {name:?} is a relative path segment"),
            );
            return None;
        }
        if let Some(first) = self.tenant_names.get(name).cloned() {
            self.problem(
                origin,
                "name",
                format!("duplicate Tenant {name:?} (first declared at {first})"),
            );
            return None;
        }
        self.tenant_names.insert(name.clone(), origin.clone());
        Some(Tenant {
            name: name.clone(),
            id: model::tenant_id(name),
            origin: origin.clone(),
        })
    }

    // === Application ===

    pub(super) fn application(
        &mut self,
        origin: &Origin,
        raw: &raw::Application,
    ) -> Option<Application> {
        let before = self.problems.len();
        if raw.name.trim().is_empty() {
            self.problem(origin, "name", "application name is empty");
        } else if let Some(first) = self.app_names.get(&raw.name).cloned() {
            self.problem(
                origin,
                "name",
                format!(
                    "duplicate Application {:?} (first declared at {first})",
                    raw.name
                ),
            );
        } else {
            self.app_names.insert(raw.name.clone(), origin.clone());
        }
        // A defaulted appId of a duplicate name would only repeat the problem above.
        let check_app_id = raw.app_id.is_some() || self.problems.len() == before;

        let app_id = raw.app_id.clone().unwrap_or_else(|| raw.name.clone());
        if raw.app_id.as_deref().is_some_and(|id| id.trim().is_empty()) {
            self.problem(
                origin,
                "appId",
                "appId is empty (omit it to default to the name)",
            );
        }
        if !check_app_id {
            // Already reported.
        } else if let Some((other, first)) = self.app_ids.get(&app_id).cloned() {
            self.problem(
                origin,
                "appId",
                format!(
                    "appId {app_id:?} is already the client id of application {other:?} (at \
                     {first}); client ids must be unique"
                ),
            );
        } else if app_id != raw.name && self.declared.app_names.contains(&app_id) {
            self.problem(
                origin,
                "appId",
                format!(
                    "appId {app_id:?} is the name of another application; a client_id must \
                     resolve to exactly one application"
                ),
            );
        } else {
            self.app_ids
                .insert(app_id.clone(), (raw.name.clone(), origin.clone()));
        }

        for (i, uri) in raw.identifier_uris.iter().enumerate() {
            let path = format!("identifierUris[{i}]");
            if uri.is_empty() || uri.ends_with('/') || uri.chars().any(char::is_whitespace) {
                self.problem(
                    origin,
                    path,
                    format!(
                        "identifier URI {uri:?} is invalid: it must be non-empty, hold no \
                         whitespace and not end with '/' (scopes are `<uri>/.default`)"
                    ),
                );
            } else if let Some(first) = self.identifier_uris.get(uri).cloned() {
                self.problem(
                    origin,
                    path,
                    format!("identifier URI {uri:?} is already declared at {first}"),
                );
            } else {
                self.identifier_uris.insert(uri.clone(), origin.clone());
            }
        }

        let mut roles: Vec<String> = Vec::with_capacity(raw.app_roles.len());
        for (i, role) in raw.app_roles.iter().enumerate() {
            let path = format!("appRoles[{i}].value");
            let value = &role.value;
            if value.is_empty() || value.contains('/') || value.chars().any(char::is_whitespace) {
                self.problem(
                    origin,
                    path,
                    format!(
                        "role value {value:?} is invalid: it must be non-empty and hold no \
                         whitespace or '/' (it appears in scopes as `<uri>/<role>`)"
                    ),
                );
            } else if roles.contains(value) {
                self.problem(origin, path, format!("duplicate role value {value:?}"));
            } else {
                roles.push(value.clone());
            }
        }

        let federated_credentials = self.credentials(origin, &raw.federated_credentials);

        (self.problems.len() == before).then(|| Application {
            name: raw.name.clone(),
            app_id,
            identifier_uris: raw.identifier_uris.clone(),
            app_roles: roles,
            federated_credentials,
            origin: origin.clone(),
        })
    }

    // === FederatedCredential ===

    fn credentials(
        &mut self,
        origin: &Origin,
        raws: &[raw::FederatedCredential],
    ) -> Vec<FederatedCredential> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut out = Vec::with_capacity(raws.len());
        for (i, raw) in raws.iter().enumerate() {
            let path = format!("federatedCredentials[{i}]");
            if raw.name.trim().is_empty() {
                self.problem(origin, format!("{path}.name"), "credential name is empty");
            } else if let Some(first) = seen.get(raw.name.as_str()) {
                self.problem(
                    origin,
                    format!("{path}.name"),
                    format!(
                        "duplicate credential name {:?} (also federatedCredentials[{first}]); \
                         names must be unique within an identity",
                        raw.name
                    ),
                );
            } else {
                seen.insert(&raw.name, i);
            }
            if let Some(credential) = self.credential(origin, path, raw) {
                out.push(credential);
            }
        }
        out
    }

    fn credential(
        &mut self,
        origin: &Origin,
        path: String,
        raw: &raw::FederatedCredential,
    ) -> Option<FederatedCredential> {
        let before = self.problems.len();
        self.check_issuer(origin, format!("{path}.issuer"), &raw.issuer);

        if raw.audiences.is_empty() {
            self.problem(
                origin,
                format!("{path}.audiences"),
                "list at least one audience (the token's `aud` must include one of them)",
            );
        }
        for (k, audience) in raw.audiences.iter().enumerate() {
            if audience.trim().is_empty() {
                self.problem(
                    origin,
                    format!("{path}.audiences[{k}]"),
                    "audience is empty",
                );
            }
        }

        let subject = match (&raw.subject, &raw.subject_pattern) {
            (Some(_), Some(_)) => {
                self.problem(
                    origin,
                    path.clone(),
                    "set only one of subject (exact) and subjectPattern (glob), not both",
                );
                SubjectRule::Any
            }
            (Some(subject), None) if subject.is_empty() => {
                self.problem(origin, format!("{path}.subject"), "subject is empty");
                SubjectRule::Any
            }
            (Some(subject), None) => SubjectRule::Exact(subject.clone()),
            (None, Some(pattern)) => match SubjectPattern::parse(pattern) {
                Ok(p) => SubjectRule::Pattern(p),
                Err(e) => {
                    self.problem(origin, format!("{path}.subjectPattern"), e.0);
                    SubjectRule::Any
                }
            },
            (None, None) => {
                if raw.condition.is_none() {
                    self.problem(
                        origin,
                        path.clone(),
                        "set at least one of subject, subjectPattern and condition; without \
                         them every token of the issuer for these audiences would match",
                    );
                }
                SubjectRule::Any
            }
        };

        let condition = self.condition(origin, &path, raw.condition.as_ref());
        let mut allowed_networks = Vec::with_capacity(raw.allowed_networks.len());
        for (k, text) in raw.allowed_networks.iter().enumerate() {
            match Cidr::parse(text) {
                Ok(cidr) => allowed_networks.push(cidr),
                Err(e) => self.problem(
                    origin,
                    format!("{path}.allowedNetworks[{k}]"),
                    format!("{text:?} is not a CIDR prefix such as 10.0.0.0/8: {e}"),
                ),
            }
        }

        let mut claim_mappings = Vec::with_capacity(raw.claim_mappings.len());
        for (claim, src) in &raw.claim_mappings {
            let claim_path = format!("{path}.claimMappings.{claim}");
            if claim.trim().is_empty() {
                self.problem(origin, claim_path, "claim name is empty");
                continue;
            }
            if is_reserved_claim(claim) {
                self.problem(
                    origin,
                    claim_path,
                    format!(
                        "claim {claim:?} is reserved: trustbridge sets it itself or verifiers \
                         give it an authorization meaning (reserved: {})",
                        reserved_claims().collect::<Vec<_>>().join(", ")
                    ),
                );
                continue;
            }
            if let Some(expr) = self.expression(origin, claim_path, src) {
                claim_mappings.push((claim.clone(), expr));
            }
        }

        let max_token_lifetime = self.lifetime(
            origin,
            format!("{path}.maxTokenLifetime"),
            raw.max_token_lifetime,
        );

        (self.problems.len() == before).then(|| FederatedCredential {
            name: raw.name.clone(),
            issuer: raw.issuer.clone(),
            audiences: raw.audiences.clone(),
            subject,
            condition,
            allowed_networks,
            require_proof_of_possession: raw.require_proof_of_possession,
            claim_mappings,
            max_token_lifetime,
            one_time_use: raw.one_time_use,
            origin: origin.clone(),
            path,
            mode: match raw.mode {
                raw::CredentialMode::Enforce => CredentialMode::Enforce,
                raw::CredentialMode::Audit => CredentialMode::Audit,
            },
        })
    }

    /// The condition's rules: one without a message for the plain form.
    fn condition(
        &mut self,
        origin: &Origin,
        path: &str,
        raw: Option<&raw::Condition>,
    ) -> Vec<ConditionRule> {
        let rules: Vec<(String, &str, Option<&String>)> = match raw {
            None => Vec::new(),
            Some(raw::Condition::Expression(src)) => vec![(format!("{path}.condition"), src, None)],
            Some(raw::Condition::Rules(rules)) => {
                if rules.is_empty() {
                    self.problem(
                        origin,
                        format!("{path}.condition"),
                        "the rule list is empty",
                    );
                }
                rules
                    .iter()
                    .enumerate()
                    .map(|(k, r)| {
                        (
                            format!("{path}.condition[{k}].expression"),
                            r.expression.as_str(),
                            r.message.as_ref(),
                        )
                    })
                    .collect()
            }
        };
        rules
            .into_iter()
            .filter_map(
                |(path, src, message)| match Expression::compile_condition(src) {
                    Ok(expression) => Some(ConditionRule {
                        expression,
                        message: message.cloned(),
                    }),
                    Err(e) => {
                        self.problem(origin, path, e.to_string());
                        None
                    }
                },
            )
            .collect()
    }

    fn expression(&mut self, origin: &Origin, path: String, source: &str) -> Option<Expression> {
        match Expression::compile(source) {
            Ok(expr) => Some(expr),
            Err(e) => {
                self.problem(origin, path, e.to_string());
                None
            }
        }
    }

    fn lifetime(
        &mut self,
        origin: &Origin,
        path: String,
        raw: Option<HumanDuration>,
    ) -> Option<Duration> {
        let HumanDuration(d) = raw?;
        if d.is_zero() || d > MAX_LIFETIME {
            self.problem(
                origin,
                path,
                format!(
                    "lifetime {} is out of range: it must be more than 0 and at most {}",
                    humantime::format_duration(d),
                    humantime::format_duration(MAX_LIFETIME)
                ),
            );
        }
        Some(d)
    }

    // === ServicePrincipal ===

    pub(super) fn service_principal(
        &mut self,
        origin: &Origin,
        raw: &raw::ServicePrincipal,
    ) -> Option<ServicePrincipal> {
        let before = self.problems.len();
        self.check_application(origin, &raw.application);
        self.check_tenant(origin, &raw.tenant);
        let key = (raw.tenant.clone(), raw.application.clone());
        if let Some(first) = self.service_principals.get(&key).cloned() {
            self.problem(
                origin,
                "",
                format!(
                    "application {:?} already has a ServicePrincipal in tenant {:?} (at \
                     {first}); declare at most one per tenant",
                    raw.application, raw.tenant
                ),
            );
        } else {
            self.service_principals.insert(key, origin.clone());
        }
        let role_assignments = self.assignments(origin, &raw.app_role_assignments);
        let token_lifetime = self.lifetime(origin, "tokenLifetime".into(), raw.token_lifetime);
        (self.problems.len() == before).then(|| ServicePrincipal {
            application: raw.application.clone(),
            tenant: raw.tenant.clone(),
            enabled: raw.enabled,
            object_id: model::object_id(&raw.tenant, "servicePrincipal", &raw.application),
            role_assignments,
            token_lifetime,
            origin: origin.clone(),
        })
    }

    // === ManagedIdentity ===

    pub(super) fn managed_identity(
        &mut self,
        origin: &Origin,
        raw: &raw::ManagedIdentity,
    ) -> Option<ManagedIdentity> {
        let before = self.problems.len();
        self.check_tenant(origin, &raw.tenant);
        let name = match (&raw.name, &raw.name_from) {
            (Some(_), Some(_)) | (None, None) => {
                self.problem(
                    origin,
                    "",
                    "set exactly one of name (a user-assigned identity) and nameFrom (a CEL \
                     template: one identity per workload)",
                );
                None
            }
            (Some(name), None) => self.fixed_identity_name(origin, &raw.tenant, name),
            (None, Some(src)) => {
                self.template_fingerprint(origin, raw, src);
                self.expression(origin, "nameFrom".into(), src)
                    .map(ManagedIdentityName::Template)
            }
        };
        if raw.federated_credentials.is_empty() {
            self.problem(
                origin,
                "federatedCredentials",
                "a ManagedIdentity needs at least one federated credential: it has no other \
                 way to obtain tokens",
            );
        }
        let federated_credentials = self.credentials(origin, &raw.federated_credentials);
        let role_assignments = self.assignments(origin, &raw.app_role_assignments);
        let token_lifetime = self.lifetime(origin, "tokenLifetime".into(), raw.token_lifetime);
        let name = name?;
        (self.problems.len() == before).then(|| ManagedIdentity {
            tenant: raw.tenant.clone(),
            name,
            enabled: raw.enabled,
            federated_credentials,
            role_assignments,
            token_lifetime,
            origin: origin.clone(),
        })
    }

    /// Refuses a second workload-assigned identity in a tenant with the fingerprint of an
    /// earlier one: both would compute the same names and so mint the same object ids.
    fn template_fingerprint(&mut self, origin: &Origin, raw: &raw::ManagedIdentity, src: &str) {
        let fingerprint = model::template_fingerprint(
            src,
            raw.federated_credentials.iter().map(|c| c.issuer.as_str()),
        );
        let key = (raw.tenant.clone(), fingerprint);
        if let Some(first) = self.identity_templates.get(&key) {
            let message = format!(
                "workload-assigned identity in tenant {:?} has the same nameFrom and credential \
                 issuers as the one declared at {first}: both would give the same names the same \
                 object ids; merge them, or make their nameFrom differ",
                raw.tenant
            );
            self.problem(origin, "nameFrom", message);
            return;
        }
        self.identity_templates.insert(key, origin.clone());
    }

    fn fixed_identity_name(
        &mut self,
        origin: &Origin,
        tenant: &str,
        name: &str,
    ) -> Option<ManagedIdentityName> {
        if name.trim().is_empty() {
            self.problem(origin, "name", "managed identity name is empty");
            return None;
        }
        if self.declared.app_names.contains(name) || self.declared.app_ids.contains_key(name) {
            self.problem(
                origin,
                "name",
                format!(
                    "managed identity name {name:?} is also an Application name or appId; a \
                     client_id must resolve to exactly one identity"
                ),
            );
            return None;
        }
        let key = (tenant.to_string(), name.to_string());
        if let Some(first) = self.identity_names.get(&key) {
            let message = format!(
                "duplicate managed identity {name:?} in tenant {tenant:?} (first declared at \
                 {first})"
            );
            self.problem(origin, "name", message);
            return None;
        }
        self.identity_names.insert(key, origin.clone());
        Some(ManagedIdentityName::Fixed(name.to_string()))
    }
}
