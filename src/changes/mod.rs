//! Changing routing safely, in the browser and over the API. A draft of a rule file is
//! checked by the same code as `belroute check`, tested with the rule set's own tests,
//! compared against the real calls of a window (each decided by the serving version and by the
//! draft, with the facts its lookups recorded), and published: written atomically into the
//! rules directory and loaded by the ordinary reload with its test gate. Files stay the source:
//! a file saved by hand is a revision like any other ([`recorder`]).
//!
//! The work runs on the server's main runtime, never on the threads that answer calls, and at
//! most [`AT_ONCE`] changes are checked, tested or compared at a time.

pub mod diff;
pub mod forms;
mod recorder;
pub mod shared;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use belroute_engine::text::escape;
use belroute_engine::{
    Diagnostic, LoadContext, Router, RuleSet, RuleStore, StoreContext, load_test_file,
    test_file_for,
};
use serde::Serialize;

use crate::access::Principal;
use crate::replay::{Against, Limits, PAGE_SIZE, Replayer, Summary, replay_window};
use crate::storage::Storage;
use crate::storage::replay::ReplayWindow;
use crate::storage::revisions::{Revision, Source};

pub use recorder::record_revisions;

/// Changes checked, tested, compared or published at once; more wait up to [`WAIT`].
pub const AT_ONCE: usize = 2;
/// How long a change waits for its turn before it is turned away (`503`).
pub const WAIT: Duration = Duration::from_secs(10);
/// How long a publish waits for the reload to serve the new version.
pub const SERVE_WAIT: Duration = Duration::from_secs(60);
/// The largest request body that carries a draft (the API's JSON, the console's form): rule
/// files larger than this (the loader takes up to 16 MiB) are changed on disk.
pub const MAX_DRAFT_BODY: usize = 2 * 1024 * 1024;
/// The longest note a change may carry.
pub const MAX_NOTE: usize = 500;
/// The window a compare replays when none is given.
pub const COMPARE_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// One problem of a draft, at its place.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// The file it is in: the rule file, or its test file.
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Problem {
    fn of(d: &Diagnostic) -> Self {
        Problem {
            file: d.file.display().to_string(),
            line: d.position.line,
            column: d.position.column,
            message: d.message.clone(),
        }
    }
}

/// What checking a draft found.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
    /// The draft, loaded, when it has no problems.
    pub set: Option<Arc<RuleSet>>,
}

/// One of the rule set's tests run against a draft.
#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    pub name: String,
    pub file: String,
    pub line: usize,
    pub passed: bool,
    /// The route the draft answered.
    pub route: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// Who changes a rule set, and why.
#[derive(Debug, Clone)]
pub struct Attribution {
    pub source: Source,
    pub author: String,
    pub note: String,
}

/// A published version, serving.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    pub hash: String,
    /// `false` when the content was the serving version already (nothing was written).
    pub changed: bool,
}

/// Why a change was not made.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ChangeError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// The file changed since the draft was started: `current` is its version now.
    #[error("{message}")]
    Conflict {
        message: String,
        current: Option<String>,
    },
    #[error("the draft has {} problem(s); nothing was written", .0.len())]
    Refused(Vec<Problem>),
    #[error("{} of the rule set's tests fail with the draft; nothing was written", .0.iter().filter(|t| !t.passed).count())]
    FailedTests(Vec<TestResult>),
    /// Written, but the reload did not serve it; the previous version keeps serving.
    #[error("{0}")]
    NotServing(String),
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    Unavailable(String),
}

/// The rule set changes of one server.
#[derive(Debug)]
pub struct Changes {
    store: Arc<RuleStore>,
    context: StoreContext,
    router: Arc<Router>,
    replayer: Arc<Replayer>,
    storage: Storage,
    /// The bounds of a compare: `reload.replay_calls` and `reload.replay_time`.
    limits: Limits,
    /// The server's main runtime: checks, tests and compares run there, not on the threads
    /// that answer calls.
    runtime: tokio::runtime::Handle,
    /// Versions being published, by (rule set, hash): whom the recorder credits.
    pending: Mutex<HashMap<(String, String), (Attribution, Instant)>>,
    /// One publish at a time: two from the same base cannot both pass the base check.
    publishing: tokio::sync::Mutex<()>,
    work: tokio::sync::Semaphore,
    /// With `rules.source: database`: the other instances ([`shared`]).
    cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Rule sets whose file this instance removes because the database says so.
    removals: Mutex<HashSet<String>>,
    /// By rule set, the version this instance last wrote into its rules directory.
    written: Mutex<HashMap<String, String>>,
}

