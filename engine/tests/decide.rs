//! Deciding a call, end to end inside the engine: every outcome a rule and a decision can have,
//! with lookup doubles instead of CRMs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use belroute_engine::vocabulary::FactType;
use belroute_engine::{
    Call, DEFAULT_TIME_ZONE, Deadline, Decision, Limits, LoadContext, Lookup, LookupFacts,
    LookupResult, LookupSettings, Lookups, Normaliser, PoolSettings, Reason, Router, RuleOutcome,
    RuleSet, ScriptEngine,
};
use chrono::TimeZone;
use serde_json::json;
use support::{Answer, Double, Panicking};
use tokio::time::Instant;

fn router(plugins: Vec<(&str, Arc<dyn Lookup>)>, limits: Limits, pool: PoolSettings) -> Router {
    let mut lookups = Lookups::default();
    for (name, plugin) in plugins {
        lookups.insert(name, plugin, LookupSettings::default());
    }
    Router::with_pool(
        Arc::new(ScriptEngine::new(&limits)),
        Normaliser::default(),
        lookups,
        pool,
    )
}

fn load(router: &Router, name: &str, text: &str) -> Arc<RuleSet> {
    // The doubles declare nothing; for them the tests' CRM answers `open`, a count.
    let lookups: LookupFacts = router
        .lookups()
        .declared()
        .into_iter()
        .map(|(name, declared)| {
            let facts =
                declared.unwrap_or_else(|| BTreeMap::from([("open".to_string(), FactType::Int)]));
            (name, Some(facts))
        })
        .collect();
    let ctx = LoadContext {
        scripts: router.scripts(),
        lookups: &lookups,
        calendars: &belroute_engine::calendar::NO_CALENDARS,
        time_zone: DEFAULT_TIME_ZONE,
    };
    Arc::new(RuleSet::load(name, Path::new("t.yaml"), text, &ctx).unwrap())
}

/// Monday 23 November 2026, 10:00 in Amsterdam.
fn monday_ten() -> chrono::DateTime<chrono::Utc> {
    DEFAULT_TIME_ZONE
        .with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
        .unwrap()
        .with_timezone(&chrono::Utc)
}

async fn decide(router: &Router, set: &Arc<RuleSet>, caller: &str) -> Decision {
    let call = Arc::new(Call::from_pairs([("caller_number", caller)]));
    let deadline = Deadline::new(Instant::now(), Duration::from_millis(1750));
    router.route(set, call, deadline, monday_ten()).await
}

fn outcomes(decision: &Decision) -> Vec<&'static str> {
    decision
        .rules
        .iter()
        .map(|r| match r.outcome {
            RuleOutcome::Matched => "matched",
            RuleOutcome::NoMatch => "no_match",
            RuleOutcome::FellThrough => "fell_through",
            RuleOutcome::Skipped { .. } => "skipped",
            RuleOutcome::Error { .. } => "error",
            RuleOutcome::NotReached => "not_reached",
        })
        .collect()
}

#[tokio::test]
async fn every_rule_outcome() {
    let crm = Double::new(Answer::Fail);
    let router = router(
        vec![("crm", crm.clone())],
        Limits::default(),
        PoolSettings::default(),
    );
    let set = load(
        &router,
        "main",
        r#"
default: receptie
lookups: [crm]
rules:
  - name: Not withheld
    when: caller.anonymous
    route: anoniem
  - name: Falls through
    script: '()'
    when: 'true'
  - name: Errors
    when: '1 / 0 == 1'
    route: never
  - name: Reads a CRM that is down
    when: crm.open > 0
    route: finance
  - name: Office hours
    when: 'open_hours("mon-fri 08:30-17:30")'
    route: open
  - name: After the answer
    route: never
"#,
    );
    let decision = decide(&router, &set, "0152026057").await;
    assert_eq!(
        outcomes(&decision),
        [
            "no_match",
            "fell_through",
            "error",
            "skipped",
            "matched",
            "not_reached"
        ]
    );
    assert_eq!(
        (
            decision.route.as_str(),
            decision.rule.as_deref(),
            decision.reason
        ),
        ("open", Some("Office hours"), Reason::Matched)
    );
    assert!(decision.lookups[0].awaited);
    assert!(matches!(
        decision.lookups[0].result,
        LookupResult::Unavailable { .. }
    ));
}

#[tokio::test]
async fn no_rule_matching_answers_the_default() {
    let router = router(vec![], Limits::default(), PoolSettings::default());
    let set = load(
        &router,
        "main",
        "default: receptie\nrules:\n  - name: Never\n    when: 'false'\n    route: x\n",
    );
    let decision = decide(&router, &set, "0152026057").await;
    assert_eq!(
        (decision.route.as_str(), decision.reason),
        ("receptie", Reason::NoMatch)
    );
}

