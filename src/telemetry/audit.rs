//! The audit trail's sink: writes each event it is handed as one JSON object per line, to
//! stdout or a file (`--audit-log`), apart from the operational logs on stderr.
//!
//! It owns where events go ([`AuditDestination`]) and how lines are written (whole, under a
//! lock), and nothing else: the events themselves are built elsewhere (the token endpoint's
//! come from `exchange::audit`). It must not import exchange or policy types.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use crate::telemetry::recent::RecentEvents;

/// Where audit events are written: one JSON object per line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AuditDestination {
    /// Standard output (`-`), apart from the operational logs on stderr.
    #[default]
    Stdout,
    /// A file, appended to (created with mode 0600).
    File(PathBuf),
}

/// Where audit events go. Writes are whole lines under a lock, so concurrent requests never
/// interleave within an event.
pub struct AuditLog {
    sink: Mutex<Box<dyn Write + Send>>,
    /// The same events, the most recent kept in memory for the admin API.
    recent: RecentEvents,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens `destination`: stdout, or a file appended to (created with mode 0600: audit
    /// events name workloads and should not be world-readable).
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub fn open(destination: &AuditDestination) -> io::Result<Self> {
        match destination {
            AuditDestination::Stdout => Ok(Self::to_writer(Box::new(io::stdout()))),
            AuditDestination::File(path) => {
                let mut options = OpenOptions::new();
                options.create(true).append(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    options.mode(0o600);
                }
                Ok(Self::to_writer(Box::new(options.open(path)?)))
            }
        }
    }

    /// Writes events to `writer` (tests pass a buffer).
    pub fn to_writer(writer: Box<dyn Write + Send>) -> Self {
        Self {
            sink: Mutex::new(writer),
            recent: RecentEvents::default(),
        }
    }

    /// The most recent events written (the admin API's decisions).
    pub fn recent(&self) -> &RecentEvents {
        &self.recent
    }

    /// Writes `event` as one line. A failure is logged, never returned: auditing must not
    /// change the answer a request gets.
    pub fn write(&self, event: Map<String, Value>) {
        let event = Arc::new(event);
        self.recent.push(event.clone());
        let mut line = match serde_json::to_vec(event.as_ref()) {
            Ok(line) => line,
            Err(e) => {
                tracing::error!(error = %e, "audit record could not be serialised");
                return;
            }
        };
        line.push(b'\n');
        // A poisoned lock only means another writer panicked mid-line; keep auditing.
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = sink.write_all(&line).and_then(|()| sink.flush()) {
            tracing::error!(error = %e, "audit record could not be written");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::json;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_event_is_one_json_line_with_its_fields_in_order() {
        let buffer = Buffer::default();
        let log = AuditLog::to_writer(Box::new(buffer.clone()));
        for outcome in ["granted", "denied"] {
            let mut e = Map::new();
            e.insert("decision.outcome".into(), json!(outcome));
            e.insert("detail".into(), json!("a\nb"));
            log.write(e);
        }
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                r#"{"decision.outcome":"granted","detail":"a\nb"}"#,
                r#"{"decision.outcome":"denied","detail":"a\nb"}"#
            ]
        );
    }

    #[cfg(unix)]
    #[test]
    fn audit_files_are_private_to_their_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&AuditDestination::File(path.clone())).unwrap();
        log.write(Map::new());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n");
    }
}
