//! The rule sets being served: read from a directory, swapped atomically when files change.
//!
//! A request takes one [`Catalog`] snapshot and uses that version of its rule set from start
//! to end. Files load independently: a scan only compares each file's metadata with what was
//! last read, starts a load (on its own thread, a few at a time) for each file that changed,
//! and returns. Each finished load swaps its one entry into a new catalog, unless a newer
//! version of the same file was seen meanwhile; so one big or slow file never holds up another.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, Read};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use chrono_tz::Tz;

use crate::diagnostic::{Diagnostic, Position};
use crate::ruleset::{LoadContext, RuleSet, content_version};
use crate::script::ScriptEngine;
use crate::yaml::MAX_INPUT_BYTES;

/// Most rule files compiled at once; more changed files wait for a free slot.
pub const MAX_LOADS: usize = 4;
/// A file modified this recently may change again within the file system's timestamp
/// granularity without its metadata showing it, so the next scan reads it again to be sure.
const RACY: Duration = Duration::from_secs(2);

/// A file that failed validation, and what still serves in its place.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Refusal {
    pub file: PathBuf,
    pub diagnostics: Vec<Diagnostic>,
    /// Content hash of the refused text.
    pub refused_version: String,
    /// The last good version, still answering calls; `None` if the file never loaded.
    pub serving_version: Option<String>,
}

/// One consistent view of every rule set.
#[derive(Debug, Default)]
pub struct Catalog {
    pub rulesets: BTreeMap<String, Arc<RuleSet>>,
    /// Refused files, by rule set name.
    pub refused: BTreeMap<String, Arc<Refusal>>,
    /// Counts swaps, so logs and the admin API can tell catalogs apart.
    pub generation: u64,
}

impl Catalog {
    pub fn get(&self, name: &str) -> Option<&Arc<RuleSet>> {
        self.rulesets.get(name)
    }
}

/// What loading rule files needs from the server.
#[derive(Debug, Clone)]
pub struct StoreContext {
    pub scripts: Arc<ScriptEngine>,
    /// The configured plugins and the facts each declares.
    pub lookups: crate::ruleset::LookupFacts,
    /// The company calendars of belroute.yaml `calendars:`.
    pub calendars: crate::calendar::Calendars,
    pub time_zone: Tz,
}

/// Why the rules directory cannot be served at all.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("rules directory {0} does not exist; create it or pass --rules DIR")]
    Missing(PathBuf),
    #[error("rules directory {0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("cannot read rules directory {0}: {1}")]
    Unreadable(PathBuf, io::Error),
}

/// What one rescan changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScanSummary {
    pub loaded: Vec<String>,
    pub refused: Vec<String>,
    pub removed: Vec<String>,
}

impl ScanSummary {
    pub fn changed(&self) -> bool {
        !(self.loaded.is_empty() && self.refused.is_empty() && self.removed.is_empty())
    }
}

/// The per-file load step: reads one rule file and turns it into a rule set or its problems.
///
/// The store decides when a file is read and where the result goes; a loader only loads, on a
/// thread of its own, so it may take its time. A gate (for example one that runs the rule
/// set's own tests before it goes live) wraps [`RuleLoader`].
pub trait Loader: Send + Sync + std::fmt::Debug {
    /// Reads the text of `file`; by default at most [`MAX_INPUT_BYTES`] + 1 bytes of it, so an
    /// oversized file is refused by the YAML reader without being read whole.
    fn read(&self, file: &Path) -> io::Result<String> {
        read_capped(file)
    }

    /// Validates and compiles `text`, the content of `file`, as rule set `name`.
    fn load(&self, name: &str, file: &Path, text: &str) -> Result<Arc<RuleSet>, Vec<Diagnostic>>;
}

/// Reads at most [`MAX_INPUT_BYTES`] + 1 bytes of a text file.
pub fn read_capped(file: &Path) -> io::Result<String> {
    let mut text = String::new();
    std::fs::File::open(file)?
        .take(MAX_INPUT_BYTES as u64 + 1)
        .read_to_string(&mut text)?;
    Ok(text)
}

/// The loader `serve` uses: [`RuleSet::load`] with the server's scripts, lookups and zone.
#[derive(Debug)]
pub struct RuleLoader {
    context: StoreContext,
}

impl RuleLoader {
    pub fn new(context: StoreContext) -> Self {
        RuleLoader { context }
    }
}

