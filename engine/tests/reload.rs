//! Rule files load independently, and an idle watcher reads nothing: real directories, real
//! files, the real watcher; a [`Loader`] wrapper counts reads and can hold a load back.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use belroute_engine::catalog::{Loader, RuleLoader, RuleStore, StoreContext};
use belroute_engine::watch;
use belroute_engine::{Diagnostic, Limits, RuleSet, ScriptEngine};

fn context() -> StoreContext {
    StoreContext {
        scripts: Arc::new(ScriptEngine::new(&Limits::default())),
        lookups: Default::default(),
        calendars: Default::default(),
        time_zone: chrono_tz::Europe::Amsterdam,
    }
}

/// A rule set answering `route`, which its description repeats (to tell versions apart).
fn answering(route: &str) -> String {
    format!(
        "description: {route}\ndefault: fallback\nrules:\n  - name: Always\n    route: {route}\n"
    )
}

/// A rule set of `n` rules, each with a condition to compile, answering `route` by default.
fn big(n: usize, route: &str) -> String {
    let mut text = format!("default: {route}\nrules:\n");
    for i in 0..n {
        text.push_str(&format!(
            "  - name: rule {i}\n    when: 'call.caller_number == \"316{i:08}\" && caller.valid'\n    route: r{}\n",
            i % 97
        ));
    }
    text
}

/// The real loader, counting reads per file and holding back loads of texts that contain
/// `HOLD` until [`Gated::release`].
#[derive(Debug)]
struct Gated {
    inner: RuleLoader,
    reads: Mutex<BTreeMap<PathBuf, usize>>,
    released: Mutex<bool>,
    wake: Condvar,
}

impl Gated {
    fn new() -> Arc<Self> {
        Arc::new(Gated {
            inner: RuleLoader::new(context()),
            reads: Mutex::new(BTreeMap::new()),
            released: Mutex::new(false),
            wake: Condvar::new(),
        })
    }

    fn reads(&self) -> BTreeMap<PathBuf, usize> {
        self.reads.lock().unwrap().clone()
    }

    fn total_reads(&self) -> usize {
        self.reads.lock().unwrap().values().sum()
    }

    fn release(&self) {
        *self.released.lock().unwrap() = true;
        self.wake.notify_all();
    }
}

impl Loader for Gated {
    fn read(&self, file: &Path) -> std::io::Result<String> {
        *self
            .reads
            .lock()
            .unwrap()
            .entry(file.to_path_buf())
            .or_default() += 1;
        self.inner.read(file)
    }

    fn load(&self, name: &str, file: &Path, text: &str) -> Result<Arc<RuleSet>, Vec<Diagnostic>> {
        if text.contains("HOLD") {
            let mut released = self.released.lock().unwrap();
            while !*released {
                released = self.wake.wait(released).unwrap();
            }
        }
        self.inner.load(name, file, text)
    }
}

/// The route a rule set from `answering` gives, by its description.
fn first_route(store: &RuleStore, name: &str) -> Option<String> {
    Some(store.catalog().get(name)?.description.clone())
}

fn default_route(store: &RuleStore, name: &str) -> Option<String> {
    store
        .catalog()
        .get(name)
        .map(|set| set.default_route.clone())
}

fn eventually(limit: Duration, what: &str, check: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    started.elapsed()
}

/// Writes `text` to `file` and dates it an hour back, as a file saved long ago.
fn write_old(file: &Path, text: &str) {
    std::fs::write(file, text).unwrap();
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(file)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
}

#[test]
fn an_idle_watcher_reads_no_file() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..50 {
        write_old(
            &dir.path().join(format!("set{i}.yaml")),
            &answering(&format!("r{i}")),
        );
    }
    let loader = Gated::new();
    let store = Arc::new(RuleStore::with_loader(dir.path(), loader.clone()).unwrap());
    assert_eq!(store.catalog().rulesets.len(), 50);
    assert_eq!(loader.total_reads(), 50, "each file read once at start");

    // Safety scans every 100 ms: ten of them in this second, and events from nothing.
    let _watcher = watch::watch_with(
        store.clone(),
        Duration::from_millis(50),
        Duration::from_millis(100),
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(loader.total_reads(), 50, "idle: no file read again");

    // An edit reads the edited file, and no other.
    std::fs::write(dir.path().join("set7.yaml"), answering("edited")).unwrap();
    eventually(Duration::from_secs(1), "set7 edited", || {
        first_route(&store, "set7").as_deref() == Some("edited")
    });
    std::thread::sleep(Duration::from_millis(500));
    let reads = loader.reads();
    for (file, count) in &reads {
        if file.ends_with("set7.yaml") {
            // Read again by safety scans only while its time stamp is too fresh to trust.
            assert!(*count >= 2, "{count}");
        } else {
            assert_eq!(*count, 1, "{} read again", file.display());
        }
    }
}

