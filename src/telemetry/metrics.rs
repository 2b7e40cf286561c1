//! Prometheus metrics of the exchange path, registered by [`ExchangeMetrics::register`].

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
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
        })
    }
}
