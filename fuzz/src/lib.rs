//! The bodies of belroute's fuzz targets, one function per target.
//!
//! The cargo-fuzz binaries in `fuzz_targets/` call these on nightly; the stable test
//! `tests/fuzz_corpus.rs` includes this file and calls them on every committed corpus and
//! regression input, so `cargo test --workspace` replays what the fuzzers found. Each function
//! feeds its bytes to the same public entry point the server uses and panics (a finding) only
//! when that entry point panics or breaks one of its documented promises, checked here.
//!
//! Input formats (chosen so a plain file is a good seed; see docs/fuzzing.md):
//! - `webhook_call`: `query NUL body`, or, without a NUL byte, the whole input as a POST body
//!   (and, once more, as a GET's query string).
//! - `normalise`: the caller number as Callvoip would send it.
//! - `rule_file`: a rule file's text (also read as a `.test.yaml` file).
//! - `config_file`: a `belroute.yaml`'s text.
#![forbid(unsafe_code)]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use belroute::config::{Config, ConfigError};
use belroute_engine::catalog::{Loader, RuleLoader, StoreContext};
use belroute_engine::settings;
use belroute_engine::{
    Call, DEFAULT_TIME_ZONE, Diagnostic, Limits, MAX_FIELDS, MAX_NAME_LEN, MAX_ROUTE_LEN,
    MAX_TIMEOUT, MAX_VALUE_LEN, MIN_TIMEOUT, Normaliser, ScriptEngine, check_route, load_test_file,
};

/// The targets, by the name of their corpus directory.
pub const TARGETS: [&str; 4] = ["webhook_call", "normalise", "rule_file", "config_file"];

/// Runs the target named `target` on `data`; `false` if there is no such target.
pub fn run(target: &str, data: &[u8]) -> bool {
    match target {
        "webhook_call" => webhook_call(data),
        "normalise" => normalise(data),
        "rule_file" => rule_file(data),
        "config_file" => config_file(data),
        _ => return false,
    }
    true
}

/// The secret query parameter the server hides from rules (`hooks.auth.query`).
const HIDDEN: &str = "token";

/// `belroute_engine::Call::from_request` / `from_body` / `from_form` / `from_json`: the webhook's
/// call reader. The server passes no Content-Type: the body is read by what it is.
pub fn webhook_call(data: &[u8]) {
    let (query, body) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&b""[..], data),
    };
    // actix-web hands the query string over as text.
    let query = String::from_utf8_lossy(query);

    // POST: the body, with the query's fields under it.
    let from_body = Call::from_body(body);
    // Read straight into the fields, a JSON object gives what reading it as a `Value` gives.
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        assert_eq!(
            Call::from_json(body),
            Call::from_json_value(value),
            "reading JSON straight into the fields differs from reading it as a value"
        );
    }
    if let Ok(call) = &from_body {
        assert_bounded(call, "from_body");
        // What a call serialises to (the call log, the admin API) reads back as the same call.
        let json = serde_json::to_vec(call).unwrap_or_default();
        assert_eq!(
            Call::from_body(&json).as_ref(),
            Ok(call),
            "a call's own JSON does not read back as the same call"
        );
    }
    if let Err(e) = &from_body {
        assert!(!e.to_string().is_empty() && !e.label().is_empty());
    }
    match Call::from_request(&query, Some(body), Some(HIDDEN)) {
        Ok(call) => {
            assert_bounded(&call, "from_request");
            // The body wins where both name a field.
            let body_call = from_body
                .as_ref()
                .unwrap_or_else(|e| panic!("from_request accepted a body from_body refuses ({e})"));
            for (k, v) in body_call.sent_fields() {
                assert_eq!(call.get(k), v, "body field `{k}` lost under the query's");
            }
        }
        Err(e) => assert!(!e.to_string().is_empty() && !e.label().is_empty()),
    }
    let _ = Call::from_json(body);

    // GET: the call data in the query string (here the whole input), the secret hidden.
    let text = String::from_utf8_lossy(data);
    if let Ok(call) = Call::from_request(&text, None, Some(HIDDEN)) {
        assert_bounded(&call, "from_request (GET)");
        assert!(
            !call.sent_fields().contains_key(HIDDEN),
            "the secret query parameter reached the call"
        );
    }
    if let Ok(call) = Call::from_form(&text) {
        assert_bounded(&call, "from_form");
        assert!(
            !call.sent_fields().contains_key(""),
            "a form field without a name reached the call"
        );
    }
}

/// What an accepted call promises: at most [`MAX_FIELDS`] fields, names and values in bounds.
fn assert_bounded(call: &Call, by: &str) {
    let fields = call.sent_fields();
    assert!(fields.len() <= MAX_FIELDS, "{by}: {} fields", fields.len());
    for (k, v) in fields {
        assert!(
            k.len() <= MAX_NAME_LEN,
            "{by}: field name of {} bytes",
            k.len()
        );
        assert!(v.len() <= MAX_VALUE_LEN, "{by}: value of {} bytes", v.len());
    }
    // Every documented field is there, empty when not sent.
    assert!(call.fields().count() >= belroute_engine::CALLVOIP_FIELDS.len());
}

fn normalisers() -> &'static [Normaliser; 2] {
    static NORMALISERS: OnceLock<[Normaliser; 2]> = OnceLock::new();
    NORMALISERS.get_or_init(|| {
        // NL: the default; US: another trunk prefix (1) and numbering plan.
        let us = Normaliser::new("us").unwrap_or_else(|e| panic!("{e}"));
        [Normaliser::default(), us]
    })
}

