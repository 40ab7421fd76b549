//! Replay: logged calls decided again by the rule sets as they are now, with the facts their
//! lookups returned then and at their own time, to see what a rule change does to real
//! traffic. `belroute replay` does it before a change is saved; the server does it after each
//! reload ([`watch_reloads`]) and keeps the summary for the admin API.
//!
//! No plugin is asked: a lookup the new version reads that the logged call did not record
//! (the lookup is new, or no rule of the old version waited for it) is unavailable, and the
//! summary says how many calls that affected. The call log is read a page at a time, so
//! memory stays bounded whatever the window; the summary keeps counts and a few examples.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use belroute_engine::text::{escape, mask_numbers};
use belroute_engine::{
    Call, Decision, LookupResult, Lookups, Normaliser, PoolSettings, Reason, Router, RuleSet,
    RuleStore, ScriptEngine, Trace, WorkerCommand,
};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::storage::Storage;
use crate::storage::replay::{PageCursor, ReplayWindow};
use crate::storage::{CallStore, LoggedCall, StoreError};
use crate::time::{millis, now_ms, rfc3339_secs};

/// Logged calls read from the database at once.
pub const PAGE_SIZE: usize = 1000;
/// Example calls kept per from → to row.
pub const EXAMPLES: usize = 3;
/// From → to rows kept; further changes are counted in the last, `(other changes)` row.
pub const MAX_ROWS: usize = 100;

/// Decides logged calls again: its own script engine handle, caller normalisation and one
/// worker process of its own (started when first needed), so a replay never takes a live
/// call's share of the pool.
#[derive(Debug)]
pub struct Replayer {
    router: Router,
    margin: Duration,
}

/// One logged call decided again.
#[derive(Debug)]
pub struct Replayed {
    /// The decision the rule set makes now.
    pub decision: Decision,
    /// Lookups the rules now read that the logged call did not record.
    pub unrecorded: Vec<String>,
    /// How the call was decided then.
    pub then: Trace,
    /// When the call was received.
    pub at: DateTime<Utc>,
}

impl Replayer {
    /// `margin`: as `hooks.margin`, so a rule set gets the same time for its rules as live.
    pub fn new(
        scripts: Arc<ScriptEngine>,
        normaliser: Normaliser,
        margin: Duration,
        pool: &PoolSettings,
        worker: WorkerCommand,
    ) -> Self {
        Replayer {
            router: Router::with_workers(
                scripts,
                normaliser,
                Lookups::default(),
                replay_pool(pool),
                worker,
                false,
            ),
            margin,
        }
    }

    /// Decides `logged` with `set`, at the call's own time, with the facts it recorded.
    pub async fn replay(
        &self,
        set: &Arc<RuleSet>,
        logged: &LoggedCall,
    ) -> Result<Replayed, String> {
        let call = Call::from_json(logged.call_data.as_bytes())
            .map_err(|e| format!("its call data cannot be read: {e}"))?;
        let then = logged.trace()?;
        let (facts, recorded) = then.recorded_facts();
        let mut given = facts;
        for name in &set.lookups {
            if !recorded.contains(name.as_str()) {
                given.insert(
                    name.clone(),
                    LookupResult::Unavailable {
                        reason: "not recorded when the call was logged".into(),
                    },
                );
            }
        }
        let at = DateTime::from_timestamp_millis(logged.received_at)
            .ok_or_else(|| format!("its time ({} ms) is out of range", logged.received_at))?;
        // The rule set's own deadline, as a live call of it gets.
        let deadline = set.deadline(tokio::time::Instant::now(), self.margin);
        let decision = self
            .router
            .route_with_facts(set, call, &given, deadline, at)
            .await;
        let unrecorded = decision
            .lookups
            .iter()
            .filter(|l| l.awaited && !recorded.contains(l.name.as_str()))
            .map(|l| l.name.clone())
            .collect();
        Ok(Replayed {
            decision,
            unrecorded,
            then,
            at,
        })
    }
}

