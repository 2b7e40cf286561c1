//! The running gateway as request handlers see it: settings, clock, the swappable policy
//! snapshot, signing keys, the shared-state guard, metrics, the audit trail and the identity
//! inventory.
//!
//! `app` assembles a [`Gateway`] and wires it into actix; handlers only read it through the
//! accessors here. This module must not know about actix, routes or how the parts are built.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;

use crate::clock::Clock;
use crate::config::Settings;
use crate::exchange::Limits;
use crate::issuers::IssuerRegistry;
use crate::policy::PolicySet;
use crate::policy::store::ReloadMetrics;
use crate::state::Guard;
use crate::telemetry::audit::AuditLog;
use crate::telemetry::metrics::ExchangeMetrics;
use crate::tokens::{KeyMetrics, SigningKeys};

/// A policy set together with the issuer registry built for it; swapped as one unit so a
/// request never sees policies and keys from two different versions.
pub struct Snapshot {
    /// The compiled policies.
    pub policies: Arc<PolicySet>,
    /// Keys and validation for the policies' issuers.
    pub issuers: Arc<IssuerRegistry>,
}

/// What `app::build` assembles into a [`Gateway`]; only read once, by [`Gateway::new`].
pub struct GatewayParts {
    /// Settings in force.
    pub settings: Settings,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The first policy snapshot.
    pub snapshot: Snapshot,
    /// Signing keys.
    pub keys: Arc<SigningKeys>,
    /// The HTTPS certificate when serving TLS (`--tls-cert`/`--tls-key`).
    pub tls: Option<Arc<crate::tls::ServerCert>>,
    /// The audit trail.
    pub audit: AuditLog,
    /// Replay protection and rate limits over the shared state.
    pub guard: Guard,
    /// Prometheus registry behind `/metrics`, holding every metric below.
    pub registry: prometheus::Registry,
    /// Exchange metrics.
    pub metrics: ExchangeMetrics,
    /// Policy reload metrics.
    pub reload_metrics: ReloadMetrics,
    /// Signing key metrics.
    pub key_metrics: KeyMetrics,
    /// The bearer token the admin API requires, when `--admin-token-file` is set.
    pub admin_token: Option<crate::admin::auth::AdminToken>,
    /// The identity inventory.
    pub inventory: crate::inventory::Inventory,
}

/// Everything a request handler needs, shared by every worker.
pub struct Gateway {
    settings: Settings,
    clock: Arc<dyn Clock>,
    snapshot: ArcSwap<Snapshot>,
    keys: Arc<SigningKeys>,
    registry: prometheus::Registry,
    metrics: ExchangeMetrics,
    ready: AtomicBool,
    limits: Limits,
    tls: Option<Arc<crate::tls::ServerCert>>,
    audit: AuditLog,
    reload_metrics: ReloadMetrics,
    guard: Guard,
    key_metrics: KeyMetrics,
    admin_token: Option<crate::admin::auth::AdminToken>,
    inventory: crate::inventory::Inventory,
}

impl Gateway {
    /// A ready gateway over `parts`; decision limits come from the settings.
    pub fn new(parts: GatewayParts) -> Self {
        let gateway = Self {
            limits: Limits {
                max_token_lifetime: parts.settings.max_token_lifetime,
            },
            settings: parts.settings,
            clock: parts.clock,
            snapshot: ArcSwap::from_pointee(parts.snapshot),
            keys: parts.keys,
            registry: parts.registry,
            metrics: parts.metrics,
            ready: AtomicBool::new(false),
            tls: parts.tls,
            audit: parts.audit,
            reload_metrics: parts.reload_metrics,
            guard: parts.guard,
            key_metrics: parts.key_metrics,
            admin_token: parts.admin_token,
            inventory: parts.inventory,
        };
        gateway.set_ready(true);
        gateway
    }

    /// The current snapshot (lock-free).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The current policy set.
    pub fn policies(&self) -> Arc<PolicySet> {
        self.snapshot.load().policies.clone()
    }

    /// Replaces the snapshot atomically: later requests see `snapshot`, requests in flight
    /// keep the one they loaded.
    pub fn install(&self, snapshot: Snapshot) {
        self.snapshot.store(Arc::new(snapshot));
    }

    /// Settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Signing keys.
    pub fn keys(&self) -> &Arc<SigningKeys> {
        &self.keys
    }

    /// Prometheus registry behind `/metrics`.
    pub fn registry(&self) -> &prometheus::Registry {
        &self.registry
    }

    /// Exchange metrics.
    pub fn metrics(&self) -> &ExchangeMetrics {
        &self.metrics
    }

    /// Policy reload metrics.
    pub fn reload_metrics(&self) -> &ReloadMetrics {
        &self.reload_metrics
    }

    /// Signing key metrics.
    pub fn key_metrics(&self) -> &KeyMetrics {
        &self.key_metrics
    }

    /// Server-wide decision limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The HTTPS certificate when serving TLS.
    pub fn tls(&self) -> Option<&Arc<crate::tls::ServerCert>> {
        self.tls.as_ref()
    }

    /// The audit trail.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Replay protection and rate limits.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// The bearer token the admin API requires, if one is configured.
    pub fn admin_token(&self) -> Option<&crate::admin::auth::AdminToken> {
        self.admin_token.as_ref()
    }

    /// The identity inventory (hand-offs from the token handler, listing for the admin API).
    pub fn inventory(&self) -> &crate::inventory::Inventory {
        &self.inventory
    }

    /// Whether `/readyz` answers ready: not shutting down, and the audit trail accepts grants
    /// (it is being written, or `--audit-failure continue`).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && self.audit.grants_allowed()
    }

    /// Turns readiness on or off (`/readyz` and `trustbridge_ready` together).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
        self.metrics.ready.set(i64::from(ready));
    }
}
