//! The configured lookup plugins, with what the engine does around every plugin call:
//! a time limit, a cache (with negative entries, refresh-ahead and stale-if-error), one
//! request in flight per key, and a circuit breaker.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use serde::Serialize;
use tokio::time::Instant;

use crate::clock::micros;
use crate::plugin::{Facts, Lookup, LookupError, LookupRequest};

/// What happened to one lookup for one call (read back from the call log too: a field an
/// older record lacks takes its default; `awaited` then, as every lookup was waited for).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct LookupTrace {
    pub name: String,
    #[serde(flatten)]
    pub result: LookupResult,
    /// From the call's start until the facts were ready (or given up on), in microseconds.
    #[serde(default)]
    pub micros: u64,
    #[serde(default)]
    pub cached: bool,
    /// The plugin failed and an expired cached answer stood in (stale-if-error).
    #[serde(default)]
    pub stale: bool,
    /// Did a rule wait for it? Lookups no rule reached are still started, so they warm the cache.
    #[serde(default = "awaited_before")]
    pub awaited: bool,
}

/// Records written before `awaited` was traced: every lookup counted as waited for.
fn awaited_before() -> bool {
    true
}

/// What a rule sees of one lookup: facts, "not found" (an empty map) or unavailable (`()`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum LookupResult {
    Found { facts: Arc<Facts> },
    NotFound,
    Unavailable { reason: String },
}

/// A plugin's answer as cached and shared between waiters.
type Answer = Result<Option<Arc<Facts>>, LookupError>;

impl LookupResult {
    fn from_answer(answer: &Answer) -> Self {
        match answer {
            Ok(Some(facts)) => LookupResult::Found {
                facts: facts.clone(),
            },
            Ok(None) => LookupResult::NotFound,
            Err(e) => LookupResult::Unavailable {
                reason: e.to_string(),
            },
        }
    }
}

/// Settings every plugin has, whatever its kind: `timeout`, `cache`, `breaker`.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupSettings {
    /// Longest one plugin request may take, whatever the call's deadline. The call itself
    /// never waits past its own deadline; this bounds the request's life after that.
    pub timeout: Duration,
    pub cache: CacheSettings,
    pub breaker: BreakerSettings,
    /// Ask the plugin even for callers without a usable number (withheld, invalid, SIP),
    /// when it is keyed on the caller's number. Off: such callers are "not found".
    pub ask_without_number: bool,
}

impl Default for LookupSettings {
    fn default() -> Self {
        LookupSettings {
            timeout: Duration::from_secs(1),
            cache: CacheSettings::default(),
            breaker: BreakerSettings::default(),
            ask_without_number: false,
        }
    }
}

/// `cache:` — off (ttl 0) unless configured.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    /// How long found facts are served from the cache.
    pub ttl: Duration,
    /// How long "not found" is remembered; the `ttl` when not set.
    pub negative_ttl: Option<Duration>,
    /// After expiry, how long an old answer may still be used when the plugin fails.
    pub stale_if_error: Duration,
    /// Fraction of the ttl after which a cache hit also refreshes the entry in the background.
    pub refresh_ahead: f64,
    /// Most callers remembered per plugin.
    pub max_entries: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            ttl: Duration::ZERO,
            negative_ttl: None,
            stale_if_error: Duration::ZERO,
            refresh_ahead: 0.8,
            max_entries: 10_000,
        }
    }
}

impl CacheSettings {
    fn enabled(&self) -> bool {
        !self.ttl.is_zero() || self.negative_ttl.is_some_and(|t| !t.is_zero())
    }

    fn fresh_for(&self, found: bool) -> Duration {
        if found {
            self.ttl
        } else {
            self.negative_ttl.unwrap_or(self.ttl)
        }
    }
}

/// `breaker:` — after `failures` failures in a row the plugin is skipped for `cool_down`,
/// then one call probes it.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSettings {
    /// Consecutive failures (errors and timeouts) that open the breaker; 0 never opens it.
    pub failures: u32,
    pub cool_down: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            failures: 5,
            cool_down: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BreakerState {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// The cool-down is over; one probe is in flight and the rest still skip.
    Probing,
}

/// A plugin's circuit breaker.
#[derive(Debug)]
struct Breaker {
    settings: BreakerSettings,
    state: Mutex<BreakerState>,
}

