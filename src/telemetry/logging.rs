//! tracing initialisation: human-readable or JSON lines on stderr, filtered by
//! `TRUSTBRIDGE_LOG` (same syntax as `RUST_LOG`). Colours only when stderr is a terminal, so
//! log files, pipes and collectors never see ANSI escape codes.
//!
//! Redaction is by construction rather than by filter: no code path logs a request body, a
//! token or key material, and denial details are built from bounded, sanitised values.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, fmt};

use crate::telemetry::traces;

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

/// Installs the global subscriber: log lines on stderr, plus the OpenTelemetry layer when
/// trace export is on (`otel`). Logs never show the spans of [`traces::TARGET`] (whatever
/// `TRUSTBRIDGE_LOG` says), so turning traces on changes no log line, and with traces off
/// those spans are disabled call sites. Safe to call more than once (later calls are no-ops),
/// so tests that build several gateways do not fight over it.
pub fn init(format: LogFormat, default_filter: &str, otel: Option<traces::OtelLayer>) {
    let filter = EnvFilter::try_from_env("TRUSTBRIDGE_LOG")
        .unwrap_or_else(|_| EnvFilter::new(default_filter))
        .add_directive(
            format!("{}=off", traces::TARGET)
                .parse()
                .expect("a target and a level make a directive"),
        );
    let logs = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let logs = match format {
        LogFormat::Text => logs.boxed(),
        LogFormat::Json => logs.json().flatten_event(true).boxed(),
    };
    // The OpenTelemetry layer's type names `Registry`: it goes on first.
    let _ = tracing_subscriber::registry()
        .with(otel)
        .with(logs.with_filter(filter))
        .try_init();
}
