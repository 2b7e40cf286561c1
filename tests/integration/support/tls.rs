//! HTTPS test servers: a throwaway CA ([`TestCa`]) and the real gateway serving TLS with a
//! certificate it issued for 127.0.0.1 ([`TlsGateway`]), started by the same `app::build` and
//! `app::server` as `trustbridge serve --tls-cert --tls-key`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde_json::Value;
use trustbridge::app;
use trustbridge::clock::{Clock, ManualClock};
use trustbridge::config::{Layer, Settings};
use trustbridge::gateway::Gateway;
use trustbridge::tls::TlsFiles;

/// A throwaway certificate authority, its certificate written to `ca.pem` in its directory.
pub struct TestCa {
    /// Directory holding `ca.pem` and the server certificates issued.
    pub dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate (PEM).
    pub pem: String,
}

impl TestCa {
    /// Makes a CA (ECDSA P-256).
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(DnType::CommonName, "trustbridge throwaway test CA");
        let pem = params.self_signed(&key).expect("ca cert").pem();
        std::fs::write(dir.path().join("ca.pem"), &pem).expect("write ca.pem");
        Self {
            dir,
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// The CA certificate file (what clients are told to trust).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A server certificate for IP 127.0.0.1 (and DNS localhost) and its key, as PEM.
    pub fn issue(&self) -> (String, String) {
        self.issue_for(ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate (for mutual TLS) and its key, as PEM.
    pub fn issue_client(&self) -> (String, String) {
        self.issue_for(ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue_for(&self, purpose: ExtendedKeyUsagePurpose) -> (String, String) {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params
            .subject_alt_names
            .push(SanType::IpAddress(Ipv4Addr::LOCALHOST.into()));
        params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        params.extended_key_usages = vec![purpose];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &self.issuer).expect("leaf cert");
        (cert.pem(), key.serialize_pem())
    }

    /// Issues a server certificate and writes it as `tls.crt`/`tls.key` in the CA directory.
    pub fn issue_files(&self) -> TlsFiles {
        let files = TlsFiles {
            cert: self.dir.path().join("tls.crt"),
            key: self.dir.path().join("tls.key"),
        };
        let (cert, key) = self.issue();
        std::fs::write(&files.cert, cert).expect("write cert");
        std::fs::write(&files.key, key).expect("write key");
        files
    }

    /// An HTTP client trusting only this CA, never using a proxy.
    pub fn client(&self) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(self.pem.as_bytes()).expect("ca pem");
        reqwest::Client::builder()
            .no_proxy()
            .tls_certs_only([ca])
            .build()
            .expect("tls client")
    }
}

/// The real gateway serving HTTPS on 127.0.0.1.
pub struct TlsGateway {
    /// `https://127.0.0.1:<port>`, also the public URL.
    pub url: String,
    /// The gateway's shared state.
    pub gateway: Arc<Gateway>,
    /// Temporary root holding policies/, keys/ and data/.
    pub root: tempfile::TempDir,
    /// The certificate files served.
    pub tls: TlsFiles,
    /// The shared clock.
    pub clock: Arc<ManualClock>,
    /// This gateway's audit trail, under the test-log directory (see `support::logs`).
    pub audit_path: PathBuf,
    addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
}

impl TlsGateway {
    /// Starts a gateway over `tests/fixtures/policies/<scenario>/` (placeholders `{{NAME}}`
    /// replaced from `vars`) serving `tls` on 127.0.0.1:0.
    pub async fn start(
        scenario: &str,
        vars: &[(&str, &str)],
        clock: Arc<ManualClock>,
        tls: TlsFiles,
    ) -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        copy_fixture(scenario, vars, &root.path().join("policies"));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        Self::serve(root, clock, tls, listener).await
    }

    async fn serve(
        root: tempfile::TempDir,
        clock: Arc<ManualClock>,
        tls: TlsFiles,
        listener: std::net::TcpListener,
    ) -> Self {
        let addr = listener.local_addr().expect("addr");
        let audit_path = super::logs::audit_file();
        let settings = Settings::resolve(Layer {
            listen: Some(addr.to_string()),
            policies: Some(root.path().join("policies")),
            keys: Some(root.path().join("keys")),
            data_dir: Some(root.path().join("data")),
            workers: Some(1),
            tls_cert: Some(tls.cert.clone()),
            tls_key: Some(tls.key.clone()),
            audit_log: Some(audit_path.display().to_string()),
            ..Layer::default()
        })
        .expect("tls settings");
        // The default public URL follows the scheme: nothing else tells it TLS is on.
        let url = settings.public_url.clone();
        assert_eq!(url, format!("https://{addr}"));
        let gateway =
            app::build(settings, clock.clone() as Arc<dyn Clock>).expect("gateway builds");
        let server = app::server(gateway.clone(), listener).expect("server");
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            url,
            gateway,
            root,
            tls,
            clock,
            audit_path,
            addr,
            handle,
        }
    }

    /// Stops the gateway and starts a new one over the same directories on the same port, so
    /// its issuer URLs stay what verifiers already know.
    pub async fn restart(self) -> Self {
        self.handle.stop(true).await;
        let listener = std::net::TcpListener::bind(self.addr).expect("rebind the same port");
        Self::serve(self.root, self.clock, self.tls, listener).await
    }

    /// The key directory.
    pub fn keys_dir(&self) -> PathBuf {
        self.root.path().join("keys")
    }

    /// The tenant issuer URL.
    pub fn issuer(&self, tenant: &str) -> String {
        format!("{}/{tenant}/v2.0", self.url)
    }

    /// The tenant token endpoint.
    pub fn token_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.url)
    }

    /// POSTs a form to the tenant token endpoint over HTTPS; returns status and JSON body.
    pub async fn post_token(
        &self,
        client: &reqwest::Client,
        tenant: &str,
        form: &[(&str, &str)],
    ) -> (u16, Value) {
        let resp = client
            .post(self.token_endpoint(tenant))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(super::gateway::encode(form))
            .send()
            .await
            .expect("token request");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("json body"))
    }

    /// The sum of every `name{...}` sample on `/metrics` whose labels contain `label`.
    pub async fn metric_sum(&self, client: &reqwest::Client, name: &str, label: &str) -> f64 {
        let text = client
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// Copies a policy fixture into `dest`, replacing each `{{NAME}}` with its value.
pub fn copy_fixture(scenario: &str, vars: &[(&str, &str)], dest: &Path) {
    std::fs::create_dir_all(dest).expect("mkdir");
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/policies")
        .join(scenario);
    for entry in std::fs::read_dir(&src).expect("fixture dir") {
        let path = entry.expect("entry").path();
        let mut text = std::fs::read_to_string(&path).expect("read fixture");
        for (name, value) in vars {
            text = text.replace(&format!("{{{{{name}}}}}"), value);
        }
        std::fs::write(dest.join(path.file_name().expect("name")), text).expect("write");
    }
}
