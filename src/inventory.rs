//! The identity inventory: which identity and credential exchanged when, how often, for whom
//! and from where; and which credentials have gone unused (stale trust).
//!
//! Off the request's critical path by construction: the token handler builds a small
//! [`Usage`] and hands it to [`Inventory::note`], a `try_send` on a bounded queue that never
//! waits (a full queue drops the update and counts it). One background task
//! ([`Inventory::writer`]) drains the queue in batches into the shared state
//! ([`crate::state::inventory`]: Redis shared by replicas, or memory). Reading
//! ([`Inventory::list`]) merges what the policy declares (every identity, even one never used)
//! with what the store recorded (workload-assigned identities as they appear).
//!
//! It must not decide anything nor slow a grant: a store failure loses statistics, never a
//! token. No token or secret is ever recorded; subjects and names are bounded.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::clock::unix_seconds;
use crate::exchange::Grant;
use crate::exchange::audit::{AuditRecord, MAX_FIELD_CHARS};
use crate::policy::PolicySet;
use crate::policy::model::ManagedIdentityName;
use crate::state::StateError;
use crate::state::inventory::{IdentityKey, IdentityUsage, InventoryStore, Usage, UsageStats};
use crate::telemetry::names;

/// Updates the queue holds before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 4096;
/// Most updates written in one batch.
pub const BATCH: usize = 256;
/// How long the writer lets updates gather after a batch that emptied the queue. Without it,
/// every grant woke the writer's thread on its own: two context switches per exchange, which
/// cost more CPU than the rest of the inventory together. At most [`QUEUE_CAPACITY`] updates
/// arrive meanwhile at 40,000 exchanges/s.
pub const LINGER: Duration = Duration::from_millis(50);

const DAY: u64 = 86_400;

/// Metrics of the inventory, registered by [`InventoryMetrics::register`].
#[derive(Debug, Clone)]
pub struct InventoryMetrics {
    /// Updates dropped on a full queue.
    pub dropped: prometheus::IntCounter,
    /// Workload-assigned identities evicted by the cap.
    pub evicted: prometheus::IntCounter,
    /// Batches the store failed to write.
    pub write_errors: prometheus::IntCounter,
    /// Credentials by unused age bucket.
    pub unused: prometheus::IntGaugeVec,
}

impl InventoryMetrics {
    /// Creates and registers the metrics in `registry`.
    ///
    /// # Errors
    /// When a metric of the same name is already registered there.
    pub fn register(registry: &prometheus::Registry) -> prometheus::Result<Self> {
        let dropped = prometheus::IntCounter::new(
            names::INVENTORY_DROPPED_TOTAL,
            "Identity inventory updates dropped because the writer's queue was full.",
        )?;
        let evicted = prometheus::IntCounter::new(
            names::INVENTORY_EVICTED_TOTAL,
            "Workload-assigned identities forgotten by the inventory beyond its cap.",
        )?;
        let write_errors = prometheus::IntCounter::new(
            names::INVENTORY_WRITE_ERRORS_TOTAL,
            "Identity inventory batches the shared state failed to write.",
        )?;
        let unused = prometheus::IntGaugeVec::new(
            prometheus::Opts::new(
                names::CREDENTIALS_UNUSED,
                "Federated credentials by how long they have gone unused (7d: 7 to 30 days, 30d: 30 to 90, 90d: more, never).",
            ),
            &["age"],
        )?;
        registry.register(Box::new(dropped.clone()))?;
        registry.register(Box::new(evicted.clone()))?;
        registry.register(Box::new(write_errors.clone()))?;
        registry.register(Box::new(unused.clone()))?;
        Ok(Self {
            dropped,
            evicted,
            write_errors,
            unused,
        })
    }
}

/// The inventory of one gateway: the queue's sending end, the store, and its settings.
#[derive(Debug)]
pub struct Inventory {
    tx: mpsc::Sender<Usage>,
    rx: Mutex<Option<mpsc::Receiver<Usage>>>,
    store: Arc<dyn InventoryStore>,
    metrics: InventoryMetrics,
    unused_after: Duration,
    max_workload: usize,
}

