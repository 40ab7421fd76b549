//! A rule that loops, grows strings, recurses or errors costs that rule, not the call; and the
//! answer always leaves before the rule set's timeout minus the margin.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::time::{Duration, Instant};

use common::TestServer;

fn with_bad_rule(bad: &str) -> String {
    format!(
        "timeout: 2s\ndefault: fallback\nrules:\n  - name: Bad\n    {bad}\n  - name: Next\n    when: 'true'\n    route: next\n"
    )
}

#[tokio::test]
async fn a_bad_rule_does_not_match_and_the_next_rule_answers() {
    let cases = [
        (
            "endless loop",
            "script: 'let n = 0; while n >= 0 { n += 1 }'",
        ),
        (
            "runaway string growth",
            "script: 'let s = \"ab\"; while s.len() > 0 { s += s; }'",
        ),
        (
            "array growth",
            "script: 'let a = [1]; while a.len() > 0 { a += a; }'",
        ),
        (
            "deep recursion",
            "script: 'fn down(n) { down(n + 1) } down(0)'",
        ),
        (
            "runtime error in when",
            "when: 'call.caller_number.len() / 0 > 1'\n    route: never",
        ),
        ("when gives a number", "when: '42'\n    route: never"),
        ("script gives a number", "script: '42'"),
        ("script gives two lines", "script: '\"a\\nb\"'"),
    ];
    for (what, bad) in cases {
        let server = TestServer::start(&[("s.yaml", &with_bad_rule(bad))]).await;
        let started = Instant::now();
        let response = server.post_json("/hooks/s", "{}").await;
        let took = started.elapsed();
        assert_eq!(response.status(), 200, "{what}");
        assert_eq!(response.headers()["x-belroute-rule"], "Next", "{what}");
        assert_eq!(response.text().await.unwrap(), "next", "{what}");
        assert!(took < Duration::from_millis(1750), "{what} took {took:?}");
        let metrics = server.get("/metrics").await.text().await.unwrap();
        assert!(
            metrics.contains("belroute_rule_errors_total{ruleset=\"s\",rule=\"Bad\"} 1"),
            "{what} counted"
        );
        server.stop().await;
    }
}

/// The deadline is a correctness property: timeout 1s, margin 250ms, every rule loops.
#[tokio::test]
async fn every_rule_looping_still_answers_the_default_in_under_a_second() {
    let mut rules = String::from("timeout: 1s\ndefault: fallback\nrules:\n");
    for i in 0..20 {
        rules.push_str(&format!(
            "  - name: Loop {i}\n    script: 'let n = 0; while n >= 0 {{ n += 1 }}'\n"
        ));
    }
    // The most generous per-rule limits allowed, so it is the call's deadline that stops them.
    let config = "sandbox: { max_operations: 100000000, rule_time: 10s }\n";
    let server = TestServer::with_config(&[("slow.yaml", &rules)], config).await;
    for _ in 0..3 {
        let started = Instant::now();
        let response = server.post_json("/hooks/slow", "{}").await;
        let took = started.elapsed();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-belroute-reason"], "deadline");
        assert_eq!(response.text().await.unwrap(), "fallback");
        assert!(took < Duration::from_secs(1), "answered after {took:?}");
        assert!(
            took >= Duration::from_millis(700),
            "the rules had until timeout − margin ({took:?})"
        );
    }
    server.stop().await;
}

/// With the default limits a loop ends by its operation budget long before the deadline.
#[tokio::test]
async fn every_rule_erroring_answers_the_default_quickly() {
    let mut rules = String::from("timeout: 1s\ndefault: fallback\nrules:\n");
    for i in 0..5 {
        rules.push_str(&format!(
            "  - name: Loop {i}\n    script: 'let n = 0; while n >= 0 {{ n += 1 }}'\n"
        ));
    }
    let server = TestServer::start(&[("slow.yaml", &rules)]).await;
    let started = Instant::now();
    let response = server.post_json("/hooks/slow", "{}").await;
    assert_eq!(response.headers()["x-belroute-reason"], "no_match");
    assert_eq!(response.text().await.unwrap(), "fallback");
    assert!(started.elapsed() < Duration::from_secs(1));
    server.stop().await;
}
