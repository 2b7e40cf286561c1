//! The identity inventory's store: per identity and per credential, first seen, last used,
//! exchanges granted and denied, and the last subject, caller address and policy hash.
//!
//! Two implementations behind [`InventoryStore`]: in memory (one process) and Redis (every
//! replica writes into and reads from the same hashes). Both apply batches of [`Usage`] events
//! the background writer of `crate::inventory` collected; neither is ever called on a
//! request's path. Both are bounded: workload-assigned identities (one per distinct
//! `nameFrom` value, so as many as the tokens say) are capped, the least recently seen
//! forgotten first. Declared identities are few (the policy names them) and never evicted.
//!
//! Redis keys (under the configured prefix):
//! - `inv:id:<member>`: one hash per identity (`tenant`, `kind`, `name`, the statistics, and
//!   `c:<credential>:<field>` per credential), written with `HSETNX`/`HSET`/`HINCRBY`;
//! - `inv:ids`: sorted set of members by last-seen time (the listing);
//! - `inv:workload`: sorted set of workload-assigned members by last-seen time (the cap).
//!
//! Nothing here decides anything: no token, no secret and no policy passes through it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use futures_util::future::{BoxFuture, FutureExt};
use serde::Serialize;

use crate::state::StateError;
use crate::state::redis::RedisState;

/// The `kind` label of workload-assigned managed identities: the only capped kind.
pub const WORKLOAD_KIND: &str = "workloadIdentity";

/// Which identity: its tenant, kind label (`servicePrincipal`, `managedIdentity`,
/// [`WORKLOAD_KIND`]) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct IdentityKey {
    /// Tenant name.
    pub tenant: String,
    /// Kind label.
    pub kind: String,
    /// Identity name (application name, or managed identity name).
    pub name: String,
}

impl IdentityKey {
    /// Whether it is workload-assigned (capped, evicted least recently used first).
    pub fn is_workload(&self) -> bool {
        self.kind == WORKLOAD_KIND
    }

    /// Its member name in the Redis sorted sets (and the suffix of its hash's key).
    fn member(&self) -> String {
        format!("{}|{}|{}", self.kind, self.tenant, self.name)
    }
}

/// The exchanges of one identity (and, for grants, one credential) that the inventory's writer
/// gathered since its last batch: how many were granted and denied, the first and latest
/// times, and what the latest one said. Small, owned, no token in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// The identity the exchanges were for.
    pub identity: IdentityKey,
    /// The credential that matched (grants only).
    pub credential: Option<String>,
    /// Exchanges granted.
    pub granted: u64,
    /// Exchanges denied.
    pub denied: u64,
    /// The latest exchange's subject token `sub`, when it validated.
    pub subject: Option<String>,
    /// The latest exchange's effective client address.
    pub caller: Option<String>,
    /// Content hash of the policy set that decided the latest exchange.
    pub policy_hash: String,
    /// When the first exchange was (unix seconds).
    pub first_at: u64,
    /// When the latest granted exchange was, if any was granted.
    pub last_granted_at: Option<u64>,
    /// When the latest exchange was (unix seconds).
    pub at: u64,
}

impl Usage {
    /// One exchange at `at`, granted or denied, with nothing said yet of subject or caller.
    pub fn one(
        identity: IdentityKey,
        credential: Option<String>,
        granted: bool,
        policy_hash: String,
        at: u64,
    ) -> Self {
        Self {
            identity,
            credential,
            granted: u64::from(granted),
            denied: u64::from(!granted),
            subject: None,
            caller: None,
            policy_hash,
            first_at: at,
            last_granted_at: granted.then_some(at),
            at,
        }
    }

    /// Counts one more exchange at `at`. Whether it is the latest (so that the caller writes
    /// its subject, caller and policy hash over the ones held) is returned: gathered
    /// exchanges may arrive slightly out of order from several workers.
    pub fn count(&mut self, granted: bool, at: u64) -> bool {
        if granted {
            self.granted += 1;
            self.last_granted_at = Some(self.last_granted_at.map_or(at, |t| t.max(at)));
        } else {
            self.denied += 1;
        }
        self.first_at = self.first_at.min(at);
        let latest = at >= self.at;
        if latest {
            self.at = at;
        }
        latest
    }
}

/// What is known of one identity or credential. Times are unix seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UsageStats {
    /// First exchange seen, granted or denied.
    pub first_seen: Option<u64>,
    /// Last exchange seen, granted or denied (the LRU order).
    pub last_seen: Option<u64>,
    /// Last granted exchange.
    pub last_used: Option<u64>,
    /// Exchanges granted.
    pub granted: u64,
    /// Exchanges denied.
    pub denied: u64,
    /// Subject of the last exchange.
    pub last_subject: Option<String>,
    /// Effective client address of the last exchange.
    pub last_caller: Option<String>,
    /// Policy hash of the last exchange.
    pub last_policy_hash: Option<String>,
}

