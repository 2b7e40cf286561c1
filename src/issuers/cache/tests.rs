#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

use futures_util::future::BoxFuture;

use super::*;
use crate::clock::ManualClock;
use crate::issuers::fetch::FetchError;
use crate::issuers::jwks::parse_jwks;
use crate::issuers::metrics::IssuerMetrics;
use crate::issuers::testkit::{T0, TestKey, jwks};

/// A key source whose next answer, and whether it blocks, the test controls.
#[derive(Debug)]
struct FakeSource {
    next: Mutex<Result<LoadedKeys, KeySourceError>>,
    gate: tokio::sync::Semaphore,
    gated: std::sync::atomic::AtomicBool,
    started: AtomicUsize,
}

impl FakeSource {
    fn new(keys: &[&TestKey], max_age: Option<Duration>) -> Arc<Self> {
        let source = Arc::new(Self {
            next: Mutex::new(Err(down())),
            gate: tokio::sync::Semaphore::new(0),
            gated: Default::default(),
            started: AtomicUsize::new(0),
        });
        source.serve(keys, max_age);
        source
    }

    fn serve(&self, keys: &[&TestKey], max_age: Option<Duration>) {
        let set = parse_jwks(jwks(keys).to_string().as_bytes()).unwrap();
        *self.next.lock().unwrap() = Ok(LoadedKeys {
            keys: Arc::new(set),
            max_age,
        });
    }

    fn fail(&self) {
        *self.next.lock().unwrap() = Err(down());
    }
}

fn down() -> KeySourceError {
    KeySourceError::Fetch(FetchError::Status {
        url: "https://issuer.example/jwks".into(),
        status: 503,
    })
}

impl KeySource for FakeSource {
    fn load(&self) -> BoxFuture<'_, Result<LoadedKeys, KeySourceError>> {
        Box::pin(async move {
            self.started.fetch_add(1, Ordering::SeqCst);
            if self.gated.load(Ordering::SeqCst) {
                self.gate.acquire().await.unwrap().forget();
            }
            self.next.lock().unwrap().clone()
        })
    }
}

fn settings() -> FetchSettings {
    FetchSettings {
        min_refresh_interval: Duration::from_secs(30),
        default_ttl: Duration::from_secs(3600),
        min_ttl: Duration::from_secs(60),
        max_ttl: Duration::from_secs(86_400),
        max_stale: Duration::from_secs(7200),
        ..FetchSettings::default()
    }
}

fn setup(source: &Arc<FakeSource>) -> (CachingKeySource, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::at_unix(T0));
    let cache = CachingKeySource::new(source.clone(), settings(), clock.clone());
    (cache, clock)
}

fn kids(cached: &CachedKeys) -> Vec<String> {
    cached
        .keys
        .keys()
        .iter()
        .filter_map(|k| k.kid.clone())
        .collect()
}

#[tokio::test]
async fn first_use_fetches_then_serves_from_cache_until_stale() {
    let a = TestKey::es256("a");
    let source = FakeSource::new(&[&a], None);
    let (cache, clock) = setup(&source);
    assert_eq!(cache.load_count(), 0);
    let first = cache.keys().await.unwrap();
    assert_eq!(cache.load_count(), 1);
    assert_eq!(first.fetched_at, epoch_plus(T0));
    assert_eq!(first.fresh_until, epoch_plus(T0 + 3600));
    clock.advance(Duration::from_secs(3599));
    cache.keys().await.unwrap();
    assert_eq!(cache.load_count(), 1);
    clock.advance(Duration::from_secs(1));
    let b = TestKey::es256("b");
    source.serve(&[&b], None);
    let refreshed = cache.keys().await.unwrap();
    assert_eq!(cache.load_count(), 2);
    assert_eq!(kids(&refreshed), ["b"]);
}

