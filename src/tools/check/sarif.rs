//! `policy check --format sarif`: the result as SARIF 2.1.0 (OASIS), the format code-scanning
//! tools read (GitHub's `upload-sarif` annotates the pull request's lines with it).
//!
//! One run, tool `trustbridge`; one rule per lint code plus `load-error` for problems that keep
//! the set from loading (level `error`); lints are level `warning`, their fix in the rule's
//! help. Locations are the `file:line:column` found by the source map; a problem of a whole
//! file names the file only, and one of the directory has no location.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{Value, json};

use super::Placed;
use crate::policy::Problem;
use crate::policy::lint::Warning;
use crate::policy::load::source_map::Position;

/// The rule id of a problem that keeps the policy set from loading.
pub const LOAD_ERROR_RULE: &str = "load-error";

/// The SARIF schema the output declares (and is tested against).
pub const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// Writes the SARIF log of one `policy check` run.
pub fn write(
    errors: &[Placed<Problem>],
    warnings: &[Placed<Warning>],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(out, "{:#}", log(errors, warnings))
}

/// The SARIF log as JSON.
pub fn log(errors: &[Placed<Problem>], warnings: &[Placed<Warning>]) -> Value {
    let mut rules: BTreeMap<&str, Value> = BTreeMap::new();
    let mut results = Vec::new();
    for Placed { item: p, position } in errors {
        rules.entry(LOAD_ERROR_RULE).or_insert_with(|| {
            json!({
                "id": LOAD_ERROR_RULE,
                "shortDescription": {"text": "The policy set does not load"},
                "help": {"text": "Fix the field named; `serve` refuses (or keeps the last good set) until every problem is fixed."},
                "defaultConfiguration": {"level": "error"},
            })
        });
        let message = if p.path.is_empty() {
            p.message.clone()
        } else {
            format!("{}: {}", p.path, p.message)
        };
        results.push(result(
            LOAD_ERROR_RULE,
            "error",
            &message,
            position,
            &p.location,
        ));
    }
    for Placed { item: w, position } in warnings {
        let code = w.lint.code();
        rules.entry(code).or_insert_with(|| {
            json!({
                "id": code,
                "shortDescription": {"text": format!("policy lint {code}")},
                "help": {"text": "See docs/operations.md, policy check lints."},
                "defaultConfiguration": {"level": "warning"},
            })
        });
        let message = match (w.path.is_empty(), w.fix.is_empty()) {
            (true, true) => w.message.clone(),
            (true, false) => format!("{} Fix: {}", w.message, w.fix),
            (false, true) => format!("{}: {}", w.path, w.message),
            (false, false) => format!("{}: {} Fix: {}", w.path, w.message, w.fix),
        };
        results.push(result(code, "warning", &message, position, &w.location));
    }
    json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "trustbridge",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/trustbridge/trustbridge",
                "rules": rules.into_values().collect::<Vec<_>>(),
            }},
            "results": results,
        }],
    })
}

fn result(
    rule: &str,
    level: &str,
    message: &str,
    position: &Option<Position>,
    location: &str,
) -> Value {
    let locations = match position {
        Some(p) => vec![json!({"physicalLocation": {
            "artifactLocation": {"uri": uri(&p.file)},
            "region": {"startLine": p.line, "startColumn": p.column},
        }})],
        // A whole file (unreadable, not UTF-8): the file without a region.
        None if !location.is_empty() && !location.contains('#') => {
            vec![json!({"physicalLocation": {"artifactLocation": {"uri": uri(location)}}})]
        }
        None => Vec::new(),
    };
    json!({
        "ruleId": rule,
        "level": level,
        "message": {"text": message},
        "locations": locations,
    })
}

/// A file path as a URI reference: relative paths stay relative (code scanning resolves them
/// against the repository root), absolute ones become `file://` URLs.
fn uri(file: &str) -> String {
    let path = std::path::Path::new(file);
    if path.is_absolute()
        && let Ok(url) = url::Url::from_file_path(path)
    {
        return url.to_string();
    }
    let file = file.replace('\\', "/");
    let mut relative = file.as_str();
    while let Some(rest) = relative.strip_prefix("./") {
        relative = rest;
    }
    relative
        .split('/')
        .map(|segment| {
            url::form_urlencoded::byte_serialize(segment.as_bytes())
                .collect::<String>()
                .replace('+', "%20")
        })
        .collect::<Vec<_>>()
        .join("/")
}
