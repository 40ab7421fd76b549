//! The call log and history, on SQLite and on real PostgreSQL: every decision recorded,
//! "second call → same colleague", outages survived, nothing lost on shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestServer;
use common::db::{self, TestDb};
use serde_json::{Value, json};

const RULES: &str = r#"
timeout: 2s
default: receptie
lookups: [history]
rules:
  - name: Same colleague as last time
    when: history.calls_today > 0 && history.last_agent != ()
    script: '`agent_${history.last_agent}`'
"#;

const CONFIG: &str = "admin:\n  token: admintoken\nplugins:\n  history:\n    kind: history\n";

/// The databases to run a scenario on: a SQLite file, and PostgreSQL when configured.
async fn databases(test: &str, dir: &std::path::Path) -> Vec<(String, Option<TestDb>)> {
    let mut all = vec![(format!("sqlite://{}", dir.join("calls.db").display()), None)];
    if let Some(pg) = db::postgres(test).await {
        all.push((pg.url.clone(), Some(pg)));
    }
    all
}

async fn call(server: &TestServer, uuid: &str, caller: &str) -> String {
    let body = json!({ "uuid": uuid, "caller_number": caller, "dp_id": "dp1" }).to_string();
    let response = server.post_json("/hooks/main", body).await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

async fn report(server: &TestServer, uuid: &str, agent: &str) -> u16 {
    server
        .client
        .post(server.url(&format!("/api/v1/calls/{uuid}/agent")))
        .bearer_auth("admintoken")
        .json(&json!({ "agent": agent }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn api(server: &TestServer, path: &str) -> (u16, Value) {
    let response = server
        .client
        .get(server.url(path))
        .bearer_auth("admintoken")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn second_call_goes_to_the_same_colleague() {
    let dir = tempfile::tempdir().unwrap();
    for (url, pg) in databases("second_call_goes_to_the_same_colleague", dir.path()).await {
        let server = TestServer::with_database(&[("main.yaml", RULES)], CONFIG, &url).await;
        assert_eq!(
            call(&server, "call-1", "31152026057").await,
            "receptie",
            "{url}: first call"
        );
        assert_eq!(report(&server, "call-1", "1003").await, 204);
        assert_eq!(report(&server, "no-such-call", "1003").await, 404);
        assert_eq!(
            call(&server, "call-2", "0152026057").await,
            "agent_1003",
            "{url}: same number, another form"
        );
        assert_eq!(
            call(&server, "call-3", "31612345678").await,
            "receptie",
            "{url}: another number is unaffected"
        );

        // Withheld numbers never match one another.
        assert_eq!(call(&server, "anon-1", "anonymous").await, "receptie");
        assert_eq!(report(&server, "anon-1", "1005").await, 204);
        assert_eq!(
            call(&server, "anon-2", "anonymous").await,
            "receptie",
            "{url}: anonymous"
        );
        assert_eq!(call(&server, "anon-3", "").await, "receptie");

        // Repeated reports: the last one wins, all are kept.
        assert_eq!(report(&server, "call-2", "1004").await, 204);
        assert_eq!(report(&server, "call-2", "1007").await, 204);
        assert_eq!(call(&server, "call-4", "31152026057").await, "agent_1007");
        let (status, record) = api(&server, "/api/v1/calls/call-2").await;
        assert_eq!(status, 200);
        assert_eq!(record["agent"], "1007");
        let reports: Vec<&str> = record["agent_reports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["agent"].as_str().unwrap())
            .collect();
        assert_eq!(reports, ["1004", "1007"]);

        // A caller's next call is answered from the history kept in memory (SQLite), with
        // the calls written since; PostgreSQL is asked every time.
        assert_eq!(call(&server, "call-5", "31612345678").await, "receptie");
        assert_eq!(report(&server, "call-5", "1009").await, 204);
        assert_eq!(call(&server, "call-6", "31612345678").await, "agent_1009");
        assert_eq!(call(&server, "call-7", "31612345678").await, "agent_1009");
        let metrics = server.get("/metrics").await.text().await.unwrap();
        let from_memory = metrics
            .lines()
            .find_map(|l| l.strip_prefix("belroute_history_answers_total{from=\"memory\"} "))
            .map(|n| n.parse::<u64>().unwrap());
        if pg.is_none() {
            assert!(from_memory.is_some_and(|n| n >= 1), "{metrics}");
        } else {
            assert_eq!(from_memory, None, "{metrics}");
        }
        server.stop().await;
        if let Some(pg) = pg {
            pg.drop().await;
        }
    }
}

#[tokio::test]
async fn every_answer_can_be_explained_from_the_call_log() {
    let dir = tempfile::tempdir().unwrap();
    for (url, pg) in databases(
        "every_answer_can_be_explained_from_the_call_log",
        dir.path(),
    )
    .await
    {
        let server = TestServer::with_database(&[("main.yaml", RULES)], CONFIG, &url).await;
        assert_eq!(call(&server, "explain-1", "31152026057").await, "receptie");
        let (status, record) = api(&server, "/api/v1/calls/explain-1").await;
        assert_eq!(status, 200, "{url}");
        assert_eq!(record["route"], "receptie");
        assert_eq!(record["rule"], Value::Null);
        assert_eq!(record["reason"], "no_match");
        assert_eq!(record["ruleset"], "main");
        assert_eq!(record["version"], belroute_engine::content_version(RULES));
        assert_eq!(record["caller_e164"], "+31152026057");
        assert_eq!(record["call"]["dp_id"], "dp1");
        // The call log keeps the caller as its number and region; read back, it is whole.
        assert_eq!(record["trace"]["caller"]["kind"], "fixed");
        assert_eq!(record["trace"]["caller"]["national"], "0152026057");
        assert_eq!(
            record["trace"]["caller"]["international"],
            "+31 15 202 6057"
        );
        assert_eq!(
            record["trace"]["rules"][0]["name"],
            "Same colleague as last time"
        );
        assert_eq!(record["trace"]["rules"][0]["outcome"], "no_match");
        assert_eq!(record["trace"]["lookups"][0]["name"], "history");
        assert_eq!(record["trace"]["lookups"][0]["result"], "found");
        assert_eq!(record["trace"]["lookups"][0]["facts"]["calls_today"], 0);
        assert!(record["trace"]["lookups"][0]["micros"].is_u64());
        assert!(record["micros"].as_i64().unwrap() > 0);

        let (_, list) = api(
            &server,
            "/api/v1/calls?caller=015-2026057&since=1h&limit=10",
        )
        .await;
        assert_eq!(list["calls"].as_array().unwrap().len(), 1, "{url}");
        let (_, none) = api(&server, "/api/v1/calls?caller=0201234567").await;
        assert_eq!(none["calls"].as_array().unwrap().len(), 0);
        let (bad, _) = api(&server, "/api/v1/calls?since=yesterday").await;
        assert_eq!(bad, 400);
        let unauthorized = server
            .client
            .get(server.url("/api/v1/calls"))
            .send()
            .await
            .unwrap();
        assert_eq!(unauthorized.status(), 401);
        server.stop().await;
        if let Some(pg) = pg {
            pg.drop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_concurrent_calls_make_two_thousand_complete_rows() {
    let dir = tempfile::tempdir().unwrap();
    for (url, pg) in databases(
        "two_thousand_concurrent_calls_make_two_thousand_complete_rows",
        dir.path(),
    )
    .await
    {
        let server =
            Arc::new(TestServer::with_database(&[("main.yaml", RULES)], CONFIG, &url).await);
        let started = Instant::now();
        let calls: Vec<_> = (0..2000)
            .map(|i| {
                let server = server.clone();
                tokio::spawn(async move {
                    let body = json!({ "uuid": format!("bulk-{i}"), "caller_number": format!("316{:08}", i) }).to_string();
                    let sent = Instant::now();
                    let response = server.post_json("/hooks/main", body).await;
                    let reason = response.headers()["x-belroute-reason"].to_str().unwrap().to_string();
                    (response.status().as_u16(), reason, response.text().await.unwrap(), sent.elapsed())
                })
            })
            .collect();
        let mut slowest = Duration::ZERO;
        for call in calls {
            let (status, reason, route, took) = call.await.unwrap();
            assert_eq!(
                (status, reason.as_str(), route.as_str()),
                (200, "no_match", "receptie")
            );
            slowest = slowest.max(took);
        }
        eprintln!(
            "{url}: 2000 calls in {:?}, slowest answer {slowest:?}",
            started.elapsed()
        );
        assert!(server.app.call_log.flush(Duration::from_secs(30)).await);
        let rows = count(&url, "SELECT COUNT(*) FROM calls WHERE uuid LIKE 'bulk-%' AND trace LIKE '%\"rules\"%' AND call_data LIKE '%caller_number%' AND version <> '' AND micros > 0").await;
        assert_eq!(rows, 2000, "{url}");
        assert_eq!(server.app.call_log.stats().dropped, 0);
        if let Ok(server) = Arc::try_unwrap(server) {
            server.stop().await;
        }
        if let Some(pg) = pg {
            pg.drop().await;
        }
    }
}

use common::db::count;

async fn answers_keep_coming(server: &TestServer, prefix: &str, n: usize) {
    for i in 0..n {
        let started = Instant::now();
        assert_eq!(
            call(server, &format!("{prefix}-{i}"), "31152026057").await,
            "receptie"
        );
        assert!(
            started.elapsed() < Duration::from_millis(1750),
            "answered after {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn a_postgres_outage_is_survived_and_queued_records_are_written_after() {
    let Some(pg) =
        db::postgres("a_postgres_outage_is_survived_and_queued_records_are_written_after").await
    else {
        return;
    };
    let proxy = common::proxy::Proxy::start("127.0.0.1:5432").await;
    let through_proxy = pg
        .url
        .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    let rules = "timeout: 2s\ndefault: receptie\nrules: []\n";
    let server = TestServer::with_database(&[("main.yaml", rules)], CONFIG, &through_proxy).await;
    answers_keep_coming(&server, "before", 5).await;
    assert!(server.app.call_log.flush(Duration::from_secs(5)).await);

    proxy.cut();
    answers_keep_coming(&server, "during", 20).await;
    server
        .eventually(
            Duration::from_secs(10),
            "the outage is visible in metrics",
            || async {
                server
                    .get("/metrics")
                    .await
                    .text()
                    .await
                    .unwrap()
                    .contains("belroute_call_log_database_up 0")
            },
        )
        .await;
    assert_eq!(
        count(
            &pg.url,
            "SELECT COUNT(*) FROM calls WHERE uuid LIKE 'during-%'"
        )
        .await,
        0
    );

    proxy.restore();
    server
        .eventually(
            Duration::from_secs(15),
            "queued records written after the outage",
            || async { count(&pg.url, "SELECT COUNT(*) FROM calls").await == 25 },
        )
        .await;
    assert!(
        server
            .get("/metrics")
            .await
            .text()
            .await
            .unwrap()
            .contains("belroute_call_log_database_up 1")
    );
    server.stop().await;
    pg.drop().await;
}

#[tokio::test]
async fn a_locked_sqlite_database_is_survived_and_queued_records_are_written_after() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("calls.db").display());
    let rules = "timeout: 2s\ndefault: receptie\nrules: []\n";
    let server = TestServer::with_database(&[("main.yaml", rules)], CONFIG, &url).await;
    answers_keep_coming(&server, "before", 5).await;
    assert!(server.app.call_log.flush(Duration::from_secs(5)).await);

    // Another process holds the write lock: every write belroute tries fails.
    let mut locker = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await
        .unwrap();
    answers_keep_coming(&server, "during", 20).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.app.call_log.stats().written, 5);
    sqlx::query("COMMIT").execute(&mut locker).await.unwrap();
    drop(locker);

    server
        .eventually(
            Duration::from_secs(20),
            "queued records written after the lock",
            || async { count(&url, "SELECT COUNT(*) FROM calls").await == 25 },
        )
        .await;
    server.stop().await;
}

#[tokio::test]
async fn two_instances_on_one_postgres_see_each_others_history() {
    let Some(pg) = db::postgres("two_instances_on_one_postgres_see_each_others_history").await
    else {
        return;
    };
    let a = TestServer::with_database(&[("main.yaml", RULES)], CONFIG, &pg.url).await;
    let b = TestServer::with_database(&[("main.yaml", RULES)], CONFIG, &pg.url).await;
    assert_eq!(call(&a, "two-1", "31152026057").await, "receptie");
    assert_eq!(
        report(&b, "two-1", "1003").await,
        204,
        "B can report on A's call"
    );
    assert_eq!(
        call(&b, "two-2", "31152026057").await,
        "agent_1003",
        "B sees A's call and B's report"
    );
    assert_eq!(call(&a, "two-3", "31152026057").await, "agent_1003");
    a.stop().await;
    b.stop().await;
    pg.drop().await;
}

#[tokio::test]
async fn retention_deletes_old_calls_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for (url, pg) in databases("retention_deletes_old_calls_at_start", dir.path()).await {
        let storage = belroute::storage::Storage::open(&url).unwrap();
        storage.migrate().await.unwrap();
        let old = |uuid: &str, days: u64| belroute::storage::CallRecord {
            received_at: std::time::SystemTime::now() - Duration::from_secs(days * 24 * 3600),
            call: Arc::new(belroute_engine::Call::from_pairs([
                ("uuid", uuid),
                ("caller_number", "31152026057"),
            ])),
            decision: sample_decision(),
        };
        storage
            .insert_calls(&[old("ancient", 100), old("recent", 10)], &[])
            .await
            .unwrap();
        storage.close().await;

        let config = format!("{CONFIG}storage:\n  retention: 30d\n");
        let server = TestServer::with_database(&[("main.yaml", RULES)], &config, &url).await;
        server
            .eventually(Duration::from_secs(5), "old call purged", || async {
                count(&url, "SELECT COUNT(*) FROM calls WHERE uuid = 'ancient'").await == 0
            })
            .await;
        assert_eq!(
            count(&url, "SELECT COUNT(*) FROM calls WHERE uuid = 'recent'").await,
            1,
            "{url}"
        );
        server.stop().await;
        if let Some(pg) = pg {
            pg.drop().await;
        }
    }
}

fn sample_decision() -> belroute_engine::Decision {
    belroute_engine::Decision {
        route: "receptie".into(),
        rule: None,
        reason: belroute_engine::Reason::NoMatch,
        ruleset: "main".into(),
        version: "v".into(),
        caller: belroute_engine::Normaliser::default().normalise("31152026057"),
        rules: Vec::new(),
        lookups: Vec::new(),
        micros: 1,
        panicked: false,
    }
}

fn record(uuid: &str) -> belroute::storage::CallRecord {
    belroute::storage::CallRecord {
        received_at: std::time::SystemTime::now(),
        call: Arc::new(belroute_engine::Call::from_pairs([
            ("uuid", uuid),
            ("caller_number", "31152026057"),
            ("dp_id", "dp1"),
        ])),
        decision: sample_decision(),
    }
}

const POLLER: &str = "  poller:\n    status: active\n    channel: resthook\n    payload: notification-only\n    api_key: key-poller\n";

/// A queue of one and a burst far larger: the overflow goes to the spill file and from there
/// into the database, with its events; nothing is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_past_the_queue_is_spilled_to_disk_and_nothing_is_lost() {
    const N: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    for (url, pg) in databases(
        "a_flood_past_the_queue_is_spilled_to_disk_and_nothing_is_lost",
        dir.path(),
    )
    .await
    {
        let spill = dir.path().join(format!("spill-{}.jsonl", pg.is_some()));
        let config = format!(
            "{CONFIG}storage:\n  queue: 1\n  batch: 50\n  spill: {}\nsubscriptions:\n{POLLER}",
            spill.display()
        );
        let server = TestServer::with_database(&[("main.yaml", RULES)], &config, &url).await;
        let log = &server.app.call_log;
        let records: Vec<_> = (0..N).map(|i| record(&format!("flood-{i}"))).collect();
        let started = Instant::now();
        let mut slowest = Duration::ZERO;
        for r in records {
            let one = Instant::now();
            log.record(r);
            slowest = slowest.max(one.elapsed());
        }
        let took = started.elapsed();
        eprintln!("{url}: slowest record() {slowest:?}");
        assert!(log.flush(Duration::from_secs(60)).await, "{url}: flushed");
        let stats = log.stats();
        eprintln!(
            "{url}: {N} records handed over in {took:?}; {} spilled, {} replayed; flushed after {:?}",
            stats.spilled,
            stats.replayed,
            started.elapsed()
        );
        assert_eq!(stats.dropped, 0, "{url}: {stats:?}");
        assert!(stats.spilled > 0, "{url}: the queue of 1 overflowed");
        assert_eq!(stats.replayed, stats.spilled, "{url}: {stats:?}");
        assert_eq!(stats.written, N as u64, "{url}: {stats:?}");
        assert_eq!(stats.spill_bytes, 0, "{url}: {stats:?}");
        assert_eq!(
            count(
                &url,
                "SELECT COUNT(DISTINCT uuid) FROM calls WHERE uuid LIKE 'flood-%' AND call_data LIKE '%dp1%'"
            )
            .await,
            N as i64,
            "{url}: every record in the database once"
        );
        assert_eq!(
            count(&url, "SELECT COUNT(*) FROM calls").await,
            N as i64,
            "{url}"
        );
        assert!(!spill.exists(), "{url}: the spill file is removed");
        let metrics = server.get("/metrics").await.text().await.unwrap();
        assert!(
            metrics.contains(&format!(
                "belroute_call_log_replayed_total {}",
                stats.spilled
            )),
            "{metrics}"
        );
        assert!(metrics.contains("belroute_call_log_spill_bytes 0"));
        // Every record, spilled or not, has its event, with its call data.
        assert_eq!(
            count(
                &url,
                "SELECT COUNT(*) FROM deliveries WHERE subscription = 'poller' AND status = 'new'"
            )
            .await,
            N as i64,
            "{url}: one event per record"
        );
        let claimed = server
            .client
            .post(server.url("/api/v1/subscriptions/poller/next"))
            .bearer_auth("key-poller")
            .send()
            .await
            .unwrap();
        assert_eq!(claimed.status(), 200);
        let event: Value = claimed.json().await.unwrap();
        assert_eq!(event["data"]["call"]["dp_id"], "dp1", "{event}");
        server.stop().await;
        if let Some(pg) = pg {
            pg.drop().await;
        }
    }
}

/// A spill file left by a crash is replayed at start-up; so is a half-replayed one, without
/// writing twice what it had written already.
#[tokio::test]
async fn a_spill_file_left_at_start_is_replayed() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    for (url, pg) in databases("a_spill_file_left_at_start_is_replayed", dir.path()).await {
        let spill = dir.path().join(format!("left-{}.jsonl", pg.is_some()));
        let sealed = dir
            .path()
            .join(format!("left-{}.replaying.jsonl", pg.is_some()));
        let line = |uuid: &str| {
            serde_json::to_string(&belroute::storage::CallRow::from(&record(uuid))).unwrap() + "\n"
        };
        // The half-replayed file: its first record reached the database before the crash.
        let storage = belroute::storage::Storage::open(&url).unwrap();
        storage.migrate().await.unwrap();
        let done = belroute::storage::CallRow::from(&record("left-replayed"));
        storage
            .insert_rows(
                std::slice::from_ref(&done),
                &belroute::storage::NoSubscribers,
                false,
            )
            .await
            .unwrap();
        storage.close().await;
        std::fs::write(
            &sealed,
            format!(
                "{}\n{}",
                serde_json::to_string(&done).unwrap(),
                line("left-sealed")
            ),
        )
        .unwrap();
        let mut active = std::fs::File::create(&spill).unwrap();
        for i in 0..3 {
            active
                .write_all(line(&format!("left-{i}")).as_bytes())
                .unwrap();
        }
        // The crash cut the last line short.
        active.write_all(br#"{"uuid":"left-cut","recei"#).unwrap();
        drop(active);

        let config = format!("{CONFIG}storage:\n  spill: {}\n", spill.display());
        let server = TestServer::with_database(&[("main.yaml", RULES)], &config, &url).await;
        server
            .eventually(Duration::from_secs(10), "spill files replayed", || async {
                !spill.exists() && !sealed.exists()
            })
            .await;
        assert!(server.app.call_log.flush(Duration::from_secs(5)).await);
        let uuids = |uuid: &'static str| {
            let url = url.clone();
            async move {
                count(
                    &url,
                    &format!("SELECT COUNT(*) FROM calls WHERE uuid = '{uuid}'"),
                )
                .await
            }
        };
        assert_eq!(uuids("left-replayed").await, 1, "{url}: not written twice");
        assert_eq!(uuids("left-sealed").await, 1, "{url}");
        for uuid in ["left-0", "left-1", "left-2"] {
            assert_eq!(uuids(uuid).await, 1, "{url}: {uuid}");
        }
        let stats = server.app.call_log.stats();
        assert_eq!(
            stats.replayed, 5,
            "{url}: one already written, four new: {stats:?}"
        );
        assert_eq!(stats.written, 4, "{url}: {stats:?}");
        assert_eq!(stats.dropped, 1, "{url}: the cut line: {stats:?}");
        assert_eq!(stats.spill_bytes, 0, "{url}: {stats:?}");
        // The call served from the replayed log.
        let (status, record) = api(&server, "/api/v1/calls/left-1").await;
        assert_eq!(status, 200);
        assert_eq!(record["call"]["dp_id"], "dp1");
        server.stop().await;
        if let Some(pg) = pg {
            pg.drop().await;
        }
    }
}

/// A full spill file drops, counts and says so; the answer path never waits.
#[tokio::test]
async fn a_full_spill_file_drops_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("calls.db").display());
    let spill = dir.path().join("full.jsonl");
    // Another process holds the write lock: nothing is written, the queue and spill file fill.
    let config = format!(
        "{CONFIG}storage:\n  queue: 1\n  spill: {}\n  spill_limit: 1MiB\n",
        spill.display()
    );
    let server = TestServer::with_database(&[("main.yaml", RULES)], &config, &url).await;
    assert!(server.app.call_log.flush(Duration::from_secs(5)).await);
    let mut locker = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await
        .unwrap();
    let big = "x".repeat(16 * 1024);
    let log = &server.app.call_log;
    for i in 0..200 {
        let mut r = record(&format!("full-{i}"));
        r.call = Arc::new(belroute_engine::Call::from_pairs([
            ("uuid", format!("full-{i}").as_str()),
            ("note", big.as_str()),
        ]));
        log.record(r);
        tokio::task::yield_now().await;
    }
    server
        .eventually(
            Duration::from_secs(10),
            "every record spilled, dropped or queued, some dropped",
            || async {
                let stats = log.stats();
                stats.dropped > 0 && stats.spilled + stats.dropped + stats.queued as u64 == 200
            },
        )
        .await;
    let stats = log.stats();
    assert!(stats.spilled > 0, "{stats:?}");
    assert!(stats.spill_bytes <= 1 << 20, "{stats:?}");
    assert!(std::fs::metadata(&spill).unwrap().len() <= 1 << 20);
    sqlx::query("COMMIT").execute(&mut locker).await.unwrap();
    drop(locker);
    assert!(log.flush(Duration::from_secs(20)).await);
    let stats = log.stats();
    assert_eq!(
        count(&url, "SELECT COUNT(*) FROM calls WHERE uuid LIKE 'full-%'").await,
        200 - stats.dropped as i64,
        "{stats:?}"
    );
    server.stop().await;
}

/// A frequent caller (more calls in the window than the plugin reads back) is counted by the
/// database, in one query; an occasional one from the calls read.
#[tokio::test]
async fn history_counts_frequent_and_occasional_callers() {
    let rules = r#"
timeout: 2s
default: receptie
lookups: [history]
rules:
  - name: Counts
    script: '`w${history.calls_window}_t${history.calls_today}`'
"#;
    let dir = tempfile::tempdir().unwrap();
    for (url, pg) in databases("history_counts", dir.path()).await {
        let server = TestServer::with_database(&[("main.yaml", rules)], CONFIG, &url).await;
        for (caller, calls) in [("0612345678", 3), ("0687654321", 55)] {
            for i in 0..calls {
                call(&server, &format!("{caller}-{i}"), caller).await;
                // The next call's lookup must see this one.
                assert!(server.app.call_log.flush(Duration::from_secs(5)).await);
            }
            let answer = call(&server, &format!("{caller}-last"), caller).await;
            assert_eq!(answer, format!("w{calls}_t{calls}"), "{caller} on {url}");
        }
        server.stop().await;
        if let Some(pg) = pg {
            pg.drop().await;
        }
    }
}

/// One byte of line 10 changed to 0xff (a torn write, a disk error) and the last line cut
/// short by a crash: every other record is replayed, and the file goes.
#[tokio::test]
async fn a_spill_file_with_a_bad_byte_and_a_cut_line_replays_every_other_record() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("calls.db").display());
    let spill = dir.path().join("torn.jsonl");
    let mut text = Vec::new();
    for i in 0..1000 {
        let mut line = serde_json::to_vec(&belroute::storage::CallRow::from(&record(&format!(
            "torn-{i}"
        ))))
        .unwrap();
        if i == 9 {
            // Line 10: the first byte of the uuid's value.
            let at = line.windows(6).position(|w| w == b"torn-9").unwrap();
            line[at] = 0xff;
        }
        if i == 999 {
            line.truncate(line.len() / 2);
        } else {
            line.push(b'\n');
        }
        text.extend(line);
    }
    std::fs::write(&spill, &text).unwrap();
    assert!(
        std::str::from_utf8(&text).is_err(),
        "the file is not UTF-8 as a whole"
    );

    let config = format!("{CONFIG}storage:\n  spill: {}\n", spill.display());
    let server = TestServer::with_database(&[("main.yaml", RULES)], &config, &url).await;
    let sealed = dir.path().join("torn.replaying.jsonl");
    let took = server
        .eventually(
            Duration::from_secs(20),
            "the spill file replayed",
            || async { !spill.exists() && !sealed.exists() },
        )
        .await;
    assert!(server.app.call_log.flush(Duration::from_secs(5)).await);
    let replayed = count(&url, "SELECT COUNT(*) FROM calls WHERE uuid LIKE 'torn-%'").await;
    eprintln!("{replayed} of 1000 records replayed in {took:?}");
    assert_eq!(replayed, 998, "all but line 10 and the cut last line");
    assert_eq!(
        count(
            &url,
            "SELECT COUNT(*) FROM calls WHERE uuid IN ('torn-9', 'torn-999')"
        )
        .await,
        0
    );
    let stats = server.app.call_log.stats();
    assert_eq!(stats.replayed, 998, "{stats:?}");
    assert_eq!(
        stats.dropped, 2,
        "the two lines that are not records: {stats:?}"
    );
    assert_eq!(stats.spill_bytes, 0, "{stats:?}");
    assert_eq!(stats.spill_records, 0, "{stats:?}");
    server.stop().await;
}

/// A spill file that cannot be read at all (here: a directory where the file should be) is
/// tried three times, then moved aside, and the records after it are replayed.
#[tokio::test]
async fn a_spill_file_that_cannot_be_read_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("calls.db").display());
    let spill = dir.path().join("stuck.jsonl");
    let sealed = dir.path().join("stuck.replaying.jsonl");
    std::fs::create_dir(&sealed).unwrap();
    let line = |uuid: &str| {
        serde_json::to_string(&belroute::storage::CallRow::from(&record(uuid))).unwrap() + "\n"
    };
    std::fs::write(&spill, line("after-1") + line("after-2").as_str()).unwrap();

    let config = format!("{CONFIG}storage:\n  spill: {}\n", spill.display());
    let server = TestServer::with_database(&[("main.yaml", RULES)], &config, &url).await;
    server
        .eventually(
            Duration::from_secs(20),
            "the records after the unreadable file replayed",
            || async {
                count(&url, "SELECT COUNT(*) FROM calls WHERE uuid LIKE 'after-%'").await == 2
            },
        )
        .await;
    assert!(
        !sealed.exists(),
        "the unreadable file is no longer in the way"
    );
    let aside: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("stuck.bad-") && name.ends_with(".jsonl"))
        .collect();
    assert_eq!(aside.len(), 1, "moved aside once: {aside:?}");
    assert!(dir.path().join(&aside[0]).is_dir(), "{aside:?}");
    server.stop().await;
}

