//! The `belroute` binary: `check` output asserted on file, line and column; `test`; `serve`'s
//! start-up errors and logs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::path::Path;

use common::binary::{Served, belroute};

fn check(dir: &Path) -> (bool, String) {
    let output = belroute()
        .arg("check")
        .arg("--rules")
        .arg(dir)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
    )
}

/// Each kind of error `check` finds, in a file of its own: the exact line it prints.
#[test]
fn check_reports_each_kind_of_error_with_file_line_and_column() {
    let table: &[(&str, &str, &str)] = &[
        (
            "yaml_syntax",
            "default: x\nrules:\n  - name: a\n    when: [\n",
            "yaml_syntax.yaml:5:1: YAML syntax: ",
        ),
        (
            "unknown_key",
            "default: x\nrule:\n  - name: a\n    route: b\n",
            "unknown_key.yaml:2:1: unknown key `rule` in a rule set; did you mean `rules`?",
        ),
        (
            "unknown_rule_key",
            "default: x\nrules:\n  - name: a\n    rout: b\n",
            "unknown_rule_key.yaml:4:5: unknown key `rout` in a rule; did you mean `route`?",
        ),
        (
            "rhai_syntax",
            "default: x\nrules:\n  - name: Broken\n    when: 'caller.anonymous && (caller.valid'\n    route: b\n",
            "rhai_syntax.yaml:4:",
        ),
        (
            "rhai_in_block",
            "default: x\nrules:\n  - name: Block\n    script: |\n      let a = 1;\n      let b = ;\n      `x${a}`\n",
            "rhai_in_block.yaml:6:15: rule `Block`: Rhai syntax: ",
        ),
        (
            "unknown_variable",
            "default: x\nrules:\n  - name: Typo\n    when: callr.anonymous\n    route: b\n",
            "unknown_variable.yaml:4:11: rule `Typo`: unknown variable `callr`; did you mean `call` or `caller`?",
        ),
        (
            "duplicate_names",
            "default: x\nrules:\n  - name: Same\n    route: a\n  - name: Same\n    route: b\n",
            "duplicate_names.yaml:5:5: duplicate rule name `Same` (first at line 3)",
        ),
        (
            "timeout_range",
            "timeout: 30s\ndefault: x\nrules: []\n",
            "timeout_range.yaml:1:10: `timeout` is 30s; Callvoip's Request Timeout is 1s to 10s",
        ),
        (
            "unknown_lookup",
            "default: x\nlookups: [invoices]\nrules: []\n",
            "unknown_lookup.yaml:2:11: unknown lookup `invoices`: no plugin of that name in belroute.yaml `plugins:` (none are configured)",
        ),
        (
            "missing_default",
            "rules: []\n",
            "missing_default.yaml:1:1: missing `default`",
        ),
        (
            "office_hours",
            "default: x\nrules:\n  - name: Hours\n    when: '!open_hours(\"mon-fry 08:00-17:00\")'\n    route: closed\n",
            "office_hours.yaml:4:",
        ),
        (
            "route_and_script",
            "default: x\nrules:\n  - name: Both\n    route: a\n    script: '\"b\"'\n",
            "route_and_script.yaml:5:5: rule `Both` has both `route` and `script`; keep one",
        ),
        (
            "bad_route",
            "default: \"two words \"\nrules: []\n",
            "bad_route.yaml:1:10: `default`: route starts or ends with spaces",
        ),
        (
            "bad_holiday",
            "default: x\nholidays: [2026-13-01]\nrules: []\n",
            "bad_holiday.yaml:2:12: a holiday date is written YYYY-MM-DD",
        ),
    ];
    for (name, content, expected) in table {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(format!("{name}.yaml")), content).unwrap();
        let (ok, out) = check(dir.path());
        assert!(!ok, "{name}: check must fail");
        let prefix = format!("{}/", dir.path().display());
        let shown: Vec<&str> = out
            .lines()
            .map(|l| l.strip_prefix(prefix.as_str()).unwrap_or(l))
            .collect();
        assert!(
            shown.iter().any(|l| l.starts_with(expected)),
            "{name}:\n  got      {shown:#?}\n  expected {expected}…"
        );
        assert!(
            out.lines()
                .last()
                .unwrap()
                .contains("problem(s) in 1 file(s)"),
            "{name}: summary line\n{out}"
        );
    }
}

#[test]
fn check_reports_all_problems_of_a_file_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let content = "timeout: 0s\nrules:\n  - name: A\n    rout: x\n  - name: B\n    when: 'caller.'\n    route: y\n  - name: B\n    route: z\n";
    std::fs::write(dir.path().join("many.yaml"), content).unwrap();
    let (ok, out) = check(dir.path());
    assert!(!ok);
    let lines: Vec<&str> = out.lines().collect();
    let positions: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split("many.yaml:").nth(1))
        .map(|l| l.split(": ").next().unwrap())
        .collect();
    assert_eq!(
        positions,
        ["1:1", "1:10", "3:5", "4:5", "6:19", "8:5"],
        "{out}"
    );
    assert_eq!(*lines.last().unwrap(), "6 problem(s) in 1 file(s)");
}

