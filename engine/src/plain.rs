//! Plain `when` conditions decided in Rust, without running Rhai.
//!
//! Most conditions operators write are a few comparisons of `call`, `caller` and lookup fields
//! with constants, joined by `&&`, `||` and `!`, and `open_hours("…")` or `is_holiday()`.
//! Running such a condition in Rhai costs a few thousand instructions (a fresh evaluation
//! state, function dispatch, the maps it reads built for it); reading the fields where they
//! already are costs a few dozen. A condition is compiled once, at load, from the AST Rhai
//! itself optimised, into a small tree; any part of it this module does not know is kept as
//! [`Node::Rhai`].
//!
//! Deciding is allowed to give up: [`Plain::decide`] answers only when it knows what Rhai
//! would answer, and otherwise says `None` and the rule runs in Rhai as before (rules have no
//! side effects, so nothing is lost by starting again). So a comparison of two types whose
//! outcome Rhai defines in a way not copied here, a property of a lookup that is unavailable
//! (an error in Rhai, which makes the rule `skipped`), or a part that needs Rhai (`now().hour`)
//! all run in Rhai; `&&` and `||` still decide without their right side when the left side
//! settles them, as Rhai's do. The equivalence is tested against Rhai itself on every
//! operator, every pair of value types and generated conditions (the tests below).

use std::sync::Arc;

use rhai::{AST, Dynamic, Expr, FnCallExpr, Stmt};

use crate::call::Call;
use crate::caller::Caller;
use crate::clock::OfficeHours;
use crate::lookups::{LookupResult, LookupTrace};
use crate::script::Frame;

/// A `when` compiled to Rust, as far as it could be.
#[derive(Debug, Clone)]
pub struct Plain(Box<Node>);