impl Loader for RuleLoader {
    fn load(&self, name: &str, file: &Path, text: &str) -> Result<Arc<RuleSet>, Vec<Diagnostic>> {
        let ctx = LoadContext {
            scripts: &self.context.scripts,
            lookups: &self.context.lookups,
            calendars: &self.context.calendars,
            time_zone: self.context.time_zone,
        };
        RuleSet::load(name, file, text, &ctx).map(Arc::new)
    }
}

/// The rules directory and the catalog currently served from it.
#[derive(Debug)]
pub struct RuleStore {
    shared: Arc<Shared>,
}

/// What the store and its load threads share.
#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    loader: Arc<dyn Loader>,
    current: ArcSwap<Catalog>,
    /// Every rule file seen, by rule set name. Commits to `current` happen under this lock,
    /// so a file's entry and its generation check are one step.
    files: Mutex<BTreeMap<String, Tracked>>,
    /// One scan at a time (watcher, poller and admin may all ask); scans are quick.
    scanning: Mutex<()>,
    loads: Mutex<Loads>,
    /// Numbers each load started, across files, so a newer load always has a larger number.
    next_generation: AtomicU64,
}

/// One rule set's file and what was last made of it.
#[derive(Debug)]
struct Tracked {
    file: PathBuf,
    /// The metadata of the version last read; `None` until read (or after a failed read).
    stamp: Option<Stamp>,
    /// The newest load started for this file; only its result may be committed.
    generation: u64,
    /// The content version that newest load read, once it has.
    read_version: Option<String>,
    /// The last good version, serving calls.
    serving: Option<Arc<RuleSet>>,
    /// Why the file's current version was refused.
    refusal: Option<Arc<Refusal>>,
    /// Another file that also names this rule set (`main.yaml` and `main.yml`).
    duplicate: Option<PathBuf>,
}

impl Tracked {
    fn new(file: PathBuf) -> Self {
        Tracked {
            file,
            stamp: None,
            generation: 0,
            read_version: None,
            serving: None,
            refusal: None,
            duplicate: None,
        }
    }

    /// The refusal `/readyz` shows for this rule set, if any.
    fn shown_refusal(&self, name: &str) -> Option<Arc<Refusal>> {
        let Some(other) = &self.duplicate else {
            return self.refusal.clone();
        };
        let message = format!(
            "another file already defines rule set `{name}`; remove one of {name}.yaml and {name}.yml"
        );
        Some(Arc::new(Refusal {
            file: other.clone(),
            diagnostics: vec![Diagnostic::new(other, Position::START, message)],
            refused_version: String::new(),
            serving_version: self.serving.as_ref().map(|s| s.version.clone()),
        }))
    }
}

/// What "this file changed" is decided on, without reading it.
#[derive(Debug, Clone)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    /// The rule set's test file (`main.test.yaml`) beside it: a loader that runs the tests
    /// reads it too, so a change to it is a change to the rule set.
    tests: Option<(u64, Option<SystemTime>, u64)>,
    /// Inode change time: catches a `chmod` that makes an unreadable file readable.
    changed: (i64, i64),
    device: u64,
    inode: u64,
    /// Where the path's symlinks lead (Kubernetes swaps `..data` under `main.yaml`).
    real: Option<PathBuf>,
    /// Modified too recently to trust: the next look reads the file to be sure.
    racy: bool,
}

/// What a scan makes of a file's metadata.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    None,
    /// Same metadata, but too recent to trust: read, and load only if the text differs.
    Maybe,
    Changed,
}

impl Stamp {
    fn of(file: &Path) -> io::Result<Stamp> {
        let meta = std::fs::metadata(file)?;
        let modified = meta.modified().ok();
        let racy = modified.is_none_or(|m| {
            SystemTime::now()
                .duration_since(m)
                .map_or(true, |age| age < RACY)
        });
        #[cfg(unix)]
        let (changed, device, inode) = {
            use std::os::unix::fs::MetadataExt;
            ((meta.ctime(), meta.ctime_nsec()), meta.dev(), meta.ino())
        };
        #[cfg(not(unix))]
        let (changed, device, inode) = ((0, 0), 0, 0);
        let test_meta = std::fs::metadata(crate::test_case::test_file_for(file)).ok();
        let racy = racy
            || test_meta
                .as_ref()
                .and_then(|t| t.modified().ok())
                .is_some_and(|m| {
                    SystemTime::now()
                        .duration_since(m)
                        .map_or(true, |age| age < RACY)
                });
        let tests = test_meta.map(|t| {
            #[cfg(unix)]
            let inode = std::os::unix::fs::MetadataExt::ino(&t);
            #[cfg(not(unix))]
            let inode = 0;
            (t.len(), t.modified().ok(), inode)
        });
        Ok(Stamp {
            len: meta.len(),
            modified,
            tests,
            changed,
            device,
            inode,
            real: std::fs::canonicalize(file).ok(),
            racy,
        })
    }

