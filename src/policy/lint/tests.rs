use super::*;

const BASE: &str = r#"
kind: Issuer
name: gh
issuer: https://token.actions.githubusercontent.com
preset: github
---
kind: Issuer
name: gl
issuer: https://gitlab.com
---
kind: Issuer
name: cluster
issuer: https://cluster.example.com
jwksUri: https://cluster.example.com/keys
---
kind: Tenant
name: contoso
---
kind: Application
name: payments-api
identifierUris: [api://payments]
appRoles:
  - value: Payments.Read
"#;

/// Loads BASE plus `extra` documents and lints them.
fn lints(extra: &str) -> Vec<Warning> {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("p.yaml"), format!("{BASE}---\n{extra}")).expect("write");
    let set = crate::policy::load_dir(dir.path()).expect("policies load");
    lint(&set)
}

fn codes(warnings: &[Warning]) -> Vec<&'static str> {
    warnings.iter().map(|w| w.lint.code()).collect()
}

/// An application with one credential and a service principal holding a role.
fn app(name: &str, credential: &str) -> String {
    format!(
        "kind: Application\nname: {name}\nfederatedCredentials:\n  - name: c\n{credential}\n---\n\
         kind: ServicePrincipal\napplication: {name}\ntenant: contoso\nappRoleAssignments:\n  \
         - resource: api://payments\n    roles: [Payments.Read]\n"
    )
}

#[test]
fn a_clean_set_has_no_warnings() {
    let w = lints(&app(
        "bot",
        "    issuer: gh\n    audiences: [api://trustbridge]\n    subjectPattern: repo:contoso/*:ref:refs/heads/main\n    condition: claims.repository_owner_id == \"42\"",
    ));
    assert_eq!(w, vec![], "{w:#?}");
}

#[test]
fn unpinned_owner_on_github_pattern_and_condition() {
    let w = lints(&app(
        "bot",
        "    issuer: gh\n    audiences: [api://trustbridge]\n    subjectPattern: repo:contoso/*:ref:refs/heads/main",
    ));
    assert_eq!(codes(&w), ["unpinned-owner"]);
    assert_eq!(
        w[0].location,
        format!("{}#6", w[0].location.split('#').next().unwrap())
    );
    assert_eq!(w[0].path, "federatedCredentials[0].subjectPattern");
    assert!(
        w[0].message.contains("repository_owner_id"),
        "{}",
        w[0].message
    );
    assert!(
        w[0].fix.contains("claims.repository_owner_id =="),
        "{}",
        w[0].fix
    );

    let w = lints(&app(
        "bot",
        "    issuer: gh\n    audiences: [api://trustbridge]\n    condition: claims.repository == \"contoso/infra\"",
    ));
    assert_eq!(codes(&w), ["unpinned-owner"]);
    assert_eq!(w[0].path, "federatedCredentials[0].condition");
}

#[test]
fn unpinned_owner_on_gitlab_by_url_and_exact_subjects_are_not_flagged() {
    let w = lints(&app(
        "bot",
        "    issuer: gl\n    audiences: [api://trustbridge]\n    subjectPattern: project_path:group/*:ref_type:branch:ref:main",
    ));
    assert_eq!(codes(&w), ["unpinned-owner"]);
    assert!(
        w[0].message.contains("namespace_id or project_id"),
        "{}",
        w[0].message
    );
    let pinned = lints(&app(
        "bot",
        "    issuer: gl\n    audiences: [api://trustbridge]\n    subjectPattern: project_path:group/*:ref_type:branch:ref:main\n    condition: claims.namespace_id == \"7\"",
    ));
    assert_eq!(pinned, vec![]);
    let exact = lints(&app(
        "bot",
        "    issuer: gh\n    audiences: [api://trustbridge]\n    subject: repo:contoso/infra:ref:refs/heads/main",
    ));
    assert_eq!(exact, vec![]);
    // A generic issuer is not multi-tenant: no owner lint.
    let generic = lints(&app(
        "bot",
        "    issuer: cluster\n    audiences: [api://trustbridge]\n    subjectPattern: system:serviceaccount:*:*",
    ));
    assert_eq!(generic, vec![]);
}

