//! Rhai, sandboxed: one shared engine, expressions compiled once at load, bounded at run time.
//!
//! Rhai's progress callback and native functions get no per-evaluation context, so what a rule
//! may see of the world (its clock, holidays, office hours) and when it must stop are put in
//! thread-locals for the (synchronous) length of one evaluation step. Nothing crosses an
//! `.await` while they are set.
//!
//! Only the packages rules need are registered: text, arrays, maps, maths, logic, iterators and
//! function pointers. Not Rhai's `LanguageCorePackage` (`sleep`, `exit`, `parse_json`),
//! `BasicTimePackage` (the real clock: rules read the call's time through `now()`, so tests and
//! replays decide as the live call did), blobs or bit fields.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Datelike, Timelike};
use chrono_tz::Tz;
use rhai::packages::{
    ArithmeticPackage, BasicArrayPackage, BasicFnPackage, BasicIteratorPackage, BasicMapPackage,
    BasicMathPackage, BasicStringPackage, LogicPackage, MoreStringPackage, Package,
};
use rhai::{
    AST, ASTNode, Dynamic, EvalAltResult, Expr, FnCallExpr, OptimizationLevel,
    Position as RhaiPosition, Scope, Stmt, Token,
};
use tokio::time::Instant;

use crate::clock::{self, Holidays, OfficeHours, weekday_name};
use crate::diagnostic::Position;
use crate::plain::Plain;
use crate::vocabulary::{Check, FactType, Vocabulary};
use crate::yaml::Node;

/// Bounds on what one rule may do. A rule that crosses one fails (it does not match) and the
/// next rule runs; the call still answers in time. Every limit is at least 1: none means
/// "unlimited" (the configuration enforces the ranges, see docs/operators.md).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Rhai operations per rule evaluation.
    pub max_operations: u64,
    /// Wall-clock time per rule evaluation, below the call's own deadline.
    pub rule_time: Duration,
    pub max_string_size: usize,
    pub max_array_size: usize,
    pub max_map_size: usize,
    /// Nested function calls (recursion depth).
    pub max_call_levels: usize,
    /// Nesting depth of expressions.
    pub max_expr_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 100_000,
            rule_time: Duration::from_millis(100),
            max_string_size: 64 * 1024,
            max_array_size: 10_000,
            max_map_size: 10_000,
            max_call_levels: 32,
            max_expr_depth: 64,
        }
    }
}

/// Lines a rule set's `print`/`debug` may write per second, and the longest line kept: a rule
/// on a busy line must not flood the log.
pub const PRINT_LINES_PER_SECOND: u64 = 20;
pub const PRINT_MAX_CHARS: usize = 256;

/// A rule set's allowance of `print`/`debug` lines: a fixed window of one second.
#[derive(Debug, Default)]
pub struct PrintBudget {
    window: AtomicU64,
    used: AtomicU64,
    dropped: AtomicU64,
}

impl PrintBudget {
    /// May one more line be written now? Reports lines dropped in the window before.
    fn take(&self) -> (bool, u64) {
        let second = clock::unix_seconds();
        let window = self.window.load(Ordering::Relaxed);
        let mut dropped_before = 0;
        if window != second
            && self
                .window
                .compare_exchange(window, second, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.used.store(0, Ordering::Relaxed);
            dropped_before = self.dropped.swap(0, Ordering::Relaxed);
        }
        if self.used.fetch_add(1, Ordering::Relaxed) < PRINT_LINES_PER_SECOND {
            (true, dropped_before)
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            (false, dropped_before)
        }
    }
}

/// Office-hours texts written literally in a rule set, read once at load.
pub type OfficeHoursTable = HashMap<String, Arc<OfficeHours>>;

/// What a rule's evaluation is allowed to see of the world.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The rule set, for log lines.
    pub ruleset: Arc<str>,
    /// The call's local time.
    pub now: DateTime<Tz>,
    pub holidays: Arc<Holidays>,
    pub office_hours: Arc<OfficeHoursTable>,
    pub print: Arc<PrintBudget>,
}

/// When the running evaluation must stop, and why.
#[derive(Debug, Clone, Copy)]
struct Stop {
    /// The rule's own time limit or the call's deadline, whichever is first.
    at: Instant,
    /// The end of a short inline attempt; crossing it hands the rule to the evaluation pool.
    inline_until: Option<Instant>,
}

thread_local! {
    static FRAME: RefCell<Option<Frame>> = const { RefCell::new(None) };
    static STOP: Cell<Option<Stop>> = const { Cell::new(None) };
}

/// Sets the frame for one evaluation step and clears it on drop, even on panic.
pub struct FrameGuard(());

impl FrameGuard {
    pub fn set(frame: Frame) -> Self {
        FRAME.with(|f| *f.borrow_mut() = Some(frame));
        FrameGuard(())
    }
}

impl Drop for FrameGuard {
    fn drop(&mut self) {
        FRAME.with(|f| *f.borrow_mut() = None);
        STOP.with(|s| s.set(None));
    }
}

fn with_frame<T>(f: impl FnOnce(Option<&Frame>) -> T) -> T {
    FRAME.with(|frame| f(frame.borrow().as_ref()))
}

/// Whether a script is a `when` condition (an expression) or a `script` (statements allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptKind {
    Condition,
    Route,
}

/// A compiled `when` or `script`, and where its text sits in the rule file.
#[derive(Debug, Clone)]
pub struct Script {
    ast: AST,
    origin: Node,
    /// Variables the script reads, lookups among them; found once at load.
    variables: Vec<String>,
    /// Literal `open_hours("…")` texts, read at load.
    office_hours: Vec<(String, Arc<OfficeHours>)>,
    /// Why the script's cost is not bounded by its inputs; `None` when it provably is.
    unbounded: Option<Unbounded>,
    /// The `call` fields it reads as `call.FIELD`; `None` when it reads `call` otherwise
    /// (`call["…"]`, `call` itself), so it may read any.
    call_fields: Option<Vec<String>>,
    /// A `when` as far as it can be decided in Rust (see [`crate::plain`]).
    plain: Option<Plain>,
}

/// What makes a script's cost unbounded: the first loop, function, closure or function not on
/// [`BOUNDED_FUNCTIONS`] in it. Such a script runs in a worker process, where the operating
/// system can stop it; a provably bounded one runs in the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unbounded {
    /// What it uses, for `check` and the docs: "`for` loop", "`map`", "a closure".
    pub what: String,
    pub position: Position,
}

impl Script {
    /// Does this script read variable `name` (a lookup)?
    pub fn reads(&self, name: &str) -> bool {
        self.variables.iter().any(|v| v == name)
    }

    /// The `call` fields this script reads, each as `call.FIELD`; `None` when it reads `call`
    /// in another way and may read any field.
    pub fn call_fields(&self) -> Option<&[String]> {
        self.call_fields.as_deref()
    }

