//! The key directory (`--keys <dir>`) and the pure choice of which key signs when.
//!
//! Layout: each key is `<kid>.pem` (unencrypted PKCS#8, mode 0600) with an optional sidecar
//! `<kid>.json` holding `{"alg", "createdAt", "activatesAt"}` in unix seconds. Operators may
//! drop in their own `*.pem` under any name; without a sidecar such a key signs its key type's
//! natural algorithm (RSA: RS256) and counts as created and active at the epoch. Dotfiles are
//! skipped, so Kubernetes secret mounts (`..data/` symlinks) load as their visible files.
//!
//! Key states ([`KeySet`]) are a pure function of the keys and `now`: the newest active key
//! signs (`current`), keys not yet active are published ahead of use (`next`), and older
//! active keys stay published for the tokens they signed (`retiring`).
//!
//! Who may write there matters as much as who may read: whoever can add a `*.pem` (or a sidecar
//! that changes when a key activates) chooses the key that signs. So loading refuses a
//! directory others may write to, and key files or sidecars that others may access or that
//! belong to another user ([`check_key_dir`], [`check_key_file_mode`], [`check_owner`]).
//!
//! This module never logs or returns key material; errors name the file only.

use std::cmp::Ordering;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::clock::unix_seconds;
use crate::jose::SigningAlgorithm;
use crate::tokens::KeyStoreError;
use crate::tokens::keys::PrivateKey;

/// The most keys a JWKS lists; a directory holding more publishes the newest.
pub const MAX_PUBLISHED_KEYS: usize = 100;

/// Key files larger than this are refused unread (an RSA-8192 PKCS#8 PEM is about 6.5 KiB).
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;
/// Sidecars larger than this are refused unread.
const MAX_SIDECAR_BYTES: u64 = 4 * 1024;

/// The sidecar `<kid>.json` beside a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sidecar {
    alg: String,
    created_at: u64,
    activates_at: u64,
}

/// A signing key with its lifecycle times.
#[derive(Debug)]
pub struct StoredKey {
    /// The key.
    pub key: PrivateKey,
    /// When it was made (unix seconds).
    pub created_at: u64,
    /// From when it may sign (unix seconds); published before that.
    pub activates_at: u64,
    /// The file it was loaded from, if any.
    pub file: Option<PathBuf>,
}

impl StoredKey {
    /// A key held in memory only (tests, tools).
    pub fn in_memory(key: PrivateKey, created_at: u64, activates_at: u64) -> Self {
        Self {
            key,
            created_at,
            activates_at,
            file: None,
        }
    }

    /// "Newer" order: later activation, then later creation, then `kid`. The `kid` tie-break
    /// makes every replica pick the same current key from the same directory.
    fn newer(&self, other: &Self) -> Ordering {
        (self.activates_at, self.created_at, self.key.kid()).cmp(&(
            other.activates_at,
            other.created_at,
            other.key.kid(),
        ))
    }
}

// === KeySet ===

/// The keys of a directory by state at one instant.
#[derive(Debug)]
pub struct KeySet<'a> {
    /// The newest key active at `now`: the one that signs.
    pub current: &'a StoredKey,
    /// Keys whose activation lies ahead, soonest first: published, not yet signing.
    pub next: Vec<&'a StoredKey>,
    /// Older active keys, newest first: published for tokens they signed, never signing.
    pub retiring: Vec<&'a StoredKey>,
}

impl<'a> KeySet<'a> {
    /// Sorts `keys` into states at `now`; `None` when no key is active yet.
    pub fn select(keys: &'a [StoredKey], now: SystemTime) -> Option<Self> {
        let current = current_key(keys, now)?;
        let now = unix_seconds(now);
        let mut next: Vec<&StoredKey> = keys.iter().filter(|k| k.activates_at > now).collect();
        next.sort_by(|a, b| a.newer(b));
        let mut retiring: Vec<&StoredKey> = keys
            .iter()
            .filter(|k| k.activates_at <= now && !std::ptr::eq(*k, current))
            .collect();
        retiring.sort_by(|a, b| b.newer(a));
        Some(Self {
            current,
            next,
            retiring,
        })
    }

    /// Every key a verifier may meet, in the order current, next, retiring; at most
    /// [`MAX_PUBLISHED_KEYS`] (the oldest retiring keys drop off first).
    pub fn published(&self) -> impl Iterator<Item = &'a StoredKey> + '_ {
        std::iter::once(self.current)
            .chain(self.next.iter().copied())
            .chain(self.retiring.iter().copied())
            .take(MAX_PUBLISHED_KEYS)
    }
}