#[tokio::test]
async fn facts_given_instead_of_asked() {
    let router = router(
        vec![("crm", Double::new(Answer::Fail))],
        Limits::default(),
        PoolSettings::default(),
    );
    let set = load(
        &router,
        "main",
        "default: receptie\nlookups: [crm]\nrules:\n  - name: Invoices\n    when: crm.open > 0\n    script: '`finance_${crm.open}`'\n",
    );
    let facts = BTreeMap::from([(
        "crm".to_string(),
        LookupResult::Found {
            facts: Arc::new(json!({"open": 2}).as_object().cloned().unwrap()),
        },
    )]);
    let decision = router
        .route_with_facts(
            &set,
            Call::from_pairs([("caller_number", "0152026057")]),
            &facts,
            Deadline::new(Instant::now(), Duration::from_secs(2)),
            monday_ten(),
        )
        .await;
    assert_eq!(decision.route, "finance_2");
}

#[tokio::test]
async fn the_deadline_stops_slow_rules_and_answers_the_default() {
    let limits = Limits {
        max_operations: u64::MAX,
        rule_time: Duration::from_secs(10),
        ..Limits::default()
    };
    let router = router(vec![], limits, PoolSettings::default());
    let mut text = String::from("timeout: 1s\ndefault: receptie\nrules:\n");
    // Endless, but not provably so (`check` refuses `loop {}`): it runs until stopped.
    for i in 0..5 {
        text.push_str(&format!(
            "  - name: Loop {i}\n    script: 'let n = 0; while n >= 0 {{ n += 1 }}'\n"
        ));
    }
    let set = load(&router, "slow", &text);
    let call = Arc::new(Call::default());
    let started = Instant::now();
    let deadline = Deadline::new(started, Duration::from_millis(800));
    let decision = router.route(&set, call, deadline, monday_ten()).await;
    assert_eq!(decision.reason, Reason::Deadline);
    assert_eq!(decision.route, "receptie");
    // Without the deadline the rules would loop for 5 × 10 s; a busy machine adds scheduling
    // delay, not more rules.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(800) - belroute_engine::sandbox::STOP_EARLY
            && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(
        outcomes(&decision)[0],
        "error",
        "the first rule was stopped"
    );
}

#[tokio::test]
async fn a_bounded_rule_over_the_inline_budget_sends_the_rule_set_to_the_pool() {
    let router = router(vec![], Limits::default(), PoolSettings::default());
    // No loop, no function: proven bounded, so it starts inline; but 20,000 statements take
    // longer than the 1 ms inline budget.
    let statements = "x += call.caller_number.len(); ".repeat(20_000);
    let set = load(
        &router,
        "long",
        &format!(
            "default: receptie\nrules:\n  - name: Long\n    script: 'let x = 0; {statements} if x < 0 {{ \"never\" }}'\n  - name: Then\n    route: next\n"
        ),
    );
    assert!(set.rules[0].unbounded().is_none());
    let decision = decide(&router, &set, "0152026057").await;
    assert_eq!(decision.route, "next");
    assert!(set.is_heavy(), "the rule set now goes straight to the pool");
}

#[tokio::test]
async fn over_its_share_a_rule_set_answers_at_once() {
    let limits = Limits {
        max_operations: u64::MAX,
        rule_time: Duration::from_secs(10),
        ..Limits::default()
    };
    let router = router(
        vec![],
        limits,
        PoolSettings {
            workers: 2,
            share: 1,
            ..PoolSettings::default()
        },
    );
    let set = load(
        &router,
        "slow",
        "default: receptie\nrules:\n  - name: Loop\n    script: 'let n = 0; while n >= 0 { n += 1 }'\n",
    );
    let first = decide(&router, &set, "0152026057");
    let second = async {
        // Let the first call take the rule set's place in the pool (on a busy machine that
        // may take a while): its loop is not proven bounded, so it goes there at once.
        while router.pool().busy() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let started = Instant::now();
        let decision = decide(&router, &set, "0152026057").await;
        (decision, started.elapsed())
    };
    let (first, (second, took)) = tokio::join!(first, second);
    assert_eq!(first.reason, Reason::Deadline);
    assert_eq!(second.reason, Reason::OverShare);
    assert_eq!(second.route, "receptie");
    // "At once" against the 1.75 s it would otherwise wait; a busy machine adds scheduling.
    assert!(
        took < Duration::from_millis(500),
        "answered at once: {took:?}"
    );
}

#[tokio::test]
async fn a_panicking_plugin_answers_the_default() {
    let router = router(
        vec![("crm", Arc::new(Panicking))],
        Limits::default(),
        PoolSettings::default(),
    );
    let set = load(
        &router,
        "main",
        "default: receptie\nlookups: [crm]\nrules:\n  - name: Always\n    route: x\n",
    );
    let decision = decide(&router, &set, "0152026057").await;
    assert_eq!(
        (decision.route.as_str(), decision.reason),
        ("receptie", Reason::Failed)
    );
}

