//! The compiled policy documents: the shapes `exchange::decide` reads, gathered into a
//! [`PolicySet`](crate::policy::PolicySet) by `policy::set`.
//!
//! Values here are built only by `policy::compile` from the raw serde types, after every name
//! was resolved and every CEL expression compiled, so code that holds a `PolicySet` never
//! re-checks what loading already guaranteed (a credential's issuer exists, a role assignment
//! names a declared resource and role, ...). Nothing here does I/O.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cidr::Cidr;
use crate::fetch_settings::FetchOverrides;
use crate::jose::SigningAlgorithm;
use crate::policy::cel::Expression;
use crate::policy::glob::SubjectPattern;
use crate::policy::presets::{GENERIC_DEFAULTS, Preset};

/// Where a policy document came from: its file and its 1-based index among the file's
/// `---`-separated documents. Displayed as `policies/ci.yaml#3`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The file, as the loader was given it (relative to the working directory when it was).
    pub file: PathBuf,
    /// 1-based document index inside the file.
    pub document: usize,
}

impl Origin {
    /// `relative` resolved against the directory of this document's file: how a policy names
    /// a file beside it (`jwksFile`, `caFile`). Pure path arithmetic; nothing is read.
    pub fn resolve(&self, relative: &str) -> PathBuf {
        self.file.parent().unwrap_or(Path::new("")).join(relative)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.file.display(), self.document)
    }
}

/// Where an issuer's verification keys come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeySourceSpec {
    /// `{issuer}/.well-known/openid-configuration`, whose `issuer` must equal the configured one,
    /// then its `jwks_uri`.
    Discovery,
    /// A JWKS URL given directly.
    JwksUri(String),
    /// A JWKS document on disk (resolved relative to the policy file that names it).
    JwksFile(PathBuf),
    /// The local demo issuer: a key trustbridge generates into its data directory on first use.
    /// Meant for the README walkthrough, never for production.
    Demo,
}

/// An external identity provider whose tokens trustbridge accepts.
#[derive(Debug, Clone)]
pub struct Issuer {
    /// Operator-chosen name, referenced by credentials and used as a metrics label.
    pub name: String,
    /// The exact `iss` value tokens carry.
    pub issuer: String,
    /// Platform preset.
    pub preset: Preset,
    /// Key source.
    pub keys: KeySourceSpec,
    /// Algorithm allowlist (never empty).
    pub algorithms: Vec<SigningAlgorithm>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// Whether plain-http discovery and JWKS are allowed (loopback tests and demos only).
    pub allow_insecure_http: bool,
    /// Whether each of its tokens may be exchanged only once (by its `jti`, or its hash),
    /// across every replica sharing state.
    pub one_time_use: bool,
    /// Where it was declared.
    pub origin: Origin,
    /// Checks on subject tokens beyond signature and time validity (preset defaults applied).
    pub hygiene: TokenHygiene,
    /// An extra PEM CA bundle trusted for this issuer's discovery and JWKS (private clusters).
    pub ca_file: Option<PathBuf>,
    /// The issuer's `fetch:` block (each value in range, set values consistent with each
    /// other); merged over the global settings by `issuers`.
    pub fetch: FetchOverrides,
}

/// Input-token hygiene of one issuer: limits a token must meet even when it is validly signed
/// and unexpired. Compiled from `maxTokenLifetime`, `maxTokenAge` and `requiredType`, with the
/// preset's defaults (see `policy::presets`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHygiene {
    /// Longest accepted lifetime `exp - iat` (without `iat`: `exp - now`).
    pub max_lifetime: Duration,
    /// Oldest accepted token: `now - iat` may exceed this by the leeway at most.
    pub max_age: Duration,
    /// Header `typ` the token must carry (compared case-insensitively, `application/` prefix
    /// ignored, RFC 7515 §4.1.9); `None` accepts any or none.
    pub required_type: Option<String>,
    /// Whether `iat` must be present (set by every platform preset: they all send it).
    pub require_iat: bool,
}

