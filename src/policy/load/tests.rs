//! Loader and compiler tests: real files in a temporary directory, through [`load_dir`].

use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::jose::SigningAlgorithm;
use crate::policy::model::{self, KeySourceSpec, ManagedIdentityName, SubjectRule};
use crate::policy::presets::Preset;

/// A valid base every problem case is added to, so each case shows exactly its own problem.
const BASE: &str = r#"
kind: Issuer
name: github
issuer: https://token.actions.githubusercontent.com
preset: github
---
kind: Issuer
name: prod-eu-cluster
issuer: https://k8s.prod-eu.example
preset: kubernetes
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
name: deploy-bot
appId: 6f2d3b1e-0c4a-4d8e-9b7a-1a2b3c4d5e6f
federatedCredentials:
  - name: infra-main
    issuer: github
    audiences: [api://trustbridge]
    subject: repo:contoso/infra:ref:refs/heads/main
---
kind: ServicePrincipal
application: deploy-bot
tenant: contoso
appRoleAssignments:
  - resource: api://payments
    roles: [Payments.Read]
"#;

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

fn load(files: &[(&str, &str)]) -> Result<PolicySet, LoadErrors> {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), files);
    load_dir(dir.path())
}

fn problems(files: &[(&str, &str)]) -> Vec<Problem> {
    match load(files) {
        Ok(_) => panic!("expected problems, the set loaded"),
        Err(LoadErrors(problems)) => problems,
    }
}

#[test]
fn base_is_valid() {
    load(&[("00-base.yaml", BASE)]).unwrap();
}

/// One problem case: `doc` is appended as `case.yaml`; exactly one problem is expected, in
/// document `document` of that file, at `path`, with `message` in its text.
struct Case {
    name: &'static str,
    doc: &'static str,
    document: usize,
    path: &'static str,
    message: &'static str,
}

const fn case(
    name: &'static str,
    doc: &'static str,
    path: &'static str,
    message: &'static str,
) -> Case {
    Case {
        name,
        doc,
        document: 1,
        path,
        message,
    }
}

