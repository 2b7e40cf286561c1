//! `trustbridge policy check [DIR]`: load the directory exactly as `serve` does, then lint it.
//!
//! Exit codes: [`EXIT_CLEAN`] 0 when it loads without warnings, [`EXIT_ERRORS`] 1 when it does
//! not load (or has warnings under `--strict`), [`EXIT_WARNINGS`] 2 when it loads with
//! warnings only.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use crate::policy::lint::{self, Warning};
use crate::policy::{LoadErrors, PolicySet};

/// The set loads and has no warnings.
pub const EXIT_CLEAN: i32 = 0;
/// The set does not load (or, with `--strict`, has warnings).
pub const EXIT_ERRORS: i32 = 1;
/// The set loads with warnings.
pub const EXIT_WARNINGS: i32 = 2;

/// How `policy check` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON document, for CI.
    Json,
}

/// Options of `policy check`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Warnings exit [`EXIT_ERRORS`] instead of [`EXIT_WARNINGS`].
    pub strict: bool,
    /// Output format.
    pub format: Format,
}

/// Checks `dir`, prints the result to `out`, returns the exit code.
pub fn run(dir: &Path, options: Options, out: &mut dyn Write) -> i32 {
    let loaded = crate::policy::load_dir(dir);
    let warnings = loaded.as_ref().map(lint::lint).unwrap_or_default();
    let code = match (&loaded, warnings.is_empty()) {
        (Err(_), _) => EXIT_ERRORS,
        (Ok(_), true) => EXIT_CLEAN,
        (Ok(_), false) if options.strict => EXIT_ERRORS,
        (Ok(_), false) => EXIT_WARNINGS,
    };
    // Output errors (a closed pipe) cannot change the verdict; the exit code carries it.
    let _ = match options.format {
        Format::Text => text(dir, &loaded, &warnings, out),
        Format::Json => json_report(dir, &loaded, &warnings, code, out),
    };
    code
}

fn summary(set: &PolicySet) -> String {
    format!(
        "{} issuers, {} tenants, {} applications, {} service principals, {} managed identities; hash {}",
        set.issuers().len(),
        set.tenants().len(),
        set.applications().len(),
        set.service_principals().len(),
        set.managed_identities().len(),
        &set.content_hash()[..set.content_hash().len().min(12)],
    )
}

fn text(
    dir: &Path,
    loaded: &Result<PolicySet, LoadErrors>,
    warnings: &[Warning],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    match loaded {
        Err(errors) => write!(out, "{}: {errors}", dir.display()),
        Ok(set) => {
            writeln!(out, "{}: ok ({})", dir.display(), summary(set))?;
            for w in warnings {
                writeln!(out, "{w}")?;
            }
            if !warnings.is_empty() {
                writeln!(out, "{}: {} warning(s)", dir.display(), warnings.len())?;
            }
            Ok(())
        }
    }
}

fn json_report(
    dir: &Path,
    loaded: &Result<PolicySet, LoadErrors>,
    warnings: &[Warning],
    code: i32,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let errors: Vec<_> = match loaded {
        Err(LoadErrors(problems)) => problems
            .iter()
            .map(|p| json!({"location": p.location, "path": p.path, "message": p.message}))
            .collect(),
        Ok(_) => Vec::new(),
    };
    let warnings: Vec<_> = warnings
        .iter()
        .map(|w| {
            json!({
                "code": w.lint.code(),
                "location": w.location,
                "path": w.path,
                "message": w.message,
                "fix": w.fix,
            })
        })
        .collect();
    let status = match (loaded.is_ok(), warnings.is_empty()) {
        (false, _) => "errors",
        (true, true) => "ok",
        (true, false) => "warnings",
    };
    let report = json!({
        "dir": dir.display().to_string(),
        "status": status,
        "exitCode": code,
        "hash": loaded.as_ref().ok().map(|s| s.content_hash().to_string()),
        "errors": errors,
        "warnings": warnings,
    });
    writeln!(out, "{report:#}")
}