fn epoch_plus(secs: u64) -> SystemTime {
    std::time::UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn cache_control_ttl_is_bounded() {
    let s = settings();
    let ttl = |age| CachingKeySource::ttl_for(&s, age);
    assert_eq!(ttl(None), Duration::from_secs(3600));
    assert_eq!(
        ttl(Some(Duration::from_secs(300))),
        Duration::from_secs(300)
    );
    assert_eq!(ttl(Some(Duration::from_secs(5))), Duration::from_secs(60));
    assert_eq!(ttl(Some(Duration::ZERO)), Duration::from_secs(60));
    assert_eq!(
        ttl(Some(Duration::from_secs(10_000_000))),
        Duration::from_secs(86_400)
    );
    // Misconfigured bounds do not panic.
    let odd = FetchSettings {
        min_ttl: Duration::from_secs(100),
        max_ttl: Duration::from_secs(10),
        ..settings()
    };
    assert_eq!(
        CachingKeySource::ttl_for(&odd, Some(Duration::from_secs(50))),
        Duration::from_secs(10)
    );
}

#[tokio::test]
async fn max_age_sets_freshness() {
    let a = TestKey::es256("a");
    let source = FakeSource::new(&[&a], Some(Duration::from_secs(120)));
    let (cache, clock) = setup(&source);
    cache.keys().await.unwrap();
    clock.advance(Duration::from_secs(119));
    cache.keys().await.unwrap();
    assert_eq!(cache.load_count(), 1);
    clock.advance(Duration::from_secs(1));
    cache.keys().await.unwrap();
    assert_eq!(cache.load_count(), 2);
}

#[tokio::test]
async fn stale_keys_serve_within_max_stale_then_fail() {
    let a = TestKey::es256("a");
    let source = FakeSource::new(&[&a], None);
    let (cache, clock) = setup(&source);
    cache.keys().await.unwrap();
    source.fail();

    // Stale, refetch fails: the stale set serves.
    clock.advance(Duration::from_secs(3600));
    assert_eq!(kids(&cache.keys().await.unwrap()), ["a"]);
    assert_eq!(cache.load_count(), 2);
    // Within the retry backoff no new fetch is made.
    clock.advance(Duration::from_secs(10));
    assert_eq!(kids(&cache.keys().await.unwrap()), ["a"]);
    assert_eq!(cache.load_count(), 2);
    // After the backoff it tries again, still serving stale on failure.
    clock.advance(Duration::from_secs(30));
    assert!(cache.keys().await.is_ok());
    assert_eq!(cache.load_count(), 3);

    // Exactly at fresh_until + max_stale: still served.
    clock.set(epoch_plus(T0 + 3600 + 7200));
    assert!(cache.keys().await.is_ok());
    // One second later: refused.
    clock.advance(Duration::from_secs(1));
    assert!(matches!(
        cache.keys().await,
        Err(CacheError::Unavailable(m)) if m.contains("503")
    ));
    // Past max_stale every request tries again (no stale set to fall back on).
    let loads = cache.load_count();
    assert!(cache.keys().await.is_err());
    assert_eq!(cache.load_count(), loads + 1);

    // The issuer recovers.
    source.serve(&[&a], None);
    assert!(cache.keys().await.is_ok());
}

#[tokio::test]
async fn first_load_failure_is_unavailable() {
    let source = FakeSource::new(&[&TestKey::es256("a")], None);
    source.fail();
    let (cache, _clock) = setup(&source);
    assert!(matches!(
        cache.keys().await,
        Err(CacheError::Unavailable(_))
    ));
    assert!(matches!(
        cache.keys().await,
        Err(CacheError::Unavailable(_))
    ));
    assert_eq!(cache.load_count(), 2);
}

#[tokio::test]
async fn unknown_kid_refresh_is_rate_limited() {
    let a = TestKey::es256("a");
    let b = TestKey::es256("b");
    let source = FakeSource::new(&[&a], None);
    let (cache, clock) = setup(&source);
    let first = cache.keys().await.unwrap();

    source.serve(&[&a, &b], None);
    let refreshed = cache
        .refresh_for_unknown_kid(first.generation)
        .await
        .unwrap();
    assert_eq!(kids(&refreshed), ["a", "b"]);
    assert_eq!(cache.load_count(), 2);

    // Another unknown kid within the interval: no fetch.
    clock.advance(Duration::from_secs(29));
    assert_eq!(
        cache
            .refresh_for_unknown_kid(refreshed.generation)
            .await
            .unwrap_err(),
        CacheError::RefreshRateLimited
    );
    assert_eq!(cache.load_count(), 2);

    // A caller still holding the older generation gets the newer set without a fetch.
    let newer = cache
        .refresh_for_unknown_kid(first.generation)
        .await
        .unwrap();
    assert_eq!(newer.generation, refreshed.generation);
    assert_eq!(cache.load_count(), 2);

    // Once the interval has passed, a refresh happens again.
    clock.advance(Duration::from_secs(1));
    assert!(
        cache
            .refresh_for_unknown_kid(refreshed.generation)
            .await
            .is_ok()
    );
    assert_eq!(cache.load_count(), 3);
}

#[tokio::test]
async fn failed_kid_refresh_is_unavailable_and_still_counts_for_the_limit() {
    let a = TestKey::es256("a");
    let source = FakeSource::new(&[&a], None);
    let (cache, _clock) = setup(&source);
    let first = cache.keys().await.unwrap();
    source.fail();
    assert!(matches!(
        cache.refresh_for_unknown_kid(first.generation).await,
        Err(CacheError::Unavailable(_))
    ));
    assert_eq!(
        cache
            .refresh_for_unknown_kid(first.generation)
            .await
            .unwrap_err(),
        CacheError::RefreshRateLimited
    );
    assert_eq!(cache.load_count(), 2);
    // The old set still serves.
    assert_eq!(kids(&cache.keys().await.unwrap()), ["a"]);
}

#[tokio::test(flavor = "current_thread")]
async fn concurrent_unknown_kid_refreshes_share_one_fetch() {
    let a = TestKey::es256("a");
    let b = TestKey::es256("b");
    let source = FakeSource::new(&[&a], None);
    let (cache, _clock) = setup(&source);
    let seen = cache.keys().await.unwrap().generation;
    source.serve(&[&a, &b], None);
    source.gated.store(true, Ordering::SeqCst);

    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.refresh_for_unknown_kid(seen).await })
        })
        .collect();
    // Let every task run up to its await point while the one load is held at the gate.
    while source.started.load(Ordering::SeqCst) < 2 {
        tokio::task::yield_now().await;
    }
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    source.gate.add_permits(100);
    for task in tasks {
        let refreshed = task.await.unwrap().unwrap();
        assert_eq!(kids(&refreshed), ["a", "b"]);
    }
    assert_eq!(cache.load_count(), 2);
    assert_eq!(source.started.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn concurrent_first_use_shares_one_fetch() {
    let a = TestKey::es256("a");
    let source = FakeSource::new(&[&a], None);
    source.gated.store(true, Ordering::SeqCst);
    let (cache, _clock) = setup(&source);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.keys().await })
        })
        .collect();
    while source.started.load(Ordering::SeqCst) < 1 {
        tokio::task::yield_now().await;
    }
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    source.gate.add_permits(100);
    for task in tasks {
        assert!(task.await.unwrap().is_ok());
    }
    assert_eq!(source.started.load(Ordering::SeqCst), 1);
}