impl Breaker {
    fn lock(&self) -> MutexGuard<'_, BreakerState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// May a request go out now? Returns how long it stays closed to callers when not.
    fn admit(&self, plugin: &str) -> Result<(), Duration> {
        let mut state = self.lock();
        match *state {
            BreakerState::Closed { .. } => Ok(()),
            BreakerState::Open { until } => {
                let now = Instant::now();
                if now >= until {
                    tracing::info!(lookup = %plugin, "circuit breaker half-open: probing the plugin");
                    *state = BreakerState::Probing;
                    Ok(())
                } else {
                    Err(until - now)
                }
            }
            BreakerState::Probing => Err(Duration::ZERO),
        }
    }

    fn record(&self, plugin: &str, ok: bool) {
        let mut state = self.lock();
        let next = match (*state, ok) {
            (_, true) => BreakerState::Closed { failures: 0 },
            (BreakerState::Closed { failures }, false)
                if self.settings.failures == 0 || failures + 1 < self.settings.failures =>
            {
                BreakerState::Closed {
                    failures: failures + 1,
                }
            }
            (BreakerState::Open { until }, false) => BreakerState::Open { until },
            (_, false) => BreakerState::Open {
                until: crate::clock::saturating_add(Instant::now(), self.settings.cool_down),
            },
        };
        match (*state, next) {
            (BreakerState::Closed { .. }, BreakerState::Open { .. }) => tracing::warn!(
                lookup = %plugin,
                "circuit breaker open after {} failures in a row: skipping the plugin for {}",
                self.settings.failures,
                humantime::format_duration(self.settings.cool_down)
            ),
            (BreakerState::Probing, BreakerState::Open { .. }) => {
                tracing::warn!(lookup = %plugin, "circuit breaker probe failed: open again")
            }
            (BreakerState::Probing | BreakerState::Open { .. }, BreakerState::Closed { .. }) => {
                tracing::info!(lookup = %plugin, "circuit breaker closed: the plugin answers again")
            }
            _ => {}
        }
        *state = next;
    }

    fn status(&self) -> &'static str {
        match *self.lock() {
            BreakerState::Closed { .. } => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::Probing => "half_open",
        }
    }
}

/// A cached answer.
#[derive(Debug)]
struct Entry {
    answer: Option<Arc<Facts>>,
    stored: Instant,
    /// The caller's E.164 number (or raw number), for invalidating one caller.
    caller: String,
}

type Flight = Shared<BoxFuture<'static, Answer>>;

/// Counters for the admin API and metrics.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    failures: AtomicU64,
    cache_hits: AtomicU64,
    shared: AtomicU64,
    skipped: AtomicU64,
    no_number: AtomicU64,
    undeclared_facts: AtomicU64,
    mistyped_facts: AtomicU64,
}

/// A plugin's state as the admin API and metrics show it.
#[derive(Debug, Clone, Serialize)]
pub struct LookupStatus {
    pub name: String,
    /// closed, open or half_open.
    pub breaker: &'static str,
    /// Requests sent to the plugin.
    pub requests: u64,
    /// Of those, failed (errors and timeouts).
    pub failures: u64,
    /// Calls answered from the cache.
    pub cache_hits: u64,
    /// Calls that joined a request already in flight.
    pub shared: u64,
    /// Calls that skipped the plugin because its breaker was open.
    pub skipped: u64,
    /// Calls not asked about because the caller had no usable number.
    pub no_number: u64,
    /// Facts the plugin answered that it does not declare (dropped), and declared facts of
    /// another type than declared (shown to rules as `()`).
    pub undeclared_facts: u64,
    pub mistyped_facts: u64,
    pub cached_entries: u64,
}

/// One configured plugin instance and everything around it.
struct LookupHandle {
    name: String,
    plugin: Arc<dyn Lookup>,
    /// What the plugin declares it answers; answers are shaped to it.
    declared: Option<crate::vocabulary::DeclaredFacts>,
    /// Facts already logged as undeclared or mistyped (each is logged once).
    said: Mutex<std::collections::HashSet<String>>,
    settings: LookupSettings,
    cache: moka::sync::Cache<String, Arc<Entry>>,
    in_flight: Mutex<HashMap<String, Flight>>,
    breaker: Breaker,
    counters: Counters,
}