/// One side of a change: the route and the rule that decided it (`None`: the default).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Side {
    pub route: String,
    pub rule: Option<String>,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.rule {
            Some(rule) => write!(f, "{} (rule `{rule}`)", self.route),
            None => write!(f, "{} (the default)", self.route),
        }
    }
}

/// A call to look at.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    pub uuid: String,
    /// The caller's number with all but its last digits masked.
    pub caller: String,
    /// When the call was received, in the rule set's time zone.
    pub at: String,
}

/// Calls that go from one route (and rule) to another.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub ruleset: String,
    pub from: Side,
    pub to: Side,
    pub calls: u64,
    pub examples: Vec<Example>,
}

/// Calls whose rules now read a lookup they did not record (it counted as unavailable).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Unrecorded {
    pub calls: u64,
    /// Calls affected, by lookup.
    pub lookups: BTreeMap<String, u64>,
    /// Of `calls`, those that get another route now: whether they really would cannot be told
    /// from the log, so they are not counted in the summary's `changed`.
    pub changed: u64,
    /// Those calls from → to (the lookup unavailable), most calls first.
    pub changes: Vec<Change>,
}

/// How the log was read: in pages, never more than a page of calls held at once.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reading {
    pub page_size: usize,
    pub pages: u64,
    /// The most logged calls held in memory at once.
    pub peak_rows: usize,
}

/// What a replay found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// The window, RFC 3339 UTC.
    pub from: String,
    pub to: String,
    /// The version each rule set was replayed with.
    pub versions: BTreeMap<String, String>,
    /// The versions that answered the replayed calls, by rule set.
    pub logged_versions: BTreeMap<String, BTreeSet<String>>,
    /// Calls decided again and compared.
    pub replayed: u64,
    /// Same route.
    pub unchanged: u64,
    /// Another route.
    pub changed: u64,
    /// Same route, but decided by another rule (counted in `unchanged`).
    pub other_rule: u64,
    /// The changes, most calls first.
    pub changes: Vec<Change>,
    pub unrecorded: Unrecorded,
    /// Calls not compared, by why: the default answered for lack of time or a failure
    /// (`deadline`, `over_share`, `unreadable`, `failed`: not a decision of the rules),
    /// `no rule file` (the rule set is not there now), `unreadable record`, or `undecided`
    /// (replaying it ran out of time or failed).
    pub not_compared: BTreeMap<String, u64>,
    /// Why the replay stopped before the window's end (a reload's limits), if it did.
    pub stopped: Option<String>,
    pub reading: Reading,
    /// How long the replay took, in milliseconds.
    pub millis: u64,
}

impl Summary {
    /// One line for the log: `main 3f2a…→8c1d…: 412 calls replayed, 17 would route
    /// differently: receptie→finance 15, gesloten→receptie 2`.
    pub fn line(&self, ruleset: &str, old_version: &str) -> String {
        let new_version = self
            .versions
            .get(ruleset)
            .map(String::as_str)
            .unwrap_or("?");
        let mut line = format!(
            "{ruleset} {}→{}: {} call{} replayed, {} would route differently",
            short(old_version),
            short(new_version),
            self.replayed,
            if self.replayed == 1 { "" } else { "s" },
            self.changed
        );
        if !self.changes.is_empty() {
            let rows: Vec<String> = self
                .changes
                .iter()
                .map(|c| format!("{}→{} {}", c.from.route, c.to.route, c.calls))
                .collect();
            line.push_str(": ");
            line.push_str(&rows.join(", "));
        }
        if self.unrecorded.calls > 0 {
            line.push_str(&format!(
                "; {} call(s) read a lookup not recorded then ({}), counted as unavailable",
                self.unrecorded.calls,
                self.unrecorded
                    .lookups
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            if self.unrecorded.changed > 0 {
                let rows: Vec<String> = self
                    .unrecorded
                    .changes
                    .iter()
                    .map(|c| format!("{}→{} {}", c.from.route, c.to.route, c.calls))
                    .collect();
                line.push_str(&format!(
                    "; {} of them route differently only for that, not counted: {}",
                    self.unrecorded.changed,
                    rows.join(", ")
                ));
            }
        }
        let skipped: u64 = self.not_compared.values().sum();
        if skipped > 0 {
            line.push_str(&format!("; {skipped} not compared"));
        }
        if let Some(stopped) = &self.stopped {
            line.push_str(&format!("; {stopped}"));
        }
        line
    }
}

/// The first 8 characters of a version hash, with `…`.
pub fn short(version: &str) -> String {
    match version.char_indices().nth(8) {
        Some((i, _)) => format!("{}…", &version[..i]),
        None => version.to_string(),
    }
}

/// Limits of one replay.
#[derive(Debug, Clone)]
pub struct Limits {
    pub page_size: usize,
    /// Stop after this many calls.
    pub max_calls: Option<u64>,
    /// Stop after this long.
    pub max_time: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            page_size: PAGE_SIZE,
            max_calls: None,
            max_time: None,
        }
    }
}

