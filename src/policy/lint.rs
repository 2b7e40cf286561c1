//! Lints of `policy check`: policies that load but are probably wrong, each reported with its
//! location, field path and a fix.
//!
//! Loading already refuses what cannot work (unknown names, a role assignment to a role the
//! resource does not expose, CEL that does not compile); these lints flag what works but
//! trusts more than its author likely meant. They are pure functions over a compiled
//! [`PolicySet`]: no I/O, so `policy check` and tests run them the same way.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use crate::policy::PolicySet;
use crate::policy::glob::SubjectPattern;
use crate::policy::load::source_map::Position;
use crate::policy::model::{
    CredentialMode, FederatedCredential, Issuer, ManagedIdentityName, SubjectRule,
};
use crate::policy::presets::Preset;

/// The kinds of warning, each with a stable code for CI filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lint {
    /// A pattern or condition on a public multi-tenant issuer (GitHub, GitLab) that does not
    /// pin the owner's immutable id: a renamed or deleted owner's name can be re-registered.
    UnpinnedOwner,
    /// A subject pattern whose wildcard covers the owner (`repo:*/...`, `**`, a leading `*`).
    AnyOwner,
    /// An audience that is a platform default shared with other services.
    SharedAudience,
    /// Two credentials of different identities that can match the same token.
    OverlappingCredentials,
    /// An application with federated credentials but no service principal in any tenant.
    UnassignedApplication,
    /// An identity with federated credentials but no role on any resource.
    NoRoleAssignments,
    /// A resource application on which no identity holds a role.
    UnusedResource,
    /// A `repo:` subject pattern on GitHub that cannot match a ref or environment subject
    /// (`repo:contoso/*:*`: `*` never crosses `:`, so it matches `pull_request` subjects only).
    UnmatchableSubject,
}

impl Lint {
    /// The stable code (`unpinned-owner`, ...).
    pub fn code(self) -> &'static str {
        match self {
            Self::UnpinnedOwner => "unpinned-owner",
            Self::AnyOwner => "any-owner",
            Self::SharedAudience => "shared-audience",
            Self::OverlappingCredentials => "overlapping-credentials",
            Self::UnassignedApplication => "unassigned-application",
            Self::NoRoleAssignments => "no-role-assignments",
            Self::UnusedResource => "unused-resource",
            Self::UnmatchableSubject => "unmatchable-subject",
        }
    }
}

/// One lint finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Which lint.
    pub lint: Lint,
    /// `policies/ci.yaml#3`.
    pub location: String,
    /// Field path inside the document, possibly empty.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
    /// `file:line:column` of the field (or document) in the text the set was loaded from;
    /// shown instead of `location` when known.
    pub position: Option<Position>,
}

impl Warning {
    /// Where the warning is, as shown: `file:line:column` when known, else `file#N`.
    pub fn shown_location(&self) -> String {
        match &self.position {
            Some(position) => position.to_string(),
            None => self.location.clone(),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            String::new()
        } else {
            format!(" {}", self.path)
        };
        write!(
            f,
            "{}{path}: warning[{}]: {}\n    fix: {}",
            self.shown_location(),
            self.lint.code(),
            self.message,
            self.fix
        )
    }
}

/// The issuer URL of GitHub Actions (github.com), shared by every GitHub organisation.
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
/// The issuer URL of GitLab.com CI, shared by every GitLab namespace.
pub const GITLAB_ISSUER: &str = "https://gitlab.com";

/// Every warning for `set`, in document order, each placed at `file:line:column` in the text
/// the set was loaded from.
pub fn lint(set: &PolicySet) -> Vec<Warning> {
    let credentials = credentials(set);
    let mut out = Vec::new();
    for c in &credentials {
        let Some(issuer) = set.issuer(&c.credential.issuer) else {
            continue;
        };
        unpinned_owner(c.credential, issuer, &mut out);
        any_owner(c.credential, &mut out);
        github_subject_grammar(c.credential, issuer, &mut out);
        shared_audience(c.credential, &mut out);
    }
    overlapping(&credentials, &mut out);
    unassigned(set, &mut out);
    out.sort_by(|a, b| {
        order_key(&a.location)
            .cmp(&order_key(&b.location))
            .then(a.path.cmp(&b.path))
            .then(a.lint.cmp(&b.lint))
    });
    for w in &mut out {
        w.position = set.sources().locate(&w.location, &w.path);
    }
    out
}

