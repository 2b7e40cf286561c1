//! `POST /{tenant}/oauth2/v2.0/token`: the exchange, for both grants.
//!
//! The handler is the I/O shell around the pure parts: read the capped body, parse it
//! (`exchange::request`), validate the token (`issuers`), decide (`exchange::decide`), guard
//! (`state::guard`), sign (`tokens`), then record one audit event (`exchange::audit`) and the
//! metrics, whatever the outcome. Refusals are rendered by `http::error`.
//!
//! Order matters for who can spend what: rate limits are counted only after the policy
//! granted (a refused token consumes no one's budget), and one-time use is recorded last, just
//! before signing. While the audit trail cannot be written (`--audit-failure deny`), a
//! request the policy grants is refused with 503 before it spends any budget. A refusal's audit explanation is the bounded one
//! (`exchange::explain::for_denial`); this handler must never call the full `explain`.

use std::time::Instant;

use actix_web::http::header::{CACHE_CONTROL, ContentType, HeaderValue, PRAGMA};
use actix_web::{HttpRequest, HttpResponse, web};
use tracing::Instrument as _;
use tracing::field::Empty;

use crate::exchange::audit::AuditRecord;
use crate::exchange::explain::{self, Query};
use crate::exchange::request::TOKEN_TYPE_ACCESS_TOKEN;
use crate::exchange::{self, Denial, ExchangeRequest, GrantType, Situation};
use crate::gateway::Gateway;
use crate::http::error::{ApiError, HttpRefusal};
use crate::http::extract::{self, ErrorIds, MAX_BODY_BYTES};
use crate::http::{self, client};
use crate::refusal::{Context, Refuse};
use crate::state::guard::{SCOPE_IDENTITY, SCOPE_ISSUER};
use crate::state::replay_key;
use crate::telemetry::audit::AuditUnavailable;
use crate::telemetry::{names, traces};
use crate::tokens::{AccessTokenClaims, SignError, SignedToken};

/// Most lines of explanation a denied exchange's audit record carries.
const AUDIT_EXPLANATION_LINES: usize = 3;

/// The route table's handler: [`token`] with the tenant the router extracted. Only requests
/// the fast path (`http::routes::TokenFastPath`) leaves to the router come here.
pub async fn routed(
    gw: web::Data<Gateway>,
    tenant: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    token(gw, tenant.into_inner(), req, payload).await
}

/// Handles a token request inside its `exchange` span (see `telemetry::traces`): a valid
/// W3C `traceparent` makes the caller's span its parent, and the response's and audit
/// record's `trace_id` is the span's trace id (the caller's when it sent one). With traces
/// off the `trace_id` is the `traceparent`'s trace id when valid, else a random UUID.
pub async fn token(
    gw: web::Data<Gateway>,
    tenant: String,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let parent = traces::trace_parent(extract::header(&req, "traceparent"));
    // Only bounded values are recorded, and only once known to be safe: a tenant that
    // exists, the parsed grant type, the issuer's configured name, the granted client id,
    // the outcome and the refusal's reason label. Never a token, a claim or raw input.
    let span = tracing::info_span!(
        target: traces::TARGET,
        "exchange",
        otel.kind = "server",
        tenant = Empty,
        grant_type = Empty,
        issuer = Empty,
        client_id = Empty,
        outcome = Empty,
        reason = Empty,
    );
    let trace_id = traces::adopt(&span, parent.as_ref())
        .or_else(|| parent.map(|p| p.trace_id))
        .unwrap_or_else(extract::random_trace_id);
    let result = handle(gw, tenant, req, payload, trace_id, &span)
        .instrument(span.clone())
        .await;
    match &result {
        Ok(_) => span.record("outcome", names::OUTCOME_GRANTED),
        Err(err) => {
            let refusal = err.refusal();
            span.record("outcome", if refusal.fault { "error" } else { "denied" });
            span.record("reason", refusal.reason)
        }
    };
    result
}

