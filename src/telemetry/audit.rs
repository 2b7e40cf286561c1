//! The audit trail: one structured event per exchange decision, allowed or denied, on the
//! `trustbridge::audit` tracing target with dotted field names.
//!
//! An audit record names who asked (source issuer and subject), what they asked for, what was
//! decided and by which policy version. It never carries a token, a signature or a secret.

use crate::exchange::Grant;

/// What the audit record of one request says.
#[derive(Debug, Default)]
pub struct AuditRecord<'a> {
    /// Request trace id (also returned to the client).
    pub trace_id: &'a str,
    /// Tenant from the URL.
    pub tenant: &'a str,
    /// Grant type label.
    pub grant: &'a str,
    /// `client_id` as sent (bounded by the form parser).
    pub client_id: Option<&'a str>,
    /// Requested resource, when parsed.
    pub resource: Option<&'a str>,
    /// Source issuer name, when known.
    pub issuer: Option<&'a str>,
    /// Source subject, when the token validated.
    pub subject: Option<&'a str>,
    /// Content hash of the policy set that decided.
    pub policy_hash: &'a str,
}

/// Records a granted exchange.
pub fn granted(record: &AuditRecord<'_>, grant: &Grant, jti: &str) {
    tracing::info!(
        target: "trustbridge::audit",
        trace_id = record.trace_id,
        decision.outcome = "granted",
        tenant = record.tenant,
        grant = record.grant,
        client_id = record.client_id,
        issuer.name = grant.source_issuer_name.as_str(),
        subject = grant.source_subject.as_str(),
        credential.name = grant.credential.as_str(),
        identity.kind = grant.identity_kind.as_str(),
        identity.name = grant.identity_name.as_str(),
        identity.oid = grant.object_id.as_str(),
        resource = grant.resource.as_str(),
        roles = grant.roles.join(" ").as_str(),
        token.jti = jti,
        token.lifetime_s = grant.lifetime.as_secs(),
        policy.hash = record.policy_hash,
        "exchange granted"
    );
}

/// Records a denied exchange with its bounded reason label and the check that failed.
pub fn denied(record: &AuditRecord<'_>, reason: &str, detail: &str) {
    tracing::info!(
        target: "trustbridge::audit",
        trace_id = record.trace_id,
        decision.outcome = "denied",
        tenant = record.tenant,
        grant = record.grant,
        client_id = record.client_id,
        issuer.name = record.issuer,
        subject = record.subject,
        resource = record.resource,
        reason = reason,
        detail = detail,
        policy.hash = record.policy_hash,
        "exchange denied"
    );
}
