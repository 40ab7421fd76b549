//! Deciding a call's route: lookups started at once, rules tried in order, always in time, and
//! never at another rule set's expense.
//!
//! A call is decided by an [`Evaluation`] that steps through the rules. It first runs inline,
//! on the thread that took the call, for at most [`INLINE_BUDGET`]: nearly every rule set is
//! done by then. A rule still running at that point is stopped and run again from its start
//! in the evaluation [`Pool`] (rules have no side effects), where each rule set has a bounded
//! share; a rule set over its share answers its default at once. A rule set that needed the
//! pool goes straight there for a while ([`HEAVY_FOR`]). Waiting for lookups happens between
//! steps, never on a pool thread. Every wait ends by the call's [`Deadline`].

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use rhai::{Dynamic, Scope};
use serde::Serialize;
use tokio::time::Instant;

use crate::call::Call;
use crate::caller::{Caller, Normaliser};
use crate::clock::{Deadline, micros};
use crate::diagnostic::Position;
use crate::lookups::{LookupResult, LookupTrace, Lookups, PendingLookup};
use crate::plugin::{Facts, LookupRequest};
use crate::pool::{Pool, PoolError, PoolSettings, Slot};
use crate::ruleset::{Action, Rule, RuleSet, check_route};
use crate::script::{Frame, FrameGuard, Run, ScriptEngine, ScriptError};

/// Time kept back from lookups for the rules that run after them.
pub const RULES_RESERVE: Duration = Duration::from_millis(50);
/// How long a call's rules may run on the thread that took the call before the rest is handed
/// to the evaluation pool.
pub const INLINE_BUDGET: Duration = Duration::from_millis(1);
/// How long a rule set that needed the pool skips the inline attempt.
pub const HEAVY_FOR: Duration = Duration::from_secs(10);
/// A job in the pool gives its thread back after the rule that crosses this slice.
pub const POOL_SLICE: Duration = Duration::from_millis(10);
/// Rules on a pool thread stop this long before the call's deadline, so the job (and its
/// trace) is back by the deadline even when its thread has to wait for a CPU: on a busy
/// machine a runnable thread can wait a scheduler period (~20 ms) for its turn.
pub const POOL_STOP_EARLY: Duration = Duration::from_millis(20);
/// How long past the deadline a call waits for its pool job, for a thread that was even later;
/// after that the default answers without the job's trace (never later).
pub const POOL_RETURN: Duration = Duration::from_millis(5);

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
    /// The rule set had its share of the evaluation pool in use (or the pool was full): the
    /// default, at once.
    OverShare,
    /// The request carried no readable call data (not a JSON object or form data, too large,
    /// not UTF-8, not complete in time): the default.
    Unreadable,
    /// Something inside belroute failed (a panic, caught): the default.
    Failed,
}

impl Reason {
    /// The name used in the `X-Belroute-Reason` header, metrics, logs and the call log.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Matched => "matched",
            Reason::NoMatch => "no_match",
            Reason::Deadline => "deadline",
            Reason::OverShare => "over_share",
            Reason::Unreadable => "unreadable",
            Reason::Failed => "failed",
        }
    }

    pub const ALL: [Reason; 6] = [
        Reason::Matched,
        Reason::NoMatch,
        Reason::Deadline,
        Reason::OverShare,
        Reason::Unreadable,
        Reason::Failed,
    ];
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

/// The answer for one call, and everything needed to explain it afterwards.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub route: String,
    /// The rule that matched; `None` when the default answered.
    pub rule: Option<String>,
    pub reason: Reason,
    pub ruleset: String,
    pub version: String,
    pub caller: Arc<Caller>,
    pub rules: Vec<RuleTrace>,
    pub lookups: Vec<LookupTrace>,
    /// From the request's arrival to the decision.
    pub micros: u64,
}

impl Decision {
    /// The rule set's default, when no rule could run at all (the call data never arrived, the
    /// pool refused, something failed): every rule not reached.
    pub fn fallback(
        set: &RuleSet,
        caller: Arc<Caller>,
        reason: Reason,
        deadline: &Deadline,
    ) -> Decision {
        Decision {
            route: set.default_route.clone(),
            rule: None,
            reason,
            ruleset: set.name.to_string(),
            version: set.version.clone(),
            caller,
            rules: set
                .rules
                .iter()
                .map(|rule| RuleTrace {
                    name: rule.name.clone(),
                    outcome: RuleOutcome::NotReached,
                    micros: 0,
                })
                .collect(),
            lookups: Vec::new(),
            micros: deadline.elapsed_micros(),
        }
    }
}

