//! `belroute replay` and the replay after a reload: calls logged by the real server (a real
//! process) on SQLite and on PostgreSQL, decided again with changed rule files by the real
//! binary; the reload's summary in the server's log and in the admin API.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use belroute::config::Config;
use belroute::storage::{CallRecord, Storage};
use belroute_engine::{Call, Decision, Reason};
use common::binary::{Served, belroute};
use common::crm::FakeCrm;
use common::db::{self, TestDb};
use serde_json::{Value, json};

const V1: &str = r#"
timeout: 2s
default: receptie
lookups: [tickets]
rules:
  - name: Open ticket
    when: tickets.count > 0
    script: '`agent_${tickets.agent}`'
"#;

/// Mobiles first: moves the two mobile callers, leaves the others.
const V2: &str = r#"
timeout: 2s
default: receptie
lookups: [tickets]
rules:
  - name: Mobiles first
    when: caller.kind == "mobile"
    route: mobiel
  - name: Open ticket
    when: tickets.count > 0
    script: '`agent_${tickets.agent}`'
"#;

/// Reads `invoices`, which no logged call recorded.
const V3: &str = r#"
timeout: 2s
default: receptie
lookups: [tickets, invoices]
rules:
  - name: Open invoices
    when: invoices.count > 0
    route: finance
  - name: Open ticket
    when: tickets.count > 0
    script: '`agent_${tickets.agent}`'
"#;

/// Sends a call whose `invoices` are unavailable to `crm_storing`: replayed, that is every
/// call, only because no logged call recorded `invoices` (an artefact, not a change).
const V4: &str = r#"
timeout: 2s
default: receptie
lookups: [tickets, invoices]
rules:
  - name: Invoices down
    when: invoices == ()
    route: crm_storing
  - name: Mobiles first
    when: caller.kind == "mobile"
    route: mobiel
  - name: Open ticket
    when: tickets.count > 0
    script: '`agent_${tickets.agent}`'
"#;

/// (uuid, caller, route answered live)
const CALLS: &[(&str, &str, &str)] = &[
    ("fixed-ticket", "31152026057", "agent_1003"),
    ("mobile-ticket", "31612345678", "agent_1004"),
    ("mobile-none", "31687654321", "receptie"),
    ("fixed-none", "31201234567", "receptie"),
    ("withheld", "anonymous", "receptie"),
];

/// The databases to run a scenario on: a SQLite file, and PostgreSQL when configured.
async fn databases(test: &str, dir: &Path) -> Vec<(String, Option<TestDb>)> {
    let mut all = vec![(format!("sqlite://{}", dir.join("calls.db").display()), None)];
    if let Some(pg) = db::postgres(test).await {
        all.push((pg.url.clone(), Some(pg)));
    }
    all
}