    /// Is `now` another version than this stamp, read earlier?
    fn change(&self, now: &Stamp) -> Change {
        let same = self.len == now.len
            && self.modified == now.modified
            && self.tests == now.tests
            && self.changed == now.changed
            && self.device == now.device
            && self.inode == now.inode
            && self.real == now.real;
        match (same, self.racy) {
            (false, _) => Change::Changed,
            (true, true) => Change::Maybe,
            (true, false) => Change::None,
        }
    }
}

/// Loads started and waiting.
#[derive(Debug, Default)]
struct Loads {
    running: usize,
    /// Waiting for a slot; at most one per rule set (a newer one replaces it).
    waiting: VecDeque<Job>,
}

/// One file to load.
#[derive(Debug)]
struct Job {
    name: String,
    file: PathBuf,
    generation: u64,
    /// Only makes sure the text is what the newest load read; does not supersede it.
    recheck: bool,
    /// Told how the load ended, for [`RuleStore::rescan`]; dropped when superseded.
    done: Option<mpsc::Sender<Outcome>>,
}

/// How one load ended.
#[derive(Debug)]
enum Outcome {
    Loaded(String),
    Refused(String),
    /// Same text as before, a vanished file, or a newer load took over.
    Nothing,
}

/// Is this file name a rule set (`main.yaml`), rather than a test file, a hidden or editor file?
/// "1 rule", "3 rules".
fn rules_count(n: usize) -> String {
    if n == 1 {
        "1 rule".into()
    } else {
        format!("{n} rules")
    }
}

pub fn rule_file_name(file_name: &str) -> Option<&str> {
    if file_name.starts_with('.') {
        return None;
    }
    let stem = file_name
        .strip_suffix(".yaml")
        .or_else(|| file_name.strip_suffix(".yml"))?;
    if stem.ends_with(".test") || stem.is_empty() {
        return None;
    }
    Some(stem)
}

/// The rule files in `dir`, by rule set name, sorted.
pub fn rule_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, StoreError> {
    let entries = std::fs::read_dir(dir).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => StoreError::Missing(dir.to_path_buf()),
        io::ErrorKind::NotADirectory => StoreError::NotADirectory(dir.to_path_buf()),
        _ => StoreError::Unreadable(dir.to_path_buf(), e),
    })?;
    let mut files: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_string();
            let stem = rule_file_name(&name)?.to_string();
            // Follows symlinks (Kubernetes ConfigMaps link every file through `..data`).
            let is_file = std::fs::metadata(entry.path())
                .map(|m| m.is_file())
                .unwrap_or(false);
            is_file.then(|| (stem, entry.path()))
        })
        .collect();
    files.sort();
    Ok(files)
}

impl RuleStore {
    /// Reads every rule file in `dir`. Files that fail are refused (and logged), not fatal:
    /// the server starts and serves the others.
    pub fn open(dir: &Path, context: StoreContext) -> Result<Self, StoreError> {
        Self::with_loader(dir, Arc::new(RuleLoader::new(context)))
    }

