//! A real OIDC issuer on 127.0.0.1:0: discovery, JWKS, and minting with its keys; over plain
//! HTTP, or over HTTPS with a certificate from a test CA ([`TestIssuer::start_tls`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use serde_json::{Value, json};
use trustbridge::clock::{Clock, ManualClock};
use trustbridge::jose::SigningAlgorithm;
use trustbridge::tls::{ServerCert, TlsFiles};
use trustbridge::tokens::keys::PrivateKey;

#[derive(Default)]
struct State {
    keys: Vec<PrivateKey>,
    extra_jwks: Vec<Value>,
    fail_with: Option<u16>,
    oversized: bool,
    hits: HashMap<String, usize>,
    issuer: String,
    // Misbehaviours added for issue #3 (issuer trust).
    delay: Option<std::time::Duration>,
    malformed: bool,
    redirect_jwks_to: Option<String>,
    discovery_issuer: Option<String>,
    cache_control: Option<String>,
    jwks_before: Vec<Value>,
}

/// The test issuer.
pub struct TestIssuer {
    /// Base URL, also the `iss` of its tokens.
    pub url: String,
    state: Arc<Mutex<State>>,
    clock: Arc<ManualClock>,
    handle: actix_web::dev::ServerHandle,
    /// The served certificate, when over HTTPS.
    tls: Option<Arc<ServerCert>>,
}

impl TestIssuer {
    /// Starts an issuer with one RS256 key.
    pub async fn start(clock: Arc<ManualClock>) -> Self {
        Self::start_with(clock, SigningAlgorithm::RS256).await
    }

    /// Starts an issuer with one key of `alg`.
    pub async fn start_with(clock: Arc<ManualClock>, alg: SigningAlgorithm) -> Self {
        Self::serve(clock, alg, None).await
    }

    /// Starts an issuer with one RS256 key over HTTPS at `https://127.0.0.1:<port>`, presenting
    /// the certificate in `tls` (e.g. from `TestCa::issue_files`). Every request gets a full
    /// handshake (no keep-alive, no session resumption), as after an issuer restarted with a
    /// new certificate, so a certificate swapped by [`TestIssuer::reload_tls`] is what the next
    /// fetch meets and verifies.
    pub async fn start_tls(clock: Arc<ManualClock>, tls: TlsFiles) -> Self {
        let cert = Arc::new(ServerCert::load(tls).expect("issuer certificate"));
        Self::serve(clock, SigningAlgorithm::RS256, Some(cert)).await
    }