/// `belroute replay ARGS…`: (exit code, stdout, stderr).
fn replay(args: &[&str]) -> (i32, String, String) {
    let output = belroute().arg("replay").args(args).output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

fn replay_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, out, err) = replay(&all);
    assert_eq!(code, 0, "replay --json: {out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn changes(summary: &Value) -> Vec<(String, Value, String, Value, u64, Vec<String>)> {
    summary["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["from"]["route"].as_str().unwrap().to_string(),
                c["from"]["rule"].clone(),
                c["to"]["route"].as_str().unwrap().to_string(),
                c["to"]["rule"].clone(),
                c["calls"].as_u64().unwrap(),
                c["examples"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["uuid"].as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

/// Collects a served process's log until a line contains `needle`.
fn wait_for_log(served: &Served, log: &mut Vec<String>, needle: &str, limit: Duration) -> String {
    let started = Instant::now();
    loop {
        log.extend(served.log());
        if let Some(line) = log.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        assert!(
            started.elapsed() < limit,
            "no log line with {needle:?} within {limit:?}:\n{}",
            log.join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reports_exactly_the_moved_calls_and_the_reload_summary() {
    let crm = FakeCrm::start().await;
    crm.add_ticket("+31152026057", "1003");
    crm.add_ticket("+31612345678", "1004");
    let dir = tempfile::tempdir().unwrap();
    for (url, pg) in databases("replay_moved_calls", dir.path()).await {
        let case = tempfile::tempdir().unwrap();
        let rules = case.path().join("rules");
        std::fs::create_dir(&rules).unwrap();
        std::fs::write(rules.join("main.yaml"), V1).unwrap();
        let config = case.path().join("belroute.yaml");
        std::fs::write(
            &config,
            format!(
                "admin:\n  token: admintoken\nplugins:\n{}{}",
                crm.plugin_config("tickets", ""),
                crm.plugin_config("invoices", "")
            ),
        )
        .unwrap();
        let rules_arg = rules.to_str().unwrap().to_string();
        let config_arg = config.to_str().unwrap().to_string();
        let common_args = [
            "--rules",
            rules_arg.as_str(),
            "--config",
            config_arg.as_str(),
            "--database",
            url.as_str(),
        ];
        let served = Served::start(&common_args, &[]);
        belroute_plugins::install_crypto_provider();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let base = format!("http://{}", served.addr);
        for (uuid, caller, route) in CALLS {
            let answer = client
                .post(format!("{base}/hooks/main"))
                .json(&json!({ "uuid": uuid, "caller_number": caller }))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert_eq!(&answer, route, "{url}: live answer for {uuid}");
        }
        // Reading a call flushes the log: every call is in the database before the reload.
        let logged = client
            .get(format!("{base}/api/v1/calls/withheld"))
            .bearer_auth("admintoken")
            .send()
            .await
            .unwrap();
        assert_eq!(logged.status(), 200);

        // Nothing changed yet: --fail-on-change passes.
        let (code, out, err) = replay(&[&common_args[..], &["--fail-on-change"]].concat());
        assert_eq!(code, 0, "{url}: no change yet: {out}{err}");
        assert!(
            out.contains("5 calls replayed: 5 unchanged, 0 would route differently"),
            "{out}"
        );

        // The change is saved: the server replays the last hour and says so.
        std::fs::write(rules.join("main.yaml"), V2).unwrap();
        let mut log = Vec::new();
        let line = wait_for_log(
            &served,
            &mut log,
            "would route differently",
            Duration::from_secs(20),
        );
        assert!(
            line.contains("5 calls replayed, 2 would route differently: agent_1004→mobiel 1, receptie→mobiel 1"),
            "{url}: {line}"
        );
        let api: Value = client
            .get(format!("{base}/api/v1/rulesets/main"))
            .bearer_auth("admintoken")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let last = &api["last_replay"];
        assert_eq!(last["replayed"], 5, "{url}: {api}");
        assert_eq!(last["changed"], 2, "{url}: {api}");
        assert_eq!(last["new_version"], api["version"]);
        assert_ne!(last["old_version"], api["version"]);
        assert!(last["line"].as_str().unwrap().starts_with("main "), "{api}");
        // A save that changes only a comment: the previous version and this one decide the
        // same calls alike, so 0 change, although V1 answered two of them otherwise.
        let before_comment = api["version"].clone();
        std::fs::write(rules.join("main.yaml"), format!("{V2}# a comment only\n")).unwrap();
        let mut log = Vec::new();
        let line = wait_for_log(
            &served,
            &mut log,
            "would route differently",
            Duration::from_secs(20),
        );
        assert!(
            line.contains("5 calls replayed, 0 would route differently"),
            "{url}: a comment-only save: {line}"
        );
        let api: Value = client
            .get(format!("{base}/api/v1/rulesets/main"))
            .bearer_auth("admintoken")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(api["last_replay"]["old_version"], before_comment, "{api}");
        assert_eq!(api["last_replay"]["changed"], 0, "{api}");
        let missing = client
            .get(format!("{base}/api/v1/rulesets/nope"))
            .bearer_auth("admintoken")
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);
        served.stop();

        // The command: exactly the moved calls, from → to with the rules on each side.
        let summary = replay_json(&common_args);
        assert_eq!(summary["replayed"], 5, "{url}: {summary}");
        assert_eq!(summary["unchanged"], 3);
        assert_eq!(summary["changed"], 2);
        assert_eq!(
            changes(&summary),
            vec![
                (
                    "agent_1004".to_string(),
                    json!("Open ticket"),
                    "mobiel".to_string(),
                    json!("Mobiles first"),
                    1,
                    vec!["mobile-ticket".to_string()]
                ),
                (
                    "receptie".to_string(),
                    Value::Null,
                    "mobiel".to_string(),
                    json!("Mobiles first"),
                    1,
                    vec!["mobile-none".to_string()]
                ),
            ],
            "{url}"
        );
        let example = &summary["changes"][0]["examples"][0];
        assert_eq!(example["caller"], "••••••••678", "masked caller: {example}");

        let (code, out, err) = replay(&common_args);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("5 calls replayed: 3 unchanged, 2 would route differently."),
            "{out}"
        );
        assert!(
            out.contains("agent_1004 (rule `Open ticket`)  →  mobiel (rule `Mobiles first`)"),
            "{out}"
        );
        assert!(
            out.contains("belroute replay --call mobile-ticket"),
            "{out}"
        );
        assert!(!out.contains("31612345678"), "callers are masked: {out}");

        // --fail-on-change: 1 when a call would change, for CI and hooks.
        let (code, _, err) = replay(&[&common_args[..], &["--fail-on-change"]].concat());
        assert_eq!(code, 1, "{url}: {err}");

        // --call: both traces side by side.
        let (code, out, err) = replay(&[&common_args[..], &["--call", "mobile-none"]].concat());
        assert_eq!(code, 0, "{err}");
        assert!(
            out.starts_with("call mobile-none of rule set main, received "),
            "{out}"
        );
        assert!(out.contains("then (version "), "{out}");
        assert!(out.contains("now (version "), "{out}");
        let route_line = out.lines().find(|l| l.starts_with("route ")).unwrap();
        assert!(
            route_line.contains("receptie") && route_line.contains("mobiel"),
            "{out}"
        );
        let rule_line = out
            .lines()
            .find(|l| l.starts_with("  Mobiles first"))
            .unwrap();
        assert!(
            rule_line.contains("(not in that version)") && rule_line.ends_with("matched"),
            "{out}"
        );
        let tickets = out
            .lines()
            .find(|l| l.trim_start().starts_with("tickets"))
            .unwrap();
        assert_eq!(
            tickets.matches("\"count\":0").count(),
            2,
            "recorded then, given now: {out}"
        );
        assert!(
            out.contains("changed: `receptie` then, `mobiel` now"),
            "{out}"
        );
        let (code, _, err) = replay(&[&common_args[..], &["--call", "no-such-call"]].concat());
        assert_eq!(code, 2);
        assert!(
            err.contains("no call with uuid `no-such-call` in the call log"),
            "{err}"
        );

        // A lookup the logged calls never recorded: unavailable, counted and said.
        std::fs::write(rules.join("main.yaml"), V3).unwrap();
        let summary = replay_json(&common_args);
        assert_eq!(summary["replayed"], 5, "{summary}");
        assert_eq!(
            summary["changed"], 0,
            "invoices unavailable: nobody goes to finance"
        );
        assert_eq!(summary["unrecorded"]["calls"], 5, "{summary}");
        assert_eq!(summary["unrecorded"]["lookups"], json!({ "invoices": 5 }));
        let (_, out, _) = replay(&common_args);
        assert!(
            out.contains("5 calls now read a lookup the log did not record for them: `invoices` (5 calls). It counted as unavailable"),
            "{out}"
        );

        // Every call "moves" to crm_storing only because `invoices` was not recorded: a group
        // of its own, labelled, not counted as a change, and no reason for --fail-on-change.
        std::fs::write(rules.join("main.yaml"), V4).unwrap();
        let summary = replay_json(&common_args);
        assert_eq!(summary["replayed"], 5, "{summary}");
        assert_eq!(summary["changed"], 0, "{summary}");
        assert_eq!(summary["changes"], json!([]), "{summary}");
        assert_eq!(summary["unrecorded"]["calls"], 5, "{summary}");
        assert_eq!(summary["unrecorded"]["changed"], 5, "{summary}");
        let artefacts: Vec<(String, String, u64)> = summary["unrecorded"]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["from"]["route"].as_str().unwrap().to_string(),
                    c["to"]["route"].as_str().unwrap().to_string(),
                    c["calls"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            artefacts,
            [
                ("receptie".into(), "crm_storing".into(), 3),
                ("agent_1003".into(), "crm_storing".into(), 1),
                ("agent_1004".into(), "crm_storing".into(), 1),
            ],
            "{summary}"
        );
        let (code, out, _) = replay(&[&common_args[..], &["--fail-on-change"]].concat());
        assert_eq!(code, 0, "not known is not a change: {out}");
        assert!(
            out.contains("5 calls replayed: 0 unchanged, 0 would route differently; 5 more only because a lookup was not recorded then (below, not counted)."),
            "{out}"
        );
        let group = out
            .split("Not known from the log: 5 calls route differently only because a lookup they now read was not recorded for them")
            .nth(1)
            .unwrap_or_else(|| panic!("a labelled group: {out}"));
        let row = group
            .lines()
            .find(|l| l.starts_with("      3  receptie (the default)"))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(
            row.ends_with("→  crm_storing (rule `Invoices down`)"),
            "{out}"
        );
        assert!(
            !out.contains("See one call in full"),
            "no real change to show: {out}"
        );
        let (code, out, err) = replay(&[&common_args[..], &["--call", "fixed-none"]].concat());
        assert_eq!(code, 0, "{err}");
        let invoices = out
            .lines()
            .find(|l| l.trim_start().starts_with("invoices"))
            .unwrap();
        assert!(
            invoices
                .trim_end()
                .ends_with("unavailable: not recorded then, so not known"),
            "{out}"
        );
        assert!(!out.contains("(not recorded then)"), "said once: {out}");
        assert!(
            out.contains("not known: `receptie` then, `crm_storing` now only because `invoices` was not recorded when the call was logged"),
            "{out}"
        );
        if let Some(pg) = pg {
            pg.drop().await;
        }
    }
    crm.stop().await;
}

/// Writes calls straight into the log (as the server's writer does), at chosen times.
async fn log_calls(url: &str, ruleset: &str, calls: &[(String, i64, &str)]) {
    let storage = Storage::open(url).unwrap();
    storage.migrate().await.unwrap();
    let normaliser = Config::default().default_region.0.clone();
    let records: Vec<CallRecord> = calls
        .iter()
        .map(|(uuid, at_ms, caller)| {
            let call = Call::from_pairs([("uuid", uuid.as_str()), ("caller_number", caller)]);
            CallRecord {
                received_at: SystemTime::UNIX_EPOCH + Duration::from_millis(*at_ms as u64),
                call: Arc::new(call),
                decision: Decision {
                    route: "receptie".into(),
                    rule: None,
                    reason: Reason::NoMatch,
                    ruleset: ruleset.into(),
                    version: "0ld0ld0ld0ld".into(),
                    caller: normaliser.normalise(caller),
                    rules: Vec::new(),
                    lookups: Vec::new(),
                    micros: 100,
                    panicked: false,
                },
            }
        })
        .collect();
    storage.insert_calls(&records, &[]).await.unwrap();
    storage.close().await;
}

fn ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_dependent_rules_replay_at_the_calls_own_time() {
    let dir = tempfile::tempdir().unwrap();
    for (url, pg) in databases("replay_time", dir.path()).await {
        let calls = vec![
            // Monday 5 January 2026, Amsterdam (CET, UTC+1).
            (
                "early".to_string(),
                ms("2026-01-05T06:00:00Z"),
                "31152026057",
            ),
            (
                "morning".to_string(),
                ms("2026-01-05T09:00:00Z"),
                "31152026058",
            ),
            (
                "saturday".to_string(),
                ms("2026-01-10T09:00:00Z"),
                "31152026059",
            ),
        ];
        log_calls(&url, "main", &calls).await;
        let rules = dir.path().join(format!("rules-{}", pg.is_some()));
        std::fs::create_dir_all(&rules).unwrap();
        std::fs::write(
            rules.join("main.yaml"),
            "timeout: 2s\ndefault: receptie\nrules:\n  - name: Closed\n    when: '!open_hours(\"mon-fri 08:30-17:30\")'\n    route: gesloten\n",
        )
        .unwrap();
        let summary = replay_json(&[
            "--rules",
            rules.to_str().unwrap(),
            "--database",
            &url,
            "--from",
            "2026-01-05 00:00",
            "--to",
            "2026-01-11 00:00",
        ]);
        assert_eq!(summary["replayed"], 3, "{url}: {summary}");
        assert_eq!(summary["changed"], 2, "{summary}");
        assert_eq!(
            changes(&summary),
            vec![(
                "receptie".to_string(),
                Value::Null,
                "gesloten".to_string(),
                json!("Closed"),
                2,
                vec!["early".to_string(), "saturday".to_string()]
            )]
        );
        assert_eq!(
            summary["changes"][0]["examples"][0]["at"],
            "Mon 2026-01-05 07:00:00 CET"
        );
        if let Some(pg) = pg {
            pg.drop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_larger_than_a_page_is_read_a_page_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    for (url, pg) in databases("replay_pages", dir.path()).await {
        let now = belroute::time::now_ms();
        // 250 calls, three to a millisecond: pages must neither skip nor repeat a call that
        // shares its time with the last one of the page before.
        let calls: Vec<(String, i64, &str)> = (0..250)
            .map(|i| (format!("call-{i}"), now - 60_000 + i / 3, "31612345678"))
            .collect();
        log_calls(&url, "main", &calls).await;
        let rules = dir.path().join(format!("rules-{}", pg.is_some()));
        std::fs::create_dir_all(&rules).unwrap();
        std::fs::write(
            rules.join("main.yaml"),
            "default: receptie\nrules:\n  - name: Mobile\n    when: caller.kind == \"mobile\"\n    route: mobiel\n",
        )
        .unwrap();
        let summary = replay_json(&[
            "--rules",
            rules.to_str().unwrap(),
            "--database",
            &url,
            "--since",
            "1h",
            "--page-size",
            "100",
            "main",
        ]);
        assert_eq!(summary["replayed"], 250, "{url}: {summary}");
        assert_eq!(summary["changed"], 250);
        assert_eq!(summary["reading"]["pages"], 3, "{summary}");
        assert_eq!(summary["reading"]["peak_rows"], 100, "{summary}");
        assert_eq!(
            summary["changes"][0]["examples"].as_array().unwrap().len(),
            3
        );
        if let Some(pg) = pg {
            pg.drop().await;
        }
    }
}

#[test]
fn replay_never_creates_or_writes_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("main.yaml"), common::answering("x")).unwrap();
    let db = dir.path().join("missing.db");
    let (code, _, err) = replay(&[
        "--rules",
        rules.to_str().unwrap(),
        "--database",
        &format!("sqlite://{}", db.display()),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot read the call log"), "{err}");
    assert!(!db.exists(), "replay created {}", db.display());
}
