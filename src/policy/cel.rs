//! CEL expressions over a validated token's `claims` (conditions, claimMappings, nameFrom).
//!
//! Compiled once at load; evaluation never panics and never fails a request with a 5xx: an
//! expression that errors (missing claim, wrong type) is an [`EvalError`], which callers turn
//! into a denial.
//!
//! A claim mapping that only copies one claim (`claims.x`, `claims["x"]`,
//! `has(claims.x) ? claims.x : <literal>`) is answered from the JSON claims directly when that
//! answer is the interpreter's by construction (see `direct`); the interpreter answers the rest.
//!
//! `claims` is the variable every expression sees. Conditions ([`Expression::compile_condition`])
//! also see `request`: `request.ip` (the client address as a string, absent when unknown),
//! `request.time` (a timestamp: the decision's `now`) and `request.tls` (a bool), with the
//! Kubernetes IP/CIDR library (`ip()`, `cidr().containsIP()`, `isIP`, `isCIDR`, see `net`).
//! Compilation refuses any other free identifier and any other field of `request`, so a typo
//! such as `claim.sub` or `request.addr` is a load problem instead of a policy that silently
//! denies everything.
//!
//! Bounds on hostile input (the `cel` crate recurses, and a stack overflow aborts the process,
//! which no `catch_unwind` can stop): sources are at most [`MAX_SOURCE_LEN`] bytes; the parser
//! runs on a thread of its own with a large stack and refuses nesting past [`MAX_NESTING`]; the
//! parsed tree must not be deeper than [`MAX_NESTING`] either; and claims nested deeper than
//! [`MAX_CLAIMS_DEPTH`] are refused before evaluation. Together they keep the recursive
//! evaluator well inside a 2 MiB worker stack (tested, in debug builds). The `cel` crate also
//! holds a few `panic!`/`expect` calls on states its parser should never produce; evaluation
//! runs under `catch_unwind` as a last line of defence, and a caught panic is an [`EvalError`]
//! like any other.
//!
//! Bounds on cost: a token is at most 16 KiB (`issuers::MAX_TOKEN_BYTES`), so its claims hold
//! at most ~6 000 values (`[0,0,...]`, two bytes each after base64 decoding), and conversion
//! refuses more than [`MAX_CLAIM_VALUES`] anyway. What must not happen is work quadratic in
//! that number: compilation refuses iteration inside a comprehension's predicate or step (a
//! nested `all`/`exists`/`exists_one`/`map`/`filter`, or `in` over anything but a literal
//! list), so every expression costs O(source length × claim values).

use std::fmt;
use std::net::IpAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, LazyLock};
use std::time::SystemTime;

use cel::common::ast::{EntryExpr, Expr};
use cel::objects::{Key, Map};
use cel::{Context, Env, IdedExpr, Value};
use serde_json::Value as Json;

/// Longest accepted expression source, in bytes.
pub const MAX_SOURCE_LEN: usize = 4096;

/// Deepest accepted expression nesting, both as the `cel` parser's recursion limit and as the
/// depth of the parsed tree (a flat `a + a + ... + a` is shallow to the parser but deep to the
/// evaluator). Real conditions stay far below it; long `||` chains read better as `x in [...]`.
pub const MAX_NESTING: u16 = 32;

/// Stack of the thread that parses: the generated ANTLR parser spends up to ~200 KiB of stack per
/// nesting level in debug builds, more than a worker thread has.
const PARSER_STACK: usize = 64 * 1024 * 1024;

/// Deepest accepted nesting of token claims (and of evaluation results turned back into JSON).
pub const MAX_CLAIMS_DEPTH: usize = 64;

/// Most values (scalars, lists and maps, counted recursively) converted from a token's claims
/// for one evaluation. A 16 KiB token holds fewer; the cap keeps the bound explicit.
pub const MAX_CLAIM_VALUES: usize = 8192;

/// Longest error text kept from the `cel` crate: its messages may quote claim values.
const MAX_ERROR_LEN: usize = 200;

/// The variable expressions see.
const CLAIMS: &str = "claims";

/// The variable conditions see beside `claims`.
const REQUEST: &str = "request";

/// The fields of `request`.
pub const REQUEST_FIELDS: [&str; 3] = ["ip", "time", "tls"];

/// Identifiers that name CEL types rather than variables (`type(x) == string`).
const TYPE_IDENTS: [&str; 10] = [
    "bool",
    "bytes",
    "double",
    "int",
    "list",
    "map",
    "null_type",
    "string",
    "type",
    "uint",
];

