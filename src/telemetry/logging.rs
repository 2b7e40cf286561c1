//! tracing initialisation: human-readable or JSON lines on stderr, filtered by
//! `TRUSTBRIDGE_LOG` (same syntax as `RUST_LOG`). Colours only when stderr is a terminal, so
//! log files, pipes and collectors never see ANSI escape codes.
//!
//! Redaction is by construction rather than by filter: no code path logs a request body, a
//! token or key material, and denial details are built from bounded, sanitised values.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Output format of logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. Safe to call more than once (later calls are no-ops), so
/// tests that build several gateways do not fight over it.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter = EnvFilter::try_from_env("TRUSTBRIDGE_LOG")
        .unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
