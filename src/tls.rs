//! HTTPS serving: the certificate and key behind `--tls-cert`/`--tls-key`, presented to every
//! client whatever its SNI, and reloaded from disk when the files change.
//!
//! Why a custom resolver: rustls' stock single-certificate resolver already ignores SNI, but
//! it cannot be swapped. [`ServerCert`] holds the [`CertifiedKey`] behind an [`ArcSwap`], so a
//! renewed certificate (cert-manager rewriting a mounted secret, an operator replacing files)
//! takes effect for new handshakes while established connections keep the key they
//! negotiated with: nothing is dropped. Clients that connect to an IP address send no SNI at
//! all (RFC 6066 forbids IP literals in `server_name`); they get the same certificate.
//!
//! Loading is strict at startup (an unreadable, malformed or mismatched pair is a
//! [`TlsError`] and `serve` exits 64) and forgiving at reload (a bad pair is logged once and
//! the previous certificate keeps serving). Errors name files, never print key material.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

/// How often the certificate and key files are checked for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(10);

/// Largest certificate or key file read (a chain of a few certificates is a few KiB).
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The certificate (chain) and private key files, both PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub key: PathBuf,
}

/// Why a certificate and key cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read (or is too large).
    #[error("{what} file {path}: {source}")]
    Read {
        /// "TLS certificate" or "TLS key".
        what: &'static str,
        /// The file.
        path: String,
        /// The I/O problem.
        source: std::io::Error,
    },
    /// The certificate file holds no PEM certificate.
    #[error("TLS certificate file {0}: no PEM 'CERTIFICATE' block found")]
    NoCertificate(String),
    /// The certificate file holds something that is not a usable X.509 certificate.
    #[error("TLS certificate file {path}: {reason}")]
    BadCertificate {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The key file holds no PEM private key.
    #[error(
        "TLS key file {0}: no PEM private key found (expected PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)"
    )]
    NoKey(String),
    /// The key is of a kind or shape the TLS stack cannot sign with.
    #[error("TLS key file {path}: unusable private key: {reason}")]
    BadKey {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The key is not the private half of the certificate's public key.
    #[error("TLS key file {key} does not match the certificate in {cert}")]
    Mismatch {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
    },
}

/// Reads and checks a certificate chain and its key.
///
/// # Errors
/// [`TlsError`] naming the file at fault: unreadable, not PEM, not a certificate or key the
/// TLS stack accepts, or a key that does not belong to the leaf certificate.
pub fn load_certified_key(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let cert_pem = read_limited("TLS certificate", &files.cert)?;
    let key_pem = read_limited("TLS key", &files.key)?;
    certified_key(files, &cert_pem, &key_pem)
}

fn certified_key(
    files: &TlsFiles,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<CertifiedKey, TlsError> {
    let cert_path = files.cert.display().to_string();
    let key_path = files.key.display().to_string();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: cert_path.clone(),
            reason: format!("malformed PEM: {e}"),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert_path));
    }
    // PemObject errors describe PEM framing only; they never include the key's bytes.
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey(key_path.clone()),
        other => TlsError::BadKey {
            path: key_path.clone(),
            reason: format!("malformed PEM: {other}"),
        },
    })?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let signing_key =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::BadKey {
                path: key_path.clone(),
                reason: e.to_string(),
            })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::Mismatch {
                cert: cert_path,
                key: key_path,
            })
        }
        // Every key aws-lc-rs loads exposes its public half, so "unknown" does not occur;
        // should it, the handshake still proves possession and clients check the chain.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(e) => Err(TlsError::BadCertificate {
            path: cert_path,
            reason: e.to_string(),
        }),
    }
}

fn read_limited(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let err = |source| TlsError::Read {
        what,
        path: path.display().to_string(),
        source,
    };
    let len = std::fs::metadata(path).map_err(err)?.len();
    if len > MAX_FILE_BYTES {
        return Err(err(std::io::Error::other(format!(
            "larger than {MAX_FILE_BYTES} bytes"
        ))));
    }
    std::fs::read(path).map_err(err)
}