fn cases() -> Vec<Case> {
    vec![
        // --- loader ---
        case(
            "unknown kind",
            "kind: Issuers\nname: a",
            "kind",
            "unknown kind \"Issuers\"; expected one of Issuer, Tenant",
        ),
        case("missing kind", "name: a", "", "document has no `kind`"),
        case(
            "kind not a string",
            "kind: [Issuer]",
            "kind",
            "kind must be a string",
        ),
        case("not a mapping", "- kind: Tenant", "", "must be a mapping"),
        case(
            "unknown field",
            "kind: Tenant\nname: a\nlabel: b",
            "label",
            "unknown field `label`, expected `name`",
        ),
        case(
            "wrong type",
            "kind: Tenant\nname: [a]",
            "name",
            "invalid type: sequence, expected a string",
        ),
        case("missing field", "kind: Tenant", "", "missing field `name`"),
        case("yaml syntax", "kind: Tenant\nname: [a", "", "invalid YAML"),
        Case {
            name: "empty documents keep their index",
            doc: "kind: Tenant\nname: fabrikam\n---\n# nothing here\n---\nkind: Tenant\nname: bad/x\n",
            document: 3,
            path: "name",
            message: "tenant name \"bad/x\" is invalid",
        },
        case(
            "nested unknown field",
            "kind: Application\nname: x\nfederatedCredentials:\n  - name: a\n    issuer: github\n    audiences: [b]\n    subjectPatern: x\n",
            "federatedCredentials[0].subjectPatern",
            "unknown field `subjectPatern`",
        ),
        case(
            "nested wrong type",
            "kind: ServicePrincipal\napplication: payments-api\ntenant: contoso\nenabled: sometimes",
            "enabled",
            "invalid type",
        ),
        // --- Issuer ---
        case(
            "duplicate issuer name",
            "kind: Issuer\nname: github\nissuer: https://other.example",
            "name",
            "duplicate Issuer name \"github\" (first declared at",
        ),
        case(
            "duplicate issuer url",
            "kind: Issuer\nname: gh2\nissuer: https://token.actions.githubusercontent.com",
            "issuer",
            "is already declared at",
        ),
        case(
            "issuer over http",
            "kind: Issuer\nname: a\nissuer: http://127.0.0.1:9",
            "issuer",
            "uses http; use https",
        ),
        case(
            "issuer not a url",
            "kind: Issuer\nname: a\nissuer: token.example",
            "issuer",
            "has no scheme",
        ),
        case(
            "issuer with query",
            "kind: Issuer\nname: a\nissuer: https://a.example/?x=1",
            "issuer",
            "query or fragment",
        ),
        case(
            "issuer with whitespace",
            "kind: Issuer\nname: a\nissuer: ' https://a.example'",
            "issuer",
            "whitespace",
        ),
        case(
            "issuer with fragment",
            "kind: Issuer\nname: a\nissuer: https://a.example/#x",
            "issuer",
            "query or fragment",
        ),
        case(
            "issuer with credentials",
            "kind: Issuer\nname: a\nissuer: https://u:p@a.example",
            "issuer",
            "credentials",
        ),
        case(
            "issuer other scheme",
            "kind: Issuer\nname: a\nissuer: ftp://a.example",
            "issuer",
            "scheme \"ftp\"",
        ),
        case(
            "two key sources",
            "kind: Issuer\nname: a\nissuer: https://a.example\njwksUri: https://a.example/keys\ndemo: true",
            "",
            "at most one of jwksUri, jwksFile and demo",
        ),
        case(
            "jwksUri over http",
            "kind: Issuer\nname: a\nissuer: https://a.example\njwksUri: http://a.example/keys",
            "jwksUri",
            "uses http",
        ),
        case(
            "jwksFile missing",
            "kind: Issuer\nname: a\nissuer: https://a.example\njwksFile: keys/missing.json",
            "jwksFile",
            "does not exist",
        ),
        case(
            "alg none",
            "kind: Issuer\nname: a\nissuer: https://a.example\nalgorithms: [none]",
            "algorithms[0]",
            "\"none\" is never allowed",
        ),
        case(
            "alg HS256",
            "kind: Issuer\nname: a\nissuer: https://a.example\nalgorithms: [RS256, HS256]",
            "algorithms[1]",
            "HMAC (HS*)",
        ),
        case(
            "alg unknown",
            "kind: Issuer\nname: a\nissuer: https://a.example\nalgorithms: [RS1024]",
            "algorithms[0]",
            "unsupported algorithm \"RS1024\"; supported (case-sensitive): RS256",
        ),
        case(
            "alg empty",
            "kind: Issuer\nname: a\nissuer: https://a.example\nalgorithms: []",
            "algorithms",
            "algorithms is empty",
        ),
        case(
            "alg duplicate",
            "kind: Issuer\nname: a\nissuer: https://a.example\nalgorithms: [ES256, ES256]",
            "algorithms[1]",
            "duplicate algorithm",
        ),
        case(
            "leeway too long",
            "kind: Issuer\nname: a\nissuer: https://a.example\nleeway: 10m",
            "leeway",
            "longer than the maximum 5m",
        ),
        case(
            "leeway not a duration",
            "kind: Issuer\nname: a\nissuer: https://a.example\nleeway: soon",
            "leeway",
            "invalid duration \"soon\"",
        ),
        case(
            "leeway a number",
            "kind: Issuer\nname: a\nissuer: https://a.example\nleeway: 60",
            "leeway",
            "a duration such as",
        ),
        case(
            "fetch timeout out of range",
            "kind: Issuer\nname: a\nissuer: https://a.example\nfetch: {timeout: 10m}",
            "fetch.timeout",
            "10m is outside the allowed range 100ms to 2m",
        ),
        case(
            "fetch cooldown zero",
            "kind: Issuer\nname: a\nissuer: https://a.example\nfetch: {refreshCooldown: 0s}",
            "fetch.refreshCooldown",
            "outside the allowed range 1s to 1h",
        ),
        case(
            "fetch document size too large",
            "kind: Issuer\nname: a\nissuer: https://a.example\nfetch: {maxDocumentSize: 64MiB}",
            "fetch.maxDocumentSize",
            "64MiB is outside the allowed range 1KiB to 4MiB",
        ),
        case(
            "fetch document size too small",
            "kind: Issuer\nname: a\nissuer: https://a.example\nfetch: {maxDocumentSize: 10}",
            "fetch.maxDocumentSize",
            "10B is outside the allowed range",
        ),
        case(
            "fetch document size not a size",
            "kind: Issuer\nname: a\nissuer: https://a.example\nfetch: {maxDocumentSize: lots}",
            "fetch.maxDocumentSize",
            "is not a size",
        ),
        case(
            "fetch document size negative",
            "kind: Issuer\nname: a\nissuer: https://a.example\nfetch: {maxDocumentSize: -1}",
            "fetch.maxDocumentSize",
            "sizes are not negative",
        ),
        case(
            "fetch TTL bounds crossed",
            "kind: Issuer\nname: a\nissuer: https://a.example\nfetch: {minTtl: 2h, maxTtl: 1h}",
            "fetch",
            "fetch.minTtl (2h) must not be longer than fetch.maxTtl (1h)",
        ),
        case(
            "fetch connect timeout is global only",
            "kind: Issuer\nname: a\nissuer: https://a.example\nfetch: {connectTimeout: 1s}",
            "fetch.connectTimeout",
            "unknown field `connectTimeout`",
        ),
        case(
            "unknown preset",
            "kind: Issuer\nname: a\nissuer: https://a.example\npreset: jenkins",
            "preset",
            "unknown variant `jenkins`",
        ),
        // --- Tenant ---
        case(
            "tenant slash",
            "kind: Tenant\nname: a/b",
            "name",
            "URL path segment",
        ),
        case(
            "tenant empty",
            "kind: Tenant\nname: ''",
            "name",
            "is invalid",
        ),
        case(
            "tenant too long",
            "kind: Tenant\nname: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "name",
            "1 to 64 characters",
        ),
        case(
            "tenant dotdot",
            "kind: Tenant\nname: '..'",
            "name",
            "relative path segment",
        ),
        case(
            "duplicate tenant",
            "kind: Tenant\nname: contoso",
            "name",
            "duplicate Tenant \"contoso\"",
        ),
        // --- Application ---
        case(
            "duplicate application",
            "kind: Application\nname: payments-api",
            "name",
            "duplicate Application \"payments-api\"",
        ),
        case(
            "duplicate appId",
            "kind: Application\nname: x\nappId: 6f2d3b1e-0c4a-4d8e-9b7a-1a2b3c4d5e6f",
            "appId",
            "already the client id of application \"deploy-bot\"",
        ),
        case(
            "appId is another name",
            "kind: Application\nname: x\nappId: deploy-bot",
            "appId",
            "is the name of another application",
        ),
        case(
            "duplicate identifierUri",
            "kind: Application\nname: x\nidentifierUris: [api://payments]",
            "identifierUris[0]",
            "\"api://payments\" is already declared at",
        ),
        case(
            "identifierUri trailing slash",
            "kind: Application\nname: x\nidentifierUris: [api://x/]",
            "identifierUris[0]",
            "not end with '/'",
        ),
        case(
            "identifierUri whitespace",
            "kind: Application\nname: x\nidentifierUris: ['api://a b']",
            "identifierUris[0]",
            "whitespace",
        ),
        case(
            "duplicate role",
            "kind: Application\nname: x\nappRoles: [{value: R}, {value: R}]",
            "appRoles[1].value",
            "duplicate role value \"R\"",
        ),
        case(
            "role with slash",
            "kind: Application\nname: x\nappRoles: [{value: a/b}]",
            "appRoles[0].value",
            "whitespace or '/'",
        ),
        case(
            "role empty",
            "kind: Application\nname: x\nappRoles: [{value: ''}]",
            "appRoles[0].value",
            "non-empty",
        ),
        // --- FederatedCredential ---
        case(
            "unknown issuer",
            "kind: Application\nname: x\nfederatedCredentials:\n  - name: c\n    issuer: gh\n    audiences: [a]\n    subject: s\n",
            "federatedCredentials[0].issuer",
            "unknown issuer \"gh\"; declared Issuers: github, prod-eu-cluster",
        ),
        case(
            "no audiences",
            "kind: Application\nname: x\nfederatedCredentials:\n  - name: c\n    issuer: github\n    subject: s\n",
            "federatedCredentials[0].audiences",
            "at least one audience",
        ),
        case(
            "empty audience",
            "kind: Application\nname: x\nfederatedCredentials:\n  - name: c\n    issuer: github\n    audiences: ['']\n    subject: s\n",
            "federatedCredentials[0].audiences[0]",
            "audience is empty",
        ),
        case(
            "subject and pattern",
            "kind: Application\nname: x\nfederatedCredentials:\n  - name: c\n    issuer: github\n    audiences: [a]\n    subject: s\n    subjectPattern: s*\n",
            "federatedCredentials[0]",
            "only one of subject (exact) and subjectPattern",
        ),
        case(
            "no subject rule",
            "kind: Application\nname: x\nfederatedCredentials:\n  - name: c\n    issuer: github\n    audiences: [a]\n",
            "federatedCredentials[0]",
            "at least one of subject, subjectPattern and condition",
        ),
        case(
            "empty subject",
            "kind: Application\nname: x\nfederatedCredentials:\n  - name: c\n    issuer: github\n    audiences: [a]\n    subject: ''\n",
            "federatedCredentials[0].subject",
            "subject is empty",
        ),
        case(
            "bad pattern",
            "kind: Application\nname: x\nfederatedCredentials:\n  - name: c\n    issuer: github\n    audiences: [a]\n    subjectPattern: 'repo:***'\n",
            "federatedCredentials[0].subjectPattern",
            "run of 3",
        ),
        case(
            "bad condition",
            "kind: Application\nname: x\nfederatedCredentials:\n  - name: c\n    issuer: github\n    audiences: [a]\n    condition: 'claims.sub =='\n",
            "federatedCredentials[0].condition",
            "invalid CEL expression",
        ),
        case(
            "quadratic condition",
            "kind: Application\nname: x\nfederatedCredentials:\n  - name: c\n    issuer: github\n    audiences: [a]\n    condition: 'claims.groups.exists(g, claims.groups.exists(h, g == h))'\n",
            "federatedCredentials[0].condition",
            "inside a comprehension's predicate",
        ),
        case(
            "condition with unknown variable",
            "kind: Application\nname: x\nfederatedCredentials:\n  - name: c\n    issuer: github\n    audiences: [a]\n    condition: 'claim.sub == \"x\"'\n",
            "federatedCredentials[0].condition",
            "unknown variable \"claim\"",
        ),
        case(
            "reserved mapping",
            "kind: Application\nname: x\nfederatedCredentials:\n  - name: c\n    issuer: github\n    audiences: [a]\n    subject: s\n    claimMappings:\n      sub: claims.sub\n",
            "federatedCredentials[0].claimMappings.sub",
            "claim \"sub\" is reserved",
        ),
        case(
            "bad mapping",
            "kind: Application\nname: x\nfederatedCredentials:\n  - name: c\n    issuer: github\n    audiences: [a]\n    subject: s\n    claimMappings:\n      repo: 'claims.repository +'\n",
            "federatedCredentials[0].claimMappings.repo",
            "invalid CEL expression",
        ),
        case(
            "lifetime too long",
            "kind: Application\nname: x\nfederatedCredentials:\n  - name: c\n    issuer: github\n    audiences: [a]\n    subject: s\n    maxTokenLifetime: 25h\n",
            "federatedCredentials[0].maxTokenLifetime",
            "at most 1day",
        ),
        case(
            "lifetime zero",
            "kind: Application\nname: x\nfederatedCredentials:\n  - name: c\n    issuer: github\n    audiences: [a]\n    subject: s\n    maxTokenLifetime: 0s\n",
            "federatedCredentials[0].maxTokenLifetime",
            "more than 0",
        ),
        case(
            "duplicate credential",
            "kind: Application\nname: x\nfederatedCredentials:\n  - {name: c, issuer: github, audiences: [a], subject: s}\n  - {name: c, issuer: github, audiences: [a], subject: t}\n",
            "federatedCredentials[1].name",
            "duplicate credential name \"c\" (also federatedCredentials[0])",
        ),
        case(
            "empty credential name",
            "kind: Application\nname: x\nfederatedCredentials:\n  - {name: '', issuer: github, audiences: [a], subject: s}\n",
            "federatedCredentials[0].name",
            "credential name is empty",
        ),
        // --- ServicePrincipal ---
        case(
            "sp unknown application",
            "kind: ServicePrincipal\napplication: nope\ntenant: contoso",
            "application",
            "unknown application \"nope\"; declared Applications: deploy-bot, payments-api",
        ),
        case(
            "sp unknown tenant",
            "kind: ServicePrincipal\napplication: payments-api\ntenant: fabrikam",
            "tenant",
            "unknown tenant \"fabrikam\"; declared Tenants: contoso",
        ),
        case(
            "duplicate sp",
            "kind: ServicePrincipal\napplication: deploy-bot\ntenant: contoso",
            "",
            "already has a ServicePrincipal in tenant \"contoso\"",
        ),
        case(
            "unknown resource",
            "kind: ServicePrincipal\napplication: payments-api\ntenant: contoso\nappRoleAssignments:\n  - {resource: 'api://nope', roles: [R]}",
            "appRoleAssignments[0].resource",
            "unknown resource \"api://nope\"; declared identifierUris: api://payments",
        ),
        case(
            "unknown role",
            "kind: ServicePrincipal\napplication: payments-api\ntenant: contoso\nappRoleAssignments:\n  - {resource: 'api://payments', roles: [Payments.Admin]}",
            "appRoleAssignments[0].roles[0]",
            "it exposes: Payments.Read, Payments.Write",
        ),
        case(
            "no roles",
            "kind: ServicePrincipal\napplication: payments-api\ntenant: contoso\nappRoleAssignments:\n  - {resource: 'api://payments', roles: []}",
            "appRoleAssignments[0].roles",
            "at least one role",
        ),
        case(
            "resource twice",
            "kind: ServicePrincipal\napplication: payments-api\ntenant: contoso\nappRoleAssignments:\n  - {resource: 'api://payments', roles: [Payments.Read]}\n  - {resource: 'api://payments', roles: [Payments.Write]}",
            "appRoleAssignments[1].resource",
            "assigned twice",
        ),
        case(
            "sp lifetime",
            "kind: ServicePrincipal\napplication: payments-api\ntenant: contoso\ntokenLifetime: 2d",
            "tokenLifetime",
            "out of range",
        ),
        // --- ManagedIdentity ---
        case(
            "mi both names",
            "kind: ManagedIdentity\ntenant: contoso\nname: a\nnameFrom: claims.sub\nfederatedCredentials:\n  - {name: c, issuer: github, audiences: [a], subject: s}",
            "",
            "exactly one of name",
        ),
        case(
            "mi no name",
            "kind: ManagedIdentity\ntenant: contoso\nfederatedCredentials:\n  - {name: c, issuer: github, audiences: [a], subject: s}",
            "",
            "exactly one of name",
        ),
        case(
            "mi name is an application",
            "kind: ManagedIdentity\ntenant: contoso\nname: payments-api\nfederatedCredentials:\n  - {name: c, issuer: github, audiences: [a], subject: s}",
            "name",
            "also an Application name or appId",
        ),
        case(
            "mi name is an appId",
            "kind: ManagedIdentity\ntenant: contoso\nname: 6f2d3b1e-0c4a-4d8e-9b7a-1a2b3c4d5e6f\nfederatedCredentials:\n  - {name: c, issuer: github, audiences: [a], subject: s}",
            "name",
            "also an Application name or appId",
        ),
        Case {
            name: "duplicate mi name",
            doc: "kind: ManagedIdentity\ntenant: contoso\nname: runner\nfederatedCredentials:\n  - {name: c, issuer: github, audiences: [a], subject: s}\n---\nkind: ManagedIdentity\ntenant: contoso\nname: runner\nfederatedCredentials:\n  - {name: c, issuer: github, audiences: [a], subject: t}",
            document: 2,
            path: "name",
            message: "duplicate managed identity \"runner\" in tenant \"contoso\"",
        },
        Case {
            name: "duplicate mi template",
            doc: "kind: ManagedIdentity\ntenant: contoso\nnameFrom: claims.sub\nfederatedCredentials:\n  - {name: c, issuer: github, audiences: [a], subject: s}\n---\nkind: ManagedIdentity\ntenant: contoso\nnameFrom: claims.sub\nfederatedCredentials:\n  - {name: d, issuer: github, audiences: [b], subject: t}",
            document: 2,
            path: "nameFrom",
            message: "same nameFrom and credential issuers as the one declared at",
        },
        case(
            "mi bad nameFrom",
            "kind: ManagedIdentity\ntenant: contoso\nnameFrom: '\"k8s/\" +'\nfederatedCredentials:\n  - {name: c, issuer: github, audiences: [a], subject: s}",
            "nameFrom",
            "invalid CEL expression",
        ),
        case(
            "mi no credentials",
            "kind: ManagedIdentity\ntenant: contoso\nname: lonely",
            "federatedCredentials",
            "at least one federated credential",
        ),
        case(
            "mi unknown tenant",
            "kind: ManagedIdentity\ntenant: nope\nname: a\nfederatedCredentials:\n  - {name: c, issuer: github, audiences: [a], subject: s}",
            "tenant",
            "unknown tenant \"nope\"",
        ),
        case(
            "mi credential problem path",
            "kind: ManagedIdentity\ntenant: contoso\nname: a\nfederatedCredentials:\n  - {name: c, issuer: github, audiences: [a], subject: s}\n  - {name: d, issuer: nope, audiences: [a], subject: s}",
            "federatedCredentials[1].issuer",
            "unknown issuer \"nope\"",
        ),
        case(
            "mi unknown role",
            "kind: ManagedIdentity\ntenant: contoso\nname: a\nfederatedCredentials:\n  - {name: c, issuer: github, audiences: [a], subject: s}\nappRoleAssignments:\n  - {resource: 'api://payments', roles: [Nope]}",
            "appRoleAssignments[0].roles[0]",
            "role \"Nope\" is not exposed by \"api://payments\" (application \"payments-api\")",
        ),
    ]
}