/// The exchange itself, recording into `span` (the current span) as it learns safe values.
async fn handle(
    gw: web::Data<Gateway>,
    tenant: String,
    req: HttpRequest,
    payload: web::Payload,
    trace_id: String,
    span: &tracing::Span,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let arrived = gw.clock().now();
    let ids = ErrorIds::with_trace_id(&req, arrived, trace_id);
    let snapshot = gw.snapshot();
    let client = client_of(&req, &gw.settings().trusted_proxies);
    let mut record = AuditRecord {
        time: arrived,
        trace_id: &ids.trace_id,
        correlation_id: &ids.correlation_id,
        tenant: &tenant,
        grant: "unknown",
        policy_hash: snapshot.policies.content_hash(),
        caller: client.address.as_deref(),
        ..AuditRecord::default()
    };
    // Before the request is parsed, refusals speak of a subject token.
    let fail = |error: &dyn Refuse| ApiError::refused(error, Context::default(), &ids);

    // Matched where it is made, like `decide`'s result below: a binding of the `Result` would
    // keep its own room in the handler's future across every later await.
    let mut request = match async {
        if snapshot.policies.tenant(&tenant).is_none() {
            return Err(fail(&Denial::UnknownTenant(extract::shown_tenant(&tenant))));
        }
        span.record("tenant", tenant.as_str());
        if !extract::is_form(&req) {
            return Err(fail(&HttpRefusal::NotForm));
        }
        let body = extract::read_body(&req, payload, MAX_BODY_BYTES)
            .await
            .map_err(|e| fail(&HttpRefusal::from(&e)))?;
        ExchangeRequest::parse(&tenant, &body).map_err(|e| fail(&e))
    }
    .await
    {
        Ok(request) => request,
        Err(err) => return Err(finish_denied(&gw, &record, err, started, &[])),
    };
    request.context.client_ip = client.ip;
    request.context.tls = client.tls;
    let proof = match http::dpop::proof(&req, &gw, &tenant, arrived) {
        Ok(proof) => proof,
        Err(e) => return Err(finish_denied(&gw, &record, fail(&e), started, &[])),
    };
    request.context.proof_key = proof.as_ref().map(|p| p.jkt.clone());
    record.grant = request.grant.as_str();
    span.record("grant_type", request.grant.as_str());
    record.client_id = request.client_id.as_deref();
    record.resource = Some(&request.target.resource);
    let ctx = request.refusal_context();
    let refuse = |error: &dyn Refuse| ApiError::refused(error, ctx, &ids);

    let validating = snapshot
        .issuers
        .validate(&request.subject_token)
        .instrument(tracing::info_span!(target: traces::TARGET, "validate"));
    let validated = match validating.await {
        Ok(v) => v,
        Err(e) => return Err(finish_denied(&gw, &record, refuse(&e), started, &[])),
    };
    record.issuer = Some(&validated.issuer_name);
    span.record("issuer", validated.issuer_name.as_str());
    record.subject = validated.sub.as_deref();

    let now = gw.clock().now();
    let query = Query {
        tenant: &tenant,
        client_id: request.client_id.as_deref(),
        target: Some(&request.target),
        request: Situation {
            context: &request.context,
            now,
        },
    };
    // Condition (CEL) evaluation happens inside `decide`, so its span covers it.
    let deciding = tracing::info_span!(target: traces::TARGET, "decide").entered();
    if snapshot.policies.audit_credentials() > 0 {
        // Audit-mode credentials never grant; their verdicts are only recorded.
        for trace in explain::audit_mode(&validated, query, &snapshot.policies) {
            gw.audit().write(&record.audit_mode(&trace));
        }
    }
    // Matched where it is made: a separate `Result` binding would keep its own room in the
    // handler's future across every later await.
    let grant = match exchange::decide(&validated, &request, &snapshot.policies, gw.limits(), now) {
        Ok(g) => {
            drop(deciding);
            g
        }
        Err(d) => {
            drop(deciding);
            // Bounded to the index's candidates: a refusal costs what a grant does.
            let explanation = explain::for_denial(&validated, query, &snapshot.policies)
                .summary(AUDIT_EXPLANATION_LINES);
            return Err(finish_denied(
                &gw,
                &record,
                refuse(&d),
                started,
                &explanation,
            ));
        }
    };

    // Fail closed: no token is issued while its audit line could not be written.
    if !gw.audit().grants_allowed() {
        return Err(finish_denied(
            &gw,
            &record,
            refuse(&AuditUnavailable),
            started,
            &[],
        ));
    }

    // The issuer limit counts only exchanges the policy grants, per tenant: tokens a tenant's
    // policy refuses (anyone's token of a public issuer) spend nobody's budget.
    let guard = gw.guard();
    // A bucket name only for a limit that is set: `rate_limit` ignores it otherwise.
    let bucket = |limit: Option<_>, key: &str| {
        limit.map_or_else(String::new, |_| format!("{}/{key}", grant.tenant))
    };
    let limit = gw.settings().rate_limit_issuer;
    let bucket_name = bucket(limit, &validated.issuer_name);
    // A `state` span per call that reaches the backend (an unset limit makes none).
    let state = |op: &'static str, calls: bool| {
        if calls {
            tracing::info_span!(target: traces::TARGET, "state", op)
        } else {
            tracing::Span::none()
        }
    };
    let limited = guard.rate_limit(SCOPE_ISSUER, &bucket_name, limit, now);
    if let Err(r) = limited
        .instrument(state("rate_limit_issuer", limit.is_some()))
        .await
    {
        return Err(finish_denied(&gw, &record, refuse(&r), started, &[]));
    }
    let limit = gw.settings().rate_limit_identity;
    let bucket_name = bucket(limit, &grant.object_id);
    let limited = guard.rate_limit(SCOPE_IDENTITY, &bucket_name, limit, now);
    if let Err(r) = limited
        .instrument(state("rate_limit_identity", limit.is_some()))
        .await
    {
        return Err(finish_denied(&gw, &record, refuse(&r), started, &[]));
    }
    if grant.one_time_use {
        let leeway = snapshot
            .policies
            .issuer(&validated.issuer_name)
            .map_or(0, |i| i.leeway.as_secs());
        let key = replay_key(
            &validated.issuer_name,
            validated.jti.as_deref(),
            &request.subject_token,
        );
        let until = validated.exp.saturating_add(leeway);
        let used = guard.one_time_use(&key, until, now);
        if let Err(r) = used.instrument(state("one_time_use", true)).await {
            return Err(finish_denied(&gw, &record, refuse(&r), started, &[]));
        }
    }

    if let Some(proof) = &proof
        && let Err(err) = http::dpop::remember(&gw, proof, now, refuse)
            .instrument(state("dpop_replay", true))
            .await
    {
        return Err(finish_denied(&gw, &record, err, started, &[]));
    }

    let jti = crate::ids::uuid_v4().to_string();
    let issuer = gw.settings().tenant_issuer(&grant.tenant);
    let mut claims = AccessTokenClaims::for_grant(&grant, issuer, now, jti);
    claims.cnf_jkt = proof.map(|p| p.jkt);
    // The key's end of life may shorten the token; `expires_in` reports the signed `exp`.
    let signed = {
        let _sign = tracing::info_span!(target: traces::TARGET, "sign").entered();
        gw.keys().sign_capped(&mut claims)
    };
    let access_token = match signed {
        Ok(t) => t,
        Err(e @ SignError::KeyOutOfService(_)) => {
            return Err(finish_denied(&gw, &record, refuse(&e), started, &[]));
        }
        Err(e) => {
            let err = ApiError::internal(e, &ids);
            return Err(finish_denied(&gw, &record, err, started, &[]));
        }
    };

    gw.audit().write(&record.granted(&grant, &claims.jti));
    span.record("client_id", &*grant.client_id);
    gw.inventory().note_granted(&record, &grant);
    gw.metrics()
        .exchanges
        .with_label_values(&[
            names::OUTCOME_GRANTED,
            request.grant.as_str(),
            &grant.source_issuer_name,
        ])
        .inc();
    gw.metrics()
        .duration_granted
        .observe(started.elapsed().as_secs_f64());

    let expires_in = claims.exp.saturating_sub(claims.iat);
    // RFC 9449 §5: a token bound to a proof key is a DPoP token.
    let token_type = if claims.cnf_jkt.is_some() {
        "DPoP"
    } else {
        "Bearer"
    };
    // Serialised straight from the struct: no intermediate `Value` map per response.
    let body = match request.grant {
        GrantType::ClientCredentials => TokenResponse {
            access_token: &access_token,
            expires_in,
            ext_expires_in: Some(expires_in),
            issued_token_type: None,
            token_type,
        },
        GrantType::TokenExchange => TokenResponse {
            access_token: &access_token,
            expires_in,
            ext_expires_in: None,
            issued_token_type: Some(TOKEN_TYPE_ACCESS_TOKEN),
            token_type,
        },
    };
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((PRAGMA, HeaderValue::from_static("no-cache")))
        .content_type(ContentType::json())
        .body(body.to_json()))
}

