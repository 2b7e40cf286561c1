use serde_json::json;

use super::*;
use crate::exchange::Situation;
use crate::exchange::request::RequestedRoles;

const POLICIES: &str = r#"
kind: Issuer
name: ci
issuer: https://ci.example.com
jwksUri: https://ci.example.com/keys
---
kind: Issuer
name: other
issuer: https://other.example.com
jwksUri: https://other.example.com/keys
---
kind: Tenant
name: contoso
---
kind: Application
name: payments-api
identifierUris: [api://payments]
appRoles:
  - value: Payments.Read
  - value: Payments.Write
---
kind: Application
name: ledger-api
identifierUris: [api://ledger]
appRoles:
  - value: Ledger.Read
---
kind: Application
name: deploy-bot
federatedCredentials:
  - name: main
    issuer: ci
    audiences: [api://trustbridge]
    subject: repo:contoso/infra:ref:refs/heads/main
    claimMappings:
      repository: claims.repository
  - name: release
    issuer: ci
    audiences: [api://trustbridge]
    subjectPattern: repo:contoso/infra:ref:refs/heads/release/*
    condition: claims.repository_owner_id == "42"
  - name: tightened
    issuer: ci
    audiences: [api://trustbridge]
    subject: repo:contoso/infra:ref:refs/heads/main
    condition: claims.environment == "prod"
    mode: audit
  - name: elsewhere
    issuer: other
    audiences: [api://trustbridge]
    subject: x
---
kind: ServicePrincipal
application: deploy-bot
tenant: contoso
appRoleAssignments:
  - resource: api://payments
    roles: [Payments.Read]
---
kind: Application
name: off-bot
federatedCredentials:
  - name: c
    issuer: ci
    audiences: [api://off]
    subject: off
---
kind: ServicePrincipal
application: off-bot
tenant: contoso
enabled: false
appRoleAssignments:
  - resource: api://payments
    roles: [Payments.Read]
---
kind: ManagedIdentity
tenant: contoso
nameFrom: '"k8s/" + claims.ns'
federatedCredentials:
  - name: cluster
    issuer: ci
    audiences: [api://k8s]
    subjectPattern: system:serviceaccount:*:*
appRoleAssignments:
  - resource: api://payments
    roles: [Payments.Read]
"#;

fn policies() -> PolicySet {
    crate::exchange::testkit::policies(POLICIES)
}

fn token(sub: &str, aud: &str, extra: serde_json::Value) -> ValidatedToken {
    crate::exchange::testkit::validated("ci", Some(sub), aud, extra)
}

fn target(resource: &str, roles: RequestedRoles) -> Target {
    Target {
        resource: resource.into(),
        roles,
        from_scope: true,
    }
}

fn find<'a>(e: &'a Explanation, credential: &str) -> &'a CandidateTrace {
    e.candidates
        .iter()
        .find(|c| c.credential == credential)
        .unwrap_or_else(|| panic!("no candidate {credential} in {e:#?}"))
}

fn status(c: &CandidateTrace, kind: CheckKind) -> (Status, &str) {
    let check = c
        .checks
        .iter()
        .find(|k| k.kind == kind)
        .unwrap_or_else(|| panic!("no {kind:?} check in {c:#?}"));
    (check.status, check.detail.as_str())
}

const MAIN: &str = "repo:contoso/infra:ref:refs/heads/main";

#[test]
fn allow_shows_every_check_passing_with_values() {
    let set = policies();
    let t = token(
        MAIN,
        "api://trustbridge",
        json!({"repository": "contoso/infra"}),
    );
    let all = target("api://payments", RequestedRoles::All);
    let e = explain(
        &t,
        Query {
            tenant: "contoso",
            client_id: Some("deploy-bot"),
            target: Some(&all),
            request: Situation::UNKNOWN,
        },
        &set,
    );
    assert!(e.notes.is_empty(), "{e:#?}");
    // Only deploy-bot's credentials are candidates when client_id names it.
    let names: Vec<&str> = e.candidates.iter().map(|c| c.credential.as_str()).collect();
    assert_eq!(names, ["main", "release", "tightened", "elsewhere"]);
    let main = find(&e, "main");
    assert!(main.matched());
    assert_eq!(main.identity, "deploy-bot");
    assert!(
        main.declared_at
            .ends_with("all.yaml#6 federatedCredentials[0]"),
        "{}",
        main.declared_at
    );
    let (s, d) = status(main, CheckKind::Issuer);
    assert_eq!(s, Status::Pass);
    assert!(
        d.contains("'ci'") && d.contains("https://ci.example.com"),
        "{d}"
    );
    let (s, d) = status(main, CheckKind::Audience);
    assert_eq!(s, Status::Pass);
    assert!(d.contains("['api://trustbridge']"), "{d}");
    let (s, d) = status(main, CheckKind::Subject);
    assert_eq!(
        (s, d),
        (
            Status::Pass,
            format!("sub '{MAIN}' equals '{MAIN}'").as_str()
        )
    );
    let (s, d) = status(main, CheckKind::Enabled);
    assert_eq!((s, d), (Status::Pass, "deploy-bot is enabled"));
    let (s, d) = status(main, CheckKind::RoleAssignment);
    assert_eq!(
        (s, d),
        (Status::Pass, "roles on 'api://payments': Payments.Read")
    );
    assert_eq!(status(main, CheckKind::ClaimMappings).0, Status::Pass);

    let text = e.to_string();
    assert!(text.contains("deploy-bot / main  ("), "{text}");
    assert!(text.contains("MATCH"), "{text}");
    assert!(text.contains("  pass issuer"), "{text}");
    assert!(text.contains("  FAIL subject"), "{text}");
}

#[test]
fn each_credential_check_failure_names_the_values() {
    let set = policies();
    let all = target("api://payments", RequestedRoles::All);
    let q = |client: &'static str| Query {
        tenant: "contoso",
        client_id: Some(client),
        target: None,
        request: Situation::UNKNOWN,
    };

    // issuer: 'elsewhere' trusts another issuer.
    let e = explain(
        &token(MAIN, "api://trustbridge", json!({})),
        q("deploy-bot"),
        &set,
    );
    let (s, d) = status(find(&e, "elsewhere"), CheckKind::Issuer);
    assert_eq!(s, Status::Fail);
    assert!(d.contains("≠ credential issuer 'other'"), "{d}");

    // audience
    let e = explain(
        &token(MAIN, "api://wrong", json!({})),
        q("deploy-bot"),
        &set,
    );
    let (s, d) = status(find(&e, "main"), CheckKind::Audience);
    assert_eq!(s, Status::Fail);
    assert!(
        d.contains("['api://wrong']") && d.contains("['api://trustbridge']"),
        "{d}"
    );

    // subject, exact and pattern
    let e = explain(
        &token(
            "repo:contoso/infra:ref:refs/heads/dev",
            "api://trustbridge",
            json!({}),
        ),
        q("deploy-bot"),
        &set,
    );
    let (s, d) = status(find(&e, "main"), CheckKind::Subject);
    assert_eq!(s, Status::Fail);
    assert!(d.contains("differs from"), "{d}");
    let (s, d) = status(find(&e, "release"), CheckKind::Subject);
    assert_eq!(s, Status::Fail);
    assert!(
        d.contains("does not match pattern 'repo:contoso/infra:ref:refs/heads/release/*'"),
        "{d}"
    );

    // condition false, and condition erroring (missing claim)
    let rel = "repo:contoso/infra:ref:refs/heads/release/1";
    let e = explain(
        &token(
            rel,
            "api://trustbridge",
            json!({"repository_owner_id": "7"}),
        ),
        q("deploy-bot"),
        &set,
    );
    let (s, d) = status(find(&e, "release"), CheckKind::Condition);
    assert_eq!(s, Status::Fail);
    assert!(
        d.contains("claims.repository_owner_id == \"42\"") && d.contains("is false"),
        "{d}"
    );
    let e = explain(
        &token(rel, "api://trustbridge", json!({})),
        q("deploy-bot"),
        &set,
    );
    let (s, d) = status(find(&e, "release"), CheckKind::Condition);
    assert_eq!(s, Status::Fail);
    assert!(d.contains("could not be evaluated"), "{d}");

    // claim mapping failing (claims.repository missing)
    let e = explain(
        &token(MAIN, "api://trustbridge", json!({})),
        q("deploy-bot"),
        &set,
    );
    let (s, d) = status(find(&e, "main"), CheckKind::ClaimMappings);
    assert_eq!(s, Status::Fail);
    assert!(d.contains("claim 'repository'"), "{d}");
    // Without a target the role check is skipped, not failed.
    assert_eq!(
        status(find(&e, "main"), CheckKind::RoleAssignment).0,
        Status::Skipped
    );
    let _ = all;
}

#[test]
fn identity_level_failures() {
    let set = policies();
    let payments = target("api://payments", RequestedRoles::All);
    let ledger = target("api://ledger", RequestedRoles::All);
    let write = target(
        "api://payments",
        RequestedRoles::Specific(vec!["Payments.Write".into()]),
    );
    let missing = target("api://nothing", RequestedRoles::All);

    // disabled
    let e = explain(
        &token("off", "api://off", json!({})),
        Query {
            tenant: "contoso",
            client_id: Some("off-bot"),
            target: Some(&payments),
            request: Situation::UNKNOWN,
        },
        &set,
    );
    let (s, d) = status(find(&e, "c"), CheckKind::Enabled);
    assert_eq!((s, d), (Status::Fail, "off-bot is disabled"));

    let t = token(MAIN, "api://trustbridge", json!({"repository": "r"}));
    let q = |target| Query {
        tenant: "contoso",
        client_id: Some("deploy-bot"),
        target: Some(target),
        request: Situation::UNKNOWN,
    };
    // not assigned
    let e = explain(&t, q(&ledger), &set);
    let (s, d) = status(find(&e, "main"), CheckKind::RoleAssignment);
    assert_eq!(s, Status::Fail);
    assert!(
        d.contains("not assigned to a role of resource 'api://ledger'"),
        "{d}"
    );
    // roles not assigned
    let e = explain(&t, q(&write), &set);
    let (s, d) = status(find(&e, "main"), CheckKind::RoleAssignment);
    assert_eq!(s, Status::Fail);
    assert!(d.contains("Payments.Write"), "{d}");
    // unknown resource: a note and a failed role check
    let e = explain(&t, q(&missing), &set);
    assert_eq!(e.notes, ["resource 'api://nothing' was not found"]);
    assert_eq!(
        status(find(&e, "main"), CheckKind::RoleAssignment).0,
        Status::Fail
    );

    // name template: missing claim fails, present claim names the identity
    let pod = token("system:serviceaccount:a:b", "api://k8s", json!({}));
    let e = explain(
        &pod,
        Query {
            tenant: "contoso",
            client_id: None,
            target: Some(&payments),
            request: Situation::UNKNOWN,
        },
        &set,
    );
    let (s, d) = status(find(&e, "cluster"), CheckKind::NameTemplate);
    assert_eq!(s, Status::Fail);
    assert!(d.contains("claims.ns"), "{d}");
    let pod = token("system:serviceaccount:a:b", "api://k8s", json!({"ns": "a"}));
    let e = explain(
        &pod,
        Query {
            tenant: "contoso",
            client_id: None,
            target: Some(&payments),
            request: Situation::UNKNOWN,
        },
        &set,
    );
    let c = find(&e, "cluster");
    assert!(c.matched(), "{c:#?}");
    assert_eq!(
        status(c, CheckKind::NameTemplate).1,
        "nameFrom yields 'k8s/a'"
    );
}

#[test]
fn unknown_tenant_and_unknown_client_are_notes() {
    let set = policies();
    let t = token(MAIN, "api://trustbridge", json!({}));
    let e = explain(
        &t,
        Query {
            tenant: "nope",
            client_id: None,
            target: None,
            request: Situation::UNKNOWN,
        },
        &set,
    );
    assert_eq!(e.notes, ["tenant 'nope' not found"]);
    assert!(e.candidates.is_empty());
    assert!(e.to_string().contains("no candidate credentials"));

    let e = explain(
        &t,
        Query {
            tenant: "contoso",
            client_id: Some("ghost"),
            target: None,
            request: Situation::UNKNOWN,
        },
        &set,
    );
    assert_eq!(e.notes.len(), 1);
    assert!(
        e.notes[0].contains("'ghost' was not found") && e.notes[0].contains("every identity"),
        "{:?}",
        e.notes
    );
    // Every identity's credentials are listed instead.
    assert!(e.candidates.iter().any(|c| c.identity == "off-bot"));
    assert!(e.candidates.iter().any(|c| c.identity == "deploy-bot"));
}

#[test]
fn audit_mode_evaluates_only_audit_credentials_of_the_issuer() {
    let set = policies();
    let t = token(MAIN, "api://trustbridge", json!({"environment": "dev"}));
    let payments = target("api://payments", RequestedRoles::All);
    let q = Query {
        tenant: "contoso",
        client_id: Some("deploy-bot"),
        target: Some(&payments),
        request: Situation::UNKNOWN,
    };
    let verdicts = audit_mode(&t, q, &set);
    assert_eq!(verdicts.len(), 1);
    assert_eq!(verdicts[0].credential, "tightened");
    assert_eq!(verdicts[0].mode, CredentialMode::Audit);
    assert!(!verdicts[0].matched());
    assert_eq!(
        verdicts[0].first_failure().map(|f| f.kind),
        Some(CheckKind::Condition)
    );
    let t = token(MAIN, "api://trustbridge", json!({"environment": "prod"}));
    assert!(audit_mode(&t, q, &set)[0].matched());
    // The audit credential never grants: the decision still comes from 'main'.
    let e = explain(&t, q, &set);
    assert!(
        e.to_string()
            .contains("MATCH (audit mode: logged, never grants)")
    );
}

#[test]
fn summary_is_short_and_names_the_closest_failures() {
    let set = policies();
    let t = token(
        "repo:contoso/infra:ref:refs/heads/dev",
        "api://trustbridge",
        json!({}),
    );
    let e = explain(
        &t,
        Query {
            tenant: "contoso",
            client_id: Some("deploy-bot"),
            target: None,
            request: Situation::UNKNOWN,
        },
        &set,
    );
    let s = e.summary(2);
    assert_eq!(s.len(), 3, "{s:?}");
    assert!(
        s[0].starts_with(
            "deploy-bot/main: subject failed: sub 'repo:contoso/infra:ref:refs/heads/dev'"
        ),
        "{s:?}"
    );
    assert!(s[1].contains("subject failed"), "{s:?}");
    assert_eq!(s[2], "… and 1 more");

    let other = ValidatedToken {
        issuer_name: "nobody".into(),
        ..t.clone()
    };
    let e = explain(
        &other,
        Query {
            tenant: "contoso",
            client_id: Some("deploy-bot"),
            target: None,
            request: Situation::UNKNOWN,
        },
        &set,
    );
    assert_eq!(
        e.summary(3),
        ["none of 4 candidate credential(s) trusts the token's issuer"]
    );
    let e = explain(
        &t,
        Query {
            tenant: "nope",
            client_id: None,
            target: None,
            request: Situation::UNKNOWN,
        },
        &set,
    );
    assert_eq!(e.summary(3), ["tenant 'nope' not found"]);
}
