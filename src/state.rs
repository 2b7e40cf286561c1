//! State shared between replicas: replay protection for one-time-use subject tokens, rate
//! limits and the identity inventory. Behind traits ([`ReplayGuard`], [`RateLimiter`],
//! [`inventory::InventoryStore`]) with a Redis implementation
//! (`--redis-url`: every replica sees the same state) and an in-memory one (one process).
//!
//! Failure policy, decided by [`guard`] and documented in
//! docs/deployment.md: when the store is unreachable, one-time-use exchanges fail closed
//! (`temporarily_unavailable`), rate limits fail open (counted and logged). This module only
//! reports [`StateError::Unavailable`]; it never decides to allow.
//!
//! Time comes in as `now` (the injected clock), so rate windows and replay lifetimes follow
//! the same clock as token validation, in tests too.

pub mod guard;
pub mod inventory;
pub mod memory;
pub mod redis;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};

use crate::clock::unix_seconds;

pub use guard::{Guard, GuardRefusal};

/// The shared store could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Unreachable, timed out, or refused the command. The text names the cause, never a key.
    #[error("shared state unavailable: {0}")]
    Unavailable(String),
}

/// A rate: at most `limit` requests per `window` (a fixed window aligned to the epoch, so every
/// replica counts into the same bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window (at least 1).
    pub limit: u64,
    /// Window length (at least 1 s).
    pub window: Duration,
}

impl RateLimit {
    /// Parses `N/s`, `N/m`, `N/h` or `N/<duration>` (`600/m`, `50/10s`).
    ///
    /// # Errors
    /// A message naming the expected shape.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("'{text}' is not a rate like 600/m, 10/s, 5000/h or 50/10s");
        let (n, per) = text.trim().split_once('/').ok_or_else(bad)?;
        let limit: u64 = n.trim().parse().map_err(|_| bad())?;
        let window = match per.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            other => humantime::parse_duration(other).map_err(|_| bad())?,
        };
        if limit == 0 || window < Duration::from_secs(1) || window > Duration::from_secs(86_400) {
            return Err(format!(
                "'{text}' must allow at least 1 request per window of 1s to 24h"
            ));
        }
        Ok(Self { limit, window })
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.limit,
            humantime::format_duration(self.window)
        )
    }
}

/// A rate-limit verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Within the limit.
    Allowed,
    /// Over the limit until the window ends.
    Limited {
        /// Whole seconds until the window resets (at least 1).
        retry_after: u64,
    },
}

/// The fixed window holding `now`: its index (unix seconds / window) and when it ends.
pub fn window_of(now: SystemTime, window: Duration) -> (u64, u64) {
    let len = window.as_secs().max(1);
    let index = unix_seconds(now) / len;
    (index, (index + 1) * len)
}

/// The verdict for the `count`-th request of the window holding `now`.
pub fn verdict(count: u64, limit: RateLimit, now: SystemTime) -> RateDecision {
    if count <= limit.limit {
        return RateDecision::Allowed;
    }
    let (_, ends) = window_of(now, limit.window);
    RateDecision::Limited {
        retry_after: ends.saturating_sub(unix_seconds(now)).max(1),
    }
}

