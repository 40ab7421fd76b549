//! belroute.yaml: positions, ranges, every problem at once, `check` without secrets.

use super::*;
use belroute_engine::settings::expand_env;

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(Path::new("belroute.yaml"), text).map_err(|e| e.to_string())
}

#[test]
fn env_expansion() {
    let env = |name: &str| (name == "A").then(|| "x".to_string());
    assert_eq!(expand_env("p${A}q${A}", env), Ok("pxqx".into()));
    assert_eq!(expand_env("$5 ok", env), Ok("$5 ok".into()));
    assert!(
        expand_env("${B}", env)
            .unwrap_err()
            .contains("environment variable B is not set")
    );
    assert!(expand_env("${A", env).is_err());
}

#[test]
fn errors_have_file_line_column() {
    let err = parse("hooks:\n  margn: 100ms\n").unwrap_err();
    assert_eq!(
        err,
        "belroute.yaml:2:3: unknown key `margn` in `hooks`; did you mean `margin`?"
    );
    let err = parse("hooks:\n  auth:\n    header: { name: identifier, value: \"${BELROUTE_TEST_UNSET_VAR}\" }\n").unwrap_err();
    assert_eq!(
        err,
        "belroute.yaml:3:41: `hooks.auth.header.value`: environment variable BELROUTE_TEST_UNSET_VAR is not set (used as ${BELROUTE_TEST_UNSET_VAR}); set it or remove the reference"
    );
    let err = parse("hooks:\n  auth:\n    allow_ips:\n      - 10.0.0.0/8\n      - 10.0.0.0/33\n")
        .unwrap_err();
    assert!(
        err.starts_with(
            "belroute.yaml:5:9: `hooks.auth.allow_ips[1]` is `10.0.0.0/33`, not an address range"
        ),
        "{err}"
    );
    let err = parse("hooks:\n  margin: 2s\n").unwrap_err();
    assert_eq!(
        err,
        "belroute.yaml:2:11: `hooks.margin` is 2s; it must be between 0s and 999ms (below 1s, the shortest rule set timeout)"
    );
    let err = parse("timezone: Mars/Olympus\n").unwrap_err();
    assert!(
        err.starts_with("belroute.yaml:1:11: `timezone`: unknown time zone"),
        "{err}"
    );
}

#[test]
fn rules_come_from_files_unless_the_database_is_named() {
    assert_eq!(parse("").unwrap().rules.source, RulesSource::Files);
    let c = parse("rules:\n  source: database\n").unwrap();
    assert_eq!(c.rules.source, RulesSource::Database);
    let err = parse("rules:\n  source: git\n").unwrap_err();
    assert!(
        err.starts_with("belroute.yaml:2:11: `rules.source`"),
        "{err}"
    );
    assert!(err.contains("files") && err.contains("database"), "{err}");
}

#[test]
fn defaults_and_sizes() {
    let c = parse("").unwrap();
    assert_eq!(c.hooks.margin, Duration::from_millis(250));
    assert_eq!(c.hooks.max_body, ByteSize(65536));
    assert_eq!(
        parse("hooks: { max_body: 1MiB }").unwrap().hooks.max_body,
        ByteSize(1 << 20)
    );
    assert_eq!(
        parse("hooks: { max_body: 4096 }").unwrap().hooks.max_body,
        ByteSize(4096)
    );
}

#[test]
fn secrets_do_not_print() {
    let s = Secret::new("hunter2");
    assert_eq!(format!("{s:?}"), "Secret(***)");
}

fn problems(text: &str) -> Vec<String> {
    match Config::parse(Path::new("belroute.yaml"), text) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid(found)) => found.iter().map(ToString::to_string).collect(),
        Err(e) => vec![e.to_string()],
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Duration,
    Size,
    Count,
    Fraction,
}

/// One ranged setting: its full name, range as documented in docs/operators.md and
/// docs/plugins.md, a value just over the top, and a belroute.yaml with `{}` for the value.
struct Ranged {
    path: &'static str,
    kind: Kind,
    min: &'static str,
    max: &'static str,
    over: &'static str,
    yaml: &'static str,
}

const fn row(
    path: &'static str,
    kind: Kind,
    min: &'static str,
    max: &'static str,
    over: &'static str,
    yaml: &'static str,
) -> Ranged {
    Ranged {
        path,
        kind,
        min,
        max,
        over,
        yaml,
    }
}