#[test]
fn every_problem_class_is_reported_with_location_and_path() {
    for case in cases() {
        let found = problems(&[("00-base.yaml", BASE), ("case.yaml", case.doc)]);
        assert_eq!(
            found.len(),
            1,
            "{}: expected one problem, got {found:#?}",
            case.name
        );
        let p = &found[0];
        let location = format!("case.yaml#{}", case.document);
        assert!(
            p.location.ends_with(&location),
            "{}: location {:?}",
            case.name,
            p.location
        );
        assert_eq!(p.path, case.path, "{}: {p}", case.name);
        assert!(
            p.message.contains(case.message),
            "{}: message {:?}",
            case.name,
            p.message
        );
    }
}

#[test]
fn every_reserved_claim_is_refused_as_a_mapping() {
    for claim in crate::jose::RESERVED_CLAIMS {
        let doc = format!(
            "kind: Application\nname: x\nfederatedCredentials:\n  - name: c\n    issuer: github\n    audiences: [a]\n    subject: s\n    claimMappings:\n      {claim:?}: claims.sub\n"
        );
        let found = problems(&[("00-base.yaml", BASE), ("case.yaml", &doc)]);
        assert_eq!(found.len(), 1, "{claim}: {found:#?}");
        assert_eq!(
            found[0].path,
            format!("federatedCredentials[0].claimMappings.{claim}")
        );
        assert!(
            found[0]
                .message
                .contains(&format!("claim {claim:?} is reserved")),
            "{claim}: {}",
            found[0].message
        );
    }
}

