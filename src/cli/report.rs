//! Machine-readable results for CI: `check --format json`, `test --format json|junit`. The
//! human text stays the default; these carry the same facts in a shape a CI system reads.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use belroute_engine::text::escape_markup as xml;
use belroute_engine::{Diagnostic, Router, run_test};
use serde::Serialize;

use super::{check_dir, describe, usage};
use crate::config::Config;

/// How `test` prints its results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Lines for people: `file:line:col: message`, `ok`/`FAIL` per test.
    #[default]
    Text,
    /// One JSON document.
    Json,
    /// JUnit XML: one testsuite per rule set, one testcase per test.
    Junit,
}

/// How `check` prints its findings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckFormat {
    /// `file:line:col: message` per problem, then a summary line.
    #[default]
    Text,
    /// One JSON document: ok, problems [{file, line, column, message}], counts, notes,
    /// warnings.
    Json,
}

/// What `check` found, as `check --format json` prints it.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub ok: bool,
    pub rules_dir: PathBuf,
    pub notes: Vec<String>,
    /// What works but an operator should know, and does not make `ok` false: risky settings (a
    /// guessable `admin.token`), and rules that run in a worker process (`file:line:col: …`).
    pub warnings: Vec<String>,
    pub problems: Vec<Diagnostic>,
    pub counts: Counts,
}

#[derive(Debug, Serialize)]
pub struct Counts {
    /// Rule files found.
    pub files: usize,
    /// Rule sets loaded without problems.
    pub rule_sets: usize,
    pub rules: usize,
    pub tests: usize,
    pub problems: usize,
    /// Files with at least one problem.
    pub files_with_problems: usize,
}

/// `belroute check`'s findings without printing them.
pub fn check_report(dir: &Path, router: &Router, config: &Config) -> anyhow::Result<CheckReport> {
    let checked = check_dir(dir, router, config)?;
    let rules = checked.rule_count();
    let tests = checked.test_count();
    let files_with_problems = checked
        .problems
        .iter()
        .map(|p| p.file.as_path())
        .collect::<BTreeSet<_>>()
        .len();
    Ok(CheckReport {
        ok: checked.problems.is_empty(),
        rules_dir: dir.to_path_buf(),
        notes: config.notes.clone(),
        warnings: config
            .warnings
            .iter()
            .cloned()
            .chain(checked.warnings.iter().map(ToString::to_string))
            .collect(),
        counts: Counts {
            files: checked.files,
            rule_sets: checked.rulesets.len(),
            rules,
            tests,
            problems: checked.problems.len(),
            files_with_problems,
        },
        problems: checked.problems,
    })
}

/// Every test `belroute test` ran, by rule set, and the problems that stopped a file loading.
#[derive(Debug, Serialize)]
pub struct TestRun {
    pub ok: bool,
    pub passed: usize,
    pub failed: usize,
    pub notes: Vec<String>,
    /// Problems in rule and test files (as `check` prints them); any fails the run.
    pub problems: Vec<Diagnostic>,
    pub rule_sets: Vec<SuiteResult>,
}

#[derive(Debug, Serialize)]
pub struct SuiteResult {
    pub name: String,
    pub file: PathBuf,
    pub tests: Vec<CaseResult>,
}

#[derive(Debug, Serialize)]
pub struct CaseResult {
    pub name: String,
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub passed: bool,
    /// Why it failed; absent when it passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// The route the rule set answered, and the rule that gave it (none: the default).
    pub route: String,
    pub rule: Option<String>,
    /// Each rule's outcome, in order, as the text output describes it.
    pub rules: Vec<RuleResult>,
    pub micros: u64,
}

#[derive(Debug, Serialize)]
pub struct RuleResult {
    pub name: String,
    pub outcome: String,
}

/// Runs every rule test in `dir` (only those of the rule sets in `only` when not empty).
pub async fn run_tests(
    dir: &Path,
    router: &Router,
    config: &Config,
    only: &[String],
) -> anyhow::Result<TestRun> {
    usage::require_rulesets(dir, only)?;
    let checked = check_dir(dir, router, config)?;
    let mut run = TestRun {
        ok: true,
        passed: 0,
        failed: 0,
        notes: config.notes.clone(),
        problems: Vec::new(),
        rule_sets: Vec::new(),
    };
    for set in &checked.rulesets {
        if !only.is_empty() && !only.iter().any(|n| **n == *set.name) {
            continue;
        }
        let from_file = checked
            .test_files
            .iter()
            .filter(|(n, _)| **n == *set.name)
            .flat_map(|(_, t)| t.iter());
        let mut suite = SuiteResult {
            name: set.name.to_string(),
            file: set.file.clone(),
            tests: Vec::new(),
        };
        for case in set.tests.iter().chain(from_file) {
            let report = run_test(router, set, case).await;
            if report.failure.is_some() {
                run.failed += 1;
            } else {
                run.passed += 1;
            }
            suite.tests.push(CaseResult {
                name: case.name.clone(),
                file: case.file.clone(),
                line: case.position.line,
                column: case.position.column,
                passed: report.failure.is_none(),
                route: report.decision.route.clone(),
                rule: report.decision.rule.clone(),
                rules: report
                    .decision
                    .rules
                    .iter()
                    .map(|r| RuleResult {
                        name: r.name.clone(),
                        outcome: describe(&r.outcome),
                    })
                    .collect(),
                micros: report.decision.micros,
                failure: report.failure,
            });
        }
        run.rule_sets.push(suite);
    }
    run.problems = checked.problems;
    run.ok = run.failed == 0 && run.problems.is_empty();
    Ok(run)
}