/// PostgreSQL refuses text with a NUL byte. Such a call must not hold up the call log: it is
/// set aside beside the spill file, every other record is written.
#[tokio::test]
async fn a_record_the_database_refuses_is_set_aside_and_the_rest_is_written() {
    let Some(pg) =
        db::postgres("a_record_the_database_refuses_is_set_aside_and_the_rest_is_written").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let spill = dir.path().join("refused.jsonl");
    let config = format!("{CONFIG}storage:\n  spill: {}\n", spill.display());
    let server = TestServer::with_database(&[("main.yaml", RULES)], &config, &pg.url).await;
    call(&server, "refused-\u{0}-nul", "31152026057").await;
    for i in 0..5 {
        call(&server, &format!("refused-ok-{i}"), "31152026057").await;
    }
    assert!(
        server.app.call_log.flush(Duration::from_secs(15)).await,
        "the call log is not held up"
    );
    assert_eq!(
        count(
            &pg.url,
            "SELECT COUNT(*) FROM calls WHERE uuid LIKE 'refused-ok-%'"
        )
        .await,
        5
    );
    let stats = server.app.call_log.stats();
    assert_eq!(stats.set_aside, 1, "{stats:?}");
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("refused.bad-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    let kept = std::fs::read_to_string(&aside[0]).unwrap();
    assert!(kept.contains("refused-\\u0000-nul"), "{kept}");
    // The next calls go straight to the database again.
    call(&server, "refused-after", "31152026057").await;
    assert!(server.app.call_log.flush(Duration::from_secs(5)).await);
    assert_eq!(
        count(
            &pg.url,
            "SELECT COUNT(*) FROM calls WHERE uuid = 'refused-after'"
        )
        .await,
        1
    );
    server.stop().await;
    pg.drop().await;
}

/// `history` counts a frequent caller from one row per day (`caller_days`, kept by the
/// database's triggers) and the calls of the first part-day: the counts agree with counting
/// every call — after batches, deletions and a purge, at any window and day start, for the
/// calls logged before the table existed too — and a caller with 20,000 calls in the window
/// costs no more than one with a single call.
#[tokio::test]
async fn history_counts_by_day_agree_with_every_call_and_stay_flat() {
    const DAY: i64 = 86_400_000;
    let dir = tempfile::tempdir().unwrap();
    for (url, pg) in databases("history_counts_by_day", dir.path()).await {
        let storage = belroute::storage::Storage::open(&url).unwrap();
        storage.migrate().await.unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        let midnight = now - now % DAY;
        let at = |number: &str, ms: i64, uuid: String| belroute::storage::CallRecord {
            received_at: std::time::UNIX_EPOCH + Duration::from_millis(ms as u64),
            call: Arc::new(belroute_engine::Call::from_pairs([
                ("uuid", uuid.as_str()),
                ("caller_number", number),
            ])),
            decision: belroute_engine::Decision {
                caller: belroute_engine::Normaliser::default().normalise(number),
                ..sample_decision()
            },
        };
        // A frequent caller: 20,000 calls over the 20 whole days before today; two went to an
        // agent, one among the last 50 and one long before.
        let mut frequent: Vec<_> = (0..20_000)
            .map(|i| {
                at(
                    "0612345678",
                    midnight - 20 * DAY + i * (DAY / 1_000),
                    format!("f{i}"),
                )
            })
            .collect();
        frequent[100].decision.route = "agent_7".into();
        frequent[19_960].decision.route = "agent_42".into();
        for batch in frequent.chunks(2_000) {
            storage.insert_calls(batch, &[]).await.unwrap();
        }
        // Another: calls on and around day boundaries, today, in the future, withheld ones.
        let mut edges = Vec::new();
        for (i, ms) in [
            midnight - 31 * DAY - 1,
            midnight - 30 * DAY,
            midnight - 30 * DAY + 1,
            midnight - 3 * DAY - 1,
            midnight - 3 * DAY,
            midnight - 3_600_000,
            midnight - 1,
            midnight,
            midnight + 1,
            now - 1_000,
            now,
            now + DAY,
        ]
        .into_iter()
        .enumerate()
        {
            let mut edge = at("0201234567", ms, format!("e{i}"));
            // Routes to agents, and one that is only the prefix (no agent).
            edge.decision.route = ["receptie", "agent_1003", "agent_"][i % 3].into();
            edges.push(edge);
            edges.push(at("anonymous", ms, format!("a{i}")));
        }
        storage.insert_calls(&edges, &[]).await.unwrap();
        let occasional = at("0301234567", now - 1_000, "o".into());
        storage
            .insert_calls(std::slice::from_ref(&occasional), &[])
            .await
            .unwrap();

        let starts = [
            midnight - 30 * DAY - 1,
            midnight - 30 * DAY,
            midnight - 30 * DAY + 1,
            now - 30 * DAY,
            midnight - 3 * DAY,
            midnight - 3 * DAY + 7,
            midnight - 3_600_000,
            midnight - 1,
            midnight,
            midnight + 1,
            now,
        ];
        let agree = |stage: &'static str| {
            let storage = storage.clone();
            let url = url.clone();
            async move {
                for caller in ["+31612345678", "+31201234567", "+31301234567", "", "+31999"] {
                    for window in starts {
                        for today in starts.iter().copied().filter(|t| *t >= window) {
                            let by_day = storage.count_calls(caller, window, today).await.unwrap();
                            let by_call = storage
                                .count_calls_one_by_one(caller, window, today)
                                .await
                                .unwrap();
                            assert_eq!(
                                by_day, by_call,
                                "{stage}: {caller} from {window} (today {today}) on {url}"
                            );
                            // `history`'s one statement: the last call and the last with an
                            // agent among the 50 most recent, and the same counts.
                            let (last, counted) = storage
                                .last_calls_and_counts(&belroute_plugins::history::HistoryQuery {
                                    caller_e164: caller,
                                    window_ms: window,
                                    today_ms: today,
                                    limit: 50,
                                    agent_route_prefix: "agent_",
                                })
                                .await
                                .unwrap();
                            let recent = storage.recent_calls(caller, window, 50).await.unwrap();
                            let with_agent = recent.iter().find(|c| {
                                c.agent.is_some()
                                    || c.route
                                        .strip_prefix("agent_")
                                        .is_some_and(|a| !a.is_empty())
                            });
                            let expected: Vec<_> = if counted.is_some() {
                                recent
                                    .first()
                                    .into_iter()
                                    .chain(with_agent)
                                    .cloned()
                                    .collect()
                            } else {
                                recent.clone()
                            };
                            assert_eq!(last, expected, "{stage}: {caller} from {window} on {url}");
                            if let Some(counted) = counted {
                                assert_eq!(
                                    counted, by_call,
                                    "{stage}: {caller} from {window} (today {today}) in one statement on {url}"
                                );
                            } else {
                                assert!(
                                    recent.is_empty() || caller.is_empty(),
                                    "{stage}: no counts for {caller} from {window} on {url}"
                                );
                            }
                        }
                    }
                }
            }
        };
        agree("written").await;
        assert_eq!(
            storage
                .count_calls("+31612345678", midnight - 30 * DAY, midnight)
                .await
                .unwrap(),
            (20_000, 0)
        );

        // Flat: the frequent caller's count reads 20 day rows, the occasional one's a row or
        // none; counting each call (as before) read 20,000 index entries. The fastest of 30
        // of each, so a busy machine does not decide.
        let fastest = |caller: &'static str| {
            let storage = storage.clone();
            async move {
                let mut best = Duration::MAX;
                for _ in 0..30 {
                    let started = Instant::now();
                    storage
                        .count_calls(caller, now - 30 * DAY, midnight)
                        .await
                        .unwrap();
                    best = best.min(started.elapsed());
                }
                best
            }
        };
        let (frequent_took, occasional_took) =
            (fastest("+31612345678").await, fastest("+31301234567").await);
        let one_by_one = {
            let mut best = Duration::MAX;
            for _ in 0..30 {
                let started = Instant::now();
                storage
                    .count_calls_one_by_one("+31612345678", now - 30 * DAY, midnight)
                    .await
                    .unwrap();
                best = best.min(started.elapsed());
            }
            best
        };
        eprintln!(
            "{url}: 20,000 calls {frequent_took:?}, one call {occasional_took:?}, counted one by one {one_by_one:?}"
        );
        assert!(
            frequent_took < occasional_took * 2,
            "20,000 calls took {frequent_took:?}, one call {occasional_took:?} on {url}"
        );

        // Deleted calls leave the counts, by hand and by retention.
        let sql = "DELETE FROM calls WHERE uuid IN ('f10', 'f11', 'e4', 'e8', 'a4')";
        execute(&url, sql).await;
        agree("deleted").await;
        storage.purge(midnight - 10 * DAY + 5).await.unwrap();
        agree("purged").await;

        // The calls logged before the table existed are counted: a database migrated from
        // the version before it (its last migration undone, the calls kept) gets them all.
        execute(&url, "DELETE FROM caller_days").await;
        execute(
            &url,
            "DELETE FROM _sqlx_migrations WHERE version = 20261207000002",
        )
        .await;
        for statement in [
            "DROP TRIGGER IF EXISTS caller_days_insert ON calls",
            "DROP TRIGGER IF EXISTS caller_days_delete ON calls",
            "DROP TRIGGER IF EXISTS caller_days_update ON calls",
            "DROP FUNCTION IF EXISTS caller_days_add",
            "DROP FUNCTION IF EXISTS caller_days_remove",
            "DROP FUNCTION IF EXISTS caller_days_move",
        ] {
            if pg.is_some() {
                execute(&url, statement).await;
            }
        }
        if pg.is_none() {
            for trigger in [
                "caller_days_insert",
                "caller_days_delete",
                "caller_days_update_old",
                "caller_days_update_new",
            ] {
                execute(&url, &format!("DROP TRIGGER {trigger}")).await;
            }
        }
        execute(&url, "DROP TABLE caller_days").await;
        storage.migrate().await.unwrap();
        agree("migrated").await;

        storage.close().await;
        if let Some(pg) = pg {
            pg.drop().await;
        }
    }
}

/// Runs one statement with a direct connection, not through belroute.
async fn execute(url: &str, statement: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(statement.to_string()))
        .execute(&mut conn)
        .await
        .unwrap();
}
