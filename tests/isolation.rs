//! One rule set's slow rules cost its own calls only: other rule sets and the health endpoints
//! answer as usual, and the slow rule set's calls still answer by their deadline — over their
//! share of the evaluation pool, at once, with the default.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestServer;

/// Twenty rules that each burn their whole operation budget on string work: about a second of
/// CPU per call in a debug build, inside every sandbox limit.
fn heavy_rules() -> String {
    let mut rules = String::from("timeout: 2s\ndefault: heavy_default\nrules:\n");
    for i in 0..20 {
        rules.push_str(&format!(
            "  - name: Burn {i}\n    script: 'let s = \"\"; while s.len() >= 0 {{ s += \"xxxxxxxxxxxxxxxxxxxx\"; s.replace(\"x\", \"y\"); if s.len() > 1000 {{ s = \"\"; }} }}'\n"
        ));
    }
    rules
}

const LIGHT: &str = "timeout: 2s\ndefault: light_default\nrules:\n  - name: Always\n    when: 'caller.valid'\n    route: light\n";

async fn call(server: &TestServer, ruleset: &str) -> (String, String, Duration) {
    let started = Instant::now();
    let response = server
        .post_json(
            &format!("/hooks/{ruleset}"),
            r#"{"caller_number":"31152026057"}"#,
        )
        .await;
    assert_eq!(response.status(), 200);
    let reason = response.headers()["x-belroute-reason"]
        .to_str()
        .unwrap()
        .to_string();
    (reason, response.text().await.unwrap(), started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_rule_set_does_not_delay_another() {
    let server = Arc::new(
        TestServer::with_config(
            &[("heavy.yaml", &heavy_rules()), ("light.yaml", LIGHT)],
            "sandbox: { workers: 2, share: 1 }\n",
        )
        .await,
    );
    // Four heavy calls at once, and light calls all the while.
    let heavy: Vec<_> = (0..4)
        .map(|_| {
            let server = server.clone();
            tokio::spawn(async move { call(&server, "heavy").await })
        })
        .collect();
    let mut light = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        light.push(call(&server, "light").await);
        assert_eq!(server.get("/healthz").await.status(), 200);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut reasons = Vec::new();
    for h in heavy {
        let (reason, route, took) = h.await.unwrap();
        // Every heavy call is answered before Callvoip gives up, with the default.
        assert_eq!(route, "heavy_default");
        assert!(took < Duration::from_secs(2), "heavy call took {took:?}");
        reasons.push(reason);
    }
    // One heavy call at a time may use the pool; the others answer at once.
    assert!(
        reasons.iter().any(|r| r == "over_share"),
        "over share answered at once: {reasons:?}"
    );
    assert!(
        light.len() >= 10,
        "light calls kept coming: {}",
        light.len()
    );
    for (reason, route, took) in &light {
        assert_eq!((reason.as_str(), route.as_str()), ("matched", "light"));
        assert!(
            *took < Duration::from_millis(1750),
            "light call took {took:?}"
        );
    }
    let slowest = light.iter().map(|l| l.2).max().unwrap();
    eprintln!(
        "{} light calls, slowest {slowest:?}; heavy reasons {reasons:?}",
        light.len()
    );
    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("belroute_decisions_total{ruleset=\"heavy\",reason=\"over_share\"}"),
        "{metrics}"
    );
    Arc::try_unwrap(server)
        .unwrap_or_else(|_| panic!("server still shared"))
        .stop()
        .await;
}

#[tokio::test]
async fn sleep_is_not_a_function_rules_can_call() {
    let rules = "default: x\nrules:\n  - name: Nap\n    script: 'sleep(8); \"late\"'\n";
    let server = TestServer::start(&[("nap.yaml", rules)]).await;
    let ready = server.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let body = ready.text().await.unwrap();
    assert!(body.contains("unknown function `sleep`"), "{body}");
    let response = server.post_json("/hooks/nap", "{}").await;
    assert_eq!(response.status(), 503, "never loaded, so never served");
    server.stop().await;
}
