//! `trustbridge keys list|rotate|prune`: the signing key directory seen and changed through the
//! same pure rotation functions (`tokens::rotation`) that `serve` uses, so what `keys list`
//! prints is what every replica publishes at that instant.
//!
//! In production the directory is a mounted Kubernetes Secret (read-only in the pod): run
//! these against a local copy of the secret's data and apply it back (docs/deployment.md).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};

use crate::clock::Clock;
use crate::jose::SigningAlgorithm;
use crate::tokens::rotation::{self, KeyState};
use crate::tokens::{PrivateKey, StoredKey, store};

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Show every key with its state (current, next, retiring, expired), kid, alg and times.
    List(KeysArgs),
    /// Add a key that starts signing after the publication lead.
    Rotate(RotateArgs),
    /// Delete keys whose every token has expired.
    Prune(PruneArgs),
}

/// Flags shared by the `keys` subcommands.
#[derive(Debug, Args)]
pub struct KeysArgs {
    /// Signing key directory [default: <data-dir>/keys].
    #[arg(long, env = "TRUSTBRIDGE_KEYS")]
    pub keys: Option<PathBuf>,
    /// Data directory, whose keys/ is the default key directory.
    #[arg(long, env = "TRUSTBRIDGE_DATA_DIR", default_value = crate::config::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// The server's maximum token lifetime: how long a superseded key stays published.
    /// Use the value `serve` runs with.
    #[arg(long, env = "TRUSTBRIDGE_MAX_TOKEN_LIFETIME", default_value = "1h")]
    pub max_token_lifetime: String,
}

/// Flags of `keys rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Directory and lifetime.
    #[command(flatten)]
    pub common: KeysArgs,
    /// How long the new key is published before it signs: longer than verifiers cache the
    /// JWKS and than the directory takes to reach every replica.
    #[arg(long, default_value = "1h")]
    pub publication_lead: String,
    /// Algorithm of the new key: ES256, ES384, RS256, EdDSA.
    #[arg(long, env = "TRUSTBRIDGE_SIGNING_ALGORITHM", default_value = "ES256")]
    pub algorithm: String,
}

/// Flags of `keys prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Directory and lifetime.
    #[command(flatten)]
    pub common: KeysArgs,
    /// Print what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl KeysArgs {
    fn dir(&self) -> PathBuf {
        self.keys
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys"))
    }

    fn retention(&self, err: &mut dyn Write) -> Option<Duration> {
        match humantime::parse_duration(&self.max_token_lifetime) {
            Ok(d) if d >= Duration::from_secs(60) && d <= crate::config::MAX_LIFETIME_CEILING => {
                Some(d)
            }
            _ => {
                let _ = writeln!(
                    err,
                    "--max-token-lifetime: '{}' must be a duration between 1m and 24h",
                    self.max_token_lifetime
                );
                None
            }
        }
    }
}

/// Runs a `keys` subcommand; returns the exit code (0 ok, 1 failure, 64 bad flags).
pub fn run(cmd: &KeysCommand, clock: &dyn Clock, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match cmd {
        KeysCommand::List(args) => list(args, clock, out, err),
        KeysCommand::Rotate(args) => rotate(args, clock, out, err),
        KeysCommand::Prune(args) => prune(args, clock, out, err),
    }
}

fn load(dir: &Path, clock: &dyn Clock, err: &mut dyn Write) -> Option<Vec<StoredKey>> {
    match store::load(dir, clock.now()) {
        Ok(keys) => Some(keys),
        Err(e) => {
            let _ = writeln!(err, "{e}");
            None
        }
    }
}

/// `keys list`.
fn list(args: &KeysArgs, clock: &dyn Clock, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let Some(retention) = args.retention(err) else {
        return super::EXIT_CONFIG;
    };
    let Some(keys) = load(&args.dir(), clock, err) else {
        return 1;
    };
    print_table(&keys, clock.now(), retention, out);
    0
}