/// The key that signs at `now`: the newest whose `activates_at` has come. Allocation-free, for
/// the signing path.
pub fn current_key(keys: &[StoredKey], now: SystemTime) -> Option<&StoredKey> {
    let now = unix_seconds(now);
    keys.iter()
        .filter(|k| k.activates_at <= now)
        .max_by(|a, b| a.newer(b))
}

// === the directory ===

/// Loads every key in `dir`. When `dir` is absent it is created (mode 0700); when it holds no
/// `*.pem`, a fresh key of `alg` is generated, written (0600, atomically) and loaded.
///
/// # Errors
/// [`KeyStoreError::Io`] when the directory cannot be created, listed or written;
/// [`KeyStoreError::UnsafeDirectory`] when others may write to the directory or it belongs to
/// another user; [`KeyStoreError::BadKey`] for an unreadable, oversized or unparsable key or
/// sidecar, one others may access or another user owns, or a key present twice;
/// [`KeyStoreError::NoActiveKey`] when no key is active at `now`.
pub fn load_or_create(
    dir: &Path,
    alg: SigningAlgorithm,
    now: SystemTime,
) -> Result<Vec<StoredKey>, KeyStoreError> {
    create_private_dir(dir)?;
    check_key_dir(dir)?;
    let mut files = key_files(dir)?;
    if files.is_empty() {
        let key = PrivateKey::generate(alg).map_err(|e| KeyStoreError::BadKey {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let created = unix_seconds(now);
        files.push(write_key(dir, &key, created, created)?);
        tracing::info!(
            keys.dir = %dir.display(),
            key.kid = key.kid(),
            key.alg = %alg,
            "generated a new signing key"
        );
    }
    load_files(dir, files, now)
}

/// Loads every key already in `dir`, creating and generating nothing: the reload path, where
/// an empty or half-written directory must never replace the keys in use.
///
/// # Errors
/// As [`load_or_create`], plus [`KeyStoreError::NoActiveKey`] for a directory without keys.
pub fn load(dir: &Path, now: SystemTime) -> Result<Vec<StoredKey>, KeyStoreError> {
    check_key_dir(dir)?;
    let files = key_files(dir)?;
    load_files(dir, files, now)
}

/// Directory fingerprint: a SHA-256 over the names and contents of the visible `*.pem` and
/// `*.json` files (following symlinks, so a Kubernetes `..data` swap changes it). Reading a
/// few small files is cheap next to a reload, and unlike mtimes it cannot miss a change.
///
/// # Errors
/// [`KeyStoreError::Io`] when the directory cannot be listed.
pub fn fingerprint(dir: &Path) -> Result<[u8; 32], KeyStoreError> {
    use sha2::{Digest, Sha256};
    let io = |source| KeyStoreError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let name = entry
            .map_err(io)?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if !name.starts_with('.') && (name.ends_with(".pem") || name.ends_with(".json")) {
            names.push(name);
        }
    }
    names.sort();
    let mut hash = Sha256::new();
    for name in names {
        hash.update((name.len() as u64).to_be_bytes());
        hash.update(name.as_bytes());
        // A file vanishing mid-listing hashes as empty; the next poll sees the settled state.
        let bytes = read_capped(&dir.join(&name), MAX_KEY_FILE_BYTES).unwrap_or_default();
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(&bytes);
    }
    Ok(hash.finalize().into())
}

fn load_files(
    dir: &Path,
    files: Vec<PathBuf>,
    now: SystemTime,
) -> Result<Vec<StoredKey>, KeyStoreError> {
    let mut keys: Vec<StoredKey> = Vec::with_capacity(files.len());
    for file in files {
        let loaded = load_key(&file)?;
        if let Some(twin) = keys.iter().find(|k| k.key.kid() == loaded.key.kid()) {
            let twin = twin.file.as_deref().unwrap_or(dir).display().to_string();
            return Err(KeyStoreError::BadKey {
                path: file.display().to_string(),
                reason: format!("same key as {twin}"),
            });
        }
        keys.push(loaded);
    }
    if current_key(&keys, now).is_none() {
        return Err(KeyStoreError::NoActiveKey(dir.display().to_string()));
    }
    Ok(keys)
}

/// Writes `key` into `dir` as `<kid>.pem` (0600) with its sidecar `<kid>.json`, each written
/// to a temporary file and renamed into place so a crash never leaves half a key. The
/// sidecar goes first: a stray sidecar is ignored, a key without one would count as active
/// since the epoch. Returns the key file's path.
///
/// # Errors
/// [`KeyStoreError::Io`] on any write failure.
pub fn write_key(
    dir: &Path,
    key: &PrivateKey,
    created_at: u64,
    activates_at: u64,
) -> Result<PathBuf, KeyStoreError> {
    let sidecar = Sidecar {
        alg: key.alg().as_str().to_owned(),
        created_at,
        activates_at,
    };
    let sidecar = serde_json::to_vec_pretty(&sidecar).map_err(|e| KeyStoreError::Io {
        path: dir.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    write_atomically(dir, &format!("{}.json", key.kid()), &sidecar, 0o600)?;
    write_atomically(
        dir,
        &format!("{}.pem", key.kid()),
        key.to_pkcs8_pem().as_bytes(),
        0o600,
    )
}

/// The `*.pem` files of `dir` (following symlinks, skipping dotfiles), sorted by name.
fn key_files(dir: &Path) -> Result<Vec<PathBuf>, KeyStoreError> {
    let io = |source| KeyStoreError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') || !name.ends_with(".pem") {
            continue;
        }
        if fs::metadata(&path).map(|m| m.is_file()).unwrap_or(false) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Loads one key file and its sidecar, if any.
fn load_key(file: &Path) -> Result<StoredKey, KeyStoreError> {
    let bad = |path: &Path, reason: String| KeyStoreError::BadKey {
        path: path.display().to_string(),
        reason,
    };
    let pem = read_key_file(file)?;
    let sidecar_path = file.with_extension("json");
    let (alg, created_at, activates_at) = if sidecar_path.exists() {
        check_access(&sidecar_path)?;
        let bytes = read_capped(&sidecar_path, MAX_SIDECAR_BYTES)?;
        let sidecar: Sidecar = serde_json::from_slice(&bytes)
            .map_err(|e| bad(&sidecar_path, format!("not a key sidecar: {e}")))?;
        let alg = SigningAlgorithm::parse(&sidecar.alg).ok_or_else(|| {
            bad(
                &sidecar_path,
                format!("unsupported algorithm {:?}", sidecar.alg),
            )
        })?;
        (Some(alg), sidecar.created_at, sidecar.activates_at)
    } else {
        (None, 0, 0)
    };
    let key = PrivateKey::from_pkcs8_pem(&pem, alg).map_err(|e| bad(file, e.to_string()))?;
    Ok(StoredKey {
        key,
        created_at,
        activates_at,
        file: Some(file.to_path_buf()),
    })
}

// === file helpers (shared with the demo issuer) ===

/// Creates `dir` and missing parents with mode 0700; an existing directory is left as is.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), KeyStoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| KeyStoreError::Io {
        path: dir.display().to_string(),
        source,
    })
}

