//! Logs, metrics, OpenTelemetry traces ([`traces`]) and the audit trail. Metric names live in [`names`]; each component registers
//! the metrics it owns; every exchange decision produces one audit event ([`audit`]).

pub mod audit;
pub mod logging;
pub mod metrics;
pub mod names;
pub mod recent;
pub mod traces;
