//! Hot reload with last-known-good: watch the policy directory (and SIGHUP), load and validate
//! the whole set, and hand a valid set to whoever serves it; refuse an invalid one.
//!
//! Watching is a poll of the directory's content fingerprint (names and contents of the policy
//! files) every interval, about a second: robust where file notifications are not, notably the
//! symlink swap Kubernetes does when a ConfigMap changes (`..data` is re-pointed; no file the
//! watcher opened changes). A change is debounced: it is loaded once the fingerprint has been
//! the same on two consecutive polls, so an editor's or `kubectl`'s multi-step write is not
//! loaded half-done. SIGHUP reloads at once.
//!
//! The store does not know what serving a set means: the [`PolicySink`] (the gateway) installs
//! it, together with the issuer registry built for it, in one atomic swap. A set that does not
//! load, or that the sink refuses, is logged with every problem and counted; the last good set
//! keeps serving and readiness does not change.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::{IntCounterVec, Opts, Registry};
use sha2::{Digest, Sha256};

use crate::policy::PolicySet;
use crate::telemetry::names;

/// How often the directory is polled when serving.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Where a validated policy set goes.
pub trait PolicySink: Send + Sync {
    /// The content hash of the set in force.
    fn current_hash(&self) -> String;

    /// Installs `set` atomically.
    ///
    /// # Errors
    /// A message when the set cannot be served (for example its demo issuer's key cannot be
    /// created); the current set then stays.
    fn install(&self, set: PolicySet) -> Result<(), String>;
}

/// What started a reload (a log field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The directory's content changed.
    Watch,
    /// SIGHUP.
    Signal,
    /// A direct call (tests, tools).
    Manual,
}

impl Trigger {
    /// `watch`, `sighup`, `manual`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Watch => "watch",
            Self::Signal => "sighup",
            Self::Manual => "manual",
        }
    }
}

/// How a reload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// A new set is serving.
    Applied {
        /// Its content hash.
        hash: String,
    },
    /// The directory holds the set already serving.
    Unchanged {
        /// Its content hash.
        hash: String,
    },
    /// The new set was refused; the last good set keeps serving.
    Rejected {
        /// Every problem.
        problems: Vec<String>,
    },
}

impl ReloadOutcome {
    /// The metrics label: `applied`, `unchanged`, `rejected`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Applied { .. } => names::RELOAD_APPLIED,
            Self::Unchanged { .. } => names::RELOAD_UNCHANGED,
            Self::Rejected { .. } => names::RELOAD_REJECTED,
        }
    }
}

/// Metrics owned by the reloader.
#[derive(Debug, Clone)]
pub struct ReloadMetrics {
    /// Reloads by outcome.
    pub reloads: IntCounterVec,
}

impl ReloadMetrics {
    /// Creates and registers the metrics in `registry`.
    ///
    /// # Errors
    /// When a metric of the same name is already registered there.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let reloads = IntCounterVec::new(
            Opts::new(
                names::POLICY_RELOADS_TOTAL,
                "Policy reloads by outcome (applied, unchanged, rejected).",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(reloads.clone()))?;
        // Export every outcome from the start, so alerts on `rejected` see a zero first.
        for outcome in [
            names::RELOAD_APPLIED,
            names::RELOAD_UNCHANGED,
            names::RELOAD_REJECTED,
        ] {
            reloads.with_label_values(&[outcome]);
        }
        Ok(Self { reloads })
    }
}

/// Polling state: what was last seen, and what was last loaded.
#[derive(Debug, Default)]
struct WatchState {
    /// Fingerprint at the previous poll.
    seen: Option<String>,
    /// Fingerprint of the directory when it was last loaded (applied, unchanged or rejected:
    /// a broken edit is reported once, not every second).
    loaded: Option<String>,
}

/// Reloads one policy directory into one sink.
pub struct PolicyStore {
    dir: PathBuf,
    sink: Arc<dyn PolicySink>,
    metrics: ReloadMetrics,
    state: Mutex<WatchState>,
    /// Serialises reloads (a poll and a SIGHUP may race).
    reloading: Mutex<()>,
}

impl std::fmt::Debug for PolicyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl PolicyStore {
    /// A store for `dir` feeding `sink`.
    pub fn new(dir: PathBuf, sink: Arc<dyn PolicySink>, metrics: ReloadMetrics) -> Self {
        Self {
            dir,
            sink,
            metrics,
            state: Mutex::new(WatchState::default()),
            reloading: Mutex::new(()),
        }
    }

