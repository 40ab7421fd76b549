//! The worked example plugin against a fake CRM on loopback, and through the engine: a rule set
//! that sends callers with open invoices to Finance.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use belroute_engine::LoadContext;
use belroute_engine::{
    Call, Deadline, Lookup, LookupError, LookupRequest, LookupSettings, Lookups, Normaliser,
    Router, RuleSet, ScriptEngine,
};
use belroute_plugins::{PluginConfig, parse_instance_text};
use serde_json::json;

/// The fake CRM: one customer, +31 15 202 6057, with two open invoices; `/broken` answers
/// garbage.
async fn customers(req: HttpRequest) -> HttpResponse {
    if req.headers().get("x-api-key").and_then(|v| v.to_str().ok()) != Some("test-key") {
        return HttpResponse::Unauthorized().finish();
    }
    let phone: Vec<(String, String)> = serde_urlencoded_pairs(req.query_string());
    match phone
        .iter()
        .find(|(k, _)| k == "phone")
        .map(|(_, v)| v.as_str())
    {
        Some("+31152026057") => HttpResponse::Ok()
            .json(json!({ "customers": [{ "id": 42, "name": "Bakkerij Jansen" }] })),
        _ => HttpResponse::Ok().json(json!({ "customers": [] })),
    }
}

fn serde_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

async fn summary(path: web::Path<u32>) -> HttpResponse {
    match path.into_inner() {
        42 => HttpResponse::Ok().json(json!({ "open_invoices": 2, "open_amount": 171.5, "account_manager": { "extension": "1007" } })),
        _ => HttpResponse::NotFound().finish(),
    }
}

async fn garbage() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body("{\"customers\": [")
}

/// Starts the fake CRM; returns its base URL.
async fn fake_crm() -> String {
    let server = HttpServer::new(|| {
        App::new()
            .route("/api/customers", web::get().to(customers))
            .route("/api/customers/{id}/summary", web::get().to(summary))
            .route("/broken/customers", web::get().to(garbage))
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")
    .unwrap();
    let base = format!("http://{}", server.addrs()[0]);
    tokio::spawn(server.run());
    base
}

fn plugin(base_url: &str, key: &str) -> Arc<dyn Lookup> {
    let yaml = format!("kind: example_crm\nbase_url: \"{base_url}\"\napi_key: {key}\n");
    let instance = parse_instance_text("crm", &yaml).unwrap();
    let PluginConfig::ExampleCrm(config) = instance.config else {
        panic!("not an example_crm: {:?}", instance.config);
    };
    Arc::new(config.build(Duration::from_secs(1)).unwrap())
}

fn request(number: &str) -> LookupRequest {
    let call = Call::from_pairs([("caller_number", number)]);
    LookupRequest {
        caller: Normaliser::default().normalise(number),
        call: Arc::new(call),
    }
}

#[tokio::test]
async fn a_known_caller_gets_the_customer_facts() {
    let base = fake_crm().await;
    let facts = plugin(&format!("{base}/api"), "test-key")
        .lookup(&request("015-2026057"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::Value::Object(facts),
        json!({
            "customer_id": 42, "name": "Bakkerij Jansen", "open_invoices": 2, "open_amount": 171.5, "account_manager": "1007"
        })
    );
}

#[tokio::test]
async fn unknown_and_withheld_callers_are_not_found() {
    let base = fake_crm().await;
    let crm = plugin(&format!("{base}/api"), "test-key");
    assert_eq!(crm.lookup(&request("31612345678")).await.unwrap(), None);
    assert_eq!(crm.lookup(&request("anonymous")).await.unwrap(), None);
}

#[tokio::test]
async fn failures_have_the_kind_the_engine_acts_on() {
    let base = fake_crm().await;
    let wrong_key = plugin(&format!("{base}/api"), "nope")
        .lookup(&request("31152026057"))
        .await
        .unwrap_err();
    assert!(
        matches!(wrong_key, LookupError::Misconfigured(_)),
        "{wrong_key:?}"
    );
    let garbage = plugin(&format!("{base}/broken"), "test-key")
        .lookup(&request("31152026057"))
        .await
        .unwrap_err();
    assert!(
        matches!(garbage, LookupError::BadResponse(_)),
        "{garbage:?}"
    );
    // Nothing listens on port 1.
    let down = plugin("http://127.0.0.1:1/api", "test-key")
        .lookup(&request("31152026057"))
        .await
        .unwrap_err();
    assert!(matches!(down, LookupError::Unavailable(_)), "{down:?}");
}

#[test]
fn settings_are_checked_at_start_up() {
    let problems = |text: &str| -> Vec<String> {
        parse_instance_text("crm", text)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(
        problems("kind: example_crm\nbase_url: ftp://crm\napi_key: k\n"),
        ["plugin.yaml:2:11: `plugins.crm.base_url` must be http:// or https://"]
    );
    assert_eq!(
        problems("kind: example_crm\nbase_url: http://crm\napi_key: k\ntoken: x\n"),
        [
            "plugin.yaml:4:1: unknown key `token` in `plugins.crm`; known keys: kind, timeout, cache, breaker, ask_without_number, base_url, api_key"
        ]
    );
    // Everything at once, each at its place: a missing key, a bad engine setting, a bad URL.
    assert_eq!(
        problems("kind: example_crm\nbase_url: crm.example.nl\ntimeout: 1h\n"),
        [
            "plugin.yaml:1:1: `plugins.crm` needs `api_key`; add `api_key: \"${CRM_API_KEY}\"` to it",
            "plugin.yaml:2:11: `plugins.crm.base_url` is not a URL: relative URL without a base",
            "plugin.yaml:3:10: `plugins.crm.timeout` is 1h; it must be between 1ms and 10s",
        ]
    );
}

/// Through the engine: the plugin registered as a lookup, a rule reading its facts.
#[tokio::test]
async fn a_rule_set_routes_callers_with_open_invoices_to_finance() {
    let base = fake_crm().await;
    let mut lookups = Lookups::default();
    lookups.insert(
        "crm",
        plugin(&format!("{base}/api"), "test-key"),
        LookupSettings::default(),
    );
    let router = Router::new(
        Arc::new(ScriptEngine::new(&Default::default())),
        Normaliser::default(),
        lookups,
    );
    let rules = "default: receptie\nlookups: [crm]\nrules:\n  - name: Open invoices\n    when: crm.open_invoices > 0\n    route: finance\n  - name: Unknown to the CRM\n    when: 'crm == #{}'\n    route: nieuw\n";
    let lookups = router.lookups().declared();
    let ctx = LoadContext {
        scripts: router.scripts(),
        lookups: &lookups,
        calendars: &belroute_engine::calendar::NO_CALENDARS,
        time_zone: belroute_engine::DEFAULT_TIME_ZONE,
    };
    let set = Arc::new(RuleSet::load("main", Path::new("main.yaml"), rules, &ctx).unwrap());
    let route = |number: &'static str| {
        let (router, set) = (&router, &set);
        async move {
            let deadline = Deadline::new(Instant::now(), Duration::from_millis(1750));
            let call = Arc::new(Call::from_pairs([("caller_number", number)]));
            router.route(set, call, deadline, chrono::Utc::now()).await
        }
    };
    let known = route("31152026057").await;
    assert_eq!(
        (known.route.as_str(), known.rule.as_deref()),
        ("finance", Some("Open invoices"))
    );
    assert_eq!(route("31612345678").await.route, "nieuw");
}