/// Counts as calls are replayed; bounded: counts, at most [`MAX_ROWS`] rows of [`EXAMPLES`]
/// in each group.
#[derive(Debug, Default)]
struct Tally {
    summary: Summary,
    /// Real changes.
    rows: Rows,
    /// Changes that depend on a lookup the log did not record.
    unrecorded_rows: Rows,
}

/// From → to rows of one group, with their examples.
#[derive(Debug, Default)]
struct Rows(BTreeMap<(String, Side, Side), Change>);

impl Rows {
    fn add(&mut self, set: &RuleSet, logged: &LoggedCall, from: &Side, replayed: &Replayed) {
        let from = from.clone();
        let to = Side {
            route: replayed.decision.route.clone(),
            rule: replayed.decision.rule.clone(),
        };
        let mut key = (logged.ruleset.clone(), from, to);
        if !self.0.contains_key(&key) && self.0.len() >= MAX_ROWS {
            let other = Side {
                route: "(other changes)".into(),
                rule: None,
            };
            key = (logged.ruleset.clone(), other.clone(), other);
        }
        let row = self.0.entry(key.clone()).or_insert_with(|| Change {
            ruleset: key.0.clone(),
            from: key.1.clone(),
            to: key.2.clone(),
            calls: 0,
            examples: Vec::new(),
        });
        row.calls += 1;
        if row.examples.len() < EXAMPLES {
            let local = replayed.at.with_timezone(&set.time_zone);
            row.examples.push(Example {
                uuid: logged.uuid.clone(),
                caller: masked_caller(&logged.caller_raw),
                at: local.format("%a %Y-%m-%d %H:%M:%S %Z").to_string(),
            });
        }
    }

    /// Most calls first.
    fn sorted(self) -> Vec<Change> {
        let mut changes: Vec<Change> = self.0.into_values().collect();
        changes.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.from.cmp(&b.from)));
        changes
    }
}

impl Tally {
    fn not_compared(&mut self, why: &str) {
        *self
            .summary
            .not_compared
            .entry(why.to_string())
            .or_default() += 1;
    }

    /// Counts one call: `from` is how it was decided before (as logged, or by the version
    /// compared against), `replayed` how `set` decides it now.
    fn add(&mut self, set: &RuleSet, logged: &LoggedCall, from: &Side, replayed: &Replayed) {
        let summary = &mut self.summary;
        let decision = &replayed.decision;
        if !matches!(decision.reason, Reason::Matched | Reason::NoMatch) {
            *summary.not_compared.entry("undecided".into()).or_default() += 1;
            return;
        }
        summary.replayed += 1;
        summary
            .logged_versions
            .entry(logged.ruleset.clone())
            .or_default()
            .insert(logged.version.clone());
        if !replayed.unrecorded.is_empty() {
            summary.unrecorded.calls += 1;
            for name in &replayed.unrecorded {
                *summary.unrecorded.lookups.entry(name.clone()).or_default() += 1;
            }
        }
        if decision.route == from.route {
            summary.unchanged += 1;
            if decision.rule != from.rule {
                summary.other_rule += 1;
            }
            return;
        }
        // Decided with a lookup the log did not have: an artefact of the log as much as a
        // change of the rules, so a group of its own, not mixed with real changes.
        if !replayed.unrecorded.is_empty() {
            summary.unrecorded.changed += 1;
            self.unrecorded_rows.add(set, logged, from, replayed);
            return;
        }
        summary.changed += 1;
        self.rows.add(set, logged, from, replayed);
    }