/// The case: while a big file compiles for seconds, an edit to a small one is live at
/// once, and the big one follows when it is ready.
#[test]
fn a_big_file_does_not_delay_another_files_reload() {
    let dir = tempfile::tempdir().unwrap();
    let rules = 20_000;
    std::fs::write(dir.path().join("big.yaml"), big(rules, "big_one")).unwrap();
    std::fs::write(dir.path().join("small.yaml"), answering("one")).unwrap();
    let started = Instant::now();
    let store = Arc::new(RuleStore::open(dir.path(), context()).unwrap());
    let big_load = started.elapsed();
    eprintln!("{rules} rules loaded in {big_load:?}");
    assert_eq!(default_route(&store, "big").as_deref(), Some("big_one"));
    let _watcher = watch::watch(store.clone()).unwrap();

    std::fs::write(dir.path().join("big.yaml"), big(rules, "big_two")).unwrap();
    // Let the watcher start the big load, then save the small file.
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(dir.path().join("small.yaml"), answering("two")).unwrap();
    let took = eventually(Duration::from_secs(1), "small.yaml live", || {
        first_route(&store, "small").as_deref() == Some("two")
    });
    eprintln!("small.yaml live after {took:?} while big.yaml loads");
    assert_eq!(
        default_route(&store, "big").as_deref(),
        Some("big_one"),
        "the big file was still loading (else this test proves nothing: make it bigger)"
    );
    eventually(
        big_load * 4 + Duration::from_secs(5),
        "big.yaml live",
        || default_route(&store, "big").as_deref() == Some("big_two"),
    );
    assert_eq!(store.catalog().refused.len(), 0);
}

/// A newer version always wins over an older load still running, and a removal over both.
#[test]
fn a_newer_version_wins_over_an_older_load_still_running() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("main.yaml");
    std::fs::write(&file, answering("one")).unwrap();
    let loader = Gated::new();
    let store = RuleStore::with_loader(dir.path(), loader.clone()).unwrap();

    // v2 is held in its load; v3 is saved meanwhile and goes live; then v2 finishes.
    std::fs::write(&file, format!("# HOLD\n{}", answering("two"))).unwrap();
    store.scan();
    eventually(Duration::from_secs(2), "v2 read", || {
        loader.reads().get(&file) == Some(&2)
    });
    std::fs::write(&file, answering("three-and-longer")).unwrap();
    store.scan();
    eventually(Duration::from_secs(2), "v3 live", || {
        first_route(&store, "main").as_deref() == Some("three-and-longer")
    });
    let generation = store.catalog().generation;
    loader.release();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        first_route(&store, "main").as_deref(),
        Some("three-and-longer"),
        "the older load must not replace the newer version"
    );
    assert_eq!(store.catalog().generation, generation, "nothing swapped");

    // Removed while a load is held: the load's result is dropped, the rule set stays gone.
    let loader = Gated::new();
    let store = RuleStore::with_loader(dir.path(), loader.clone()).unwrap();
    std::fs::write(&file, format!("# HOLD\n{}", answering("four"))).unwrap();
    store.scan();
    eventually(Duration::from_secs(2), "v4 read", || {
        loader.reads().get(&file) == Some(&2)
    });
    std::fs::remove_file(&file).unwrap();
    assert_eq!(store.rescan().removed, vec!["main".to_string()]);
    loader.release();
    std::thread::sleep(Duration::from_millis(200));
    assert!(store.catalog().get("main").is_none());
    assert!(store.catalog().refused.is_empty());
}