/// Sorts `file#10` after `file#9`.
fn order_key(location: &str) -> (String, usize) {
    match location.rsplit_once('#') {
        Some((file, doc)) => (file.to_string(), doc.parse().unwrap_or(0)),
        None => (location.to_string(), 0),
    }
}

/// A credential with the identity holding it and the tenants where that identity exists.
struct Held<'a> {
    credential: &'a FederatedCredential,
    /// `application deploy-bot`, `managed identity nightly-job`, ...
    identity: String,
    tenants: BTreeSet<&'a str>,
}

fn credentials(set: &PolicySet) -> Vec<Held<'_>> {
    let mut out = Vec::new();
    for app in set.applications() {
        let tenants: BTreeSet<&str> = set
            .service_principals()
            .filter(|sp| sp.application == app.name)
            .map(|sp| sp.tenant.as_str())
            .collect();
        for credential in &app.federated_credentials {
            out.push(Held {
                credential,
                identity: format!("application '{}'", app.name),
                tenants: tenants.clone(),
            });
        }
    }
    for mi in set.managed_identities() {
        let identity = match &mi.name {
            ManagedIdentityName::Fixed(name) => format!("managed identity '{name}'"),
            ManagedIdentityName::Template(_) => {
                format!("workload identity template at {}", mi.origin)
            }
        };
        for credential in &mi.federated_credentials {
            out.push(Held {
                credential,
                identity: identity.clone(),
                tenants: BTreeSet::from([mi.tenant.as_str()]),
            });
        }
    }
    out.sort_by_key(|h| {
        (
            order_key(&h.credential.origin.to_string()),
            h.credential.path.clone(),
        )
    });
    out
}

fn warn(
    out: &mut Vec<Warning>,
    lint: Lint,
    credential: &FederatedCredential,
    field: &str,
    message: String,
    fix: String,
) {
    let path = if field.is_empty() {
        credential.path.clone()
    } else {
        format!("{}.{field}", credential.path)
    };
    out.push(Warning {
        lint,
        location: credential.origin.to_string(),
        path,
        message,
        fix,
        position: None,
    });
}

// === public multi-tenant issuers ===

/// The platform of a public multi-tenant issuer, by preset or by its well-known URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Platform {
    Github,
    Gitlab,
}

fn platform(issuer: &Issuer) -> Option<Platform> {
    let url = issuer.issuer.trim_end_matches('/');
    if issuer.preset == Preset::Github || url == GITHUB_ISSUER {
        Some(Platform::Github)
    } else if issuer.preset == Preset::Gitlab || url == GITLAB_ISSUER {
        Some(Platform::Gitlab)
    } else {
        None
    }
}

impl Platform {
    fn name(self) -> &'static str {
        match self {
            Self::Github => "GitHub",
            Self::Gitlab => "GitLab",
        }
    }

    /// Claims holding the owner's immutable numeric id.
    fn owner_id_claims(self) -> &'static [&'static str] {
        match self {
            Self::Github => &["repository_owner_id"],
            Self::Gitlab => &["namespace_id", "project_id"],
        }
    }

    fn example(self) -> &'static str {
        match self {
            Self::Github => "condition: claims.repository_owner_id == \"1234567\"",
            Self::Gitlab => "condition: claims.namespace_id == \"1234567\"",
        }
    }
}