impl Inventory {
    /// An inventory over `store`; credentials unused for `unused_after` are stale, and at most
    /// `max_workload` workload-assigned identities are kept.
    pub fn new(
        store: Arc<dyn InventoryStore>,
        metrics: InventoryMetrics,
        unused_after: Duration,
        max_workload: usize,
    ) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
            store,
            metrics,
            unused_after,
            max_workload,
        }
    }

    /// Hands `usage` to the writer without waiting; a full queue drops it (counted).
    pub fn note(&self, usage: Usage) {
        if self.tx.try_send(usage).is_err() {
            self.metrics.dropped.inc();
        }
    }

    /// The background writer, once (`None` afterwards): it drains the queue in batches of at
    /// most [`BATCH`] into the store, lingering [`LINGER`] once the queue is empty, and ends
    /// when the inventory is dropped.
    pub fn writer(&self) -> Option<impl Future<Output = ()> + use<>> {
        let mut rx = self.rx.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        let max_workload = self.max_workload;
        Some(async move {
            let mut batch = Vec::with_capacity(BATCH);
            loop {
                let received = rx.recv_many(&mut batch, BATCH).await;
                if received == 0 {
                    break;
                }
                match store.record(&batch, max_workload).await {
                    Ok(evicted) => metrics.evicted.inc_by(evicted),
                    Err(e) => {
                        metrics.write_errors.inc();
                        tracing::warn!(error = %e, lost = batch.len(), "identity inventory not written");
                    }
                }
                batch.clear();
                if received < BATCH {
                    tokio::time::sleep(LINGER).await;
                }
            }
        })
    }

    /// How long a credential may go unused before it is reported stale.
    pub fn unused_after(&self) -> Duration {
        self.unused_after
    }

    /// Every identity the policy declares, and every other one recorded, with their
    /// credentials; with `unused_for`, only what has not been used for that long (never used
    /// included). Sorted by tenant, kind, name.
    ///
    /// # Errors
    /// [`StateError::Unavailable`] when the store cannot answer.
    pub async fn list(
        &self,
        policies: &PolicySet,
        now: SystemTime,
        unused_for: Option<Duration>,
    ) -> Result<Vec<IdentityView>, StateError> {
        let recorded = self.store.list().await?;
        let now = unix_seconds(now);
        let mut views = merge(declared(policies), recorded, now, self.unused_after);
        if let Some(age) = unused_for {
            let age = age.as_secs();
            for v in &mut views {
                v.credentials.retain(|c| unused(&c.stats, now, age));
            }
            views.retain(|v| unused(&v.stats, now, age) || !v.credentials.is_empty());
        }
        Ok(views)
    }

    /// Recomputes `trustbridge_credentials_unused` (called at scrape). A store failure leaves
    /// the last values.
    pub async fn refresh_unused_gauge(&self, policies: &PolicySet, now: SystemTime) {
        let Ok(views) = self.list(policies, now, None).await else {
            return;
        };
        let now = unix_seconds(now);
        let mut counts = BTreeMap::from([
            (names::AGE_7D, 0),
            (names::AGE_30D, 0),
            (names::AGE_90D, 0),
            (names::AGE_NEVER, 0),
        ]);
        for c in views.iter().flat_map(|v| &v.credentials) {
            let bucket = match c.stats.last_used {
                None => Some(names::AGE_NEVER),
                Some(t) => match now.saturating_sub(t) / DAY {
                    90.. => Some(names::AGE_90D),
                    30..90 => Some(names::AGE_30D),
                    7..30 => Some(names::AGE_7D),
                    _ => None,
                },
            };
            if let Some(b) = bucket {
                *counts.entry(b).or_default() += 1;
            }
        }
        for (age, n) in counts {
            self.metrics.unused.with_label_values(&[age]).set(n);
        }
    }
}

/// The update of a granted exchange.
pub fn granted(record: &AuditRecord<'_>, grant: &Grant<'_>) -> Usage {
    let identity = IdentityKey {
        tenant: grant.tenant.to_string(),
        kind: grant.identity_kind.as_str().to_owned(),
        name: bounded(&grant.identity_name),
    };
    usage(record, identity, Some(grant.credential.to_string()), true)
}

/// The update of a refused exchange, when the identity it was for is known: `client_id` names
/// a user-assigned managed identity or an application with a service principal in the
/// tenant. Refusals for no known identity are not recorded per identity.
pub fn denied(record: &AuditRecord<'_>, policies: &PolicySet) -> Option<Usage> {
    let client_id = record.client_id?;
    let tenant = record.tenant;
    let (kind, name) = if let Some(i) = policies.user_assigned(tenant, client_id) {
        let ManagedIdentityName::Fixed(name) = &policies.managed_identities().get(i)?.name else {
            return None;
        };
        (crate::exchange::IdentityKind::ManagedIdentity, name.clone())
    } else {
        let app = policies.application_by_client_id(client_id)?;
        policies.service_principal(tenant, &app.name)?;
        (
            crate::exchange::IdentityKind::ServicePrincipal,
            app.name.clone(),
        )
    };
    let identity = IdentityKey {
        tenant: tenant.to_owned(),
        kind: kind.as_str().to_owned(),
        name,
    };
    Some(usage(record, identity, None, false))
}

