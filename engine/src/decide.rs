//! Deciding a call's route: lookups started at once, rules tried in order, always in time, and
//! never at another rule set's expense.
//!
//! A call is decided by an [`Evaluation`] that steps through the rules. Rules the checker
//! proved bounded (no loop, no function or closure, only [`BOUNDED_FUNCTIONS`]) run inline, on
//! the thread that took the call, for at most [`INLINE_BUDGET`]: nearly every rule set is done
//! by then. The first rule that is not proven bounded, or a rule still running when the inline
//! budget is spent (stopped, and run again from its start: rules have no side effects), hands
//! the rest of the evaluation to the [`Pool`]: a worker process the operating system limits
//! and the server kills at the deadline, where each rule set has a bounded share; a rule set
//! over its share answers its default at once. A rule set that overran the inline budget goes
//! straight to the pool for a while ([`HEAVY_FOR`]). Waiting for lookups happens between
//! steps, in the server, never in a worker. Every wait ends by the call's [`Deadline`].
//!
//! [`BOUNDED_FUNCTIONS`]: crate::script::BOUNDED_FUNCTIONS

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use rhai::{Dynamic, Scope};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::call::Call;
use crate::caller::{Caller, Normaliser};
use crate::clock::{Deadline, micros};
use crate::diagnostic::Position;
use crate::lookups::{LookupResult, LookupTrace, Lookups, PendingLookup};
use crate::plain::Seen;
use crate::plugin::{Facts, LookupRequest};
use crate::ruleset::{Action, Rule, RuleSet, check_route};
use crate::sandbox::{
    Job, Outcome, Pool, PoolError, PoolSettings, Ran, STOP_EARLY, WorkerCommand, WorkerSpec,
};
use crate::script::{Frame, FrameGuard, Run, Script, ScriptEngine, ScriptError};

/// Time kept back from lookups for the rules that run after them.
pub const RULES_RESERVE: Duration = Duration::from_millis(50);
/// How long a call's rules may run on the thread that took the call before the rest is handed
/// to the evaluation pool.
pub const INLINE_BUDGET: Duration = Duration::from_millis(1);
/// How long a rule set that overran the inline budget skips the inline attempt.
pub const HEAVY_FOR: Duration = Duration::from_secs(10);

/// Why the answer is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Something failed: a panic (caught), or the worker process evaluating the rules died
    /// (its memory cap, a crash): the default.
    Failed,
    /// The rule set's evaluations kept making the operating system stop workers: it answers
    /// its default at once until its file changes or an operator releases it.
    Quarantined,
    /// A script gave a route that is not in the rule set's `routes:`: the Voorwaarde-app has no
    /// branch for it, so the default answers instead.
    UndeclaredRoute,
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
            Reason::Quarantined => "quarantined",
            Reason::UndeclaredRoute => "undeclared_route",
        }
    }

    pub const ALL: [Reason; 8] = [
        Reason::Matched,
        Reason::NoMatch,
        Reason::Deadline,
        Reason::OverShare,
        Reason::Unreadable,
        Reason::Failed,
        Reason::Quarantined,
        Reason::UndeclaredRoute,
    ];
}

