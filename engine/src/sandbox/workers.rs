//! The server's side of the worker processes: starting them, handing them jobs, killing the
//! ones still running at a call's deadline, and replacing the ones that are gone.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::PoolError;
use super::protocol::{FromWorker, Job, Load, MAX_MESSAGE, Outcome, ToWorker};
use super::worker::{MAX_SETS, WorkerSpec};
use crate::ruleset::RuleSet;

/// How a worker process is started: the `belroute` binary's hidden `worker` subcommand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl WorkerCommand {
    pub fn new(program: impl Into<PathBuf>, args: &[&str]) -> Self {
        WorkerCommand {
            program: program.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// This executable's `worker` subcommand.
    pub fn this_binary() -> std::io::Result<Self> {
        Ok(WorkerCommand::new(std::env::current_exe()?, &["worker"]))
    }
}

/// How long a new worker may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a dead worker's exit status is waited for, to say why it died.
const REAP_TIMEOUT: Duration = Duration::from_millis(200);
/// Longest line of a worker's stderr kept for the log.
const MAX_STDERR_LINE: u64 = 1024;

pub(super) struct Workers {
    inner: Arc<Inner>,
}

struct Inner {
    /// The runtime the pool was made in. Workers' pipes and tasks belong to it, whichever
    /// runtime a call comes from (the reload gate runs rule tests on a small runtime of its
    /// own, without I/O).
    runtime: Option<tokio::runtime::Handle>,
    command: WorkerCommand,
    /// The worker's settings, passed on its command line.
    spec: String,
    /// Processes kept: one per job that may run at once, and a spare, so that after a worker
    /// is killed the next call finds one ready while the replacement starts.
    size: usize,
    idle: Mutex<Vec<Worker>>,
    /// One per worker: a job holds one while it runs.
    permits: Semaphore,
    running: AtomicUsize,
    started: AtomicU64,
}

impl Inner {
    fn idle(&self) -> MutexGuard<'_, Vec<Worker>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn runtime(&self) -> Option<tokio::runtime::Handle> {
        self.runtime
            .clone()
            .or_else(|| tokio::runtime::Handle::try_current().ok())
    }

    /// Runs `task` on the pool's runtime.
    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        match self.runtime() {
            Some(runtime) => {
                runtime.spawn(task);
            }
            None => tracing::error!("rule workers: no async runtime to run a task on"),
        }
    }
}

impl Workers {
    pub(super) fn new(size: usize, command: WorkerCommand, spec: WorkerSpec) -> Self {
        let jobs = size.max(1);
        let size = jobs + 1;
        Workers {
            inner: Arc::new(Inner {
                runtime: tokio::runtime::Handle::try_current().ok(),
                command,
                spec: serde_json::to_string(&spec).unwrap_or_default(),
                size,
                idle: Mutex::new(Vec::with_capacity(size)),
                permits: Semaphore::new(jobs),
                running: AtomicUsize::new(0),
                started: AtomicU64::new(0),
            }),
        }
    }

    /// Starts every worker and the spare now, in the background (a server, so no call waits
    /// for a start).
    pub(super) fn fill(&self) {
        for _ in 0..self.inner.size {
            replace(self.inner.clone());
        }
    }

    /// Ends the idle workers the polite way: their stdin closes, they exit (a worker busy
    /// now is killed when its call is done with it and it is dropped).
    pub(super) async fn shutdown(&self) {
        self.inner.permits.close();
        let idle: Vec<Worker> = std::mem::take(&mut *self.inner.idle());
        for mut worker in idle {
            let Some(mut child) = worker.child.take() else {
                continue;
            };
            // Dropping it closes our end of its stdin, which ends its read loop.
            drop(worker);
            if tokio::time::timeout(Duration::from_secs(1), child.wait())
                .await
                .is_err()
            {
                let _ = child.start_kill();
            }
        }
    }

    pub(super) fn running(&self) -> usize {
        self.inner.running.load(Ordering::Relaxed)
    }

    pub(super) fn started(&self) -> u64 {
        self.inner.started.load(Ordering::Relaxed)
    }

    /// Runs `job` in a worker; kills the worker if it is still running at `deadline`.
    pub(super) async fn run(
        &self,
        set: &Arc<RuleSet>,
        job: Job,
        deadline: Instant,
    ) -> Result<Outcome, PoolError> {
        let _permit = match tokio::time::timeout_at(deadline, self.inner.permits.acquire()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(PoolError::Closed),
            Err(_) => return Err(PoolError::Full),
        };
        let taken = self.inner.idle().pop();
        let mut worker = match taken {
            Some(worker) => worker,
            None => start(&self.inner)
                .await
                .map_err(|e| PoolError::Unavailable(e.to_string()))?,
        };
        worker.rule = None;
        let exchanged = tokio::time::timeout_at(deadline, worker.evaluate(set, job)).await;
        match exchanged {
            Ok(Ok(outcome)) => {
                give_back(&self.inner, worker);
                Ok(outcome)
            }
            Ok(Err(Failure::Refused(message))) => {
                give_back(&self.inner, worker);
                Err(PoolError::Unavailable(message))
            }
            Ok(Err(Failure::Gone)) => {
                let rule = worker.rule;
                let why = worker.died().await;
                replace(self.inner.clone());
                Err(PoolError::Died { rule, why })
            }
            Err(_) => {
                let rule = worker.rule;
                worker.kill();
                replace(self.inner.clone());
                Err(PoolError::Killed { rule })
            }
        }
    }
}

