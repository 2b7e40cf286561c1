//! The HTTP surface of DESIGN §4: routes, handlers, body extraction, and the one place where
//! domain errors become OAuth error responses ([`error`]).

pub mod client;
pub mod discovery;
pub mod dpop;
pub mod error;
pub mod extract;
pub mod health;
pub mod routes;
pub mod token;