#[test]
fn any_owner_patterns() {
    for pattern in ["repo:*/infra:ref:refs/heads/main", "repo:**", "*:x"] {
        let w = lints(&app(
            "bot",
            &format!(
                "    issuer: cluster\n    audiences: [api://trustbridge]\n    subjectPattern: '{pattern}'"
            ),
        ));
        assert_eq!(codes(&w), ["any-owner"], "{pattern}");
        assert_eq!(w[0].path, "federatedCredentials[0].subjectPattern");
        assert!(w[0].message.contains(pattern), "{}", w[0].message);
    }
}

#[test]
fn shared_audiences() {
    for (aud, word) in [
        ("https://github.com/contoso", "GitHub"),
        ("sts.amazonaws.com", "AWS"),
        ("api://AzureADTokenExchange", "Entra"),
        (
            "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/x",
            "Google",
        ),
        ("https://kubernetes.default.svc", "Kubernetes"),
    ] {
        let w = lints(&app(
            "bot",
            &format!(
                "    issuer: cluster\n    audiences: [api://trustbridge, '{aud}']\n    subject: s"
            ),
        ));
        assert_eq!(codes(&w), ["shared-audience"], "{aud}");
        assert_eq!(w[0].path, "federatedCredentials[0].audiences[1]");
        assert!(w[0].message.contains(word), "{}", w[0].message);
        assert!(w[0].fix.contains("api://trustbridge"));
    }
}

#[test]
fn overlapping_credentials_of_different_identities() {
    let cases = [
        ("subject: a", "subject: a", true),
        ("subject: a", "subject: b", false),
        (
            "subject: repo:x/y:ref:main",
            "subjectPattern: repo:x/*:ref:main",
            true,
        ),
        (
            "subjectPattern: repo:x/*:ref:main",
            "subjectPattern: repo:x/y:ref:*",
            true,
        ),
        (
            "subjectPattern: repo:x/*:ref:main",
            "subjectPattern: repo:z/*:ref:main",
            false,
        ),
        ("condition: claims.x == \"1\"", "subject: b", true),
    ];
    for (first, second, want) in cases {
        let policies = format!(
            "{}---\n{}",
            app(
                "one",
                &format!("    issuer: cluster\n    audiences: [api://trustbridge]\n    {first}")
            ),
            app(
                "two",
                &format!("    issuer: cluster\n    audiences: [api://trustbridge]\n    {second}")
            ),
        );
        let w = lints(&policies);
        let found = w
            .iter()
            .filter(|w| w.lint == Lint::OverlappingCredentials)
            .count();
        assert_eq!(found, usize::from(want), "{first} / {second}: {w:#?}");
        if want {
            let msg = &w[0].message;
            assert!(
                msg.contains("application 'one'") && msg.contains("application 'two'"),
                "{msg}"
            );
            assert!(msg.contains("tenant contoso"), "{msg}");
        }
    }
}

#[test]
fn overlap_needs_same_issuer_common_audience_tenant_and_enforce_mode() {
    let pair = |a: &str, b: &str| {
        format!(
            "{}---\n{}",
            app("one", &format!("    issuer: cluster\n    subject: s\n{a}")),
            app("two", &format!("    subject: s\n{b}")),
        )
    };
    let overlaps = |text: &str| {
        lints(text)
            .iter()
            .filter(|w| w.lint == Lint::OverlappingCredentials)
            .count()
    };
    let aud = "    audiences: [api://trustbridge]";
    assert_eq!(
        overlaps(&pair(aud, &format!("    issuer: cluster\n{aud}"))),
        1
    );
    assert_eq!(
        overlaps(&pair(aud, &format!("    issuer: gh\n{aud}"))),
        0,
        "issuer"
    );
    assert_eq!(
        overlaps(&pair(
            aud,
            "    issuer: cluster\n    audiences: [api://other]"
        )),
        0,
        "audience"
    );
    assert_eq!(
        overlaps(&pair(
            aud,
            &format!("    issuer: cluster\n{aud}\n    mode: audit")
        )),
        0,
        "audit mode"
    );
    // Two credentials of the same identity may overlap.
    let same = "kind: Application\nname: one\nfederatedCredentials:\n  - name: a\n    issuer: cluster\n    audiences: [x]\n    subject: s\n  - name: b\n    issuer: cluster\n    audiences: [x]\n    subject: s\n---\nkind: ServicePrincipal\napplication: one\ntenant: contoso\nappRoleAssignments:\n  - resource: api://payments\n    roles: [Payments.Read]\n";
    assert_eq!(overlaps(same), 0);
    // Different tenants never meet.
    let other_tenant = format!(
        "kind: Tenant\nname: fabrikam\n---\n{}---\nkind: ManagedIdentity\ntenant: fabrikam\nname: mi\nfederatedCredentials:\n  - name: c\n    issuer: cluster\n    subject: s\n{aud}\nappRoleAssignments:\n  - resource: api://payments\n    roles: [Payments.Read]\n",
        app(
            "one",
            &format!("    issuer: cluster\n    subject: s\n{aud}")
        )
    );
    assert_eq!(overlaps(&other_tenant), 0);
}