/// The standard CEL environment plus the Kubernetes IP/CIDR library, built once: building it
/// registers every overload.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    net::register(&mut env);
    Arc::new(env)
});

/// What a condition reads as `request`: facts about the HTTP request, passed in by the caller
/// (the decision stays pure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestVars {
    /// The effective client address (`request.ip`); `None` leaves the field absent.
    pub ip: Option<IpAddr>,
    /// The decision's time (`request.time`).
    pub time: SystemTime,
    /// Whether the request came over TLS (`request.tls`).
    pub tls: bool,
}

/// A compiled CEL expression and its source text. Cheap to clone; shareable across threads.
#[derive(Clone)]
pub struct Expression {
    source: String,
    program: Arc<IdedExpr>,
    /// Whether the expression names `request` (only conditions may): evaluations of the others
    /// never build it.
    reads_request: bool,
    /// The top-level claims the expression reads, when it reads them only by name
    /// (`claims.x`, `claims["x"]`, `has(claims.x)`): an evaluation converts only those to CEL
    /// values. `None` when it uses `claims` any other way: every claim is converted.
    reads_claims: Option<Arc<[String]>>,
    /// The expression's direct form when it only copies one claim (see `direct`): claim
    /// mappings read the JSON claims instead of running the interpreter where that answers.
    direct: Option<Direct>,
    /// A condition's direct form when it only tests the request's network and time (see
    /// `direct_condition`).
    direct_condition: Option<DirectCondition>,
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
    /// Compiles `source`, an expression over `claims` only (claimMappings, nameFrom).
    ///
    /// # Errors
    /// Empty or longer than [`MAX_SOURCE_LEN`] bytes, a syntax error, nesting deeper than
    /// [`MAX_NESTING`], or a free identifier other than `claims`.
    pub fn compile(source: &str) -> Result<Self, CompileError> {
        Self::compile_with(source, false)
    }

    /// Compiles `source`, a condition: it may also read `request` (see the module docs).
    ///
    /// # Errors
    /// As [`Expression::compile`], or a field of `request` other than [`REQUEST_FIELDS`].
    pub fn compile_condition(source: &str) -> Result<Self, CompileError> {
        Self::compile_with(source, true)
    }

    fn compile_with(source: &str, request: bool) -> Result<Self, CompileError> {
        if source.trim().is_empty() {
            return Err(CompileError("expression is empty".into()));
        }
        if source.len() > MAX_SOURCE_LEN {
            return Err(CompileError(format!(
                "expression is {} bytes long; at most {MAX_SOURCE_LEN} are allowed",
                source.len()
            )));
        }
        let program = parse_on_big_stack(source, request)?;
        let mut unknown = Vec::new();
        free_identifiers(&program, &mut Vec::new(), &mut unknown, false);
        let reads_request = unknown.iter().any(|name| name == REQUEST);
        let mut names = Vec::new();
        let reads_claims = claims_read_by_name(&program, &mut names).then(|| names.into());
        let direct = Direct::of(&program);
        let direct_condition = if request {
            DirectCondition::of(&program)
        } else {
            None
        };
        Ok(Self {
            source: source.to_string(),
            program: Arc::new(program),
            reads_request,
            reads_claims,
            direct,
            direct_condition,
        })
    }

    /// Whether the expression can only be true when one of the claims `names` equals a literal
    /// written in it: `claims.x == "lit"`, `"lit" == claims["x"]` or `claims.x in ["a", "b"]`,
    /// required conjunctively (at the top level or under `&&` only, never under `||`, `!`, a
    /// ternary or a macro). `has(claims.x)` or `claims.x != ""` do not pin anything.
    pub fn pins_claim(&self, names: &[&str]) -> bool {
        pins_claim(&self.program, names)
    }