    /// Loads and validates the directory now, and installs it when it is valid and differs from
    /// the set serving. Logs the outcome (with the content hash, or every problem) and counts it.
    pub fn reload(&self, trigger: Trigger) -> ReloadOutcome {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let fingerprint = fingerprint(&self.dir).ok();
        let outcome = match crate::policy::load_dir(&self.dir) {
            Err(errors) => ReloadOutcome::Rejected {
                problems: errors.0.iter().map(ToString::to_string).collect(),
            },
            Ok(set) if set.content_hash() == self.sink.current_hash() => ReloadOutcome::Unchanged {
                hash: set.content_hash().to_string(),
            },
            Ok(set) => {
                let hash = set.content_hash().to_string();
                match self.sink.install(set) {
                    Ok(()) => ReloadOutcome::Applied { hash },
                    Err(problem) => ReloadOutcome::Rejected {
                        problems: vec![problem],
                    },
                }
            }
        };
        if let Some(fingerprint) = fingerprint {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.loaded = Some(fingerprint.clone());
            state.seen = Some(fingerprint);
        }
        self.metrics
            .reloads
            .with_label_values(&[outcome.label()])
            .inc();
        let dir = self.dir.display().to_string();
        match &outcome {
            ReloadOutcome::Applied { hash } => tracing::info!(
                policy.hash = %hash,
                policy.dir = %dir,
                trigger = trigger.as_str(),
                "policies reloaded"
            ),
            ReloadOutcome::Unchanged { hash } => tracing::info!(
                policy.hash = %hash,
                policy.dir = %dir,
                trigger = trigger.as_str(),
                "policies unchanged"
            ),
            ReloadOutcome::Rejected { problems } => tracing::warn!(
                policy.hash = %self.sink.current_hash(),
                policy.dir = %dir,
                trigger = trigger.as_str(),
                problems = %problems.join("; "),
                "policy reload refused; the last good policies keep serving"
            ),
        }
        outcome
    }

    /// One poll of the watch loop: reloads when the directory changed and then held still for
    /// one poll (the debounce). `None` when nothing was loaded.
    pub fn poll(&self) -> Option<ReloadOutcome> {
        let Ok(now) = fingerprint(&self.dir) else {
            // An unreadable directory (mid-swap, or gone) is not a new policy set: keep serving
            // and look again next time.
            return None;
        };
        {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if state.loaded.as_deref() == Some(now.as_str()) {
                state.seen = Some(now);
                return None;
            }
            if state.seen.as_deref() != Some(now.as_str()) {
                state.seen = Some(now);
                return None;
            }
        }
        Some(self.reload(Trigger::Watch))
    }

    /// Polls every `interval` and reloads on every SIGHUP received by `hangup`, until the task
    /// is dropped. Loading runs on the blocking pool: it reads files and compiles CEL.
    pub async fn watch(self: Arc<Self>, interval: Duration, mut hangup: Option<Hangup>) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let store = self.clone();
                    let _ = tokio::task::spawn_blocking(move || store.poll()).await;
                }
                () = next_hangup(&mut hangup) => {
                    let store = self.clone();
                    let _ = tokio::task::spawn_blocking(move || store.reload(Trigger::Signal)).await;
                }
            }
        }
    }
}

/// A SIGHUP listener, created before the process announces that it serves so that an early
/// SIGHUP reloads instead of killing it.
#[cfg(unix)]
pub type Hangup = tokio::signal::unix::Signal;
/// No SIGHUP off unix.
#[cfg(not(unix))]
pub type Hangup = ();

/// Listens for SIGHUP; `None` where signals are unavailable. Must run inside a tokio runtime.
pub fn hangup() -> Option<Hangup> {
    #[cfg(unix)]
    {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Waits for the next SIGHUP on `hangup`; forever when there is none.
pub async fn next_hangup(hangup: &mut Option<Hangup>) {
    #[cfg(unix)]
    if let Some(signal) = hangup
        && signal.recv().await.is_some()
    {
        return;
    }
    let _ = hangup;
    std::future::pending::<()>().await;
}

/// SHA-256 over the names and contents of the directory's policy files (the files
/// `load_dir` reads), following symlinks.
///
/// # Errors
/// When the directory cannot be listed or a file cannot be read.
pub fn fingerprint(dir: &Path) -> std::io::Result<String> {
    let mut problems = Vec::new();
    let files = crate::policy::load::policy_files(dir, &mut problems);
    if !problems.is_empty() && files.is_empty() {
        return Err(std::io::Error::other(
            problems
                .into_iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        ));
    }
    let mut hasher = Sha256::new();
    for file in files {
        let name = file
            .file_name()
            .map(|n| n.as_encoded_bytes().to_vec())
            .unwrap_or_default();
        let content = std::fs::read(&file)?;
        hasher.update((name.len() as u64).to_be_bytes());
        hasher.update(&name);
        hasher.update((content.len() as u64).to_be_bytes());
        hasher.update(&content);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests;
