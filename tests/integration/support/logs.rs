//! Log capture for the whole integration test binary, so secrets hygiene can be checked over a
//! full test run rather than one test at a time.
//!
//! Every test server start installs (once) a global JSON subscriber at TRACE for trustbridge.
//! Lines go to an in-memory buffer (for tests that scan right away) and to
//! `$CARGO_TARGET_TMPDIR/test-logs/run-<pid>.jsonl`. Every token and signature the test servers
//! mint or receive is appended to `secrets-<pid>.txt` beside it, and audit trails are written
//! there too, so `scripts/scan-test-logs.py` (run by `.ci/run` after `cargo test`) can check
//! that no log or audit line of the whole run carries any of them.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// `$CARGO_TARGET_TMPDIR/test-logs`, created on first use.
pub fn dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("test-logs");
    std::fs::create_dir_all(&dir).expect("test log dir");
    dir
}

fn buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir().join(format!("run-{}.jsonl", std::process::id())))
            .expect("test log file");
        let writer = Tee(buffer.clone(), Arc::new(Mutex::new(file)));
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_env_filter("trustbridge=trace,actix_web=debug,info")
            .with_writer(move || writer.clone())
            .finish();
        // Another subscriber may exist only if some test installed one first; then the buffer
        // stays empty and the scanning tests say so instead of passing vacuously.
        let _ = tracing::subscriber::set_global_default(subscriber);
        buffer
    })
}

/// A fresh audit trail file for one test gateway, beside the run's logs: audit lines never
/// reach the test runner's output, tests read them back, and the log scan sees them.
pub fn audit_file() -> PathBuf {
    dir().join(format!("audit-{}.jsonl", uuid::Uuid::new_v4()))
}

/// Installs the capturing subscriber (idempotent).
pub fn capture() {
    buffer();
}

/// Everything logged so far in this process.
pub fn text() -> String {
    String::from_utf8_lossy(&buffer().lock().expect("log buffer")).into_owned()
}

/// Records a token (and its signature) that no log line may ever contain.
pub fn secret(token: &str) {
    static FILE: OnceLock<Mutex<std::fs::File>> = OnceLock::new();
    let file = FILE.get_or_init(|| {
        Mutex::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir().join(format!("secrets-{}.txt", std::process::id())))
                .expect("secrets file"),
        )
    });
    let mut lines = vec![token.to_string()];
    if let Some((_, signature)) = token.rsplit_once('.')
        && signature.len() >= 16
    {
        lines.push(signature.to_string());
    }
    let mut f = file.lock().expect("secrets file");
    for line in lines {
        let _ = writeln!(f, "{line}");
    }
}

#[derive(Clone)]
struct Tee(Arc<Mutex<Vec<u8>>>, Arc<Mutex<std::fs::File>>);

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        let _ = self.1.lock().expect("log file").write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Records a password (or other secret that is not a token) that no log line, audit line or
/// process output of the run may contain; `scripts/scan-test-logs.py` checks it.
pub fn password(text: &str) {
    assert!(
        text.len() >= 16,
        "the scan ignores secrets under 16 characters"
    );
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir().join(format!("passwords-{}.txt", std::process::id())))
        .expect("passwords file");
    let _ = writeln!(f, "{text}");
}

/// Keeps what a child process (the `trustbridge` binary) wrote on stdout and stderr beside
/// the run's logs, so the scan covers it too.
pub fn child_output(stdout: &[u8], stderr: &[u8]) {
    let path = dir().join(format!("child-{}.log", uuid::Uuid::new_v4()));
    let mut bytes = stdout.to_vec();
    bytes.extend_from_slice(stderr);
    std::fs::write(path, bytes).expect("child output");
}
