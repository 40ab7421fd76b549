//! Rules the operating system stops: hostile rule sets that `check` accepts, served by the real
//! binary next to a plain rule set while both get calls. Whatever the hostile rule does — a
//! closure inside a native function, a native call asking for gigabytes, endless recursion —
//! the plain rule set answers as fast as alone, the hostile one answers its default by its
//! deadline, the server is the same process throughout and keeps every call's record, and a
//! rule set that keeps making the operating system stop workers is quarantined and named.
//!
//! Each case prints its figures; `cargo test --test workers -- --nocapture` shows the table.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::binary::Served;

/// The tests here start servers that compete for the CPUs; the one that measures latency must
/// not share the machine with the others, so they take turns.
fn one_at_a_time() -> &'static tokio::sync::Mutex<()> {
    static TURN: std::sync::OnceLock<tokio::sync::Mutex<()>> = std::sync::OnceLock::new();
    TURN.get_or_init(|| tokio::sync::Mutex::new(()))
}

/// The plain rule set: proven bounded, decided in the server.
const PLAIN: &str = "timeout: 2s\ndefault: plain_default\nrules:\n  - name: Mobile\n    when: caller.kind == \"mobile\"\n    route: mobile\n  - name: Else\n    route: plain\n";

/// The hostile rule sets' timeout: 1 s, so the deadline is 750 ms after arrival.
const HOSTILE_DEADLINE: Duration = Duration::from_millis(750);
/// How late past its deadline a call may be answered (the issue's bound).
const LATE: Duration = Duration::from_millis(20);

fn hostile(rules: &[(&str, &str)]) -> String {
    let mut text = String::from("timeout: 1s\ndefault: hostile_default\nrules:\n");
    for (name, script) in rules {
        text.push_str(&format!("  - name: {name}\n    script: '{script}'\n"));
    }
    text
}

/// Every case the issue names (ours is [`a_hostile_rule_in_a_files_own_tests_is_stopped_too`]).
fn cases() -> Vec<(&'static str, String)> {
    let square = "let s = \"\"; s.pad(12000, \"x\"); s.replace(\"x\", s); \"never\"";
    let thirty: Vec<(String, &str)> = (0..30).map(|i| (format!("Square {i}"), square)).collect();
    let thirty: Vec<(&str, &str)> = thirty.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    vec![
        (
            "a closure inside map",
            hostile(&[(
                "Closure in map",
                "fn inner() { let b = []; b.pad(3000, 0); b.map(|y| y + 1).len() } let a = []; a.pad(3000, 0); a.map(|x| inner()).len(); \"never\"",
            )]),
        ),
        (
            "reduce inside a loop",
            hostile(&[(
                "Reduce",
                "let a = []; a.pad(5000, 1); let t = 0; while t >= 0 { t += a.reduce(|s, x| s + x * x, 0) } \"never\"",
            )]),
        ),
        (
            "sort with a comparator in a loop",
            hostile(&[(
                "Sort",
                "let a = []; a.pad(5000, 1); let n = 0; while n >= 0 { a.sort(|x, y| y - x); n += 1 } \"never\"",
            )]),
        ),
        (
            "a string squared with replace",
            hostile(&[("Square", square)]),
        ),
        (
            "replace asking for gigabytes",
            hostile(&[(
                "Gigabytes",
                "let s = \"\"; s.pad(65536, \"x\"); s.replace(\"x\", s); \"never\"",
            )]),
        ),
        (
            "pad to a billion",
            hostile(&[(
                "Billion",
                "let s = \"\"; s.pad(1000000000, \"x\"); \"never\"",
            )]),
        ),
        (
            "unbounded recursion",
            hostile(&[("Recursion", "fn f(n) { f(n + 1) } f(0)")]),
        ),
        (
            "thirty rules squaring a 12,000-character string",
            hostile(&thirty),
        ),
    ]
}

/// A call's answer: its reason header, its route, and how long it took from sending.
struct Answer {
    reason: String,
    route: String,
    took: Duration,
}

