//! The webhook contract as Callvoip sees it, over a real socket.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::time::{Duration, Instant};

use common::{CALLER_RULES, TestServer, fixture};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn post_of_the_manual_example_answers_the_bare_route() {
    let server = TestServer::start(&[("main.yaml", CALLER_RULES)]).await;
    let response = server
        .client
        .post(server.url("/hooks/main"))
        .header("content-type", "application/json")
        .body(fixture("post-example.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    assert!(
        response.headers().get("x-belroute-rule").is_none(),
        "the default matched no rule"
    );
    assert_eq!(response.headers()["x-belroute-reason"], "no_match");
    assert_eq!(
        response.text().await.unwrap(),
        "receptie",
        "no newline, no quotes"
    );

    let mobile = server
        .post_json(
            "/hooks/main",
            String::from_utf8(fixture("post-mobile-with-name.json")).unwrap(),
        )
        .await;
    assert_eq!(mobile.text().await.unwrap(), "receptie");
    server.stop().await;
}

#[tokio::test]
async fn get_carries_the_call_in_query_parameters() {
    let server = TestServer::start(&[("main.yaml", CALLER_RULES)]).await;
    let response = server
        .get("/hooks/main?caller_number=442079460958&uuid=abc")
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-belroute-rule"], "Abroad");
    assert_eq!(response.text().await.unwrap(), "international");
    assert_eq!(
        server
            .get("/hooks/main?caller_number=anonymous")
            .await
            .text()
            .await
            .unwrap(),
        "anoniem"
    );
    assert_eq!(
        server.get("/hooks/main").await.text().await.unwrap(),
        "anoniem",
        "no caller at all is withheld"
    );
    server.stop().await;
}

#[tokio::test]
async fn unknown_rule_set_is_404() {
    let server = TestServer::start(&[("main.yaml", CALLER_RULES)]).await;
    let response = server.post_json("/hooks/nope", "{}").await;
    assert_eq!(response.status(), 404);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("no rule set named `nope`")
    );
    server.stop().await;
}

/// A typo in the Webhook-app's URL gets the "did you mean" that `belroute test mian` gives.
#[tokio::test]
async fn a_misspelt_rule_set_is_404_with_did_you_mean() {
    let server =
        TestServer::start(&[("main.yaml", CALLER_RULES), ("support.yaml", CALLER_RULES)]).await;
    let response = server.post_json("/hooks/mian", "{}").await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.text().await.unwrap(),
        "no rule set named `mian` (no file mian.yaml in the rules directory); did you mean `main`?\n"
    );
    // Nothing close: no guess.
    let response = server.get("/hooks/billing").await;
    assert_eq!(response.status(), 404);
    assert!(!response.text().await.unwrap().contains("did you mean"));
    server.stop().await;
}

/// Callvoip sends the call data only with POST: a GET without any field is most likely a
/// Webhook-app set to GET. It is answered as always, counted, and logged once per rule set per
/// minute, not once per call.
#[tokio::test]
async fn a_get_without_fields_is_logged_once_per_rule_set_per_minute() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("main.yaml"), CALLER_RULES).unwrap();
    std::fs::write(rules.join("support.yaml"), CALLER_RULES).unwrap();
    let database = format!("sqlite://{}", dir.path().join("b.db").display());
    let served = common::binary::Served::start(
        &["--rules", rules.to_str().unwrap(), "--database", &database],
        &[],
    );
    belroute_plugins::install_crypto_provider();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let get = |path: &str| {
        let request = client.get(format!("http://{}{path}", served.addr));
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.text().await.unwrap()
        }
    };
    for _ in 0..3 {
        assert_eq!(get("/hooks/main").await, "anoniem");
    }
    assert_eq!(get("/hooks/support").await, "anoniem");
    assert_eq!(
        get("/hooks/main?caller_number=31152026057").await,
        "receptie"
    );
    let metrics = get("/metrics").await;
    assert!(
        metrics.contains("belroute_calls_without_fields_total{ruleset=\"main\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("belroute_calls_without_fields_total{ruleset=\"support\"} 1"),
        "{metrics}"
    );
    let log = served.stop();
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("call without any fields — is the Webhook-app set to GET?"))
        .collect();
    assert_eq!(said.len(), 2, "{log}");
    assert!(said.iter().any(|l| l.contains("ruleset=main")), "{log}");
    assert!(said.iter().any(|l| l.contains("ruleset=support")), "{log}");
}

