//! Parsing the token endpoint's form body into an [`ExchangeRequest`], for both grants of
//! DESIGN §4: Entra's client credentials with a federated assertion, and RFC 8693 token exchange.
//!
//! The body is hostile input: parameters appearing twice are refused (RFC 6749 §3.2),
//! parameters we do not know are ignored (RFC 6749 §3.2 again), and nothing echoes a token.

use std::borrow::Cow;

use crate::refusal::{self, Context, OAuthError, Refusal, Refuse, TokenRole};

/// `client_assertion_type` of a JWT assertion (RFC 7523).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// `grant_type` of RFC 8693 token exchange.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// `subject_token_type` for a JWT.
pub const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
/// `subject_token_type` for an OIDC ID token.
pub const TOKEN_TYPE_ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
/// `requested_token_type` / `issued_token_type` of an access token.
pub const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Maximum number of form parameters accepted.
const MAX_PARAMS: usize = 32;
/// Scope values OIDC clients add that carry no resource; ignored like Entra does.
const IGNORED_SCOPES: [&str; 4] = ["openid", "profile", "offline_access", "email"];
/// Google API OAuth scopes. google-auth's `external_account` credentials send them beside
/// `audience` in their token exchange (Google client libraries default to
/// `https://www.googleapis.com/auth/cloud-platform`). They name Google APIs, never a
/// trustbridge resource, so token exchange ignores them and takes its target from
/// `audience`/`resource`.
const GOOGLE_SCOPE_PREFIX: &str = "https://www.googleapis.com/auth/";

/// Which grant the client used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    /// `client_credentials` with `client_assertion` (Entra workload identity federation).
    ClientCredentials,
    /// RFC 8693 token exchange.
    TokenExchange,
}

impl GrantType {
    /// What the external token is to a request of this grant.
    pub fn token_role(self) -> TokenRole {
        match self {
            Self::ClientCredentials => TokenRole::ClientAssertion,
            Self::TokenExchange => TokenRole::SubjectToken,
        }
    }

    /// A short label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::TokenExchange => "token_exchange",
        }
    }
}

/// Which roles the client asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestedRoles {
    /// `<resource>/.default`, or a bare resource: every assigned role.
    All,
    /// `<resource>/<role> ...`: exactly these (each must be assigned).
    Specific(Vec<String>),
}

/// The resource a token is requested for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The resource's identifier URI.
    pub resource: String,
    /// Requested roles.
    pub roles: RequestedRoles,
    /// Whether the resource came from `scope` (errors then say `invalid_scope`) or from
    /// `resource`/`audience` (`invalid_target`).
    pub from_scope: bool,
}

/// A parsed token request.
#[derive(Debug, Clone)]
pub struct ExchangeRequest {
    /// The tenant from the URL path.
    pub tenant: String,
    /// The grant used.
    pub grant: GrantType,
    /// `client_id`, when given (required for client credentials).
    pub client_id: Option<String>,
    /// The external token (`client_assertion` or `subject_token`).
    pub subject_token: String,
    /// What the token is for.
    pub target: Target,
    /// Facts about the HTTP request itself (client address, TLS, proof of possession), filled
    /// in by the handler; the default (nothing known) when parsed from a form alone.
    pub context: RequestContext,
}

/// What the decision may know about the HTTP request beside its form: passed in as a value so
/// the decision stays pure (no HTTP types). `policy test` cases set it directly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// The effective client address (the TCP peer, or the rightmost untrusted hop of
    /// `Forwarded`/`X-Forwarded-For` when the peer is a trusted proxy); `None` when unknown,
    /// which no `allowedNetworks` contains.
    pub client_ip: Option<std::net::IpAddr>,
    /// Whether the request came over TLS.
    pub tls: bool,
    /// The RFC 7638 thumbprint of the key of the request's valid DPoP proof, if any.
    pub proof_key: Option<String>,
}

