//! CRM lookups end to end: a real belroute, a fake helpdesk on loopback, real databases.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestServer;
use common::crm::{FakeCrm, Mode};

const CALLER: &str = "31152026057";
const CALLER_E164: &str = "+31152026057";

/// Tickets first, then a rule that needs no CRM, then the default.
fn ticket_rules(timeout: &str) -> String {
    format!(
        r#"
timeout: {timeout}
default: receptie
lookups: [tickets]
rules:
  - name: Open ticket goes to its agent
    when: tickets.count > 0
    script: '`agent_${{tickets.agent}}`'
  - name: Mobile callers
    when: caller.kind == "mobile"
    route: mobiel
"#
    )
}

async fn serve_with_crm(crm: &FakeCrm, plugin_extra: &str, timeout: &str) -> TestServer {
    let config = format!("plugins:\n{}", crm.plugin_config("tickets", plugin_extra));
    TestServer::with_config(&[("main.yaml", &ticket_rules(timeout))], &config).await
}

#[tokio::test]
async fn an_open_ticket_routes_to_its_agent() {
    let crm = FakeCrm::start().await;
    crm.add_ticket(CALLER_E164, "1003");
    let server = serve_with_crm(&crm, "", "2s").await;
    let response = server
        .post_json("/hooks/main", format!(r#"{{"caller_number":"{CALLER}"}}"#))
        .await;
    assert_eq!(
        response.headers()["x-belroute-rule"],
        "Open ticket goes to its agent"
    );
    assert_eq!(response.text().await.unwrap(), "agent_1003");
    // The caller's + was percent-encoded in the URL.
    assert_eq!(crm.queries()[0], "query=phone:%2B31152026057&state=open");
    // No ticket: the CRM answered `[]`, count 0, the next rules decide.
    assert_eq!(server.route("main", "0612345678").await, "mobiel");
    assert_eq!(server.route("main", "0201234567").await, "receptie");
    server.stop().await;
    crm.stop().await;
}

#[tokio::test]
async fn a_hanging_crm_never_holds_the_answer_past_timeout_minus_margin() {
    let crm = FakeCrm::start().await;
    crm.add_ticket(CALLER_E164, "1003");
    crm.set_mode(Mode::Never);
    let server = serve_with_crm(&crm, "    timeout: 5s\n", "1s").await;
    for (number, expected) in [(CALLER, "receptie"), ("0612345678", "mobiel")] {
        let started = Instant::now();
        let response = server
            .post_json("/hooks/main", format!(r#"{{"caller_number":"{number}"}}"#))
            .await;
        let took = started.elapsed();
        assert_eq!(response.text().await.unwrap(), expected);
        assert!(
            took < Duration::from_millis(1000),
            "answered after {took:?}"
        );
        assert!(
            took >= Duration::from_millis(700),
            "waited for the CRM until the deadline ({took:?})"
        );
    }
    server.stop().await;
    crm.stop().await;
}

#[tokio::test]
async fn a_slow_crm_answer_is_used_when_it_is_in_time() {
    let crm = FakeCrm::start().await;
    crm.add_ticket(CALLER_E164, "1003");
    crm.set_mode(Mode::Slow(Duration::from_millis(300)));
    let server = serve_with_crm(&crm, "", "2s").await;
    assert_eq!(server.route("main", CALLER).await, "agent_1003");
    server.stop().await;
    crm.stop().await;
}

#[tokio::test]
async fn garbage_and_errors_from_the_crm_make_the_lookup_unavailable() {
    let crm = FakeCrm::start().await;
    crm.add_ticket(CALLER_E164, "1003");
    let server = serve_with_crm(&crm, "    breaker: { failures: 0 }\n", "2s").await;
    for mode in [Mode::Malformed, Mode::Status(500), Mode::Status(401)] {
        crm.set_mode(mode.clone());
        let started = Instant::now();
        assert_eq!(server.route("main", CALLER).await, "receptie", "{mode:?}");
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{mode:?} answered at once"
        );
    }
    let plugins: serde_json::Value = server
        .get("/metrics")
        .await
        .text()
        .await
        .map(|t| serde_json::json!(t))
        .unwrap();
    assert!(
        plugins
            .as_str()
            .unwrap()
            .contains("belroute_lookup_failures_total{lookup=\"tickets\"} 3"),
        "{plugins}"
    );
    server.stop().await;
    crm.stop().await;
}

#[tokio::test]
async fn the_breaker_opens_after_repeated_failures_and_calls_answer_in_milliseconds() {
    let crm = FakeCrm::start().await;
    crm.set_mode(Mode::Never);
    let extra = "    timeout: 300ms\n    breaker: { failures: 3, cool_down: 1s }\n";
    let server = serve_with_crm(&crm, extra, "2s").await;
    for _ in 0..3 {
        assert_eq!(server.route("main", CALLER).await, "receptie");
    }
    assert_eq!(crm.requests(), 3);
    for _ in 0..10 {
        let started = Instant::now();
        assert_eq!(server.route("main", CALLER).await, "receptie");
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "open breaker answered after {:?}",
            started.elapsed()
        );
    }
    assert_eq!(crm.requests(), 3, "an open breaker sends nothing");
    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("belroute_lookup_breaker_open{lookup=\"tickets\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("belroute_lookup_skipped_total{lookup=\"tickets\"} 10"),
        "{metrics}"
    );

    // After the cool-down one call probes; the CRM is back, so the breaker closes.
    crm.set_mode(Mode::Answer);
    crm.add_ticket(CALLER_E164, "1004");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(server.route("main", CALLER).await, "agent_1004");
    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("belroute_lookup_breaker_open{lookup=\"tickets\"} 0"),
        "{metrics}"
    );
    server.stop().await;
    crm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_calls_from_one_number_make_one_crm_request() {
    let crm = FakeCrm::start().await;
    crm.add_ticket(CALLER_E164, "1003");
    crm.set_mode(Mode::Slow(Duration::from_millis(300)));
    let server = Arc::new(serve_with_crm(&crm, "    cache: { ttl: 30s }\n", "2s").await);
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let server = server.clone();
            tokio::spawn(async move { server.route("main", CALLER).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), "agent_1003");
    }
    assert_eq!(crm.requests(), 1);
    // And the next call is answered from the cache.
    assert_eq!(server.route("main", CALLER).await, "agent_1003");
    assert_eq!(crm.requests(), 1);
}

#[tokio::test]
async fn a_rule_that_needs_no_crm_answers_without_waiting_for_it() {
    let crm = FakeCrm::start().await;
    crm.set_mode(Mode::Never);
    let rules = "timeout: 2s\ndefault: receptie\nlookups: [tickets]\nrules:\n  - name: Mobiles first\n    when: caller.kind == \"mobile\"\n    route: mobiel\n  - name: Ticket\n    when: tickets.count > 0\n    route: ticket\n";
    let config = format!("plugins:\n{}", crm.plugin_config("tickets", ""));
    let server = TestServer::with_config(&[("main.yaml", rules)], &config).await;
    let started = Instant::now();
    assert_eq!(server.route("main", "0612345678").await, "mobiel");
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "took {:?}",
        started.elapsed()
    );
    server.stop().await;
    crm.stop().await;
}

