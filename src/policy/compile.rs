//! From raw documents to a [`PolicySet`]: names resolved, CEL and globs compiled, URLs, limits
//! and exactly-one-of pairs checked.
//!
//! Every problem is collected, never just the first, each with the document it came from and
//! the field path inside it. Declarations are indexed first so that a reference to a name that
//! is declared, even by a document that is itself broken, does not add a second, misleading
//! "unknown name" problem.
//!
//! The only I/O here is checking that a `jwksFile` exists; reading it is `issuers`' job.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::jose::SigningAlgorithm;
use crate::policy::cel::Expression;
use crate::policy::glob::SubjectPattern;
use crate::policy::model::{
    self, Application, CredentialMode, FederatedCredential, Issuer, KeySourceSpec, ManagedIdentity,
    ManagedIdentityName, Origin, PolicySet, Preset, RoleAssignment, ServicePrincipal, SubjectRule,
    Tenant, TokenHygiene,
};
use crate::policy::presets;
use crate::policy::raw::{self, Document, HumanDuration};
use crate::policy::{LoadErrors, Problem};

/// Largest accepted `leeway`.
pub const MAX_LEEWAY: Duration = Duration::from_secs(5 * 60);
/// Smallest accepted Issuer `maxTokenLifetime` / `maxTokenAge`.
pub const MIN_SUBJECT_TOKEN_LIMIT: Duration = Duration::from_secs(60);
/// Largest accepted Issuer `maxTokenLifetime` / `maxTokenAge` (a year and a day: enough for the
/// longest Kubernetes tokens, for operators who knowingly accept them).
pub const MAX_SUBJECT_TOKEN_LIMIT: Duration = Duration::from_secs(366 * 24 * 3600);
/// Largest accepted `maxTokenLifetime` / `tokenLifetime`.
pub const MAX_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// Longest tenant name (it is a URL path segment).
pub const MAX_TENANT_NAME: usize = 64;

/// Claims a `claimMappings` entry may not name (owned by the token format).
pub use crate::tokens::claims::{is_reserved_claim, reserved_claims};

/// How many declared names a "did you mean one of these" hint lists at most.
const MAX_LISTED: usize = 20;

/// One parsed document and where it came from.
#[derive(Debug, Clone)]
pub struct SourcedDocument {
    /// File and document index.
    pub origin: Origin,
    /// The document.
    pub document: Document,
}

/// What can still be told about a document that did not deserialize: its kind, and the names
/// it declares. Other documents may refer to them, and they should not be told that the name is
/// unknown when the real problem is the broken document (already reported).
#[derive(Debug, Clone, Default)]
pub struct BrokenDeclaration {
    /// The document's `kind`.
    pub kind: String,
    /// Its `name`, if it had a string one.
    pub name: Option<String>,
    /// Its `appId`, if it had a string one.
    pub app_id: Option<String>,
    /// Its `identifierUris` that are strings.
    pub identifier_uris: Vec<String>,
}

/// Every document of a policy directory, parsed, plus the hash of the files they came from.
#[derive(Debug, Clone, Default)]
pub struct RawPolicySet {
    /// Documents in load order (files by name, then document index).
    pub documents: Vec<SourcedDocument>,
    /// Documents that did not deserialize (their problems are reported by the loader).
    pub broken: Vec<BrokenDeclaration>,
    /// See [`PolicySet::content_hash`].
    pub content_hash: String,
}

impl TryFrom<RawPolicySet> for PolicySet {
    type Error = LoadErrors;

    /// Compiles the set; every problem found is in the error.
    fn try_from(raw: RawPolicySet) -> Result<Self, LoadErrors> {
        let mut compiler = Compiler::index(&raw.documents, &raw.broken);
        let mut set = PolicySet {
            content_hash: raw.content_hash,
            ..PolicySet::default()
        };
        for doc in &raw.documents {
            compiler.document(&doc.origin, &doc.document, &mut set);
        }
        if compiler.problems.is_empty() {
            set.audit_credentials = set
                .applications
                .values()
                .flat_map(|a| &a.federated_credentials)
                .chain(
                    set.managed_identities
                        .iter()
                        .flat_map(|m| &m.federated_credentials),
                )
                .filter(|c| c.mode == CredentialMode::Audit)
                .count();
            // Built here, at load, rather than by the first exchange after a (re)load.
            set.credential_index();
            Ok(set)
        } else {
            Err(LoadErrors(compiler.problems))
        }
    }
}

