//! The policy file format as written: serde types, one per document `kind`.
//!
//! These types only describe shape (field names, types, defaults). Every rule that relates
//! fields or documents (names resolve, exactly one of two fields, URL schemes, limits) lives in
//! `compile`, which turns these into the model. Unknown fields are refused so a misspelt key
//! (`subjectPatern`) is a load problem instead of a silently broader policy.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::policy::presets::Preset;

/// The `kind` values a document may have.
pub const KINDS: [&str; 5] = [
    "Issuer",
    "Tenant",
    "Application",
    "ServicePrincipal",
    "ManagedIdentity",
];

/// One policy document, by its `kind`. The loader dispatches on `kind` itself (to report an
/// unknown kind by name); the schema derive describes that same dispatch for editors.
#[derive(Debug, Clone, JsonSchema)]
#[serde(tag = "kind")]
#[schemars(title = "trustbridge policy document")]
pub enum Document {
    /// `kind: Issuer`.
    Issuer(Issuer),
    /// `kind: Tenant`.
    Tenant(Tenant),
    /// `kind: Application`.
    Application(Application),
    /// `kind: ServicePrincipal`.
    ServicePrincipal(ServicePrincipal),
    /// `kind: ManagedIdentity`.
    ManagedIdentity(ManagedIdentity),
}

/// A duration written the humantime way (`60s`, `15m`, `1h 30m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl JsonSchema for HumanDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration written the humantime way: \"60s\", \"15m\", \"1h 30m\".",
            "pattern": "^\\s*[0-9]+\\s*[A-Za-z]+(\\s*[0-9]+\\s*[A-Za-z]+)*\\s*$",
            "examples": ["60s", "15m", "1h"]
        })
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"60s\", \"15m\" or \"1h\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                humantime::parse_duration(v)
                    .map(HumanDuration)
                    .map_err(|e| {
                        E::custom(format!(
                            "invalid duration {v:?}: {e} (write e.g. \"60s\", \"15m\", \"1h\")"
                        ))
                    })
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// `kind: Issuer`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Issuer {
    /// Name credentials refer to.
    pub name: String,
    /// Exact `iss` of its tokens.
    pub issuer: String,
    /// Platform preset.
    #[serde(default)]
    pub preset: Preset,
    /// JWKS URL instead of discovery.
    pub jwks_uri: Option<String>,
    /// JWKS file instead of discovery, relative to the policy file.
    pub jwks_file: Option<String>,
    /// The local demo issuer whose keys trustbridge generates.
    #[serde(default)]
    pub demo: bool,
    /// Algorithm allowlist (JOSE names).
    pub algorithms: Option<Vec<String>>,
    /// Clock skew tolerated.
    pub leeway: Option<HumanDuration>,
    /// Allow plain http (loopback tests and demos only).
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// Longest accepted subject-token lifetime (`exp - iat`).
    pub max_token_lifetime: Option<HumanDuration>,
    /// Oldest accepted subject token (`now - iat`).
    pub max_token_age: Option<HumanDuration>,
    /// Required header `typ`; `any` turns a preset's requirement off.
    pub required_type: Option<String>,
    /// Extra PEM CA bundle for discovery/JWKS, relative to the policy file.
    pub ca_file: Option<String>,
    /// Every token of this issuer is accepted once (replay protection).
    #[serde(default)]
    pub one_time_use: bool,
    /// This issuer's own fetch limits, over the global `--issuer-*` settings.
    pub fetch: Option<Fetch>,
}

/// An Issuer's `fetch:` block: each field set replaces the global `--issuer-*` setting of the
/// same name for this issuer (ranges: docs/presets.md, "Fetch settings").
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Fetch {
    /// Total time one discovery or JWKS fetch may take (`issuer-timeout`).
    pub timeout: Option<HumanDuration>,
    /// Largest discovery document or JWKS accepted (`issuer-max-document-size`).
    pub max_document_size: Option<ByteCount>,
    /// Least time between two refreshes for unknown `kid`s (`issuer-refresh-cooldown`).
    pub refresh_cooldown: Option<HumanDuration>,
    /// Freshness of keys served without Cache-Control max-age (`issuer-default-ttl`).
    pub default_ttl: Option<HumanDuration>,
    /// Lower bound on Cache-Control max-age (`issuer-min-ttl`).
    pub min_ttl: Option<HumanDuration>,
    /// Upper bound on Cache-Control max-age (`issuer-max-ttl`).
    pub max_ttl: Option<HumanDuration>,
    /// How long stale keys serve while the issuer is unreachable (`issuer-max-stale`).
    pub max_stale: Option<HumanDuration>,
}

/// A size in bytes: a number, or a string with a unit (`"256KiB"`, `"1MiB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteCount(pub u64);