    fn finish(mut self) -> Summary {
        self.summary.changes = self.rows.sorted();
        self.summary.unrecorded.changes = self.unrecorded_rows.sorted();
        self.summary
    }
}

/// A caller's number for a report: masked, or what stands for none.
pub fn masked_caller(raw: &str) -> String {
    if raw.trim().is_empty() {
        "(no number)".into()
    } else {
        escape(&mask_numbers(raw)).to_string()
    }
}

/// What a replayed call's new decision is compared with.
#[derive(Debug, Clone, Copy)]
pub enum Against<'a> {
    /// The decision logged with the call, by whichever version answered it then: what
    /// `belroute replay` shows ("what would the rules as they are now have done?").
    Logged,
    /// The decision these versions make of the same call with the same facts: what one change
    /// does, and nothing that older versions did (a reload's replay, a draft's compare).
    Versions(&'a BTreeMap<String, Arc<RuleSet>>),
}

/// Replays every logged call in `window` with the rule set of its name in `sets`, reading the
/// log a page at a time, and compares each new decision with `against`.
pub async fn replay_window(
    replayer: &Replayer,
    storage: &dyn CallStore,
    window: &ReplayWindow,
    sets: &BTreeMap<String, Arc<RuleSet>>,
    against: Against<'_>,
    limits: &Limits,
) -> Result<Summary, StoreError> {
    let started = Instant::now();
    let page_size = limits.page_size.max(1);
    let mut tally = Tally::default();
    tally.summary.from = rfc3339_secs(window.from_ms);
    tally.summary.to = rfc3339_secs(window.to_ms);
    tally.summary.reading.page_size = page_size;
    for (name, set) in sets {
        if window.rulesets.is_empty() || window.rulesets.contains(name) {
            tally
                .summary
                .versions
                .insert(name.clone(), set.version.clone());
        }
    }
    let mut cursor = None;
    let mut seen: u64 = 0;
    'pages: loop {
        let page = storage
            .replay_page(window, cursor, i64::try_from(page_size).unwrap_or(i64::MAX))
            .await?;
        if page.is_empty() {
            break;
        }
        tally.summary.reading.pages += 1;
        tally.summary.reading.peak_rows = tally.summary.reading.peak_rows.max(page.len());
        let full = page.len() >= page_size;
        for logged in &page {
            cursor = Some(PageCursor {
                received_at: logged.received_at,
                id: logged.id,
            });
            if let Some(max) = limits.max_calls
                && seen >= max
            {
                tally.summary.stopped = Some(format!("stopped after {max} calls"));
                break 'pages;
            }
            if let Some(max) = limits.max_time
                && started.elapsed() >= max
            {
                tally.summary.stopped = Some(format!(
                    "stopped after {} ({seen} calls)",
                    humantime::format_duration(max)
                ));
                break 'pages;
            }
            seen += 1;
            if !matches!(logged.reason.as_str(), "matched" | "no_match") {
                tally.not_compared(&logged.reason);
                continue;
            }
            let Some(set) = sets.get(&logged.ruleset) else {
                tally.not_compared("no rule file");
                continue;
            };
            let before = match against {
                Against::Logged => None,
                Against::Versions(baseline) => match baseline.get(&logged.ruleset) {
                    Some(old) => Some(old),
                    None => {
                        tally.not_compared("no rule file");
                        continue;
                    }
                },
            };
            let mut replayed = match replayer.replay(set, logged).await {
                Ok(replayed) => replayed,
                Err(_) => {
                    tally.not_compared("unreadable record");
                    continue;
                }
            };
            let from = match before {
                None => Side {
                    route: logged.route.clone(),
                    rule: logged.rule.clone(),
                },
                Some(old) => match replayer.replay(old, logged).await {
                    Ok(then)
                        if matches!(then.decision.reason, Reason::Matched | Reason::NoMatch) =>
                    {
                        for name in then.unrecorded {
                            if !replayed.unrecorded.contains(&name) {
                                replayed.unrecorded.push(name);
                            }
                        }
                        Side {
                            route: then.decision.route,
                            rule: then.decision.rule,
                        }
                    }
                    Ok(_) => {
                        tally.not_compared("undecided");
                        continue;
                    }
                    Err(_) => {
                        tally.not_compared("unreadable record");
                        continue;
                    }
                },
            };
            tally.add(set, logged, &from, &replayed);
        }
        if !full {
            break;
        }
        // Off the answer's path, but on a shared runtime: let other tasks run between pages.
        tokio::task::yield_now().await;
    }
    let mut summary = tally.finish();
    summary.millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(summary)
}