    /// The source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates to a bool.
    ///
    /// # Errors
    /// Any evaluation error (missing claim, wrong type, no such function) or a non-bool result.
    pub fn eval_bool(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<bool, EvalError> {
        match self.eval(claims)? {
            Value::Bool(b) => Ok(b),
            other => Err(EvalError(format!(
                "expression yields {}, not a bool",
                type_name(&other)
            ))),
        }
    }

    /// Evaluates to a non-empty string.
    ///
    /// # Errors
    /// Any evaluation error, a non-string result, or the empty string.
    pub fn eval_string(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, EvalError> {
        match self.eval(claims)? {
            Value::String(s) if !s.is_empty() => Ok(s.as_str().to_string()),
            Value::String(_) => Err(EvalError("expression yields an empty string".into())),
            other => Err(EvalError(format!(
                "expression yields {}, not a string",
                type_name(&other)
            ))),
        }
    }

    /// Evaluates to a JSON value (for claimMappings).
    ///
    /// # Errors
    /// Any evaluation error, or a result JSON cannot hold: bytes, a map with non-string keys, a
    /// non-finite float, a function or an opaque value.
    pub fn eval_json(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<serde_json::Value, EvalError> {
        if let Some(direct) = &self.direct {
            // The same bounds, checked first, as the interpreter's path.
            let mut budget = MAX_CLAIM_VALUES;
            measure_object(claims, 0, &mut budget)?;
            if let Some(value) = direct.read(claims) {
                return Ok(value);
            }
        }
        self.eval_json_interpreted(claims)
    }

    /// [`Expression::eval_json`] through the interpreter, whatever the expression's shape.
    fn eval_json_interpreted(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<serde_json::Value, EvalError> {
        cel_to_json(&self.eval(claims)?, 0)
    }

    /// Evaluates a condition to a bool, with `request` bound to `request`.
    ///
    /// # Errors
    /// As [`Expression::eval_bool`].
    pub fn eval_condition(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
        request: &RequestVars,
    ) -> Result<bool, EvalError> {
        if let Some(direct) = &self.direct_condition {
            // The same bounds, checked first, as the interpreter's path.
            let mut budget = MAX_CLAIM_VALUES;
            measure_object(claims, 0, &mut budget)?;
            if let Some(answer) = direct.test(request) {
                return Ok(answer);
            }
        }
        self.eval_condition_interpreted(claims, request)
    }

    /// [`Expression::eval_condition`] through the interpreter, whatever the condition's shape.
    fn eval_condition_interpreted(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
        request: &RequestVars,
    ) -> Result<bool, EvalError> {
        match self.eval_with(claims, Some(request))? {
            Value::Bool(b) => Ok(b),
            other => Err(EvalError(format!(
                "expression yields {}, not a bool",
                type_name(&other)
            ))),
        }
    }

    fn eval(&self, claims: &serde_json::Map<String, Json>) -> Result<Value, EvalError> {
        self.eval_with(claims, None)
    }

    fn eval_with(
        &self,
        claims: &serde_json::Map<String, Json>,
        request: Option<&RequestVars>,
    ) -> Result<Value, EvalError> {
        let mut budget = MAX_CLAIM_VALUES;
        let claims = match &self.reads_claims {
            // The whole token is held to the same bounds either way; only the claims the
            // expression names become CEL values.
            Some(names) => {
                measure_object(claims, 0, &mut budget)?;
                named_claims_to_cel(claims, names)?
            }
            None => object_to_cel(claims, 0, &mut budget)?,
        };
        let request = match request {
            Some(vars) if self.reads_request => Some(request_to_cel(vars)),
            _ => None,
        };
        let program = &self.program;
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let mut ctx = Context::with_env(Arc::clone(&ENV));
            ctx.add_variable_from_value(CLAIMS, claims);
            if let Some(request) = request {
                ctx.add_variable_from_value(REQUEST, request);
            }
            Value::resolve(program, &ctx)
        }));
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(EvalError(one_line(&e.to_string()))),
            Err(_) => Err(EvalError("the CEL evaluator failed on this input".into())),
        }
    }
}

/// Parses `source` on a thread of its own with a large stack, then checks what the parse left:
/// its depth and its free identifiers. Only load time pays for the thread.
fn parse_on_big_stack(source: &str, request: bool) -> Result<IdedExpr, CompileError> {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("cel-compile".into())
            .stack_size(PARSER_STACK)
            .spawn_scoped(scope, || parse_and_check(source, request))
            .map_err(|e| CompileError(format!("cannot start the CEL compiler thread: {e}")))?;
        worker.join().unwrap_or_else(|_| {
            Err(CompileError(
                "the CEL parser failed on this expression".into(),
            ))
        })
    })
}