    /// As [`open`](Self::open), loading each file with `loader`; waits for every first load.
    pub fn with_loader(dir: &Path, loader: Arc<dyn Loader>) -> Result<Self, StoreError> {
        match std::fs::metadata(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::Missing(dir.to_path_buf()));
            }
            Err(e) => return Err(StoreError::Unreadable(dir.to_path_buf(), e)),
            Ok(m) if !m.is_dir() => return Err(StoreError::NotADirectory(dir.to_path_buf())),
            Ok(_) => {}
        }
        let store = RuleStore {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                loader,
                current: ArcSwap::from_pointee(Catalog::default()),
                files: Mutex::new(BTreeMap::new()),
                scanning: Mutex::new(()),
                loads: Mutex::new(Loads::default()),
                next_generation: AtomicU64::new(1),
            }),
        };
        store.rescan();
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The catalog now: hold it for the length of one request.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.shared.current.load_full()
    }

    /// Looks for changed, new and removed files and starts loading the changed ones, without
    /// waiting for them: each is swapped in when it is ready. Reads no file whose metadata
    /// (size, times, inode, symlink target) is as it was when last read.
    pub fn scan(&self) {
        self.shared.scan(None);
    }

    /// As [`scan`](Self::scan), then waits for the loads it started; says what changed.
    pub fn rescan(&self) -> ScanSummary {
        let (done, outcomes) = mpsc::channel();
        let mut summary = ScanSummary {
            removed: self.shared.scan(Some(done)),
            ..ScanSummary::default()
        };
        // Ends when every load started here has reported or was superseded.
        for outcome in outcomes {
            match outcome {
                Outcome::Loaded(name) => summary.loaded.push(name),
                Outcome::Refused(name) => summary.refused.push(name),
                Outcome::Nothing => {}
            }
        }
        summary.loaded.sort();
        summary.refused.sort();
        summary
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not stop reloads; the data is consistent after each step.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    /// Compares the directory with what is tracked; starts loads; returns the removed names.
    fn scan(self: &Arc<Self>, done: Option<mpsc::Sender<Outcome>>) -> Vec<String> {
        let _one_at_a_time = lock(&self.scanning);
        let listed = match rule_files(&self.dir) {
            Ok(files) => files,
            Err(e) => {
                // A directory swapped away for a moment (symlink swap) must not empty the catalog.
                tracing::warn!("{e}; keeping the rule sets loaded before");
                return Vec::new();
            }
        };
        // The first file of each name is the rule set; later ones are duplicates.
        let mut present: BTreeMap<String, (PathBuf, Option<PathBuf>)> = BTreeMap::new();
        for (name, file) in listed {
            present
                .entry(name)
                .and_modify(|(_, duplicate)| {
                    duplicate.get_or_insert_with(|| file.clone());
                })
                .or_insert((file, None));
        }
        // Metadata first, outside the lock: stat can be slow on network file systems.
        let stamps: HashMap<&str, io::Result<Stamp>> = present
            .iter()
            .map(|(name, (file, _))| (name.as_str(), Stamp::of(file)))
            .collect();

        let mut files = lock(&self.files);
        let mut removed = Vec::new();
        files.retain(|name, _| {
            let keep = present.contains_key(name);
            if !keep {
                removed.push(name.clone());
            }
            keep
        });
        let mut jobs = Vec::new();
        for (name, (file, duplicate)) in &present {
            let tracked = files
                .entry(name.clone())
                .or_insert_with(|| Tracked::new(file.clone()));
            if tracked.duplicate != *duplicate {
                tracked.duplicate = duplicate.clone();
                if let Some(other) = duplicate {
                    tracing::warn!(ruleset = %name, "{} refused: {} already defines rule set `{name}`", other.display(), file.display());
                }
                self.publish(name, tracked);
            }
            let stamp = match stamps.get(name.as_str()) {
                Some(Ok(stamp)) => stamp.clone(),
                // Gone since the listing: the next scan sees it gone.
                Some(Err(_)) | None => continue,
            };
            let change = match &tracked.stamp {
                Some(before) if tracked.file == *file => before.change(&stamp),
                _ => Change::Changed,
            };
            if change == Change::None {
                continue;
            }
            let recheck = change == Change::Maybe;
            tracked.file = file.clone();
            tracked.stamp = Some(stamp);
            if !recheck {
                tracked.generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
                tracked.read_version = None;
            }
            jobs.push(Job {
                name: name.clone(),
                file: file.clone(),
                generation: tracked.generation,
                recheck,
                done: done.clone(),
            });
        }
        for name in &removed {
            tracing::info!(ruleset = %name, "rule set removed: its file is gone");
            self.current.rcu(|catalog| {
                let mut next = next_catalog(catalog);
                next.rulesets.remove(name);
                next.refused.remove(name);
                next
            });
        }
        drop(files);
        for job in jobs {
            self.start(job);
        }
        removed
    }

    /// Runs `job` on a thread of its own, or queues it behind [`MAX_LOADS`] running loads.
    fn start(self: &Arc<Self>, job: Job) {
        {
            let mut loads = lock(&self.loads);
            if loads.running >= MAX_LOADS {
                let waiting = loads.waiting.iter().any(|w| w.name == job.name);
                if job.recheck && waiting {
                    // The load waiting reads the file anyway.
                    return;
                }
                // A newer version of the same file replaces one still waiting.
                loads.waiting.retain(|w| w.name != job.name);
                loads.waiting.push_back(job);
                return;
            }
            loads.running += 1;
        }
        let (name, generation) = (job.name.clone(), job.generation);
        let shared = self.clone();
        let spawned = thread::Builder::new()
            .name("rules-load".into())
            .spawn(move || shared.run(job));
        if let Err(e) = spawned {
            tracing::error!(ruleset = %name, "cannot start a thread to load the rule file: {e}; trying again at the next scan");
            lock(&self.loads).running -= 1;
            self.commit(&name, generation, |t| {
                t.stamp = None;
                false
            });
        }
    }

    /// Loads `job`, then whatever waits, until the queue is empty.
    fn run(self: Arc<Self>, mut job: Job) {
        loop {
            self.load(&job);
            let mut loads = lock(&self.loads);
            match loads.waiting.pop_front() {
                Some(next) => job = next,
                None => {
                    loads.running -= 1;
                    return;
                }
            }
        }
    }

    /// Reads, validates and commits one file.
    fn load(&self, job: &Job) {
        let outcome = self.load_outcome(job);
        if let Some(done) = &job.done {
            let _ = done.send(outcome);
        }
    }

    fn load_outcome(&self, job: &Job) -> Outcome {
        let name = &job.name;
        let file = &job.file;
        if !self.is_newest(name, job.generation) {
            return Outcome::Nothing;
        }
        let text = match self.loader.read(file) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Removed (or renamed over) since the scan: look again next time.
                self.commit(name, job.generation, |t| {
                    t.stamp = None;
                    false
                });
                return Outcome::Nothing;
            }
            Err(e) if job.recheck => {
                tracing::debug!(ruleset = %name, "re-reading {}: {e}", file.display());
                return Outcome::Nothing;
            }
            Err(e) => {
                let message = format!("cannot read the file: {e}");
                let diagnostics = vec![Diagnostic::new(file, Position::START, message)];
                return self.refuse(name, file, job.generation, String::new(), diagnostics);
            }
        };
        let version = content_version(&text);
        // Claim the file for this text; what serves now tells whether it needs compiling.
        let (generation, serving, refused_version) = {
            let mut files = lock(&self.files);
            let Some(t) = files
                .get_mut(name)
                .filter(|t| t.generation == job.generation)
            else {
                return Outcome::Nothing;
            };
            if job.recheck {
                // The newest load read this text, or reads after us: it has it covered.
                if t.read_version.as_ref().is_none_or(|v| *v == version) {
                    return Outcome::Nothing;
                }
                // Changed without its metadata showing it: this is the newest load now.
                t.generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
            }
            t.read_version = Some(version.clone());
            (
                t.generation,
                t.serving
                    .as_ref()
                    .map(|s| (s.version.clone(), s.file.clone())),
                t.refusal.as_ref().map(|r| r.refused_version.clone()),
            )
        };
        if serving
            .as_ref()
            .is_some_and(|(v, f)| *v == version && f == file)
        {
            // Touched, or restored to the text already serving: clears a refusal, if any.
            self.commit(name, generation, |t| {
                let cleared = t.refusal.take().is_some();
                if cleared {
                    tracing::info!(ruleset = %name, "refusal cleared: the file is valid again");
                }
                cleared
            });
            return Outcome::Nothing;
        }
        if refused_version.as_deref() == Some(version.as_str()) {
            return Outcome::Nothing;
        }
        // A loader that panics refuses its file; it must not take reloading down with it.
        let loaded = std::panic::catch_unwind(AssertUnwindSafe(|| {
            self.loader.load(name, file, &text)
        }))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let message = format!(
                "belroute failed while loading this file ({what}); this is a bug, please report it with the file"
            );
            Err(vec![Diagnostic::new(file, Position::START, message)])
        });
        match loaded {
            Ok(set) => {
                let committed = self.commit(name, generation, |t| {
                    match &t.serving {
                        Some(prev) => tracing::info!(
                            ruleset = %name,
                            "rule set reloaded from {} (version {} → {}, {})",
                            file.display(),
                            prev.version,
                            set.version,
                            rules_count(set.rules.len())
                        ),
                        None => tracing::info!(
                            ruleset = %name,
                            "rule set loaded from {} (version {}, {})",
                            file.display(),
                            set.version,
                            rules_count(set.rules.len())
                        ),
                    }
                    for warning in &set.warnings {
                        tracing::warn!(ruleset = %name, "{warning}");
                    }
                    t.serving = Some(set.clone());
                    t.refusal = None;
                    true
                });
                if committed {
                    Outcome::Loaded(name.clone())
                } else {
                    Outcome::Nothing
                }
            }
            Err(diagnostics) => self.refuse(name, file, generation, version, diagnostics),
        }
    }

    fn refuse(
        &self,
        name: &str,
        file: &Path,
        generation: u64,
        version: String,
        diagnostics: Vec<Diagnostic>,
    ) -> Outcome {
        let committed = self.commit(name, generation, |t| {
            // Only a version of the same file keeps serving.
            if t.serving.as_ref().is_some_and(|s| s.file != file) {
                t.serving = None;
            }
            match &t.serving {
                Some(set) => tracing::warn!(
                    ruleset = %name,
                    "{} refused ({} problem(s)); still serving version {}",
                    file.display(),
                    diagnostics.len(),
                    set.version
                ),
                None => tracing::warn!(
                    ruleset = %name,
                    "{} refused ({} problem(s)); rule set `{name}` is not served until it is fixed",
                    file.display(),
                    diagnostics.len()
                ),
            }
            for d in &diagnostics {
                tracing::warn!(ruleset = %name, "{d}");
            }
            t.refusal = Some(Arc::new(Refusal {
                file: file.to_path_buf(),
                diagnostics: diagnostics.clone(),
                refused_version: version.clone(),
                serving_version: t.serving.as_ref().map(|s| s.version.clone()),
            }));
            true
        });
        if committed {
            Outcome::Refused(name.to_string())
        } else {
            Outcome::Nothing
        }
    }

    /// Is `generation` still the newest load of `name`?
    fn is_newest(&self, name: &str, generation: u64) -> bool {
        lock(&self.files)
            .get(name)
            .is_some_and(|t| t.generation == generation)
    }

    /// Applies `change` to `name`'s entry if `generation` is still its newest load, and swaps
    /// the result into the catalog when `change` says it changed something. False when a newer
    /// load took over or the file was removed: the result is dropped.
    fn commit(
        &self,
        name: &str,
        generation: u64,
        change: impl FnOnce(&mut Tracked) -> bool,
    ) -> bool {
        let mut files = lock(&self.files);
        let Some(tracked) = files.get_mut(name).filter(|t| t.generation == generation) else {
            tracing::debug!(ruleset = %name, "a newer version of the file is loading; dropping this load");
            return false;
        };
        if change(tracked) {
            self.publish(name, tracked);
        }
        true
    }

    /// Swaps `name`'s entry, as `tracked` has it, into a new catalog.
    fn publish(&self, name: &str, tracked: &Tracked) {
        let refusal = tracked.shown_refusal(name);
        self.current.rcu(|catalog| {
            let mut next = next_catalog(catalog);
            match &tracked.serving {
                Some(set) => next.rulesets.insert(name.to_string(), set.clone()),
                None => next.rulesets.remove(name),
            };
            match &refusal {
                Some(refusal) => next.refused.insert(name.to_string(), refusal.clone()),
                None => next.refused.remove(name),
            };
            next
        });
    }
}

/// A copy of `catalog` to change one entry of; cheap, every value is shared.
fn next_catalog(catalog: &Catalog) -> Catalog {
    Catalog {
        rulesets: catalog.rulesets.clone(),
        refused: catalog.refused.clone(),
        generation: catalog.generation + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_files_are_rule_sets() {
        assert_eq!(rule_file_name("main.yaml"), Some("main"));
        assert_eq!(rule_file_name("main.yml"), Some("main"));
        assert_eq!(rule_file_name("main.test.yaml"), None);
        assert_eq!(rule_file_name(".main.yaml.swp"), None);
        assert_eq!(rule_file_name("..data"), None);
        assert_eq!(rule_file_name("main.yaml~"), None);
        assert_eq!(rule_file_name("README.md"), None);
    }
}