/// Decides routes: the shared script engine, caller normalisation, the lookup plugins and the
/// evaluation pool.
#[derive(Debug)]
pub struct Router {
    scripts: Arc<ScriptEngine>,
    normaliser: Normaliser,
    lookups: Lookups,
    pool: Pool,
}

impl Router {
    pub fn new(scripts: Arc<ScriptEngine>, normaliser: Normaliser, lookups: Lookups) -> Self {
        Router::with_pool(scripts, normaliser, lookups, PoolSettings::default())
    }

    pub fn with_pool(
        scripts: Arc<ScriptEngine>,
        normaliser: Normaliser,
        lookups: Lookups,
        pool: PoolSettings,
    ) -> Self {
        Router {
            scripts,
            normaliser,
            lookups,
            pool: Pool::new(pool),
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

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Decides `call` by its deadline, asking the rule set's lookups; `now` is the wall-clock
    /// time rules see. Returns by `deadline.at` whatever a plugin or a rule does; a panic
    /// anywhere in deciding (a plugin's bug, say) answers the default with [`Reason::Failed`].
    pub async fn route(
        &self,
        set: &Arc<RuleSet>,
        call: Arc<Call>,
        deadline: Deadline,
        now: DateTime<Utc>,
    ) -> Decision {
        let request = self.request(call);
        let deciding = AssertUnwindSafe(async {
            let pending: Vec<PendingLookup> = set
                .lookups
                .iter()
                .map(|name| self.lookups.start(name, &request, deadline.arrived))
                .collect();
            self.drive(set, &request, deadline, now, Source::Live(pending))
                .await
        });
        match deciding.catch_unwind().await {
            Ok(decision) => decision,
            Err(panic) => {
                tracing::error!(
                    ruleset = %set.name,
                    "deciding a call panicked; answering the default: {}",
                    crate::text::escape(&crate::pool::panic_message(panic.as_ref()))
                );
                Decision::fallback(set, request.caller.clone(), Reason::Failed, &deadline)
            }
        }
    }

    /// Decides `call` with the facts given (rule tests, simulation, replay): no plugin is
    /// asked. A declared lookup missing from `facts` is unavailable. The rules get `budget`,
    /// counted from when the caller's number is read.
    pub async fn route_with_facts(
        &self,
        set: &Arc<RuleSet>,
        call: Call,
        facts: &BTreeMap<String, LookupResult>,
        budget: Duration,
        now: DateTime<Utc>,
    ) -> Decision {
        let request = self.request(Arc::new(call));
        let deadline = Deadline::new(Instant::now(), budget);
        self.drive(set, &request, deadline, now, Source::Given(facts))
            .await
    }

    fn request(&self, call: Arc<Call>) -> LookupRequest {
        let caller = self.normaliser.normalise(call.caller_number());
        LookupRequest { caller, call }
    }

    /// Steps the evaluation: inline first, then in the pool; lookups awaited in between.
    async fn drive(
        &self,
        set: &Arc<RuleSet>,
        request: &LookupRequest,
        deadline: Deadline,
        now: DateTime<Utc>,
        mut source: Source<'_>,
    ) -> Decision {
        let mut eval = Evaluation::new(set.clone(), request, deadline, now);
        for index in 0..set.lookups.len() {
            if let Some(trace) = source.ready(index, &set.lookups[index]) {
                eval.provide(index, trace);
            }
        }
        let mut inline = !set.is_heavy();
        let mut slot: Option<Slot> = None;
        loop {
            let step = if inline {
                let until = crate::clock::saturating_add(Instant::now(), INLINE_BUDGET);
                eval.step(&self.scripts, Mode::Inline { until })
            } else {
                let slot = match &slot {
                    Some(slot) => slot,
                    None => match self.pool.admit(&set.name) {
                        Ok(admitted) => slot.insert(admitted),
                        Err(e) => return eval.refused(e, &mut source),
                    },
                };
                let scripts = self.scripts.clone();
                let job = self.pool.run(slot, move || {
                    let step = eval.step(&scripts, Mode::Pool);
                    (eval, step)
                });
                let back_by = crate::clock::saturating_add(deadline.at, POOL_RETURN);
                match tokio::time::timeout_at(back_by, job).await {
                    Ok(Ok((back, step))) => {
                        eval = back;
                        step
                    }
                    Ok(Err(e)) => {
                        return Decision::failed(set, request, &deadline, e, &mut source);
                    }
                    Err(_) => {
                        // Still queued or running when time ran out: the job finishes on its
                        // own (every rule checks the deadline) and its result is dropped.
                        return Decision::failed(
                            set,
                            request,
                            &deadline,
                            PoolError::Full,
                            &mut source,
                        )
                        .with_reason(Reason::Deadline);
                    }
                }
            };
            match step {
                Step::Done => return eval.finish(&mut source),
                Step::Need(index) => {
                    let trace = source
                        .resolve(index, &set.lookups[index], eval.lookup_deadline)
                        .await;
                    eval.provide(index, trace);
                }
                Step::OverInline => {
                    set.mark_heavy(HEAVY_FOR);
                    inline = false;
                }
                Step::Yield => {}
            }
        }
    }
}

impl Decision {
    /// The default after the pool refused or a job failed, with what the lookups gave so far.
    fn failed(
        set: &RuleSet,
        request: &LookupRequest,
        deadline: &Deadline,
        error: PoolError,
        source: &mut Source<'_>,
    ) -> Decision {
        let reason = match &error {
            PoolError::OverShare | PoolError::Full => Reason::OverShare,
            PoolError::Panicked(_) | PoolError::Closed => Reason::Failed,
        };
        if reason == Reason::Failed {
            tracing::error!(ruleset = %set.name, "answering the default: {error}");
        }
        let mut decision = Decision::fallback(set, request.caller.clone(), reason, deadline);
        decision.lookups = (0..set.lookups.len())
            .map(|i| source.unawaited(i, &set.lookups[i]))
            .collect();
        decision
    }

    fn with_reason(mut self, reason: Reason) -> Self {
        self.reason = reason;
        self
    }
}

/// How long one step may run.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// On the thread that took the call, until `until`.
    Inline { until: Instant },
    /// On a pool thread, for a slice.
    Pool,
}

/// Where a step stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Every rule is decided.
    Done,
    /// The next rule reads lookup `index`, which is not ready.
    Need(usize),
    /// The inline attempt's time ran out in the middle of a rule.
    OverInline,
    /// The pool slice is used up; more rules to go.
    Yield,
}

