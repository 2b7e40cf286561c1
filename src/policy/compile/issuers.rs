//! Compiling `kind: Issuer` documents: URLs, key source, preset defaults, algorithms, leeway
//! and subject-token hygiene.
//!
//! Pure: the files an Issuer names (`jwksFile`, `caFile`) were probed by `policy::load`, and
//! only what it found ([`ReferencedFiles`](super::ReferencedFiles)) is consulted here.

use std::path::PathBuf;
use std::time::Duration;

use crate::fetch_settings::{FetchOverrides, Field};
use crate::jose::SigningAlgorithm;
use crate::policy::compile::Compiler;
use crate::policy::model::{Issuer, KeySourceSpec, Origin, TokenHygiene};
use crate::policy::presets::{self, Preset};
use crate::policy::raw::{self, ByteCount, HumanDuration};

/// Largest accepted `leeway`.
pub const MAX_LEEWAY: Duration = Duration::from_secs(5 * 60);
/// Smallest accepted Issuer `maxTokenLifetime` / `maxTokenAge`.
pub const MIN_SUBJECT_TOKEN_LIMIT: Duration = Duration::from_secs(60);
/// Largest accepted Issuer `maxTokenLifetime` / `maxTokenAge` (a year and a day: enough for the
/// longest Kubernetes tokens, for operators who knowingly accept them).
pub const MAX_SUBJECT_TOKEN_LIMIT: Duration = Duration::from_secs(366 * 24 * 3600);

/// The first line of a PEM certificate, which a `caFile` must hold at least once.
const PEM_CERTIFICATE_BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";

impl Compiler {
    pub(super) fn issuer(&mut self, origin: &Origin, raw: &raw::Issuer) -> Option<Issuer> {
        let before = self.problems.len();
        if raw.name.trim().is_empty() {
            self.problem(origin, "name", "issuer name is empty");
        } else if let Some(first) = self.issuer_names.get(&raw.name).cloned() {
            self.problem(
                origin,
                "name",
                format!(
                    "duplicate Issuer name {:?} (first declared at {first})",
                    raw.name
                ),
            );
        } else {
            self.issuer_names.insert(raw.name.clone(), origin.clone());
        }

        if raw.issuer.contains("://") {
            self.check_url(origin, "issuer", &raw.issuer, raw.allow_insecure_http);
        } else {
            // `Url::parse("accounts.google.com:443")` "succeeds" with scheme
            // `accounts.google.com`; say plainly what is wrong instead.
            self.problem(
                origin,
                "issuer",
                format!(
                    "issuer {:?} has no scheme; write the exact `iss` of the tokens, e.g. \
                     \"https://{}\" (an issuer without https:// cannot be discovered and \
                     would match tokens of whoever else uses that string)",
                    raw.issuer,
                    raw.issuer.trim_start_matches('/')
                ),
            );
        }
        if let Some(first) = self.issuer_urls.get(&raw.issuer).cloned() {
            self.problem(
                origin,
                "issuer",
                format!(
                    "issuer URL {:?} is already declared at {first}; tokens are matched to an \
                     Issuer by exact `iss`, so each URL may be declared once",
                    raw.issuer
                ),
            );
        } else {
            self.issuer_urls.insert(raw.issuer.clone(), origin.clone());
            self.issuer_twin(origin, &raw.issuer);
        }

        let sources = usize::from(raw.jwks_uri.is_some())
            + usize::from(raw.jwks_file.is_some())
            + usize::from(raw.demo);
        if sources > 1 {
            self.problem(
                origin,
                "",
                "set at most one of jwksUri, jwksFile and demo (none means OIDC discovery)",
            );
        }
        let keys = if let Some(uri) = &raw.jwks_uri {
            self.check_url(origin, "jwksUri", uri, raw.allow_insecure_http);
            KeySourceSpec::JwksUri(uri.clone())
        } else if let Some(file) = &raw.jwks_file {
            KeySourceSpec::JwksFile(self.jwks_file(origin, file))
        } else if raw.demo {
            KeySourceSpec::Demo
        } else {
            KeySourceSpec::Discovery
        };

        let preset = raw.preset;
        let algorithms = match &raw.algorithms {
            None => default_algorithms(preset),
            Some(names) => self.algorithms(origin, names),
        };
        if !raw.allow_insecure_http
            && raw.issuer.contains("://")
            && let Err(message) = presets::check_issuer_url(preset, &raw.issuer)
        {
            self.problem(origin, "issuer", message);
        }
        if presets::ambiguous_issuer(&raw.issuer) && raw.jwks_file.is_none() {
            self.problem(
                origin,
                "issuer",
                format!(
                    "issuer {:?} is the in-cluster API server name that countless clusters \
                     share, so its tokens do not say which cluster minted them; pin this \
                     cluster's keys with jwksFile (or configure the cluster with a unique \
                     --service-account-issuer URL)",
                    raw.issuer
                ),
            );
        }
        let ca_file = raw
            .ca_file
            .as_deref()
            .map(|file| self.ca_file(origin, file));
        if ca_file.is_some() && (raw.jwks_file.is_some() || raw.demo) {
            self.problem(
                origin,
                "caFile",
                "caFile applies to discovery and jwksUri fetches; with jwksFile or demo \
                 nothing is fetched",
            );
        }
        let defaults = presets::defaults(preset, &raw.issuer);
        let hygiene = self.hygiene(origin, raw, preset, &defaults);

        let leeway = raw.leeway.map_or(defaults.leeway, |HumanDuration(d)| d);
        if leeway > MAX_LEEWAY {
            self.problem(
                origin,
                "leeway",
                format!(
                    "leeway {} is longer than the maximum {}",
                    humantime::format_duration(leeway),
                    humantime::format_duration(MAX_LEEWAY)
                ),
            );
        }

        let fetch = raw
            .fetch
            .as_ref()
            .map(|block| self.fetch(origin, block))
            .unwrap_or_default();

        (self.problems.len() == before).then(|| Issuer {
            name: raw.name.clone(),
            issuer: raw.issuer.clone(),
            preset,
            keys,
            algorithms,
            leeway,
            allow_insecure_http: raw.allow_insecure_http,
            one_time_use: raw.one_time_use,
            origin: origin.clone(),
            hygiene,
            ca_file,
            fetch,
        })
    }

