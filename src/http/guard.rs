//! The shared-state checks of the token endpoint: rate limits and one-time-use replay
//! protection, with the failure policy of docs/deployment.md applied here, in one place:
//!
//! - a rate limit over its count answers 429 `slow_down` with `Retry-After`; a store failure
//!   lets the request through (fail open), counted in
//!   `trustbridge_rate_limit_fail_open_total` and logged;
//! - a one-time-use token seen before is refused as a replay (a denial: 400/401); a store
//!   failure refuses the request with 503 `temporarily_unavailable` (fail closed).
//!
//! The replay check runs last, just before signing, so a request refused for any other reason
//! never consumes the token.

use std::time::SystemTime;

use crate::app::Gateway;
use crate::http::error::ErrorKind;
use crate::issuers::ValidatedToken;
use crate::state::{RateDecision, RateLimit, replay_key};

/// Rate-limit scope label of per-identity limits.
pub const SCOPE_IDENTITY: &str = "identity";
/// Rate-limit scope label of per-issuer limits.
pub const SCOPE_ISSUER: &str = "issuer";

/// Counts one request into `bucket` of `scope` when a limit is configured.
///
/// # Errors
/// [`ErrorKind::RateLimited`] when over the limit. A store failure is not an error.
pub async fn rate_limit(
    gw: &Gateway,
    scope: &'static str,
    bucket: &str,
    limit: Option<RateLimit>,
    now: SystemTime,
) -> Result<(), ErrorKind> {
    let Some(limit) = limit else { return Ok(()) };
    let bucket = format!("{scope}:{bucket}");
    match gw.state.limiter.hit(&bucket, limit, now).await {
        Ok(RateDecision::Allowed) => Ok(()),
        Ok(RateDecision::Limited { retry_after }) => {
            gw.state_metrics.limited.with_label_values(&[scope]).inc();
            Err(ErrorKind::RateLimited { scope, retry_after })
        }
        Err(e) => {
            gw.state_metrics
                .errors
                .with_label_values(&["rate_limit"])
                .inc();
            gw.state_metrics.fail_open.with_label_values(&[scope]).inc();
            tracing::warn!(
                rate_limit.scope = scope,
                state.backend = gw.state.backend,
                error = %e,
                "rate limit not enforced: shared state unavailable (failing open)"
            );
            Ok(())
        }
    }
}

/// Records the subject token as used, keyed by its `jti` (or its hash without one) until its
/// `exp` plus the issuer's leeway, the last moment validation would accept it.
///
/// # Errors
/// [`ErrorKind::Replayed`] when it was used before; [`ErrorKind::StateUnavailable`] when the
/// store cannot answer (fail closed).
pub async fn one_time_use(
    gw: &Gateway,
    token: &ValidatedToken,
    raw: &str,
    leeway_s: u64,
    now: SystemTime,
) -> Result<(), ErrorKind> {
    let key = replay_key(&token.issuer_name, token.jti.as_deref(), raw);
    let until = token.exp.saturating_add(leeway_s);
    match gw.state.replay.first_use(&key, until, now).await {
        Ok(true) => Ok(()),
        Ok(false) => {
            gw.state_metrics.replays.inc();
            Err(ErrorKind::Replayed)
        }
        Err(e) => {
            gw.state_metrics.errors.with_label_values(&["replay"]).inc();
            tracing::error!(
                state.backend = gw.state.backend,
                error = %e,
                "one-time-use check impossible: shared state unavailable (failing closed)"
            );
            Err(ErrorKind::StateUnavailable(e))
        }
    }
}
