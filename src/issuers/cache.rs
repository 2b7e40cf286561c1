//! Per-issuer key cache: freshness, single-flight refresh, unknown-`kid` refresh with a rate
//! limit, and a bounded stale-on-error window.
//!
//! # Design
//!
//! Every successful load is stored in a moka cache under a **generation number** (0 for the
//! first load, then 1, 2, ...). `State::generation` names the current one. Moka is used for what
//! it does well, coalescing: `try_get_with(generation, load)` runs one load per key while
//! concurrent callers for the same key wait for its result (or its error). A refresh is always
//! "load generation `seen + 1`", where `seen` is the generation the caller looked at, so:
//!
//! - callers that saw the same stale set all ask for the same key and share one fetch;
//! - a caller arriving after the refresh finished asks for a key that is already cached and
//!   gets the new set without fetching;
//! - a failed load caches nothing, and the previous generation stays in place for stale use.
//!
//! Freshness is **not** moka's TTL: moka reads its own clock, which tests cannot drive (moka
//! issue #522). Each value carries `fetched_at` and `fresh_until` (Cache-Control `max-age`
//! clamped to `[min_ttl, max_ttl]`, `no-store`/`no-cache` meaning `min_ttl`, `default_ttl`
//! without a hint), and this module compares them with the injected [`Clock`].
//!
//! - **Fresh** (`now < fresh_until`): served.
//! - **Stale**: refetched. If the refetch fails, the stale set keeps serving until
//!   `fresh_until + max_stale`, after which the request fails with
//!   [`CacheError::Unavailable`]. After a failed refetch, further refetches wait
//!   `min_refresh_interval` while the stale set is still servable, so an outage does not turn
//!   into one fetch per request. Without any servable set, every request may try again (still
//!   coalesced), because failing closed for a whole interval after a blip is worse.
//!   TODO-perf: a short negative cache for first loads during a long outage.
//! - **Unknown `kid`**: the validator asks [`CachingKeySource::refresh_for_unknown_kid`] with the
//!   generation it used. If a newer generation already exists, it is returned without fetching.
//!   Otherwise at most one kid-triggered refresh starts per `min_refresh_interval` (measured on
//!   the injected clock). Callers that arrive while that refresh is in flight join it (same
//!   target generation) instead of being rate-limited; past the limit the answer is
//!   [`CacheError::RefreshRateLimited`] without any fetch, so a flood of tokens with random
//!   `kid`s cannot make trustbridge hammer an issuer.
//! - **Refresh ahead**: once three quarters of a set's freshness has passed
//!   ([`refresh_due`], a pure function of `fetched_at`, `fresh_until` and `now`), the next
//!   lookup still gets the fresh set at once and spawns one background refresh (never more
//!   than one at a time, none while a failure backoff runs). [`CachingKeySource::prewarm`]
//!   loads the keys when policies load and starts a ticker that performs the same check every
//!   [`REFRESH_CHECK_INTERVAL`] for issuers that see no traffic; the ticker holds a weak
//!   reference and ends when the cache is dropped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use tracing::Instrument as _;

use super::FetchSettings;
use super::jwks::KeySet;
use super::metrics::IssuerMetrics;
use super::source::{KeySource, KeySourceError, LoadedKeys};
use crate::clock::Clock;

/// Why the cache could not provide keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// Keys could not be loaded and no stale copy may be served.
    #[error("{0}")]
    Unavailable(String),
    /// An unknown-`kid` refresh was refused by the per-issuer rate limit.
    #[error("key refresh rate-limited")]
    RefreshRateLimited,
}

/// One loaded key set and its freshness.
#[derive(Debug, Clone)]
pub struct CachedKeys {
    /// The keys.
    pub keys: Arc<KeySet>,
    /// The generation it was stored under (pass it back to `refresh_for_unknown_kid`).
    pub generation: u64,
    /// When it was loaded (injected clock).
    pub fetched_at: SystemTime,
    /// Until when it is fresh.
    pub fresh_until: SystemTime,
}

#[derive(Debug, Default)]
struct State {
    generation: u64,
    last_kid_refresh: Option<SystemTime>,
    kid_refresh_target: Option<u64>,
    last_failure: Option<SystemTime>,
}

struct Inner {
    source: Arc<dyn KeySource>,
    clock: Arc<dyn Clock>,
    settings: FetchSettings,
    sets: moka::future::Cache<u64, Arc<CachedKeys>>,
    /// The set of `State::generation` once loaded: what nearly every lookup serves, read
    /// without the state's lock or moka's bookkeeping (which every worker would otherwise
    /// write to on every exchange).
    current: ArcSwapOption<CachedKeys>,
    state: Mutex<State>,
    loads: AtomicU64,
    /// Issuer name: the metrics label and the log field.
    name: String,
    metrics: IssuerMetrics,
    /// A background refresh is running.
    refreshing: AtomicBool,
    /// The ticker of [`CachingKeySource::prewarm`] was started.
    ticking: AtomicBool,
}