    /// This `when` compiled to Rust, where a part of it could be.
    pub fn plain(&self) -> Option<&Plain> {
        self.plain.as_ref()
    }

    /// The file position of a Rhai position inside this script.
    pub fn file_position(&self, pos: RhaiPosition) -> Position {
        self.origin
            .text_position(pos.line().unwrap_or(1), pos.position().unwrap_or(1))
    }

    /// The office-hours texts written literally in this script, parsed.
    pub fn office_hours(&self) -> impl Iterator<Item = (&str, &Arc<OfficeHours>)> {
        self.office_hours.iter().map(|(s, h)| (s.as_str(), h))
    }

    /// Why this script must run in a worker process; `None` when it may run in the server.
    pub fn unbounded(&self) -> Option<&Unbounded> {
        self.unbounded.as_ref()
    }

    /// Is this `when` the constant `true` (after Rhai folded it), so it always matches?
    pub fn always_true(&self) -> bool {
        matches!(
            self.ast.statements(),
            [Stmt::Expr(e)] if matches!(**e, Expr::BoolConstant(true, _))
        )
    }

    /// Every field, fact and comparison the script reads, held to `vocabulary`: a field that is
    /// not there, or text compared with a number, would make the rule silently false.
    pub fn check(&self, vocabulary: &Vocabulary) -> Vec<Finding> {
        let mut findings = Vec::new();
        let mut found = |check: Check, pos: RhaiPosition, message: String| {
            findings.push(Finding {
                check,
                position: self.file_position(pos),
                message,
            });
        };
        self.ast.walk(&mut |path: &[ASTNode]| {
            match path.last() {
                Some(ASTNode::Expr(Expr::Dot(x, _, _))) => {
                    if let (Some(base), Some((field, pos))) =
                        (base_of(&x.lhs, vocabulary), first_property(&x.rhs))
                        && let Err(unknown) = field_of(vocabulary, base, field)
                    {
                        found(unknown.check, pos, unknown.message);
                    }
                }
                Some(ASTNode::Expr(Expr::Index(x, _, _))) => {
                    if let (Some(base), Expr::StringConstant(field, pos)) =
                        (base_of(&x.lhs, vocabulary), &x.rhs)
                        && let Err(unknown) = field_of(vocabulary, base, field)
                    {
                        found(unknown.check, *pos, unknown.message);
                    }
                }
                Some(
                    ASTNode::Expr(Expr::FnCall(call, pos)) | ASTNode::Stmt(Stmt::FnCall(call, pos)),
                ) if is_comparison(&call.name) => {
                    if let [left, right] = call.args.as_slice()
                        && let (Some(l), Some(r)) =
                            (type_of(left, vocabulary), type_of(right, vocabulary))
                        && !l.comparable(r)
                    {
                        found(
                            Check::Types,
                            *pos,
                            format!(
                                "`{}` compares {} ({}) with {} ({}): Rhai finds them unequal whatever the values, so the comparison is always {}; compare like with like (text with \"…\", numbers with numbers)",
                                call.name,
                                describe(left),
                                l.described(),
                                describe(right),
                                r.described(),
                                if call.name == "!=" { "true" } else { "false" },
                            ),
                        );
                    }
                }
                _ => {}
            }
            true
        });
        findings
    }
}

/// A problem [`Script::check`] found, at its place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub check: Check,
    pub position: Position,
    pub message: String,
}

/// What a `.` or `[…]` reads from: `call`, `caller`, a lookup of the rule set, or `now()`.
fn base_of<'a>(expr: &'a Expr, vocabulary: &Vocabulary) -> Option<&'a str> {
    match expr {
        Expr::Variable(v, ..) => {
            let name = v.1.as_str();
            (name == "call" || name == "caller" || vocabulary.lookups.contains_key(name))
                .then_some(name)
        }
        Expr::FnCall(call, _) if call.name == "now" && call.args.is_empty() => Some("now()"),
        _ => None,
    }
}

/// The field `call.FIELD` reads, given the node around the variable `call`: a `.` whose left
/// side is `call` and whose right side starts with a property (`call.dp_id`,
/// `call.dp_id.len()`); `None` for anything else.
fn call_field<'a>(parent: &'a ASTNode<'a>) -> Option<&'a str> {
    match parent {
        ASTNode::Expr(Expr::Dot(x, _, _)) if matches!(&x.lhs, Expr::Variable(v, ..) if v.1 == "call") => {
            first_property(&x.rhs).map(|(name, _)| name)
        }
        _ => None,
    }
}

/// The first property read after a `.`: `kind` in `caller.kind` and `caller.kind.len()`.
fn first_property(expr: &Expr) -> Option<(&str, RhaiPosition)> {
    match expr {
        Expr::Property(p, pos) => Some((p.2.as_str(), *pos)),
        Expr::Dot(x, _, _) | Expr::Index(x, _, _) => match &x.lhs {
            Expr::Property(p, pos) => Some((p.2.as_str(), *pos)),
            _ => None,
        },
        _ => None,
    }
}

fn field_of(
    vocabulary: &Vocabulary,
    base: &str,
    field: &str,
) -> Result<Option<FactType>, crate::vocabulary::Unknown> {
    match base {
        "now()" => crate::vocabulary::now_field(field),
        _ => vocabulary.field(base, field),
    }
}

fn is_comparison(name: &str) -> bool {
    matches!(name, "==" | "!=" | "<" | "<=" | ">" | ">=")
}

/// The type of an expression where it is known without running it.
fn type_of(expr: &Expr, vocabulary: &Vocabulary) -> Option<FactType> {
    match expr {
        Expr::StringConstant(..) | Expr::InterpolatedString(..) | Expr::CharConstant(..) => {
            Some(FactType::Text)
        }
        Expr::IntegerConstant(..) => Some(FactType::Int),
        Expr::FloatConstant(..) => Some(FactType::Float),
        Expr::BoolConstant(..) => Some(FactType::Bool),
        Expr::Array(..) => Some(FactType::List),
        Expr::Map(..) => Some(FactType::Map),
        Expr::Dot(x, _, _) => match (&x.lhs, &x.rhs) {
            (base, Expr::Property(p, _)) => {
                field_of(vocabulary, base_of(base, vocabulary)?, p.2.as_str())
                    .ok()
                    .flatten()
            }
            _ => None,
        },
        _ => None,
    }
}

/// An expression as a message names it.
fn describe(expr: &Expr) -> String {
    match expr {
        Expr::StringConstant(s, _) => format!("{:?}", s.as_str()),
        Expr::IntegerConstant(n, _) => format!("`{n}`"),
        Expr::FloatConstant(f, _) => format!("`{f}`"),
        Expr::BoolConstant(b, _) => format!("`{b}`"),
        Expr::Dot(x, _, _) => match (&x.lhs, &x.rhs) {
            (Expr::Variable(v, ..), Expr::Property(p, _)) => format!("`{}.{}`", v.1, p.2),
            (Expr::FnCall(call, _), Expr::Property(p, _)) => format!("`{}().{}`", call.name, p.2),
            _ => "a value".into(),
        },
        _ => "a value".into(),
    }
}

