//! Several instances on one database (`rules.source: database`), each a real server on
//! loopback with its own rules directory: a publish on one serves on all within a second, a
//! file saved by hand on one reaches the others, a console session opened on one works on the
//! others and ends on all at logout, a forgotten caller is forgotten everywhere, and a stop
//! drains (`503 draining` first). Runs on a shared SQLite file and, when configured, on
//! PostgreSQL (where `LISTEN/NOTIFY` wakes the others).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::{Value, json};

const ADMIN: &str = "instances-admin-token-0123456789abcdef";

fn config() -> String {
    format!("admin:\n  token: {ADMIN}\nrules:\n  source: database\n")
}

fn answering(route: &str) -> String {
    format!(
        "default: receptie\nroutes: [receptie, mobiel, balie, avond]\nrules:\n  - name: Mobile callers\n    when: caller.kind == \"mobile\"\n    route: {route}\ntests:\n  - name: A mobile caller\n    call: {{ caller_number: \"31612345678\" }}\n    expect: {route}\n"
    )
}

/// The databases this test runs on: a shared SQLite file always, PostgreSQL when configured.
async fn databases(test: &str, dir: &std::path::Path) -> Vec<(String, Option<common::db::TestDb>)> {
    let mut list = vec![(
        format!("sqlite://{}", dir.join("shared.db").display()),
        None,
    )];
    if let Some(pg) = common::db::postgres(test).await {
        list.push((pg.url.clone(), Some(pg)));
    }
    list
}

async fn mobile_route(server: &TestServer) -> String {
    server.route("main", "31612345678").await
}