/// Returns a worker to the idle ones; beyond the pool's size (a replacement raced a start on
/// demand) it is stopped.
fn give_back(inner: &Inner, worker: Worker) {
    let mut idle = inner.idle();
    if idle.len() < inner.size {
        idle.push(worker);
    }
}

/// Starts a worker in the background and adds it to the idle ones.
fn replace(inner: Arc<Inner>) {
    let pool = inner.clone();
    pool.spawn(async move {
        match start(&inner).await {
            Ok(worker) => give_back(&inner, worker),
            Err(e) => tracing::error!(
                "cannot start a rule worker process ({}): {e}; rules that need one answer their default until one starts",
                inner.command.program.display()
            ),
        }
    });
}

/// Starts one worker and waits until it says it is ready.
async fn start(inner: &Arc<Inner>) -> std::io::Result<Worker> {
    let runtime = inner
        .runtime()
        .ok_or_else(|| std::io::Error::other("no async runtime to start a worker on"))?;
    let spawned = {
        // Its pipes and its exit belong to the pool's runtime, not the caller's.
        let _entered = runtime.enter();
        Command::new(&inner.command.program)
            .args(&inner.command.args)
            .arg(&inner.spec)
            // Nothing of the server's environment (database URLs, CRM tokens) reaches a worker.
            .env_clear()
            // One malloc arena: the address-space cap is not spent on per-thread reservations.
            .env("MALLOC_ARENA_MAX", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
    };
    let mut child = spawned?;
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(std::io::Error::other("the worker's pipes are missing"));
    };
    let pid = child.id().unwrap_or_default();
    let last_words = Arc::new(Mutex::new(String::new()));
    forward_stderr(inner, pid, stderr, last_words.clone());
    inner.running.fetch_add(1, Ordering::Relaxed);
    let mut worker = Worker {
        child: Some(child),
        stdin,
        stdout: BufReader::new(stdout),
        pid,
        loaded: VecDeque::new(),
        rule: None,
        line: Vec::new(),
        last_words,
        running: inner.clone(),
    };
    match tokio::time::timeout(START_TIMEOUT, worker.receive()).await {
        Ok(Ok(FromWorker::Ready)) => {}
        Ok(Ok(other)) => {
            return Err(std::io::Error::other(format!(
                "the worker said {other:?} instead of ready"
            )));
        }
        Ok(Err(_)) => {
            let why = worker.died().await;
            return Err(std::io::Error::other(format!(
                "the worker ended at start: {why}"
            )));
        }
        Err(_) => {
            worker.kill();
            return Err(std::io::Error::other(format!(
                "the worker was not ready within {}s",
                START_TIMEOUT.as_secs()
            )));
        }
    }
    inner.started.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(pid, "rule worker process started");
    Ok(worker)
}

/// Logs what a worker writes to stderr (an allocation failure, a panic), escaped, and keeps
/// the last line to say why it died.
fn forward_stderr(
    inner: &Inner,
    pid: u32,
    stderr: tokio::process::ChildStderr,
    last_words: Arc<Mutex<String>>,
) {
    inner.spawn(async move {
        let mut reader = BufReader::new(stderr);
        let mut line = Vec::new();
        loop {
            line.clear();
            match (&mut reader)
                .take(MAX_STDERR_LINE)
                .read_until(b'\n', &mut line)
                .await
            {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line);
                    let text = text.trim_end();
                    // Rust's hint after a panic or abort says nothing an operator can use.
                    if text.is_empty() || text.starts_with("note: run with `RUST_BACKTRACE") {
                        continue;
                    }
                    tracing::warn!(worker = pid, "rule worker: {}", crate::text::escape(text));
                    let mut last = last_words.lock().unwrap_or_else(|p| p.into_inner());
                    *last = text.to_string();
                }
            }
        }
    });
}

/// Why an exchange with a worker failed.
enum Failure {
    /// It ended (or its pipes broke): its process is gone or going.
    Gone,
    /// It refused the rule set (it could not compile it).
    Refused(String),
}