impl Default for TokenHygiene {
    /// The generic preset's limits: 24 h lifetime and age, no `typ`, `iat` optional.
    fn default() -> Self {
        let d = GENERIC_DEFAULTS;
        Self {
            max_lifetime: d.max_token_lifetime,
            max_age: d.max_token_age,
            required_type: None,
            require_iat: false,
        }
    }
}

/// A tenant: an isolated namespace of identities with its own issuer URL.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// Name, used in URLs (`/{tenant}/oauth2/v2.0/token`).
    pub name: String,
    /// Deterministic tenant id (`tid` of issued tokens).
    pub id: uuid::Uuid,
    /// Where it was declared.
    pub origin: Origin,
}

/// A trust policy: which external tokens may act as the identity that holds it.
#[derive(Debug, Clone)]
pub struct FederatedCredential {
    /// Name, unique within its identity.
    pub name: String,
    /// Name of the trusted [`Issuer`].
    pub issuer: String,
    /// Accepted audiences; the token's `aud` must intersect them. Never empty.
    pub audiences: Vec<String>,
    /// How the token's `sub` must look.
    pub subject: SubjectRule,
    /// Extra CEL condition rules over `claims` and `request`, all of which must hold; an
    /// evaluation error denies. Empty when the credential has no condition.
    pub condition: Vec<ConditionRule>,
    /// Client networks the exchange must come from; empty allows any address.
    pub allowed_networks: Vec<Cidr>,
    /// Whether exchanges must carry a valid DPoP proof (RFC 9449).
    pub require_proof_of_possession: bool,
    /// Claims added to issued tokens: claim name → CEL expression over `claims`.
    pub claim_mappings: Vec<(String, Expression)>,
    /// Upper bound on the lifetime of tokens issued through this credential.
    pub max_token_lifetime: Option<Duration>,
    /// Whether a token may be exchanged through this credential only once.
    pub one_time_use: bool,
    /// Where it was declared, and its path inside the document (`federatedCredentials[0]`).
    pub origin: Origin,
    /// Field path of the credential within its document.
    pub path: String,
    /// Whether a match grants ([`CredentialMode::Enforce`]) or is only logged.
    pub mode: CredentialMode,
}

impl FederatedCredential {
    /// The condition as one CEL text (rules joined by `&&`), for display; `None` without one.
    pub fn condition_source(&self) -> Option<String> {
        match self.condition.as_slice() {
            [] => None,
            [one] => Some(one.expression.source().to_string()),
            rules => Some(
                rules
                    .iter()
                    .map(|r| format!("({})", r.expression.source()))
                    .collect::<Vec<_>>()
                    .join(" && "),
            ),
        }
    }
}

/// One rule of a credential's condition.
#[derive(Debug, Clone)]
pub struct ConditionRule {
    /// The compiled expression (it may read `claims` and `request`).
    pub expression: Expression,
    /// The operator's message when it is false: audit trail and `policy explain` only.
    pub message: Option<String>,
}

/// How a federated credential takes part in decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CredentialMode {
    /// Matches grant tokens (the default).
    #[default]
    Enforce,
    /// Evaluated on every exchange it could apply to and its verdict logged as an audit event,
    /// but it never grants: for rolling out a new or tightened policy safely.
    Audit,
}

impl CredentialMode {
    /// The name used in policy files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Audit => "audit",
        }
    }
}

/// The subject part of a credential.
#[derive(Debug, Clone)]
pub enum SubjectRule {
    /// `subject`: exact, case-sensitive match.
    Exact(String),
    /// `subjectPattern`: segment-aware glob.
    Pattern(SubjectPattern),
    /// Neither is set; the credential relies on its `condition`.
    Any,
}

/// Roles held on one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignment {
    /// The resource's identifier URI (as declared in its Application's `identifierUris`).
    pub resource: String,
    /// Role values, each exposed by the resource.
    pub roles: Vec<String>,
}

/// The global definition of a workload or API.
#[derive(Debug, Clone)]
pub struct Application {
    /// Unique name.
    pub name: String,
    /// Client id (defaults to `name`).
    pub app_id: String,
    /// Identifier URIs under which it is a resource (`api://payments`).
    pub identifier_uris: Vec<String>,
    /// Role values it exposes as a resource.
    pub app_roles: Vec<String>,
    /// Trust policies that let external tokens act as it.
    pub federated_credentials: Vec<FederatedCredential>,
    /// Where it was declared.
    pub origin: Origin,
}

