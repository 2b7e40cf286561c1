//! Federation trust policies: YAML files operators keep in git, parsed (`raw`), then compiled
//! (`compile`) into an immutable [`PolicySet`].
//!
//! Loading reports every problem at once, each at its `file:line:column` (the file's document
//! index when the text cannot place it) with its field path, so an operator fixes a pull
//! request in one round. `serve` and the `policy` subcommands share
//! [`load_dir`]. [`lint`] flags what loads but is probably wrong; [`store`] reloads a running
//! gateway's set with last-known-good.

pub mod cel;
mod compile;
pub mod glob;
pub mod graph;
pub mod index;
pub mod lint;
pub mod load;
pub mod model;
pub mod presets;
mod raw;
pub mod set;
pub mod store;

use std::fmt;

pub use load::source_map::{Position, SourceMap};
pub use load::{load_dir, load_texts};
pub use set::PolicySet;

/// The JSON Schema (draft 2020-12) of one policy document, generated from the serde types the
/// loader deserializes (shape only; `compile` holds the rules relating fields and documents).
pub fn document_schema() -> schemars::Schema {
    schemars::schema_for!(raw::Document)
}

/// One problem found while loading policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `policies/ci.yaml#3`, or the file alone when the whole file is unreadable, or empty for
    /// problems of the directory itself. The document stays here (it orders problems) even
    /// when [`Problem::position`] places it.
    pub location: String,
    /// Field path inside the document (`federatedCredentials[0].issuer`), possibly empty.
    pub path: String,
    /// What is wrong, and where useful how to fix it.
    pub message: String,
    /// `file:line:column` of the field (or document), when the loader could place it in the
    /// text it read; shown instead of `location` then.
    pub position: Option<Position>,
}

impl Problem {
    /// Where the problem is, as shown: `file:line:column` when known, else `file#N` (or the
    /// file, or nothing for the directory).
    pub fn shown_location(&self) -> String {
        match &self.position {
            Some(position) => position.to_string(),
            None => self.location.clone(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let location = self.shown_location();
        match (location.is_empty(), self.path.is_empty()) {
            (true, true) => write!(f, "{}", self.message),
            (true, false) => write!(f, "{}: {}", self.path, self.message),
            (false, true) => write!(f, "{location}: {}", self.message),
            (false, false) => write!(f, "{location} {}: {}", self.path, self.message),
        }
    }
}

/// Checks that every issuer's `fetch:` block, merged over the global fetch settings
/// (`--issuer-*`), keeps their relations (the block alone was checked when it compiled; the
/// global settings are not known then). `serve` refuses such a set at start and on reload, and
/// `policy check` reports it, both through this function.
///
/// Errors: one [`Problem`] per broken relation, at the issuer's document, path `fetch`.
pub fn check_fetch_settings(
    set: &PolicySet,
    global: &crate::fetch_settings::FetchSettings,
) -> Result<(), LoadErrors> {
    let problems: Vec<Problem> = set
        .issuers()
        .filter_map(|issuer| global.merged(&issuer.fetch).err().map(|p| (issuer, p)))
        .flat_map(|(issuer, messages)| {
            messages.into_iter().map(move |message| {
                let location = issuer.origin.to_string();
                Problem {
                    position: set.sources().locate(&location, "fetch"),
                    location,
                    path: "fetch".to_string(),
                    message,
                }
            })
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(LoadErrors(problems))
    }
}

/// Every problem that kept a policy directory from loading.
#[derive(Debug, Clone, thiserror::Error)]
pub struct LoadErrors(pub Vec<Problem>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} problem(s) in the policy set:", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}
