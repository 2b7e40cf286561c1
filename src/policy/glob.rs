//! Segment-aware subject globs (`subjectPattern`).
//!
//! `*` matches within one segment: any run of characters except `/` and `:`. `**` matches
//! across `/` but never `:`, so a pattern can never let a token jump from one subject field
//! (`repo:`, `ref:`, `environment:`) into another. Everything else matches literally and
//! case-sensitively.

/// A compiled subject pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectPattern {
    source: String,
}

/// Why a pattern was refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct GlobError(pub String);

impl SubjectPattern {
    /// Parses `pattern`.
    pub fn parse(pattern: &str) -> Result<Self, GlobError> {
        todo!("{pattern}")
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `subject` matches.
    pub fn matches(&self, subject: &str) -> bool {
        todo!("{subject}")
    }
}