impl std::fmt::Debug for LookupHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookupHandle")
            .field("name", &self.name)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl LookupHandle {
    fn new(name: &str, plugin: Arc<dyn Lookup>, settings: LookupSettings) -> Self {
        let keep = settings
            .cache
            .ttl
            .max(settings.cache.negative_ttl.unwrap_or_default())
            + settings.cache.stale_if_error;
        let cache = moka::sync::Cache::builder()
            .max_capacity(settings.cache.max_entries)
            .time_to_live(keep.max(Duration::from_millis(1)))
            .support_invalidation_closures()
            .build();
        LookupHandle {
            name: name.to_string(),
            declared: plugin.facts(),
            said: Mutex::new(std::collections::HashSet::new()),
            plugin,
            breaker: Breaker {
                settings: settings.breaker.clone(),
                state: Mutex::new(BreakerState::Closed { failures: 0 }),
            },
            settings,
            cache,
            in_flight: Mutex::new(HashMap::new()),
            counters: Counters::default(),
        }
    }

    fn in_flight(&self) -> MutexGuard<'_, HashMap<String, Flight>> {
        self.in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts (or joins) the plugin request for `key`; the request runs in its own task, so it
    /// finishes and fills the cache even when every call waiting for it has answered.
    fn flight(
        self: &Arc<Self>,
        key: Option<String>,
        request: &LookupRequest,
    ) -> Result<Flight, Duration> {
        let mut in_flight = self.in_flight();
        if let Some(flight) = key.as_ref().and_then(|k| in_flight.get(k)) {
            self.counters.shared.fetch_add(1, Ordering::Relaxed);
            return Ok(flight.clone());
        }
        if let Err(closed_for) = self.breaker.admit(&self.name) {
            self.counters.skipped.fetch_add(1, Ordering::Relaxed);
            return Err(closed_for);
        }
        let handle = self.clone();
        let request = request.clone();
        let task_key = key.clone();
        let task = tokio::spawn(async move {
            handle.counters.requests.fetch_add(1, Ordering::Relaxed);
            let answer =
                match tokio::time::timeout(handle.settings.timeout, handle.plugin.lookup(&request))
                    .await
                {
                    Ok(answer) => answer.map(|facts| facts.map(|f| Arc::new(handle.conform(f)))),
                    Err(_) => Err(LookupError::Timeout),
                };
            handle.breaker.record(&handle.name, answer.is_ok());
            match &answer {
                Err(e) => {
                    handle.counters.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(lookup = %handle.name, kind = e.kind(), "lookup failed: {e}");
                }
                Ok(found) => {
                    if let (Some(key), true) = (&task_key, handle.settings.cache.enabled()) {
                        let caller = request.caller.key().to_string();
                        handle.cache.insert(
                            key.clone(),
                            Arc::new(Entry {
                                answer: found.clone(),
                                stored: Instant::now(),
                                caller,
                            }),
                        );
                    }
                }
            }
            if let Some(key) = &task_key {
                handle.in_flight().remove(key);
            }
            answer
        });
        let plugin = self.name.clone();
        let flight = async move {
            task.await.unwrap_or_else(|e| {
                Err(LookupError::Unavailable(format!(
                    "plugin {plugin} failed: {e}"
                )))
            })
        }
        .boxed()
        .shared();
        if let Some(key) = key {
            in_flight.insert(key, flight.clone());
        }
        Ok(flight)
    }

    /// Gives rules the declared shape: undeclared facts dropped, facts of another type `()`,
    /// each logged the first time and counted.
    fn conform(&self, mut facts: Facts) -> Facts {
        let Some(declared) = &self.declared else {
            return facts;
        };
        let mut odd: Vec<(String, String)> = Vec::new();
        facts.retain(|name, value| match declared.get(name) {
            None => {
                self.counters
                    .undeclared_facts
                    .fetch_add(1, Ordering::Relaxed);
                odd.push((name.clone(), "it does not declare; dropped".into()));
                false
            }
            Some(kind) if !kind.admits(value) => {
                self.counters.mistyped_facts.fetch_add(1, Ordering::Relaxed);
                let actual =
                    crate::vocabulary::FactType::of_json(value).map_or("null", |t| t.name());
                odd.push((
                    name.clone(),
                    format!("declared {kind} but answered {actual}; rules see ()"),
                ));
                *value = serde_json::Value::Null;
                true
            }
            Some(_) => true,
        });
        for name in declared.keys() {
            facts.entry(name.clone()).or_insert(serde_json::Value::Null);
        }
        if !odd.is_empty() {
            let mut said = self.said.lock().unwrap_or_else(|p| p.into_inner());
            for (fact, what) in odd {
                // Bounded: a CRM answering ever new keys cannot grow this without end.
                if said.len() < 1_000 && said.insert(fact.clone()) {
                    tracing::warn!(
                        lookup = %self.name,
                        "plugin `{}` answered fact `{}`, which {what} (logged once; counted in belroute_lookup_facts_mismatched_total); declare it under `facts:` in belroute.yaml or fix the source",
                        self.name,
                        crate::text::escape(&fact),
                    );
                }
            }
        }
        facts
    }

    /// Starts one call's lookup: from the cache when fresh, else a (shared) plugin request.
    fn start(self: &Arc<Self>, request: &LookupRequest, arrived: Instant) -> PendingLookup {
        if !request.caller.has_number()
            && self.plugin.keyed_on_caller()
            && !self.settings.ask_without_number
        {
            self.counters.no_number.fetch_add(1, Ordering::Relaxed);
            return PendingLookup {
                name: self.name.clone(),
                arrived,
                state: State::Ready(Fetched::not_asked()),
            };
        }
        let key = self.plugin.cache_key(request);
        let cached = key
            .as_ref()
            .filter(|_| self.settings.cache.enabled())
            .and_then(|k| self.cache.get(k));
        let pending = |state| PendingLookup {
            name: self.name.clone(),
            arrived,
            state,
        };
        if let Some(entry) = &cached {
            let fresh_for = self.settings.cache.fresh_for(entry.answer.is_some());
            let age = entry.stored.elapsed();
            if age < fresh_for {
                self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
                if age.as_secs_f64() >= fresh_for.as_secs_f64() * self.settings.cache.refresh_ahead
                {
                    // Refresh in the background; this call is answered from the cache now.
                    let _ = self.flight(key, request);
                }
                return pending(State::Ready(Fetched::cached(entry, false)));
            }
        }
        // Only an answer within stale-if-error of its expiry may stand in for a failed request.
        let stale = cached.filter(|entry| {
            let fresh_for = self.settings.cache.fresh_for(entry.answer.is_some());
            entry.stored.elapsed() < fresh_for + self.settings.cache.stale_if_error
        });
        match self.flight(key, request) {
            Ok(flight) => pending(State::Running { flight, stale }),
            Err(closed_for) => {
                if let Some(entry) = &stale {
                    return pending(State::Ready(Fetched::cached(entry, true)));
                }
                let reason = format!(
                    "circuit breaker open (plugin skipped for {}s more)",
                    closed_for.as_secs()
                );
                pending(State::Ready(Fetched::unavailable(reason)))
            }
        }
    }

    fn status(&self) -> LookupStatus {
        LookupStatus {
            name: self.name.clone(),
            breaker: self.breaker.status(),
            requests: self.counters.requests.load(Ordering::Relaxed),
            failures: self.counters.failures.load(Ordering::Relaxed),
            cache_hits: self.counters.cache_hits.load(Ordering::Relaxed),
            shared: self.counters.shared.load(Ordering::Relaxed),
            skipped: self.counters.skipped.load(Ordering::Relaxed),
            no_number: self.counters.no_number.load(Ordering::Relaxed),
            undeclared_facts: self.counters.undeclared_facts.load(Ordering::Relaxed),
            mistyped_facts: self.counters.mistyped_facts.load(Ordering::Relaxed),
            cached_entries: self.cache.entry_count(),
        }
    }
}

