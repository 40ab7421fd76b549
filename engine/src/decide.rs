//! Deciding a call's route: lookups started at once, rules tried in order, always in time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rhai::{Dynamic, Scope};
use serde::Serialize;

use crate::call::Call;
use crate::caller::{Caller, Normaliser};
use crate::diagnostic::Position;
use crate::lookup::{Facts, LookupRequest};
use crate::lookups::{LookupResult, Lookups, PendingLookup};
use crate::ruleset::{Action, Rule, RuleSet, check_route};
use crate::script::{Frame, ScriptEngine, ScriptError};

/// Time kept back from lookups for the rules that run after them.
pub const RULES_RESERVE: Duration = Duration::from_millis(50);

/// Why the answer is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A rule matched.
    Matched,
    /// Every rule was tried; none matched: the default.
    NoMatch,
    /// Time ran out before a rule matched: the default.
    Deadline,
}

/// What happened to one rule for one call.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RuleOutcome {
    Matched,
    NoMatch,
    /// The script gave `()` (or an empty text): on to the next rule.
    FellThrough,
    /// The rule reads a lookup that was unavailable and failed on it; not an error in the rule.
    Skipped {
        reason: String,
    },
    Error {
        message: String,
        #[serde(flatten)]
        position: Position,
    },
    /// A rule before it matched, or time ran out.
    NotReached,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleTrace {
    pub name: String,
    #[serde(flatten)]
    pub outcome: RuleOutcome,
    /// Time spent waiting for lookups and evaluating, in microseconds.
    pub micros: u64,
}

/// What happened to one lookup for one call.
#[derive(Debug, Clone, Serialize)]
pub struct LookupTrace {
    pub name: String,
    #[serde(flatten)]
    pub result: LookupResult,
    /// From the call's start until the facts were ready (or given up on), in microseconds.
    pub micros: u64,
    pub cached: bool,
    /// The plugin failed and an expired cached answer stood in (stale-if-error).
    pub stale: bool,
    /// Did a rule wait for it? Lookups no rule reached are still started, so they warm the cache.
    pub awaited: bool,
}

/// The answer for one call, and everything needed to explain it afterwards.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub route: String,
    /// The rule that matched; `None` when the default answered.
    pub rule: Option<String>,
    pub reason: Reason,
    pub ruleset: String,
    pub version: String,
    pub caller: Caller,
    pub rules: Vec<RuleTrace>,
    pub lookups: Vec<LookupTrace>,
    /// From the request's arrival to the decision.
    pub micros: u64,
}

/// Decides routes: the shared script engine, caller normalisation and the lookup plugins.
#[derive(Debug)]
pub struct Router {
    scripts: Arc<ScriptEngine>,
    normaliser: Normaliser,
    lookups: Lookups,
}

/// Facts for a call: live from plugins, or given by a rule test.
enum Source<'a> {
    Live(Vec<PendingLookup>),
    Given(&'a BTreeMap<String, LookupResult>),
}

impl Router {
    pub fn new(scripts: Arc<ScriptEngine>, normaliser: Normaliser, lookups: Lookups) -> Self {
        Router {
            scripts,
            normaliser,
            lookups,
        }
    }

    pub fn scripts(&self) -> &Arc<ScriptEngine> {
        &self.scripts
    }

    pub fn lookups(&self) -> &Lookups {
        &self.lookups
    }

    pub fn normaliser(&self) -> &Normaliser {
        &self.normaliser
    }

    /// Decides `call` by `deadline`, asking the rule set's lookups. `arrived` is when the
    /// request reached the server; `now` is the wall-clock time rules see.
    pub async fn route(
        &self,
        set: &RuleSet,
        call: Arc<Call>,
        arrived: Instant,
        deadline: Instant,
        now: DateTime<Utc>,
    ) -> Decision {
        let request = self.request(call);
        let pending = set
            .lookups
            .iter()
            .map(|name| self.lookups.start(name, &request, arrived))
            .collect();
        evaluate(
            &self.scripts,
            set,
            &request,
            arrived,
            deadline,
            now,
            Source::Live(pending),
        )
        .await
    }

    /// Decides `call` with the facts given (rule tests, simulation): no plugin is asked.
    /// A declared lookup missing from `facts` is unavailable.
    pub async fn route_with_facts(
        &self,
        set: &RuleSet,
        call: Call,
        facts: &BTreeMap<String, LookupResult>,
        deadline: Instant,
        now: DateTime<Utc>,
    ) -> Decision {
        let request = self.request(Arc::new(call));
        evaluate(
            &self.scripts,
            set,
            &request,
            Instant::now(),
            deadline,
            now,
            Source::Given(facts),
        )
        .await
    }

