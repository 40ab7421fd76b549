//! Replays the fuzzers' committed inputs on stable Rust: every file under `fuzz/corpus/<target>/`
//! and `fuzz/regressions/<target>/` goes through the same harness the cargo-fuzz targets run
//! (`fuzz/src/lib.rs`), which panics when an entry point panics or breaks a promise it checks.
//! So `cargo test --workspace` (and `.ci/run`) keeps every crash the fuzzers ever found fixed.
//! See docs/fuzzing.md.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[path = "../fuzz/src/lib.rs"]
mod harness;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The input files of one target directory, sorted; none if the directory does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every input of `kind` (`corpus` or `regressions`); returns how many ran, and the
/// failures as `path: panic message`.
fn replay(kind: &str) -> (usize, Vec<String>) {
    let root = fuzz_dir().join(kind);
    // A directory named after no target is a typo that would silently replay nothing.
    if let Ok(entries) = std::fs::read_dir(&root) {
        for entry in entries {
            let path = entry.expect("readable directory entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                !path.is_dir() || harness::TARGETS.contains(&name.as_str()),
                "{} names no fuzz target; use one of {:?}",
                path.display(),
                harness::TARGETS
            );
        }
    }
    let mut ran = 0;
    let mut failures = Vec::new();
    for target in harness::TARGETS {
        for file in inputs(&root.join(target)) {
            let data = std::fs::read(&file).unwrap();
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| harness::run(target, &data)));
            ran += 1;
            match outcome {
                Ok(true) => {}
                Ok(false) => failures.push(format!("{}: no target {target}", file.display())),
                Err(panic) => failures.push(format!(
                    "{}: {}",
                    file.display(),
                    belroute_engine::panic_message(&*panic)
                )),
            }
        }
    }
    (ran, failures)
}

#[test]
fn every_corpus_input_is_handled() {
    for target in harness::TARGETS {
        let dir = fuzz_dir().join("corpus").join(target);
        assert!(
            !inputs(&dir).is_empty(),
            "{} has no inputs; the fuzz corpus belongs in the repository (docs/fuzzing.md)",
            dir.display()
        );
    }
    let (ran, failures) = replay("corpus");
    assert!(
        failures.is_empty(),
        "{} of {ran} corpus inputs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_crash_found_stays_fixed() {
    let (ran, failures) = replay("regressions");
    assert!(
        failures.is_empty(),
        "{} of {ran} regression inputs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
