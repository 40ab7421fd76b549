//! Three `belroute serve` processes behind a real HAProxy on loopback, on one PostgreSQL, with
//! `rules.source: database`, while calls flow at a steady rate through the balancer:
//!
//! - one instance killed with SIGKILL (and started again): every call answered;
//! - a rule set published through the balancer: every instance answers the new route within 1 s;
//! - the console through the balancer, page after page (each on another instance): one login;
//! - all three restarted one by one (SIGTERM, drain, start): every call answered;
//!
//! and afterwards every answered call's record is in the call log. HAProxy health-checks
//! `/healthz` and retries a refused connection on another instance (docs/operators.md,
//! "Several instances"). Needs `haproxy` (`.ci/run` installs it) and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::binary::Served;

const ADMIN: &str = "balancer-admin-token-0123456789abcdef";

fn rules(route: &str) -> String {
    format!(
        "default: receptie\nroutes: [receptie, mobiel, balie]\nrules:\n  - name: Mobile callers\n    when: caller.kind == \"mobile\"\n    route: {route}\ntests:\n  - name: A mobile caller\n    call: {{ caller_number: \"31612345678\" }}\n    expect: {route}\n"
    )
}

/// `haproxy`, or `None` (and a note) where it is missing and CI is not set.
fn haproxy() -> Option<PathBuf> {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let path = Path::new(dir).join("haproxy");
        if path.is_file() {
            return Some(path);
        }
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "haproxy is missing: install it (apt-get install -y haproxy); .ci/run does"
    );
    println!("skipped: haproxy is not installed");
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One belroute instance: its own directory (rules, belroute.yaml, spill file) and port.
struct Instance {
    dir: PathBuf,
    port: u16,
    database: String,
    served: Option<Served>,
}

impl Instance {
    fn new(root: &Path, n: usize, database: &str, seed: Option<&str>) -> Instance {
        let dir = root.join(format!("instance-{n}"));
        std::fs::create_dir_all(dir.join("rules")).unwrap();
        if let Some(seed) = seed {
            std::fs::write(dir.join("rules/main.yaml"), seed).unwrap();
        }
        std::fs::write(
            dir.join("belroute.yaml"),
            format!(
                "admin:\n  token: {ADMIN}\nrules:\n  source: database\nhooks:\n  drain: 600ms\nstorage:\n  spill: {}\n",
                dir.join("spill.jsonl").display()
            ),
        )
        .unwrap();
        Instance {
            dir,
            port: free_port(),
            database: database.to_string(),
            served: None,
        }
    }

