//! Issue 12: audit-mode credentials never grant, never shape a grant and never make a request
//! ambiguous, on every path into the decision (client credentials with `client_id`, token
//! exchange with and without `client_id`; applications, user-assigned and workload-assigned
//! managed identities); within one identity the most specific credential grants, whatever the
//! declaration order; and a denial evaluates a bounded number of credentials at any size.
//!
//! Each reproduction is paired with the same policy in `mode: enforce`, to show the test
//! would see the flaw. The property test covers the class: for random sets, the decision is
//! the decision over the same set with every audit-mode credential deleted.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;

use super::tests::run;
use super::*;
use crate::exchange::Situation;
use crate::exchange::request::{GrantType, Target};

/// The fixture the HTTP tests use too, pointed at a made-up issuer URL.
const POLICIES: &str = include_str!("../../../tests/fixtures/policies/audit-grant/policies.yaml");

fn yaml(enforce_everything: bool) -> String {
    let text = POLICIES.replace("{{ISSUER}}", "https://test.example.com");
    if enforce_everything {
        text.replace("mode: audit", "mode: enforce")
    } else {
        text
    }
}

fn set() -> PolicySet {
    crate::exchange::testkit::policies(&yaml(false))
}

/// The same set with every audit-mode credential switched to enforce: what the flaw did.
fn set_if_audit_granted() -> PolicySet {
    crate::exchange::testkit::policies(&yaml(true))
}

fn token(sub: &str) -> ValidatedToken {
    crate::exchange::testkit::validated(
        "test",
        Some(sub),
        "api://trustbridge",
        json!({"ns": "a", "repository_owner_id": "1234"}),
    )
}

fn request(grant: GrantType, client_id: Option<&str>) -> ExchangeRequest {
    ExchangeRequest {
        tenant: "contoso".into(),
        grant,
        client_id: client_id.map(str::to_string),
        subject_token: String::new(),
        target: Target {
            resource: "api://payments".into(),
            roles: RequestedRoles::All,
            from_scope: true,
        },
        context: Default::default(),
    }
}

/// Every way a request can reach the decision, for an identity named `client_id`.
fn paths(client_id: &str) -> [ExchangeRequest; 3] {
    [
        request(GrantType::ClientCredentials, Some(client_id)),
        request(GrantType::TokenExchange, Some(client_id)),
        request(GrantType::TokenExchange, None),
    ]
}

const INFRA: &str = "repo:contoso/infra:ref:refs/heads/main";

#[test]
fn an_identity_with_only_audit_credentials_is_never_granted_on_any_path() {
    let (set, flawed) = (set(), set_if_audit_granted());
    let cases = [
        ("canary-bot", "repo:contoso/canary:ref:refs/heads/main"),
        ("mi-audit", "repo:contoso/mi:ref:refs/heads/main"),
        ("wl-a", "repo:contoso/wl:ref:refs/heads/main"),
    ];
    for (client_id, sub) in cases {
        for req in paths(client_id) {
            let what = format!("{client_id} via {:?} {:?}", req.grant, req.client_id);
            let denial = run(&token(sub), &req, &set).expect_err(&what);
            assert!(
                matches!(
                    denial,
                    Denial::NoMatchingCredential { .. } | Denial::UnknownClient(_)
                ),
                "{what}: {denial:?}"
            );
            assert!(!denial.to_string().contains("audit"), "{what}: {denial}");
            // In enforce mode the same credential grants: the test sees the flaw.
            let grant = run(&token(sub), &req, &flawed).expect(&what);
            assert_eq!(grant.identity_name, client_id, "{what}");
        }
    }
}

