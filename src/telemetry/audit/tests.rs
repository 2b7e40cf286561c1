use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::*;

/// A shared buffer that can be told to fail every write.
#[derive(Clone, Default)]
struct Buffer {
    bytes: Arc<Mutex<Vec<u8>>>,
    fail: Arc<AtomicBool>,
    /// Successful `write` calls.
    writes: Arc<AtomicUsize>,
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8(self.bytes.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
        }
        self.bytes.lock().unwrap().extend_from_slice(buf);
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn event(n: usize) -> Map<String, Value> {
    let mut e = Map::new();
    e.insert("n".into(), json!(n));
    e
}

fn quick() -> WriterOptions {
    WriterOptions {
        retry: Duration::from_millis(10),
        ..WriterOptions::default()
    }
}

/// Polls `cond` (the writer is a thread) for at most five seconds.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(5));
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
        log.write(&e);
    }
    log.sync();
    let text = buffer.text();
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
fn lines_queued_while_the_writer_lingers_share_one_write() {
    let buffer = Buffer::default();
    // Long enough that the nine later lines are queued before the writer wakes from it.
    let options = WriterOptions {
        linger: Duration::from_millis(500),
        ..quick()
    };
    let log = AuditLog::to_writer_with(Box::new(buffer.clone()), AuditFailure::Deny, options);
    for n in 0..10 {
        log.write(&event(n));
    }
    log.sync();
    assert_eq!(buffer.text().lines().count(), 10);
    assert_eq!(
        buffer.writes.load(Ordering::SeqCst),
        1,
        "one batch, one write"
    );

    // Without a linger the writer still works (each wake-up writes what is queued).
    let buffer = Buffer::default();
    let options = WriterOptions {
        linger: Duration::ZERO,
        ..quick()
    };
    let log = AuditLog::to_writer_with(Box::new(buffer.clone()), AuditFailure::Deny, options);
    log.write(&event(0));
    eventually("the line is written without a sync", || {
        buffer.text().lines().count() == 1
    });
}

#[test]
fn a_busy_writer_polls_then_waits_again_and_loses_no_line() {
    let buffer = Buffer::default();
    let options = WriterOptions {
        linger: Duration::from_millis(20),
        ..quick()
    };
    let log = AuditLog::to_writer_with(Box::new(buffer.clone()), AuditFailure::Deny, options);
    let written = |n: usize| buffer.text().lines().count() == n;
    // A stream of lines: after the first batch the writer polls instead of waiting.
    for n in 0..5 {
        log.write(&event(n));
        std::thread::sleep(Duration::from_millis(7));
    }
    eventually("the stream is written without a sync", || written(5));
    // A poll finds the queue empty: the writer waits again, and a later line wakes it.
    std::thread::sleep(Duration::from_millis(100));
    log.write(&event(5));
    eventually("a line after the idle poll is written", || written(6));
    // A sync and a close while the writer polls are served, and nothing is lost.
    log.write(&event(6));
    log.sync();
    assert!(written(7));
    log.write(&event(7));
    log.close();
    let numbers: Vec<u64> = buffer
        .text()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(numbers, (0..8).collect::<Vec<u64>>());
}

#[test]
fn audit_files_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&AuditDestination::File(path.clone()), AuditFailure::Deny).unwrap();
    log.write(&Map::new());
    log.sync();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n");
}

#[test]
fn a_failing_sink_turns_grants_off_then_back_on_and_keeps_its_lines() {
    let buffer = Buffer::default();
    let log = AuditLog::to_writer_with(Box::new(buffer.clone()), AuditFailure::Deny, quick());
    let registry = Registry::new();
    log.register_metrics(&registry).unwrap();
    log.write(&event(1));
    log.sync();
    assert!(log.grants_allowed());

    buffer.fail.store(true, Ordering::SeqCst);
    log.write(&event(2));
    log.sync();
    assert!(!log.is_healthy());
    assert!(
        !log.grants_allowed(),
        "deny: no grants while the trail fails"
    );
    assert_eq!(log.shared.healthy_gauge.get(), 0);
    assert!(log.shared.write_errors.get() >= 1);

    // Retried on its own (no new event needed) once the sink works again.
    buffer.fail.store(false, Ordering::SeqCst);
    eventually("the trail recovers", || log.grants_allowed());
    assert_eq!(log.shared.healthy_gauge.get(), 1);
    log.write(&event(3));
    log.sync();
    assert_eq!(buffer.text(), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
    assert_eq!(log.shared.dropped.get(), 0);
}

#[test]
fn continue_mode_keeps_granting_while_the_trail_fails() {
    let buffer = Buffer::default();
    buffer.fail.store(true, Ordering::SeqCst);
    let log = AuditLog::to_writer_with(Box::new(buffer.clone()), AuditFailure::Continue, quick());
    log.write(&event(1));
    log.sync();
    assert!(!log.is_healthy());
    assert!(log.grants_allowed());
}

#[test]
fn a_full_retry_buffer_counts_what_it_drops() {
    let buffer = Buffer::default();
    buffer.fail.store(true, Ordering::SeqCst);
    let options = WriterOptions {
        max_pending: 16,
        ..quick()
    };
    let log = AuditLog::to_writer_with(Box::new(buffer.clone()), AuditFailure::Deny, options);
    log.write(&event(0));
    log.sync();
    assert!(!log.is_healthy());
    for n in 1..10 {
        log.write(&event(n));
    }
    log.sync();
    assert!(log.shared.dropped.get() >= 1);
}

#[test]
fn back_pressure_and_close_lose_nothing() {
    let buffer = Buffer::default();
    let options = WriterOptions {
        queue: 2,
        ..quick()
    };
    let log = Arc::new(AuditLog::to_writer_with(
        Box::new(buffer.clone()),
        AuditFailure::Deny,
        options,
    ));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for n in 0..500 {
                    log.write(&event(t * 1000 + n));
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    log.close();
    assert_eq!(buffer.text().lines().count(), 2000);
    // After close an event is counted, never silently lost.
    log.write(&event(0));
    assert_eq!(log.shared.dropped.get(), 1);
}

#[cfg(unix)]
#[test]
fn reopen_follows_a_rotated_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&AuditDestination::File(path.clone()), AuditFailure::Deny).unwrap();
    log.write(&event(1));
    log.sync();
    let rotated = dir.path().join("audit.jsonl.1");
    std::fs::rename(&path, &rotated).unwrap();
    log.reopen();
    log.write(&event(2));
    log.sync();
    assert_eq!(std::fs::read_to_string(&rotated).unwrap(), "{\"n\":1}\n");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"n\":2}\n");
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_device_fails_closed_and_a_replaced_destination_recovers() {
    // The audit path is a symlink to /dev/full (every write: ENOSPC), then to a real file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    std::os::unix::fs::symlink("/dev/full", &path).unwrap();
    let log = Arc::new(
        AuditLog::start(
            Sink::File {
                file: Some(open_file(&path).unwrap()),
                path: path.clone(),
            },
            AuditFailure::Deny,
            quick(),
        )
        .unwrap(),
    );
    log.write(&event(1));
    log.sync();
    assert!(!log.grants_allowed());

    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, "").unwrap();
    eventually("the replaced file is written", || log.grants_allowed());
    log.sync();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"n\":1}\n");
}
