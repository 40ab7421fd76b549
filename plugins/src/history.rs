//! `kind: history` — belroute's own call log: has this caller called before, when, where did
//! the call go, and who answered? So "second call today → the same colleague" is one rule.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use belroute_engine::settings::{Range, Section};
use belroute_engine::vocabulary::{DeclaredFacts, FactType};
use belroute_engine::{Facts, Lookup, LookupError, LookupRequest};
use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::Value;

/// How many recent calls are read to find the last agent.
const RECENT: i64 = 50;

/// One of the caller's earlier calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastCall {
    /// Milliseconds since the Unix epoch.
    pub received_at_ms: i64,
    pub route: String,
    pub rule: Option<String>,
    /// The agent reported for the call, if any.
    pub agent: Option<String>,
}

/// What `history` asks of the call log for one call: of the caller's `limit` most recent calls
/// since `window_ms`, the last one and the last one with an agent (reported, or named by a route
/// that starts with `agent_route_prefix` and goes on), and how many calls since `window_ms` and
/// since `today_ms` (not before `window_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery<'a> {
    pub caller_e164: &'a str,
    /// Milliseconds since the Unix epoch.
    pub window_ms: i64,
    pub today_ms: i64,
    pub limit: i64,
    pub agent_route_prefix: &'a str,
}

/// Where past calls come from: belroute's storage implements this; the plugin does not know
/// the schema.
#[async_trait]
pub trait CallHistory: Send + Sync + 'static {
    /// The caller's calls since `since_ms`, newest first, at most `limit`.
    async fn recent(
        &self,
        caller_e164: &str,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<PastCall>, String>;
    /// How many calls the caller made since `window_ms`, and how many of those since
    /// `today_ms` (later than `window_ms`), in one query.
    async fn counts(
        &self,
        caller_e164: &str,
        window_ms: i64,
        today_ms: i64,
    ) -> Result<(i64, i64), String>;
    /// The [`HistoryQuery`] in one trip to the store: the last call and the last with an
    /// agent, newest first and at most those two, with the [`counts`](CallHistory::counts);
    /// or, from a store that cannot, `recent`'s calls and `None`. belroute's storage answers
    /// with one statement that reads only its index and hands back at most two rows (or from
    /// memory), so a caller's 1,000th call costs what the first does.
    async fn last_calls_and_counts(
        &self,
        query: &HistoryQuery<'_>,
    ) -> Result<(Vec<PastCall>, Option<(i64, i64)>), String> {
        Ok((
            self.recent(query.caller_e164, query.window_ms, query.limit)
                .await?,
            None,
        ))
    }
}

/// Settings of a `history` plugin.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// How far back calls count (`calls_window`, `last_*`).
    pub window: Duration,
    /// A route that starts with this names its agent: `agent_1003` → `1003`.
    pub agent_route_prefix: String,
}

impl HistoryConfig {
    pub const KEYS: [&'static str; 2] = ["window", "agent_route_prefix"];

    /// What `history` answers (`last_*` are `()` for a caller without earlier calls).
    pub fn facts() -> DeclaredFacts {
        use FactType::{Int, Text};
        [
            ("calls_today", Int),
            ("calls_window", Int),
            ("last_call_at", Text),
            ("last_route", Text),
            ("last_rule", Text),
            ("last_agent", Text),
            ("last_agent_at", Text),
        ]
        .into_iter()
        .map(|(name, kind)| (name.to_string(), kind))
        .collect()
    }
    /// Up to ten years back: the call log's own `retention` limits it in practice.
    pub const WINDOW: Range<Duration> = Range::new(
        Duration::from_secs(3_600),
        Duration::from_secs(3_650 * 86_400),
    );

    /// Reads `kind: history` settings, reporting each problem at its key.
    pub fn read(s: &mut Section<'_, '_, '_>) -> Option<Self> {
        Some(HistoryConfig {
            window: s.duration("window", Duration::from_secs(30 * 24 * 3600), Self::WINDOW),
            agent_route_prefix: s
                .text("agent_route_prefix")
                .unwrap_or_else(|| "agent_".into()),
        })
    }

    pub fn build(
        &self,
        source: Option<Arc<dyn CallHistory>>,
        time_zone: Tz,
    ) -> Result<HistoryLookup, String> {
        let source =
            source.ok_or("the history plugin needs belroute's database (serve with --database)")?;
        Ok(HistoryLookup {
            config: self.clone(),
            source,
            time_zone,
        })
    }
}

/// A built `history` plugin.
pub struct HistoryLookup {
    config: HistoryConfig,
    source: Arc<dyn CallHistory>,
    /// "Today" is a day in this zone.
    time_zone: Tz,
}

impl std::fmt::Debug for HistoryLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryLookup")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HistoryLookup {
    /// The agent a past call went to: the one reported, else the one its route names.
    fn agent_of(&self, call: &PastCall) -> Option<String> {
        call.agent.clone().or_else(|| {
            call.route
                .strip_prefix(&self.config.agent_route_prefix)
                .filter(|agent| !agent.is_empty() && !self.config.agent_route_prefix.is_empty())
                .map(str::to_string)
        })
    }
}

