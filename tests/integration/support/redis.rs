//! Private `redis-server` processes for the tests: plain or TLS (with a throwaway CA), with a
//! password or ACL users, on a free port, stopped on drop, restartable on the same port with
//! the same settings.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::tls::TestCa;

/// A port nothing listens on right now (bound and released).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// The TLS side of a private Redis: its CA and files.
pub struct RedisTls {
    /// The CA that issued the server (and client) certificates.
    pub ca: TestCa,
    /// A client certificate and key for mutual TLS, issued by `ca`.
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
}

/// A private redis-server on a free port, stopped on drop.
pub struct PrivateRedis {
    /// The port (TLS when `tls` is set; the plain port is then disabled).
    pub port: u16,
    /// TLS material, when started with [`PrivateRedis::start_tls`].
    pub tls: Option<RedisTls>,
    args: Vec<String>,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Plain Redis without authentication.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Plain Redis with extra server arguments (e.g. `--requirepass`, `--user`).
    pub fn start_with(args: &[&str]) -> Self {
        let port = free_port();
        let mut all = vec!["--port".to_string(), port.to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        Self::launch(port, all, None)
    }

    /// TLS-only Redis (`--port 0 --tls-port N`) with a server certificate from a fresh CA,
    /// requiring client certificates from that CA when `mutual`, plus extra arguments.
    pub fn start_tls(mutual: bool, args: &[&str]) -> Self {
        let port = free_port();
        let ca = TestCa::new();
        let dir = ca.dir.path().to_path_buf();
        let (cert, key) = ca.issue();
        let (client_cert, client_key) = ca.issue_client();
        let path = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).expect("write tls file");
            p
        };
        let server_cert = path("redis.crt", &cert);
        let server_key = path("redis.key", &key);
        let tls = RedisTls {
            client_cert: path("client.crt", &client_cert),
            client_key: path("client.key", &client_key),
            ca,
        };
        let mut all: Vec<String> = vec!["--port".into(), "0".into()];
        all.extend(["--tls-port".into(), port.to_string()]);
        all.extend(["--tls-cert-file".into(), server_cert.display().to_string()]);
        all.extend(["--tls-key-file".into(), server_key.display().to_string()]);
        all.extend([
            "--tls-ca-cert-file".into(),
            tls.ca.ca_file().display().to_string(),
        ]);
        all.extend([
            "--tls-auth-clients".into(),
            if mutual { "yes" } else { "no" }.into(),
        ]);
        all.extend(args.iter().map(|a| a.to_string()));
        Self::launch(port, all, Some(tls))
    }

    fn launch(port: u16, args: Vec<String>, tls: Option<RedisTls>) -> Self {
        let mut redis = Self {
            port,
            tls,
            args,
            child: None,
        };
        redis.restart();
        redis
    }

    /// `redis://127.0.0.1:<port>` or `rediss://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The URL with `user@` (no password) before the host.
    pub fn url_for(&self, user: &str) -> String {
        self.url().replacen("://", &format!("://{user}@"), 1)
    }

    /// Starts (again) with the same port and arguments.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/run installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
