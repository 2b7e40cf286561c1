//! The audit trail's sink: writes each event it is handed as one JSON object per line, to
//! stdout or a file (`--audit-log`), apart from the operational logs on stderr.
//!
//! It owns where events go ([`AuditDestination`]), how lines reach them and what happens when
//! they cannot, and nothing else: the events themselves are built elsewhere (the token
//! endpoint's come from `exchange::audit`). It must not import exchange or policy types.
//!
//! # Off the request path, fail-closed
//!
//! A request only serialises its event and hands the line to a bounded queue
//! ([`QUEUE_CAPACITY`] lines); one writer thread takes everything queued, appends it to one
//! batch buffer and writes the batch with as few `write` calls as the OS allows, then takes the
//! next. Woken by a line, the writer first lingers [`LINGER`] (5 ms) so that the lines queued
//! meanwhile join the same batch: under load one wake-up and one `write` carry many lines
//! instead of one each (a wake-up per line costs every exchange a context switch on a busy
//! core), and every line is written within a few milliseconds of its request. While batches
//! keep holding lines the writer polls the queue every linger rather than waiting on it, so
//! under load no worker ever wakes it (waking costs the worker a system call and its core two
//! context switches); it waits again after a poll that found the queue empty. The batch buffer is ours rather than a `BufWriter`'s so that after a
//! failed or partial write exactly the unwritten bytes are kept and retried.
//!
//! - **Back-pressure, never a silent drop.** A full queue blocks the worker that writes until
//!   the writer catches up. The only events ever discarded are those that arrive while the
//!   sink is already failing *and* the retry buffer is full ([`MAX_PENDING_BYTES`]); each is
//!   counted (`trustbridge_audit_events_dropped_total`) and logged. The writer keeps draining
//!   the queue while the sink fails, so a broken disk never wedges the workers (and `/readyz`
//!   and `/metrics` keep answering).
//! - **Fail-closed.** When a write fails the trail turns unhealthy: `trustbridge_audit_healthy`
//!   drops to 0, `trustbridge_audit_write_errors_total` counts, one error is logged, and with
//!   [`AuditFailure::Deny`] (the default) [`AuditLog::grants_allowed`] turns false: the token
//!   endpoint answers 503 `temporarily_unavailable` ([`AuditUnavailable`]) and `/readyz` is
//!   not ready. Every [`RETRY_INTERVAL`] the writer reopens the destination and writes what it
//!   kept; the first success turns grants back on. Grants whose lines were queued when the
//!   failure was detected are kept and written on recovery; a process killed while the sink is
//!   down loses them (the price of not waiting for the disk on every request).
//! - **Drain on shutdown.** [`AuditLog::close`] (called by `app::run` after the HTTP server
//!   has finished its in-flight requests, and on drop) writes everything queued before the
//!   writer thread exits.
//! - **Rotation.** [`AuditLog::reopen`] (SIGHUP) makes the writer reopen the file by path, so
//!   a log rotated away is replaced by a fresh file.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntGauge, Registry};

use crate::refusal::{Context, Refusal, Refuse};
use crate::telemetry::names;
use crate::telemetry::recent::RecentEvents;

/// Lines the queue holds before writers block (back-pressure).
pub const QUEUE_CAPACITY: usize = 8192;
/// How often a failing sink is reopened and retried.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(250);
/// Bytes kept for retry while the sink fails; later events are counted as dropped.
pub const MAX_PENDING_BYTES: usize = 16 << 20;
/// A batch is written once it holds this many bytes, even with more lines queued.
const BATCH_BYTES: usize = 256 << 10;
/// How long the writer, woken by a line, waits for more before writing the batch. Under load
/// the writer polls the queue this often, and each poll costs the worker's core two context
/// switches: at 1 ms a profile of the load benchmark priced them at 1.6 µs of CPU per
/// exchange (2 %). 5 ms still writes every line within a few milliseconds of its request.
pub const LINGER: Duration = Duration::from_millis(5);
/// Bytes reserved for one serialised event (a granted exchange's line is about 750).
const LINE_CAPACITY: usize = 1024;

/// Where audit events are written: one JSON object per line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AuditDestination {
    /// Standard output (`-`), apart from the operational logs on stderr.
    #[default]
    Stdout,
    /// A file, appended to (created with mode 0600).
    File(PathBuf),
}

