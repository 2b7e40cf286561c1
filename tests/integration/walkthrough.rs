//! The README walkthrough, word for word: the shell block between the walkthrough markers runs
//! against the real binary serving the bundled `policies/`, with `cargo run --release -q --`
//! replaced by the test binary and the port by a free one.

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_trustbridge");

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn walkthrough_block() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README");
    let start = readme
        .find("<!-- walkthrough:start -->")
        .expect("start marker");
    let end = readme.find("<!-- walkthrough:end -->").expect("end marker");
    let block = &readme[start..end];
    let body_start = block.find("```sh\n").expect("sh block") + "```sh\n".len();
    let body_end = block.rfind("```").expect("block end");
    block[body_start..body_end].to_string()
}

#[test]
fn readme_walkthrough_works_word_for_word() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let policies = cwd.path().join("policies");
    std::fs::create_dir(&policies).expect("mkdir");
    for entry in
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")).expect("policies")
    {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, policies.join(path.file_name().expect("name"))).expect("copy");
    }
    let addr = {
        let probe = TcpListener::bind("127.0.0.1:0").expect("probe port");
        probe.local_addr().expect("addr").to_string()
    };

    // The README's first command, `cargo run --release`, is `trustbridge` with no arguments.
    let server = Server(
        Command::new(BIN)
            .current_dir(cwd.path())
            .env("TRUSTBRIDGE_LISTEN", &addr)
            // Parallel tests must not collide on the admin listener's default port.
            .env("TRUSTBRIDGE_ADMIN_LISTEN", "127.0.0.1:0")
            .env_remove("TRUSTBRIDGE_DATA_DIR")
            .env_remove("TRUSTBRIDGE_POLICIES")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start trustbridge"),
    );
    let client = reqwest::blocking_ready(&addr);
    assert!(client, "gateway did not become ready on {addr}");

    let script = walkthrough_block()
        .replace("cargo run --release -q --", BIN)
        .replace("127.0.0.1:8080", &addr);
    let out = Command::new("bash")
        .current_dir(cwd.path())
        .args(["-euo", "pipefail", "-c", &script])
        .env_remove("TRUSTBRIDGE_DATA_DIR")
        .output()
        .expect("run walkthrough");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut server = server;
    if !out.status.success() {
        let _ = server.0.kill();
        let mut logs = String::new();
        if let Some(mut e) = server.0.stderr.take() {
            let _ = e.read_to_string(&mut logs);
        }
        panic!("walkthrough failed\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver:\n{logs}");
    }

    // Step 3: the decoded access token.
    assert!(stdout.contains(r#""aud": "api://payments""#), "{stdout}");
    assert!(stdout.contains(r#""Payments.Write""#), "{stdout}");
    assert!(
        stdout.contains(r#""repository": "contoso/infra""#),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(r#""iss": "http://{addr}/contoso/v2.0""#)),
        "{stdout}"
    );
    // Step 4: token exchange succeeded.
    assert!(
        stdout.contains(r#""issued_token_type":"urn:ietf:params:oauth:token-type:access_token""#),
        "{stdout}"
    );
    // Step 5: discovery and keys.
    assert!(
        stdout.contains(r#""jwks_uri""#) && stdout.contains(r#""use":"sig""#),
        "{stdout}"
    );
    // Step 6: the denial.
    assert!(
        stdout.contains(r#""error":"invalid_client""#) && stdout.contains("700213"),
        "{stdout}"
    );
}

/// Polls `/readyz` until it answers 200 (the server starts in well under a second; the bound is
/// generous for loaded CI machines).
mod reqwest {
    use super::*;

    pub fn blocking_ready(addr: &str) -> bool {
        for _ in 0..200 {
            if let Ok(mut stream) = std::net::TcpStream::connect(addr) {
                use std::io::Write;
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = write!(
                    stream,
                    "GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
                );
                let mut response = String::new();
                let _ = stream.read_to_string(&mut response);
                if response.starts_with("HTTP/1.1 200") {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}