/// Names and resources declared anywhere in the set, gathered before anything is compiled.
#[derive(Default)]
struct Index {
    issuers: BTreeSet<String>,
    tenants: BTreeSet<String>,
    /// Application names and appIds (client ids a managed identity name must not shadow).
    app_names: BTreeSet<String>,
    app_ids: BTreeMap<String, String>,
    /// identifierUri → (application name, exposed roles), first declaration wins. Roles are
    /// `None` when the declaring document is broken: role checks against it are skipped.
    resources: BTreeMap<String, (String, Option<Vec<String>>)>,
}

struct Compiler {
    index: Index,
    problems: Vec<Problem>,
    /// First origin of each unique key, to say where a duplicate was first declared.
    issuer_names: HashMap<String, Origin>,
    issuer_urls: HashMap<String, Origin>,
    /// Issuer URL without trailing slashes → (URL as declared, origin), to refuse twins.
    issuer_twins: HashMap<String, (String, Origin)>,
    tenant_names: HashMap<String, Origin>,
    app_names: HashMap<String, Origin>,
    identifier_uris: HashMap<String, Origin>,
    /// appId → (application name, origin).
    app_ids: HashMap<String, (String, Origin)>,
    /// (tenant, application) of service principals.
    service_principals: HashMap<(String, String), Origin>,
    /// (tenant, name) of fixed managed identities.
    identity_names: HashMap<(String, String), Origin>,
}

impl Compiler {
    fn index(documents: &[SourcedDocument], broken: &[BrokenDeclaration]) -> Self {
        let mut index = Index::default();
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
        Self {
            index,
            problems: Vec::new(),
            issuer_names: HashMap::new(),
            issuer_urls: HashMap::new(),
            issuer_twins: HashMap::new(),
            tenant_names: HashMap::new(),
            app_names: HashMap::new(),
            identifier_uris: HashMap::new(),
            app_ids: HashMap::new(),
            service_principals: HashMap::new(),
            identity_names: HashMap::new(),
        }
    }