/// The last replay after a reload, by rule set, for the admin API.
#[derive(Debug, Default)]
pub struct LastReplays {
    by_ruleset: Mutex<BTreeMap<String, Arc<ReloadReplay>>>,
}

/// A replay after a reload.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReplay {
    /// The version that served before the reload.
    pub old_version: String,
    /// The version that went live.
    pub new_version: String,
    /// When the replay finished, RFC 3339 UTC.
    pub finished_at: String,
    /// The summary line, as logged.
    pub line: String,
    #[serde(flatten)]
    pub summary: Summary,
}

impl LastReplays {
    pub fn get(&self, ruleset: &str) -> Option<Arc<ReloadReplay>> {
        self.by_ruleset
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(ruleset)
            .cloned()
    }

    fn set(&self, ruleset: &str, replay: ReloadReplay) {
        self.by_ruleset
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(ruleset.to_string(), Arc::new(replay));
    }
}

pub use crate::config::ReloadSettings;

/// How often the catalog is looked at for new versions.
const WATCH_EVERY: Duration = Duration::from_millis(200);

/// After each reload that changes a rule set's version, replays the last `settings.window` of
/// its calls (those not answered by the new version) with the new version, logs the summary
/// and keeps it in `last`. Runs on its own task, watching the store's catalog: the reload
/// itself never waits for it, and the store knows nothing of it.
pub fn watch_reloads(
    store: Arc<RuleStore>,
    storage: Storage,
    replayer: Arc<Replayer>,
    settings: ReloadSettings,
    last: Arc<LastReplays>,
) {
    if settings.window.is_zero() {
        return;
    }
    tokio::spawn(async move {
        let catalog = store.catalog();
        let mut generation = catalog.generation;
        let mut seen: BTreeMap<String, Arc<RuleSet>> = catalog.rulesets.clone();
        drop(catalog);
        let mut tick = tokio::time::interval(WATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let catalog = store.catalog();
            if catalog.generation == generation {
                continue;
            }
            generation = catalog.generation;
            for (name, set) in &catalog.rulesets {
                let Some(old) = seen.get(name) else { continue };
                if old.version == set.version {
                    continue;
                }
                replay_reload(&replayer, &storage, &settings, &last, set, old).await;
            }
            seen = catalog.rulesets.clone();
        }
    });
}

