//! The configured lookup plugins, and one call's lookups in flight.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::decide::{LookupTrace, micros};
use crate::lookup::{Facts, Lookup, LookupError, LookupRequest};

/// What a rule sees of one lookup: facts, "not found" (an empty map) or unavailable (`()`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum LookupResult {
    Found { facts: Arc<Facts> },
    NotFound,
    Unavailable { reason: String },
}

impl LookupResult {
    fn from_plugin(answer: Result<Option<Facts>, LookupError>) -> Self {
        match answer {
            Ok(Some(facts)) => LookupResult::Found {
                facts: Arc::new(facts),
            },
            Ok(None) => LookupResult::NotFound,
            Err(e) => LookupResult::Unavailable {
                reason: e.to_string(),
            },
        }
    }
}

/// How long one plugin request may take, whatever the call's deadline.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupSettings {
    pub timeout: Duration,
}

impl Default for LookupSettings {
    fn default() -> Self {
        LookupSettings {
            timeout: Duration::from_secs(2),
        }
    }
}

/// One configured plugin instance.
struct LookupHandle {
    name: String,
    plugin: Arc<dyn Lookup>,
    settings: LookupSettings,
}

impl std::fmt::Debug for LookupHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookupHandle")
            .field("name", &self.name)
            .field("settings", &self.settings)
            .finish()
    }
}

/// The result of one fetch, and whether it came from the cache.
#[derive(Debug, Clone)]
struct Fetched {
    result: LookupResult,
    cached: bool,
    finished: Instant,
}

impl LookupHandle {
    async fn fetch(self: Arc<Self>, request: LookupRequest) -> Fetched {
        let answer =
            match tokio::time::timeout(self.settings.timeout, self.plugin.lookup(&request)).await {
                Ok(answer) => answer,
                Err(_) => Err(LookupError::Timeout),
            };
        if let Err(e) = &answer {
            tracing::debug!(lookup = %self.name, kind = e.kind(), "lookup failed: {e}");
        }
        Fetched {
            result: LookupResult::from_plugin(answer),
            cached: false,
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
        let handle = LookupHandle {
            name: name.to_string(),
            plugin,
            settings,
        };
        self.handles.insert(name.to_string(), Arc::new(handle));
    }

    pub fn names(&self) -> BTreeSet<String> {
        self.handles.keys().cloned().collect()
    }

    /// Starts looking `request` up with plugin `name`, in the background.
    pub fn start(&self, name: &str, request: &LookupRequest, arrived: Instant) -> PendingLookup {
        let state = match self.handles.get(name) {
            Some(handle) => State::Running(tokio::spawn(handle.clone().fetch(request.clone()))),
            None => State::Ready(Fetched {
                result: LookupResult::Unavailable {
                    reason: format!("no plugin named {name}"),
                },
                cached: false,
                finished: Instant::now(),
            }),
        };
        PendingLookup {
            name: name.to_string(),
            arrived,
            state,
        }
    }
}

/// One call's lookup: running, or done.
///
/// Dropping it does not cancel the plugin request: that ends within the plugin's own timeout,
/// so a slow CRM's late answer is not wasted work.
#[derive(Debug)]
pub struct PendingLookup {
    name: String,
    arrived: Instant,
    state: State,
}

#[derive(Debug)]
enum State {
    Running(JoinHandle<Fetched>),
    Ready(Fetched),
}

impl PendingLookup {
    /// Waits for the facts until `deadline`; after it they are unavailable for this call.
    pub async fn wait(&mut self, deadline: Instant) -> LookupTrace {
        if let State::Running(task) = &mut self.state {
            let fetched = match tokio::time::timeout_at(deadline.into(), task).await {
                Ok(Ok(fetched)) => fetched,
                Ok(Err(join_error)) => failed_task(&join_error),
                Err(_) => {
                    return self.trace(
                        LookupResult::Unavailable {
                            reason: "not ready by the deadline".into(),
                        },
                        false,
                        Instant::now(),
                        true,
                    );
                }
            };
            self.state = State::Ready(fetched);
        }
        self.ready_trace(true)
    }

    /// The lookup's state without waiting, for lookups no rule needed.
    pub fn peek(&mut self) -> LookupTrace {
        if let State::Running(task) = &mut self.state {
            let fetched = match task.now_or_never() {
                None => {
                    let reason = "not needed by any rule reached".to_string();
                    return self.trace(
                        LookupResult::Unavailable { reason },
                        false,
                        Instant::now(),
                        false,
                    );
                }
                Some(joined) => joined.unwrap_or_else(|e| failed_task(&e)),
            };
            self.state = State::Ready(fetched);
        }
        self.ready_trace(false)
    }

    fn ready_trace(&self, awaited: bool) -> LookupTrace {
        match &self.state {
            State::Ready(f) => self.trace(f.result.clone(), f.cached, f.finished, awaited),
            State::Running(_) => self.trace(
                LookupResult::Unavailable {
                    reason: "still running".into(),
                },
                false,
                Instant::now(),
                awaited,
            ),
        }
    }

    fn trace(
        &self,
        result: LookupResult,
        cached: bool,
        finished: Instant,
        awaited: bool,
    ) -> LookupTrace {
        LookupTrace {
            name: self.name.clone(),
            result,
            micros: micros(finished.saturating_duration_since(self.arrived)),
            cached,
            awaited,
        }
    }
}

/// A plugin that panicked: unavailable for this call, never a crashed server.
fn failed_task(error: &tokio::task::JoinError) -> Fetched {
    Fetched {
        result: LookupResult::Unavailable {
            reason: format!("plugin failed: {error}"),
        },
        cached: false,
        finished: Instant::now(),
    }
}
