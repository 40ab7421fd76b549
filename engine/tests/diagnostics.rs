//! What the checker catches before a call sees it, table by table: each row a rule file (or a
//! test file), the message expected and where. None of these may be silently false at run time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use belroute_engine::vocabulary::FactType;
use belroute_engine::{
    DEFAULT_TIME_ZONE, Diagnostic, Limits, LoadContext, LookupFacts, RuleSet, ScriptEngine,
    load_test_file,
};

/// `invoices` declares `open_count` (int) and `customer` (text); `crm` declares nothing.
fn lookups() -> LookupFacts {
    LookupFacts::from([
        (
            "invoices".to_string(),
            Some(BTreeMap::from([
                ("open_count".to_string(), FactType::Int),
                ("customer".to_string(), FactType::Text),
            ])),
        ),
        ("crm".to_string(), None),
    ])
}

fn load(text: &str) -> Result<RuleSet, Vec<Diagnostic>> {
    let scripts = ScriptEngine::new(&Limits::default());
    let lookups = lookups();
    let ctx = LoadContext {
        scripts: &scripts,
        lookups: &lookups,
        calendars: &belroute_engine::calendar::NO_CALENDARS,
        time_zone: DEFAULT_TIME_ZONE,
    };
    RuleSet::load("main", Path::new("main.yaml"), text, &ctx)
}

fn rule(when: &str) -> String {
    format!(
        "default: x\nlookups: [invoices, crm]\nrules:\n  - name: R\n    when: '{when}'\n    route: y\n"
    )
}

/// `line:col: message` of a diagnostic, without the file.
fn shown(d: &Diagnostic) -> String {
    format!("{}:{}: {}", d.position.line, d.position.column, d.message)
}