#[test]
fn all_problems_are_reported_in_one_pass() {
    let broken_a = "kind: Tenant\nname: a/b\n---\nkind: Issuers\nname: x\n---\nkind: Issuer\nname: h\nissuer: http://h.example\n";
    let broken_b = "kind: Application\nname: x\nfederatedCredentials:\n  - {name: c, issuer: gh, audiences: [], subject: s}\n---\nkind: ServicePrincipal\napplication: nope\ntenant: nope\n";
    let found = problems(&[
        ("00-base.yaml", BASE),
        ("a.yaml", broken_a),
        ("b.yml", broken_b),
    ]);
    let want = [
        ("a.yaml#1", "name"),
        ("a.yaml#2", "kind"),
        ("a.yaml#3", "issuer"),
        ("b.yml#1", "federatedCredentials[0].issuer"),
        ("b.yml#1", "federatedCredentials[0].audiences"),
        ("b.yml#2", "application"),
        ("b.yml#2", "tenant"),
    ];
    assert_eq!(found.len(), want.len(), "{found:#?}");
    for ((location, path), p) in want.iter().zip(&found) {
        assert!(p.location.ends_with(location), "{p}");
        assert_eq!(&p.path, path, "{p}");
    }
    let text = LoadErrors(found).to_string();
    assert!(
        text.starts_with("7 problem(s) in the policy set:"),
        "{text}"
    );
}

