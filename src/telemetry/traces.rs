//! OpenTelemetry traces over OTLP/HTTP (issue #16 item 10): when they are on, how they are
//! exported, and how an incoming W3C `traceparent` becomes the parent of the exchange.
//!
//! Spans are ordinary `tracing` spans with the target [`TARGET`]. The logging subscriber
//! (`logging`) never shows that target, and only the OpenTelemetry layer installed from
//! [`Pipeline::layer`] records it, so with tracing off the span macros are disabled call sites:
//! one relaxed atomic load each, no allocation, no clock read.
//!
//! Export runs on the SDK's batch thread with its own blocking HTTP client, never on a request
//! path: a slow or unreachable collector costs dropped spans (the queue is bounded), never a
//! failed or slower exchange. Failures are logged at most once a minute ([`LoggedExporter`]).
//! [`Pipeline::shutdown`] flushes what is queued.
//!
//! What a span may carry is decided where it is opened: bounded labels (grant type, tenant,
//! client id, outcome, refusal reason, issuer name), never a token, a claim or a key.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::Layer as _;
use tracing_subscriber::Registry;
use tracing_subscriber::filter::{Filtered, LevelFilter, Targets};

/// The `tracing` target of every span exported as an OpenTelemetry span. Logs never show it;
/// only the OpenTelemetry layer enables it.
pub const TARGET: &str = "trustbridge_spans";

/// `service.name` when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` names one.
pub const DEFAULT_SERVICE_NAME: &str = "trustbridge";

/// The standard variable naming the traces URL exactly (nothing appended).
pub const ENV_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";

/// The standard variable naming the collector's base URL (`/v1/traces` appended).
pub const ENV_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// How often at most an export failure is logged.
const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Where traces go, once [`endpoint`] decided they are on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The traces URL built from `--otlp-endpoint` (it wins over the environment).
    Configured(String),
    /// The exporter reads `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`.
    Environment,
}

/// Checks an `--otlp-endpoint` value: an http(s) URL with a host and no credentials, query or
/// fragment. Returns it without a trailing `/`; the error says what is wrong without echoing
/// the value (which could hold a password).
pub fn check_endpoint(text: &str) -> Result<String, &'static str> {
    match url::Url::parse(text) {
        Ok(u)
            if (u.scheme() == "http" || u.scheme() == "https")
                && u.host().is_some()
                && u.username().is_empty()
                && u.password().is_none()
                && u.query().is_none()
                && u.fragment().is_none() =>
        {
            Ok(text.trim_end_matches('/').to_string())
        }
        _ => Err(
            "must be an http(s) URL such as http://127.0.0.1:4318, without credentials, query or fragment",
        ),
    }
}

/// Whether traces are exported, and where: the configured base URL (with `/v1/traces`
/// appended, as the OTLP specification does for `OTEL_EXPORTER_OTLP_ENDPOINT`), else the
/// standard variables when one of them is set and not empty, else `None` (off). `env` reads a
/// variable, so this stays a plain function.
pub fn endpoint(
    configured: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Endpoint> {
    if let Some(base) = configured {
        return Some(Endpoint::Configured(format!(
            "{}/v1/traces",
            base.trim_end_matches('/')
        )));
    }
    let set = |name: &str| env(name).is_some_and(|v| !v.trim().is_empty());
    (set(ENV_TRACES_ENDPOINT) || set(ENV_ENDPOINT)).then_some(Endpoint::Environment)
}

/// Why the trace pipeline could not be built (a bad endpoint variable, no HTTP client).
#[derive(Debug, thiserror::Error)]
#[error("OTLP trace export: {0}")]
pub struct TraceSetupError(String);

/// The OpenTelemetry layer, filtered to [`TARGET`], ready to add to the subscriber.
pub type OtelLayer = Filtered<
    tracing_opentelemetry::OpenTelemetryLayer<Registry, opentelemetry_sdk::trace::Tracer>,
    Targets,
    Registry,
>;

/// A running trace export: the provider owning the batch thread. Keep it until shutdown.
#[derive(Debug)]
pub struct Pipeline {
    provider: SdkTracerProvider,
}

impl Pipeline {
    /// Builds the OTLP/HTTP (protobuf) exporter for `endpoint` and the batch provider around
    /// it. The service name is `OTEL_SERVICE_NAME` (or `service.name` in
    /// `OTEL_RESOURCE_ATTRIBUTES`), else [`DEFAULT_SERVICE_NAME`]. Batch size and delay follow
    /// the standard `OTEL_BSP_*` variables; sampling follows `OTEL_TRACES_SAMPLER` (default:
    /// parent-based, always on).
    ///
    /// # Errors
    /// [`TraceSetupError`] when the exporter cannot be built (an invalid endpoint variable).
    pub fn start(endpoint: &Endpoint) -> Result<Self, TraceSetupError> {
        let builder = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
        let builder = match endpoint {
            Endpoint::Configured(url) => builder.with_endpoint(url.clone()),
            Endpoint::Environment => builder,
        };
        let exporter = builder
            .build()
            .map_err(|e| TraceSetupError(e.to_string()))?;
        let provider = SdkTracerProvider::builder()
            .with_resource(resource())
            .with_batch_exporter(LoggedExporter::new(exporter))
            .build();
        Ok(Self { provider })
    }

    /// The layer that turns spans of [`TARGET`] into OpenTelemetry spans. Events and spans of
    /// every other target are not recorded (log lines never become span events).
    pub fn layer(&self) -> OtelLayer {
        let tracer = self.provider.tracer(DEFAULT_SERVICE_NAME);
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(Targets::new().with_target(TARGET, LevelFilter::TRACE))
    }

    /// Exports what is queued and stops the batch thread. Call it outside the async runtime
    /// (it blocks until the last export returned or timed out).
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "trace export did not flush at shutdown");
        }
    }
}

