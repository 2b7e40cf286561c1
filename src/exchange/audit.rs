//! Audit events of the token endpoint, serialised as flat JSON objects: one per exchange decision,
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

use std::borrow::Cow;
use std::time::SystemTime;

use serde::Serialize;

use crate::exchange::Grant;
use crate::exchange::explain::CandidateTrace;
use crate::policy::model::CredentialMode;
use crate::refusal::Refusal;

/// Longest request-supplied string written to an event (subjects, client ids, resources).
pub const MAX_FIELD_CHARS: usize = 256;

/// One audit event: serialised as a flat JSON object with dotted field names, in alphabetical
/// order (the order of the `serde_json::Map` events of earlier versions, so lines read the
/// same). Members marked "always" are written even when unknown (as `null`); the others only
/// in the events that have them. Built straight from borrowed request and grant values: no
/// JSON tree is made per exchange.
#[derive(Debug, Serialize)]
pub struct AuditEvent<'a> {
    /// Audit mode: whether the credential would have allowed the exchange.
    #[serde(rename = "audit.would_allow", skip_serializing_if = "Option::is_none")]
    audit_would_allow: Option<bool>,
    /// Always: the peer, or the client behind trusted proxies.
    #[serde(rename = "caller.address")]
    caller_address: Option<&'a str>,
    /// Always: `client_id` as sent (bounded).
    client_id: Option<Cow<'a, str>>,
    /// Always: the client's correlation id (bounded).
    correlation_id: Cow<'a, str>,
    /// `enforce` or `audit`: granted and audit-mode events, and denials the decision ran for.
    #[serde(rename = "credential.mode", skip_serializing_if = "Option::is_none")]
    credential_mode: Option<&'static str>,
    /// Granted and audit-mode events: the credential.
    #[serde(rename = "credential.name", skip_serializing_if = "Option::is_none")]
    credential_name: Option<&'a str>,
    /// Always: `granted`, `denied` or `audit`.
    #[serde(rename = "decision.outcome")]
    outcome: &'static str,
    /// Denials, and failed audit-mode checks: the operator's detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    /// Denials: the Entra code answered (`null` when none).
    #[serde(rename = "error.code", skip_serializing_if = "Option::is_none")]
    error_code: Option<Option<u32>>,
    /// Denials the decision ran for: the shortened explanation.
    #[serde(skip_serializing_if = "Option::is_none")]
    explanation: Option<Vec<String>>,
    /// Failed audit-mode checks: which check.
    #[serde(skip_serializing_if = "Option::is_none")]
    failed_check: Option<&'static str>,
    /// Always: the grant type label.
    grant: &'a str,
    /// Granted: service principal or managed identity kind.
    #[serde(rename = "identity.kind", skip_serializing_if = "Option::is_none")]
    identity_kind: Option<&'static str>,
    /// Granted and audit-mode events: the identity (bounded).
    #[serde(rename = "identity.name", skip_serializing_if = "Option::is_none")]
    identity_name: Option<Cow<'a, str>>,
    /// Granted: the identity's object id.
    #[serde(rename = "identity.oid", skip_serializing_if = "Option::is_none")]
    identity_oid: Option<&'a str>,
    /// Always: the source issuer's name, when known.
    #[serde(rename = "issuer.name")]
    issuer_name: Option<&'a str>,
    /// Always: the content hash of the policy set that decided.
    #[serde(rename = "policy.hash")]
    policy_hash: &'a str,
    /// Denials: the bounded reason label.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    /// Always: the requested resource (bounded), or the granted one.
    resource: Option<Cow<'a, str>>,
    /// Granted: the roles issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<&'a [Cow<'a, str>]>,
    /// Always: the source subject (bounded), when known.
    subject: Option<Cow<'a, str>>,
    /// Always: the tenant from the URL (bounded).
    tenant: Cow<'a, str>,
    /// Always: RFC 3339 with milliseconds.
    time: String,
    /// Granted: the issued token's `jti`.
    #[serde(rename = "token.jti", skip_serializing_if = "Option::is_none")]
    token_jti: Option<&'a str>,
    /// Granted: the issued token's lifetime in seconds.
    #[serde(rename = "token.lifetime_s", skip_serializing_if = "Option::is_none")]
    token_lifetime_s: Option<u64>,
    /// Always: the request's trace id.
    trace_id: &'a str,
}

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

impl<'a> AuditRecord<'a> {
    /// The event of a granted exchange that issued the token `jti`.
    pub fn granted<'e>(&'e self, grant: &'e Grant<'_>, jti: &'e str) -> AuditEvent<'e>
    where
        'a: 'e,
    {
        AuditEvent {
            issuer_name: Some(&grant.source_issuer_name),
            subject: Some(bounded(&grant.source_subject)),
            credential_name: Some(&grant.credential),
            credential_mode: Some(grant.credential_mode.as_str()),
            identity_kind: Some(grant.identity_kind.as_str()),
            identity_name: Some(bounded(&grant.identity_name)),
            identity_oid: Some(&grant.object_id),
            resource: Some(Cow::Borrowed(&grant.resource)),
            roles: Some(&grant.roles),
            token_jti: Some(jti),
            token_lifetime_s: Some(grant.lifetime.as_secs()),
            ..self.common("granted")
        }
    }

