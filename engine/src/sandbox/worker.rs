//! A worker process: where rules the checker cannot prove bounded run, under limits the
//! operating system enforces.
//!
//! `belroute worker SPEC` (hidden) runs [`main`]. Before it reads anything it confines itself:
//! an address-space cap (`sandbox.worker_memory`; an allocation past it aborts this process,
//! not the server), no core dumps, no file writes, a lower CPU priority than the server, no new
//! privileges, no capabilities, and no file descriptors beyond stdin, stdout and stderr (so no
//! file or socket can be opened). Its environment is empty: no secret of the server's reaches
//! it. It then compiles the rule files the server sends and runs jobs one at a time, and ends
//! when its stdin closes or the server that started it is gone.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::protocol::{FromWorker, Load, MAX_MESSAGE, ToWorker};
use super::threads::POOL_STACK;
use crate::ruleset::{LoadContext, RuleSet};
use crate::script::{Limits, ScriptEngine};

/// Rule set versions a worker keeps compiled; the server mirrors the list.
pub const MAX_SETS: usize = 32;
/// Callers a worker remembers, so a caller who calls again finds `caller` as rules see it
/// already built; the list starts over when full.
const MAX_CALLERS: usize = 10_000;
/// A job running longer than this is reported (`running`, with its rule) every tick.
const REPORT_AFTER: Duration = Duration::from_millis(5);
/// How often the watchdog looks.
const TICK: Duration = Duration::from_millis(5);
/// A job this long past its own deadline means the server is gone or stuck: the worker ends.
const ABANDONED_AFTER: Duration = Duration::from_secs(5);
/// Nice value of a worker: the server's own threads (every other call) come first.
pub const WORKER_NICE: i32 = 10;

/// What a worker is started with (its command line's last argument, as JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerSpec {
    pub max_operations: u64,
    pub rule_time_micros: u64,
    pub max_string_size: usize,
    pub max_array_size: usize,
    pub max_map_size: usize,
    pub max_call_levels: usize,
    pub max_expr_depth: usize,
    /// Address space, in bytes.
    pub memory: u64,
    /// Largest file it may write: 0, except when the server runs under a profiler that writes
    /// its counts from inside the worker (see [`PROFILING`]).
    pub file_size: u64,
}

/// Set in the server's environment (to anything) when measuring with
/// `valgrind --tool=callgrind --trace-children=yes` (bench/worker_hop.py): workers may then
/// write files, which callgrind needs to save their counts. Never set it in production.
pub const PROFILING: &str = "BELROUTE_WORKER_PROFILING";

impl WorkerSpec {
    pub fn new(limits: &Limits, memory: u64) -> Self {
        WorkerSpec {
            max_operations: limits.max_operations,
            rule_time_micros: crate::clock::micros(limits.rule_time),
            max_string_size: limits.max_string_size,
            max_array_size: limits.max_array_size,
            max_map_size: limits.max_map_size,
            max_call_levels: limits.max_call_levels,
            max_expr_depth: limits.max_expr_depth,
            memory,
            file_size: if std::env::var_os(PROFILING).is_some() {
                u64::MAX
            } else {
                0
            },
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            max_operations: self.max_operations,
            rule_time: Duration::from_micros(self.rule_time_micros),
            max_string_size: self.max_string_size,
            max_array_size: self.max_array_size,
            max_map_size: self.max_map_size,
            max_call_levels: self.max_call_levels,
            max_expr_depth: self.max_expr_depth,
        }
    }
}

