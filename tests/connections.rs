//! A connection flood costs capacity, not the calls already flowing: the real binary, started
//! with a service manager's default file limit (1024), raises it, keeps descriptors for the
//! call log, and answers calls in time while thousands of idle connections are held open.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::binary::Served;

/// Idle connections held open at once.
const IDLE: usize = 3_000;
/// Calls made while they are.
const CALLS: usize = 100;

/// The test holds thousands of sockets itself: its own soft limit goes up to the hard one.
fn raise_own_file_limit(needed: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let target = limit.maximum.unwrap_or(1 << 20);
    if limit.current.is_some_and(|soft| soft < target) {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(target),
                maximum: limit.maximum,
            },
        )
        .unwrap();
    }
    assert!(
        target >= needed,
        "this test needs a hard file limit of at least {needed} (it is {target}): raise it with `ulimit -Hn`"
    );
}

/// Opens `n` connections that send nothing and keeps them open until `stop`; returns how
/// many are open now.
fn hold(addr: String, n: usize, open: Arc<AtomicUsize>, stop: tokio::sync::watch::Receiver<bool>) {
    for _ in 0..n {
        let (addr, open, mut stop) = (addr.clone(), open.clone(), stop.clone());
        tokio::spawn(async move {
            let connect = tokio::net::TcpStream::connect(&addr);
            let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(3), connect).await else {
                return;
            };
            open.fetch_add(1, Ordering::SeqCst);
            let _ = stop.wait_for(|s| *s).await;
            drop(stream);
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

async fn readyz(client: &reqwest::Client, addr: &str) -> serde_json::Value {
    client
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_thousand_idle_connections_do_not_stop_calls() {
    raise_own_file_limit(IDLE as u64 + 1_000);
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("main.yaml"),
        "timeout: 2s\ndefault: receptie\nrules: []\n",
    )
    .unwrap();
    // Idle connections are closed after 5 s here, so the test sees them all open, then closed.
    std::fs::write(
        dir.path().join("belroute.yaml"),
        "hooks:\n  connections:\n    request_timeout: 5s\n",
    )
    .unwrap();
    let url = format!("sqlite://{}", dir.path().join("calls.db").display());
    let (rules, config) = (
        rules.to_str().unwrap().to_string(),
        dir.path()
            .join("belroute.yaml")
            .to_str()
            .unwrap()
            .to_string(),
    );
    let served = Served::start_with_file_limit(
        &[
            "--workers",
            "2",
            "--database",
            &url,
            "--rules",
            &rules,
            "--config",
            &config,
        ],
        &[],
        1024,
    );
    let addr = served.addr.clone();
    belroute_plugins::install_crypto_provider();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let before = readyz(&client, &addr).await;
    assert!(
        before["connections"]["file_limit"].as_i64().unwrap() > 1024,
        "the soft file limit is raised: {before}"
    );

    let open = Arc::new(AtomicUsize::new(0));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let opening = Instant::now();
    hold(addr.clone(), IDLE, open.clone(), stopped);
    while open.load(Ordering::SeqCst) < IDLE && opening.elapsed() < Duration::from_secs(4) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let held = open.load(Ordering::SeqCst);
    eprintln!("{held} idle connections open after {:?}", opening.elapsed());
    assert_eq!(
        held, IDLE,
        "every idle connection was accepted by the kernel"
    );
    // belroute has accepted them all (and counts this one too).
    let seen = loop {
        let seen = readyz(&client, &addr).await;
        if seen["connections"]["open"].as_i64().unwrap() > IDLE as i64
            || opening.elapsed() > Duration::from_secs(4)
        {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "/readyz after {:?}: {}",
        opening.elapsed(),
        seen["connections"]
    );
    assert!(
        seen["connections"]["open"].as_i64().unwrap() > IDLE as i64,
        "belroute counts the idle connections and this one: {seen}"
    );

    // Normal calls, each on a new connection, while the idle ones are held.
    let fresh = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let mut slowest = Duration::ZERO;
    for i in 0..CALLS {
        let started = Instant::now();
        let answer = fresh
            .post(format!("http://{addr}/hooks/main"))
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"uuid":"busy-{i}","caller_number":"31152026057"}}"#
            ))
            .send()
            .await
            .unwrap_or_else(|e| panic!("call {i} not answered: {e}"));
        assert_eq!(answer.status(), 200, "call {i}");
        assert_eq!(answer.text().await.unwrap(), "receptie");
        let took = started.elapsed();
        slowest = slowest.max(took);
        assert!(
            took < Duration::from_millis(1750),
            "call {i} answered after {took:?}, past its deadline"
        );
    }
    let held_during = open.load(Ordering::SeqCst);
    eprintln!(
        "{CALLS} calls answered while {held_during} idle connections were held; slowest {slowest:?}, {:?} after the idle ones were opened",
        opening.elapsed()
    );
    assert_eq!(
        held_during, IDLE,
        "the idle connections were held through the calls"
    );

    // Idle connections are closed after hooks.connections.request_timeout.
    let waited = Instant::now();
    loop {
        let open_now = readyz(&client, &addr).await["connections"]["open"]
            .as_i64()
            .unwrap();
        if open_now <= 2 {
            break;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "{open_now} connections still open"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = stop.send(true);
    let log = tokio::task::spawn_blocking(move || served.stop())
        .await
        .unwrap();
    assert!(!log.to_lowercase().contains("too many open files"), "{log}");
    let logged =
        common::db::count(&url, "SELECT COUNT(*) FROM calls WHERE uuid LIKE 'busy-%'").await;
    assert_eq!(logged, CALLS as i64, "every call in the call log");
}
