//! Hostile input, as a tester without credentials (or a careless rule author) would send it:
//! nothing may forge or flood a log, misroute a caller, or get past authentication.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::time::Duration;

use common::binary::Served;
use common::{TestServer, answering};

fn client() -> reqwest::Client {
    belroute_plugins::install_crypto_provider();
    reqwest::Client::new()
}

/// The real binary, logging text to stderr as operators run it.
fn served(rules: &[(&str, &str)], config: &str) -> (tempfile::TempDir, Served) {
    served_with_env(rules, config, &[])
}

fn served_with_env(
    rules: &[(&str, &str)],
    config: &str,
    env: &[(&str, &str)],
) -> (tempfile::TempDir, Served) {
    let dir = tempfile::tempdir().unwrap();
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir(&rules_dir).unwrap();
    for (name, text) in rules {
        std::fs::write(rules_dir.join(name), text).unwrap();
    }
    let config_file = dir.path().join("belroute.yaml");
    std::fs::write(&config_file, config).unwrap();
    let database = format!("sqlite://{}", dir.path().join("belroute.db").display());
    let served = Served::start(
        &[
            "--rules",
            rules_dir.to_str().unwrap(),
            "--config",
            config_file.to_str().unwrap(),
            "--database",
            &database,
        ],
        env,
    );
    (dir, served)
}