#[test]
fn a_broken_declaration_does_not_cascade() {
    // The Issuer and Application documents are broken (an unknown field each); references to
    // their names must not add "unknown issuer" / "unknown resource" problems.
    let files = [(
        "a.yaml",
        "kind: Issuer\nname: gh\nissuer: https://gh.example\ncolour: red\n---\nkind: Tenant\nname: t\n---\nkind: Application\nname: api\nidentifierUris: [api://x]\nappRoles: [{value: R}]\nowner: me\n---\nkind: ManagedIdentity\ntenant: t\nname: m\nfederatedCredentials:\n  - {name: c, issuer: gh, audiences: [a], subject: s}\nappRoleAssignments:\n  - {resource: 'api://x', roles: [R]}\n",
    )];
    let found = problems(&files);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].message.contains("unknown field `colour`"));
    assert!(found[1].message.contains("unknown field `owner`"));
}

#[test]
fn directory_problems() {
    let missing = load_dir(Path::new("/nonexistent/trustbridge-policies")).unwrap_err();
    assert_eq!(missing.0.len(), 1);
    assert_eq!(missing.0[0].location, "");
    assert!(
        missing.0[0]
            .message
            .contains("cannot read policy directory"),
        "{missing}"
    );

    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("README.md"), "not a policy").unwrap();
    std::fs::create_dir(empty.path().join("nested.yaml")).unwrap();
    let err = load_dir(empty.path()).unwrap_err();
    assert!(
        err.0[0].message.contains("holds no *.yaml or *.yml files"),
        "{err}"
    );
}

#[test]
fn non_utf8_files_are_a_problem_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &[("00-base.yaml", BASE)]);
    std::fs::write(dir.path().join("bad.yaml"), [0xff, 0xfe, b'k']).unwrap();
    let err = load_dir(dir.path()).unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    assert!(err.0[0].location.ends_with("bad.yaml"), "{err}");
    assert!(err.0[0].message.contains("not UTF-8"), "{err}");
}

#[test]
fn only_yaml_files_directly_in_the_directory_are_read() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[("00-base.yaml", BASE), ("notes.txt", "kind: Bogus")],
    );
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/x.yaml"), "kind: Bogus").unwrap();
    load_dir(dir.path()).unwrap();
}

#[test]
fn yaml_syntax_errors_stop_only_their_file() {
    let found = problems(&[
        ("00-base.yaml", BASE),
        (
            "a.yaml",
            "kind: Tenant\nname: ok\n---\nkind: Tenant\nname: [unclosed\n---\nkind: Bogus\n",
        ),
        ("b.yaml", "kind: Tenant\nname: a/b\n"),
    ]);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].location.ends_with("a.yaml#2"), "{}", found[0]);
    assert!(
        found[0]
            .message
            .contains("the rest of the file was not read")
    );
    assert!(found[1].location.ends_with("b.yaml#1"), "{}", found[1]);
}

#[test]
fn alias_bombs_are_refused() {
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nkind: Tenant\nname: x\n";
    let found = problems(&[("00-base.yaml", BASE), ("bomb.yaml", bomb)]);
    assert_eq!(found.len(), 1, "{found:#?}");
}

#[test]
fn yaml_merge_keys_work() {
    let files = [
        ("00-base.yaml", BASE),
        (
            "m.yaml",
            "kind: Application\nname: m\nfederatedCredentials:\n  - &cred {name: a, issuer: github, audiences: [x], subject: s}\n  - <<: *cred\n    name: b\n",
        ),
    ];
    let set = load(&files).unwrap();
    let names: Vec<_> = set
        .application("m")
        .unwrap()
        .federated_credentials
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["a", "b"]);
}

const FULL_ISSUERS: &str = r#"
kind: Issuer
name: github
issuer: https://token.actions.githubusercontent.com
preset: github
---
kind: Issuer
name: aws
issuer: https://3f2a9c1e-7b4d-4e8a-9c6f-1d2e3f4a5b6c.tokens.sts.global.api.aws
preset: aws
leeway: 30s
---
kind: Issuer
name: private
issuer: https://k8s.private.example
jwksFile: keys/private.jwks.json
algorithms: [ES256, EdDSA]
---
kind: Issuer
name: local
issuer: http://127.0.0.1:8080/demo
demo: true
allowInsecureHttp: true
---
kind: Issuer
name: generic
issuer: https://idp.example/realm
jwksUri: https://idp.example/realm/keys
"#;

