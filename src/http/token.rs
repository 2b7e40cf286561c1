//! `POST /{tenant}/oauth2/v2.0/token`: the exchange, for both grants.
//!
//! The handler is the I/O shell around the pure parts: read the capped body, parse it
//! (`exchange::request`), validate the token (`issuers`), decide (`exchange::decide`), sign
//! (`tokens`), then record one audit event and the metrics, whatever the outcome.

use std::time::Instant;

use actix_web::http::header::{CACHE_CONTROL, HeaderValue, PRAGMA};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::app::Gateway;
use crate::clock::unix_seconds;
use crate::exchange::explain::{self, Query};
use crate::exchange::request::TOKEN_TYPE_ACCESS_TOKEN;
use crate::exchange::{self, Denial, ExchangeRequest, GrantType};
use crate::http::error::{ApiError, ErrorKind};
use crate::http::extract::{self, BodyError, MAX_BODY_BYTES};
use crate::http::guard;
use crate::telemetry::audit::AuditRecord;
use crate::telemetry::names;
use crate::tokens::AccessTokenClaims;

/// Most lines of explanation a denied exchange's audit record carries.
const AUDIT_EXPLANATION_LINES: usize = 3;

/// Handles a token request.
pub async fn token(
    gw: web::Data<Gateway>,
    tenant: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let (trace_id, correlation_id, timestamp) = gw.request_ids(&req);
    let snapshot = gw.snapshot();
    let caller = req.peer_addr().map(|a| a.to_string());
    let mut record = AuditRecord {
        time: gw.clock.now(),
        trace_id: &trace_id,
        correlation_id: &correlation_id,
        tenant: &tenant,
        grant: "unknown",
        policy_hash: snapshot.policies.content_hash(),
        caller: caller.as_deref(),
        ..AuditRecord::default()
    };
    let fail = |kind: ErrorKind| ApiError::new(kind, &trace_id, &correlation_id, &timestamp);

    let outcome = async {
        if snapshot.policies.tenant(&tenant).is_none() {
            let shown: String = tenant
                .chars()
                .filter(|c| !c.is_control())
                .take(64)
                .collect();
            return Err(fail(ErrorKind::Denial(Denial::UnknownTenant(shown))));
        }
        if !extract::is_form(&req) {
            return Err(fail(ErrorKind::NotForm));
        }
        let body = extract::read_body(&req, payload, MAX_BODY_BYTES)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => fail(ErrorKind::BodyTooLarge),
                BodyError::Read(_) => fail(ErrorKind::NotForm),
            })?;
        let request = ExchangeRequest::parse(&tenant, &body, Some(correlation_id.clone()))
            .map_err(|e| fail(ErrorKind::Request(e)))?;
        Ok(request)
    }
    .await;

    let request = match outcome {
        Ok(request) => request,
        Err(err) => return Err(finish_denied(&gw, &record, err, started, &[])),
    };
    record.grant = request.grant.as_str();
    record.client_id = request.client_id.as_deref();
    record.resource = Some(&request.target.resource);
    let with_grant = |kind: ErrorKind| {
        let mut e = fail(kind);
        e.grant = Some(request.grant);
        e.target_from_scope = request.target.from_scope;
        e
    };

    let validated = match snapshot.issuers.validate(&request.subject_token).await {
        Ok(v) => v,
        Err(e) => {
            return Err(finish_denied(
                &gw,
                &record,
                with_grant(ErrorKind::Validation(e)),
                started,
                &[],
            ));
        }
    };
    record.issuer = Some(&validated.issuer_name);
    record.subject = validated.sub.as_deref();

    let now = gw.clock.now();
    let query = Query {
        tenant: &tenant,
        client_id: request.client_id.as_deref(),
        target: Some(&request.target),
    };
    if snapshot.policies.audit_credentials() > 0 {
        // Audit-mode credentials never grant; their verdicts are only recorded.
        for trace in explain::audit_mode(&validated, query, &snapshot.policies) {
            gw.audit.audit_mode(&record, &trace);
        }
    }
    let limit = gw.settings.rate_limit_issuer;
    let bucket = &validated.issuer_name;
    if let Err(kind) = guard::rate_limit(&gw, guard::SCOPE_ISSUER, bucket, limit, now).await {
        return Err(finish_denied(&gw, &record, with_grant(kind), started, &[]));
    }
    let grant = match exchange::decide(&validated, &request, &snapshot.policies, &gw.limits, now) {
        Ok(g) => g,
        Err(d) => {
            let explanation = explain::explain(&validated, query, &snapshot.policies)
                .summary(AUDIT_EXPLANATION_LINES);
            return Err(finish_denied(
                &gw,
                &record,
                with_grant(ErrorKind::Denial(d)),
                started,
                &explanation,
            ));
        }
    };

    let limit = gw.settings.rate_limit_identity;
    let bucket = format!("{}/{}", grant.tenant, grant.object_id);
    if let Err(kind) = guard::rate_limit(&gw, guard::SCOPE_IDENTITY, &bucket, limit, now).await {
        return Err(finish_denied(&gw, &record, with_grant(kind), started, &[]));
    }
    if grant.one_time_use {
        let leeway = snapshot
            .policies
            .issuer(&validated.issuer_name)
            .map_or(0, |i| i.leeway.as_secs());
        let checked =
            guard::one_time_use(&gw, &validated, &request.subject_token, leeway, now).await;
        if let Err(kind) = checked {
            return Err(finish_denied(&gw, &record, with_grant(kind), started, &[]));
        }
    }

    let iat = unix_seconds(now);
    let jti = uuid::Uuid::new_v4().to_string();
    let mut claims = AccessTokenClaims {
        iss: gw.settings.tenant_issuer(&grant.tenant),
        sub: grant.object_id.clone(),
        aud: grant.resource.clone(),
        iat,
        nbf: iat,
        exp: iat + grant.lifetime.as_secs(),
        jti: jti.clone(),
        client_id: grant.client_id.clone(),
        azp: grant.client_id.clone(),
        oid: grant.object_id.clone(),
        tid: grant.tenant_id.clone(),
        roles: grant.roles.clone(),
        idtyp: "app",
        src_iss: grant.source_issuer.clone(),
        src_sub: grant.source_subject.clone(),
        src_cred: grant.credential.clone(),
        mapped: grant.mapped_claims.clone(),
    };
    // The key's end of life may shorten the token; `expires_in` reports the signed `exp`.
    let access_token = match gw.keys.sign_capped(&mut claims) {
        Ok(t) => t,
        Err(e) => {
            let err = with_grant(ErrorKind::Internal(e.to_string()));
            return Err(finish_denied(&gw, &record, err, started, &[]));
        }
    };

    gw.audit.granted(&record, &grant, &jti);
    gw.metrics
        .exchanges
        .with_label_values(&[
            names::OUTCOME_GRANTED,
            request.grant.as_str(),
            &grant.source_issuer_name,
        ])
        .inc();
    gw.metrics
        .duration
        .with_label_values(&["granted"])
        .observe(started.elapsed().as_secs_f64());

    let expires_in = claims.exp.saturating_sub(iat);
    let body = match request.grant {
        GrantType::ClientCredentials => json!({
            "token_type": "Bearer",
            "expires_in": expires_in,
            "ext_expires_in": expires_in,
            "access_token": access_token,
        }),
        GrantType::TokenExchange => json!({
            "access_token": access_token,
            "issued_token_type": TOKEN_TYPE_ACCESS_TOKEN,
            "token_type": "Bearer",
            "expires_in": expires_in,
        }),
    };
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((PRAGMA, HeaderValue::from_static("no-cache")))
        .json(body))
}

/// Audits and counts a refused request, and hands the error back for the response.
fn finish_denied(
    gw: &Gateway,
    record: &AuditRecord<'_>,
    err: ApiError,
    started: Instant,
    explanation: &[String],
) -> ApiError {
    let reason = err.reason_label();
    gw.audit.denied(
        record,
        reason,
        err.classify().2,
        &err.message(),
        explanation,
    );
    let class = match err.kind {
        ErrorKind::Internal(_) | ErrorKind::StateUnavailable(_) => "error",
        _ => "denied",
    };
    gw.metrics
        .exchanges
        .with_label_values(&[
            reason,
            record.grant,
            record.issuer.unwrap_or(names::UNKNOWN_ISSUER),
        ])
        .inc();
    gw.metrics
        .duration
        .with_label_values(&[class])
        .observe(started.elapsed().as_secs_f64());
    err
}