    async fn serve(
        clock: Arc<ManualClock>,
        alg: SigningAlgorithm,
        tls: Option<Arc<ServerCert>>,
    ) -> Self {
        super::logs::capture();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(State {
            keys: vec![PrivateKey::generate(alg).expect("key")],
            issuer: url.clone(),
            ..State::default()
        }));
        let data = web::Data::new(state.clone());
        let builder = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(discovery),
                )
                .route("/keys", web::get().to(jwks))
                .default_service(web::to(unknown))
        })
        .workers(1)
        .disable_signals();
        let server = match &tls {
            Some(cert) => {
                let mut config = cert.server_config().expect("tls config");
                config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
                builder
                    .keep_alive(actix_web::http::KeepAlive::Disabled)
                    .listen_rustls_0_23(listener, config)
            }
            None => builder.listen(listener),
        }
        .expect("listen")
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            url,
            state,
            clock,
            handle,
            tls,
        }
    }

    /// Re-reads the certificate files given to [`TestIssuer::start_tls`]: after they were
    /// rewritten, new connections get the new certificate.
    pub fn reload_tls(&self) {
        let cert = self.tls.as_ref().expect("an HTTPS issuer");
        match cert.reload() {
            trustbridge::tls::ReloadOutcome::Reloaded => {}
            other => panic!("issuer certificate not reloaded: {other:?}"),
        }
    }

    /// Standard claims for `sub` and `aud`, valid for 5 minutes from now.
    pub fn claims(&self, sub: &str, aud: &str) -> Value {
        let now = self.clock.unix();
        json!({
            "iss": self.url,
            "sub": sub,
            "aud": aud,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": uuid::Uuid::new_v4().to_string(),
        })
    }

    /// Mints a token over `claims` with the newest key (header: alg, kid, typ JWT).
    pub fn mint(&self, claims: &Value) -> String {
        let state = self.state.lock().expect("state");
        let key = state.keys.last().expect("a key");
        let header = json!({"alg": key.alg().as_str(), "kid": key.kid(), "typ": "JWT"});
        sign_raw(key, &header.to_string(), &claims.to_string())
    }

    /// Mints a token from raw header and payload JSON text, signed by the newest key.
    pub fn mint_raw(&self, header: &str, payload: &str) -> String {
        let state = self.state.lock().expect("state");
        sign_raw(state.keys.last().expect("a key"), header, payload)
    }

    /// The newest key.
    pub fn kid(&self) -> String {
        self.state
            .lock()
            .expect("state")
            .keys
            .last()
            .expect("a key")
            .kid()
            .to_string()
    }

    /// Adds a new key (published and used from now on); old keys stay published.
    pub fn rotate_keys(&self) {
        let mut state = self.state.lock().expect("state");
        let alg = state
            .keys
            .last()
            .map_or(SigningAlgorithm::RS256, |k| k.alg());
        state.keys.push(PrivateKey::generate(alg).expect("key"));
    }

    /// Publishes an extra JWK as is (e.g. a weak key from tests/fixtures).
    pub fn publish_jwk(&self, jwk: Value) {
        self.state.lock().expect("state").extra_jwks.push(jwk);
    }

    /// Makes every endpoint answer `status` (`None` to recover).
    pub fn fail_with(&self, status: Option<u16>) {
        self.state.lock().expect("state").fail_with = status;
    }

    /// Makes the JWKS endpoint answer an oversized body.
    pub fn serve_oversized(&self) {
        self.state.lock().expect("state").oversized = true;
    }

    /// Makes discovery and JWKS answers wait `delay` (real time) before answering (`None` to
    /// recover). For timeout tests with a short fetch timeout.
    pub fn respond_slowly(&self, delay: Option<std::time::Duration>) {
        self.state.lock().expect("state").delay = delay;
    }

    /// Makes the JWKS endpoint answer 200 with a body that is not JSON.
    pub fn serve_malformed(&self, on: bool) {
        self.state.lock().expect("state").malformed = on;
    }

    /// Makes the JWKS endpoint answer `302 Found` to `location` (`None` to recover).
    pub fn redirect_jwks_to(&self, location: Option<String>) {
        self.state.lock().expect("state").redirect_jwks_to = location;
    }

    /// Makes discovery name `issuer` instead of the real URL (`None` to recover).
    pub fn set_discovery_issuer(&self, issuer: Option<String>) {
        self.state.lock().expect("state").discovery_issuer = issuer;
    }

    /// Sends `Cache-Control: value` with the JWKS (`None`: no header).
    pub fn set_cache_control(&self, value: Option<&str>) {
        self.state.lock().expect("state").cache_control = value.map(str::to_string);
    }

    /// Publishes `jwks` before the issuer's own keys (to push them past a key-count cap).
    pub fn publish_jwks_first(&self, jwks: Vec<Value>) {
        self.state.lock().expect("state").jwks_before = jwks;
    }

    /// The newest key's public JWK.
    pub fn public_jwk(&self) -> Value {
        self.state
            .lock()
            .expect("state")
            .keys
            .last()
            .expect("a key")
            .public_jwk()
            .clone()
    }

    /// How often `path` was requested.
    pub fn hits(&self, path: &str) -> usize {
        *self
            .state
            .lock()
            .expect("state")
            .hits
            .get(path)
            .unwrap_or(&0)
    }

    /// How many requests reached the server, on any path.
    pub fn total_hits(&self) -> usize {
        self.state.lock().expect("state").hits.values().sum()
    }

    /// The newest key's private half as PKCS#8 PEM (for attacks that misuse the public half).
    pub fn private_pem(&self) -> String {
        self.state
            .lock()
            .expect("state")
            .keys
            .last()
            .expect("a key")
            .to_pkcs8_pem()
            .to_string()
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

fn sign_raw(key: &PrivateKey, header: &str, payload: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let input = format!("{}.{}", b64.encode(header), b64.encode(payload));
    let signature = key.sign_raw(input.as_bytes()).expect("sign");
    let token = format!("{input}.{signature}");
    super::logs::secret(&token);
    token
}

type Shared = web::Data<Arc<Mutex<State>>>;

fn hit(state: &Shared, req: &HttpRequest) -> Option<HttpResponse> {
    let mut s = state.lock().expect("state");
    *s.hits.entry(req.path().to_string()).or_default() += 1;
    s.fail_with.map(|code| {
        HttpResponse::build(actix_web::http::StatusCode::from_u16(code).expect("status")).finish()
    })
}

async fn slow(state: &Shared) {
    let delay = state.lock().expect("state").delay;
    if let Some(delay) = delay {
        actix_web::rt::time::sleep(delay).await;
    }
}

async fn discovery(state: Shared, req: HttpRequest) -> HttpResponse {
    if let Some(failed) = hit(&state, &req) {
        return failed;
    }
    slow(&state).await;
    let (issuer, named) = {
        let s = state.lock().expect("state");
        let named = s
            .discovery_issuer
            .clone()
            .unwrap_or_else(|| s.issuer.clone());
        (s.issuer.clone(), named)
    };
    HttpResponse::Ok().json(json!({
        "issuer": named,
        "jwks_uri": format!("{issuer}/keys"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn jwks(state: Shared, req: HttpRequest) -> HttpResponse {
    if let Some(failed) = hit(&state, &req) {
        return failed;
    }
    slow(&state).await;
    let s = state.lock().expect("state");
    if let Some(location) = &s.redirect_jwks_to {
        return HttpResponse::Found()
            .insert_header(("location", location.as_str()))
            .finish();
    }
    if s.malformed {
        return HttpResponse::Ok()
            .content_type("application/json")
            .body("{\"keys\": [ this is not json");
    }
    if s.oversized {
        return HttpResponse::Ok()
            .content_type("application/json")
            .body(format!(
                "{{\"keys\":[],\"pad\":\"{}\"}}",
                "x".repeat(2 * 1024 * 1024)
            ));
    }
    let mut keys: Vec<Value> = s.jwks_before.clone();
    keys.extend(s.keys.iter().map(|k| k.public_jwk().clone()));
    keys.extend(s.extra_jwks.iter().cloned());
    let mut response = HttpResponse::Ok();
    if let Some(value) = &s.cache_control {
        response.insert_header(("cache-control", value.as_str()));
    }
    response.json(json!({ "keys": keys }))
}

async fn unknown(state: Shared, req: HttpRequest) -> HttpResponse {
    hit(&state, &req);
    eprintln!(
        "test issuer: unexpected request {} {}",
        req.method(),
        req.path()
    );
    HttpResponse::NotFound().finish()
}
