//! What deciding costs, against what it could cost: a decision for rule sets of 1, 20 and 200
//! rules (mixed `when`/`script`, office hours, caller fields, facts present), the same 20
//! decisions written as plain Rust closures, and caller normalisation alone — side by side in
//! one run. `cargo bench -p belroute-engine`; figures in docs/performance.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use belroute_engine::{
    Call, Caller, DEFAULT_TIME_ZONE, Limits, LoadContext, LookupResult, Lookups, Normaliser,
    OfficeHours, PoolSettings, Router, RuleSet, ScriptEngine,
};
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

/// Nineteen rules that do not match this call, then one that does: every rule is evaluated.
const TWENTY: [(&str, &str); 20] = [
    ("when", "caller.anonymous"),
    ("when", "caller.valid && caller.country != \"NL\""),
    (
        "when",
        "!open_hours(\"mon-fri 08:30-17:30; sat 10:00-14:00\")",
    ),
    ("when", "is_holiday()"),
    ("when", "invoices.open_count > 5"),
    ("script", "if tickets.open > 3 { `agent_${tickets.agent}` }"),
    ("when", "call.dp_in_number == \"0851234567\""),
    ("when", "caller.kind == \"premium_rate\""),
    ("when", "now().hour < 7"),
    ("script", "if call.campaign == \"winter\" { \"winter\" }"),
    ("when", "caller.national.starts_with(\"088\")"),
    ("when", "invoices.open_amount > 10000"),
    (
        "when",
        "tickets.priority == \"urgent\" && now().weekday == \"sun\"",
    ),
    ("script", "let d = call.dp_id; if d.len() > 40 { \"long\" }"),
    ("when", "caller.is_sip_account"),
    ("when", "open_hours(\"sat-sun 00:00-24:00\")"),
    (
        "when",
        "caller.e164 in [\"+31201234567\", \"+31301234567\"]",
    ),
    ("when", "invoices.customer == \"blocked\""),
    ("when", "call.phonebook_caller_name.contains(\"Test\")"),
    ("script", "if invoices.open_count > 0 { \"finance\" }"),
];

fn rules_yaml(count: usize) -> String {
    let mut text = String::from(
        "timeout: 2s\ndefault: receptie\nlookups: [invoices, tickets]\ncall_fields: [campaign]\nholidays: [2026-12-25]\nrules:\n",
    );
    if count == 1 {
        text.push_str(
            "  - name: Office hours\n    when: 'open_hours(\"mon-fri 08:30-17:30\")'\n    route: open\n",
        );
        return text;
    }
    for i in 0..count {
        let (key, expr) = TWENTY[i % 20];
        // Only the very last rule is the matching one.
        let expr = if i % 20 == 19 && i != count - 1 {
            "if invoices.open_count > 99 { \"never\" }"
        } else {
            expr
        };
        text.push_str(&format!("  - name: Rule {i}\n    {key}: '{expr}'\n"));
        if key == "when" {
            text.push_str("    route: somewhere\n");
        }
    }
    text
}

fn facts() -> BTreeMap<String, LookupResult> {
    let found = |v: Value| LookupResult::Found {
        facts: Arc::new(v.as_object().cloned().unwrap()),
    };
    BTreeMap::from([
        (
            "invoices".to_string(),
            found(json!({"open_count": 2, "open_amount": 1250.5, "customer": "Bakkerij Jansen"})),
        ),
        (
            "tickets".to_string(),
            found(json!({"open": 1, "agent": "1003", "priority": "normal"})),
        ),
    ])
}

fn call() -> Call {
    let body = include_bytes!("../../tests/fixtures/callvoip/post-example.json");
    Call::from_body(body).unwrap()
}

/// Monday 23 November 2026, 10:00 in Amsterdam: open, not a holiday.
fn monday_ten() -> DateTime<Utc> {
    DEFAULT_TIME_ZONE
        .with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
        .unwrap()
        .with_timezone(&Utc)
}