impl UsageStats {
    /// Adds the exchanges `u` gathered. The `last_*` values follow the latest time seen, so
    /// batches that arrive out of order (several replicas) keep the newest.
    pub fn add(&mut self, u: &Usage) {
        self.first_seen = Some(self.first_seen.map_or(u.first_at, |t| t.min(u.first_at)));
        self.granted += u.granted;
        self.denied += u.denied;
        if let Some(at) = u.last_granted_at {
            self.last_used = Some(self.last_used.map_or(at, |t| t.max(at)));
        }
        if self.last_seen.is_none_or(|t| t <= u.at) {
            self.last_seen = Some(u.at);
            // `clone_from` writes into the strings already held when they are long enough.
            self.last_subject.clone_from(&u.subject);
            self.last_caller.clone_from(&u.caller);
            match &mut self.last_policy_hash {
                Some(hash) => hash.clone_from(&u.policy_hash),
                None => self.last_policy_hash = Some(u.policy_hash.clone()),
            }
        }
    }

    /// Reads the fields of a Redis hash named `<prefix><field>`.
    fn from_fields(fields: &HashMap<String, String>, prefix: &str) -> Self {
        let get = |f: &str| fields.get(&format!("{prefix}{f}")).cloned();
        let num = |f: &str| get(f).and_then(|v| v.parse::<u64>().ok());
        Self {
            first_seen: num("first_seen"),
            last_seen: num("last_seen"),
            last_used: num("last_used"),
            granted: num("granted").unwrap_or(0),
            denied: num("denied").unwrap_or(0),
            last_subject: get("last_subject"),
            last_caller: get("last_caller"),
            last_policy_hash: get("last_policy_hash"),
        }
    }
}

/// One identity's record: its own statistics and each credential's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityUsage {
    /// Which identity.
    pub identity: IdentityKey,
    /// All its exchanges.
    pub stats: UsageStats,
    /// Exchanges by credential name.
    pub credentials: BTreeMap<String, UsageStats>,
}

impl IdentityUsage {
    fn new(identity: IdentityKey) -> Self {
        Self {
            identity,
            stats: UsageStats::default(),
            credentials: BTreeMap::new(),
        }
    }

    fn add(&mut self, u: &Usage) {
        self.stats.add(u);
        if let Some(c) = &u.credential {
            match self.credentials.get_mut(c) {
                Some(stats) => stats.add(u),
                None => self.credentials.entry(c.clone()).or_default().add(u),
            }
        }
    }
}

/// Where the inventory lives.
pub trait InventoryStore: Send + Sync + std::fmt::Debug {
    /// Applies `batch`, then forgets the least recently seen workload-assigned identities
    /// beyond `max_workload`; returns how many were forgotten.
    ///
    /// # Errors
    /// [`StateError::Unavailable`] when the store cannot answer (the batch is lost).
    fn record<'a>(
        &'a self,
        batch: &'a [Usage],
        max_workload: usize,
    ) -> BoxFuture<'a, Result<u64, StateError>>;

    /// Every identity recorded, in no particular order.
    ///
    /// # Errors
    /// [`StateError::Unavailable`] when the store cannot answer.
    fn list(&self) -> BoxFuture<'_, Result<Vec<IdentityUsage>, StateError>>;
}

// === impl MemoryInventory ===

/// The inventory of this process only.
#[derive(Debug, Default)]
pub struct MemoryInventory {
    identities: Mutex<HashMap<IdentityKey, IdentityUsage>>,
}

impl MemoryInventory {
    fn record_now(&self, batch: &[Usage], max_workload: usize) -> u64 {
        let mut map = self.identities.lock().unwrap_or_else(|e| e.into_inner());
        for u in batch {
            // Looked up before any key is copied: nearly every exchange is for an identity
            // already recorded.
            match map.get_mut(&u.identity) {
                Some(record) => record.add(u),
                None => {
                    let mut record = IdentityUsage::new(u.identity.clone());
                    record.add(u);
                    map.insert(u.identity.clone(), record);
                }
            }
        }
        // Counted before anything is copied: below the cap (nearly always) a batch costs no
        // allocation here.
        let workloads = map.values().filter(|r| r.identity.is_workload()).count();
        let excess = workloads.saturating_sub(max_workload);
        if excess == 0 {
            return 0;
        }
        let mut workload: Vec<(u64, IdentityKey)> = map
            .values()
            .filter(|r| r.identity.is_workload())
            .map(|r| (r.stats.last_seen.unwrap_or(0), r.identity.clone()))
            .collect();
        workload.sort_unstable();
        for (_, key) in workload.into_iter().take(excess) {
            map.remove(&key);
        }
        excess as u64
    }
}