/// A compile error, positioned in the YAML file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub position: Position,
    pub message: String,
}

/// Why an evaluation failed, for logs and traces.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScriptError {
    pub message: String,
    #[serde(flatten)]
    pub position: Position,
    /// The rule ran out of time or operations (as opposed to a plain error in it).
    pub limit: bool,
}

/// How one run of a script ended.
#[derive(Debug)]
pub enum Run {
    Value(Dynamic),
    Failed(ScriptError),
    /// The inline attempt's time is up; the rule is run again in the evaluation pool (rules
    /// have no side effects, so running one again from its start is safe).
    OverInline,
}

/// Function call levels a rule may use on the thread that took the call (a 2 MiB stack, with
/// the server's own frames below it). A rule recursing deeper is run again in the evaluation
/// pool, whose threads have [`POOL_STACK`](crate::pool::POOL_STACK) for the configured limit.
pub const INLINE_CALL_LEVELS: usize = 8;

/// The shared Rhai engine with belroute's functions and sandbox.
pub struct ScriptEngine {
    /// Runs rules in the evaluation pool, with the configured limits.
    engine: rhai::Engine,
    /// Runs rules inline: the same, but recursion capped at [`INLINE_CALL_LEVELS`].
    inline: rhai::Engine,
    rule_time: Duration,
    limits: Limits,
    /// Every function name a rule can call, so a call to anything else is a load error.
    functions: std::collections::HashSet<String>,
}

impl std::fmt::Debug for ScriptEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptEngine")
            .field("rule_time", &self.rule_time)
            .finish_non_exhaustive()
    }
}

const TERMINATED: &str = "time limit";
const OVER_INLINE: &str = "inline budget";

/// Names a rule can call that belroute adds to Rhai.
pub const FUNCTIONS: [&str; 4] = ["now", "open_hours", "holiday", "is_holiday"];

impl ScriptEngine {
    pub fn new(limits: &Limits) -> Self {
        let engine = build_engine(limits, limits.max_call_levels);
        let inline = build_engine(limits, limits.max_call_levels.min(INLINE_CALL_LEVELS));
        let mut functions: std::collections::HashSet<String> = engine
            .collect_fn_metadata(None, |info| Some(info.metadata.name.to_string()), true)
            .into_iter()
            .collect();
        functions.extend(KEYWORD_FUNCTIONS.iter().map(|f| f.to_string()));
        ScriptEngine {
            engine,
            inline,
            rule_time: limits.rule_time,
            limits: limits.clone(),
            functions,
        }
    }

    /// The limits it was built with (a worker process builds its own engine from them).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Compiles the text of `node`, which may read the variables `names`.
    pub fn compile(
        &self,
        kind: ScriptKind,
        node: &Node,
        names: &[&str],
    ) -> Result<Script, CompileError> {
        let text = node.as_str().unwrap_or_default();
        let mut scope = Scope::new();
        for name in names {
            scope.push_dynamic(*name, Dynamic::UNIT);
        }
        let compiled = match kind {
            ScriptKind::Condition => self.engine.compile_expression_with_scope(&scope, text),
            ScriptKind::Route => self.engine.compile_with_scope(&scope, text),
        };
        let ast = compiled.map_err(|e| {
            let mut message = describe_parse_error(&e.0, names);
            if kind == ScriptKind::Condition && message.ends_with("Unexpected '='") {
                message.push_str("; to compare, write `==` (`=` would assign)");
            }
            CompileError {
                position: node.text_position(e.1.line().unwrap_or(1), e.1.position().unwrap_or(1)),
                message,
            }
        })?;
        let mut script = Script {
            ast,
            origin: node.clone(),
            variables: Vec::new(),
            office_hours: Vec::new(),
            unbounded: None,
            call_fields: Some(Vec::new()),
            plain: None,
        };
        check_ast(&mut script, &self.functions)?;
        if kind == ScriptKind::Condition {
            script.plain = Plain::compile(&script.ast, &script.office_hours);
        }
        Ok(script)
    }

    /// Runs `script` with `scope` until done, an error, `deadline` or the rule's own time
    /// limit counted from `now`, whichever is first; with `inline_until`, also until then.
    /// Variables the script declares are dropped. Call inside a [`FrameGuard`].
    pub fn run(
        &self,
        script: &Script,
        scope: &mut Scope<'_>,
        now: Instant,
        deadline: Instant,
        inline_until: Option<Instant>,
    ) -> Run {
        let at = clock::saturating_add(now, self.rule_time).min(deadline);
        STOP.with(|s| s.set(Some(Stop { at, inline_until })));
        let depth = scope.len();
        let engine = match inline_until {
            Some(_) => &self.inline,
            None => &self.engine,
        };
        let result = engine.eval_ast_with_scope::<Dynamic>(scope, &script.ast);
        scope.rewind(depth);
        STOP.with(|s| s.set(None));
        match result {
            Ok(value) => Run::Value(value),
            Err(e) if is_over_inline(&e) => Run::OverInline,
            // Deeper recursion than the request thread's stack allows: the pool may go on.
            Err(e)
                if inline_until.is_some()
                    && matches!(*e, EvalAltResult::ErrorStackOverflow(..))
                    && self.inline_levels_below_configured() =>
            {
                Run::OverInline
            }
            Err(e) => Run::Failed(script_error(script, &e)),
        }
    }
}