const FULL_IDENTITIES: &str = r#"
# a comment-only first document
---
kind: Tenant
name: contoso
---
kind: Tenant
name: fabrikam.eu_1
---
kind: Application
name: payments-api
identifierUris: [api://payments, https://payments.example]
appRoles:
  - value: Payments.Read
    description: read payments
    displayName: Read
  - value: Payments.Write
---
kind: Application
name: deploy-bot
appId: 6f2d3b1e-0c4a-4d8e-9b7a-1a2b3c4d5e6f
federatedCredentials:
  - name: infra-main
    issuer: github
    audiences: [api://trustbridge]
    subject: repo:contoso/infra:ref:refs/heads/main
    condition: claims.repository_owner_id == "1234567"
    claimMappings:
      repository: claims.repository
      ref: claims.ref
    maxTokenLifetime: 15m
    description: main branch deploys
  - name: infra-branches
    issuer: github
    audiences: [api://trustbridge, other]
    subjectPattern: repo:contoso/*:ref:refs/heads/**
---
kind: ServicePrincipal
application: deploy-bot
tenant: contoso
appRoleAssignments:
  - resource: api://payments
    roles: [Payments.Read, Payments.Write]
tokenLifetime: 30m
---
kind: ServicePrincipal
application: payments-api
tenant: fabrikam.eu_1
enabled: false
---
kind: ManagedIdentity
tenant: contoso
nameFrom: '"k8s/" + claims["kubernetes.io"].namespace + "/" + claims["kubernetes.io"].serviceaccount.name'
federatedCredentials:
  - name: prod-cluster
    issuer: private
    audiences: [api://trustbridge]
    condition: claims["kubernetes.io"].namespace.startsWith("team-")
appRoleAssignments:
  - resource: https://payments.example
    roles: [Payments.Read]
---
kind: ManagedIdentity
tenant: contoso
name: nightly-runner
enabled: false
description: user-assigned
federatedCredentials:
  - name: aws
    issuer: aws
    audiences: [sts]
    subject: arn:aws:iam::123:role/nightly
tokenLifetime: 10m
"#;

#[test]
fn valid_multi_document_directory_compiles() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/private.jwks.json"), r#"{"keys":[]}"#).unwrap();
    write(
        dir.path(),
        &[
            ("10-identities.yml", FULL_IDENTITIES),
            ("01-issuers.yaml", FULL_ISSUERS),
        ],
    );
    let set = load_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));

    // Issuers, with preset defaults and key sources.
    assert_eq!(set.issuers().len(), 5);
    let github = set.issuer("github").unwrap();
    assert_eq!(github.preset, Preset::Github);
    assert_eq!(github.algorithms, [SigningAlgorithm::RS256]);
    // The github preset's leeway (issue #3).
    assert_eq!(github.leeway, Duration::from_secs(30));
    assert_eq!(github.keys, KeySourceSpec::Discovery);
    assert!(!github.allow_insecure_http);
    assert!(github.origin.to_string().ends_with("01-issuers.yaml#1"));
    let aws = set.issuer("aws").unwrap();
    assert_eq!(
        aws.algorithms,
        [SigningAlgorithm::ES384, SigningAlgorithm::RS256]
    );
    assert_eq!(aws.leeway, Duration::from_secs(30));
    let private = set.issuer("private").unwrap();
    assert_eq!(
        private.algorithms,
        [SigningAlgorithm::ES256, SigningAlgorithm::EdDSA]
    );
    assert_eq!(
        private.keys,
        KeySourceSpec::JwksFile(dir.path().join("keys/private.jwks.json"))
    );
    assert_eq!(set.issuer("local").unwrap().keys, KeySourceSpec::Demo);
    assert!(set.issuer("local").unwrap().allow_insecure_http);
    let generic = set.issuer("generic").unwrap();
    assert_eq!(generic.algorithms, SigningAlgorithm::ALL);
    assert_eq!(
        generic.keys,
        KeySourceSpec::JwksUri("https://idp.example/realm/keys".into())
    );
    assert_eq!(
        set.issuer_for("https://token.actions.githubusercontent.com")
            .unwrap()
            .name,
        "github"
    );
    assert!(
        set.issuer_for("https://token.actions.githubusercontent.com/")
            .is_none()
    );

    // Tenants.
    assert_eq!(
        set.tenant("contoso").unwrap().id,
        model::tenant_id("contoso")
    );
    assert!(set.tenant("fabrikam.eu_1").is_some());

    // Applications and lookups.
    let payments = set.application("payments-api").unwrap();
    assert_eq!(payments.app_id, "payments-api");
    assert_eq!(payments.app_roles, ["Payments.Read", "Payments.Write"]);
    assert_eq!(
        set.resource("https://payments.example").unwrap().name,
        "payments-api"
    );
    assert_eq!(set.resource("api://payments").unwrap().name, "payments-api");
    let bot = set
        .application_by_client_id("6f2d3b1e-0c4a-4d8e-9b7a-1a2b3c4d5e6f")
        .unwrap();
    assert_eq!(bot.name, "deploy-bot");
    assert_eq!(bot.federated_credentials.len(), 2);
    let main = &bot.federated_credentials[0];
    assert_eq!(main.issuer, "github");
    assert_eq!(main.path, "federatedCredentials[0]");
    // A comment before the first `---` is not a document of its own.
    assert!(
        main.origin.to_string().ends_with("10-identities.yml#4"),
        "{}",
        main.origin
    );
    assert!(
        matches!(&main.subject, SubjectRule::Exact(s) if s == "repo:contoso/infra:ref:refs/heads/main")
    );
    let claims = serde_json::json!({"repository_owner_id": "1234567", "repository": "contoso/infra", "ref": "refs/heads/main"});
    let claims = claims.as_object().unwrap();
    assert_eq!(main.condition.len(), 1);
    assert!(main.condition[0].expression.eval_bool(claims).unwrap());
    let mapped: Vec<_> = main
        .claim_mappings
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(mapped, ["ref", "repository"]);
    assert_eq!(main.max_token_lifetime, Some(Duration::from_secs(15 * 60)));
    let branches = &bot.federated_credentials[1];
    assert_eq!(branches.path, "federatedCredentials[1]");
    assert_eq!(branches.audiences, ["api://trustbridge", "other"]);
    match &branches.subject {
        SubjectRule::Pattern(p) => assert!(p.matches("repo:contoso/x:ref:refs/heads/a/b")),
        other => panic!("{other:?}"),
    }
    assert!(branches.condition.is_empty());

    // Service principals.
    let sp = set.service_principal("contoso", "deploy-bot").unwrap();
    assert!(sp.enabled);
    assert_eq!(
        sp.object_id,
        model::object_id("contoso", "servicePrincipal", "deploy-bot")
    );
    assert_eq!(sp.role_assignments.len(), 1);
    assert_eq!(sp.role_assignments[0].resource, "api://payments");
    assert_eq!(
        sp.role_assignments[0].roles,
        ["Payments.Read", "Payments.Write"]
    );
    assert_eq!(sp.token_lifetime, Some(Duration::from_secs(30 * 60)));
    assert!(
        !set.service_principal("fabrikam.eu_1", "payments-api")
            .unwrap()
            .enabled
    );
    assert!(set.service_principal("contoso", "payments-api").is_none());

    // Managed identities, in load order.
    let mis: Vec<_> = set.managed_identities_in("contoso").collect();
    assert_eq!(mis.len(), 2);
    match &mis[0].name {
        ManagedIdentityName::Template(e) => {
            let claims = serde_json::json!({"kubernetes.io": {"namespace": "team-a", "serviceaccount": {"name": "builder"}}});
            assert_eq!(
                e.eval_string(claims.as_object().unwrap()).unwrap(),
                "k8s/team-a/builder"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(mis[0].enabled);
    assert_eq!(
        mis[0].role_assignments[0].resource,
        "https://payments.example"
    );
    assert!(matches!(
        mis[0].federated_credentials[0].subject,
        SubjectRule::Any
    ));
    assert!(matches!(&mis[1].name, ManagedIdentityName::Fixed(n) if n == "nightly-runner"));
    assert!(!mis[1].enabled);
    assert_eq!(mis[1].token_lifetime, Some(Duration::from_secs(600)));
    assert_eq!(mis[1].label(), "nightly-runner");

    // The content hash is hex SHA-256, stable, and follows every byte and file name.
    assert_eq!(set.content_hash().len(), 64);
    assert!(set.content_hash().chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        load_dir(dir.path()).unwrap().content_hash(),
        set.content_hash()
    );
    std::fs::write(
        dir.path().join("10-identities.yml"),
        format!("{FULL_IDENTITIES}\n"),
    )
    .unwrap();
    let changed = load_dir(dir.path()).unwrap().content_hash().to_string();
    assert_ne!(changed, set.content_hash());
    std::fs::rename(
        dir.path().join("10-identities.yml"),
        dir.path().join("10-identities.yaml"),
    )
    .unwrap();
    assert_ne!(load_dir(dir.path()).unwrap().content_hash(), changed);
}

#[test]
fn jwks_file_is_resolved_next_to_its_policy_file() {
    let dir = tempfile::tempdir().unwrap();
    // Relative to the policy file's directory, not to the working directory.
    std::fs::write(dir.path().join("k.json"), "{}").unwrap();
    write(
        dir.path(),
        &[(
            "a.yaml",
            "kind: Issuer\nname: a\nissuer: https://a.example\njwksFile: k.json\n",
        )],
    );
    let set = load_dir(dir.path()).unwrap();
    assert_eq!(
        set.issuer("a").unwrap().keys,
        KeySourceSpec::JwksFile(dir.path().join("k.json"))
    );
}

#[test]
fn insecure_http_needs_the_flag() {
    let ok = "kind: Issuer\nname: a\nissuer: http://127.0.0.1:1234\njwksUri: http://127.0.0.1:1234/keys\nallowInsecureHttp: true\n";
    let set = load(&[("a.yaml", ok)]).unwrap();
    assert!(set.issuer("a").unwrap().allow_insecure_http);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.yaml"), &text).unwrap();
        let _ = load_dir(dir.path());
    }

    #[test]
    fn arbitrary_yaml_never_panics(docs in proptest::collection::vec(yaml_document(), 1..4)) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.yaml"), docs.join("\n---\n")).unwrap();
        let _ = load_dir(dir.path());
    }
}

/// Documents built from the real vocabulary, so the fuzzing reaches compilation.
fn yaml_document() -> impl Strategy<Value = String> {
    let kind = prop_oneof![
        Just("Issuer"),
        Just("Tenant"),
        Just("Application"),
        Just("ServicePrincipal"),
        Just("ManagedIdentity"),
        Just("Other"),
    ];
    let key = prop_oneof![
        Just("name"),
        Just("issuer"),
        Just("tenant"),
        Just("application"),
        Just("nameFrom"),
        Just("appId"),
        Just("identifierUris"),
        Just("appRoles"),
        Just("algorithms"),
        Just("leeway"),
        Just("jwksFile"),
        Just("federatedCredentials"),
        Just("appRoleAssignments"),
        Just("enabled"),
    ];
    let value = prop_oneof![
        Just("github".to_string()),
        Just("contoso".to_string()),
        Just("https://a.example".to_string()),
        Just("[RS256, none]".to_string()),
        Just("5m".to_string()),
        Just("'claims.sub'".to_string()),
        Just("[{value: R}]".to_string()),
        Just("[{name: c, issuer: github, audiences: [a], subjectPattern: 'a*'}]".to_string()),
        Just("[{resource: 'api://x', roles: [R]}]".to_string()),
        Just("../../../etc/passwd".to_string()),
        "[a-z:/.*]{0,12}",
    ];
    (kind, proptest::collection::vec((key, value), 0..6)).prop_map(|(kind, fields)| {
        let mut doc = format!("kind: {kind}\n");
        for (k, v) in fields {
            doc.push_str(&format!("{k}: {v}\n"));
        }
        doc
    })
}

/// `load_texts` is `load_dir` without the file system: same set, same content hash, same
/// problems (with the given name as location), and the same size cap.
#[test]
fn load_texts_matches_load_dir() {
    let from_dir = load(&[("00-base.yaml", BASE)]).unwrap();
    let from_text = load_texts(&[("00-base.yaml", BASE)]).unwrap();
    assert_eq!(from_dir.content_hash(), from_text.content_hash());
    assert_eq!(
        from_dir.issuers().map(|i| &i.name).collect::<Vec<_>>(),
        from_text.issuers().map(|i| &i.name).collect::<Vec<_>>()
    );

    let broken = format!("{BASE}---\nkind: Tenant\nname: a\nlabel: b\n");
    let LoadErrors(problems) = load_texts(&[("case.yaml", &broken)]).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].location, "case.yaml#7");
    assert!(
        problems[0].message.contains("unknown field"),
        "{problems:?}"
    );

    let huge = "#".repeat(MAX_FILE_BYTES as usize + 1);
    let LoadErrors(problems) =
        load_texts(&[("00-base.yaml", BASE), ("huge.yaml", &huge)]).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.location == "huge.yaml" && p.message.contains("at most")),
        "{problems:?}"
    );
}

// === file:line:column (issue #16) ===

/// Every problem the loader reports is placed in the text it read: the field's line and
/// column, shown instead of the document number (which stays in `location` for ordering).
#[test]
fn problems_are_shown_at_file_line_column() {
    let broken = "kind: Tenant\nname: a\n---\n# why\nkind: Application\nname: b\nfederatedCredentials:\n  - name: c\n    issuer: nope\n    audiences: [x]\n    subject: s\n";
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &[("00-base.yaml", BASE), ("z.yaml", broken)]);
    let LoadErrors(found) = load_dir(dir.path()).unwrap_err();
    assert_eq!(found.len(), 1, "{found:#?}");
    let p = &found[0];
    assert!(p.location.ends_with("z.yaml#2"), "{p:?}");
    let position = p.position.as_ref().expect("placed");
    assert!(position.file.ends_with("z.yaml"), "{position:?}");
    assert_eq!((position.line, position.column), (9, 5));
    let shown = p.to_string();
    assert!(
        shown.starts_with(&format!(
            "{}:9:5 federatedCredentials[0].issuer: ",
            dir.path().join("z.yaml").display()
        )),
        "{shown}"
    );
    assert!(!shown.contains('#'), "{shown}");
}

/// A YAML syntax error is placed where the parser stopped, not at its document's start.
#[test]
fn yaml_syntax_errors_are_placed_where_the_parser_stopped() {
    let broken = "kind: Tenant\nname: a\n---\nkind: Tenant\nname: [unclosed\n";
    let LoadErrors(found) = load_texts(&[("y.yaml", broken)]).unwrap_err();
    assert_eq!(found.len(), 1, "{found:#?}");
    let position = found[0].position.as_ref().expect("placed");
    assert_eq!(position.file, "y.yaml");
    assert!(position.line >= 5, "{position:?}");
    assert!(found[0].to_string().starts_with("y.yaml:"), "{}", found[0]);
}

/// Where nothing places a problem (the directory itself, a whole file), it keeps its
/// location: the file, or nothing.
#[test]
fn problems_without_a_document_keep_their_location() {
    let dir = tempfile::tempdir().unwrap();
    let LoadErrors(found) = load_dir(dir.path()).unwrap_err();
    assert_eq!(found[0].position, None);
    assert!(
        found[0].to_string().starts_with("policy directory"),
        "{}",
        found[0]
    );

    write(dir.path(), &[("00-base.yaml", BASE)]);
    std::fs::write(dir.path().join("bin.yaml"), [0xff, 0xfe, b'\n']).unwrap();
    let LoadErrors(found) = load_dir(dir.path()).unwrap_err();
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].position, None);
    assert!(
        found[0].to_string().starts_with(&format!(
            "{}: not UTF-8",
            dir.path().join("bin.yaml").display()
        )),
        "{}",
        found[0]
    );
}

/// A loaded set keeps the text it was loaded from: what it shows stays right after the files
/// change or go (a refused reload must not move the serving set's positions).
#[test]
fn a_set_places_its_documents_in_the_text_it_was_loaded_from() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &[("00-base.yaml", BASE)]);
    let set = load_dir(dir.path()).unwrap();
    std::fs::remove_file(dir.path().join("00-base.yaml")).unwrap();
    let location = format!("{}#5", dir.path().join("00-base.yaml").display());
    let at = set
        .sources()
        .locate(&location, "federatedCredentials[0].issuer")
        .expect("placed");
    let line = BASE
        .lines()
        .position(|l| l == "    issuer: github")
        .expect("line");
    assert_eq!((at.line, at.column), (line + 1, 5));
}

#[test]
fn fetch_block_compiles_into_overrides() {
    let doc = "kind: Issuer\nname: a\nissuer: https://a.example\nfetch:\n  timeout: 2s\n  \
               maxDocumentSize: 64KiB\n  refreshCooldown: 5s\n  defaultTtl: 10m\n  minTtl: 2m\n  \
               maxTtl: 1h\n  maxStale: 0s\n";
    let set = load(&[("00-base.yaml", BASE), ("a.yaml", doc)]).expect("valid");
    let fetch = &set.issuer("a").expect("declared").fetch;
    assert_eq!(fetch.timeout, Some(Duration::from_secs(2)));
    assert_eq!(fetch.max_body_bytes, Some(64 * 1024));
    assert_eq!(fetch.min_refresh_interval, Some(Duration::from_secs(5)));
    assert_eq!(fetch.default_ttl, Some(Duration::from_secs(600)));
    assert_eq!(fetch.min_ttl, Some(Duration::from_secs(120)));
    assert_eq!(fetch.max_ttl, Some(Duration::from_secs(3600)));
    assert_eq!(fetch.max_stale, Some(Duration::ZERO));
    // A plain number of bytes works too; without a block nothing is overridden.
    let doc = "kind: Issuer\nname: a\nissuer: https://a.example\nfetch: {maxDocumentSize: 4096}";
    let set = load(&[("00-base.yaml", BASE), ("a.yaml", doc)]).expect("valid");
    assert_eq!(set.issuer("a").expect("a").fetch.max_body_bytes, Some(4096));
    assert!(set.issuer("github").expect("github").fetch.is_empty());
}
