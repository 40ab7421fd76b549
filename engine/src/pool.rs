//! Where rules that take long run: a small pool of threads of its own, shared fairly between
//! rule sets, so a slow rule set costs its own calls only.
//!
//! Most rule sets decide in microseconds, on the thread that took the call. A rule that is
//! still running after a short inline attempt is handed here (see `decide`). Each rule set may
//! have at most `share` evaluations here at once, running or queued; a call over that share is
//! refused at once, and answers its default instead of queueing behind its own rule set. Jobs
//! give their thread back after every rule once they have run for a slice, so a light rule
//! set's job waits at most about one rule of someone else's. A panic in a job is caught and
//! reported to the caller as [`PoolError::Panicked`]; the thread lives on.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// How big the pool is and how much of it one rule set may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Threads that run rules handed over from the request threads.
    pub threads: usize,
    /// Evaluations one rule set may have in the pool at once (running or queued).
    pub share: usize,
}

impl Default for PoolSettings {
    fn default() -> Self {
        let threads = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2)
            .clamp(2, 64);
        PoolSettings {
            threads,
            share: (threads / 2).max(1),
        }
    }
}

/// Stack of each pool thread: deep enough for the deepest recursion the sandbox allows
/// (`sandbox.max_call_levels` up to 64, measured), which request threads are not.
pub const POOL_STACK: usize = 16 << 20;

/// Jobs waiting for a thread, at most, whatever the shares: beyond it calls answer at once.
const MAX_QUEUED_PER_THREAD: usize = 64;

/// Why a job did not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("the rule set already has its share of the evaluation pool in use")]
    OverShare,
    #[error("the evaluation pool is full")]
    Full,
    #[error("a rule evaluation panicked: {0}")]
    Panicked(String),
    #[error("the evaluation pool is shut down")]
    Closed,
}

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    in_use: Mutex<HashMap<Arc<str>, usize>>,
    settings: PoolSettings,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn in_use(&self) -> MutexGuard<'_, HashMap<Arc<str>, usize>> {
        self.in_use.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The evaluation pool. Dropping it stops its threads once their current job is done.
pub struct Pool {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("settings", &self.shared.settings)
            .finish_non_exhaustive()
    }
}

/// A rule set's place in the pool, held for the length of one call's evaluation there.
pub struct Slot {
    shared: Arc<Shared>,
    ruleset: Arc<str>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut in_use = self.shared.in_use();
        if let Some(n) = in_use.get_mut(&self.ruleset) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                in_use.remove(&self.ruleset);
            }
        }
    }
}

impl Pool {
    pub fn new(settings: PoolSettings) -> Self {
        let settings = PoolSettings {
            threads: settings.threads.max(1),
            share: settings.share.max(1),
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            in_use: Mutex::new(HashMap::new()),
            settings,
        });
        for n in 0..settings.threads {
            let shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("belroute-rules-{n}"))
                .stack_size(POOL_STACK)
                .spawn(move || work(&shared));
            if let Err(e) = spawned {
                tracing::error!("cannot start an evaluation thread: {e}");
            }
        }
        Pool { shared }
    }

    pub fn settings(&self) -> PoolSettings {
        self.shared.settings
    }

    /// Takes one of `ruleset`'s places in the pool, or says why there is none.
    pub fn admit(&self, ruleset: &Arc<str>) -> Result<Slot, PoolError> {
        let mut in_use = self.shared.in_use();
        let used = in_use.entry(ruleset.clone()).or_insert(0);
        if *used >= self.shared.settings.share {
            return Err(PoolError::OverShare);
        }
        *used += 1;
        Ok(Slot {
            shared: self.shared.clone(),
            ruleset: ruleset.clone(),
        })
    }

    /// Runs `job` on a pool thread; the slot shows the rule set was admitted.
    pub async fn run<T: Send + 'static>(
        &self,
        _slot: &Slot,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        let (done, result) = oneshot::channel();
        let boxed: Job = Box::new(move || {
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(job))
                .map_err(|panic| PoolError::Panicked(panic_message(panic.as_ref())));
            let _ = done.send(outcome);
        });
        {
            let mut queue = self.shared.queue();
            if queue.closed {
                return Err(PoolError::Closed);
            }
            if queue.jobs.len() >= self.shared.settings.threads * MAX_QUEUED_PER_THREAD {
                return Err(PoolError::Full);
            }
            queue.jobs.push_back(boxed);
        }
        self.shared.ready.notify_one();
        result.await.unwrap_or(Err(PoolError::Closed))
    }

    /// Jobs waiting for a thread now.
    pub fn queued(&self) -> usize {
        self.shared.queue().jobs.len()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.queue().closed = true;
        self.shared.ready.notify_all();
    }
}

fn work(shared: &Shared) {
    loop {
        let job = {
            let mut queue = shared.queue();
            loop {
                if let Some(job) = queue.jobs.pop_front() {
                    break job;
                }
                if queue.closed {
                    return;
                }
                queue = shared.ready.wait(queue).unwrap_or_else(|p| p.into_inner());
            }
        };
        job();
    }
}

/// The text of a panic, for the log.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_and_survives_panics() {
        let pool = Pool::new(PoolSettings {
            threads: 2,
            share: 2,
        });
        let name: Arc<str> = Arc::from("main");
        let slot = pool.admit(&name).unwrap();
        assert_eq!(pool.run(&slot, || 40 + 2).await, Ok(42));
        let panicked = pool.run(&slot, || -> u32 { panic!("boom") }).await;
        assert_eq!(panicked, Err(PoolError::Panicked("boom".into())));
        assert_eq!(pool.run(&slot, || 7).await, Ok(7));
    }

    #[tokio::test]
    async fn a_rule_set_over_its_share_is_refused_at_once() {
        let pool = Pool::new(PoolSettings {
            threads: 2,
            share: 1,
        });
        let a: Arc<str> = Arc::from("a");
        let b: Arc<str> = Arc::from("b");
        let first = pool.admit(&a).unwrap();
        assert_eq!(pool.admit(&a).err(), Some(PoolError::OverShare));
        // Another rule set is not affected.
        let other = pool.admit(&b).unwrap();
        drop(first);
        assert!(pool.admit(&a).is_ok());
        drop(other);
    }

    #[tokio::test]
    async fn a_long_job_does_not_block_the_other_thread() {
        let pool = Pool::new(PoolSettings {
            threads: 2,
            share: 1,
        });
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let slot_a = pool.admit(&a).unwrap();
        let slot_b = pool.admit(&b).unwrap();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let slow = pool.run(&slot_a, move || {
            let _ = hold.recv_timeout(std::time::Duration::from_secs(5));
        });
        let quick = async {
            let quick =
                tokio::time::timeout(std::time::Duration::from_secs(2), pool.run(&slot_b, || 1))
                    .await;
            let _ = release.send(());
            quick
        };
        // The slow job is queued first; the quick one must not wait for it.
        let (slow, quick) = tokio::join!(slow, quick);
        assert_eq!(quick, Ok(Ok(1)));
        assert_eq!(slow, Ok(()));
    }
}
