//! The limits of fetching an issuer's discovery document and JWKS (issue #17): their values,
//! defaults, the range each may take, the relations between them, and how one issuer's
//! overrides merge into the global settings.
//!
//! Pure values and checks, shared by three floors that may not import each other: `config`
//! reads the global settings (`--issuer-*` flags), `policy` compiles an Issuer's `fetch:` block
//! into [`FetchOverrides`], and `issuers` applies the merged [`FetchSettings`]. One table of
//! ranges ([`Field::range`]) serves all three, so a value refused on the command line is
//! refused in a policy file with the same words. Nothing here does I/O.

use std::fmt;
use std::time::Duration;

#[cfg(test)]
mod tests;

/// Limits and switches of the key fetcher and key cache of one issuer (the global settings,
/// or the global settings merged with the issuer's `fetch:` block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSettings {
    /// How long establishing a connection (TCP and TLS) may take. Global only: it belongs to
    /// the shared client's connection pool.
    pub connect_timeout: Duration,
    /// How long one whole fetch (connect, request, body) may take.
    pub timeout: Duration,
    /// Maximum size of a discovery or JWKS response body (and of a `jwksFile`).
    pub max_body_bytes: usize,
    /// Minimum interval between two refreshes of one issuer triggered by unknown `kid`s.
    pub min_refresh_interval: Duration,
    /// How long fetched keys are fresh when the response sets no usable Cache-Control.
    pub default_ttl: Duration,
    /// Lower bound applied to Cache-Control max-age.
    pub min_ttl: Duration,
    /// Upper bound applied to Cache-Control max-age.
    pub max_ttl: Duration,
    /// How long stale keys keep serving while the issuer is unreachable (zero: never).
    pub max_stale: Duration,
}

impl Default for FetchSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            max_body_bytes: 256 * 1024,
            min_refresh_interval: Duration::from_secs(30),
            default_ttl: Duration::from_secs(3600),
            // Cache-Control is honoured within [5 min, 24 h]: below, a misconfigured issuer
            // would be fetched on nearly every request; above, a rotation would go unseen.
            min_ttl: Duration::from_secs(5 * 60),
            max_ttl: Duration::from_secs(24 * 3600),
            max_stale: Duration::from_secs(24 * 3600),
        }
    }
}

/// One issuer's `fetch:` block, compiled: each `Some` replaces the global value. The connect
/// timeout is not here: it is a property of the shared client, not of one issuer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FetchOverrides {
    /// `fetch.timeout`.
    pub timeout: Option<Duration>,
    /// `fetch.maxDocumentSize`.
    pub max_body_bytes: Option<usize>,
    /// `fetch.refreshCooldown`.
    pub min_refresh_interval: Option<Duration>,
    /// `fetch.defaultTtl`.
    pub default_ttl: Option<Duration>,
    /// `fetch.minTtl`.
    pub min_ttl: Option<Duration>,
    /// `fetch.maxTtl`.
    pub max_ttl: Option<Duration>,
    /// `fetch.maxStale`.
    pub max_stale: Option<Duration>,
}

impl FetchOverrides {
    /// Whether no field is overridden.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// Whether `field` is overridden here.
    pub fn sets(&self, field: Field) -> bool {
        match field {
            Field::ConnectTimeout => false,
            Field::Timeout => self.timeout.is_some(),
            Field::MaxDocumentSize => self.max_body_bytes.is_some(),
            Field::RefreshCooldown => self.min_refresh_interval.is_some(),
            Field::DefaultTtl => self.default_ttl.is_some(),
            Field::MinTtl => self.min_ttl.is_some(),
            Field::MaxTtl => self.max_ttl.is_some(),
            Field::MaxStale => self.max_stale.is_some(),
        }
    }