/// A Rhai engine with the packages rules need, belroute's functions, and the sandbox.
fn build_engine(limits: &Limits, call_levels: usize) -> rhai::Engine {
    let mut engine = rhai::Engine::new_raw();
    for package in [
        ArithmeticPackage::new().as_shared_module(),
        LogicPackage::new().as_shared_module(),
        BasicMathPackage::new().as_shared_module(),
        BasicStringPackage::new().as_shared_module(),
        MoreStringPackage::new().as_shared_module(),
        BasicArrayPackage::new().as_shared_module(),
        BasicMapPackage::new().as_shared_module(),
        BasicIteratorPackage::new().as_shared_module(),
        BasicFnPackage::new().as_shared_module(),
    ] {
        engine.register_global_module(package);
    }
    // Zero means "unlimited" to Rhai; belroute never passes it on.
    let at_least_one = |n: usize| n.max(1);
    engine
        .set_optimization_level(OptimizationLevel::Simple)
        .set_strict_variables(true)
        .set_max_operations(limits.max_operations.max(1))
        .set_max_string_size(at_least_one(limits.max_string_size))
        .set_max_array_size(at_least_one(limits.max_array_size))
        .set_max_map_size(at_least_one(limits.max_map_size))
        .set_max_call_levels(at_least_one(call_levels))
        .set_max_expr_depths(
            at_least_one(limits.max_expr_depth),
            at_least_one(limits.max_expr_depth / 2),
        )
        .set_max_variables(1_000)
        .set_max_functions(100);
    engine.disable_symbol("eval");
    // `call` is a Rhai keyword (`call(fn_ptr)`), but `call` is what rules name the call's
    // data. The keyword function still works as `f.call(…)` and as `call(f, …)`.
    #[allow(deprecated)] // volatile, not deprecated
    engine.on_parse_token(|token, _, _| match token {
        Token::Reserved(word) if word.as_str() == "call" => Token::Identifier(word),
        other => other,
    });
    engine.on_print(|text| rule_output("print", text));
    engine.on_debug(|text, _source, _pos| rule_output("debug", text));
    engine.on_progress(|operations| {
        // Reading the clock on every operation would double Rhai's cost; every 64th is
        // well under a millisecond apart.
        if operations % 64 != 0 {
            return None;
        }
        let stop = STOP.with(Cell::get)?;
        let now = Instant::now();
        if stop.inline_until.is_some_and(|until| now >= until) {
            return Some(Dynamic::from(OVER_INLINE));
        }
        (now >= stop.at).then(|| Dynamic::from(TERMINATED))
    });
    register_time_functions(&mut engine);
    engine
}

impl ScriptEngine {
    fn inline_levels_below_configured(&self) -> bool {
        self.inline.max_call_levels() < self.engine.max_call_levels()
    }
}

fn is_over_inline(error: &EvalAltResult) -> bool {
    matches!(error, EvalAltResult::ErrorTerminated(token, _)
        if token.read_lock::<rhai::ImmutableString>().is_some_and(|t| t.as_str() == OVER_INLINE))
}

/// A `print` or `debug` line written by a rule in a worker process, logged by the server.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Printed {
    pub debug: bool,
    pub text: String,
}

thread_local! {
    /// Where `print`/`debug` go on a worker process's thread: kept for the server, which logs
    /// them under the rule set's own allowance.
    static CAPTURED: RefCell<Option<Vec<Printed>>> = const { RefCell::new(None) };
}

/// From now on this thread keeps rules' `print`/`debug` lines instead of logging them.
pub(crate) fn capture_output() {
    CAPTURED.with(|c| *c.borrow_mut() = Some(Vec::new()));
}

/// The lines kept since the last call (at most a second's allowance).
pub(crate) fn take_output() -> Vec<Printed> {
    CAPTURED.with(|c| {
        c.borrow_mut()
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    })
}

/// `print`/`debug` from a rule: kept for the server on a worker, else logged.
fn rule_output(kind: &'static str, text: &str) {
    let kept = CAPTURED.with(|c| match c.borrow_mut().as_mut() {
        Some(lines) => {
            if lines.len() < PRINT_LINES_PER_SECOND as usize {
                lines.push(Printed {
                    debug: kind != "print",
                    // Escaped when the server logs it.
                    text: text.chars().take(PRINT_MAX_CHARS + 1).collect(),
                });
            }
            true
        }
        None => false,
    });
    if kept {
        return;
    }
    with_frame(|frame| {
        if let Some(frame) = frame {
            log_output(&frame.print, &frame.ruleset, kind == "debug", text);
        }
    });
}

/// Logs one `print`/`debug` line of `ruleset`: escaped, shortened, and limited per rule set
/// per second.
pub(crate) fn log_output(budget: &PrintBudget, ruleset: &str, debug: bool, text: &str) {
    let (allowed, dropped_before) = budget.take();
    if dropped_before > 0 {
        tracing::warn!(target: "belroute::rules", %ruleset,
            "{dropped_before} print/debug line(s) dropped in the last second (at most {PRINT_LINES_PER_SECOND} a second)");
    }
    if !allowed {
        return;
    }
    let text = crate::text::shorten(text, PRINT_MAX_CHARS);
    if debug {
        tracing::debug!(target: "belroute::rules", %ruleset, "debug: {text}")
    } else {
        tracing::info!(target: "belroute::rules", %ruleset, "print: {text}")
    }
}

