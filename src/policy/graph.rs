//! The trust graph of a policy set: who can become what.
//!
//! Issuers → federated credentials → identities (service principals, managed identities,
//! workload-assigned templates included) → resources, with the roles on the identity →
//! resource edges; tenants and applications complete the picture. Every node says where it is
//! declared and carries the `policy check` findings ([`crate::policy::lint`]) that concern it.
//!
//! Built by a pure function over a compiled [`PolicySet`] and rendered as JSON (the admin
//! API's `GET /admin/v1/graph`), Graphviz DOT or Mermaid (`trustbridge policy graph`). It only
//! describes what the policies say; it must not decide anything (that is `exchange::decide`).
//!
//! Locations are a file and a 1-based `---` document index, as [`Origin`] keeps them, and the
//! line [`locate`] finds from the files' text (`null` when the file cannot be read).

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::policy::PolicySet;
use crate::policy::lint::{self, Warning};
use crate::policy::model::{
    FederatedCredential, ManagedIdentity, ManagedIdentityName, Origin, RoleAssignment, SubjectRule,
};

/// What a node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum NodeKind {
    /// A `kind: Tenant` document.
    Tenant,
    /// A `kind: Issuer` document.
    Issuer,
    /// A `kind: Application` document.
    Application,
    /// A federated credential of an application or managed identity.
    Credential,
    /// A `kind: ServicePrincipal` document: an application's identity in a tenant.
    ServicePrincipal,
    /// A `kind: ManagedIdentity` document (fixed name or `nameFrom` template).
    ManagedIdentity,
    /// An identifier URI under which an application is a resource.
    Resource,
}

impl NodeKind {
    /// The name used in the JSON (`servicePrincipal`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::Issuer => "issuer",
            Self::Application => "application",
            Self::Credential => "credential",
            Self::ServicePrincipal => "servicePrincipal",
            Self::ManagedIdentity => "managedIdentity",
            Self::Resource => "resource",
        }
    }
}

/// What an edge says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum EdgeKind {
    /// Issuer → credential: the credential accepts this issuer's tokens.
    Trusts,
    /// Credential → identity: a matching token may act as the identity.
    Grants,
    /// Identity → resource: the identity holds `roles` on the resource.
    Role,
    /// Tenant → identity.
    Contains,
    /// Application → its service principal in a tenant.
    Instance,
    /// Application → credential it holds.
    Holds,
    /// Application → the resource it exposes.
    Exposes,
}

/// A `policy check` finding attached to a node.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable lint code (`unpinned-owner`, ...).
    pub code: &'static str,
    /// Always `warning` (errors stop loading, so a loaded set has none).
    pub severity: &'static str,
    /// `file#document`.
    pub location: String,
    /// `file:line:column` of the field in the text the set was loaded from, when found.
    pub position: Option<String>,
    /// Field path inside the document, possibly empty.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl From<&Warning> for Finding {
    fn from(w: &Warning) -> Self {
        Self {
            code: w.lint.code(),
            severity: "warning",
            location: w.location.clone(),
            position: w.position.as_ref().map(ToString::to_string),
            path: w.path.clone(),
            message: w.message.clone(),
            fix: w.fix.clone(),
        }
    }
}

/// One node.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    /// Unique id (`issuer:demo`, `servicePrincipal:contoso/deploy-bot`, ...).
    pub id: String,
    /// What it is.
    pub kind: NodeKind,
    /// Display name.
    pub name: String,
    /// Tenant, for tenant-scoped objects.
    pub tenant: Option<String>,
    /// The file declaring it.
    pub file: String,
    /// 1-based document index in the file.
    pub document: usize,
    /// Line of the declaration (its field in the document); `None` when the file is unreadable.
    pub line: Option<usize>,
    /// Field path inside the document (credentials: `federatedCredentials[0]`).
    pub path: String,
    /// Kind-specific facts (audiences, subject, condition, ...).
    pub details: Map<String, Value>,
    /// `policy check` findings about it.
    pub findings: Vec<Finding>,
}

impl Node {
    /// `file#document` and the field path, as `policy check` prints locations.
    pub fn location(&self) -> String {
        let mut s = format!("{}#{}", self.file, self.document);
        if !self.path.is_empty() {
            s.push(' ');
            s.push_str(&self.path);
        }
        s
    }
}

