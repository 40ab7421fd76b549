//! SIGTERM with call records still queued (the database is busy): the real binary writes them
//! all before it exits.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use sqlx::Connection;

async fn count(url: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM calls")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

/// Starts `belroute serve` on `database`, returns the child, its address and its log lines.
fn serve(
    dir: &std::path::Path,
    database: &str,
) -> (std::process::Child, String, mpsc::Receiver<String>) {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("main.yaml"), "default: receptie\nrules: []\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_belroute"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--database",
            database,
        ])
        .arg("--rules")
        .arg(&rules)
        .arg("--config")
        .arg(dir.join("none.yaml"))
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::write(dir.join("none.yaml"), "").ok();
    let (tx, log) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = log
            .recv_timeout(Duration::from_secs(20))
            .expect("start-up log");
        if let Some(addr) = line.split("listening on http://").nth(1) {
            break addr.trim().to_string();
        }
    };
    (child, addr, log)
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

fn terminate(child: &mut std::process::Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
}

#[tokio::test]
async fn sigterm_writes_every_queued_record_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("calls.db").display());
    let (mut child, addr, log) = serve(dir.path(), &url);
    // Hold the write lock, so the records cannot be written and stay queued.
    let mut locker = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await
        .unwrap();
    fire(&addr, 300).await;
    terminate(&mut child);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "belroute waits for the database before exiting"
    );
    sqlx::query("COMMIT").execute(&mut locker).await.unwrap();
    drop(locker);
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(count(&url).await, 300);
    let log: Vec<String> = log.try_iter().collect();
    assert!(
        log.iter()
            .any(|l| l.contains("call log flushed (300 record(s) were queued)")),
        "{log:#?}"
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
    let (mut child, addr, _log) = serve(dir.path(), &through_proxy);
    proxy.cut();
    fire(&addr, 300).await;
    terminate(&mut child);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "belroute waits for the database before exiting"
    );
    proxy.restore();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(count(&pg.url).await, 300);
    pg.drop().await;
}