#[test]
fn unassigned_application_no_roles_and_unused_resource() {
    let w = lints(
        "kind: Application\nname: lonely\nfederatedCredentials:\n  - name: c\n    issuer: cluster\n    audiences: [x]\n    subject: s\n",
    );
    assert_eq!(
        codes(&w),
        ["unused-resource", "unassigned-application"],
        "{w:#?}"
    );
    assert_eq!(w[1].path, "federatedCredentials");
    assert!(w[1].message.contains("'lonely'"));
    assert!(w[1].fix.contains("kind: ServicePrincipal"));
    assert_eq!(w[0].path, "appRoles");
    assert!(w[0].message.contains("'payments-api'"));

    let w = lints(
        "kind: Application\nname: bot\nfederatedCredentials:\n  - name: c\n    issuer: cluster\n    audiences: [x]\n    subject: s\n---\nkind: ServicePrincipal\napplication: bot\ntenant: contoso\n",
    );
    assert!(codes(&w).contains(&"no-role-assignments"), "{w:#?}");
    let w = lints(
        "kind: ManagedIdentity\ntenant: contoso\nname: mi\nfederatedCredentials:\n  - name: c\n    issuer: cluster\n    audiences: [x]\n    subject: s\n",
    );
    assert!(codes(&w).contains(&"no-role-assignments"), "{w:#?}");
}

#[test]
fn the_bundled_policies_are_clean() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let set = crate::policy::load_dir(&dir).expect("bundled policies load");
    assert_eq!(lint(&set), vec![]);
}

#[test]
fn warnings_display_with_location_path_code_and_fix() {
    let extra = app(
        "bot",
        "    issuer: cluster\n    audiences: [sts.amazonaws.com]\n    subject: s",
    );
    let w = lints(&extra);
    let text = w[0].to_string();
    // Shown at file:line:column (issue #16); the document number stays in `location`.
    let file = format!("{BASE}---\n{extra}");
    let line = 1 + file
        .lines()
        .position(|l| l.contains("audiences: [sts.amazonaws.com]"))
        .expect("line");
    let at = format!(":{line}:5 federatedCredentials[0].audiences[0]: warning[shared-audience]");
    assert!(
        text.contains(&at) && text.contains("p.yaml:"),
        "{at} in {text}"
    );
    assert!(w[0].location.ends_with("p.yaml#6"), "{}", w[0].location);
    assert!(text.contains("\n    fix: "), "{text}");
}