fn router() -> Router {
    let mut lookups = Lookups::default();
    for name in ["invoices", "tickets"] {
        // Facts are given in the benchmark; the plugins are never asked.
        lookups.insert(name, Arc::new(Never), Default::default());
    }
    Router::with_pool(
        Arc::new(ScriptEngine::new(&Limits::default())),
        Normaliser::default(),
        lookups,
        PoolSettings::default(),
    )
}

struct Never;

#[async_trait::async_trait]
impl belroute_engine::Lookup for Never {
    async fn lookup(
        &self,
        _: &belroute_engine::LookupRequest,
    ) -> Result<Option<belroute_engine::Facts>, belroute_engine::LookupError> {
        Ok(None)
    }
}

fn load(router: &Router, count: usize) -> Arc<RuleSet> {
    use belroute_engine::vocabulary::FactType::{Any, Float, Int, Text};
    let declare = |facts: &[(&str, belroute_engine::vocabulary::FactType)]| {
        Some(facts.iter().map(|(n, t)| (n.to_string(), *t)).collect())
    };
    let lookups: belroute_engine::LookupFacts = [
        (
            "invoices".to_string(),
            declare(&[
                ("open_count", Int),
                ("open_amount", Float),
                ("customer", Text),
            ]),
        ),
        (
            "tickets".to_string(),
            declare(&[("open", Any), ("agent", Text), ("priority", Text)]),
        ),
    ]
    .into_iter()
    .collect();
    let ctx = LoadContext {
        scripts: router.scripts(),
        lookups: &lookups,
        calendars: &belroute_engine::calendar::NO_CALENDARS,
        time_zone: DEFAULT_TIME_ZONE,
    };
    Arc::new(RuleSet::load("bench", Path::new("bench.yaml"), &rules_yaml(count), &ctx).unwrap())
}

fn decisions(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let router = router();
    let facts = facts();
    let call = call();
    let now = monday_ten();
    let mut group = c.benchmark_group("decision");
    for count in [1, 20, 200] {
        let set = load(&router, count);
        let expected = if count == 1 { "open" } else { "finance" };
        let decided = runtime.block_on(router.route_with_facts(
            &set,
            call.clone(),
            &facts,
            belroute_engine::Deadline::new(tokio::time::Instant::now(), Duration::from_secs(2)),
            now,
        ));
        assert_eq!(decided.route, expected, "{count} rules: {decided:?}");
        group.bench_function(format!("{count} rules"), |b| {
            b.iter(|| {
                runtime.block_on(router.route_with_facts(
                    black_box(&set),
                    call.clone(),
                    &facts,
                    belroute_engine::Deadline::new(
                        tokio::time::Instant::now(),
                        Duration::from_secs(2),
                    ),
                    now,
                ))
            })
        });
    }
    // The same twenty decisions as plain Rust: what deciding costs without a rules engine.
    let closures = twenty_closures();
    let caller = Normaliser::default().parse(call.caller_number());
    let context = Context {
        caller: &caller,
        call: &call,
        facts: &facts,
        now: now.with_timezone(&DEFAULT_TIME_ZONE),
    };
    assert_eq!(decide_with(&closures, &context), "finance");
    group.bench_function("20 rules as Rust closures", |b| {
        b.iter(|| decide_with(&closures, black_box(&context)))
    });
    group.finish();
}

struct Context<'a> {
    caller: &'a Caller,
    call: &'a Call,
    facts: &'a BTreeMap<String, LookupResult>,
    now: DateTime<Tz>,
}

impl Context<'_> {
    fn fact(&self, lookup: &str, key: &str) -> Option<&Value> {
        match self.facts.get(lookup)? {
            LookupResult::Found { facts } => facts.get(key),
            _ => None,
        }
    }
}

