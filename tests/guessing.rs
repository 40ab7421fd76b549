//! Guessing a secret costs time: wrong tokens are counted per client address and kind, and an
//! address past its free tries waits longer and longer (`429` with `Retry-After`); the right
//! token from another address is never held up.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::{TestServer, answering};

const TOKEN: &str = "Xq7-vR2m_Lp9zT4wKc8N-right";

fn config() -> String {
    format!(
        "admin:\n  token: {TOKEN}\nhooks:\n  auth:\n    header: {{ name: identifier, value: hook-s3cret-0123456789 }}\n"
    )
}

/// A client whose connections come from `from` (Linux routes all of 127.0.0.0/8 to lo).
fn client_from(from: &str) -> reqwest::Client {
    belroute_plugins::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .local_address(from.parse::<IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn login(server: &TestServer, client: &reqwest::Client, token: &str) -> reqwest::Response {
    client
        .post(server.url("/admin/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap()
}

fn metric(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in {metrics}"))
}

/// The attacker tries wrong tokens at the console login from 127.0.0.1 as fast as it is
/// answered, and again every 50 ms while it is told to wait: 1,000 guesses take far more than
/// a minute (the test stops after 61 s and counts the guesses that were checked). Meanwhile
/// the operator, at 127.0.0.2, logs in with the right token at once, every 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_wrong_logins_take_more_than_a_minute_and_lock_nobody_else_out() {
    let server = TestServer::with_config(&[("main.yaml", &answering("x"))], &config()).await;
    let attacker = client_from("127.0.0.1");
    let operator = client_from("127.0.0.2");
    let started = Instant::now();
    let (mut guesses, mut refused) = (0u32, 0u32);
    let mut operator_logins: Vec<Duration> = Vec::new();
    let mut next_login = Duration::ZERO;
    while guesses < 1000 && started.elapsed() < Duration::from_secs(61) {
        let response = login(&server, &attacker, &format!("guess-{guesses}")).await;
        match response.status().as_u16() {
            401 => guesses += 1,
            429 => {
                refused += 1;
                let retry: u64 = response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=30).contains(&retry), "Retry-After {retry}");
                let body = response.text().await.unwrap();
                assert!(body.contains("Too many wrong tokens"), "{body}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("a wrong token answered {other}"),
        }
        if started.elapsed() >= next_login {
            next_login += Duration::from_secs(5);
            let asked = Instant::now();
            let response = login(&server, &operator, TOKEN).await;
            operator_logins.push(asked.elapsed());
            assert_eq!(
                response.status(),
                303,
                "the operator logs in during the attack"
            );
            assert!(response.headers().contains_key("set-cookie"));
        }
    }
    let took = started.elapsed();
    let slowest = operator_logins.iter().max().copied().unwrap_or_default();
    eprintln!(
        "{guesses} wrong tokens checked in {took:?} ({refused} tries answered 429 unchecked); \
         the operator logged in {} times from another address, slowest {slowest:?}",
        operator_logins.len()
    );
    assert!(
        guesses < 1000,
        "1,000 wrong guesses must take more than a minute: {guesses} were checked in {took:?}"
    );
    assert!(took >= Duration::from_secs(60));
    assert!(
        guesses <= 30,
        "a few guesses a minute after the first burst: {guesses}"
    );
    assert!(operator_logins.len() >= 12);
    assert!(
        slowest < Duration::from_millis(500),
        "slowest login {slowest:?}"
    );
    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert_eq!(
        metric(
            &metrics,
            "belroute_auth_failures_total{kind=\"console_login\"}"
        ),
        u64::from(guesses)
    );
    assert_eq!(
        metric(
            &metrics,
            "belroute_auth_throttled_total{kind=\"console_login\"}"
        ),
        u64::from(refused)
    );
    server.stop().await;
}

/// The admin API's Bearer token and the hook's secret header are counted the same way, per
/// kind and address; the right one from another address is answered at once; a burst of
/// tries sent at once gets no more through than one after the other.
#[tokio::test]
async fn wrong_api_tokens_and_hook_secrets_are_throttled_per_address() {
    let server = TestServer::with_config(&[("main.yaml", &answering("x"))], &config()).await;
    let attacker = client_from("127.0.0.1");
    let other = client_from("127.0.0.3");
    let api = |client: &reqwest::Client, token: &str| {
        client
            .get(server.url("/api/v1/rulesets"))
            .bearer_auth(token)
            .send()
    };
    // Twenty wrong tries at once: all checked (401); the twenty-first waits.
    let burst: Vec<_> = (0..25)
        .map(|i| api(&attacker, &format!("wrong-{i}")))
        .collect();
    let mut statuses: Vec<u16> = Vec::new();
    for answer in futures_util::future::join_all(burst).await {
        statuses.push(answer.unwrap().status().as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        20,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 5);
    let waiting = api(&attacker, TOKEN).await.unwrap();
    assert_eq!(
        waiting.status(),
        429,
        "even the right token waits at that address"
    );
    assert!(waiting.headers().contains_key("retry-after"));
    assert_eq!(api(&other, TOKEN).await.unwrap().status(), 200);
    // No token at all guesses nothing and is not counted.
    for _ in 0..30 {
        let none = other
            .get(server.url("/api/v1/rulesets"))
            .send()
            .await
            .unwrap();
        assert_eq!(none.status(), 401);
    }
    assert_eq!(api(&other, TOKEN).await.unwrap().status(), 200);

    // The hook's secret header: its own count.
    let hook = |client: &reqwest::Client, secret: &str| {
        client
            .post(server.url("/hooks/main"))
            .header("identifier", secret)
            .header("content-type", "application/json")
            .body("{}")
            .send()
    };
    for i in 0..20 {
        assert_eq!(
            hook(&attacker, &format!("no-{i}")).await.unwrap().status(),
            401
        );
    }
    let waiting = hook(&attacker, "no-more").await.unwrap();
    assert_eq!(waiting.status(), 429);
    assert_eq!(waiting.text().await.unwrap(), "", "no detail in the body");
    let right = hook(&other, "hook-s3cret-0123456789").await.unwrap();
    assert_eq!(right.status(), 200);
    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert_eq!(
        metric(&metrics, "belroute_auth_failures_total{kind=\"admin_api\"}"),
        20
    );
    assert_eq!(
        metric(
            &metrics,
            "belroute_auth_throttled_total{kind=\"admin_api\"}"
        ),
        6
    );
    assert_eq!(
        metric(
            &metrics,
            "belroute_auth_failures_total{kind=\"hook_secret\"}"
        ),
        20
    );
    assert_eq!(
        metric(
            &metrics,
            "belroute_hook_rejections_total{reason=\"throttled\"}"
        ),
        1
    );
    server.stop().await;
}

/// Behind a trusted proxy the client's own address counts (from X-Forwarded-For): one client's
/// guessing does not slow another client of the same proxy.
#[tokio::test]
async fn behind_a_trusted_proxy_each_client_counts_on_its_own() {
    let config = format!("{}    trusted_proxies: [127.0.0.1/32]\n", config());
    let server = TestServer::with_config(&[("main.yaml", &answering("x"))], &config).await;
    let api = |client: &str, token: &str| {
        server
            .client
            .get(server.url("/api/v1/rulesets"))
            .header("x-forwarded-for", client)
            .bearer_auth(token)
            .send()
    };
    for i in 0..20 {
        assert_eq!(
            api("203.0.113.9", &format!("wrong-{i}"))
                .await
                .unwrap()
                .status(),
            401
        );
    }
    assert_eq!(api("203.0.113.9", TOKEN).await.unwrap().status(), 429);
    assert_eq!(api("198.51.100.7", TOKEN).await.unwrap().status(), 200);
    server.stop().await;
}
