//! Running rule tests: each test's call decided with its given facts, no CRM asked.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::clock;
use crate::decide::{Decision, Router};
use crate::ruleset::RuleSet;
use crate::test_case::TestCase;

/// The outcome of one test.
#[derive(Debug)]
pub struct TestReport {
    pub case: TestCase,
    pub decision: Decision,
    /// Why it failed; `None` when it passed.
    pub failure: Option<String>,
}

impl TestReport {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// Runs one test against `set`.
pub async fn run_test(router: &Router, set: &Arc<RuleSet>, case: &TestCase) -> TestReport {
    let mut problems = Vec::new();
    let now: DateTime<Utc> = match case.at {
        Some(local) => clock::local_to_utc(set.time_zone, local).unwrap_or_else(|e| {
            problems.push(format!("`at` {e}"));
            Utc::now()
        }),
        None => Utc::now(),
    };
    let decision = router
        .route_with_facts(
            set,
            case.call.clone(),
            &case.lookups,
            crate::clock::Deadline::new(tokio::time::Instant::now(), set.timeout),
            now,
        )
        .await;
    if let Some(unknown) = case.lookups.keys().find(|name| !set.lookups.contains(name)) {
        problems.push(format!(
            "gives facts for `{unknown}`, which the rule set does not declare in `lookups`"
        ));
    }
    if decision.route != case.expect_route {
        let by = match decision.rule.as_deref() {
            Some(rule) => format!("rule `{rule}`"),
            None => why_the_default(&decision),
        };
        problems.push(format!(
            "expected route `{}`, got `{}` (by {by})",
            case.expect_route, decision.route
        ));
    }
    if let Some(rule) = &case.expect_rule
        && decision.rule.as_deref() != Some(rule.as_str())
    {
        problems.push(format!(
            "expected rule `{rule}` to match, but {}",
            decision
                .rule
                .as_deref()
                .map(|r| format!("`{r}` did"))
                .unwrap_or_else(|| "none did".into())
        ));
    }
    TestReport {
        case: case.clone(),
        decision,
        failure: (!problems.is_empty()).then(|| problems.join("; ")),
    }
}

/// "the default", and why when it is not simply that no rule matched: the first rule that
/// failed (a worker that died, a rule stopped at its time limit) says it.
fn why_the_default(decision: &Decision) -> String {
    let failed = decision.rules.iter().find_map(|r| match &r.outcome {
        crate::decide::RuleOutcome::Error { message, .. } => Some((r.name.as_str(), message)),
        _ => None,
    });
    match (decision.reason, failed) {
        (crate::decide::Reason::NoMatch, None) => "the default".into(),
        (reason, None) => format!("the default, {}", reason.as_str()),
        (reason, Some((rule, message))) => {
            format!("the default, {}; rule `{rule}`: {message}", reason.as_str())
        }
    }
}

/// Loads a rule set and runs its own tests (`tests:` and `{name}.test.yaml`) before it may go
/// live: a version whose tests fail is refused like one with a syntax error, each failing test
/// a problem at its `file:line:col`, and the last good version keeps serving.
#[derive(Debug)]
pub struct TestedLoader {
    inner: crate::catalog::RuleLoader,
    router: Arc<Router>,
}

/// Between a rule file's text and its test file's, in what [`TestedLoader::read`] returns:
/// neither YAML file can contain it.
const TEST_FILE_FOLLOWS: &str = "\u{0}belroute: the test file follows\u{0}";

impl TestedLoader {
    pub fn new(context: crate::catalog::StoreContext, router: Arc<Router>) -> Self {
        TestedLoader {
            inner: crate::catalog::RuleLoader::new(context),
            router,
        }
    }
}

impl crate::catalog::Loader for TestedLoader {
    /// The rule file, then its test file if there is one: the version covers both, so saving
    /// the tests alone runs them again.
    fn read(&self, file: &std::path::Path) -> std::io::Result<String> {
        let mut text = crate::catalog::read_capped(file)?;
        match crate::catalog::read_capped(&crate::test_case::test_file_for(file)) {
            Ok(tests) => {
                text.push_str(TEST_FILE_FOLLOWS);
                text.push_str(&tests);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(text)
    }

    fn load(
        &self,
        name: &str,
        file: &std::path::Path,
        text: &str,
    ) -> Result<Arc<RuleSet>, Vec<crate::Diagnostic>> {
        let (rules, tests) = match text.split_once(TEST_FILE_FOLLOWS) {
            Some((rules, tests)) => (rules, Some(tests)),
            None => (text, None),
        };
        let set = crate::catalog::Loader::load(&self.inner, name, file, rules)?;
        let test_file = crate::test_case::test_file_for(file);
        let from_file = match tests {
            Some(tests) => crate::test_case::load_test_file(&test_file, tests)?,
            None => Vec::new(),
        };
        // A test file's facts are held to what the lookups declare, as the rule file's are.
        let (problems, _) = set.check_tests(&from_file);
        if !problems.is_empty() {
            return Err(problems);
        }
        let cases: Vec<TestCase> = set.tests.iter().cloned().chain(from_file).collect();
        if cases.is_empty() {
            return Ok(set);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| {
                vec![crate::Diagnostic::new(
                    file,
                    crate::Position::START,
                    format!("cannot run the rule set's tests: {e}"),
                )]
            })?;
        let failures: Vec<crate::Diagnostic> = runtime.block_on(async {
            let mut failures = Vec::new();
            for case in &cases {
                let report = run_test(&self.router, &set, case).await;
                if let Some(why) = report.failure {
                    failures.push(crate::Diagnostic::new(
                        &case.file,
                        case.position,
                        format!("test `{}` fails: {why}", case.name),
                    ));
                }
            }
            failures
        });
        if !failures.is_empty() {
            return Err(failures);
        }
        Ok(set)
    }
}
