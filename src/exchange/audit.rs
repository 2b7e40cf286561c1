//! Audit events of the token endpoint, built as plain JSON objects: one per exchange decision,
//! granted or denied, plus one per audit-mode credential evaluated. `telemetry::audit` only
//! writes what this module builds; this module only builds (pure: no I/O, no clock).
//!
//! An event names who asked (caller address, source issuer and subject, client id), what they
//! asked for (tenant, resource), what was decided and why (credential matched, or the reason,
//! Entra code and a shortened explanation), what was issued (`jti`, lifetime, roles), and by
//! which policy version (the policy set's content hash). It never carries a token, a signature
//! or a secret; values that come from the request are bounded.
//!
//! Field names are flat and dotted (`decision.outcome`, `issuer.name`, `credential.name`), as
//! the rest of trustbridge's telemetry.

use std::time::SystemTime;

use serde_json::{Map, Value, json};

use crate::exchange::Grant;
use crate::exchange::explain::CandidateTrace;
use crate::policy::model::CredentialMode;
use crate::refusal::Refusal;

/// Longest request-supplied string written to an event (subjects, client ids, resources).
pub const MAX_FIELD_CHARS: usize = 256;

/// One audit event: a flat JSON object with dotted field names.
pub type AuditEvent = Map<String, Value>;

/// What every audit event of one request says, filled in as the request is handled.
#[derive(Debug)]
pub struct AuditRecord<'a> {
    /// When the request arrived (gateway clock).
    pub time: SystemTime,
    /// Request trace id (also returned to the client).
    pub trace_id: &'a str,
    /// The client's correlation id (or the trace id).
    pub correlation_id: &'a str,
    /// Tenant from the URL.
    pub tenant: &'a str,
    /// Grant type label.
    pub grant: &'a str,
    /// `client_id` as sent.
    pub client_id: Option<&'a str>,
    /// Requested resource, when parsed.
    pub resource: Option<&'a str>,
    /// Source issuer name, when known.
    pub issuer: Option<&'a str>,
    /// Source subject, when the token validated.
    pub subject: Option<&'a str>,
    /// Content hash of the policy set that decided.
    pub policy_hash: &'a str,
    /// The peer's address (the last hop: a load balancer's when behind one).
    pub caller: Option<&'a str>,
}

impl Default for AuditRecord<'_> {
    fn default() -> Self {
        Self {
            time: SystemTime::UNIX_EPOCH,
            trace_id: "",
            correlation_id: "",
            tenant: "",
            grant: "unknown",
            client_id: None,
            resource: None,
            issuer: None,
            subject: None,
            policy_hash: "",
            caller: None,
        }
    }
}

impl AuditRecord<'_> {
    /// The event of a granted exchange that issued the token `jti`.
    pub fn granted(&self, grant: &Grant, jti: &str) -> AuditEvent {
        let mut e = self.common("granted");
        e.insert("issuer.name".into(), json!(grant.source_issuer_name));
        e.insert("subject".into(), json!(bounded(&grant.source_subject)));
        e.insert("credential.name".into(), json!(grant.credential));
        e.insert(
            "credential.mode".into(),
            json!(grant.credential_mode.as_str()),
        );
        e.insert("identity.kind".into(), json!(grant.identity_kind.as_str()));
        e.insert("identity.name".into(), json!(bounded(&grant.identity_name)));
        e.insert("identity.oid".into(), json!(grant.object_id));
        e.insert("resource".into(), json!(grant.resource));
        e.insert("roles".into(), json!(grant.roles));
        e.insert("token.jti".into(), json!(jti));
        e.insert("token.lifetime_s".into(), json!(grant.lifetime.as_secs()));
        e
    }

    /// The event of a refused request: its bounded reason label, the Entra code answered, the
    /// operator's detail of the check that failed (configured values included: the client only
    /// got the public description), and (when the policy decision ran) the shortened
    /// explanation of every close candidate. When the decision ran (there is an explanation),
    /// `credential.mode` is `enforce`: the only mode a decision considers.
    pub fn denied(&self, refusal: &Refusal, explanation: &[String]) -> AuditEvent {
        let mut e = self.common("denied");
        e.insert("reason".into(), json!(refusal.reason));
        e.insert("error.code".into(), json!(refusal.code));
        e.insert("detail".into(), json!(bounded_long(refusal.detail())));
        if !explanation.is_empty() {
            e.insert(
                "credential.mode".into(),
                json!(CredentialMode::Enforce.as_str()),
            );
            let lines: Vec<String> = explanation.iter().map(|l| bounded_long(l)).collect();
            e.insert("explanation".into(), json!(lines));
        }
        e
    }

    /// The verdict of one audit-mode credential: it never grants, so this event is the only
    /// effect of its evaluation.
    pub fn audit_mode(&self, trace: &CandidateTrace) -> AuditEvent {
        let mut e = self.common("audit");
        e.insert("credential.name".into(), json!(trace.credential));
        e.insert("credential.mode".into(), json!(trace.mode.as_str()));
        e.insert("identity.name".into(), json!(bounded(&trace.identity)));
        e.insert("audit.would_allow".into(), json!(trace.matched()));
        if let Some(failure) = trace.first_failure() {
            e.insert("failed_check".into(), json!(failure.kind.as_str()));
            e.insert("detail".into(), json!(bounded_long(&failure.detail)));
        }
        e
    }

    fn common(&self, outcome: &str) -> AuditEvent {
        let mut e = Map::new();
        e.insert(
            "time".into(),
            json!(humantime::format_rfc3339_millis(self.time).to_string()),
        );
        e.insert("decision.outcome".into(), json!(outcome));
        e.insert("trace_id".into(), json!(self.trace_id));
        e.insert("correlation_id".into(), json!(bounded(self.correlation_id)));
        e.insert("tenant".into(), json!(bounded(self.tenant)));
        e.insert("grant".into(), json!(self.grant));
        e.insert("client_id".into(), json!(self.client_id.map(bounded)));
        e.insert("resource".into(), json!(self.resource.map(bounded)));
        e.insert("issuer.name".into(), json!(self.issuer));
        e.insert("subject".into(), json!(self.subject.map(bounded)));
        e.insert("caller.address".into(), json!(self.caller));
        e.insert("policy.hash".into(), json!(self.policy_hash));
        e
    }
}