fn parse_and_check(source: &str, request: bool) -> Result<IdedExpr, CompileError> {
    let program = ENV
        .parser()
        .max_recursion_depth(MAX_NESTING)
        .parse(source)
        .map_err(|e| CompileError(one_line(&e.to_string())))?;
    let depth = ast_depth(&program, 0);
    if depth > usize::from(MAX_NESTING) {
        return Err(CompileError(format!(
            "expression nests deeper than {MAX_NESTING} levels; split it up \
             (a long `||` chain of equalities reads better as `claims.x in [...]`)"
        )));
    }
    if let Some(problem) = nested_iteration(&program, false) {
        return Err(CompileError(format!(
            "{problem} inside a comprehension's predicate: its cost grows with the square of \
             the token's size; test each list on its own (`a.exists(x, ...) && \
             b.exists(y, ...)`) or against a literal list (`x in [\"a\", \"b\"]`)"
        )));
    }
    let mut unknown = Vec::new();
    free_identifiers(&program, &mut Vec::new(), &mut unknown, request);
    if let Some(name) = unknown.first() {
        let also = if request {
            format!(" and `{REQUEST}` (`{REQUEST}.ip`, `{REQUEST}.time`, `{REQUEST}.tls`)")
        } else if name == REQUEST {
            " (only conditions can read `request`)".to_string()
        } else {
            String::new()
        };
        return Err(CompileError(format!(
            "unknown variable {name:?}: expressions can only read `{CLAIMS}` \
             (e.g. `{CLAIMS}.sub`, `{CLAIMS}[\"kubernetes.io\"].namespace`){also}"
        )));
    }
    if request && let Some(field) = unknown_request_field(&program) {
        return Err(CompileError(format!(
            "unknown field {field:?} of `{REQUEST}`: it has {}",
            REQUEST_FIELDS
                .map(|f| format!("`{REQUEST}.{f}`"))
                .join(", ")
        )));
    }
    Ok(program)
}

/// The direct subexpressions of `expr`, in source order: the one place that knows the shape
/// of every node, for the walkers that treat every child alike.
fn children(expr: &IdedExpr) -> Vec<&IdedExpr> {
    fn entry(entry: &EntryExpr) -> Vec<&IdedExpr> {
        match entry {
            EntryExpr::StructField(f) => vec![&f.value],
            EntryExpr::MapEntry(e) => vec![&e.key, &e.value],
        }
    }
    match &expr.expr {
        Expr::Unspecified | Expr::Literal(_) | Expr::Ident(_) => Vec::new(),
        Expr::Call(call) => call
            .target
            .iter()
            .map(|t| &**t)
            .chain(call.args.iter())
            .collect(),
        Expr::Comprehension(comp) => vec![
            &comp.iter_range,
            &comp.accu_init,
            &comp.loop_cond,
            &comp.loop_step,
            &comp.result,
        ],
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => map.entries.iter().flat_map(|e| entry(&e.expr)).collect(),
        Expr::Select(select) => vec![&select.operand],
        Expr::Struct(s) => s.entries.iter().flat_map(|e| entry(&e.expr)).collect(),
    }
}

/// Depth of the tree below `expr`, counting from `depth`; stops descending past the limit so
/// that measuring a hostile tree is as cheap as refusing it.
fn ast_depth(expr: &IdedExpr, depth: usize) -> usize {
    if depth > usize::from(MAX_NESTING) {
        return depth;
    }
    children(expr)
        .into_iter()
        .map(|e| ast_depth(e, depth + 1))
        .max()
        .unwrap_or(depth)
}

// === cost ===

/// The first iteration found inside a comprehension's loop condition or step (`in_body`), as
/// words for a message; `None` when there is none. The range, initial value and result of a
/// comprehension run once, so iteration there only adds up.
fn nested_iteration(expr: &IdedExpr, in_body: bool) -> Option<&'static str> {
    let walk = |e: &IdedExpr| nested_iteration(e, in_body);
    let entry = |entry: &EntryExpr| match entry {
        EntryExpr::StructField(f) => walk(&f.value),
        EntryExpr::MapEntry(e) => walk(&e.key).or_else(|| walk(&e.value)),
    };
    match &expr.expr {
        Expr::Unspecified | Expr::Literal(_) | Expr::Ident(_) => None,
        Expr::Comprehension(_) if in_body => {
            Some("a comprehension (all, exists, exists_one, map, filter)")
        }
        Expr::Comprehension(comp) => walk(&comp.iter_range)
            .or_else(|| walk(&comp.accu_init))
            .or_else(|| walk(&comp.result))
            .or_else(|| nested_iteration(&comp.loop_cond, true))
            .or_else(|| nested_iteration(&comp.loop_step, true)),
        Expr::Call(call)
            if in_body
                && call.func_name == cel::common::ast::operators::IN
                && !matches!(call.args.get(1).map(|a| &a.expr), Some(Expr::List(_))) =>
        {
            Some("`in` over a list that is not written out in the expression")
        }
        Expr::Call(call) => call
            .target
            .iter()
            .map(|t| walk(t))
            .chain(call.args.iter().map(walk))
            .find_map(|found| found),
        Expr::List(list) => list.elements.iter().find_map(walk),
        Expr::Map(map) => map.entries.iter().find_map(|e| entry(&e.expr)),
        Expr::Select(select) => walk(&select.operand),
        Expr::Struct(s) => s.entries.iter().find_map(|e| entry(&e.expr)),
    }
}