/// What the gateway does while the audit trail cannot be written (`--audit-failure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditFailure {
    /// Stop granting (503 `temporarily_unavailable`, not ready) until writes succeed again.
    #[default]
    Deny,
    /// Keep granting; the failure is only counted and logged.
    Continue,
}

impl AuditFailure {
    /// Parses `deny` or `continue`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "deny" => Some(Self::Deny),
            "continue" => Some(Self::Continue),
            _ => None,
        }
    }

    /// The flag's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deny => "deny",
            Self::Continue => "continue",
        }
    }
}

/// The writer's tuning; tests shorten the retry interval.
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    /// Lines the queue holds before writers block.
    pub queue: usize,
    /// How often a failing sink is reopened and retried.
    pub retry: Duration,
    /// Bytes kept for retry while the sink fails.
    pub max_pending: usize,
    /// How long the writer, woken by a line, gathers more before writing (zero: not at all).
    pub linger: Duration,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            queue: QUEUE_CAPACITY,
            retry: RETRY_INTERVAL,
            max_pending: MAX_PENDING_BYTES,
            linger: LINGER,
        }
    }
}

/// The refusal of an exchange while the audit trail cannot be written under
/// [`AuditFailure::Deny`]: 503 `temporarily_unavailable`, counted as the gateway's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditUnavailable;

impl Refuse for AuditUnavailable {
    fn refusal(&self, _: Context) -> Refusal {
        Refusal::unavailable(
            "audit_unavailable",
            "the service cannot record decisions right now; retry later",
        )
        .with_detail("the audit trail cannot be written; no token is issued until it can")
        .as_fault()
    }
}

enum Message {
    Line(Arc<Vec<u8>>),
    Reopen,
    Sync(SyncSender<()>),
    Close,
}

/// What the request side and the writer thread share.
struct Shared {
    healthy: AtomicBool,
    failure: AuditFailure,
    healthy_gauge: IntGauge,
    write_errors: IntCounter,
    dropped: IntCounter,
}

impl Shared {
    fn failed(&self, error: &io::Error) {
        self.write_errors.inc();
        if self.healthy.swap(false, Ordering::AcqRel) {
            self.healthy_gauge.set(0);
            match self.failure {
                AuditFailure::Deny => tracing::error!(
                    error = %error,
                    "audit trail cannot be written; exchanges are refused until it can"
                ),
                AuditFailure::Continue => tracing::error!(
                    error = %error,
                    "audit trail cannot be written; granting continues (audit-failure: continue)"
                ),
            }
        }
    }

    fn recovered(&self) {
        if !self.healthy.swap(true, Ordering::AcqRel) {
            self.healthy_gauge.set(1);
            tracing::info!("audit trail writable again; exchanges are granted");
        }
    }

    fn drop_event(&self, why: &str) {
        self.dropped.inc();
        tracing::error!(reason = why, "audit event dropped");
    }
}

/// Where the writer thread writes.
enum Sink {
    Stdout,
    File { path: PathBuf, file: Option<File> },
    Writer(Box<dyn Write + Send>),
}

impl Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Stdout => io::stdout().lock().write(buf),
            Self::File { file: Some(f), .. } => f.write(buf),
            Self::File { file: None, path } => Err(io::Error::other(format!(
                "audit file {} is not open",
                path.display()
            ))),
            Self::Writer(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Stdout => io::stdout().lock().flush(),
            Self::File { .. } => Ok(()),
            Self::Writer(w) => w.flush(),
        }
    }

    /// Reopens a file by its path (rotation, or a destination that failed).
    fn reopen(&mut self) -> io::Result<()> {
        if let Self::File { path, file } = self {
            *file = None;
            *file = Some(open_file(path)?);
        }
        Ok(())
    }
}

/// Opens `path` for appending, created with mode 0600: audit events name workloads and should
/// not be world-readable.
fn open_file(path: &PathBuf) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// The audit trail: a bounded queue in front of one writer thread (see the module docs).
pub struct AuditLog {
    queue: SyncSender<Message>,
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The same events, the most recent kept in memory for the admin API.
    recent: RecentEvents,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("healthy", &self.is_healthy())
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens `destination` (stdout, or a file appended to with mode 0600) and starts the
    /// writer thread; `failure` decides whether a failing sink stops grants.
    ///
    /// # Errors
    /// When the file cannot be opened, or the writer thread cannot be started.
    pub fn open(destination: &AuditDestination, failure: AuditFailure) -> io::Result<Self> {
        let sink = match destination {
            AuditDestination::Stdout => Sink::Stdout,
            AuditDestination::File(path) => Sink::File {
                file: Some(open_file(path)?),
                path: path.clone(),
            },
        };
        Self::start(sink, failure, WriterOptions::default())
    }