/// Every duration, size and count in belroute.yaml, engine plugin settings and the built-in
/// kinds' settings included.
fn every_ranged_setting() -> Vec<Ranged> {
    use Kind::*;
    vec![
        row(
            "hooks.margin",
            Duration,
            "0s",
            "999ms",
            "1s",
            "hooks:\n  margin: {}\n",
        ),
        row(
            "hooks.drain",
            Duration,
            "0s",
            "1m",
            "61s",
            "hooks:\n  drain: {}\n",
        ),
        row(
            "hooks.max_body",
            Size,
            "1KiB",
            "4MiB",
            "4097KiB",
            "hooks:\n  max_body: {}\n",
        ),
        row(
            "sandbox.max_operations",
            Count,
            "1000",
            "100000000",
            "100000001",
            "sandbox:\n  max_operations: {}\n",
        ),
        row(
            "sandbox.rule_time",
            Duration,
            "1ms",
            "10s",
            "10001ms",
            "sandbox:\n  rule_time: {}\n",
        ),
        row(
            "sandbox.max_string_size",
            Size,
            "1KiB",
            "16MiB",
            "16385KiB",
            "sandbox:\n  max_string_size: {}\n",
        ),
        row(
            "sandbox.max_array_size",
            Count,
            "16",
            "1000000",
            "1000001",
            "sandbox:\n  max_array_size: {}\n",
        ),
        row(
            "sandbox.max_map_size",
            Count,
            "16",
            "1000000",
            "1000001",
            "sandbox:\n  max_map_size: {}\n",
        ),
        // Deep recursion runs on a worker's 16 MiB thread (`Limits::MAX_CALL_LEVELS`).
        row(
            "sandbox.max_call_levels",
            Count,
            "1",
            "64",
            "65",
            "sandbox:\n  max_call_levels: {}\n",
        ),
        row(
            "sandbox.workers",
            Count,
            "1",
            "64",
            "65",
            "sandbox:\n  workers: {}\n",
        ),
        // The name before worker processes, still read.
        row(
            "sandbox.threads",
            Count,
            "1",
            "64",
            "65",
            "sandbox:\n  threads: {}\n",
        ),
        row(
            "sandbox.share",
            Count,
            "1",
            "64",
            "65",
            "sandbox:\n  workers: 64\n  share: {}\n",
        ),
        row(
            "sandbox.worker_memory",
            Size,
            "64MiB",
            "16GiB",
            "16385MiB",
            "sandbox:\n  worker_memory: {}\n",
        ),
        row(
            "sandbox.quarantine_after",
            Count,
            "1",
            "1000",
            "1001",
            "sandbox:\n  quarantine_after: {}\n",
        ),
        row(
            "sandbox.quarantine_window",
            Duration,
            "1s",
            "1d",
            "86401s",
            "sandbox:\n  quarantine_window: {}\n",
        ),
        row(
            "sandbox.max_expr_depth",
            Count,
            "8",
            "64",
            "65",
            "sandbox:\n  max_expr_depth: {}\n",
        ),
        row(
            "storage.retention",
            Duration,
            "1h",
            "3650d",
            "3651d",
            "storage:\n  retention: {}\n",
        ),
        row(
            "storage.queue",
            Count,
            "1",
            "1000000",
            "1000001",
            "storage:\n  queue: {}\n",
        ),
        row(
            "storage.batch",
            Count,
            "1",
            "10000",
            "10001",
            "storage:\n  batch: {}\n",
        ),
        row(
            "storage.spill_limit",
            Size,
            "1MiB",
            "1024GiB",
            "1025GiB",
            "storage:\n  spill_limit: {}\n",
        ),
        row(
            "hooks.connections.max",
            Count,
            "16",
            "1000000",
            "1000001",
            "hooks:\n  connections:\n    max: {}\n",
        ),
        row(
            "hooks.connections.keep_alive",
            Duration,
            "0s",
            "1m",
            "61s",
            "hooks:\n  connections:\n    keep_alive: {}\n",
        ),
        row(
            "hooks.connections.request_timeout",
            Duration,
            "100ms",
            "10s",
            "10001ms",
            "hooks:\n  connections:\n    request_timeout: {}\n",
        ),
        row(
            "hooks.connections.disconnect_timeout",
            Duration,
            "100ms",
            "10s",
            "11s",
            "hooks:\n  connections:\n    disconnect_timeout: {}\n",
        ),
        row(
            "hooks.connections.reserve_files",
            Count,
            "64",
            "100000",
            "100001",
            "hooks:\n  connections:\n    reserve_files: {}\n",
        ),
        row(
            "storage.shutdown_wait",
            Duration,
            "0s",
            "10m",
            "601s",
            "storage:\n  shutdown_wait: {}\n",
        ),
        row(
            "plugins.p.timeout",
            Duration,
            "1ms",
            "10s",
            "11s",
            "plugins:\n  p:\n    kind: history\n    timeout: {}\n",
        ),
        row(
            "plugins.p.cache.ttl",
            Duration,
            "0s",
            "30d",
            "30d1ms",
            "plugins:\n  p:\n    kind: history\n    cache:\n      ttl: {}\n",
        ),
        row(
            "plugins.p.cache.negative_ttl",
            Duration,
            "0s",
            "30d",
            "31d",
            "plugins:\n  p:\n    kind: history\n    cache: { negative_ttl: {} }\n",
        ),
        row(
            "plugins.p.cache.stale_if_error",
            Duration,
            "0s",
            "30d",
            "720h1s",
            "plugins:\n  p:\n    kind: history\n    cache:\n      stale_if_error: {}\n",
        ),
        row(
            "plugins.p.cache.refresh_ahead",
            Fraction,
            "0",
            "1",
            "1.01",
            "plugins:\n  p:\n    kind: history\n    cache:\n      refresh_ahead: {}\n",
        ),
        row(
            "plugins.p.cache.max_entries",
            Count,
            "1",
            "1000000",
            "1000001",
            "plugins:\n  p:\n    kind: history\n    cache:\n      max_entries: {}\n",
        ),
        row(
            "plugins.p.breaker.failures",
            Count,
            "0",
            "1000",
            "1001",
            "plugins:\n  p:\n    kind: history\n    breaker:\n      failures: {}\n",
        ),
        row(
            "plugins.p.breaker.cool_down",
            Duration,
            "1s",
            "1d",
            "25h",
            "plugins:\n  p:\n    kind: history\n    breaker:\n      cool_down: {}\n",
        ),
        row(
            "plugins.p.window",
            Duration,
            "1h",
            "3650d",
            "3651d",
            "plugins:\n  p:\n    kind: history\n    window: {}\n",
        ),
        row(
            "plugins.p.connect_timeout",
            Duration,
            "1ms",
            "10s",
            "10001ms",
            "plugins:\n  p:\n    kind: http\n    url: http://crm.example.nl/{caller_e164}\n    connect_timeout: {}\n",
        ),
        row(
            "plugins.p.not_found_status[0]",
            Count,
            "100",
            "599",
            "600",
            "plugins:\n  p:\n    kind: http\n    url: http://crm.example.nl/{caller_e164}\n    not_found_status: [{}, 404]\n",
        ),
        row(
            "plugins.p.max_connections",
            Count,
            "1",
            "100",
            "101",
            "plugins:\n  p:\n    kind: sql\n    url: 'sqlite::memory:'\n    query: SELECT 1 AS one WHERE :caller_e164 <> ''\n    max_connections: {}\n",
        ),
        row(
            "subscriptions.s.visibility_timeout",
            Duration,
            "1s",
            "1d",
            "86401s",
            "subscriptions:\n  s:\n    api_key: k\n    visibility_timeout: {}\n",
        ),
        row(
            "subscriptions.s.max_retries",
            Count,
            "1",
            "1000",
            "1001",
            "subscriptions:\n  s:\n    api_key: k\n    max_retries: {}\n",
        ),
        row(
            "subscriptions.s.retry_initial",
            Duration,
            "10ms",
            "1h",
            "61m",
            "subscriptions:\n  s:\n    api_key: k\n    retry_max: 1d\n    retry_initial: {}\n",
        ),
        row(
            "subscriptions.s.retry_max",
            Duration,
            "10ms",
            "1d",
            "2d",
            "subscriptions:\n  s:\n    api_key: k\n    retry_initial: 10ms\n    retry_max: {}\n",
        ),
        row(
            "subscriptions.s.renotify_after",
            Duration,
            "1s",
            "1d",
            "1d1s",
            "subscriptions:\n  s:\n    api_key: k\n    renotify_after: {}\n",
        ),
    ]
}

