//! The console in a real headless browser: Debian's chromium, driven through chromedriver's
//! WebDriver HTTP API. Logs in, opens the overview, opens a call's trace, runs "Try a call"
//! and sees the route; saves a screenshot of each step (PNG) under
//! `target/browser-screenshots/` for CI to keep.
//!
//! Needs `/usr/bin/chromedriver` (`apt-get install chromium chromium-driver`): skipped without
//! it, except in CI (`CI` set), where a missing browser fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{CALLER_RULES, TestServer};
use serde_json::{Value, json};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const TOKEN: &str = "browser-admin-token-0123456789";
/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver child process, stopped when dropped.
struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(90))
                .build()
                .unwrap(),
        };
        let started = Instant::now();
        loop {
            if let Ok(response) = driver
                .http
                .get(format!("{}/status", driver.base))
                .send()
                .await
                && let Ok(status) = response.json::<Value>().await
                && status["value"]["ready"] == true
            {
                return driver;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromedriver not ready within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let value: Value = response.json().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {value}");
        value["value"].clone()
    }

    async fn session(&self, profile: &Path) -> Browser<'_> {
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,900", "--lang=en-GB",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let value = self
            .call(reqwest::Method::POST, "/session", Some(capabilities))
            .await;
        Browser {
            driver: self,
            id: value["sessionId"].as_str().unwrap().to_string(),
        }
    }
}

/// One browser session.
struct Browser<'d> {
    driver: &'d Driver,
    id: String,
}

impl Browser<'_> {
    async fn post(&self, path: &str, body: Value) -> Value {
        self.driver
            .call(
                reqwest::Method::POST,
                &format!("/session/{}{path}", self.id),
                Some(body),
            )
            .await
    }

    async fn get(&self, path: &str) -> Value {
        self.driver
            .call(
                reqwest::Method::GET,
                &format!("/session/{}{path}", self.id),
                None,
            )
            .await
    }

    async fn open(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    async fn find(&self, css: &str) -> String {
        let value = self
            .post("/element", json!({ "using": "css selector", "value": css }))
            .await;
        value[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {value}"))
            .to_string()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.post(
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    async fn clear(&self, css: &str) {
        let element = self.find(css).await;
        self.post(&format!("/element/{element}/clear"), json!({}))
            .await;
    }

    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.post(&format!("/element/{element}/click"), json!({}))
            .await;
    }

    async fn source(&self) -> String {
        self.get("/source").await.as_str().unwrap().to_string()
    }

    /// Waits until the page's source contains `text`; returns the source.
    async fn wait_for(&self, text: &str) -> String {
        let started = Instant::now();
        loop {
            let source = self.source().await;
            if source.contains(text) {
                return source;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the page never showed {text:?}; it is:\n{source}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = base64(self.get("/screenshot").await.as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = screenshots();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    async fn resize(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({ "width": width, "height": height }))
            .await;
    }

    async fn close(self) {
        self.driver
            .call(
                reqwest::Method::DELETE,
                &format!("/session/{}", self.id),
                None,
            )
            .await;
    }
}

/// `target/browser-screenshots/` (under `CARGO_TARGET_DIR` when that is set).
fn screenshots() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("browser-screenshots")
}

/// Standard base64 (the screenshot), without a crate for it.
fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|c| !matches!(c, b'=' | b'\n' | b'\r'))
        .map(value)
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, d)| n | u32::from(*d) << (18 - 6 * i));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[tokio::test]
async fn an_operator_logs_in_reads_a_trace_and_tries_a_call() {
    if !Path::new(CHROMEDRIVER).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{CHROMEDRIVER} is missing: install chromium chromium-driver (apt-get install -y chromium chromium-driver)"
        );
        println!("skipped: install chromium chromium-driver");
        return;
    }
    let server = TestServer::with_config(
        &[("main.yaml", CALLER_RULES), ("queue.yaml", QUEUE_RULES)],
        &format!(
            "admin:\n  token: {TOKEN}\nplugins:\n  history:\n    kind: history\n    cache:\n      ttl: 1m\n  recent:\n    kind: history\nsubscriptions:\n  wallboard:\n    api_key: wallboard-key-0123456789\n    events: [call.routed]\n"
        ),
    )
    .await;
    let body = json!({ "caller_number": "442079460000", "uuid": "browser-call-1" });
    let answer = server.post_json("/hooks/main", body.to_string()).await;
    assert_eq!(answer.text().await.unwrap(), "international");

    let driver = Driver::start().await;
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.session(profile.path()).await;

    // Log in.
    browser.open(&server.url("/admin")).await;
    browser.wait_for("name=\"token\"").await;
    browser.screenshot("1-login").await;
    browser.type_into("#token", TOKEN).await;
    browser.click("#login").await;
    let overview = browser.wait_for("id=\"rulesets\"").await;
    assert!(overview.contains(">main</a></strong>"), "{overview}");
    assert!(!overview.contains(TOKEN));
    let cookies = browser.get("/cookie").await;
    let session = cookies
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "belroute_session")
        .expect("the session cookie");
    assert_eq!(session["httpOnly"], true);
    assert_eq!(session["sameSite"], "Strict");
    browser.screenshot("2-overview").await;

    // The call on the Calls page, and its trace.
    browser.open(&server.url("/admin/calls")).await;
    let started = Instant::now();
    while !browser
        .source()
        .await
        .contains("/admin/calls/browser-call-1")
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the call never showed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        browser.open(&server.url("/admin/calls")).await;
    }
    browser.screenshot("3-calls").await;
    browser
        .click("a[href=\"/admin/calls/browser-call-1\"]")
        .await;
    let trace = browser.wait_for("id=\"trace-rules\"").await;
    assert!(trace.contains("Withheld") && trace.contains("Abroad"));
    assert!(!trace.contains("442079460000"), "the number masked");
    browser.screenshot("4-trace").await;
    browser.click("#reveal").await;
    browser.wait_for("442079460000").await;

    // Try a call.
    browser.open(&server.url("/admin/try")).await;
    browser.wait_for("id=\"run\"").await;
    browser.type_into("#caller", "+44 20 7946 0000").await;
    browser.click("#run").await;
    let result = browser.wait_for("id=\"route\"").await;
    assert!(result.contains("id=\"route\">international<"), "{result}");
    browser.screenshot("5-try-a-call").await;
    // On a phone.
    browser.resize(390, 844).await;
    browser.screenshot("6-try-a-call-phone").await;

    every_page_in_both_languages_and_widths(&server, &browser).await;

    browser.close().await;
    drop(driver);
    server.stop().await;
    println!("screenshots in {}", screenshots().display());
}