impl JsonSchema for ByteCount {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ByteCount".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A size: a number of bytes, or a number with a unit (\"256KiB\", \"1MiB\").",
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*[A-Za-z]*\\s*$"}
            ],
            "examples": [262144, "256KiB"]
        })
    }
}

impl<'de> Deserialize<'de> for ByteCount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteCount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as 262144 or \"256KiB\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteCount, E> {
                Ok(ByteCount(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteCount, E> {
                u64::try_from(v)
                    .map(ByteCount)
                    .map_err(|_| E::custom(format!("invalid size {v}: sizes are not negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteCount, E> {
                crate::fetch_settings::parse_bytes(v)
                    .map(ByteCount)
                    .map_err(E::custom)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// `kind: Tenant`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Tenant {
    /// Name (a URL path segment).
    pub name: String,
}

/// One entry of `appRoles`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AppRole {
    /// The role value that appears in `roles`.
    pub value: String,
    /// Free text.
    pub description: Option<String>,
    /// Free text.
    pub display_name: Option<String>,
}

/// `kind: Application`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Application {
    /// Unique name.
    pub name: String,
    /// Client id; defaults to `name`.
    pub app_id: Option<String>,
    /// Identifier URIs under which it is a resource.
    #[serde(default)]
    pub identifier_uris: Vec<String>,
    /// Roles it exposes.
    #[serde(default)]
    pub app_roles: Vec<AppRole>,
    /// Trust policies.
    #[serde(default)]
    pub federated_credentials: Vec<FederatedCredential>,
}

/// One entry of `federatedCredentials`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FederatedCredential {
    /// Name, unique within its identity.
    pub name: String,
    /// Name of a declared Issuer.
    pub issuer: String,
    /// Accepted audiences.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Exact subject.
    pub subject: Option<String>,
    /// Subject glob.
    pub subject_pattern: Option<String>,
    /// CEL condition: one expression, or a list of rules with messages.
    pub condition: Option<Condition>,
    /// Client networks (CIDR) the exchange must come from; empty allows any.
    #[serde(default)]
    pub allowed_networks: Vec<String>,
    /// Exchanges must carry a valid DPoP proof (RFC 9449).
    #[serde(default)]
    pub require_proof_of_possession: bool,
    /// Claim name → CEL expression.
    #[serde(default)]
    pub claim_mappings: BTreeMap<String, String>,
    /// Upper bound on issued token lifetime.
    pub max_token_lifetime: Option<HumanDuration>,
    /// Free text.
    pub description: Option<String>,
    /// `enforce` (default) or `audit`: evaluated and logged, never grants.
    #[serde(default)]
    pub mode: CredentialMode,
    /// A token exchanged through this credential is accepted once (replay protection).
    #[serde(default)]
    pub one_time_use: bool,
}

/// `condition` of a federated credential: a plain expression, or a list of rules (like
/// Kubernetes `claimValidationRules`) that must all hold.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "a CEL expression, or a list of {expression, message} rules"
)]
pub enum Condition {
    /// `condition: claims.x == "y"`.
    Expression(String),
    /// `condition: [{expression: ..., message: ...}]`.
    Rules(Vec<ConditionRule>),
}

/// One rule of a `condition` list.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConditionRule {
    /// CEL expression that must be true.
    pub expression: String,
    /// What the audit trail says when it is not (never sent to the caller).
    pub message: Option<String>,
}

/// `mode` of a federated credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CredentialMode {
    /// `enforce`.
    #[default]
    Enforce,
    /// `audit`.
    Audit,
}

/// One entry of `appRoleAssignments`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RoleAssignment {
    /// Identifier URI of the resource.
    pub resource: String,
    /// Role values.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// `kind: ServicePrincipal`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServicePrincipal {
    /// Application name.
    pub application: String,
    /// Tenant name.
    pub tenant: String,
    /// Whether it may obtain tokens.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Roles it holds.
    #[serde(default)]
    pub app_role_assignments: Vec<RoleAssignment>,
    /// Upper bound on issued token lifetime.
    pub token_lifetime: Option<HumanDuration>,
}

/// `kind: ManagedIdentity`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ManagedIdentity {
    /// Tenant name.
    pub tenant: String,
    /// Fixed name (user-assigned).
    pub name: Option<String>,
    /// CEL name template (workload-assigned).
    pub name_from: Option<String>,
    /// Whether it may obtain tokens.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Trust policies.
    #[serde(default)]
    pub federated_credentials: Vec<FederatedCredential>,
    /// Roles it holds.
    #[serde(default)]
    pub app_role_assignments: Vec<RoleAssignment>,
    /// Upper bound on issued token lifetime.
    pub token_lifetime: Option<HumanDuration>,
    /// Free text.
    pub description: Option<String>,
}

fn yes() -> bool {
    true
}