fn script_error(script: &Script, error: &EvalAltResult) -> ScriptError {
    let limit = matches!(
        error,
        EvalAltResult::ErrorTerminated(..)
            | EvalAltResult::ErrorTooManyOperations(..)
            | EvalAltResult::ErrorStackOverflow(..)
            | EvalAltResult::ErrorDataTooLarge(..)
            | EvalAltResult::ErrorTooManyVariables(..)
    );
    let message = match error {
        EvalAltResult::ErrorTerminated(..) => "stopped: the rule ran out of time".to_string(),
        EvalAltResult::ErrorTooManyOperations(..) => {
            "stopped: too many operations (an endless loop?)".to_string()
        }
        EvalAltResult::ErrorStackOverflow(..) => {
            "stopped: functions nested too deeply (endless recursion?)".to_string()
        }
        other => other
            .to_string()
            .split(" (line ")
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    ScriptError {
        message,
        position: script.file_position(error.position()),
        limit,
    }
}

fn describe_parse_error(error: &rhai::ParseErrorType, names: &[&str]) -> String {
    match error {
        rhai::ParseErrorType::VariableUndefined(name) => {
            let hint = match crate::diagnostic::suggestion(name, names.iter().copied()) {
                Some(s) => format!("did you mean {s}?"),
                None => format!(
                    "in scope: {}; a lookup must be listed in the rule set's `lookups`",
                    names.join(", ")
                ),
            };
            format!("unknown variable `{name}`; {hint}")
        }
        other => format!("Rhai syntax: {other}"),
    }
}

/// Functions Rhai itself provides as keywords.
const KEYWORD_FUNCTIONS: [&str; 9] = [
    "print",
    "debug",
    "type_of",
    "Fn",
    "call",
    "curry",
    "is_shared",
    "is_def_var",
    "is_def_fn",
];

/// Finds the variables a script reads, checks every function it calls exists, reads literal
/// office-hours texts at load, refuses loops that can never end, and finds what (if anything)
/// makes the script's cost unbounded.
fn check_ast(
    script: &mut Script,
    functions: &std::collections::HashSet<String>,
) -> Result<(), CompileError> {
    let mut variables = Vec::new();
    let mut call_fields = Some(Vec::new());
    let mut office_hours = Vec::new();
    let mut error = None;
    let mut unbounded: Option<(String, RhaiPosition)> = None;
    let own: Vec<String> = script
        .ast
        .iter_functions()
        .map(|f| f.name.to_string())
        .collect();
    script.ast.walk(&mut |path: &[ASTNode]| {
        let node = path.last();
        if unbounded.is_none() {
            unbounded = node.and_then(|n| unbounded_node(n, &own));
        }
        match node {
            Some(ASTNode::Expr(Expr::Variable(v, ..))) => {
                if v.1 == "call" {
                    let field = path.len().checked_sub(2).and_then(|i| call_field(&path[i]));
                    match (field, &mut call_fields) {
                        (Some(field), Some(fields)) => fields.push(field.to_string()),
                        _ => call_fields = None,
                    }
                }
                variables.push(v.1.to_string())
            }
            Some(ASTNode::Expr(Expr::FnCall(call, pos)))
            | Some(ASTNode::Stmt(Stmt::FnCall(call, pos)))
                if is_identifier(&call.name)
                    && !functions.contains(call.name.as_str())
                    && !own.iter().any(|f| f == call.name.as_str()) =>
            {
                error = Some(CompileError {
                    position: script.file_position(*pos),
                    message: unknown_function(&call.name, functions),
                });
                return false;
            }
            Some(ASTNode::Expr(Expr::FnCall(call, pos)))
            | Some(ASTNode::Stmt(Stmt::FnCall(call, pos))) => match literal_office_hours(call) {
                Some(Ok((spec, hours))) => office_hours.push((spec, Arc::new(hours))),
                Some(Err(e)) => {
                    error = Some(CompileError {
                        position: script.file_position(*pos),
                        message: e,
                    });
                    return false;
                }
                None => {}
            },
            _ => {}
        }
        true
    });
    if let Some(e) = error {
        return Err(e);
    }
    if unbounded.is_none()
        && let Some(f) = script.ast.iter_functions().next()
    {
        // Closures are compiled to functions too: their names start with `anon$`.
        let what = if f.name.starts_with("anon$") {
            "a closure".to_string()
        } else {
            format!("a function (`fn {}`)", f.name)
        };
        unbounded = Some((what, RhaiPosition::new(1, 1)));
    }
    if let Some((keyword, pos)) = endless_loop(&script.ast) {
        return Err(CompileError {
            position: script.file_position(pos),
            message: format!(
                "this `{keyword}` has no `break`, `return` or `throw`, so it never ends: the rule \
                 would run until its time limit and fail on every call; give it a way out \
                 (`if … {{ break }}`) or remove it"
            ),
        });
    }
    variables.sort();
    variables.dedup();
    script.variables = variables;
    if let Some(fields) = &mut call_fields {
        fields.sort();
        fields.dedup();
    }
    script.call_fields = call_fields;
    script.office_hours = office_hours;
    script.unbounded = unbounded.map(|(what, pos)| Unbounded {
        what,
        position: script.file_position(pos),
    });
    Ok(())
}

/// Functions (and operators) whose cost is bounded by the size of their inputs, which the
/// sandbox's limits bound: a script that calls only these, with no loop, no function of its
/// own and no closure, finishes in time for any input, so it runs in the server. Left out on
/// purpose: everything that takes a function (`map`, `filter`, `reduce`, `sort`, `retain`,
/// `all`, `some`, `index_of` with a function, `call`, `curry`, `Fn`), and everything whose
/// output can be much larger than its input or than the limits check before allocating
/// (`replace`, `pad`, `split`, `repeat`, `to_chars`, `extract`, `append`, `crop`…).
pub const BOUNDED_FUNCTIONS: [&str; 53] = [
    // Operators (what `a == b`, `a + b`, `x in list`, `1..5` compile to).
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "!",
    "+",
    "-",
    "*",
    "/",
    "%",
    "**",
    "&",
    "|",
    "^",
    "<<",
    ">>",
    "..",
    "..=",
    "+=",
    "-=",
    "*=",
    "/=",
    "%=",
    // Text, lists and maps: at most linear in their inputs.
    "len",
    "is_empty",
    "contains",
    "starts_with",
    "ends_with",
    "to_lower",
    "to_upper",
    "trim",
    "index_of",
    "sub_string",
    "get",
    "keys",
    "values",
    "to_string",
    "to_int",
    "to_float",
    "parse_int",
    "parse_float",
    "abs",
    "min",
    "max",
    "type_of",
    // Output (rate-limited) and belroute's own.
    "print",
    "debug",
    "now",
    "open_hours",
    "holiday",
    "is_holiday",
];

/// Why one AST node makes a script's cost unbounded, if it does; `own` are the script's own
/// functions.
fn unbounded_node(node: &ASTNode<'_>, own: &[String]) -> Option<(String, RhaiPosition)> {
    match node {
        ASTNode::Stmt(Stmt::While(flow, pos)) => {
            let keyword = if matches!(flow.expr, Expr::Unit(_)) {
                "`loop`"
            } else {
                "a `while` loop"
            };
            Some((keyword.into(), *pos))
        }
        ASTNode::Stmt(Stmt::Do(_, _, pos)) => Some(("a `do` loop".into(), *pos)),
        ASTNode::Stmt(Stmt::For(_, pos)) => Some(("a `for` loop".into(), *pos)),
        ASTNode::Expr(Expr::FnCall(call, pos) | Expr::MethodCall(call, pos))
        | ASTNode::Stmt(Stmt::FnCall(call, pos))
            if !BOUNDED_FUNCTIONS.contains(&call.name.as_str()) =>
        {
            let what = if own.iter().any(|f| *f == call.name.as_str()) {
                format!("its own function `{}`", call.name)
            } else {
                format!("`{}`", call.name)
            };
            Some((what, *pos))
        }
        ASTNode::Expr(Expr::DynamicConstant(value, pos)) if value.is_fnptr() => {
            Some(("a closure or function pointer".into(), *pos))
        }
        ASTNode::Expr(Expr::Custom(_, pos)) => Some(("custom syntax".into(), *pos)),
        _ => None,
    }
}

/// The first loop that can only end by an error: `loop`, `while true` or `do … while true`
/// with no `break` of its own and no `return` or `throw` inside. Returns its keyword and place.
fn endless_loop(ast: &AST) -> Option<(&'static str, RhaiPosition)> {
    let mut forever: Vec<(*const Stmt, &'static str, RhaiPosition)> = Vec::new();
    let mut exits: Vec<*const Stmt> = Vec::new();
    let is_loop = |node: &ASTNode<'_>| {
        matches!(
            node,
            ASTNode::Stmt(Stmt::While(..) | Stmt::Do(..) | Stmt::For(..))
        )
    };
    let address = |node: &ASTNode<'_>| match node {
        ASTNode::Stmt(stmt) => Some(std::ptr::from_ref::<Stmt>(stmt)),
        _ => None,
    };
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(node @ ASTNode::Stmt(Stmt::While(flow, pos))) => {
                if matches!(flow.expr, Expr::Unit(_) | Expr::BoolConstant(true, _)) {
                    let keyword = if matches!(flow.expr, Expr::Unit(_)) {
                        "loop"
                    } else {
                        "while"
                    };
                    forever.extend(address(node).map(|a| (a, keyword, *pos)));
                }
            }
            Some(node @ ASTNode::Stmt(Stmt::Do(flow, flags, pos))) => {
                let until = flags.contains(rhai::ASTFlags::NEGATED);
                if matches!(flow.expr, Expr::BoolConstant(b, _) if b != until) {
                    forever.extend(address(node).map(|a| (a, "do", *pos)));
                }
            }
            Some(ASTNode::Stmt(Stmt::BreakLoop(_, flags, _)))
                if flags.contains(rhai::ASTFlags::BREAK) =>
            {
                // A `break` leaves the nearest loop around it.
                if let Some(nearest) = path.iter().rev().skip(1).find(|n| is_loop(n)) {
                    exits.extend(address(nearest));
                }
            }
            Some(ASTNode::Stmt(Stmt::Return(..))) => {
                // `return` and `throw` leave every loop around them.
                exits.extend(path.iter().filter(|n| is_loop(n)).filter_map(address));
            }
            _ => {}
        }
        true
    });
    forever
        .into_iter()
        .find(|(at, ..)| !exits.contains(at))
        .map(|(_, keyword, pos)| (keyword, pos))
}