    /// The relation problems among the fields set here (those left unset are checked once
    /// merged, see [`FetchSettings::merged`]), each naming the policy keys.
    pub fn relation_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let key = |f: Field| format!("fetch.{}", f.policy_key().unwrap_or_default());
        for (low, high) in [
            (Field::MinTtl, Field::DefaultTtl),
            (Field::DefaultTtl, Field::MaxTtl),
            (Field::MinTtl, Field::MaxTtl),
        ] {
            if let (Some(a), Some(b)) = (self.duration(low), self.duration(high))
                && a > b
            {
                problems.push(order_problem(&key(low), a, &key(high), b));
            }
        }
        problems
    }

    fn duration(&self, field: Field) -> Option<Duration> {
        match field {
            Field::Timeout => self.timeout,
            Field::RefreshCooldown => self.min_refresh_interval,
            Field::DefaultTtl => self.default_ttl,
            Field::MinTtl => self.min_ttl,
            Field::MaxTtl => self.max_ttl,
            Field::MaxStale => self.max_stale,
            Field::ConnectTimeout | Field::MaxDocumentSize => None,
        }
    }
}

/// One fetch setting: its names and its allowed range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `issuer-connect-timeout` (global only).
    ConnectTimeout,
    /// `issuer-timeout` / `fetch.timeout`.
    Timeout,
    /// `issuer-max-document-size` / `fetch.maxDocumentSize`.
    MaxDocumentSize,
    /// `issuer-refresh-cooldown` / `fetch.refreshCooldown`.
    RefreshCooldown,
    /// `issuer-default-ttl` / `fetch.defaultTtl`.
    DefaultTtl,
    /// `issuer-min-ttl` / `fetch.minTtl`.
    MinTtl,
    /// `issuer-max-ttl` / `fetch.maxTtl`.
    MaxTtl,
    /// `issuer-max-stale` / `fetch.maxStale`.
    MaxStale,
}

/// One effective setting as shown to operators (see [`FetchSettings::entries`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Which setting.
    pub field: Field,
    /// Its value (`5s`, `256KiB`).
    pub value: String,
    /// Whether the issuer's `fetch:` block set it (else the global setting applies).
    pub from_issuer: bool,
}

/// The range a setting may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// A duration between the two, both included.
    Duration(Duration, Duration),
    /// A byte count between the two, both included.
    Bytes(u64, u64),
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Duration(min, max) => write!(
                f,
                "{} to {}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
            Self::Bytes(min, max) => write!(f, "{} to {}", bytes(min), bytes(max)),
        }
    }
}

const KIB: u64 = 1024;

impl Field {
    /// Every field, in the order settings are shown.
    pub const ALL: [Field; 8] = [
        Field::ConnectTimeout,
        Field::Timeout,
        Field::MaxDocumentSize,
        Field::RefreshCooldown,
        Field::DefaultTtl,
        Field::MinTtl,
        Field::MaxTtl,
        Field::MaxStale,
    ];

