//! Who may call /hooks: secret header, secret query parameter, IP allowlist behind proxies.
//! (Secrets are literal here; `${VAR}` expansion is tested with the binary in cli.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use common::{TestServer, answering};

fn echo_token_rules() -> String {
    // Answers `leaked` if the secret query parameter reached the rules.
    "default: ok\nrules:\n  - name: Leak\n    when: '\"token\" in call'\n    route: leaked\n"
        .to_string()
}

#[tokio::test]
async fn secret_header_must_match() {
    let config = "hooks:\n  auth:\n    header: { name: identifier, value: s3cret-header }\n";
    let server = TestServer::with_config(&[("main.yaml", &answering("in"))], config).await;
    let send = |value: Option<&'static str>| {
        let mut request = server
            .client
            .post(server.url("/hooks/main"))
            .header("content-type", "application/json")
            .body("{}");
        if let Some(v) = value {
            request = request.header("identifier", v);
        }
        request.send()
    };
    let missing = send(None).await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.text().await.unwrap(), "", "no detail in the body");
    let wrong = send(Some("s3cret-headeR")).await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(wrong.text().await.unwrap(), "");
    let right = send(Some("s3cret-header")).await.unwrap();
    assert_eq!(right.status(), 200);
    assert_eq!(right.text().await.unwrap(), "in");
    server.stop().await;
}

#[tokio::test]
async fn secret_query_parameter_must_match_and_never_reaches_the_rules() {
    let config = "hooks:\n  auth:\n    query: { name: token, value: t0ken }\n";
    let server = TestServer::with_config(&[("main.yaml", &echo_token_rules())], config).await;
    assert_eq!(server.post_json("/hooks/main", "{}").await.status(), 401);
    assert_eq!(
        server
            .post_json("/hooks/main?token=nope", "{}")
            .await
            .status(),
        401
    );
    let right = server.post_json("/hooks/main?token=t0ken", "{}").await;
    assert_eq!(right.status(), 200);
    assert_eq!(
        right.text().await.unwrap(),
        "ok",
        "the token was removed from the call data"
    );
    let get = server
        .get("/hooks/main?token=t0ken&caller_number=31152026057")
        .await;
    assert_eq!(get.text().await.unwrap(), "ok");
    server.stop().await;
}

#[tokio::test]
async fn ip_allowlist() {
    let allowed = TestServer::with_config(
        &[("main.yaml", &answering("in"))],
        "hooks:\n  auth:\n    allow_ips: [\"127.0.0.0/8\"]\n",
    )
    .await;
    assert_eq!(allowed.post_json("/hooks/main", "{}").await.status(), 200);
    allowed.stop().await;

    let denied = TestServer::with_config(
        &[("main.yaml", &answering("in"))],
        "hooks:\n  auth:\n    allow_ips: [\"185.103.76.0/22\"]\n",
    )
    .await;
    let response = denied.post_json("/hooks/main", "{}").await;
    assert_eq!(response.status(), 403);
    assert_eq!(response.text().await.unwrap(), "");
    // X-Forwarded-For is not believed from a peer that is not a trusted proxy.
    let spoofed = denied
        .client
        .post(denied.url("/hooks/main"))
        .header("x-forwarded-for", "185.103.76.10")
        .send()
        .await
        .unwrap();
    assert_eq!(spoofed.status(), 403);
    denied.stop().await;
}

#[tokio::test]
async fn forwarded_for_is_believed_from_trusted_proxies_only() {
    let config = "hooks:\n  auth:\n    allow_ips: [\"185.103.76.0/22\"]\n    trusted_proxies: [\"127.0.0.1/32\", \"10.0.0.0/8\"]\n";
    let server = TestServer::with_config(&[("main.yaml", &answering("in"))], config).await;
    let send = |xff: &'static str| {
        server
            .client
            .post(server.url("/hooks/main"))
            .header("x-forwarded-for", xff)
            .send()
    };
    assert_eq!(send("185.103.76.10").await.unwrap().status(), 200);
    // Client, then an inner proxy: the nearest untrusted address counts.
    assert_eq!(send("185.103.76.10, 10.1.2.3").await.unwrap().status(), 200);
    // A client that prepends its own "allowed" address does not get in.
    assert_eq!(
        send("185.103.76.10, 198.51.100.7").await.unwrap().status(),
        403
    );
    assert_eq!(
        server.post_json("/hooks/main", "{}").await.status(),
        403,
        "no header: the proxy itself is not allowed"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_rule_set_can_override_the_server_auth() {
    let config = "hooks:\n  auth:\n    allow_ips: [\"185.103.76.0/22\"]\n  rulesets:\n    local:\n      auth:\n        header: { name: x-key, value: open-sesame }\n";
    let server = TestServer::with_config(
        &[
            ("main.yaml", &answering("main")),
            ("local.yaml", &answering("local")),
        ],
        config,
    )
    .await;
    assert_eq!(server.post_json("/hooks/main", "{}").await.status(), 403);
    let local = server
        .client
        .post(server.url("/hooks/local"))
        .header("x-key", "open-sesame")
        .send()
        .await
        .unwrap();
    assert_eq!(local.status(), 200);
    assert_eq!(local.text().await.unwrap(), "local");
    server.stop().await;
}
