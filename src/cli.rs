//! The `check` and `test` commands: what an operator runs before (or instead of) saving live.

pub mod replay;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use belroute_engine::LoadContext;
use belroute_engine::RuleOutcome;
use belroute_engine::rule_files;
use belroute_engine::{Diagnostic, Router, RuleSet};
use belroute_engine::{TestCase, load_test_file, test_file_for};

use crate::config::Config;
use crate::read::simulate::{self, Simulation};

pub mod init;
pub mod manual;
pub mod migrate;
pub mod push;
pub mod report;
pub mod usage;

pub use usage::UnknownRuleSet;

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
    pub rulesets: Vec<std::sync::Arc<RuleSet>>,
    /// Tests from `{name}.test.yaml` files, by rule set name.
    pub test_files: Vec<(String, Vec<TestCase>)>,
    pub problems: Vec<Diagnostic>,
    /// What does not stop a file loading but an operator should know: rules that run in a
    /// worker process, and why.
    pub warnings: Vec<Diagnostic>,
    pub files: usize,
}

impl Checked {
    /// Rules in every rule set that loaded.
    pub fn rule_count(&self) -> usize {
        self.rulesets.iter().map(|s| s.rules.len()).sum()
    }

    /// Tests: `tests:` sections and `{name}.test.yaml` files.
    pub fn test_count(&self) -> usize {
        self.rulesets.iter().map(|s| s.tests.len()).sum::<usize>()
            + self.test_files.iter().map(|(_, t)| t.len()).sum::<usize>()
    }
}

/// Loads every rule file and test file in `dir`, collecting all problems.
pub fn check_dir(dir: &Path, router: &Router, config: &Config) -> anyhow::Result<Checked> {
    let files = rule_files(dir)?;
    let lookups = config.lookup_facts();
    let ctx = LoadContext {
        scripts: router.scripts(),
        lookups: &lookups,
        calendars: &config.calendars,
        time_zone: config.timezone.0,
    };
    let mut checked = Checked {
        files: files.len(),
        ..Checked::default()
    };
    for (name, file) in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let set = match RuleSet::load(&name, &file, &text, &ctx) {
            Ok(set) => {
                checked.warnings.extend(set.warnings.iter().cloned());
                Some(std::sync::Arc::new(set))
            }
            Err(problems) => {
                checked.problems.extend(problems);
                None
            }
        };
        let test_file = test_file_for(&file);
        let mut tests = 0;
        if let Ok(text) = std::fs::read_to_string(&test_file) {
            match load_test_file(&test_file, &text) {
                Ok(cases) => {
                    if let Some(set) = &set {
                        let (problems, warnings) = set.check_tests(&cases);
                        checked.problems.extend(problems);
                        checked.warnings.extend(warnings);
                    }
                    tests += cases.len();
                    checked.test_files.push((name.clone(), cases));
                }
                Err(problems) => checked.problems.extend(problems),
            }
        }
        if let Some(set) = set {
            if tests + set.tests.len() == 0 {
                checked.warnings.push(Diagnostic::new(
                    &file,
                    belroute_engine::Position::START,
                    format!(
                        "note: rule set `{name}` has no tests: add a `tests:` section or {} (docs/rules.md, \"Tests\")",
                        test_file
                            .file_name()
                            .map(|f| f.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    ),
                ));
            }
            checked.rulesets.push(set);
        }
    }
    Ok(checked)
}

/// `check --probe`: each plugin's declared facts against what its source answers, the http
/// ones asked about `caller`. A plugin whose settings need an unset variable is not probed.
pub async fn probe(
    config: &Config,
    router: &Router,
    caller: &str,
) -> Vec<belroute_plugins::probe::Probe> {
    let caller = router.normaliser().normalise(caller);
    let mut probes = Vec::new();
    for name in config.lookup_names() {
        match config.lookups.iter().find(|i| i.name == name) {
            Some(instance) => {
                probes.push(belroute_plugins::probe::probe(instance, caller.clone()).await);
            }
            None => probes.push(belroute_plugins::probe::Probe {
                plugin: name.clone(),
                notes: vec![format!(
                    "plugins.{name}: not probed: its settings need environment variables that are not set"
                )],
                ..Default::default()
            }),
        }
    }
    probes
}

