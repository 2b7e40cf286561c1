//! Prometheus metrics of issuer key caches, labelled by issuer *name* (bounded: names come from
//! policy files, never from tokens). Registered by [`IssuerMetrics::register`].

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use super::discovery::DiscoveryError;
use super::fetch::FetchError;
use super::source::KeySourceError;
use crate::telemetry::names;

/// Key-cache metrics, cheap to clone (handles to shared vectors).
#[derive(Debug, Clone)]
pub struct IssuerMetrics {
    /// Key loads by issuer and outcome.
    pub fetches: IntCounterVec,
    /// Unknown-`kid` lookups by issuer.
    pub kid_misses: IntCounterVec,
    /// Last successful load (Unix seconds) by issuer.
    pub last_success: IntGaugeVec,
    /// Keys in use by issuer.
    pub keys_in_use: IntGaugeVec,
    /// 1 while stale keys are being served, by issuer.
    pub stale: IntGaugeVec,
    /// Lookups answered from a stale set, by issuer.
    pub stale_served: IntCounterVec,
}

impl IssuerMetrics {
    /// Metrics that are recorded but exported nowhere (tests, and registries built without a
    /// Prometheus registry).
    pub fn unregistered() -> Self {
        #[allow(clippy::expect_used)]
        Self::create().expect("metric definitions are static and valid")
    }

    /// Creates the metrics and registers them in `registry`.
    ///
    /// # Errors
    /// When a metric of the same name is already registered there.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self::create()?;
        registry.register(Box::new(metrics.fetches.clone()))?;
        registry.register(Box::new(metrics.kid_misses.clone()))?;
        registry.register(Box::new(metrics.last_success.clone()))?;
        registry.register(Box::new(metrics.keys_in_use.clone()))?;
        registry.register(Box::new(metrics.stale.clone()))?;
        registry.register(Box::new(metrics.stale_served.clone()))?;
        Ok(metrics)
    }

    fn create() -> prometheus::Result<Self> {
        let issuer = &["issuer"];
        Ok(Self {
            fetches: IntCounterVec::new(
                Opts::new(
                    names::ISSUER_KEY_FETCHES_TOTAL,
                    "Issuer key loads (discovery + JWKS, or a file read) by outcome.",
                ),
                &["issuer", "outcome"],
            )?,
            kid_misses: IntCounterVec::new(
                Opts::new(
                    names::ISSUER_KID_MISSES_TOTAL,
                    "Subject tokens whose kid was not in the cached key set.",
                ),
                issuer,
            )?,
            last_success: IntGaugeVec::new(
                Opts::new(
                    names::ISSUER_KEYS_LAST_SUCCESS,
                    "Unix time of the last successful key load.",
                ),
                issuer,
            )?,
            keys_in_use: IntGaugeVec::new(
                Opts::new(names::ISSUER_KEYS_IN_USE, "Keys in the set in use."),
                issuer,
            )?,
            stale: IntGaugeVec::new(
                Opts::new(
                    names::ISSUER_KEYS_STALE,
                    "1 while keys past their freshness are served because refreshing fails.",
                ),
                issuer,
            )?,
            stale_served: IntCounterVec::new(
                Opts::new(
                    names::ISSUER_STALE_SERVED_TOTAL,
                    "Key lookups answered from a stale key set.",
                ),
                issuer,
            )?,
        })
    }

    /// Records a load attempt of `issuer`.
    pub fn fetched(&self, issuer: &str, result: Result<(usize, SystemTime), &KeySourceError>) {
        match result {
            Ok((keys, at)) => {
                self.fetches
                    .with_label_values(&[issuer, names::FETCH_OK])
                    .inc();
                let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                self.last_success
                    .with_label_values(&[issuer])
                    .set(i64::try_from(secs).unwrap_or(i64::MAX));
                self.keys_in_use
                    .with_label_values(&[issuer])
                    .set(i64::try_from(keys).unwrap_or(i64::MAX));
                self.stale.with_label_values(&[issuer]).set(0);
            }
            Err(error) => self
                .fetches
                .with_label_values(&[issuer, outcome(error)])
                .inc(),
        }
    }

    /// Records a lookup answered with stale keys.
    pub fn served_stale(&self, issuer: &str) {
        self.stale.with_label_values(&[issuer]).set(1);
        self.stale_served.with_label_values(&[issuer]).inc();
    }

    /// Records a token whose `kid` the cached set did not hold.
    pub fn kid_miss(&self, issuer: &str) {
        self.kid_misses.with_label_values(&[issuer]).inc();
    }
}

fn fetch_outcome(error: &FetchError) -> &'static str {
    match error {
        FetchError::InvalidUrl { .. } | FetchError::InsecureScheme { .. } => {
            names::FETCH_INVALID_URL
        }
        FetchError::RedirectRefused { .. } => names::FETCH_REDIRECT_REFUSED,
        FetchError::Timeout { .. } => names::FETCH_TIMEOUT,
        FetchError::Connect { .. } => names::FETCH_UNREACHABLE,
        FetchError::Status { .. } => names::FETCH_HTTP_STATUS,
        FetchError::TooLarge { .. } => names::FETCH_TOO_LARGE,
        FetchError::Tls { .. } => names::FETCH_TLS_ERROR,
        FetchError::ClientSetup { .. } | FetchError::Transport { .. } => names::FETCH_ERROR,
    }
}

/// The `outcome` label of a failed load.
pub fn outcome(error: &KeySourceError) -> &'static str {
    match error {
        KeySourceError::Discovery(DiscoveryError::Fetch(e)) | KeySourceError::Fetch(e) => {
            fetch_outcome(e)
        }
        KeySourceError::Discovery(DiscoveryError::IssuerMismatch { .. }) => {
            names::FETCH_ISSUER_MISMATCH
        }
        KeySourceError::Discovery(DiscoveryError::InvalidIssuer(_)) => names::FETCH_INVALID_URL,
        KeySourceError::Discovery(DiscoveryError::InvalidDocument(_)) | KeySourceError::Jwks(_) => {
            names::FETCH_MALFORMED
        }
        KeySourceError::File { .. } => names::FETCH_FILE_ERROR,
        KeySourceError::CaFile(_) => names::FETCH_CA_FILE_ERROR,
    }
}
