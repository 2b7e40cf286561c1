//! The indexed lookup of `decide` (no `client_id`) against the full scan it replaced: same
//! identity, same credential, same denial (stage and detail), over a grid of tokens.

use serde_json::json;

use super::*;

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
kind: Issuer
name: lonely
issuer: https://lonely.example.com
jwksUri: https://lonely.example.com/keys
---
kind: Tenant
name: contoso
---
kind: Tenant
name: fabrikam
---
kind: Tenant
name: empty
---
kind: Application
name: payments-api
identifierUris: [api://payments]
appRoles:
  - value: Payments.Read
---
kind: Application
name: aaa-no-credentials
---
kind: ServicePrincipal
application: aaa-no-credentials
tenant: contoso
---
kind: Application
name: bot-exact
federatedCredentials:
  - name: exact
    issuer: ci
    audiences: [api://tb]
    subject: repo:o/a:ref:refs/heads/main
  - name: owner-pattern
    issuer: ci
    audiences: [api://tb]
    subjectPattern: repo:o/*:ref:refs/heads/main
    condition: claims.owner == "o"
---
kind: ServicePrincipal
application: bot-exact
tenant: contoso
---
kind: ServicePrincipal
application: bot-exact
tenant: fabrikam
---
kind: Application
name: bot-branches
federatedCredentials:
  - name: branches
    issuer: ci
    audiences: [api://tb]
    subjectPattern: repo:o/a:ref:**
---
kind: ServicePrincipal
application: bot-branches
tenant: contoso
---
kind: Application
name: bot-dev
federatedCredentials:
  - name: dev-anywhere
    issuer: ci
    audiences: [api://tb, api://other]
    subjectPattern: "*:ref:refs/heads/dev"
---
kind: ServicePrincipal
application: bot-dev
tenant: contoso
---
kind: Application
name: bot-cluster
federatedCredentials:
  - name: namespace-x
    issuer: cluster
    audiences: [api://tb]
    condition: claims.ns == "x"
---
kind: ServicePrincipal
application: bot-cluster
tenant: contoso
---
kind: Application
name: bot-no-principal
federatedCredentials:
  - name: orphan
    issuer: ci
    audiences: [api://tb]
    subject: repo:o/b:ref:refs/heads/main
---
kind: Application
name: bot-audience
federatedCredentials:
  - name: other-audience
    issuer: ci
    audiences: [api://other]
    subject: repo:o/c:ref:refs/heads/main
---
kind: ServicePrincipal
application: bot-audience
tenant: contoso
---
kind: ManagedIdentity
tenant: contoso
name: mi-one
federatedCredentials:
  - name: mi-exact
    issuer: ci
    audiences: [api://tb]
    subject: repo:o/c:ref:refs/heads/main
---
kind: ManagedIdentity
tenant: contoso
nameFrom: '"k8s/" + claims.ns'
federatedCredentials:
  - name: service-accounts
    issuer: cluster
    audiences: [api://tb]
    subjectPattern: system:serviceaccount:*:*
    condition: claims.ns.startsWith("team-")
---
kind: ManagedIdentity
tenant: fabrikam
name: mi-fab
federatedCredentials:
  - name: fab-any
    issuer: cluster
    audiences: [api://tb]
    condition: "true"
"#;

fn set() -> PolicySet {
    crate::exchange::testkit::policies(POLICIES)
}

fn token(issuer: &str, sub: Option<&str>, aud: &str, owner: &str, ns: &str) -> ValidatedToken {
    crate::exchange::testkit::validated(issuer, sub, aud, json!({"owner": owner, "ns": ns}))
}

type Outcome = Result<(String, String), Denial>;

fn outcome(result: Result<(Identity<'_>, &FederatedCredential), Denial>) -> Outcome {
    result.map(|(identity, credential)| (identity.label(), credential.name.clone()))
}

#[test]
fn indexed_lookup_decides_exactly_as_the_full_scan() {
    let set = set();
    let subjects = [
        None,
        Some(""),
        Some("repo:o/a:ref:refs/heads/main"),
        Some("repo:o/b:ref:refs/heads/main"),
        Some("repo:o/c:ref:refs/heads/main"),
        Some("repo:o/a:ref:refs/heads/dev"),
        Some("repo:o/a:ref:refs/tags/v1"),
        Some("repo:x/y:ref:refs/heads/dev"),
        Some("system:serviceaccount:team-a:builder"),
        Some("system:serviceaccount:ops:builder"),
        Some("répo:ö/a:ref:refs/heads/main"),
    ];
    let mut outcomes = std::collections::BTreeSet::new();
    let mut checked = 0;
    for tenant in ["contoso", "fabrikam", "empty", "nowhere"] {
        for issuer in ["ci", "cluster", "lonely"] {
            for sub in subjects {
                for aud in ["api://tb", "api://other"] {
                    for (owner, ns) in [("o", "x"), ("p", "team-a"), ("o", "y")] {
                        let t = token(issuer, sub, aud, owner, ns);
                        let indexed = outcome(resolve_by_token(&t, tenant, &set));
                        let scanned = outcome(resolve_by_scan(&t, tenant, &set));
                        assert_eq!(
                            indexed, scanned,
                            "tenant {tenant}, issuer {issuer}, sub {sub:?}, aud {aud}, \
                             owner {owner}, ns {ns}"
                        );
                        outcomes.insert(format!("{indexed:?}"));
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, 4 * 3 * subjects.len() * 2 * 3);
    // The grid reaches grants, ambiguity and every denial detail, not just one of them.
    let all = outcomes.iter().cloned().collect::<Vec<_>>().join("\n");
    for expected in [
        "Ok((\"bot-exact\", \"exact\"))",
        "Ok((\"mi-one\", \"mi-exact\"))",
        "Ok((\"bot-cluster\", \"namespace-x\"))",
        "Ok((\"mi-fab\", \"fab-any\"))",
        "Ambiguous(",
        "stage: Audience",
        "stage: Subject",
        "stage: Condition",
        "the identity has no federated credentials",
        "no federated credential trusts issuer",
        "no identity in this tenant has a federated credential",
    ] {
        assert!(all.contains(expected), "{expected} never reached:\n{all}");
    }
}