#[test]
fn a_refused_file_keeps_its_last_good_version_and_duplicates_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("main.yaml");
    std::fs::write(&file, answering("one")).unwrap();
    let store = RuleStore::open(dir.path(), context()).unwrap();
    let good = store.catalog().get("main").unwrap().version.clone();

    std::fs::write(&file, "default: x\nrules: [").unwrap();
    let summary = store.rescan();
    assert_eq!(summary.refused, vec!["main".to_string()]);
    let catalog = store.catalog();
    assert_eq!(catalog.get("main").unwrap().version, good);
    let refusal = &catalog.refused["main"];
    assert_eq!(refusal.serving_version.as_deref(), Some(good.as_str()));
    assert!(
        refusal.diagnostics[0].message.starts_with("YAML syntax"),
        "{refusal:?}"
    );

    // Restored to the text serving: the refusal clears without compiling again.
    std::fs::write(&file, answering("one")).unwrap();
    store.rescan();
    assert!(store.catalog().refused.is_empty());
    assert_eq!(store.catalog().get("main").unwrap().version, good);

    // `main.yml` beside `main.yaml`: refused, `main.yaml` keeps serving.
    std::fs::write(dir.path().join("main.yml"), answering("two")).unwrap();
    store.rescan();
    let catalog = store.catalog();
    assert_eq!(catalog.get("main").unwrap().version, good);
    let refusal = &catalog.refused["main"];
    assert!(refusal.file.ends_with("main.yml"), "{refusal:?}");
    assert!(
        refusal.diagnostics[0]
            .message
            .contains("another file already defines rule set `main`"),
        "{refusal:?}"
    );
    std::fs::remove_file(dir.path().join("main.yml")).unwrap();
    store.rescan();
    assert!(store.catalog().refused.is_empty());
}

/// An alias bomb saved over a live rule set is refused at once, with its position, and the
/// last good version keeps serving.
#[test]
fn an_alias_bomb_is_refused_and_the_last_good_version_serves() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("main.yaml");
    std::fs::write(&file, answering("one")).unwrap();
    let store = RuleStore::open(dir.path(), context()).unwrap();
    let mut bomb = String::from("default: x\nrules: []\na: &a [lol]\n");
    for pair in ('a'..='j').collect::<Vec<_>>().windows(2) {
        let refs = vec![format!("*{}", pair[0]); 10].join(",");
        bomb.push_str(&format!("{0}: &{0} [{refs}]\n", pair[1]));
    }
    std::fs::write(&file, &bomb).unwrap();
    let started = Instant::now();
    store.rescan();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let catalog = store.catalog();
    assert!(catalog.get("main").is_some());
    let problem = catalog.refused["main"].diagnostics[0].to_string();
    assert!(
        problem.contains("main.yaml:9:") && problem.contains("YAML aliases expand to more than"),
        "{problem}"
    );
}

/// A loader that panics refuses its file; later loads (more than there are load slots) work.
#[test]
fn a_panicking_load_refuses_its_file_and_reloading_goes_on() {
    #[derive(Debug)]
    struct Panicky(RuleLoader);
    impl Loader for Panicky {
        fn load(
            &self,
            name: &str,
            file: &Path,
            text: &str,
        ) -> Result<Arc<RuleSet>, Vec<Diagnostic>> {
            assert!(!text.contains("PANIC"), "the loader broke");
            self.0.load(name, file, text)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("main.yaml");
    std::fs::write(&file, answering("one")).unwrap();
    let store =
        RuleStore::with_loader(dir.path(), Arc::new(Panicky(RuleLoader::new(context())))).unwrap();
    for round in 0..2 * belroute_engine::catalog::MAX_LOADS {
        std::fs::write(&file, format!("# PANIC {round}\n{}", answering("two"))).unwrap();
        assert_eq!(store.rescan().refused, vec!["main".to_string()]);
        let catalog = store.catalog();
        let problem = catalog.refused["main"].diagnostics[0].to_string();
        assert!(
            problem.contains("belroute failed while loading this file (the loader broke)"),
            "{problem}"
        );
        assert_eq!(first_route(&store, "main").as_deref(), Some("one"));
    }
    std::fs::write(&file, answering("three")).unwrap();
    assert_eq!(store.rescan().loaded, vec!["main".to_string()]);
    assert_eq!(first_route(&store, "main").as_deref(), Some("three"));
}