// === refresh ahead, stale error, metrics (issue #3) ===

#[test]
fn refresh_is_due_after_three_quarters_of_freshness() {
    let at = epoch_plus(T0);
    let until = epoch_plus(T0 + 400);
    assert!(!refresh_due(at, until, at));
    assert!(!refresh_due(at, until, epoch_plus(T0 + 299)));
    assert!(refresh_due(at, until, epoch_plus(T0 + 300)));
    assert!(refresh_due(at, until, epoch_plus(T0 + 399)));
    // Stale is always due.
    assert!(refresh_due(at, until, epoch_plus(T0 + 10_000)));
    // A clock set before the fetch, or an empty window, never panics.
    assert!(!refresh_due(at, until, epoch_plus(T0 - 5)));
    assert!(refresh_due(at, at, at));
    assert!(refresh_due(until, at, until));
}

#[test]
fn default_freshness_bounds_are_five_minutes_to_a_day() {
    let s = FetchSettings::default();
    let ttl = |age| CachingKeySource::ttl_for(&s, Some(Duration::from_secs(age)));
    assert_eq!(ttl(0), Duration::from_secs(300));
    assert_eq!(ttl(60), Duration::from_secs(300));
    assert_eq!(ttl(900), Duration::from_secs(900));
    assert_eq!(ttl(7 * 86_400), Duration::from_secs(86_400));
    assert_eq!(s.max_stale, Duration::from_secs(86_400));
    assert_eq!(s.min_refresh_interval, Duration::from_secs(30));
}