#[derive(Debug, Clone)]
enum Node {
    Const(Constant),
    /// `call.FIELD`, `caller.FIELD`, `LOOKUP.FACT`.
    Field(Of, String),
    Not(Box<Node>),
    /// `a && b && …`: Rhai keeps a chain as one list.
    And(Vec<Node>),
    Or(Vec<Node>),
    Compare(Op, Box<Node>, Box<Node>),
    /// `x in [constants]`.
    InList(Box<Node>, Vec<Constant>),
    /// `text.contains(part)`, `part in text`.
    Contains(Box<Node>, Box<Node>),
    /// `open_hours("literal")`, read at load.
    OpenHours(Arc<OfficeHours>),
    IsHoliday,
    /// `now().FIELD`: the call's local time, as `now()`'s map has it.
    Now(String),
    /// Anything else: Rhai decides.
    Rhai,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Of {
    Call,
    Caller,
    Lookup(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Constant {
    Unit,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

/// A value as a condition sees it, borrowed from where it already is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value<'a> {
    Unit,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(&'a str),
}

/// What a rule sees while it runs: the same things its Rhai scope holds.
pub struct Seen<'a> {
    pub call: &'a Call,
    pub caller: &'a Caller,
    /// The rule set's lookups, and the facts given so far (by the same index).
    pub lookups: &'a [String],
    pub facts: &'a [Option<LookupTrace>],
    pub frame: &'a Frame,
}

impl Plain {
    /// The plain form of a compiled `when`; `None` when no part of it is plain, so trying it
    /// would only cost time. `office_hours` are the literal `open_hours("…")` texts, parsed.
    pub fn compile(ast: &AST, office_hours: &[(String, Arc<OfficeHours>)]) -> Option<Plain> {
        let node = match ast.statements() {
            [Stmt::Expr(e)] => node(e, office_hours),
            [Stmt::FnCall(call, _)] => fn_call(call, office_hours),
            _ => return None,
        };
        match node {
            Node::Rhai => None,
            node => Some(Plain(Box::new(node))),
        }
    }

    /// `Some(true)` or `Some(false)` when this decides the condition as Rhai would; `None`
    /// when Rhai must (a part needs it, or the answer would be an error or not a boolean).
    pub fn decide(&self, seen: &Seen<'_>) -> Option<bool> {
        match eval(&self.0, seen)? {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
}

fn node(expr: &Expr, office_hours: &[(String, Arc<OfficeHours>)]) -> Node {
    if let Some(constant) = constant(expr) {
        return Node::Const(constant);
    }
    match expr {
        Expr::Dot(x, _, _) => match (&x.lhs, &x.rhs) {
            (Expr::Variable(v, ..), Expr::Property(p, _)) => {
                Node::Field(of(v.1.as_str()), p.2.to_string())
            }
            (Expr::FnCall(call, _), Expr::Property(p, _))
                if call.name == "now" && call.args.is_empty() =>
            {
                Node::Now(p.2.to_string())
            }
            // `text.contains("…")`
            (Expr::Variable(v, ..), Expr::Dot(inner, _, _)) => match (&inner.lhs, &inner.rhs) {
                (Expr::Property(p, _), Expr::MethodCall(call, _))
                    if call.name == "contains" && call.args.len() == 1 =>
                {
                    Node::Contains(
                        Box::new(Node::Field(of(v.1.as_str()), p.2.to_string())),
                        Box::new(node(&call.args[0], office_hours)),
                    )
                }
                _ => Node::Rhai,
            },
            _ => Node::Rhai,
        },
        Expr::And(x, _) => Node::And(x.iter().map(|e| node(e, office_hours)).collect()),
        Expr::Or(x, _) => Node::Or(x.iter().map(|e| node(e, office_hours)).collect()),
        Expr::FnCall(call, _) => fn_call(call, office_hours),
        _ => Node::Rhai,
    }
}

fn of(variable: &str) -> Of {
    match variable {
        "call" => Of::Call,
        "caller" => Of::Caller,
        lookup => Of::Lookup(lookup.to_string()),
    }
}

fn fn_call(call: &FnCallExpr, office_hours: &[(String, Arc<OfficeHours>)]) -> Node {
    let args = &call.args;
    let op = match call.name.as_str() {
        "==" => Some(Op::Eq),
        "!=" => Some(Op::Ne),
        "<" => Some(Op::Lt),
        "<=" => Some(Op::Le),
        ">" => Some(Op::Gt),
        ">=" => Some(Op::Ge),
        _ => None,
    };
    match (call.name.as_str(), args.len(), op) {
        (_, 2, Some(op)) if call.is_operator_call() => Node::Compare(
            op,
            Box::new(node(&args[0], office_hours)),
            Box::new(node(&args[1], office_hours)),
        ),
        ("!", 1, _) if call.is_operator_call() => Node::Not(Box::new(node(&args[0], office_hours))),
        // `x in [constants]` and `part in text`, which Rhai turns into `contains(rhs, x)`.
        ("contains", 2, _) => match list(&args[0]) {
            Some(items) => Node::InList(Box::new(node(&args[1], office_hours)), items),
            None => Node::Contains(
                Box::new(node(&args[0], office_hours)),
                Box::new(node(&args[1], office_hours)),
            ),
        },
        ("open_hours", 1, _) => match &args[0] {
            Expr::StringConstant(spec, _) => office_hours
                .iter()
                .find(|(s, _)| s.as_str() == spec.as_str())
                .map_or(Node::Rhai, |(_, hours)| Node::OpenHours(hours.clone())),
            _ => Node::Rhai,
        },
        ("is_holiday", 0, _) => Node::IsHoliday,
        _ => Node::Rhai,
    }
}

fn constant(expr: &Expr) -> Option<Constant> {
    Some(match expr {
        Expr::Unit(_) => Constant::Unit,
        Expr::BoolConstant(b, _) => Constant::Bool(*b),
        Expr::IntegerConstant(i, _) => Constant::Int(*i),
        Expr::FloatConstant(f, _) => Constant::Float(**f),
        Expr::StringConstant(s, _) => Constant::Text(s.to_string()),
        Expr::DynamicConstant(d, _) => dynamic_constant(d)?,
        _ => return None,
    })
}

fn dynamic_constant(d: &Dynamic) -> Option<Constant> {
    if d.is_unit() {
        Some(Constant::Unit)
    } else if let Ok(b) = d.as_bool() {
        Some(Constant::Bool(b))
    } else if let Ok(i) = d.as_int() {
        Some(Constant::Int(i))
    } else if let Ok(f) = d.as_float() {
        Some(Constant::Float(f))
    } else if d.is_string() {
        d.clone().into_string().ok().map(Constant::Text)
    } else {
        None
    }
}

/// An array literal of constants only.
fn list(expr: &Expr) -> Option<Vec<Constant>> {
    match expr {
        Expr::Array(items, _) => items.iter().map(constant).collect(),
        Expr::DynamicConstant(d, _) if d.is_array() => d
            .read_lock::<rhai::Array>()?
            .iter()
            .map(dynamic_constant)
            .collect(),
        _ => None,
    }
}

fn eval<'a>(node: &'a Node, seen: &Seen<'a>) -> Option<Value<'a>> {
    match node {
        Node::Const(c) => Some(eval_constant(c)),
        Node::Field(of, name) => field(of, name, seen),
        Node::Not(x) => match eval(x, seen)? {
            Value::Bool(b) => Some(Value::Bool(!b)),
            _ => None,
        },
        Node::And(parts) => chain(parts, false, seen),
        Node::Or(parts) => chain(parts, true, seen),
        Node::Compare(op, l, r) => Some(Value::Bool(compare(*op, eval(l, seen)?, eval(r, seen)?)?)),
        Node::InList(x, items) => {
            let x = eval(x, seen)?;
            for item in items {
                let item = eval_constant(item);
                if compare(Op::Eq, item, x)? {
                    return Some(Value::Bool(true));
                }
            }
            Some(Value::Bool(false))
        }
        Node::Contains(text, part) => match (eval(text, seen)?, eval(part, seen)?) {
            (Value::Text(text), Value::Text(part)) => Some(Value::Bool(text.contains(part))),
            _ => None,
        },
        Node::OpenHours(hours) => {
            let frame = seen.frame;
            let holiday = frame.holidays.name(frame.now.date_naive()).is_some();
            Some(Value::Bool(!holiday && hours.contains(&frame.now)))
        }
        Node::IsHoliday => {
            let frame = seen.frame;
            Some(Value::Bool(
                frame.holidays.name(frame.now.date_naive()).is_some(),
            ))
        }
        Node::Now(field) => now(field, seen.frame),
        Node::Rhai => None,
    }
}

/// A field of `now()` as its map has it (`script::time_map`); `date` and `time`, which are
/// formatted text, are left to Rhai.
fn now<'a>(field: &str, frame: &'a Frame) -> Option<Value<'a>> {
    use chrono::{Datelike, Timelike};
    let now = &frame.now;
    Some(match field {
        "year" => Value::Int(i64::from(now.year())),
        "month" => Value::Int(i64::from(now.month())),
        "day" => Value::Int(i64::from(now.day())),
        "hour" => Value::Int(i64::from(now.hour())),
        "minute" => Value::Int(i64::from(now.minute())),
        "second" => Value::Int(i64::from(now.second())),
        "weekday" => Value::Text(crate::clock::weekday_name(now.weekday())),
        "weekday_number" => Value::Int(i64::from(now.weekday().number_from_monday())),
        "timestamp" => Value::Int(now.timestamp()),
        "holiday" => frame
            .holidays
            .name(now.date_naive())
            .map_or(Value::Unit, Value::Text),
        "date" | "time" => return None,
        _ => Value::Unit,
    })
}

/// `&&` (`settles` false) and `||` (`settles` true): left to right, and only as far as needed,
/// as Rhai does; every part it reaches must be a boolean.
fn chain<'a>(parts: &'a [Node], settles: bool, seen: &Seen<'a>) -> Option<Value<'a>> {
    for part in parts {
        match eval(part, seen)? {
            Value::Bool(b) if b == settles => return Some(Value::Bool(settles)),
            Value::Bool(_) => {}
            _ => return None,
        }
    }
    Some(Value::Bool(!settles))
}

fn eval_constant(c: &Constant) -> Value<'_> {
    match c {
        Constant::Unit => Value::Unit,
        Constant::Bool(b) => Value::Bool(*b),
        Constant::Int(i) => Value::Int(*i),
        Constant::Float(f) => Value::Float(*f),
        Constant::Text(s) => Value::Text(s),
    }
}

/// A field as the rule's Rhai scope holds it (see `decide::call_map`, `caller_map` and
/// `facts_value`): a field not there is `()`; `None` where Rhai would fail or the value is not
/// one this module compares (a list or a map of facts).
fn field<'a>(of: &Of, name: &str, seen: &Seen<'a>) -> Option<Value<'a>> {
    match of {
        Of::Call => Some(seen.call.field(name).map_or(Value::Unit, Value::Text)),
        Of::Caller => {
            let c = seen.caller;
            Some(match name {
                "raw" => Value::Text(&c.raw),
                "e164" => Value::Text(&c.e164),
                "national" => Value::Text(&c.national),
                "international" => Value::Text(&c.international),
                "digits" => Value::Text(&c.digits),
                "country" => Value::Text(&c.country),
                "country_code" => Value::Int(i64::from(c.country_code)),
                "kind" => Value::Text(c.kind),
                "valid" => Value::Bool(c.valid),
                "anonymous" => Value::Bool(c.anonymous),
                "is_sip_account" => Value::Bool(c.is_sip_account),
                _ => Value::Unit,
            })
        }
        Of::Lookup(lookup) => {
            let index = seen.lookups.iter().position(|l| l == lookup)?;
            match &seen.facts.get(index)?.as_ref()?.result {
                LookupResult::Found { facts } => match facts.get(name) {
                    None | Some(serde_json::Value::Null) => Some(Value::Unit),
                    Some(serde_json::Value::Bool(b)) => Some(Value::Bool(*b)),
                    Some(serde_json::Value::String(s)) => Some(Value::Text(s)),
                    Some(serde_json::Value::Number(n)) => match n.as_i64() {
                        Some(i) => Some(Value::Int(i)),
                        None if n.is_f64() => n.as_f64().map(Value::Float),
                        None => None,
                    },
                    Some(_) => None,
                },
                LookupResult::NotFound => Some(Value::Unit),
                // `()` in Rhai: reading a property of it is an error, the rule `skipped`.
                LookupResult::Unavailable { .. } => None,
            }
        }
    }
}