    /// The `fetch:` block: each value in its range, and the values it sets consistent with
    /// each other (against the global settings they are checked when `issuers` merges them).
    fn fetch(&mut self, origin: &Origin, block: &raw::Fetch) -> FetchOverrides {
        let duration = |this: &mut Self, field: Field, value: Option<HumanDuration>| {
            let HumanDuration(d) = value?;
            let key = field.policy_key().unwrap_or_default();
            field
                .check_duration(d)
                .map_err(|message| this.problem(origin, format!("fetch.{key}"), message))
                .ok()
        };
        let overrides = FetchOverrides {
            timeout: duration(self, Field::Timeout, block.timeout),
            max_body_bytes: block.max_document_size.and_then(|ByteCount(n)| {
                Field::MaxDocumentSize
                    .check_bytes(n)
                    .map_err(|message| self.problem(origin, "fetch.maxDocumentSize", message))
                    .ok()
            }),
            min_refresh_interval: duration(self, Field::RefreshCooldown, block.refresh_cooldown),
            default_ttl: duration(self, Field::DefaultTtl, block.default_ttl),
            min_ttl: duration(self, Field::MinTtl, block.min_ttl),
            max_ttl: duration(self, Field::MaxTtl, block.max_ttl),
            max_stale: duration(self, Field::MaxStale, block.max_stale),
        };
        for message in overrides.relation_problems() {
            self.problem(origin, "fetch", message);
        }
        overrides
    }

    /// Refuses `https://a.example/` next to `https://a.example` (or the other way round): the
    /// two are different `iss` values, and declaring both almost always means one is a typo
    /// whose tokens would silently be matched to the other's policies.
    fn issuer_twin(&mut self, origin: &Origin, issuer: &str) {
        let key = issuer.trim_end_matches('/').to_string();
        match self.issuer_twins.get(&key).cloned() {
            Some((first_url, first)) => self.problem(
                origin,
                "issuer",
                format!(
                    "issuer URL {issuer:?} differs from {first_url:?} (declared at {first}) only \
                     by a trailing slash; `iss` is compared byte for byte, so declare the one \
                     form the platform puts in its tokens, once"
                ),
            ),
            None => {
                self.issuer_twins
                    .insert(key, (issuer.to_string(), origin.clone()));
            }
        }
    }

    fn hygiene(
        &mut self,
        origin: &Origin,
        raw: &raw::Issuer,
        preset: Preset,
        defaults: &presets::PresetDefaults,
    ) -> TokenHygiene {
        let max_lifetime = raw
            .max_token_lifetime
            .map_or(defaults.max_token_lifetime, |HumanDuration(d)| d);
        let max_age = raw
            .max_token_age
            .map_or(defaults.max_token_age, |HumanDuration(d)| d);
        for (path, value) in [("maxTokenLifetime", max_lifetime), ("maxTokenAge", max_age)] {
            if value < MIN_SUBJECT_TOKEN_LIMIT || value > MAX_SUBJECT_TOKEN_LIMIT {
                self.problem(
                    origin,
                    path,
                    format!(
                        "{path} {} is outside {} to {}",
                        humantime::format_duration(value),
                        humantime::format_duration(MIN_SUBJECT_TOKEN_LIMIT),
                        humantime::format_duration(MAX_SUBJECT_TOKEN_LIMIT)
                    ),
                );
            }
        }
        let required_type = match raw.required_type.as_deref() {
            None => defaults.required_type.map(str::to_string),
            Some("any") => None,
            Some(typ) if !typ.is_empty() && typ.chars().all(|c| c.is_ascii_graphic()) => {
                Some(typ.to_string())
            }
            Some(typ) => {
                self.problem(
                    origin,
                    "requiredType",
                    format!(
                        "requiredType {typ:?} is not a media type name such as \"JWT\" (write \
                         \"any\" to accept tokens with any or no typ)"
                    ),
                );
                None
            }
        };
        TokenHygiene {
            max_lifetime,
            max_age,
            required_type,
            require_iat: preset != Preset::Generic,
        }
    }