fn is_identifier(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_alphanumeric() || c == '_')
}

fn unknown_function(name: &str, functions: &std::collections::HashSet<String>) -> String {
    match name {
        "sleep" | "timestamp" | "exit" | "parse_json" => format!(
            "unknown function `{name}`: rules cannot wait, read the real clock, stop the server \
             or parse JSON; use now() for the call's time (docs/rules.md, \"Rhai in belroute\")"
        ),
        _ => match crate::diagnostic::suggestion(name, functions.iter().map(String::as_str)) {
            Some(s) => format!("unknown function `{name}`; did you mean {s}?"),
            None => format!(
                "unknown function `{name}`; see docs/rules.md, \"Rhai in belroute\", for what rules can call"
            ),
        },
    }
}

/// A literal `open_hours("…")` text is read at load, so a typo is a load error, not a call-time
/// one, and no call parses it again.
fn literal_office_hours(call: &FnCallExpr) -> Option<Result<(String, OfficeHours), String>> {
    match call.args.first() {
        Some(Expr::StringConstant(spec, _)) if call.name == "open_hours" => Some(
            OfficeHours::parse(spec)
                .map(|hours| (spec.to_string(), hours))
                .map_err(|e| e.to_string()),
        ),
        _ => None,
    }
}

fn register_time_functions(engine: &mut rhai::Engine) {
    engine.register_fn("now", || {
        with_frame(|f| {
            f.map(|f| time_map(&f.now, &f.holidays))
                .unwrap_or(Dynamic::UNIT)
        })
    });
    engine.register_fn(
        "open_hours",
        |spec: &str| -> Result<bool, Box<EvalAltResult>> {
            with_frame(|f| {
                let Some(f) = f else { return Ok(false) };
                if f.holidays.name(f.now.date_naive()).is_some() {
                    return Ok(false);
                }
                match f.office_hours.get(spec) {
                    Some(hours) => Ok(hours.contains(&f.now)),
                    None => {
                        let hours = OfficeHours::parse(spec).map_err(|e| e.to_string())?;
                        Ok(hours.contains(&f.now))
                    }
                }
            })
        },
    );
    engine.register_fn("holiday", || {
        with_frame(|f| {
            f.and_then(|f| f.holidays.name(f.now.date_naive()))
                .map(|name| Dynamic::from(name.to_string()))
                .unwrap_or(Dynamic::UNIT)
        })
    });
    engine.register_fn("is_holiday", || {
        with_frame(|f| f.is_some_and(|f| f.holidays.name(f.now.date_naive()).is_some()))
    });
}