/// What a [`ServerCert::reload`] did.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// The files are as they were.
    Unchanged,
    /// A new certificate serves new handshakes.
    Reloaded,
    /// The files changed but are unusable; the previous certificate keeps serving.
    Failed(TlsError),
}

/// The served certificate: a rustls resolver that presents it to every client (SNI or none)
/// and swaps it atomically on reload.
#[derive(Debug)]
pub struct ServerCert {
    files: TlsFiles,
    current: ArcSwap<CertifiedKey>,
    /// Digest of the file contents last looked at (good or bad), so a change is acted on (and
    /// a bad file logged) once, not at every poll.
    seen: Mutex<[u8; 32]>,
}

impl ServerCert {
    /// Loads `files` for serving.
    ///
    /// # Errors
    /// See [`load_certified_key`].
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let cert_pem = read_limited("TLS certificate", &files.cert)?;
        let key_pem = read_limited("TLS key", &files.key)?;
        let key = certified_key(&files, &cert_pem, &key_pem)?;
        Ok(Self {
            seen: Mutex::new(digest(&cert_pem, &key_pem)),
            current: ArcSwap::from_pointee(key),
            files,
        })
    }

    /// The files served.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The certificate and key presented to new connections.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }

    /// Re-reads the files and, when their content changed and is valid, serves the new pair
    /// from the next handshake on. Never interrupts established connections.
    pub fn reload(&self) -> ReloadOutcome {
        // A read error (a file mid-replacement, a missing mount) is reported once per distinct
        // error, and the next successful read is compared with the last content seen.
        let read = read_limited("TLS certificate", &self.files.cert)
            .and_then(|cert| read_limited("TLS key", &self.files.key).map(|key| (cert, key)));
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let (cert_pem, key_pem) = match read {
            Ok(pair) => pair,
            Err(e) => {
                let marker = digest(e.to_string().as_bytes(), b"read error");
                if *seen == marker {
                    return ReloadOutcome::Unchanged;
                }
                *seen = marker;
                return ReloadOutcome::Failed(e);
            }
        };
        let now = digest(&cert_pem, &key_pem);
        if *seen == now {
            return ReloadOutcome::Unchanged;
        }
        *seen = now;
        match certified_key(&self.files, &cert_pem, &key_pem) {
            Ok(key) => {
                self.current.store(Arc::new(key));
                ReloadOutcome::Reloaded
            }
            Err(e) => ReloadOutcome::Failed(e),
        }
    }

    /// A rustls server configuration (TLS 1.2 and 1.3, aws-lc-rs) presenting this certificate.
    ///
    /// # Errors
    /// Only if the crypto provider refuses its own default protocol versions.
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, rustls::Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        Ok(rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone()))
    }
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // SNI deliberately ignored: one gateway, one certificate, and IP clients send none.
        Some(self.current.load_full())
    }
}

fn digest(cert: &[u8], key: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((cert.len() as u64).to_be_bytes());
    h.update(cert);
    h.update(key);
    h.finalize().into()
}

/// Polls the files every `every` and reloads on change, logging the outcome; stops when the
/// certificate is dropped (the server is gone).
pub async fn watch(cert: Weak<ServerCert>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate; the files were just loaded
    loop {
        ticks.tick().await;
        let Some(cert) = cert.upgrade() else { return };
        log_outcome(&cert, cert.reload());
    }
}

/// Logs what a reload did (nothing when unchanged).
pub fn log_outcome(cert: &ServerCert, outcome: ReloadOutcome) {
    match outcome {
        ReloadOutcome::Unchanged => {}
        ReloadOutcome::Reloaded => tracing::info!(
            tls.cert = %cert.files.cert.display(),
            "TLS certificate reloaded; new connections use it"
        ),
        ReloadOutcome::Failed(e) => tracing::warn!(
            error = %e,
            "TLS certificate not reloaded; the previous certificate keeps serving"
        ),
    }
}

#[cfg(test)]
mod tests;