/// One call's evaluation: where it is in the rules, and what it knows so far. Owned, so it can
/// move to a pool thread and back.
struct Evaluation {
    set: Arc<RuleSet>,
    frame: Frame,
    scope: Scope<'static>,
    caller: Arc<Caller>,
    deadline: Deadline,
    /// Lookups give up a little before the deadline, so the rules after one that waited in
    /// vain still run: "CRM hanging" answers with the next matching rule, not the default.
    lookup_deadline: Instant,
    /// The next rule to run.
    next: usize,
    /// When the next rule was first tried (waiting for its lookups included).
    rule_started: Option<Instant>,
    traces: Vec<RuleTrace>,
    facts: Vec<Option<LookupTrace>>,
    /// Which lookups a rule read.
    read: Vec<bool>,
    answer: Option<(String, usize)>,
    reason: Reason,
}

impl Evaluation {
    fn new(
        set: Arc<RuleSet>,
        request: &LookupRequest,
        deadline: Deadline,
        now: DateTime<Utc>,
    ) -> Self {
        let reserve =
            RULES_RESERVE.min(deadline.at.saturating_duration_since(deadline.arrived) / 10);
        let lookup_deadline = deadline.at.checked_sub(reserve).unwrap_or(deadline.at);
        let frame = Frame {
            ruleset: set.name.clone(),
            now: now.with_timezone(&set.time_zone),
            holidays: set.holidays.clone(),
            office_hours: set.office_hours.clone(),
            print: set.print.clone(),
        };
        let mut scope = Scope::new();
        scope.push_constant_dynamic("call", call_map(&request.call));
        scope.push_constant_dynamic("caller", caller_map(&request.caller));
        let lookups = set.lookups.len();
        Evaluation {
            traces: Vec::with_capacity(set.rules.len()),
            set,
            frame,
            scope,
            caller: request.caller.clone(),
            deadline,
            lookup_deadline,
            next: 0,
            rule_started: None,
            facts: vec![None; lookups],
            read: vec![false; lookups],
            answer: None,
            reason: Reason::NoMatch,
        }
    }