/// How often the background ticker checks whether an idle issuer's keys are due a refresh.
pub const REFRESH_CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// Whether a set fetched at `fetched_at` and fresh until `fresh_until` should be refreshed at
/// `now`: once three quarters of its freshness has passed (so the new set normally arrives
/// before the old one goes stale), and whenever it is stale.
pub fn refresh_due(fetched_at: SystemTime, fresh_until: SystemTime, now: SystemTime) -> bool {
    let ttl = fresh_until
        .duration_since(fetched_at)
        .unwrap_or(Duration::ZERO);
    now >= add(fetched_at, ttl - ttl / 4)
}

/// A caching decorator around one issuer's [`KeySource`]. Cheap to clone; clones share the
/// cache (a policy reload reuses it for unchanged issuers).
#[derive(Clone)]
pub struct CachingKeySource {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CachingKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachingKeySource")
            .field("source", &self.inner.source)
            .field("loads", &self.load_count())
            .finish_non_exhaustive()
    }
}

fn add(t: SystemTime, d: Duration) -> SystemTime {
    // An overflowing deadline is treated as already passed: fail towards refetching.
    t.checked_add(d).unwrap_or(t)
}

impl CachingKeySource {
    /// Wraps `source`; nothing is loaded until keys are first asked for.
    pub fn new(source: Arc<dyn KeySource>, settings: FetchSettings, clock: Arc<dyn Clock>) -> Self {
        Self::observed(
            source,
            settings,
            clock,
            String::new(),
            IssuerMetrics::unregistered(),
        )
    }