    fn start(&mut self) {
        let rules = self.dir.join("rules");
        let config = self.dir.join("belroute.yaml");
        let served = Served::start_on(
            &format!("127.0.0.1:{}", self.port),
            &self.dir,
            &[
                "--rules",
                rules.to_str().unwrap(),
                "--config",
                config.to_str().unwrap(),
                "--database",
                &self.database,
                "--workers",
                "1",
            ],
            &[],
        );
        self.served = Some(served);
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// HAProxy in the foreground with a configuration for `instances`.
struct Balancer {
    child: Child,
    port: u16,
}

impl Balancer {
    fn start(haproxy: &Path, dir: &Path, instances: &[Instance]) -> Balancer {
        let port = free_port();
        let servers: String = instances
            .iter()
            .enumerate()
            .map(|(i, instance)| format!("    server b{i} 127.0.0.1:{} check\n", instance.port))
            .collect();
        let config = format!(
            "global\n    maxconn 2000\n\
             defaults\n    mode http\n    timeout connect 300ms\n    timeout client 10s\n    timeout server 5s\n    retries 3\n    option redispatch 1\n    retry-on conn-failure empty-response\n    option http-buffer-request\n\
             frontend calls\n    bind 127.0.0.1:{port}\n    default_backend belroute\n\
             backend belroute\n    balance roundrobin\n    option httpchk GET /healthz\n    http-check expect status 200\n    default-server inter 200ms fall 1 rise 2\n{servers}"
        );
        let file = dir.join("haproxy.cfg");
        std::fs::write(&file, config).unwrap();
        let check = Command::new(haproxy)
            .args(["-c", "-q", "-f"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "haproxy.cfg: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new(haproxy)
            .arg("-db")
            .arg("-f")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Balancer { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the callers saw.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    answered: AtomicU64,
    failed: AtomicU64,
    max_micros: AtomicU64,
}

/// Calls through the balancer from `callers` callers, one every `every` each, until `stop`.
fn flow(
    url: String,
    callers: usize,
    every: Duration,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..callers)
        .map(|c| {
            let (url, stop, tally) = (url.clone(), stop.clone(), tally.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .no_proxy()
                    .timeout(Duration::from_secs(3))
                    .build()
                    .unwrap();
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let uuid = format!("bal-{c}-{n}");
                    let body = serde_json::json!({ "uuid": uuid, "caller_number": "31612345678" });
                    tally.sent.fetch_add(1, Ordering::SeqCst);
                    let started = Instant::now();
                    let answer = client.post(&url).json(&body).send().await;
                    let micros = started.elapsed().as_micros() as u64;
                    tally.max_micros.fetch_max(micros, Ordering::SeqCst);
                    match answer {
                        Ok(r) if r.status() == 200 => {
                            tally.answered.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(r) => {
                            tally.failed.fetch_add(1, Ordering::SeqCst);
                            eprintln!("{uuid}: {}", r.status());
                        }
                        Err(e) => {
                            tally.failed.fetch_add(1, Ordering::SeqCst);
                            eprintln!("{uuid}: {e}");
                        }
                    }
                    tokio::time::sleep(every).await;
                }
            })
        })
        .collect()
}

async fn healthy(client: &reqwest::Client, instance: &Instance) -> bool {
    client
        .get(instance.url("/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
}

async fn mobile_route(client: &reqwest::Client, instance: &Instance) -> String {
    let response = client
        .post(instance.url("/hooks/main"))
        .json(&serde_json::json!({ "uuid": "probe", "caller_number": "31612345678" }))
        .send()
        .await
        .unwrap();
    response.text().await.unwrap()
}

fn phase(name: &str, tally: &Tally, since: (u64, u64)) -> (u64, u64) {
    let (sent, answered) = (
        tally.sent.load(Ordering::SeqCst),
        tally.answered.load(Ordering::SeqCst),
    );
    println!(
        "{name}: {} calls sent, {} answered, {} failed so far, max latency {} ms",
        sent - since.0,
        answered - since.1,
        tally.failed.load(Ordering::SeqCst),
        tally.max_micros.load(Ordering::SeqCst) / 1000
    );
    (sent, answered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_behind_haproxy_lose_no_call() {
    let Some(haproxy) = haproxy() else { return };
    belroute_plugins::install_crypto_provider();
    let Some(pg) = common::db::postgres("balancer").await else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let mut instances: Vec<Instance> = (0..3)
        .map(|n| {
            Instance::new(
                root.path(),
                n,
                &pg.url,
                (n == 0).then(|| rules("mobiel")).as_deref(),
            )
        })
        .collect();
    // The first seeds the database; the others start from it.
    for instance in &mut instances {
        instance.start();
    }
    let balancer = Balancer::start(&haproxy, root.path(), &instances);
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // HAProxy sees all three up (rise 2 × 200 ms).
    let started = Instant::now();
    while client.get(balancer.url("/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "haproxy did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    for instance in &instances {
        assert_eq!(mobile_route(&client, instance).await, "mobiel");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let callers = flow(
        balancer.url("/hooks/main"),
        4,
        Duration::from_millis(20),
        stop.clone(),
        tally.clone(),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut mark = phase("steady", &tally, (0, 0));

    // 1. One instance crashes (SIGKILL): the balancer retries its calls elsewhere.
    instances[1].served.take().unwrap().kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    mark = phase("instance 1 killed", &tally, mark);
    instances[1].start();
    let started = Instant::now();
    while !healthy(&client, &instances[1]).await {
        assert!(started.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    mark = phase("instance 1 back", &tally, mark);

    // 2. A rule set published through the balancer: all three serve it within a second.
    let ready: serde_json::Value = client
        .get(balancer.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let base = ready["rulesets"]["main"].as_str().unwrap().to_string();
    let response = client
        .put(balancer.url("/api/v1/rulesets/main"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({ "content": rules("balie"), "base": base, "note": "mobile to the desk" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let published = Instant::now();
    loop {
        let mut all = true;
        for instance in &instances {
            all &= mobile_route(&client, instance).await == "balie";
        }
        if all {
            break;
        }
        assert!(
            published.elapsed() <= Duration::from_secs(1),
            "not every instance served the publish within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "publish: every instance answered the new route {} ms after the publish returned",
        published.elapsed().as_millis()
    );
    mark = phase("published", &tally, mark);

    // 3. The console through the balancer: one login, every page on whichever instance.
    let cookie = common::console_login(&client, &balancer.url(""), ADMIN).await;
    let pages = [
        "/admin",
        "/admin/calls",
        "/admin/try",
        "/admin/plugins",
        "/admin/subscriptions",
        "/admin/rulesets/main",
        "/admin/rulesets/main/edit",
        "/admin/audit",
        "/admin/tokens",
    ];
    for _round in 0..2 {
        for page in pages {
            let response = client
                .get(balancer.url(page))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{page} asked for a second login");
        }
    }
    println!(
        "console: {} pages through the balancer, one login",
        pages.len() * 2
    );

    // 4. A rolling restart: each instance stopped (SIGTERM: it drains, then stops) and started.
    for instance in &mut instances {
        let served = instance.served.take().unwrap();
        let log = tokio::task::spawn_blocking(move || served.stop())
            .await
            .unwrap();
        assert!(log.contains("draining"), "{log}");
        instance.start();
        let started = Instant::now();
        while !healthy(&client, instance).await {
            assert!(started.elapsed() < Duration::from_secs(20));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // HAProxy's rise: two checks.
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    phase("rolled", &tally, mark);

    stop.store(true, Ordering::SeqCst);
    for caller in callers {
        caller.await.unwrap();
    }
    let (sent, answered, failed) = (
        tally.sent.load(Ordering::SeqCst),
        tally.answered.load(Ordering::SeqCst),
        tally.failed.load(Ordering::SeqCst),
    );
    // Stopped cleanly: every queued record is written.
    for instance in &mut instances {
        let served = instance.served.take().unwrap();
        tokio::task::spawn_blocking(move || served.stop())
            .await
            .unwrap();
    }
    let recorded = common::db::count(
        &pg.url,
        "SELECT COUNT(DISTINCT uuid) FROM calls WHERE uuid LIKE 'bal-%'",
    )
    .await;
    println!(
        "in all: {sent} calls sent through HAProxy, {answered} answered, {failed} failed, {recorded} recorded, max latency {} ms",
        tally.max_micros.load(Ordering::SeqCst) / 1000
    );
    assert_eq!(failed, 0, "calls went unanswered");
    assert_eq!(answered, sent);
    assert_eq!(
        recorded as u64, answered,
        "answered calls whose record was lost"
    );
    drop(balancer);
    pg.drop().await;
}