#[test]
fn an_audit_credential_declared_first_shapes_nothing_on_any_path() {
    let (set, flawed) = (set(), set_if_audit_granted());
    for client_id in ["deploy-bot", "0b4f1f2e-3a5c-4d6e-8f70-81a2b3c4d5e6"] {
        for req in paths(client_id) {
            let what = format!("{:?} {:?}", req.grant, req.client_id);
            let grant = run(&token(INFRA), &req, &set).expect(&what);
            assert_eq!(grant.identity_name, "deploy-bot", "{what}");
            assert_eq!(grant.credential, "main", "{what}");
            assert_eq!(grant.credential_mode, CredentialMode::Enforce, "{what}");
            assert!(!grant.one_time_use, "{what}");
            assert_eq!(grant.lifetime, Duration::from_secs(3600), "{what}");
            assert!(grant.mapped_claims.is_empty(), "{what}");
        }
        // Enforced, the shadow credential is as specific and declared first: it would shape
        // the grant (with client_id; without, rival-bot makes the request ambiguous).
        let grant = run(&token(INFRA), &paths(client_id)[0], &flawed).expect("flawed");
        assert_eq!(grant.credential, "shadow");
        assert!(grant.one_time_use);
    }
}

#[test]
fn an_audit_credential_of_another_identity_never_makes_a_request_ambiguous() {
    let req = request(GrantType::TokenExchange, None);
    let grant = run(&token(INFRA), &req, &set()).expect("granted");
    assert_eq!(grant.identity_name, "deploy-bot");
    let flawed = run(&token(INFRA), &req, &set_if_audit_granted());
    assert_eq!(flawed.unwrap_err(), Denial::Ambiguous(2));
}

#[test]
fn the_index_holds_enforce_credentials_only() {
    let set = set();
    let index = set.credential_index();
    let names = |refs: Vec<&CredentialRef>| -> Vec<String> {
        refs.into_iter()
            .filter_map(|r| indexed(r, "contoso", &set))
            .map(|(_, c)| c.name.clone())
            .collect()
    };
    assert_eq!(
        names(index.candidates("contoso", "test", Some(INFRA))),
        ["main"]
    );
    assert_eq!(
        names(index.audit_candidates("contoso", "test", Some(INFRA))),
        ["shadow", "rival"]
    );
    assert!(
        index
            .trusting("contoso", "test")
            .iter()
            .filter_map(|r| indexed(r, "contoso", &set))
            .all(|(_, c)| c.mode == CredentialMode::Enforce)
    );
    // And the check itself refuses an audit-mode credential, whoever asks.
    let shadow = &set
        .application("deploy-bot")
        .expect("app")
        .federated_credentials[0];
    assert!(check_credential(shadow, &token(INFRA), Situation::UNKNOWN).is_err());
}

// === most specific credential ===

fn specific_yaml(order: &[&str]) -> String {
    let credential = |name: &str| match name {
        "exact" => "  - name: exact\n    issuer: test\n    audiences: [api://trustbridge]\n    \
                    subject: repo:contoso/infra:ref:refs/heads/main\n    oneTimeUse: true\n    \
                    maxTokenLifetime: 5m\n    claimMappings:\n      via: '\"exact\"'\n"
            .to_string(),
        "pattern" => {
            "  - name: pattern\n    issuer: test\n    audiences: [api://trustbridge]\n    \
                      subjectPattern: repo:contoso/*:ref:refs/heads/main\n    \
                      condition: claims.repository_owner_id == \"1234\"\n    \
                      maxTokenLifetime: 20m\n    claimMappings:\n      via: '\"pattern\"'\n"
                .to_string()
        }
        _ => "  - name: condition\n    issuer: test\n    audiences: [api://trustbridge]\n    \
              condition: claims.repository_owner_id == \"1234\"\n"
            .to_string(),
    };
    let credentials: String = order.iter().map(|n| credential(n)).collect();
    format!(
        "kind: Issuer\nname: test\nissuer: https://test.example.com\n\
         jwksUri: https://test.example.com/keys\n---\nkind: Tenant\nname: contoso\n---\n\
         kind: Application\nname: payments-api\nidentifierUris: [api://payments]\n\
         appRoles: [{{value: Payments.Read}}]\n---\nkind: Application\nname: bot\n\
         federatedCredentials:\n{credentials}---\nkind: ServicePrincipal\napplication: bot\n\
         tenant: contoso\nappRoleAssignments: [{{resource: api://payments, roles: [Payments.Read]}}]\n"
    )
}

