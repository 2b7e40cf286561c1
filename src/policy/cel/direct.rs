//! Claim mappings that only copy one claim, answered from the JSON claims directly instead of
//! through the interpreter: `claims.x`, `claims["x"]`, and `has(claims.x) ? claims.x : <literal>`
//! (the claim branch spelled either way). These are the shapes of the bundled policies and of most
//! mappings people write; the interpreter's per-call setup (a context, the claim converted to a
//! CEL value and the result back to JSON) is most of what such a mapping costs.
//!
//! Recognised once when the expression compiles; the interpreter stays the reference. A direct
//! read answers only where its answer is the interpreter's by construction (the claim is
//! present, or the literal is the answer); everything else, including every error, is left to
//! the interpreter ([`Direct::read`] returns `None`). The property tests in `tests.rs` compare
//! both on arbitrary claims.

use cel::common::ast::LiteralValue;

use super::*;

/// A mapping that reads one top-level claim.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Direct {
    /// `claims.x` or `claims["x"]`: the claim, when present.
    Claim(String),
    /// `has(claims.x) ? claims.x : <literal>`: the claim when present, else the literal.
    ClaimOr(String, Json),
}

impl Direct {
    /// The direct form of `expr`, when it has one.
    pub(super) fn of(expr: &IdedExpr) -> Option<Self> {
        if let Some(name) = claim_read(expr) {
            return Some(Self::Claim(name.to_owned()));
        }
        let Expr::Call(call) = &expr.expr else {
            return None;
        };
        if call.func_name != cel::common::ast::operators::CONDITIONAL || call.target.is_some() {
            return None;
        }
        let [test, then, otherwise] = call.args.as_slice() else {
            return None;
        };
        let Expr::Select(select) = &test.expr else {
            return None;
        };
        let tested = select.test && is_claims(&select.operand);
        if !tested || claim_read(then) != Some(select.field.as_str()) {
            return None;
        }
        let Expr::Literal(literal) = &otherwise.expr else {
            return None;
        };
        Some(Self::ClaimOr(select.field.clone(), literal_json(literal)?))
    }

    /// The mapping's value on `claims`, or `None` when the interpreter must answer (a missing
    /// claim is its error to describe). `claims` must already have been measured against the
    /// conversion bounds (`measure_object`), as the interpreter's path does first.
    pub(super) fn read(&self, claims: &serde_json::Map<String, Json>) -> Option<Json> {
        match self {
            Self::Claim(name) => claims.get(name).cloned(),
            Self::ClaimOr(name, literal) => Some(claims.get(name).unwrap_or(literal).clone()),
        }
    }
}

/// A literal's JSON value, as `cel_to_json` would give it; none for bytes and doubles (the
/// interpreter answers those mappings).
fn literal_json(literal: &LiteralValue) -> Option<Json> {
    Some(match literal {
        LiteralValue::Boolean(b) => Json::Bool(*b.inner()),
        LiteralValue::Int(i) => Json::from(*i.inner()),
        LiteralValue::UInt(u) => Json::from(*u.inner()),
        LiteralValue::String(s) => Json::String(s.inner().to_owned()),
        LiteralValue::Null => Json::Null,
        LiteralValue::Bytes(_) | LiteralValue::Double(_) => return None,
    })
}