    /// Writes events to `writer` (tests pass a buffer), failing closed.
    ///
    /// # Panics
    /// When the writer thread cannot be started (tests only).
    pub fn to_writer(writer: Box<dyn Write + Send>) -> Self {
        Self::to_writer_with(writer, AuditFailure::Deny, WriterOptions::default())
    }

    /// Writes events to `writer` with `failure` and `options` (tests inject failing writers).
    ///
    /// # Panics
    /// When the writer thread cannot be started (tests only).
    pub fn to_writer_with(
        writer: Box<dyn Write + Send>,
        failure: AuditFailure,
        options: WriterOptions,
    ) -> Self {
        Self::start(Sink::Writer(writer), failure, options)
            .expect("the audit writer thread starts (tests)")
    }

    fn start(sink: Sink, failure: AuditFailure, options: WriterOptions) -> io::Result<Self> {
        let healthy_gauge = IntGauge::new(
            names::AUDIT_HEALTHY,
            "1 while the audit trail is being written; 0 after a write failed, until one succeeds.",
        )
        .map_err(io::Error::other)?;
        healthy_gauge.set(1);
        let shared = Arc::new(Shared {
            healthy: AtomicBool::new(true),
            failure,
            healthy_gauge,
            write_errors: IntCounter::new(
                names::AUDIT_WRITE_ERRORS_TOTAL,
                "Failed writes of the audit trail.",
            )
            .map_err(io::Error::other)?,
            dropped: IntCounter::new(
                names::AUDIT_EVENTS_DROPPED_TOTAL,
                "Audit events discarded because the trail failed and its retry buffer was full.",
            )
            .map_err(io::Error::other)?,
        });
        let (queue, rx) = mpsc::sync_channel(options.queue.max(1));
        let writer = Writer {
            rx,
            sink,
            shared: shared.clone(),
            options,
            pending: Vec::with_capacity(BATCH_BYTES),
            last_reopen: Instant::now(),
        };
        let handle = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run())?;
        Ok(Self {
            queue,
            shared,
            writer: Mutex::new(Some(handle)),
            recent: RecentEvents::default(),
        })
    }

    /// Registers the trail's metrics (`trustbridge_audit_*`) in `registry`.
    ///
    /// # Errors
    /// When a metric of the same name is already registered there.
    pub fn register_metrics(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.shared.healthy_gauge.clone()))?;
        registry.register(Box::new(self.shared.write_errors.clone()))?;
        registry.register(Box::new(self.shared.dropped.clone()))
    }

    /// The most recent events written (the admin API's decisions).
    pub fn recent(&self) -> &RecentEvents {
        &self.recent
    }

    /// Whether the last write succeeded.
    pub fn is_healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Acquire)
    }

    /// Whether exchanges may be granted: the trail is healthy, or `--audit-failure continue`.
    pub fn grants_allowed(&self) -> bool {
        self.shared.failure == AuditFailure::Continue || self.is_healthy()
    }

    /// Queues `event`, serialised once, as one line (the same bytes feed [`Self::recent`]).
    /// Blocks while the queue is full (back-pressure); never fails the request: a write
    /// failure turns [`Self::grants_allowed`] off instead.
    pub fn write(&self, event: &impl serde::Serialize) {
        // Sized for a typical event, so the line is not regrown while it is written; shared
        // (not copied) between the queue and the console's ring.
        let mut line = Vec::with_capacity(LINE_CAPACITY);
        let line: Arc<Vec<u8>> = match serde_json::to_writer(&mut line, event) {
            Ok(()) => Arc::new(line),
            Err(e) => {
                tracing::error!(error = %e, "audit record could not be serialised");
                return;
            }
        };
        self.recent.push(line.clone());
        if self.queue.send(Message::Line(line)).is_err() {
            self.shared.drop_event("the audit trail is closed");
        }
    }

    /// Asks the writer to reopen the file by its path (SIGHUP, after log rotation).
    pub fn reopen(&self) {
        let _ = self.queue.send(Message::Reopen);
    }

    /// Waits until every event queued before this call has been written (or has failed to).
    pub fn sync(&self) {
        let (ack, done) = mpsc::sync_channel(1);
        if self.queue.send(Message::Sync(ack)).is_ok() {
            let _ = done.recv();
        }
    }

    /// Writes everything queued, then stops the writer thread. Later events are counted as
    /// dropped. Idempotent; also run on drop.
    pub fn close(&self) {
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            let _ = self.queue.send(Message::Close);
            if handle.join().is_err() {
                tracing::error!("the audit writer thread panicked");
            }
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.close();
    }
}

