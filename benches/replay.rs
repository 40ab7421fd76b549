//! Replaying 100,000 logged calls (docs/performance.md): writes them once into a SQLite file,
//! each with the facts of bench/rules/main.yaml's lookups as the server records them, then
//! times `belroute replay` on them, pinned to one core when `taskset` is there.
//!
//! `cargo bench --bench replay` (the file: `$BELROUTE_REPLAY_BENCH_DB`, default
//! `target/replay-bench.db`; delete it to write it again).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use belroute::config::Config;
use belroute::storage::{CallRecord, Storage};
use belroute_engine::{Call, Decision, Reason};
use serde_json::{Value, json};

fn main() {
    let root = env!("CARGO_MANIFEST_DIR");
    let path = std::env::var("BELROUTE_REPLAY_BENCH_DB")
        .unwrap_or_else(|_| format!("{root}/target/replay-bench.db"));
    if !std::path::Path::new(&path).exists() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let started = Instant::now();
        runtime.block_on(write_calls(&path));
        eprintln!(
            "wrote 100,000 calls into {path} in {:.1?}",
            started.elapsed()
        );
    }
    let pinned = Command::new("taskset").arg("--version").output().is_ok();
    let mut command = if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", "0", env!("CARGO_BIN_EXE_belroute")]);
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_belroute"))
    };
    command.args([
        "replay",
        "--rules",
        &format!("{root}/bench/rules"),
        "--config",
        &format!("{root}/bench/belroute.yaml"),
        "--database",
        &format!("sqlite://{path}"),
        "--since",
        "24h",
    ]);
    let started = Instant::now();
    let out = command.output().unwrap();
    let took = started.elapsed();
    let summary = String::from_utf8_lossy(&out.stdout);
    println!("{}", summary.lines().take(3).collect::<Vec<_>>().join("\n"));
    println!(
        "replay of the logged calls: {took:.2?} wall{} (exit {})",
        if pinned { ", pinned to CPU 0" } else { "" },
        out.status.code().unwrap_or(-1)
    );
}

async fn write_calls(path: &str) {
    use belroute_engine::{LookupResult, LookupTrace, RuleOutcome, RuleTrace};
    let url = format!("sqlite://{path}");
    let storage = Storage::open(&url).unwrap();
    storage.migrate().await.unwrap();
    let normaliser = Config::default().default_region.0.clone();
    let now = belroute::time::now_ms();
    let rules = [
        "Closed outside office hours",
        "Withheld numbers",
        "Callers from abroad",
        "Second call today, same colleague",
        "Open invoices go to Finance",
    ];
    let total: i64 = 100_000;
    for chunk in 0..(total / 1000) {
        let records: Vec<CallRecord> = (chunk * 1000..(chunk + 1) * 1000)
            .map(|i| {
                let caller = match i % 20 {
                    0 => "anonymous".to_string(),
                    1 => format!("4930{:07}", i % 10_000_000),
                    2..=9 => format!("316{:08}", i % 100_000_000),
                    _ => format!("3115{:07}", i % 10_000_000),
                };
                let facts = |v: Value| LookupResult::Found {
                    facts: Arc::new(v.as_object().unwrap().clone()),
                };
                let lookups = vec![
                    LookupTrace {
                        name: "invoices".into(),
                        result: if i % 7 == 0 {
                            LookupResult::NotFound
                        } else {
                            facts(json!({ "open_count": i % 3, "open_amount": (i % 3) * 125 }))
                        },
                        micros: 900,
                        cached: true,
                        stale: false,
                        awaited: true,
                    },
                    LookupTrace {
                        name: "history".into(),
                        result: facts(
                            json!({ "calls_today": i % 2, "last_agent": if i % 4 == 0 { json!("1003") } else { Value::Null } }),
                        ),
                        micros: 1500,
                        cached: false,
                        stale: false,
                        awaited: true,
                    },
                ];
                let call = Call::from_pairs([
                    ("uuid", format!("bench-{i}")),
                    ("caller_number", caller.clone()),
                    ("dp_id", "dp1".to_string()),
                    ("called_number", "31152026000".to_string()),
                ]);
                CallRecord {
                    received_at: SystemTime::UNIX_EPOCH
                        + Duration::from_millis((now - 43_200_000 + i * 432) as u64),
                    call: Arc::new(call),
                    decision: Decision {
                        route: if i % 3 == 0 { "finance" } else { "receptie" }.into(),
                        rule: (i % 3 == 0).then(|| rules[4].to_string()),
                        reason: if i % 3 == 0 { Reason::Matched } else { Reason::NoMatch },
                        ruleset: "main".into(),
                        version: "0ld0ld0ld0ld".into(),
                        caller: normaliser.normalise(&caller),
                        rules: rules
                            .iter()
                            .map(|name| RuleTrace {
                                name: name.to_string(),
                                outcome: RuleOutcome::NoMatch,
                                micros: 20,
                            })
                            .collect(),
                        lookups,
                        micros: 2500,
                        panicked: false,
                    },
                }
            })
            .collect();
        storage.insert_calls(&records, &[]).await.unwrap();
    }
    storage.close().await;
}
