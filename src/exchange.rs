//! The exchange decision: given a validated subject token, a parsed request and the policy set,
//! which identity does the token act as, with which roles on which resource, for how long?
//!
//! Everything here is a plain function of values ([`decide`]): no HTTP types, no network, no
//! clock reads, no file system. The HTTP layer parses the request ([`request`]), validates the
//! token (`issuers`), calls [`decide`], and signs the [`Grant`] (`tokens`).

pub mod audit;
pub mod decide;
pub mod denial;
pub mod explain;
pub mod grant;
pub mod refusal;
pub mod request;
#[cfg(test)]
pub(crate) mod testkit;

pub use decide::{Limits, Situation, decide};
pub use denial::{Denial, MismatchStage};
pub use grant::{Grant, IdentityKind};
pub use request::{
    ExchangeRequest, GrantType, RequestContext, RequestError, RequestedRoles, Target,
};