/// What no setting of this kind may be: zero where the minimum is above it, negative, huge,
/// `u64::MAX`, beyond `u64`, years, and just over the top.
fn absurd(row: &Ranged) -> Vec<String> {
    let mut values: Vec<&str> = match row.kind {
        Kind::Duration => vec![
            "-1s",
            "18446744073709551615",
            "18446744073709551615s",
            "100000000y",
            "1000000000000y",
        ],
        Kind::Size => vec![
            "-1",
            "18446744073709551615",
            "99999999999999999999999",
            "100000000GiB",
        ],
        Kind::Count => vec!["-1", "18446744073709551615", "99999999999999999999999"],
        Kind::Fraction => vec!["-0.1", "1.5", "1e309"],
    };
    if !matches!(row.min, "0" | "0s") {
        values.push("0");
    }
    values.push(row.over);
    values.into_iter().map(String::from).collect()
}

/// The line and column where `{}` sits in `yaml`.
fn placeholder_position(yaml: &str) -> (usize, usize) {
    let before = &yaml[..yaml.find("{}").unwrap()];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap().chars().count() + 1;
    (line, column)
}

#[test]
fn every_duration_size_and_count_is_refused_out_of_range_at_its_position() {
    let mut checked = 0;
    for row in every_ranged_setting() {
        let (line, column) = placeholder_position(row.yaml);
        for value in absurd(&row) {
            let text = row.yaml.replace("{}", &value);
            let found = problems(&text);
            let want = format!(
                "belroute.yaml:{line}:{column}: `{}` is {value}; it must be between {} and {}",
                row.path, row.min, row.max
            );
            assert!(
                found.len() == 1 && found[0].starts_with(&want),
                "{}: {value}\nwant: {want}…\nfound: {found:#?}",
                row.path
            );
            checked += 1;
        }
    }
    assert!(checked > 150, "{checked}");
}