fn unpinned_owner(credential: &FederatedCredential, issuer: &Issuer, out: &mut Vec<Warning>) {
    let Some(platform) = platform(issuer) else {
        return;
    };
    let (field, what) = match &credential.subject {
        SubjectRule::Pattern(p) => ("subjectPattern", format!("pattern '{}'", p.as_str())),
        SubjectRule::Any => ("condition", "a condition alone".to_string()),
        // An exact subject names one repository; it is not what this lint is about.
        SubjectRule::Exact(_) => return,
    };
    let claims = platform.owner_id_claims();
    let pinned = credential
        .condition
        .iter()
        .any(|rule| rule.expression.pins_claim(claims))
        || matches!(&credential.subject, SubjectRule::Pattern(p) if pattern_pins(p.as_str(), claims));
    if pinned {
        return;
    }
    warn(
        out,
        Lint::UnpinnedOwner,
        credential,
        field,
        format!(
            "credential '{}' trusts {what} on {} issuer '{}', shared by every {} account, \
             without pinning the owner's immutable id ({}): if the owner is renamed or deleted, \
             whoever registers the old name matches",
            credential.name,
            platform.name(),
            issuer.name,
            platform.name(),
            platform.owner_id_claims().join(" or ")
        ),
        format!("add `{}` with the owner's id", platform.example()),
    );
}

/// Whether a customized subject pattern (`include_claim_keys`) pins one of `claims`: it holds
/// `<claim>:<value>` with a value free of wildcards, not merely the claim's name.
fn pattern_pins(pattern: &str, claims: &[&str]) -> bool {
    let fields: Vec<&str> = pattern.split(':').collect();
    fields
        .windows(2)
        .any(|pair| claims.contains(&pair[0]) && !pair[1].is_empty() && !pair[1].contains('*'))
}

/// The default (and immutable) GitHub subject grammar: `repo:<owner>/<repo>:` then one of
/// these contexts. `**` stands for any run without `:`, as in the globs.
const GITHUB_CONTEXTS: [&str; 3] = [
    "repo:**:ref:refs/**",
    "repo:**:environment:**",
    "repo:**:pull_request",
];

/// Flags a `repo:` pattern on GitHub that no ref or environment subject can match, as an
/// AWS-style `repo:contoso/*:*` (where `*` spans `:`) does: here it only ever matches
/// `pull_request` subjects, or nothing at all.
fn github_subject_grammar(
    credential: &FederatedCredential,
    issuer: &Issuer,
    out: &mut Vec<Warning>,
) {
    if platform(issuer) != Some(Platform::Github) {
        return;
    }
    let SubjectRule::Pattern(pattern) = &credential.subject else {
        return;
    };
    // Customized subjects (`include_claim_keys`) have their own grammar.
    if !pattern.as_str().starts_with("repo:") {
        return;
    }
    let matches: Vec<bool> = GITHUB_CONTEXTS
        .iter()
        .map(|ctx| SubjectPattern::parse(ctx).is_ok_and(|ctx| ctx.intersects(pattern)))
        .collect();
    let (refs, environments, pull_requests) = (matches[0], matches[1], matches[2]);
    if refs || environments || (pull_requests && pattern.as_str().ends_with(":pull_request")) {
        return;
    }
    let what = if pull_requests {
        "matches only `pull_request` subjects"
    } else {
        "matches no GitHub subject"
    };
    warn(
        out,
        Lint::UnmatchableSubject,
        credential,
        "subjectPattern",
        format!(
            "pattern '{}' of credential '{}' {what}: GitHub subjects read \
             `repo:<owner>/<repo>:ref:refs/heads/<branch>` (or `:environment:<name>`, \
             `:pull_request`), and `*` never crosses `:` or `/`",
            pattern.as_str(),
            credential.name
        ),
        "write each context out (`repo:contoso/*:ref:refs/heads/main`, \
         `repo:contoso/*:environment:prod`) rather than an AWS-style trailing `:*`"
            .to_string(),
    );
}

fn any_owner(credential: &FederatedCredential, out: &mut Vec<Warning>) {
    let SubjectRule::Pattern(pattern) = &credential.subject else {
        return;
    };
    if !pattern.wildcard_owner() {
        return;
    }
    warn(
        out,
        Lint::AnyOwner,
        credential,
        "subjectPattern",
        format!(
            "pattern '{}' of credential '{}' has a wildcard in its first segment (a leading \
             '*', or '*'/'**' before the first '/'), so subjects of any owner match",
            pattern.as_str(),
            credential.name
        ),
        "spell the owner out (`repo:contoso/*:ref:refs/heads/main`) and keep wildcards to the \
         parts after it"
            .to_string(),
    );
}

