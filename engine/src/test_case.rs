//! Rule tests, as written: a call, the facts each lookup returns, the route expected.
//!
//! Tests live in a rule file's `tests:` section or beside it in `{name}.test.yaml`; this module
//! reads them, `test_run` runs them.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDateTime;

use crate::call::Call;
use crate::diagnostic::{Diagnostic, Diagnostics, Position};
use crate::lookups::LookupResult;
use crate::yaml::{self, Fields, Node};

const TEST_KEYS: [&str; 5] = ["name", "at", "call", "lookups", "expect"];

/// One rule test.
#[derive(Debug, Clone)]
pub struct TestCase {
    pub name: String,
    pub file: PathBuf,
    pub position: Position,
    /// Local time in the rule set's zone; `None` is the time the test runs.
    pub at: Option<NaiveDateTime>,
    pub call: Call,
    pub lookups: BTreeMap<String, LookupResult>,
    /// Each fact the test gives, by lookup, and where it is written (to check its name).
    pub facts_at: Vec<(String, String, Position)>,
    pub expect_route: String,
    pub expect_rule: Option<String>,
}

/// Reads a `tests:` list (from a rule file or a test file).
pub fn read_tests(node: &Node, diags: &mut Diagnostics<'_>) -> Vec<TestCase> {
    let Some(items) = node.as_seq() else {
        diags.error(
            node.position,
            format!(
                "`tests` must be a list of tests, found {}",
                node.kind_name()
            ),
        );
        return Vec::new();
    };
    let mut tests: Vec<TestCase> = Vec::new();
    let mut names: HashSet<String> = HashSet::new();
    for (index, item) in items.iter().enumerate() {
        let Some(fields) = Fields::read(item, &TEST_KEYS, "a test", diags) else {
            continue;
        };
        let name = fields
            .text("name", "test", diags)
            .map(str::to_string)
            .unwrap_or_else(|| format!("test {}", index + 1));
        if !names.insert(name.clone()) {
            diags.error(item.position, format!("duplicate test name `{name}`"));
        }
        let at = fields.get("at").and_then(|node| {
            let parsed = node.as_str().and_then(crate::clock::parse_local_time);
            if parsed.is_none() {
                diags.error(
                    node.position,
                    format!("test `{name}`: `at` is a local time written 2026-11-23 10:00"),
                );
            }
            parsed
        });
        let call = match fields.get("call") {
            None => Call::default(),
            Some(node) => match Call::from_json_value(node.to_json()) {
                Ok(call) => call,
                Err(_) => {
                    diags.error(node.position, format!("test `{name}`: `call` is a mapping of call fields, e.g. {{caller_number: \"31612345678\"}}"));
                    Call::default()
                }
            },
        };
        let mut facts_at = Vec::new();
        let lookups = fields
            .get("lookups")
            .map(|node| read_facts(node, &name, &mut facts_at, diags))
            .unwrap_or_default();
        let (expect_route, expect_rule) = read_expect(&fields, item, &name, diags);
        tests.push(TestCase {
            name,
            file: diags.file().to_path_buf(),
            position: item.position,
            at,
            call,
            lookups,
            facts_at,
            expect_route,
            expect_rule,
        });
    }
    tests
}

/// `lookups:` in a test: per lookup a mapping of facts, `not found` / `{}`, or `unavailable`.
fn read_facts(
    node: &Node,
    test: &str,
    facts_at: &mut Vec<(String, String, Position)>,
    diags: &mut Diagnostics<'_>,
) -> BTreeMap<String, LookupResult> {
    let mut facts = BTreeMap::new();
    let Some(entries) = node.as_map() else {
        diags.error(
            node.position,
            format!("test `{test}`: `lookups` maps each lookup to its facts"),
        );
        return facts;
    };
    for (key, value) in entries {
        let Some(name) = key.as_str() else { continue };
        let result = match (&value.value, value.as_str()) {
            (_, Some("unavailable")) | (yaml::Value::Null, _) => LookupResult::Unavailable {
                reason: "unavailable in this test".into(),
            },
            (_, Some("not found")) => LookupResult::NotFound,
            (yaml::Value::Map(m), _) if m.is_empty() => LookupResult::NotFound,
            (yaml::Value::Map(m), _) => match value.to_json() {
                serde_json::Value::Object(map) => {
                    for (fact, _) in m.iter() {
                        if let Some(fact_name) = fact.as_str() {
                            facts_at.push((name.to_string(), fact_name.to_string(), fact.position));
                        }
                    }
                    LookupResult::Found {
                        facts: Arc::new(map),
                    }
                }
                _ => continue,
            },
            _ => {
                diags.error(
                    value.position,
                    format!("test `{test}`: lookup `{name}` is a mapping of facts, `not found` or `unavailable`"),
                );
                continue;
            }
        };
        facts.insert(name.to_string(), result);
    }
    facts
}

fn read_expect(
    fields: &Fields<'_>,
    item: &Node,
    test: &str,
    diags: &mut Diagnostics<'_>,
) -> (String, Option<String>) {
    let Some(node) = fields.get("expect") else {
        diags.error(
            item.position,
            format!("test `{test}` needs `expect`: the route, or {{route, rule}}"),
        );
        return (String::new(), None);
    };
    if let Some(route) = node.as_str() {
        return (route.to_string(), None);
    }
    let Some(expect) = Fields::read(node, &["route", "rule"], "`expect`", diags) else {
        return (String::new(), None);
    };
    let route = expect
        .text("route", "expect", diags)
        .unwrap_or_default()
        .to_string();
    if route.is_empty() {
        diags.error(
            node.position,
            format!("test `{test}`: `expect` needs a `route`"),
        );
    }
    (
        route,
        expect.text("rule", "expect", diags).map(str::to_string),
    )
}

/// The test file that belongs beside a rule file: `main.yaml` → `main.test.yaml`.
pub fn test_file_for(rule_file: &Path) -> PathBuf {
    let ext = rule_file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("yaml");
    rule_file.with_extension(format!("test.{ext}"))
}

/// Reads a `{name}.test.yaml`: a list of tests, or a mapping with `tests:`.
pub fn load_test_file(file: &Path, text: &str) -> Result<Vec<TestCase>, Vec<Diagnostic>> {
    let mut diags = Diagnostics::new(file);
    let root = match yaml::parse(text) {
        Ok(root) => root,
        Err(e) => {
            diags.error(e.position, e.to_string());
            return Err(diags.into_vec());
        }
    };
    let tests = match root.as_map() {
        Some(_) => match Fields::read(&root, &["tests"], "a test file", &mut diags)
            .and_then(|f| f.get("tests"))
        {
            Some(list) => read_tests(list, &mut diags),
            None => Vec::new(),
        },
        None if root.is_null() => Vec::new(),
        None => read_tests(&root, &mut diags),
    };
    if diags.is_empty() {
        Ok(tests)
    } else {
        Err(diags.into_vec())
    }
}
