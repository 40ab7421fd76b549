//! The `check` and `test` commands: what an operator runs before (or instead of) saving live.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use belroute_engine::catalog::rule_files;
use belroute_engine::decide::RuleOutcome;
use belroute_engine::ruleset::LoadContext;
use belroute_engine::testing::{self, TestCase};
use belroute_engine::{Diagnostic, Router, RuleSet};

use crate::config::Config;

/// Reads `belroute.yaml`: the file given, else `./belroute.yaml` when present, else defaults.
pub fn load_config(explicit: Option<&Path>) -> anyhow::Result<(Config, Option<PathBuf>)> {
    let path = config_path(explicit);
    let config = match &path {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    Ok((config, path))
}

/// As [`load_config`], tolerating unset environment variables (for `check` and `test`).
pub fn load_config_for_check(explicit: Option<&Path>) -> anyhow::Result<Config> {
    Ok(match config_path(explicit) {
        Some(path) => Config::load_for_check(&path)?,
        None => Config::default(),
    })
}

fn config_path(explicit: Option<&Path>) -> Option<PathBuf> {
    match explicit {
        Some(path) => Some(path.to_path_buf()),
        None => Some(PathBuf::from("belroute.yaml")).filter(|p| p.is_file()),
    }
}

/// Every rule set in a directory, loaded or with its problems.
#[derive(Debug, Default)]
pub struct Checked {
    pub rulesets: Vec<RuleSet>,
    /// Tests from `{name}.test.yaml` files, by rule set name.
    pub test_files: Vec<(String, Vec<TestCase>)>,
    pub problems: Vec<Diagnostic>,
    pub files: usize,
}

/// Loads every rule file and test file in `dir`, collecting all problems.
pub fn check_dir(dir: &Path, router: &Router, config: &Config) -> anyhow::Result<Checked> {
    let files = rule_files(dir)?;
    let configured: BTreeSet<String> = config.lookup_names();
    let ctx = LoadContext {
        scripts: router.scripts(),
        configured_lookups: &configured,
        time_zone: config.timezone.0,
    };
    let mut checked = Checked {
        files: files.len(),
        ..Checked::default()
    };
    for (name, file) in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        match RuleSet::load(&name, &file, &text, &ctx) {
            Ok(set) => checked.rulesets.push(set),
            Err(problems) => checked.problems.extend(problems),
        }
        let test_file = testing::test_file_for(&file);
        if let Ok(text) = std::fs::read_to_string(&test_file) {
            match testing::load_test_file(&test_file, &text) {
                Ok(tests) => checked.test_files.push((name.clone(), tests)),
                Err(problems) => checked.problems.extend(problems),
            }
        }
    }
    Ok(checked)
}

/// `belroute check`: prints every problem as `file:line:col: message`; false when any.
pub fn check(
    dir: &Path,
    router: &Router,
    config: &Config,
    out: &mut String,
) -> anyhow::Result<bool> {
    let checked = check_dir(dir, router, config)?;
    for note in &config.notes {
        let _ = writeln!(out, "note: {note}");
    }
    for problem in &checked.problems {
        let _ = writeln!(out, "{problem}");
    }
    let rules: usize = checked.rulesets.iter().map(|s| s.rules.len()).sum();
    let tests: usize = checked
        .rulesets
        .iter()
        .map(|s| s.tests.len())
        .sum::<usize>()
        + checked
            .test_files
            .iter()
            .map(|(_, t)| t.len())
            .sum::<usize>();
    if checked.problems.is_empty() {
        let _ = writeln!(
            out,
            "ok: {} rule set(s), {rules} rule(s), {tests} test(s) in {}",
            checked.rulesets.len(),
            dir.display()
        );
        Ok(true)
    } else {
        let files: BTreeSet<&Path> = checked.problems.iter().map(|p| p.file.as_path()).collect();
        let _ = writeln!(
            out,
            "{} problem(s) in {} file(s)",
            checked.problems.len(),
            files.len()
        );
        Ok(false)
    }
}

/// `belroute test`: runs every rule test (optionally only of the rule sets named); false when
/// any fails or a file has problems.
pub async fn test(
    dir: &Path,
    router: &Router,
    config: &Config,
    only: &[String],
    out: &mut String,
) -> anyhow::Result<bool> {
    let checked = check_dir(dir, router, config)?;
    for note in &config.notes {
        let _ = writeln!(out, "note: {note}");
    }
    for problem in &checked.problems {
        let _ = writeln!(out, "{problem}");
    }
    let (mut passed, mut failed) = (0, 0);
    for set in &checked.rulesets {
        if !only.is_empty() && !only.contains(&set.name) {
            continue;
        }
        let from_file = checked
            .test_files
            .iter()
            .filter(|(n, _)| *n == set.name)
            .flat_map(|(_, t)| t.iter());
        for case in set.tests.iter().chain(from_file) {
            let report = testing::run_test(router, set, case).await;
            match &report.failure {
                None => {
                    passed += 1;
                    let _ = writeln!(out, "ok    {}: {}", set.name, case.name);
                }
                Some(why) => {
                    failed += 1;
                    let _ = writeln!(
                        out,
                        "FAIL  {}: {}\n      {}:{}:{}: {why}",
                        set.name,
                        case.name,
                        case.file.display(),
                        case.position.line,
                        case.position.column
                    );
                    for rule in &report.decision.rules {
                        let _ = writeln!(
                            out,
                            "        rule `{}`: {}",
                            rule.name,
                            describe(&rule.outcome)
                        );
                    }
                }
            }
        }
    }
    let _ = writeln!(out, "{passed} passed, {failed} failed");
    Ok(failed == 0 && checked.problems.is_empty())
}

fn describe(outcome: &RuleOutcome) -> String {
    match outcome {
        RuleOutcome::Matched => "matched".into(),
        RuleOutcome::NoMatch => "did not match".into(),
        RuleOutcome::FellThrough => "matched, but its script gave () and fell through".into(),
        RuleOutcome::Skipped { reason } => format!("skipped: {reason}"),
        RuleOutcome::Error { message, position } => {
            format!("error at {}:{}: {message}", position.line, position.column)
        }
        RuleOutcome::NotReached => "not reached".into(),
    }
}