/// Reads a private key file as text: refuses oversized and non-UTF-8 files, and files that
/// others may access (see [`check_key_file_mode`]). The contents never appear in an error.
pub(crate) fn read_key_file(path: &Path) -> Result<Zeroizing<String>, KeyStoreError> {
    check_access(path)?;
    let bytes = read_capped(path, MAX_KEY_FILE_BYTES)?;
    String::from_utf8(bytes).map(Zeroizing::new).map_err(|e| {
        // Wipe the bytes that were not text too: they may still be key material.
        drop(Zeroizing::new(e.into_bytes()));
        KeyStoreError::BadKey {
            path: path.display().to_string(),
            reason: "not a PEM text file".into(),
        }
    })
}

/// Refuses a key file or sidecar that others may access ([`check_key_file_mode`]) or that
/// belongs to another user than this process or root ([`check_owner`]). Follows symlinks: what
/// counts is the file that would be read.
fn check_access(path: &Path) -> Result<(), KeyStoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(path).map_err(|source| KeyStoreError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let in_kubernetes_volume = path.parent().is_some_and(in_kubernetes_volume);
        check_key_file_mode(path, meta.mode(), in_kubernetes_volume)?;
        check_owner(meta.uid(), effective_uid()).map_err(|reason| KeyStoreError::BadKey {
            path: path.display().to_string(),
            reason,
        })?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Whether `dir` is a volume the kubelet manages (a Secret mount), recognised by its `..data`
/// symlink.
fn in_kubernetes_volume(dir: &Path) -> bool {
    fs::symlink_metadata(dir.join("..data")).is_ok()
}

/// Refuses a key directory another local user could plant a key in: one owned by someone
/// other than this process's user or root, or one its group or others may write to. The one
/// exception is a Kubernetes Secret volume (root-owned, sticky, `..data`), whose root the
/// kubelet makes world-writable with the sticky bit: there nobody can replace another user's
/// files, and [`check_access`] refuses any file another user adds.
///
/// # Errors
/// [`KeyStoreError::UnsafeDirectory`], or [`KeyStoreError::Io`] when `dir` cannot be read.
pub(crate) fn check_key_dir(dir: &Path) -> Result<(), KeyStoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(dir).map_err(|source| KeyStoreError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let unsafe_dir = |reason: String| KeyStoreError::UnsafeDirectory {
            path: dir.display().to_string(),
            reason,
        };
        check_owner(meta.uid(), effective_uid()).map_err(unsafe_dir)?;
        let mode = meta.mode() & 0o7777;
        let sticky_secret_volume =
            mode & 0o1000 != 0 && meta.uid() == 0 && in_kubernetes_volume(dir);
        if mode & 0o022 != 0 && !sticky_secret_volume {
            let who = if mode & 0o002 != 0 {
                "anyone on the machine"
            } else {
                "its group"
            };
            return Err(unsafe_dir(format!(
                "directory mode {mode:o} lets {who} add a signing key; chmod 700 it"
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Refuses an owner other than `euid` or root: another user could rewrite the file (or add
/// files to the directory) whatever its mode says. `Err` holds the reason.
pub(crate) fn check_owner(owner: u32, euid: Option<u32>) -> Result<(), String> {
    match euid {
        Some(euid) if owner != euid && owner != 0 => Err(format!(
            "owned by uid {owner}, not by this process's user (uid {euid}) or root; chown it"
        )),
        _ => Ok(()),
    }
}

/// This process's effective uid; `None` off unix, where the owner check is skipped.
fn effective_uid() -> Option<u32> {
    #[cfg(unix)]
    {
        Some(rustix::process::geteuid().as_raw())
    }
    #[cfg(not(unix))]
    None
}

/// Refuses a private key file that others may read or anyone but its owner may write.
///
/// World access of any kind and group write are always refused. Group read is refused too,
/// except inside a volume the kubelet manages (a Secret mount, recognised by its `..data`
/// symlink): there a non-root pod can only read the key through its `fsGroup`, which the
/// kubelet grants by adding group read, so refusing it would make the documented deployment
/// impossible. That case is logged as a warning.
pub(crate) fn check_key_file_mode(
    path: &Path,
    mode: u32,
    in_kubernetes_volume: bool,
) -> Result<(), KeyStoreError> {
    let mode = mode & 0o777;
    let refuse = |what: &str| KeyStoreError::BadKey {
        path: path.display().to_string(),
        reason: format!("key file mode {mode:o} lets {what}; chmod 600 it"),
    };
    if mode & 0o007 != 0 {
        return Err(refuse("anyone on the machine access it"));
    }
    if mode & 0o020 != 0 {
        return Err(refuse("its group modify it"));
    }
    if mode & 0o050 != 0 {
        if !in_kubernetes_volume {
            return Err(refuse("its group read it"));
        }
        tracing::warn!(
            key.file = %path.display(),
            mode = format!("{mode:o}"),
            "private key file is group-readable, as a Kubernetes Secret mounted for fsGroup is"
        );
    }
    Ok(())
}

/// Reads at most `cap` bytes; a longer file is refused.
fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, KeyStoreError> {
    let file = fs::File::open(path).map_err(|source| KeyStoreError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut bytes = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| KeyStoreError::Io {
            path: path.display().to_string(),
            source,
        })?;
    if bytes.len() as u64 > cap {
        return Err(KeyStoreError::BadKey {
            path: path.display().to_string(),
            reason: format!("larger than {cap} bytes"),
        });
    }
    Ok(bytes)
}

/// Writes `dir/name` atomically: a fresh temporary file in `dir` created with `mode`, synced,
/// then renamed over `name`, then the directory synced. Returns the final path.
pub(crate) fn write_atomically(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    mode: u32,
) -> Result<PathBuf, KeyStoreError> {
    let target = dir.join(name);
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let io = |source| KeyStoreError::Io {
        path: target.display().to_string(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let written = options.open(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, &target)) {
        let _ = fs::remove_file(&tmp);
        return Err(io(e));
    }
    // Best effort: makes the rename durable; some filesystems refuse to sync directories.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(target)
}

#[cfg(test)]
mod tests;
