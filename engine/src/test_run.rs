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
        .route_with_facts(set, case.call.clone(), &case.lookups, set.timeout, now)
        .await;
    if let Some(unknown) = case.lookups.keys().find(|name| !set.lookups.contains(name)) {
        problems.push(format!(
            "gives facts for `{unknown}`, which the rule set does not declare in `lookups`"
        ));
    }
    if decision.route != case.expect_route {
        let by = decision
            .rule
            .as_deref()
            .map(|r| format!("rule `{r}`"))
            .unwrap_or_else(|| "the default".into());
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
