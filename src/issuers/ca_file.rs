//! An issuer's `caFile`: the PEM bundle of extra roots its discovery and JWKS fetches trust
//! (a cluster whose OIDC endpoints use a private CA), re-read when its content changes.
//!
//! Clusters rotate their CAs, so the file is not read once: [`CaFile::fetcher`] reads it again
//! before every key load and rebuilds the HTTP client only when the content changed (a SHA-256
//! of the bytes, not the modification time: a rotated CA of the same key type has the same
//! length, and two writes within one timestamp tick share an mtime). Key loads are rare (a
//! freshness expiry, or an unknown `kid`, rate-limited per issuer), so a read of a few KiB per
//! load costs nothing, while an unchanged file keeps its client and connection pool.
//!
//! A file that becomes unreadable or unusable fails the load instead of falling back to the
//! roots it held before: an operator who removes or empties a CA file means to stop trusting
//! it. The key cache then applies its stale rules (the last good keys keep serving within the
//! stale window), [`CaKeySource`] logs an error naming the issuer and the `caFile` setting, and
//! the load is counted with the `ca_file_error` outcome.

use super::FetchSettings;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use sha2::{Digest as _, Sha256};

use super::fetch::Fetcher;
pub use super::source::CaFileError;
use super::source::{HttpKeySource, HttpTarget, KeySource, KeySourceError, LoadedKeys};
use crate::policy::model::{Issuer, KeySourceSpec};

/// Largest CA file read (a distribution's whole root bundle is a few hundred KiB).
pub const MAX_CA_FILE_BYTES: usize = 1024 * 1024;

/// The outcome built from one content of the file.
struct Built {
    digest: [u8; 32],
    fetcher: Result<Fetcher, CaFileError>,
}

/// One CA file and the fetcher trusting it. Shared by every issuer naming the same file (one
/// client, one connection pool) and carried across policy reloads by
/// [`super::IssuerRegistry::rebuild`].
pub struct CaFile {
    path: PathBuf,
    /// The shared fetcher: its limits (timeout, body cap) and fetch counter are copied.
    base: Fetcher,
    /// What the last content read was turned into; `None` before the first read.
    built: Mutex<Option<Built>>,
    /// How many distinct contents were turned into a client (or an error).
    builds: AtomicU64,
}

impl std::fmt::Debug for CaFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaFile")
            .field("path", &self.path)
            .field("builds", &self.builds())
            .finish_non_exhaustive()
    }
}