type Closure = Box<dyn Fn(&Context<'_>) -> Option<String>>;

fn twenty_closures() -> Vec<Closure> {
    use chrono::{Datelike, Timelike};
    let open = OfficeHours::parse("mon-fri 08:30-17:30; sat 10:00-14:00").unwrap();
    let weekend = OfficeHours::parse("sat-sun 00:00-24:00").unwrap();
    let holiday = chrono::NaiveDate::from_ymd_opt(2026, 12, 25).unwrap();
    let some = |route: &str| Some(route.to_string());
    vec![
        Box::new(move |c| c.caller.anonymous.then(|| some("x")).flatten()),
        Box::new(move |c| {
            (c.caller.valid && c.caller.country != "NL")
                .then(|| some("x"))
                .flatten()
        }),
        Box::new(move |c| (!open.contains(&c.now)).then(|| some("x")).flatten()),
        Box::new(move |c| (c.now.date_naive() == holiday).then(|| some("x")).flatten()),
        Box::new(|c| {
            (c.fact("invoices", "open_count").and_then(Value::as_i64) > Some(5)).then(|| "x".into())
        }),
        Box::new(|c| {
            (c.fact("tickets", "open").and_then(Value::as_i64) > Some(3)).then(|| {
                format!(
                    "agent_{}",
                    c.fact("tickets", "agent").unwrap_or(&Value::Null)
                )
            })
        }),
        Box::new(|c| (c.call.get("dp_in_number") == "0851234567").then(|| "x".into())),
        Box::new(|c| (c.caller.kind == "premium_rate").then(|| "x".into())),
        Box::new(|c| (c.now.hour() < 7).then(|| "x".into())),
        Box::new(|c| (c.call.get("campaign") == "winter").then(|| "winter".into())),
        Box::new(|c| c.caller.national.starts_with("088").then(|| "x".into())),
        Box::new(|c| {
            (c.fact("invoices", "open_amount").and_then(Value::as_f64) > Some(10000.0))
                .then(|| "x".into())
        }),
        Box::new(|c| {
            (c.fact("tickets", "priority").and_then(Value::as_str) == Some("urgent")
                && c.now.weekday() == chrono::Weekday::Sun)
                .then(|| "x".into())
        }),
        Box::new(|c| (c.call.get("dp_id").len() > 40).then(|| "long".into())),
        Box::new(|c| c.caller.is_sip_account.then(|| "x".into())),
        Box::new(move |c| weekend.contains(&c.now).then(|| "x".into())),
        Box::new(|c| {
            ["+31201234567", "+31301234567"]
                .contains(&c.caller.e164.as_str())
                .then(|| "x".into())
        }),
        Box::new(|c| {
            (c.fact("invoices", "customer").and_then(Value::as_str) == Some("blocked"))
                .then(|| "x".into())
        }),
        Box::new(|c| {
            c.call
                .get("phonebook_caller_name")
                .contains("Test")
                .then(|| "x".into())
        }),
        Box::new(|c| {
            (c.fact("invoices", "open_count").and_then(Value::as_i64) > Some(0))
                .then(|| "finance".into())
        }),
    ]
}

fn decide_with(closures: &[Closure], context: &Context<'_>) -> String {
    closures
        .iter()
        .find_map(|rule| rule(context))
        .unwrap_or_else(|| "receptie".into())
}

fn normalisation(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalisation");
    let cached = Normaliser::default();
    for (what, raw) in [
        ("national", "015-2026057"),
        ("Callvoip 31…", "31152026057"),
        ("+ international", "+31 (0)15 202 6057"),
        ("00 international", "0031152026057"),
        ("Callvoip 31… mobile", "31612345678"),
        ("abroad, Callvoip 44…", "442079460958"),
        ("withheld", "anonymous"),
        ("SIP extension", "1003"),
    ] {
        let parser = Normaliser::default();
        group.bench_function(format!("{what}, parsed"), |b| {
            b.iter(|| parser.parse(black_box(raw)))
        });
        // What the fast path for Dutch numbers saves: phonenumber's parse alone.
        group.bench_function(format!("{what}, by the numbering plan"), |b| {
            b.iter(|| parser.parse_by_numbering_plan(black_box(raw)))
        });
        cached.normalise(raw);
        group.bench_function(format!("{what}, remembered"), |b| {
            b.iter(|| cached.normalise(black_box(raw)))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = decisions, normalisation
}
criterion_main!(benches);
