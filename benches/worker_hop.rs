//! What a rule set that needs a worker process pays per call: the same ten everyday rules
//! decided in the server (proven bounded) and in a worker process (one rule first that is not
//! proven bounded, a `while` loop that never runs, sends every rule there), side by side in one
//! run.
//!
//! `cargo bench --bench worker_hop` prints wall time per call for both and the difference.
//! `bench/worker_hop.py` runs it under callgrind to count instructions per call in the server
//! and in the worker (`worker_hop inline|worker CALLS`: one side only; the timed loop is the
//! function `measured`, which callgrind is told to count).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use belroute_engine::{
    Call, DEFAULT_TIME_ZONE, Deadline, Limits, LoadContext, Lookups, Normaliser, PoolSettings,
    Reason, Router, RuleSet, ScriptEngine, WorkerCommand,
};
use chrono::TimeZone;

/// Ten rules an office writes; none matches the benchmark's call, so every one runs.
const TEN: &str = r#"
  - name: Closed
    when: '!open_hours("mon-fri 08:30-17:30; sat 10:00-14:00")'
    route: gesloten
  - name: Holiday
    when: is_holiday()
    route: feestdag
  - name: Withheld
    when: caller.anonymous
    route: anoniem
  - name: Abroad
    when: caller.valid && caller.country != "NL"
    route: international
  - name: Premium
    when: caller.kind == "premium_rate"
    route: blocked
  - name: Sales line
    when: call.dp_in_number == "1004"
    route: sales
  - name: Known VIP
    when: caller.e164 in ["+31201234567", "+31301234567"]
    route: vip
  - name: Evening mobiles
    when: caller.kind == "mobile" && now().hour >= 20
    route: late
  - name: Test calls
    when: call.phonebook_caller_name.contains("Test")
    route: test
  - name: By line
    script: 'switch call.dp_in_number { "1005" => "support", _ => () }'
"#;

fn rule_set(scripts: &ScriptEngine, name: &str, in_worker: bool) -> Arc<RuleSet> {
    let mut text = String::from("timeout: 2s\ndefault: receptie\nrules:\n");
    if in_worker {
        // A loop that never runs (the call has a uuid), which the optimiser cannot remove.
        text.push_str("  - name: In a worker\n    script: 'while call.uuid == \"\" { } ()'\n");
    }
    text.push_str(TEN);
    let lookups = belroute_engine::LookupFacts::new();
    let ctx = LoadContext {
        scripts,
        lookups: &lookups,
        calendars: &belroute_engine::calendar::NO_CALENDARS,
        time_zone: DEFAULT_TIME_ZONE,
    };
    let set = RuleSet::load(name, Path::new("bench.yaml"), &text, &ctx).unwrap();
    assert_eq!(set.rules[0].unbounded().is_some(), in_worker);
    Arc::new(set)
}

/// The decisions the callgrind run counts: nothing else runs in this function.
#[inline(never)]
fn measured(runtime: &tokio::runtime::Runtime, router: &Router, set: &Arc<RuleSet>, calls: usize) {
    let call = Arc::new(Call::from_pairs([
        ("caller_number", "31612345678"),
        ("dp_in_number", "1003"),
        ("uuid", "b587f4ee-718d-11ed-88ee-b97829e8fee4"),
    ]));
    // Monday 10:00 in Amsterdam: open, no holiday.
    let now = DEFAULT_TIME_ZONE
        .with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
        .unwrap()
        .with_timezone(&chrono::Utc);
    runtime.block_on(async {
        for _ in 0..calls {
            // Generous: under valgrind the first call starts the worker and compiles the rules.
            let deadline = Deadline::new(tokio::time::Instant::now(), Duration::from_secs(30));
            let decision = router.route(set, call.clone(), deadline, now).await;
            assert_eq!(
                (decision.route.as_str(), decision.reason),
                ("receptie", Reason::NoMatch)
            );
        }
    });
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; a side and a count come from bench/worker_hop.py.
    let side = args
        .iter()
        .find(|a| *a == "inline" || *a == "worker")
        .cloned();
    let calls: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(20_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let scripts = Arc::new(ScriptEngine::new(&Limits::default()));
    let pool = PoolSettings {
        workers: 1,
        share: 1,
        // Under valgrind a worker needs far more address space than it uses.
        worker_memory: std::env::var("BELROUTE_BENCH_WORKER_MEMORY")
            .ok()
            .and_then(|m| m.parse().ok())
            .unwrap_or(256 << 20),
        ..PoolSettings::default()
    };
    let router = runtime.block_on(async {
        Router::with_workers(
            scripts.clone(),
            Normaliser::default(),
            Lookups::default(),
            pool,
            WorkerCommand::new(env!("CARGO_BIN_EXE_belroute"), &["worker"]),
            false,
        )
    });
    let inline = rule_set(&scripts, "inline", false);
    let worker = rule_set(&scripts, "worker", true);
    // Warm up both: the worker starts and compiles its rule set, caches fill.
    measured(&runtime, &router, &inline, 200);
    measured(&runtime, &router, &worker, 200);
    match side.as_deref() {
        Some("inline") => measured(&runtime, &router, &inline, calls),
        Some(_) => measured(&runtime, &router, &worker, calls),
        None => {
            let time = |set: &Arc<RuleSet>| {
                let started = Instant::now();
                measured(&runtime, &router, set, calls);
                started.elapsed().as_secs_f64() * 1e6 / calls as f64
            };
            // Alternate, so machine noise falls on both sides alike.
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for _ in 0..5 {
                a.push(time(&inline));
                b.push(time(&worker));
            }
            a.sort_by(f64::total_cmp);
            b.sort_by(f64::total_cmp);
            println!(
                "ten rules, {calls} calls x 5 rounds, median of rounds (min-max), one worker process"
            );
            println!(
                "in the server:        {:>7.2} µs/call ({:.2}-{:.2})",
                a[2], a[0], a[4]
            );
            println!(
                "in a worker process:  {:>7.2} µs/call ({:.2}-{:.2})",
                b[2], b[0], b[4]
            );
            println!("the worker hop adds:  {:>7.2} µs/call", b[2] - a[2]);
        }
    }
    // The worker exits by itself (so callgrind writes its counts), not by a kill.
    runtime.block_on(router.pool().shutdown());
}