async fn replay_reload(
    replayer: &Replayer,
    storage: &Storage,
    settings: &ReloadSettings,
    last: &LastReplays,
    set: &Arc<RuleSet>,
    old: &Arc<RuleSet>,
) {
    let old_version = old.version.as_str();
    let now = now_ms();
    let back = millis(settings.window);
    let window = ReplayWindow {
        rulesets: vec![set.name.to_string()],
        from_ms: now.saturating_sub(back),
        to_ms: now,
        except_version: Some(set.version.clone()),
    };
    let sets = BTreeMap::from([(set.name.to_string(), set.clone())]);
    let before = BTreeMap::from([(set.name.to_string(), old.clone())]);
    let limits = Limits {
        page_size: PAGE_SIZE,
        max_calls: Some(settings.max_calls),
        max_time: Some(settings.max_time),
    };
    // The previous version against the new one, on the same calls and facts: a comment-only
    // save changes nothing, whatever older versions answered.
    match replay_window(
        replayer,
        storage,
        &window,
        &sets,
        Against::Versions(&before),
        &limits,
    )
    .await
    {
        Ok(summary) => {
            let line = summary.line(&set.name, old_version);
            let (replayed, changed) = (summary.replayed, summary.changed);
            // Kept before it is logged: whoever reads the line finds the summary on the API.
            last.set(
                &set.name,
                ReloadReplay {
                    old_version: old_version.to_string(),
                    new_version: set.version.clone(),
                    finished_at: rfc3339_secs(now_ms()),
                    line: line.clone(),
                    summary,
                },
            );
            tracing::info!(
                ruleset = %set.name,
                replayed,
                changed,
                "replayed the last {} of calls with the new version: {}",
                humantime::format_duration(settings.window),
                escape(&line)
            );
        }
        Err(e) => tracing::warn!(
            ruleset = %set.name,
            "cannot replay the last calls with the new version: call log database: {e}; run `belroute replay {}` when it answers",
            set.name
        ),
    }
}

