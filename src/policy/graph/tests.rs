use std::path::Path;

use super::*;

fn bundled() -> PolicySet {
    crate::policy::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
        .expect("bundled policies load")
}

#[test]
fn bundled_policies_show_who_can_become_what() {
    let g = build(&bundled());
    let ids: Vec<&str> = g.nodes.iter().map(|n| n.id.as_str()).collect();
    for want in [
        "issuer:demo",
        "tenant:contoso",
        "application:deploy-bot",
        "application:payments-api",
        "resource:api://payments",
        "servicePrincipal:contoso/deploy-bot",
        "credential:application:deploy-bot/infra-main",
    ] {
        assert!(ids.contains(&want), "{want} missing from {ids:?}");
    }
    let mi = g
        .nodes
        .iter()
        .find(|n| n.kind == NodeKind::ManagedIdentity)
        .expect("the workload-assigned template");
    assert_eq!(mi.details["assignment"], "workload");
    assert!(
        mi.file.ends_with("contoso.yaml") && mi.document >= 1,
        "{mi:?}"
    );
    let role = |from: &str| {
        g.edges
            .iter()
            .find(|e| e.kind == EdgeKind::Role && e.from == from)
            .map(|e| e.roles.clone())
    };
    assert_eq!(
        role("servicePrincipal:contoso/deploy-bot"),
        Some(vec![
            "Payments.Read".to_string(),
            "Payments.Write".to_string()
        ])
    );
    assert_eq!(role(&mi.id), Some(vec!["Payments.Read".to_string()]));
    let has = |from: &str, to: &str, kind| {
        g.edges
            .iter()
            .any(|e| e.from == from && e.to == to && e.kind == kind)
    };
    let cred = "credential:application:deploy-bot/infra-main";
    assert!(has("issuer:demo", cred, EdgeKind::Trusts));
    assert!(has(
        cred,
        "servicePrincipal:contoso/deploy-bot",
        EdgeKind::Grants
    ));
    // Every edge joins declared nodes.
    for e in &g.edges {
        assert!(
            ids.contains(&e.from.as_str()) && ids.contains(&e.to.as_str()),
            "{e:?}"
        );
    }
    assert_eq!(g.policy_hash, bundled().content_hash());
}

#[test]
fn lint_findings_are_attached_to_the_credential_they_concern() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("p.yaml"),
        "kind: Issuer\nname: gh\nissuer: https://token.actions.githubusercontent.com\npreset: github\n---\n\
         kind: Tenant\nname: t\n---\n\
         kind: Application\nname: api\nidentifierUris: [api://x]\nappRoles: [{value: R}]\n---\n\
         kind: Application\nname: bot\nfederatedCredentials:\n  - name: any\n    issuer: gh\n    audiences: [api://tb]\n    subjectPattern: 'repo:*/infra:ref:refs/heads/main'\n---\n\
         kind: ServicePrincipal\napplication: bot\ntenant: t\nappRoleAssignments:\n  - resource: api://x\n    roles: [R]\n",
    )
    .expect("write");
    let set = crate::policy::load_dir(dir.path()).expect("loads");
    let g = build(&set);
    assert!(!g.findings.is_empty());
    let cred = g
        .nodes
        .iter()
        .find(|n| n.id == "credential:application:bot/any")
        .expect("credential");
    let codes: Vec<&str> = cred.findings.iter().map(|f| f.code).collect();
    assert!(codes.contains(&"any-owner"), "{codes:?}");
    assert_eq!(cred.path, "federatedCredentials[0]");
    let attached: usize = g.nodes.iter().map(|n| n.findings.len()).sum();
    assert!(
        attached >= g.findings.len(),
        "every finding lands on a node"
    );
}

#[test]
fn dot_and_mermaid_name_every_node_and_escape_labels() {
    let g = build(&bundled());
    let dot = g.render(Format::Dot);
    assert!(dot.starts_with("digraph trustbridge {") && dot.trim_end().ends_with('}'));
    assert!(dot.contains("\"issuer:demo\" -> \"credential:application:deploy-bot/infra-main\""));
    assert!(dot.contains("label=\"Payments.Read, Payments.Write\""));
    let mermaid = g.render(Format::Mermaid);
    assert!(mermaid.starts_with("flowchart LR\n"));
    assert_eq!(
        mermaid.lines().filter(|l| l.contains("[\"")).count(),
        g.nodes.len()
    );
    assert!(
        !mermaid.contains("k8s/\" +"),
        "quotes in templates are escaped"
    );
    let json: Value = serde_json::from_str(&g.render(Format::Json)).expect("json");
    assert_eq!(json["nodes"].as_array().map(Vec::len), Some(g.nodes.len()));
}