    fn problem(&mut self, origin: &Origin, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            location: origin.to_string(),
            path: path.into(),
            message: message.into(),
        });
    }

    fn document(&mut self, origin: &Origin, document: &Document, set: &mut PolicySet) {
        match document {
            Document::Issuer(raw) => {
                if let Some(issuer) = self.issuer(origin, raw) {
                    set.issuer_by_url
                        .insert(issuer.issuer.clone(), issuer.name.clone());
                    set.issuers.insert(issuer.name.clone(), Arc::new(issuer));
                }
            }
            Document::Tenant(raw) => {
                if let Some(tenant) = self.tenant(origin, raw) {
                    set.tenants.insert(tenant.name.clone(), tenant);
                }
            }
            Document::Application(raw) => {
                if let Some(app) = self.application(origin, raw) {
                    set.app_by_id.insert(app.app_id.clone(), app.name.clone());
                    for uri in &app.identifier_uris {
                        set.resource_by_uri.insert(uri.clone(), app.name.clone());
                    }
                    set.applications.insert(app.name.clone(), app);
                }
            }
            Document::ServicePrincipal(raw) => {
                if let Some(sp) = self.service_principal(origin, raw) {
                    set.service_principals
                        .insert((sp.tenant.clone(), sp.application.clone()), sp);
                }
            }
            Document::ManagedIdentity(raw) => {
                if let Some(mi) = self.managed_identity(origin, raw) {
                    set.managed_identities.push(mi);
                }
            }
        }
    }

    // === Issuer ===

    fn issuer(&mut self, origin: &Origin, raw: &raw::Issuer) -> Option<Issuer> {
        let before = self.problems.len();
        if raw.name.trim().is_empty() {
            self.problem(origin, "name", "issuer name is empty");
        } else if let Some(first) = self.issuer_names.get(&raw.name).cloned() {
            self.problem(
                origin,
                "name",
                format!(
                    "duplicate Issuer name {:?} (first declared at {first})",
                    raw.name
                ),
            );
        } else {
            self.issuer_names.insert(raw.name.clone(), origin.clone());
        }

        if raw.issuer.contains("://") {
            self.check_url(origin, "issuer", &raw.issuer, raw.allow_insecure_http);
        } else {
            // `Url::parse("accounts.google.com:443")` "succeeds" with scheme
            // `accounts.google.com`; say plainly what is wrong instead.
            self.problem(
                origin,
                "issuer",
                format!(
                    "issuer {:?} has no scheme; write the exact `iss` of the tokens, e.g. \
                     \"https://{}\" (an issuer without https:// cannot be discovered and \
                     would match tokens of whoever else uses that string)",
                    raw.issuer,
                    raw.issuer.trim_start_matches('/')
                ),
            );
        }
        if let Some(first) = self.issuer_urls.get(&raw.issuer).cloned() {
            self.problem(
                origin,
                "issuer",
                format!(
                    "issuer URL {:?} is already declared at {first}; tokens are matched to an \
                     Issuer by exact `iss`, so each URL may be declared once",
                    raw.issuer
                ),
            );
        } else {
            self.issuer_urls.insert(raw.issuer.clone(), origin.clone());
            self.issuer_twin(origin, &raw.issuer);
        }

        let sources = usize::from(raw.jwks_uri.is_some())
            + usize::from(raw.jwks_file.is_some())
            + usize::from(raw.demo);
        if sources > 1 {
            self.problem(
                origin,
                "",
                "set at most one of jwksUri, jwksFile and demo (none means OIDC discovery)",
            );
        }
        let keys = if let Some(uri) = &raw.jwks_uri {
            self.check_url(origin, "jwksUri", uri, raw.allow_insecure_http);
            KeySourceSpec::JwksUri(uri.clone())
        } else if let Some(file) = &raw.jwks_file {
            KeySourceSpec::JwksFile(self.jwks_file(origin, file))
        } else if raw.demo {
            KeySourceSpec::Demo
        } else {
            KeySourceSpec::Discovery
        };

        let preset = preset(raw.preset);
        let algorithms = match &raw.algorithms {
            None => default_algorithms(preset),
            Some(names) => self.algorithms(origin, names),
        };
        if !raw.allow_insecure_http
            && raw.issuer.contains("://")
            && let Err(message) = presets::check_issuer_url(preset, &raw.issuer)
        {
            self.problem(origin, "issuer", message);
        }
        if presets::ambiguous_issuer(&raw.issuer) && raw.jwks_file.is_none() {
            self.problem(
                origin,
                "issuer",
                format!(
                    "issuer {:?} is the in-cluster API server name that countless clusters \
                     share, so its tokens do not say which cluster minted them; pin this \
                     cluster's keys with jwksFile (or configure the cluster with a unique \
                     --service-account-issuer URL)",
                    raw.issuer
                ),
            );
        }
        let ca_file = raw
            .ca_file
            .as_deref()
            .map(|file| self.ca_file(origin, file));
        if ca_file.is_some() && (raw.jwks_file.is_some() || raw.demo) {
            self.problem(
                origin,
                "caFile",
                "caFile applies to discovery and jwksUri fetches; with jwksFile or demo \
                 nothing is fetched",
            );
        }
        let defaults = presets::defaults(preset, &raw.issuer);
        let hygiene = self.hygiene(origin, raw, preset, &defaults);

        let leeway = raw.leeway.map_or(defaults.leeway, |HumanDuration(d)| d);
        if leeway > MAX_LEEWAY {
            self.problem(
                origin,
                "leeway",
                format!(
                    "leeway {} is longer than the maximum {}",
                    humantime::format_duration(leeway),
                    humantime::format_duration(MAX_LEEWAY)
                ),
            );
        }

        (self.problems.len() == before).then(|| Issuer {
            name: raw.name.clone(),
            issuer: raw.issuer.clone(),
            preset,
            keys,
            algorithms,
            leeway,
            allow_insecure_http: raw.allow_insecure_http,
            one_time_use: raw.one_time_use,
            origin: origin.clone(),
            hygiene,
            ca_file,
        })
    }

    /// Refuses `https://a.example/` next to `https://a.example` (or the other way round): the
    /// two are different `iss` values, and declaring both almost always means one is a typo
    /// whose tokens would silently be matched to the other's policies.
    fn issuer_twin(&mut self, origin: &Origin, issuer: &str) {
        let key = issuer.trim_end_matches('/').to_string();
        match self.issuer_twins.get(&key).cloned() {
            Some((first_url, first)) => self.problem(
                origin,
                "issuer",
                format!(
                    "issuer URL {issuer:?} differs from {first_url:?} (declared at {first}) only \
                     by a trailing slash; `iss` is compared byte for byte, so declare the one \
                     form the platform puts in its tokens, once"
                ),
            ),
            None => {
                self.issuer_twins
                    .insert(key, (issuer.to_string(), origin.clone()));
            }
        }
    }

    fn hygiene(
        &mut self,
        origin: &Origin,
        raw: &raw::Issuer,
        preset: Preset,
        defaults: &presets::PresetDefaults,
    ) -> TokenHygiene {
        let max_lifetime = raw
            .max_token_lifetime
            .map_or(defaults.max_token_lifetime, |HumanDuration(d)| d);
        let max_age = raw
            .max_token_age
            .map_or(defaults.max_token_age, |HumanDuration(d)| d);
        for (path, value) in [("maxTokenLifetime", max_lifetime), ("maxTokenAge", max_age)] {
            if value < MIN_SUBJECT_TOKEN_LIMIT || value > MAX_SUBJECT_TOKEN_LIMIT {
                self.problem(
                    origin,
                    path,
                    format!(
                        "{path} {} is outside {} to {}",
                        humantime::format_duration(value),
                        humantime::format_duration(MIN_SUBJECT_TOKEN_LIMIT),
                        humantime::format_duration(MAX_SUBJECT_TOKEN_LIMIT)
                    ),
                );
            }
        }
        let required_type = match raw.required_type.as_deref() {
            None => defaults.required_type.map(str::to_string),
            Some("any") => None,
            Some(typ) if !typ.is_empty() && typ.chars().all(|c| c.is_ascii_graphic()) => {
                Some(typ.to_string())
            }
            Some(typ) => {
                self.problem(
                    origin,
                    "requiredType",
                    format!(
                        "requiredType {typ:?} is not a media type name such as \"JWT\" (write \
                         \"any\" to accept tokens with any or no typ)"
                    ),
                );
                None
            }
        };
        TokenHygiene {
            max_lifetime,
            max_age,
            required_type,
            require_iat: preset != Preset::Generic,
        }
    }

    fn ca_file(&mut self, origin: &Origin, file: &str) -> PathBuf {
        let base = origin.file.parent().unwrap_or(Path::new(""));
        let resolved = base.join(file);
        // Parsing is the HTTP client's job; here only make sure the file is there and looks
        // like PEM certificates, so a typo fails the load instead of every fetch.
        let looks_like_pem = std::fs::read(&resolved).is_ok_and(|bytes| {
            bytes
                .windows(27)
                .any(|w| w == b"-----BEGIN CERTIFICATE-----")
        });
        if !looks_like_pem {
            self.problem(
                origin,
                "caFile",
                format!(
                    "CA file {} does not exist or holds no PEM certificate (a relative caFile is \
                     resolved against the directory of the policy file naming it)",
                    resolved.display()
                ),
            );
        }
        resolved
    }

    /// An absolute https URL (http when `insecure`), with a host, no credentials, no query and
    /// no fragment.
    fn check_url(&mut self, origin: &Origin, path: &str, value: &str, insecure: bool) {
        // The URL parser forgives surrounding whitespace, but `iss` is compared byte for byte.
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            self.problem(
                origin,
                path,
                format!("{value:?} holds whitespace or control characters"),
            );
            return;
        }
        let url = match url::Url::parse(value) {
            Ok(url) => url,
            Err(e) => {
                self.problem(
                    origin,
                    path,
                    format!("{value:?} is not an absolute URL ({e})"),
                );
                return;
            }
        };
        match url.scheme() {
            "https" => {}
            "http" if insecure => {}
            "http" => self.problem(
                origin,
                path,
                format!(
                    "{value:?} uses http; use https (allowInsecureHttp: true is only for issuers \
                     on loopback in tests and local demos)"
                ),
            ),
            other => self.problem(
                origin,
                path,
                format!("{value:?} has scheme {other:?}; use https"),
            ),
        }
        if url.host_str().is_none_or(str::is_empty) {
            self.problem(origin, path, format!("{value:?} has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            self.problem(origin, path, format!("{value:?} must not hold credentials"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            self.problem(
                origin,
                path,
                format!("{value:?} must not have a query or fragment"),
            );
        }
    }

    fn jwks_file(&mut self, origin: &Origin, file: &str) -> PathBuf {
        let base = origin.file.parent().unwrap_or(Path::new(""));
        let resolved = base.join(file);
        if file.is_empty() || !resolved.is_file() {
            self.problem(
                origin,
                "jwksFile",
                format!(
                    "JWKS file {} does not exist (a relative jwksFile is resolved against the \
                     directory of the policy file naming it)",
                    resolved.display()
                ),
            );
        }
        resolved
    }

    fn algorithms(&mut self, origin: &Origin, names: &[String]) -> Vec<SigningAlgorithm> {
        if names.is_empty() {
            self.problem(
                origin,
                "algorithms",
                format!(
                    "algorithms is empty; list at least one of {} (or omit it for the preset's \
                     default)",
                    supported_algorithms()
                ),
            );
        }
        let mut algorithms = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let path = format!("algorithms[{i}]");
            let lower = name.to_ascii_lowercase();
            match SigningAlgorithm::parse(name) {
                Some(alg) if algorithms.contains(&alg) => {
                    self.problem(origin, path, format!("duplicate algorithm {name:?}"));
                }
                Some(alg) => algorithms.push(alg),
                None if lower == "none" || lower.starts_with("hs") => self.problem(
                    origin,
                    path,
                    format!(
                        "algorithm {name:?} is never allowed: `none` tokens carry no signature \
                         and HMAC (HS*) keys are shared secrets, not public keys an issuer can \
                         publish; supported: {}",
                        supported_algorithms()
                    ),
                ),
                None => self.problem(
                    origin,
                    path,
                    format!(
                        "unsupported algorithm {name:?}; supported (case-sensitive): {}",
                        supported_algorithms()
                    ),
                ),
            }
        }
        algorithms
    }

    // === Tenant ===

    fn tenant(&mut self, origin: &Origin, raw: &raw::Tenant) -> Option<Tenant> {
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

    fn application(&mut self, origin: &Origin, raw: &raw::Application) -> Option<Application> {
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
        } else if app_id != raw.name && self.index.app_names.contains(&app_id) {
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
        if !self.index.issuers.contains(&raw.issuer) {
            let hint = listing(&self.index.issuers, "Issuer");
            self.problem(
                origin,
                format!("{path}.issuer"),
                format!("unknown issuer {:?}; {hint}", raw.issuer),
            );
        }

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

        let condition = raw
            .condition
            .as_deref()
            .and_then(|src| self.expression(origin, format!("{path}.condition"), src));

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
                        "claim {claim:?} is reserved: trustbridge sets it itself (reserved: {})",
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

    // === role assignments ===

    fn assignments(
        &mut self,
        origin: &Origin,
        raws: &[raw::RoleAssignment],
    ) -> Vec<RoleAssignment> {
        let mut out: Vec<RoleAssignment> = Vec::with_capacity(raws.len());
        for (i, raw) in raws.iter().enumerate() {
            let path = format!("appRoleAssignments[{i}]");
            let Some((app, exposed)) = self.index.resources.get(&raw.resource).cloned() else {
                let hint = listing(self.index.resources.keys(), "identifierUri");
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

    fn check_tenant(&mut self, origin: &Origin, tenant: &str) {
        if !self.index.tenants.contains(tenant) {
            let hint = listing(&self.index.tenants, "Tenant");
            self.problem(
                origin,
                "tenant",
                format!("unknown tenant {tenant:?}; {hint}"),
            );
        }
    }

    // === ServicePrincipal ===

    fn service_principal(
        &mut self,
        origin: &Origin,
        raw: &raw::ServicePrincipal,
    ) -> Option<ServicePrincipal> {
        let before = self.problems.len();
        if !self.index.app_names.contains(&raw.application) {
            let hint = listing(&self.index.app_names, "Application");
            self.problem(
                origin,
                "application",
                format!("unknown application {:?}; {hint}", raw.application),
            );
        }
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

    fn managed_identity(
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
            (None, Some(src)) => self
                .expression(origin, "nameFrom".into(), src)
                .map(ManagedIdentityName::Template),
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
        if self.index.app_names.contains(name) || self.index.app_ids.contains_key(name) {
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

// === helpers ===

fn preset(raw: raw::Preset) -> Preset {
    match raw {
        raw::Preset::Generic => Preset::Generic,
        raw::Preset::Github => Preset::Github,
        raw::Preset::Gitlab => Preset::Gitlab,
        raw::Preset::Kubernetes => Preset::Kubernetes,
        raw::Preset::Gcp => Preset::Gcp,
        raw::Preset::Aws => Preset::Aws,
        raw::Preset::Azure => Preset::Azure,
    }
}

/// The algorithms an issuer of `preset` accepts when `algorithms` is omitted: what the platform
/// signs with, and nothing else.
pub fn default_algorithms(preset: Preset) -> Vec<SigningAlgorithm> {
    match preset {
        Preset::Generic => SigningAlgorithm::ALL.to_vec(),
        Preset::Github | Preset::Gitlab | Preset::Kubernetes | Preset::Gcp | Preset::Azure => {
            vec![SigningAlgorithm::RS256]
        }
        Preset::Aws => vec![SigningAlgorithm::ES384, SigningAlgorithm::RS256],
    }
}

fn supported_algorithms() -> String {
    SigningAlgorithm::ALL
        .map(SigningAlgorithm::as_str)
        .join(", ")
}

/// "declared Issuers: a, b" or "no Issuer is declared", capped at [`MAX_LISTED`] names.
fn listing<'a>(names: impl IntoIterator<Item = &'a String>, what: &str) -> String {
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