/// An application's instance in one tenant.
#[derive(Debug, Clone)]
pub struct ServicePrincipal {
    /// Application name.
    pub application: String,
    /// Tenant name.
    pub tenant: String,
    /// Whether it may obtain tokens.
    pub enabled: bool,
    /// Deterministic object id.
    pub object_id: uuid::Uuid,
    /// Roles it holds.
    pub role_assignments: Vec<RoleAssignment>,
    /// Upper bound on the lifetime of tokens issued to it.
    pub token_lifetime: Option<Duration>,
    /// Where it was declared.
    pub origin: Origin,
}

/// How a managed identity is named.
#[derive(Debug, Clone)]
pub enum ManagedIdentityName {
    /// User-assigned: declared with a fixed `name`.
    Fixed(String),
    /// Workload-assigned: the name is computed from the token by a CEL expression (`nameFrom`),
    /// one identity per distinct value.
    Template(Expression),
}

/// An identity whose lifecycle trustbridge manages.
#[derive(Debug, Clone)]
pub struct ManagedIdentity {
    /// Tenant name.
    pub tenant: String,
    /// Fixed name or template.
    pub name: ManagedIdentityName,
    /// Whether it may obtain tokens.
    pub enabled: bool,
    /// Trust policies.
    pub federated_credentials: Vec<FederatedCredential>,
    /// Roles it holds.
    pub role_assignments: Vec<RoleAssignment>,
    /// Upper bound on the lifetime of tokens issued to it.
    pub token_lifetime: Option<Duration>,
    /// Where it was declared.
    pub origin: Origin,
}

impl ManagedIdentity {
    /// A human label: the fixed name, or `nameFrom@<origin>` for templates.
    pub fn label(&self) -> String {
        match &self.name {
            ManagedIdentityName::Fixed(name) => name.clone(),
            ManagedIdentityName::Template(_) => format!("nameFrom@{}", self.origin),
        }
    }

    /// The declaration fingerprint of a workload-assigned identity (see
    /// [`template_fingerprint`]); `None` for a user-assigned one, whose name is unique in its
    /// tenant.
    pub fn fingerprint(&self) -> Option<String> {
        match &self.name {
            ManagedIdentityName::Fixed(_) => None,
            ManagedIdentityName::Template(expr) => Some(template_fingerprint(
                expr.source(),
                self.federated_credentials.iter().map(|c| c.issuer.as_str()),
            )),
        }
    }

    /// Object id and client id of the identity this declaration gives `name` in `tenant`.
    ///
    /// A user-assigned identity's ids depend on (tenant, name) only: the loader refuses two of
    /// them with one name. A workload-assigned identity's ids also depend on its declaration
    /// fingerprint, so two templates that compute the same name (a prod and a dev cluster
    /// trusting different issuers) never share an `oid`, a `client_id` or a rate-limit bucket;
    /// the loader refuses two templates with one fingerprint in a tenant. Both ids are
    /// deterministic, so every replica and every restart agrees on them.
    pub fn ids(&self, tenant: &str, name: &str) -> (uuid::Uuid, uuid::Uuid) {
        match self.fingerprint() {
            None => (
                object_id(tenant, "managedIdentity", name),
                object_id(tenant, "managedIdentityClient", name),
            ),
            Some(fp) => (
                template_object_id(tenant, "workloadIdentity", &fp, name),
                template_object_id(tenant, "workloadIdentityClient", &fp, name),
            ),
        }
    }
}

/// What tells two workload-assigned declarations apart when they may compute the same name:
/// the `nameFrom` source text and the sorted, deduplicated issuer names of the credentials.
/// Each part is length-prefixed, so no two different inputs share a fingerprint.
pub fn template_fingerprint<'a>(
    name_from: &str,
    issuers: impl IntoIterator<Item = &'a str>,
) -> String {
    let mut issuers: Vec<&str> = issuers.into_iter().collect();
    issuers.sort_unstable();
    issuers.dedup();
    let mut out = format!("{}:{name_from}", name_from.len());
    for issuer in issuers {
        out.push_str(&format!("|{}:{issuer}", issuer.len()));
    }
    out
}

