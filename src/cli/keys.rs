//! `trustbridge keys list|rotate|prune`: the signing key directory seen and changed through the
//! same pure rotation functions (`tokens::rotation`) that `serve` uses, so what `keys list`
//! prints is what every replica publishes at that instant.
//!
//! In production the directory is a mounted Kubernetes Secret (read-only in the pod): run
//! these against a local copy of the secret's data and apply it back (docs/deployment.md).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};

use super::ServeArgs;
use crate::clock::Clock;
use crate::config::Settings;
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

/// Flags shared by the `keys` subcommands: the settings exactly as `serve` reads them
/// (`--config`, `TRUSTBRIDGE_*`, flags). The key directory is the settings' `keys`, and a
/// superseded key stays published for the settings' `maxTokenLifetime`, so `keys prune` run
/// beside a server configured for 4 h never deletes a key a live token was signed with.
#[derive(Debug, Args, Default, Clone)]
pub struct KeysArgs {
    /// Settings.
    #[command(flatten, next_help_heading = super::SETTINGS_HEADING)]
    pub settings: ServeArgs,
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
    /// Algorithm of the new key: ES256, ES384, RS256, EdDSA [default: the settings'
    /// signing algorithm].
    #[arg(long)]
    pub algorithm: Option<String>,
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
    /// The resolved settings, or the exit code after reporting every problem.
    fn settings(&self, err: &mut dyn Write) -> Result<Settings, i32> {
        self.settings.settings_or_report(err)
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
    let settings = match args.settings(err) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let retention = settings.max_token_lifetime;
    let Some(keys) = load(&settings.keys, clock, err) else {
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
    // `--algorithm` overrides the settings' algorithm and is validated with them.
    let mut common = args.common.clone();
    if args.algorithm.is_some() {
        common.settings.signing_algorithm = args.algorithm.clone();
    }
    let settings = match common.settings(err) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let retention = settings.max_token_lifetime;
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
    let alg = settings.signing_algorithm;
    let dir = settings.keys;
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
    let settings = match args.common.settings(err) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let retention = settings.max_token_lifetime;
    let dir = settings.keys;
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