impl Changes {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<RuleStore>,
        context: StoreContext,
        router: Arc<Router>,
        replayer: Arc<Replayer>,
        storage: Storage,
        max_calls: u64,
        max_time: Duration,
        cluster: Option<Arc<crate::cluster::Cluster>>,
    ) -> Self {
        Changes {
            store,
            context,
            router,
            replayer,
            storage,
            limits: Limits {
                page_size: PAGE_SIZE,
                max_calls: Some(max_calls),
                max_time: Some(max_time),
            },
            runtime: tokio::runtime::Handle::current(),
            pending: Mutex::new(HashMap::new()),
            publishing: tokio::sync::Mutex::new(()),
            work: tokio::sync::Semaphore::new(AT_ONCE),
            cluster,
            removals: Mutex::new(HashSet::new()),
            written: Mutex::new(HashMap::new()),
        }
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    async fn turn(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ChangeError> {
        match tokio::time::timeout(WAIT, self.work.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(ChangeError::Busy(format!(
                "{AT_ONCE} changes are being checked already; try again in a few seconds"
            ))),
        }
    }

    /// The file rule set `name` is (or would be) read from.
    pub fn file_for(&self, name: &str) -> PathBuf {
        let dir = self.store.dir();
        belroute_engine::rule_files(dir)
            .ok()
            .and_then(|files| files.into_iter().find(|(n, _)| n == name))
            .map_or_else(|| dir.join(format!("{name}.yaml")), |(_, file)| file)
    }

    /// The text of rule set `name`'s file now, and its version; `None` when there is none.
    pub fn current(&self, name: &str) -> Result<Option<(String, String)>, ChangeError> {
        check_name(name)?;
        let file = self.file_for(name);
        match belroute_engine::catalog::read_capped(&file) {
            Ok(text) => {
                let version = belroute_engine::content_version(&text);
                Ok(Some((text, version)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ChangeError::Unavailable(format!(
                "cannot read {}: {e}",
                file.display()
            ))),
        }
    }

    /// Checks `content` as rule set `name`, as `belroute check` does: every problem at its
    /// line, the rule set's test file's facts held to the lookups' declarations too.
    pub async fn check(&self, name: &str, content: &str) -> Result<Checked, ChangeError> {
        check_name(name)?;
        check_size(content)?;
        let _turn = self.turn().await?;
        let (name, content) = (name.to_string(), content.to_string());
        let file = self.file_for(&name);
        let context = self.context.clone();
        let job = self
            .runtime
            .spawn_blocking(move || check_draft(&context, &name, &file, &content));
        job.await
            .map_err(|e| ChangeError::Unavailable(format!("the check stopped: {e}")))
    }

    /// Runs the rule set's own tests (`tests:` and `{name}.test.yaml`) against a loaded draft.
    pub async fn test(&self, set: &Arc<RuleSet>) -> Result<Vec<TestResult>, ChangeError> {
        let _turn = self.turn().await?;
        self.run_tests(set).await
    }

    async fn run_tests(&self, set: &Arc<RuleSet>) -> Result<Vec<TestResult>, ChangeError> {
        let mut cases = set.tests.clone();
        let test_file = test_file_for(&set.file);
        match belroute_engine::catalog::read_capped(&test_file) {
            Ok(text) => cases.extend(
                load_test_file(&test_file, &text)
                    .map_err(|p| ChangeError::Refused(p.iter().map(Problem::of).collect()))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ChangeError::Unavailable(format!(
                    "cannot read {}: {e}",
                    test_file.display()
                )));
            }
        }
        let (router, set) = (self.router.clone(), set.clone());
        let job = self.runtime.spawn(async move {
            let mut results = Vec::new();
            for case in &cases {
                let report = belroute_engine::run_test(&router, &set, case).await;
                results.push(TestResult {
                    name: case.name.clone(),
                    file: case.file.display().to_string(),
                    line: case.position.line,
                    passed: report.passed(),
                    route: report.decision.route.clone(),
                    failure: report.failure,
                });
            }
            results
        });
        job.await
            .map_err(|e| ChangeError::Unavailable(format!("the tests stopped: {e}")))
    }

    /// The calls of rule set `set.name` logged since `since_ms`, decided by the serving version
    /// and by `draft`, with the facts each recorded: which would route differently. Bounded
    /// like the replay after a reload (`reload.replay_calls`, `reload.replay_time`).
    pub async fn compare(
        &self,
        draft: &Arc<RuleSet>,
        since_ms: i64,
    ) -> Result<Summary, ChangeError> {
        let _turn = self.turn().await?;
        let name = draft.name.to_string();
        let serving = self.store.catalog().get(&name).cloned();
        let window = ReplayWindow {
            rulesets: vec![name.clone()],
            from_ms: since_ms,
            to_ms: crate::time::now_ms(),
            except_version: None,
        };
        let sets = BTreeMap::from([(name.clone(), draft.clone())]);
        let (replayer, storage, limits) = (
            self.replayer.clone(),
            self.storage.clone(),
            self.limits.clone(),
        );
        let job = self.runtime.spawn(async move {
            let before = serving.map(|s| BTreeMap::from([(name, s)]));
            let against = before.as_ref().map_or(Against::Logged, Against::Versions);
            replay_window(&replayer, &storage, &window, &sets, against, &limits).await
        });
        match job.await {
            Ok(Ok(summary)) => Ok(summary),
            Ok(Err(e)) => Err(ChangeError::Unavailable(format!(
                "cannot read the call log: {e}"
            ))),
            Err(e) => Err(ChangeError::Unavailable(format!(
                "the compare stopped: {e}"
            ))),
        }
    }

    /// Publishes `content` as rule set `name`: refused unless `base` is the version on disk
    /// now (`None`: a new rule set), the draft checks clean and its tests pass; then written
    /// atomically and served once the reload has loaded it.
    pub async fn publish(
        &self,
        name: &str,
        content: &str,
        base: Option<&str>,
        who: &Principal,
        source: Source,
        note: &str,
    ) -> Result<Published, ChangeError> {
        check_name(name)?;
        check_size(content)?;
        let note = note.trim();
        if note.is_empty() {
            return Err(ChangeError::BadRequest(
                "a note is required: say what the change does and why (it shows in the history)"
                    .into(),
            ));
        }
        if note.chars().count() > MAX_NOTE || note.chars().any(|c| c.is_control() && c != '\n') {
            return Err(ChangeError::BadRequest(format!(
                "the note is text of at most {MAX_NOTE} characters"
            )));
        }
        let _one_at_a_time = self.publishing.lock().await;
        let mut current = self.current(name)?;
        if self.shared() && base != current.as_ref().map(|(_, v)| v.as_str()) {
            // This instance's copy may lag a publish made elsewhere a moment ago.
            self.follow(name).await;
            current = self.current(name)?;
        }
        match (base, &current) {
            (Some(base), Some((_, now))) if base == now => {}
            (None, None) => {}
            (_, Some((_, now))) => {
                return Err(self.conflict(name, now, base.is_none()).await);
            }
            (Some(_), None) => {
                return Err(ChangeError::Conflict {
                    message: format!(
                        "rule set `{name}` has no file now (it was removed since the draft was started); publish it as a new rule set (base null)"
                    ),
                    current: None,
                });
            }
        }
        let hash = belroute_engine::content_version(content);
        if current.as_ref().is_some_and(|(_, now)| *now == hash) {
            return Ok(Published {
                hash,
                changed: false,
            });
        }
        let checked = self.check(name, content).await?;
        let Some(set) = checked.set else {
            return Err(ChangeError::Refused(checked.problems));
        };
        let tests = {
            let _turn = self.turn().await?;
            self.run_tests(&set).await?
        };
        if tests.iter().any(|t| !t.passed) {
            return Err(ChangeError::FailedTests(tests));
        }
        let attribution = Attribution {
            source,
            author: who.name.clone(),
            note: note.to_string(),
        };
        let previous = current.as_ref().map(|(_, v)| v.clone());
        if self.shared() {
            // The database decides who published first, across instances.
            let revision = Revision {
                ruleset: name.to_string(),
                hash: hash.clone(),
                loaded_at: crate::time::now_ms(),
                source,
                author: who.name.clone(),
                note: note.to_string(),
                content: None,
            };
            let unavailable = |e: sqlx::Error| {
                ChangeError::Unavailable(format!(
                    "the database did not answer ({e}); with rules.source: database nothing is published without it"
                ))
            };
            self.storage
                .record_revision(&revision, content)
                .await
                .map_err(unavailable)?;
            if !self
                .publish_shared(name, Some(&hash), previous.as_deref(), &who.name)
                .await
                .map_err(unavailable)?
            {
                self.follow(name).await;
                let now = self.current(name)?.map(|(_, v)| v).unwrap_or_default();
                return Err(self.conflict(name, &now, base.is_none()).await);
            }
        }
        self.expect(name, &hash, attribution.clone());
        let file = self.file_for(name);
        let (text, target) = (content.to_string(), file.clone());
        self.runtime
            .spawn_blocking(move || write_atomically(&target, &text))
            .await
            .map_err(|e| ChangeError::Unavailable(format!("writing stopped: {e}")))?
            .map_err(|e| {
                ChangeError::Unavailable(format!("cannot write {}: {e}", file.display()))
            })?;
        self.wrote(name, &hash);
        tracing::info!(
            ruleset = %name,
            version = %hash,
            author = %escape(&who.name),
            source = source.as_str(),
            "rule set written; waiting for the reload to serve it"
        );
        self.wait_until_served(name, &hash).await?;
        self.remember(name, &hash, content, &attribution, previous.as_deref())
            .await;
        Ok(Published {
            hash,
            changed: true,
        })
    }

    /// Credits the next load of `name` at `hash` to `who` (the recorder reads it).
    fn expect(&self, name: &str, hash: &str, who: Attribution) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|_, (_, at)| at.elapsed() < Duration::from_secs(600));
        pending.insert((name.to_string(), hash.to_string()), (who, Instant::now()));
    }

    /// The next removal of `name`'s file is the database's doing, not a person's.
    fn expect_removal(&self, name: &str) {
        self.removals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string());
    }

    fn removal_expected(&self, name: &str) -> bool {
        self.removals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
    }

    /// Whom the load of `name` at `hash` is credited to, if it was published (or written
    /// from the database) here. The recorder forgets it ([`Self::credit_used`]) once the
    /// revision is stored, so a look that fails is retried with the same credit.
    fn credited(&self, name: &str, hash: &str) -> Option<Attribution> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(name.to_string(), hash.to_string()))
            .map(|(who, _)| who.clone())
    }

    fn credit_used(&self, name: &str, hash: &str) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(name.to_string(), hash.to_string()));
    }

    /// The version this instance last wrote into its rules directory for `name` (published
    /// here, or written from the database): what a file saved by hand was based on.
    fn last_written(&self, name: &str) -> Option<String> {
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    fn wrote(&self, name: &str, hash: &str) {
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), hash.to_string());
    }

    /// Stores the revision and the audit entry of a publish.
    async fn remember(
        &self,
        name: &str,
        hash: &str,
        content: &str,
        who: &Attribution,
        previous: Option<&str>,
    ) {
        let now = crate::time::now_ms();
        let revision = Revision {
            ruleset: name.to_string(),
            hash: hash.to_string(),
            loaded_at: now,
            source: who.source,
            author: who.author.clone(),
            note: who.note.clone(),
            content: None,
        };
        let action = match who.source {
            Source::Restore => "ruleset.restore",
            _ if previous.is_none() => "ruleset.create",
            _ => "ruleset.publish",
        };
        let detail = serde_json::json!({
            "from": previous,
            "to": hash,
            "source": who.source.as_str(),
            "note": who.note,
        });
        let stored = async {
            self.storage.record_revision(&revision, content).await?;
            if let Some(previous) = previous {
                self.storage.revision_replaced(name, previous, now).await?;
            }
            self.storage.audit(&who.author, action, name, &detail).await
        };
        if let Err(e) = stored.await {
            tracing::warn!(
                ruleset = %name,
                "published, but its revision was not stored (database: {e}); the recorder stores it when the database answers, as a file change"
            );
        }
    }

    /// Waits until the catalog serves `hash` for `name`, or the reload refused it.
    async fn wait_until_served(&self, name: &str, hash: &str) -> Result<(), ChangeError> {
        let store = self.store.clone();
        // The watcher may already be loading it; a rescan makes sure it is looked at.
        let _ = self.runtime.spawn_blocking(move || store.rescan()).await;
        let started = Instant::now();
        loop {
            let catalog = self.store.catalog();
            if catalog.get(name).is_some_and(|s| s.version == hash) {
                return Ok(());
            }
            if let Some(refusal) = catalog.refused.get(name)
                && refusal.refused_version == hash
            {
                let problems: Vec<String> = refusal
                    .diagnostics
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                return Err(ChangeError::NotServing(format!(
                    "the reload refused the written file ({}); the previous version keeps serving",
                    problems.join("; ")
                )));
            }
            if started.elapsed() > SERVE_WAIT {
                return Err(ChangeError::NotServing(format!(
                    "written, but not serving after {}s; see /readyz and the server's log",
                    SERVE_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The `409` when the file is not the draft's base: who changed it, and when.
    async fn conflict(&self, name: &str, now: &str, wanted_new: bool) -> ChangeError {
        let by = match self.storage.revision(name, now).await {
            Ok(Some(r)) => format!(
                "by {} ({}) at {}",
                r.author,
                r.source.as_str(),
                crate::time::rfc3339_secs(r.loaded_at)
            ),
            _ => "on disk".to_string(),
        };
        let message = if wanted_new {
            format!(
                "rule set `{name}` exists already (version {now}, saved {by}); start from it (base {now}) to change it"
            )
        } else {
            format!(
                "rule set `{name}` changed since the draft was started: it is version {now} now, saved {by}; your draft is kept: compare it with the new version and publish again from base {now}"
            )
        };
        ChangeError::Conflict {
            message,
            current: Some(now.to_string()),
        }
    }
}

/// A rule set name as the loader takes it: letters, digits, `-`, `_`; no paths.
fn check_name(name: &str) -> Result<(), ChangeError> {
    if belroute_engine::valid_name(name) {
        Ok(())
    } else {
        Err(ChangeError::BadRequest(format!(
            "`{}` is not a rule set name: letters, digits, `-` and `_` only (e.g. `main`)",
            escape(name)
        )))
    }
}

fn check_size(content: &str) -> Result<(), ChangeError> {
    if content.len() > belroute_engine::yaml::MAX_INPUT_BYTES {
        return Err(ChangeError::BadRequest(format!(
            "the draft is {} bytes; a rule file is at most {} bytes",
            content.len(),
            belroute_engine::yaml::MAX_INPUT_BYTES
        )));
    }
    Ok(())
}

/// What `belroute check` does with one file, on a draft's text.
fn check_draft(context: &StoreContext, name: &str, file: &Path, content: &str) -> Checked {
    let ctx = LoadContext {
        scripts: &context.scripts,
        lookups: &context.lookups,
        calendars: &context.calendars,
        time_zone: context.time_zone,
    };
    match RuleSet::load(name, file, content, &ctx) {
        Err(problems) => Checked {
            problems: problems.iter().map(Problem::of).collect(),
            ..Checked::default()
        },
        Ok(set) => {
            let mut checked = Checked {
                warnings: set.warnings.iter().map(Problem::of).collect(),
                ..Checked::default()
            };
            let test_file = test_file_for(file);
            if let Ok(text) = belroute_engine::catalog::read_capped(&test_file) {
                match load_test_file(&test_file, &text) {
                    Ok(cases) => {
                        let (problems, warnings) = set.check_tests(&cases);
                        checked.problems.extend(problems.iter().map(Problem::of));
                        checked.warnings.extend(warnings.iter().map(Problem::of));
                    }
                    Err(problems) => checked.problems.extend(problems.iter().map(Problem::of)),
                }
            }
            if checked.problems.is_empty() {
                checked.set = Some(Arc::new(set));
            }
            checked
        }
    }
}

/// Writes `text` to `file` so that a reader sees the old or the new file, never a part: a
/// temporary file beside it (hidden, so the rules directory's watcher ignores it), synced,
/// renamed over it, and the directory synced. A symlink is not written through.
fn write_atomically(file: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    if std::fs::symlink_metadata(file).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(std::io::Error::other(
            "it is a symbolic link, managed elsewhere (a ConfigMap, a deployment); change it there",
        ));
    }
    let dir = file.parent().unwrap_or(Path::new("."));
    let base = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = dir.join(format!(".{base}.belroute-{}", std::process::id()));
    let written = (|| {
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)?;
        // The file keeps the permissions of the one it replaces.
        if let Ok(meta) = std::fs::metadata(file) {
            out.set_permissions(meta.permissions())?;
        }
        out.write_all(text.as_bytes())?;
        out.sync_all()?;
        std::fs::rename(&temporary, file)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_whole_and_a_symlink_is_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("main.yaml");
        std::fs::write(&file, "old").unwrap();
        write_atomically(&file, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["main.yaml"], "no temporary file left");
        #[cfg(unix)]
        {
            let outside = tempfile::tempdir().unwrap();
            let target = outside.path().join("elsewhere.yaml");
            std::fs::write(&target, "theirs").unwrap();
            let link = dir.path().join("linked.yaml");
            std::os::unix::fs::symlink(&target, &link).unwrap();
            let refused = write_atomically(&link, "mine").unwrap_err();
            assert!(refused.to_string().contains("symbolic link"), "{refused}");
            assert_eq!(std::fs::read_to_string(&target).unwrap(), "theirs");
        }
    }
}