    /// Like [`CachingKeySource::new`], recording into `metrics` under the issuer `name`.
    pub fn observed(
        source: Arc<dyn KeySource>,
        settings: FetchSettings,
        clock: Arc<dyn Clock>,
        name: String,
        metrics: IssuerMetrics,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                source,
                clock,
                settings,
                // Only the current generation and a straggler or two are ever present.
                sets: moka::future::Cache::new(8),
                current: ArcSwapOption::empty(),
                state: Mutex::new(State::default()),
                loads: AtomicU64::new(0),
                name,
                metrics,
                refreshing: AtomicBool::new(false),
                ticking: AtomicBool::new(false),
            }),
        }
    }

    /// Loads the keys now, in the background, and starts the refresh ticker (once per cache).
    /// Failures are logged, never fatal: the first token will try again. Does nothing outside
    /// a Tokio runtime; returns whether it started.
    pub fn prewarm(&self) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        if self.inner.ticking.swap(true, Ordering::AcqRel) {
            return false;
        }
        let cache = self.clone();
        runtime.spawn(async move {
            if let Err(error) = cache.keys().await {
                tracing::warn!(issuer.name = %cache.inner.name, %error, "prewarming issuer keys failed");
            }
        });
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(REFRESH_CHECK_INTERVAL).await;
                let Some(inner) = weak.upgrade() else { break };
                // `keys` refreshes ahead (in the background) or, when stale, in place.
                let _ = CachingKeySource { inner }.keys().await;
            }
        });
        true
    }

    /// Spawns one background refresh of the generation after `generation`, unless one runs,
    /// a failure backoff is active, or there is no runtime.
    fn refresh_in_background(&self, generation: u64, now: SystemTime) {
        let backing_off = self
            .state()
            .last_failure
            .is_some_and(|at| now < add(at, self.inner.settings.min_refresh_interval));
        if backing_off {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.inner.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let cache = self.clone();
        runtime.spawn(async move {
            if let Err(error) = cache.load_generation(generation + 1).await {
                tracing::warn!(issuer.name = %cache.inner.name, %error, "background refresh of issuer keys failed; current keys stay in use");
            }
            cache.inner.refreshing.store(false, Ordering::Release);
        });
    }

    /// How many times the underlying source was asked to load (for tests and metrics).
    pub fn load_count(&self) -> u64 {
        self.inner.loads.load(Ordering::Relaxed)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long a set stays fresh given its source's `max-age` hint.
    pub fn ttl_for(settings: &FetchSettings, max_age: Option<Duration>) -> Duration {
        match max_age {
            // max/min rather than clamp: clamp panics when the bounds are misconfigured.
            Some(age) => age.max(settings.min_ttl).min(settings.max_ttl),
            None => settings.default_ttl,
        }
    }

    /// The current keys: cached if fresh, refetched when stale (serving the stale set within
    /// `max_stale` if that fails), loaded on first use.
    ///
    /// Errors: [`CacheError::Unavailable`] when loading fails and no stale set may be served.
    pub async fn keys(&self) -> Result<Arc<CachedKeys>, CacheError> {
        let now = self.inner.clock.now();
        // The current generation's set, published by the load that made it current. None
        // only until the first load succeeds: that load is the cold path, boxed so that the
        // future every exchange awaits here stays small (1.7 KB less per request). A load
        // that finished in moka but has not published yet is found there without fetching.
        let Some(current) = self.inner.current.load_full() else {
            let generation = self.state().generation;
            return Box::pin(self.load_generation(generation)).await;
        };
        let generation = current.generation;
        if now < current.fresh_until {
            if refresh_due(current.fetched_at, current.fresh_until, now) {
                self.refresh_in_background(generation, now);
            }
            return Ok(current);
        }
        let stale_until = add(current.fresh_until, self.inner.settings.max_stale);
        let backing_off = self
            .state()
            .last_failure
            .is_some_and(|at| now < add(at, self.inner.settings.min_refresh_interval));
        if backing_off && now <= stale_until {
            self.inner.metrics.served_stale(&self.inner.name);
            return Ok(current);
        }
        match Box::pin(self.load_generation(generation + 1)).await {
            Ok(fresh) => Ok(fresh),
            Err(error) if now <= stale_until => {
                tracing::warn!(issuer.name = %self.inner.name, %error, "issuer keys refresh failed; serving stale keys");
                self.inner.metrics.served_stale(&self.inner.name);
                Ok(current)
            }
            Err(CacheError::Unavailable(error)) => {
                let since = now
                    .duration_since(current.fetched_at)
                    .unwrap_or(Duration::ZERO);
                Err(CacheError::Unavailable(format!(
                    "the last good keys were fetched {} ago, beyond their freshness plus the \
                     {} stale window, and refreshing failed: {error}",
                    humantime::format_duration(Duration::from_secs(since.as_secs())),
                    humantime::format_duration(self.inner.settings.max_stale)
                )))
            }
            Err(error) => Err(error),
        }
    }

    /// Called after a token's `kid` (or kid-less algorithm) found no key in the set of
    /// `seen_generation`. Returns a newer set: an existing one, or one fetched now.
    ///
    /// Errors: [`CacheError::RefreshRateLimited`] without fetching when a kid-triggered refresh
    /// already ran within `min_refresh_interval`; [`CacheError::Unavailable`] when the fetch
    /// fails.
    pub async fn refresh_for_unknown_kid(
        &self,
        seen_generation: u64,
    ) -> Result<Arc<CachedKeys>, CacheError> {
        let now = self.inner.clock.now();
        let target = seen_generation + 1;
        // Decide under the lock, act after releasing it (the guard must not cross an await).
        let newer_generation = {
            let mut state = self.state();
            if state.generation >= target {
                Some(state.generation)
            } else {
                let joining = state.kid_refresh_target == Some(target);
                if !joining {
                    let limited = state
                        .last_kid_refresh
                        .is_some_and(|at| now < add(at, self.inner.settings.min_refresh_interval));
                    if limited {
                        return Err(CacheError::RefreshRateLimited);
                    }
                    state.last_kid_refresh = Some(now);
                    state.kid_refresh_target = Some(target);
                }
                None
            }
        };
        if let Some(current) = newer_generation {
            return match self.inner.sets.get(&current).await {
                Some(newer) => Ok(newer),
                None => Err(CacheError::RefreshRateLimited),
            };
        }
        let result = self.load_generation(target).await;
        if result.is_err() {
            // Late arrivals must not re-run a failed refresh under the "joining" rule.
            let mut state = self.state();
            if state.kid_refresh_target == Some(target) {
                state.kid_refresh_target = None;
            }
        }
        result
    }

    /// Loads (or joins the load of, or finds already loaded) generation `target`.
    async fn load_generation(&self, target: u64) -> Result<Arc<CachedKeys>, CacheError> {
        let inner = &self.inner;
        let result = inner
            .sets
            .try_get_with(target, async {
                inner.loads.fetch_add(1, Ordering::Relaxed);
                // One span per actual fetch (joined loads and cache hits open none).
                let span = tracing::info_span!(
                    target: crate::telemetry::traces::TARGET,
                    "key_fetch",
                    issuer = %inner.name,
                );
                let loaded = inner.source.load().instrument(span).await;
                let fetched_at = inner.clock.now();
                inner.metrics.fetched(
                    &inner.name,
                    loaded.as_ref().map(|l| (l.keys.len(), fetched_at)),
                );
                let LoadedKeys { keys, max_age } = loaded?;
                let fresh_until = add(fetched_at, Self::ttl_for(&inner.settings, max_age));
                Ok::<_, KeySourceError>(Arc::new(CachedKeys {
                    keys,
                    generation: target,
                    fetched_at,
                    fresh_until,
                }))
            })
            .await;
        match result {
            Ok(loaded) => {
                let previous = {
                    let mut state = self.state();
                    state.last_failure = None;
                    // Published under the lock, so `current` always holds the set of
                    // `state.generation` (or nothing before the first load).
                    if state.generation <= target {
                        inner.current.store(Some(loaded.clone()));
                    }
                    if state.generation < target {
                        let previous = state.generation;
                        state.generation = target;
                        Some(previous)
                    } else {
                        None
                    }
                };
                if let Some(previous) = previous {
                    inner.sets.invalidate(&previous).await;
                }
                Ok(loaded)
            }
            Err(error) => {
                self.state().last_failure = Some(inner.clock.now());
                Err(CacheError::Unavailable(error.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests;