struct Worker {
    /// `None` once killed (its exit is collected in the background).
    child: Option<Child>,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pid: u32,
    /// The rule sets it has compiled, oldest first; it forgets them in the same order.
    loaded: VecDeque<String>,
    /// The rule it last said it was in, during the current job.
    rule: Option<usize>,
    line: Vec<u8>,
    last_words: Arc<Mutex<String>>,
    running: Arc<Inner>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.running.running.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Worker {
    /// Sends the rule set if the worker lacks it, then the job; waits for the outcome.
    async fn evaluate(&mut self, set: &Arc<RuleSet>, mut job: Job) -> Result<Outcome, Failure> {
        let key = set_key(set);
        let mut message = Vec::with_capacity(1024);
        let loading = !self.loaded.contains(&key);
        if loading {
            let load = ToWorker::Load(Load {
                key: key.clone(),
                name: set.name.to_string(),
                file: set.file.clone(),
                text: set.source.to_string(),
                lookups: set.vocabulary.lookups.clone(),
                calendars: set.calendars.as_ref().clone(),
                time_zone: set.time_zone.name().to_string(),
            });
            encode(&mut message, &load);
        }
        job.set = key.clone();
        encode(&mut message, &ToWorker::Job(job));
        self.send(&message).await?;
        let mut refused = None;
        loop {
            match self.receive().await? {
                FromWorker::Running { rule } => self.rule = Some(rule),
                FromWorker::Done(outcome) => return Ok(outcome),
                FromWorker::Loaded { key } => {
                    self.loaded.push_back(key);
                    if self.loaded.len() > MAX_SETS {
                        self.loaded.pop_front();
                    }
                }
                FromWorker::LoadFailed { message, .. } => refused = Some(message),
                FromWorker::Unknown { key } => {
                    self.loaded.retain(|k| *k != key);
                    return Err(Failure::Refused(refused.unwrap_or_else(|| {
                        format!("the worker does not have rule set {key}")
                    })));
                }
                FromWorker::Ready => {}
            }
        }
    }

    async fn send(&mut self, message: &[u8]) -> Result<(), Failure> {
        self.stdin
            .write_all(message)
            .await
            .map_err(|_| Failure::Gone)?;
        self.stdin.flush().await.map_err(|_| Failure::Gone)
    }

    async fn receive(&mut self) -> Result<FromWorker, Failure> {
        self.line.clear();
        let read = (&mut self.stdout)
            .take(MAX_MESSAGE)
            .read_until(b'\n', &mut self.line)
            .await
            .map_err(|_| Failure::Gone)?;
        if read == 0 {
            return Err(Failure::Gone);
        }
        serde_json::from_slice(&self.line).map_err(|e| {
            tracing::error!(
                worker = self.pid,
                "a rule worker answered what belroute cannot read ({e}); stopping it"
            );
            Failure::Gone
        })
    }

    /// Kills the process at once (`SIGKILL`); its exit is collected in the background.
    fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            self.running.spawn(async move {
                let _ = child.wait().await;
            });
        }
    }

    /// Why the process ended, from its exit status and its last line on stderr.
    async fn died(mut self) -> String {
        let Some(mut child) = self.child.take() else {
            return "killed".into();
        };
        let status = match tokio::time::timeout(REAP_TIMEOUT, child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                let _ = child.start_kill();
                self.running.spawn(async move {
                    let _ = child.wait().await;
                });
                None
            }
        };
        // The stderr forwarder may still be reading the last line.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let last = self
            .last_words
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        describe_exit(status, &last)
    }
}

fn encode(out: &mut Vec<u8>, message: &ToWorker) {
    // Serialising these types cannot fail: every map key is a string.
    let _ = serde_json::to_writer(&mut *out, message);
    out.push(b'\n');
}

/// The name a rule set version has in a worker.
fn set_key(set: &RuleSet) -> String {
    format!("{}@{}", set.name, set.version)
}

fn describe_exit(status: Option<ExitStatus>, last_words: &str) -> String {
    use std::os::unix::process::ExitStatusExt;
    let how = match status {
        None => "it did not exit in time and was killed".to_string(),
        Some(status) => match (status.signal(), status.code()) {
            (Some(6), _) => "aborted (SIGABRT)".to_string(),
            (Some(9), _) => "killed (SIGKILL; the kernel's out-of-memory killer?)".to_string(),
            (Some(11), _) => "crashed (SIGSEGV)".to_string(),
            (Some(signal), _) => format!("ended by signal {signal}"),
            (None, Some(code)) => format!("exited with status {code}"),
            (None, None) => "ended".to_string(),
        },
    };
    let hint = if last_words.contains("memory allocation") {
        ": the rule asked for more memory than `sandbox.worker_memory` allows"
    } else if last_words.contains("overflowed its stack") {
        ": the rule recursed too deeply"
    } else {
        ""
    };
    if last_words.is_empty() {
        format!("{how}{hint}")
    } else {
        format!(
            "{how}{hint} (it said: {})",
            crate::text::shorten(last_words, 200)
        )
    }
}
