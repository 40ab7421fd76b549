//! Rhai, sandboxed: one shared engine, expressions compiled once at load, a deadline per call.
//!
//! Rhai's progress callback and native functions get no per-evaluation context, so the call's
//! deadline and clock are put in a thread-local [`Frame`] for the (synchronous) length of one
//! evaluation. Nothing crosses an `.await` while a frame is set.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Timelike};
use chrono_tz::Tz;
use rhai::{
    AST, ASTNode, Dynamic, EvalAltResult, Expr, FnCallExpr, OptimizationLevel,
    Position as RhaiPosition, Scope, Stmt, Token,
};

use crate::clock::{Holidays, OfficeHours, weekday_name};
use crate::diagnostic::Position;
use crate::yaml::Node;

/// Bounds on what one rule may do. A rule that crosses one fails (it does not match) and the
/// next rule runs; the call still answers in time.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Rhai operations per rule evaluation.
    pub max_operations: u64,
    /// Wall-clock time per rule evaluation, below the call's own deadline.
    #[serde(with = "humantime_serde_compat")]
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

/// `humantime` durations ("100ms", "2s") for serde.
pub mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration ({e}); write e.g. 250ms or 2s"
            ))
        })
    }
}

/// What a rule's evaluation is allowed to see of the world: its clock and its time budget.
#[derive(Debug, Clone)]
pub struct Frame {
    /// When this evaluation must stop.
    pub deadline: Instant,
    /// The call's local time.
    pub now: DateTime<Tz>,
    pub holidays: Arc<Holidays>,
}

thread_local! {
    static FRAME: RefCell<Option<Frame>> = const { RefCell::new(None) };
}

/// Sets the frame for one evaluation and clears it on drop, even on panic.
struct FrameGuard;

impl FrameGuard {
    fn set(frame: Frame) -> Self {
        FRAME.with(|f| *f.borrow_mut() = Some(frame));
        FrameGuard
    }
}

impl Drop for FrameGuard {
    fn drop(&mut self) {
        FRAME.with(|f| *f.borrow_mut() = None);
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
}

impl Script {
    /// Does this script read variable `name` (a lookup)?
    pub fn reads(&self, name: &str) -> bool {
        self.variables.iter().any(|v| v == name)
    }

    /// The file position of a Rhai position inside this script.
    pub fn file_position(&self, pos: RhaiPosition) -> Position {
        self.origin
            .text_position(pos.line().unwrap_or(1), pos.position().unwrap_or(1))
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

/// The shared Rhai engine with belroute's functions and sandbox.
pub struct ScriptEngine {
    engine: rhai::Engine,
    rule_time: Duration,
}

impl std::fmt::Debug for ScriptEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptEngine")
            .field("rule_time", &self.rule_time)
            .finish_non_exhaustive()
    }
}

const TERMINATED: &str = "time limit";

impl ScriptEngine {
    pub fn new(limits: &Limits) -> Self {
        let mut engine = rhai::Engine::new();
        engine
            .set_optimization_level(OptimizationLevel::Simple)
            .set_strict_variables(true)
            .set_max_operations(limits.max_operations)
            .set_max_string_size(limits.max_string_size)
            .set_max_array_size(limits.max_array_size)
            .set_max_map_size(limits.max_map_size)
            .set_max_call_levels(limits.max_call_levels)
            .set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth / 2)
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
        engine.on_print(|text| tracing::info!(target: "belroute::rules", "print: {text}"));
        engine.on_debug(|text, _source, pos| tracing::debug!(target: "belroute::rules", "debug at {pos}: {text}"));
        engine.on_progress(|operations| {
            // Reading the clock on every operation would double Rhai's cost; every 64th is
            // well under a millisecond apart.
            if operations % 64 != 0 {
                return None;
            }
            with_frame(|f| {
                f.filter(|f| Instant::now() >= f.deadline)
                    .map(|_| Dynamic::from(TERMINATED))
            })
        });
        register_time_functions(&mut engine);
        ScriptEngine {
            engine,
            rule_time: limits.rule_time,
        }
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
        let ast = compiled.map_err(|e| CompileError {
            position: node.text_position(e.1.line().unwrap_or(1), e.1.position().unwrap_or(1)),
            message: describe_parse_error(&e.0, names),
        })?;
        let mut script = Script {
            ast,
            origin: node.clone(),
            variables: Vec::new(),
        };
        check_ast(&mut script)?;
        Ok(script)
    }