#[test]
fn every_range_includes_both_ends() {
    for row in every_ranged_setting() {
        for value in [row.min, row.max] {
            let text = row.yaml.replace("{}", value);
            assert_eq!(
                problems(&text),
                Vec::<String>::new(),
                "{}: {value}",
                row.path
            );
        }
    }
}

/// The longest duration allowed anywhere, doubled (backoff) and more, is still far from what
/// `Instant`, `SystemTime` and milliseconds in an `i64` (the call log) can hold.
#[test]
fn the_longest_durations_allowed_cannot_overflow_clock_arithmetic() {
    for row in every_ranged_setting() {
        if row.kind != Kind::Duration {
            continue;
        }
        let longest = settings::parse_duration(row.max).unwrap() * 4;
        assert!(
            std::time::Instant::now().checked_add(longest).is_some()
                && std::time::SystemTime::now().checked_add(longest).is_some()
                && i64::try_from(longest.as_millis()).is_ok(),
            "{}",
            row.path
        );
    }
}

#[test]
fn words_where_numbers_belong_say_what_to_write() {
    let table: &[(&str, &str)] = &[
        (
            "hooks:\n  margin: fast\n",
            "belroute.yaml:2:11: `hooks.margin` is `fast`, not a duration (expected a number before `f`); write e.g. 2s, 1500ms, 5m, 24h or 7d",
        ),
        (
            "hooks:\n  max_body: lots\n",
            "belroute.yaml:2:13: `hooks.max_body` is `lots`, not a size (it does not start with a number); write e.g. 65536, 64KiB or 1MiB",
        ),
        (
            "storage:\n  queue: many\n",
            "belroute.yaml:2:10: `storage.queue` is `many`, not a whole number; write e.g. 1000000",
        ),
        (
            "storage:\n  queue: [1]\n",
            "belroute.yaml:2:10: `storage.queue` must be text, found a list",
        ),
        (
            "hooks: 5\n",
            "belroute.yaml:1:8: `hooks` must be a mapping of keys (margin, max_body, auth, rulesets, connections, drain), found text",
        ),
        (
            "hoks: {}\n",
            "belroute.yaml:1:1: unknown key `hoks` in belroute.yaml; did you mean `hooks`?",
        ),
        (
            "subscriptions:\n  s:\n    api_key: k\n    status: of\n",
            "belroute.yaml:4:13: `subscriptions.s.status` is `of`; did you mean `off`?",
        ),
        (
            "plugins:\n  p:\n    kind: htp\n",
            "belroute.yaml:3:11: `plugins.p.kind` is `htp`; did you mean `http`?",
        ),
        (
            "plugins:\n  call:\n    kind: history\n",
            "belroute.yaml:2:3: `call` cannot be a lookup name: rules already use it (call, caller, now, open_hours, holiday, is_holiday and Rhai's keywords are taken); choose another, e.g. `call_crm`",
        ),
    ];
    for (text, want) in table {
        assert_eq!(problems(text), vec![want.to_string()], "{text}");
    }
}