/// `belroute_engine::Normaliser`: the caller's number as received, normalised to E.164.
pub fn normalise(data: &[u8]) {
    // Call fields are text: the call reader has already refused bytes that are not UTF-8.
    let raw = String::from_utf8_lossy(data);
    for normaliser in normalisers() {
        let parsed = normaliser.parse(&raw);
        assert_eq!(
            parsed,
            normaliser.parse_by_numbering_plan(&raw),
            "the fast path for Dutch numbers answers otherwise than phonenumber"
        );
        // Twice: the second answer comes from the cache and must be the same.
        for _ in 0..2 {
            assert_eq!(
                *normaliser.normalise(&raw),
                parsed,
                "the cache answers otherwise than parsing"
            );
        }
        assert_eq!(parsed.raw, raw, "the raw number is not kept as received");
        assert!(!parsed.key().is_empty() || raw.is_empty());
        if parsed.anonymous || parsed.is_sip_account {
            assert!(!parsed.valid && !parsed.has_number());
        }
        if !parsed.valid {
            assert!(parsed.e164.is_empty() && parsed.digits.is_empty());
            continue;
        }
        assert!(parsed.has_number());
        assert_eq!(parsed.key(), parsed.e164);
        assert_eq!(Some(parsed.digits.as_str()), parsed.e164.strip_prefix('+'));
        assert!(parsed.digits.bytes().all(|b| b.is_ascii_digit()));
        assert!(parsed.national.bytes().all(|b| b.is_ascii_digit()));
        assert!(parsed.country_code > 0);
        // A CRM stores the number as belroute gave it; asked again, it must be the same caller.
        for form in [&parsed.e164, &parsed.international] {
            let again = normaliser.parse(form);
            assert_eq!(
                again.e164, parsed.e164,
                "`{raw}` normalises to `{}`, but `{form}` to `{}`",
                parsed.e164, again.e164
            );
        }
    }
}

fn loader() -> &'static RuleLoader {
    static LOADER: OnceLock<RuleLoader> = OnceLock::new();
    LOADER.get_or_init(|| {
        // The lookups the example configurations define, so rules may use them.
        // Declaring no facts, so a rule reading one is refused: the loader's diagnostics are
        // what the fuzzer exercises.
        let lookups = ["invoices", "tickets", "history", "crm"]
            .into_iter()
            .map(|name| (name.to_string(), None))
            .collect();
        RuleLoader::new(StoreContext {
            scripts: Arc::new(ScriptEngine::new(&Limits::default())),
            lookups,
            calendars: Default::default(),
            time_zone: DEFAULT_TIME_ZONE,
        })
    })
}

/// The rule-file loader `serve` and `check` use (YAML, validation, Rhai compilation), and the
/// test-file reader: a rule set or its diagnostics, never a panic.
pub fn rule_file(data: &[u8]) {
    // The store reads files as UTF-8 text; lossy keeps the fuzzer's odd bytes useful.
    let text = String::from_utf8_lossy(data);
    let file = Path::new("rules/main.yaml");
    match loader().load("main", file, &text) {
        Ok(set) => {
            assert_eq!(&*set.name, "main");
            assert!((MIN_TIMEOUT..=MAX_TIMEOUT).contains(&set.timeout));
            assert!(set.default_route.chars().count() <= MAX_ROUTE_LEN);
            if let Err(e) = check_route(&set.default_route) {
                panic!("default route `{}` was accepted: {e}", set.default_route);
            }
        }
        Err(problems) => assert_diagnostics(&problems, &text, file),
    }
    let tests = Path::new("rules/main.test.yaml");
    if let Err(problems) = load_test_file(tests, &text) {
        assert_diagnostics(&problems, &text, tests);
    }
}

/// A refusal says why, in the file, at a line and column an editor can jump to.
fn assert_diagnostics(problems: &[Diagnostic], text: &str, file: &Path) {
    assert!(!problems.is_empty(), "refused without a diagnostic");
    // Lines as YAML (and an editor) counts them; a text ending in a line break has an empty last
    // line, where "unexpected end of file" may point.
    let lines = text.replace("\r\n", "\n").split(['\n', '\r']).count();
    for problem in problems {
        assert!(
            !problem.message.trim().is_empty(),
            "empty message: {problem:?}"
        );
        assert_eq!(problem.file, file, "{problem}");
        let at = problem.position;
        assert!(
            at.line >= 1 && at.column >= 1 && at.line <= lines,
            "position {}:{} outside a text of {lines} lines: {problem}",
            at.line,
            at.column
        );
    }
}

/// `belroute.yaml`, read by the binary crate's own loader: as `serve` reads it (missing
/// environment variables are errors) and as `check` reads it (they are notes).
pub fn config_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let file = Path::new("belroute.yaml");
    let strict = Config::parse(file, &text);
    let (tolerant, _missing) = settings::tolerating_missing_env(|| Config::parse(file, &text));
    for result in [strict.as_ref(), tolerant.as_ref()] {
        match result {
            Err(ConfigError::Invalid(problems)) => assert_diagnostics(problems, &text, file),
            Err(e) => panic!("parsing text gave an error other than diagnostics: {e}"),
            Ok(_) => {}
        }
    }
    if strict.is_ok() {
        assert!(tolerant.is_ok(), "`check` refuses a file `serve` accepts");
    }
}
