//! The identity inventory: which identity and credential exchanged when, how often, for whom
//! and from where; and which credentials have gone unused (stale trust).
//!
//! Off the request's critical path by construction: the token handler counts each exchange
//! into what the writer has gathered since its last batch ([`Inventory::note_granted`],
//! [`Inventory::note_denied`]): one entry per identity and credential, updated in place under a
//! short lock that nothing else holds for long, so a request neither waits nor allocates once
//! its identity has an entry. More than [`GATHER_CAPACITY`] distinct entries in one batch are
//! dropped and counted. One background task ([`Inventory::writer`]) takes what was gathered and
//! writes it into the shared state ([`crate::state::inventory`]: Redis shared by replicas, or
//! memory). Reading ([`Inventory::list`]) merges what the policy declares (every identity, even
//! one never used) with what the store recorded (workload-assigned identities as they appear).
//!
//! It must not decide anything nor slow a grant: a store failure loses statistics, never a
//! token. No token or secret is ever recorded; subjects and names are bounded.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::Notify;

use crate::clock::unix_seconds;
use crate::exchange::Grant;
use crate::exchange::audit::{AuditRecord, MAX_FIELD_CHARS};
use crate::policy::PolicySet;
use crate::policy::model::ManagedIdentityName;
use crate::state::StateError;
use crate::state::inventory::{IdentityKey, IdentityUsage, InventoryStore, Usage, UsageStats};
use crate::telemetry::names;

/// Most distinct entries (identity and credential) gathered between two batches; an exchange
/// that would add one more is dropped and counted.
pub const GATHER_CAPACITY: usize = 4096;
/// Most entries written in one call to the store.
pub const BATCH: usize = 256;
/// How long the writer lets exchanges gather after writing a batch. Without it, every grant
/// woke the writer's thread on its own: two context switches per exchange, which cost more
/// CPU than the rest of the inventory together.
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
            "Identity inventory updates dropped because too many distinct identities were waiting for the writer.",
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

/// The inventory of one gateway: what was gathered for the writer, the store, and its
/// settings. Dropping it ends the writer, after it has written what was gathered.
#[derive(Debug)]
pub struct Inventory {
    shared: Arc<Shared>,
    writer_taken: AtomicBool,
    store: Arc<dyn InventoryStore>,
    metrics: InventoryMetrics,
    unused_after: Duration,
    max_workload: usize,
}

/// What the handlers and the writer share.
#[derive(Debug, Default)]
struct Shared {
    gathered: Mutex<Gathered>,
    /// Woken when the first entry of a batch is gathered, and when the inventory is dropped.
    wake: Notify,
    closed: AtomicBool,
}

/// The exchanges gathered since the writer last took them.
#[derive(Debug, Default)]
struct Gathered {
    /// Keyed by [`entry_key`] of identity and credential.
    entries: HashMap<String, Usage>,
    /// Where the key of the exchange being counted is written (reused: no allocation).
    key: String,
}

