//! `trustbridge policy check [DIR]`: load the directory exactly as `serve` does, then lint it.
//!
//! Exit codes: [`EXIT_CLEAN`] 0 when it loads without warnings, [`EXIT_ERRORS`] 1 when it does
//! not load (or has warnings under `--strict`), [`EXIT_WARNINGS`] 2 when it loads with
//! warnings only.
//!
//! Every problem and warning is printed at `file:line:column` (placed by the loader and by
//! `lint` in the text they read, so nothing is read twice); `--format sarif` writes SARIF 2.1.0 for
//! code-scanning tools (see [`sarif`]).

pub mod sarif;

use std::io::Write;
use std::path::Path;

use serde_json::json;

use crate::policy::lint::{self, Warning};
use crate::policy::load::source_map::Position;
use crate::policy::{LoadErrors, PolicySet, Problem};

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
    /// SARIF 2.1.0, for code scanning (GitHub annotates pull requests with it).
    Sarif,
}

/// Options of `policy check`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Warnings exit [`EXIT_ERRORS`] instead of [`EXIT_WARNINGS`].
    pub strict: bool,
    /// Output format.
    pub format: Format,
    /// The global issuer fetch settings (`--issuer-*`) the Issuers' `fetch:` blocks must fit,
    /// as `serve` reads them.
    pub fetch: crate::fetch_settings::FetchSettings,
}

/// Checks `dir`, prints the result to `out`, returns the exit code.
pub fn run(dir: &Path, options: Options, out: &mut dyn Write) -> i32 {
    let loaded = crate::policy::load_dir(dir).and_then(|set| {
        crate::policy::check_fetch_settings(&set, &options.fetch)?;
        Ok(set)
    });
    let warnings = loaded.as_ref().map(lint::lint).unwrap_or_default();
    let code = match (&loaded, warnings.is_empty()) {
        (Err(_), _) => EXIT_ERRORS,
        (Ok(_), true) => EXIT_CLEAN,
        (Ok(_), false) if options.strict => EXIT_ERRORS,
        (Ok(_), false) => EXIT_WARNINGS,
    };
    let (errors, warnings) = place(&loaded, warnings);
    // Output errors (a closed pipe) cannot change the verdict; the exit code carries it.
    let _ = match options.format {
        Format::Text => text(dir, &loaded, &errors, &warnings, out),
        Format::Json => json_report(dir, &loaded, &errors, &warnings, code, out),
        Format::Sarif => sarif::write(&errors, &warnings, out),
    };
    code
}

/// A problem or warning with its `file:line:column` when the document could be found.
#[derive(Debug, Clone)]
pub struct Placed<T> {
    /// The problem or warning, its `location` replaced by the position when there is one.
    pub item: T,
    /// Where it is.
    pub position: Option<Position>,
}

/// Pairs each problem and warning with the position the loader (or lint) found, its
/// `location` replaced by that position when there is one.
fn place(
    loaded: &Result<PolicySet, LoadErrors>,
    warnings: Vec<Warning>,
) -> (Vec<Placed<Problem>>, Vec<Placed<Warning>>) {
    let errors = match loaded {
        Err(LoadErrors(problems)) => problems
            .iter()
            .map(|p| Placed {
                item: Problem {
                    location: p.shown_location(),
                    ..p.clone()
                },
                position: p.position.clone(),
            })
            .collect(),
        Ok(_) => Vec::new(),
    };
    let warnings = warnings
        .into_iter()
        .map(|w| Placed {
            position: w.position.clone(),
            item: Warning {
                location: w.shown_location(),
                ..w
            },
        })
        .collect();
    (errors, warnings)
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
    errors: &[Placed<Problem>],
    warnings: &[Placed<Warning>],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    match loaded {
        Err(_) => write!(
            out,
            "{}: {}",
            dir.display(),
            LoadErrors(errors.iter().map(|p| p.item.clone()).collect())
        ),
        Ok(set) => {
            writeln!(out, "{}: ok ({})", dir.display(), summary(set))?;
            for w in warnings {
                writeln!(out, "{}", w.item)?;
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
    errors: &[Placed<Problem>],
    warnings: &[Placed<Warning>],
    code: i32,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let position = |p: &Option<Position>| {
        p.as_ref()
            .map(|p| json!({"file": p.file, "line": p.line, "column": p.column}))
    };
    let errors: Vec<_> = errors
        .iter()
        .map(|Placed { item: p, position: at }| {
            json!({"location": p.location, "position": position(at), "path": p.path, "message": p.message})
        })
        .collect();
    let warnings: Vec<_> = warnings
        .iter()
        .map(
            |Placed {
                 item: w,
                 position: at,
             }| {
                json!({
                    "code": w.lint.code(),
                    "location": w.location,
                    "position": position(at),
                    "path": w.path,
                    "message": w.message,
                    "fix": w.fix,
                })
            },
        )
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