/// `now()` in Rhai: the call's local time, in parts rules compare easily.
pub(crate) fn time_map(now: &DateTime<Tz>, holidays: &Holidays) -> Dynamic {
    let mut map = rhai::Map::new();
    let mut put = |k: &str, v: Dynamic| {
        map.insert(k.into(), v);
    };
    put("year", Dynamic::from(i64::from(now.year())));
    put("month", Dynamic::from(i64::from(now.month())));
    put("day", Dynamic::from(i64::from(now.day())));
    put("hour", Dynamic::from(i64::from(now.hour())));
    put("minute", Dynamic::from(i64::from(now.minute())));
    put("second", Dynamic::from(i64::from(now.second())));
    put("weekday", Dynamic::from(weekday_name(now.weekday())));
    put(
        "weekday_number",
        Dynamic::from(i64::from(now.weekday().number_from_monday())),
    );
    put("date", Dynamic::from(now.format("%Y-%m-%d").to_string()));
    put("time", Dynamic::from(now.format("%H:%M").to_string()));
    put("timestamp", Dynamic::from(now.timestamp()));
    put(
        "holiday",
        holidays
            .name(now.date_naive())
            .map(|name| Dynamic::from(name.to_string()))
            .unwrap_or(Dynamic::UNIT),
    );
    Dynamic::from_map(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::DEFAULT_TIME_ZONE;
    use crate::yaml;
    use chrono::TimeZone;

    fn node(text: &str) -> Node {
        let doc = yaml::parse(&format!("x: {text}\n")).unwrap();
        doc.as_map().unwrap()[0].1.clone()
    }

    fn frame() -> Frame {
        Frame {
            ruleset: Arc::from("test"),
            now: DEFAULT_TIME_ZONE
                .with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
                .unwrap(),
            holidays: Arc::default(),
            office_hours: Arc::default(),
            print: Arc::default(),
        }
    }

    fn run(scripts: &ScriptEngine, s: &Script, scope: &mut Scope<'_>) -> Run {
        let _guard = FrameGuard::set(frame());
        scripts.run(
            s,
            scope,
            Instant::now(),
            Instant::now() + Duration::from_secs(2),
            None,
        )
    }

    fn value(run: Run) -> Dynamic {
        match run {
            Run::Value(v) => v,
            other => panic!("expected a value, got {other:?}"),
        }
    }

    #[test]
    fn compile_errors_point_into_the_yaml() {
        let scripts = ScriptEngine::new(&Limits::default());
        let err = scripts
            .compile(ScriptKind::Condition, &node("'call.x == '"), &["call"])
            .unwrap_err();
        assert_eq!(err.position.line, 1);
        assert!(err.message.starts_with("Rhai syntax"), "{err:?}");
        let err = scripts
            .compile(
                ScriptKind::Condition,
                &node("'invoice.count > 0'"),
                &["call", "invoices"],
            )
            .unwrap_err();
        assert_eq!(err.position, Position::new(1, 5));
        assert_eq!(
            err.message,
            "unknown variable `invoice`; did you mean `invoices`?"
        );
    }

    #[test]
    fn open_hours_literals_are_checked_and_read_at_load() {
        let scripts = ScriptEngine::new(&Limits::default());
        let err = scripts
            .compile(
                ScriptKind::Condition,
                &node("'open_hours(\"mon-fry 08:00-17:00\")'"),
                &[],
            )
            .unwrap_err();
        assert!(err.message.contains("unknown day `fry`"), "{err:?}");
        assert_eq!(err.position, Position::new(1, 5));
        let ok = scripts
            .compile(
                ScriptKind::Condition,
                &node("'open_hours(\"mon-fri 08:00-17:00\")'"),
                &[],
            )
            .unwrap();
        assert_eq!(
            ok.office_hours().map(|(s, _)| s).collect::<Vec<_>>(),
            ["mon-fri 08:00-17:00"]
        );
    }

    #[test]
    fn finds_variables_read() {
        let scripts = ScriptEngine::new(&Limits::default());
        let s = scripts
            .compile(
                ScriptKind::Condition,
                &node("'invoices.open > 0 || caller.anonymous'"),
                &["call", "caller", "invoices"],
            )
            .unwrap();
        assert!(s.reads("invoices") && s.reads("caller") && !s.reads("call"));
    }

    /// The `call` fields a script reads as `call.FIELD`, so rules get a `call` of only those;
    /// any other use of `call` reads it whole.
    #[test]
    fn finds_the_call_fields_read() {
        let scripts = ScriptEngine::new(&Limits::default());
        for (text, kind, expected) in [
            (
                "'caller.kind == \"mobile\"'",
                ScriptKind::Condition,
                Some(vec![]),
            ),
            (
                "'call.dp_id == \"dp1\"'",
                ScriptKind::Condition,
                Some(vec!["dp_id"]),
            ),
            (
                "'call.caller_number.len() > 3 && call.dp_id != \"\" && call.dp_id != \"x\"'",
                ScriptKind::Condition,
                Some(vec!["caller_number", "dp_id"]),
            ),
            (
                "'`r_${call.dp_id}`'",
                ScriptKind::Route,
                Some(vec!["dp_id"]),
            ),
            (
                "'call.caller_number[0] == \"3\"'",
                ScriptKind::Condition,
                Some(vec!["caller_number"]),
            ),
            ("'call[\"dp_id\"] == \"dp1\"'", ScriptKind::Condition, None),
            ("'call.keys().len() > 0'", ScriptKind::Condition, None),
            ("'\"dp_id\" in call'", ScriptKind::Condition, None),
            ("'let c = call; c.dp_id'", ScriptKind::Route, None),
        ] {
            let script = scripts
                .compile(kind, &node(text), &["call", "caller"])
                .unwrap();
            let expected: Option<Vec<String>> =
                expected.map(|v| v.into_iter().map(String::from).collect());
            assert_eq!(
                script.call_fields().map(<[String]>::to_vec),
                expected,
                "{text}"
            );
        }
    }

    /// Rules get `call` and `caller` only when they read them, so every way of reading one
    /// must count: in a closure, an `if`, a `switch`, a string template.
    #[test]
    fn finds_the_variables_read_wherever_they_are() {
        let scripts = ScriptEngine::new(&Limits::default());
        for (text, kind, reads) in [
            (
                "'caller.kind == \"mobile\"'",
                ScriptKind::Condition,
                "caller",
            ),
            (
                "'let f = |k| caller.kind == k; if f.call(\"mobile\") { \"a\" } else { () }'",
                ScriptKind::Route,
                "caller",
            ),
            (
                "'switch call.dp_in_number { \"1\" => \"a\", _ => () }'",
                ScriptKind::Route,
                "call",
            ),
            ("'`r_${call.dp_id}`'", ScriptKind::Route, "call"),
            (
                "'[1, 2].filter(|x| x == caller.country_code).len() > 0'",
                ScriptKind::Condition,
                "caller",
            ),
        ] {
            let script = scripts
                .compile(kind, &node(text), &["call", "caller"])
                .unwrap();
            assert!(script.reads(reads), "{text} reads {reads}");
        }
    }

    /// An endless loop `check` cannot prove endless (it refuses `loop {}`).
    const ENDLESS: &str = "'let n = 0; while n >= 0 { n += 1 }'";

    #[test]
    fn loops_that_can_never_end_are_load_errors() {
        let scripts = ScriptEngine::new(&Limits::default());
        for (text, keyword) in [
            ("'loop {}'", "loop"),
            ("'let n = 0; loop { n += 1 }'", "loop"),
            ("'while true { let x = 1; }'", "loop"),
            ("'do { let x = 1; } while true'", "do"),
            ("'do { let x = 1; } until false'", "do"),
            // A `break` of an inner loop does not leave the outer one.
            ("'loop { for i in 0..3 { break } }'", "loop"),
            ("'fn f() { loop { } } f()'", "loop"),
        ] {
            let err = scripts
                .compile(ScriptKind::Route, &node(text), &[])
                .unwrap_err();
            assert!(
                err.message.starts_with(&format!(
                    "this `{keyword}` has no `break`, `return` or `throw`"
                )),
                "{text}: {err:?}"
            );
        }
        for text in [
            "'let n = 0; loop { n += 1; if n > 3 { break } }'",
            "'loop { return 1 }'",
            "'loop { throw \"no\" }'",
            "'let n = 0; loop { for i in 0..3 { return 2 } }'",
            "'let n = 0; while n < 3 { n += 1 }'",
            "'do { let x = 1; } while false'",
        ] {
            assert!(
                scripts.compile(ScriptKind::Route, &node(text), &[]).is_ok(),
                "{text}"
            );
        }
    }

    #[test]
    fn what_is_proven_bounded_and_what_runs_in_a_worker() {
        let scripts = ScriptEngine::new(&Limits::default());
        let names = ["call", "caller", "crm"];
        let bounded = [
            "'caller.kind == \"mobile\" && !caller.anonymous'",
            "'open_hours(\"mon-fri 08:30-17:30\") || is_holiday()'",
            "'crm.open_count > 0 && crm.agent != ()'",
            "'call.dp_in_number in [\"1003\", \"1004\"]'",
            "'now().hour >= 17 && now().weekday != \"sun\"'",
            "'call.caller_number.len() > 6 && call.caller_number.starts_with(\"31\")'",
            "'`agent_${crm.agent}`'",
            "'let a = call.uuid.to_lower(); if a.contains(\"x\") { \"x\" } else { () }'",
            "'switch call.dp_in_number { \"1003\" => \"sales\", _ => () }'",
            "'crm?.open ?? 0 > 1'",
        ];
        for text in bounded {
            let script = scripts
                .compile(ScriptKind::Route, &node(text), &names)
                .unwrap();
            assert_eq!(script.unbounded(), None, "{text}");
        }
        let unbounded = [
            ("'let a = [1]; a.map(|x| x + 1).len() > 0'", "`map`"),
            ("'let f = |x| x + 1; 2'", "a closure or function pointer"),
            (
                "'fn twice(x) { x * 2 } twice(2)'",
                "its own function `twice`",
            ),
            ("'fn unused(x) { x * 2 } 2'", "a function (`fn unused`)"),
            ("'for i in 0..3 { print(i) } ()'", "a `for` loop"),
            ("'let n = 0; while n < 3 { n += 1 } ()'", "a `while` loop"),
            ("'let s = \"x\"; s.replace(\"x\", s); s'", "`replace`"),
            ("'let s = \"\"; s.pad(100, \"x\"); s'", "`pad`"),
            ("'call.uuid.split(\"-\").len() > 2'", "`split`"),
            ("'[3, 1, 2].sort().len() > 0'", "`sort`"),
            // Rhai turns `Fn("x")` into a constant at compile time.
            ("'let f = Fn(\"x\"); 1'", "a closure or function pointer"),
            ("'let f = Fn(call.uuid); 1'", "`Fn`"),
        ];
        for (text, what) in unbounded {
            let script = scripts
                .compile(ScriptKind::Route, &node(text), &names)
                .unwrap();
            assert_eq!(
                script.unbounded().map(|u| u.what.as_str()),
                Some(what),
                "{text}"
            );
        }
    }

    #[test]
    fn every_bounded_function_exists() {
        let scripts = ScriptEngine::new(&Limits::default());
        for name in BOUNDED_FUNCTIONS {
            assert!(
                !is_identifier(name) || scripts.functions.contains(name),
                "{name} is not a function rules can call"
            );
        }
    }

    #[test]
    fn endless_loop_stops_within_the_rule_budget() {
        let limits = Limits {
            max_operations: u64::MAX,
            rule_time: Duration::from_millis(50),
            ..Limits::default()
        };
        let scripts = ScriptEngine::new(&limits);
        let s = scripts
            .compile(ScriptKind::Route, &node(ENDLESS), &[])
            .unwrap();
        let started = std::time::Instant::now();
        let Run::Failed(err) = run(&scripts, &s, &mut Scope::new()) else {
            panic!("the loop must fail");
        };
        assert!(err.limit, "{err:?}");
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn an_inline_attempt_gives_up_early_and_says_so() {
        let limits = Limits {
            max_operations: u64::MAX,
            rule_time: Duration::from_secs(5),
            ..Limits::default()
        };
        let scripts = ScriptEngine::new(&limits);
        let s = scripts
            .compile(ScriptKind::Route, &node(ENDLESS), &[])
            .unwrap();
        let _guard = FrameGuard::set(frame());
        let started = std::time::Instant::now();
        let run = scripts.run(
            &s,
            &mut Scope::new(),
            Instant::now(),
            Instant::now() + Duration::from_secs(5),
            Some(Instant::now() + Duration::from_millis(5)),
        );
        assert!(matches!(run, Run::OverInline), "{run:?}");
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn no_sleep_no_real_clock_no_exit() {
        let scripts = ScriptEngine::new(&Limits::default());
        for text in [
            "'sleep(8)'",
            "'sleep(0.5)'",
            "'timestamp()'",
            "'exit()'",
            "'parse_json(\"{}\")'",
            "'let x = 1; if x > 0 { sleep(1e9) }'",
        ] {
            let err = scripts
                .compile(ScriptKind::Route, &node(text), &[])
                .unwrap_err();
            assert!(
                err.message.starts_with("unknown function `")
                    && err.message.contains("cannot wait"),
                "{text}: {err:?}"
            );
        }
        // Called any other way (a function pointer to a name known only at run time), it
        // fails when run, at once.
        let s = scripts
            .compile(
                ScriptKind::Route,
                &node("'let f = Fn(name); f.call(8)'"),
                &["name"],
            )
            .unwrap();
        let mut scope = Scope::new();
        scope.push_constant("name", "sleep");
        let started = std::time::Instant::now();
        let Run::Failed(err) = run(&scripts, &s, &mut scope) else {
            panic!("must fail");
        };
        assert!(err.message.contains("Function not found"), "{err:?}");
        assert!(started.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn unknown_functions_are_load_errors_with_a_suggestion() {
        let scripts = ScriptEngine::new(&Limits::default());
        let err = scripts
            .compile(
                ScriptKind::Condition,
                &node("'open_hour(\"mon 08:00-09:00\")'"),
                &[],
            )
            .unwrap_err();
        assert_eq!(
            err.message,
            "unknown function `open_hour`; did you mean `open_hours`?"
        );
        // A script's own functions are known.
        assert!(
            scripts
                .compile(
                    ScriptKind::Route,
                    &node("'fn twice(x) { x * 2 } twice(2)'"),
                    &[]
                )
                .is_ok()
        );
    }

    #[test]
    fn rules_keep_the_text_and_collection_functions_they_use() {
        let scripts = ScriptEngine::new(&Limits::default());
        let s = scripts
            .compile(
                ScriptKind::Route,
                &node(
                    "'let a = [1, 2, 3]; let m = #{x: \"AbC\"}; if a.len() == 3 && 2 in a && m.x.to_lower() == \"abc\" && \"07\".parse_int() == 7 && m.keys().len() == 1 && \"a,b\".split(\",\").len() == 2 { `ok_${a[0]}` } else { \"no\" }'",
                ),
                &[],
            )
            .unwrap();
        let v = value(run(&scripts, &s, &mut Scope::new()));
        assert_eq!(v.into_string().unwrap(), "ok_1");
    }

    #[test]
    fn call_is_a_variable_and_fn_pointers_still_call() {
        let scripts = ScriptEngine::new(&Limits::default());
        let names = ["call"];
        let s = scripts
            .compile(
                ScriptKind::Route,
                &node("'let f = |x| x + call.a; f.call(1) + call(f, 2)'"),
                &names,
            )
            .unwrap();
        let mut scope = Scope::new();
        let mut map = rhai::Map::new();
        map.insert("a".into(), Dynamic::from(10_i64));
        scope.push_constant_dynamic("call", Dynamic::from_map(map));
        assert_eq!(value(run(&scripts, &s, &mut scope)).as_int(), Ok(23));
        assert!(s.reads("call"));
    }

    #[test]
    fn now_reads_the_frame_clock() {
        let scripts = ScriptEngine::new(&Limits::default());
        let s = scripts
            .compile(
                ScriptKind::Condition,
                &node("'now().weekday == \"mon\" && now().hour == 10'"),
                &[],
            )
            .unwrap();
        assert_eq!(
            value(run(&scripts, &s, &mut Scope::new())).as_bool(),
            Ok(true)
        );
    }

    #[test]
    fn print_is_limited_per_second() {
        let budget = PrintBudget::default();
        let allowed = (0..100).filter(|_| budget.take().0).count();
        // A second may turn over during the loop: at most two windows' worth.
        assert!(
            (PRINT_LINES_PER_SECOND as usize..=2 * PRINT_LINES_PER_SECOND as usize)
                .contains(&allowed),
            "{allowed}"
        );
    }
}
