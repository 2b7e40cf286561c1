//! From raw documents to a [`PolicySet`]: names resolved, CEL and globs compiled, URLs, limits
//! and exactly-one-of pairs checked.
//!
//! Every problem is collected, never just the first, each with the document it came from and
//! the field path inside it. The work is split by job: [`references`] gathers what every
//! document declares (first, so a reference to a name declared by a broken document does not
//! add a misleading "unknown name" problem) and resolves names between documents; [`issuers`]
//! compiles Issuers; [`identities`] compiles tenants, applications, service principals, managed
//! identities and their federated credentials. This file only orchestrates.
//!
//! Pure: no I/O. The files Issuers name were probed by `policy::load` beforehand and arrive
//! as [`ReferencedFiles`].

mod identities;
mod issuers;
mod references;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use crate::policy::model::Origin;
use crate::policy::raw::Document;
use crate::policy::set::{Documents, PolicySet};
use crate::policy::{LoadErrors, Problem};

use self::references::Declared;

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
    /// What `policy::load` found on disk for the files Issuers name.
    pub files: ReferencedFiles,
    /// See [`PolicySet::content_hash`].
    pub content_hash: String,
}

/// What `policy::load` found on disk for the files Issuers name (each path resolved with
/// [`Origin::resolve`]), so that compiling does no I/O.
#[derive(Debug, Clone, Default)]
pub struct ReferencedFiles {
    /// `jwksFile`s that exist as files.
    pub jwks_files: HashSet<PathBuf>,
    /// `caFile`s that could be read, with their contents.
    pub ca_files: HashMap<PathBuf, Vec<u8>>,
}

impl TryFrom<RawPolicySet> for PolicySet {
    type Error = LoadErrors;

    /// Compiles the set; every problem found is in the error.
    fn try_from(raw: RawPolicySet) -> Result<Self, LoadErrors> {
        let RawPolicySet {
            documents,
            broken,
            files,
            content_hash,
        } = raw;
        let mut compiler = Compiler::new(Declared::gather(&documents, &broken), files);
        let mut compiled = Documents::default();
        for doc in &documents {
            compiler.document(&doc.origin, &doc.document, &mut compiled);
        }
        if compiler.problems.is_empty() {
            // The credential index is built here, at load, never by an exchange.
            Ok(PolicySet::assemble(compiled, content_hash))
        } else {
            Err(LoadErrors(compiler.problems))
        }
    }
}

/// The compiler's state: what is declared, what was found on disk, the problems so far, and
/// the first origin of each unique key (to say where a duplicate was first declared).
struct Compiler {
    declared: Declared,
    files: ReferencedFiles,
    problems: Vec<Problem>,
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
    /// (tenant, declaration fingerprint) of workload-assigned identities.
    identity_templates: HashMap<(String, String), Origin>,
}

impl Compiler {
    fn new(declared: Declared, files: ReferencedFiles) -> Self {
        Self {
            declared,
            files,
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
            identity_templates: HashMap::new(),
        }
    }

    fn problem(&mut self, origin: &Origin, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            location: origin.to_string(),
            path: path.into(),
            message: message.into(),
            position: None,
        });
    }

    /// Compiles one document into `compiled`, when it has no problem.
    fn document(&mut self, origin: &Origin, document: &Document, compiled: &mut Documents) {
        match document {
            Document::Issuer(raw) => {
                if let Some(issuer) = self.issuer(origin, raw) {
                    compiled.issuers.push(issuer);
                }
            }
            Document::Tenant(raw) => {
                if let Some(tenant) = self.tenant(origin, raw) {
                    compiled.tenants.push(tenant);
                }
            }
            Document::Application(raw) => {
                if let Some(app) = self.application(origin, raw) {
                    compiled.applications.push(app);
                }
            }
            Document::ServicePrincipal(raw) => {
                if let Some(sp) = self.service_principal(origin, raw) {
                    compiled.service_principals.push(sp);
                }
            }
            Document::ManagedIdentity(raw) => {
                if let Some(mi) = self.managed_identity(origin, raw) {
                    compiled.managed_identities.push(mi);
                }
            }
        }
    }
}