/// The pool a replay uses: one worker of its own, so a replay never takes a live call's place.
pub fn replay_pool(settings: &PoolSettings) -> PoolSettings {
    PoolSettings {
        workers: 1,
        share: 1,
        ..settings.clone()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! Replay on a paused clock over a call log in memory: what changes, what cannot be
    //! compared, what the log did not record, read a page at a time.

    use belroute_engine::{
        Caller, Decision, LookupTrace, Normaliser, PoolSettings, RuleOutcome, RuleTrace,
        ScriptEngine, StoreContext, WorkerCommand,
    };

    use super::*;
    use crate::storage::CallRow;
    use crate::storage::memory::MemoryCallStore;

    const NOW: &str = "default: receptie\nlookups: [crm]\nrules:\n  - name: Invoices\n    when: crm.open > 0\n    route: finance\n";

    fn rule_set(dir: &std::path::Path) -> Arc<RuleSet> {
        std::fs::write(dir.join("main.yaml"), NOW).unwrap();
        let context = StoreContext {
            scripts: Arc::new(ScriptEngine::new(&belroute_engine::Limits::default())),
            lookups: belroute_engine::LookupFacts::from([(
                "crm".to_string(),
                Some(std::collections::BTreeMap::from([(
                    "open".to_string(),
                    belroute_engine::vocabulary::FactType::Int,
                )])),
            )]),
            calendars: Default::default(),
            time_zone: belroute_engine::DEFAULT_TIME_ZONE,
        };
        let store = RuleStore::open(dir, context).unwrap();
        store.catalog().get("main").cloned().unwrap()
    }

    /// A call logged by an earlier version: answered `receptie` by the default, with `crm`
    /// recorded as `crm` (or not recorded at all).
    fn logged(i: i64, reason: Reason, crm: Option<LookupResult>) -> CallRow {
        let caller: Arc<Caller> = Normaliser::default().normalise("0152026057");
        let lookups = crm
            .map(|result| LookupTrace {
                name: "crm".into(),
                result,
                micros: 800,
                cached: false,
                stale: false,
                awaited: true,
            })
            .into_iter()
            .collect();
        let decision = Decision {
            route: "receptie".into(),
            rule: None,
            reason,
            ruleset: "main".into(),
            version: "old".into(),
            caller,
            rules: vec![RuleTrace {
                name: "Old rule".into(),
                outcome: RuleOutcome::NoMatch,
                micros: 5,
            }],
            lookups,
            micros: 900,
            panicked: false,
        };
        let record = crate::storage::CallRecord {
            received_at: std::time::UNIX_EPOCH + Duration::from_secs(1_000 + i as u64),
            call: Arc::new(Call::from_pairs([
                ("uuid", format!("call-{i}")),
                ("caller_number", "0152026057".into()),
            ])),
            decision,
        };
        CallRow::from(&record)
    }

    fn found(open: i64) -> Option<LookupResult> {
        Some(LookupResult::Found {
            facts: Arc::new(
                serde_json::json!({ "open": open })
                    .as_object()
                    .cloned()
                    .unwrap(),
            ),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn logged_calls_are_decided_again_and_compared_a_page_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let set = rule_set(dir.path());
        let store = MemoryCallStore::default();
        store.insert([
            logged(1, Reason::NoMatch, found(2)),
            logged(2, Reason::NoMatch, found(0)),
            logged(3, Reason::NoMatch, Some(LookupResult::NotFound)),
            logged(4, Reason::Deadline, found(5)),
            logged(5, Reason::NoMatch, None),
            logged(6, Reason::NoMatch, found(1)),
        ]);
        let replayer = Replayer::new(
            set_scripts(),
            Normaliser::default(),
            Duration::from_millis(250),
            &PoolSettings::default(),
            WorkerCommand::new("/nonexistent/belroute-worker", &[]),
        );
        let window = ReplayWindow {
            rulesets: Vec::new(),
            from_ms: 0,
            to_ms: i64::MAX,
            except_version: None,
        };
        let sets = BTreeMap::from([("main".to_string(), set.clone())]);
        let limits = Limits {
            page_size: 2,
            ..Limits::default()
        };
        let summary = replay_window(&replayer, &store, &window, &sets, Against::Logged, &limits)
            .await
            .unwrap();
        assert_eq!(summary.replayed, 5);
        assert_eq!(summary.changed, 2, "open invoices now go to finance");
        assert_eq!(summary.unchanged, 3);
        assert_eq!(summary.changes.len(), 1);
        let change = &summary.changes[0];
        assert_eq!(
            (change.from.route.as_str(), change.to.route.as_str()),
            ("receptie", "finance")
        );
        assert_eq!(change.to.rule.as_deref(), Some("Invoices"));
        let examples: Vec<&str> = change.examples.iter().map(|e| e.uuid.as_str()).collect();
        assert_eq!(examples, ["call-1", "call-6"]);
        assert!(
            change.examples[0].caller.ends_with("057") && change.examples[0].caller.contains('•')
        );
        assert_eq!(
            summary.not_compared.get("deadline"),
            Some(&1),
            "the default for lack of time"
        );
        assert_eq!(summary.unrecorded.calls, 1, "call-5 did not record crm");
        assert_eq!(summary.unrecorded.lookups.get("crm"), Some(&1));
        assert_eq!((summary.reading.pages, summary.reading.peak_rows), (3, 2));
        let line = summary.line("main", "old");
        assert!(line.starts_with("main old→"), "{line}");
        assert!(
            line.contains("5 calls replayed, 2 would route differently: receptie→finance 2"),
            "{line}"
        );
        // Limits stop it early and say so.
        let limits = Limits {
            page_size: 2,
            max_calls: Some(3),
            max_time: None,
        };
        let summary = replay_window(&replayer, &store, &window, &sets, Against::Logged, &limits)
            .await
            .unwrap();
        assert_eq!(summary.stopped.as_deref(), Some("stopped after 3 calls"));
    }

    fn set_scripts() -> Arc<ScriptEngine> {
        Arc::new(ScriptEngine::new(&belroute_engine::Limits::default()))
    }
}