    fn request(&self, call: Arc<Call>) -> LookupRequest {
        let caller = self.normaliser.normalise(call.caller_number());
        LookupRequest {
            caller: Arc::new(caller),
            call,
        }
    }
}

async fn evaluate(
    scripts: &ScriptEngine,
    set: &RuleSet,
    request: &LookupRequest,
    arrived: Instant,
    deadline: Instant,
    now: DateTime<Utc>,
    mut source: Source<'_>,
) -> Decision {
    // Lookups give up a little before the deadline, so the rules after one that waited in
    // vain still run: "CRM hanging" answers with the next matching rule, not the default.
    let reserve = RULES_RESERVE.min(deadline.saturating_duration_since(arrived) / 10);
    let lookup_deadline = deadline.checked_sub(reserve).unwrap_or(deadline);
    let frame = Frame {
        deadline,
        now: now.with_timezone(&set.time_zone),
        holidays: set.holidays.clone(),
    };
    let mut scope = Scope::new();
    scope.push_constant_dynamic("call", call_map(&request.call));
    scope.push_constant_dynamic("caller", caller_map(&request.caller));

    let mut lookups: Vec<Option<LookupTrace>> = vec![None; set.lookups.len()];
    let mut traces = Vec::with_capacity(set.rules.len());
    let mut answer: Option<(String, &Rule)> = None;
    let mut reason = Reason::NoMatch;

    for rule in &set.rules {
        if answer.is_some() || reason == Reason::Deadline {
            traces.push(RuleTrace {
                name: rule.name.clone(),
                outcome: RuleOutcome::NotReached,
                micros: 0,
            });
            continue;
        }
        let started = Instant::now();
        if started >= deadline {
            reason = Reason::Deadline;
            traces.push(RuleTrace {
                name: rule.name.clone(),
                outcome: RuleOutcome::NotReached,
                micros: 0,
            });
            continue;
        }
        let mut unavailable = Vec::new();
        for (index, name) in set.lookups.iter().enumerate() {
            if !rule.reads(name) {
                continue;
            }
            if lookups[index].is_none() {
                let trace = source.resolve(index, name, lookup_deadline).await;
                scope.push_constant_dynamic(name.as_str(), facts_value(&trace.result));
                lookups[index] = Some(trace);
            }
            if let Some(LookupTrace {
                result: LookupResult::Unavailable { reason },
                ..
            }) = &lookups[index]
            {
                unavailable.push(format!("{name} unavailable ({reason})"));
            }
        }
        let outcome = match run_rule(scripts, rule, &mut scope, &frame, &unavailable) {
            RuleOutcome::Matched => {
                match rule_route(scripts, rule, &mut scope, &frame, &unavailable) {
                    Ok(Some(route)) => {
                        answer = Some((route, rule));
                        reason = Reason::Matched;
                        RuleOutcome::Matched
                    }
                    Ok(None) => RuleOutcome::FellThrough,
                    Err(outcome) => outcome,
                }
            }
            other => other,
        };
        if let RuleOutcome::Error { message, position } = &outcome {
            tracing::warn!(
                ruleset = %set.name,
                rule = %rule.name,
                "rule failed at {}:{}:{}: {message}",
                set.file.display(),
                position.line,
                position.column
            );
        }
        if answer.is_none() && Instant::now() >= deadline {
            reason = Reason::Deadline;
        }
        traces.push(RuleTrace {
            name: rule.name.clone(),
            outcome,
            micros: micros(started.elapsed()),
        });
    }

    let lookups = set
        .lookups
        .iter()
        .zip(lookups)
        .enumerate()
        .map(|(index, (name, trace))| trace.unwrap_or_else(|| source.unawaited(index, name)))
        .collect();
    let (route, rule) = match answer {
        Some((route, rule)) => (route, Some(rule.name.clone())),
        None => (set.default_route.clone(), None),
    };
    Decision {
        route,
        rule,
        reason,
        ruleset: set.name.clone(),
        version: set.version.clone(),
        caller: (*request.caller).clone(),
        rules: traces,
        lookups,
        micros: micros(arrived.elapsed()),
    }
}

/// Evaluates the rule's `when`; `Matched` here means the condition held.
fn run_rule(
    scripts: &ScriptEngine,
    rule: &Rule,
    scope: &mut Scope<'_>,
    frame: &Frame,
    unavailable: &[String],
) -> RuleOutcome {
    let Some(when) = &rule.when else {
        return RuleOutcome::Matched;
    };
    match scripts.run(when, scope, frame.clone()) {
        Ok(value) => match value.as_bool() {
            Ok(true) => RuleOutcome::Matched,
            Ok(false) => RuleOutcome::NoMatch,
            Err(type_name) => RuleOutcome::Error {
                message: format!("`when` must give true or false, gave {type_name}"),
                position: when.file_position(rhai::Position::new(1, 1)),
            },
        },
        Err(e) => failure(e, unavailable),
    }
}

