//! Subscriptions the Koppeltaal way: notification-only webhooks plus GetNextNewAndClaim.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use common::receiver::{Receiver, drain};
use serde_json::{Value, json};

const RULES: &str = "default: receptie\nrules:\n  - name: Abroad\n    when: caller.country == \"GB\"\n    route: international\n";

fn subscription(name: &str, endpoint: Option<&str>, extra: &str) -> String {
    let endpoint = endpoint
        .map(|e| format!("    endpoint: {e}\n"))
        .unwrap_or_default();
    format!(
        "  {name}:\n    status: active\n    channel: resthook\n{endpoint}    payload: notification-only\n    headers: {{ identifier: secret-identifier-{name} }}\n    api_key: key-{name}\n    retry_initial: 100ms\n    retry_max: 400ms\n{extra}"
    )
}

fn config(subscriptions: &[String]) -> String {
    format!(
        "admin:\n  token: admintoken\nsubscriptions:\n{}",
        subscriptions.concat()
    )
}

async fn calls(server: &TestServer, prefix: &str, n: usize) {
    for i in 0..n {
        let caller = if i % 2 == 0 {
            "442079460958"
        } else {
            "31152026057"
        };
        let body = json!({ "uuid": format!("{prefix}-{i}"), "caller_number": caller }).to_string();
        assert_eq!(server.post_json("/hooks/main", body).await.status(), 200);
    }
}

