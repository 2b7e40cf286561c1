//! The refusal vocabulary: what a refused request is told (the RFC 6749 `error`, a status
//! class, Entra's numeric code, the description) and what operators count (a bounded reason
//! label), in one value, [`Refusal`].
//!
//! Each domain error says its own refusal through [`Refuse`] (`exchange::Denial`,
//! `exchange::RequestError`, `issuers::ValidationError` in `exchange::refusal`,
//! `state::GuardRefusal`); `http::error` only renders a [`Refusal`], and `policy test` /
//! `policy explain` print the same one. This module is a leaf: it imports nothing from the
//! crate and knows nothing of HTTP types.
//!
//! Why the classes are what they are:
//! - Problems with the external token are `invalid_client` (401) under the client-credentials
//!   grant, where the token *is* the client's authentication (RFC 7523), and `invalid_grant`
//!   (400) under token exchange, where it is the grant (RFC 8693): see [`TokenRole`].
//! - A denial is never 429 or 5xx: Azure SDKs retry those many times, turning one bad policy
//!   into a storm. The only 5xx answers are `temporarily_unavailable` (issuer keys or the
//!   replay store unreachable) and `server_error` for bugs.
//! - Descriptions name the failed check and never echo a token or a secret.
//! - What the client is told never discloses the policy (issue 12, flaws 6 and 7): a
//!   [`Refusal::description`] is fixed text plus values the caller sent (bounded, sanitised);
//!   configured subjects, patterns, audiences, CEL text and errors, credential and identity
//!   names the caller did not send, internal URLs and file paths go only into
//!   [`Refusal::detail`], which the audit trail, the logs and `policy explain`/`policy test`
//!   read. Only the development switch `verboseErrors` (loopback listeners only) sends it.

// === Entra codes ===

/// Entra AADSTS900144: a required parameter is missing.
pub const CODE_MISSING_PARAMETER: u32 = 900144;
/// Entra AADSTS70003: the grant type is not supported.
pub const CODE_UNSUPPORTED_GRANT_TYPE: u32 = 70003;
/// Entra AADSTS70011: the scope is invalid (or names roles not assigned).
pub const CODE_INVALID_SCOPE: u32 = 70011;
/// Entra AADSTS9002313: the request is malformed or invalid.
pub const CODE_INVALID_REQUEST: u32 = 9002313;
/// Entra AADSTS90002: the tenant was not found.
pub const CODE_TENANT_NOT_FOUND: u32 = 90002;
/// Entra AADSTS500011: the resource principal was not found.
pub const CODE_RESOURCE_NOT_FOUND: u32 = 500011;
/// Entra AADSTS700016: the application was not found in the tenant.
pub const CODE_APPLICATION_NOT_FOUND: u32 = 700016;
/// Entra AADSTS70021: no matching federated identity record (also: a condition or a claim
/// mapping failed).
pub const CODE_NO_MATCHING_FEDERATED_RECORD: u32 = 70021;
/// Entra AADSTS700211: no matching federated identity record for the token's issuer.
pub const CODE_ISSUER_MISMATCH: u32 = 700211;
/// Entra AADSTS700212: no matching federated identity record for the token's audience.
pub const CODE_AUDIENCE_MISMATCH: u32 = 700212;
/// Entra AADSTS700213: no matching federated identity record for the token's subject.
pub const CODE_SUBJECT_MISMATCH: u32 = 700213;
/// Entra AADSTS7000112: the application is disabled.
pub const CODE_APPLICATION_DISABLED: u32 = 7000112;
/// Entra AADSTS501051: the identity is not assigned to a role of the resource.
pub const CODE_NOT_ASSIGNED: u32 = 501051;
/// Entra AADSTS700024: the assertion is not within its valid time range.
pub const CODE_OUTSIDE_TIME_RANGE: u32 = 700024;
/// Entra AADSTS50027: the token is invalid (malformed, wrong type, bad claims).
pub const CODE_INVALID_TOKEN: u32 = 50027;
/// Entra AADSTS700027: the assertion failed signature validation.
pub const CODE_SIGNATURE_VALIDATION: u32 = 700027;
/// Entra has no public code for a replayed assertion; this one is trustbridge's own.
pub const CODE_REPLAYED: u32 = 7000299;