#[tokio::test]
async fn cache_ttl_negative_ttl_refresh_ahead_stale_if_error_and_invalidation() {
    let crm = FakeCrm::start().await;
    crm.add_ticket(CALLER_E164, "1003");
    let extra = "    cache: { ttl: 1s, negative_ttl: 1s, refresh_ahead: 0.5, stale_if_error: 10s }\n    breaker: { failures: 0 }\n";
    let config = format!(
        "admin:\n  token: admintoken\nplugins:\n{}",
        crm.plugin_config("tickets", extra)
    );
    let server = TestServer::with_config(&[("main.yaml", &ticket_rules("2s"))], &config).await;

    assert_eq!(server.route("main", CALLER).await, "agent_1003");
    assert_eq!(server.route("main", CALLER).await, "agent_1003");
    assert_eq!(crm.requests(), 1, "second call from the cache");

    // Past half the ttl: answered from the cache, refreshed in the background.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(server.route("main", CALLER).await, "agent_1003");
    server
        .eventually(Duration::from_secs(1), "refresh-ahead request", || async {
            crm.requests() == 2
        })
        .await;

    // Expired, CRM failing: the old answer stands in (stale-if-error).
    crm.set_mode(Mode::Status(503));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(server.route("main", CALLER).await, "agent_1003");
    assert_eq!(crm.requests(), 3);

    // Invalidation through the admin API: the next call asks the CRM again.
    crm.set_mode(Mode::Answer);
    crm.clear_tickets();
    let denied = server
        .client
        .post(server.url("/api/v1/plugins/tickets/invalidate"))
        .json(&serde_json::json!({"caller": "015-2026057"}))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let invalidated = server
        .client
        .post(server.url("/api/v1/plugins/tickets/invalidate"))
        .bearer_auth("admintoken")
        .json(&serde_json::json!({"caller": "015-2026057"}))
        .send()
        .await
        .unwrap();
    assert_eq!(invalidated.status(), 204);
    assert_eq!(server.route("main", CALLER).await, "receptie");
    assert_eq!(crm.requests(), 4);
    // "Not found" is cached too (negative ttl).
    assert_eq!(server.route("main", CALLER).await, "receptie");
    assert_eq!(crm.requests(), 4);

    let unknown = server
        .client
        .post(server.url("/api/v1/plugins/nope/invalidate"))
        .bearer_auth("admintoken")
        .json(&serde_json::json!({"caller": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let status: serde_json::Value = server
        .client
        .get(server.url("/api/v1/plugins"))
        .bearer_auth("admintoken")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["plugins"][0]["name"], "tickets");
    assert_eq!(status["plugins"][0]["breaker"], "closed");
    server.stop().await;
    crm.stop().await;
}

#[tokio::test]
async fn callers_without_a_usable_number_are_not_looked_up() {
    let crm = FakeCrm::start().await;
    let server = serve_with_crm(&crm, "    cache: { ttl: 30s }\n", "2s").await;
    // Withheld, not a valid number, an internal extension: the CRM is not asked about an
    // empty number (a helpdesk would answer every open ticket); rules see "not found".
    for caller in ["anonymous", "0699999999", "1003", "receptie.amsterdam"] {
        assert_eq!(server.route("main", caller).await, "receptie", "{caller}");
    }
    assert_eq!(crm.requests(), 0, "no request for callers without a number");
    server.stop().await;

    // A plugin can opt in; withheld numbers are then asked each time, never from the cache.
    let server = serve_with_crm(
        &crm,
        "    cache: { ttl: 30s }\n    ask_without_number: true\n",
        "2s",
    )
    .await;
    assert_eq!(server.route("main", "anonymous").await, "receptie");
    assert_eq!(server.route("main", "anonymous").await, "receptie");
    assert_eq!(crm.requests(), 2, "withheld numbers are not cached");
    server.stop().await;
    crm.stop().await;
}