fn bounded(value: &str) -> String {
    bound(value, MAX_FIELD_CHARS)
}

/// Descriptions and explanations are ours, built from bounded values, but may be longer.
fn bounded_long(value: &str) -> String {
    bound(value, 4 * MAX_FIELD_CHARS)
}

fn bound(value: &str, max: usize) -> String {
    crate::text::shown(value, max)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::exchange::IdentityKind;
    use crate::refusal::{OAuthError, StatusClass};

    fn record() -> AuditRecord<'static> {
        AuditRecord {
            time: UNIX_EPOCH + Duration::from_millis(1_767_225_600_250),
            trace_id: "t-1",
            correlation_id: "c-1",
            tenant: "contoso",
            grant: "client_credentials",
            client_id: Some("deploy-bot"),
            resource: Some("api://payments"),
            issuer: Some("demo"),
            subject: Some("repo:a/b"),
            policy_hash: "abc",
            caller: Some("127.0.0.1:5000"),
        }
    }

    fn refusal(reason: &'static str, code: Option<u32>, description: &str) -> Refusal {
        Refusal::new(
            OAuthError::InvalidGrant,
            StatusClass::BadRequest,
            code,
            reason,
            description,
        )
    }

    #[test]
    fn granted_and_denied_events_carry_every_field() {
        let grant = Grant {
            tenant: "contoso".into(),
            tenant_id: "tid".into(),
            identity_kind: IdentityKind::ServicePrincipal,
            identity_name: "deploy-bot".into(),
            object_id: "oid-1".into(),
            client_id: "cid".into(),
            resource: "api://payments".into(),
            roles: vec!["Payments.Read".into()],
            lifetime: Duration::from_secs(900),
            mapped_claims: Map::new(),
            credential: "infra-main".into(),
            credential_mode: crate::policy::model::CredentialMode::Enforce,
            source_issuer_name: "demo".into(),
            source_issuer: "https://demo".into(),
            source_subject: "repo:a/b".into(),
            one_time_use: false,
        };
        let g = Value::Object(record().granted(&grant, "jti-1"));
        let long = "x".repeat(5000);
        let d = Value::Object(record().denied(
            &refusal("subject_mismatch", Some(700213), &long),
            &["a/b: subject failed".into()],
        ));
        assert_eq!(g["time"], "2026-01-01T00:00:00.250Z");
        assert_eq!(g["decision.outcome"], "granted");
        for (k, v) in [
            ("trace_id", "t-1"),
            ("correlation_id", "c-1"),
            ("tenant", "contoso"),
            ("client_id", "deploy-bot"),
            ("issuer.name", "demo"),
            ("subject", "repo:a/b"),
            ("credential.name", "infra-main"),
            ("credential.mode", "enforce"),
            ("identity.name", "deploy-bot"),
            ("identity.oid", "oid-1"),
            ("token.jti", "jti-1"),
            ("policy.hash", "abc"),
            ("caller.address", "127.0.0.1:5000"),
        ] {
            assert_eq!(g[k], v, "{k}");
        }
        assert_eq!(g["roles"], json!(["Payments.Read"]));
        assert_eq!(g["token.lifetime_s"], 900);
        assert_eq!(d["decision.outcome"], "denied");
        assert_eq!(d["reason"], "subject_mismatch");
        assert_eq!(d["error.code"], 700213);
        assert_eq!(d["explanation"], json!(["a/b: subject failed"]));
        assert_eq!(d["credential.mode"], "enforce");
        assert!(d["detail"].as_str().unwrap().chars().count() <= 4 * MAX_FIELD_CHARS + 1);
    }

    #[test]
    fn request_values_are_bounded_and_stripped_of_control_characters() {
        let sub = format!("a\nb{}", "s".repeat(1000));
        let rec = AuditRecord {
            subject: Some(&sub),
            ..record()
        };
        let e = Value::Object(rec.denied(&refusal("x", None, "d"), &[]));
        let s = e["subject"].as_str().unwrap();
        assert!(s.starts_with("abs"), "{s}");
        assert_eq!(s.chars().count(), MAX_FIELD_CHARS + 1);
        assert!(e.get("explanation").is_none());
        assert_eq!(e["error.code"], Value::Null);
    }

    #[test]
    fn denied_events_carry_the_private_detail_not_the_public_description() {
        let r = refusal(
            "subject_mismatch",
            Some(700213),
            "the subject is not accepted",
        )
        .with_detail("subject 'x' does not match pattern 'repo:secret/*'");
        let e = Value::Object(record().denied(&r, &[]));
        assert_eq!(
            e["detail"],
            "subject 'x' does not match pattern 'repo:secret/*'"
        );
    }
}