// === Refusal ===

/// The RFC 6749 (and RFC 8693, RFC 6750 §3) `error` value of a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthError {
    /// `invalid_request`.
    InvalidRequest,
    /// `invalid_client`.
    InvalidClient,
    /// `invalid_grant`.
    InvalidGrant,
    /// `invalid_scope`.
    InvalidScope,
    /// `invalid_target`.
    InvalidTarget,
    /// `unauthorized_client`.
    UnauthorizedClient,
    /// `unsupported_grant_type`.
    UnsupportedGrantType,
    /// `unsupported_response_type`.
    UnsupportedResponseType,
    /// `invalid_dpop_proof` (RFC 9449 §5): the request's DPoP proof was refused.
    InvalidDpopProof,
    /// `slow_down`.
    SlowDown,
    /// `temporarily_unavailable`.
    TemporarilyUnavailable,
    /// `server_error`.
    ServerError,
}

impl OAuthError {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::SlowDown => "slow_down",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
        }
    }
}

/// The status class of a refusal (the HTTP layer picks the status code from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// 400.
    BadRequest,
    /// 401: the client's own authentication (its assertion) was refused.
    Unauthorized,
    /// 404.
    NotFound,
    /// 413.
    PayloadTooLarge,
    /// 429: only rate limits.
    TooManyRequests,
    /// 500: a bug or an unexpected failure.
    Internal,
    /// 503: a dependency is unreachable; retrying later may work.
    Unavailable,
}

impl StatusClass {
    /// The HTTP status code.
    pub fn code(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::NotFound => 404,
            Self::PayloadTooLarge => 413,
            Self::TooManyRequests => 429,
            Self::Internal => 500,
            Self::Unavailable => 503,
        }
    }
}

/// What the external token is to the request, which decides how its problems are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenRole {
    /// Client credentials: the token is the client's authentication (`invalid_client`, 401).
    ClientAssertion,
    /// Token exchange, or not yet known: the token is the grant (`invalid_grant`, 400).
    #[default]
    SubjectToken,
}

impl TokenRole {
    /// How descriptions name the token.
    pub fn noun(self) -> &'static str {
        match self {
            Self::ClientAssertion => "client assertion",
            Self::SubjectToken => "subject token",
        }
    }

    fn rejection(self) -> (OAuthError, StatusClass) {
        match self {
            Self::ClientAssertion => (OAuthError::InvalidClient, StatusClass::Unauthorized),
            Self::SubjectToken => (OAuthError::InvalidGrant, StatusClass::BadRequest),
        }
    }
}

/// What a refusal depends on besides the error itself: the request's grant and where its
/// target came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// What the external token is to the request.
    pub token: TokenRole,
    /// Whether the target came from `scope` (`invalid_scope`) or `resource`/`audience`
    /// (`invalid_target`).
    pub target_from_scope: bool,
}

impl Default for Context {
    /// Before the request is parsed: a subject token, a target from `scope`.
    fn default() -> Self {
        Self {
            token: TokenRole::SubjectToken,
            target_from_scope: true,
        }
    }
}

/// A refused request, as the client is told and as operators count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The OAuth `error`.
    pub error: OAuthError,
    /// The status class.
    pub status: StatusClass,
    /// Entra's numeric code, when there is one (`error_codes`, `TB<code>:` prefix).
    pub code: Option<u32>,
    /// A stable, bounded label for metrics and audit records.
    pub reason: &'static str,
    /// What the client is told (without ids): the failed check, plus only values the caller
    /// sent, bounded and sanitised. Never a configured value, an internal URL or a path.
    pub description: String,
    /// The operator's account of the same refusal (configured values, CEL errors, URLs,
    /// paths), when it says more than [`Self::description`]: written to the audit trail and
    /// logs, printed by `policy explain`, never sent (unless `verboseErrors` is on). Read it
    /// through [`Refusal::detail`].
    pub private_detail: Option<String>,
    /// Seconds the client should wait before retrying (`Retry-After`), when it should.
    pub retry_after: Option<u64>,
    /// The gateway failed rather than refused (a bug, or the replay store down): counted as
    /// an error rather than a denial.
    pub fault: bool,
}