/// Unreadable call data cannot be routed on, but Callvoip still needs an answer in time: the
/// rule set's default, with the reason counted (and logged), never a 4xx Callvoip would turn
/// into "no variable".
#[tokio::test]
async fn unreadable_call_data_answers_the_default_and_is_counted() {
    let server = TestServer::start(&[("main.yaml", CALLER_RULES)]).await;
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "manual's printed example",
            fixture("post-example-as-printed-in-docs.txt"),
            "application/json",
            "not_json",
        ),
        (
            "non-UTF-8",
            b"{\"caller_number\": \"\xff\xfe\"}".to_vec(),
            "application/json",
            "not_utf8",
        ),
        (
            "JSON array",
            b"[1,2]".to_vec(),
            "application/json",
            "not_an_object",
        ),
        (
            "plain text",
            b"hello there".to_vec(),
            "text/plain",
            "not_call_data",
        ),
        (
            "2 MiB body",
            vec![b' '; 2 * 1024 * 1024],
            "application/json",
            "too_large",
        ),
        (
            "a 2 KiB field",
            format!(r#"{{"caller_number": "{}"}}"#, "1".repeat(2048)).into_bytes(),
            "application/json",
            "field_too_long",
        ),
    ];
    for (what, body, content_type, _) in &cases {
        let started = Instant::now();
        let response = server
            .client
            .post(server.url("/hooks/main"))
            .header("content-type", *content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{what}");
        assert_eq!(
            response.headers()["x-belroute-reason"],
            "unreadable",
            "{what}"
        );
        assert_eq!(response.text().await.unwrap(), "receptie", "{what}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{what} took {:?}",
            started.elapsed()
        );
    }
    // The server is still fine afterwards.
    assert_eq!(server.route("main", "31152026057").await, "receptie");
    let metrics = server.get("/metrics").await.text().await.unwrap();
    for (_, _, _, label) in &cases {
        assert!(
            metrics.contains(&format!(
                "belroute_hook_rejections_total{{reason=\"{label}\"}} 1"
            )),
            "{label} counted:\n{metrics}"
        );
    }
    assert!(metrics.contains("belroute_decisions_total{ruleset=\"main\",reason=\"unreadable\"} 6"));
    server.stop().await;
}

