use std::time::{Duration, UNIX_EPOCH};

use serde_json::json;

use super::*;
use crate::exchange::request::{GrantType, Target};

/// The decision fixture, a real policy file (`tests/fixtures/policies/<scenario>/`).
const POLICIES: &str = include_str!("../../../tests/fixtures/policies/decide/policies.yaml");

fn policies() -> PolicySet {
    crate::exchange::testkit::policies(POLICIES)
}

fn token(issuer: &str, sub: &str, aud: &str, extra: serde_json::Value) -> ValidatedToken {
    crate::exchange::testkit::validated(issuer, Some(sub), aud, extra)
}

fn request(client_id: Option<&str>, resource: &str, roles: RequestedRoles) -> ExchangeRequest {
    ExchangeRequest {
        tenant: "contoso".into(),
        grant: if client_id.is_some() {
            GrantType::ClientCredentials
        } else {
            GrantType::TokenExchange
        },
        client_id: client_id.map(str::to_string),
        subject_token: String::new(),
        target: Target {
            resource: resource.into(),
            roles,
            from_scope: true,
        },
        context: Default::default(),
    }
}

/// Decides with the default limits at the epoch, the grant made independent of its inputs
/// (the audit-mode tests use it too).
pub(super) fn run(
    token: &ValidatedToken,
    req: &ExchangeRequest,
    set: &PolicySet,
) -> Result<Grant<'static>, Denial> {
    decide(token, req, set, &Limits::default(), UNIX_EPOCH).map(Grant::into_owned)
}

fn main_token() -> ValidatedToken {
    token(
        "ci",
        "repo:contoso/infra:ref:refs/heads/main",
        "api://trustbridge",
        json!({"repository": "contoso/infra", "repository_owner_id": "1234567"}),
    )
}

#[test]
fn exact_subject_grants_all_assigned_roles_with_mappings_and_smallest_lifetime() {
    let set = policies();
    let grant = run(
        &main_token(),
        &request(Some("deploy-bot"), "api://payments", RequestedRoles::All),
        &set,
    )
    .expect("granted");
    assert_eq!(grant.identity_kind, IdentityKind::ServicePrincipal);
    assert_eq!(grant.identity_name, "deploy-bot");
    assert_eq!(grant.client_id, "6f2d3b1e-0c4a-4d8e-9b7a-1a2b3c4d5e6f");
    assert_eq!(grant.roles, vec!["Payments.Read", "Payments.Write"]);
    assert_eq!(grant.credential, "infra-main");
    assert_eq!(
        grant.mapped_claims.get("repository"),
        Some(&json!("contoso/infra"))
    );
    assert_eq!(grant.lifetime, Duration::from_secs(15 * 60));
    assert_eq!(
        grant.source_subject,
        "repo:contoso/infra:ref:refs/heads/main"
    );
}

#[test]
fn client_id_may_be_app_id_or_name() {
    let set = policies();
    for client in ["deploy-bot", "6f2d3b1e-0c4a-4d8e-9b7a-1a2b3c4d5e6f"] {
        let grant = run(
            &main_token(),
            &request(Some(client), "api://payments", RequestedRoles::All),
            &set,
        )
        .expect("granted");
        assert_eq!(grant.identity_name, "deploy-bot");
    }
}

/// One subject token presented as deploy-bot (client credentials), and what it must get.
struct MatchCase {
    name: &'static str,
    issuer: &'static str,
    sub: Option<&'static str>,
    aud: &'static str,
    claims: serde_json::Value,
    /// The granting credential and the token lifetime in minutes, or the stage of the
    /// furthest failed check and a fragment of its (operator-side) detail.
    want: Result<(&'static str, u64), (MismatchStage, &'static str)>,
}

/// Runs every case against the decision fixture, naming the case that fails.
fn check_match_cases(cases: Vec<MatchCase>) {
    let set = policies();
    let req = request(Some("deploy-bot"), "api://payments", RequestedRoles::All);
    for case in cases {
        let mut t = token(case.issuer, case.sub.unwrap_or(""), case.aud, case.claims);
        if case.sub.is_none() {
            t.sub = None;
        }
        match (run(&t, &req, &set), case.want) {
            (Ok(grant), Ok((credential, minutes))) => {
                assert_eq!(grant.credential, credential, "{}", case.name);
                assert_eq!(grant.lifetime.as_secs(), minutes * 60, "{}", case.name);
            }
            (Err(Denial::NoMatchingCredential { stage, detail }), Err((want, fragment))) => {
                assert_eq!(stage, want, "{}: {detail}", case.name);
                assert!(detail.contains(fragment), "{}: {detail}", case.name);
            }
            (got, want) => panic!("{}: got {got:?}, want {want:?}", case.name),
        }
    }
}

const RELEASE: &str = "repo:contoso/infra:ref:refs/heads/release/v2";