    fn provide(&mut self, index: usize, trace: LookupTrace) {
        if self.facts[index].is_none() {
            self.scope.push_constant_dynamic(
                self.set.lookups[index].as_str(),
                facts_value(&trace.result),
            );
            self.facts[index] = Some(trace);
        }
    }

    fn step(&mut self, scripts: &ScriptEngine, mode: Mode) -> Step {
        let _frame = FrameGuard::set(self.frame.clone());
        // On a pool thread rules stop a little early, so the job (and its trace) is back by
        // the deadline even when the thread has to wait for a CPU.
        let stop_at = match mode {
            Mode::Inline { .. } => self.deadline.at,
            Mode::Pool => self
                .deadline
                .at
                .checked_sub(POOL_STOP_EARLY)
                .unwrap_or(self.deadline.at),
        };
        // One clock reading before and one after each rule serves every check in between.
        let mut now = Instant::now();
        let slice_end = crate::clock::saturating_add(now, POOL_SLICE);
        let set = self.set.clone();
        while self.next < set.rules.len() {
            let rule = &set.rules[self.next];
            if self.answer.is_some() || self.reason == Reason::Deadline {
                self.record(rule, RuleOutcome::NotReached, 0);
                continue;
            }
            let started = *self.rule_started.get_or_insert(now);
            if now >= stop_at {
                self.reason = Reason::Deadline;
                self.record(rule, RuleOutcome::NotReached, 0);
                continue;
            }
            let mut unavailable = Vec::new();
            for (index, name) in set.lookups.iter().enumerate() {
                if !rule.reads(name) {
                    continue;
                }
                self.read[index] = true;
                match &self.facts[index] {
                    None => return Step::Need(index),
                    Some(LookupTrace {
                        result: LookupResult::Unavailable { reason },
                        ..
                    }) => unavailable.push(format!("{name} unavailable ({reason})")),
                    Some(_) => {}
                }
            }
            let inline_until = match mode {
                Mode::Inline { until } => Some(until),
                Mode::Pool => None,
            };
            let outcome =
                match self.run_rule(scripts, rule, &unavailable, now, stop_at, inline_until) {
                    Some(outcome) => outcome,
                    None => return Step::OverInline,
                };
            if let RuleOutcome::Error { message, position } = &outcome {
                tracing::warn!(
                    ruleset = %set.name,
                    rule = %rule.name,
                    "rule failed at {}:{}:{}: {}",
                    set.file.display(),
                    position.line,
                    position.column,
                    crate::text::mask_numbers(message)
                );
            }
            now = Instant::now();
            if self.answer.is_none() && now >= stop_at {
                self.reason = Reason::Deadline;
            }
            self.record(
                rule,
                outcome,
                micros(now.saturating_duration_since(started)),
            );
            if matches!(mode, Mode::Pool) && now >= slice_end && self.next < set.rules.len() {
                return Step::Yield;
            }
        }
        Step::Done
    }

    fn record(&mut self, rule: &Rule, outcome: RuleOutcome, micros: u64) {
        if outcome == RuleOutcome::Matched {
            self.reason = Reason::Matched;
        }
        self.traces.push(RuleTrace {
            name: rule.name.clone(),
            outcome,
            micros,
        });
        self.next += 1;
        self.rule_started = None;
    }

