//! Private-CA issuers end to end (issue #17): a real OIDC issuer served over HTTPS on
//! 127.0.0.1 with a certificate from a throwaway CA, and the real gateway declaring it with
//! `caFile`. Trusted with the CA file, refused without it (callers learn nothing about the CA,
//! operators learn why), and a rotated CA file is picked up without a restart or a policy
//! change, while an unusable one leaves the cached keys serving under the stale rules.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use trustbridge::clock::ManualClock;
use trustbridge::policy::store::{ReloadOutcome, Trigger};
use trustbridge::tls::TlsFiles;

use crate::support::tls::TestCa;
use crate::support::{TestGateway, TestIssuer, clock, logs};

const SUBJECT: &str = "system:serviceaccount:team-a:deployer";
const FETCHES: &str = "trustbridge_issuer_key_fetches_total";

struct Env {
    ca: TestCa,
    issuer: TestIssuer,
    /// The certificate files the issuer serves (rewritten to rotate its CA).
    issuer_tls: TlsFiles,
    gw: TestGateway,
    clock: Arc<ManualClock>,
    /// Where the cluster's CA bundle is mounted for the gateway: outside the policy directory,
    /// as a Kubernetes ConfigMap or Secret would be.
    trust: tempfile::TempDir,
    ca_file: PathBuf,
}

/// An HTTPS issuer with a certificate from a fresh CA, that CA written to a CA file, and a
/// gateway whose policy names the CA file (`with_ca_file`) or not. Returns once the keys were
/// pre-warmed (or the pre-warm failed), so the clock may move.
async fn setup(with_ca_file: bool) -> Env {
    let clock = clock();
    let ca = TestCa::new();
    let issuer_tls = ca.issue_files();
    let issuer = TestIssuer::start_tls(clock.clone(), issuer_tls.clone()).await;
    assert!(
        issuer.url.starts_with("https://127.0.0.1:"),
        "{}",
        issuer.url
    );
    let trust = tempfile::tempdir().expect("tempdir");
    let ca_file = trust.path().join("cluster-ca.pem");
    std::fs::write(&ca_file, &ca.pem).expect("write the CA file");
    // The fixture's `#{{CA_FILE}}` comment: a line break ends it, then the caFile line.
    let line = if with_ca_file {
        format!("\ncaFile: {:?}", ca_file.display().to_string())
    } else {
        String::new()
    };
    let gw = TestGateway::start(
        "private_ca",
        &[("ISSUER", &issuer.url), ("CA_FILE", &line)],
        clock.clone(),
    )
    .await;
    let env = Env {
        ca,
        issuer,
        issuer_tls,
        gw,
        clock,
        trust,
        ca_file,
    };
    let outcome = if with_ca_file { "ok" } else { "tls_error" };
    env.wait_for_fetches(outcome, 1.0).await;
    env
}

impl Env {
    fn token(&self) -> String {
        self.issuer
            .mint(&self.issuer.claims(SUBJECT, "api://trustbridge"))
    }

    async fn exchange(&self, token: &str) -> (u16, Value) {
        self.gw
            .client_credentials("deploy-bot", token, "api://payments/.default")
            .await
    }

