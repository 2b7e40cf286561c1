use std::collections::HashMap;

use super::*;

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| vars.get(name).cloned()
}

#[test]
fn the_token_source_is_the_flag_then_actions_then_kubernetes() {
    let dir = tempfile::tempdir().unwrap();
    let k8s = dir.path().join("token");
    let flag = dir.path().join("flag");
    let actions = env(&[
        (
            ACTIONS_URL_VAR,
            "https://actions.example/token?api-version=2.0",
        ),
        (ACTIONS_TOKEN_VAR, "request-secret"),
    ]);

    let got = subject_source(Some(&flag), &k8s, "api://trustbridge", &actions).unwrap();
    assert_eq!(got, SubjectSource::File(flag.clone()));

    let got = subject_source(None, &k8s, "api://trustbridge", &actions).unwrap();
    let SubjectSource::GithubActions { url, audience, .. } = got else {
        panic!("{got:?}")
    };
    assert_eq!(url, "https://actions.example/token?api-version=2.0");
    assert_eq!(audience, "api://trustbridge");

    // Without Actions variables (or with one empty) and without the projected file: none.
    let half = env(&[(ACTIONS_URL_VAR, "https://a"), (ACTIONS_TOKEN_VAR, "")]);
    let err = subject_source(None, &k8s, "aud", &half).unwrap_err();
    assert!(err.to_string().contains("id-token: write"), "{err}");

    std::fs::write(&k8s, "x").unwrap();
    let got = subject_source(None, &k8s, "aud", &half).unwrap();
    assert_eq!(got, SubjectSource::File(k8s));
}

#[test]
fn endpoints_must_be_https_except_to_loopback() {
    let request = |endpoint: &str| TokenRequest {
        endpoint: endpoint.to_string(),
        tenant: "contoso".into(),
        client_id: "c".into(),
        scope: "s".into(),
    };
    assert_eq!(
        request("https://tb.example/").token_url().unwrap().as_str(),
        "https://tb.example/contoso/oauth2/v2.0/token"
    );
    for ok in [
        "http://127.0.0.1:8080",
        "http://[::1]:1",
        "http://localhost:9",
    ] {
        assert!(request(ok).token_url().is_ok(), "{ok}");
    }
    for bad in [
        "http://tb.example",
        "ftp://127.0.0.1",
        "not a url",
        "http://10.0.0.1",
    ] {
        assert!(
            matches!(request(bad).token_url(), Err(ClientError::BadUrl { .. })),
            "{bad}"
        );
    }
}

#[test]
fn token_files_are_trimmed_and_empty_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t");
    std::fs::write(&file, "  eyJ.x.y\n").unwrap();
    assert_eq!(read_token_file(&file).unwrap().as_str(), "eyJ.x.y");
    std::fs::write(&file, "\n").unwrap();
    assert!(read_token_file(&file).is_err());
    assert!(read_token_file(&dir.path().join("missing")).is_err());
}

#[cfg(unix)]
#[test]
fn the_output_file_is_owner_only_even_when_it_existed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("access-token");
    std::fs::write(&file, "old").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    write_token_file(&file, "new-token").unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "new-token\n");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // No temporary file left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