/// One edge.
#[derive(Debug, Clone, Serialize)]
pub struct Edge {
    /// Source node id.
    pub from: String,
    /// Target node id.
    pub to: String,
    /// What it says.
    pub kind: EdgeKind,
    /// Roles, on [`EdgeKind::Role`] edges.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// The whole graph of one policy version.
#[derive(Debug, Clone, Serialize)]
pub struct Graph {
    /// Content hash of the policy set it describes.
    pub policy_hash: String,
    /// Every node, grouped by kind in column order.
    pub nodes: Vec<Node>,
    /// Every edge.
    pub edges: Vec<Edge>,
    /// Every `policy check` finding (each also attached to the nodes it concerns).
    pub findings: Vec<Finding>,
}

/// Fills each node's `line` from the policy files' text (see
/// [`crate::policy::load::source_map`]): the line of the node's field in its document, or the
/// document's first line. Nodes of files the map does not hold keep `None`.
pub fn locate(graph: &mut Graph, sources: &crate::policy::load::source_map::SourceMap) {
    for node in &mut graph.nodes {
        let location = format!("{}#{}", node.file, node.document);
        node.line = sources.locate(&location, &node.path).map(|p| p.line);
    }
}

/// The graph of `set`, with the findings of [`lint::lint`] attached.
pub fn build(set: &PolicySet) -> Graph {
    let mut b = Builder::default();
    for t in set.tenants() {
        b.node(
            format!("tenant:{}", t.name),
            NodeKind::Tenant,
            &t.name,
            None,
            &t.origin,
            "",
            [("id".to_string(), json!(t.id))].into_iter().collect(),
        );
    }
    for i in set.issuers() {
        let mut d = Map::new();
        d.insert("issuer".into(), json!(i.issuer));
        d.insert("preset".into(), json!(i.preset.as_str()));
        d.insert(
            "algorithms".into(),
            json!(i.algorithms.iter().map(|a| a.as_str()).collect::<Vec<_>>()),
        );
        d.insert("oneTimeUse".into(), json!(i.one_time_use));
        b.node(
            format!("issuer:{}", i.name),
            NodeKind::Issuer,
            &i.name,
            None,
            &i.origin,
            "",
            d,
        );
    }
    for app in set.applications() {
        let app_id = format!("application:{}", app.name);
        let mut d = Map::new();
        d.insert("appId".into(), json!(app.app_id));
        d.insert("identifierUris".into(), json!(app.identifier_uris));
        d.insert("appRoles".into(), json!(app.app_roles));
        b.node(
            app_id.clone(),
            NodeKind::Application,
            &app.name,
            None,
            &app.origin,
            "",
            d,
        );
        for uri in &app.identifier_uris {
            let id = format!("resource:{uri}");
            let mut d = Map::new();
            d.insert("application".into(), json!(app.name));
            d.insert("appRoles".into(), json!(app.app_roles));
            b.node(
                id.clone(),
                NodeKind::Resource,
                uri,
                None,
                &app.origin,
                "",
                d,
            );
            b.edge(&app_id, &id, EdgeKind::Exposes, Vec::new());
        }
        let sps: Vec<String> = set
            .service_principals()
            .filter(|sp| sp.application == app.name)
            .map(|sp| format!("servicePrincipal:{}/{}", sp.tenant, sp.application))
            .collect();
        for c in &app.federated_credentials {
            let id = format!("credential:{}/{}", app_id, c.name);
            b.credential(&id, c, &app.name);
            b.edge(&app_id, &id, EdgeKind::Holds, Vec::new());
            for sp in &sps {
                b.edge(&id, sp, EdgeKind::Grants, Vec::new());
            }
        }
    }
    for sp in set.service_principals() {
        let id = format!("servicePrincipal:{}/{}", sp.tenant, sp.application);
        let mut d = Map::new();
        d.insert("application".into(), json!(sp.application));
        d.insert("enabled".into(), json!(sp.enabled));
        d.insert("objectId".into(), json!(sp.object_id));
        if let Some(l) = sp.token_lifetime {
            d.insert("tokenLifetime".into(), json!(humantime_text(l)));
        }
        b.node(
            id.clone(),
            NodeKind::ServicePrincipal,
            &sp.application,
            Some(&sp.tenant),
            &sp.origin,
            "",
            d,
        );
        b.edge(
            &format!("tenant:{}", sp.tenant),
            &id,
            EdgeKind::Contains,
            Vec::new(),
        );
        b.edge(
            &format!("application:{}", sp.application),
            &id,
            EdgeKind::Instance,
            Vec::new(),
        );
        b.roles(&id, &sp.role_assignments);
    }
    for mi in set.managed_identities() {
        b.managed_identity(mi);
    }
    let warnings = lint::lint(set);
    b.attach(&warnings);
    b.nodes.sort_by_key(|n| column(n.kind));
    Graph {
        policy_hash: set.content_hash().to_string(),
        nodes: b.nodes,
        edges: b.edges,
        findings: warnings.iter().map(Finding::from).collect(),
    }
}

/// Layout column of a kind: issuers → credentials → identities → resources, the rest after.
fn column(kind: NodeKind) -> usize {
    match kind {
        NodeKind::Issuer => 0,
        NodeKind::Credential => 1,
        NodeKind::ServicePrincipal | NodeKind::ManagedIdentity => 2,
        NodeKind::Resource => 3,
        NodeKind::Application => 4,
        NodeKind::Tenant => 5,
    }
}

fn humantime_text(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[derive(Default)]
struct Builder {
    nodes: Vec<Node>,
    edges: Vec<Edge>,
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    fn node(
        &mut self,
        id: String,
        kind: NodeKind,
        name: &str,
        tenant: Option<&str>,
        origin: &Origin,
        path: &str,
        details: Map<String, Value>,
    ) {
        self.nodes.push(Node {
            id,
            kind,
            name: name.to_string(),
            tenant: tenant.map(str::to_string),
            file: origin.file.display().to_string(),
            document: origin.document,
            line: None,
            path: path.to_string(),
            details,
            findings: Vec::new(),
        });
    }

    fn edge(&mut self, from: &str, to: &str, kind: EdgeKind, roles: Vec<String>) {
        self.edges.push(Edge {
            from: from.to_string(),
            to: to.to_string(),
            kind,
            roles,
        });
    }

    fn credential(&mut self, id: &str, c: &FederatedCredential, holder: &str) {
        let mut d = Map::new();
        d.insert("holder".into(), json!(holder));
        d.insert("issuer".into(), json!(c.issuer));
        d.insert("audiences".into(), json!(c.audiences));
        match &c.subject {
            SubjectRule::Exact(s) => d.insert("subject".into(), json!(s)),
            SubjectRule::Pattern(p) => d.insert("subjectPattern".into(), json!(p.as_str())),
            SubjectRule::Any => d.insert("subject".into(), Value::Null),
        };
        if let Some(cond) = c.condition_source() {
            d.insert("condition".into(), json!(cond));
        }
        if !c.claim_mappings.is_empty() {
            let names: Vec<&str> = c.claim_mappings.iter().map(|(n, _)| n.as_str()).collect();
            d.insert("claimMappings".into(), json!(names));
        }
        if let Some(l) = c.max_token_lifetime {
            d.insert("maxTokenLifetime".into(), json!(humantime_text(l)));
        }
        d.insert("mode".into(), json!(c.mode.as_str()));
        d.insert("oneTimeUse".into(), json!(c.one_time_use));
        self.node(
            id.to_string(),
            NodeKind::Credential,
            &c.name,
            None,
            &c.origin,
            &c.path,
            d,
        );
        self.edge(
            &format!("issuer:{}", c.issuer),
            id,
            EdgeKind::Trusts,
            Vec::new(),
        );
    }

    fn managed_identity(&mut self, mi: &ManagedIdentity) {
        let id = format!("managedIdentity:{}/{}", mi.tenant, mi.label());
        let mut d = Map::new();
        match &mi.name {
            ManagedIdentityName::Fixed(_) => d.insert("assignment".into(), json!("user")),
            ManagedIdentityName::Template(e) => {
                d.insert("nameFrom".into(), json!(e.source()));
                d.insert("assignment".into(), json!("workload"))
            }
        };
        d.insert("enabled".into(), json!(mi.enabled));
        if let Some(l) = mi.token_lifetime {
            d.insert("tokenLifetime".into(), json!(humantime_text(l)));
        }
        // A template's label names its full origin; the file name is enough on screen.
        let name = match &mi.name {
            ManagedIdentityName::Fixed(name) => name.clone(),
            ManagedIdentityName::Template(_) => {
                let file = mi.origin.file.file_name().unwrap_or_default();
                format!("nameFrom@{}#{}", file.to_string_lossy(), mi.origin.document)
            }
        };
        self.node(
            id.clone(),
            NodeKind::ManagedIdentity,
            &name,
            Some(&mi.tenant),
            &mi.origin,
            "",
            d,
        );
        self.edge(
            &format!("tenant:{}", mi.tenant),
            &id,
            EdgeKind::Contains,
            Vec::new(),
        );
        for c in &mi.federated_credentials {
            let cred = format!("credential:{}/{}", id, c.name);
            self.credential(&cred, c, &mi.label());
            self.edge(&cred, &id, EdgeKind::Grants, Vec::new());
        }
        self.roles(&id, &mi.role_assignments);
    }

    fn roles(&mut self, identity: &str, assignments: &[RoleAssignment]) {
        for ra in assignments {
            self.edge(
                identity,
                &format!("resource:{}", ra.resource),
                EdgeKind::Role,
                ra.roles.clone(),
            );
        }
    }

    /// Attaches each warning to the credential it points into, or else to every other node
    /// declared by the document it names.
    fn attach(&mut self, warnings: &[Warning]) {
        let mut by_document: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            by_document
                .entry(format!("{}#{}", n.file, n.document))
                .or_default()
                .push(i);
        }
        for w in warnings {
            let Some(candidates) = by_document.get(&w.location) else {
                continue;
            };
            let credential = candidates.iter().copied().find(|&i| {
                let n = &self.nodes[i];
                n.kind == NodeKind::Credential
                    && !w.path.is_empty()
                    && (w.path == n.path || w.path.starts_with(&format!("{}.", n.path)))
            });
            let targets: Vec<usize> = match credential {
                Some(i) => vec![i],
                None => candidates
                    .iter()
                    .copied()
                    .filter(|&i| self.nodes[i].kind != NodeKind::Credential)
                    .collect(),
            };
            for i in targets {
                self.nodes[i].findings.push(Finding::from(w));
            }
        }
    }
}

// === rendering ===

/// Output formats of `trustbridge policy graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Graphviz DOT.
    #[default]
    Dot,
    /// A Mermaid flowchart (renders in GitHub comments and Markdown).
    Mermaid,
    /// The admin API's JSON.
    Json,
}