impl InventoryStore for MemoryInventory {
    fn record<'a>(
        &'a self,
        batch: &'a [Usage],
        max_workload: usize,
    ) -> BoxFuture<'a, Result<u64, StateError>> {
        let evicted = self.record_now(batch, max_workload);
        async move { Ok(evicted) }.boxed()
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<IdentityUsage>, StateError>> {
        let all = self
            .identities
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        async move { Ok(all) }.boxed()
    }
}

// === impl InventoryStore for RedisState ===

/// Adds the commands recording `u` into the hash `key`, its fields named `<field_prefix>...`.
fn stats_commands(pipe: &mut ::redis::Pipeline, key: &str, field_prefix: &str, u: &Usage) {
    let f = |name: &str| format!("{field_prefix}{name}");
    pipe.hset_nx(key, f("first_seen"), u.first_at).ignore();
    for (counter, n) in [("granted", u.granted), ("denied", u.denied)] {
        if n > 0 {
            pipe.hincr(key, f(counter), n).ignore();
        }
    }
    if let Some(at) = u.last_granted_at {
        pipe.hset(key, f("last_used"), at).ignore();
    }
    pipe.hset(key, f("last_seen"), u.at).ignore();
    pipe.hset(key, f("last_policy_hash"), &u.policy_hash)
        .ignore();
    for (name, value) in [("last_subject", &u.subject), ("last_caller", &u.caller)] {
        match value {
            Some(v) => pipe.hset(key, f(name), v).ignore(),
            None => pipe.hdel(key, f(name)).ignore(),
        };
    }
}

impl InventoryStore for RedisState {
    fn record<'a>(
        &'a self,
        batch: &'a [Usage],
        max_workload: usize,
    ) -> BoxFuture<'a, Result<u64, StateError>> {
        let prefix = self.prefix().to_owned();
        let ids = format!("{prefix}inv:ids");
        let workload = format!("{prefix}inv:workload");
        let mut pipe = ::redis::pipe();
        for u in batch {
            let member = u.identity.member();
            let key = format!("{prefix}inv:id:{member}");
            pipe.hset_multiple(
                &key,
                &[
                    ("tenant", &u.identity.tenant),
                    ("kind", &u.identity.kind),
                    ("name", &u.identity.name),
                ],
            )
            .ignore();
            stats_commands(&mut pipe, &key, "", u);
            if let Some(c) = &u.credential {
                stats_commands(&mut pipe, &key, &format!("c:{c}:"), u);
            }
            pipe.zadd(&ids, &member, u.at).ignore();
            if u.identity.is_workload() {
                pipe.zadd(&workload, &member, u.at).ignore();
            }
        }
        pipe.zcard(&workload);
        async move {
            let (count,): (usize,) = self
                .run(|mut conn| {
                    let pipe = pipe.clone();
                    async move { pipe.query_async(&mut conn).await }.boxed()
                })
                .await?;
            let excess = count.saturating_sub(max_workload);
            if excess == 0 {
                return Ok(0);
            }
            let popped: Vec<(String, f64)> = self
                .run(|mut conn| {
                    let workload = workload.clone();
                    async move {
                        ::redis::cmd("ZPOPMIN")
                            .arg(&workload)
                            .arg(excess)
                            .query_async(&mut conn)
                            .await
                    }
                    .boxed()
                })
                .await?;
            let mut forget = ::redis::pipe();
            for (member, _) in &popped {
                forget.del(format!("{prefix}inv:id:{member}")).ignore();
                forget.zrem(&ids, member).ignore();
            }
            self.run(|mut conn| {
                let forget = forget.clone();
                async move { forget.query_async::<()>(&mut conn).await }.boxed()
            })
            .await?;
            Ok(popped.len() as u64)
        }
        .boxed()
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<IdentityUsage>, StateError>> {
        let prefix = self.prefix().to_owned();
        async move {
            let ids = format!("{prefix}inv:ids");
            let members: Vec<String> = self
                .run(|mut conn| {
                    let ids = ids.clone();
                    async move {
                        ::redis::cmd("ZRANGE")
                            .arg(&ids)
                            .arg(0)
                            .arg(-1)
                            .query_async(&mut conn)
                            .await
                    }
                    .boxed()
                })
                .await?;
            if members.is_empty() {
                return Ok(Vec::new());
            }
            let mut pipe = ::redis::pipe();
            for m in &members {
                pipe.hgetall(format!("{prefix}inv:id:{m}"));
            }
            let hashes: Vec<HashMap<String, String>> = self
                .run(|mut conn| {
                    let pipe = pipe.clone();
                    async move { pipe.query_async(&mut conn).await }.boxed()
                })
                .await?;
            Ok(hashes.iter().filter_map(from_hash).collect())
        }
        .boxed()
    }
}

