//! Request conditions answered without the interpreter: a conjunction (`&&`) of tests each of
//! which is `cidr('<literal>').containsIP(request.ip)` or `request.time <op>
//! timestamp('<literal>')` (`<`, `<=`, `>`, `>=`). These are the shapes of the request controls
//! (`docs/policy.md`, issue 15); the interpreter's per-call setup (a context, the `request`
//! map, overload dispatch) was most of what such a condition cost.
//!
//! Recognised once when the condition compiles, with the literals parsed by the same functions
//! the interpreter calls (`cidr::Cidr::parse`, chrono's RFC 3339 parser and `cel`'s timestamp
//! range); a literal either would refuse leaves the condition to the interpreter. An answer is
//! given only where it is the interpreter's by construction: every test yields a bool (the
//! request has an address, and it reads back as one, as the interpreter reads it from the
//! `request` map's string). Everything else, including every error, is the interpreter's
//! ([`DirectCondition::test`] returns `None`). The property tests in `tests.rs` compare both
//! paths on arbitrary addresses, times and literals.

use std::io::Write as _;
use std::time::SystemTime;

use cel::common::ast::{LiteralValue, operators};

use super::*;
use crate::cidr::{self, Cidr};

/// One test of a direct condition.
#[derive(Debug, Clone, PartialEq)]
enum Test {
    /// `cidr('<literal>').containsIP(request.ip)`.
    InNetwork(Cidr),
    /// `request.time <op> timestamp('<literal>')`: the request's time ordered against the
    /// literal as `op` says.
    Time(Ordering, chrono::DateTime<chrono::FixedOffset>),
}

/// The comparison of `request.time` against its literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ordering {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

/// A condition made only of [`Test`]s joined by `&&`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct DirectCondition(Vec<Test>);

impl DirectCondition {
    /// The direct form of the condition `expr`, when it has one.
    pub(super) fn of(expr: &IdedExpr) -> Option<Self> {
        let mut tests = Vec::new();
        collect(expr, &mut tests)?;
        Some(Self(tests))
    }

    /// The condition's value for `request`, or `None` when the interpreter must answer (no
    /// address, or one the interpreter would not read back).
    pub(super) fn test(&self, request: &RequestVars) -> Option<bool> {
        let mut all = true;
        for test in &self.0 {
            all &= match test {
                Test::InNetwork(network) => network.contains_ip(as_interpreted(request.ip?)?),
                Test::Time(ordering, literal) => {
                    let time = request_time(request.time);
                    match ordering {
                        Ordering::Less => time < *literal,
                        Ordering::LessOrEqual => time <= *literal,
                        Ordering::Greater => time > *literal,
                        Ordering::GreaterOrEqual => time >= *literal,
                    }
                }
            };
        }
        Some(all)
    }
}

/// `request.time` as the interpreter sees it (`request_to_cel`).
fn request_time(time: SystemTime) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::<chrono::Utc>::from(time).fixed_offset()
}

/// The address the interpreter reads: `request.ip` is the address's text in the `request`
/// map, which `containsIP` parses with `cidr::parse_ip`. `None` where that parse refuses (the
/// interpreter's error to describe). Written on the stack: no allocation per evaluation.
fn as_interpreted(ip: std::net::IpAddr) -> Option<std::net::IpAddr> {
    let mut buffer = [0u8; 64];
    let mut cursor = &mut buffer[..];
    write!(cursor, "{ip}").ok()?;
    let written = 64 - cursor.len();
    let text = std::str::from_utf8(&buffer[..written]).ok()?;
    cidr::parse_ip(text).ok()
}

/// Appends the tests of `expr` to `tests`; `None` when any part is not a recognised test.
fn collect(expr: &IdedExpr, tests: &mut Vec<Test>) -> Option<()> {
    let Expr::Call(call) = &expr.expr else {
        return None;
    };
    if call.func_name == operators::LOGICAL_AND && call.target.is_none() {
        for arg in &call.args {
            collect(arg, tests)?;
        }
        return Some(());
    }
    tests.push(in_network(call).or_else(|| time_test(call))?);
    Some(())
}

/// `cidr('<literal>').containsIP(request.ip)`.
fn in_network(call: &cel::common::ast::CallExpr) -> Option<Test> {
    if call.func_name != "containsIP" {
        return None;
    }
    let [arg] = call.args.as_slice() else {
        return None;
    };
    if !is_request_field(arg, "ip") {
        return None;
    }
    let Expr::Call(network) = &call.target.as_ref()?.expr else {
        return None;
    };
    if network.func_name != "cidr" || network.target.is_some() {
        return None;
    }
    let [literal] = network.args.as_slice() else {
        return None;
    };
    Cidr::parse(string_literal(literal)?)
        .ok()
        .map(Test::InNetwork)
}

/// `request.time <op> timestamp('<literal>')`.
fn time_test(call: &cel::common::ast::CallExpr) -> Option<Test> {
    if call.target.is_some() {
        return None;
    }
    let ordering = match call.func_name.as_str() {
        operators::LESS => Ordering::Less,
        operators::LESS_EQUALS => Ordering::LessOrEqual,
        operators::GREATER => Ordering::Greater,
        operators::GREATER_EQUALS => Ordering::GreaterOrEqual,
        _ => return None,
    };
    let [time, literal] = call.args.as_slice() else {
        return None;
    };
    if !is_request_field(time, "time") {
        return None;
    }
    let Expr::Call(timestamp) = &literal.expr else {
        return None;
    };
    if timestamp.func_name != "timestamp" || timestamp.target.is_some() {
        return None;
    }
    let [text] = timestamp.args.as_slice() else {
        return None;
    };
    let parsed = chrono::DateTime::parse_from_rfc3339(string_literal(text)?).ok()?;
    in_cel_range(&parsed).then_some(Test::Time(ordering, parsed))
}

/// Whether `cel`'s `timestamp()` accepts `time`: from 0001-01-01T00:00:00Z to
/// 9999-12-31T23:59:59.999999999Z, the bounds it checks (a leap second past the last one is
/// refused too).
fn in_cel_range(time: &chrono::DateTime<chrono::FixedOffset>) -> bool {
    let utc = |date: chrono::NaiveDate, time: chrono::NaiveTime| date.and_time(time).and_utc();
    let (Some(first), Some(last), Some(midnight), Some(end)) = (
        chrono::NaiveDate::from_ymd_opt(1, 1, 1),
        chrono::NaiveDate::from_ymd_opt(9999, 12, 31),
        chrono::NaiveTime::from_hms_opt(0, 0, 0),
        chrono::NaiveTime::from_hms_nano_opt(23, 59, 59, 999_999_999),
    ) else {
        return false;
    };
    *time >= utc(first, midnight) && *time <= utc(last, end)
}

/// `request.<field>` (or `request["<field>"]`).
fn is_request_field(expr: &IdedExpr, field: &str) -> bool {
    match &expr.expr {
        Expr::Select(select) => {
            !select.test
                && select.field == field
                && matches!(&select.operand.expr, Expr::Ident(name) if name == REQUEST)
        }
        _ => false,
    }
}

/// The text of a string literal.
fn string_literal(expr: &IdedExpr) -> Option<&str> {
    match &expr.expr {
        Expr::Literal(LiteralValue::String(text)) => Some(text.inner()),
        _ => None,
    }
}