#[tokio::test]
async fn a_name_in_the_url_cannot_forge_a_log_line_or_move_the_terminal() {
    let (_dir, served) = served(
        &[("main.yaml", &answering("ok"))],
        "hooks:\n  auth:\n    header: { name: identifier, value: s3cret }\n",
    );
    let client = client();
    // Without credentials: the 401 line names the rule set from the URL.
    let url = format!(
        "http://{}/hooks/main%0AINFO%20belroute%3A%20forged%20line%1B%5B2J",
        served.addr
    );
    let response = client.post(&url).body("{}").send().await.unwrap();
    assert_eq!(response.status(), 401);
    // A call whose fields carry line breaks and escapes, with credentials.
    let response = client
        .post(format!("http://{}/hooks/main", served.addr))
        .header("identifier", "s3cret")
        .body(r#"{"uuid": "x\nINFO forged\u001b[31m"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = served.stop();
    assert!(
        !log.lines()
            .any(|l| l.starts_with("INFO belroute: forged")
                || l.trim_start().starts_with("INFO forged")),
        "a forged line:\n{log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "a raw escape reached the log:\n{log}"
    );
    assert!(
        log.contains("main\\nINFO belroute: forged line\\u{1b}[2J"),
        "the name is logged escaped:\n{log}"
    );
    assert!(log.contains(r#"uuid=x\nINFO forged\u{1b}[31m"#), "{log}");
}

#[tokio::test]
async fn print_in_a_rule_cannot_flood_the_log() {
    let rules = "default: x\nrules:\n  - name: Chatty\n    script: 'for i in 0..5000 { print(`line ${i} yyyyyyyyyy`) } ()'\n  - name: Then\n    route: done\n";
    let (_dir, served) = served(&[("chatty.yaml", rules)], "");
    let client = client();
    for _ in 0..3 {
        let response = client
            .post(format!("http://{}/hooks/chatty", served.addr))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.text().await.unwrap(), "done");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = served.stop();
    let printed = log.lines().filter(|l| l.contains("print: line")).count();
    // 15,000 prints in under a second or two: at most 20 lines a second get through.
    assert!(printed <= 60, "{printed} print lines reached the log");
    assert!(printed >= 1, "print works:\n{log}");
}

#[tokio::test]
async fn routes_with_invisible_characters_are_refused() {
    for route in ["a\u{2028}b", "a\u{200b}", "\u{202e}lanif"] {
        let rules = format!(
            "default: safe\nrules:\n  - name: Sneaky\n    script: '{}'\n",
            format_args!("\"{}\"", route)
        );
        let server = TestServer::start(&[("s.yaml", &rules)]).await;
        let response = server.post_json("/hooks/s", "{}").await;
        assert_eq!(response.text().await.unwrap(), "safe", "{route:?}");
        server.stop().await;
    }
    // Written literally, the file is refused at load.
    let server = TestServer::start(&[(
        "lit.yaml",
        "default: safe\nrules:\n  - name: Sneaky\n    route: \"a\\u2028b\"\n",
    )])
    .await;
    let ready = server.get("/readyz").await.text().await.unwrap();
    assert!(ready.contains("invisible character"), "{ready}");
    server.stop().await;
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let server = TestServer::with_config(
        &[("main.yaml", &answering("x"))],
        "admin:\n  token: t0ken\n",
    )
    .await;
    for header in ["Bearer t0ken", "bearer t0ken", "BEARER t0ken"] {
        let response = server
            .client
            .get(server.url("/api/v1/rulesets"))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{header}");
    }
    for header in ["Bearer t0ke", "Basic t0ken", "Bearert0ken", ""] {
        let response = server
            .client
            .get(server.url("/api/v1/rulesets"))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{header:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn unreadable_forwarded_for_entries_fail_closed() {
    let config = "hooks:\n  auth:\n    allow_ips: [\"185.103.76.0/22\"]\n    trusted_proxies: [\"127.0.0.1/32\"]\n";
    let server = TestServer::with_config(&[("main.yaml", &answering("in"))], config).await;
    let send = |xff: &'static str| {
        server
            .client
            .post(server.url("/hooks/main"))
            .header("x-forwarded-for", xff)
            .body("{}")
            .send()
    };
    // The client forges an allowed first entry; the proxy's own entry cannot be read.
    for xff in [
        "185.103.76.10, unknown",
        "185.103.76.10, 203.0.113.9:51234",
        "185.103.76.10, [2001:db8::9]",
        "185.103.76.10, _hidden",
    ] {
        assert_eq!(send(xff).await.unwrap().status(), 403, "{xff}");
    }
    // Ports and brackets on a real client address are read correctly.
    assert_eq!(send("185.103.76.10:5060").await.unwrap().status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn a_secret_in_a_subscription_endpoint_is_never_shown() {
    let secret = "s3cr3t-in-the-url";
    let (_dir, served) = served_with_env(
        &[("main.yaml", &answering("x"))],
        "admin:\n  token: t0ken\n\
         subscriptions:\n  crm:\n    endpoint: \"http://127.0.0.1:9/notify?key=${BELROUTE_TEST_NOTIFY_KEY}\"\n\
         \x20   api_key: k3y\n    retry_initial: 10ms\n    retry_max: 20ms\n",
        &[("BELROUTE_TEST_NOTIFY_KEY", secret)],
    );
    let base = format!("http://{}", served.addr);
    let client = client();
    let answer = client
        .post(format!("{base}/hooks/main"))
        .json(&serde_json::json!({"uuid": "u-1", "caller": "0612345678"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    // The notifier fails against a closed port and says so: in the log and in `last_error`.
    let mut listing = String::new();
    for _ in 0..100 {
        listing = client
            .get(format!("{base}/api/v1/subscriptions"))
            .bearer_auth("t0ken")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if listing.contains("\"last_error\":\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(listing.contains("\"last_error\":\""), "{listing}");
    assert!(
        listing.contains("key=${BELROUTE_TEST_NOTIFY_KEY}"),
        "the endpoint is shown as written: {listing}"
    );
    assert!(!listing.contains(secret), "{listing}");
    let log = served.stop();
    assert!(log.contains("notification"), "{log}");
    assert!(!log.contains(secret), "{log}");
}

#[tokio::test]
async fn agent_names_with_invisible_characters_are_refused() {
    let server = TestServer::with_config(
        &[("main.yaml", &answering("x"))],
        "admin:\n  token: t0ken\n",
    )
    .await;
    for agent in ["10\u{200b}03", "10\u{2028}03", "\u{202e}3001", "10\n03"] {
        let response = server
            .client
            .post(server.url("/api/v1/calls/u-1/agent"))
            .bearer_auth("t0ken")
            .json(&serde_json::json!({ "agent": agent }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{agent:?}");
    }
    server.stop().await;
}

/// The admin token is checked before the body is read: a client without it cannot make the
/// server wait for (or buffer) a body.
#[tokio::test]
async fn the_api_refuses_before_reading_a_body() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::with_config(
        &[("main.yaml", &answering("x"))],
        "admin:\n  token: t0ken\nsubscriptions:\n  crm:\n    api_key: k3y\n",
    )
    .await;
    let addr = server.base.trim_start_matches("http://").to_string();
    for (path, token) in [
        ("/api/v1/plugins/x/invalidate", "wrong"),
        ("/api/v1/calls/u-1/agent", ""),
        ("/api/v1/subscriptions/crm/events/1", "t0ken"), // the admin token is not the API key
        ("/api/v1/subscriptions/nobody/events/1", "k3y"),
    ] {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
             content-type: application/json\r\ncontent-length: 1000000\r\n\r\n{{\"agent\":"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = vec![0u8; 512];
        let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("{path}: no answer without the body"))
            .unwrap();
        let answer = String::from_utf8_lossy(&answer[..read]).to_string();
        assert!(answer.starts_with("HTTP/1.1 401"), "{path}: {answer}");
    }
    server.stop().await;
}