/// The text `belroute test` has always printed.
pub fn write_text(run: &TestRun, out: &mut String) {
    for note in &run.notes {
        let _ = writeln!(out, "note: {note}");
    }
    for problem in &run.problems {
        let _ = writeln!(out, "{problem}");
    }
    for suite in &run.rule_sets {
        for case in &suite.tests {
            match &case.failure {
                None => {
                    let _ = writeln!(out, "ok    {}: {}", suite.name, case.name);
                }
                Some(why) => {
                    let _ = writeln!(
                        out,
                        "FAIL  {}: {}\n      {}:{}:{}: {why}",
                        suite.name,
                        case.name,
                        case.file.display(),
                        case.line,
                        case.column
                    );
                    for rule in &case.rules {
                        let _ = writeln!(out, "        rule `{}`: {}", rule.name, rule.outcome);
                    }
                }
            }
        }
    }
    let _ = writeln!(out, "{} passed, {} failed", run.passed, run.failed);
}

/// JUnit XML as Jenkins, GitLab, GitHub test reporters and the like read it: one
/// `<testsuite>` per rule set, one `<testcase>` per test, `<failure>` with the reason; file
/// problems (which fail the run too) as failed test cases of a `check` suite.
pub fn write_junit(run: &TestRun, out: &mut String) {
    let problems = run.problems.len();
    let _ = writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        out,
        r#"<testsuites name="belroute test" tests="{}" failures="{}" errors="0">"#,
        run.passed + run.failed + problems,
        run.failed + problems
    );
    if problems > 0 {
        let _ = writeln!(
            out,
            r#"  <testsuite name="check" tests="{problems}" failures="{problems}" errors="0" skipped="0">"#
        );
        for problem in &run.problems {
            let _ = writeln!(
                out,
                r#"    <testcase name="{}" classname="check" file="{}" line="{}">"#,
                xml(&problem.to_string()),
                xml(&problem.file.display().to_string()),
                problem.position.line
            );
            let _ = writeln!(
                out,
                r#"      <failure message="{}" type="problem">{}</failure>"#,
                xml(&problem.message),
                xml(&problem.to_string())
            );
            let _ = writeln!(out, "    </testcase>");
        }
        let _ = writeln!(out, "  </testsuite>");
    }
    for suite in &run.rule_sets {
        let failures = suite.tests.iter().filter(|c| !c.passed).count();
        let seconds: f64 = suite.tests.iter().map(|c| c.micros as f64 / 1e6).sum();
        let _ = writeln!(
            out,
            r#"  <testsuite name="{}" tests="{}" failures="{failures}" errors="0" skipped="0" time="{seconds:.6}" file="{}">"#,
            xml(&suite.name),
            suite.tests.len(),
            xml(&suite.file.display().to_string())
        );
        for case in &suite.tests {
            let open = format!(
                r#"    <testcase name="{}" classname="{}" file="{}" line="{}" time="{:.6}""#,
                xml(&case.name),
                xml(&suite.name),
                xml(&case.file.display().to_string()),
                case.line,
                case.micros as f64 / 1e6
            );
            match &case.failure {
                None => {
                    let _ = writeln!(out, "{open}/>");
                }
                Some(why) => {
                    let mut detail = format!(
                        "{}:{}:{}: {why}\n",
                        case.file.display(),
                        case.line,
                        case.column
                    );
                    for rule in &case.rules {
                        let _ = writeln!(detail, "rule `{}`: {}", rule.name, rule.outcome);
                    }
                    let _ = writeln!(out, "{open}>");
                    let _ = writeln!(
                        out,
                        r#"      <failure message="{}" type="wrong route">{}</failure>"#,
                        xml(why),
                        xml(&detail)
                    );
                    let _ = writeln!(out, "    </testcase>");
                }
            }
        }
        let _ = writeln!(out, "  </testsuite>");
    }
    if !run.notes.is_empty() {
        let notes: Vec<String> = run.notes.iter().map(|n| format!("note: {n}")).collect();
        let _ = writeln!(out, "  <system-out>{}</system-out>", xml(&notes.join("\n")));
    }
    let _ = writeln!(out, "</testsuites>");
}

#[cfg(test)]
mod tests {
    use super::xml;

    #[test]
    fn xml_escapes_what_xml_cannot_carry() {
        assert_eq!(
            xml("a<b & \"c\"\u{1}'"),
            "a&lt;b &amp; &quot;c&quot;\u{FFFD}&#39;"
        );
    }
}
