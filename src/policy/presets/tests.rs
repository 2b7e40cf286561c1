use super::*;

#[test]
fn issuer_url_shapes() {
    let cases = [
        // github
        (
            Preset::Github,
            "https://token.actions.githubusercontent.com",
            true,
        ),
        (
            Preset::Github,
            "https://token.actions.githubusercontent.com/octo-enterprise",
            true,
        ),
        (Preset::Github, "https://token.actions.octo.ghe.com", true),
        (
            Preset::Github,
            "https://token.actions.octo.ghe.com/octo",
            true,
        ),
        (
            Preset::Github,
            "https://ghes.example.com/_services/token",
            true,
        ),
        (
            Preset::Github,
            "https://token.actions.githubusercontent.com/",
            false,
        ),
        (
            Preset::Github,
            "https://token.actions.githubusercontent.com/a/b",
            false,
        ),
        (Preset::Github, "https://ghes.example.com", false),
        (
            Preset::Github,
            "https://ghes.example.com/_services/token/",
            false,
        ),
        (
            Preset::Github,
            "https://evil.example/token.actions.githubusercontent.com",
            false,
        ),
        // gitlab: any https instance
        (Preset::Gitlab, "https://gitlab.com", true),
        (Preset::Gitlab, "https://gitlab.example.com/sub", true),
        // kubernetes and generic: anything
        (
            Preset::Kubernetes,
            "https://oidc.prod.k8s.example.com",
            true,
        ),
        (Preset::Generic, "https://anything.example/x", true),
        // gcp
        (Preset::Gcp, "https://accounts.google.com", true),
        (Preset::Gcp, "https://accounts.google.com/", false),
        (
            Preset::Gcp,
            "https://container.googleapis.com/v1/projects/p/locations/l/clusters/c",
            false,
        ),
        // aws
        (
            Preset::Aws,
            "https://3f2a9c1e-7b4d-4e8a-9c6f-1d2e3f4a5b6c.tokens.sts.global.api.aws",
            true,
        ),
        (
            Preset::Aws,
            "https://oidc.eks.eu-west-1.amazonaws.com/id/B6CED1A690BF4A67B0873D31C0E20155",
            true,
        ),
        (
            Preset::Aws,
            "https://oidc.eks.cn-north-1.amazonaws.com.cn/id/B6CED1A690BF4A67B0873D31C0E20155",
            true,
        ),
        (
            Preset::Aws,
            "https://oidc.eks.eu-west-1.amazonaws.com/id/XYZ",
            false,
        ),
        (Preset::Aws, "https://x.tokens.sts.global.api.aws/", false),
        (Preset::Aws, "https://sts.amazonaws.com", false),
        // azure
        (
            Preset::Azure,
            "https://sts.windows.net/7f3c9a2e-4b1d-4e8f-9a6c-2d5e8f1b3c7a/",
            true,
        ),
        (
            Preset::Azure,
            "https://login.microsoftonline.com/7f3c9a2e-4b1d-4e8f-9a6c-2d5e8f1b3c7a/v2.0",
            true,
        ),
        (
            Preset::Azure,
            "https://sts.windows.net/7f3c9a2e-4b1d-4e8f-9a6c-2d5e8f1b3c7a",
            false,
        ),
        (
            Preset::Azure,
            "https://login.microsoftonline.com/common/v2.0",
            false,
        ),
        (
            Preset::Azure,
            "https://login.microsoftonline.com/organizations/v2.0",
            false,
        ),
        (
            Preset::Azure,
            "https://login.microsoftonline.com/7f3c9a2e-4b1d-4e8f-9a6c-2d5e8f1b3c7a/v2.0/",
            false,
        ),
    ];
    for (preset, issuer, ok) in cases {
        let result = check_issuer_url(preset, issuer);
        assert_eq!(
            result.is_ok(),
            ok,
            "{} {issuer}: {result:?}",
            preset.as_str()
        );
        if let Err(message) = result {
            assert!(message.contains(preset.as_str()), "{message}");
            assert!(message.contains("allowInsecureHttp"), "{message}");
        }
    }
}

#[test]
fn ambiguous_issuers() {
    for issuer in [
        "https://kubernetes.default.svc",
        "https://kubernetes.default.svc.cluster.local",
        "https://kubernetes.default.svc.cluster.local.",
        "https://KUBERNETES.default.svc",
        "https://kubernetes.default",
        "https://kubernetes",
        "http://kubernetes.default.svc:443",
        "https://api.cluster.local",
    ] {
        assert!(ambiguous_issuer(issuer), "{issuer}");
    }
    for issuer in [
        "https://oidc.eks.eu-west-1.amazonaws.com/id/B6CED1A690BF4A67B0873D31C0E20155",
        "https://kubernetes.example.com",
        "https://token.actions.githubusercontent.com",
        "not a url",
    ] {
        assert!(!ambiguous_issuer(issuer), "{issuer}");
    }
}