    /// The setting's name: the `serve` flag without `--` (the variable is `TRUSTBRIDGE_` and
    /// this upper-cased with `_`).
    pub const fn setting(self) -> &'static str {
        match self {
            Self::ConnectTimeout => "issuer-connect-timeout",
            Self::Timeout => "issuer-timeout",
            Self::MaxDocumentSize => "issuer-max-document-size",
            Self::RefreshCooldown => "issuer-refresh-cooldown",
            Self::DefaultTtl => "issuer-default-ttl",
            Self::MinTtl => "issuer-min-ttl",
            Self::MaxTtl => "issuer-max-ttl",
            Self::MaxStale => "issuer-max-stale",
        }
    }

    /// The key in an Issuer's `fetch:` block, or `None` for a global-only setting.
    pub const fn policy_key(self) -> Option<&'static str> {
        match self {
            Self::ConnectTimeout => None,
            Self::Timeout => Some("timeout"),
            Self::MaxDocumentSize => Some("maxDocumentSize"),
            Self::RefreshCooldown => Some("refreshCooldown"),
            Self::DefaultTtl => Some("defaultTtl"),
            Self::MinTtl => Some("minTtl"),
            Self::MaxTtl => Some("maxTtl"),
            Self::MaxStale => Some("maxStale"),
        }
    }

    /// The camelCase name shown by `policy explain` and the console: the `fetch:` key, and
    /// `connectTimeout` for the global-only connect timeout.
    pub const fn display_key(self) -> &'static str {
        match self.policy_key() {
            Some(key) => key,
            None => "connectTimeout",
        }
    }

    /// The allowed range. Timeouts stay under the patience of a token request; freshness
    /// bounds between a minute (no refetch storm) and a week (a rotation is seen); documents
    /// between 1 KiB and 4 MiB (real JWKS are a few KiB; the cap is memory per fetch).
    pub const fn range(self) -> Range {
        const fn secs(s: u64) -> Duration {
            Duration::from_secs(s)
        }
        const WEEK: u64 = 7 * 86_400;
        match self {
            Self::ConnectTimeout => Range::Duration(Duration::from_millis(100), secs(60)),
            Self::Timeout => Range::Duration(Duration::from_millis(100), secs(120)),
            Self::MaxDocumentSize => Range::Bytes(KIB, 4 * KIB * KIB),
            Self::RefreshCooldown => Range::Duration(secs(1), secs(3600)),
            Self::DefaultTtl | Self::MinTtl | Self::MaxTtl => Range::Duration(secs(60), secs(WEEK)),
            Self::MaxStale => Range::Duration(Duration::ZERO, secs(WEEK)),
        }
    }

    /// `value` if it lies in [`Field::range`], else a message giving the range (without the
    /// setting's name, which the caller knows how to write).
    pub fn check_duration(self, value: Duration) -> Result<Duration, String> {
        match self.range() {
            Range::Duration(min, max) if value >= min && value <= max => Ok(value),
            range => Err(format!(
                "{} is outside the allowed range {range}",
                humantime::format_duration(value)
            )),
        }
    }

    /// `value` (bytes) if it lies in [`Field::range`], else a message giving the range.
    pub fn check_bytes(self, value: u64) -> Result<usize, String> {
        match self.range() {
            Range::Bytes(min, max) if value >= min && value <= max => {
                usize::try_from(value).map_err(|_| format!("{value} bytes is too large"))
            }
            range => Err(format!(
                "{} is outside the allowed range {range}",
                bytes(value)
            )),
        }
    }
}

/// A byte count the way the settings are written: `256KiB`, `1MiB`, `1GiB`, `1000B`.
pub fn bytes(value: u64) -> String {
    const GIB: u64 = KIB * KIB * KIB;
    if value >= GIB && value.is_multiple_of(GIB) {
        format!("{}GiB", value / GIB)
    } else if value >= KIB * KIB && value.is_multiple_of(KIB * KIB) {
        format!("{}MiB", value / (KIB * KIB))
    } else if value >= KIB && value.is_multiple_of(KIB) {
        format!("{}KiB", value / KIB)
    } else {
        format!("{value}B")
    }
}

/// Parses a byte count: a plain number of bytes, or a number with a unit (`256KiB`, `1 MiB`,
/// `64kB`).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|_| {
            format!(
                "{:?} is not a size (write bytes, or e.g. \"256KiB\", \"1MiB\")",
                crate::text::shown(text, 40)
            )
        })
}

fn order_problem(low: &str, a: Duration, high: &str, b: Duration) -> String {
    format!(
        "{low} ({}) must not be longer than {high} ({})",
        humantime::format_duration(a),
        humantime::format_duration(b)
    )
}

