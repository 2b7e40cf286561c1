//! OpenID discovery: from a configured issuer URL to its `jwks_uri`.
//!
//! The document's `issuer` must equal the configured issuer byte for byte (OpenID Connect
//! Discovery §4.3), otherwise a misconfigured or hostile host could hand out another issuer's
//! keys. The `jwks_uri` it names is fetched under the same scheme rules as the document.

use openidconnect::{IssuerUrl, JsonWebKeySetUrl};
use serde::Deserialize;

use super::fetch::{FetchError, Fetcher, check_scheme};

/// The discovery path, relative to the issuer.
pub const WELL_KNOWN: &str = ".well-known/openid-configuration";

/// Why discovery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// The configured issuer is not a URL.
    #[error("issuer {0:?} is not a valid URL")]
    InvalidIssuer(String),
    /// The document could not be fetched.
    #[error("discovery: {0}")]
    Fetch(#[from] FetchError),
    /// The document is not JSON, or lacks `issuer`/`jwks_uri`, or they are not URLs.
    #[error("discovery document is invalid: {0}")]
    InvalidDocument(String),
    /// The document names another issuer.
    #[error("discovery document names issuer {found:?}, expected {expected:?}")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// What the document said (truncated).
        found: String,
    },
}

/// The two fields trustbridge needs from a discovery document.
///
/// Not `openidconnect::CoreProviderMetadata` (which trustbridge's own discovery document is
/// built as, see `http::discovery`): its `authorization_endpoint`,
/// `response_types_supported`, `subject_types_supported` and
/// `id_token_signing_alg_values_supported` are required, not `Option`s, and Kubernetes, EKS and
/// GKE service-account issuers omit some of them, so such a document would not parse at all.
/// Its algorithm lists would also drop names it does not know rather than fail. Reading two
/// fields keeps every issuer readable and nothing unchecked: unknown fields are ignored, and
/// openidconnect's URL newtypes keep the original string, so the `issuer` comparison below
/// really is byte for byte.
#[derive(Debug, Deserialize)]
struct DiscoveryDocument {
    issuer: IssuerUrl,
    jwks_uri: JsonWebKeySetUrl,
}

/// The discovery URL of `issuer` (a trailing slash on the issuer does not double).
pub fn discovery_url(issuer: &str) -> Result<String, DiscoveryError> {
    let issuer_url = IssuerUrl::new(issuer.to_string())
        .map_err(|_| DiscoveryError::InvalidIssuer(issuer.to_string()))?;
    issuer_url
        .join(WELL_KNOWN)
        .map(String::from)
        .map_err(|_| DiscoveryError::InvalidIssuer(issuer.to_string()))
}

/// Parses a discovery document and checks it belongs to `issuer`; returns its `jwks_uri`.
///
/// Errors: [`DiscoveryError::InvalidDocument`], [`DiscoveryError::IssuerMismatch`], and
/// [`DiscoveryError::Fetch`] with [`FetchError::InsecureScheme`] when `jwks_uri` breaks the
/// scheme rules.
pub fn jwks_uri_from_document(
    body: &[u8],
    issuer: &str,
    allow_insecure_http: bool,
) -> Result<String, DiscoveryError> {
    let doc: DiscoveryDocument = serde_json::from_slice(body).map_err(|e| {
        DiscoveryError::InvalidDocument(format!("{} at line {}", classify(&e), e.line()))
    })?;
    if doc.issuer.as_str() != issuer {
        let found: String = doc.issuer.as_str().chars().take(200).collect();
        return Err(DiscoveryError::IssuerMismatch {
            expected: issuer.to_string(),
            found,
        });
    }
    // Return the URL as parsed and checked, not the document's spelling: `https:/host` passes
    // the scheme check as `https://host/`, and what is fetched must be exactly what was checked
    // (found by the `discovery` fuzz target).
    let jwks_uri = check_scheme(doc.jwks_uri.as_str(), allow_insecure_http)?;
    Ok(jwks_uri.into())
}

