//! Signing-key rotation that replicas agree on without talking to each other.
//!
//! Every replica mounts the same key directory and reads its own clock; the state of every key
//! is a pure function of the keys' activation times, `now` and the *retention* (the longest
//! lifetime a token may have, i.e. the server's `--max-token-lifetime`). Nothing is stored
//! about what a replica did, so two replicas that see the same directory at the same instant
//! publish the same JWKS and sign with the same key.
//!
//! The life of a key:
//!
//! ```text
//!   written ──► next ──(activates_at)──► current ──(a newer key activates)──► retiring
//!               published, not signing   signs       published for the tokens it signed
//!                                                          │ (retired_at + retention)
//!                                                          ▼
//!                                                       expired: unpublished, prunable
//! ```
//!
//! `keys rotate` writes a key whose activation lies a publication lead ahead (default 1 h), so
//! verifiers that cache the JWKS fetch the new key before any token signed with it reaches
//! them. A key stops signing when a newer one activates (`retired_at`) and stays published
//! until every token it can have signed has expired (`retired_at + retention`, its *end of
//! life*). Tokens are capped at their key's end of life (see [`cap_expiry`]), so even a token
//! whose lifetime exceeds the retention never outlives its key's publication.
//!
//! Everything here takes `now` as a parameter and does no I/O.

use std::time::{Duration, SystemTime};

use crate::clock::unix_seconds;
use crate::tokens::store::{KeySet, MAX_PUBLISHED_KEYS, StoredKey, current_key};

/// The state of a key at one instant (ordered as `keys list` prints them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyState {
    /// The newest active key: the one that signs.
    Current,
    /// Not active yet: published ahead of use.
    Next,
    /// Superseded by a newer active key; published until its end of life.
    Retiring,
    /// Past its end of life: every token it signed has expired. Unpublished; prunable.
    Expired,
}

impl KeyState {
    /// Lower-case name, as `keys list` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Current => "current",
            Self::Retiring => "retiring",
            Self::Expired => "expired",
        }
    }
}

/// When `key` stopped (or will stop) signing: the activation of the oldest key newer than it.
/// `None` while no newer key exists, so the key signs until one is written.
///
/// "Newer" is the directory's total order (activation, then creation, then `kid`), so a key
/// sharing its activation time with a newer one retires the moment it activates: it never
/// signs, which is what every replica agrees on.
pub fn retired_at(keys: &[StoredKey], key: &StoredKey) -> Option<u64> {
    keys.iter()
        .filter(|k| is_newer(k, key))
        .map(|k| k.activates_at)
        .min()
}

/// The end of life of `key`: when the last token it may have signed expires
/// (`retired_at + retention`). `None` while the key may still sign indefinitely.
pub fn end_of_life(keys: &[StoredKey], key: &StoredKey, retention: Duration) -> Option<u64> {
    retired_at(keys, key).map(|r| r.saturating_add(retention.as_secs()))
}

/// The state of `key` (one of `keys`) at `now`.
pub fn state(
    keys: &[StoredKey],
    key: &StoredKey,
    now: SystemTime,
    retention: Duration,
) -> KeyState {
    let t = unix_seconds(now);
    if key.activates_at > t {
        return KeyState::Next;
    }
    match retired_at(keys, key) {
        Some(r) if r <= t => {
            if t > r.saturating_add(retention.as_secs()) {
                KeyState::Expired
            } else {
                KeyState::Retiring
            }
        }
        _ => KeyState::Current,
    }
}

/// The keys by state at `now`, leaving out expired ones; `None` when no key is active yet.
/// `retiring` is newest first, `next` soonest first (as [`KeySet::select`]).
pub fn key_set(keys: &[StoredKey], now: SystemTime, retention: Duration) -> Option<KeySet<'_>> {
    let mut set = KeySet::select(keys, now)?;
    set.retiring
        .retain(|k| state(keys, k, now, retention) == KeyState::Retiring);
    Some(set)
}

/// Every key a verifier may meet at `now`, current first, then next (soonest first), then
/// retiring (newest first); at most [`MAX_PUBLISHED_KEYS`]. When no key is active yet (a
/// clock set back, or a directory holding only future keys) every unexpired key is listed.
pub fn published(keys: &[StoredKey], now: SystemTime, retention: Duration) -> Vec<&StoredKey> {
    match key_set(keys, now, retention) {
        Some(set) => set.published().collect(),
        None => keys
            .iter()
            .filter(|k| state(keys, k, now, retention) != KeyState::Expired)
            .take(MAX_PUBLISHED_KEYS)
            .collect(),
    }
}

/// Keys whose every token has expired at `now`: safe to delete. Never the current key or a
/// next key.
pub fn prunable(keys: &[StoredKey], now: SystemTime, retention: Duration) -> Vec<&StoredKey> {
    keys.iter()
        .filter(|k| state(keys, k, now, retention) == KeyState::Expired)
        .collect()
}

/// When a key written at `now` by `keys rotate` starts signing: `now + lead`, but never before
/// an already scheduled key (a rotation never jumps the queue, so replicas never flip back).
pub fn rotation_activation(keys: &[StoredKey], now: SystemTime, lead: Duration) -> u64 {
    let wanted = unix_seconds(now).saturating_add(lead.as_secs());
    let latest = keys.iter().map(|k| k.activates_at).max().unwrap_or(0);
    wanted.max(latest)
}

/// The key that signs at `now` and its end of life, if one is scheduled.
pub fn signer(
    keys: &[StoredKey],
    now: SystemTime,
    retention: Duration,
) -> Option<(&StoredKey, Option<u64>)> {
    let current = current_key(keys, now)?;
    Some((current, end_of_life(keys, current, retention)))
}

/// A token's `exp` capped by its signing key's end of life: a verifier stops finding the key
/// in the JWKS then, so the token must not claim to live longer.
pub fn cap_expiry(exp: u64, end_of_life: Option<u64>) -> u64 {
    end_of_life.map_or(exp, |eol| exp.min(eol))
}

fn is_newer(a: &StoredKey, b: &StoredKey) -> bool {
    (a.activates_at, a.created_at, a.key.kid()) > (b.activates_at, b.created_at, b.key.kid())
}

#[cfg(test)]
mod tests;
