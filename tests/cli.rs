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
            // Which part is out of range (issue 23), not only the format.
            "bad_holiday.yaml:2:12: `2026-13-01`: the month is 13; it is 01 to 12 (YYYY-MM-DD)",
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

/// An operator following the quick start has `belroute.yaml` (and `belroute.db`) at the
/// checkout's root, where `cargo test` runs: no test may read them. Every command runs in an
/// empty directory of its own, without the variables that name an operator's files.
#[test]
fn commands_run_in_an_empty_directory_without_the_operators_settings() {
    let command = belroute();
    let cwd = command.get_current_dir().unwrap();
    assert_eq!(cwd, command.cwd());
    assert_ne!(cwd, Path::new(env!("CARGO_MANIFEST_DIR")));
    assert_eq!(std::fs::read_dir(cwd).unwrap().count(), 0, "empty");
    for var in [
        "BELROUTE_CONFIG",
        "BELROUTE_RULES",
        "BELROUTE_DATABASE",
        "DATABASE_URL",
    ] {
        assert!(
            command
                .get_envs()
                .any(|(name, value)| name == var && value.is_none()),
            "{var} removed"
        );
    }
    // What the binary does with a belroute.yaml in its working directory: reads it. So the
    // directory above must stay the test's own.
    let mut command = belroute();
    std::fs::write(
        command.cwd().join("belroute.yaml"),
        "timezone: Nowhere/Atlantis\n",
    )
    .unwrap();
    let output = command
        .args([
            "check",
            "--rules",
            concat!(env!("CARGO_MANIFEST_DIR"), "/rules"),
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8(output.stderr).unwrap();
    assert!(err.contains("belroute.yaml:1:"), "{err}");
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
        "default: fallback\nrules:\n  - name: Endless loop\n    script: 'let n = 0; while n >= 0 { n += 1 }'\n  - name: Next\n    route: next\n",
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
    // Stopped by its operation count, or by `sandbox.rule_time` first on a loaded machine:
    // either way logged with the rule's name.
    assert!(
        log.contains("rule=Endless loop")
            && (log.contains("too many operations") || log.contains("the rule ran out of time")),
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

/// Runs `belroute ARGS` (with `unset` removed from the environment): exit code, stdout, stderr.
fn run(args: &[&str], unset: &[&str]) -> (i32, String, String) {
    let mut command = belroute();
    command.args(args);
    for var in unset {
        command.env_remove(var);
    }
    let output = command.output().unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

fn root(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// A misspelt rule set is said, with "did you mean" and the rule sets there: exit 1, never a
/// silent `0 passed, 0 failed`.
#[test]
fn a_rule_set_that_does_not_exist_is_named_with_did_you_mean() {
    let rules = root("rules");
    let (code, out, err) = run(&["test", "--rules", &rules, "mian"], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(!out.contains("passed"), "{out}");
    let expected = format!(
        "error: no rule set `mian` in {rules} (there is no {rules}/mian.yaml); did you mean `main`?\nthe rule sets there: main, support\n"
    );
    assert_eq!(err, expected);

    let (code, _, err) = run(&["test", "--rules", &rules, "main", "nope"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("no rule set `nope`"), "{err}");
    assert!(!err.contains("did you mean"), "nothing close: {err}");

    let (code, out, err) = run(&["simulate", "--rules", &rules, "supprt", "--offline"], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("no rule set `supprt`") && err.contains("did you mean `support`?"),
        "{err}"
    );
    assert!(err.contains("the rule sets there: main, support"), "{err}");

    // A rule set that exists still runs alone.
    let (code, out, _) = run(&["test", "--rules", &rules, "support"], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok    support: "), "{out}");
    assert!(!out.contains("ok    main: "), "{out}");
}

/// `--facts` for a lookup the rule set does not declare would be ignored: a usage error (2)
/// naming the lookups it does declare.
#[test]
fn simulate_refuses_facts_for_a_lookup_the_rule_set_does_not_declare() {
    let (config, rules) = (
        root("examples/crm/belroute.yaml"),
        root("examples/crm/rules"),
    );
    let args = [
        "simulate",
        "main",
        "--config",
        &config,
        "--rules",
        &rules,
        "--caller",
        "0152026057",
        "--facts",
        r#"invoces={"open_count": 2}"#,
    ];
    let (code, out, err) = run(&args, &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.is_empty(), "no decision: {out}");
    assert!(
        err.contains(&format!(
            "error: `--facts invoces=…`: rule set `main` has no lookup `invoces`; did you mean `invoices`? (its `lookups:` in {rules}/main.yaml: invoices, tickets, history)"
        )),
        "{err}"
    );

    // The README's rules declare no lookups at all: said so.
    let (code, _, err) = run(
        &[
            "simulate",
            "main",
            "--rules",
            &root("rules"),
            "--facts",
            "invoices=not-found",
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("rule set `main` has no lookup `invoices`")
            && err.contains("declares no `lookups:`"),
        "{err}"
    );
}

const CRM_SECRETS: [&str; 4] = [
    "BELROUTE_ADMIN_TOKEN",
    "CRM_DB_URL",
    "HELPDESK_URL",
    "HELPDESK_TOKEN",
];

/// simulate never uses the admin API: its token (and the CRM secrets, offline) may be unset,
/// with the same note as `check`.
#[test]
fn simulate_works_without_secrets_it_does_not_need() {
    let (config, rules) = (
        root("examples/crm/belroute.yaml"),
        root("examples/crm/rules"),
    );
    let base = [
        "simulate",
        "--config",
        &config,
        "--rules",
        &rules,
        "main",
        "--caller",
        "0152026057",
        "--at",
        "2026-11-23 10:00",
    ];
    let (code, out, err) = run(&[&base[..], &["--offline"]].concat(), &CRM_SECRETS);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.starts_with(
            "note: environment variables not set (settings using them were not checked): BELROUTE_ADMIN_TOKEN, CRM_DB_URL, HELPDESK_TOKEN, HELPDESK_URL\n"
        ),
        "{err}"
    );
    assert!(
        out.contains("  invoices: unavailable: no facts given"),
        "{out}"
    );
    assert!(out.contains("route: crm_storing"), "{out}");

    // --json stays one JSON document: the note is on stderr.
    let (code, out, err) = run(
        &[&base[..], &["--offline", "--json"]].concat(),
        &CRM_SECRETS,
    );
    assert_eq!(code, 0, "{err}");
    let decision: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(decision["route"], "crm_storing");

    // Only the admin token missing: the plugins are asked (the CRM is down: unavailable).
    let with_crm = [
        ("CRM_DB_URL", "mysql://nobody@127.0.0.1:1/none"),
        ("HELPDESK_URL", "http://127.0.0.1:1"),
        ("HELPDESK_TOKEN", "t"),
    ];
    let mut command = belroute();
    command
        .args(base)
        .args(["--database", "sqlite::memory:"])
        .env_remove("BELROUTE_ADMIN_TOKEN")
        .envs(with_crm);
    let output = command.output().unwrap();
    let (out, err) = (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    );
    assert!(output.status.success(), "{out}{err}");
    assert!(err.contains("BELROUTE_ADMIN_TOKEN"), "{err}");
    assert!(out.contains("  invoices: unavailable"), "{out}");

    // Asking a plugin whose secret is missing: said, with the ways out.
    let (code, out, err) = run(
        &[&base[..], &["--database", "sqlite::memory:"]].concat(),
        &CRM_SECRETS,
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("error: lookup(s) `invoices`, `tickets` of rule set `main` cannot be asked")
            && err.contains("--facts invoices=… --facts tickets=…, or add --offline"),
        "{err}"
    );
}

fn migrations() -> usize {
    std::fs::read_dir(root("migrations/sqlite"))
        .unwrap()
        .count()
}

/// migrate says what it did: applied N on a fresh database, up to date after.
#[test]
fn migrate_says_what_it_applied() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("b.db").display());
    let n = migrations();
    let (code, out, err) = run(&["migrate", "--database", &url], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!("sqlite database: applied {n} migration(s), {n} in all\n")
    );
    let (code, out, _) = run(&["migrate", "--database", &url], &[]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!("sqlite database: up to date, {n} migration(s)\n")
    );
}

/// An unreachable server: its host and port and "connection refused", said once, not sqlx's
/// "pool timed out" two or three times over.
#[test]
fn migrate_names_an_unreachable_server_once() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("postgres://postgres@127.0.0.1:{port}/test");
    let (code, out, err) = run(&["migrate", "--database", &url], &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(
        err,
        format!(
            "error: cannot connect to PostgreSQL at 127.0.0.1:{port} (database test): connection refused (nothing listens there); start the database server, or correct the host and port in --database\n"
        )
    );

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("no/such/dir/b.db").display());
    let (code, _, err) = run(&["migrate", "--database", &url], &[]);
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("unable to open database file; check that its directory exists"),
        "{err}"
    );
}

/// On PostgreSQL: a fresh schema says what was applied; a database that does not exist is
/// said once, without the server's source line ("at line 948").
#[test]
fn migrate_on_postgres_says_what_it_did_and_why_it_failed() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Some(db) = runtime.block_on(common::db::postgres(
        "migrate_on_postgres_says_what_it_did_and_why_it_failed",
    )) else {
        return;
    };
    let n = migrations();
    let (code, out, err) = run(&["migrate", "--database", &db.url], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!("postgres database: applied {n} migration(s), {n} in all\n")
    );
    let (code, out, err) = run(&["migrate", "--database", &db.url], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!("postgres database: up to date, {n} migration(s)\n")
    );
    assert!(
        !err.contains("already exists, skipping"),
        "PostgreSQL's notice is not logged at the default level: {err}"
    );
    runtime.block_on(db.drop());

    let server = std::env::var("BELROUTE_TEST_POSTGRES_URL").unwrap();
    let base = server.rsplit_once('/').unwrap().0;
    let url = format!("{base}/belroute_no_such_database");
    let (code, _, err) = run(&["migrate", "--database", &url], &[]);
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(err.matches("does not exist").count(), 1, "{err}");
    assert!(!err.contains("at line"), "{err}");
    assert!(
        err.contains("database \"belroute_no_such_database\" does not exist; create it first"),
        "{err}"
    );
}

/// `init` writes a starter that passes `check` and `test` as written, refuses to write over
/// anything, and says what to run next.
#[test]
fn init_writes_a_starter_that_checks_and_tests_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("routing");
    let target_str = target.to_str().unwrap();
    let (code, out, err) = run(&["init", target_str], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!(
            "wrote in {target_str}: belroute.yaml, rules/main.yaml, rules/main.test.yaml, .gitignore\n\
             next:\n  cd {target_str}\n\
             \x20 belroute check    # validate belroute.yaml and every rule file\n\
             \x20 belroute test     # run the tests in rules/main.test.yaml\n\
             \x20 belroute serve    # answer Callvoip at http://0.0.0.0:8080/hooks/main\n"
        )
    );
    let config = std::fs::read_to_string(target.join("belroute.yaml")).unwrap();
    for key in [
        "timezone",
        "default_region",
        "hooks",
        "sandbox",
        "reload",
        "admin",
        "storage",
        "plugins",
        "subscriptions",
    ] {
        assert!(
            config.contains(&format!("\n# {key}:")),
            "`{key}` shown: {config}"
        );
    }
    let ignore = std::fs::read_to_string(target.join(".gitignore")).unwrap();
    assert!(
        ignore.contains("\nbelroute.db*\n") && ignore.contains("\nbelroute-spill*.jsonl\n"),
        "{ignore}"
    );

    // The next commands, as printed, from the directory.
    for (command, expected) in [
        ("check", "ok: 1 rule set(s), 2 rule(s), 4 test(s)"),
        ("test", "4 passed, 0 failed"),
    ] {
        let output = belroute()
            .arg(command)
            .current_dir(&target)
            .env_remove("BELROUTE_RULES")
            .env_remove("BELROUTE_CONFIG")
            .output()
            .unwrap();
        let out = String::from_utf8(output.stdout).unwrap();
        assert!(output.status.success(), "{command}: {out}");
        assert!(out.contains(expected), "{command}: {out}");
    }

    // Again: refused, naming the files, writing nothing.
    std::fs::remove_file(target.join(".gitignore")).unwrap();
    std::fs::write(target.join("rules/main.yaml"), "mine").unwrap();
    let (code, out, err) = run(&["init", target_str], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        err.starts_with(&format!(
            "error: {target_str}/belroute.yaml, {target_str}/rules/main.yaml, {target_str}/rules/main.test.yaml already exist; belroute init writes nothing over an existing file"
        )),
        "{err}"
    );
    assert!(!target.join(".gitignore").exists(), "nothing written");
    // One file: "exists", "move it away".
    let single = tempfile::tempdir().unwrap();
    std::fs::write(single.path().join("belroute.yaml"), "mine").unwrap();
    let single_str = single.path().to_str().unwrap();
    let (code, _, err) = run(&["init", single_str], &[]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with(&format!(
            "error: {single_str}/belroute.yaml already exists; belroute init writes nothing over an existing file, so it wrote nothing: move it away"
        )),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(target.join("rules/main.yaml")).unwrap(),
        "mine"
    );

    // The default directory is the working directory.
    let here = tempfile::tempdir().unwrap();
    let output = belroute()
        .arg("init")
        .current_dir(here.path())
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(
        String::from_utf8(output.stdout)
            .unwrap()
            .starts_with("wrote: belroute.yaml")
    );
    assert!(here.path().join("rules/main.test.yaml").is_file());
}

/// `check --format json`: one document with ok, problems and counts.
#[test]
fn check_prints_json_for_ci() {
    let (code, out, _) = run(
        &["check", "--rules", &root("rules"), "--format", "json"],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["problems"], serde_json::json!([]));
    assert_eq!(report["counts"]["rule_sets"], 2);
    assert!(report["counts"]["tests"].as_u64().unwrap() > 0);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("typo.yaml"),
        "default: x\nrule: []\nrules: []\n",
    )
    .unwrap();
    let (code, out, _) = run(
        &[
            "check",
            "--rules",
            dir.path().to_str().unwrap(),
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(code, 1, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(
        report["problems"],
        serde_json::json!([{
            "file": dir.path().join("typo.yaml"),
            "line": 2,
            "column": 1,
            "message": "unknown key `rule` in a rule set; did you mean `rules`?",
        }])
    );
    assert_eq!(report["counts"]["problems"], 1);
    assert_eq!(report["counts"]["rule_sets"], 0);

    let (code, _, err) = run(&["check", "--format", "junit"], &[]);
    assert_eq!(code, 2, "junit is for test: {err}");
}

/// `test --format junit|json`: one testsuite per rule set, one testcase per test, the failure
/// with its message; JSON with the same data.
#[test]
fn test_prints_junit_and_json_for_ci() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.yaml"), common_rules()).unwrap();
    std::fs::write(
        dir.path().join("m.test.yaml"),
        "- name: abroad\n  call: { caller_number: \"442079460958\" }\n  expect: international\n\
         - name: wrong <expectation> & more\n  call: { caller_number: \"442079460958\" }\n  expect: receptie\n",
    )
    .unwrap();
    let rules = dir.path().to_str().unwrap();
    let (code, out, _) = run(&["test", "--rules", rules, "--format", "junit"], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"belroute test\" tests=\"2\" failures=\"1\" errors=\"0\">\n"), "{out}");
    assert!(
        out.contains(
            "  <testsuite name=\"m\" tests=\"2\" failures=\"1\" errors=\"0\" skipped=\"0\" time=\""
        ),
        "{out}"
    );
    assert!(out.contains(&format!("<testcase name=\"abroad\" classname=\"m\" file=\"{rules}/m.test.yaml\" line=\"1\" time=\"")), "{out}");
    assert!(
        out.contains("<testcase name=\"wrong &lt;expectation&gt; &amp; more\" classname=\"m\""),
        "{out}"
    );
    assert!(
        out.contains("<failure message=\"expected route `receptie`, got `international` (by rule `Abroad`)\" type=\"wrong route\">"),
        "{out}"
    );
    assert_eq!(out.matches("<testcase ").count(), 2, "{out}");
    assert!(out.trim_end().ends_with("</testsuites>"), "{out}");

    let (code, out, _) = run(&["test", "--rules", rules, "--format", "json"], &[]);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            report["ok"].as_bool(),
            report["passed"].as_u64(),
            report["failed"].as_u64()
        ),
        (Some(false), Some(1), Some(1))
    );
    let tests = &report["rule_sets"][0]["tests"];
    assert_eq!(report["rule_sets"][0]["name"], "m");
    assert_eq!(tests[0]["passed"], true);
    assert_eq!(tests[1]["passed"], false);
    assert_eq!(tests[1]["line"], 4);
    assert_eq!(
        tests[1]["failure"],
        "expected route `receptie`, got `international` (by rule `Abroad`)"
    );
    assert_eq!(
        tests[1]["rules"][0],
        serde_json::json!({"name": "Abroad", "outcome": "matched"})
    );

    // A file with problems fails the run, in JUnit as a failed `check` test case.
    std::fs::write(dir.path().join("broken.yaml"), "rules: []\n").unwrap();
    let (code, out, _) = run(&["test", "--rules", rules, "--format", "junit"], &[]);
    assert_eq!(code, 1);
    assert!(
        out.contains("<testsuite name=\"check\" tests=\"1\" failures=\"1\""),
        "{out}"
    );
    assert!(out.contains("broken.yaml:1:1: missing `default`"), "{out}");

    // The default stays the text for people.
    let (_, out, _) = run(&["test", "--rules", rules], &[]);
    assert!(out.contains("FAIL  m: wrong <expectation> & more"), "{out}");
}

/// Everything in `dir`, relative, sorted: what a command left behind.
fn files_in(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            found.push(path.strip_prefix(dir).unwrap().display().to_string());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Nothing read-only creates files: `simulate` with a `history` lookup in a new directory
/// finds no earlier calls (and says why) instead of creating an empty `belroute.db`.
#[test]
fn simulate_with_a_history_lookup_creates_no_database() {
    let mut command = belroute();
    let cwd = command.cwd().to_path_buf();
    std::fs::write(
        cwd.join("belroute.yaml"),
        "plugins:\n  history:\n    kind: history\n",
    )
    .unwrap();
    std::fs::create_dir(cwd.join("rules")).unwrap();
    std::fs::write(
        cwd.join("rules/main.yaml"),
        "default: receptie\nlookups: [history]\nrules:\n  - name: Called before today\n    when: history.calls_today > 0\n    route: bekend\n",
    )
    .unwrap();
    let before = files_in(&cwd);
    let output = command
        .args(["simulate", "main", "--caller", "0152026057"])
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    );
    assert!(output.status.success(), "{out}{err}");
    assert!(
        err.contains("note: no call log at belroute.db (`belroute serve` creates it there): `history` lookups find no earlier calls"),
        "{err}"
    );
    assert!(!out.contains("no such table"), "{out}");
    assert!(out.contains("\"calls_today\":0"), "{out}");
    assert!(out.contains("route: receptie"), "{out}");
    assert_eq!(files_in(&cwd), before, "no file created");

    // A database file without belroute's tables: read, not changed, and the fix said.
    std::fs::write(cwd.join("empty.db"), b"").unwrap();
    let mut command = belroute();
    let output = command
        .current_dir(&cwd)
        .args(["simulate", "main", "--caller", "0152026057"])
        .args(["--database", "sqlite://empty.db"])
        .output()
        .unwrap();
    let out = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{out}");
    assert!(
        out.contains("  history: unavailable: ")
            && out.contains("call log database has no call log tables yet: run `belroute migrate`"),
        "{out}"
    );
    assert_eq!(std::fs::metadata(cwd.join("empty.db")).unwrap().len(), 0);
}

/// A `serve` that fails at start leaves no `belroute.db` behind: not without a rules
/// directory, not when its port is taken.
#[test]
fn serve_that_fails_at_start_creates_no_database() {
    let output = {
        let mut command = belroute();
        let output = command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .output()
            .unwrap();
        assert_eq!(files_in(command.cwd()), Vec::<String>::new());
        output
    };
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8(output.stderr).unwrap();
    assert!(err.contains("rules directory"), "{err}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut command = belroute();
    std::fs::create_dir(command.cwd().join("rules")).unwrap();
    std::fs::write(command.cwd().join("rules/main.yaml"), common_rules()).unwrap();
    let output = command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    let err = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert_eq!(files_in(command.cwd()), ["rules", "rules/main.yaml"]);
    drop(taken);
}

fn get(addr: &str, path: &str) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        belroute_plugins::install_crypto_provider();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let response = client
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    })
}