fn classify(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Data => "missing or invalid issuer/jwks_uri",
        _ => "not a JSON document",
    }
}

/// Fetches and checks `issuer`'s discovery document; returns its `jwks_uri`.
pub async fn discover(
    fetcher: &Fetcher,
    issuer: &str,
    allow_insecure_http: bool,
) -> Result<String, DiscoveryError> {
    let url = discovery_url(issuer)?;
    let fetched = fetcher.get(&url, allow_insecure_http).await?;
    jwks_uri_from_document(&fetched.body, issuer, allow_insecure_http)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_url_minds_trailing_slash() {
        assert_eq!(
            discovery_url("https://a.example").unwrap(),
            "https://a.example/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url("https://a.example/tenant/").unwrap(),
            "https://a.example/tenant/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url("https://a.example/tenant").unwrap(),
            "https://a.example/tenant/.well-known/openid-configuration"
        );
        assert!(discovery_url("not a url").is_err());
    }

    #[test]
    fn document_must_name_the_issuer_exactly() {
        let doc =
            br#"{"issuer":"https://a.example","jwks_uri":"https://a.example/keys","extra":1}"#;
        assert_eq!(
            jwks_uri_from_document(doc, "https://a.example", false).unwrap(),
            "https://a.example/keys"
        );
        // A trailing slash is a different issuer.
        assert!(matches!(
            jwks_uri_from_document(doc, "https://a.example/", false),
            Err(DiscoveryError::IssuerMismatch { .. })
        ));
    }

    /// Regression input of the `discovery` fuzz target: a `jwks_uri` spelled `https:/host`
    /// came back verbatim although it was checked (and would be fetched) as `https://host/`.
    #[test]
    fn fuzz_crash_jwks_uri_is_returned_as_checked() {
        let doc = br#"{"id_toted":["RS256"],"issuer":"https://issuer.fuzz.example","jwks_uri":"https:/suer.fuzz.example.f?zz.example/keys","rd":["id_token"]}"#;
        let uri = jwks_uri_from_document(doc, "https://issuer.fuzz.example", false).unwrap();
        assert_eq!(uri, "https://suer.fuzz.example.f/?zz.example/keys");
        let doc = br#"{"issuer":"https://a.example","jwks_uri":"http:/a.example/keys"}"#;
        assert!(matches!(
            jwks_uri_from_document(doc, "https://a.example", false),
            Err(DiscoveryError::Fetch(FetchError::InsecureScheme { .. }))
        ));
    }

    #[test]
    fn kubernetes_style_document_without_authorization_endpoint() {
        let doc =
            br#"{"issuer":"https://k8s.example","jwks_uri":"https://k8s.example/openid/v1/jwks",
            "response_types_supported":["id_token"],"subject_types_supported":["public"],
            "id_token_signing_alg_values_supported":["RS256"]}"#;
        assert!(jwks_uri_from_document(doc, "https://k8s.example", false).is_ok());
    }

    #[test]
    fn invalid_documents() {
        for doc in [
            &b"nope"[..],
            br#"{"issuer":"https://a.example"}"#,
            br#"{"jwks_uri":"https://a.example/keys"}"#,
            br#"{"issuer":"https://a.example","jwks_uri":"not a url"}"#,
            br#"{"issuer":7,"jwks_uri":"https://a.example/keys"}"#,
        ] {
            assert!(
                matches!(
                    jwks_uri_from_document(doc, "https://a.example", false),
                    Err(DiscoveryError::InvalidDocument(_))
                ),
                "{}",
                String::from_utf8_lossy(doc)
            );
        }
    }

    #[test]
    fn jwks_uri_must_be_https() {
        let doc = br#"{"issuer":"https://a.example","jwks_uri":"http://a.example/keys"}"#;
        assert!(matches!(
            jwks_uri_from_document(doc, "https://a.example", false),
            Err(DiscoveryError::Fetch(FetchError::InsecureScheme { .. }))
        ));
        assert!(jwks_uri_from_document(doc, "https://a.example", true).is_ok());
    }
}
