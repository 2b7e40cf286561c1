//! Redis-backed shared state, so replicas agree: a one-time-use token is accepted once in
//! total, and rate limits count every replica's requests.
//!
//! Client: the `redis` crate's [`ConnectionManager`], one multiplexed connection per process
//! (pipelining many concurrent commands over one socket, which suits tiny SET/INCR commands
//! better than a pool of idle connections) that reconnects by itself after Redis restarts. It
//! is created lazily on first use so the gateway starts, and answers per the failure policy,
//! while Redis is down. Every command carries a response timeout and an overall deadline, so a
//! slow or dead Redis costs a request at most [`OP_DEADLINE`].
//!
//! Connections may use TLS (`rediss://`, a private CA, mutual TLS) and ACL authentication:
//! see [`connect`], which builds the client and tells a misconfiguration (TLS verification,
//! authentication) from an outage.
//!
//! Keys (all under the configured prefix, default `trustbridge:`):
//! - `replay:<sha256>`: `SET NX EX` until the subject token's `exp` (+ leeway);
//! - `rl:<bucket>:<window index>`: `INCR` + `EXPIRE` (window length + 1 s), one per window;
//! - `inv:*`: the identity inventory (see [`super::inventory`]).

pub mod connect;

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use futures_util::future::{BoxFuture, FutureExt};

use crate::clock::unix_seconds;
use crate::state::{
    RateDecision, RateLimit, RateLimiter, ReplayGuard, StateError, verdict, window_of,
};
pub use connect::{RedisOptions, RedisSetupError};

/// Time to establish a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Time for one command's answer.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// Overall deadline of one operation, reconnecting included.
pub const OP_DEADLINE: Duration = Duration::from_secs(1);

/// Redis state for one gateway process.
pub struct RedisState {
    client: ::redis::Client,
    manager: Mutex<Option<ConnectionManager>>,
    prefix: String,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never print it.
        f.debug_struct("RedisState")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisState {
    /// A client for `url` (`redis://[user:password@]host:port[/db]`) with keys under `prefix`.
    ///
    /// # Errors
    /// [`StateError::Unavailable`] when the URL is not usable (the message omits the URL).
    pub fn new(url: &str, prefix: &str) -> Result<Self, StateError> {
        Self::with_options(&RedisOptions::url(url), prefix)
            .map_err(|e| StateError::Unavailable(e.to_string()))
    }

    /// A client for `options` (URL, TLS files, password file; see [`connect::client`]) with
    /// keys under `prefix`. Reads the files now; connects on first use.
    ///
    /// # Errors
    /// [`RedisSetupError`] naming the setting at fault.
    pub fn with_options(options: &RedisOptions, prefix: &str) -> Result<Self, RedisSetupError> {
        Ok(Self {
            client: connect::client(options)?,
            manager: Mutex::new(None),
            prefix: prefix.to_owned(),
        })
    }

    /// Connects once and sends `PING` (see [`connect::probe`]).
    ///
    /// # Errors
    /// The failure met, classified.
    pub async fn probe(&self) -> Result<(), connect::Failure> {
        connect::probe(&self.client).await
    }

    /// The prefix of every key.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The connection manager, created on first use in the caller's runtime.
    fn connection(&self) -> Result<ConnectionManager, StateError> {
        let mut slot = self.manager.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(manager) = slot.as_ref() {
            return Ok(manager.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            // Fail fast and let the next request try again: a request must not wait out a
            // long reconnect backoff while Redis is down.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let manager = ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            .map_err(|e| unavailable(&e))?;
        *slot = Some(manager.clone());
        Ok(manager)
    }

    /// Runs `op` within [`OP_DEADLINE`]. A connection found dropped (Redis restarted since the
    /// last command) is retried once on the connection the manager re-establishes, so the
    /// first request after a Redis restart succeeds instead of paying for the discovery.
    /// (Should the dropped attempt have reached Redis, a retried `SET NX` refuses a first use:
    /// the safe side for replay protection.)
    pub(crate) async fn run<T: ::redis::FromRedisValue>(
        &self,
        op: impl Fn(ConnectionManager) -> BoxFuture<'static, ::redis::RedisResult<T>>,
    ) -> Result<T, StateError> {
        let manager = self.connection()?;
        let attempt = async {
            match op(manager.clone()).await {
                Err(e) if e.is_connection_dropped() || e.is_io_error() => op(manager).await,
                other => other,
            }
        };
        match tokio::time::timeout(OP_DEADLINE, attempt).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(unavailable(&e)),
            Err(_) => Err(StateError::Unavailable("timed out".into())),
        }
    }
}

fn unavailable(e: &::redis::RedisError) -> StateError {
    // Classified: the detail of a Redis error may echo a URL.
    StateError::Unavailable(connect::classify(e).what)
}

impl ReplayGuard for RedisState {
    fn first_use<'a>(
        &'a self,
        key: &'a str,
        until: u64,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<bool, StateError>> {
        let ttl = until.saturating_sub(unix_seconds(now)).max(1);
        let key = format!("{}replay:{key}", self.prefix);
        async move {
            let set: Option<String> = self
                .run(|mut conn| {
                    let key = key.clone();
                    async move {
                        ::redis::cmd("SET")
                            .arg(&key)
                            .arg(1)
                            .arg("NX")
                            .arg("EX")
                            .arg(ttl)
                            .query_async(&mut conn)
                            .await
                    }
                    .boxed()
                })
                .await?;
            Ok(set.is_some())
        }
        .boxed()
    }
}

impl RateLimiter for RedisState {
    fn hit<'a>(
        &'a self,
        bucket: &'a str,
        limit: RateLimit,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<RateDecision, StateError>> {
        let (index, _) = window_of(now, limit.window);
        let key = format!("{}rl:{bucket}:{index}", self.prefix);
        let ttl = limit.window.as_secs() + 1;
        async move {
            let (count,): (u64,) = self
                .run(|mut conn| {
                    let key = key.clone();
                    async move {
                        ::redis::pipe()
                            .atomic()
                            .incr(&key, 1u64)
                            .expire(&key, i64::try_from(ttl).unwrap_or(i64::MAX))
                            .ignore()
                            .query_async(&mut conn)
                            .await
                    }
                    .boxed()
                })
                .await?;
            Ok(verdict(count, limit, now))
        }
        .boxed()
    }
}