// === audiences ===

/// Which platform default `audience` is, when it is one shared with other services.
pub fn shared_audience_owner(audience: &str) -> Option<&'static str> {
    let a = audience.trim_end_matches('/');
    if a == "https://github.com" || a.starts_with("https://github.com/") {
        Some(
            "GitHub Actions' default audience (the owner's URL), which every service the job calls without an explicit audience also receives",
        )
    } else if a == GITLAB_ISSUER {
        Some("GitLab's own URL, the audience many GitLab integrations use")
    } else if a == "sts.amazonaws.com" {
        Some("the audience AWS STS expects (configure-aws-credentials' default)")
    } else if a == "api://AzureADTokenExchange" {
        Some("the audience Microsoft Entra workload identity federation expects")
    } else if a.starts_with("//iam.googleapis.com/") || a.starts_with("https://iam.googleapis.com/")
    {
        Some("a Google Cloud workload identity pool audience")
    } else if a == "https://kubernetes.default.svc"
        || a.starts_with("https://kubernetes.default.svc.")
    {
        Some(
            "the Kubernetes API server's default audience, carried by every default service account token",
        )
    } else {
        None
    }
}

fn shared_audience(credential: &FederatedCredential, out: &mut Vec<Warning>) {
    for (k, audience) in credential.audiences.iter().enumerate() {
        let Some(owner) = shared_audience_owner(audience) else {
            continue;
        };
        warn(
            out,
            Lint::SharedAudience,
            credential,
            &format!("audiences[{k}]"),
            format!(
                "audience '{audience}' of credential '{}' is {owner}: a token meant for that \
                 service can be replayed here",
                credential.name
            ),
            "use an audience only trustbridge accepts (e.g. api://trustbridge) and have the \
             workload request a token for it explicitly"
                .to_string(),
        );
    }
}

// === overlapping credentials ===

fn subjects_overlap(a: &SubjectRule, b: &SubjectRule) -> bool {
    match (a, b) {
        (SubjectRule::Any, _) | (_, SubjectRule::Any) => true,
        (SubjectRule::Exact(x), SubjectRule::Exact(y)) => x == y,
        (SubjectRule::Exact(s), SubjectRule::Pattern(p))
        | (SubjectRule::Pattern(p), SubjectRule::Exact(s)) => p.matches(s),
        (SubjectRule::Pattern(p), SubjectRule::Pattern(q)) => p.intersects(q),
    }
}

fn subject_text(rule: &SubjectRule) -> String {
    match rule {
        SubjectRule::Exact(s) => format!("subject '{s}'"),
        SubjectRule::Pattern(p) => format!("pattern '{}'", p.as_str()),
        SubjectRule::Any => "any subject (condition only)".to_string(),
    }
}

fn overlapping(all: &[Held<'_>], out: &mut Vec<Warning>) {
    // Audit-mode credentials never grant, so they cannot make a token ambiguous.
    let enforced: Vec<&Held<'_>> = all
        .iter()
        .filter(|h| h.credential.mode == CredentialMode::Enforce)
        .collect();
    // Exact subjects are bucketed so that large sets of exact credentials stay cheap; patterns
    // and condition-only credentials are compared with everything of their issuer.
    let mut exact: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    let mut loose: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, h) in enforced.iter().enumerate() {
        let c = h.credential;
        let mut earlier: Vec<usize> = loose.get(c.issuer.as_str()).cloned().unwrap_or_default();
        match &c.subject {
            SubjectRule::Exact(s) => {
                earlier.extend(
                    exact
                        .get(&(c.issuer.as_str(), s.as_str()))
                        .into_iter()
                        .flatten(),
                );
            }
            _ => {
                earlier.extend(
                    exact
                        .iter()
                        .filter(|((issuer, _), _)| *issuer == c.issuer)
                        .flat_map(|(_, v)| v.iter().copied()),
                );
            }
        }
        earlier.sort_unstable();
        for j in earlier {
            let other = enforced[j];
            if other.identity == h.identity || other.tenants.is_disjoint(&h.tenants) {
                continue;
            }
            let o = other.credential;
            if !c.audiences.iter().any(|a| o.audiences.contains(a)) {
                continue;
            }
            if !subjects_overlap(&c.subject, &o.subject) {
                continue;
            }
            let tenants: Vec<&str> = h.tenants.intersection(&other.tenants).copied().collect();
            warn(
                out,
                Lint::OverlappingCredentials,
                c,
                "",
                format!(
                    "credential '{}' of {} ({}) and credential '{}' of {} ({}, at {} {}) can \
                     match the same token of issuer '{}' in tenant {}: the same workload can act \
                     as both identities, and token exchange without client_id is refused as \
                     ambiguous",
                    c.name,
                    h.identity,
                    subject_text(&c.subject),
                    o.name,
                    other.identity,
                    subject_text(&o.subject),
                    o.origin,
                    o.path,
                    c.issuer,
                    tenants.join(", ")
                ),
                "narrow one subject or condition so they cannot both match, or give them \
                 different audiences"
                    .to_string(),
            );
        }
        match &c.subject {
            SubjectRule::Exact(s) => exact
                .entry((c.issuer.as_str(), s.as_str()))
                .or_default()
                .push(i),
            _ => loose.entry(c.issuer.as_str()).or_default().push(i),
        }
    }
}