// === analysis ===

fn pins_claim(expr: &IdedExpr, names: &[&str]) -> bool {
    use cel::common::ast::operators::{EQUALS, IN, LOGICAL_AND};
    let Expr::Call(call) = &expr.expr else {
        return false;
    };
    if call.target.is_some() {
        return false;
    }
    match (call.func_name.as_str(), call.args.as_slice()) {
        (LOGICAL_AND, args) => args.iter().any(|a| pins_claim(a, names)),
        (EQUALS, [a, b]) => {
            (is_claim(a, names) && is_literal(b)) || (is_claim(b, names) && is_literal(a))
        }
        (IN, [a, b]) => {
            is_claim(a, names)
                && matches!(&b.expr, Expr::List(list)
                    if !list.elements.is_empty() && list.elements.iter().all(is_literal))
        }
        _ => false,
    }
}

/// `claims.<name>` or `claims["<name>"]` for one of `names` (not `has(claims.<name>)`).
fn is_claim(expr: &IdedExpr, names: &[&str]) -> bool {
    claim_read(expr).is_some_and(|name| names.contains(&name))
}

/// Whether `expr` is the `claims` variable itself.
fn is_claims(expr: &IdedExpr) -> bool {
    matches!(&expr.expr, Expr::Ident(n) if n == CLAIMS)
}

/// The claim `expr` reads: `claims.<name>` (not `has(claims.<name>)`) or `claims["<name>"]`
/// with a string literal.
fn claim_read(expr: &IdedExpr) -> Option<&str> {
    use cel::common::ast::LiteralValue;
    match &expr.expr {
        Expr::Select(select) if !select.test && is_claims(&select.operand) => {
            Some(select.field.as_str())
        }
        Expr::Call(call)
            if call.func_name == cel::common::ast::operators::INDEX && call.target.is_none() =>
        {
            match call.args.as_slice() {
                [target, key] if is_claims(target) => match &key.expr {
                    Expr::Literal(LiteralValue::String(k)) => Some(k.inner()),
                    _ => None,
                },
                _ => None,
            }
        }
        _ => None,
    }
}

/// Whether every use of `claims` in `expr` names one top-level claim (`claims.x`, `claims["x"]`
/// with a string literal, `has(claims.x)`); collects those names into `names`. False when
/// `claims` is used whole, indexed by a computed key, or possibly rebound by a macro variable.
fn claims_read_by_name(expr: &IdedExpr, names: &mut Vec<String>) -> bool {
    use cel::common::ast::LiteralValue;
    let mut note = |name: &str| {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    };
    match &expr.expr {
        Expr::Ident(name) => name != CLAIMS,
        Expr::Select(select) if is_claims(&select.operand) => {
            note(&select.field);
            true
        }
        Expr::Call(call) if call.func_name == cel::common::ast::operators::INDEX => {
            match call.args.as_slice() {
                [target, key] if is_claims(target) => match &key.expr {
                    Expr::Literal(LiteralValue::String(k)) => {
                        note(k.inner());
                        true
                    }
                    _ => false,
                },
                _ => children(expr)
                    .into_iter()
                    .all(|child| claims_read_by_name(child, names)),
            }
        }
        Expr::Comprehension(comp)
            if comp.iter_var == CLAIMS
                || comp.accu_var == CLAIMS
                || comp.iter_var2.as_deref() == Some(CLAIMS) =>
        {
            false
        }
        _ => children(expr)
            .into_iter()
            .all(|child| claims_read_by_name(child, names)),
    }
}

/// A non-empty string or a number literal: a value that names one owner.
fn is_literal(expr: &IdedExpr) -> bool {
    use cel::common::ast::LiteralValue;
    match &expr.expr {
        Expr::Literal(LiteralValue::String(s)) => !s.is_empty(),
        Expr::Literal(LiteralValue::Int(_) | LiteralValue::UInt(_)) => true,
        _ => false,
    }
}

// === conversions === (in `cel/convert.rs`)