/// The resource of every span: the detected one (`OTEL_SERVICE_NAME`,
/// `OTEL_RESOURCE_ATTRIBUTES`), named [`DEFAULT_SERVICE_NAME`] when it names no service.
fn resource() -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .is_some_and(|v| !v.as_str().starts_with("unknown_service"));
    if named {
        detected
    } else {
        Resource::builder()
            .with_service_name(DEFAULT_SERVICE_NAME)
            .build()
    }
}

// === impl LoggedExporter ===

/// Wraps the OTLP exporter to log its failures, at most once per [`FAILURE_LOG_INTERVAL`]
/// with the number of failures since the last line, so a collector that is down does not
/// flood the logs. The failure goes back to the SDK unchanged (it drops the batch).
#[derive(Debug)]
pub struct LoggedExporter<E> {
    inner: E,
    failures: Mutex<Failures>,
}

#[derive(Debug, Default)]
struct Failures {
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl<E> LoggedExporter<E> {
    /// Wraps `inner`.
    pub fn new(inner: E) -> Self {
        Self {
            inner,
            failures: Mutex::new(Failures::default()),
        }
    }

    /// Counts a failure at `now`; `Some(n)` when it should be logged, `n` failures since the
    /// last line (this one included).
    fn note_failure(&self, now: Instant) -> Option<u64> {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.unlogged += 1;
        let due = f
            .last_logged
            .is_none_or(|t| now.saturating_duration_since(t) >= FAILURE_LOG_INTERVAL);
        if !due {
            return None;
        }
        f.last_logged = Some(now);
        Some(std::mem::take(&mut f.unlogged))
    }
}

impl<E: SpanExporter> SpanExporter for LoggedExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        if let Err(e) = &result
            && let Some(failures) = self.note_failure(Instant::now())
        {
            tracing::warn!(
                error = %e,
                spans,
                failures,
                "trace export failed; spans dropped (logged at most once a minute)"
            );
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

// === traceparent ===

/// A valid W3C `traceparent` (version `00`), read from a request header.
#[derive(Debug, Clone)]
pub struct TraceParent {
    /// The trace id, 32 lowercase hex digits, not all zero.
    pub trace_id: String,
    /// The OpenTelemetry context whose remote span is the caller's (its flags kept, no
    /// `tracestate`: trustbridge calls no one downstream to hand it to).
    pub context: Context,
}

/// Reads a `traceparent` header value strictly: `00-<32 hex>-<16 hex>-<2 hex>`, lowercase,
/// ids not all zero, nothing after the flags. Anything else is `None` (a new trace), never an
/// error: the header is the caller's hint, not part of the exchange.
pub fn trace_parent(value: Option<&str>) -> Option<TraceParent> {
    let value = value?;
    let lower_hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let mut parts = value.split('-');
    let (version, trace_id, parent_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || version != "00"
        || !lower_hex(trace_id, 32)
        || !lower_hex(parent_id, 16)
        || !lower_hex(flags, 2)
        || trace_id.bytes().all(|b| b == b'0')
        || parent_id.bytes().all(|b| b == b'0')
    {
        return None;
    }
    // The propagator builds the remote span context from the value checked above only.
    let context = TraceContextPropagator::new().extract(&OnlyTraceParent(value));
    context
        .span()
        .span_context()
        .is_valid()
        .then(|| TraceParent {
            trace_id: trace_id.to_string(),
            context,
        })
}

/// An extractor holding nothing but one checked `traceparent` value.
struct OnlyTraceParent<'a>(&'a str);

impl Extractor for OnlyTraceParent<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

/// Parents `span` under `parent` (when given) and returns the trace id the span records
/// under, 32 hex digits; `None` when no OpenTelemetry layer records the span (tracing off).
pub fn adopt(span: &tracing::Span, parent: Option<&TraceParent>) -> Option<String> {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if span.is_disabled() {
        return None;
    }
    if let Some(parent) = parent {
        // Fails only when the span was already started, which a fresh span is not.
        let _ = span.set_parent(parent.context.clone());
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

#[cfg(test)]
mod tests;