async fn settle(source: &FakeSource, loads: usize) {
    for _ in 0..1000 {
        if source.started.load(Ordering::SeqCst) >= loads {
            break;
        }
        tokio::task::yield_now().await;
    }
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn keys_are_refreshed_in_the_background_before_they_go_stale() {
    let a = TestKey::es256("a");
    let b = TestKey::es256("b");
    let source = FakeSource::new(&[&a], None);
    let (cache, clock) = setup(&source);
    cache.keys().await.unwrap();
    source.serve(&[&a, &b], None);

    // Before three quarters of the hour: nothing happens.
    clock.advance(Duration::from_secs(2699));
    assert_eq!(kids(&cache.keys().await.unwrap()), ["a"]);
    settle(&source, 2).await;
    assert_eq!(cache.load_count(), 1);

    // From then on the current set is served at once and one refresh runs behind it.
    clock.advance(Duration::from_secs(1));
    let served = cache.keys().await.unwrap();
    assert_eq!(kids(&served), ["a"]);
    for _ in 0..10 {
        cache.keys().await.unwrap();
    }
    settle(&source, 2).await;
    assert_eq!(cache.load_count(), 2);
    let refreshed = cache.keys().await.unwrap();
    assert_eq!(kids(&refreshed), ["a", "b"]);
    assert_eq!(refreshed.fetched_at, epoch_plus(T0 + 2700));
}

#[tokio::test(flavor = "current_thread")]
async fn failed_background_refresh_keeps_the_fresh_set_and_backs_off() {
    let a = TestKey::es256("a");
    let source = FakeSource::new(&[&a], None);
    let (cache, clock) = setup(&source);
    cache.keys().await.unwrap();
    source.fail();
    clock.advance(Duration::from_secs(2700));
    assert_eq!(kids(&cache.keys().await.unwrap()), ["a"]);
    settle(&source, 2).await;
    assert_eq!(cache.load_count(), 2);
    // Within the backoff no new background refresh starts.
    clock.advance(Duration::from_secs(10));
    cache.keys().await.unwrap();
    settle(&source, 3).await;
    assert_eq!(cache.load_count(), 2);
    clock.advance(Duration::from_secs(20));
    cache.keys().await.unwrap();
    settle(&source, 3).await;
    assert_eq!(cache.load_count(), 3);
}

#[tokio::test]
async fn past_the_stale_window_the_error_says_so() {
    let a = TestKey::es256("a");
    let source = FakeSource::new(&[&a], None);
    let (cache, clock) = setup(&source);
    cache.keys().await.unwrap();
    source.fail();
    clock.advance(Duration::from_secs(3600 + 7200 + 1));
    let Err(CacheError::Unavailable(message)) = cache.keys().await else {
        panic!("expected Unavailable");
    };
    assert!(message.contains("fetched 3h 1s ago"), "{message}");
    assert!(message.contains("2h stale window"), "{message}");
    assert!(message.contains("503"), "{message}");
}

#[tokio::test]
async fn loads_and_stale_serving_are_recorded_per_issuer() {
    let a = TestKey::es256("a");
    let b = TestKey::es256("b");
    let source = FakeSource::new(&[&a, &b], None);
    let clock = Arc::new(ManualClock::at_unix(T0));
    let metrics = IssuerMetrics::unregistered();
    let cache = CachingKeySource::observed(
        source.clone(),
        settings(),
        clock.clone(),
        "gh".into(),
        metrics.clone(),
    );
    cache.keys().await.unwrap();
    let label =
        |v: &prometheus::IntCounterVec, outcome: &str| v.with_label_values(&["gh", outcome]).get();
    assert_eq!(label(&metrics.fetches, "ok"), 1);
    assert_eq!(metrics.keys_in_use.with_label_values(&["gh"]).get(), 2);
    assert_eq!(
        metrics.last_success.with_label_values(&["gh"]).get(),
        T0 as i64
    );
    source.fail();
    clock.advance(Duration::from_secs(3600));
    cache.keys().await.unwrap();
    assert_eq!(label(&metrics.fetches, "http_status"), 1);
    assert_eq!(metrics.stale.with_label_values(&["gh"]).get(), 1);
    assert_eq!(metrics.stale_served.with_label_values(&["gh"]).get(), 1);
    source.serve(&[&a], None);
    clock.advance(Duration::from_secs(60));
    cache.keys().await.unwrap();
    assert_eq!(metrics.stale.with_label_values(&["gh"]).get(), 0);
    assert_eq!(metrics.keys_in_use.with_label_values(&["gh"]).get(), 1);
}

#[test]
fn prewarm_needs_a_runtime() {
    let source = FakeSource::new(&[&TestKey::es256("a")], None);
    let (cache, _clock) = setup(&source);
    assert!(!cache.prewarm());
    assert_eq!(source.started.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn prewarm_loads_once_in_the_background() {
    let source = FakeSource::new(&[&TestKey::es256("a")], None);
    let (cache, _clock) = setup(&source);
    assert!(cache.prewarm());
    assert!(!cache.prewarm());
    settle(&source, 1).await;
    assert_eq!(cache.load_count(), 1);
    // The first lookup finds the keys already loaded.
    assert_eq!(kids(&cache.keys().await.unwrap()), ["a"]);
    assert_eq!(cache.load_count(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn prewarm_failure_is_not_fatal() {
    let source = FakeSource::new(&[&TestKey::es256("a")], None);
    source.fail();
    let (cache, _clock) = setup(&source);
    assert!(cache.prewarm());
    settle(&source, 1).await;
    source.serve(&[&TestKey::es256("a")], None);
    assert_eq!(kids(&cache.keys().await.unwrap()), ["a"]);
}
