//! Metric names and bounded label values, in one place so dashboards have one reference.

/// Counter: exchanges by `outcome` (`granted` or a denial reason), `grant` and `issuer` name.
pub const EXCHANGES_TOTAL: &str = "trustbridge_exchanges_total";
/// Histogram: exchange handling time in seconds, by `outcome` class (`granted`/`denied`/`error`).
pub const EXCHANGE_DURATION_SECONDS: &str = "trustbridge_exchange_duration_seconds";
/// Gauge: 1 when the policy set and signing keys are loaded.
pub const READY: &str = "trustbridge_ready";
/// Gauge: number of objects in the active policy set, by `kind` (the `KIND_*` values).
pub const POLICY_OBJECTS: &str = "trustbridge_policy_objects";
/// Info gauge: 1, with the `hash` of the active policy set as a label (one series at a time).
pub const POLICY_INFO: &str = "trustbridge_policy_info";
/// Gauge: Unix time the active policy set was installed (at start, or by the last applied
/// reload).
pub const POLICY_LAST_RELOAD_SUCCESS: &str =
    "trustbridge_policy_last_reload_success_timestamp_seconds";
/// Info gauge: 1, with the `version` and git `commit` the binary was built from.
pub const BUILD_INFO: &str = "trustbridge_build_info";

// Label values are snake_case, as metric names are.

/// `kind` label: Issuers.
pub const KIND_ISSUER: &str = "issuer";
/// `kind` label: Tenants.
pub const KIND_TENANT: &str = "tenant";
/// `kind` label: Applications.
pub const KIND_APPLICATION: &str = "application";
/// `kind` label: ServicePrincipals (was `servicePrincipal` before issue #16).
pub const KIND_SERVICE_PRINCIPAL: &str = "service_principal";
/// `kind` label: ManagedIdentities (was `managedIdentity` before issue #16).
pub const KIND_MANAGED_IDENTITY: &str = "managed_identity";

/// Label value for an issuer that no policy declares (keeps label cardinality bounded).
pub const UNKNOWN_ISSUER: &str = "_unknown";
/// Outcome label of a granted exchange.
pub const OUTCOME_GRANTED: &str = "granted";

// === issuer keys (registered by `issuers::IssuerMetrics`) ===

/// Counter: key loads of an issuer by `issuer` name and `outcome` (the `FETCH_*` values).
pub const ISSUER_KEY_FETCHES_TOTAL: &str = "trustbridge_issuer_key_fetches_total";
/// Counter: tokens whose `kid` was not in the cached key set, by `issuer`.
pub const ISSUER_KID_MISSES_TOTAL: &str = "trustbridge_issuer_kid_misses_total";
/// Gauge: Unix time of the last successful key load, by `issuer`.
pub const ISSUER_KEYS_LAST_SUCCESS: &str = "trustbridge_issuer_keys_last_success_timestamp_seconds";
/// Gauge: keys in the set currently used, by `issuer`.
pub const ISSUER_KEYS_IN_USE: &str = "trustbridge_issuer_keys_in_use";
/// Gauge: 1 while an issuer's keys are served stale (past freshness, refresh failing).
pub const ISSUER_KEYS_STALE: &str = "trustbridge_issuer_keys_stale";
/// Counter: key lookups answered from a stale set, by `issuer`.
pub const ISSUER_STALE_SERVED_TOTAL: &str = "trustbridge_issuer_stale_served_total";

