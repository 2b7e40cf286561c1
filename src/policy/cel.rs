//! CEL expressions over a validated token's `claims` (conditions, claimMappings, nameFrom).
//!
//! Compiled once at load; evaluation never panics and never fails a request with a 5xx: an
//! expression that errors (missing claim, wrong type) is an [`EvalError`], which callers turn
//! into a denial.

use std::fmt;

/// A compiled CEL expression and its source text.
#[derive(Clone)]
pub struct Expression {
    source: String,
}

impl fmt::Debug for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Expression({:?})", self.source)
    }
}

/// Why an expression did not compile.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid CEL expression: {0}")]
pub struct CompileError(pub String);

/// Why an evaluation did not produce a usable value.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

impl Expression {
    /// Compiles `source`.
    pub fn compile(source: &str) -> Result<Self, CompileError> {
        todo!("{source}")
    }

    /// The source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates to a bool; any other type or an error is an [`EvalError`].
    pub fn eval_bool(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<bool, EvalError> {
        todo!("{claims:?}")
    }

    /// Evaluates to a non-empty string.
    pub fn eval_string(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, EvalError> {
        todo!("{claims:?}")
    }

    /// Evaluates to a JSON value (for claimMappings).
    pub fn eval_json(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<serde_json::Value, EvalError> {
        todo!("{claims:?}")
    }
}