/// Namespace for deterministic object ids (UUIDv5), fixed forever: changing it would change
/// every identity's `oid`.
pub const OBJECT_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6c1f_3c2e_9d4b_4f7a_8e21_5b0d_a4c9_7e13);

/// Deterministic object id of an object of `kind` named `name` in `tenant`.
pub fn object_id(tenant: &str, kind: &str, name: &str) -> uuid::Uuid {
    // Length-prefixing keeps ("a/b", "c") and ("a", "b/c") apart.
    let key = format!(
        "{}:{tenant}/{}:{kind}/{}:{name}",
        tenant.len(),
        kind.len(),
        name.len()
    );
    uuid::Uuid::new_v5(&OBJECT_ID_NAMESPACE, key.as_bytes())
}

/// Deterministic object id of the identity named `name` by the workload-assigned declaration
/// with fingerprint `fingerprint` (see [`template_fingerprint`]) in `tenant`.
pub fn template_object_id(tenant: &str, kind: &str, fingerprint: &str, name: &str) -> uuid::Uuid {
    // The kind stays length-prefixed inside `object_id`, so this never meets a plain kind.
    object_id(
        tenant,
        &format!("{kind}@{}:{fingerprint}", fingerprint.len()),
        name,
    )
}

/// Deterministic tenant id.
pub fn tenant_id(tenant: &str) -> uuid::Uuid {
    object_id(tenant, "tenant", tenant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids_are_stable_and_distinct() {
        let a = object_id("contoso", "managedIdentity", "k8s/team-a/builder");
        assert_eq!(
            a,
            object_id("contoso", "managedIdentity", "k8s/team-a/builder")
        );
        assert_ne!(
            a,
            object_id("contoso", "managedIdentity", "k8s/team-b/builder")
        );
        assert_ne!(
            a,
            object_id("fabrikam", "managedIdentity", "k8s/team-a/builder")
        );
        assert_ne!(object_id("a/b", "x", "c"), object_id("a", "x", "b/c"));
    }

    #[test]
    fn fingerprints_ignore_credential_order_and_repeats() {
        assert_eq!(
            template_fingerprint("claims.sub", ["prod", "dev", "prod"]),
            template_fingerprint("claims.sub", ["dev", "prod"])
        );
        assert_ne!(
            template_fingerprint("claims.sub", ["prod"]),
            template_fingerprint("claims.sub", ["dev"])
        );
        assert_ne!(
            template_fingerprint("a|1:b", []),
            template_fingerprint("a", ["b"]),
            "length prefixes keep the parts apart"
        );
    }

    proptest::proptest! {
        /// Two different workload-assigned declarations (nameFrom text, issuer set) never give
        /// one name the same object id, and no template id is a user-assigned one.
        #[test]
        fn distinct_declarations_never_share_ids(
            tenant in "[a-z]{1,8}",
            name in "[a-z/|:@0-9]{1,16}",
            from_a in "[a-z.|:@0-9]{1,16}",
            from_b in "[a-z.|:@0-9]{1,16}",
            issuers_a in proptest::collection::btree_set("[a-z|:0-9]{1,6}", 1..4),
            issuers_b in proptest::collection::btree_set("[a-z|:0-9]{1,6}", 1..4),
        ) {
            let fp_a = template_fingerprint(&from_a, issuers_a.iter().map(String::as_str));
            let fp_b = template_fingerprint(&from_b, issuers_b.iter().map(String::as_str));
            let same_declaration = from_a == from_b && issuers_a == issuers_b;
            proptest::prop_assert_eq!(fp_a == fp_b, same_declaration);
            for kind in ["workloadIdentity", "workloadIdentityClient"] {
                let a = template_object_id(&tenant, kind, &fp_a, &name);
                let b = template_object_id(&tenant, kind, &fp_b, &name);
                proptest::prop_assert_eq!(a == b, same_declaration);
                proptest::prop_assert_ne!(a, object_id(&tenant, "managedIdentity", &name));
                proptest::prop_assert_ne!(a, object_id(&tenant, "managedIdentityClient", &name));
            }
        }
    }
}