fn print_table(keys: &[StoredKey], now: SystemTime, retention: Duration, out: &mut dyn Write) {
    let mut rows: Vec<(KeyState, &StoredKey)> = keys
        .iter()
        .map(|k| (rotation::state(keys, k, now, retention), k))
        .collect();
    rows.sort_by_key(|(s, k)| (*s, std::cmp::Reverse(k.activates_at)));
    let _ = writeln!(
        out,
        "{:<9} {:<43} {:<6} {:<20} {:<20} {:<20} {:<20}",
        "STATE", "KID", "ALG", "CREATED", "ACTIVATES", "RETIRES", "UNPUBLISHED"
    );
    for (state, k) in rows {
        let _ = writeln!(
            out,
            "{:<9} {:<43} {:<6} {:<20} {:<20} {:<20} {:<20}",
            state.as_str(),
            k.key.kid(),
            k.key.alg().as_str(),
            time(Some(k.created_at)),
            time(Some(k.activates_at)),
            time(rotation::retired_at(keys, k)),
            time(rotation::end_of_life(keys, k, retention)),
        );
    }
}

fn time(secs: Option<u64>) -> String {
    match secs {
        Some(s) => {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(s)).to_string()
        }
        None => "-".into(),
    }
}

/// `keys rotate`.
fn rotate(args: &RotateArgs, clock: &dyn Clock, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let Some(retention) = args.common.retention(err) else {
        return super::EXIT_CONFIG;
    };
    let lead = match humantime::parse_duration(&args.publication_lead) {
        Ok(d) if d <= Duration::from_secs(30 * 24 * 3600) => d,
        _ => {
            let _ = writeln!(
                err,
                "--publication-lead: '{}' must be a duration of at most 30 days",
                args.publication_lead
            );
            return super::EXIT_CONFIG;
        }
    };
    let alg = match SigningAlgorithm::parse(&args.algorithm) {
        Some(
            a @ (SigningAlgorithm::ES256
            | SigningAlgorithm::ES384
            | SigningAlgorithm::RS256
            | SigningAlgorithm::EdDSA),
        ) => a,
        _ => {
            let _ = writeln!(
                err,
                "--algorithm: '{}' is not one of ES256, ES384, RS256, EdDSA",
                args.algorithm
            );
            return super::EXIT_CONFIG;
        }
    };
    let dir = args.common.dir();
    let now = clock.now();
    // An empty directory first gets the key that signs now, exactly as `serve` would make it.
    let keys = match store::load_or_create(&dir, alg, now) {
        Ok(k) => k,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return 1;
        }
    };
    let key = match PrivateKey::generate(alg) {
        Ok(k) => k,
        Err(e) => {
            let _ = writeln!(err, "key generation failed: {e}");
            return 1;
        }
    };
    let activates_at = rotation::rotation_activation(&keys, now, lead);
    if let Err(e) = store::write_key(&dir, &key, crate::clock::unix_seconds(now), activates_at) {
        let _ = writeln!(err, "{e}");
        return 1;
    }
    let _ = writeln!(
        out,
        "added {} ({}) in {}: published now, signs from {}",
        key.kid(),
        alg,
        dir.display(),
        time(Some(activates_at))
    );
    if let Some(keys) = load(&dir, clock, err) {
        print_table(&keys, now, retention, out);
    }
    0
}

/// `keys prune`.
fn prune(args: &PruneArgs, clock: &dyn Clock, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let Some(retention) = args.common.retention(err) else {
        return super::EXIT_CONFIG;
    };
    let dir = args.common.dir();
    let Some(keys) = load(&dir, clock, err) else {
        return 1;
    };
    let expired = rotation::prunable(&keys, clock.now(), retention);
    if expired.is_empty() {
        let _ = writeln!(out, "nothing to prune in {}", dir.display());
        return 0;
    }
    let mut code = 0;
    for k in expired {
        let Some(file) = &k.file else { continue };
        if args.dry_run {
            let _ = writeln!(out, "would remove {} ({})", k.key.kid(), file.display());
            continue;
        }
        let sidecar = file.with_extension("json");
        let removed =
            std::fs::remove_file(file).and_then(|()| match std::fs::remove_file(&sidecar) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            });
        match removed {
            Ok(()) => {
                let _ = writeln!(out, "removed {} ({})", k.key.kid(), file.display());
            }
            Err(e) => {
                let _ = writeln!(err, "{}: {e}", file.display());
                code = 1;
            }
        }
    }
    code
}

#[cfg(test)]
mod tests;