/// Checks `dir` and writes the configuration's notes and every problem to `out`.
fn checked_and_said(
    dir: &Path,
    router: &Router,
    config: &Config,
    out: &mut String,
) -> anyhow::Result<Checked> {
    let checked = check_dir(dir, router, config)?;
    for note in &config.notes {
        let _ = writeln!(out, "note: {note}");
    }
    for warning in &config.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    for problem in &checked.problems {
        let _ = writeln!(out, "{problem}");
    }
    for warning in &checked.warnings {
        let _ = writeln!(out, "{warning}");
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
    let checked = checked_and_said(dir, router, config, out)?;
    let rules: usize = checked.rule_count();
    let tests: usize = checked.test_count();
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
/// any fails or a file has problems. A name that is no rule set is an [`UnknownRuleSet`].
pub async fn test(
    dir: &Path,
    router: &Router,
    config: &Config,
    only: &[String],
    out: &mut String,
) -> anyhow::Result<bool> {
    test_as(dir, router, config, only, report::Format::Text, out).await
}

/// As [`test`], printing the results in `format`.
pub async fn test_as(
    dir: &Path,
    router: &Router,
    config: &Config,
    only: &[String],
    format: report::Format,
    out: &mut String,
) -> anyhow::Result<bool> {
    let run = report::run_tests(dir, router, config, only).await?;
    match format {
        report::Format::Text => report::write_text(&run, out),
        report::Format::Json => {
            let _ = writeln!(out, "{}", serde_json::to_string_pretty(&run)?);
        }
        report::Format::Junit => report::write_junit(&run, out),
    }
    Ok(run.ok)
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

/// `belroute simulate`: decides one call and shows why, rule by rule and lookup by lookup.
/// With `json`, prints the record as the call log would keep it.
pub async fn simulate(
    dir: &Path,
    router: &Router,
    config: &Config,
    ruleset: &str,
    sim: Simulation,
    json: bool,
    out: &mut String,
) -> anyhow::Result<bool> {
    let ruleset = ruleset.to_string();
    usage::require_rulesets(dir, std::slice::from_ref(&ruleset))?;
    let files = rule_files(dir)?;
    let Some((_, file)) = files.iter().find(|(name, _)| *name == ruleset) else {
        anyhow::bail!("rule set `{ruleset}` was removed while reading");
    };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let lookups = config.lookup_facts();
    let ctx = LoadContext {
        scripts: router.scripts(),
        lookups: &lookups,
        calendars: &config.calendars,
        time_zone: config.timezone.0,
    };
    let set = match RuleSet::load(&ruleset, file, &text, &ctx) {
        Ok(set) => std::sync::Arc::new(set),
        Err(problems) => {
            for problem in problems {
                let _ = writeln!(out, "{problem}");
            }
            return Ok(false);
        }
    };
    match &sim.facts {
        Some(facts) => usage::require_declared_facts(&set, facts)?,
        None => require_askable_lookups(&set, config)?,
    }
    let call = std::sync::Arc::new(sim.call.clone());
    let (decision, now) = simulate::decide(router, &set, sim, config.hooks.margin)
        .await
        .map_err(|e| anyhow::anyhow!("`--at`: {e}"))?;
    if json {
        // The same shape as `GET /api/v1/calls/{uuid}` (without agent reports).
        let record = crate::storage::CallRecord {
            received_at: now.into(),
            call,
            decision,
        };
        let logged = crate::storage::LoggedCall::from(crate::storage::CallRow::from(&record));
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&logged)?);
        return Ok(true);
    }
    let local = now.with_timezone(&set.time_zone);
    let _ = writeln!(
        out,
        "rule set {} (version {}) at {}",
        set.name,
        set.version,
        belroute_engine::LocalTime(&local)
    );
    let c = &decision.caller;
    let who = if c.anonymous {
        "withheld".to_string()
    } else if c.valid {
        format!("{} ({}, {})", c.e164, c.kind, c.country)
    } else {
        format!("not a valid number ({})", c.kind)
    };
    let _ = writeln!(out, "caller {:?} → {who}", c.raw);
    if !decision.lookups.is_empty() {
        let _ = writeln!(out, "lookups:");
        for lookup in &decision.lookups {
            let result = match &lookup.result {
                belroute_engine::LookupResult::Found { facts } => {
                    format!("found {}", serde_json::Value::Object((**facts).clone()))
                }
                belroute_engine::LookupResult::NotFound => "not found".into(),
                belroute_engine::LookupResult::Unavailable { reason } => {
                    format!("unavailable: {reason}")
                }
            };
            let cached = if lookup.cached {
                ", from the cache"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  {}: {result} ({:.1} ms{cached})",
                lookup.name,
                lookup.micros as f64 / 1000.0
            );
        }
    }
    let _ = writeln!(out, "rules:");
    for rule in &decision.rules {
        let _ = writeln!(out, "  {}: {}", rule.name, describe(&rule.outcome));
    }
    let by = decision
        .rule
        .as_deref()
        .map(|r| format!("rule `{r}`"))
        .unwrap_or_else(|| "the default".into());
    let _ = writeln!(
        out,
        "route: {} (by {by}, {:.1} ms)",
        decision.route,
        decision.micros as f64 / 1000.0
    );
    Ok(true)
}

/// `simulate` without `--facts` or `--offline` asks the plugins: one whose settings need an
/// environment variable that is not set cannot be asked, and says so instead of answering
/// "unavailable" for a reason that has nothing to do with the CRM.
fn require_askable_lookups(set: &RuleSet, config: &Config) -> anyhow::Result<()> {
    let built: BTreeSet<&str> = config.lookups.iter().map(|l| l.name.as_str()).collect();
    let configured = config.lookup_names();
    let unbuilt: Vec<&str> = set
        .lookups
        .iter()
        .map(String::as_str)
        .filter(|name| configured.contains(*name) && !built.contains(name))
        .collect();
    if unbuilt.is_empty() {
        return Ok(());
    }
    let facts: Vec<String> = unbuilt
        .iter()
        .map(|name| format!("--facts {name}=…"))
        .collect();
    anyhow::bail!(
        "lookup(s) {} of rule set `{}` cannot be asked: their settings in belroute.yaml need \
         environment variables that are not set (see the note above); set them, or answer \
         for them with {}, or add --offline",
        unbuilt
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", "),
        set.name,
        facts.join(" ")
    )
}