/// Callvoip's manual does not say which content type it sends: the body is read by what it is.
#[tokio::test]
async fn the_body_is_read_by_what_it_is_whatever_its_content_type() {
    let server = TestServer::start(&[("main.yaml", CALLER_RULES)]).await;
    let json = r#"{"caller_number": "442079460958"}"#;
    let form = "caller_number=442079460958";
    for (body, content_type) in [
        (json, "application/x-www-form-urlencoded"),
        (json, "text/plain"),
        (json, "application/octet-stream"),
        (form, "application/json"),
        (form, "text/plain"),
    ] {
        let response = server
            .client
            .post(server.url("/hooks/main"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{body} as {content_type}");
        assert_eq!(
            response.text().await.unwrap(),
            "international",
            "{body} as {content_type}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_answers_the_default_without_reading_it_all() {
    let server = TestServer::start(&[("main.yaml", CALLER_RULES)]).await;
    let mut socket = tokio::net::TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = "POST /hooks/main HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    socket.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 16 * 1024];
    for _ in 0..8 {
        let header = format!("{:x}\r\n", chunk.len());
        if socket.write_all(header.as_bytes()).await.is_err()
            || socket.write_all(&chunk).await.is_err()
            || socket.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(2), socket.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("x-belroute-reason: unreadable"), "{answer}");
    assert!(answer.ends_with("receptie"), "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn fields_unknown_missing_and_numeric() {
    let rules = r#"
default: fallback
call_fields: [campaign]
rules:
  - name: Extra field
    when: call.campaign == "winter"
    route: campaign
  - name: Missing field is empty
    when: call.dp_id == "" && call.phonebook_caller_name == ""
    script: '`missing_${caller.e164}`'
"#;
    let server = TestServer::start(&[("r.yaml", rules)]).await;
    let extra = server
        .post_json(
            "/hooks/r",
            r#"{"caller_number":"31152026057","campaign":"winter"}"#,
        )
        .await;
    assert_eq!(extra.text().await.unwrap(), "campaign");
    let numeric = server
        .post_json("/hooks/r", r#"{"caller_number":31612345678}"#)
        .await;
    assert_eq!(numeric.text().await.unwrap(), "missing_+31612345678");
    let empty = server
        .client
        .post(server.url("/hooks/r"))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 200, "an empty POST is an empty call");
    assert_eq!(empty.text().await.unwrap(), "missing_");
    server.stop().await;
}

#[tokio::test]
async fn form_posts_and_query_parameters_merge_under_the_body() {
    let rules = "default: x\ncall_fields: [line]\nrules:\n  - name: Echo\n    script: '`${call.line}/${call.caller_number}`'\n";
    let server = TestServer::start(&[("r.yaml", rules)]).await;
    let form = server
        .client
        .post(server.url("/hooks/r?line=sales&caller_number=ignored"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("caller_number=31152026057")
        .send()
        .await
        .unwrap();
    assert_eq!(form.text().await.unwrap(), "sales/31152026057");
    server.stop().await;
}

#[tokio::test]
async fn other_methods_are_405() {
    let server = TestServer::start(&[("main.yaml", CALLER_RULES)]).await;
    let response = server
        .client
        .put(server.url("/hooks/main"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    server.stop().await;
}

/// The caller's normalised forms, as rules see them, through the whole server.
#[tokio::test]
async fn caller_numbers_are_normalised_for_rules() {
    let rules = "default: x\nrules:\n  - name: Echo\n    script: '`${caller.e164}|${caller.national}|${caller.country}|${caller.kind}|${caller.anonymous}|${caller.is_sip_account}`'\n";
    let server = TestServer::start(&[("n.yaml", rules)]).await;
    let table = [
        (
            "31152026057",
            "+31152026057|0152026057|NL|fixed|false|false",
        ),
        (
            "0031152026057",
            "+31152026057|0152026057|NL|fixed|false|false",
        ),
        (
            "+31 (0)15-2026057",
            "+31152026057|0152026057|NL|fixed|false|false",
        ),
        (
            "0612345678",
            "+31612345678|0612345678|NL|mobile|false|false",
        ),
        (
            "442079460958",
            "+442079460958|02079460958|GB|fixed|false|false",
        ),
        ("3115202605712345678", "|||unknown|false|false"),
        ("anonymous", "|||unknown|true|false"),
        ("", "|||unknown|true|false"),
        ("receptie.amsterdam", "|||sip|false|true"),
    ];
    for (number, expected) in table {
        let body = serde_json::json!({ "caller_number": number }).to_string();
        let answer = server
            .post_json("/hooks/n", body)
            .await
            .text()
            .await
            .unwrap();
        assert_eq!(answer, expected, "caller {number:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let server = TestServer::start(&[("main.yaml", CALLER_RULES)]).await;
    assert_eq!(server.get("/healthz").await.status(), 200);
    let ready = server.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert!(body["rulesets"]["main"].is_string());
    server.stop().await;
}

/// The admin API reads JSON whatever the content type says, and says what is wrong otherwise;
/// `/` points somewhere instead of an empty 404.
#[tokio::test]
async fn api_bodies_are_json_whatever_the_content_type_and_the_root_points_the_way() {
    let server = TestServer::with_config(
        &[("main.yaml", &common::answering("x"))],
        "admin:\n  token: t0ken\nplugins:\n  crm:\n    kind: history\n",
    )
    .await;
    let post = |content_type: &'static str, body: &'static str| {
        server
            .client
            .post(server.url("/api/v1/plugins/*/invalidate"))
            .bearer_auth("t0ken")
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    for content_type in [
        "application/x-www-form-urlencoded",
        "text/plain",
        "application/json",
    ] {
        let response = post(content_type, r#"{"caller": "0152026057"}"#)
            .await
            .unwrap();
        assert_eq!(response.status(), 204, "{content_type}");
    }
    let response = post("application/json", "caller=0152026057").await.unwrap();
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert!(text.contains("must be a JSON object"), "{text}");
    let root = server.get("/").await;
    assert_eq!(root.status(), 200);
    assert!(root.text().await.unwrap().contains("/admin"));
    server.stop().await;
}
