//! The indexed lookup of `decide` (no `client_id`) against the full scan it replaced: same
//! identity, same credential, same denial (stage and detail), over a grid of tokens.

use serde_json::json;

use super::*;

/// The decision fixture, a real policy file (`tests/fixtures/policies/<scenario>/`).
const POLICIES: &str = include_str!("../../../tests/fixtures/policies/decide-index/policies.yaml");

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
                        let indexed =
                            outcome(resolve_by_token(&t, tenant, &set, Situation::UNKNOWN));
                        let scanned =
                            outcome(resolve_by_scan(&t, tenant, &set, Situation::UNKNOWN));
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