#[test]
fn defaults_per_preset() {
    let gh = defaults(
        Preset::Github,
        "https://token.actions.githubusercontent.com",
    );
    assert_eq!(gh.required_type, Some("JWT"));
    assert_eq!(gh.max_token_lifetime, Duration::from_secs(3600));
    // GitHub's clock runs a few seconds ahead: the leeway must absorb that.
    assert!(gh.leeway >= Duration::from_secs(10));
    // Kubernetes sets no typ; EKS tokens live exactly 24 h and must pass.
    let k8s = defaults(Preset::Kubernetes, "https://k8s.example");
    assert_eq!(k8s.required_type, None);
    assert!(k8s.max_token_lifetime >= Duration::from_secs(86_400));
    assert_eq!(
        defaults(
            Preset::Aws,
            "https://oidc.eks.eu-west-1.amazonaws.com/id/B6CED1A690BF4A67B0873D31C0E20155"
        ),
        k8s
    );
    let sts = defaults(Preset::Aws, "https://abc.tokens.sts.global.api.aws");
    assert_eq!(sts.required_type, Some("JWT"));
    assert_eq!(sts.max_token_lifetime, Duration::from_secs(3600));
    // Entra managed-identity tokens live about 24 h 5 min.
    assert!(defaults(Preset::Azure, "").max_token_lifetime > Duration::from_secs(86_700));
    assert_eq!(defaults(Preset::Generic, ""), GENERIC_DEFAULTS);
    for preset in [
        Preset::Generic,
        Preset::Github,
        Preset::Gitlab,
        Preset::Kubernetes,
        Preset::Gcp,
        Preset::Aws,
        Preset::Azure,
    ] {
        let d = defaults(preset, "https://x.example");
        assert!(d.leeway <= Duration::from_secs(300), "{}", preset.as_str());
        assert!(
            d.max_token_age <= d.max_token_lifetime,
            "{}",
            preset.as_str()
        );
    }
}

#[test]
fn pinning_advice_names_immutable_ids() {
    let gh = pinning_advice(Preset::Github);
    assert_eq!(gh.preset, Preset::Github);
    assert!(gh.pin_claims.contains(&"repository_owner_id"));
    assert!(gh.pin_claims.contains(&"repository_id"));
    assert!(gh.subject_forms.iter().any(|f| f.contains("@OWNER_ID")));
    assert!(gh.weak_claims.contains(&"repository"));
    assert_eq!(pinning_advice(Preset::Azure).pin_claims, ["tid", "oid"]);
    assert_eq!(pinning_advice(Preset::Generic).preset, Preset::Generic);
    for preset in [Preset::Gitlab, Preset::Kubernetes, Preset::Gcp, Preset::Aws] {
        let a = pinning_advice(preset);
        assert_eq!(a.preset, preset);
        assert!(!a.pin_claims.is_empty() && !a.advice.is_empty());
    }
}

// === through the loader ===

use crate::policy::{LoadErrors, PolicySet, load_dir};

fn load(files: &[(&str, &str)]) -> Result<PolicySet, LoadErrors> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    load_dir(dir.path())
}

fn problems(yaml: &str) -> Vec<String> {
    match load(&[("p.yaml", yaml)]) {
        Ok(_) => panic!("expected problems:\n{yaml}"),
        Err(LoadErrors(problems)) => problems.iter().map(ToString::to_string).collect(),
    }
}

fn one_problem(yaml: &str, path: &str, fragment: &str) {
    let found = problems(yaml);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].contains(&format!(" {path}: ")), "{found:#?}");
    assert!(found[0].contains(fragment), "{found:#?}");
}

#[test]
fn preset_defaults_are_applied_and_overridable() {
    let set = load(&[(
        "p.yaml",
        r#"
kind: Issuer
name: gh
issuer: https://token.actions.githubusercontent.com
preset: github
---
kind: Issuer
name: gh-loose
issuer: https://token.actions.githubusercontent.com/octo-enterprise
preset: github
leeway: 10s
maxTokenLifetime: 6h
maxTokenAge: 2h
requiredType: any
---
kind: Issuer
name: plain
issuer: https://idp.example
"#,
    )])
    .unwrap();
    let gh = set.issuer("gh").unwrap();
    assert_eq!(gh.leeway, Duration::from_secs(30));
    assert_eq!(gh.hygiene.max_lifetime, Duration::from_secs(3600));
    assert_eq!(gh.hygiene.max_age, Duration::from_secs(900));
    assert_eq!(gh.hygiene.required_type.as_deref(), Some("JWT"));
    assert!(gh.hygiene.require_iat);
    let loose = set.issuer("gh-loose").unwrap();
    assert_eq!(loose.leeway, Duration::from_secs(10));
    assert_eq!(loose.hygiene.max_lifetime, Duration::from_secs(6 * 3600));
    assert_eq!(loose.hygiene.max_age, Duration::from_secs(2 * 3600));
    assert_eq!(loose.hygiene.required_type, None);
    let plain = set.issuer("plain").unwrap();
    assert_eq!(plain.leeway, Duration::from_secs(60));
    assert_eq!(plain.hygiene, crate::policy::model::TokenHygiene::default());
}

