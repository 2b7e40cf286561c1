//! The token endpoint's DPoP shell (RFC 9449): reads the request's `DPoP` header (at most one),
//! has [`crate::dpop::verify`] check the proof against this endpoint and the gateway clock,
//! and remembers the proof's `jti` in the shared replay store. What a proof must be is decided
//! in [`crate::dpop`]; this module only does the I/O around it and never logs a proof.

use std::time::SystemTime;

use actix_web::HttpRequest;

use crate::dpop::{self, Expected, Proof, ProofError};
use crate::gateway::Gateway;
use crate::http::error::ApiError;
use crate::refusal::Refuse;
use crate::state::GuardRefusal;

/// The verified proof of `req` to the token endpoint of `tenant` at `now`; `None` without a
/// `DPoP` header (a bearer request).
///
/// # Errors
/// [`ProofError::Multiple`] for more than one header, [`ProofError::Unreadable`] for one that
/// is not visible ASCII, and every refusal of [`dpop::verify`].
pub fn proof(
    req: &HttpRequest,
    gw: &Gateway,
    tenant: &str,
    now: SystemTime,
) -> Result<Option<Proof>, ProofError> {
    let mut values = req.headers().get_all(dpop::HEADER);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ProofError::Multiple);
    }
    let text = value.to_str().map_err(|_| ProofError::Unreadable)?;
    let htu = gw.settings().token_endpoint(tenant);
    let expected = Expected {
        htm: req.method().as_str(),
        htu: &htu,
        now,
        window: gw.settings().dpop_proof_window,
    };
    dpop::verify(text.trim(), &expected).map(Some)
}

/// Records `proof`'s `jti` (under its key's thumbprint) as used until its `iat` leaves the
/// window, across replicas. Called last before signing, as one-time use is, so a request
/// refused for another reason spends no store write.
///
/// # Errors
/// [`ProofError::Replayed`] when it was used before; the guard's fail-closed refusal when the
/// store cannot answer. Each made into a response by `refuse`.
pub async fn remember(
    gw: &Gateway,
    proof: &Proof,
    now: SystemTime,
    refuse: impl Fn(&dyn Refuse) -> ApiError,
) -> Result<(), ApiError> {
    let until = proof.remember_until(gw.settings().dpop_proof_window);
    match gw
        .guard()
        .one_time_use(&proof.replay_key(), until, now)
        .await
    {
        Ok(()) => Ok(()),
        Err(GuardRefusal::Replayed) => Err(refuse(&ProofError::Replayed)),
        Err(other) => Err(refuse(&other)),
    }
}