#[test]
fn check_passes_the_example_rules_with_a_one_line_summary() {
    let (ok, out) = check(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/rules")));
    assert!(ok, "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("ok: 2 rule set(s)"), "{out}");
}

#[test]
fn the_example_rule_tests_pass() {
    let output = belroute()
        .args([
            "test",
            "--rules",
            concat!(env!("CARGO_MANIFEST_DIR"), "/rules"),
        ])
        .output()
        .unwrap();
    let out = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{out}");
    assert!(out.trim_end().ends_with(" passed, 0 failed"), "{out}");
}

#[test]
fn a_failing_rule_test_says_where_and_why() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.yaml"), common_rules()).unwrap();
    std::fs::write(
        dir.path().join("m.test.yaml"),
        "- name: wrong expectation\n  call: { caller_number: \"442079460958\" }\n  expect: receptie\n",
    )
    .unwrap();
    let output = belroute()
        .arg("test")
        .arg("--rules")
        .arg(dir.path())
        .output()
        .unwrap();
    let out = String::from_utf8(output.stdout).unwrap();
    assert!(!output.status.success());
    assert!(out.contains("FAIL  m: wrong expectation"), "{out}");
    assert!(
        out.contains(
            "m.test.yaml:1:3: expected route `receptie`, got `international` (by rule `Abroad`)"
        ),
        "{out}"
    );
    assert!(out.contains("rule `Abroad`: matched"), "{out}");
    assert!(out.contains("0 passed, 1 failed"), "{out}");
}

fn common_rules() -> &'static str {
    "default: receptie\nrules:\n  - name: Abroad\n    when: caller.valid && caller.country != \"NL\"\n    route: international\n"
}

#[test]
fn a_missing_environment_variable_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    let config = dir.path().join("belroute.yaml");
    std::fs::write(&config, "hooks:\n  auth:\n    header: { name: identifier, value: \"${BELROUTE_CLI_TEST_MISSING}\" }\n").unwrap();
    let output = belroute()
        .arg("serve")
        .arg("--rules")
        .arg(dir.path().join("rules"))
        .arg("--config")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("BELROUTE_CLI_TEST_MISSING")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8(output.stderr).unwrap();
    assert!(err.contains("belroute.yaml:3:"), "{err}");
    assert!(
        err.contains("environment variable BELROUTE_CLI_TEST_MISSING is not set"),
        "{err}"
    );
}

fn post(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        belroute_plugins::install_crypto_provider();
        let mut request = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .post(format!("http://{addr}{path}"))
            .body("{}");
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    })
}

#[test]
fn serve_never_logs_a_secret_and_logs_failing_rules_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("main.yaml"),
        "default: fallback\nrules:\n  - name: Endless loop\n    script: 'loop {}'\n  - name: Next\n    route: next\n",
    )
    .unwrap();
    let config = dir.path().join("belroute.yaml");
    std::fs::write(
        &config,
        "hooks:\n  auth:\n    header: { name: identifier, value: \"${CLI_TEST_SECRET}\" }\n",
    )
    .unwrap();
    let secret = "correct-horse-battery-staple";
    let (rules, config) = (rules.to_str().unwrap(), config.to_str().unwrap());
    let args = [
        "--rules",
        rules,
        "--config",
        config,
        "--workers",
        "1",
        "--database",
        "sqlite::memory:",
    ];
    let served = Served::start(&args, &[("CLI_TEST_SECRET", secret)]);
    assert_eq!(
        post(&served.addr, "/hooks/main", &[("identifier", "guess")]).0,
        401
    );
    assert_eq!(
        post(&served.addr, "/hooks/main", &[("identifier", secret)]),
        (200, "next".to_string())
    );
    let log = served.stop();
    assert!(
        !log.contains(secret),
        "a secret appeared in the log:\n{log}"
    );
    assert!(
        log.contains("header `identifier` has the wrong value"),
        "{log}"
    );
    assert!(
        log.contains("rule=Endless loop") && log.contains("too many operations"),
        "{log}"
    );
    assert!(
        log.contains("main.yaml:4:"),
        "the failing rule's position is logged:\n{log}"
    );
}

/// The CRM examples check and pass on a machine without their secrets: `check` says what it
/// could not check instead of failing.
#[test]
fn the_crm_examples_check_and_pass_without_their_secrets() {
    let root = env!("CARGO_MANIFEST_DIR");
    let args = [
        "--config",
        &format!("{root}/examples/crm/belroute.yaml"),
        "--rules",
        &format!("{root}/examples/crm/rules"),
    ];
    let unset = [
        "BELROUTE_ADMIN_TOKEN",
        "CRM_DB_URL",
        "HELPDESK_URL",
        "HELPDESK_TOKEN",
    ];
    let mut check = belroute();
    check.arg("check").args(args);
    for var in unset {
        check.env_remove(var);
    }
    let output = check.output().unwrap();
    let out = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{out}");
    assert!(
        out.starts_with("note: environment variables not set"),
        "{out}"
    );
    assert!(out.contains("ok: 1 rule set(s)"), "{out}");

    let mut test = belroute();
    test.arg("test").args(args);
    for var in unset {
        test.env_remove(var);
    }
    let output = test.output().unwrap();
    let out = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{out}");
    assert!(out.trim_end().ends_with("6 passed, 0 failed"), "{out}");
}