/// The effective client of `req` (see `http::client`): the peer, or what trusted proxies say.
fn client_of(req: &HttpRequest, trusted: &[crate::cidr::Cidr]) -> client::Client {
    let headers = req.headers();
    let values = |name: &str| -> Vec<&str> {
        if trusted.is_empty() {
            return Vec::new();
        }
        headers
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .collect()
    };
    let proto = values("x-forwarded-proto").last().copied();
    client::resolve(
        req.peer_addr(),
        trusted,
        &values("forwarded"),
        &values("x-forwarded-for"),
        proto,
        req.app_config().secure(),
    )
}

/// The successful token response of either grant. Members in alphabetical order, as the
/// `serde_json::Map` this replaced wrote them.
#[derive(serde::Serialize)]
struct TokenResponse<'a> {
    #[serde(serialize_with = "signed_token_text")]
    access_token: &'a SignedToken,
    expires_in: u64,
    /// Entra's extra member, client credentials only.
    #[serde(skip_serializing_if = "Option::is_none")]
    ext_expires_in: Option<u64>,
    /// RFC 8693, token exchange only.
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_token_type: Option<&'static str>,
    token_type: &'static str,
}

/// Serialises a [`SignedToken`] as its text (what [`TokenResponse::to_json`] must equal).
fn signed_token_text<S: serde::Serializer>(
    token: &&SignedToken,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(token.as_str())
}