/// Rhai's comparison operators: numbers with numbers (an integer and a float compared as
/// floats), text with text, booleans with booleans; `()` equals only `()`; values of
/// different types are never equal and never ordered.
fn compare(op: Op, l: Value<'_>, r: Value<'_>) -> Option<bool> {
    fn ordered<T: PartialOrd + ?Sized>(op: Op, l: &T, r: &T) -> bool {
        match op {
            Op::Eq => l == r,
            Op::Ne => l != r,
            Op::Lt => l < r,
            Op::Le => l <= r,
            Op::Gt => l > r,
            Op::Ge => l >= r,
        }
    }
    Some(match (l, r) {
        (Value::Int(l), Value::Int(r)) => ordered(op, &l, &r),
        (Value::Float(l), Value::Float(r)) => ordered(op, &l, &r),
        #[allow(clippy::cast_precision_loss)] // Rhai compares them as floats too
        (Value::Int(l), Value::Float(r)) => ordered(op, &(l as f64), &r),
        #[allow(clippy::cast_precision_loss)]
        (Value::Float(l), Value::Int(r)) => ordered(op, &l, &(r as f64)),
        (Value::Text(l), Value::Text(r)) => ordered(op, l, r),
        (Value::Bool(l), Value::Bool(r)) => ordered(op, &l, &r),
        (Value::Unit, Value::Unit) => op == Op::Eq,
        _ => op == Op::Ne,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caller::Normaliser;
    use crate::clock::{DEFAULT_TIME_ZONE, Holidays};
    use crate::decide::{call_map, caller_map, facts_value};
    use crate::script::{FrameGuard, Limits, Run, ScriptEngine, ScriptKind};
    use crate::yaml;
    use chrono::TimeZone;
    use rhai::Scope;
    use serde_json::json;
    use std::time::Duration;
    use tokio::time::Instant;

    const LOOKUPS: [&str; 3] = ["f", "nothing", "down"];

    /// The world both sides see: a call, a Dutch mobile caller, lookup `f` found with `facts`,
    /// `nothing` not found, `down` unavailable; a Monday at `hour`, a holiday or not.
    struct World {
        call: Call,
        caller: Arc<Caller>,
        facts: Vec<Option<LookupTrace>>,
        frame: Frame,
    }

    impl World {
        fn new(facts: serde_json::Value, hour: u32, holiday: bool) -> World {
            let trace = |result| {
                Some(LookupTrace {
                    name: String::new(),
                    result,
                    micros: 0,
                    cached: false,
                    stale: false,
                    awaited: true,
                })
            };
            let facts = match facts {
                serde_json::Value::Object(map) => map.into_iter().collect(),
                other => panic!("facts must be an object, not {other}"),
            };
            let now = DEFAULT_TIME_ZONE
                .with_ymd_and_hms(2026, 11, 23, hour, 30, 0)
                .unwrap();
            let mut holidays = Holidays::default();
            if holiday {
                holidays.insert(now.date_naive(), "Test day".into());
            }
            World {
                call: Call::from_pairs([
                    ("caller_number", "31612345678"),
                    ("dp_in_number", "1004"),
                    ("phonebook_caller_name", "Test Klant"),
                ]),
                caller: Normaliser::default().normalise("31612345678"),
                facts: vec![
                    trace(LookupResult::Found {
                        facts: Arc::new(facts),
                    }),
                    trace(LookupResult::NotFound),
                    trace(LookupResult::Unavailable {
                        reason: "down".into(),
                    }),
                ],
                frame: Frame {
                    ruleset: Arc::from("test"),
                    now,
                    holidays: Arc::new(holidays),
                    office_hours: Arc::default(),
                    print: Arc::default(),
                },
            }
        }

        /// What Rhai makes of `when`: `Some(bool)`, or `None` for an error or another type.
        fn rhai(&self, scripts: &ScriptEngine, when: &crate::script::Script) -> Option<bool> {
            let mut scope = Scope::new();
            scope.push_constant_dynamic("call", call_map(&self.call, None));
            scope.push_constant_dynamic("caller", caller_map(&self.caller));
            for (name, trace) in LOOKUPS.iter().zip(&self.facts) {
                let result = &trace.as_ref().unwrap().result;
                scope.push_constant_dynamic(*name, facts_value(result));
            }
            let _frame = FrameGuard::set(self.frame.clone());
            match scripts.run(
                when,
                &mut scope,
                Instant::now(),
                Instant::now() + Duration::from_secs(2),
                None,
            ) {
                Run::Value(v) => v.as_bool().ok(),
                Run::Failed(_) | Run::OverInline => None,
            }
        }

        fn plain(&self, when: &crate::script::Script) -> Option<bool> {
            let lookups: Vec<String> = LOOKUPS.iter().map(|s| s.to_string()).collect();
            when.plain()?.decide(&Seen {
                call: &self.call,
                caller: &self.caller,
                lookups: &lookups,
                facts: &self.facts,
                frame: &self.frame,
            })
        }
    }

    fn try_compile(
        scripts: &ScriptEngine,
        text: &str,
    ) -> Result<crate::script::Script, crate::script::CompileError> {
        let doc = yaml::parse(&format!("x: {}\n", serde_json::to_string(text).unwrap())).unwrap();
        let node = doc.as_map().unwrap()[0].1.clone();
        let mut names = vec!["call", "caller"];
        names.extend(LOOKUPS);
        scripts.compile(ScriptKind::Condition, &node, &names)
    }

    fn compile(scripts: &ScriptEngine, text: &str) -> crate::script::Script {
        try_compile(scripts, text).unwrap_or_else(|e| panic!("{text}: {}", e.message))
    }

    /// Decides `text` both ways; panics where plain decides otherwise than Rhai. Returns
    /// whether plain decided.
    fn agree(scripts: &ScriptEngine, world: &World, text: &str) -> bool {
        agree_on(scripts, world, &compile(scripts, text), text)
    }

    fn agree_on(
        scripts: &ScriptEngine,
        world: &World,
        when: &crate::script::Script,
        text: &str,
    ) -> bool {
        let plain = world.plain(when);
        if let Some(decided) = plain {
            assert_eq!(
                Some(decided),
                world.rhai(scripts, when),
                "plain decided {text} as {decided}, Rhai otherwise (facts {:?})",
                world.facts[0]
            );
        }
        plain.is_some()
    }

    const VALUES: [&str; 14] = [
        "()", "true", "false", "0", "1", "-1", "2.5", "1.0", "\"\"", "\"a\"", "\"b\"", "\"1\"",
        "\"10\"", "\"9\"",
    ];
    const OPS: [&str; 6] = ["==", "!=", "<", "<=", ">", ">="];

    #[test]
    fn every_operator_on_every_pair_of_types_agrees_with_rhai() {
        let scripts = ScriptEngine::new(&Limits::default());
        let json_of = |v: &str| -> serde_json::Value {
            if v == "()" {
                serde_json::Value::Null
            } else {
                serde_json::from_str(v).unwrap()
            }
        };
        let mut decided = 0;
        let mut total = 0;
        for a in VALUES {
            for b in VALUES {
                let world = World::new(json!({ "a": json_of(a), "b": json_of(b) }), 10, false);
                for op in OPS {
                    // Both from facts, and one side a constant in the text (Rhai may fold it).
                    for text in [
                        format!("f.a {op} f.b"),
                        format!("f.a {op} {b}"),
                        format!("{a} {op} f.b"),
                    ] {
                        total += 1;
                        decided += usize::from(agree(&scripts, &world, &text));
                    }
                }
            }
        }
        // Every comparison of two plain values is decided without Rhai.
        assert_eq!(decided, total);
    }

    #[test]
    fn the_everyday_conditions_are_decided_without_rhai() {
        let scripts = ScriptEngine::new(&Limits::default());
        let world = World::new(
            json!({ "open_count": 2, "total": 80.5, "owner": "1003", "vip": true, "none": null }),
            10,
            false,
        );
        for text in [
            "caller.anonymous",
            "!caller.anonymous",
            r#"caller.valid && caller.country != "NL""#,
            r#"caller.kind == "premium_rate""#,
            r#"call.dp_in_number == "1004""#,
            r#"caller.e164 in ["+31201234567", "+31612345678"]"#,
            r#"call.phonebook_caller_name.contains("Test")"#,
            r#""Klant" in call.phonebook_caller_name"#,
            r#"!open_hours("mon-fri 09:00-17:00")"#,
            "now().hour >= 18 || now().weekday_number > 5",
            r#"now().weekday == "mon" && now().minute < 45"#,
            "now().holiday == ()",
            "is_holiday()",
            "f.open_count > 0 && f.total >= 80",
            "f.owner != () || f.vip",
            "f.none == ()",
            "nothing.open_count > 0",
            "call.no_such_field == ()",
            r#"call.uuid == """#,
            "caller.country_code == 31",
        ] {
            assert!(agree(&scripts, &world, text), "not decided in Rust: {text}");
        }
    }

    /// Every field of `caller` reads as Rhai's map has it: a field added to the map and not
    /// here would read as `()` and fail this.
    #[test]
    fn every_caller_field_reads_as_rhai_sees_it() {
        let scripts = ScriptEngine::new(&Limits::default());
        for number in ["31612345678", "anonymous", "442079460958", "1003"] {
            let mut world = World::new(json!({}), 10, false);
            world.caller = Normaliser::default().normalise(number);
            let map = caller_map(&world.caller).cast::<rhai::Map>();
            assert!(map.len() >= 11, "caller has {} fields", map.len());
            for (field, value) in map {
                let literal = if value.is_string() {
                    serde_json::to_string(&value.into_string().unwrap()).unwrap()
                } else {
                    value.to_string()
                };
                let text = format!("caller.{field} == {literal}");
                let when = compile(&scripts, &text);
                assert_eq!(world.plain(&when), Some(true), "{text} for {number}");
                assert_eq!(
                    world.rhai(&scripts, &when),
                    Some(true),
                    "{text} for {number}"
                );
            }
        }
    }

    /// Every field of `now()` reads as Rhai's map has it, on a holiday and on a working day.
    #[test]
    fn every_field_of_now_reads_as_rhai_sees_it() {
        let scripts = ScriptEngine::new(&Limits::default());
        for holiday in [false, true] {
            let world = World::new(json!({}), 21, holiday);
            let map = crate::script::time_map(&world.frame.now, &world.frame.holidays)
                .cast::<rhai::Map>();
            assert!(map.len() >= 12, "now() has {} fields", map.len());
            for (field, value) in map {
                let literal = if value.is_string() {
                    serde_json::to_string(&value.into_string().unwrap()).unwrap()
                } else {
                    value.to_string()
                };
                let literal = if literal.is_empty() {
                    "()".to_string()
                } else {
                    literal
                };
                let text = format!("now().{field} == {literal}");
                let when = compile(&scripts, &text);
                let expected = (field != "date" && field != "time").then_some(true);
                assert_eq!(world.plain(&when), expected, "{text}");
                assert_eq!(world.rhai(&scripts, &when), Some(true), "{text}");
            }
        }
    }

    #[test]
    fn what_rhai_must_decide_is_left_to_it() {
        let scripts = ScriptEngine::new(&Limits::default());
        let world = World::new(json!({ "n": 3, "list": [1, 2], "text": "x" }), 21, false);
        for text in [
            // an unavailable lookup's property is an error in Rhai: the rule is skipped
            "down.open_count > 0",
            // not a boolean where one is needed
            "f.n && true",
            "!f.text",
            // parts this module does not know
            r#"now().date == "2026-11-23""#,
            "f.list.len() > 1",
            "f.list == f.list",
            r#"caller.kind == "mobile" && now().time > "20:00""#,
        ] {
            assert!(!agree(&scripts, &world, text), "decided in Rust: {text}");
        }
        // Only the compiled text decides: whatever is left to Rhai, Rhai still answers.
        let when = compile(
            &scripts,
            r#"caller.kind == "mobile" && now().time > "20:00""#,
        );
        assert_eq!(world.rhai(&scripts, &when), Some(true));
    }

    #[test]
    fn office_hours_and_holidays_decide_as_rhai_does() {
        let scripts = ScriptEngine::new(&Limits::default());
        for (hour, holiday) in [(8, false), (10, false), (17, false), (10, true)] {
            let world = World::new(json!({}), hour, holiday);
            for text in [
                r#"open_hours("mon-fri 09:00-17:00")"#,
                r#"!open_hours("mon-fri 09:00-17:00; sat 10:00-12:00")"#,
                "is_holiday()",
                "!is_holiday() && caller.valid",
            ] {
                assert!(agree(&scripts, &world, text), "{text} at {hour}:30");
            }
        }
    }

    /// Conditions built at random from the parts operators use, on random facts: wherever
    /// plain decides, Rhai decides the same.
    #[test]
    fn generated_conditions_agree_with_rhai() {
        let scripts = ScriptEngine::new(&Limits::default());
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            usize::try_from(seed % n as u64).unwrap()
        };
        let fields = [
            "call.dp_in_number",
            "call.phonebook_caller_name",
            "call.not_sent",
            // documented by Callvoip, not sent in this call: "" to rules, not ()
            "call.uuid",
            "caller.valid",
            "caller.kind",
            "caller.country",
            "caller.country_code",
            "caller.anonymous",
            "f.a",
            "f.b",
            "f.missing",
            "nothing.a",
            "down.a",
        ];
        let facts = [
            "null",
            "true",
            "false",
            "0",
            "3",
            "-2",
            "1.5",
            "\"1004\"",
            "\"mobile\"",
            "\"\"",
        ];
        fn atom(next: &mut impl FnMut(usize) -> usize, fields: &[&str]) -> String {
            match next(3) {
                0 => VALUES[next(VALUES.len())].to_string(),
                _ => fields[next(fields.len())].to_string(),
            }
        }
        fn condition(
            next: &mut impl FnMut(usize) -> usize,
            fields: &[&str],
            depth: usize,
        ) -> String {
            let pick = if depth == 0 { next(5) } else { next(10) };
            match pick {
                0 | 1 => format!(
                    "{} {} {}",
                    atom(next, fields),
                    OPS[next(OPS.len())],
                    atom(next, fields)
                ),
                2 => atom(next, fields),
                3 => format!(
                    "{} in [{}, {}]",
                    atom(next, fields),
                    VALUES[next(VALUES.len())],
                    VALUES[next(VALUES.len())]
                ),
                4 => [
                    "is_holiday()",
                    r#"open_hours("mon-fri 09:00-17:00")"#,
                    "now().hour >= 12",
                ][next(3)]
                .to_string(),
                5 | 6 => format!(
                    "{} && {}",
                    condition(next, fields, depth - 1),
                    condition(next, fields, depth - 1)
                ),
                7 | 8 => format!(
                    "({} || {})",
                    condition(next, fields, depth - 1),
                    condition(next, fields, depth - 1)
                ),
                _ => format!("!({})", condition(next, fields, depth - 1)),
            }
        }
        let (mut decided, mut total) = (0, 0);
        while total < 3_000 {
            let world = World::new(
                serde_json::from_str(&format!(
                    r#"{{"a": {}, "b": {}}}"#,
                    facts[next(facts.len())],
                    facts[next(facts.len())]
                ))
                .unwrap(),
                [8, 10, 13, 18][next(4)],
                next(4) == 0,
            );
            let text = condition(&mut next, &fields, 3);
            // Rhai refuses some at load (`true || ()`), as it would in a rule file.
            let Ok(when) = try_compile(&scripts, &text) else {
                continue;
            };
            total += 1;
            decided += usize::from(agree_on(&scripts, &world, &when, &text));
        }
        // The test has teeth only if plain decides a good share of them.
        assert!(
            decided * 3 > total,
            "plain decided only {decided} of {total}"
        );
    }
}