#[test]
fn pattern_and_condition_credential() {
    check_match_cases(vec![
        MatchCase {
            name: "pattern and condition both hold; sp lifetime (30m) under the server's 1h",
            issuer: "ci",
            sub: Some(RELEASE),
            aud: "api://trustbridge",
            claims: json!({"repository_owner_id": "1234567"}),
            want: Ok(("infra-branches", 30)),
        },
        MatchCase {
            name: "pattern holds, condition false",
            issuer: "ci",
            sub: Some(RELEASE),
            aud: "api://trustbridge",
            claims: json!({"repository_owner_id": "999"}),
            want: Err((MismatchStage::Condition, "")),
        },
        MatchCase {
            name: "`*` never crosses '/'",
            issuer: "ci",
            sub: Some("repo:contoso/infra:ref:refs/heads/release/v2/x"),
            aud: "api://trustbridge",
            claims: json!({"repository_owner_id": "1234567"}),
            want: Err((MismatchStage::Subject, "")),
        },
    ]);
}

#[test]
fn condition_that_errors_denies() {
    check_match_cases(vec![MatchCase {
        name: "repository_owner_id missing: the condition errors, which must deny",
        issuer: "ci",
        sub: Some(RELEASE),
        aud: "api://trustbridge",
        claims: json!({}),
        want: Err((MismatchStage::Condition, "could not be evaluated")),
    }]);
}

#[test]
fn mismatch_stages_report_the_furthest_check() {
    check_match_cases(vec![
        MatchCase {
            name: "untrusted issuer",
            issuer: "cluster",
            sub: Some("x"),
            aud: "api://trustbridge",
            claims: json!({}),
            want: Err((MismatchStage::Issuer, "issuer")),
        },
        MatchCase {
            name: "wrong audience",
            issuer: "ci",
            sub: Some("repo:contoso/infra:ref:refs/heads/main"),
            aud: "api://other",
            claims: json!({}),
            want: Err((MismatchStage::Audience, "api://other")),
        },
        MatchCase {
            name: "subjects are case-sensitive",
            issuer: "ci",
            sub: Some("repo:contoso/INFRA:ref:refs/heads/main"),
            aud: "api://trustbridge",
            claims: json!({}),
            want: Err((MismatchStage::Subject, "repo:contoso/INFRA")),
        },
    ]);
}

#[test]
fn token_without_sub_fails_subject_rules() {
    check_match_cases(vec![MatchCase {
        name: "no sub claim",
        issuer: "ci",
        sub: None,
        aud: "api://trustbridge",
        claims: json!({"repository": "contoso/infra", "repository_owner_id": "1234567"}),
        want: Err((MismatchStage::Subject, "")),
    }]);
}

/// One decision over the fixture: who asks for what, and the denial it must get.
struct Case {
    name: &'static str,
    tenant: &'static str,
    client_id: &'static str,
    resource: &'static str,
    want: Denial,
}

#[test]
fn tenant_resource_and_client_must_exist() {
    let set = policies();
    let cases = [
        Case {
            name: "unknown tenant",
            tenant: "nope",
            client_id: "deploy-bot",
            resource: "api://payments",
            want: Denial::UnknownTenant("nope".into()),
        },
        Case {
            name: "unknown resource",
            tenant: "contoso",
            client_id: "deploy-bot",
            resource: "api://nothing",
            want: Denial::UnknownResource("api://nothing".into()),
        },
        Case {
            name: "unknown client",
            tenant: "contoso",
            client_id: "ghost",
            resource: "api://payments",
            want: Denial::UnknownClient("ghost".into()),
        },
        Case {
            name: "no service principal in this tenant",
            tenant: "fabrikam",
            client_id: "deploy-bot",
            resource: "api://payments",
            want: Denial::UnknownClient("deploy-bot".into()),
        },
    ];
    for case in cases {
        let mut req = request(Some(case.client_id), case.resource, RequestedRoles::All);
        req.tenant = case.tenant.into();
        assert_eq!(
            run(&main_token(), &req, &set).unwrap_err(),
            case.want,
            "{}",
            case.name
        );
    }
}

#[test]
fn disabled_service_principal_is_denied() {
    let set = policies();
    let t = token(
        "ci",
        "repo:contoso/disabled:ref:refs/heads/main",
        "api://disabled",
        json!({}),
    );
    let denial = run(
        &t,
        &request(Some("disabled-bot"), "api://payments", RequestedRoles::All),
        &set,
    )
    .unwrap_err();
    assert_eq!(denial, Denial::Disabled("disabled-bot".into()));
}

#[test]
fn roles_follow_assignments_and_scopes() {
    let set = policies();
    let read_only = request(
        Some("deploy-bot"),
        "api://payments",
        RequestedRoles::Specific(vec!["Payments.Read".into()]),
    );
    assert_eq!(
        run(&main_token(), &read_only, &set).expect("granted").roles,
        vec!["Payments.Read"]
    );

    let unassigned = request(Some("deploy-bot"), "api://ledger", RequestedRoles::All);
    assert!(matches!(
        run(&main_token(), &unassigned, &set).unwrap_err(),
        Denial::NotAssigned { .. }
    ));

    let nightly = token(
        "ci",
        "repo:contoso/nightly:ref:refs/heads/main",
        "api://nightly",
        json!({}),
    );
    let too_much = request(
        Some("nightly-job"),
        "api://ledger",
        RequestedRoles::Specific(vec!["Ledger.Read".into(), "Ledger.Write".into()]),
    );
    assert_eq!(
        run(&nightly, &too_much, &set).unwrap_err(),
        Denial::RolesNotAssigned(vec!["Ledger.Write".into()])
    );
}