#[tokio::test]
async fn a_script_route_outside_routes_answers_the_default() {
    let router = router(vec![], Limits::default(), PoolSettings::default());
    let set = load(
        &router,
        "main",
        "default: receptie\nroutes: [receptie, \"agent_*\"]\nrules:\n  - name: Typo in the family\n    script: '\"agnet_1003\"'\n  - name: After it\n    route: receptie\n",
    );
    let decision = decide(&router, &set, "0152026057").await;
    assert_eq!(
        (
            decision.route.as_str(),
            decision.reason,
            decision.rule.as_deref()
        ),
        ("receptie", Reason::UndeclaredRoute, None)
    );
    assert_eq!(outcomes(&decision), ["error", "not_reached"]);
    let RuleOutcome::Error { message, .. } = &decision.rules[0].outcome else {
        unreachable!()
    };
    assert!(
        message.contains("\"agnet_1003\", which is not in `routes:`"),
        "{message}"
    );
    assert_eq!(Reason::UndeclaredRoute.as_str(), "undeclared_route");
}

/// A plugin that declares `open` (int) and answers it as text, with a fact it never declared.
struct Sloppy;

#[async_trait::async_trait]
impl Lookup for Sloppy {
    async fn lookup(
        &self,
        _: &belroute_engine::LookupRequest,
    ) -> Result<Option<belroute_engine::Facts>, belroute_engine::LookupError> {
        Ok(json!({"open": "2", "secret": "x"}).as_object().cloned())
    }

    fn facts(&self) -> Option<belroute_engine::vocabulary::DeclaredFacts> {
        Some(BTreeMap::from([
            ("open".to_string(), FactType::Int),
            ("agent".to_string(), FactType::Text),
        ]))
    }
}

#[tokio::test]
async fn rules_see_the_declared_shape_whatever_the_plugin_answers() {
    let router = router(
        vec![("crm", Arc::new(Sloppy))],
        Limits::default(),
        PoolSettings::default(),
    );
    let set = load(
        &router,
        "main",
        "default: receptie\nlookups: [crm]\nrules:\n  - name: Shape\n    script: '`${type_of(crm.open)}/${type_of(crm.agent)}/${crm.keys().len()}`'\n",
    );
    let decision = decide(&router, &set, "0152026057").await;
    // `open` of the wrong type is (), the missing `agent` is (), `secret` is gone.
    assert_eq!(decision.route, "()/()/2");
    let status = &router.lookups().status()[0];
    assert_eq!((status.undeclared_facts, status.mistyped_facts), (1, 1));
}

/// Rules are given `call` with only the fields the rule set reads as `call.FIELD`; a rule that
/// reads `call` otherwise gets every field. Either way each rule sees what the call carries.
#[tokio::test]
async fn rules_see_the_call_fields_they_read() {
    let router = router(vec![], Limits::default(), PoolSettings::default());
    let call = Arc::new(Call::from_pairs([
        ("caller_number", "31612345678"),
        ("dp_id", "dp7"),
        ("dp_in_number", "31201234567"),
    ]));
    for (text, fields, route) in [
        (
            "default: none\nrules:\n  - name: By plan\n    when: 'call.dp_id == \"dp7\" && call.dp_in_number != \"\"'\n    script: '`plan_${call.dp_id}`'\n",
            Some(vec!["dp_id", "dp_in_number"]),
            "plan_dp7",
        ),
        (
            "default: none\nrules:\n  - name: By plan\n    when: 'call.dp_id == \"dp7\"'\n    route: first\n  - name: Any field\n    when: 'call[\"dp_in_number\"] == \"31201234567\"'\n    route: whole\n",
            None,
            "first",
        ),
        (
            "default: none\nrules:\n  - name: Any field\n    when: 'call[\"dp_in_number\"] == \"31201234567\" && call.dp_id == \"dp7\"'\n    route: whole\n",
            None,
            "whole",
        ),
        (
            "default: none\nrules:\n  - name: Number\n    when: 'call.dp_id == \"dp7\"'\n    script: '`n${call.caller_number}`'\n",
            Some(vec!["caller_number", "dp_id"]),
            "n31612345678",
        ),
    ] {
        let set = load(&router, "fields", text);
        let expected: Option<Vec<String>> =
            fields.map(|f| f.into_iter().map(String::from).collect());
        assert_eq!(set.call_fields_read, expected, "{text}");
        let deadline = Deadline::new(Instant::now(), Duration::from_millis(1750));
        let decision = router
            .route(&set, call.clone(), deadline, monday_ten())
            .await;
        assert_eq!(decision.route, route, "{text}");
    }
}
