//! Prometheus metrics of the exchange path, registered by [`ExchangeMetrics::register`], and
//! of the process itself ([`register_process`]: build info, and on Linux the standard
//! `process_*` metrics: CPU, resident memory, open file descriptors, start time).

use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use crate::telemetry::names;

/// Metrics owned by the token endpoint.
#[derive(Debug, Clone)]
pub struct ExchangeMetrics {
    /// Exchanges by outcome, grant and issuer.
    pub exchanges: IntCounterVec,
    /// Handling time by outcome class.
    pub duration: HistogramVec,
    /// `duration` of granted exchanges, its label set resolved once at registration.
    pub duration_granted: Histogram,
    /// `duration` of denied exchanges (resolved once).
    pub duration_denied: Histogram,
    /// `duration` of exchanges the gateway failed (resolved once).
    pub duration_error: Histogram,
    /// Readiness.
    pub ready: IntGauge,
    /// Policy objects by kind.
    pub policy_objects: IntGaugeVec,
    /// The active policy set's hash, as the label of a gauge at 1.
    pub policy_info: IntGaugeVec,
    /// Unix time the active policy set was installed.
    pub policy_last_reload: Gauge,
}

impl ExchangeMetrics {
    /// Creates and registers the metrics in `registry`.
    ///
    /// # Errors
    /// When a metric of the same name is already registered there.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let exchanges = IntCounterVec::new(
            Opts::new(
                names::EXCHANGES_TOTAL,
                "Token exchanges by outcome, grant and source issuer.",
            ),
            &["outcome", "grant", "issuer"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                names::EXCHANGE_DURATION_SECONDS,
                "Time to handle a token request, from body read to response.",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0,
            ]),
            &["outcome"],
        )?;
        let ready = IntGauge::new(names::READY, "1 when policies and signing keys are loaded.")?;
        let policy_objects = IntGaugeVec::new(
            Opts::new(
                names::POLICY_OBJECTS,
                "Objects in the active policy set, by kind.",
            ),
            &["kind"],
        )?;
        let policy_info = IntGaugeVec::new(
            Opts::new(
                names::POLICY_INFO,
                "1, labelled with the hash of the active policy set.",
            ),
            &["hash"],
        )?;
        let policy_last_reload = Gauge::new(
            names::POLICY_LAST_RELOAD_SUCCESS,
            "Unix time the active policy set was installed (start or applied reload).",
        )?;
        registry.register(Box::new(policy_info.clone()))?;
        registry.register(Box::new(policy_last_reload.clone()))?;
        registry.register(Box::new(exchanges.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(ready.clone()))?;
        registry.register(Box::new(policy_objects.clone()))?;
        Ok(Self {
            duration_granted: duration.with_label_values(&[names::OUTCOME_GRANTED]),
            duration_denied: duration.with_label_values(&["denied"]),
            duration_error: duration.with_label_values(&["error"]),
            exchanges,
            duration,
            ready,
            policy_objects,
            policy_info,
            policy_last_reload,
        })
    }

    /// Records the policy set now serving: its `hash` (the only `policy_info` series) and the
    /// time it was installed, `now` in Unix seconds.
    pub fn record_policy(&self, hash: &str, now: u64) {
        self.policy_info.reset();
        self.policy_info.with_label_values(&[hash]).set(1);
        // f64 holds every Unix time of the next hundred million years exactly.
        self.policy_last_reload.set(now as f64);
    }
}

/// Registers `trustbridge_build_info{version,commit}` and, on Linux, the process collector
/// (`process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`,
/// `process_start_time_seconds`, ...).
///
/// # Errors
/// When a metric of the same name is already registered there.
pub fn register_process(registry: &Registry) -> prometheus::Result<()> {
    let build = IntGaugeVec::new(
        Opts::new(
            names::BUILD_INFO,
            "1, labelled with the version and git commit of this binary.",
        ),
        &["version", "commit"],
    )?;
    build
        .with_label_values(&[env!("CARGO_PKG_VERSION"), env!("TRUSTBRIDGE_COMMIT")])
        .set(1);
    registry.register(Box::new(build))?;
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    Ok(())
}