/// What happened to one rule for one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleTrace {
    pub name: String,
    #[serde(flatten)]
    pub outcome: RuleOutcome,
    /// Time spent waiting for lookups and evaluating, in microseconds.
    #[serde(default)]
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
    /// A panic in belroute's own code was caught on the way (a bug to report, shown by
    /// `/readyz`), as opposed to a rule's worker dying, which is the rule's doing.
    #[serde(skip)]
    pub panicked: bool,
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
            panicked: false,
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
    /// A router whose pool runs on threads of this process (tools and tests; see
    /// [`Router::with_workers`] for a server).
    pub fn new(scripts: Arc<ScriptEngine>, normaliser: Normaliser, lookups: Lookups) -> Self {
        Router::with_pool(scripts, normaliser, lookups, PoolSettings::default())
    }

    /// As [`Router::new`], with `pool`'s size and share.
    pub fn with_pool(
        scripts: Arc<ScriptEngine>,
        normaliser: Normaliser,
        lookups: Lookups,
        pool: PoolSettings,
    ) -> Self {
        Router {
            pool: Pool::threads(pool, scripts.clone()),
            scripts,
            normaliser,
            lookups,
        }
    }

    /// A router whose pool is worker processes started with `command`, limited by the
    /// operating system and killed at the deadline. `eager` starts them now (a server), else
    /// on first need (a command that may never need one).
    pub fn with_workers(
        scripts: Arc<ScriptEngine>,
        normaliser: Normaliser,
        lookups: Lookups,
        pool: PoolSettings,
        command: WorkerCommand,
        eager: bool,
    ) -> Self {
        let spec = WorkerSpec::new(scripts.limits(), pool.worker_memory);
        Router {
            pool: Pool::processes(pool, command, spec, eager),
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
        if set.quarantine.is_active() {
            return Decision::fallback(set, request.caller, Reason::Quarantined, &deadline);
        }
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
                    crate::text::escape(&crate::sandbox::panic_message(panic.as_ref()))
                );
                let mut decision =
                    Decision::fallback(set, request.caller.clone(), Reason::Failed, &deadline);
                decision.panicked = true;
                decision
            }
        }
    }

    /// Decides `call` with the facts given (rule tests, simulation, replay): no plugin is
    /// asked. A declared lookup missing from `facts` is unavailable. The rules have until
    /// `deadline` (a live call's is [`RuleSet::deadline`]).
    pub async fn route_with_facts(
        &self,
        set: &Arc<RuleSet>,
        call: Call,
        facts: &BTreeMap<String, LookupResult>,
        deadline: Deadline,
        now: DateTime<Utc>,
    ) -> Decision {
        let request = self.request(Arc::new(call));
        self.drive(set, &request, deadline, now, Source::Given(facts))
            .await
    }

    fn request(&self, call: Arc<Call>) -> LookupRequest {
        let caller = self.normaliser.normalise(call.caller_number());
        LookupRequest { caller, call }
    }

    /// Steps the evaluation: inline while the rules are proven bounded and quick, then in the
    /// pool; lookups awaited in between.
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
        let mut slot = None;
        loop {
            let step = if inline {
                let until = crate::clock::saturating_add(Instant::now(), INLINE_BUDGET);
                eval.step(&self.scripts, Mode::Inline { until }, None)
            } else {
                let admitted = match &slot {
                    Some(admitted) => admitted,
                    None => match self.pool.admit(&set.name) {
                        Ok(admitted) => slot.insert(admitted),
                        Err(e) => return eval.lost(e, &self.pool, &mut source),
                    },
                };
                match self.pool.run(admitted, set, eval.job(), deadline.at).await {
                    Ok(outcome) => eval.absorb(outcome),
                    Err(e) => return eval.lost(e, &self.pool, &mut source),
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
                Step::Unbounded => inline = false,
            }
        }
    }
}

/// Goes on with `job` of `set`: what a worker process (or an evaluation thread) does with a
/// job. `progress`, when given, always holds the index of the rule running.
pub(crate) fn evaluate(
    set: &Arc<RuleSet>,
    job: &Job,
    scripts: &ScriptEngine,
    progress: Option<&AtomicUsize>,
) -> Outcome {
    let now = DateTime::from_timestamp_millis(job.now).unwrap_or_else(Utc::now);
    let request = LookupRequest {
        caller: job.caller.clone(),
        call: job.call.clone(),
    };
    let deadline = Deadline::new(Instant::now(), Duration::from_micros(job.budget));
    let mut eval = Evaluation::new(set.clone(), &request, deadline, now);
    eval.next = job.next;
    for (index, facts) in job.facts.iter().enumerate() {
        if let (Some(given), Some(name)) = (facts, set.lookups.get(index)) {
            eval.provide(index, given_trace(name, given.into()));
        }
    }
    let step = eval.step(scripts, Mode::Worker, progress);
    Outcome {
        next: eval.next,
        rules: eval
            .traces
            .into_iter()
            .map(|t| Ran(t.outcome.into(), t.micros))
            .collect(),
        matched: eval.answer,
        reason: eval.reason,
        read: (0..eval.read.len()).filter(|&i| eval.read[i]).collect(),
        need: match step {
            Step::Need(index) => Some(index),
            _ => None,
        },
        printed: crate::script::take_output(),
    }
}