/// One exchange to count: whose, and what the audit record says of it.
struct Exchange<'a> {
    tenant: &'a str,
    kind: &'static str,
    name: &'a str,
    credential: Option<&'a str>,
    granted: bool,
    record: &'a AuditRecord<'a>,
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
        Self {
            shared: Arc::default(),
            writer_taken: AtomicBool::new(false),
            store,
            metrics,
            unused_after,
            max_workload,
        }
    }

    /// Counts a granted exchange for the writer, without waiting.
    pub fn note_granted(&self, record: &AuditRecord<'_>, grant: &Grant<'_>) {
        self.gather(&Exchange {
            tenant: &grant.tenant,
            kind: grant.identity_kind.as_str(),
            name: &bounded_borrowed(&grant.identity_name),
            credential: Some(&grant.credential),
            granted: true,
            record,
        });
    }

    /// Counts a refused exchange for the writer, when the identity it was for is known:
    /// `client_id` names a user-assigned managed identity or an application with a service
    /// principal in the tenant. Refusals for no known identity are not recorded per identity.
    pub fn note_denied(&self, record: &AuditRecord<'_>, policies: &PolicySet) {
        let Some(client_id) = record.client_id else {
            return;
        };
        let tenant = record.tenant;
        let (kind, name) = if let Some(i) = policies.user_assigned(tenant, client_id) {
            let Some(ManagedIdentityName::Fixed(name)) =
                policies.managed_identities().get(i).map(|m| &m.name)
            else {
                return;
            };
            (crate::exchange::IdentityKind::ManagedIdentity, name)
        } else {
            let Some(app) = policies.application_by_client_id(client_id) else {
                return;
            };
            if policies.service_principal(tenant, &app.name).is_none() {
                return;
            }
            (crate::exchange::IdentityKind::ServicePrincipal, &app.name)
        };
        self.gather(&Exchange {
            tenant,
            kind: kind.as_str(),
            name,
            credential: None,
            granted: false,
            record,
        });
    }

    /// Counts `x` into its entry, or adds one; beyond [`GATHER_CAPACITY`] entries it is
    /// dropped (counted). Wakes the writer when the entry is the first of a batch.
    fn gather(&self, x: &Exchange<'_>) {
        let at = unix_seconds(x.record.time);
        let mut gathered = self
            .shared
            .gathered
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let Gathered { entries, key } = &mut *gathered;
        entry_key(key, x.tenant, x.kind, x.name, x.credential);
        let first = entries.is_empty();
        if let Some(usage) = entries.get_mut(key.as_str()) {
            if usage.count(x.granted, at) {
                latest_of(usage, x.record);
            }
            return;
        }
        if entries.len() >= GATHER_CAPACITY {
            drop(gathered);
            self.metrics.dropped.inc();
            return;
        }
        let identity = IdentityKey {
            tenant: x.tenant.to_owned(),
            kind: x.kind.to_owned(),
            name: x.name.to_owned(),
        };
        let credential = x.credential.map(str::to_owned);
        let mut usage = Usage::one(identity, credential, x.granted, String::new(), at);
        latest_of(&mut usage, x.record);
        entries.insert(key.clone(), usage);
        drop(gathered);
        if first {
            self.shared.wake.notify_one();
        }
    }

    /// Everything gathered so far, leaving nothing behind.
    fn take(shared: &Shared) -> Vec<Usage> {
        let mut gathered = shared.gathered.lock().unwrap_or_else(|e| e.into_inner());
        let entries = std::mem::take(&mut gathered.entries);
        drop(gathered);
        entries.into_values().collect()
    }

    /// The background writer, once (`None` afterwards): woken by the first exchange gathered,
    /// it writes everything gathered into the store (at most [`BATCH`] entries per call), then
    /// lingers [`LINGER`] while the next exchanges gather. When the inventory is dropped it
    /// writes what is left and ends.
    pub fn writer(&self) -> Option<impl Future<Output = ()> + use<>> {
        if self.writer_taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        let shared = self.shared.clone();
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        let max_workload = self.max_workload;
        Some(async move {
            loop {
                shared.wake.notified().await;
                let closed = shared.closed.load(Ordering::Acquire);
                let all = Self::take(&shared);
                for batch in all.chunks(BATCH) {
                    match store.record(batch, max_workload).await {
                        Ok(evicted) => metrics.evicted.inc_by(evicted),
                        Err(e) => {
                            metrics.write_errors.inc();
                            tracing::warn!(error = %e, lost = batch.len(), "identity inventory not written");
                        }
                    }
                }
                if closed {
                    break;
                }
                tokio::time::sleep(LINGER).await;
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

impl Drop for Inventory {
    /// Ends the writer, once it has written what was gathered.
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

/// The key of an entry in [`Gathered`], written into `out`: every part prefixed by its length,
/// so that no two different identities (or credentials) can write the same key.
fn entry_key(out: &mut String, tenant: &str, kind: &str, name: &str, credential: Option<&str>) {
    out.clear();
    for part in [tenant, kind, name] {
        let _ = write!(out, "{}:{part}", part.len());
    }
    match credential {
        Some(c) => {
            let _ = write!(out, "{}:{c}", c.len());
        }
        None => out.push('-'),
    }
}

/// Writes what the latest exchange said (bounded subject, caller address without its
/// ephemeral port, policy hash) over what `usage` held, reusing its strings.
fn latest_of(usage: &mut Usage, record: &AuditRecord<'_>) {
    let subject = record.subject.map(bounded_borrowed);
    replace_text(&mut usage.subject, subject.as_deref());
    match record.caller {
        None => usage.caller = None,
        Some(c) => {
            let out = usage.caller.get_or_insert_with(String::new);
            out.clear();
            match c.parse::<std::net::SocketAddr>() {
                Ok(addr) => {
                    let _ = write!(out, "{}", addr.ip());
                }
                Err(_) => out.push_str(c),
            }
        }
    }
    usage.policy_hash.clear();
    usage.policy_hash.push_str(record.policy_hash);
}

/// Sets `slot` to `value`, writing into the string it holds when there is one.
fn replace_text(slot: &mut Option<String>, value: Option<&str>) {
    match (slot.as_mut(), value) {
        (Some(held), Some(v)) => {
            held.clear();
            held.push_str(v);
        }
        (_, v) => *slot = v.map(str::to_owned),
    }
}

fn bounded_borrowed(value: &str) -> std::borrow::Cow<'_, str> {
    crate::text::shown_borrowed(value, MAX_FIELD_CHARS)
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
        stats.add(&Usage::one(
            key("servicePrincipal", name),
            Some(cred.into()),
            true,
            "h".into(),
            at,
        ));
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
            Usage::one(
                key("workloadIdentity", "fresh"),
                Some("c".into()),
                true,
                "h".into(),
                now - DAY,
            ),
            Usage::one(
                key("workloadIdentity", "old"),
                Some("c".into()),
                true,
                "h".into(),
                now - 50 * DAY,
            ),
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

    fn inventory(store: Arc<MemoryInventory>) -> Inventory {
        let registry = prometheus::Registry::new();
        let metrics = InventoryMetrics::register(&registry).expect("metrics");
        Inventory::new(store, metrics, Duration::from_secs(DAY), 10)
    }

    fn record(at: u64, subject: &'static str, caller: &'static str) -> AuditRecord<'static> {
        AuditRecord {
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(at),
            tenant: "contoso",
            subject: Some(subject),
            caller: Some(caller),
            policy_hash: "h1",
            ..AuditRecord::default()
        }
    }

    fn exchange<'a>(
        name: &'a str,
        credential: Option<&'a str>,
        granted: bool,
        record: &'a AuditRecord<'a>,
    ) -> Exchange<'a> {
        Exchange {
            tenant: "contoso",
            kind: "servicePrincipal",
            name,
            credential,
            granted,
            record,
        }
    }

    fn gathered(inventory: &Inventory) -> BTreeMap<(String, Option<String>), Usage> {
        Inventory::take(&inventory.shared)
            .into_iter()
            .map(|u| ((u.identity.name.clone(), u.credential.clone()), u))
            .collect()
    }

    #[test]
    fn exchanges_of_one_identity_and_credential_gather_into_one_entry_with_exact_counts() {
        let inventory = inventory(Arc::default());
        let (early, late) = (
            record(100, "sub-early", "10.0.0.1:5000"),
            record(200, "sub-late", "[2001:db8::1]:443"),
        );
        for _ in 0..5 {
            inventory.gather(&exchange("deploy", Some("gh"), true, &late));
        }
        // An earlier exchange counted after a later one: counted, but it does not say the last
        // subject.
        inventory.gather(&exchange("deploy", Some("gh"), true, &early));
        for _ in 0..2 {
            inventory.gather(&exchange("deploy", None, false, &early));
        }
        inventory.gather(&exchange("other", Some("gh"), true, &early));
        let all = gathered(&inventory);
        assert_eq!(all.len(), 3, "one entry per identity and credential");
        let gh = &all[&("deploy".to_owned(), Some("gh".to_owned()))];
        assert_eq!((gh.granted, gh.denied), (6, 0));
        assert_eq!(
            (gh.first_at, gh.at, gh.last_granted_at),
            (100, 200, Some(200))
        );
        assert_eq!(gh.subject.as_deref(), Some("sub-late"));
        assert_eq!(
            gh.caller.as_deref(),
            Some("2001:db8::1"),
            "the address, not its port"
        );
        assert_eq!(gh.policy_hash, "h1");
        let refused = &all[&("deploy".to_owned(), None)];
        assert_eq!((refused.granted, refused.denied), (0, 2));
        assert_eq!(refused.last_granted_at, None);
        assert_eq!(refused.caller.as_deref(), Some("10.0.0.1"));
        assert!(
            gathered(&inventory).is_empty(),
            "taking leaves nothing behind"
        );
        assert_eq!(inventory.metrics.dropped.get(), 0);
    }

    #[test]
    fn beyond_its_capacity_a_new_entry_is_dropped_and_counted_but_known_ones_still_count() {
        let inventory = inventory(Arc::default());
        let r = record(1, "s", "10.0.0.1:1");
        let names: Vec<String> = (0..GATHER_CAPACITY + 3).map(|i| format!("w{i}")).collect();
        for name in &names {
            inventory.gather(&exchange(name, None, true, &r));
        }
        assert_eq!(inventory.metrics.dropped.get(), 3);
        inventory.gather(&exchange("w0", None, true, &r));
        assert_eq!(
            inventory.metrics.dropped.get(),
            3,
            "a known entry is never dropped"
        );
        let all = gathered(&inventory);
        assert_eq!(all.len(), GATHER_CAPACITY);
        assert_eq!(all[&("w0".to_owned(), None)].granted, 2);
        // Taken by the writer, the room is free again.
        inventory.gather(&exchange(&names[GATHER_CAPACITY], None, true, &r));
        assert_eq!(gathered(&inventory).len(), 1);
    }

    /// Reads a key of [`entry_key`] back into its parts: a key that reads back is one no other
    /// parts can write.
    fn parts_of(mut key: &str) -> Option<(Vec<String>, Option<String>)> {
        let read = |key: &mut &str| -> Option<String> {
            let (len, rest) = key.split_once(':')?;
            let len: usize = len.parse().ok()?;
            let part = rest.get(..len)?.to_owned();
            *key = &rest[len..];
            Some(part)
        };
        let parts = vec![read(&mut key)?, read(&mut key)?, read(&mut key)?];
        let credential = if key == "-" {
            None
        } else {
            Some(read(&mut key)?)
        };
        (key.is_empty() || credential.is_none()).then_some((parts, credential))
    }

    proptest::proptest! {
        #[test]
        fn an_entry_key_reads_back_into_exactly_its_parts(
            parts in proptest::collection::vec("[a1:\\-é]{0,4}", 3),
            credential in proptest::option::of("[a1:\\-é]{0,4}"),
        ) {
            let mut key = String::new();
            entry_key(&mut key, &parts[0], &parts[1], &parts[2], credential.as_deref());
            proptest::prop_assert_eq!(parts_of(&key), Some((parts, credential)));
        }
    }

    #[actix_web::test]
    async fn the_writer_writes_what_gathered_and_what_is_left_when_the_inventory_is_dropped() {
        let store = Arc::new(MemoryInventory::default());
        let inventory = inventory(store.clone());
        let writer = inventory.writer().expect("first writer");
        assert!(inventory.writer().is_none(), "only one writer");
        let writer = actix_web::rt::spawn(writer);
        let r = record(10, "s", "10.0.0.1:1");
        inventory.gather(&exchange("first", Some("c"), true, &r));
        // The first exchange of a batch wakes the writer at once.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while store.list().await.expect("list").is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the first exchange was not written"
            );
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        }
        for _ in 0..3 {
            inventory.gather(&exchange("first", Some("c"), true, &r));
        }
        inventory.gather(&exchange("last", None, false, &r));
        drop(inventory);
        writer
            .await
            .expect("the writer ends when the inventory is dropped");
        let all: BTreeMap<String, IdentityUsage> = store
            .list()
            .await
            .expect("list")
            .into_iter()
            .map(|u| (u.identity.name.clone(), u))
            .collect();
        assert_eq!(all["first"].stats.granted, 4, "nothing gathered is lost");
        assert_eq!(all["first"].credentials["c"].granted, 4);
        assert_eq!(all["last"].stats.denied, 1);
    }
}