/// An identity's record from its Redis hash; `None` when it was evicted meanwhile.
fn from_hash(fields: &HashMap<String, String>) -> Option<IdentityUsage> {
    let identity = IdentityKey {
        tenant: fields.get("tenant")?.clone(),
        kind: fields.get("kind")?.clone(),
        name: fields.get("name")?.clone(),
    };
    let mut record = IdentityUsage::new(identity);
    record.stats = UsageStats::from_fields(fields, "");
    for field in fields.keys() {
        // `c:<credential>:<field>`: a credential name may hold `:`, a field name never does.
        if let Some((name, _)) = field.strip_prefix("c:").and_then(|r| r.rsplit_once(':'))
            && !record.credentials.contains_key(name)
        {
            let stats = UsageStats::from_fields(fields, &format!("c:{name}:"));
            record.credentials.insert(name.to_owned(), stats);
        }
    }
    Some(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(kind: &str, name: &str, cred: Option<&str>, granted: bool, at: u64) -> Usage {
        let identity = IdentityKey {
            tenant: "contoso".into(),
            kind: kind.into(),
            name: name.into(),
        };
        Usage {
            subject: Some(format!("sub-{at}")),
            caller: Some("10.0.0.1".into()),
            ..Usage::one(identity, cred.map(str::to_owned), granted, "h1".into(), at)
        }
    }

    async fn listed(store: &dyn InventoryStore) -> BTreeMap<String, IdentityUsage> {
        let all = store.list().await.expect("list");
        all.into_iter()
            .map(|r| (r.identity.name.clone(), r))
            .collect()
    }

    #[actix_web::test]
    async fn counts_grants_and_denials_per_identity_and_credential() {
        let store = MemoryInventory::default();
        let batch = [
            usage("servicePrincipal", "deploy", Some("gh"), true, 100),
            usage("servicePrincipal", "deploy", None, false, 150),
            usage("servicePrincipal", "deploy", Some("gh"), true, 120),
        ];
        assert_eq!(store.record(&batch, 10).await, Ok(0));
        let all = listed(&store).await;
        let deploy = &all["deploy"];
        assert_eq!(deploy.stats.granted, 2);
        assert_eq!(deploy.stats.denied, 1);
        assert_eq!(deploy.stats.first_seen, Some(100));
        assert_eq!(deploy.stats.last_used, Some(120));
        assert_eq!(deploy.stats.last_seen, Some(150));
        assert_eq!(deploy.stats.last_subject.as_deref(), Some("sub-150"));
        let gh = &deploy.credentials["gh"];
        assert_eq!((gh.granted, gh.denied), (2, 0));
        assert_eq!(gh.last_subject.as_deref(), Some("sub-120"));
    }

    #[actix_web::test]
    async fn workload_identities_beyond_the_cap_are_evicted_least_recently_seen_first() {
        let store = MemoryInventory::default();
        let batch = [
            usage(WORKLOAD_KIND, "w1", None, true, 10),
            usage(WORKLOAD_KIND, "w2", None, true, 30),
            usage(WORKLOAD_KIND, "w3", None, true, 20),
            usage("managedIdentity", "declared", None, true, 1),
        ];
        assert_eq!(store.record(&batch, 2).await, Ok(1));
        let all = listed(&store).await;
        assert!(!all.contains_key("w1"), "the least recently seen goes");
        assert!(all.contains_key("w2") && all.contains_key("w3"));
        assert!(
            all.contains_key("declared"),
            "declared identities are never evicted"
        );
        // Using w3 again makes w2 the oldest.
        let again = [
            usage(WORKLOAD_KIND, "w3", None, true, 40),
            usage(WORKLOAD_KIND, "w4", None, true, 35),
        ];
        assert_eq!(store.record(&again, 2).await, Ok(1));
        let all = listed(&store).await;
        assert!(!all.contains_key("w2"));
        assert!(all.contains_key("w3") && all.contains_key("w4"));
    }

    #[test]
    fn a_redis_hash_reads_back_with_credentials_holding_colons() {
        let fields: HashMap<String, String> = [
            ("tenant", "contoso"),
            ("kind", "servicePrincipal"),
            ("name", "deploy"),
            ("granted", "3"),
            ("first_seen", "5"),
            ("c:gh:main:granted", "2"),
            ("c:gh:main:last_subject", "repo:a/b"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let record = from_hash(&fields).expect("record");
        assert_eq!(record.stats.granted, 3);
        assert_eq!(record.stats.first_seen, Some(5));
        let c = &record.credentials["gh:main"];
        assert_eq!(c.granted, 2);
        assert_eq!(c.last_subject.as_deref(), Some("repo:a/b"));
        assert!(from_hash(&HashMap::new()).is_none());
    }
}