/// The facts of a caller without (countable) history: zeros and `()`, so rules can compare.
fn no_history() -> Facts {
    let mut facts = Facts::new();
    facts.insert("calls_today".into(), Value::from(0));
    facts.insert("calls_window".into(), Value::from(0));
    for key in [
        "last_call_at",
        "last_route",
        "last_rule",
        "last_agent",
        "last_agent_at",
    ] {
        facts.insert(key.into(), Value::Null);
    }
    facts
}

#[async_trait]
impl Lookup for HistoryLookup {
    fn facts(&self) -> Option<DeclaredFacts> {
        Some(HistoryConfig::facts())
    }

    async fn lookup(&self, request: &LookupRequest) -> Result<Option<Facts>, LookupError> {
        let caller = &request.caller;
        // Withheld and invalid numbers have no E.164 form: they never match one another.
        if caller.e164.is_empty() {
            return Ok(Some(no_history()));
        }
        let now = Utc::now();
        let window_start = (now
            - chrono::Duration::from_std(self.config.window).unwrap_or_default())
        .timestamp_millis();
        let local = now.with_timezone(&self.time_zone);
        let midnight = local
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .and_then(|t| self.time_zone.from_local_datetime(&t).earliest());
        let today_start = midnight
            .map(|t| t.timestamp_millis())
            .unwrap_or(window_start)
            .max(window_start);

        let unavailable = LookupError::Unavailable;
        let (recent, counted) = self
            .source
            .last_calls_and_counts(&HistoryQuery {
                caller_e164: &caller.e164,
                window_ms: window_start,
                today_ms: today_start,
                limit: RECENT,
                agent_route_prefix: &self.config.agent_route_prefix,
            })
            .await
            .map_err(unavailable)?;
        let mut facts = no_history();
        if recent.is_empty() {
            return Ok(Some(facts));
        }
        // Counted by the store; or fewer than RECENT calls in the window: they are all here.
        let (calls_window, calls_today) = if let Some(counted) = counted {
            counted
        } else if recent.len() < RECENT as usize {
            let today = recent
                .iter()
                .filter(|c| c.received_at_ms >= today_start)
                .count();
            (recent.len() as i64, today as i64)
        } else {
            self.source
                .counts(&caller.e164, window_start, today_start)
                .await
                .map_err(unavailable)?
        };
        let time = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| Value::from(t.with_timezone(&self.time_zone).to_rfc3339()))
                .unwrap_or(Value::Null)
        };
        let last = &recent[0];
        facts.insert("calls_today".into(), Value::from(calls_today));
        facts.insert("calls_window".into(), Value::from(calls_window));
        facts.insert("last_call_at".into(), time(last.received_at_ms));
        facts.insert("last_route".into(), Value::from(last.route.clone()));
        facts.insert(
            "last_rule".into(),
            last.rule.clone().map(Value::from).unwrap_or(Value::Null),
        );
        if let Some((call, agent)) = recent.iter().find_map(|c| self.agent_of(c).map(|a| (c, a))) {
            facts.insert("last_agent".into(), Value::from(agent));
            facts.insert("last_agent_at".into(), time(call.received_at_ms));
        }
        Ok(Some(facts))
    }

    fn cache_key(&self, _request: &LookupRequest) -> Option<String> {
        // Every call changes the history: never cached, but concurrent lookups are shared.
        None
    }
}