impl RequestContext {
    /// Nothing known (the default, as a constant).
    pub const NONE: Self = Self {
        client_ip: None,
        tls: false,
        proof_key: None,
    };
    /// The `request` variable conditions see, at `now`.
    pub fn vars(&self, now: std::time::SystemTime) -> crate::policy::cel::RequestVars {
        crate::policy::cel::RequestVars {
            ip: self.client_ip,
            time: now,
            tls: self.tls,
        }
    }
}

/// Why a request body was refused before any token was looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A required parameter is missing or empty.
    #[error("the request body must contain the parameter '{0}'")]
    Missing(&'static str),
    /// A parameter appears more than once.
    #[error("the parameter '{0}' is included more than once")]
    Duplicate(String),
    /// Too many parameters.
    #[error("the request has too many parameters")]
    TooManyParameters,
    /// The body is not `application/x-www-form-urlencoded` UTF-8.
    #[error("the request body must be application/x-www-form-urlencoded")]
    NotForm,
    /// `grant_type` is not one we support.
    #[error("the grant type is not supported; use client_credentials or {TOKEN_EXCHANGE}")]
    UnsupportedGrant,
    /// A parameter has a value we do not accept.
    #[error("the parameter '{name}' is invalid: {reason}")]
    Invalid {
        /// Parameter name.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// `scope` is malformed or names several resources.
    #[error("invalid scope: {0}")]
    Scope(String),
    /// `resource`/`audience`/`scope` disagree on the target.
    #[error("invalid target: {0}")]
    Target(String),
}

impl Refuse for RequestError {
    /// Always 400; only the OAuth error and the Entra code vary.
    fn refusal(&self, _: Context) -> Refusal {
        let (error, code) = match self {
            Self::Missing(_) => (OAuthError::InvalidRequest, refusal::CODE_MISSING_PARAMETER),
            Self::UnsupportedGrant => (
                OAuthError::UnsupportedGrantType,
                refusal::CODE_UNSUPPORTED_GRANT_TYPE,
            ),
            Self::Scope(_) => (OAuthError::InvalidScope, refusal::CODE_INVALID_SCOPE),
            Self::Target(_) => (OAuthError::InvalidTarget, refusal::CODE_INVALID_REQUEST),
            Self::Duplicate(_) | Self::TooManyParameters | Self::NotForm | Self::Invalid { .. } => {
                (OAuthError::InvalidRequest, refusal::CODE_INVALID_REQUEST)
            }
        };
        Refusal::bad_request(error, Some(code), "invalid_request", self.to_string())
    }
}

impl ExchangeRequest {
    /// The refusal context of this request: its grant's token role, where its target came
    /// from.
    pub fn refusal_context(&self) -> Context {
        Context {
            token: self.grant.token_role(),
            target_from_scope: self.target.from_scope,
        }
    }

    /// Parses a urlencoded form body for `tenant`.
    pub fn parse(tenant: &str, body: &[u8]) -> Result<Self, RequestError> {
        let params = parse_form(body)?;
        let get = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_ref())
                .filter(|v| !v.is_empty())
        };
        let grant_type = get("grant_type").ok_or(RequestError::Missing("grant_type"))?;
        let client_id = get("client_id").map(str::to_string);
        if get("client_secret").is_some() {
            return Err(RequestError::Invalid {
                name: "client_secret",
                reason: "client secrets are not supported; present a federated token".into(),
            });
        }
        match grant_type {
            "client_credentials" => {
                let client_id = client_id.ok_or(RequestError::Missing("client_id"))?;
                let assertion_type = get("client_assertion_type")
                    .ok_or(RequestError::Missing("client_assertion_type"))?;
                if assertion_type != JWT_BEARER {
                    return Err(RequestError::Invalid {
                        name: "client_assertion_type",
                        reason: format!("must be {JWT_BEARER}"),
                    });
                }
                // Surrounding whitespace is never part of a compact JWS; azure-identity sends a
                // token file's trailing newline as is (`echo $TOKEN > file`).
                let assertion = get("client_assertion")
                    .map(str::trim_ascii)
                    .filter(|v| !v.is_empty())
                    .ok_or(RequestError::Missing("client_assertion"))?;
                let scope = get("scope").ok_or(RequestError::Missing("scope"))?;
                let target = parse_scope(scope)?;
                Ok(Self {
                    tenant: tenant.to_string(),
                    grant: GrantType::ClientCredentials,
                    client_id: Some(client_id),
                    subject_token: assertion.to_string(),
                    target,
                    context: RequestContext::default(),
                })
            }
            TOKEN_EXCHANGE => {
                let subject_token = get("subject_token")
                    .map(str::trim_ascii)
                    .filter(|v| !v.is_empty())
                    .ok_or(RequestError::Missing("subject_token"))?;
                let token_type =
                    get("subject_token_type").ok_or(RequestError::Missing("subject_token_type"))?;
                if token_type != TOKEN_TYPE_JWT && token_type != TOKEN_TYPE_ID_TOKEN {
                    return Err(RequestError::Invalid {
                        name: "subject_token_type",
                        reason: format!("must be {TOKEN_TYPE_JWT} or {TOKEN_TYPE_ID_TOKEN}"),
                    });
                }
                if let Some(requested) = get("requested_token_type")
                    && requested != TOKEN_TYPE_ACCESS_TOKEN
                {
                    return Err(RequestError::Invalid {
                        name: "requested_token_type",
                        reason: format!("only {TOKEN_TYPE_ACCESS_TOKEN} can be issued"),
                    });
                }
                if get("actor_token").is_some() {
                    return Err(RequestError::Invalid {
                        name: "actor_token",
                        reason: "delegation (actor tokens) is not supported".into(),
                    });
                }
                let target = exchange_target(get("scope"), get("resource"), get("audience"))?;
                Ok(Self {
                    tenant: tenant.to_string(),
                    grant: GrantType::TokenExchange,
                    client_id,
                    subject_token: subject_token.to_string(),
                    target,
                    context: RequestContext::default(),
                })
            }
            _ => Err(RequestError::UnsupportedGrant),
        }
    }
}