#[test]
fn load_errors_with_their_place_and_fix() {
    let table: Vec<(&str, String, &str)> = vec![
        (
            "a field of caller",
            rule("caller.knd == \"mobile\""),
            "5:19: rule `R`: unknown field `caller.knd`; did you mean `kind`?",
        ),
        (
            "a boolean field of caller",
            rule("caller.anonymus"),
            "5:19: rule `R`: unknown field `caller.anonymus`; did you mean `anonymous`?",
        ),
        (
            "a field read by index",
            rule("caller[\"knd\"] == \"mobile\""),
            "5:19: rule `R`: unknown field `caller.knd`; did you mean `kind`?",
        ),
        (
            "a field of now()",
            rule("now().hours > 17"),
            "5:18: rule `R`: unknown field `now().hours`; did you mean `hour`?",
        ),
        (
            "a field the Webhook-app adds, not declared",
            rule("call.campaign == \"winter\""),
            "5:17: rule `R`: unknown field `call.campaign`; call has:",
        ),
        (
            "a fact of a lookup",
            rule("invoices.open_cnt > 0"),
            "5:21: rule `R`: unknown field `invoices.open_cnt`; did you mean `open_count`?",
        ),
        (
            "a fact of a plugin that declares none",
            rule("crm.open > 0"),
            "5:16: rule `R`: `crm.open`: plugin `crm` declares no facts",
        ),
        (
            "a number compared with text",
            rule("invoices.open_count > \"0\""),
            "5:32: rule `R`: `>` compares `invoices.open_count` (a whole number) with \"0\" (text)",
        ),
        (
            "text compared with a number",
            rule("caller.kind == 1"),
            "5:24: rule `R`: `==` compares `caller.kind` (text) with `1` (a whole number)",
        ),
        (
            "`=` for `==`",
            rule("caller.kind = \"mobile\""),
            "5:24: rule `R`: Rhai syntax: Unexpected '='; to compare, write `==`",
        ),
        (
            "a tab in the indentation",
            "default: x\nrules:\n\t- name: R\n".to_string(),
            "3:2: YAML syntax: tabs disallowed within this context (block indentation); indent with spaces",
        ),
        (
            "a month out of range",
            "default: x\nholidays: [2026-13-01]\nrules: []\n".to_string(),
            "2:12: `2026-13-01`: the month is 13; it is 01 to 12",
        ),
        (
            "a day out of range",
            "default: x\nholidays: [2027-02-29]\nrules: []\n".to_string(),
            "2:12: `2027-02-29`: the day is 29; 2027-02 has days 01 to 28",
        ),
        (
            "a literal route not among routes:",
            "default: x\nroutes: [x, finance]\nrules:\n  - name: R\n    route: finanse\n".to_string(),
            "5:12: rule `R`: route `finanse` is not in `routes:` (x, finance); did you mean `finance`?",
        ),
        (
            "the default not among routes:",
            "default: receptie\nroutes: [finance]\nrules: []\n".to_string(),
            "1:10: `default` is `receptie`, which is not in `routes:` (finance)",
        ),
        (
            "two rules of one name",
            "default: x\nrules:\n  - name: R\n    route: a\n  - name: R\n    route: b\n".to_string(),
            "5:5: duplicate rule name `R` (first at line 3)",
        ),
        (
            "a loop that never ends",
            "default: x\nrules:\n  - name: R\n    script: 'loop { let a = 1; }'\n".to_string(),
            "4:14: rule `R`: this `loop` has no `break`, `return` or `throw`",
        ),
        (
            "a check relax: does not know",
            "default: x\nrelax: [fact]\nrules: []\n".to_string(),
            "2:9: `relax`: `fact` is no check; did you mean `facts`?",
        ),
        (
            "a country belroute has no calendar for",
            "default: x\ncalendar: be\nrules: []\n".to_string(),
            "2:11: `calendar`: belroute computes the public holidays of nl, not `be`",
        ),
        (
            "a public holiday misspelt in except:",
            "default: x\ncalendar:\n  country: nl\n  except: [Goede Vrijdg]\nrules: []\n".to_string(),
            "4:12: `calendar.except`: `Goede Vrijdg` is not a public holiday; did you mean `Goede Vrijdag`?",
        ),
        (
            "a company calendar belroute.yaml does not have",
            "default: x\ncalendar:\n  include: [kantoor]\nrules: []\n".to_string(),
            "3:13: `calendar.include`: no calendar `kantoor` in belroute.yaml `calendars:`; (none are configured)",
        ),
        (
            "a fact a test gives that the lookup does not declare",
            "default: x\nlookups: [invoices]\nrules: []\ntests:\n  - name: T\n    lookups: { invoices: { open_cnt: 1 } }\n    expect: x\n".to_string(),
            "6:28: test `T`: unknown field `invoices.open_cnt`; did you mean `open_count`?",
        ),
    ];
    for (what, text, expected) in table {
        let problems = match load(&text) {
            Ok(_) => panic!("{what}: loaded, expected {expected}"),
            Err(problems) => problems,
        };
        let shown: Vec<String> = problems.iter().map(shown).collect();
        assert!(
            shown.iter().any(|p| p.starts_with(expected)),
            "{what}:\n  got      {shown:#?}\n  expected {expected}…"
        );
    }
}

#[test]
fn what_loads_with_a_warning() {
    let table: Vec<(&str, String, &str)> = vec![
        (
            "a rule after one that always matches",
            "default: x\nrules:\n  - name: Always\n    route: a\n  - name: Never\n    route: b\n"
                .to_string(),
            "5:5: warning: rule `Never` is never reached: rule `Always` (line 3) always matches before it",
        ),
        (
            "a rule after `when: true`",
            "default: x\nrules:\n  - name: Always\n    when: 'true'\n    route: a\n  - name: Never\n    route: b\n"
                .to_string(),
            "6:5: warning: rule `Never` is never reached",
        ),
        (
            "holidays all in the past",
            "default: x\nholidays: [2020-12-25, 2021-01-01]\nrules: []\n".to_string(),
            "2:11: warning: every holiday listed is in the past (the last is 2021-01-01)",
        ),
        (
            "a relaxed check",
            "default: x\nrelax: [fields]\nrules:\n  - name: R\n    when: caller.knd == \"x\"\n    route: y\n"
                .to_string(),
            "5:18: warning (check `fields` relaxed): rule `R`: unknown field `caller.knd`",
        ),
        (
            "the note a relaxed check adds",
            "default: x\nrelax: [types]\nrules: []\n".to_string(),
            "2:1: note: check `types` is relaxed in this rule set",
        ),
        (
            "a rule that runs in a worker",
            "default: x\nrules:\n  - name: R\n    script: 'let n = 0; for i in 0..3 { n += i } ()'\n"
                .to_string(),
            "4:25: warning: rule `R` runs in a worker process because it uses a `for` loop",
        ),
    ];
    for (what, text, expected) in table {
        let set = load(&text).unwrap_or_else(|p| panic!("{what}: refused: {p:#?}"));
        let shown: Vec<String> = set.warnings.iter().map(shown).collect();
        assert!(
            shown.iter().any(|w| w.starts_with(expected)),
            "{what}:\n  got      {shown:#?}\n  expected {expected}…"
        );
    }
}

