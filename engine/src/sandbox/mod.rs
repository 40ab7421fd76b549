//! Where the rules run that the checker cannot prove bounded, so that what they do costs their
//! own calls only.
//!
//! Counting inside Rhai stops Rhai code, but not a native function: a closure passed to `map`,
//! a `replace` asked for gigabytes, runs to its end before any counter sees it. So a rule with a
//! loop, a function, a closure or a call outside [`BOUNDED_FUNCTIONS`](crate::script::BOUNDED_FUNCTIONS)
//! runs in a **worker process** ([`worker`]): the same binary, started with an address-space
//! cap, no new privileges, no capabilities, no further files or sockets, and a lower CPU
//! priority. The server hands it a call's evaluation and waits until the call's deadline; a
//! worker still running then is `SIGKILL`ed and replaced, and a worker that dies (out of memory,
//! a crash) is a lost evaluation, never a lost server.
//!
//! Each rule set has a bounded share of the workers; a call over it answers its default at once
//! (`over_share`) instead of queueing. A rule set whose evaluations kill workers repeatedly is
//! quarantined ([`Quarantine`]).
//!
//! Tools and tests without the `belroute` binary at hand run the same evaluations on threads of
//! their own process instead ([`Pool::threads`]): the same share, no operating-system limits.

mod protocol;
mod quarantine;
mod threads;
pub mod worker;
mod workers;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::ruleset::RuleSet;
use crate::script::ScriptEngine;

pub(crate) use protocol::{Job, Outcome, Ran};
pub use quarantine::{Quarantine, QuarantinePolicy, Quarantined};
pub use threads::{POOL_STACK, panic_message};
pub use worker::WorkerSpec;
pub use workers::WorkerCommand;

/// How many workers there are, how much of them one rule set may use, and their limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// Worker processes (or threads, in tools) that run rules not proven bounded.
    pub workers: usize,
    /// Evaluations one rule set may have in the pool at once.
    pub share: usize,
    /// Address space of each worker process, in bytes.
    pub worker_memory: u64,
    pub quarantine: QuarantinePolicy,
}

impl Default for PoolSettings {
    fn default() -> Self {
        let workers = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2)
            .clamp(2, 64);
        PoolSettings {
            workers,
            share: (workers / 2).max(1),
            worker_memory: 256 << 20,
            quarantine: QuarantinePolicy::default(),
        }
    }
}

/// Why an evaluation handed to the pool gave no outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("the rule set already has its share of the workers in use")]
    OverShare,
    #[error("every worker is busy")]
    Full,
    /// Still running at the call's deadline: the worker was killed.
    #[error("still running at the deadline; its worker process was killed")]
    Killed { rule: Option<usize> },
    /// The worker process ended while evaluating (its memory cap, a crash, an abort).
    #[error("the worker process died: {why}")]
    Died { rule: Option<usize>, why: String },
    /// Not back by the deadline (threads: the job stops on its own soon after).
    #[error("not back by the deadline")]
    Late,
    #[error("a rule evaluation panicked: {0}")]
    Panicked(String),
    /// No worker could be started, or it refused the rule set.
    #[error("no worker available: {0}")]
    Unavailable(String),
    #[error("the pool is shut down")]
    Closed,
}

impl PoolError {
    /// The rule that was running when the evaluation was lost, if known.
    pub fn rule(&self) -> Option<usize> {
        match self {
            PoolError::Killed { rule } | PoolError::Died { rule, .. } => *rule,
            _ => None,
        }
    }

    /// Did the operating system have to stop a worker (counted towards quarantine)?
    pub fn stopped_a_worker(&self) -> bool {
        matches!(self, PoolError::Killed { .. } | PoolError::Died { .. })
    }
}

/// Where evaluations run.
enum Executor {
    Threads(threads::Threads),
    Processes(workers::Workers),
}

