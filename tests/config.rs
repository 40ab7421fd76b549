//! No value `check` accepts can crash `serve`: belroute.yaml with every duration, size and
//! count at the top of its range, served for real — caches, breaker, writer queue, sandbox,
//! claims — without a panic. (The out-of-range side is `src/config/tests.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::time::Duration;

use common::TestServer;
use serde_json::Value;

/// Every ranged setting at its documented maximum (docs/operators.md, docs/plugins.md); the
/// breaker opens after one failure so its `cool_down` is used at once. The recursion limit's
/// top depends on the build (see `Limits::MAX_CALL_LEVELS`).
fn at_the_top() -> String {
    AT_THE_TOP.replace(
        "{max_call_levels}",
        &belroute_engine::Limits::MAX_CALL_LEVELS.max.to_string(),
    )
}

const AT_THE_TOP: &str = "
hooks:
  margin: 999ms
  max_body: 4MiB
  connections:
    max: 1000000
    keep_alive: 1m
    request_timeout: 10s
    disconnect_timeout: 10s
    reserve_files: 100000
sandbox:
  max_operations: 100000000
  rule_time: 10s
  max_string_size: 16MiB
  max_array_size: 1000000
  max_map_size: 1000000
  max_call_levels: {max_call_levels}
  max_expr_depth: 64
storage:
  retention: 3650d
  queue: 1000000
  batch: 10000
  shutdown_wait: 10m
admin:
  token: admintoken
plugins:
  web:
    kind: http
    url: http://127.0.0.1:1/persons?phone={caller_e164}
    facts: { count: int }
    connect_timeout: 10s
    not_found_status: [599]
    timeout: 10s
    cache: { ttl: 30d, negative_ttl: 30d, stale_if_error: 30d, refresh_ahead: 1, max_entries: 1000000 }
    breaker: { failures: 1, cool_down: 1d }
  hist:
    kind: history
    window: 3650d
    timeout: 10s
    cache: { ttl: 30d, negative_ttl: 30d, stale_if_error: 30d, max_entries: 1000000 }
    breaker: { failures: 1000, cool_down: 1d }
  db:
    kind: sql
    url: 'sqlite::memory:'
    query: SELECT 1 AS one WHERE :caller_e164 <> ''
    facts: { one: int }
    max_connections: 100
    timeout: 10s
    cache: { ttl: 30d, stale_if_error: 30d, max_entries: 1000000 }
subscriptions:
  crm:
    endpoint: http://127.0.0.1:1/notify
    api_key: key-crm
    visibility_timeout: 1d
    max_retries: 1000
    retry_initial: 1h
    retry_max: 1d
    renotify_after: 1d
";

/// Rules that push the sandbox to its limits (recursion, a doubling string, deep nesting) and
/// read every lookup; the call still answers.
const RULES: &str = r#"
timeout: 10s
default: fallback
lookups: [web, hist, db]
rules:
  - name: Recursion through the deepest function body stops at max_call_levels
    script: 'fn f(n) { if n == 0 { 0 } else { (1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + f(n - 1)))))))))))) } } f(100000)'
  - name: A doubling string stops at max_string_size
    script: 'let s = "x"; while s.len() > 0 { s += s; }'
  - name: The deepest nesting max_expr_depth allows
    when: '(1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + (1 + 1))))))))))))))))))))))))))))))) == 2'
    route: nested
  - name: The CRM
    when: web.count > 0
    route: crm
  - name: Everything else
    when: db.one == 1 && hist != ()
    route: always
"#;

#[tokio::test]
async fn every_setting_at_the_top_of_its_range_serves_without_a_panic() {
    let server = TestServer::with_config(&[("main.yaml", RULES)], &at_the_top()).await;

    for i in 0..2 {
        let body = format!(r#"{{"uuid": "top-{i}", "caller_number": "31152026057"}}"#);
        let response = server.post_json("/hooks/main", body).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "always", "call {i}");
    }
    // One failure opened the breaker for its longest cool-down: `now + 1d`, no overflow.
    let web = server
        .app
        .router
        .lookups()
        .status()
        .into_iter()
        .find(|s| s.name == "web")
        .unwrap();
    assert_eq!((web.breaker, web.requests, web.skipped), ("open", 1, 1));

    // A claim held for the longest visibility timeout.
    server.app.call_log.flush(Duration::from_secs(10)).await;
    let claimed = server
        .client
        .post(server.url("/api/v1/subscriptions/crm/next"))
        .bearer_auth("key-crm")
        .send()
        .await
        .unwrap();
    assert_eq!(claimed.status(), 200);
    let event: Value = claimed.json().await.unwrap();
    assert_eq!(event["type"], "call.routed", "{event}");

    // The largest body allowed is read (JSON padded with whitespace: call fields themselves are
    // bounded); one byte more is refused before it is read, and the default answered.
    let padding = " ".repeat((4 << 20) - 100);
    let largest = format!(r#"{{"uuid": "big", "caller_number": "31152026057"}}{padding}"#);
    let response = server.post_json("/hooks/main", largest).await;
    assert_eq!(response.headers()["x-belroute-reason"], "matched");
    assert_eq!(response.text().await.unwrap(), "always");
    let too_large = "x".repeat((4 << 20) + 1);
    let response = server.post_json("/hooks/main", too_large).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-belroute-reason"], "unreadable");
    assert_eq!(response.text().await.unwrap(), "fallback");

    assert_eq!(server.get("/healthz").await.status(), 200);
    server.stop().await;
}