fn usage(
    record: &AuditRecord<'_>,
    identity: IdentityKey,
    credential: Option<String>,
    granted: bool,
) -> Usage {
    Usage {
        identity,
        credential,
        granted,
        subject: record.subject.map(bounded),
        // The effective client's address, without its (ephemeral) port.
        caller: record.caller.map(|c| {
            c.parse::<std::net::SocketAddr>()
                .map_or_else(|_| c.to_owned(), |a| a.ip().to_string())
        }),
        policy_hash: record.policy_hash.to_owned(),
        at: unix_seconds(record.time),
    }
}

fn bounded(value: &str) -> String {
    crate::text::shown(value, MAX_FIELD_CHARS)
}

/// Whether what `stats` describes has gone unused for `age` seconds at `now` (never used
/// counts).
fn unused(stats: &UsageStats, now: u64, age: u64) -> bool {
    stats.last_used.is_none_or(|t| now.saturating_sub(t) >= age)
}

/// One identity as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityView {
    /// Tenant, kind and name.
    #[serde(flatten)]
    pub identity: IdentityKey,
    /// Whether the current policy declares it (workload-assigned ones never are).
    pub declared: bool,
    /// Its exchanges.
    #[serde(flatten)]
    pub stats: UsageStats,
    /// Its credentials: the declared ones, and any other recorded.
    pub credentials: Vec<CredentialView>,
}

/// One credential as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialView {
    /// Credential name.
    pub name: String,
    /// Its exchanges.
    #[serde(flatten)]
    pub stats: UsageStats,
    /// Unused for `--unused-after` or longer (or never used).
    pub stale: bool,
}

/// Every identity the policy declares, with its credentials' names.
fn declared(policies: &PolicySet) -> Vec<(IdentityKey, Vec<String>)> {
    let names = |creds: &[crate::policy::model::FederatedCredential]| {
        creds.iter().map(|c| c.name.clone()).collect::<Vec<_>>()
    };
    let mut out = Vec::new();
    for sp in policies.service_principals() {
        let creds = policies
            .application(&sp.application)
            .map(|a| names(&a.federated_credentials))
            .unwrap_or_default();
        let key = IdentityKey {
            tenant: sp.tenant.clone(),
            kind: crate::exchange::IdentityKind::ServicePrincipal
                .as_str()
                .to_owned(),
            name: sp.application.clone(),
        };
        out.push((key, creds));
    }
    for mi in policies.managed_identities() {
        if let ManagedIdentityName::Fixed(name) = &mi.name {
            let key = IdentityKey {
                tenant: mi.tenant.clone(),
                kind: crate::exchange::IdentityKind::ManagedIdentity
                    .as_str()
                    .to_owned(),
                name: name.clone(),
            };
            out.push((key, names(&mi.federated_credentials)));
        }
    }
    out
}