async fn next(server: &TestServer, name: &str, key: &str) -> (u16, Value) {
    let response = server
        .client
        .post(server.url(&format!("/api/v1/subscriptions/{name}/next")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn close(server: &TestServer, name: &str, key: &str, event: &Value, status: &str) -> u16 {
    server
        .client
        .post(server.url(&format!(
            "/api/v1/subscriptions/{name}/events/{}",
            event["id"]
        )))
        .bearer_auth(key)
        .json(&json!({ "status": status, "claim": event["claim"] }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn admin(server: &TestServer, path: &str) -> Value {
    server
        .client
        .get(server.url(path))
        .bearer_auth("admintoken")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn uuids(events: &[Value]) -> Vec<String> {
    let mut all: Vec<String> = events
        .iter()
        .map(|e| e["data"]["uuid"].as_str().unwrap().to_string())
        .collect();
    all.sort();
    all
}

#[tokio::test]
async fn every_routed_call_arrives_exactly_once() {
    let receiver = Receiver::start().await;
    let server = TestServer::with_config(
        &[("main.yaml", RULES)],
        &config(&[subscription("crm", Some(&receiver.url), "")]),
    )
    .await;
    receiver.pull_from(&server.base, "crm", "key-crm");
    calls(&server, "once", 20).await;
    server
        .eventually(Duration::from_secs(10), "all 20 events pulled", || async {
            receiver.events().len() >= 20
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = receiver.events();
    let expected: Vec<String> = {
        let mut all: Vec<String> = (0..20).map(|i| format!("once-{i}")).collect();
        all.sort();
        all
    };
    assert_eq!(uuids(&events), expected, "each call exactly once");
    let first = events
        .iter()
        .find(|e| e["data"]["uuid"] == "once-0")
        .unwrap();
    assert_eq!(first["type"], "call.routed");
    assert_eq!(first["data"]["route"], "international");
    assert_eq!(first["data"]["rule"], "Abroad");
    assert_eq!(first["data"]["caller"]["e164"], "+442079460958");
    assert_eq!(first["attempt"], 1);

    // Notifications carry the identifier header and no call data.
    let notifications = receiver.notifications();
    assert!(!notifications.is_empty());
    for headers in &notifications {
        assert!(
            headers.contains(&(
                "identifier".to_string(),
                "secret-identifier-crm".to_string()
            )),
            "{headers:?}"
        );
    }
    assert!(receiver.body_lengths().iter().all(|len| *len == 0));
    let state = admin(&server, "/api/v1/subscriptions").await;
    assert_eq!(state["subscriptions"][0]["deliveries"]["success"], 20);
    assert_eq!(state["subscriptions"][0]["notifier"]["status"], "active");
    server.stop().await;
    receiver.stop().await;
}

#[tokio::test]
async fn notifications_are_coalesced_until_the_subscriber_drains() {
    let receiver = Receiver::start().await;
    let server = TestServer::with_config(
        &[("main.yaml", RULES)],
        &config(&[subscription("crm", Some(&receiver.url), "")]),
    )
    .await;
    // The receiver is told but does not pull yet: more calls must not flood it. (How the
    // notifier coalesces, over time, is src/subscriptions/tests.rs's; here, end to end.)
    for i in 0..5 {
        calls(&server, &format!("burst{i}"), 2).await;
    }
    server
        .eventually(Duration::from_secs(5), "first notification", || async {
            !receiver.notifications().is_empty()
        })
        .await;
    assert!(server.app.call_log.flush(Duration::from_secs(5)).await);
    assert_eq!(
        receiver.notifications().len(),
        1,
        "one notification for ten events"
    );

    assert_eq!(drain(&server.base, "crm", "key-crm").await.len(), 10);
    calls(&server, "after", 1).await;
    server
        .eventually(
            Duration::from_secs(5),
            "a new notification after draining",
            || async { receiver.notifications().len() == 2 },
        )
        .await;
    server.stop().await;
    receiver.stop().await;
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_retried_and_loses_nothing() {
    let receiver = Receiver::start().await;
    receiver.set_down(true);
    let server = TestServer::with_config(
        &[("main.yaml", RULES)],
        &config(&[subscription("crm", Some(&receiver.url), "")]),
    )
    .await;
    receiver.pull_from(&server.base, "crm", "key-crm");
    calls(&server, "down", 6).await;
    server
        .eventually(Duration::from_secs(10), "retried three times", || async {
            receiver.refused() >= 3
        })
        .await;
    let state = admin(&server, "/api/v1/subscriptions").await;
    assert_eq!(
        state["subscriptions"][0]["notifier"]["status"], "error",
        "{state}"
    );
    assert_eq!(
        state["subscriptions"][0]["notifier"]["last_error"],
        "HTTP 503 Service Unavailable"
    );

    receiver.set_down(false);
    server
        .eventually(
            Duration::from_secs(10),
            "delivered after the outage",
            || async { receiver.events().len() >= 6 },
        )
        .await;
    assert_eq!(uuids(&receiver.events()).len(), 6);
    let state = admin(&server, "/api/v1/subscriptions").await;
    assert_eq!(state["subscriptions"][0]["notifier"]["status"], "active");
    assert_eq!(
        state["subscriptions"][0]["notifier"]["last_error"],
        Value::Null
    );
    server.stop().await;
    receiver.stop().await;
}

#[tokio::test]
async fn polling_without_an_endpoint_works() {
    let server = TestServer::with_config(
        &[("main.yaml", RULES)],
        &config(&[subscription("poller", None, "")]),
    )
    .await;
    calls(&server, "poll", 7).await;
    assert!(server.app.call_log.flush(Duration::from_secs(5)).await);
    let events = drain(&server.base, "poller", "key-poller").await;
    assert_eq!(events.len(), 7);
    assert_eq!(next(&server, "poller", "key-poller").await.0, 204);
    server.stop().await;
}

/// A server on a SQLite file, then one on PostgreSQL when configured: claims use different SQL.
async fn on_each_database(test: &str, cfg: &str) -> Vec<(TestServer, Option<common::db::TestDb>)> {
    let mut servers = vec![(
        TestServer::with_config(&[("main.yaml", RULES)], cfg).await,
        None,
    )];
    if let Some(pg) = common::db::postgres(test).await {
        servers.push((
            TestServer::with_database(&[("main.yaml", RULES)], cfg, &pg.url).await,
            Some(pg),
        ));
    }
    servers
}

#[tokio::test]
async fn an_unclosed_claim_is_handed_out_again_after_the_visibility_timeout() {
    let cfg = config(&[subscription("crm", None, "    visibility_timeout: 1s\n")]);
    for (server, pg) in on_each_database(
        "an_unclosed_claim_is_handed_out_again_after_the_visibility_timeout",
        &cfg,
    )
    .await
    {
        calls(&server, "vis", 1).await;
        assert!(server.app.call_log.flush(Duration::from_secs(5)).await);
        let (status, first) = next(&server, "crm", "key-crm").await;
        assert_eq!(status, 200);
        assert_eq!(
            next(&server, "crm", "key-crm").await.0,
            204,
            "claimed: not handed out twice"
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (status, again) = next(&server, "crm", "key-crm").await;
        assert_eq!(status, 200);
        assert_eq!(again["id"], first["id"]);
        assert_eq!(again["attempt"], 2);
        assert_eq!(
            close(&server, "crm", "key-crm", &first, "success").await,
            409,
            "the expired claim is not current"
        );
        assert_eq!(
            close(&server, "crm", "key-crm", &again, "success").await,
            204
        );
        assert_eq!(
            close(&server, "crm", "key-crm", &again, "success").await,
            409,
            "closed already"
        );
        server.stop().await;
        if let Some(pg) = pg {
            pg.drop().await;
        }
    }
}

#[tokio::test]
async fn failed_events_come_back_until_the_retry_limit_then_are_parked() {
    let cfg = config(&[subscription("crm", None, "    max_retries: 3\n")]);
    for (server, pg) in on_each_database(
        "failed_events_come_back_until_the_retry_limit_then_are_parked",
        &cfg,
    )
    .await
    {
        calls(&server, "fail", 1).await;
        assert!(server.app.call_log.flush(Duration::from_secs(5)).await);
        for attempt in 1..=3 {
            let (status, event) = next(&server, "crm", "key-crm").await;
            assert_eq!(status, 200, "attempt {attempt}");
            assert_eq!(event["attempt"], attempt);
            assert_eq!(
                close(&server, "crm", "key-crm", &event, "failed").await,
                204
            );
        }
        assert_eq!(
            next(&server, "crm", "key-crm").await.0,
            204,
            "parked after 3 attempts"
        );
        let parked = admin(
            &server,
            "/api/v1/subscriptions/crm/events?status=max-retries-exceeded",
        )
        .await;
        assert_eq!(parked["events"].as_array().unwrap().len(), 1);
        assert_eq!(parked["events"][0]["data"]["uuid"], "fail-0");
        assert_eq!(parked["events"][0]["attempts"], 3);
        server.stop().await;
        if let Some(pg) = pg {
            pg.drop().await;
        }
    }
}

#[tokio::test]
async fn a_wrong_api_key_is_401_and_subscriptions_see_only_their_own_events() {
    let subs = [
        subscription("a", None, ""),
        subscription("b", None, "    events: [call.agent]\n"),
    ];
    let server = TestServer::with_config(&[("main.yaml", RULES)], &config(&subs)).await;
    calls(&server, "iso", 3).await;
    assert!(server.app.call_log.flush(Duration::from_secs(5)).await);
    assert_eq!(next(&server, "a", "wrong").await.0, 401);
    assert_eq!(
        next(&server, "b", "key-a").await.0,
        401,
        "a's key does not open b"
    );
    assert_eq!(next(&server, "nope", "key-a").await.0, 401);
    let (_, event) = next(&server, "a", "key-a").await;
    assert_eq!(
        close(&server, "b", "key-b", &event, "success").await,
        404,
        "b cannot close a's event"
    );
    assert_eq!(
        next(&server, "b", "key-b").await.0,
        204,
        "b wants agent reports only"
    );

    // An agent report becomes a call.agent event for b.
    let reported = server
        .client
        .post(server.url("/api/v1/calls/iso-1/agent"))
        .bearer_auth("admintoken")
        .json(&json!({"agent": "1003"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reported.status(), 204);
    let (status, agent_event) = next(&server, "b", "key-b").await;
    assert_eq!(status, 200);
    assert_eq!(agent_event["type"], "call.agent");
    assert_eq!(agent_event["data"]["agent"], "1003");
    assert_eq!(agent_event["data"]["uuid"], "iso-1");
    server.stop().await;
}

/// Two belroute instances on one PostgreSQL, eight claimers: every event claimed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_claimers_on_two_instances_claim_every_event_once() {
    let Some(pg) =
        common::db::postgres("eight_claimers_on_two_instances_claim_every_event_once").await
    else {
        return;
    };
    let cfg = config(&[subscription("crm", None, "")]);
    let a = Arc::new(TestServer::with_database(&[("main.yaml", RULES)], &cfg, &pg.url).await);
    let b = Arc::new(TestServer::with_database(&[("main.yaml", RULES)], &cfg, &pg.url).await);
    calls(&a, "pa", 100).await;
    calls(&b, "pb", 100).await;
    assert!(a.app.call_log.flush(Duration::from_secs(10)).await);
    assert!(b.app.call_log.flush(Duration::from_secs(10)).await);
    let claimers: Vec<_> = (0..8)
        .map(|i| {
            let server = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { drain(&server.base, "crm", "key-crm").await })
        })
        .collect();
    let mut ids = Vec::new();
    for claimer in claimers {
        ids.extend(
            claimer
                .await
                .unwrap()
                .iter()
                .map(|e| e["id"].as_i64().unwrap()),
        );
    }
    let distinct: BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(ids.len(), 200, "every event handed out once");
    assert_eq!(distinct.len(), 200, "no event handed to two claimers");
    pg.drop().await;
}

/// A `call.routed` event does not copy the call's fields: they are joined in from the call log
/// when it is claimed, so the subscriber sees what it always saw. Events written before that
/// (the call inside their data) are handed out as they are.
#[tokio::test]
async fn call_data_is_stored_once_and_joined_in_when_claimed() {
    use sqlx::Connection;
    let cfg = config(&[subscription("crm", None, "")]);
    for (server, pg) in
        on_each_database("call_data_is_stored_once_and_joined_in_when_claimed", &cfg).await
    {
        let url = match &pg {
            Some(pg) => pg.url.clone(),
            None => format!(
                "sqlite://{}",
                server.dir.path().join("belroute.db").display()
            ),
        };
        let body = json!({ "uuid": "once-1", "caller_number": "442079460958", "dp_id": "dp1", "extra": "x" });
        assert_eq!(
            server
                .post_json("/hooks/main", body.to_string())
                .await
                .status(),
            200
        );
        assert!(server.app.call_log.flush(Duration::from_secs(5)).await);
        assert_eq!(
            common::db::count(
                &url,
                "SELECT COUNT(*) FROM events WHERE data LIKE '%dp1%' OR data LIKE '%caller_number%'"
            )
            .await,
            0,
            "{url}: the event does not copy the call data"
        );
        // An event from before the migration: the call is inside its data.
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO events (kind, call_uuid, created_at, data) VALUES ('call.routed', 'old-1', 1, '{\"uuid\":\"old-1\",\"call\":{\"uuid\":\"old-1\",\"dp_id\":\"old\"}}')",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::query("INSERT INTO deliveries (subscription, event_id, status, attempts, updated_at) SELECT 'crm', id, 'new', 0, 1 FROM events WHERE call_uuid = 'old-1'")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();

        let (status, event) = next(&server, "crm", "key-crm").await;
        assert_eq!(status, 200);
        assert_eq!(
            event["data"],
            json!({
                "uuid": "once-1",
                "received_at": event["created_at"],
                "ruleset": "main",
                "route": "international",
                "rule": "Abroad",
                "reason": "matched",
                "caller": { "raw": "442079460958", "e164": "+442079460958", "anonymous": false },
                "call": body,
            }),
            "{url}"
        );
        let (status, old) = next(&server, "crm", "key-crm").await;
        assert_eq!(status, 200);
        assert_eq!(
            old["data"],
            json!({ "uuid": "old-1", "call": { "uuid": "old-1", "dp_id": "old" } })
        );
        // The admin API shows claimed events the same way; a status that does not exist is a 400.
        let claimed = admin(&server, "/api/v1/subscriptions/crm/events?status=claimed").await;
        assert_eq!(claimed["events"][0]["data"], event["data"], "{url}");
        assert_eq!(claimed["events"][1]["data"], old["data"], "{url}");
        let wrong = server
            .client
            .get(server.url("/api/v1/subscriptions/crm/events?status=parked"))
            .bearer_auth("admintoken")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 400);
        assert!(wrong.text().await.unwrap().contains("max-retries-exceeded"));
        server.stop().await;
        if let Some(pg) = pg {
            pg.drop().await;
        }
    }
}

#[tokio::test]
async fn parked_events_can_be_returned_to_new() {
    let cfg = config(&[subscription("crm", None, "    max_retries: 1\n")]);
    for (server, pg) in on_each_database("parked_events_can_be_returned_to_new", &cfg).await {
        calls(&server, "park", 2).await;
        assert!(server.app.call_log.flush(Duration::from_secs(5)).await);
        let mut ids = Vec::new();
        for _ in 0..2 {
            let (status, event) = next(&server, "crm", "key-crm").await;
            assert_eq!(status, 200);
            ids.push(event["id"].as_i64().unwrap());
            assert_eq!(
                close(&server, "crm", "key-crm", &event, "failed").await,
                204
            );
        }
        assert_eq!(next(&server, "crm", "key-crm").await.0, 204, "both parked");
        let requeue = |query: String| {
            server
                .client
                .post(server.url(&format!("/api/v1/subscriptions/crm/requeue{query}")))
                .bearer_auth("admintoken")
                .send()
        };
        // One event, then the rest.
        let one: Value = requeue(format!("?event={}", ids[1]))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(one["requeued"], 1);
        let (status, event) = next(&server, "crm", "key-crm").await;
        assert_eq!((status, event["id"].as_i64()), (200, Some(ids[1])));
        assert_eq!(event["attempt"], 1, "attempts start again");
        assert_eq!(
            close(&server, "crm", "key-crm", &event, "success").await,
            204
        );
        let rest: Value = requeue(String::new()).await.unwrap().json().await.unwrap();
        assert_eq!(rest["requeued"], 1);
        let (status, event) = next(&server, "crm", "key-crm").await;
        assert_eq!((status, event["id"].as_i64()), (200, Some(ids[0])));
        // Without the admin token: refused.
        let refused = server
            .client
            .post(server.url("/api/v1/subscriptions/crm/requeue"))
            .bearer_auth("key-crm")
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401);
        server.stop().await;
        if let Some(pg) = pg {
            pg.drop().await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Subscriptions managed while running (issue 14)

const ADMIN_ONLY: &str = "admin:\n  token: admintoken\n";

/// An admin API request: (status, JSON body or the text as a JSON string).
async fn admin_call(
    server: &TestServer,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (u16, Value) {
    let mut request = server
        .client
        .request(method.parse().unwrap(), server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn admin_do(
    server: &TestServer,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    admin_call(server, method, path, body, Some("admintoken")).await
}

/// Calls keep coming in (one every 20 ms) until the returned sender is dropped.
fn calls_flowing(server: &Arc<TestServer>, prefix: &str) -> tokio::sync::oneshot::Sender<()> {
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let server = server.clone();
    let prefix = prefix.to_string();
    tokio::spawn(async move {
        let mut i = 0;
        while matches!(
            stopped.try_recv(),
            Err(tokio::sync::oneshot::error::TryRecvError::Empty)
        ) {
            let body = json!({ "uuid": format!("{prefix}-{i}"), "caller_number": "31152026057" });
            assert_eq!(
                server
                    .post_json("/hooks/main", body.to_string())
                    .await
                    .status(),
                200
            );
            i += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    stop
}

async fn deliveries(server: &TestServer, name: &str, status: &str) -> i64 {
    let (_, shown) = admin_do(
        server,
        "GET",
        &format!("/api/v1/subscriptions/{name}"),
        None,
    )
    .await;
    shown["deliveries"][status].as_i64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_created_while_calls_flow_is_served_at_once_paused_and_resumed() {
    for (server, pg) in
        on_each_database("a_subscription_created_while_calls_flow", ADMIN_ONLY).await
    {
        let server = Arc::new(server);
        let receiver = Receiver::start().await;
        let flow = calls_flowing(&server, "flow");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (status, created) = admin_do(
            &server,
            "POST",
            "/api/v1/subscriptions",
            Some(json!({
                "name": "crm",
                "status": "active",
                "endpoint": receiver.url,
                "headers": { "identifier": "runtime-id" },
                "events": ["call.routed"],
                "retry_initial": "100ms",
                "retry_max": "400ms",
                "renotify_after": "1s",
            })),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["source"], "api");
        let key = created["api_key"].as_str().unwrap().to_string();
        assert_eq!(key.len(), 64);
        receiver.pull_from(&server.base, "crm", &key);
        server
            .eventually(
                Duration::from_secs(10),
                "events of calls after the creation pulled",
                || async { receiver.events().len() >= 3 },
            )
            .await;
        assert!(receiver.notifications().iter().all(|headers| {
            headers.contains(&("identifier".to_string(), "runtime-id".to_string()))
        }));
        // Listed beside belroute.yaml's, as stored.
        let (_, list) = admin_do(&server, "GET", "/api/v1/subscriptions", None).await;
        assert_eq!(list["subscriptions"][0]["name"], "crm");
        assert_eq!(list["subscriptions"][0]["source"], "api");
        drop(flow);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(server.app.call_log.flush(Duration::from_secs(5)).await);
        server
            .eventually(Duration::from_secs(10), "the flow drained", || async {
                deliveries(&server, "crm", "new").await == 0
                    && deliveries(&server, "crm", "claimed").await == 0
            })
            .await;

        // Off: events are still recorded, nobody is notified.
        let (status, paused) = admin_do(
            &server,
            "PATCH",
            "/api/v1/subscriptions/crm",
            Some(json!({"status": "off"})),
        )
        .await;
        assert_eq!(status, 200, "{paused}");
        assert_eq!(paused["status"], "off");
        assert_eq!(paused["notifier"]["status"], "off");
        let notified = receiver.notifications().len();
        calls(&server, "paused", 3).await;
        assert!(server.app.call_log.flush(Duration::from_secs(5)).await);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            receiver.notifications().len(),
            notified,
            "no notification while off"
        );
        assert!(
            !uuids(&receiver.events())
                .iter()
                .any(|u| u.starts_with("paused-")),
            "nothing pulled while off"
        );
        assert_eq!(
            deliveries(&server, "crm", "new").await,
            3,
            "recorded while off"
        );

        // Resumed: the backlog is delivered.
        let (status, _) = admin_do(
            &server,
            "PATCH",
            "/api/v1/subscriptions/crm",
            Some(json!({"status": "active"})),
        )
        .await;
        assert_eq!(status, 200);
        server
            .eventually(
                Duration::from_secs(10),
                "the backlog delivered after resuming",
                || async {
                    let got = uuids(&receiver.events());
                    (0..3).all(|i| got.contains(&format!("paused-{i}")))
                },
            )
            .await;
        assert!(receiver.notifications().len() > notified);
        let server = Arc::into_inner(server).unwrap();
        server.stop().await;
        receiver.stop().await;
        if let Some(pg) = pg {
            pg.drop().await;
        }
    }
}

/// Two instances on one PostgreSQL: what one stores, the other serves within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_created_on_one_instance_is_served_by_the_other() {
    let Some(pg) =
        common::db::postgres("a_subscription_created_on_one_instance_is_served_by_the_other").await
    else {
        return;
    };
    let a = TestServer::with_database(&[("main.yaml", RULES)], ADMIN_ONLY, &pg.url).await;
    let b = TestServer::with_database(&[("main.yaml", RULES)], ADMIN_ONLY, &pg.url).await;
    let receiver = Receiver::start().await;
    let (status, created) = admin_do(
        &a,
        "POST",
        "/api/v1/subscriptions",
        Some(json!({ "name": "crm", "endpoint": receiver.url, "headers": { "identifier": "x" }, "renotify_after": "1s" })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["api_key"].as_str().unwrap().to_string();
    let took = b
        .eventually(
            Duration::from_secs(6),
            "b serves a's subscription",
            || async {
                admin_do(&b, "GET", "/api/v1/subscriptions/crm", None)
                    .await
                    .0
                    == 200
            },
        )
        .await;
    eprintln!("instance b served the new subscription after {took:?}");
    receiver.pull_from(&b.base, "crm", &key);
    calls(&b, "on-b", 4).await;
    b.eventually(
        Duration::from_secs(10),
        "b's calls delivered by b",
        || async { receiver.events().len() >= 4 },
    )
    .await;
    assert!(
        receiver
            .notifications()
            .iter()
            .all(|h| h.contains(&("x-belroute-subscription".to_string(), "crm".to_string())))
    );
    // A change and a deletion on a reach b as well.
    assert_eq!(
        admin_do(
            &a,
            "PATCH",
            "/api/v1/subscriptions/crm",
            Some(json!({"status": "off"}))
        )
        .await
        .0,
        200
    );
    b.eventually(Duration::from_secs(6), "b sees the change", || async {
        admin_do(&b, "GET", "/api/v1/subscriptions/crm", None)
            .await
            .1["status"]
            == "off"
    })
    .await;
    assert_eq!(
        admin_do(&a, "DELETE", "/api/v1/subscriptions/crm", None)
            .await
            .0,
        200
    );
    b.eventually(
        Duration::from_secs(6),
        "b drops the deleted one",
        || async {
            admin_do(&b, "GET", "/api/v1/subscriptions/crm", None)
                .await
                .0
                == 404
        },
    )
    .await;
    assert_eq!(next(&b, "crm", &key).await.0, 401);
    a.stop().await;
    b.stop().await;
    receiver.stop().await;
    pg.drop().await;
}

#[tokio::test]
async fn a_rotated_key_works_at_once_and_the_old_one_until_its_grace_ends() {
    for (server, pg) in on_each_database("a_rotated_key_works_at_once", ADMIN_ONLY).await {
        let (status, created) = admin_do(
            &server,
            "POST",
            "/api/v1/subscriptions",
            Some(json!({"name": "poller"})),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        let old = created["api_key"].as_str().unwrap().to_string();
        calls(&server, "rot", 2).await;
        assert!(server.app.call_log.flush(Duration::from_secs(5)).await);
        assert_eq!(next(&server, "poller", &old).await.0, 200);

        let (status, rotated) = admin_do(
            &server,
            "POST",
            "/api/v1/subscriptions/poller/rotate-key",
            Some(json!({"grace": "1s"})),
        )
        .await;
        assert_eq!(status, 200, "{rotated}");
        let new = rotated["api_key"].as_str().unwrap().to_string();
        assert_ne!(new, old);
        assert!(rotated["previous_key_valid_until"].is_string());
        assert_eq!(
            next(&server, "poller", &new).await.0,
            200,
            "the new key at once"
        );
        assert_eq!(
            next(&server, "poller", &old).await.0,
            204,
            "the old key during the grace period"
        );
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(
            next(&server, "poller", &old).await.0,
            401,
            "the old key after the grace period"
        );
        assert_eq!(next(&server, "poller", &new).await.0, 204);

        // The grace period has a range, said the way belroute.yaml says it; without a body: 1h.
        let (status, refused) = admin_do(
            &server,
            "POST",
            "/api/v1/subscriptions/poller/rotate-key",
            Some(json!({"grace": "9d"})),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(refused, "`grace` is 9d; it must be between 0s and 7d\n");
        let (status, rotated) = admin_do(
            &server,
            "POST",
            "/api/v1/subscriptions/poller/rotate-key",
            None,
        )
        .await;
        assert_eq!(status, 200, "{rotated}");
        let newest = rotated["api_key"].as_str().unwrap();
        assert_eq!(next(&server, "poller", newest).await.0, 204);
        assert_eq!(
            next(&server, "poller", &new).await.0,
            204,
            "1h of grace by default"
        );
        server.stop().await;
        if let Some(pg) = pg {
            pg.drop().await;
        }
    }
}

/// The messages of belroute.yaml for the same settings, without `file:line:col: `.
fn yaml_problems(settings: &str) -> Vec<String> {
    let yaml = format!("subscriptions:\n  crm:\n    api_key: k\n{settings}");
    match belroute::config::Config::parse(std::path::Path::new("belroute.yaml"), &yaml) {
        Err(belroute::config::ConfigError::Invalid(found)) => {
            let mut found: Vec<String> = found.into_iter().map(|d| d.message).collect();
            found.sort();
            found
        }
        other => panic!("belroute.yaml should refuse this: {other:?}"),
    }
}

fn api_problems(body: &Value) -> Vec<String> {
    let mut found: Vec<String> = body.as_str().unwrap().lines().map(str::to_string).collect();
    found.sort();
    found
}

#[tokio::test]
async fn runtime_settings_are_refused_with_belroute_yaml_s_messages() {
    let cfg = config(&[subscription("filed", None, "")]);
    let server = TestServer::with_config(&[("main.yaml", RULES)], &cfg).await;
    let cases = [
        (
            json!({"endpoint": "ftp://crm.example.nl/notify"}),
            "    endpoint: ftp://crm.example.nl/notify\n",
        ),
        (
            json!({"endpoint": "not a url"}),
            "    endpoint: not a url\n",
        ),
        (
            json!({"headers": {"bad header": "x"}}),
            "    headers: { \"bad header\": x }\n",
        ),
        (
            json!({"max_retries": 0, "visibility_timeout": "2d", "retry_initial": "2s", "retry_max": "1s"}),
            "    max_retries: 0\n    visibility_timeout: 2d\n    retry_initial: 2s\n    retry_max: 1s\n",
        ),
        (
            json!({"status": "paused", "events": ["call.made"], "colour": "red"}),
            "    status: paused\n    events: [call.made]\n    colour: red\n",
        ),
    ];
    for (settings, yaml) in cases {
        let expected = yaml_problems(yaml);
        let mut body = settings.clone();
        body["name"] = json!("crm");
        let (status, refused) =
            admin_do(&server, "POST", "/api/v1/subscriptions", Some(body)).await;
        assert_eq!(status, 400, "{settings}");
        assert_eq!(api_problems(&refused), expected, "{settings}");
    }
    assert_eq!(
        admin_do(&server, "GET", "/api/v1/subscriptions/crm", None)
            .await
            .0,
        404
    );

    // A change is checked the same way and leaves the subscription as it was.
    let (status, _) = admin_do(
        &server,
        "POST",
        "/api/v1/subscriptions",
        Some(json!({"name": "crm", "max_retries": 7})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, refused) = admin_do(
        &server,
        "PATCH",
        "/api/v1/subscriptions/crm",
        Some(json!({"max_retries": 0})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        api_problems(&refused),
        yaml_problems("    max_retries: 0\n")
    );
    let (_, shown) = admin_do(&server, "GET", "/api/v1/subscriptions/crm", None).await;
    assert_eq!(shown["max_retries"], 7);
    assert_eq!(
        admin_do(
            &server,
            "POST",
            "/api/v1/subscriptions",
            Some(json!({"name": "bad name"}))
        )
        .await
        .0,
        400
    );
    assert_eq!(
        admin_do(
            &server,
            "POST",
            "/api/v1/subscriptions",
            Some(json!({"name": "crm2", "api_key": "mine"}))
        )
        .await
        .0,
        400,
        "belroute makes the key"
    );

    // belroute.yaml's subscription is listed, read-only.
    let (_, list) = admin_do(&server, "GET", "/api/v1/subscriptions", None).await;
    let filed = list["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "filed")
        .unwrap()
        .clone();
    assert_eq!(
        (filed["source"].clone(), filed["read_only"].clone()),
        (json!("file"), json!(true))
    );
    for (method, path) in [
        ("PATCH", "/api/v1/subscriptions/filed"),
        ("DELETE", "/api/v1/subscriptions/filed"),
        ("POST", "/api/v1/subscriptions/filed/rotate-key"),
    ] {
        let (status, said) = admin_do(&server, method, path, Some(json!({}))).await;
        assert_eq!(status, 409, "{method} {path}");
        assert!(said.as_str().unwrap().contains("belroute.yaml"), "{said}");
    }
    assert_eq!(
        admin_do(
            &server,
            "POST",
            "/api/v1/subscriptions",
            Some(json!({"name": "filed"}))
        )
        .await
        .0,
        409
    );
    server.stop().await;
}

#[tokio::test]
async fn without_the_admin_token_every_change_is_refused() {
    let receiver = Receiver::start().await;
    let server = TestServer::with_config(&[("main.yaml", RULES)], ADMIN_ONLY).await;
    let (status, created) = admin_do(
        &server,
        "POST",
        "/api/v1/subscriptions",
        Some(json!({"name": "crm", "endpoint": receiver.url})),
    )
    .await;
    assert_eq!(status, 201);
    let key = created["api_key"].as_str().unwrap().to_string();
    let attempts = [
        (
            "POST",
            "/api/v1/subscriptions",
            Some(json!({"name": "other"})),
        ),
        ("GET", "/api/v1/subscriptions/crm", None),
        (
            "PATCH",
            "/api/v1/subscriptions/crm",
            Some(json!({"status": "off"})),
        ),
        ("DELETE", "/api/v1/subscriptions/crm", None),
        ("POST", "/api/v1/subscriptions/crm/rotate-key", None),
        ("POST", "/api/v1/subscriptions/crm/test", None),
    ];
    for (method, path, body) in attempts {
        for token in [None, Some("wrong"), Some(key.as_str())] {
            let (status, _) = admin_call(&server, method, path, body.clone(), token).await;
            assert_eq!(status, 401, "{method} {path} with {token:?}");
        }
    }
    let (_, shown) = admin_do(&server, "GET", "/api/v1/subscriptions/crm", None).await;
    assert_eq!(shown["status"], "active", "nothing changed");
    assert_eq!(
        admin_do(&server, "GET", "/api/v1/subscriptions/other", None)
            .await
            .0,
        404
    );
    assert!(receiver.notifications().is_empty(), "no test notification");
    assert_eq!(
        next(&server, "crm", &key).await.0,
        204,
        "the key was not rotated"
    );

    // With it: a test notification reports the endpoint's answer.
    let (status, tested) = admin_do(&server, "POST", "/api/v1/subscriptions/crm/test", None).await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(tested["delivered"], true);
    assert_eq!(tested["status"], 202);
    assert!(tested["latency_ms"].is_u64());
    assert_eq!(receiver.notifications().len(), 1);
    receiver.set_down(true);
    let (_, tested) = admin_do(&server, "POST", "/api/v1/subscriptions/crm/test", None).await;
    assert_eq!(
        (tested["delivered"].clone(), tested["status"].clone()),
        (json!(false), json!(503))
    );
    // Deleted with its events.
    calls(&server, "del", 2).await;
    assert!(server.app.call_log.flush(Duration::from_secs(5)).await);
    let (status, deleted) = admin_do(&server, "DELETE", "/api/v1/subscriptions/crm", None).await;
    assert_eq!(status, 200);
    assert_eq!(deleted["deliveries_deleted"], 2);
    let db = format!(
        "sqlite://{}",
        server.dir.path().join("belroute.db").display()
    );
    assert_eq!(
        common::db::count(&db, "SELECT COUNT(*) FROM events").await,
        0
    );
    assert_eq!(next(&server, "crm", &key).await.0, 401);
    server.stop().await;
    receiver.stop().await;
}

// ---------------------------------------------------------------------------------------------
// No subscription feeds belroute itself (issue 20)

/// An endpoint that is belroute's own webhook is refused when a subscription is created or
/// changed, however it is written.
#[tokio::test]
async fn a_subscription_cannot_point_at_belroute_s_own_webhook() {
    let receiver = Receiver::start().await;
    let server = TestServer::with_config(&[("main.yaml", RULES)], ADMIN_ONLY).await;
    let port = server.base.rsplit(':').next().unwrap().to_string();
    for endpoint in [
        format!("http://127.0.0.1:{port}/hooks/main"),
        format!("http://localhost:{port}/hooks/main?token=x"),
        format!("http://127.0.0.1:{port}/x/../%68ooks/main"),
    ] {
        let (status, body) = admin_do(
            &server,
            "POST",
            "/api/v1/subscriptions",
            Some(json!({"name": "self", "endpoint": endpoint})),
        )
        .await;
        assert_eq!(status, 400, "{endpoint}: {body}");
        let message = body.to_string();
        assert!(
            message.contains("`subscriptions.self.endpoint` points at belroute's own webhook"),
            "{endpoint}: {message}"
        );
        assert!(
            !message.contains("token=x"),
            "the query is not shown: {message}"
        );
    }
    let (status, _) = admin_do(
        &server,
        "POST",
        "/api/v1/subscriptions",
        Some(json!({"name": "crm", "endpoint": receiver.url})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = admin_do(
        &server,
        "PATCH",
        "/api/v1/subscriptions/crm",
        Some(json!({"endpoint": format!("http://127.0.0.1:{port}/hooks/main")})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // Another path of this server is not a loop (and another port is another server).
    for endpoint in [
        format!("http://127.0.0.1:{port}/elsewhere"),
        "http://127.0.0.1:1/hooks/main".to_string(),
    ] {
        let (status, body) = admin_do(
            &server,
            "PATCH",
            "/api/v1/subscriptions/crm",
            Some(json!({ "endpoint": endpoint })),
        )
        .await;
        assert_eq!(status, 200, "{endpoint}: {body}");
        assert_eq!(body["endpoint"], endpoint.as_str());
    }
    server.stop().await;
    receiver.stop().await;
}

/// An endpoint that leads back to belroute by a way the check cannot see (here a TCP proxy):
/// its notifications are refused by /hooks (508) and never become calls or events.
#[tokio::test]
async fn a_notification_that_reaches_belroute_is_refused_and_never_logged_as_a_call() {
    let server = TestServer::with_config(&[("main.yaml", RULES)], ADMIN_ONLY).await;
    let proxy = common::proxy::Proxy::start(server.base.trim_start_matches("http://")).await;
    let endpoint = format!("http://127.0.0.1:{}/hooks/main", proxy.port);
    let (status, body) = admin_do(
        &server,
        "POST",
        "/api/v1/subscriptions",
        Some(json!({"name": "loop", "endpoint": endpoint, "retry_initial": "100ms", "retry_max": "200ms"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    calls(&server, "loop", 1).await;
    server
        .eventually(
            Duration::from_secs(10),
            "the notification refused",
            || async {
                let (_, shown) = admin_do(&server, "GET", "/api/v1/subscriptions/loop", None).await;
                shown["notifier"]["last_error"] == "HTTP 508 Loop Detected"
            },
        )
        .await;
    // Retried meanwhile (with backoff): still nothing logged but the one call.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(server.app.call_log.flush(Duration::from_secs(5)).await);
    let db = format!(
        "sqlite://{}",
        server.dir.path().join("belroute.db").display()
    );
    assert_eq!(
        common::db::count(&db, "SELECT COUNT(*) FROM calls").await,
        1,
        "one call, however often it was notified"
    );
    assert_eq!(
        common::db::count(&db, "SELECT COUNT(*) FROM events").await,
        1
    );
    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("belroute_hook_rejections_total{reason=\"loop\"}"),
        "{metrics}"
    );
    server.stop().await;
}

/// A subscription in belroute.yaml that points at belroute's own webhook stops `serve` at
/// start, saying which and why.
#[test]
fn serve_refuses_a_belroute_yaml_subscription_that_points_at_itself() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/main.yaml"), RULES).unwrap();
    std::fs::write(
        dir.path().join("belroute.yaml"),
        format!("subscriptions:\n  crm:\n    endpoint: http://localhost:{port}/hooks/main\n    api_key: key-crm\n"),
    )
    .unwrap();
    let mut serve = common::binary::belroute()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--rules")
        .arg(dir.path().join("rules"))
        .arg("--config")
        .arg(dir.path().join("belroute.yaml"))
        .arg("--database")
        .arg(format!(
            "sqlite://{}",
            dir.path().join("calls.db").display()
        ))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = serve.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            serve.kill().unwrap();
            panic!("serve started with a subscription pointing at itself");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut serve.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "belroute.yaml: `subscriptions.crm.endpoint` points at belroute's own webhook"
        ),
        "{stderr}"
    );
}

/// However fast events come and the subscriber drains them, notifications to one subscription
/// are at least belroute::subscriptions::NOTIFY_AT_MOST_EVERY (500 ms) apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_to_one_subscription_are_rate_bounded() {
    let receiver = Receiver::start().await;
    let server = Arc::new(
        TestServer::with_config(
            &[("main.yaml", RULES)],
            &config(&[subscription("crm", Some(&receiver.url), "")]),
        )
        .await,
    );
    receiver.pull_from(&server.base, "crm", "key-crm");
    let started = std::time::Instant::now();
    let stop = calls_flowing(&server, "rate");
    // Long enough for a few notifications; the bound itself, over many, is
    // src/subscriptions/tests.rs's notifications_are_never_closer_than_notify_at_most_every.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    drop(stop);
    let window = started.elapsed();
    let notified = receiver.notifications().len();
    eprintln!("{notified} notifications in {window:?} of calls every 20 ms, drained after each");
    let most = (window.as_millis() / belroute::subscriptions::NOTIFY_AT_MOST_EVERY.as_millis())
        as usize
        + 1;
    assert!(notified >= 2, "notified while calls flow: {notified}");
    assert!(
        notified <= most,
        "{notified} notifications in {window:?}: more than {most}"
    );
    // The calls' task lets go of the server after its last call.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let server = Arc::into_inner(server).unwrap();
    server.stop().await;
    receiver.stop().await;
}

/// "Notifications sent" describes the subscription, not its notifier task: a change (which
/// restarts the notifier) and a key rotation keep the count, and it goes on from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_sent_survives_a_change_of_the_subscription() {
    let server = TestServer::with_config(&[("main.yaml", RULES)], ADMIN_ONLY).await;
    let receiver = Receiver::start().await;
    let (status, created) = admin_do(
        &server,
        "POST",
        "/api/v1/subscriptions",
        Some(json!({"name": "crm", "endpoint": receiver.url, "retry_initial": "100ms"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["api_key"].as_str().unwrap().to_string();
    // The receiver drains after each notification, so each new call is notified again.
    receiver.pull_from(&server.base, "crm", &key);
    let sent = || async {
        admin(&server, "/api/v1/subscriptions/crm").await["notifier"]["notifications_sent"]
            .as_u64()
            .unwrap()
    };
    for round in 1..=3u64 {
        calls(&server, &format!("before-{round}"), 1).await;
        assert!(server.app.call_log.flush(Duration::from_secs(5)).await);
        server
            .eventually(
                Duration::from_secs(10),
                "a notification per call",
                || async { sent().await >= round && receiver.events().len() as u64 >= round },
            )
            .await;
    }
    let before = sent().await;
    assert!(before >= 3, "{before}");

    let (status, changed) = admin_do(
        &server,
        "PATCH",
        "/api/v1/subscriptions/crm",
        Some(json!({"renotify_after": "10m"})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert!(
        changed["notifier"]["notifications_sent"].as_u64().unwrap() >= before,
        "{changed}"
    );
    let (status, rotated) = admin_do(
        &server,
        "POST",
        "/api/v1/subscriptions/crm/rotate-key",
        None,
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    assert!(sent().await >= before, "kept across a key rotation");

    calls(&server, "after", 1).await;
    assert!(server.app.call_log.flush(Duration::from_secs(5)).await);
    server
        .eventually(Duration::from_secs(10), "counted on from there", || async {
            sent().await > before
        })
        .await;
    server.stop().await;
    receiver.stop().await;
}

/// docs/subscriptions.md's "create while running" request works as printed, and what it says
/// of `${NAME}` holds: a variable belroute was not started with is a 400 naming it.
#[tokio::test]
async fn the_documented_create_request_works_as_printed() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/subscriptions.md"
    ))
    .unwrap();
    let step = doc
        .split("1. **Create it**")
        .nth(1)
        .expect("the create step");
    let body = step
        .split("-d '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("the request body");
    let body: Value = serde_json::from_str(body).unwrap();
    let server = TestServer::with_config(&[("main.yaml", RULES)], ADMIN_ONLY).await;
    let (status, created) =
        admin_do(&server, "POST", "/api/v1/subscriptions", Some(body.clone())).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], body["name"]);
    assert_eq!(created["header_names"], json!(["identifier"]));

    let mut with_variable = body;
    with_variable["name"] = json!("crm2");
    with_variable["headers"]["identifier"] = json!("${BELROUTE_DOCS_TEST_UNSET}");
    let (status, refused) = admin_do(
        &server,
        "POST",
        "/api/v1/subscriptions",
        Some(with_variable),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused
            .as_str()
            .unwrap()
            .contains("BELROUTE_DOCS_TEST_UNSET is not set"),
        "{refused}"
    );
    server.stop().await;
}
