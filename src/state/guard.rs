//! The shared-state checks of the token endpoint: rate limits and one-time-use replay
//! protection, with the failure policy of docs/deployment.md applied here, in one place:
//!
//! - a rate limit over its count is refused ([`GuardRefusal::RateLimited`], answered 429
//!   `slow_down` with `Retry-After`); a store failure lets the request through (fail open),
//!   counted in `trustbridge_rate_limit_fail_open_total` and logged;
//! - a one-time-use token seen before is refused as a replay ([`GuardRefusal::Replayed`], a
//!   denial); a store failure refuses the request ([`GuardRefusal::Unavailable`], fail closed).
//!
//! The guard takes only what it uses (the store, its metrics, the backend label) and answers
//! in domain words; the HTTP layer turns a [`GuardRefusal`] into a response. The replay check
//! runs last, just before signing, so a request refused for any other reason never consumes
//! the token.

use std::time::SystemTime;

use crate::refusal::{Context, OAuthError, Refusal, Refuse, StatusClass};
use crate::state::{RateDecision, RateLimit, SharedState, StateError, StateMetrics};

/// Rate-limit scope label of per-identity limits.
pub const SCOPE_IDENTITY: &str = "identity";
/// Rate-limit scope label of per-issuer limits.
pub const SCOPE_ISSUER: &str = "issuer";

/// Why the guard refused a request.
#[derive(Debug)]
pub enum GuardRefusal {
    /// A rate limit is exceeded.
    RateLimited {
        /// [`SCOPE_IDENTITY`] or [`SCOPE_ISSUER`].
        scope: &'static str,
        /// Seconds until the window resets.
        retry_after: u64,
    },
    /// A one-time-use subject token was already exchanged.
    Replayed,
    /// One-time-use could not be checked: the store is unreachable (fail closed).
    Unavailable(StateError),
}

impl Refuse for GuardRefusal {
    /// A rate limit is the only 429; a replay is a denial of the token; an unreachable store
    /// is the gateway's failure (503).
    fn refusal(&self, ctx: Context) -> Refusal {
        match self {
            Self::RateLimited { scope, retry_after } => Refusal::new(
                OAuthError::SlowDown,
                StatusClass::TooManyRequests,
                None,
                "rate_limited",
                format!(
                    "too many token requests for this {scope}; retry after {retry_after} seconds"
                ),
            )
            .with_retry_after(*retry_after),
            Self::Replayed => Refusal::token_rejected(
                ctx,
                crate::refusal::CODE_REPLAYED,
                "replayed",
                format!(
                    "the {} was already exchanged: its credential or issuer is oneTimeUse, so each token is accepted once; request a fresh token",
                    ctx.token.noun()
                ),
            ),
            Self::Unavailable(_) => Refusal::unavailable(
                "state_unavailable",
                "one-time-use tokens cannot be checked right now (the replay store is unreachable); retry later",
            )
            .as_fault(),
        }
    }
}

/// Rate limits and replay protection over the shared state, counting into its metrics.
#[derive(Debug, Clone)]
pub struct Guard {
    state: SharedState,
    metrics: StateMetrics,
}

impl Guard {
    /// A guard over `state`, counting into `metrics`.
    pub fn new(state: SharedState, metrics: StateMetrics) -> Self {
        Self { state, metrics }
    }

    /// The store's name for logs (`redis` or `memory`).
    pub fn backend(&self) -> &'static str {
        self.state.backend
    }

    /// Counts one request into `bucket` of `scope` when a limit is configured.
    ///
    /// # Errors
    /// [`GuardRefusal::RateLimited`] when over the limit. A store failure is not an error.
    pub async fn rate_limit(
        &self,
        scope: &'static str,
        bucket: &str,
        limit: Option<RateLimit>,
        now: SystemTime,
    ) -> Result<(), GuardRefusal> {
        let Some(limit) = limit else { return Ok(()) };
        let bucket = format!("{scope}:{bucket}");
        match self.state.limiter.hit(&bucket, limit, now).await {
            Ok(RateDecision::Allowed) => Ok(()),
            Ok(RateDecision::Limited { retry_after }) => {
                self.metrics.limited.with_label_values(&[scope]).inc();
                Err(GuardRefusal::RateLimited { scope, retry_after })
            }
            Err(e) => {
                self.metrics.errors.with_label_values(&["rate_limit"]).inc();
                self.metrics.fail_open.with_label_values(&[scope]).inc();
                tracing::warn!(
                    rate_limit.scope = scope,
                    state.backend = self.state.backend,
                    error = %e,
                    "rate limit not enforced: shared state unavailable (failing open)"
                );
                Ok(())
            }
        }
    }

    /// Records the token under `key` (see [`crate::state::replay_key`]) as used until `until`
    /// (unix seconds: its `exp` plus the issuer's leeway, the last moment validation would
    /// accept it).
    ///
    /// # Errors
    /// [`GuardRefusal::Replayed`] when it was used before; [`GuardRefusal::Unavailable`] when
    /// the store cannot answer (fail closed).
    pub async fn one_time_use(
        &self,
        key: &str,
        until: u64,
        now: SystemTime,
    ) -> Result<(), GuardRefusal> {
        match self.state.replay.first_use(key, until, now).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                self.metrics.replays.inc();
                Err(GuardRefusal::Replayed)
            }
            Err(e) => {
                self.metrics.errors.with_label_values(&["replay"]).inc();
                tracing::error!(
                    state.backend = self.state.backend,
                    error = %e,
                    "one-time-use check impossible: shared state unavailable (failing closed)"
                );
                Err(GuardRefusal::Unavailable(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refusal::{CODE_REPLAYED, TokenRole};

    #[test]
    fn only_rate_limits_answer_429_with_their_retry_after() {
        let r = GuardRefusal::RateLimited {
            scope: SCOPE_IDENTITY,
            retry_after: 42,
        }
        .refusal(Context::default());
        assert_eq!(
            (r.error, r.status, r.code),
            (OAuthError::SlowDown, StatusClass::TooManyRequests, None)
        );
        assert_eq!(r.retry_after, Some(42));
        assert_eq!(r.reason, "rate_limited");
    }

    #[test]
    fn replays_are_denials_and_an_unreachable_store_is_503() {
        let cc = Context {
            token: TokenRole::ClientAssertion,
            ..Context::default()
        };
        let r = GuardRefusal::Replayed.refusal(cc);
        assert_eq!(
            (r.error, r.status, r.code),
            (
                OAuthError::InvalidClient,
                StatusClass::Unauthorized,
                Some(CODE_REPLAYED)
            )
        );
        assert!(
            r.description
                .contains("client assertion was already exchanged")
        );
        let r = GuardRefusal::Replayed.refusal(Context::default());
        assert_eq!(r.error, OAuthError::InvalidGrant);
        assert!(r.description.contains("subject token"));

        let down = GuardRefusal::Unavailable(StateError::Unavailable("x".into()))
            .refusal(Context::default());
        assert_eq!(
            (down.error, down.status, down.code),
            (
                OAuthError::TemporarilyUnavailable,
                StatusClass::Unavailable,
                None
            )
        );
        assert!(down.retry_after.is_some());
        assert!(down.fault);
    }
}