/// Declared identities (with empty statistics until used) merged with recorded ones.
fn merge(
    declared: Vec<(IdentityKey, Vec<String>)>,
    recorded: Vec<IdentityUsage>,
    now: u64,
    unused_after: Duration,
) -> Vec<IdentityView> {
    let mut recorded: BTreeMap<IdentityKey, IdentityUsage> = recorded
        .into_iter()
        .map(|r| (r.identity.clone(), r))
        .collect();
    let stale_after = unused_after.as_secs();
    let view = |identity: IdentityKey,
                known: Option<Vec<String>>,
                record: Option<IdentityUsage>| {
        let declared = known.is_some();
        let (stats, mut used) = record.map_or_else(Default::default, |r| (r.stats, r.credentials));
        let mut credentials: Vec<CredentialView> = known
            .into_iter()
            .flatten()
            .map(|name| {
                let stats = used.remove(&name).unwrap_or_default();
                (name, stats)
            })
            .collect::<Vec<_>>()
            .into_iter()
            .chain(used)
            .map(|(name, stats)| CredentialView {
                stale: unused(&stats, now, stale_after),
                name,
                stats,
            })
            .collect();
        credentials.sort_by(|a, b| a.name.cmp(&b.name));
        IdentityView {
            declared,
            identity,
            stats,
            credentials,
        }
    };
    let mut out: Vec<IdentityView> = Vec::new();
    for (key, creds) in declared {
        let record = recorded.remove(&key);
        out.push(view(key, Some(creds), record));
    }
    for (key, record) in recorded {
        out.push(view(key, None, Some(record)));
    }
    out.sort_by(|a, b| a.identity.cmp(&b.identity));
    out.dedup_by(|a, b| a.identity == b.identity);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::inventory::MemoryInventory;

    fn key(kind: &str, name: &str) -> IdentityKey {
        IdentityKey {
            tenant: "contoso".into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    fn used(name: &str, cred: &str, at: u64) -> IdentityUsage {
        let mut stats = UsageStats::default();
        stats.add(&Usage {
            identity: key("servicePrincipal", name),
            credential: Some(cred.into()),
            granted: true,
            subject: None,
            caller: None,
            policy_hash: "h".into(),
            at,
        });
        IdentityUsage {
            identity: key("servicePrincipal", name),
            stats: stats.clone(),
            credentials: BTreeMap::from([(cred.to_owned(), stats)]),
        }
    }

    #[test]
    fn declared_identities_show_even_never_used_and_stale_credentials_are_marked() {
        let now = 100 * DAY;
        let declared = vec![
            (
                key("servicePrincipal", "deploy"),
                vec!["gh".into(), "old".into()],
            ),
            (key("managedIdentity", "idle"), vec!["k8s".into()]),
        ];
        let mut deploy = used("deploy", "gh", now - DAY);
        let old = used("deploy", "old", now - 40 * DAY);
        deploy.credentials.extend(old.credentials);
        let mut workload = used("ci-42", "tmpl", now - 2 * DAY);
        workload.identity.kind = "workloadIdentity".into();
        let recorded = vec![deploy, workload];
        let views = merge(declared, recorded, now, Duration::from_secs(30 * DAY));
        let names: Vec<&str> = views.iter().map(|v| v.identity.name.as_str()).collect();
        assert_eq!(names, ["idle", "deploy", "ci-42"]);
        let idle = &views[0];
        assert!(idle.declared && idle.stats.first_seen.is_none());
        assert!(idle.credentials[0].stale, "never used is stale");
        let deploy = &views[1];
        let stale: Vec<(&str, bool)> = deploy
            .credentials
            .iter()
            .map(|c| (c.name.as_str(), c.stale))
            .collect();
        assert_eq!(stale, [("gh", false), ("old", true)]);
        assert!(!views[2].declared);
    }

    #[actix_web::test]
    async fn the_unused_filter_keeps_what_went_unused_that_long() {
        let registry = prometheus::Registry::new();
        let metrics = InventoryMetrics::register(&registry).expect("metrics");
        let store = Arc::new(MemoryInventory::default());
        let inventory = Inventory::new(store.clone(), metrics, Duration::from_secs(30 * DAY), 10);
        let now = 100 * DAY;
        let batch = [
            Usage {
                identity: key("workloadIdentity", "fresh"),
                credential: Some("c".into()),
                granted: true,
                subject: None,
                caller: None,
                policy_hash: "h".into(),
                at: now - DAY,
            },
            Usage {
                identity: key("workloadIdentity", "old"),
                credential: Some("c".into()),
                granted: true,
                subject: None,
                caller: None,
                policy_hash: "h".into(),
                at: now - 50 * DAY,
            },
        ];
        store.record(&batch, 10).await.expect("record");
        let policies = PolicySet::default();
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(now);
        let all = inventory.list(&policies, at, None).await.expect("list");
        assert_eq!(all.len(), 2);
        let stale = inventory
            .list(&policies, at, Some(Duration::from_secs(30 * DAY)))
            .await
            .expect("list");
        let names: Vec<&str> = stale.iter().map(|v| v.identity.name.as_str()).collect();
        assert_eq!(names, ["old"]);
        inventory.refresh_unused_gauge(&policies, at).await;
        let gauge = |age: &str| inventory.metrics.unused.with_label_values(&[age]).get();
        assert_eq!((gauge("7d"), gauge("30d"), gauge("never")), (0, 1, 0));
    }

    #[actix_web::test]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let registry = prometheus::Registry::new();
        let metrics = InventoryMetrics::register(&registry).expect("metrics");
        let inventory = Inventory::new(
            Arc::new(MemoryInventory::default()),
            metrics,
            Duration::from_secs(DAY),
            10,
        );
        let u = Usage {
            identity: key("servicePrincipal", "x"),
            credential: None,
            granted: true,
            subject: None,
            caller: None,
            policy_hash: "h".into(),
            at: 1,
        };
        for _ in 0..QUEUE_CAPACITY + 3 {
            inventory.note(u.clone());
        }
        assert_eq!(inventory.metrics.dropped.get(), 3);
        // The writer drains what was queued.
        let writer = inventory.writer().expect("first writer");
        assert!(inventory.writer().is_none(), "only one writer");
        drop(inventory);
        writer.await;
    }
}