/// `belroute simulate` decides a call without Callvoip and shows every rule and lookup.
#[test]
fn simulate_explains_a_decision() {
    let root = env!("CARGO_MANIFEST_DIR");
    let output = belroute()
        .args([
            "simulate",
            "main",
            "--rules",
            &format!("{root}/examples/crm/rules"),
            "--config",
            &format!("{root}/examples/crm/belroute.yaml"),
        ])
        .args(["--caller", "0152026057", "--at", "2026-11-23 10:00"])
        .args([
            "--facts",
            r#"invoices={"open_count": 2}"#,
            "--facts",
            "tickets=not-found",
        ])
        .output()
        .unwrap();
    let out = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{out}");
    assert!(
        out.contains("caller \"0152026057\" → +31152026057 (fixed, NL)"),
        "{out}"
    );
    assert!(
        out.contains("  invoices: found {\"open_count\":2}"),
        "{out}"
    );
    assert!(out.contains("  tickets: not found"), "{out}");
    assert!(
        out.contains("  Open invoices go to Finance: matched"),
        "{out}"
    );
    assert!(
        out.contains("  Open ticket goes to its agent: not reached"),
        "{out}"
    );
    assert!(
        out.contains("route: finance (by rule `Open invoices go to Finance`"),
        "{out}"
    );

    let json = belroute()
        .args([
            "simulate",
            "main",
            "--rules",
            &format!("{root}/rules"),
            "--json",
        ])
        .args([
            "--call",
            &format!("{root}/tests/fixtures/callvoip/post-mobile-with-name.json"),
            "--at",
            "2026-11-22 11:00",
        ])
        .output()
        .unwrap();
    let decision: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    // The record exactly as the call log keeps it (GET /api/v1/calls/{uuid}).
    assert_eq!(decision["route"], "gesloten", "Sunday");
    assert_eq!(decision["trace"]["caller"]["kind"], "mobile");
    assert_eq!(decision["trace"]["rules"][0]["outcome"], "matched");
    let mut keys: Vec<&str> = decision
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "agent",
            "call",
            "caller",
            "caller_e164",
            "micros",
            "reason",
            "received_at",
            "route",
            "rule",
            "ruleset",
            "trace",
            "uuid",
            "version"
        ]
    );
    assert!(decision["call"]["caller_number"].is_string());
}

#[test]
fn version_names_the_revision_and_completions_are_printed() {
    let out = belroute().arg("--version").output().unwrap();
    assert!(out.status.success());
    let version = String::from_utf8(out.stdout).unwrap();
    assert!(
        version.starts_with(&format!("belroute {} (", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    for (shell, marker) in [
        ("bash", "_belroute()"),
        ("zsh", "#compdef belroute"),
        ("fish", "complete -c belroute"),
    ] {
        let out = belroute().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("simulate"), "{shell} completes subcommands");
    }
}

/// systemd's `ExecReload=kill -HUP $MAINPID`: a rescan, not the end of the process.
#[test]
fn sighup_rescans_the_rules_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("main.yaml"), common_rules()).unwrap();
    let database = format!("sqlite://{}", dir.path().join("b.db").display());
    let served = Served::start(
        &["--rules", rules.to_str().unwrap(), "--database", &database],
        &[],
    );
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let mut log = String::new();
    for _ in 0..100 {
        log.push_str(&served.log().join("\n"));
        if log.contains("SIGHUP: rules directory rescanned") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(log.contains("SIGHUP: rules directory rescanned"), "{log}");
    let (status, body) = post(&served.addr, "/hooks/main", &[]);
    assert_eq!((status, body.as_str()), (200, "receptie"));
    served.stop();
}

/// A lookup missing from belroute.yaml is one error, not one more per rule that reads it; an
/// unquoted `!` gets the fix.
#[test]
fn one_mistake_one_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.yaml"),
        "default: receptie\nlookups: [invoices]\nrules:\n  - name: A\n    when: invoices.open_count > 0\n    route: finance\n  - name: B\n    when: invoices.open_amount > 10\n    route: finance\n",
    )
    .unwrap();
    let (ok, out) = check(dir.path());
    assert!(!ok);
    assert!(
        out.contains("main.yaml:2:11: unknown lookup `invoices`"),
        "{out}"
    );
    assert!(out.contains("1 problem(s) in 1 file(s)"), "{out}");
    std::fs::write(
        dir.path().join("main.yaml"),
        "default: receptie\nrules:\n  - name: Closed\n    when: !open_hours(\"mon-fri 09:00-17:00\")\n    route: gesloten\n",
    )
    .unwrap();
    let (ok, out) = check(dir.path());
    assert!(!ok);
    assert!(out.contains("main.yaml:4:11: YAML syntax:"), "{out}");
    assert!(out.contains("quote the expression"), "{out}");
}