async fn call(client: &reqwest::Client, addr: &str, ruleset: &str, uuid: &str) -> Answer {
    let started = Instant::now();
    let body = format!(r#"{{"uuid":"{uuid}","caller_number":"31612345678"}}"#);
    let response = client
        .post(format!("http://{addr}/hooks/{ruleset}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{ruleset} call {uuid}: {e}"));
    assert_eq!(response.status(), 200, "{ruleset} call {uuid}");
    let reason = response.headers()["x-belroute-reason"]
        .to_str()
        .unwrap()
        .to_string();
    let route = response.text().await.unwrap();
    Answer {
        reason,
        route,
        took: started.elapsed(),
    }
}

fn p99(mut times: Vec<Duration>) -> Duration {
    times.sort();
    let index = (times.len() * 99).div_ceil(100).saturating_sub(1);
    times[index.min(times.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Plain calls one after another for `how_long`, every fifth one followed by `/healthz`.
async fn plain_calls(
    client: &reqwest::Client,
    addr: &str,
    prefix: &str,
    how_long: Duration,
) -> Vec<Duration> {
    let mut times = Vec::new();
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < how_long {
        let answer = call(client, addr, "plain", &format!("{prefix}-{i}")).await;
        assert_eq!(
            answer.route, "mobile",
            "the plain rule set answers its route"
        );
        times.push(answer.took);
        if i % 5 == 0 {
            let health = tokio::time::timeout(
                Duration::from_secs(1),
                client.get(format!("http://{addr}/healthz")).send(),
            )
            .await
            .expect("/healthz answers within a second")
            .unwrap();
            assert_eq!(health.status(), 200);
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    times
}

struct Figures {
    case: &'static str,
    plain_alone: Duration,
    plain_with: Duration,
    plain_calls: usize,
    hostile_slowest: Duration,
    hostile_reasons: BTreeMap<String, usize>,
    quarantined: bool,
    records: (i64, i64),
}

async fn run_case(case: &'static str, rules: &str) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir(&rules_dir).unwrap();
    std::fs::write(rules_dir.join("plain.yaml"), PLAIN).unwrap();
    std::fs::write(rules_dir.join("hostile.yaml"), rules).unwrap();
    let config = dir.path().join("belroute.yaml");
    std::fs::write(&config, "sandbox: { workers: 2, share: 1 }\n").unwrap();
    let database = format!("sqlite://{}", dir.path().join("belroute.db").display());
    let mut served = Served::start(
        &[
            "--rules",
            rules_dir.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--database",
            &database,
        ],
        &[],
    );
    let pid = served.child.id();
    let addr = served.addr.clone();
    belroute_plugins::install_crypto_provider();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();

    // The plain rule set alone (after a warm-up).
    let warm = plain_calls(&client, &addr, "warm", Duration::from_millis(300)).await;
    let alone = plain_calls(&client, &addr, "alone", Duration::from_millis(1500)).await;

    // Both: two streams of hostile calls, back to back, while the plain calls go on.
    let hostile_calls = 5;
    let streams: Vec<_> = (0..2)
        .map(|stream| {
            let (client, addr) = (client.clone(), addr.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for i in 0..hostile_calls {
                    answers.push(call(&client, &addr, "hostile", &format!("h{stream}-{i}")).await);
                }
                answers
            })
        })
        .collect();
    let with = plain_calls(&client, &addr, "with", Duration::from_millis(3000)).await;
    let mut hostile_answers = Vec::new();
    for stream in streams {
        hostile_answers.extend(stream.await.unwrap());
    }
    // Once three workers were stopped, the rule set is quarantined: a last call shows it.
    hostile_answers.push(call(&client, &addr, "hostile", "last").await);

    for answer in &hostile_answers {
        assert_eq!(answer.route, "hostile_default", "{case}: {}", answer.reason);
        assert!(
            answer.took <= HOSTILE_DEADLINE + LATE,
            "{case}: a hostile call answered after {:?} ({})",
            answer.took,
            answer.reason
        );
    }
    let mut reasons = BTreeMap::new();
    for answer in &hostile_answers {
        *reasons.entry(answer.reason.clone()).or_insert(0) += 1;
    }

    // Where operators look.
    let readyz: serde_json::Value = client
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let metrics = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let stops: u64 = readyz["workers"]["kills"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["ruleset"] == "hostile")
        .map(|k| k["count"].as_u64().unwrap())
        .sum();
    let quarantined = readyz["quarantined"]
        .as_array()
        .unwrap()
        .iter()
        .any(|q| q["ruleset"] == "hostile");
    assert_eq!(readyz["status"], "ready", "{case}: {readyz}");
    if stops >= 3 {
        assert!(
            quarantined,
            "{case}: {stops} stops, not quarantined: {readyz}"
        );
        assert_eq!(
            hostile_answers.last().unwrap().reason,
            "quarantined",
            "{case}"
        );
        assert!(
            metrics.contains("belroute_ruleset_quarantined{ruleset=\"hostile\"} 1"),
            "{case}: {metrics}"
        );
        assert!(
            metrics.contains("belroute_worker_kills_total{ruleset=\"hostile\""),
            "{case}"
        );
        let rule = readyz["quarantined"][0]["rule"].as_str().unwrap();
        assert!(
            rules.contains(&format!("name: {rule}\n")),
            "{case}: the quarantine names the rule: {rule}"
        );
    } else {
        assert!(!quarantined, "{case}: quarantined after {stops} stops");
    }
    assert!(
        metrics.contains("belroute_ruleset_quarantined{ruleset=\"plain\"} 0"),
        "{case}"
    );
    assert!(
        served.child.try_wait().unwrap().is_none(),
        "{case}: the server is still running"
    );
    assert_eq!(served.child.id(), pid);

    let plain_sent = warm.len() + alone.len() + with.len();
    let log = served.stop();
    if stops >= 3 {
        assert!(
            log.contains("rule set quarantined") && log.contains("ruleset=hostile"),
            "{case}: the log says it:\n{log}"
        );
    }
    let plain_records = common::db::count(
        &database,
        "SELECT COUNT(*) FROM calls WHERE ruleset = 'plain'",
    )
    .await;
    let hostile_records = common::db::count(
        &database,
        "SELECT COUNT(*) FROM calls WHERE ruleset = 'hostile'",
    )
    .await;
    assert_eq!(
        (plain_records, hostile_records),
        (plain_sent as i64, hostile_answers.len() as i64),
        "{case}: every call's record is in the call log"
    );
    Figures {
        case,
        plain_alone: p99(alone),
        plain_with: p99(with.clone()),
        plain_calls: with.len(),
        hostile_slowest: hostile_answers.iter().map(|a| a.took).max().unwrap(),
        hostile_reasons: reasons,
        quarantined,
        records: (plain_records, hostile_records),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_rules_cost_their_own_calls_only() {
    let _turn = one_at_a_time().lock().await;
    let mut figures = Vec::new();
    // One case at a time: each measures latency, which other cases running alongside would
    // disturb.
    for (case, rules) in cases() {
        let f = run_case(case, &rules).await;
        println!(
            "{:<50} plain p99 alone {:>6.1} ms, with {:>6.1} ms ({} calls); hostile slowest {:>6.1} ms {:?}; quarantined {}; records plain {} hostile {}",
            f.case,
            ms(f.plain_alone),
            ms(f.plain_with),
            f.plain_calls,
            ms(f.hostile_slowest),
            f.hostile_reasons,
            f.quarantined,
            f.records.0,
            f.records.1,
        );
        figures.push(f);
    }
    for f in &figures {
        assert!(
            f.plain_with <= f.plain_alone + Duration::from_millis(20),
            "{}: the plain rule set's p99 went from {:.1} ms alone to {:.1} ms",
            f.case,
            ms(f.plain_alone),
            ms(f.plain_with)
        );
    }
}

/// Ours: the same gigabyte `replace`, reached not by a call but by the rule set's own tests,
/// which the server runs when the file is saved (the reload gate). Before worker processes the
/// gate ran rules on a thread of the server: saving this file aborted the server.
#[tokio::test]
async fn a_hostile_rule_in_a_files_own_tests_is_stopped_too() {
    let _turn = one_at_a_time().lock().await;
    let dir = tempfile::tempdir().unwrap();
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir(&rules_dir).unwrap();
    std::fs::write(rules_dir.join("plain.yaml"), PLAIN).unwrap();
    let good = "timeout: 1s\ndefault: hostile_default\nrules:\n  - name: Fine\n    route: fine\n";
    std::fs::write(rules_dir.join("hostile.yaml"), good).unwrap();
    let database = format!("sqlite://{}", dir.path().join("belroute.db").display());
    let mut served = Served::start(
        &[
            "--rules",
            rules_dir.to_str().unwrap(),
            "--database",
            &database,
        ],
        &[],
    );
    let pid = served.child.id();
    let addr = served.addr.clone();
    belroute_plugins::install_crypto_provider();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    assert_eq!(
        call(&client, &addr, "hostile", "before").await.route,
        "fine"
    );

    let saved = Instant::now();
    std::fs::write(
        rules_dir.join("hostile.yaml"),
        "timeout: 1s\ndefault: hostile_default\nrules:\n  - name: Gigabytes\n    script: 'let s = \"\"; s.pad(65536, \"x\"); s.replace(\"x\", s); \"never\"'\ntests:\n  - name: Sends the caller on\n    call: { caller_number: \"31612345678\" }\n    expect: never\n  - name: And the next one\n    call: { caller_number: \"31612345679\" }\n    expect: never\n",
    )
    .unwrap();
    let readyz = loop {
        let readyz: serde_json::Value = client
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if readyz["refused"].as_array().is_some_and(|r| !r.is_empty()) {
            break readyz;
        }
        assert!(
            saved.elapsed() < Duration::from_secs(10),
            "no refusal: {readyz}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let refusal = readyz["refused"][0].to_string();
    assert!(
        refusal.contains("Sends the caller on") && refusal.contains("worker process died"),
        "the failed test says why: {refusal}"
    );
    // The second test needed a worker too: started on the server's runtime, not the reload
    // gate's; and the pool is whole again.
    assert!(
        refusal.contains("And the next one") && refusal.matches("worker process died").count() == 2,
        "{refusal}"
    );
    let whole = Instant::now();
    loop {
        let readyz: serde_json::Value = client
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // Two workers and the spare.
        if readyz["workers"]["running"] == 3 {
            break;
        }
        assert!(
            whole.elapsed() < Duration::from_secs(10),
            "workers not replaced: {readyz}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The last good version serves; the server is the same process and answers.
    assert_eq!(call(&client, &addr, "hostile", "after").await.route, "fine");
    assert_eq!(call(&client, &addr, "plain", "after").await.route, "mobile");
    assert!(served.child.try_wait().unwrap().is_none());
    assert_eq!(served.child.id(), pid);
    println!(
        "(ours) a gigabyte replace in the file's own tests: refused {:.0} ms after saving, server pid {pid} unchanged, last good version serving",
        ms(saved.elapsed())
    );
    served.stop();
}

/// The worker processes of `server`, by their parent pid.
fn workers_of(server: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces, so read after the last `)`.
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(server) {
            pids.push(pid);
        }
    }
    pids
}

/// What the operating system holds each worker to: read from /proc, not from belroute.
#[tokio::test]
async fn workers_are_confined_by_the_operating_system() {
    let _turn = one_at_a_time().lock().await;
    let dir = tempfile::tempdir().unwrap();
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir(&rules_dir).unwrap();
    std::fs::write(rules_dir.join("plain.yaml"), PLAIN).unwrap();
    let config = dir.path().join("belroute.yaml");
    std::fs::write(&config, "sandbox: { workers: 2, worker_memory: 128MiB }\n").unwrap();
    let database = format!("sqlite://{}", dir.path().join("belroute.db").display());
    let served = Served::start(
        &[
            "--rules",
            rules_dir.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--database",
            &database,
        ],
        &[("CRM_TOKEN", "s3cret-of-the-server")],
    );
    // Once every worker said it is ready, each has set its limits.
    belroute_plugins::install_crypto_provider();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let started = Instant::now();
    loop {
        let readyz: serde_json::Value = client
            .get(format!("http://{}/readyz", served.addr))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if readyz["workers"]["started"] == 3 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "workers not started: {readyz}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let workers = workers_of(served.child.id());
    assert_eq!(
        workers.len(),
        3,
        "two workers and a spare start with the server"
    );
    // What this test's own launcher passed on (cargo's jobserver, a shell's descriptors) reaches
    // the server and its workers alike; nothing the server itself opened may.
    let passed_on: Vec<u32> = belroute_engine::inherited_descriptors()
        .into_iter()
        .map(|(fd, _)| fd)
        .collect();
    for pid in workers {
        let mut fds: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
            .filter(|fd| !passed_on.contains(fd))
            .collect();
        fds.sort();
        assert_eq!(
            fds,
            [0, 1, 2],
            "worker {pid}: only stdin, stdout, stderr (and what the test's launcher passed on: {passed_on:?})"
        );
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let limit = |name: &str| {
            limits
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("{name} in {limits}"))
                .split_whitespace()
                .skip(name.split_whitespace().count())
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(limit("Max address space"), "134217728 134217728");
        assert_eq!(limit("Max open files"), "3 3");
        assert_eq!(limit("Max core file size"), "0 0");
        assert_eq!(limit("Max file size"), "0 0");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert!(status.contains("NoNewPrivs:\t1"), "{status}");
        for set in ["CapInh", "CapPrm", "CapEff"] {
            assert!(
                status.contains(&format!("{set}:\t0000000000000000")),
                "worker {pid} {set}: {status}"
            );
        }
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let environ = String::from_utf8_lossy(&environ);
        assert!(!environ.contains("s3cret"), "no secret reaches a worker");
        assert_eq!(environ.trim_end_matches('\0'), "MALLOC_ARENA_MAX=1");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let nice: i32 = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(16))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(nice, 10, "a worker yields the CPU to the server");
        println!(
            "worker {pid}: fds {fds:?}, address space 128 MiB, 3 files, nice {nice}, no capabilities, empty environment"
        );
    }
    served.stop();
}