#[test]
fn owner_pinning_is_read_from_the_condition_semantics() {
    struct Case {
        condition: &'static str,
        pinned: bool,
    }
    let cases = [
        Case {
            condition: r#"claims.repository_owner_id == "42""#,
            pinned: true,
        },
        Case {
            condition: r#""42" == claims.repository_owner_id"#,
            pinned: true,
        },
        Case {
            condition: r#"claims["repository_owner_id"] == "42""#,
            pinned: true,
        },
        Case {
            condition: r#"claims.repository_owner_id in ["42", "43"]"#,
            pinned: true,
        },
        Case {
            condition: r#"claims.ref == "refs/heads/main" && claims.repository_owner_id == "42""#,
            pinned: true,
        },
        // Mentioning the claim is not pinning it.
        Case {
            condition: "has(claims.repository_owner_id)",
            pinned: false,
        },
        Case {
            condition: r#"claims.repository_owner_id != """#,
            pinned: false,
        },
        Case {
            condition: r#"claims.repository_owner_id == """#,
            pinned: false,
        },
        Case {
            condition: r#"claims.repository_owner_id.startsWith("4")"#,
            pinned: false,
        },
        Case {
            condition: "claims.repository_owner_id == claims.actor_id",
            pinned: false,
        },
        Case {
            condition: r#"claims.repository_owner_id == "42" || claims.actor == "x""#,
            pinned: false,
        },
        Case {
            condition: r#"!(claims.repository_owner_id == "42")"#,
            pinned: false,
        },
        Case {
            condition: r#"claims.x == "1" ? claims.repository_owner_id == "42" : true"#,
            pinned: false,
        },
        Case {
            condition: r#"claims.repository_owner_id in claims.allowed"#,
            pinned: false,
        },
        Case {
            condition: r#"claims.repository == "repository_owner_id""#,
            pinned: false,
        },
    ];
    for case in cases {
        let w = lints(&app(
            "bot",
            &format!(
                "    issuer: gh\n    audiences: [api://trustbridge]\n    subjectPattern: repo:contoso/*:ref:refs/heads/main\n    condition: '{}'",
                case.condition.replace('\'', "''")
            ),
        ));
        let want: &[&str] = if case.pinned {
            &[]
        } else {
            &["unpinned-owner"]
        };
        assert_eq!(codes(&w), want, "{}", case.condition);
    }
    // In a customized subject, the claim's name alone does not pin it either.
    for (pattern, pinned) in [
        (
            "repository_owner_id:42:repo:contoso/*:ref:refs/heads/main",
            true,
        ),
        (
            "repository_owner_id:*:repo:contoso/*:ref:refs/heads/main",
            false,
        ),
    ] {
        let w = lints(&app(
            "bot",
            &format!(
                "    issuer: gh\n    audiences: [api://trustbridge]\n    subjectPattern: '{pattern}'"
            ),
        ));
        assert_eq!(
            codes(&w).contains(&"unpinned-owner"),
            !pinned,
            "{pattern}: {w:#?}"
        );
    }
}

#[test]
fn github_patterns_outside_the_subject_grammar_are_flagged() {
    let pinned = "    condition: claims.repository_owner_id == \"42\"";
    for (pattern, flagged, what) in [
        (
            "repo:contoso/*:*",
            true,
            "matches only `pull_request` subjects",
        ),
        ("repo:contoso/*:ref:*", true, "matches no GitHub subject"),
        ("repo:contoso/*", true, "matches no GitHub subject"),
        ("repo:contoso/*:ref:refs/heads/*", false, ""),
        ("repo:contoso/*:ref:refs/heads/**", false, ""),
        ("repo:contoso/*:environment:prod", false, ""),
        ("repo:contoso/*:pull_request", false, ""),
        (
            "repo:contoso/infra:**",
            true,
            "matches only `pull_request` subjects",
        ),
        // Customized subjects have their own grammar.
        ("repository_owner_id:42:*", false, ""),
    ] {
        let w = lints(&app(
            "bot",
            &format!(
                "    issuer: gh\n    audiences: [api://trustbridge]\n    subjectPattern: '{pattern}'\n{pinned}"
            ),
        ));
        if flagged {
            assert_eq!(codes(&w), ["unmatchable-subject"], "{pattern}: {w:#?}");
            assert_eq!(w[0].path, "federatedCredentials[0].subjectPattern");
            assert!(w[0].message.contains(what), "{pattern}: {}", w[0].message);
        } else {
            assert_eq!(codes(&w), Vec::<&str>::new(), "{pattern}: {w:#?}");
        }
    }
    // Other issuers are not held to GitHub's grammar.
    let w = lints(&app(
        "bot",
        "    issuer: cluster\n    audiences: [api://trustbridge]\n    subjectPattern: 'repo:contoso/*:*'",
    ));
    assert_eq!(codes(&w), Vec::<&str>::new());
}
