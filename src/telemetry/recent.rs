//! The most recent audit events, kept in memory for the admin API's `GET /admin/v1/decisions`
//! and the console's decisions table.
//!
//! A bounded ring fed by [`AuditLog::write`](crate::telemetry::audit::AuditLog::write) with
//! the very lines written to the audit trail, so the console never shows a second truth. It
//! only keeps and filters events: it must not build them, and it forgets everything on restart
//! (the audit trail is the record). It keeps each event as its serialised line, shared with
//! the writer: the token endpoint never builds a JSON tree for it, and the admin API parses the
//! few lines it shows.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

/// How many events are kept by default.
pub const DEFAULT_CAPACITY: usize = 1_000;

/// A filter over the recent events; every given field must match.
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    /// `decision.outcome` equals this (`granted`, `denied`, `audit`).
    pub outcome: Option<&'a str>,
    /// `identity.name` contains this, or `identity.oid` equals it.
    pub identity: Option<&'a str>,
}

impl Filter<'_> {
    fn matches(&self, event: &Map<String, Value>) -> bool {
        if self.outcome.is_none() && self.identity.is_none() {
            return true;
        }
        let field = |name: &str| event.get(name).and_then(Value::as_str);
        let outcome_ok = self
            .outcome
            .is_none_or(|want| field("decision.outcome") == Some(want));
        let identity_ok = self.identity.is_none_or(|want| {
            field("identity.name").is_some_and(|n| n.contains(want))
                || field("identity.oid") == Some(want)
        });
        outcome_ok && identity_ok
    }
}

/// The last `capacity` audit events, oldest dropped first.
#[derive(Debug)]
pub struct RecentEvents {
    capacity: usize,
    /// Serialised events (one JSON object each, no newline).
    events: Mutex<VecDeque<Arc<Vec<u8>>>>,
}

impl Default for RecentEvents {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl RecentEvents {
    /// An empty ring keeping at most `capacity` events (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            events: Mutex::new(VecDeque::with_capacity(capacity)),
        }
    }

    /// How many events are kept at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Keeps `event`, one serialised JSON object, dropping the oldest when full.
    pub fn push(&self, event: Arc<Vec<u8>>) {
        // A poisoned lock only means another request panicked mid-push; keep going.
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if events.len() == self.capacity {
            events.pop_front();
        }
        events.push_back(event);
    }

    /// At most `limit` events matching `filter`, newest first. Lines that do not parse as a
    /// JSON object (none should) are skipped.
    pub fn newest(&self, limit: usize, filter: &Filter<'_>) -> Vec<Map<String, Value>> {
        // Parse outside the lock: the token endpoint pushes while the admin API reads.
        let lines: Vec<Arc<Vec<u8>>> = {
            let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
            events.iter().rev().cloned().collect()
        };
        lines
            .iter()
            .filter_map(|line| serde_json::from_slice::<Map<String, Value>>(line).ok())
            .filter(|e| filter.matches(e))
            .take(limit)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(n: u64, outcome: &str, identity: Option<&str>) -> Arc<Vec<u8>> {
        let mut e = Map::new();
        e.insert("n".into(), json!(n));
        e.insert("decision.outcome".into(), json!(outcome));
        if let Some(name) = identity {
            e.insert("identity.name".into(), json!(name));
        }
        serde_json::to_vec(&e).unwrap().into()
    }

    fn numbers(events: &[Map<String, Value>]) -> Vec<u64> {
        events.iter().filter_map(|e| e["n"].as_u64()).collect()
    }

    #[test]
    fn keeps_the_newest_events_newest_first_within_capacity() {
        let ring = RecentEvents::with_capacity(3);
        for n in 1..=5 {
            ring.push(event(n, "granted", None));
        }
        assert_eq!(numbers(&ring.newest(10, &Filter::default())), [5, 4, 3]);
        assert_eq!(numbers(&ring.newest(2, &Filter::default())), [5, 4]);
    }

    #[test]
    fn filters_by_outcome_and_identity() {
        let ring = RecentEvents::default();
        ring.push(event(1, "granted", Some("deploy-bot")));
        ring.push(event(2, "denied", None));
        ring.push(event(3, "granted", Some("k8s/team-a/builder")));
        let denied = Filter {
            outcome: Some("denied"),
            ..Filter::default()
        };
        assert_eq!(numbers(&ring.newest(10, &denied)), [2]);
        let team = Filter {
            identity: Some("team-a"),
            ..Filter::default()
        };
        assert_eq!(numbers(&ring.newest(10, &team)), [3]);
        let none = Filter {
            outcome: Some("denied"),
            identity: Some("deploy-bot"),
        };
        assert!(ring.newest(10, &none).is_empty());
    }
}
