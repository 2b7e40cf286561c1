//! Where an issuer's keys come from: the [`KeySource`] seam and its two implementations.
//!
//! [`HttpKeySource`] does discovery (or takes a configured `jwksUri`) and fetches the JWKS with
//! the shared [`Fetcher`]; [`FileKeySource`] reads a JWKS file (a private cluster's `jwksFile`,
//! or the demo issuer's). An issuer with a `caFile` gets [`super::ca_file::CaKeySource`], an
//! [`HttpKeySource`] whose client follows the CA file. None caches: that is
//! [`super::cache::CachingKeySource`]'s job.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::discovery::{DiscoveryError, discover};
use super::fetch::{FetchError, Fetcher};
use super::jwks::{JwksError, KeySet, parse_jwks};
use crate::policy::model::{Issuer, KeySourceSpec};

/// Why a `caFile` gives no usable client (see `issuers::ca_file`). Names the file (operators read it in logs and audit
/// records; callers of the token endpoint never see it) and never holds its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("caFile {path}: {reason}")]
pub struct CaFileError {
    /// The file, as resolved from the policy.
    pub path: String,
    /// What is wrong: unreadable (with the I/O error kind), too large, not PEM, no certificate.
    pub reason: String,
}

/// Why an issuer's keys could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySourceError {
    /// Discovery failed.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// The JWKS could not be fetched.
    #[error("jwks: {0}")]
    Fetch(#[from] FetchError),
    /// The JWKS is unusable.
    #[error(transparent)]
    Jwks(#[from] JwksError),
    /// The issuer's `caFile` gives no usable client (unreadable, too large, no certificate).
    #[error(transparent)]
    CaFile(#[from] CaFileError),
    /// The JWKS file could not be read (or is too large).
    #[error("cannot read JWKS file {path:?}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// A short reason.
        reason: String,
    },
}

/// Keys as loaded, with the freshness hint of their source.
#[derive(Debug, Clone)]
pub struct LoadedKeys {
    /// The parsed keys.
    pub keys: Arc<KeySet>,
    /// `Cache-Control: max-age` of the JWKS response (`Some(ZERO)` for no-store/no-cache);
    /// `None` when the source gave no hint.
    pub max_age: Option<Duration>,
}

/// A place an issuer's keys are loaded from. Each call loads afresh.
pub trait KeySource: Send + Sync + std::fmt::Debug {
    /// Loads the current key set.
    fn load(&self) -> BoxFuture<'_, Result<LoadedKeys, KeySourceError>>;
}

/// Builds the source an [`Issuer`] declares. `demo_jwks` is the demo issuer's JWKS file (the
/// composition root knows where the demo issuer keeps it).
pub fn source_for(issuer: &Issuer, fetcher: &Fetcher, demo_jwks: &Path) -> Arc<dyn KeySource> {
    let max_file_bytes = fetcher.max_body_bytes();
    match &issuer.keys {
        KeySourceSpec::Discovery => Arc::new(HttpKeySource {
            fetcher: fetcher.clone(),
            target: HttpTarget::Discovery {
                issuer: issuer.issuer.clone(),
            },
            allow_insecure_http: issuer.allow_insecure_http,
        }),
        KeySourceSpec::JwksUri(uri) => Arc::new(HttpKeySource {
            fetcher: fetcher.clone(),
            target: HttpTarget::JwksUri(uri.clone()),
            allow_insecure_http: issuer.allow_insecure_http,
        }),
        KeySourceSpec::JwksFile(path) => Arc::new(FileKeySource::new(path.clone(), max_file_bytes)),
        KeySourceSpec::Demo => {
            Arc::new(FileKeySource::new(demo_jwks.to_path_buf(), max_file_bytes))
        }
    }
}

// === impl HttpKeySource ===

/// What an [`HttpKeySource`] starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpTarget {
    /// OpenID discovery of this issuer URL, then its `jwks_uri`.
    Discovery {
        /// The configured issuer URL.
        issuer: String,
    },
    /// This JWKS URL directly.
    JwksUri(String),
}

/// Keys over HTTP(S), with discovery or a configured `jwksUri`.
#[derive(Debug, Clone)]
pub struct HttpKeySource {
    fetcher: Fetcher,
    target: HttpTarget,
    allow_insecure_http: bool,
}

impl HttpKeySource {
    /// A source for `target`; plain http is refused unless `allow_insecure_http`.
    pub fn new(fetcher: Fetcher, target: HttpTarget, allow_insecure_http: bool) -> Self {
        Self {
            fetcher,
            target,
            allow_insecure_http,
        }
    }

    async fn load_inner(&self) -> Result<LoadedKeys, KeySourceError> {
        // Discovery is redone on every load: it is one small request per refresh, and it lets
        // an issuer move its jwks_uri without a restart.
        let jwks_uri = match &self.target {
            HttpTarget::Discovery { issuer } => {
                discover(&self.fetcher, issuer, self.allow_insecure_http).await?
            }
            HttpTarget::JwksUri(uri) => uri.clone(),
        };
        let fetched = self
            .fetcher
            .get(&jwks_uri, self.allow_insecure_http)
            .await?;
        let keys = parse_jwks(&fetched.body)?;
        Ok(LoadedKeys {
            keys: Arc::new(keys),
            max_age: fetched.max_age,
        })
    }
}

impl KeySource for HttpKeySource {
    fn load(&self) -> BoxFuture<'_, Result<LoadedKeys, KeySourceError>> {
        Box::pin(self.load_inner())
    }
}

// === impl FileKeySource ===

/// Keys from a JWKS file on disk, read with a size cap.
#[derive(Debug, Clone)]
pub struct FileKeySource {
    path: PathBuf,
    max_bytes: usize,
}

impl FileKeySource {
    /// A source reading `path`, refusing files larger than `max_bytes`.
    pub fn new(path: PathBuf, max_bytes: usize) -> Self {
        Self { path, max_bytes }
    }

    async fn load_inner(&self) -> Result<LoadedKeys, KeySourceError> {
        let path = self.path.clone();
        let max = self.max_bytes;
        let file_error = |reason: String| KeySourceError::File {
            path: self.path.clone(),
            reason,
        };
        let bytes = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
            let file = std::fs::File::open(&path).map_err(|e| e.kind().to_string())?;
            let mut bytes = Vec::new();
            // Read one byte past the cap so an oversized file is noticed without reading it all.
            file.take(max as u64 + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| e.kind().to_string())?;
            if bytes.len() > max {
                return Err(format!("larger than {max} bytes"));
            }
            Ok(bytes)
        })
        .await
        .map_err(|_| file_error("reader task failed".to_string()))?
        .map_err(file_error)?;
        let keys = parse_jwks(&bytes)?;
        Ok(LoadedKeys {
            keys: Arc::new(keys),
            max_age: None,
        })
    }
}

impl KeySource for FileKeySource {
    fn load(&self) -> BoxFuture<'_, Result<LoadedKeys, KeySourceError>> {
        Box::pin(self.load_inner())
    }
}
