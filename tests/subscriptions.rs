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
    // The receiver is told but does not pull yet: more calls must not flood it.
    for i in 0..5 {
        calls(&server, &format!("burst{i}"), 2).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    server
        .eventually(Duration::from_secs(5), "first notification", || async {
            !receiver.notifications().is_empty()
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
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