impl Graph {
    /// The graph in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Dot => self.to_dot(),
            Format::Mermaid => self.to_mermaid(),
            Format::Json => serde_json::to_string_pretty(self).unwrap_or_default() + "\n",
        }
    }

    fn label(node: &Node) -> String {
        let mut label = format!("{}\n{}", node.kind.as_str(), node.name);
        if let Some(t) = &node.tenant {
            let _ = write!(label, " ({t})");
        }
        if !node.findings.is_empty() {
            let _ = write!(label, "\n⚠ {} finding(s)", node.findings.len());
        }
        label
    }

    /// Graphviz DOT, left to right in the graph's columns.
    pub fn to_dot(&self) -> String {
        let q = |s: &str| {
            format!(
                "\"{}\"",
                s.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
            )
        };
        let mut out = String::from(
            "digraph trustbridge {\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"sans-serif\"];\n",
        );
        let _ = writeln!(
            out,
            "  label={};",
            q(&format!("policy {}", self.policy_hash))
        );
        for n in &self.nodes {
            let color = if n.findings.is_empty() {
                ""
            } else {
                ", color=\"#b45309\", penwidth=2"
            };
            let _ = writeln!(
                out,
                "  {} [label={}, tooltip={}{color}];",
                q(&n.id),
                q(&Self::label(n)),
                q(&n.location())
            );
        }
        for e in &self.edges {
            let label = if e.roles.is_empty() {
                String::new()
            } else {
                format!(" [label={}]", q(&e.roles.join(", ")))
            };
            let _ = writeln!(out, "  {} -> {}{label};", q(&e.from), q(&e.to));
        }
        out.push_str("}\n");
        out
    }

    /// A Mermaid `flowchart LR`; node ids are `n0`, `n1`, ... (Mermaid ids cannot hold `:`).
    pub fn to_mermaid(&self) -> String {
        let ids: HashMap<&str, String> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), format!("n{i}")))
            .collect();
        let q = |s: &str| {
            s.replace('"', "#quot;")
                .replace('<', "#lt;")
                .replace('>', "#gt;")
                .replace('\n', "<br/>")
        };
        let mut out = String::from("flowchart LR\n");
        for n in &self.nodes {
            let _ = writeln!(out, "  {}[\"{}\"]", ids[n.id.as_str()], q(&Self::label(n)));
        }
        for e in &self.edges {
            let (Some(from), Some(to)) = (ids.get(e.from.as_str()), ids.get(e.to.as_str())) else {
                continue;
            };
            if e.roles.is_empty() {
                let _ = writeln!(out, "  {from} --> {to}");
            } else {
                let _ = writeln!(out, "  {from} -->|\"{}\"| {to}", q(&e.roles.join(", ")));
            }
        }
        let warned: Vec<&str> = self
            .nodes
            .iter()
            .filter(|n| !n.findings.is_empty())
            .map(|n| ids[n.id.as_str()].as_str())
            .collect();
        if !warned.is_empty() {
            out.push_str("  classDef finding stroke:#b45309,stroke-width:3px\n");
            let _ = writeln!(out, "  class {} finding", warned.join(","));
        }
        out
    }
}

#[cfg(test)]
mod tests;