#[test]
fn what_passes_without_a_word() {
    for (what, text) in [
        (
            "every field, fact and declared route",
            "default: x\nroutes: [x, finance, \"agent_*\"]\ncall_fields: [campaign]\nlookups: [invoices]\nrules:\n  - name: A\n    when: 'caller.kind == \"mobile\" && !caller.anonymous && caller.country_code == 31'\n    route: finance\n  - name: B\n    when: 'call.campaign == \"winter\" && now().hour >= 17 && invoices.open_count > 0'\n    script: '`agent_${invoices.customer}`'\n  - name: C\n    when: 'invoices?.customer ?? \"\" != \"\" && caller.e164 in [\"+31201234567\"]'\n    route: x\n",
        ),
        (
            "comparisons with () and across int and float",
            "default: x\nlookups: [invoices]\nrules:\n  - name: A\n    when: 'invoices.customer != () && invoices.open_count > 1.5'\n    route: x\n",
        ),
    ] {
        let set = load(text).unwrap_or_else(|p| panic!("{what}: refused: {p:#?}"));
        assert!(set.warnings.is_empty(), "{what}: {:#?}", set.warnings);
    }
}

#[test]
fn a_test_file_is_held_to_the_declared_facts_too() {
    let set = load("default: x\nlookups: [invoices]\nrules: []\ntests:\n  - name: ok\n    lookups: { invoices: { open_count: 1 } }\n    expect: x\n").unwrap();
    let tests = load_test_file(
        Path::new("main.test.yaml"),
        "- name: typo\n  lookups:\n    invoices: { customr: acme }\n  expect: x\n",
    )
    .unwrap();
    let (problems, warnings) = set.check_tests(&tests);
    assert!(warnings.is_empty());
    assert_eq!(
        problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "main.test.yaml:3:17: test `typo`: unknown field `invoices.customr`; did you mean `customer`?; add it to `facts:` of plugins.invoices in belroute.yaml if the plugin answers it"
        ]
    );
    let _ = Arc::new(set);
}

#[test]
fn a_calendar_closes_every_years_public_holidays_less_the_days_worked() {
    use chrono::NaiveDate;
    let set = load("default: x\ncalendar:\n  country: nl\n  except: [Goede Vrijdag]\nholidays: [2031-03-03]\nrules: []\n").unwrap();
    let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
    // Koningsdag on a Sunday moves to the Saturday before (26 April 2031 is a Saturday).
    assert_eq!(set.holidays.name(day(2031, 4, 26)), Some("Koningsdag"));
    assert_eq!(set.holidays.name(day(2031, 4, 27)), None);
    // Easter Monday 2031 is 14 April; Good Friday (11 April) is worked here.
    assert_eq!(set.holidays.name(day(2031, 4, 14)), Some("Tweede Paasdag"));
    assert_eq!(set.holidays.name(day(2031, 4, 11)), None);
    assert!(set.holidays.name(day(2031, 3, 3)).is_some());
    // No "all in the past" warning when a calendar supplies the years ahead.
    let quiet = load("default: x\ncalendar: nl\nholidays: [2020-12-25]\nrules: []\n").unwrap();
    assert!(quiet.warnings.is_empty(), "{:#?}", quiet.warnings);
}