#[test]
fn every_problem_in_the_file_is_reported_at_once_each_at_its_place() {
    let text = "\
timezone: Mars/Olympus
hooks:
  margn: 100ms
  max_body: 0
sandbox: { max_operations: 0 }
plugins:
  Bad-Name:
    kind: http
    url: ftp://crm.example.nl/{caller_e164}
  crm:
    kind: sqll
subscriptions:
  s:
    endpoint: not a url
    max_retries: 0
";
    let found = problems(text);
    let positions: Vec<&str> = found
        .iter()
        .map(|p| p.split(": ").next().unwrap())
        .collect();
    assert_eq!(
        positions,
        [
            "belroute.yaml:1:11",
            "belroute.yaml:3:3",
            "belroute.yaml:4:13",
            "belroute.yaml:5:28",
            "belroute.yaml:7:3",
            "belroute.yaml:9:10",
            "belroute.yaml:11:11",
            "belroute.yaml:14:5",
            "belroute.yaml:14:15",
            "belroute.yaml:15:18",
        ],
        "{found:#?}"
    );
    assert!(
        found[7].contains("`subscriptions.s` needs `api_key`"),
        "{}",
        found[7]
    );
    assert!(
        found[8].contains("`subscriptions.s.endpoint` is not a URL"),
        "{}",
        found[8]
    );
}

#[test]
fn check_notes_what_needs_unset_variables_and_still_reports_the_rest() {
    let text = "\
plugins:
  crm:
    kind: http
    url: \"${BELROUTE_TEST_UNSET_CRM}/persons?phone={caller_e164}\"
    cache: { ttl: 100000000y }
  db:
    kind: sql
    url: \"${BELROUTE_TEST_UNSET_DB}\"
    query: SELECT 1 AS one WHERE :caller_e164 <> ''
admin:
  token: \"${BELROUTE_TEST_UNSET_TOKEN}\"
";
    let (parsed, mut missing) =
        settings::tolerating_missing_env(|| Config::parse(Path::new("belroute.yaml"), text));
    missing.sort();
    assert_eq!(
        missing,
        [
            "BELROUTE_TEST_UNSET_CRM",
            "BELROUTE_TEST_UNSET_DB",
            "BELROUTE_TEST_UNSET_TOKEN"
        ]
    );
    // The absurd ttl does not depend on any variable: still an error, at its place.
    let Err(ConfigError::Invalid(found)) = parsed else {
        panic!("the ttl must be refused: {parsed:?}");
    };
    let found: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(
        found,
        [
            "belroute.yaml:5:19: `plugins.crm.cache.ttl` is 100000000y; it must be between 0s and 30d"
        ]
    );

    let fixed = text.replace("100000000y", "30s");
    let (parsed, _) =
        settings::tolerating_missing_env(|| Config::parse(Path::new("belroute.yaml"), &fixed));
    let config = parsed.unwrap();
    assert_eq!(
        config.notes,
        [
            "`plugins.crm.url` was not fully checked: it needs environment variables that are not set (BELROUTE_TEST_UNSET_CRM)",
            "`plugins.db.url` was not fully checked: it needs environment variables that are not set (BELROUTE_TEST_UNSET_DB)",
        ]
    );
    assert_eq!(
        config.lookup_names().into_iter().collect::<Vec<_>>(),
        ["crm", "db"]
    );
    // `serve` is strict: the first unset variable is an error at the reference itself.
    let strict = problems(&fixed);
    assert_eq!(strict.len(), 3, "{strict:#?}");
    assert!(
        strict[0].starts_with("belroute.yaml:4:11: `plugins.crm.url`: environment variable BELROUTE_TEST_UNSET_CRM is not set"),
        "{strict:#?}"
    );
}