    /// Runs one rule: its condition, then its route. `None` when the inline attempt ran out.
    fn run_rule(
        &mut self,
        scripts: &ScriptEngine,
        rule: &Rule,
        unavailable: &[String],
        now: Instant,
        stop_at: Instant,
        inline_until: Option<Instant>,
    ) -> Option<RuleOutcome> {
        if let Some(when) = &rule.when {
            match scripts.run(when, &mut self.scope, now, stop_at, inline_until) {
                Run::OverInline => return None,
                Run::Failed(e) => return Some(failure(e, unavailable)),
                Run::Value(value) => match value.as_bool() {
                    Ok(true) => {}
                    Ok(false) => return Some(RuleOutcome::NoMatch),
                    Err(type_name) => {
                        return Some(RuleOutcome::Error {
                            message: format!("`when` must give true or false, gave {type_name}"),
                            position: when.file_position(rhai::Position::new(1, 1)),
                        });
                    }
                },
            }
        }
        let script = match &rule.action {
            Action::Route(route) => {
                self.answer = Some((route.clone(), self.next));
                return Some(RuleOutcome::Matched);
            }
            Action::Script(script) => script,
        };
        let value = match scripts.run(script, &mut self.scope, now, stop_at, inline_until) {
            Run::OverInline => return None,
            Run::Failed(e) => return Some(failure(e, unavailable)),
            Run::Value(value) => value,
        };
        if value.is_unit() {
            return Some(RuleOutcome::FellThrough);
        }
        let invalid = |message: String| RuleOutcome::Error {
            message,
            position: script.file_position(rhai::Position::new(1, 1)),
        };
        let type_name = value.type_name();
        let Ok(text) = value.into_immutable_string() else {
            return Some(invalid(format!(
                "`script` must give a route (text) or () to fall through, gave {type_name}"
            )));
        };
        if text.is_empty() {
            return Some(RuleOutcome::FellThrough);
        }
        if let Err(message) = check_route(&text) {
            return Some(invalid(format!("`script` gave {text:?}: {message}")));
        }
        self.answer = Some((text.to_string(), self.next));
        Some(RuleOutcome::Matched)
    }

    /// The default at once: the pool refused this call (rules run inline before stay traced).
    fn refused(self, error: PoolError, source: &mut Source<'_>) -> Decision {
        tracing::debug!(ruleset = %self.set.name, "answering the default: {error}");
        let mut decision = self.finish(source);
        decision.reason = match error {
            PoolError::OverShare | PoolError::Full => Reason::OverShare,
            PoolError::Panicked(_) | PoolError::Closed => Reason::Failed,
        };
        decision
    }

    fn finish(mut self, source: &mut Source<'_>) -> Decision {
        // Rules the loop never reached (refused, or done early).
        let set = self.set.clone();
        while self.next < set.rules.len() {
            self.record(&set.rules[self.next], RuleOutcome::NotReached, 0);
        }
        let lookups = set
            .lookups
            .iter()
            .enumerate()
            .map(|(index, name)| {
                let mut trace = self.facts[index]
                    .take()
                    .unwrap_or_else(|| source.unawaited(index, name));
                trace.awaited = self.read[index];
                trace
            })
            .collect();
        let (route, rule) = match self.answer {
            Some((route, index)) => (route, Some(set.rules[index].name.clone())),
            None => (set.default_route.clone(), None),
        };
        Decision {
            route,
            rule,
            reason: self.reason,
            ruleset: set.name.to_string(),
            version: set.version.clone(),
            caller: self.caller,
            rules: self.traces,
            lookups,
            micros: self.deadline.elapsed_micros(),
        }
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

/// Facts for a call: live from plugins, or given (rule tests, simulation, replay).
enum Source<'a> {
    Live(Vec<PendingLookup>),
    Given(&'a BTreeMap<String, LookupResult>),
}

impl Source<'_> {
    /// The facts, if they are there without waiting.
    fn ready(&mut self, index: usize, name: &str) -> Option<LookupTrace> {
        match self {
            Source::Live(pending) => pending[index].ready(),
            Source::Given(facts) => Some(given(facts, name)),
        }
    }

    async fn resolve(&mut self, index: usize, name: &str, deadline: Instant) -> LookupTrace {
        match self {
            Source::Live(pending) => pending[index].wait(deadline).await,
            Source::Given(facts) => given(facts, name),
        }
    }

    /// The trace of a lookup no rule waited for.
    fn unawaited(&mut self, index: usize, name: &str) -> LookupTrace {
        match self {
            Source::Live(pending) => pending[index].peek(),
            Source::Given(facts) => given(facts, name),
        }
    }
}

fn given(facts: &BTreeMap<String, LookupResult>, name: &str) -> LookupTrace {
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
        awaited: false,
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
    caller
        .script_view
        .0
        .get_or_init(|| build_caller_map(caller))
        .clone()
}

fn build_caller_map(caller: &Caller) -> Dynamic {
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