impl CaFile {
    /// A CA file whose client will copy `base`'s limits. Nothing is read yet.
    pub fn new(path: PathBuf, base: &Fetcher) -> Self {
        Self {
            path,
            base: base.clone(),
            built: Mutex::new(None),
            builds: AtomicU64::new(0),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many distinct contents of the file were built into a client (or found unusable).
    /// Stays put while the file is unchanged.
    pub fn builds(&self) -> u64 {
        self.builds.load(Ordering::Relaxed)
    }

    /// Reads the file and returns the fetcher trusting the roots it holds now (and the system
    /// roots), built anew only when the content differs from the last read. Blocking I/O: see
    /// [`CaFile::current`] for async callers.
    ///
    /// Errors: [`CaFileError`] when the file cannot be read, is larger than
    /// [`MAX_CA_FILE_BYTES`], or holds no usable PEM certificate. A failed read leaves the last
    /// content's client in place, so the same content coming back is not rebuilt; it is still
    /// not used while the file is unreadable.
    pub fn fetcher(&self) -> Result<Fetcher, CaFileError> {
        let bytes = self.read()?;
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(current) = built.as_ref().filter(|b| b.digest == digest) {
            return current.fetcher.clone();
        }
        let rotated = built.is_some();
        let fetcher = self.base.with_extra_roots(&bytes).map_err(|e| {
            self.error(match e {
                super::fetch::FetchError::ClientSetup { reason } => reason,
                other => other.to_string(),
            })
        });
        self.builds.fetch_add(1, Ordering::Relaxed);
        if rotated && fetcher.is_ok() {
            tracing::info!(
                ca_file = %self.path.display(),
                "caFile content changed; key fetches of the issuers naming it trust its new roots from now on"
            );
        }
        *built = Some(Built {
            digest,
            fetcher: fetcher.clone(),
        });
        fetcher
    }

    /// [`CaFile::fetcher`] on the blocking pool, for key loads.
    ///
    /// Errors: as [`CaFile::fetcher`].
    pub async fn current(self: &Arc<Self>) -> Result<Fetcher, CaFileError> {
        let ca = self.clone();
        tokio::task::spawn_blocking(move || ca.fetcher())
            .await
            .map_err(|_| self.error("the reader task failed".to_string()))?
    }

    fn read(&self) -> Result<Vec<u8>, CaFileError> {
        let file = std::fs::File::open(&self.path)
            .map_err(|e| self.error(format!("cannot be read: {}", e.kind())))?;
        let mut bytes = Vec::new();
        // One byte past the cap tells an oversized file without reading it all.
        file.take(MAX_CA_FILE_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.error(format!("cannot be read: {}", e.kind())))?;
        if bytes.len() > MAX_CA_FILE_BYTES {
            return Err(self.error(format!("larger than {MAX_CA_FILE_BYTES} bytes")));
        }
        Ok(bytes)
    }

    fn error(&self, reason: String) -> CaFileError {
        CaFileError {
            path: self.path.display().to_string(),
            reason,
        }
    }
}

// === impl CaKeySource ===

/// Where an issuer with a `caFile` fetches from: its discovery, or its `jwksUri`. `None` for
/// file-based key sources, which a `caFile` does not apply to (compile refuses the pair).
pub fn http_target(issuer: &Issuer) -> Option<HttpTarget> {
    match &issuer.keys {
        KeySourceSpec::Discovery => Some(HttpTarget::Discovery {
            issuer: issuer.issuer.clone(),
        }),
        KeySourceSpec::JwksUri(uri) => Some(HttpTarget::JwksUri(uri.clone())),
        KeySourceSpec::JwksFile(_) | KeySourceSpec::Demo => None,
    }
}

/// The key source of an issuer with a `caFile`: each load first asks the [`CaFile`] for its
/// current fetcher (re-reading the file), then loads over HTTPS like [`HttpKeySource`].
#[derive(Debug)]
pub struct CaKeySource {
    ca: Arc<CaFile>,
    /// The issuer's name, for the error log.
    issuer_name: String,
    target: HttpTarget,
    allow_insecure_http: bool,
    /// The issuer's effective fetch limits (its `fetch:` block over the global settings).
    limits: Option<FetchSettings>,
}

impl CaKeySource {
    /// A source for `issuer` trusting `ca`; `None` when the issuer's keys do not come over
    /// HTTP (see [`http_target`]).
    pub fn new(ca: Arc<CaFile>, issuer: &Issuer) -> Option<Self> {
        Some(Self {
            ca,
            issuer_name: issuer.name.clone(),
            target: http_target(issuer)?,
            allow_insecure_http: issuer.allow_insecure_http,
            limits: None,
        })
    }

    /// The same source, fetching with `limits` (timeout, body cap) instead of the shared
    /// fetcher's.
    pub fn with_limits(self, limits: FetchSettings) -> Self {
        Self {
            limits: Some(limits),
            ..self
        }
    }

    async fn load_inner(&self) -> Result<LoadedKeys, KeySourceError> {
        let fetcher = self.ca.current().await.map_err(|error| {
            tracing::error!(
                issuer.name = %self.issuer_name,
                setting = "caFile",
                %error,
                "issuer caFile unusable; its keys cannot be fetched (the last good keys keep \
                 serving within the stale window)"
            );
            KeySourceError::CaFile(error)
        })?;
        let fetcher = match &self.limits {
            Some(limits) => fetcher.with_limits(limits),
            None => fetcher,
        };
        HttpKeySource::new(fetcher, self.target.clone(), self.allow_insecure_http)
            .load()
            .await
    }
}

impl KeySource for CaKeySource {
    fn load(&self) -> BoxFuture<'_, Result<LoadedKeys, KeySourceError>> {
        Box::pin(self.load_inner())
    }
}

#[cfg(test)]
mod tests;