mod convert;
mod direct;
mod direct_condition;
use convert::*;
use direct::Direct;
use direct_condition::DirectCondition;

// === request ===

/// `vars` as the CEL map conditions read as `request`.
fn request_to_cel(vars: &RequestVars) -> Value {
    let mut map = std::collections::HashMap::with_capacity(3);
    if let Some(ip) = vars.ip {
        map.insert(Key::from("ip"), Value::String(Arc::new(ip.to_string())));
    }
    let time = chrono::DateTime::<chrono::Utc>::from(vars.time).fixed_offset();
    map.insert(Key::from("time"), Value::Timestamp(time));
    map.insert(Key::from("tls"), Value::Bool(vars.tls));
    Value::Map(Map { map: Arc::new(map) })
}

/// The first field of `request` the expression names (`request.x`, `request["x"]`) that is not
/// one of [`REQUEST_FIELDS`]. A comprehension variable named `request` is treated as the
/// variable here, so such an expression may be refused, never wrongly accepted.
fn unknown_request_field(expr: &IdedExpr) -> Option<String> {
    use cel::common::ast::LiteralValue;
    let is_request = |e: &IdedExpr| matches!(&e.expr, Expr::Ident(n) if n == REQUEST);
    let named = match &expr.expr {
        Expr::Select(select) if is_request(&select.operand) => Some(select.field.clone()),
        Expr::Call(call) if call.func_name == cel::common::ast::operators::INDEX => {
            match call.args.as_slice() {
                [target, key] if is_request(target) => match &key.expr {
                    Expr::Literal(LiteralValue::String(k)) => Some(k.inner().to_string()),
                    _ => Some("(computed)".to_string()),
                },
                _ => None,
            }
        }
        _ => None,
    };
    if let Some(field) = named
        && !REQUEST_FIELDS.contains(&field.as_str())
    {
        return Some(field);
    }
    children(expr).into_iter().find_map(unknown_request_field)
}

// === free identifiers ===

/// Pushes onto `out` every identifier of `expr` that is neither `claims`, a CEL type name, nor a
/// variable bound by an enclosing comprehension (`claims.groups.exists(g, g == "x")`).
fn free_identifiers(
    expr: &IdedExpr,
    bound: &mut Vec<String>,
    out: &mut Vec<String>,
    request: bool,
) {
    match &expr.expr {
        Expr::Unspecified | Expr::Literal(_) => {}
        Expr::Ident(name) => {
            let known = name == CLAIMS
                || (request && name == REQUEST)
                || name.starts_with('@')
                || TYPE_IDENTS.contains(&name.as_str())
                || bound.iter().any(|b| b == name);
            if !known && !out.contains(name) {
                out.push(name.clone());
            }
        }
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                free_identifiers(target, bound, out, request);
            }
            for arg in &call.args {
                free_identifiers(arg, bound, out, request);
            }
        }
        Expr::Comprehension(comp) => {
            free_identifiers(&comp.iter_range, bound, out, request);
            free_identifiers(&comp.accu_init, bound, out, request);
            let before = bound.len();
            bound.push(comp.iter_var.clone());
            if let Some(v) = &comp.iter_var2 {
                bound.push(v.clone());
            }
            bound.push(comp.accu_var.clone());
            free_identifiers(&comp.loop_cond, bound, out, request);
            free_identifiers(&comp.loop_step, bound, out, request);
            free_identifiers(&comp.result, bound, out, request);
            bound.truncate(before);
        }
        Expr::List(list) => {
            for e in &list.elements {
                free_identifiers(e, bound, out, request);
            }
        }
        Expr::Map(map) => {
            for entry in &map.entries {
                match &entry.expr {
                    EntryExpr::StructField(f) => free_identifiers(&f.value, bound, out, request),
                    EntryExpr::MapEntry(e) => {
                        free_identifiers(&e.key, bound, out, request);
                        free_identifiers(&e.value, bound, out, request);
                    }
                }
            }
        }
        Expr::Select(select) => free_identifiers(&select.operand, bound, out, request),
        Expr::Struct(s) => {
            for entry in &s.entries {
                match &entry.expr {
                    EntryExpr::StructField(f) => free_identifiers(&f.value, bound, out, request),
                    EntryExpr::MapEntry(e) => {
                        free_identifiers(&e.key, bound, out, request);
                        free_identifiers(&e.value, bound, out, request);
                    }
                }
            }
        }
    }
}

// Compile-time proof that a PolicySet holding expressions can be shared across threads.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Expression>();
};

mod net;
#[cfg(test)]
mod tests;