/// The replay key of a subject token: a SHA-256 over the issuer's name and the token's `jti`,
/// or, when it has no `jti`, over its JWS signing input (`header.payload`, what the signature
/// covers; see [`signing_input`]). Hashing bounds the key's size, keeps token text out of the
/// store, and scopes a `jti` to the issuer that minted it.
///
/// Never key on the signature: ECDSA accepts both (r, s) and (r, n - s), and other schemes may
/// have their own malleability, so one signed header and payload can be sent under several
/// signatures; all of them must count as one use.
pub fn replay_key(issuer_name: &str, jti: Option<&str>, token: &str) -> String {
    let mut hash = Sha256::new();
    match jti {
        Some(jti) => {
            hash.update(b"jti\0");
            hash.update(issuer_name.as_bytes());
            hash.update(b"\0");
            hash.update(jti.as_bytes());
        }
        None => {
            hash.update(b"jws\0");
            hash.update(signing_input(token).as_bytes());
        }
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The JWS signing input of a compact token: everything before its last `.` (`header.payload`).
/// A token without a `.` (never a validated one) is its own input.
pub fn signing_input(token: &str) -> &str {
    token.rsplit_once('.').map_or(token, |(input, _)| input)
}

/// Remembers which subject tokens were exchanged.
pub trait ReplayGuard: Send + Sync + fmt::Debug {
    /// Records `key` as used until `until` (unix seconds); `Ok(true)` when this is its first
    /// use, `Ok(false)` when it was already recorded. Atomic across every client of the store.
    ///
    /// # Errors
    /// [`StateError::Unavailable`] when the store cannot answer.
    fn first_use<'a>(
        &'a self,
        key: &'a str,
        until: u64,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<bool, StateError>>;
}

/// Counts requests per bucket in fixed windows.
pub trait RateLimiter: Send + Sync + fmt::Debug {
    /// Counts one request into `bucket` and returns the verdict for it.
    ///
    /// # Errors
    /// [`StateError::Unavailable`] when the store cannot answer.
    fn hit<'a>(
        &'a self,
        bucket: &'a str,
        limit: RateLimit,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<RateDecision, StateError>>;
}

/// The store in use: both services, and its name for logs.
#[derive(Debug, Clone)]
pub struct SharedState {
    /// Replay protection.
    pub replay: Arc<dyn ReplayGuard>,
    /// Rate limits.
    pub limiter: Arc<dyn RateLimiter>,
    /// The identity inventory.
    pub inventory: Arc<dyn inventory::InventoryStore>,
    /// `redis` or `memory`.
    pub backend: &'static str,
}

impl SharedState {
    /// In-process state (one replica).
    pub fn memory() -> Self {
        let store = Arc::new(memory::MemoryState::default());
        Self {
            replay: store.clone(),
            limiter: store,
            inventory: Arc::new(inventory::MemoryInventory::default()),
            backend: "memory",
        }
    }

    /// Redis at `url`, keys under `prefix`. Connects lazily: the gateway starts (and answers
    /// per the failure policy) while Redis is down.
    ///
    /// # Errors
    /// [`StateError::Unavailable`] when `url` is not a usable Redis URL.
    pub fn redis(url: &str, prefix: &str) -> Result<Self, StateError> {
        Self::redis_with(&redis::RedisOptions::url(url), prefix)
            .map_err(|e| StateError::Unavailable(e.to_string()))
    }

    /// Redis per `options` (URL, TLS and password files), keys under `prefix`. Reads the
    /// files now and connects lazily, like [`SharedState::redis`].
    ///
    /// # Errors
    /// [`redis::RedisSetupError`] naming the setting at fault.
    pub fn redis_with(
        options: &redis::RedisOptions,
        prefix: &str,
    ) -> Result<Self, redis::RedisSetupError> {
        let store = Arc::new(redis::RedisState::with_options(options, prefix)?);
        Ok(Self {
            replay: store.clone(),
            limiter: store.clone(),
            inventory: store,
            backend: "redis",
        })
    }
}

// === StateMetrics ===

/// Metrics of shared state, registered by [`StateMetrics::register`].
#[derive(Debug, Clone)]
pub struct StateMetrics {
    /// Store failures by operation (`replay`, `rate_limit`).
    pub errors: prometheus::IntCounterVec,
    /// Requests let through because the rate-limit store failed, by scope.
    pub fail_open: prometheus::IntCounterVec,
    /// Requests refused for exceeding a rate limit, by scope.
    pub limited: prometheus::IntCounterVec,
    /// One-time-use tokens refused as replays.
    pub replays: prometheus::IntCounter,
}

impl StateMetrics {
    /// Creates and registers the metrics in `registry`.
    ///
    /// # Errors
    /// When a metric of the same name is already registered there.
    pub fn register(registry: &prometheus::Registry) -> prometheus::Result<Self> {
        use crate::telemetry::names;
        let errors = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                names::STATE_ERRORS_TOTAL,
                "Shared state (Redis) failures, by operation.",
            ),
            &["operation"],
        )?;
        let fail_open = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                names::RATE_LIMIT_FAIL_OPEN_TOTAL,
                "Requests not rate limited because the shared state failed, by scope.",
            ),
            &["scope"],
        )?;
        let limited = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                names::RATE_LIMITED_TOTAL,
                "Requests refused with 429 by a rate limit, by scope.",
            ),
            &["scope"],
        )?;
        let replays = prometheus::IntCounter::new(
            names::REPLAYS_REFUSED_TOTAL,
            "One-time-use subject tokens refused because they were already exchanged.",
        )?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(fail_open.clone()))?;
        registry.register(Box::new(limited.clone()))?;
        registry.register(Box::new(replays.clone()))?;
        Ok(Self {
            errors,
            fail_open,
            limited,
            replays,
        })
    }
}

#[cfg(test)]
mod tests;
