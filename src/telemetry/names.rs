//! Metric names and bounded label values, in one place so dashboards have one reference.

/// Counter: exchanges by `outcome` (`granted` or a denial reason), `grant` and `issuer` name.
pub const EXCHANGES_TOTAL: &str = "trustbridge_exchanges_total";
/// Histogram: exchange handling time in seconds, by `outcome` class (`granted`/`denied`/`error`).
pub const EXCHANGE_DURATION_SECONDS: &str = "trustbridge_exchange_duration_seconds";
/// Gauge: 1 when the policy set and signing keys are loaded.
pub const READY: &str = "trustbridge_ready";
/// Gauge: number of objects in the active policy set, by `kind`.
pub const POLICY_OBJECTS: &str = "trustbridge_policy_objects";

/// Label value for an issuer that no policy declares (keeps label cardinality bounded).
pub const UNKNOWN_ISSUER: &str = "_unknown";
/// Outcome label of a granted exchange.
pub const OUTCOME_GRANTED: &str = "granted";

/// Counter: policy reloads by `outcome` (`applied`, `unchanged`, `rejected`).
pub const POLICY_RELOADS_TOTAL: &str = "trustbridge_policy_reloads_total";
/// Reload outcome: a new policy set is serving.
pub const RELOAD_APPLIED: &str = "applied";
/// Reload outcome: the directory holds the set already serving.
pub const RELOAD_UNCHANGED: &str = "unchanged";
/// Reload outcome: the new set was refused; the last good one keeps serving.
pub const RELOAD_REJECTED: &str = "rejected";