#[test]
fn preset_url_shape_is_checked_unless_insecure_http() {
    one_problem(
        "kind: Issuer\nname: g\nissuer: https://gitlab.com\npreset: github\n",
        "issuer",
        "is not an issuer of preset github",
    );
    one_problem(
        "kind: Issuer\nname: a\nissuer: https://login.microsoftonline.com/common/v2.0\npreset: azure\n",
        "issuer",
        "never common/organizations",
    );
    // A loopback test issuer stands in for the platform.
    load(&[(
        "p.yaml",
        "kind: Issuer\nname: g\nissuer: http://127.0.0.1:1234\npreset: github\nallowInsecureHttp: true\n",
    )])
    .unwrap();
}

#[test]
fn ambiguous_in_cluster_issuer_needs_jwks_file() {
    one_problem(
        "kind: Issuer\nname: k\nissuer: https://kubernetes.default.svc\npreset: kubernetes\n",
        "issuer",
        "countless clusters",
    );
    one_problem(
        "kind: Issuer\nname: k\nissuer: https://kubernetes.default.svc.cluster.local\njwksUri: https://k.example/keys\n",
        "issuer",
        "pin this cluster's keys with jwksFile",
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("k.jwks.json"), r#"{"keys":[]}"#).unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        "kind: Issuer\nname: k\nissuer: https://kubernetes.default.svc\npreset: kubernetes\njwksFile: k.jwks.json\n",
    )
    .unwrap();
    load_dir(dir.path()).unwrap();
}

#[test]
fn schemeless_issuer_is_refused_with_a_clear_message() {
    for issuer in [
        "accounts.google.com",
        "token.actions.githubusercontent.com:443",
    ] {
        let found = problems(&format!("kind: Issuer\nname: s\nissuer: {issuer}\n"));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].contains("has no scheme"), "{found:#?}");
        assert!(
            found[0].contains(&format!("https://{issuer}")),
            "{found:#?}"
        );
    }
}

#[test]
fn trailing_slash_twins_are_refused() {
    let found = problems(
        "kind: Issuer\nname: a\nissuer: https://idp.example\n---\nkind: Issuer\nname: b\nissuer: https://idp.example/\n",
    );
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].contains("p.yaml:7:1 issuer:"), "{found:#?}");
    assert!(found[0].contains("only by a trailing slash"), "{found:#?}");
    assert!(found[0].contains("\"https://idp.example\""), "{found:#?}");
    // Azure v1 issuers end with a slash; alone they are fine.
    load(&[(
        "p.yaml",
        "kind: Issuer\nname: a\nissuer: https://sts.windows.net/7f3c9a2e-4b1d-4e8f-9a6c-2d5e8f1b3c7a/\npreset: azure\n",
    )])
    .unwrap();
}

#[test]
fn hygiene_fields_are_checked() {
    one_problem(
        "kind: Issuer\nname: a\nissuer: https://idp.example\nmaxTokenLifetime: 10s\n",
        "maxTokenLifetime",
        "is outside",
    );
    one_problem(
        "kind: Issuer\nname: a\nissuer: https://idp.example\nmaxTokenAge: 400days\n",
        "maxTokenAge",
        "is outside",
    );
    one_problem(
        "kind: Issuer\nname: a\nissuer: https://idp.example\nrequiredType: \"\"\n",
        "requiredType",
        "\"any\"",
    );
}

#[test]
fn ca_file_must_hold_pem_and_only_goes_with_fetching() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ca.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("k.jwks.json"), r#"{"keys":[]}"#).unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        "kind: Issuer\nname: k\nissuer: https://k8s.internal.example\npreset: kubernetes\ncaFile: ca.pem\n",
    )
    .unwrap();
    let set = load_dir(dir.path()).unwrap();
    assert_eq!(
        set.issuer("k").unwrap().ca_file.as_deref(),
        Some(dir.path().join("ca.pem").as_path())
    );
    std::fs::write(
        dir.path().join("p.yaml"),
        "kind: Issuer\nname: k\nissuer: https://k8s.internal.example\ncaFile: missing.pem\n---\nkind: Issuer\nname: f\nissuer: https://f.example\njwksFile: k.jwks.json\ncaFile: ca.pem\n",
    )
    .unwrap();
    let LoadErrors(found) = load_dir(dir.path()).unwrap_err();
    let found: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].contains("holds no PEM certificate"), "{found:#?}");
    assert!(found[1].contains("nothing is fetched"), "{found:#?}");
}