/// Fetch outcome: keys loaded.
pub const FETCH_OK: &str = "ok";
/// Fetch outcome: connection refused or reset.
pub const FETCH_UNREACHABLE: &str = "unreachable";
/// Fetch outcome: too slow.
pub const FETCH_TIMEOUT: &str = "timeout";
/// Fetch outcome: a non-2xx status.
pub const FETCH_HTTP_STATUS: &str = "http_status";
/// Fetch outcome: body over the size cap.
pub const FETCH_TOO_LARGE: &str = "too_large";
/// Fetch outcome: a redirect to another host, to http, or too many.
pub const FETCH_REDIRECT_REFUSED: &str = "redirect_refused";
/// Fetch outcome: discovery document or JWKS unusable.
pub const FETCH_MALFORMED: &str = "malformed";
/// Fetch outcome: the discovery document names another issuer.
pub const FETCH_ISSUER_MISMATCH: &str = "issuer_mismatch";
/// Fetch outcome: a URL refused before any I/O (scheme, syntax).
pub const FETCH_INVALID_URL: &str = "invalid_url";
/// Fetch outcome: a `jwksFile` could not be read.
pub const FETCH_FILE_ERROR: &str = "file_error";
/// Fetch outcome: the TLS handshake failed (most often a server certificate that chains to no
/// trusted CA: a private CA without the issuer's `caFile`, or a rotated one).
pub const FETCH_TLS_ERROR: &str = "tls_error";
/// Fetch outcome: the issuer's `caFile` could not be read or holds no usable certificate.
pub const FETCH_CA_FILE_ERROR: &str = "ca_file_error";
/// Fetch outcome: anything else (protocol, client setup).
pub const FETCH_ERROR: &str = "error";
/// Counter: policy reloads by `outcome` (`applied`, `unchanged`, `rejected`).
pub const POLICY_RELOADS_TOTAL: &str = "trustbridge_policy_reloads_total";
/// Reload outcome: a new policy set is serving.
pub const RELOAD_APPLIED: &str = "applied";
/// Reload outcome: the directory holds the set already serving.
pub const RELOAD_UNCHANGED: &str = "unchanged";
/// Reload outcome: the new set was refused; the last good one keeps serving.
pub const RELOAD_REJECTED: &str = "rejected";
/// Counter: reloads of the signing key directory after a change, by `outcome`.
pub const SIGNING_KEY_RELOADS_TOTAL: &str = "trustbridge_signing_key_reloads_total";
/// Counter: signing keys taken out of service by a failed self-check (probe or issued token).
pub const SIGNING_KEY_SELF_CHECK_FAILURES_TOTAL: &str =
    "trustbridge_signing_key_self_check_failures_total";
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

// === identity inventory (registered by `inventory::InventoryMetrics`) ===

/// Counter: inventory updates dropped because too many distinct identities waited for the writer.
pub const INVENTORY_DROPPED_TOTAL: &str = "trustbridge_inventory_updates_dropped_total";
/// Counter: workload-assigned identities forgotten beyond `--max-workload-identities`.
pub const INVENTORY_EVICTED_TOTAL: &str = "trustbridge_inventory_evicted_total";
/// Counter: inventory batches the shared state failed to write.
pub const INVENTORY_WRITE_ERRORS_TOTAL: &str = "trustbridge_inventory_write_errors_total";
/// Gauge: credentials by how long they have gone unused (`age`: the `AGE_*` values),
/// computed at scrape.
pub const CREDENTIALS_UNUSED: &str = "trustbridge_credentials_unused";
/// `age` label: last used 7 to 30 days ago.
pub const AGE_7D: &str = "7d";
/// `age` label: last used 30 to 90 days ago.
pub const AGE_30D: &str = "30d";
/// `age` label: last used 90 days ago or more.
pub const AGE_90D: &str = "90d";
/// `age` label: never used.
pub const AGE_NEVER: &str = "never";

// === audit trail (registered by `telemetry::audit::AuditLog::register_metrics`) ===

/// Gauge: 1 while the audit trail is being written, 0 after a write failed until one succeeds.
pub const AUDIT_HEALTHY: &str = "trustbridge_audit_healthy";
/// Counter: failed writes of the audit trail.
pub const AUDIT_WRITE_ERRORS_TOTAL: &str = "trustbridge_audit_write_errors_total";
/// Counter: audit events discarded (the trail failing and its retry buffer full, or closed).
pub const AUDIT_EVENTS_DROPPED_TOTAL: &str = "trustbridge_audit_events_dropped_total";
