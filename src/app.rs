//! Composition root: settings → policies, issuer registry, signing keys, metrics → the actix
//! application. Only this module knows how the parts are wired together; `serve` and the test
//! suite's gateway both go through [`build`] and [`server`].

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::{App, HttpServer, web};

use crate::clock::Clock;
use crate::config::Settings;
use crate::gateway::{Gateway, GatewayParts, Snapshot};
use crate::inventory::{Inventory, InventoryMetrics};
use crate::issuers::{IssuerMetrics, IssuerRegistry};
use crate::policy::model::KeySourceSpec;
use crate::policy::store::{self, PolicySink, PolicyStore, ReloadMetrics};
use crate::policy::{LoadErrors, PolicySet};
use crate::state::{Guard, SharedState, StateError, StateMetrics};
use crate::telemetry::audit::AuditLog;
use crate::telemetry::metrics::ExchangeMetrics;
use crate::tokens::{KeyMetrics, KeyStoreError, SigningKeys};

/// Why the gateway could not start. `main` prints it and exits 64 before binding.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The policy directory did not load.
    #[error("policies in {dir}: {errors}")]
    Policies {
        /// The directory.
        dir: String,
        /// Every problem.
        errors: LoadErrors,
    },
    /// An Issuer's `fetch:` block does not fit the global `--issuer-*` settings.
    #[error("policies in {dir}: {problems}")]
    IssuerFetch {
        /// The directory.
        dir: String,
        /// Every problem, one per line.
        problems: String,
    },
    /// The key directory could not be used.
    #[error(transparent)]
    Keys(#[from] KeyStoreError),
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The TLS certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The audit log file could not be opened.
    #[error("audit log: {0}")]
    AuditLog(std::io::Error),
    /// The shared state store is misconfigured.
    #[error("redis-url: {0}")]
    State(#[from] StateError),
    /// The admin token file is unusable.
    #[error(transparent)]
    AdminToken(#[from] crate::admin::auth::AdminTokenError),
    /// A Redis setting is unusable (a file, the URL), or Redis refused the connection's TLS
    /// handshake or credentials at start-up.
    #[error(transparent)]
    Redis(#[from] crate::state::redis::RedisSetupError),
}

/// Builds the gateway: loads and compiles policies, prepares the demo issuer when a policy uses
/// it, loads (or creates) the signing keys, registers metrics.
pub fn build(settings: Settings, clock: Arc<dyn Clock>) -> Result<Arc<Gateway>, StartupError> {
    let policies =
        crate::policy::load_dir(&settings.policies).map_err(|errors| StartupError::Policies {
            dir: settings.policies.display().to_string(),
            errors,
        })?;
    crate::issuers::check_fetch_settings(&policies, &settings.issuer_fetch).map_err(
        |problems| StartupError::IssuerFetch {
            dir: settings.policies.display().to_string(),
            problems,
        },
    )?;
    if policies.issuers().any(|i| i.keys == KeySourceSpec::Demo) {
        crate::demo::DemoIssuer::open_or_create(&settings.data_dir)?;
    }
    let tls = match &settings.tls {
        Some(files) => Some(Arc::new(crate::tls::ServerCert::load(files.clone())?)),
        None => None,
    };
    // Superseded keys stay published as long as the longest token they may have signed.
    let keys =
        SigningKeys::load_or_create(&settings.keys, settings.signing_algorithm, clock.clone())?
            .with_retention(settings.max_token_lifetime)
            .with_verify_issued(settings.verify_issued);
    let state = match &settings.redis {
        Some(options) => SharedState::redis_with(options, &settings.redis_key_prefix)?,
        None => SharedState::memory(),
    };
    let registry = prometheus::Registry::new();
    let issuers = IssuerRegistry::new(
        &policies,
        settings.issuer_fetch.clone(),
        clock.clone(),
        crate::demo::jwks_path(&settings.data_dir),
    )
    .with_metrics(IssuerMetrics::register(&registry)?);
    // In a runtime (tests) keys load now; `serve` builds before its runtime, so `run` repeats it.
    issuers.prewarm();
    let admin_token = match &settings.admin_token_file {
        Some(path) => Some(crate::admin::auth::AdminToken::load(path)?),
        None => None,
    };
    let audit = AuditLog::open(&settings.audit_log, settings.audit_failure)
        .map_err(StartupError::AuditLog)?;
    audit.register_metrics(&registry)?;
    keys.register_metrics(&registry)?;
    let metrics = ExchangeMetrics::register(&registry)?;
    crate::telemetry::metrics::register_process(&registry)?;
    let reload_metrics = ReloadMetrics::register(&registry)?;
    let state_metrics = StateMetrics::register(&registry)?;
    let key_metrics = KeyMetrics::register(&registry)?;
    key_metrics.observe(&keys);
    let inventory = Inventory::new(
        state.inventory.clone(),
        InventoryMetrics::register(&registry)?,
        settings.unused_after,
        settings.max_workload_identities,
    );
    tracing::info!(
        state.backend = state.backend,
        rate_limit.identity = settings.rate_limit_identity.map(|r| r.to_string()),
        rate_limit.issuer = settings.rate_limit_issuer.map(|r| r.to_string()),
        "shared state configured"
    );
    record_policy_objects(&metrics, &policies, clock.unix());
    tracing::info!(
        policy.hash = %policies.content_hash(),
        issuers = policies.issuers().len(),
        tenants = policies.tenants().len(),
        applications = policies.applications().len(),
        managed_identities = policies.managed_identities().len(),
        "policies loaded"
    );
    Ok(Arc::new(Gateway::new(GatewayParts {
        settings,
        clock,
        snapshot: Snapshot {
            policies: Arc::new(policies),
            issuers: Arc::new(issuers),
        },
        keys: Arc::new(keys),
        tls,
        audit,
        guard: Guard::new(state, state_metrics),
        registry,
        metrics,
        reload_metrics,
        key_metrics,
        admin_token,
        inventory,
    })))
}

/// Start-up checks that need a runtime, run by `serve` after [`build`] and before binding:
/// with Redis configured, one connection and `PING`. A TLS verification or authentication
/// failure is a configuration error (`serve` exits 64 with it); an unreachable Redis is only
/// logged, and the gateway starts and answers per the failure policy.
///
/// # Errors
/// [`StartupError::Redis`] naming the Redis settings to check.
pub async fn preflight(settings: &Settings) -> Result<(), StartupError> {
    use crate::state::redis::{RedisSetupError, RedisState, connect::FailureKind};
    let Some(options) = &settings.redis else {
        return Ok(());
    };
    let probe = RedisState::with_options(options, &settings.redis_key_prefix)?;
    match probe.probe().await {
        Ok(()) => {
            tracing::info!(redis.tls = options.is_tls(), "redis reachable");
            Ok(())
        }
        Err(failure) if failure.kind == FailureKind::Misconfigured => {
            let check = if options.is_tls() {
                "check redis-ca-file, redis-cert/redis-key and the user and password of \
                 redis-url or redis-password-file"
            } else {
                "check the user and password of redis-url or redis-password-file"
            };
            Err(RedisSetupError {
                setting: "redis-url",
                reason: format!("Redis refused the connection: {} ({check})", failure.what),
            }
            .into())
        }
        Err(failure) => {
            tracing::warn!(
                redis.error = %failure.what,
                "redis unreachable at start-up; starting anyway (one-time-use exchanges fail \
                 closed, rate limits open, until it answers)"
            );
            Ok(())
        }
    }
}

/// The gateway as the policy reloader's sink: a reloaded set is swapped in together with an
/// issuer registry rebuilt for it (keeping the key caches of unchanged issuers), so a request
/// sees one version.
struct Reloader(Arc<Gateway>);

impl PolicySink for Reloader {
    fn current_hash(&self) -> String {
        self.0.policies().content_hash().to_string()
    }

    fn install(&self, set: PolicySet) -> Result<(), String> {
        let gateway = &self.0;
        crate::issuers::check_fetch_settings(&set, &gateway.settings().issuer_fetch)?;
        if set.issuers().any(|i| i.keys == KeySourceSpec::Demo) {
            crate::demo::DemoIssuer::open_or_create(&gateway.settings().data_dir)
                .map_err(|e| format!("demo issuer: {e}"))?;
        }
        let issuers = gateway.snapshot().issuers.rebuild(&set);
        record_policy_objects(gateway.metrics(), &set, gateway.clock().unix());
        gateway.install(Snapshot {
            policies: Arc::new(set),
            issuers: Arc::new(issuers),
        });
        Ok(())
    }
}

/// The reloader of `gateway`'s policy directory (see [`crate::policy::store`]).
pub fn policy_store(gateway: &Arc<Gateway>) -> Arc<PolicyStore> {
    Arc::new(PolicyStore::new(
        gateway.settings().policies.clone(),
        Arc::new(Reloader(gateway.clone())),
        gateway.reload_metrics().clone(),
    ))
}

fn record_policy_objects(metrics: &ExchangeMetrics, p: &PolicySet, now: u64) {
    use crate::telemetry::names;
    metrics.record_policy(p.content_hash(), now);
    for (kind, n) in [
        (names::KIND_ISSUER, p.issuers().len()),
        (names::KIND_TENANT, p.tenants().len()),
        (names::KIND_APPLICATION, p.applications().len()),
        (names::KIND_SERVICE_PRINCIPAL, p.service_principals().len()),
        (names::KIND_MANAGED_IDENTITY, p.managed_identities().len()),
    ] {
        metrics
            .policy_objects
            .with_label_values(&[kind])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

/// An actix server for `gateway` on an already bound listener (tests bind 127.0.0.1:0).
/// With a TLS certificate it serves HTTPS and polls the certificate files for changes (a task
/// on the current actix runtime, so call this from within one, as `run` and the tests do).
pub fn server(
    gateway: Arc<Gateway>,
    listener: TcpListener,
) -> std::io::Result<actix_web::dev::Server> {
    let workers = match gateway.settings().workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let tls = gateway.tls().cloned();
    // Replicas pick up key directory changes (a rotation, a Secret update) without a restart.
    actix_web::rt::spawn(SigningKeys::watch(
        Arc::downgrade(gateway.keys()),
        gateway.settings().keys_reload_interval,
        gateway.key_metrics().clone(),
    ));
    // The identity inventory's writer: it ends when the gateway (its queue) is dropped.
    if let Some(writer) = gateway.inventory().writer() {
        actix_web::rt::spawn(writer);
    }
    let grace = gateway.settings().shutdown_grace.as_secs();
    let data = web::Data::from(gateway);
    // Shared by every worker: each tenant's discovery document is rendered once.
    let documents = web::Data::new(crate::http::discovery::Documents::default());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(documents.clone())
            .configure(crate::http::routes::configure)
            .wrap(crate::http::routes::TokenFastPath)
    })
    .workers(workers)
    .shutdown_timeout(grace)
    // No HTTP/2: actix-web 4 serves it through h2 0.3, which has an unpatched denial of
    // service (RUSTSEC-2026-0258, fixed only in h2 0.4); see docs/deployment.md.
    .disable_signals();
    let server = match tls {
        Some(cert) => {
            let config = cert.server_config().map_err(std::io::Error::other)?;
            // The watcher holds a weak reference: it ends once the gateway is dropped.
            actix_web::rt::spawn(crate::tls::watch(
                Arc::downgrade(&cert),
                crate::tls::RELOAD_INTERVAL,
            ));
            server.listen_rustls_0_23(listener, config)?
        }
        None => server.listen(listener)?,
    };
    Ok(server.run())
}

/// Runs `serve` until SIGINT or SIGTERM, then shuts down gracefully:
/// 1. readiness turns off at once (`/readyz` answers 503, `trustbridge_ready` 0);
/// 2. for `--shutdown-delay` the listener keeps accepting, so requests a load balancer sends
///    before it notices are still served;
/// 3. the listener closes and in-flight requests get `--shutdown-grace` to finish;
/// 4. the audit trail writes every event still queued (nothing granted is missing from it);
/// 5. the function returns `Ok` and the process exits 0.
///
/// Meanwhile the policy directory is watched and reloaded on change or SIGHUP, and SIGHUP
/// also reopens the audit file (log rotation).
pub async fn run(gateway: Arc<Gateway>) -> std::io::Result<()> {
    // Listen for SIGHUP before announcing anything: its default action ends the process.
    let hangup = store::hangup();
    actix_web::rt::spawn(policy_store(&gateway).watch(store::POLL_INTERVAL, hangup));
    actix_web::rt::spawn(reopen_audit_on_hangup(
        Arc::downgrade(&gateway),
        store::hangup(),
    ));
    let listener = TcpListener::bind(gateway.settings().listen)?;
    tracing::info!(
        listen = %listener.local_addr()?,
        public_url = %gateway.settings().public_url,
        tls = gateway.tls().is_some(),
        "trustbridge serving"
    );
    gateway.snapshot().issuers.prewarm();
    let admin = match gateway.settings().admin_listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr)?;
            tracing::info!(
                admin.listen = %listener.local_addr()?,
                admin.auth = gateway.admin_token().is_some(),
                "admin console and API serving"
            );
            let admin = crate::admin::server(gateway.clone(), listener)?;
            let handle = admin.handle();
            actix_web::rt::spawn(admin);
            Some(handle)
        }
        None => None,
    };
    let server = server(gateway.clone(), listener)?;
    let handle = server.handle();
    let stopper = gateway.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        stopper.set_ready(false);
        let delay = stopper.settings().shutdown_delay;
        let grace = stopper.settings().shutdown_grace;
        tracing::info!(
            shutdown.delay_s = delay.as_secs_f64(),
            shutdown.grace_s = grace.as_secs_f64(),
            "shutting down: not ready; draining in-flight requests"
        );
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        handle.stop(true).await;
        if let Some(admin) = admin {
            admin.stop(true).await;
        }
        tracing::info!("shutdown complete");
    });
    let served = server.await;
    // Every worker has stopped: nothing is queued after this.
    gateway.audit().close();
    tracing::info!("audit trail drained");
    served
}

/// Reopens the audit file on every SIGHUP (a second listener beside the policy reloader's:
/// each receives every signal), until the gateway is dropped.
async fn reopen_audit_on_hangup(
    gateway: std::sync::Weak<Gateway>,
    mut hangup: Option<store::Hangup>,
) {
    loop {
        store::next_hangup(&mut hangup).await;
        let Some(gateway) = gateway.upgrade() else {
            return;
        };
        tracing::info!("SIGHUP: reopening the audit log");
        gateway.audit().reopen();
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
