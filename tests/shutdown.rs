//! SIGTERM with call records still queued (the database is busy): the real binary writes them
//! all before it exits, or, when the database does not take them in time, leaves them in the
//! spill file for the next start; a crash (`kill -9`) loses nothing: every record was in the
//! crash journal before its answer left.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::time::Duration;

use common::binary::Served;

/// Starts `belroute serve` with one rule set on `database`.
fn serve(dir: &std::path::Path, database: &str) -> Served {
    serve_with(dir, database, "")
}

/// Starts `belroute serve` with one rule set on `database` and `config` as belroute.yaml.
fn serve_with(dir: &std::path::Path, database: &str, config: &str) -> Served {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("main.yaml"), "default: receptie\nrules: []\n").unwrap();
    std::fs::write(dir.join("belroute.yaml"), config).unwrap();
    let (rules, config) = (
        rules.to_str().unwrap().to_string(),
        dir.join("belroute.yaml").to_str().unwrap().to_string(),
    );
    Served::start(
        &[
            "--workers",
            "2",
            "--database",
            database,
            "--rules",
            &rules,
            "--config",
            &config,
        ],
        &[],
    )
}

async fn count(url: &str) -> i64 {
    common::db::count(url, "SELECT COUNT(*) FROM calls").await
}

async fn fire(addr: &str, n: usize) {
    belroute_plugins::install_crypto_provider();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let calls: Vec<_> = (0..n)
        .map(|i| {
            let (client, url) = (client.clone(), format!("http://{addr}/hooks/main"));
            tokio::spawn(async move {
                let body = format!(r#"{{"uuid":"term-{i}","caller_number":"31152026057"}}"#);
                client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), 200);
    }
}

#[tokio::test]
async fn sigterm_writes_every_queued_record_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("calls.db").display());
    let mut served = serve(dir.path(), &url);
    // Hold the write lock, so the records cannot be written and stay queued.
    let mut locker = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await
        .unwrap();
    fire(&served.addr, 300).await;
    served.terminate();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        served.child.try_wait().unwrap().is_none(),
        "belroute waits for the database before exiting"
    );
    sqlx::query("COMMIT").execute(&mut locker).await.unwrap();
    drop(locker);
    let log = tokio::task::spawn_blocking(move || served.stop())
        .await
        .unwrap();
    assert_eq!(count(&url).await, 300);
    assert!(
        log.contains("call log flushed (300 record(s) were queued)"),
        "{log}"
    );
}

#[tokio::test]
async fn sigterm_writes_every_queued_record_on_postgres() {
    let Some(pg) = common::db::postgres("sigterm_writes_every_queued_record_on_postgres").await
    else {
        return;
    };
    let proxy = common::proxy::Proxy::start("127.0.0.1:5432").await;
    let through_proxy = pg
        .url
        .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    let dir = tempfile::tempdir().unwrap();
    let mut served = serve(dir.path(), &through_proxy);
    proxy.cut();
    fire(&served.addr, 300).await;
    served.terminate();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        served.child.try_wait().unwrap().is_none(),
        "belroute waits for the database before exiting"
    );
    proxy.restore();
    tokio::task::spawn_blocking(move || served.stop())
        .await
        .unwrap();
    assert_eq!(count(&pg.url).await, 300);
    pg.drop().await;
}

/// Holds SQLite's write lock from another connection, as another process would.
async fn lock(url: &str) -> sqlx::SqliteConnection {
    let mut locker = <sqlx::SqliteConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await
        .unwrap();
    locker
}

async fn unlock(mut locker: sqlx::SqliteConnection) {
    sqlx::query("COMMIT").execute(&mut locker).await.unwrap();
    drop(locker);
}

/// After a restart: waits until the call log holds `at_least` of the `term-` calls (the spill
/// file replayed), then returns how many there are and how many distinct ones.
async fn after_restart(dir: &std::path::Path, url: &str, at_least: i64) -> (i64, i64) {
    let served = serve(dir, url);
    let started = std::time::Instant::now();
    while count(url).await < at_least && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Anything still to come would have come by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::spawn_blocking(move || served.stop())
        .await
        .unwrap();
    let rows = common::db::count(url, "SELECT COUNT(*) FROM calls WHERE uuid LIKE 'term-%'").await;
    let distinct = common::db::count(
        url,
        "SELECT COUNT(DISTINCT uuid) FROM calls WHERE uuid LIKE 'term-%'",
    )
    .await;
    (rows, distinct)
}

/// The database stays locked through the stop: the 500 answered calls are kept in the spill
/// file, and the next start writes every one of them, none twice.
#[tokio::test]
async fn sigterm_with_the_database_locked_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("calls.db").display());
    let mut served = serve_with(dir.path(), &url, "storage:\n  shutdown_wait: 1s\n");
    let locker = lock(&url).await;
    fire(&served.addr, 500).await;
    served.terminate();
    let stopping = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        let status = served.child.wait().unwrap();
        (status, served.log().join("\n"))
    })
    .await
    .unwrap();
    let (status, log) = status;
    eprintln!("stopped in {:?}", stopping.elapsed());
    assert!(status.success(), "{status:?}\n{log}");
    assert!(
        log.contains("500 record(s) are kept in the spill file"),
        "{log}"
    );
    assert!(!log.contains("lost"), "{log}");
    unlock(locker).await;
    let (rows, distinct) = after_restart(dir.path(), &url, 500).await;
    eprintln!("after the restart: {rows} rows, {distinct} distinct calls of 500");
    assert_eq!((rows, distinct), (500, 500), "every call once");
}

/// The same with `kill -9` a moment after the last answer: no chance to write anything out.
/// While the database cannot take them, records go to the spill file at once; and every
/// record was in the crash journal before its answer left.
#[tokio::test]
async fn kill_9_with_the_database_locked_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("calls.db").display());
    let mut served = serve(dir.path(), &url);
    let locker = lock(&url).await;
    fire(&served.addr, 500).await;
    // A write that takes longer than belroute::storage::STALL (500 ms) sends what the writer
    // holds to the spill file: both files hold records now.
    tokio::time::sleep(belroute::storage::STALL * 2).await;
    served.child.kill().unwrap();
    served.child.wait().unwrap();
    unlock(locker).await;
    let (rows, distinct) = after_restart(dir.path(), &url, 500).await;
    eprintln!("after kill -9 and a restart: {rows} rows, {distinct} distinct calls of 500");
    assert_eq!((rows, distinct), (500, 500), "every call once");
}

/// `kill -9` the moment the last of 500 answers arrived — on a locked database (every record
/// still in memory) and on a free one (records on their way to it): after a restart every
/// answered call is in the call log once.
#[tokio::test]
async fn kill_9_right_after_the_answers_loses_no_answered_call() {
    for locked in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("calls.db").display());
        let mut served = serve(dir.path(), &url);
        let locker = if locked { Some(lock(&url).await) } else { None };
        fire(&served.addr, 500).await;
        served.child.kill().unwrap();
        served.child.wait().unwrap();
        if let Some(locker) = locker {
            unlock(locker).await;
        }
        let (rows, distinct) = after_restart(dir.path(), &url, 500).await;
        eprintln!(
            "kill -9 at once (database locked: {locked}), then a restart: {rows} rows, {distinct} distinct calls of 500"
        );
        assert_eq!(
            (rows, distinct),
            (500, 500),
            "locked: {locked}: every call once"
        );
    }
}