impl TokenResponse<'_> {
    /// The JSON body, written directly: the access token is a [`SignedToken`] (base64url and
    /// dots, by construction), which JSON needs no escaping for, and serde_json's escaping loop
    /// over the 1 KB token was 1.6 % of an exchange. The other members are numbers and
    /// constants, written by serde_json.
    fn to_json(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(self.access_token.as_str().len() + 192);
        out.push_str("{\"access_token\":\"");
        out.push_str(self.access_token.as_str());
        // Numbers and `&'static str` constants (URIs and words that JSON needs no escaping
        // for, asserted in the tests): written in place, with no temporary string each.
        let _ = write!(out, "\",\"expires_in\":{}", self.expires_in);
        if let Some(ext) = self.ext_expires_in {
            let _ = write!(out, ",\"ext_expires_in\":{ext}");
        }
        if let Some(issued) = self.issued_token_type {
            let _ = write!(out, ",\"issued_token_type\":\"{issued}\"");
        }
        let _ = write!(out, ",\"token_type\":\"{}\"}}", self.token_type);
        out
    }
}

/// Audits and counts a refused request, and hands the error back for the response.
fn finish_denied(
    gw: &Gateway,
    record: &AuditRecord<'_>,
    err: ApiError,
    started: Instant,
    explanation: &[String],
) -> ApiError {
    let refusal = err.refusal();
    gw.audit().write(&record.denied(refusal, explanation));
    gw.inventory().note_denied(record, &gw.policies());
    let duration = if refusal.fault {
        &gw.metrics().duration_error
    } else {
        &gw.metrics().duration_denied
    };
    gw.metrics()
        .exchanges
        .with_label_values(&[
            refusal.reason,
            record.grant,
            record.issuer.unwrap_or(names::UNKNOWN_ISSUER),
        ])
        .inc();
    duration.observe(started.elapsed().as_secs_f64());
    err
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::jose::SigningAlgorithm;
    use crate::tokens::PrivateKey;

    fn responses(token: &SignedToken) -> Vec<TokenResponse<'_>> {
        let mut all = Vec::new();
        for token_type in ["Bearer", "DPoP"] {
            for (ext, issued) in [
                (Some(900), None),
                (None, Some(TOKEN_TYPE_ACCESS_TOKEN)),
                (None, None),
            ] {
                all.push(TokenResponse {
                    access_token: token,
                    expires_in: 900,
                    ext_expires_in: ext,
                    issued_token_type: issued,
                    token_type,
                });
            }
        }
        all
    }

    #[test]
    fn the_written_body_is_what_serde_json_writes_for_every_algorithm() {
        for alg in SigningAlgorithm::ALL {
            let key = PrivateKey::generate(alg).unwrap();
            let claims = serde_json::json!({"sub": "a\"b\\c\n\u{1F600}", "n": 1});
            let token = SignedToken::signed_by(&key, &claims);
            for response in responses(&token) {
                let body = response.to_json();
                assert_eq!(body, serde_json::to_string(&response).unwrap(), "{alg}");
                let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert_eq!(parsed["access_token"], token.as_str());
            }
        }
    }

    proptest! {
        #[test]
        fn any_claims_and_lifetime_give_the_serde_json_body(sub in "\\PC{0,80}", expires in 0u64..u64::MAX) {
            let key = PrivateKey::generate(SigningAlgorithm::EdDSA).unwrap();
            let token = SignedToken::signed_by(&key, &serde_json::json!({"sub": sub}));
            for mut response in responses(&token) {
                response.expires_in = expires;
                prop_assert_eq!(response.to_json(), serde_json::to_string(&response).unwrap());
            }
        }
    }
}
