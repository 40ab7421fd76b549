//! The operator's console at `/admin`: refused without a session, the session cookie, CSRF,
//! and the pages showing what a real server routed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::time::Duration;

use common::{CALLER_RULES, TestServer};

const TOKEN: &str = "console-admin-token-0123456789";

fn config() -> String {
    format!("admin:\n  token: {TOKEN}\n")
}

/// A client that shows redirects instead of following them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn form(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap()
}

struct Console {
    server: TestServer,
    client: reqwest::Client,
    /// `belroute_session=…`
    cookie: String,
    csrf: String,
}

impl Console {
    async fn start(files: &[(&str, &str)]) -> Console {
        let server = TestServer::with_config(files, &config()).await;
        let client = client();
        let response = client
            .post(server.url("/admin/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("token", TOKEN)]))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        assert_eq!(response.headers()["location"], "/admin");
        let set_cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_string();
        let cookie = set_cookie.split(';').next().unwrap().to_string();
        let mut console = Console {
            server,
            client,
            cookie,
            csrf: String::new(),
        };
        let page = console.page("/admin").await;
        console.csrf = csrf_of(&page);
        console
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.server.url(path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap()
    }

    /// A page that must answer 200.
    async fn page(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        response.text().await.unwrap()
    }

    async fn post(&self, path: &str, pairs: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.server.url(path))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(pairs))
            .send()
            .await
            .unwrap()
    }
}

fn csrf_of(page: &str) -> String {
    let start = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    page[start..start + 64].to_string()
}

/// Every console page and action, as (method, path).
const EVERYTHING: [(&str, &str); 19] = [
    ("GET", "/admin"),
    ("GET", "/admin/"),
    ("GET", "/admin/calls"),
    ("GET", "/admin/calls?partial=1"),
    ("GET", "/admin/calls/some-uuid"),
    ("GET", "/admin/try"),
    ("GET", "/admin/plugins"),
    ("GET", "/admin/subscriptions"),
    ("GET", "/admin/not-yet-written"),
    ("POST", "/admin/try"),
    ("POST", "/admin/calls/some-uuid/reveal"),
    ("POST", "/admin/plugins/crm/invalidate"),
    ("POST", "/admin/subscriptions/wallboard/requeue"),
    ("POST", "/admin/subscriptions"),
    ("POST", "/admin/subscriptions/wallboard"),
    ("POST", "/admin/subscriptions/wallboard/test"),
    ("POST", "/admin/subscriptions/wallboard/rotate-key"),
    ("POST", "/admin/rulesets/main/release"),
    ("POST", "/admin/logout"),
];

#[tokio::test]
async fn without_a_session_every_page_and_action_is_refused() {
    let server = TestServer::with_config(&[("main.yaml", CALLER_RULES)], &config()).await;
    let client = client();
    // No cookie, a made-up session, the admin token as a Bearer header (the API's way), and
    // the token itself as the cookie: none of them is a session.
    let credentials: [&[(&str, String)]; 4] = [
        &[],
        &[("cookie", format!("belroute_session={}", "ab".repeat(32)))],
        &[("authorization", format!("Bearer {TOKEN}"))],
        &[("cookie", format!("belroute_session={TOKEN}"))],
    ];
    for headers in credentials {
        for (method, path) in EVERYTHING {
            let mut request = match method {
                "GET" => client.get(server.url(path)),
                _ => client
                    .post(server.url(path))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form(&[
                        ("csrf", "x"),
                        ("caller", "31152026057"),
                        ("ruleset", "main"),
                    ])),
            };
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{method} {path} with {headers:?}");
            assert!(response.headers().get("set-cookie").is_none());
            let body = response.text().await.unwrap();
            assert!(
                body.contains("action=\"/admin/login\"") && body.contains("name=\"token\""),
                "{method} {path}: the login form, got {body}"
            );
            assert!(
                !body.contains("receptie"),
                "{method} {path} shows nothing of the rules"
            );
        }
    }
    // A wrong token (or none) at login: refused, no cookie.
    for token in ["wrong", "", &TOKEN[..TOKEN.len() - 1]] {
        let response = client
            .post(server.url("/admin/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("token", token)]))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "token {token:?}");
        assert!(response.headers().get("set-cookie").is_none());
        assert!(response.text().await.unwrap().contains("admin.token"));
    }
    // The stylesheet and script are served to anyone: they hold nothing.
    for asset in ["/admin/assets/console.css", "/admin/assets/console.js"] {
        assert_eq!(server.get(asset).await.status(), 200, "{asset}");
    }
    server.stop().await;
}

#[tokio::test]
async fn without_an_admin_token_the_console_is_off() {
    let server = TestServer::start(&[("main.yaml", CALLER_RULES)]).await;
    for path in ["/admin", "/admin/calls", "/admin/login"] {
        let response = server.get(path).await;
        assert_eq!(response.status(), 403, "{path}");
        assert!(response.text().await.unwrap().contains("set admin.token"));
    }
    let response = server
        .client
        .post(server.url("/admin/login"))
        .body("token=")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(response.headers().get("set-cookie").is_none());
    server.stop().await;
}

#[tokio::test]
async fn the_session_cookie_is_http_only_strict_and_ends_at_logout() {
    let server = TestServer::with_config(&[("main.yaml", CALLER_RULES)], &config()).await;
    let response = client()
        .post(server.url("/admin/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("token", TOKEN)]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    let parts: Vec<&str> = cookie.split(';').map(str::trim).collect();
    let (name, id) = parts[0].split_once('=').unwrap();
    assert_eq!(name, "belroute_session");
    assert_eq!(id.len(), 64, "256 random bits");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(parts.contains(&"HttpOnly"), "{cookie}");
    assert!(parts.contains(&"SameSite=Strict"), "{cookie}");
    assert!(parts.contains(&"Path=/admin"), "{cookie}");
    assert!(!cookie.contains(TOKEN));
    server.stop().await;

    let console = Console::start(&[("main.yaml", CALLER_RULES)]).await;
    // Logging out takes the CSRF token too.
    let response = console.post("/admin/logout", &[]).await;
    assert_eq!(response.status(), 403);
    assert_eq!(console.get("/admin").await.status(), 200);
    let response = console
        .post("/admin/logout", &[("csrf", &console.csrf)])
        .await;
    assert_eq!(response.status(), 303);
    let cleared = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("belroute_session=;") && cleared.contains("Max-Age=0"));
    // The old cookie is worth nothing now.
    assert_eq!(console.get("/admin").await.status(), 401);
    console.server.stop().await;
}

#[tokio::test]
async fn a_form_without_the_sessions_csrf_token_is_refused() {
    let console = Console::start(&[("main.yaml", CALLER_RULES)]).await;
    let other = "0".repeat(64);
    let try_call = [("ruleset", "main"), ("caller", "31152026057")];
    for csrf in [None, Some(""), Some("x"), Some(other.as_str())] {
        let mut pairs = try_call.to_vec();
        if let Some(csrf) = csrf {
            pairs.push(("csrf", csrf));
        }
        for path in [
            "/admin/try",
            "/admin/calls/some-uuid/reveal",
            "/admin/plugins/crm/invalidate",
        ] {
            let response = console.post(path, &pairs).await;
            assert_eq!(response.status(), 403, "{path} with csrf {csrf:?}");
            let body = response.text().await.unwrap();
            assert!(body.contains("reload the page"), "{body}");
            assert!(!body.contains("id=\"route\""));
        }
    }
    // Another session's token is not this session's.
    let second = client()
        .post(console.server.url("/admin/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("token", TOKEN)]))
        .send()
        .await
        .unwrap();
    let second_cookie = second.headers()["set-cookie"].to_str().unwrap();
    let second_cookie = second_cookie.split(';').next().unwrap();
    let page = client()
        .get(console.server.url("/admin"))
        .header("cookie", second_cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let second_csrf = csrf_of(&page);
    assert_ne!(second_csrf, console.csrf);
    let mut pairs = try_call.to_vec();
    pairs.push(("csrf", &second_csrf));
    assert_eq!(console.post("/admin/try", &pairs).await.status(), 403);
    // With its own token the same form works.
    let mut pairs = try_call.to_vec();
    pairs.push(("csrf", &console.csrf));
    assert_eq!(console.post("/admin/try", &pairs).await.status(), 200);
    console.server.stop().await;
}

#[tokio::test]
async fn the_overview_shows_the_rule_sets_and_the_refused_file() {
    let console = Console::start(&[
        ("main.yaml", CALLER_RULES),
        (
            "broken.yaml",
            "default: receptie\nrules:\n  - name: Bad\n    when: caller.valid &&\n    route: x\n",
        ),
    ])
    .await;
    let page = console.page("/admin").await;
    assert!(
        page.contains("<strong><a href=\"/admin/rulesets/main\">main</a></strong>"),
        "{page}"
    );
    let version = &console.server.app.store.catalog().rulesets["main"].version;
    assert!(page.contains(version.as_str()));
    // The refused file with its file:line:col message.
    assert!(page.contains("id=\"refused\""));
    assert!(page.contains("broken.yaml:4:"), "{page}");
    assert!(page.contains("never loaded"));
    // The last hour and the call log.
    assert!(page.contains("<svg class=\"chart\""));
    assert!(page.contains("id=\"call-log\""));
    assert!(page.contains("name=\"viewport\""));
    // In Dutch when the browser asks for it.
    let dutch = console
        .client
        .get(console.server.url("/admin"))
        .header("cookie", &console.cookie)
        .header("accept-language", "nl-NL,nl;q=0.9,en;q=0.8")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        dutch.contains("Overzicht") && dutch.contains("Regelsets"),
        "{dutch}"
    );
    // And switched back by the link, which sets the `lang` cookie.
    let response = console.get("/admin/lang/en?to=/admin/calls").await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/admin/calls");
    assert!(
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("lang=en;")
    );
    // Never somewhere else.
    let response = console.get("/admin/lang/en?to=//evil.example/").await;
    assert_eq!(response.headers()["location"], "/admin");
    console.server.stop().await;
}

#[tokio::test]
async fn a_routed_call_appears_on_calls_and_opens_its_trace() {
    let console = Console::start(&[("main.yaml", CALLER_RULES)]).await;
    let body = serde_json::json!({ "caller_number": "442079460000", "uuid": "console-call-1" });
    let response = console
        .server
        .post_json("/hooks/main", body.to_string())
        .await;
    assert_eq!(response.text().await.unwrap(), "international");
    console
        .server
        .eventually(
            Duration::from_secs(10),
            "the call on the Calls page",
            || async {
                console
                    .page("/admin/calls")
                    .await
                    .contains("href=\"/admin/calls/console-call-1\"")
            },
        )
        .await;
    let page = console.page("/admin/calls").await;
    assert!(page.contains("data-poll="), "updates live");
    assert!(page.contains("international"));
    // The number masked but for its last 3 digits.
    assert!(!page.contains("442079460000"), "{page}");
    assert!(page.contains("000") && page.contains('•'));
    // Filters: by rule set, route and caller.
    for (query, expected) in [
        ("?ruleset=main", true),
        ("?route=international", true),
        ("?route=receptie", false),
        ("?caller=%2B44+20+7946+0000", true),
        ("?caller=0152026057", false),
        ("?since=2000-01-01+00:00&until=2100-01-01T00:00", true),
        ("?since=2100-01-01T00:00", false),
    ] {
        let rows = console
            .page(&format!("/admin/calls{query}&partial=1"))
            .await;
        assert_eq!(rows.contains("console-call-1"), expected, "{query}: {rows}");
    }
    // The trace: every rule with its outcome, the number still masked.
    let trace = console.page("/admin/calls/console-call-1").await;
    assert!(trace.contains("id=\"trace-rules\""));
    assert!(
        trace.contains("Withheld") && trace.contains("outcome-no_match"),
        "{trace}"
    );
    assert!(trace.contains("Abroad") && trace.contains("outcome-matched"));
    assert!(trace.contains("id=\"route\">international<"));
    assert!(!trace.contains("442079460000") && !trace.contains("+442079460000"));
    // Revealing the number is a form post with the CSRF token.
    let revealed = console
        .post(
            "/admin/calls/console-call-1/reveal",
            &[("csrf", &console.csrf)],
        )
        .await;
    assert_eq!(revealed.status(), 200);
    let revealed = revealed.text().await.unwrap();
    assert!(revealed.contains("442079460000"), "{revealed}");
    assert_eq!(console.get("/admin/calls/no-such-call").await.status(), 404);
    console.server.stop().await;
}

#[tokio::test]
async fn try_a_call_shows_the_route_and_the_trace() {
    let console = Console::start(&[("main.yaml", CALLER_RULES)]).await;
    let form = console.page("/admin/try").await;
    assert!(form.contains("<option>main</option>"));
    let response = console
        .post(
            "/admin/try",
            &[
                ("csrf", &console.csrf),
                ("ruleset", "main"),
                ("caller", "+44 20 7946 0000"),
                ("fields", "dp_id=12\n"),
                ("at", "2026-11-23 10:00"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    assert!(page.contains("id=\"route\">international<"), "{page}");
    assert!(page.contains("Abroad") && page.contains("outcome-matched"));
    // The record is simulate --json's.
    assert!(page.contains("&quot;ruleset&quot;: &quot;main&quot;"));
    // Withheld: the first rule.
    let page = console
        .post(
            "/admin/try",
            &[
                ("csrf", &console.csrf),
                ("ruleset", "main"),
                ("caller", "anonymous"),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"route\">anoniem<"), "{page}");
    // Mistakes are named, not a crash.
    for (field, value, says) in [
        ("ruleset", "nope", "pick one from the list"),
        ("at", "tomorrow", "2026-11-23 10:00"),
        ("facts", "crm=[1]", "facts are a JSON object"),
        ("fields", "no equals sign", "FIELD=VALUE"),
    ] {
        let mut pairs = vec![("csrf", console.csrf.as_str()), ("ruleset", "main")];
        pairs.retain(|(k, _)| *k != field);
        pairs.push((field, value));
        let page = console
            .post("/admin/try", &pairs)
            .await
            .text()
            .await
            .unwrap();
        assert!(page.contains(says), "{field}={value}: {page}");
        assert!(!page.contains("id=\"route\""));
    }
    console.server.stop().await;
}

#[tokio::test]
async fn plugins_and_subscriptions_pages_show_their_state() {
    let config = format!(
        "{}plugins:\n  history:\n    kind: history\n    cache:\n      ttl: 1m\n  recent:\n    kind: history\nsubscriptions:\n  wallboard:\n    api_key: k3y-for-the-wallboard\n    events: [call.routed]\n",
        config()
    );
    let server = TestServer::with_config(&[("main.yaml", CALLER_RULES)], &config).await;
    let client = client();
    let response = client
        .post(server.url("/admin/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("token", TOKEN)]))
        .send()
        .await
        .unwrap();
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let get = |path: &'static str| {
        let request = client.get(server.url(path)).header("cookie", &cookie);
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    let plugins = get("/admin/plugins").await;
    assert!(plugins.contains("id=\"plugin-history\""), "{plugins}");
    assert!(plugins.contains("breaker-closed"));
    assert!(plugins.contains("action=\"/admin/plugins/history/invalidate\""));
    // What each plugin is, and no "forget this caller" where nothing is cached.
    assert!(plugins.contains("id=\"plugin-recent\""), "{plugins}");
    assert!(!plugins.contains("action=\"/admin/plugins/recent/invalidate\""));
    assert!(plugins.contains("(history)") && plugins.contains("call log"));
    let csrf = csrf_of(&plugins);
    let invalidated = client
        .post(server.url("/admin/plugins/history/invalidate"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf", &csrf), ("caller", "0152026057")]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(invalidated.contains("notice ok"), "{invalidated}");
    let no_caller = client
        .post(server.url("/admin/plugins/history/invalidate"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf", &csrf), ("caller", " ")]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(no_caller.contains("Type the caller"), "{no_caller}");
    let subscriptions = get("/admin/subscriptions").await;
    assert!(
        subscriptions.contains("id=\"subscription-wallboard\""),
        "{subscriptions}"
    );
    assert!(subscriptions.contains("call.routed"));
    assert!(
        !subscriptions.contains("k3y-for-the-wallboard"),
        "no secrets on the page"
    );
    assert!(subscriptions.contains("action=\"/admin/subscriptions/wallboard/requeue\""));
    let requeued = client
        .post(server.url("/admin/subscriptions/wallboard/requeue"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf", &csrf_of(&subscriptions))]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(requeued.contains("notice ok"), "{requeued}");
    assert!(
        requeued.contains("wallboard: 0 returned to new"),
        "{requeued}"
    );
    server.stop().await;
}

/// The API key shown once on a console page (`<code id="api-key">`).
fn key_of(page: &str) -> String {
    let start = page.find("<code id=\"api-key\">").expect("an API key") + 19;
    let end = start + page[start..].find("</code>").unwrap();
    page[start..end].to_string()
}

fn html_escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[tokio::test]
async fn the_subscriptions_form_creates_tests_and_rotates_a_key() {
    let console = Console::start(&[("main.yaml", CALLER_RULES)]).await;
    let page = console.page("/admin/subscriptions").await;
    assert!(page.contains("action=\"/admin/subscriptions\""), "{page}");
    assert!(page.contains("RestHook") && page.contains("notification-only"));
    let subscriber = common::receiver::Receiver::start().await;
    let url = subscriber.url.clone();
    let csrf = console.csrf.clone();
    let created = console
        .post(
            "/admin/subscriptions",
            &[
                ("csrf", &csrf),
                ("name", "crm"),
                ("status", "active"),
                ("endpoint", &url),
                ("headers", "Authorization: Bearer s3cret-header\n"),
                ("events", "call.routed"),
            ],
        )
        .await;
    assert_eq!(created.status(), 200);
    let created = created.text().await.unwrap();
    assert!(created.contains("notice ok"), "{created}");
    let key = key_of(&created);
    assert!(key.len() >= 32, "{key}");
    assert!(created.contains("id=\"subscription-crm\""), "{created}");
    assert!(created.contains("action=\"/admin/subscriptions/crm\""));
    assert!(
        !created.contains("s3cret-header"),
        "header values never shown"
    );
    // The key works on the API, and is shown once: not on the next page.
    let next = console
        .client
        .post(console.server.url("/api/v1/subscriptions/crm/next"))
        .header("authorization", format!("Bearer {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), 204);
    let listed = console.page("/admin/subscriptions").await;
    assert!(listed.contains("id=\"subscription-crm\""));
    assert!(!listed.contains(&key), "the key is shown once");
    assert!(!listed.contains("api-key"));

    // A test notification: the endpoint's status and latency.
    let tested = console
        .post("/admin/subscriptions/crm/test", &[("csrf", &csrf)])
        .await
        .text()
        .await
        .unwrap();
    assert!(tested.contains("notice ok"), "{tested}");
    assert!(
        tested.contains("HTTP 202") && tested.contains(" ms"),
        "{tested}"
    );

    // The edit form: a blank header value keeps the stored one; the status changes.
    let edited = console
        .post(
            "/admin/subscriptions/crm",
            &[
                ("csrf", &csrf),
                ("status", "off"),
                ("endpoint", &url),
                ("headers", "Authorization: \n"),
                ("events", "call.routed"),
                ("events", "call.agent"),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(edited.contains("crm: changes saved"), "{edited}");
    let (status, shown) = api_get(&console, "/api/v1/subscriptions/crm").await;
    assert_eq!(status, 200);
    assert_eq!(shown["status"], "off");
    assert_eq!(shown["header_names"], serde_json::json!(["Authorization"]));
    assert_eq!(
        shown["events"],
        serde_json::json!(["call.routed", "call.agent"])
    );

    // Rotate key: a new key, shown once; the new one works.
    let rotated = console
        .post("/admin/subscriptions/crm/rotate-key", &[("csrf", &csrf)])
        .await
        .text()
        .await
        .unwrap();
    let new_key = key_of(&rotated);
    assert_ne!(new_key, key);
    let next = console
        .client
        .post(console.server.url("/api/v1/subscriptions/crm/next"))
        .header("authorization", format!("Bearer {new_key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), 204);
    subscriber.stop().await;
    console.server.stop().await;
}

async fn api_get(console: &Console, path: &str) -> (u16, serde_json::Value) {
    let response = console
        .client
        .get(console.server.url(path))
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn the_subscriptions_form_shows_belroute_yaml_s_messages_and_wants_csrf() {
    let cfg = format!(
        "{}subscriptions:\n  wallboard:\n    api_key: k3y-for-the-wallboard\n    events: [call.routed]\n",
        config()
    );
    let server = TestServer::with_config(&[("main.yaml", CALLER_RULES)], &cfg).await;
    let console = {
        let client = client();
        let response = client
            .post(server.url("/admin/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("token", TOKEN)]))
            .send()
            .await
            .unwrap();
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let mut console = Console {
            server,
            client,
            cookie,
            csrf: String::new(),
        };
        console.csrf = csrf_of(&console.page("/admin/subscriptions").await);
        console
    };
    let page = console.page("/admin/subscriptions").await;
    assert!(page.contains("From the configuration file"), "{page}");
    assert!(!page.contains("action=\"/admin/subscriptions/wallboard\""));
    assert!(!page.contains("action=\"/admin/subscriptions/wallboard/rotate-key\""));

    // The message belroute.yaml gives for the same endpoint.
    let expected = match belroute::config::Config::parse(
        std::path::Path::new("belroute.yaml"),
        "subscriptions:\n  crm:\n    api_key: k\n    endpoint: ftp://crm.example.nl/notify\n",
    ) {
        Err(belroute::config::ConfigError::Invalid(found)) => found[0].message.clone(),
        other => panic!("belroute.yaml should refuse this: {other:?}"),
    };
    let fields = [
        ("name", "crm"),
        ("status", "active"),
        ("endpoint", "ftp://crm.example.nl/notify"),
        ("headers", ""),
        ("events", "call.routed"),
    ];
    let mut pairs = fields.to_vec();
    pairs.push(("csrf", &console.csrf));
    let refused = console.post("/admin/subscriptions", &pairs).await;
    assert_eq!(refused.status(), 200);
    let refused = refused.text().await.unwrap();
    assert!(refused.contains("notice error"), "{refused}");
    assert!(
        refused.contains(&html_escaped(&expected)),
        "{expected} in {refused}"
    );
    assert!(!refused.contains("id=\"subscription-crm\""));
    assert!(!refused.contains("api-key"));

    // A file subscription cannot be changed or re-keyed from the console either.
    let read_only = console
        .post(
            "/admin/subscriptions/wallboard/rotate-key",
            &[("csrf", &console.csrf)],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(read_only.contains("read-only here"), "{read_only}");
    assert!(!read_only.contains("api-key"));

    // Without the session's CSRF token every new form is refused, and nothing is made.
    let mut good = fields.to_vec();
    good[2] = ("endpoint", "https://crm.example.nl/notify");
    let other = "0".repeat(64);
    for csrf in [None, Some(""), Some("x"), Some(other.as_str())] {
        let mut pairs = good.clone();
        if let Some(csrf) = csrf {
            pairs.push(("csrf", csrf));
        }
        for path in [
            "/admin/subscriptions",
            "/admin/subscriptions/wallboard",
            "/admin/subscriptions/wallboard/test",
            "/admin/subscriptions/wallboard/rotate-key",
        ] {
            let response = console.post(path, &pairs).await;
            assert_eq!(response.status(), 403, "{path} with csrf {csrf:?}");
            let body = response.text().await.unwrap();
            assert!(body.contains("reload the page"), "{body}");
        }
    }
    let (status, _) = api_get(&console, "/api/v1/subscriptions/crm").await;
    assert_eq!(status, 404, "nothing was created without the CSRF token");
    console.server.stop().await;
}

/// A rule set quarantined after its worker died shows on the overview with the rule and the
/// cause, and the release button (CSRF-checked) lets its rules decide again.
#[tokio::test]
async fn a_quarantined_rule_set_is_shown_and_released() {
    // 5 s: on a loaded machine the worker's death may take more than a second to notice,
    // and this is about the death, not the deadline.
    let rules = "timeout: 5s\ndefault: safe\nrules:\n  - name: Gigabytes\n    script: 'let s = \"\"; s.pad(65536, \"x\"); s.replace(\"x\", s); \"never\"'\n";
    let server = TestServer::with_config(
        &[("main.yaml", rules)],
        &format!("{}sandbox:\n  quarantine_after: 1\n", config()),
    )
    .await;
    let client = client();
    let login = client
        .post(server.url("/admin/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("token", TOKEN)]))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let call = || async {
        let response = server.post_json("/hooks/main", "{}").await;
        response.headers()["x-belroute-reason"]
            .to_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(call().await, "failed", "the worker died");
    assert_eq!(call().await, "quarantined");
    let overview = |cookie: String| {
        let (client, url) = (client.clone(), server.url("/admin"));
        async move {
            client
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let page = overview(cookie.clone()).await;
    let section = &page[page.find("id=\"quarantined\"").unwrap()..];
    assert!(
        section.contains("<strong>Gigabytes</strong>")
            && section.contains("worker process died")
            && section.contains("action=\"/admin/rulesets/main/release\""),
        "{section}"
    );
    // Without the session's CSRF token the release is refused.
    let refused = client
        .post(server.url("/admin/rulesets/main/release"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf", "x")]))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(call().await, "quarantined");
    let released = client
        .post(server.url("/admin/rulesets/main/release"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf", &csrf_of(&page))]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(released.contains("main: released"), "{released}");
    assert!(released.contains("No rule set quarantined."), "{released}");
    assert_eq!(call().await, "failed", "its rules decide again");
    // The same over the admin API.
    assert_eq!(call().await, "quarantined");
    let api = |path: &str| client.post(server.url(path)).bearer_auth(TOKEN).send();
    let body: serde_json::Value = api("/api/v1/rulesets/main/release")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body,
        serde_json::json!({"ruleset": "main", "released": true})
    );
    let body: serde_json::Value = api("/api/v1/rulesets/main/release")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["released"], false, "no longer quarantined");
    assert_eq!(
        api("/api/v1/rulesets/nope/release").await.unwrap().status(),
        404
    );
    server.stop().await;
}

/// What a new user would trip over: a call without a uuid or a number, a date in the call data,
/// a Dutch page, a lookup that was not needed.
#[tokio::test]
async fn calls_without_a_uuid_open_read_withheld_keep_their_dates_and_speak_dutch() {
    let console = Console::start(&[("main.yaml", CALLER_RULES)]).await;
    let nameless = serde_json::json!({ "caller_number": "", "dp_in_number": "0201234567" });
    assert_eq!(
        console
            .server
            .post_json("/hooks/main", nameless.to_string())
            .await
            .text()
            .await
            .unwrap(),
        "anoniem"
    );
    let dated = serde_json::json!({
        "caller_number": "0152026057",
        "uuid": "1234567-890",
        "booked_at": "2026-12-07T07:35:00",
    });
    console
        .server
        .post_json("/hooks/main", dated.to_string())
        .await;
    console
        .server
        .eventually(Duration::from_secs(10), "both calls listed", || async {
            let rows = console.page("/admin/calls?partial=1").await;
            rows.contains("/admin/calls/by-id/") && rows.contains("1234567-890")
        })
        .await;
    let rows = console.page("/admin/calls?partial=1").await;
    assert!(rows.contains(">withheld<"), "{rows}");
    let start = rows.find("/admin/calls/by-id/").unwrap() + "/admin/calls/by-id/".len();
    let id: String = rows[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let call = console.page(&format!("/admin/calls/by-id/{id}")).await;
    assert!(call.contains("id=\"route\">anoniem<"), "{call}");
    assert!(call.contains("withheld"));
    assert!(!call.contains("id=\"reveal\""), "no number to show");
    assert!(
        !call.contains("0201234567"),
        "a number in the call fields is masked too"
    );
    assert_eq!(console.get("/admin/calls/by-id/999999").await.status(), 404);
    // Dates and the uuid stay readable; the number is masked.
    let dated = console.page("/admin/calls/1234567-890").await;
    assert!(dated.contains("2026-12-07T07:35:00"), "{dated}");
    assert!(dated.contains("1234567-890"));
    assert!(!dated.contains("0152026057") && dated.contains("•••••••057"));
    // In Dutch: the reason as words, the caller "afgeschermd".
    let dutch = console
        .client
        .get(console.server.url("/admin/calls?partial=1"))
        .header("cookie", format!("{}; lang=nl", console.cookie))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(dutch.contains(">afgeschermd<"), "{dutch}");
    assert!(
        dutch.contains("een regel was van toepassing") && !dutch.contains(">matched<"),
        "{dutch}"
    );
    console.server.stop().await;
}
