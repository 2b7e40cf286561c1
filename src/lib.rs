//! trustbridge: a federated token exchange gateway.
//!
//! A workload presents the OIDC token its platform gave it (GitHub Actions, GitLab CI,
//! Kubernetes, GCP, AWS, Azure); trustbridge validates it against the issuer's keys and the
//! operators' federation policies and, when a policy allows, returns a short-lived RFC 9068
//! access token signed by trustbridge.
//!
//! Layout (dependencies point inward): [`policy`] (files → compiled set), [`issuers`] (keys and
//! subject-token validation), [`exchange`] (the pure decision), [`dpop`] (proof-of-possession
//! proofs, pure), [`tokens`] (signing), [`refusal`] (what a refused request is told),
//! [`inventory`] (who exchanged when: the identity inventory, written off the request path),
//! [`gateway`] (what handlers read), [`http`] (the wire), [`app`] (wiring), [`cli`] (the
//! command line), [`admin`] (the operator console and read-only admin API), [`client`] (the CI
//! helper behind `trustbridge token`; not used by `serve`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod app;
pub mod cidr;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod demo;
pub mod dpop;
pub mod exchange;
pub mod fetch_settings;
pub mod gateway;
pub mod http;
pub mod ids;
pub mod inventory;
pub mod issuers;
pub mod jose;
pub mod policy;
pub mod refusal;
pub mod state;
pub mod telemetry;
pub mod text;
pub mod tls;
pub mod tokens;
pub mod tools;