/// The evaluation pool: admission by rule set, then a worker.
pub struct Pool {
    admission: Arc<Admission>,
    executor: Executor,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("settings", &self.admission.settings)
            .field(
                "isolation",
                &match self.executor {
                    Executor::Threads(_) => "threads",
                    Executor::Processes(_) => "processes",
                },
            )
            .finish_non_exhaustive()
    }
}

struct Admission {
    in_use: Mutex<HashMap<Arc<str>, usize>>,
    settings: PoolSettings,
    /// Workers stopped by the operating system, by rule set, rule and cause.
    kills: Mutex<HashMap<KillKey, u64>>,
}

/// A rule set, one of its rules, and why its worker was stopped.
type KillKey = (Arc<str>, String, &'static str);

impl Admission {
    fn in_use(&self) -> MutexGuard<'_, HashMap<Arc<str>, usize>> {
        self.in_use.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Distinct (rule set, rule, cause) kill counters kept; beyond, kills count under `(other)`.
const MAX_KILL_COUNTERS: usize = 1_000;

/// A rule set's place in the pool, held for the length of one call's evaluation there.
pub struct Slot {
    admission: Arc<Admission>,
    ruleset: Arc<str>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut in_use = self.admission.in_use();
        if let Some(n) = in_use.get_mut(&self.ruleset) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                in_use.remove(&self.ruleset);
            }
        }
    }
}

/// The pool as `/readyz`, the console and the metrics show it.
#[derive(Debug, Clone, Serialize)]
pub struct PoolStatus {
    /// `processes` (worker processes) or `threads` (tools and tests).
    pub isolation: &'static str,
    pub workers: usize,
    pub share: usize,
    /// Worker processes running now, idle or busy.
    pub running: usize,
    pub busy: usize,
    /// Worker processes started since the server started (replacements included).
    pub started: u64,
    pub kills: Vec<KillCount>,
}

/// Workers the operating system stopped for one rule of one rule set.
#[derive(Debug, Clone, Serialize)]
pub struct KillCount {
    pub ruleset: String,
    pub rule: String,
    /// `deadline` (killed at the call's deadline) or `died` (memory cap, crash).
    pub cause: &'static str,
    pub count: u64,
}

impl Pool {
    /// Evaluations on threads of this process: for tools and tests, where no worker binary is at
    /// hand. Rhai's own limits stop rules; nothing stops a native call.
    pub fn threads(settings: PoolSettings, scripts: Arc<ScriptEngine>) -> Self {
        let executor = Executor::Threads(threads::Threads::new(settings.workers, scripts));
        Pool::with(settings, executor)
    }

    /// Evaluations in worker processes started with `command`, limited by the operating system.
    /// `eager`: start them now (a server), else on first need (a tool).
    pub fn processes(
        settings: PoolSettings,
        command: WorkerCommand,
        spec: WorkerSpec,
        eager: bool,
    ) -> Self {
        let workers = workers::Workers::new(settings.workers, command, spec);
        if eager {
            workers.fill();
        }
        Pool::with(settings, Executor::Processes(workers))
    }

    fn with(settings: PoolSettings, executor: Executor) -> Self {
        let settings = PoolSettings {
            workers: settings.workers.max(1),
            share: settings.share.clamp(1, settings.workers.max(1)),
            ..settings
        };
        Pool {
            admission: Arc::new(Admission {
                in_use: Mutex::new(HashMap::new()),
                settings,
                kills: Mutex::new(HashMap::new()),
            }),
            executor,
        }
    }

    pub fn settings(&self) -> &PoolSettings {
        &self.admission.settings
    }

    /// Takes one of `ruleset`'s places in the pool, or says why there is none.
    pub fn admit(&self, ruleset: &Arc<str>) -> Result<Slot, PoolError> {
        let mut in_use = self.admission.in_use();
        let used = in_use.entry(ruleset.clone()).or_insert(0);
        if *used >= self.admission.settings.share {
            return Err(PoolError::OverShare);
        }
        *used += 1;
        Ok(Slot {
            admission: self.admission.clone(),
            ruleset: ruleset.clone(),
        })
    }

