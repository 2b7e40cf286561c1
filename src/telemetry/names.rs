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

/// Counter: reloads of the signing key directory after a change, by `outcome`.
pub const SIGNING_KEY_RELOADS_TOTAL: &str = "trustbridge_signing_key_reloads_total";
/// Gauge: signing keys in the directory, by `state` (current, next, retiring, expired).
pub const SIGNING_KEYS: &str = "trustbridge_signing_keys";
/// Counter: shared state (Redis) failures, by `operation` (`replay`, `rate_limit`).
pub const STATE_ERRORS_TOTAL: &str = "trustbridge_shared_state_errors_total";
/// Counter: requests let through because the rate-limit store failed, by `scope`.
pub const RATE_LIMIT_FAIL_OPEN_TOTAL: &str = "trustbridge_rate_limit_fail_open_total";
/// Counter: requests refused with 429, by `scope` (`identity`, `issuer`).
pub const RATE_LIMITED_TOTAL: &str = "trustbridge_rate_limited_total";
/// Counter: one-time-use subject tokens refused as replays.
pub const REPLAYS_REFUSED_TOTAL: &str = "trustbridge_replays_refused_total";
