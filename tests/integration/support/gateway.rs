//! The real gateway on 127.0.0.1:0, built by the same `app::build` and `app::server` as
//! `trustbridge serve`, over fixture policies copied into a temporary directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use trustbridge::app;
use trustbridge::clock::{Clock, ManualClock};
use trustbridge::config::{Layer, Settings};
use trustbridge::gateway::Gateway;

use super::http;

/// `client_assertion_type` of Grant A.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// `grant_type` of Grant B.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// `subject_token_type` for JWTs.
pub const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// A running gateway.
pub struct TestGateway {
    /// Base URL (also the public URL).
    pub url: String,
    /// The gateway's shared state.
    pub gateway: Arc<Gateway>,
    /// Temporary root holding policies/, keys/ and data/.
    pub root: tempfile::TempDir,
    /// This gateway's audit trail, kept under the test-log directory so the whole run's
    /// audit lines can be scanned for secrets afterwards (see `support::logs`).
    pub audit_path: PathBuf,
    clock: Arc<ManualClock>,
    handle: actix_web::dev::ServerHandle,
}

impl TestGateway {
    /// Starts a gateway on the policies of `tests/fixtures/policies/<scenario>/`, with each
    /// `{{NAME}}` placeholder replaced by its value (e.g. the test issuer's URL).
    pub async fn start(scenario: &str, vars: &[(&str, &str)], clock: Arc<ManualClock>) -> Self {
        let root = fixture_root(scenario, vars);
        Self::start_in(root, clock).await
    }

    /// Starts a gateway like [`Self::start`], with `tweak` applied to its settings layer
    /// (Redis, rate limits, a shared key directory, reload interval).
    pub async fn start_tweaked(
        scenario: &str,
        vars: &[(&str, &str)],
        clock: Arc<ManualClock>,
        tweak: impl FnOnce(&mut Layer),
    ) -> Self {
        let root = fixture_root(scenario, vars);
        Self::start_in_with(root, clock, tweak).await
    }

    /// Starts (or restarts) a gateway over an existing root directory.
    pub async fn start_in(root: tempfile::TempDir, clock: Arc<ManualClock>) -> Self {
        Self::start_in_with(root, clock, |_| {}).await
    }

    /// Starts a gateway over an existing root directory with `tweak` applied to its settings.
    pub async fn start_in_with(
        root: tempfile::TempDir,
        clock: Arc<ManualClock>,
        tweak: impl FnOnce(&mut Layer),
    ) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        super::logs::capture();
        let audit_path = super::logs::audit_file();
        let mut layer = layer(root.path(), &url);
        layer.audit_log = Some(audit_path.display().to_string());
        tweak(&mut layer);
        let settings = Settings::resolve(layer).expect("test settings");
        let gateway =
            app::build(settings, clock.clone() as Arc<dyn Clock>).expect("gateway builds");
        let server = app::server(gateway.clone(), listener).expect("server");
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            url,
            gateway,
            root,
            audit_path,
            clock,
            handle,
        }
    }

    /// Stops the server, waiting for in-flight requests.
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

/// Copies the fixture policies of `scenario` into a fresh temporary root, with each
/// `{{NAME}}` placeholder replaced by its value.
pub fn fixture_root(scenario: &str, vars: &[(&str, &str)]) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("tempdir");
    let policies = root.path().join("policies");
    std::fs::create_dir_all(&policies).expect("mkdir");
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/policies")
        .join(scenario);
    for entry in std::fs::read_dir(&src).expect("fixture dir") {
        let path = entry.expect("entry").path();
        let mut text = std::fs::read_to_string(&path).expect("read fixture");
        for (name, value) in vars {
            text = text.replace(&format!("{{{{{name}}}}}"), value);
        }
        std::fs::write(policies.join(path.file_name().expect("name")), text).expect("write");
    }
    root
}

impl TestGateway {
    /// Stops the gateway and starts a new one over the same directories (new port).
    pub async fn restart(self) -> Self {
        self.handle.stop(true).await;
        Self::start_in(self.root, self.clock).await
    }

    /// The key directory.
    pub fn keys_dir(&self) -> PathBuf {
        self.root.path().join("keys")
    }

    /// The policy directory.
    pub fn policies_dir(&self) -> PathBuf {
        self.root.path().join("policies")
    }

    /// Every audit record written so far, parsed (after the writer has caught up).
    pub fn audit_records(&self) -> Vec<Value> {
        self.gateway.audit().sync();
        std::fs::read_to_string(&self.audit_path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit lines are JSON"))
            .collect()
    }

    /// POSTs a form to the tenant's token endpoint; returns status and JSON body.
    pub async fn post_token(&self, tenant: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let resp = http()
            .post(format!("{}/{tenant}/oauth2/v2.0/token", self.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode(form))
            .send()
            .await
            .expect("token request");
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.expect("json body");
        if let Some(token) = body["access_token"].as_str() {
            super::logs::secret(token);
        }
        (status, body)
    }

    /// Grant A: client credentials with a federated assertion.
    pub async fn client_credentials(
        &self,
        client_id: &str,
        assertion: &str,
        scope: &str,
    ) -> (u16, Value) {
        self.post_token(
            "contoso",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", assertion),
                ("scope", scope),
            ],
        )
        .await
    }

    /// Grant B: token exchange for `resource`, without client_id.
    pub async fn token_exchange(&self, subject_token: &str, resource: &str) -> (u16, Value) {
        self.post_token(
            "contoso",
            &[
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", subject_token),
                ("subject_token_type", JWT_TYPE),
                ("resource", resource),
            ],
        )
        .await
    }

    /// GETs a path and parses JSON.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let resp = http()
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("get");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("json"))
    }

    /// GETs a path as text.
    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let resp = http()
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("get");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("text"))
    }

    /// Verifies an issued token the way a standard verifier would: discovery → jwks_uri → key
    /// by kid → signature; checks `iss` equals the discovery `issuer`; returns the claims.
    pub async fn verify(&self, tenant: &str, token: &str) -> Value {
        let (_, discovery) = self
            .get_json(&format!("/{tenant}/v2.0/.well-known/openid-configuration"))
            .await;
        let jwks_uri = discovery["jwks_uri"].as_str().expect("jwks_uri");
        let jwks: jsonwebtoken::jwk::JwkSet = http()
            .get(jwks_uri)
            .send()
            .await
            .expect("jwks")
            .json()
            .await
            .expect("jwks json");
        let header = jsonwebtoken::decode_header(token).expect("header");
        let kid = header.kid.expect("kid");
        let jwk = jwks.find(&kid).expect("kid published");
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("decoding key");
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.validate_exp = false; // the test clock is in 2026-01
        validation.validate_aud = false;
        validation.set_issuer(&[discovery["issuer"].as_str().expect("issuer")]);
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        jsonwebtoken::decode::<Value>(token, &key, &validation)
            .expect("issued token verifies")
            .claims
    }
}

fn layer(root: &Path, url: &str) -> Layer {
    Layer {
        listen: Some("127.0.0.1:0".into()),
        public_url: Some(url.into()),
        policies: Some(root.join("policies")),
        keys: Some(root.join("keys")),
        data_dir: Some(root.join("data")),
        workers: Some(1),
        // `app::server` never binds the admin listener (only `app::run` does); tests that want
        // it start `admin::server` themselves on port 0 (see `admin.rs`).
        admin_listen: Some("127.0.0.1:0".into()),
        ..Layer::default()
    }
}

/// urlencodes a form.
pub fn encode(form: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in form {
        s.append_pair(k, v);
    }
    s.finish()
}