/// The result of one fetch, and whether it came from the cache.
#[derive(Debug, Clone)]
struct Fetched {
    result: LookupResult,
    cached: bool,
    stale: bool,
    finished: Instant,
}

impl Fetched {
    fn cached(entry: &Entry, stale: bool) -> Self {
        let result = match &entry.answer {
            Some(facts) => LookupResult::Found {
                facts: facts.clone(),
            },
            None => LookupResult::NotFound,
        };
        Fetched {
            result,
            cached: true,
            stale,
            finished: Instant::now(),
        }
    }

    /// The caller has no usable number: the plugin is not asked, and rules see "not found".
    fn not_asked() -> Self {
        Fetched {
            result: LookupResult::NotFound,
            cached: false,
            stale: false,
            finished: Instant::now(),
        }
    }

    fn unavailable(reason: String) -> Self {
        Fetched {
            result: LookupResult::Unavailable { reason },
            cached: false,
            stale: false,
            finished: Instant::now(),
        }
    }
}

/// All plugin instances configured in `belroute.yaml`, by name.
#[derive(Debug, Default)]
pub struct Lookups {
    handles: BTreeMap<String, Arc<LookupHandle>>,
}

impl Lookups {
    pub fn insert(&mut self, name: &str, plugin: Arc<dyn Lookup>, settings: LookupSettings) {
        self.handles.insert(
            name.to_string(),
            Arc::new(LookupHandle::new(name, plugin, settings)),
        );
    }

    pub fn names(&self) -> BTreeSet<String> {
        self.handles.keys().cloned().collect()
    }

    /// Every plugin instance and the facts it declares: what rules may read.
    pub fn declared(&self) -> crate::ruleset::LookupFacts {
        self.handles
            .iter()
            .map(|(name, handle)| (name.clone(), handle.declared.clone()))
            .collect()
    }