/// belroute.yaml is read at start. Editing it while belroute runs is noticed and said — in
/// the log and on /readyz — and the admin API's 403 says a restart is what it takes.
#[test]
fn a_changed_belroute_yaml_is_noticed_and_says_restart_to_apply() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("main.yaml"), common_rules()).unwrap();
    let config = dir.path().join("belroute.yaml");
    std::fs::write(&config, "timezone: Europe/Amsterdam\n").unwrap();
    let database = format!("sqlite://{}", dir.path().join("b.db").display());
    let served = Served::start(
        &[
            "--rules",
            rules.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--database",
            &database,
        ],
        &[],
    );
    let (status, body) = get(&served.addr, "/api/v1/rulesets");
    assert_eq!(status, 403);
    assert_eq!(
        body,
        "the admin API is off: set admin.token in belroute.yaml and restart belroute (belroute.yaml and the ${VARIABLES} it names are read at start)\n"
    );
    let (status, ready) = get(&served.addr, "/readyz");
    assert_eq!(status, 200, "{ready}");
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["config"]["file"], config.to_str().unwrap());
    assert_eq!(ready["config"]["changed_on_disk"], serde_json::Value::Null);

    // As snelstart §4 does: an admin token added while serving.
    std::fs::write(
        &config,
        "timezone: Europe/Amsterdam\nadmin: { token: \"${BELROUTE_ADMIN_TOKEN}\" }\n",
    )
    .unwrap();
    let mut log = String::new();
    let wanted = format!(
        "{} changed on disk; restart to apply",
        config.to_str().unwrap()
    );
    for _ in 0..100 {
        log.push_str(&served.log().join("\n"));
        if log.contains(&wanted) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(log.contains(&wanted), "{log}");
    let (status, ready) = get(&served.addr, "/readyz");
    assert_eq!(status, 200, "still ready: it serves what it read: {ready}");
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    let changed = &ready["config"]["changed_on_disk"];
    assert_eq!(changed["removed"], false, "{ready}");
    assert!(
        changed["message"]
            .as_str()
            .unwrap()
            .contains("changed on disk; restart to apply (belroute.yaml and the ${VARIABLES} it names are read at start"),
        "{ready}"
    );
    // Still off: nothing was applied.
    assert_eq!(get(&served.addr, "/api/v1/rulesets").0, 403);

    // Put back as it was read: nothing to restart for.
    std::fs::write(&config, "timezone: Europe/Amsterdam\n").unwrap();
    let mut cleared = false;
    for _ in 0..100 {
        let (_, ready) = get(&served.addr, "/readyz");
        let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
        if ready["config"]["changed_on_disk"].is_null() {
            cleared = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(cleared, "/readyz clears when the file is as read again");
    let log = served.stop();
    assert!(log.contains("is again as read at start"), "{log}");
}

/// `check` warns about an admin token that is easy to guess (and names the fix), without
/// failing; a token from an unset `${VAR}` is not judged.
#[test]
fn check_warns_about_a_guessable_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("belroute.yaml");
    std::fs::write(&config, "admin:\n  token: changeme123\n").unwrap();
    let (code, out, _) = run(
        &[
            "check",
            "--rules",
            &root("rules"),
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "a warning does not fail check: {out}");
    assert!(
        out.contains("warning: `admin.token` is easy to guess (11 characters; use at least 20)"),
        "{out}"
    );
    assert!(out.contains("openssl rand -hex 32"), "{out}");
    assert!(
        !out.contains("changeme123"),
        "the token itself is not printed: {out}"
    );
    let (_, json, _) = run(
        &[
            "check",
            "--rules",
            &root("rules"),
            "--config",
            config.to_str().unwrap(),
            "--format",
            "json",
        ],
        &[],
    );
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["warnings"].as_array().unwrap().len(), 1, "{report}");

    std::fs::write(
        &config,
        "admin:\n  token: \"${BELROUTE_TEST_UNSET_TOKEN}\"\n",
    )
    .unwrap();
    let (code, out, _) = run(
        &[
            "check",
            "--rules",
            &root("rules"),
            "--config",
            config.to_str().unwrap(),
        ],
        &["BELROUTE_TEST_UNSET_TOKEN"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("warning:"), "{out}");
}

/// `calendar: nl` and a company calendar from belroute.yaml close the days a rule set asks
/// `is_holiday()` about, in any year; `check` names a calendar belroute.yaml does not have.
#[test]
fn a_calendar_closes_public_and_company_days_of_any_year() {
    let command = belroute();
    let cwd = command.cwd().to_path_buf();
    std::fs::write(
        cwd.join("belroute.yaml"),
        "calendars:\n  kantoor:\n    - {every: 12-24, name: Kerstavond}\n    - {date: 2027-07-16, name: Bedrijfsuitje}\n",
    )
    .unwrap();
    std::fs::create_dir(cwd.join("rules")).unwrap();
    std::fs::write(
        cwd.join("rules/main.yaml"),
        "default: open\ncalendar:\n  country: nl\n  include: [kantoor]\nrules:\n  - name: Closed today\n    when: is_holiday()\n    route: dicht\n",
    )
    .unwrap();
    // `command` owns the directory: kept until the end.
    let route_at = |at: &str| {
        let output = belroute()
            .current_dir(&cwd)
            .args(["simulate", "main", "--caller", "0152026057", "--at", at])
            .output()
            .unwrap();
        let out = String::from_utf8(output.stdout).unwrap();
        assert!(output.status.success(), "{out}");
        out.lines()
            .find_map(|l| l.strip_prefix("route: "))
            .map(|r| r.split_whitespace().next().unwrap_or_default().to_string())
            .unwrap_or_else(|| panic!("no route line in {out}"))
    };
    assert_eq!(route_at("2027-04-27 10:00"), "dicht", "Koningsdag 2027");
    assert_eq!(route_at("2027-04-28 10:00"), "open");
    assert_eq!(
        route_at("2033-12-24 10:00"),
        "dicht",
        "Kerstavond, every year"
    );
    assert_eq!(route_at("2027-07-16 10:00"), "dicht", "the company outing");
    assert_eq!(
        route_at("2028-07-16 10:00"),
        "open",
        "that day only in 2027"
    );
    assert_eq!(route_at("2035-03-26 10:00"), "dicht", "Tweede Paasdag 2035");

    std::fs::write(
        cwd.join("rules/main.yaml"),
        "default: open\ncalendar:\n  include: [kantor]\nrules: []\n",
    )
    .unwrap();
    let output = belroute()
        .current_dir(&cwd)
        .args(["check"])
        .output()
        .unwrap();
    let out = String::from_utf8(output.stdout).unwrap();
    assert!(!output.status.success(), "{out}");
    assert!(
        out.contains("rules/main.yaml:3:13: `calendar.include`: no calendar `kantor` in belroute.yaml `calendars:`; did you mean `kantoor`?"),
        "{out}"
    );
}