/// How long one step may run.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// On the thread that took the call, until `until`, and only rules proven bounded.
    Inline { until: Instant },
    /// In a worker (or an evaluation thread): every rule, until shortly before the deadline.
    Worker,
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
    /// The next rule is not proven bounded: it runs in the pool.
    Unbounded,
}

/// One call's evaluation: where it is in the rules, and what it knows so far.
struct Evaluation {
    set: Arc<RuleSet>,
    frame: Frame,
    /// What rules see (`call`, `caller`, the lookups given so far): built when the first rule
    /// runs here, so a call handed straight to a worker never builds it in the server.
    scope: Option<Scope<'static>>,
    call: Arc<Call>,
    caller: Arc<Caller>,
    now: DateTime<Utc>,
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
        let lookups = set.lookups.len();
        Evaluation {
            traces: Vec::with_capacity(set.rules.len()),
            set,
            frame,
            scope: None,
            call: request.call.clone(),
            caller: request.caller.clone(),
            now,
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
            if let Some(scope) = &mut self.scope {
                scope.push_constant_dynamic(
                    self.set.lookups[index].as_str(),
                    facts_value(&trace.result),
                );
            }
            self.facts[index] = Some(trace);
        }
    }

    /// The scope `script` runs in: built on first use, with `call` and `caller` added when a
    /// script first reads them (a rule set whose Rhai rules never read `caller` never copies
    /// its map), and the lookups given so far.
    fn scope(&mut self, script: &Script) -> &mut Scope<'static> {
        let (call, caller, set, facts) = (&self.call, &self.caller, &self.set, &self.facts);
        let scope = self.scope.get_or_insert_with(|| {
            let mut scope = Scope::new();
            for (name, trace) in set.lookups.iter().zip(facts) {
                if let Some(trace) = trace {
                    scope.push_constant_dynamic(name.as_str(), facts_value(&trace.result));
                }
            }
            scope
        });
        if script.reads("call") && !scope.contains("call") {
            scope.push_constant_dynamic("call", call_map(call, set.call_fields_read.as_deref()));
        }
        if script.reads("caller") && !scope.contains("caller") {
            scope.push_constant_dynamic("caller", caller_map(caller));
        }
        scope
    }

    /// Runs rules from `next` until done, a lookup to wait for, or (inline) a rule that must
    /// run in the pool. `progress` is told each rule's index before it runs.
    fn step(&mut self, scripts: &ScriptEngine, mode: Mode, progress: Option<&AtomicUsize>) -> Step {
        let _frame = FrameGuard::set(self.frame.clone());
        // In a worker rules stop a little early, so the outcome (and its trace) is back by the
        // deadline even when the process has to wait for a CPU.
        let stop_at = match mode {
            Mode::Inline { .. } => self.deadline.at,
            Mode::Worker => self
                .deadline
                .at
                .checked_sub(STOP_EARLY)
                .unwrap_or(self.deadline.at),
        };
        // One clock reading before and one after each rule serves every check in between.
        let mut now = Instant::now();
        let set = self.set.clone();
        while self.next < set.rules.len() {
            let rule = &set.rules[self.next];
            if self.answer.is_some()
                || matches!(self.reason, Reason::Deadline | Reason::UndeclaredRoute)
            {
                self.record(rule, RuleOutcome::NotReached, 0);
                continue;
            }
            if let (Mode::Inline { .. }, Some(_)) = (mode, rule.unbounded()) {
                return Step::Unbounded;
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
            if let Some(progress) = progress {
                progress.store(self.next, Ordering::Relaxed);
            }
            let inline_until = match mode {
                Mode::Inline { until } => Some(until),
                Mode::Worker => None,
            };
            let outcome =
                match self.run_rule(scripts, rule, &unavailable, now, stop_at, inline_until) {
                    Some(outcome) => outcome,
                    None => return Step::OverInline,
                };
            now = Instant::now();
            if self.answer.is_none() && now >= stop_at {
                self.reason = Reason::Deadline;
            }
            self.record(
                rule,
                outcome,
                micros(now.saturating_duration_since(started)),
            );
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

    /// The rest of this evaluation, for the pool.
    fn job(&self) -> Job {
        let budget = self.deadline.at.saturating_duration_since(Instant::now());
        Job {
            set: String::new(),
            call: self.call.clone(),
            caller: self.caller.clone(),
            now: self.now.timestamp_millis(),
            budget: micros(budget),
            next: self.next,
            facts: self
                .facts
                .iter()
                .map(|f| f.as_ref().map(|t| (&t.result).into()))
                .collect(),
        }
    }

    /// Takes in what the pool ran: its rules' traces, the answer, the lookups read.
    fn absorb(&mut self, outcome: Outcome) -> Step {
        for ran in outcome.rules {
            let name = self
                .set
                .rules
                .get(self.next)
                .map(|r| r.name.clone())
                .unwrap_or_default();
            self.traces.push(RuleTrace {
                name,
                outcome: ran.0.into(),
                micros: ran.1,
            });
            self.next += 1;
        }
        self.next = outcome.next.min(self.set.rules.len());
        self.rule_started = None;
        if outcome.matched.is_some() {
            self.answer = outcome.matched;
        }
        if outcome.reason != Reason::NoMatch {
            self.reason = outcome.reason;
        }
        for index in outcome.read {
            if let Some(read) = self.read.get_mut(index) {
                *read = true;
            }
        }
        for line in &outcome.printed {
            crate::script::log_output(&self.set.print, &self.set.name, line.debug, &line.text);
        }
        match outcome.need {
            Some(index) if index < self.set.lookups.len() => Step::Need(index),
            _ => Step::Done,
        }
    }

    /// The default after the pool refused the call, or lost its evaluation: rules run before
    /// stay traced, the one that was running (if known) says what stopped it.
    fn lost(mut self, error: PoolError, pool: &Pool, source: &mut Source<'_>) -> Decision {
        let reason = match &error {
            PoolError::OverShare | PoolError::Full => Reason::OverShare,
            PoolError::Killed { .. } | PoolError::Late => Reason::Deadline,
            PoolError::Died { .. }
            | PoolError::Panicked(_)
            | PoolError::Unavailable(_)
            | PoolError::Closed => Reason::Failed,
        };
        let set = self.set.clone();
        let running = error
            .rule()
            .filter(|&i| i >= self.next && i < set.rules.len());
        match &error {
            PoolError::OverShare | PoolError::Full => {
                tracing::debug!(ruleset = %set.name, "answering the default: {error}");
            }
            PoolError::Late => {}
            _ => {
                let rule = running.map_or("(unknown)", |i| set.rules[i].name.as_str());
                tracing::warn!(ruleset = %set.name, rule = %crate::text::escape(rule), "answering the default: {error}");
            }
        }
        if error.stopped_a_worker() {
            let rule = running.map_or("(unknown)", |i| set.rules[i].name.as_str());
            let cause = match &error {
                PoolError::Killed { .. } => "killed at the call's deadline".to_string(),
                other => other.to_string(),
            };
            if let Some(q) = set
                .quarantine
                .record(rule, &cause, &pool.settings().quarantine)
            {
                tracing::error!(
                    ruleset = %set.name,
                    rule = %crate::text::escape(&q.rule),
                    "rule set quarantined: its rules made the operating system stop {} worker process(es) within {}; the last time: {}. Its calls answer `{}` at once until the file changes or an operator releases it (POST /api/v1/rulesets/{}/release)",
                    q.kills,
                    humantime::format_duration(pool.settings().quarantine.window),
                    q.cause,
                    set.default_route,
                    set.name,
                );
            }
        }
        if let Some(index) = running {
            while self.next < index {
                self.record(&set.rules[self.next], RuleOutcome::NotReached, 0);
            }
            let message = match &error {
                PoolError::Killed { .. } => {
                    "still running at the call's deadline: its worker process was killed"
                        .to_string()
                }
                other => other.to_string(),
            };
            self.record(
                &set.rules[index],
                RuleOutcome::Error {
                    message,
                    position: set.rules[index].position,
                },
                0,
            );
        }
        self.answer = None;
        let mut decision = self.finish(source);
        decision.reason = reason;
        decision.panicked = matches!(error, PoolError::Panicked(_));
        decision
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
            let plain = when.plain().and_then(|plain| {
                plain.decide(&Seen {
                    call: &self.call,
                    caller: &self.caller,
                    lookups: &self.set.lookups,
                    facts: &self.facts,
                    frame: &self.frame,
                })
            });
            match plain {
                Some(true) => {}
                Some(false) => return Some(RuleOutcome::NoMatch),
                None => match scripts.run(when, self.scope(when), now, stop_at, inline_until) {
                    Run::OverInline => return None,
                    Run::Failed(e) => return Some(failure(e, unavailable)),
                    Run::Value(value) => match value.as_bool() {
                        Ok(true) => {}
                        Ok(false) => return Some(RuleOutcome::NoMatch),
                        Err(type_name) => {
                            return Some(RuleOutcome::Error {
                                message: format!(
                                    "`when` must give true or false, gave {type_name}"
                                ),
                                position: when.file_position(rhai::Position::new(1, 1)),
                            });
                        }
                    },
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
        let value = match scripts.run(script, self.scope(script), now, stop_at, inline_until) {
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
        if !self.set.route_declared(&text) {
            // No branch for it in the Voorwaarde-app: the caller would go down its "else".
            self.reason = Reason::UndeclaredRoute;
            return Some(invalid(format!(
                "`script` gave {text:?}, which is not in `routes:`; the default answers instead (add it to `routes:` if the Voorwaarde-app has a branch for it)"
            )));
        }
        self.answer = Some((text.to_string(), self.next));
        Some(RuleOutcome::Matched)
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
        for (rule, trace) in set.rules.iter().zip(&self.traces) {
            if let RuleOutcome::Error { message, position } = &trace.outcome {
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
        }
        let matched = self
            .answer
            .and_then(|(route, index)| Some((route, set.rules.get(index)?.name.clone())));
        let (route, rule) = match matched {
            Some((route, name)) => (route, Some(name)),
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
            panicked: false,
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
    given_trace(name, result)
}

fn given_trace(name: &str, result: LookupResult) -> LookupTrace {
    LookupTrace {
        name: name.to_string(),
        result,
        micros: 0,
        cached: false,
        stale: false,
        awaited: false,
    }
}

pub(crate) fn facts_value(result: &LookupResult) -> Dynamic {
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

/// `call` as rules see it: the fields the rule set reads (`read`), or every field when a rule
/// may read any. A field the call lacks is left out either way (`()` to rules).
pub(crate) fn call_map(call: &Call, read: Option<&[String]>) -> Dynamic {
    let mut map = rhai::Map::new();
    for (name, value) in call.fields() {
        if read.is_some_and(|read| !read.iter().any(|f| f == name)) {
            continue;
        }
        map.insert(name.into(), Dynamic::from(value.to_string()));
    }
    Dynamic::from_map(map)
}

pub(crate) fn caller_map(caller: &Caller) -> Dynamic {
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