    /// Runs `job` of rule set `set`; gives up (stopping the worker) at `deadline`.
    pub(crate) async fn run(
        &self,
        _slot: &Slot,
        set: &Arc<RuleSet>,
        job: Job,
        deadline: Instant,
    ) -> Result<Outcome, PoolError> {
        let result = match &self.executor {
            Executor::Threads(threads) => threads.run(set, job, deadline).await,
            Executor::Processes(workers) => workers.run(set, job, deadline).await,
        };
        if let Err(e) = &result
            && e.stopped_a_worker()
        {
            let rule = e
                .rule()
                .and_then(|i| set.rules.get(i))
                .map_or_else(|| "(unknown)".to_string(), |r| r.name.clone());
            let cause = match e {
                PoolError::Killed { .. } => "deadline",
                _ => "died",
            };
            let mut kills = self
                .admission
                .kills
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let key = (set.name.clone(), rule, cause);
            let key = if kills.len() >= MAX_KILL_COUNTERS && !kills.contains_key(&key) {
                (Arc::from("(other)"), "(other)".to_string(), cause)
            } else {
                key
            };
            *kills.entry(key).or_insert(0) += 1;
        }
        result
    }

    /// Stops the worker processes: idle ones exit as their stdin closes. Calls after this that
    /// need a worker answer their default (`failed`).
    pub async fn shutdown(&self) {
        if let Executor::Processes(workers) = &self.executor {
            workers.shutdown().await;
        }
    }

    /// Evaluations waiting for a worker or running now.
    pub fn busy(&self) -> usize {
        self.admission.in_use().values().sum()
    }

    pub fn status(&self) -> PoolStatus {
        let settings = &self.admission.settings;
        let (isolation, running, started) = match &self.executor {
            Executor::Threads(_) => ("threads", settings.workers, 0),
            Executor::Processes(workers) => ("processes", workers.running(), workers.started()),
        };
        let mut kills: Vec<KillCount> = self
            .admission
            .kills
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|((ruleset, rule, cause), count)| KillCount {
                ruleset: ruleset.to_string(),
                rule: rule.clone(),
                cause,
                count: *count,
            })
            .collect();
        kills.sort_by(|a, b| (&a.ruleset, &a.rule, a.cause).cmp(&(&b.ruleset, &b.rule, b.cause)));
        PoolStatus {
            isolation,
            workers: settings.workers,
            share: settings.share,
            running,
            busy: self.busy(),
            started,
            kills,
        }
    }
}

/// Descriptors above stderr that this process holds without close-on-exec: what whoever
/// started it passed on, which every process it starts (a worker included) inherits too. Safe
/// Rust cannot close a descriptor it does not own, so the server names them at start instead
/// (systemd passes none). Empty where `/proc` cannot be read.
pub fn inherited_descriptors() -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if fd <= 2 {
            continue;
        }
        // `flags:` in fdinfo is octal; O_CLOEXEC is 0o2000000. The directory being read has
        // close-on-exec set, so it never counts.
        let Ok(info) = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")) else {
            continue;
        };
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .and_then(|f| u32::from_str_radix(f.trim(), 8).ok());
        if flags.is_some_and(|f| f & 0o2_000_000 == 0) {
            let target = std::fs::read_link(entry.path())
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            found.push((fd, target));
        }
    }
    found.sort();
    found
}

/// How long past the deadline a call waits for its evaluation, for a thread or process that was
/// even later than [`STOP_EARLY`] allows; after that the default answers without its trace.
pub const POOL_RETURN: Duration = Duration::from_millis(5);

/// How long before the call's deadline a worker stops starting rules, so its outcome (and the
/// trace) is back by the deadline even on a busy machine, where a runnable process can wait a
/// scheduler period (~20 ms) for a CPU.
pub const STOP_EARLY: Duration = Duration::from_millis(20);