/// The decoded parameters of a form body, in order; at most [`MAX_PARAMS`], names unique.
type Params<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

/// Decodes the form, refusing duplicates and oversized parameter lists.
fn parse_form(body: &[u8]) -> Result<Params<'_>, RequestError> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Err(RequestError::NotForm);
    };
    let mut params = Params::with_capacity(8);
    for (name, value) in form_pairs(text) {
        if params.len() >= MAX_PARAMS {
            return Err(RequestError::TooManyParameters);
        }
        if params.iter().any(|(seen, _)| *seen == name) {
            // Keep the echoed name short and printable: it is attacker-chosen.
            let shown = crate::text::shown(&name, 40);
            return Err(RequestError::Duplicate(shown));
        }
        params.push((name, value));
    }
    Ok(params)
}

/// The `name=value` pairs of an `application/x-www-form-urlencoded` body, exactly as
/// `form_urlencoded::parse` yields them. A pair holding no `+` and no `%` (a JWT, which is
/// base64url and dots, is one) decodes to itself and is borrowed after one vectorised scan;
/// any other name or value is decoded as `form_urlencoded` decodes it ([`decode_component`]).
/// The per-byte decoder was 5 % of an exchange's instructions, spent mostly proving that a
/// 1 KB assertion needs no decoding.
fn form_pairs(text: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    crate::text::split_ascii(text, b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(name), decode_component(value))
        })
}