#[test]
fn the_most_specific_matching_credential_grants_in_either_order() {
    let orders: [&[&str]; 6] = [
        &["exact", "pattern", "condition"],
        &["condition", "pattern", "exact"],
        &["pattern", "exact", "condition"],
        &["condition", "exact", "pattern"],
        &["pattern", "condition", "exact"],
        &["exact", "condition", "pattern"],
    ];
    for order in orders {
        let set = crate::exchange::testkit::policies(&specific_yaml(order));
        for req in paths("bot") {
            let what = format!("{order:?} {:?} {:?}", req.grant, req.client_id);
            let grant = run(&token(INFRA), &req, &set).expect(&what);
            assert_eq!(grant.credential, "exact", "{what}");
            assert!(grant.one_time_use, "{what}");
            assert_eq!(grant.lifetime, Duration::from_secs(300), "{what}");
            assert_eq!(grant.mapped_claims["via"], json!("exact"), "{what}");
            // Another branch: the exact credential does not match, the pattern is next.
            let other = token("repo:contoso/web:ref:refs/heads/main");
            let grant = run(&other, &req, &set).expect(&what);
            assert_eq!(grant.credential, "pattern", "{what}");
            assert_eq!(grant.lifetime, Duration::from_secs(1200), "{what}");
            // No subject rule matches: the condition-only credential grants.
            let tag = token("repo:contoso/web:ref:refs/tags/v1");
            assert_eq!(run(&tag, &req, &set).expect(&what).credential, "condition");
        }
    }
}

// === bounded denials ===

/// `n` applications trusting one issuer, each with a distinct exact subject, a condition and
/// the same audience: every one of them passes the issuer and audience checks.
fn many(n: usize) -> PolicySet {
    let base = "kind: Issuer\nname: test\nissuer: https://test.example.com\n\
         jwksUri: https://test.example.com/keys\n---\nkind: Tenant\nname: contoso\n---\n\
         kind: Application\nname: payments-api\nidentifierUris: [api://payments]\n\
         appRoles: [{value: Payments.Read}]\n";
    let mut files = vec![("base.yaml".to_string(), base.to_string())];
    for chunk in (0..n).collect::<Vec<_>>().chunks(1_000) {
        let mut text = String::new();
        for &i in chunk {
            text.push_str(&format!(
                "---\nkind: Application\nname: app-{i:05}\nfederatedCredentials:\n  - name: c-{i}\n    \
                 issuer: test\n    audiences: [api://trustbridge]\n    \
                 subject: repo:org/app-{i}:ref:refs/heads/main\n    \
                 condition: claims.repository_owner_id == \"{i}\"\n---\nkind: ServicePrincipal\n\
                 application: app-{i:05}\ntenant: contoso\n\
                 appRoleAssignments: [{{resource: api://payments, roles: [Payments.Read]}}]\n"
            ));
        }
        files.push((format!("apps-{}.yaml", chunk[0]), text));
    }
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    crate::policy::load_texts(&files).unwrap_or_else(|errors| panic!("generated set: {errors}"))
}

