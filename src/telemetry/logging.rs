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

/// Installs the global subscriber ([`subscriber`]). Safe to call more than once (later calls
/// are no-ops), so tests that build several gateways do not fight over it.
pub fn init(format: LogFormat, default_filter: &str, otel: Option<traces::OtelLayer>) {
    let _ = subscriber(format, default_filter, otel).try_init();
}

/// The subscriber: log lines on stderr, plus the OpenTelemetry layer when trace export is on
/// (`otel`). Logs never show the spans of [`traces::TARGET`] (whatever `TRUSTBRIDGE_LOG`
/// says), so turning traces on changes no log line. With traces off the OpenTelemetry layer
/// is left out rather than added as `None`: an absent `Option` layer declares interest in
/// every call site, which made the registry create and close the exchange's spans on every
/// request for nobody.
pub fn subscriber(
    format: LogFormat,
    default_filter: &str,
    otel: Option<traces::OtelLayer>,
) -> Box<dyn tracing::Subscriber + Send + Sync> {
    let filter = EnvFilter::try_from_env("TRUSTBRIDGE_LOG")
        .unwrap_or_else(|_| EnvFilter::new(default_filter))
        .add_directive(
            format!("{}=off", traces::TARGET)
                .parse()
                .expect("a target and a level make a directive"),
        );
    let registry = tracing_subscriber::registry();
    match otel {
        // The OpenTelemetry layer's type names `Registry`: it goes on first.
        Some(otel) => Box::new(
            registry
                .with(otel)
                .with(log_lines(format).with_filter(filter)),
        ),
        None => Box::new(registry.with(log_lines(format).with_filter(filter))),
    }
}

/// The log-line layer in `format`, on stderr.
fn log_lines<S>(format: LogFormat) -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let logs = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => logs.boxed(),
        LogFormat::Json => logs.json().flatten_event(true).boxed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_traces_off_the_exchange_spans_are_disabled_and_logs_are_not() {
        for format in [LogFormat::Text, LogFormat::Json] {
            tracing::subscriber::with_default(subscriber(format, "info", None), || {
                let span = tracing::info_span!(target: traces::TARGET, "exchange");
                assert!(span.is_disabled(), "{format:?}");
                assert!(tracing::enabled!(tracing::Level::INFO), "{format:?}");
                assert!(!tracing::enabled!(tracing::Level::DEBUG), "{format:?}");
            });
        }
    }
}