// === impl Writer ===

/// The writer thread's state: the queue's receiving end, the sink and the unwritten bytes.
struct Writer {
    rx: Receiver<Message>,
    sink: Sink,
    shared: Arc<Shared>,
    options: WriterOptions,
    pending: Vec<u8>,
    last_reopen: Instant,
}

impl Writer {
    fn run(mut self) {
        // Whether the last batch held lines: while they keep coming the writer polls the queue
        // every linger instead of waiting on it, so that no worker has to wake it.
        let mut busy = false;
        loop {
            let healthy = self.shared.healthy.load(Ordering::Acquire);
            let lingers = healthy && !self.options.linger.is_zero();
            let polled = lingers && busy;
            // While failing, wake up every retry interval even without new events.
            let first = if polled {
                std::thread::sleep(self.options.linger);
                self.rx.try_recv().map_err(|e| match e {
                    TryRecvError::Empty => RecvTimeoutError::Timeout,
                    TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                })
            } else if healthy {
                self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
            } else {
                self.rx.recv_timeout(self.options.retry)
            };
            let mut step = Step::default();
            match first {
                Ok(message) => {
                    // A line woke us: let the lines of concurrent requests join its batch. A
                    // sync, reopen or close is served at once.
                    let line = matches!(message, Message::Line(_));
                    self.take(message, &mut step);
                    if line && lingers && !polled {
                        std::thread::sleep(self.options.linger);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => step.close = true,
            }
            while !step.close && self.pending.len() < BATCH_BYTES {
                match self.rx.try_recv() {
                    Ok(message) => self.take(message, &mut step),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => step.close = true,
                }
            }
            // A failing destination is reopened at most once per retry interval.
            let retry_due = !healthy && self.last_reopen.elapsed() >= self.options.retry;
            if step.reopen || retry_due {
                self.last_reopen = Instant::now();
                if let Err(e) = self.sink.reopen() {
                    self.shared.failed(&e);
                }
            }
            busy = step.lines > 0;
            self.write_pending();
            for ack in step.acks {
                let _ = ack.send(());
            }
            if step.close {
                return;
            }
        }
    }

    fn take(&mut self, message: Message, step: &mut Step) {
        match message {
            Message::Line(line) => {
                step.lines += 1;
                let failing = !self.shared.healthy.load(Ordering::Acquire);
                if failing && self.pending.len() + line.len() + 1 > self.options.max_pending {
                    self.shared
                        .drop_event("the audit trail is failing and its retry buffer is full");
                } else {
                    self.pending.extend_from_slice(&line);
                    self.pending.push(b'\n');
                }
            }
            Message::Reopen => step.reopen = true,
            Message::Sync(ack) => step.acks.push(ack),
            Message::Close => step.close = true,
        }
    }

    /// Writes the batch; keeps exactly the unwritten bytes after a failure.
    fn write_pending(&mut self) {
        let mut written = 0;
        let result = loop {
            if written == self.pending.len() {
                break self.sink.flush();
            }
            match self.sink.write(&self.pending[written..]) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        self.pending.drain(..written);
        match result {
            Ok(()) => {
                self.shared.recovered();
                if self.pending.capacity() > 4 * BATCH_BYTES {
                    self.pending.shrink_to(BATCH_BYTES);
                }
            }
            Err(e) => self.shared.failed(&e),
        }
    }
}

/// What one round of the writer collected besides lines.
#[derive(Default)]
struct Step {
    /// Lines taken (written or kept for retry).
    lines: usize,
    reopen: bool,
    close: bool,
    acks: Vec<SyncSender<()>>,
}

#[cfg(test)]
mod tests;