/// How long until every server answers `route` for a mobile caller; panics after 5 s.
async fn all_answer(servers: &[&TestServer], route: &str) -> Duration {
    let started = Instant::now();
    loop {
        let mut all = true;
        for server in servers {
            if mobile_route(server).await != route {
                all = false;
            }
        }
        if all {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not every instance answers `{route}` within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_on_one_instance_serves_on_every_instance_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    for (url, pg) in databases("instances_publish", dir.path()).await {
        let a = TestServer::with_database(&[("main.yaml", &answering("mobiel"))], &config(), &url)
            .await;
        // The others start with empty rules directories: the database fills them.
        let b = TestServer::with_database(&[], &config(), &url).await;
        let c = TestServer::with_database(&[], &config(), &url).await;
        let servers = [&a, &b, &c];
        all_answer(&servers, "mobiel").await;
        let version = a.app.store.catalog().rulesets["main"].version.clone();

        // Published through instance A's API: all three serve it within a second.
        let started = Instant::now();
        let response = a
            .client
            .put(a.url("/api/v1/rulesets/main"))
            .bearer_auth(ADMIN)
            .json(&json!({ "content": answering("balie"), "base": version, "note": "mobile to the desk" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        let published = started.elapsed();
        let spread = all_answer(&servers, "balie").await;
        println!(
            "{}: publish on A took {} ms; every instance answered the new route {} ms later",
            a.app.storage.kind(),
            published.as_millis(),
            spread.as_millis()
        );
        assert!(
            spread <= Duration::from_secs(1),
            "{url}: B and C served the publish after {spread:?}"
        );
        // Each instance says what it serves, and lists the others.
        a.eventually(Duration::from_secs(6), "three instances listed", || async {
            let ready: Value = a.get("/readyz").await.json().await.unwrap();
            ready["instances"].as_array().is_some_and(|l| {
                l.len() == 3
                    && l.iter()
                        .all(|i| i["versions"]["main"] == ready["rulesets"]["main"])
            })
        })
        .await;

        // A publish from a stale base on another instance is refused: the database decides.
        let response = c
            .client
            .put(c.url("/api/v1/rulesets/main"))
            .bearer_auth(ADMIN)
            .json(&json!({ "content": answering("avond"), "base": version, "note": "stale" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 409, "{}", response.text().await.unwrap());

        // A publish on A, and at once one on B from the version A just published: B's copy
        // may lag a moment behind the database, which is not a conflict.
        let put = |server: &TestServer, route: &str, base: &str| {
            server
                .client
                .put(server.url("/api/v1/rulesets/main"))
                .bearer_auth(ADMIN)
                .json(&json!({ "content": answering(route), "base": base, "note": route }))
                .send()
        };
        let serving = a.app.store.catalog().rulesets["main"].version.clone();
        let response = put(&a, "mobiel", &serving).await.unwrap();
        assert_eq!(response.status(), 200);
        let on_a: Value = response.json().await.unwrap();
        let response = put(&b, "balie", on_a["hash"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "{url}: {}",
            response.text().await.unwrap()
        );
        all_answer(&servers, "balie").await;

        // A file saved by hand on instance C: every instance serves it.
        let started = Instant::now();
        std::fs::write(c.rules.join("main.yaml"), answering("avond")).unwrap();
        let spread = all_answer(&servers, "avond").await;
        println!(
            "{}: a file saved on C served by all three after {} ms",
            a.app.storage.kind(),
            spread.as_millis()
        );
        assert!(
            started.elapsed() <= Duration::from_secs(2),
            "{url}: {spread:?}"
        );
        // …and B's copy on disk is that file.
        assert_eq!(
            std::fs::read_to_string(b.rules.join("main.yaml")).unwrap(),
            answering("avond")
        );

        // A fourth instance started now serves the published version at once.
        let d = TestServer::with_database(&[("main.yaml", &answering("mobiel"))], &config(), &url)
            .await;
        assert_eq!(
            mobile_route(&d).await,
            "avond",
            "{url}: the database wins at start"
        );

        for server in [a, b, c, d] {
            server.stop().await;
        }
        if let Some(pg) = pg {
            pg.drop().await;
        }
    }
}

/// A client that keeps cookies to itself: the test carries the session cookie by hand.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_console_session_opened_on_one_instance_works_on_the_others_until_logout() {
    let dir = tempfile::tempdir().unwrap();
    for (url, pg) in databases("instances_sessions", dir.path()).await {
        let a = TestServer::with_database(&[("main.yaml", &answering("mobiel"))], &config(), &url)
            .await;
        let b = TestServer::with_database(&[], &config(), &url).await;
        let client = browser();
        let cookie = common::console_login(&client, &a.base, ADMIN).await;
        for page in [
            "/admin",
            "/admin/calls",
            "/admin/rulesets/main",
            "/admin/plugins",
        ] {
            for server in [&a, &b] {
                let response = client
                    .get(server.url(page))
                    .header("cookie", &cookie)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200, "{url}: {page} on {}", server.base);
            }
        }
        // The overview lists both instances and what they serve.
        let b_id = b.app.cluster.id.clone();
        a.eventually(
            Duration::from_secs(6),
            "both instances on the overview",
            || {
                let (client, cookie, b_id, url) = (&client, &cookie, &b_id, a.url("/admin"));
                async move {
                    let page = client
                        .get(url)
                        .header("cookie", cookie)
                        .send()
                        .await
                        .unwrap()
                        .text()
                        .await
                        .unwrap();
                    page.contains("id=\"instances\"") && page.contains(b_id.as_str())
                }
            },
        )
        .await;
        // The CSRF token of the session is the same on both: a form from A posts on B.
        let page = client
            .get(b.url("/admin/plugins"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let csrf = page
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_string();
        let logout = client
            .post(b.url("/admin/logout"))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string([("csrf", csrf.as_str())]).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(logout.status(), 303, "{url}");
        // Logged out on B: over on A too, at once.
        let after = client
            .get(a.url("/admin"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(
            after.status(),
            401,
            "{url}: the session outlived its logout on A"
        );
        // A restart logs nobody out: a new session survives a new instance on the database.
        a.stop().await;
        b.stop().await;
        if let Some(pg) = pg {
            pg.drop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stop_drains_first_and_health_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("drain.db").display());
    let a =
        TestServer::with_database(&[("main.yaml", &answering("mobiel"))], &config(), &url).await;
    assert_eq!(a.get("/healthz").await.status(), 200);
    a.app.cluster.start_draining();
    let health = a.get("/healthz").await;
    assert_eq!(health.status(), 503);
    assert_eq!(health.text().await.unwrap(), "draining\n");
    let ready = a.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "draining");
    // Calls are still answered while draining.
    assert_eq!(mobile_route(&a).await, "mobiel");
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forgetting_a_caller_on_one_instance_forgets_it_on_all() {
    let crm = common::crm::FakeCrm::start().await;
    crm.add_ticket("+31152026057", "1003");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("forget.db").display());
    let config = format!(
        "{}plugins:\n{}",
        config(),
        crm.plugin_config("tickets", "    cache: { ttl: 1h }\n")
    );
    let rules = "default: receptie\nlookups: [tickets]\nrules:\n  - name: Open ticket\n    when: tickets.count > 0\n    script: '`agent_${tickets.agent}`'\n";
    let a = TestServer::with_database(&[("main.yaml", rules)], &config, &url).await;
    let b = TestServer::with_database(&[], &config, &url).await;
    assert_eq!(b.route("main", "31152026057").await, "agent_1003");
    crm.clear_tickets();
    crm.add_ticket("+31152026057", "1004");
    // Cached on B: the CRM is not asked again.
    assert_eq!(b.route("main", "31152026057").await, "agent_1003");
    let asked = crm.requests();
    let response = a
        .client
        .post(a.url("/api/v1/plugins/tickets/invalidate"))
        .bearer_auth(ADMIN)
        .json(&json!({ "caller": "015-2026057" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    // Forgotten on B too: its next call asks the CRM and gets the new owner.
    let took = b
        .eventually(Duration::from_secs(2), "B forgot the caller", || async {
            b.route("main", "31152026057").await == "agent_1004"
        })
        .await;
    println!(
        "forgotten on the other instance after {} ms",
        took.as_millis()
    );
    assert!(crm.requests() > asked);
    a.stop().await;
    b.stop().await;
    crm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rules_push_publishes_a_directory_to_every_instance_after_its_checks_and_tests() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("push.db").display());
    let a =
        TestServer::with_database(&[("main.yaml", &answering("mobiel"))], &config(), &url).await;
    let b = TestServer::with_database(&[], &config(), &url).await;
    let push_dir = dir.path().join("git");
    std::fs::create_dir(&push_dir).unwrap();
    let push = |args: &[&str]| {
        let mut command = common::binary::belroute();
        command
            .args(["rules", "push"])
            .arg(&push_dir)
            .args(["--database", &url])
            .args(args);
        let out = command.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };

    // A test that fails: nothing pushed, exit 1.
    let failing = answering("balie").replace("expect: balie", "expect: mobiel");
    std::fs::write(push_dir.join("main.yaml"), &failing).unwrap();
    let (code, out) = push(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("nothing pushed"), "{out}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mobile_route(&b).await, "mobiel");

    // Fixed: published, and both instances serve it within a second.
    std::fs::write(push_dir.join("main.yaml"), answering("balie")).unwrap();
    std::fs::write(push_dir.join("second.yaml"), "default: tweede\nrules: []\n").unwrap();
    let (code, out) = push(&["--note", "commit 1a2b3c"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("main: published"), "{out}");
    assert!(
        out.contains("second: published") && out.contains("(new)"),
        "{out}"
    );
    let spread = all_answer(&[&a, &b], "balie").await;
    assert!(spread <= Duration::from_secs(1), "{spread:?}");
    b.eventually(Duration::from_secs(2), "the new rule set on B", || async {
        b.route("second", "31612345678").await == "tweede"
    })
    .await;
    // In the history, from `push`, with the note.
    let history: Value = a
        .client
        .get(a.url("/api/v1/rulesets/main/revisions"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history["revisions"][0]["source"], "push", "{history}");
    assert_eq!(
        history["revisions"][0]["note"], "commit 1a2b3c",
        "{history}"
    );

    // Again: unchanged. With --prune and `second` gone from the directory: removed everywhere.
    std::fs::remove_file(push_dir.join("second.yaml")).unwrap();
    let (code, out) = push(&["--prune"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("main: unchanged"), "{out}");
    assert!(out.contains("second: removed"), "{out}");
    b.eventually(Duration::from_secs(2), "`second` removed on B", || async {
        b.get("/hooks/second").await.status() == 404
    })
    .await;
    assert!(!b.rules.join("second.yaml").exists());
    a.stop().await;
    b.stop().await;
}