    /// Starts looking `request` up with plugin `name`; the answer is awaited (or not) by rules.
    pub fn start(&self, name: &str, request: &LookupRequest, arrived: Instant) -> PendingLookup {
        match self.handles.get(name) {
            Some(handle) => handle.start(request, arrived),
            None => PendingLookup {
                name: name.to_string(),
                arrived,
                state: State::Ready(Fetched::unavailable(format!("no plugin named {name}"))),
            },
        }
    }

    /// Forgets what plugin `name` (every plugin when `None`) cached for the caller whose
    /// [`Caller::key`](crate::Caller::key) is `caller`; returns whether the plugin exists.
    pub fn invalidate(&self, name: Option<&str>, caller: &str) -> bool {
        let handles: Vec<&Arc<LookupHandle>> = match name {
            Some(name) => match self.handles.get(name) {
                Some(handle) => vec![handle],
                None => return false,
            },
            None => self.handles.values().collect(),
        };
        for handle in handles {
            let caller = caller.to_string();
            if let Err(e) = handle
                .cache
                .invalidate_entries_if(move |_, entry| entry.caller == caller)
            {
                tracing::warn!(lookup = %handle.name, "cannot invalidate the cache: {e}");
            }
            tracing::info!(lookup = %handle.name, "cached facts dropped for one caller");
        }
        true
    }

    pub fn status(&self) -> Vec<LookupStatus> {
        self.handles.values().map(|h| h.status()).collect()
    }
}

/// One call's lookup: running, or done.
///
/// Dropping it does not cancel the plugin request: that ends within the plugin's `timeout`,
/// and its answer fills the cache for the caller's next call.
#[derive(Debug)]
pub struct PendingLookup {
    name: String,
    arrived: Instant,
    state: State,
}

enum State {
    Running {
        flight: Flight,
        stale: Option<Arc<Entry>>,
    },
    Ready(Fetched),
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            State::Running { .. } => f.write_str("Running"),
            State::Ready(fetched) => f.debug_tuple("Ready").field(fetched).finish(),
        }
    }
}

impl PendingLookup {
    /// Waits for the facts until `deadline`; after it they are unavailable for this call.
    pub async fn wait(&mut self, deadline: Instant) -> LookupTrace {
        if let State::Running { flight, stale } = &mut self.state {
            match tokio::time::timeout_at(deadline, flight.clone()).await {
                Ok(answer) => self.state = State::Ready(resolve(&answer, stale.as_deref())),
                Err(_) => {
                    if let Some(entry) = stale.take() {
                        self.state = State::Ready(Fetched::cached(&entry, true));
                    } else {
                        let reason = "not ready by the deadline".to_string();
                        return self.trace(&Fetched::unavailable(reason), true);
                    }
                }
            }
        }
        self.ready_trace(true)
    }

    /// The facts, if they are ready now (from the cache, or a request that has finished).
    pub fn ready(&mut self) -> Option<LookupTrace> {
        if let State::Running { flight, stale } = &mut self.state {
            let answer = flight.clone().now_or_never()?;
            self.state = State::Ready(resolve(&answer, stale.as_deref()));
        }
        Some(self.ready_trace(false))
    }

    /// The lookup's state without waiting, for lookups no rule needed.
    pub fn peek(&mut self) -> LookupTrace {
        if let State::Running { flight, stale } = &mut self.state {
            match flight.clone().now_or_never() {
                Some(answer) => self.state = State::Ready(resolve(&answer, stale.as_deref())),
                None => {
                    return self.trace(
                        &Fetched::unavailable("not needed by any rule reached".into()),
                        false,
                    );
                }
            }
        }
        self.ready_trace(false)
    }

    fn ready_trace(&self, awaited: bool) -> LookupTrace {
        match &self.state {
            State::Ready(fetched) => self.trace(fetched, awaited),
            State::Running { .. } => {
                self.trace(&Fetched::unavailable("still running".into()), awaited)
            }
        }
    }

    fn trace(&self, fetched: &Fetched, awaited: bool) -> LookupTrace {
        LookupTrace {
            name: self.name.clone(),
            result: fetched.result.clone(),
            micros: micros(fetched.finished.saturating_duration_since(self.arrived)),
            cached: fetched.cached,
            stale: fetched.stale,
            awaited,
        }
    }
}

/// A plugin answer, or on failure an old answer still within stale-if-error.
fn resolve(answer: &Answer, stale: Option<&Entry>) -> Fetched {
    match (answer, stale) {
        (Err(_), Some(entry)) => Fetched::cached(entry, true),
        _ => Fetched {
            result: LookupResult::from_answer(answer),
            cached: false,
            stale: false,
            finished: Instant::now(),
        },
    }
}