impl FetchSettings {
    /// The value of a duration field (`None` for the document size).
    pub fn duration(&self, field: Field) -> Option<Duration> {
        match field {
            Field::ConnectTimeout => Some(self.connect_timeout),
            Field::Timeout => Some(self.timeout),
            Field::RefreshCooldown => Some(self.min_refresh_interval),
            Field::DefaultTtl => Some(self.default_ttl),
            Field::MinTtl => Some(self.min_ttl),
            Field::MaxTtl => Some(self.max_ttl),
            Field::MaxStale => Some(self.max_stale),
            Field::MaxDocumentSize => None,
        }
    }

    /// The value of `field` as shown to operators (`5s`, `256KiB`).
    pub fn shown(&self, field: Field) -> String {
        match self.duration(field) {
            Some(d) => humantime::format_duration(d).to_string(),
            None => bytes(self.max_body_bytes as u64),
        }
    }

    /// The relations every effective setting must keep: connect timeout ≤ timeout, and
    /// min TTL ≤ default TTL ≤ max TTL. Each problem names its two fields with `name`.
    pub fn relation_problems(&self, name: impl Fn(Field) -> String) -> Vec<String> {
        let mut problems = Vec::new();
        for (low, high) in [
            (Field::ConnectTimeout, Field::Timeout),
            (Field::MinTtl, Field::DefaultTtl),
            (Field::DefaultTtl, Field::MaxTtl),
        ] {
            if let (Some(a), Some(b)) = (self.duration(low), self.duration(high))
                && a > b
            {
                problems.push(order_problem(&name(low), a, &name(high), b));
            }
        }
        problems
    }

    /// Every field with its value as shown and whether `overrides` (an issuer's block) set
    /// it, in [`Field::ALL`] order: what `policy explain` and the console show. Call it on the
    /// effective settings.
    pub fn entries(&self, overrides: &FetchOverrides) -> Vec<Entry> {
        Field::ALL
            .iter()
            .map(|&field| Entry {
                field,
                value: self.shown(field),
                from_issuer: overrides.sets(field),
            })
            .collect()
    }

    /// One line for operators: `connectTimeout 5s, timeout 2s (issuer), ...`.
    pub fn describe(&self, overrides: &FetchOverrides) -> String {
        self.entries(overrides)
            .iter()
            .map(|e| {
                format!(
                    "{} {}{}",
                    e.field.display_key(),
                    e.value,
                    if e.from_issuer { " (issuer)" } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// These (global) settings with `overrides` applied: the effective settings of one issuer.
    ///
    /// The connect timeout stays global, capped by the issuer's total timeout.
    ///
    /// Errors: the broken relations of the result, each naming the issuer's `fetch.*` key when
    /// the issuer set that field and the global setting otherwise (e.g. an issuer's
    /// `fetch.minTtl: 2h` over a global `issuer-default-ttl` of 1h).
    pub fn merged(&self, overrides: &FetchOverrides) -> Result<FetchSettings, Vec<String>> {
        let timeout = overrides.timeout.unwrap_or(self.timeout);
        let merged = FetchSettings {
            // A request's total timeout bounds its connect phase too: an issuer's shorter
            // `fetch.timeout` shortens its connect timeout rather than contradicting it.
            connect_timeout: self.connect_timeout.min(timeout),
            timeout,
            max_body_bytes: overrides.max_body_bytes.unwrap_or(self.max_body_bytes),
            min_refresh_interval: overrides
                .min_refresh_interval
                .unwrap_or(self.min_refresh_interval),
            default_ttl: overrides.default_ttl.unwrap_or(self.default_ttl),
            min_ttl: overrides.min_ttl.unwrap_or(self.min_ttl),
            max_ttl: overrides.max_ttl.unwrap_or(self.max_ttl),
            max_stale: overrides.max_stale.unwrap_or(self.max_stale),
        };
        let problems = merged.relation_problems(|field| match field.policy_key() {
            Some(key) if overrides.sets(field) => format!("fetch.{key}"),
            _ => format!("the global {}", field.setting()),
        });
        if problems.is_empty() {
            Ok(merged)
        } else {
            Err(problems)
        }
    }
}