    /// The event of a refused request: its bounded reason label, the Entra code answered, the
    /// operator's detail of the check that failed (configured values included: the client only
    /// got the public description), and (when the policy decision ran) the shortened
    /// explanation of every close candidate. When the decision ran (there is an explanation),
    /// `credential.mode` is `enforce`: the only mode a decision considers.
    pub fn denied<'e>(&'e self, refusal: &'e Refusal, explanation: &[String]) -> AuditEvent<'e>
    where
        'a: 'e,
    {
        let ran = !explanation.is_empty();
        AuditEvent {
            reason: Some(refusal.reason),
            error_code: Some(refusal.code),
            detail: Some(bounded_long(refusal.detail())),
            credential_mode: ran.then_some(CredentialMode::Enforce.as_str()),
            explanation: ran.then(|| explanation.iter().map(|l| bounded_long(l)).collect()),
            ..self.common("denied")
        }
    }

    /// The verdict of one audit-mode credential: it never grants, so this event is the only
    /// effect of its evaluation.
    pub fn audit_mode<'e>(&'e self, trace: &'e CandidateTrace) -> AuditEvent<'e>
    where
        'a: 'e,
    {
        let failure = trace.first_failure();
        AuditEvent {
            credential_name: Some(&trace.credential),
            credential_mode: Some(trace.mode.as_str()),
            identity_name: Some(bounded(&trace.identity)),
            audit_would_allow: Some(trace.matched()),
            failed_check: failure.map(|f| f.kind.as_str()),
            detail: failure.map(|f| bounded_long(&f.detail)),
            ..self.common("audit")
        }
    }

    fn common<'e>(&'e self, outcome: &'static str) -> AuditEvent<'e>
    where
        'a: 'e,
    {
        AuditEvent {
            audit_would_allow: None,
            caller_address: self.caller,
            client_id: self.client_id.map(bounded),
            correlation_id: bounded(self.correlation_id),
            credential_mode: None,
            credential_name: None,
            outcome,
            detail: None,
            error_code: None,
            explanation: None,
            failed_check: None,
            grant: self.grant,
            identity_kind: None,
            identity_name: None,
            identity_oid: None,
            issuer_name: self.issuer,
            policy_hash: self.policy_hash,
            reason: None,
            resource: self.resource.map(bounded),
            roles: None,
            subject: self.subject.map(bounded),
            tenant: bounded(self.tenant),
            time: humantime::format_rfc3339_millis(self.time).to_string(),
            token_jti: None,
            token_lifetime_s: None,
            trace_id: self.trace_id,
        }
    }
}

fn bounded(value: &str) -> Cow<'_, str> {
    crate::text::shown_borrowed(value, MAX_FIELD_CHARS)
}

/// Descriptions and explanations are ours, built from bounded values, but may be longer.
fn bounded_long(value: &str) -> String {
    crate::text::shown(value, 4 * MAX_FIELD_CHARS)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use serde_json::{Map, Value, json};

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
        let g = serde_json::to_value(record().granted(&grant, "jti-1")).unwrap();
        let long = "x".repeat(5000);
        let r = refusal("subject_mismatch", Some(700213), &long);
        let d = serde_json::to_value(record().denied(&r, &["a/b: subject failed".into()])).unwrap();
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
        let r = refusal("x", None, "d");
        let e = serde_json::to_value(rec.denied(&r, &[])).unwrap();
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
        let e = serde_json::to_value(record().denied(&r, &[])).unwrap();
        assert_eq!(
            e["detail"],
            "subject 'x' does not match pattern 'repo:secret/*'"
        );
    }

    /// Keys of one serialised event, in the order they are written.
    fn keys_in_order(line: &str) -> Vec<String> {
        let object: Map<String, Value> = serde_json::from_str(line).unwrap();
        let mut keys: Vec<(usize, String)> = object
            .keys()
            .map(|k| {
                (
                    line.find(&format!("\"{k}\":")).expect("key written"),
                    k.clone(),
                )
            })
            .collect();
        keys.sort();
        keys.into_iter().map(|(_, k)| k).collect()
    }

    #[test]
    fn events_are_written_with_their_keys_in_alphabetical_order_and_only_their_members() {
        let grant = Grant {
            tenant: "contoso".into(),
            tenant_id: "tid".into(),
            identity_kind: IdentityKind::ManagedIdentity,
            identity_name: "k8s/a/b".into(),
            object_id: "oid".into(),
            client_id: "cid".into(),
            resource: "api://payments".into(),
            roles: vec![],
            lifetime: Duration::from_secs(60),
            mapped_claims: Map::new(),
            credential: "c".into(),
            credential_mode: crate::policy::model::CredentialMode::Enforce,
            source_issuer_name: "demo".into(),
            source_issuer: "https://demo".into(),
            source_subject: "s".into(),
            one_time_use: false,
        };
        let granted = serde_json::to_string(&record().granted(&grant, "j")).unwrap();
        let r = refusal("x", None, "d");
        let denied = serde_json::to_string(&record().denied(&r, &[])).unwrap();
        let explained = serde_json::to_string(&record().denied(&r, &["why".into()])).unwrap();
        for (line, members) in [
            (&granted, 20),
            // Common 12, plus reason, error.code and detail.
            (&denied, 15),
            (&explained, 17),
        ] {
            let keys = keys_in_order(line);
            let mut sorted = keys.clone();
            sorted.sort();
            assert_eq!(keys, sorted, "{line}");
            assert_eq!(keys.len(), members, "{line}");
        }
        // Unknown common members are written as null, not left out.
        let bare = AuditRecord::default();
        let line = serde_json::to_string(&bare.denied(&r, &[])).unwrap();
        for key in [
            "caller.address",
            "client_id",
            "issuer.name",
            "resource",
            "subject",
        ] {
            assert!(line.contains(&format!("\"{key}\":null")), "{key}: {line}");
        }
        assert!(line.contains("\"error.code\":null"), "{line}");
    }
}