/// Seconds a client is asked to wait after a 503.
pub const UNAVAILABLE_RETRY_AFTER: u64 = 30;

impl Refusal {
    /// A refusal with `error`, `status`, `code`, `reason` and `description`.
    pub fn new(
        error: OAuthError,
        status: StatusClass,
        code: Option<u32>,
        reason: &'static str,
        description: impl Into<String>,
    ) -> Self {
        Self {
            error,
            status,
            code,
            reason,
            description: description.into(),
            private_detail: None,
            retry_after: None,
            fault: false,
        }
    }

    /// A 400 refusal.
    pub fn bad_request(
        error: OAuthError,
        code: Option<u32>,
        reason: &'static str,
        description: impl Into<String>,
    ) -> Self {
        Self::new(error, StatusClass::BadRequest, code, reason, description)
    }

    /// The external token was refused: `invalid_client` (401) or `invalid_grant` (400) by
    /// the token's role in `ctx`.
    pub fn token_rejected(
        ctx: Context,
        code: u32,
        reason: &'static str,
        description: impl Into<String>,
    ) -> Self {
        let (error, status) = ctx.token.rejection();
        Self::new(error, status, Some(code), reason, description)
    }

    /// A dependency is unreachable: 503 `temporarily_unavailable`, retry in
    /// [`UNAVAILABLE_RETRY_AFTER`] seconds.
    pub fn unavailable(reason: &'static str, description: impl Into<String>) -> Self {
        Self {
            retry_after: Some(UNAVAILABLE_RETRY_AFTER),
            ..Self::new(
                OAuthError::TemporarilyUnavailable,
                StatusClass::Unavailable,
                None,
                reason,
                description,
            )
        }
    }

    /// A bug or an unexpected failure, answered generically (the detail is logged, never
    /// sent).
    pub fn server_error() -> Self {
        Self {
            fault: true,
            ..Self::new(
                OAuthError::ServerError,
                StatusClass::Internal,
                None,
                "internal_error",
                "the server could not complete the request",
            )
        }
    }

    /// Marks the refusal as the gateway's failure (see [`Refusal::fault`]).
    #[must_use]
    pub fn as_fault(mut self) -> Self {
        self.fault = true;
        self
    }

    /// Attaches the operator's detail (see [`Refusal::private_detail`]).
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.private_detail = Some(detail.into());
        self
    }

    /// The operator's account of the refusal: its private detail, or the description when
    /// there is nothing more to say. For the audit trail, logs and tools; never the wire.
    pub fn detail(&self) -> &str {
        self.private_detail.as_deref().unwrap_or(&self.description)
    }

    /// Sets the `Retry-After` seconds.
    #[must_use]
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

/// A domain error that knows how it is refused.
pub trait Refuse {
    /// The refusal of this error for a request in `ctx`.
    fn refusal(&self, ctx: Context) -> Refusal;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_problems_depend_on_the_token_role() {
        let cc = Context {
            token: TokenRole::ClientAssertion,
            ..Context::default()
        };
        let r = Refusal::token_rejected(cc, CODE_SIGNATURE_VALIDATION, "bad_signature", "x");
        assert_eq!(
            (r.error.as_str(), r.status.code(), r.code),
            ("invalid_client", 401, Some(700027))
        );
        let r = Refusal::token_rejected(Context::default(), CODE_SIGNATURE_VALIDATION, "b", "x");
        assert_eq!((r.error.as_str(), r.status.code()), ("invalid_grant", 400));
    }

    #[test]
    fn unavailable_asks_to_retry_and_server_errors_are_faults() {
        let r = Refusal::unavailable("x", "y");
        assert_eq!(r.status.code(), 503);
        assert_eq!(r.retry_after, Some(UNAVAILABLE_RETRY_AFTER));
        assert!(!r.fault);
        let r = Refusal::server_error();
        assert_eq!((r.error.as_str(), r.status.code()), ("server_error", 500));
        assert!(r.fault);
        assert_eq!(r.reason, "internal_error");
    }
}