    fn ca_file(&mut self, origin: &Origin, file: &str) -> PathBuf {
        let resolved = origin.resolve(file);
        // Parsing is the HTTP client's job; here only make sure the file was there and looks
        // like PEM certificates, so a typo fails the load instead of every fetch.
        let looks_like_pem = self.files.ca_files.get(&resolved).is_some_and(|bytes| {
            bytes
                .windows(PEM_CERTIFICATE_BEGIN.len())
                .any(|w| w == PEM_CERTIFICATE_BEGIN)
        });
        if !looks_like_pem {
            self.problem(
                origin,
                "caFile",
                format!(
                    "CA file {} does not exist or holds no PEM certificate (a relative caFile is \
                     resolved against the directory of the policy file naming it)",
                    resolved.display()
                ),
            );
        }
        resolved
    }

    /// An absolute https URL (http when `insecure`), with a host, no credentials, no query and
    /// no fragment.
    fn check_url(&mut self, origin: &Origin, path: &str, value: &str, insecure: bool) {
        // The URL parser forgives surrounding whitespace, but `iss` is compared byte for byte.
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            self.problem(
                origin,
                path,
                format!("{value:?} holds whitespace or control characters"),
            );
            return;
        }
        let url = match url::Url::parse(value) {
            Ok(url) => url,
            Err(e) => {
                self.problem(
                    origin,
                    path,
                    format!("{value:?} is not an absolute URL ({e})"),
                );
                return;
            }
        };
        match url.scheme() {
            "https" => {}
            "http" if insecure => {}
            "http" => self.problem(
                origin,
                path,
                format!(
                    "{value:?} uses http; use https (allowInsecureHttp: true is only for issuers \
                     on loopback in tests and local demos)"
                ),
            ),
            other => self.problem(
                origin,
                path,
                format!("{value:?} has scheme {other:?}; use https"),
            ),
        }
        if url.host_str().is_none_or(str::is_empty) {
            self.problem(origin, path, format!("{value:?} has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            self.problem(origin, path, format!("{value:?} must not hold credentials"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            self.problem(
                origin,
                path,
                format!("{value:?} must not have a query or fragment"),
            );
        }
    }

    fn jwks_file(&mut self, origin: &Origin, file: &str) -> PathBuf {
        let resolved = origin.resolve(file);
        if file.is_empty() || !self.files.jwks_files.contains(&resolved) {
            self.problem(
                origin,
                "jwksFile",
                format!(
                    "JWKS file {} does not exist (a relative jwksFile is resolved against the \
                     directory of the policy file naming it)",
                    resolved.display()
                ),
            );
        }
        resolved
    }

    fn algorithms(&mut self, origin: &Origin, names: &[String]) -> Vec<SigningAlgorithm> {
        if names.is_empty() {
            self.problem(
                origin,
                "algorithms",
                format!(
                    "algorithms is empty; list at least one of {} (or omit it for the preset's \
                     default)",
                    supported_algorithms()
                ),
            );
        }
        let mut algorithms = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let path = format!("algorithms[{i}]");
            let lower = name.to_ascii_lowercase();
            match SigningAlgorithm::parse(name) {
                Some(alg) if algorithms.contains(&alg) => {
                    self.problem(origin, path, format!("duplicate algorithm {name:?}"));
                }
                Some(alg) => algorithms.push(alg),
                None if lower == "none" || lower.starts_with("hs") => self.problem(
                    origin,
                    path,
                    format!(
                        "algorithm {name:?} is never allowed: `none` tokens carry no signature \
                         and HMAC (HS*) keys are shared secrets, not public keys an issuer can \
                         publish; supported: {}",
                        supported_algorithms()
                    ),
                ),
                None => self.problem(
                    origin,
                    path,
                    format!(
                        "unsupported algorithm {name:?}; supported (case-sensitive): {}",
                        supported_algorithms()
                    ),
                ),
            }
        }
        algorithms
    }
}

/// The algorithms an issuer of `preset` accepts when `algorithms` is omitted: what the platform
/// signs with, and nothing else.
pub fn default_algorithms(preset: Preset) -> Vec<SigningAlgorithm> {
    match preset {
        Preset::Generic => SigningAlgorithm::ALL.to_vec(),
        Preset::Github | Preset::Gitlab | Preset::Kubernetes | Preset::Gcp | Preset::Azure => {
            vec![SigningAlgorithm::RS256]
        }
        Preset::Aws => vec![SigningAlgorithm::ES384, SigningAlgorithm::RS256],
    }
}

fn supported_algorithms() -> String {
    SigningAlgorithm::ALL
        .map(SigningAlgorithm::as_str)
        .join(", ")
}