    /// Runs `script` with `scope` until done, an error, or the frame's deadline, whichever is
    /// first; the rule's own time limit applies too. Variables the script declares are dropped.
    pub fn run(
        &self,
        script: &Script,
        scope: &mut Scope<'_>,
        mut frame: Frame,
    ) -> Result<Dynamic, ScriptError> {
        frame.deadline = frame.deadline.min(Instant::now() + self.rule_time);
        let _guard = FrameGuard::set(frame);
        let depth = scope.len();
        let result = self
            .engine
            .eval_ast_with_scope::<Dynamic>(scope, &script.ast);
        scope.rewind(depth);
        result.map_err(|e| script_error(script, &e))
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

/// Finds the variables a script reads, and checks literal office-hours texts at load.
fn check_ast(script: &mut Script) -> Result<(), CompileError> {
    let mut variables = Vec::new();
    let mut error = None;
    script.ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Expr(Expr::Variable(v, ..))) => variables.push(v.1.to_string()),
            Some(ASTNode::Expr(Expr::FnCall(call, pos)))
            | Some(ASTNode::Stmt(Stmt::FnCall(call, pos))) => {
                if let Some(e) = check_office_hours(call) {
                    error = Some(CompileError {
                        position: script.file_position(*pos),
                        message: e,
                    });
                    return false;
                }
            }
            _ => {}
        }
        true
    });
    if let Some(e) = error {
        return Err(e);
    }
    variables.sort();
    variables.dedup();
    script.variables = variables;
    Ok(())
}

/// A literal `open_hours("…")` text is read at load, so a typo is a load error, not a call-time one.
fn check_office_hours(call: &FnCallExpr) -> Option<String> {
    match call.args.first() {
        Some(Expr::StringConstant(spec, _)) if call.name == "open_hours" => {
            OfficeHours::parse(spec).err().map(|e| e.to_string())
        }
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
            let hours = OfficeHours::parse(spec).map_err(|e| e.to_string())?;
            Ok(with_frame(|f| {
                f.is_some_and(|f| {
                    f.holidays.name(f.now.date_naive()).is_none() && hours.contains(&f.now)
                })
            }))
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
fn time_map(now: &DateTime<Tz>, holidays: &Holidays) -> Dynamic {
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
            deadline: Instant::now() + Duration::from_secs(2),
            now: DEFAULT_TIME_ZONE
                .with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
                .unwrap(),
            holidays: Arc::default(),
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
    fn open_hours_literals_are_checked_at_load() {
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

    #[test]
    fn endless_loop_stops_within_the_rule_budget() {
        let limits = Limits {
            max_operations: 0,
            rule_time: Duration::from_millis(50),
            ..Limits::default()
        };
        let scripts = ScriptEngine::new(&limits);
        let s = scripts
            .compile(ScriptKind::Route, &node("'loop {}'"), &[])
            .unwrap();
        let started = Instant::now();
        let err = scripts.run(&s, &mut Scope::new(), frame()).unwrap_err();
        assert!(err.limit, "{err:?}");
        assert!(started.elapsed() < Duration::from_millis(500));
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
        assert_eq!(
            scripts.run(&s, &mut scope, frame()).unwrap().as_int(),
            Ok(23)
        );
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
            scripts
                .run(&s, &mut Scope::new(), frame())
                .unwrap()
                .as_bool(),
            Ok(true)
        );
    }
}