    async fn metric(&self, name: &str, label: &str) -> f64 {
        let text = self.gw.get_text("/metrics").await.1;
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Waits until the issuer's key loads with `outcome` reach `at_least` (a pre-warm runs in
    /// the background; its result is counted once complete).
    async fn wait_for_fetches(&self, outcome: &str, at_least: f64) {
        let label = format!("outcome=\"{outcome}\"");
        for _ in 0..1000 {
            if self.metric(FETCHES, &label).await >= at_least {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let text = self.gw.get_text("/metrics").await.1;
        let seen: Vec<&str> = text.lines().filter(|l| l.starts_with(FETCHES)).collect();
        panic!("no key load with outcome {outcome}: {seen:?}");
    }

    /// The issuer now presents a certificate from `new_ca` (as a cluster does after rotating
    /// its CA) and signs with a new key.
    fn rotate_issuer_ca(&self, new_ca: &TestCa) {
        let (cert, key) = new_ca.issue();
        std::fs::write(&self.issuer_tls.cert, cert).expect("write cert");
        std::fs::write(&self.issuer_tls.key, key).expect("write key");
        self.issuer.reload_tls();
        self.issuer.rotate_keys();
    }

    /// The newest audit record's operator detail.
    fn last_detail(&self) -> String {
        self.gw
            .audit_records()
            .last()
            .and_then(|r| r["detail"].as_str())
            .unwrap_or_default()
            .to_string()
    }

    fn policy_hash(&self) -> String {
        self.gw.gateway.policies().content_hash().to_string()
    }
}

/// Asserts a keys-unavailable refusal whose body says so and discloses nothing about the CA:
/// no path, no certificate or TLS wording, no CA name.
fn assert_keys_unavailable(env: &Env, status: u16, body: &Value) {
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(
        description.contains("issuer's signing keys cannot be obtained"),
        "{description}"
    );
    let text = body.to_string();
    let lower = text.to_lowercase();
    for leak in [
        env.ca_file.display().to_string(),
        env.trust.path().display().to_string(),
        env.ca.dir.path().display().to_string(),
    ] {
        assert!(!text.contains(&leak), "{leak} disclosed: {text}");
    }
    for word in [
        "certificate",
        "cafile",
        "tls",
        "throwaway",
        "unknownissuer",
        "pem",
    ] {
        assert!(!lower.contains(word), "{word} disclosed: {text}");
    }
}

#[actix_web::test]
async fn a_private_ca_issuer_is_trusted_through_its_ca_file() {
    let env = setup(true).await;
    let (status, body) = env.exchange(&env.token()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].is_string());
    // Discovery and JWKS were fetched over HTTPS, once (the pre-warm).
    assert_eq!(env.issuer.hits("/.well-known/openid-configuration"), 1);
    assert_eq!(env.issuer.hits("/keys"), 1);
    assert_eq!(env.metric(FETCHES, "outcome=\"tls_error\"").await, 0.0);
}

#[actix_web::test]
async fn without_its_ca_file_the_issuer_is_refused_and_only_operators_learn_why() {
    let env = setup(false).await;
    // The handshake failed: no request ever reached the issuer.
    assert_eq!(env.issuer.total_hits(), 0);

    let (status, body) = env.exchange(&env.token()).await;
    assert_keys_unavailable(&env, status, &body);
    assert_eq!(env.issuer.total_hits(), 0);
    let detail = env.last_detail();
    assert!(detail.contains("server certificate is unknown"), "{detail}");
    assert!(detail.contains("caFile"), "{detail}");
    let record = env.gw.audit_records().pop().expect("an audit record");
    assert_eq!(record["reason"], "issuer_keys_unavailable", "{record}");

    // A policy reload that adds the caFile rebuilds the issuer's source: trusted from then on.
    let policy = env.gw.policies_dir().join("policy.yaml");
    let text = std::fs::read_to_string(&policy).expect("policy");
    let issuer_line = format!("issuer: \"{}\"", env.issuer.url);
    let with_ca = text.replacen(
        &issuer_line,
        &format!(
            "{issuer_line}\ncaFile: {:?}",
            env.ca_file.display().to_string()
        ),
        1,
    );
    assert_ne!(text, with_ca);
    std::fs::write(&policy, with_ca).expect("write policy");
    let store = trustbridge::app::policy_store(&env.gw.gateway);
    let outcome = store.reload(Trigger::Manual);
    assert!(
        matches!(outcome, ReloadOutcome::Applied { .. }),
        "{outcome:?}"
    );
    let (status, body) = env.exchange(&env.token()).await;
    assert_eq!(status, 200, "{body}");
}

#[actix_web::test]
async fn a_rotated_ca_file_is_reread_without_restart_or_policy_change() {
    let env = setup(true).await;
    let hash = env.policy_hash();
    let (status, body) = env.exchange(&env.token()).await;
    assert_eq!(status, 200, "{body}");
    let old_key_token = env.token();

    // The cluster rotates its CA: new certificate, new signing key. trustbridge's CA file
    // still holds only the old CA.
    let new_ca = TestCa::new();
    env.rotate_issuer_ca(&new_ca);
    let (status, body) = env.exchange(&env.token()).await;
    assert_keys_unavailable(&env, status, &body);
    let detail = env.last_detail();
    assert!(detail.contains("server certificate is unknown"), "{detail}");
    assert!(env.metric(FETCHES, "outcome=\"tls_error\"").await >= 1.0);
    // Tokens of the key already cached keep working.
    let (status, body) = env.exchange(&old_key_token).await;
    assert_eq!(status, 200, "{body}");

    // The CA file is rewritten with a bundle of both CAs (the usual overlap); once the
    // unknown-kid cooldown has passed, the next token with the new key is accepted.
    std::fs::write(&env.ca_file, format!("{}{}", env.ca.pem, new_ca.pem)).expect("rewrite");
    env.clock.advance(Duration::from_secs(31));
    let (status, body) = env.exchange(&env.token()).await;
    assert_eq!(status, 200, "{body}");

    // Same gateway, same policies.
    assert_eq!(env.policy_hash(), hash);
    assert_eq!(env.metric(FETCHES, "outcome=\"ok\"").await, 2.0);
    let logs = logs::text();
    assert!(
        logs.lines().any(|l| l.contains("caFile content changed")
            && l.contains(&env.ca_file.display().to_string())),
        "the reload is logged with the file"
    );

    // Then the old CA is dropped from the bundle: still trusted (the issuer uses the new one).
    std::fs::write(&env.ca_file, &new_ca.pem).expect("rewrite");
    env.issuer.rotate_keys();
    env.clock.advance(Duration::from_secs(31));
    let (status, body) = env.exchange(&env.token()).await;
    assert_eq!(status, 200, "{body}");
}

#[actix_web::test]
async fn an_unusable_ca_file_keeps_cached_keys_serving_and_is_reported() {
    let env = setup(true).await;
    std::fs::write(&env.ca_file, "-----BEGIN CERTIFICATE-----\n!!\n").expect("break");

    // Past the keys' freshness (1 h without Cache-Control): the refresh fails on the CA file,
    // and the stale keys serve (stale window 24 h).
    env.clock.advance(Duration::from_secs(2 * 3600));
    let (status, body) = env.exchange(&env.token()).await;
    assert_eq!(status, 200, "{body}");
    assert!(env.metric(FETCHES, "outcome=\"ca_file_error\"").await >= 1.0);
    assert_eq!(
        env.metric("trustbridge_issuer_keys_stale", "issuer=\"cluster\"")
            .await,
        1.0
    );
    // Nothing was fetched with the roots the file held before.
    assert_eq!(env.issuer.hits("/keys"), 1);
    let path = env.ca_file.display().to_string();
    let logs = logs::text();
    let line = logs
        .lines()
        .find(|l| l.contains("issuer caFile unusable") && l.contains(&path))
        .unwrap_or_else(|| panic!("no error log for {path}"));
    let line: Value = serde_json::from_str(line).expect("json log line");
    assert_eq!(line["level"], "ERROR", "{line}");
    assert_eq!(line["issuer.name"], "cluster", "{line}");
    assert_eq!(line["setting"], "caFile", "{line}");

    // A new key cannot be fetched while the file is unusable; the caller learns nothing of it.
    env.issuer.rotate_keys();
    let (status, body) = env.exchange(&env.token()).await;
    assert_keys_unavailable(&env, status, &body);
    let detail = env.last_detail();
    assert!(detail.contains("caFile"), "{detail}");

    // Removed altogether: the same.
    std::fs::remove_file(&env.ca_file).expect("remove");
    env.clock.advance(Duration::from_secs(31));
    let (status, body) = env.exchange(&env.token()).await;
    assert_keys_unavailable(&env, status, &body);
    assert!(env.last_detail().contains("cannot be read"));

    // Restored: the next fetch uses it.
    std::fs::write(&env.ca_file, &env.ca.pem).expect("restore");
    env.clock.advance(Duration::from_secs(31));
    let (status, body) = env.exchange(&env.token()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        env.metric("trustbridge_issuer_keys_stale", "issuer=\"cluster\"")
            .await,
        0.0
    );
}
