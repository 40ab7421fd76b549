//! Evaluations on threads of this process: how tools and tests run rules that the checker
//! cannot prove bounded when no worker binary is at hand. Rhai's own limits (operations, time,
//! sizes) stop rules here; nothing stops a native call, which is why the server uses worker
//! processes instead.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::protocol::{Job, Outcome};
use super::{POOL_RETURN, PoolError};
use crate::ruleset::RuleSet;
use crate::script::ScriptEngine;

/// Stack of each evaluation thread (and of a worker process's): deep enough for the deepest
/// recursion the sandbox allows (`sandbox.max_call_levels` up to 64, measured), which request
/// threads are not.
pub const POOL_STACK: usize = 16 << 20;

/// Jobs waiting for a thread, at most; beyond it calls answer at once.
const MAX_QUEUED_PER_THREAD: usize = 64;

type Task = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Queue {
    tasks: VecDeque<Task>,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    threads: usize,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A few threads with deep stacks. Dropping it stops them once their current job is done.
pub(super) struct Threads {
    shared: Arc<Shared>,
    scripts: Arc<ScriptEngine>,
}

impl Threads {
    pub(super) fn new(threads: usize, scripts: Arc<ScriptEngine>) -> Self {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            threads,
        });
        for n in 0..threads {
            let shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("belroute-rules-{n}"))
                .stack_size(POOL_STACK)
                .spawn(move || work(&shared));
            if let Err(e) = spawned {
                tracing::error!("cannot start an evaluation thread: {e}");
            }
        }
        Threads { shared, scripts }
    }

    /// Runs `job` on a thread; gives up waiting shortly after `deadline` (the job stops on its
    /// own by then: every rule checks the deadline).
    pub(super) async fn run(
        &self,
        set: &Arc<RuleSet>,
        job: Job,
        deadline: Instant,
    ) -> Result<Outcome, PoolError> {
        let (done, result) = oneshot::channel();
        let set = set.clone();
        let scripts = self.scripts.clone();
        let task: Task = Box::new(move || {
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                crate::decide::evaluate(&set, &job, &scripts, None)
            }))
            .map_err(|panic| PoolError::Panicked(panic_message(panic.as_ref())));
            let _ = done.send(outcome);
        });
        {
            let mut queue = self.shared.queue();
            if queue.closed {
                return Err(PoolError::Closed);
            }
            if queue.tasks.len() >= self.shared.threads * MAX_QUEUED_PER_THREAD {
                return Err(PoolError::Full);
            }
            queue.tasks.push_back(task);
        }
        self.shared.ready.notify_one();
        let back_by = crate::clock::saturating_add(deadline, POOL_RETURN);
        match tokio::time::timeout_at(back_by, result).await {
            Ok(outcome) => outcome.unwrap_or(Err(PoolError::Closed)),
            Err(_) => Err(PoolError::Late),
        }
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        self.shared.queue().closed = true;
        self.shared.ready.notify_all();
    }
}

fn work(shared: &Shared) {
    loop {
        let task = {
            let mut queue = shared.queue();
            loop {
                if let Some(task) = queue.tasks.pop_front() {
                    break task;
                }
                if queue.closed {
                    return;
                }
                queue = shared.ready.wait(queue).unwrap_or_else(|p| p.into_inner());
            }
        };
        task();
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