#[test]
fn a_denial_checks_a_bounded_number_of_credentials_at_any_size() {
    for n in [10, 1_000, 10_000] {
        let set = many(n);
        let req = request(GrantType::TokenExchange, None);
        // A stranger's token: no candidate at all.
        let (denial, checked) =
            counted(|| run(&token("repo:evil/x:ref:refs/heads/main"), &req, &set));
        let denial = denial.expect_err("denied");
        assert!(
            matches!(
                denial,
                Denial::NoMatchingCredential {
                    stage: MismatchStage::Subject,
                    ..
                }
            ),
            "{n}: {denial:?}"
        );
        assert!(
            checked <= 2,
            "{n} identities: {checked} credentials checked"
        );
        // A near miss: one candidate, whose condition fails.
        let (denial, checked) =
            counted(|| run(&token("repo:org/app-7:ref:refs/heads/main"), &req, &set));
        assert!(
            matches!(
                denial,
                Err(Denial::NoMatchingCredential {
                    stage: MismatchStage::Condition,
                    ..
                })
            ),
            "{n}: {denial:?}"
        );
        assert!(
            checked <= 3,
            "{n} identities: {checked} credentials checked"
        );
        // A wrong audience: still bounded.
        let mut aud = token("repo:evil/x:ref:refs/heads/main");
        aud.aud = vec!["api://elsewhere".into()];
        let (_, checked) = counted(|| run(&aud, &req, &set));
        assert!(
            checked <= 2,
            "{n} identities: {checked} credentials checked"
        );
    }
}

#[test]
fn the_denial_explanation_traces_at_most_the_cap() {
    use crate::exchange::explain::{self, MAX_TRACED, Query};
    let set = many(10_000);
    let payments = Target {
        resource: "api://payments".into(),
        roles: RequestedRoles::All,
        from_scope: true,
    };
    let query = |client_id| Query {
        tenant: "contoso",
        client_id,
        target: Some(&payments),
        request: Situation::UNKNOWN,
    };
    let stranger = token("repo:evil/x:ref:refs/heads/main");
    let e = explain::for_denial(&stranger, query(None), &set);
    assert!(e.candidates.is_empty(), "{e:?}");
    let e = explain::for_denial(&stranger, query(Some("nobody")), &set);
    assert!(e.candidates.len() <= MAX_TRACED, "{}", e.candidates.len());
    let near = token("repo:org/app-7:ref:refs/heads/main");
    let e = explain::for_denial(&near, query(None), &set);
    assert_eq!(e.candidates.len(), 1);
    assert_eq!(e.candidates[0].credential, "c-7");
    // Condition-only credentials are candidates of every token: the cap holds there too.
    let mut text = String::from(
        "kind: Issuer\nname: test\nissuer: https://test.example.com\n\
         jwksUri: https://test.example.com/keys\n---\nkind: Tenant\nname: contoso\n",
    );
    for i in 0..100 {
        text.push_str(&format!(
            "---\nkind: Application\nname: app-{i}\nfederatedCredentials:\n  - name: c-{i}\n    \
             issuer: test\n    audiences: [api://trustbridge]\n    \
             condition: claims.repository_owner_id == \"{i}x\"\n---\nkind: ServicePrincipal\n\
             application: app-{i}\ntenant: contoso\n"
        ));
    }
    let wide = crate::exchange::testkit::policies(&text);
    let e = explain::for_denial(&stranger, query(None), &wide);
    assert_eq!(e.candidates.len(), MAX_TRACED);
    assert!(
        e.notes.iter().any(|n| n.contains("84 more")),
        "{:?}",
        e.notes
    );
}

// === the class: audit-mode credentials are invisible to the decision ===

/// One generated credential: subject kind (0 exact A, 1 exact B, 2 pattern, 3 condition
/// only), audience (0 accepted, 1 other), audit mode, one-time use, a short lifetime.
type Cred = (u8, u8, bool, bool, bool);

