//! `trustbridge identities list`: the identity inventory of a running gateway, read from its
//! admin API (`GET /admin/v1/identities`), as text or JSON.
//!
//! A thin client: it computes nothing the gateway does not answer, and it never reads the
//! policy or the shared state itself. The admin token, when needed, comes from a file (never a
//! flag, which `ps` would show) and is never printed.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;

/// Default admin URL: the default `--admin-listen`.
pub const DEFAULT_ADMIN_URL: &str = "http://127.0.0.1:9090";

/// How long one request to the admin API may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// `trustbridge identities ...`.
#[derive(Debug, Subcommand)]
pub enum IdentitiesCommand {
    /// List every identity with its credentials' usage (first seen, last used, counts).
    List(ListArgs),
}

/// Output format of `identities list`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line per identity, one indented line per credential.
    #[default]
    Text,
    /// The admin API's JSON answer.
    Json,
}

/// `identities list` flags.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only what has gone unused this long (never used included), e.g. 30d.
    #[arg(long)]
    pub unused_for: Option<String>,
    /// The admin listener of the gateway.
    #[arg(long, env = "TRUSTBRIDGE_ADMIN_URL", default_value = DEFAULT_ADMIN_URL)]
    pub admin_url: String,
    /// File holding the admin API's bearer token.
    #[arg(long, env = "TRUSTBRIDGE_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Runs `identities list`; returns the exit code (0, 1 when the gateway cannot be read,
/// [`super::EXIT_USAGE`] for a bad flag).
pub fn run(cmd: &IdentitiesCommand, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let IdentitiesCommand::List(args) = cmd;
    if let Some(text) = &args.unused_for
        && humantime::parse_duration(text).is_err()
    {
        let _ = writeln!(
            err,
            "trustbridge identities: --unused-for '{text}' is not a duration such as 30d"
        );
        return super::EXIT_USAGE;
    }
    let token = match &args.admin_token_file {
        None => None,
        Some(path) => match std::fs::read_to_string(path) {
            Ok(t) => Some(zeroize::Zeroizing::new(t.trim().to_owned())),
            Err(e) => {
                let _ = writeln!(err, "trustbridge identities: {}: {e}", path.display());
                return super::EXIT_USAGE;
            }
        },
    };
    let Some(runtime) = super::one_shot_runtime("identities", err) else {
        return 1;
    };
    let body = runtime.block_on(fetch(
        &args.admin_url,
        token.as_deref().map(String::as_str),
        args.unused_for.as_deref(),
    ));
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            let _ = writeln!(err, "trustbridge identities: {e}");
            return 1;
        }
    };
    let written = match args.format {
        Format::Json => serde_json::to_writer_pretty(&mut *out, &body)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out)),
        Format::Text => render_text(&body, out),
    };
    i32::from(written.is_err())
}

/// GETs `/admin/v1/identities` of `admin_url`.
///
/// # Errors
/// A message naming what failed (never the token).
pub async fn fetch(
    admin_url: &str,
    token: Option<&str>,
    unused_for: Option<&str>,
) -> Result<Value, String> {
    let mut url = url::Url::parse(admin_url)
        .and_then(|u| u.join("/admin/v1/identities"))
        .map_err(|e| format!("--admin-url '{admin_url}': {e}"))?;
    if let Some(age) = unused_for {
        url.query_pairs_mut().append_pair("unusedFor", age);
    }
    let http = crate::client::http_client(TIMEOUT).map_err(|e| e.to_string())?;
    let mut req = http.get(url.clone());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("{url}: {}", e.without_url()))?;
    let status = resp.status();
    let body: Value = resp
        .json()
        .await
        .map_err(|e| format!("{url}: the answer is not JSON ({})", e.without_url()))?;
    if !status.is_success() {
        let why = body["error_description"].as_str().unwrap_or("");
        return Err(format!("{url}: {status} {why}"));
    }
    Ok(body)
}

/// Writes the admin API's answer `body` as text: a line per identity, an indented line per
/// credential, stale credentials marked.
///
/// # Errors
/// When `out` fails.
pub fn render_text(body: &Value, out: &mut dyn Write) -> std::io::Result<()> {
    let empty = Vec::new();
    let identities = body["identities"].as_array().unwrap_or(&empty);
    if identities.is_empty() {
        return writeln!(out, "no identities");
    }
    for i in identities {
        let declared = if i["declared"].as_bool().unwrap_or(false) {
            ""
        } else {
            " (not declared)"
        };
        writeln!(
            out,
            "{}/{} {}{declared}: {}",
            str_of(&i["tenant"]),
            str_of(&i["name"]),
            str_of(&i["kind"]),
            usage(i)
        )?;
        for c in i["credentials"].as_array().unwrap_or(&empty) {
            let stale = if c["stale"].as_bool().unwrap_or(false) {
                " STALE"
            } else {
                ""
            };
            writeln!(out, "  {}{stale}: {}", str_of(&c["name"]), usage(c))?;
        }
    }
    Ok(())
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("?")
}

/// `granted 3, denied 1, last used <time>, first seen <time>, last subject <sub> from <ip>`.
fn usage(v: &Value) -> String {
    let time = |field: &str| {
        v[field].as_u64().map_or_else(
            || "never".to_owned(),
            |t| humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t)).to_string(),
        )
    };
    let mut line = format!(
        "granted {}, denied {}, last used {}, first seen {}",
        v["granted"].as_u64().unwrap_or(0),
        v["denied"].as_u64().unwrap_or(0),
        time("last_used"),
        time("first_seen"),
    );
    if let Some(sub) = v["last_subject"].as_str() {
        line.push_str(&format!(", last subject {}", crate::text::shown(sub, 256)));
    }
    if let Some(ip) = v["last_caller"].as_str() {
        line.push_str(&format!(" from {}", crate::text::shown(ip, 64)));
    }
    line
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::render_text;

    #[test]
    fn text_shows_identities_credentials_and_stale_marks() {
        let body = json!({"identities": [{
            "tenant": "contoso", "kind": "servicePrincipal", "name": "deploy-bot",
            "declared": true, "granted": 2, "denied": 1, "first_seen": 0, "last_used": 60,
            "last_subject": "repo:a/b", "last_caller": "10.0.0.1",
            "credentials": [
                {"name": "main", "granted": 2, "denied": 0, "last_used": 60, "stale": false},
                {"name": "old", "granted": 0, "denied": 0, "stale": true}
            ]
        }]});
        let mut out = Vec::new();
        render_text(&body, &mut out).expect("render");
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.starts_with("contoso/deploy-bot servicePrincipal: granted 2, denied 1, last used 1970-01-01T00:01:00Z, first seen 1970-01-01T00:00:00Z, last subject repo:a/b from 10.0.0.1\n"), "{text}");
        assert!(
            text.contains("  old STALE: granted 0, denied 0, last used never"),
            "{text}"
        );
        let mut out = Vec::new();
        render_text(&json!({"identities": []}), &mut out).expect("render");
        assert_eq!(out, b"no identities\n");
    }
}
