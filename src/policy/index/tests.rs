use super::*;
use crate::policy::PolicySet;

const POLICIES: &str = r#"
kind: Issuer
name: ci
issuer: https://ci.example.com
jwksUri: https://ci.example.com/keys
---
kind: Issuer
name: cluster
issuer: https://cluster.example.com
jwksUri: https://cluster.example.com/keys
---
kind: Tenant
name: contoso
---
kind: Tenant
name: fabrikam
---
kind: Application
name: zeta
federatedCredentials:
  - name: exact
    issuer: ci
    audiences: [api://tb]
    subject: repo:o/a:ref:refs/heads/main
  - name: prefixed
    issuer: ci
    audiences: [api://tb]
    subjectPattern: repo:o/*:ref:refs/heads/main
  - name: star-first
    issuer: ci
    audiences: [api://tb]
    subjectPattern: "*:ref:refs/heads/dev"
  - name: condition-only
    issuer: cluster
    audiences: [api://tb]
    condition: claims.ns == "x"
---
kind: ServicePrincipal
application: zeta
tenant: contoso
---
kind: Application
name: alpha
federatedCredentials:
  - name: other-exact
    issuer: ci
    audiences: [api://tb]
    subject: repo:o/b:ref:refs/heads/main
  - name: long-prefix
    issuer: ci
    audiences: [api://tb]
    subjectPattern: repo:o/a:ref:refs/heads/**
---
kind: ServicePrincipal
application: alpha
tenant: contoso
---
kind: Application
name: no-principal
federatedCredentials:
  - name: orphan
    issuer: ci
    audiences: [api://tb]
    subject: repo:o/a:ref:refs/heads/main
---
kind: ManagedIdentity
tenant: contoso
name: mi
federatedCredentials:
  - name: mi-exact
    issuer: ci
    audiences: [api://tb]
    subject: repo:o/a:ref:refs/heads/main
---
kind: ManagedIdentity
tenant: fabrikam
name: fab
federatedCredentials:
  - name: fab-exact
    issuer: ci
    audiences: [api://tb]
    subject: repo:o/a:ref:refs/heads/main
"#;

fn set() -> PolicySet {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("all.yaml"), POLICIES).expect("write");
    crate::policy::load_dir(dir.path()).expect("fixture policies load")
}

/// Candidate credentials as (identity, credential name).
fn names(set: &PolicySet, tenant: &str, issuer: &str, sub: Option<&str>) -> Vec<String> {
    set.credential_index()
        .candidates(tenant, issuer, sub)
        .into_iter()
        .map(|c| describe(set, c))
        .collect()
}

fn describe(set: &PolicySet, c: &CredentialRef) -> String {
    match &c.identity {
        IdentityId::Application(app) => format!(
            "{app}/{}",
            set.application(app).unwrap().federated_credentials[c.credential].name
        ),
        IdentityId::Managed(i) => format!(
            "mi{i}/{}",
            set.managed_identities()[*i].federated_credentials[c.credential].name
        ),
    }
}

#[test]
fn candidates_are_the_credentials_that_can_match_in_decision_order() {
    let set = set();
    // Applications by name (alpha before zeta), then managed identities; within an identity,
    // declaration order. Another exact subject, and the orphan (no service principal in the
    // tenant) are left out.
    assert_eq!(
        names(&set, "contoso", "ci", Some("repo:o/a:ref:refs/heads/main")),
        [
            "alpha/long-prefix",
            "zeta/exact",
            "zeta/prefixed",
            "zeta/star-first",
            "mi0/mi-exact"
        ]
    );
    assert_eq!(
        names(&set, "contoso", "ci", Some("repo:o/b:ref:refs/heads/main")),
        ["alpha/other-exact", "zeta/prefixed", "zeta/star-first"]
    );
    // A subject sharing no prefix meets only the pattern starting with `*`.
    assert_eq!(
        names(&set, "contoso", "ci", Some("project_path:x")),
        ["zeta/star-first"]
    );
    assert_eq!(names(&set, "contoso", "ci", None), ["zeta/star-first"]);
}

#[test]
fn candidates_are_per_tenant_and_issuer() {
    let set = set();
    assert_eq!(
        names(&set, "fabrikam", "ci", Some("repo:o/a:ref:refs/heads/main")),
        ["mi1/fab-exact"]
    );
    assert_eq!(
        names(&set, "contoso", "cluster", Some("anything")),
        ["zeta/condition-only"]
    );
    assert!(names(&set, "contoso", "nobody", Some("x")).is_empty());
    assert!(names(&set, "nowhere", "ci", Some("x")).is_empty());
    assert_eq!(
        set.credential_index().trusting("contoso", "ci").len(),
        6,
        "every credential of contoso trusting ci"
    );
}

#[test]
fn subjects_shorter_than_a_prefix_or_cut_inside_a_character_are_safe() {
    let set = set();
    assert_eq!(names(&set, "contoso", "ci", Some("")), ["zeta/star-first"]);
    assert_eq!(names(&set, "contoso", "ci", Some("r")), ["zeta/star-first"]);
    // Multi-byte characters around every prefix length: no panic, no false candidate.
    let sub = "répo:o/é:ref:refs/heads/main";
    assert_eq!(names(&set, "contoso", "ci", Some(sub)), ["zeta/star-first"]);
    assert_eq!(
        names(
            &set,
            "contoso",
            "ci",
            Some("repo:o/ééé:ref:refs/heads/main")
        ),
        ["zeta/prefixed", "zeta/star-first"]
    );
}

#[test]
fn first_identity_follows_decision_order() {
    let set = set();
    let index = set.credential_index();
    assert_eq!(
        index.first_identity("contoso"),
        Some(&IdentityId::Application("alpha".into()))
    );
    assert_eq!(
        index.first_identity("fabrikam"),
        Some(&IdentityId::Managed(1))
    );
    assert_eq!(index.first_identity("nowhere"), None);
}

#[test]
fn literal_prefixes_stop_at_the_first_star() {
    use crate::policy::glob::SubjectPattern;
    for (pattern, prefix) in [
        ("repo:o/*:ref:x", "repo:o/"),
        ("repo:o/a:ref:refs/heads/**", "repo:o/a:ref:refs/heads/"),
        ("*:x", ""),
        ("no-star", "no-star"),
    ] {
        let parsed = SubjectPattern::parse(pattern).expect("pattern");
        assert_eq!(parsed.literal_prefix(), prefix, "{pattern}");
    }
}