fn failure(error: ScriptError, unavailable: &[String]) -> RuleOutcome {
    if !unavailable.is_empty() && !error.limit {
        return RuleOutcome::Skipped {
            reason: unavailable.join(", "),
        };
    }
    RuleOutcome::Error {
        message: error.message,
        position: error.position,
    }
}

/// The route of a rule whose condition held: its literal, or its script's text.
/// `Ok(None)` falls through to the next rule.
fn rule_route(
    scripts: &ScriptEngine,
    rule: &Rule,
    scope: &mut Scope<'_>,
    frame: &Frame,
    unavailable: &[String],
) -> Result<Option<String>, RuleOutcome> {
    let script = match &rule.action {
        Action::Route(route) => return Ok(Some(route.clone())),
        Action::Script(script) => script,
    };
    let value = scripts
        .run(script, scope, frame.clone())
        .map_err(|e| failure(e, unavailable))?;
    if value.is_unit() {
        return Ok(None);
    }
    let invalid = |message: String| RuleOutcome::Error {
        message,
        position: script.file_position(rhai::Position::new(1, 1)),
    };
    let type_name = value.type_name();
    let text = value.into_immutable_string().map_err(|_| {
        invalid(format!(
            "`script` must give a route (text) or () to fall through, gave {type_name}"
        ))
    })?;
    if text.is_empty() {
        return Ok(None);
    }
    check_route(&text).map_err(|message| invalid(format!("`script` gave {text:?}: {message}")))?;
    Ok(Some(text.to_string()))
}

impl Source<'_> {
    async fn resolve(&mut self, index: usize, name: &str, deadline: Instant) -> LookupTrace {
        match self {
            Source::Live(pending) => pending[index].wait(deadline).await,
            Source::Given(facts) => given(facts, name, true),
        }
    }

    /// The trace of a lookup no rule waited for.
    fn unawaited(&mut self, index: usize, name: &str) -> LookupTrace {
        match self {
            Source::Live(pending) => pending[index].peek(),
            Source::Given(facts) => given(facts, name, false),
        }
    }
}

fn given(facts: &BTreeMap<String, LookupResult>, name: &str, awaited: bool) -> LookupTrace {
    let result = facts
        .get(name)
        .cloned()
        .unwrap_or_else(|| LookupResult::Unavailable {
            reason: "no facts given".into(),
        });
    LookupTrace {
        name: name.to_string(),
        result,
        micros: 0,
        cached: false,
        stale: false,
        awaited,
    }
}

fn facts_value(result: &LookupResult) -> Dynamic {
    match result {
        LookupResult::Found { facts } => facts_to_dynamic(facts),
        LookupResult::NotFound => Dynamic::from_map(rhai::Map::new()),
        LookupResult::Unavailable { .. } => Dynamic::UNIT,
    }
}

/// JSON facts as a Rhai map (numbers as integers where they are, floats otherwise).
pub fn facts_to_dynamic(facts: &Facts) -> Dynamic {
    rhai::serde::to_dynamic(facts).unwrap_or(Dynamic::UNIT)
}

fn call_map(call: &Call) -> Dynamic {
    let mut map = rhai::Map::new();
    for (name, value) in call.fields() {
        map.insert(name.into(), Dynamic::from(value.to_string()));
    }
    Dynamic::from_map(map)
}

fn caller_map(caller: &Caller) -> Dynamic {
    let mut map = rhai::Map::new();
    let text = |s: &str| Dynamic::from(s.to_string());
    map.insert("raw".into(), text(&caller.raw));
    map.insert("e164".into(), text(&caller.e164));
    map.insert("national".into(), text(&caller.national));
    map.insert("international".into(), text(&caller.international));
    map.insert("digits".into(), text(&caller.digits));
    map.insert("country".into(), text(&caller.country));
    map.insert(
        "country_code".into(),
        Dynamic::from(i64::from(caller.country_code)),
    );
    map.insert("kind".into(), text(caller.kind));
    map.insert("valid".into(), Dynamic::from(caller.valid));
    map.insert("anonymous".into(), Dynamic::from(caller.anonymous));
    map.insert(
        "is_sip_account".into(),
        Dynamic::from(caller.is_sip_account),
    );
    Dynamic::from_map(map)
}

pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