/// A rule set that reads the call log, so a trace has a lookup a rule waited for and one
/// no rule needed.
const QUEUE_RULES: &str = "description: Known callers first\ndefault: receptie\nlookups: [history, recent]\nrules:\n  - name: Called before\n    when: history.calls_window > 0\n    route: known\n  - name: Everyone else\n    route: welcome\n";

/// Every page, in English and Dutch, at a laptop's and a phone's width: a screenshot of
/// each (`{page}-{lang}-{laptop|phone}.png`), and what a new user would trip over checked.
async fn every_page_in_both_languages_and_widths(server: &TestServer, browser: &Browser<'_>) {
    // A call without a uuid and without a number: it can be opened, and reads "withheld".
    let answer = server
        .post_json("/hooks/queue", json!({ "caller_number": "" }).to_string())
        .await;
    assert_eq!(answer.text().await.unwrap(), "welcome");
    let answer = server
        .post_json(
            "/hooks/queue",
            json!({ "caller_number": "0152026057", "uuid": "browser-call-2" }).to_string(),
        )
        .await;
    assert_eq!(answer.text().await.unwrap(), "welcome");
    browser.resize(1280, 900).await;
    let started = Instant::now();
    loop {
        browser.open(&server.url("/admin/calls")).await;
        let source = browser.source().await;
        if source.contains("/admin/calls/by-id/") && source.contains("browser-call-2") {
            assert!(source.contains("withheld"), "{source}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the calls never showed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    browser.click("a[href^=\"/admin/calls/by-id/\"]").await;
    let no_uuid = browser.wait_for("id=\"trace-rules\"").await;
    assert!(no_uuid.contains("withheld") && no_uuid.contains("id=\"route\">welcome<"));
    // The history lookup no rule reached is "not needed", not "unavailable".
    browser
        .open(&server.url("/admin/calls/browser-call-2"))
        .await;
    let trace = browser.wait_for("id=\"trace-lookups\"").await;
    assert!(trace.contains("result-not_needed"), "{trace}");

    let pages = [
        ("overview", "/admin", "id=\"rulesets\""),
        ("calls", "/admin/calls", "id=\"calls\""),
        (
            "call",
            "/admin/calls/browser-call-2",
            "id=\"trace-lookups\"",
        ),
        ("try", "/admin/try", "id=\"run\""),
        ("plugins", "/admin/plugins", "id=\"plugin-history\""),
        (
            "subscriptions",
            "/admin/subscriptions",
            "id=\"subscription-wallboard\"",
        ),
        ("ruleset", "/admin/rulesets/main", "id=\"history\""),
        ("edit", "/admin/rulesets/main/edit", "id=\"draft\""),
        ("audit", "/admin/audit", "id=\"audit\""),
        ("tokens", "/admin/tokens", "id=\"tokens\""),
    ];
    for (lang, other) in [("en", "Nederlands"), ("nl", "English")] {
        for (width, height, size) in [(1280, 900, "laptop"), (390, 844, "phone")] {
            browser.resize(width, height).await;
            for (name, path, marker) in pages {
                browser
                    .open(&server.url(&format!("/admin/lang/{lang}?to={path}")))
                    .await;
                let source = browser.wait_for(marker).await;
                assert!(
                    source.contains(other),
                    "{name} in {lang}: the switch to {other}"
                );
                if lang == "nl" {
                    for english in ["Rule set", "Reason", "Caller", "withheld", "Lookups"] {
                        assert!(
                            !source.contains(&format!(">{english}<")),
                            "{name} in Dutch shows {english:?}"
                        );
                    }
                }
                browser.screenshot(&format!("{name}-{lang}-{size}")).await;
            }
            // Try a call, with facts typed in: they are not "asked".
            browser.open(&server.url("/admin/try")).await;
            browser.wait_for("id=\"run\"").await;
            browser.click("#ruleset option:nth-child(2)").await;
            browser.type_into("#caller", "0152026057").await;
            browser
                .type_into("textarea[name=\"facts\"]", "history={\"calls_window\": 2}")
                .await;
            browser.click("#run").await;
            let tried = browser.wait_for("id=\"route\"").await;
            assert!(tried.contains("id=\"route\">known<"), "{tried}");
            let typed_in = if lang == "en" { "typed in" } else { "ingevuld" };
            assert!(
                tried.contains(typed_in),
                "facts typed in are not asked: {tried}"
            );
            browser
                .screenshot(&format!("try-result-{lang}-{size}"))
                .await;
        }
    }
    // The phone layout: no page is wider than the phone (tables scroll inside their box).
    browser.resize(390, 844).await;
    for (name, path, marker) in pages {
        browser.open(&server.url(path)).await;
        browser.wait_for(marker).await;
        let width = browser
            .post(
                "/execute/sync",
                json!({ "script": "return document.documentElement.scrollWidth;", "args": [] }),
            )
            .await;
        assert!(
            width.as_u64().is_some_and(|w| w <= 390),
            "{name} is {width} px wide on a 390 px phone"
        );
    }
}

/// Open all day, every day: the form below closes it (but for Monday's first minute).
const HOURS_RULES: &str = "# Hoofdnummer\ndefault: dicht\nroutes: [open, dicht]\nrules:\n  - name: Open\n    when: 'open_hours(\"daily 00:00-24:00\")'\n    route: open\n";

/// `mon 00:00-00:01`: closed at every time a test can run but Monday's first minute.
const CLOSED: &str = "mon 00:00-00:01";

#[tokio::test]
async fn an_editor_changes_the_hours_in_the_browser_and_a_viewer_cannot() {
    if !Path::new(CHROMEDRIVER).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{CHROMEDRIVER} is missing: install chromium chromium-driver (apt-get install -y chromium chromium-driver)"
        );
        println!("skipped: install chromium chromium-driver");
        return;
    }
    let server = TestServer::with_config(
        &[("main.yaml", HOURS_RULES)],
        &format!("admin:\n  token: {TOKEN}\n"),
    )
    .await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut tokens = std::collections::BTreeMap::new();
    for (name, role) in [("anna", "editor"), ("vera", "viewer")] {
        let created: Value = http
            .post(server.url("/api/v1/tokens"))
            .bearer_auth(TOKEN)
            .json(&json!({ "name": name, "role": role }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tokens.insert(name, created["token"].as_str().unwrap().to_string());
    }
    // Calls to compare with: open now, closed with the new hours.
    for i in 0..3 {
        let body =
            json!({ "caller_number": format!("3161234567{i}"), "uuid": format!("hours-{i}") });
        let answer = server.post_json("/hooks/main", body.to_string()).await;
        assert_eq!(answer.text().await.unwrap(), "open");
    }
    let flushed = http
        .get(server.url("/api/v1/calls/hours-2"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(flushed.status(), 200);
    let started = Instant::now();
    let driver = Driver::start().await;
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.session(profile.path()).await;

    // The editor logs in and opens the rule set.
    browser.open(&server.url("/admin/lang/en?to=/admin")).await;
    browser.wait_for("name=\"token\"").await;
    browser.type_into("#token", &tokens["anna"]).await;
    browser.click("#login").await;
    browser.wait_for("id=\"rulesets\"").await;
    browser.click("a[href=\"/admin/rulesets/main\"]").await;
    browser.wait_for("id=\"history\"").await;
    // The opening hours, with the form.
    browser.click("#hours").await;
    browser.wait_for("id=\"hours-form\"").await;
    browser.clear("#spec0").await;
    browser.type_into("#spec0", CLOSED).await;
    browser.screenshot("edit-1-hours-form").await;
    browser.click("#hours-next").await;
    // The compare table: the three calls would now be closed.
    let compared = browser.wait_for("id=\"comparison\"").await;
    assert!(compared.contains("id=\"changes\""), "{compared}");
    assert!(
        compared.contains("<td class=\"num\">3</td>"),
        "three calls move: {compared}"
    );
    browser.screenshot("edit-2-compare").await;
    browser.type_into("#note", "Closed for the winter").await;
    browser.click("#publish").await;
    let published = browser.wait_for("id=\"published\"").await;
    assert!(published.contains("serves now"), "{published}");
    browser.screenshot("edit-3-published").await;
    let elapsed = started.elapsed();
    println!("form, compare and publish in the browser took {elapsed:?}");
    // A call now routes the new way.
    assert_eq!(server.route("main", "31612345678").await, "dicht");
    let on_disk = std::fs::read_to_string(server.rules.join("main.yaml")).unwrap();
    assert_eq!(on_disk, HOURS_RULES.replace("daily 00:00-24:00", CLOSED));

    // The history: the revision with its author and note; restore the one before.
    browser.open(&server.url("/admin/rulesets/main")).await;
    let history = browser.wait_for("Closed for the winter").await;
    assert!(history.contains("<td>anna</td>"), "{history}");
    browser.screenshot("edit-4-history").await;
    browser.click("#history tbody tr:nth-child(2) a").await;
    browser.wait_for("id=\"restore\"").await;
    browser.screenshot("edit-5-revision").await;
    browser.click("#restore").await;
    browser.wait_for("id=\"draft\"").await;
    browser.click("#publish").await;
    browser.wait_for("id=\"published\"").await;
    assert_eq!(server.route("main", "31612345678").await, "open");
    assert_eq!(
        std::fs::read_to_string(server.rules.join("main.yaml")).unwrap(),
        HOURS_RULES
    );
    browser.click("header form button").await; // log out
    browser.wait_for("name=\"token\"").await;

    // The viewer: no edit controls, and 403 wherever a change is made.
    browser.type_into("#token", &tokens["vera"]).await;
    browser.click("#login").await;
    browser.wait_for("id=\"rulesets\"").await;
    browser.open(&server.url("/admin/rulesets/main")).await;
    let page = browser.wait_for("id=\"history\"").await;
    for control in [
        "id=\"edit\"",
        "id=\"hours\"",
        "id=\"holidays\"",
        "/admin/tokens",
    ] {
        assert!(!page.contains(control), "a viewer sees {control}");
    }
    browser.screenshot("edit-6-viewer").await;
    browser.open(&server.url("/admin/rulesets/main/edit")).await;
    let refused = browser.wait_for("role viewer").await;
    assert!(refused.contains("may not do this"), "{refused}");
    let put = http
        .put(server.url("/api/v1/rulesets/main"))
        .bearer_auth(&tokens["vera"])
        .json(&json!({ "content": HOURS_RULES, "base": null, "note": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 403);
    browser.close().await;
    drop(driver);
    server.stop().await;
}

#[test]
fn base64_decodes() {
    assert_eq!(base64("aGVsbG8="), b"hello");
    assert_eq!(base64("aGVsbG8hIQ=="), b"hello!!");
    assert_eq!(base64("YWJj"), b"abc");
}
