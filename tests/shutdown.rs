//! SIGTERM with call records still queued (the database is busy): the real binary writes them
//! all before it exits.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::time::Duration;

use common::binary::Served;

/// Starts `belroute serve` with one rule set on `database`.
fn serve(dir: &std::path::Path, database: &str) -> Served {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("main.yaml"), "default: receptie\nrules: []\n").unwrap();
    std::fs::write(dir.join("belroute.yaml"), "").unwrap();
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