/// The worker process: `spec` is its [`WorkerSpec`] as JSON.
pub fn main(spec: &str) -> ExitCode {
    let spec: WorkerSpec = match serde_json::from_str(spec) {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!(
                "belroute worker: cannot read its settings ({e}); it is started by `belroute serve`, not by hand"
            );
            return ExitCode::from(2);
        }
    };
    if let Err(e) = confine(&spec) {
        eprintln!("belroute worker: cannot confine itself: {e}");
        return ExitCode::from(2);
    }
    let progress = Arc::new(Progress::default());
    let parent = rustix::process::getppid();
    {
        let progress = progress.clone();
        let watchdog = std::thread::Builder::new()
            .name("watchdog".into())
            .stack_size(64 << 10)
            .spawn(move || watch(&progress, parent));
        if let Err(e) = watchdog {
            eprintln!("belroute worker: cannot start its watchdog: {e}");
            return ExitCode::from(2);
        }
    }
    let evaluating = std::thread::Builder::new()
        .name("rules".into())
        .stack_size(POOL_STACK)
        .spawn(move || serve(&spec, &progress));
    // From here on no file or socket can be opened: every descriptor number is taken or
    // beyond the limit.
    if let Err(e) = no_more_files() {
        eprintln!("belroute worker: cannot close off new files: {e}");
        return ExitCode::from(2);
    }
    match evaluating.map(|t| t.join()) {
        Ok(Ok(code)) => code,
        _ => ExitCode::from(3),
    }
}

/// The operating system's limits, set before any rule is read.
fn confine(spec: &WorkerSpec) -> std::io::Result<()> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let cap = |n: u64| Rlimit {
        current: Some(n),
        maximum: Some(n),
    };
    setrlimit(Resource::As, cap(spec.memory))?;
    setrlimit(Resource::Core, cap(0))?;
    setrlimit(Resource::Fsize, cap(spec.file_size))?;
    rustix::process::setpriority_process(None, WORKER_NICE)?;
    rustix::thread::set_no_new_privs(true)?;
    // Capabilities are per thread and inherited by threads started later: dropped here, on the
    // main thread, before any other starts. Running as root (a container, a test) this is what
    // keeps the limits above from being raised again.
    let none = rustix::thread::CapabilitySet::empty();
    rustix::thread::set_capabilities(
        None,
        rustix::thread::CapabilitySets {
            effective: none,
            permitted: none,
            inheritable: none,
        },
    )?;
    Ok(())
}

fn no_more_files() -> std::io::Result<()> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let both = Rlimit {
        current: Some(3),
        maximum: Some(3),
    };
    match setrlimit(Resource::Nofile, both) {
        Ok(()) => Ok(()),
        // A kernel always lets a process lower its own limits; only an emulator refuses to
        // lower the hard one (valgrind keeps descriptors of its own above it, for the
        // benchmark's instruction counts). The soft limit is still lowered there.
        Err(rustix::io::Errno::PERM) => {
            let hard = getrlimit(Resource::Nofile).maximum;
            setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(3),
                    maximum: hard,
                },
            )?;
            eprintln!(
                "belroute worker: only the soft limit on open files could be lowered (running under an emulator?)"
            );
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// What the watchdog knows of the job running now.
#[derive(Debug, Default)]
struct Progress {
    /// Number of the running job; 0 when idle.
    job: AtomicU64,
    /// When it started, in microseconds since `epoch`.
    started: AtomicU64,
    /// Its deadline, in microseconds since `epoch`.
    until: AtomicU64,
    /// The rule it is in.
    rule: AtomicUsize,
    epoch: OnceInstant,
}

#[derive(Debug)]
struct OnceInstant(Instant);

impl Default for OnceInstant {
    fn default() -> Self {
        OnceInstant(Instant::now())
    }
}

impl Progress {
    fn now(&self) -> u64 {
        crate::clock::micros(self.epoch.0.elapsed())
    }
}

/// Reports which rule a long job is in, and ends the worker when its server is gone.
fn watch(progress: &Progress, parent: Option<rustix::process::Pid>) {
    let mut reported = (0, usize::MAX);
    let mut ticks: u32 = 0;
    loop {
        std::thread::sleep(TICK);
        ticks = ticks.wrapping_add(1);
        if ticks.is_multiple_of(200) && rustix::process::getppid() != parent {
            // The server died; nothing will read our answers.
            std::process::exit(0);
        }
        let job = progress.job.load(Ordering::Acquire);
        if job == 0 {
            continue;
        }
        let now = progress.now();
        let started = progress.started.load(Ordering::Relaxed);
        if now.saturating_sub(started) < crate::clock::micros(REPORT_AFTER) {
            continue;
        }
        let rule = progress.rule.load(Ordering::Relaxed);
        if reported != (job, rule) {
            reported = (job, rule);
            reply(&FromWorker::Running { rule });
        }
        let until = progress.until.load(Ordering::Relaxed);
        if now > until.saturating_add(crate::clock::micros(ABANDONED_AFTER)) {
            eprintln!(
                "belroute worker: a job ran far past its deadline and nobody stopped it; ending"
            );
            std::process::exit(4);
        }
    }
}