fn k8s_token(namespace: &str, sa: &str) -> ValidatedToken {
    token(
        "cluster",
        &format!("system:serviceaccount:{namespace}:{sa}"),
        "api://trustbridge",
        json!({"kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": sa, "uid": "u"}}}),
    )
}

#[test]
fn workload_identities_are_distinct_and_stable() {
    let set = policies();
    let req = request(None, "api://payments", RequestedRoles::All);
    let a = run(&k8s_token("team-a", "builder"), &req, &set).expect("granted");
    let a_again = run(&k8s_token("team-a", "builder"), &req, &set).expect("granted");
    let b = run(&k8s_token("team-b", "builder"), &req, &set).expect("granted");
    assert_eq!(a.identity_kind, IdentityKind::WorkloadIdentity);
    assert_eq!(a.identity_name, "k8s/team-a/builder");
    assert_eq!(a.object_id, a_again.object_id);
    assert_eq!(a.client_id, a_again.client_id);
    assert_ne!(a.object_id, b.object_id);
    assert_ne!(a.object_id, a.client_id);
    assert_eq!(a.roles, vec!["Payments.Read"]);

    // Named by client_id: its computed name works, another workload's does not.
    let named = request(
        Some("k8s/team-a/builder"),
        "api://payments",
        RequestedRoles::All,
    );
    assert_eq!(
        run(&k8s_token("team-a", "builder"), &named, &set)
            .expect("granted")
            .object_id,
        a.object_id
    );
    let by_client_id = request(Some(&a.client_id), "api://payments", RequestedRoles::All);
    assert_eq!(
        run(&k8s_token("team-a", "builder"), &by_client_id, &set)
            .expect("granted")
            .object_id,
        a.object_id
    );
    assert!(matches!(
        run(&k8s_token("team-b", "builder"), &named, &set).unwrap_err(),
        Denial::UnknownClient(_)
    ));

    // The condition still applies.
    let denial = run(&k8s_token("kube-system", "builder"), &req, &set).unwrap_err();
    assert!(matches!(
        denial,
        Denial::NoMatchingCredential {
            stage: MismatchStage::Condition,
            ..
        }
    ));
}

#[test]
fn name_template_errors_deny() {
    let set = policies();
    let req = request(None, "api://payments", RequestedRoles::All);
    // namespace passes the condition but serviceaccount is missing: nameFrom errors.
    let t = token(
        "cluster",
        "system:serviceaccount:team-a:x",
        "api://trustbridge",
        json!({"kubernetes.io": {"namespace": "team-a"}}),
    );
    assert!(matches!(
        run(&t, &req, &set).unwrap_err(),
        Denial::NameTemplate(_)
    ));
}

#[test]
fn user_assigned_managed_identity_by_name_and_client_id() {
    let set = policies();
    let nightly = token(
        "ci",
        "repo:contoso/nightly:ref:refs/heads/main",
        "api://nightly",
        json!({}),
    );
    let by_name = run(
        &nightly,
        &request(Some("nightly-job"), "api://ledger", RequestedRoles::All),
        &set,
    )
    .expect("granted");
    assert_eq!(by_name.identity_kind, IdentityKind::ManagedIdentity);
    let by_id = run(
        &nightly,
        &request(
            Some(&by_name.client_id),
            "api://ledger",
            RequestedRoles::All,
        ),
        &set,
    )
    .expect("granted");
    assert_eq!(by_id.object_id, by_name.object_id);
    // Without client_id the token alone selects it.
    let implicit = run(
        &nightly,
        &request(None, "api://ledger", RequestedRoles::All),
        &set,
    )
    .expect("granted");
    assert_eq!(implicit.object_id, by_name.object_id);
}

#[test]
fn no_match_without_client_id_reports_best_failure() {
    let set = policies();
    let t = token(
        "ci",
        "repo:contoso/unknown:ref:refs/heads/main",
        "api://trustbridge",
        json!({}),
    );
    let denial = run(
        &t,
        &request(None, "api://payments", RequestedRoles::All),
        &set,
    )
    .unwrap_err();
    assert!(
        matches!(
            denial,
            Denial::NoMatchingCredential {
                stage: MismatchStage::Subject,
                ..
            }
        ),
        "{denial:?}"
    );
}

#[test]
fn echoed_values_are_bounded() {
    let set = policies();
    let long = "x".repeat(5000);
    let t = token("ci", &long, "api://trustbridge", json!({}));
    let denial = run(
        &t,
        &request(Some("deploy-bot"), "api://payments", RequestedRoles::All),
        &set,
    )
    .unwrap_err();
    assert!(
        denial.to_string().len() < 400,
        "{}",
        denial.to_string().len()
    );
}
