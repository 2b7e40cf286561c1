//! In-process state: correct for one replica only (each replica would remember its own
//! tokens and count its own requests). Bounded: expired entries are swept as the maps grow,
//! and a replay map that is still full after a sweep refuses new entries (fails closed).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use futures_util::future::{BoxFuture, FutureExt};

use crate::clock::unix_seconds;
use crate::state::{
    RateDecision, RateLimit, RateLimiter, ReplayGuard, StateError, verdict, window_of,
};

/// Most replay entries held at once (about 100 MB worst case); beyond it, fail closed.
const MAX_REPLAY_ENTRIES: usize = 1_000_000;
/// Most rate-limit buckets held at once; beyond it, fail open like an unreachable store.
const MAX_BUCKETS: usize = 100_000;

/// Replay entries and rate-limit counters of this process.
#[derive(Debug, Default)]
pub struct MemoryState {
    /// Replay key → used until (unix seconds).
    replay: Mutex<HashMap<String, u64>>,
    /// Bucket → (window index, count).
    buckets: Mutex<HashMap<String, (u64, u64)>>,
}

impl MemoryState {
    fn first_use_now(&self, key: &str, until: u64, now: SystemTime) -> Result<bool, StateError> {
        let now = unix_seconds(now);
        let mut map = self.replay.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&used_until) = map.get(key)
            && used_until >= now
        {
            return Ok(false);
        }
        if map.len() >= MAX_REPLAY_ENTRIES {
            map.retain(|_, until| *until >= now);
            if map.len() >= MAX_REPLAY_ENTRIES {
                return Err(StateError::Unavailable("replay memory full".into()));
            }
        }
        map.insert(key.to_owned(), until);
        Ok(true)
    }

    fn hit_now(
        &self,
        bucket: &str,
        limit: RateLimit,
        now: SystemTime,
    ) -> Result<RateDecision, StateError> {
        let (index, _) = window_of(now, limit.window);
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_BUCKETS && !map.contains_key(bucket) {
            // Buckets of past windows carry no information any more.
            map.retain(|_, (i, _)| *i >= index);
            if map.len() >= MAX_BUCKETS {
                return Err(StateError::Unavailable("rate-limit memory full".into()));
            }
        }
        let entry = map.entry(bucket.to_owned()).or_insert((index, 0));
        if entry.0 != index {
            *entry = (index, 0);
        }
        entry.1 += 1;
        Ok(verdict(entry.1, limit, now))
    }

    /// Number of replay entries held (tests).
    pub fn replay_entries(&self) -> usize {
        self.replay.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl ReplayGuard for MemoryState {
    fn first_use<'a>(
        &'a self,
        key: &'a str,
        until: u64,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<bool, StateError>> {
        let result = self.first_use_now(key, until, now);
        async move { result }.boxed()
    }
}

impl RateLimiter for MemoryState {
    fn hit<'a>(
        &'a self,
        bucket: &'a str,
        limit: RateLimit,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<RateDecision, StateError>> {
        let result = self.hit_now(bucket, limit, now);
        async move { result }.boxed()
    }
}