fn generated_yaml(identities: &[(bool, Vec<Cred>)], keep_audit: bool) -> String {
    let mut text = String::from(
        "kind: Issuer\nname: test\nissuer: https://test.example.com\n\
         jwksUri: https://test.example.com/keys\n---\nkind: Tenant\nname: contoso\n---\n\
         kind: Application\nname: payments-api\nidentifierUris: [api://payments]\n\
         appRoles: [{value: Payments.Read}]\n",
    );
    for (i, (managed, credentials)) in identities.iter().enumerate() {
        let mut list = String::new();
        for (j, &(subject, aud, audit, once, short)) in credentials.iter().enumerate() {
            if audit && !keep_audit {
                continue;
            }
            let subject = match subject {
                0 => "    subject: repo:o/a:ref:refs/heads/main\n".to_string(),
                1 => "    subject: repo:o/b:ref:refs/heads/main\n".to_string(),
                2 => "    subjectPattern: repo:o/*:ref:refs/heads/main\n".to_string(),
                _ => "    condition: claims.x == \"1\"\n".to_string(),
            };
            let aud = if aud == 0 {
                "api://trustbridge"
            } else {
                "api://other"
            };
            list.push_str(&format!(
                "  - name: c{i}-{j}\n    issuer: test\n    audiences: [{aud}]\n{subject}    \
                 mode: {}\n    oneTimeUse: {once}\n    claimMappings:\n      via: '\"c{i}-{j}\"'\n{}",
                if audit { "audit" } else { "enforce" },
                if short { "    maxTokenLifetime: 5m\n" } else { "" },
            ));
        }
        if *managed {
            // A managed identity needs a credential to load: one that never matches.
            list.push_str(&format!(
                "  - name: c{i}-never\n    issuer: test\n    audiences: [api://trustbridge]\n    \
                 subject: never\n"
            ));
        }
        let credentials = if list.is_empty() {
            "federatedCredentials: []\n".to_string()
        } else {
            format!("federatedCredentials:\n{list}")
        };
        let roles = "appRoleAssignments: [{resource: api://payments, roles: [Payments.Read]}]\n";
        if *managed {
            text.push_str(&format!(
                "---\nkind: ManagedIdentity\ntenant: contoso\nname: id-{i}\n{credentials}{roles}"
            ));
        } else {
            text.push_str(&format!(
                "---\nkind: Application\nname: id-{i}\n{credentials}---\nkind: ServicePrincipal\n\
                 application: id-{i}\ntenant: contoso\n{roles}"
            ));
        }
    }
    text
}

fn cred() -> impl Strategy<Value = Cred> {
    (0u8..4, 0u8..2, any::<bool>(), any::<bool>(), any::<bool>())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn decisions_ignore_audit_mode_credentials(
        identities in prop::collection::vec(
            (any::<bool>(), prop::collection::vec(cred(), 0..4)),
            1..4,
        ),
        sub in 0u8..3,
        aud in 0u8..2,
        x in 0u8..2,
        client in prop::option::of(0usize..4),
        exchange in any::<bool>(),
    ) {
        let with = crate::exchange::testkit::policies(&generated_yaml(&identities, true));
        let without = crate::exchange::testkit::policies(&generated_yaml(&identities, false));
        let sub = ["repo:o/a:ref:refs/heads/main", "repo:o/b:ref:refs/heads/main", "repo:p/c:ref:refs/heads/main"][sub as usize];
        let mut t = crate::exchange::testkit::validated(
            "test",
            Some(sub),
            ["api://trustbridge", "api://other"][aud as usize],
            json!({"x": x.to_string()}),
        );
        t.aud.push("api://unrelated".into());
        let client_id = client.map(|i| format!("id-{i}"));
        let grant = match (exchange, &client_id) {
            (false, Some(_)) => GrantType::ClientCredentials,
            _ => GrantType::TokenExchange,
        };
        let req = request(grant, client_id.as_deref());
        let a = run(&t, &req, &with);
        let b = run(&t, &req, &without);
        prop_assert_eq!(format!("{a:?}"), format!("{b:?}"));
        if let Ok(grant) = a {
            prop_assert_eq!(grant.credential_mode, CredentialMode::Enforce);
        }
        // And the indexed lookup still agrees with the full scan.
        let indexed = resolve_by_token(&t, "contoso", &with, Situation::UNKNOWN).map(|(i, c)| (i.label(), c.name.clone()));
        let scanned = resolve_by_scan(&t, "contoso", &with, Situation::UNKNOWN).map(|(i, c)| (i.label(), c.name.clone()));
        prop_assert_eq!(indexed, scanned);
    }
}