/// A form name or value decoded as `form_urlencoded` does: `+` is a space, `%XX` the byte it
/// names (any other `%` stays), and the bytes are read as UTF-8 with replacement characters.
/// Borrowed when there is nothing to decode; otherwise written into one buffer of the input's
/// length (decoding never lengthens), where `form_urlencoded` grew its buffer as it went.
fn decode_component(raw: &str) -> Cow<'_, str> {
    if memchr::memchr2(b'+', b'%', raw.as_bytes()).is_none() {
        return Cow::Borrowed(raw);
    }
    let spaced: Cow<'_, [u8]> = if memchr::memchr(b'+', raw.as_bytes()).is_some() {
        Cow::Owned(
            raw.bytes()
                .map(|b| if b == b'+' { b' ' } else { b })
                .collect(),
        )
    } else {
        Cow::Borrowed(raw.as_bytes())
    };
    let mut decoded = Vec::with_capacity(spaced.len());
    decoded.extend(percent_encoding::percent_decode(&spaced));
    match String::from_utf8(decoded) {
        Ok(text) => Cow::Owned(text),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

fn parse_scope(scope: &str) -> Result<Target, RequestError> {
    let mut resource: Option<&str> = None;
    let mut roles = Vec::new();
    let mut default = false;
    for item in scope.split_ascii_whitespace() {
        if IGNORED_SCOPES.contains(&item) {
            continue;
        }
        let Some((res, role)) = item.rsplit_once('/') else {
            return Err(RequestError::Scope(
                "each scope must be <resource>/.default or <resource>/<role>".into(),
            ));
        };
        if res.is_empty() || role.is_empty() {
            return Err(RequestError::Scope(
                "each scope must be <resource>/.default or <resource>/<role>".into(),
            ));
        }
        match resource {
            None => resource = Some(res),
            Some(r) if r == res => {}
            Some(_) => {
                return Err(RequestError::Scope(
                    "all scopes must name the same resource".into(),
                ));
            }
        }
        if role == ".default" {
            default = true;
        } else if !roles.iter().any(|r: &String| r == role) {
            roles.push(role.to_string());
        }
    }
    let resource = resource.ok_or_else(|| RequestError::Scope("no resource requested".into()))?;
    if default && !roles.is_empty() {
        return Err(RequestError::Scope(
            ".default cannot be combined with specific roles".into(),
        ));
    }
    Ok(Target {
        resource: resource.to_string(),
        roles: if default {
            RequestedRoles::All
        } else {
            RequestedRoles::Specific(roles)
        },
        from_scope: true,
    })
}

/// Combines RFC 8693 `resource`/`audience` (RFC 8707) with `scope` into one target.
fn exchange_target(
    scope: Option<&str>,
    resource: Option<&str>,
    audience: Option<&str>,
) -> Result<Target, RequestError> {
    let strip = |v: &str| v.strip_suffix("/.default").unwrap_or(v).to_string();
    let (scope, google_only) = match scope {
        Some(scope) => {
            let kept: Vec<&str> = scope
                .split_ascii_whitespace()
                .filter(|s| !s.starts_with(GOOGLE_SCOPE_PREFIX))
                .collect();
            let google_only = kept.is_empty() && !scope.trim_ascii().is_empty();
            ((!kept.is_empty()).then(|| kept.join(" ")), google_only)
        }
        None => (None, false),
    };
    let scope = scope.as_deref();
    let named = match (resource.map(strip), audience.map(strip)) {
        (Some(r), Some(a)) if r != a => {
            return Err(RequestError::Target(
                "resource and audience name different resources".into(),
            ));
        }
        (Some(r), _) => Some(r),
        (None, a) => a,
    };
    match (named, scope) {
        (None, None) if google_only => Err(RequestError::Target(
            "Google API scopes name no trustbridge resource; name it with audience or resource"
                .into(),
        )),
        (None, None) => Err(RequestError::Missing("scope")),
        (None, Some(scope)) => parse_scope(scope),
        (Some(resource), None) => Ok(Target {
            resource,
            roles: RequestedRoles::All,
            from_scope: false,
        }),
        (Some(resource), Some(scope)) => {
            let mut target = parse_scope(scope)?;
            if target.resource != resource {
                return Err(RequestError::Target(
                    "scope names a different resource than resource/audience".into(),
                ));
            }
            target.from_scope = false;
            Ok(target)
        }
    }
}

#[cfg(test)]
mod tests;