/// Reads the server's messages and answers them, one at a time.
fn serve(spec: &WorkerSpec, progress: &Progress) -> ExitCode {
    let scripts = ScriptEngine::new(&spec.limits());
    crate::script::capture_output();
    let mut sets: HashMap<String, Arc<RuleSet>> = HashMap::new();
    let mut order: VecDeque<String> = VecDeque::new();
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut line = Vec::new();
    let mut jobs: u64 = 0;
    let mut callers: HashMap<String, Arc<crate::caller::Caller>> = HashMap::new();
    reply(&FromWorker::Ready);
    loop {
        line.clear();
        match (&mut input).take(MAX_MESSAGE).read_until(b'\n', &mut line) {
            Ok(0) => return ExitCode::SUCCESS,
            Ok(_) => {}
            Err(e) => {
                eprintln!("belroute worker: cannot read from the server: {e}");
                return ExitCode::from(3);
            }
        }
        let message: ToWorker = match serde_json::from_slice(&line) {
            Ok(message) => message,
            Err(e) => {
                eprintln!("belroute worker: cannot read a message from the server: {e}");
                return ExitCode::from(3);
            }
        };
        match message {
            ToWorker::Load(load) => {
                let key = load.key.clone();
                match compile(&scripts, load) {
                    Ok(set) => {
                        if !sets.contains_key(&key) {
                            order.push_back(key.clone());
                            if order.len() > MAX_SETS
                                && let Some(oldest) = order.pop_front()
                            {
                                sets.remove(&oldest);
                            }
                        }
                        sets.insert(key.clone(), set);
                        reply(&FromWorker::Loaded { key });
                    }
                    Err(message) => reply(&FromWorker::LoadFailed { key, message }),
                }
            }
            ToWorker::Job(mut job) => {
                match callers.get(&job.caller.raw) {
                    Some(known) if **known == *job.caller => job.caller = known.clone(),
                    _ => {
                        if callers.len() >= MAX_CALLERS {
                            callers.clear();
                        }
                        callers.insert(job.caller.raw.clone(), job.caller.clone());
                    }
                }
                let Some(set) = sets.get(&job.set) else {
                    reply(&FromWorker::Unknown { key: job.set });
                    continue;
                };
                jobs += 1;
                let now = progress.now();
                progress.rule.store(job.next, Ordering::Relaxed);
                progress.started.store(now, Ordering::Relaxed);
                progress
                    .until
                    .store(now.saturating_add(job.budget), Ordering::Relaxed);
                progress.job.store(jobs, Ordering::Release);
                let outcome = crate::decide::evaluate(set, &job, &scripts, Some(&progress.rule));
                progress.job.store(0, Ordering::Release);
                reply(&FromWorker::Done(outcome));
            }
        }
    }
}

/// Compiles a rule file the way the server did.
fn compile(scripts: &ScriptEngine, load: Load) -> Result<Arc<RuleSet>, String> {
    let time_zone = crate::clock::parse_time_zone(&load.time_zone)?;
    let ctx = LoadContext {
        scripts,
        lookups: &load.lookups,
        calendars: &load.calendars,
        time_zone,
    };
    RuleSet::load(&load.name, Path::new(&load.file), &load.text, &ctx)
        .map(Arc::new)
        .map_err(|problems| {
            problems
                .first()
                .map_or_else(|| "it does not load".to_string(), |p| p.to_string())
        })
}

/// Writes one message to the server: a whole line under stdout's lock.
fn reply(message: &FromWorker) {
    let mut line = serde_json::to_vec(message).unwrap_or_default();
    line.push(b'\n');
    let mut out = std::io::stdout().lock();
    // A server that stopped reading is gone: the next read of stdin ends the worker.
    let _ = out.write_all(&line).and_then(|()| out.flush());
}