#[test]
fn auth_rulesets_and_addresses() {
    let config = parse(
        "hooks:\n  auth:\n    allow_ips: [10.0.0.0/8, 203.0.113.7, '2001:db8::/32']\n  rulesets:\n    support:\n      auth: {}\n    sales:\n      auth:\n        query: { name: token, value: s3cr3t }\n",
    )
    .unwrap();
    assert_eq!(config.hooks.auth.allow_ips.len(), 3);
    assert_eq!(config.hooks.auth.allow_ips[1].to_string(), "203.0.113.7/32");
    assert!(config.auth_for("support").allow_ips.is_empty());
    assert_eq!(
        config
            .auth_for("sales")
            .query
            .as_ref()
            .map(|q| q.value.expose()),
        Some("s3cr3t")
    );
    assert_eq!(config.auth_for("other").allow_ips.len(), 3);
    assert_eq!(
        problems("hooks:\n  auth:\n    header: { name: identifier }\n"),
        [
            "belroute.yaml:3:13: `hooks.auth.header` needs `value`; add `value: \"${BELROUTE_HOOK_SECRET}\"` to it"
        ]
    );
}

#[test]
fn subscriptions_read_with_their_defaults() {
    let config = parse("subscriptions:\n  crm:\n    endpoint: https://crm.example.nl/notify\n    api_key: k\n    events: [call.routed, call.agent]\n").unwrap();
    let crm = &config.subscriptions["crm"];
    assert_eq!(crm.visibility_timeout, Duration::from_secs(300));
    assert_eq!(crm.events, [EventKind::CallRouted, EventKind::CallAgent]);
    assert_eq!(crm.max_retries, 5);
    assert_eq!(
        problems(
            "subscriptions:\n  s:\n    api_key: k\n    retry_initial: 1h\n    retry_max: 1m\n"
        ),
        [
            "belroute.yaml:5:16: `subscriptions.s.retry_max` is 1m, shorter than `retry_initial` (1h); make it at least 1h"
        ]
    );
}

/// Nested anchors that would expand to 10^9 nodes: refused by the YAML reader's limits, not
/// read until memory runs out.
#[test]
fn an_alias_bomb_is_refused() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let prev = i - 1;
        text.push_str(&format!(
            "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
        ));
    }
    let found = problems(&text);
    assert!(
        !found.is_empty() && found[0].starts_with("belroute.yaml:"),
        "{found:?}"
    );
}

#[test]
fn a_rule_set_share_larger_than_the_pool_is_refused() {
    assert_eq!(
        problems("sandbox:\n  workers: 2\n  share: 3\n"),
        [
            "belroute.yaml:3:10: `sandbox.share` is 3, more than the pool's 2 workers; one rule set may use at most all of them"
        ]
    );
    let config = parse("sandbox:\n  workers: 4\n  share: 2\n").unwrap();
    assert_eq!(
        (config.sandbox.pool.workers, config.sandbox.pool.share),
        (4, 2)
    );
    // `threads`, the name before worker processes, is read as `workers`.
    let config = parse("sandbox:\n  threads: 3\n").unwrap();
    assert_eq!(config.sandbox.pool.workers, 3);
}

#[test]
fn a_guessable_admin_token_is_warned_about() {
    for (token, why) in [
        ("admintoken", "10 characters"),
        ("my-secret-but-long-enough-1234", "common word `secret`"),
        (
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "only 1 different characters",
        ),
        ("correcthorsebatterystaple", "only letters"),
    ] {
        let config = parse(&format!("admin:\n  token: {token}\n")).unwrap();
        assert_eq!(config.warnings.len(), 1, "{token}");
        assert!(
            config.warnings[0].contains(why),
            "{token}: {:?}",
            config.warnings
        );
        assert!(
            !config.warnings[0].contains(token),
            "the token itself is never shown"
        );
    }
    for token in [
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "Xq7-vR2m_Lp9zT4wKc8N",
    ] {
        let config = parse(&format!("admin:\n  token: {token}\n")).unwrap();
        assert!(config.warnings.is_empty(), "{token}: {:?}", config.warnings);
    }
    assert!(parse("").unwrap().warnings.is_empty());
}