// === assignments ===

fn unassigned(set: &PolicySet, out: &mut Vec<Warning>) {
    let mut assigned_resources: BTreeSet<&str> = BTreeSet::new();
    for sp in set.service_principals() {
        for a in &sp.role_assignments {
            if let Some(app) = set.resource(&a.resource) {
                assigned_resources.insert(app.name.as_str());
            }
        }
        let has_credentials = set
            .application(&sp.application)
            .is_some_and(|app| !app.federated_credentials.is_empty());
        if has_credentials && sp.role_assignments.is_empty() {
            out.push(no_roles(
                sp.origin.to_string(),
                format!("application '{}' in tenant '{}'", sp.application, sp.tenant),
            ));
        }
    }
    for mi in set.managed_identities() {
        for a in &mi.role_assignments {
            if let Some(app) = set.resource(&a.resource) {
                assigned_resources.insert(app.name.as_str());
            }
        }
        if mi.role_assignments.is_empty() {
            out.push(no_roles(
                mi.origin.to_string(),
                format!("managed identity '{}'", mi.label()),
            ));
        }
    }
    for app in set.applications() {
        let has_sp = set
            .service_principals()
            .any(|sp| sp.application == app.name);
        if !app.federated_credentials.is_empty() && !has_sp {
            out.push(Warning {
                lint: Lint::UnassignedApplication,
                location: app.origin.to_string(),
                path: "federatedCredentials".into(),
                message: format!(
                    "application '{}' has federated credentials but no ServicePrincipal in any \
                     tenant, so nobody can act as it and every exchange for it is refused",
                    app.name
                ),
                fix: format!(
                    "add `kind: ServicePrincipal` with `application: {}` and a tenant, or remove \
                     the credentials",
                    app.name
                ),
                position: None,
            });
        }
        if !app.identifier_uris.is_empty()
            && !app.app_roles.is_empty()
            && !assigned_resources.contains(app.name.as_str())
        {
            out.push(Warning {
                lint: Lint::UnusedResource,
                location: app.origin.to_string(),
                path: "appRoles".into(),
                message: format!(
                    "resource application '{}' exposes roles but no identity holds any of them, \
                     so no token for it can be issued",
                    app.name
                ),
                fix: "assign its roles in a ServicePrincipal's or ManagedIdentity's \
                      appRoleAssignments, or remove the application"
                    .to_string(),
                position: None,
            });
        }
    }
}

fn no_roles(location: String, who: String) -> Warning {
    Warning {
        lint: Lint::NoRoleAssignments,
        location,
        path: "appRoleAssignments".into(),
        message: format!(
            "{who} has federated credentials but no role on any resource, so every exchange \
             is refused (not assigned)"
        ),
        fix: "add `appRoleAssignments: [{resource: <identifierUri>, roles: [...]}]`".to_string(),
        position: None,
    }
}

#[cfg(test)]
mod tests;
