//! Changing routing over the API and the console, against a real server on loopback, real
//! files and real SQLite and PostgreSQL: the test gate (`422`, file unchanged), optimistic
//! locking (`409`), revisions of files saved by hand, compare against logged calls, restore,
//! the audit log, tokens and roles, and the forms that change only their values.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::time::Duration;

use common::TestServer;
use serde_json::{Value, json};

const ADMIN: &str = "changes-admin-token-0123456789";

/// Routes on the caller alone, with a test that pins the mobile route.
const MAIN: &str = "# Hoofdnummer\ndefault: receptie\nroutes: [receptie, mobiel, balie]\nholidays:\n  - { date: 2026-12-25, name: Eerste Kerstdag }   # keep this comment\n\nrules:\n  - name: Mobile callers\n    when: caller.kind == \"mobile\"\n    route: mobiel\n  - name: Desk hours\n    when: 'open_hours(\"mon-fri 08:30-17:30\") && caller.country == \"BE\"'\n    route: balie\ntests:\n  - name: A mobile caller goes to mobiel\n    call: { caller_number: \"31612345678\" }\n    expect: mobiel\n";

fn config() -> String {
    format!("admin:\n  token: {ADMIN}\n")
}

struct Api<'a> {
    server: &'a TestServer,
}

impl Api<'_> {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .server
            .client
            .request(method, self.server.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, token, None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    async fn put(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, token, Some(body))
            .await
    }

    async fn version(&self) -> String {
        let (status, set) = self.get("/api/v1/rulesets/main", ADMIN).await;
        assert_eq!(status, 200, "{set}");
        set["version"].as_str().unwrap().to_string()
    }
}

/// The databases this test runs on: SQLite always, PostgreSQL when configured.
async fn databases(test: &str, dir: &std::path::Path) -> Vec<(String, Option<common::db::TestDb>)> {
    let mut list = vec![(
        format!("sqlite://{}", dir.join("changes.db").display()),
        None,
    )];
    if let Some(pg) = common::db::postgres(test).await {
        list.push((pg.url.clone(), Some(pg)));
    }
    list
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draft_goes_live_only_through_the_gate_and_every_version_is_a_revision() {
    let dir = tempfile::tempdir().unwrap();
    for (url, pg) in databases("changes_gate", dir.path()).await {
        let server = TestServer::with_database(&[("main.yaml", MAIN)], &config(), &url).await;
        let api = Api { server: &server };
        let file = server.rules.join("main.yaml");
        let v1 = api.version().await;

        // The file as served at start is a revision, from `file`.
        server
            .eventually(Duration::from_secs(5), "the first revision", || async {
                let (_, list) = api.get("/api/v1/rulesets/main/revisions", ADMIN).await;
                list["revisions"].as_array().is_some_and(|l| l.len() == 1)
            })
            .await;
        let (_, list) = api.get("/api/v1/rulesets/main/revisions", ADMIN).await;
        assert_eq!(list["revisions"][0]["hash"], v1.as_str(), "{url}: {list}");
        assert_eq!(list["revisions"][0]["source"], "file");
        assert_eq!(list["revisions"][0]["author"], "file");

        // Check: the same problems `belroute check` finds, at their line and column.
        let typo = MAIN.replace("caller.kind ==", "caller.knd ==");
        let (status, checked) = api
            .post(
                "/api/v1/rulesets/main/check",
                ADMIN,
                json!({ "content": typo }),
            )
            .await;
        assert_eq!(status, 200, "{checked}");
        assert_eq!(checked["ok"], false);
        let problem = &checked["problems"][0];
        assert_eq!(problem["line"], 9, "{checked}");
        assert_eq!(problem["column"], 18, "{checked}");
        assert!(
            problem["message"]
                .as_str()
                .unwrap()
                .contains("unknown field `caller.knd`; did you mean `kind`?"),
            "{checked}"
        );

        // A draft whose own test fails: 422 with the test, nothing written, v1 serves.
        let breaks_test = MAIN.replace("    route: mobiel\n", "    route: receptie\n");
        let (status, refused) = api
            .put(
                "/api/v1/rulesets/main",
                ADMIN,
                json!({ "content": breaks_test, "base": v1, "note": "mobile to reception" }),
            )
            .await;
        assert_eq!(status, 422, "{url}: {refused}");
        assert_eq!(
            refused["failed_tests"][0]["name"], "A mobile caller goes to mobiel",
            "{refused}"
        );
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            MAIN,
            "file unchanged"
        );
        assert_eq!(api.version().await, v1);
        // A draft with problems: 422 with them.
        let (status, refused) = api
            .put(
                "/api/v1/rulesets/main",
                ADMIN,
                json!({ "content": typo, "base": v1, "note": "typo" }),
            )
            .await;
        assert_eq!(status, 422, "{refused}");
        assert_eq!(refused["problems"][0]["line"], 9, "{refused}");
        // No note: 400.
        let (status, _) = api
            .put(
                "/api/v1/rulesets/main",
                ADMIN,
                json!({ "content": MAIN, "base": v1, "note": " " }),
            )
            .await;
        assert_eq!(status, 400);

        // Two publishes from the same base: the first serves, the second gets 409.
        let v2_text = MAIN.replace("# Hoofdnummer", "# Hoofdnummer, version 2");
        let (status, published) = api
            .put(
                "/api/v1/rulesets/main",
                ADMIN,
                json!({ "content": v2_text, "base": v1, "note": "a better comment" }),
            )
            .await;
        assert_eq!(status, 200, "{url}: {published}");
        let v2 = published["hash"].as_str().unwrap().to_string();
        assert_eq!(api.version().await, v2, "serving when the answer comes");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), v2_text);
        let (status, conflict) = api
            .put(
                "/api/v1/rulesets/main",
                ADMIN,
                json!({ "content": MAIN.replace("# Hoofdnummer", "# other"), "base": v1, "note": "mine" }),
            )
            .await;
        assert_eq!(status, 409, "{conflict}");
        assert_eq!(conflict["current"], v2.as_str(), "{conflict}");
        let message = conflict["error"].as_str().unwrap();
        assert!(message.contains("by admin (api)"), "{message}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), v2_text);
        // A new rule set's base is null; one that exists is a conflict.
        let (status, _) = api
            .put(
                "/api/v1/rulesets/main",
                ADMIN,
                json!({ "content": MAIN, "base": null, "note": "again" }),
            )
            .await;
        assert_eq!(status, 409);
        let (status, created) = api
            .put(
                "/api/v1/rulesets/sales",
                ADMIN,
                json!({ "content": "default: verkoop\nrules: []\n", "base": null, "note": "the sales line" }),
            )
            .await;
        assert_eq!(status, 200, "{created}");
        assert_eq!(server.route("sales", "0152026057").await, "verkoop");

        // A file saved by hand is a revision from `file`.
        let v3_text = v2_text.replace("version 2", "version 3, by hand");
        std::fs::write(&file, &v3_text).unwrap();
        let v3 = belroute_engine::content_version(&v3_text);
        server
            .eventually(
                Duration::from_secs(10),
                "the hand-saved revision",
                || async {
                    let (_, list) = api.get("/api/v1/rulesets/main/revisions", ADMIN).await;
                    list["revisions"][0]["hash"] == v3.as_str()
                },
            )
            .await;
        let (_, list) = api.get("/api/v1/rulesets/main/revisions", ADMIN).await;
        let revisions = list["revisions"].as_array().unwrap();
        assert_eq!(revisions.len(), 3, "{list}");
        assert_eq!(revisions[0]["source"], "file");
        assert_eq!(revisions[1]["hash"], v2.as_str());
        assert_eq!(revisions[1]["source"], "api");
        assert_eq!(revisions[1]["author"], "admin");
        assert_eq!(revisions[1]["note"], "a better comment");
        let (status, one) = api
            .get(&format!("/api/v1/rulesets/main/revisions/{v2}"), ADMIN)
            .await;
        assert_eq!(status, 200);
        assert_eq!(one["content"], v2_text.as_str());

        // Restore v1: as a publish, from the current version.
        let (status, restored) = api
            .post(
                "/api/v1/rulesets/main/restore",
                ADMIN,
                json!({ "hash": v1, "note": "back to the first" }),
            )
            .await;
        assert_eq!(status, 200, "{restored}");
        assert_eq!(restored["hash"], v1.as_str());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), MAIN);
        assert_eq!(api.version().await, v1);

        // The audit log: who did what. A file saved by hand is audited by the recorder, which
        // looks at the catalog every 200 ms: wait for it.
        server
            .eventually(
                Duration::from_secs(10),
                "the hand-saved file audited",
                || async {
                    let (_, audit) = api.get("/api/v1/audit?since=1h", ADMIN).await;
                    audit.to_string().contains("\"ruleset.file\"")
                },
            )
            .await;
        let (status, audit) = api.get("/api/v1/audit?since=1h", ADMIN).await;
        assert_eq!(status, 200);
        let actions: Vec<(String, String, String)> = audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["actor"].as_str().unwrap().to_string(),
                    e["action"].as_str().unwrap().to_string(),
                    e["target"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let expect = |actor: &str, action: &str, target: &str| {
            assert!(
                actions.contains(&(actor.into(), action.into(), target.into())),
                "{url}: no {actor} {action} {target} in {actions:?}"
            );
        };
        expect("admin", "ruleset.publish", "main");
        expect("admin", "ruleset.create", "sales");
        expect("file", "ruleset.file", "main");
        expect("admin", "ruleset.restore", "main");
        server.stop().await;
        if let Some(pg) = pg {
            pg.drop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_decides_logged_calls_with_the_serving_version_and_the_draft() {
    let server = TestServer::with_config(&[("main.yaml", MAIN)], &config()).await;
    let api = Api { server: &server };
    for (i, caller) in ["31612345678", "31612345679", "0152026057"]
        .iter()
        .enumerate()
    {
        let body = json!({ "uuid": format!("call-{i}"), "caller_number": caller }).to_string();
        let answer = server
            .post_json("/hooks/main", body)
            .await
            .text()
            .await
            .unwrap();
        assert!(answer == "mobiel" || answer == "receptie", "{answer}");
    }
    // Reading a call flushes the log.
    let (status, _) = api.get("/api/v1/calls/call-2", ADMIN).await;
    assert_eq!(status, 200);
    let draft = MAIN
        .replace("    route: mobiel\n", "    route: balie\n")
        .replace("expect: mobiel", "expect: balie");
    let (status, compared) = api
        .post(
            "/api/v1/rulesets/main/compare",
            ADMIN,
            json!({ "content": draft, "since": "1h" }),
        )
        .await;
    assert_eq!(status, 200, "{compared}");
    assert_eq!(compared["calls"], 3, "{compared}");
    assert_eq!(compared["changed"], 2, "{compared}");
    let change = &compared["changes"][0];
    assert_eq!(change["from"]["route"], "mobiel", "{compared}");
    assert_eq!(change["to"]["route"], "balie", "{compared}");
    assert_eq!(change["count"], 2);
    let mut examples: Vec<&str> = change["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    examples.sort_unstable();
    assert_eq!(examples, ["call-0", "call-1"]);
    // The draft unchanged: nothing would route differently.
    let (_, same) = api
        .post(
            "/api/v1/rulesets/main/compare",
            ADMIN,
            json!({ "content": MAIN.replace("# Hoofdnummer", "# only a comment") }),
        )
        .await;
    assert_eq!(same["calls"], 3, "{same}");
    assert_eq!(same["changed"], 0, "{same}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_reaches_what_it_may_and_nothing_else() {
    let server = TestServer::with_config(&[("main.yaml", MAIN)], &config()).await;
    let api = Api { server: &server };
    let mut tokens = std::collections::BTreeMap::new();
    for (name, role) in [("anna", "editor"), ("vera", "viewer"), ("crm", "agent")] {
        let (status, created) = api
            .post(
                "/api/v1/tokens",
                ADMIN,
                json!({ "name": name, "role": role }),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let token = created["token"].as_str().unwrap().to_string();
        assert!(token.starts_with("brt_") && token.len() == 68, "{token}");
        tokens.insert(name, token);
    }
    let (status, _) = api
        .post(
            "/api/v1/tokens",
            ADMIN,
            json!({ "name": "anna", "role": "viewer" }),
        )
        .await;
    assert_eq!(status, 409, "a name is taken once");
    let (status, _) = api
        .post(
            "/api/v1/tokens",
            ADMIN,
            json!({ "name": "bob", "role": "root" }),
        )
        .await;
    assert_eq!(status, 400);
    let (_, list) = api.get("/api/v1/tokens", ADMIN).await;
    assert_eq!(list["tokens"].as_array().unwrap().len(), 3);
    assert!(
        !list.to_string().contains("brt_"),
        "no token is ever listed"
    );

    // A call to look at, with a number.
    let body = json!({ "uuid": "seen", "caller_number": "31612345678" }).to_string();
    server.post_json("/hooks/main", body).await;
    let v1 = api.version().await;
    let draft = json!({ "content": MAIN.replace("# Hoofdnummer", "# by anna"), "base": v1, "note": "anna's change" });

    let (anna, vera, crm) = (&tokens["anna"], &tokens["vera"], &tokens["crm"]);
    // The viewer reads, with numbers masked, and changes nothing.
    let (status, call) = api.get("/api/v1/calls/seen", vera).await;
    assert_eq!(status, 200, "{call}");
    assert_eq!(call["caller"], "••••••••678", "{call}");
    let (status, call) = api.get("/api/v1/calls/seen", ADMIN).await;
    assert_eq!(
        (status, call["caller"].as_str()),
        (200, Some("31612345678"))
    );
    for (method, path) in [
        ("PUT", "/api/v1/rulesets/main"),
        ("POST", "/api/v1/rulesets/main/check"),
        ("POST", "/api/v1/rulesets/main/compare"),
        ("POST", "/api/v1/rulesets/main/restore"),
        ("POST", "/api/v1/rulesets/main/release"),
        ("POST", "/api/v1/tokens"),
        ("POST", "/api/v1/calls/seen/agent"),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let (status, _) = api
            .send(method.clone(), path, vera, Some(draft.clone()))
            .await;
        assert_eq!(status, 403, "viewer {method} {path}");
    }
    let (status, _) = api.get("/api/v1/rulesets/main/revisions", vera).await;
    assert_eq!(status, 200);
    // The agent token reports agents, and reads nothing.
    let (status, _) = api
        .post("/api/v1/calls/seen/agent", crm, json!({ "agent": "1003" }))
        .await;
    assert_eq!(status, 204);
    for path in ["/api/v1/rulesets", "/api/v1/calls", "/api/v1/audit"] {
        let (status, _) = api.get(path, crm).await;
        assert_eq!(status, 403, "agent GET {path}");
    }
    // The editor changes rule sets, not tokens or subscriptions.
    let (status, published) = api.put("/api/v1/rulesets/main", anna, draft.clone()).await;
    assert_eq!(status, 200, "{published}");
    let (status, _) = api
        .post(
            "/api/v1/tokens",
            anna,
            json!({ "name": "x", "role": "admin" }),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = api
        .post(
            "/api/v1/subscriptions",
            anna,
            json!({ "name": "s", "endpoint": "http://127.0.0.1:9/x" }),
        )
        .await;
    assert_eq!(status, 403);
    let (_, list) = api.get("/api/v1/rulesets/main/revisions", anna).await;
    assert_eq!(list["revisions"][0]["author"], "anna", "{list}");
    assert_eq!(list["revisions"][0]["note"], "anna's change");

    // A deleted token stops working at once.
    let (status, _) = api
        .send(reqwest::Method::DELETE, "/api/v1/tokens/anna", ADMIN, None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = api.get("/api/v1/rulesets", anna).await;
    assert_eq!(status, 401);
    let (_, audit) = api.get("/api/v1/audit", ADMIN).await;
    let text = audit.to_string();
    assert!(text.contains("\"action\":\"token.delete\""), "{text}");
    assert!(text.contains("\"actor\":\"anna\""), "{text}");
    server.stop().await;
}

/// The text of the console page's draft `<textarea>`, as the browser would send it.
fn draft_of(page: &str) -> String {
    let start = page.find("name=\"content\"").unwrap();
    let open = start + page[start..].find('>').unwrap() + 1;
    let close = open + page[open..].find("</textarea>").unwrap();
    let text = &page[open..close];
    // The browser drops one line break right after `<textarea>`.
    text.strip_prefix('\n')
        .unwrap_or(text)
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn field<'a>(page: &'a str, name: &str) -> &'a str {
    let at = page.find(&format!("name=\"{name}\" value=\"")).unwrap();
    let rest = &page[at + name.len() + 15..];
    &rest[..rest.find('"').unwrap()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forms_change_only_their_values() {
    let server = TestServer::with_config(&[("main.yaml", MAIN)], &config()).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = common::console_login(&client, &server.base, ADMIN).await;
    let get = |path: &str| {
        client
            .get(server.url(path))
            .header("cookie", &cookie)
            .send()
    };
    // The rule set's page is the belplan's checklist: one branch per declared route.
    let show = get("/admin/rulesets/main")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let branches = show
        .split("id=\"branches\"")
        .nth(1)
        .and_then(|rest| rest.split("</ul>").next())
        .expect("the rule set page lists the Voorwaarde-app's branches");
    for route in ["receptie", "mobiel", "balie"] {
        assert!(
            branches.contains(&format!("<code>{route}</code>")),
            "{branches}"
        );
    }
    assert!(
        branches.contains("<code>receptie</code> (the default)"),
        "{branches}"
    );

    let page = get("/admin/rulesets/main/hours")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (csrf, base) = (
        field(&page, "csrf").to_string(),
        field(&page, "base").to_string(),
    );
    assert!(page.contains("value=\"mon-fri 08:30-17:30\""), "{page}");

    // Hours: only the spec changes.
    let drafted = client
        .post(server.url("/admin/rulesets/main/hours"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("csrf", csrf.as_str()),
                ("base", base.as_str()),
                ("spec0", "mon-fri 08:30-16:00"),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(drafted.status(), 200);
    let page = drafted.text().await.unwrap();
    assert!(
        page.contains("id=\"comparison\""),
        "the compare table: {page}"
    );
    let hours = draft_of(&page);
    assert_eq!(hours, MAIN.replace("08:30-17:30", "08:30-16:00"));

    // Holidays: one added; the kept one and its comment stay byte for byte.
    let drafted = client
        .post(server.url("/admin/rulesets/main/holidays"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("csrf", csrf.as_str()),
                ("base", base.as_str()),
                (
                    "days",
                    "2026-12-25 Eerste Kerstdag\n2027-07-16 Bedrijfsuitje\n",
                ),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let page = drafted.text().await.unwrap();
    let holidays = draft_of(&page);
    assert_eq!(
        holidays,
        MAIN.replace(
            "   # keep this comment\n",
            "   # keep this comment\n  - { date: 2027-07-16, name: Bedrijfsuitje }\n"
        )
    );

    // Published from the console: the file is exactly the draft.
    let published = client
        .post(server.url("/admin/rulesets/main/edit"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("csrf", csrf.as_str()),
                ("base", base.as_str()),
                ("source", "console"),
                ("content", holidays.as_str()),
                ("note", "summer outing"),
                ("action", "publish"),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 200);
    let page = published.text().await.unwrap();
    assert!(page.contains("id=\"published\""), "{page}");
    assert_eq!(
        std::fs::read_to_string(server.rules.join("main.yaml")).unwrap(),
        holidays
    );
    // The form's stale base: the file changed since.
    let stale = client
        .post(server.url("/admin/rulesets/main/hours"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("csrf", csrf.as_str()),
                ("base", base.as_str()),
                ("spec0", "mon-fri 09:00-17:00"),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 409);
    server.stop().await;
}

/// Retention keeps every revision a retained call can point at (it served after the cut-off)
/// and the last 100 of each rule set, and deletes the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_revisions_go_when_no_retained_call_can_point_at_them() {
    use belroute::storage::Storage;
    use belroute::storage::revisions::{Revision, Source};
    let dir = tempfile::tempdir().unwrap();
    for (url, pg) in databases("changes_retention", dir.path()).await {
        let storage = Storage::open(&url).unwrap();
        storage.migrate().await.unwrap();
        let revision = |i: i64| Revision {
            ruleset: "main".into(),
            hash: format!("{i:012}"),
            loaded_at: 1_000 + i,
            source: Source::File,
            author: "file".into(),
            note: String::new(),
            content: None,
        };
        // 110 versions, each replaced by the next; the last serves.
        for i in 0..110 {
            assert!(
                storage
                    .record_revision(&revision(i), "default: x\nrules: []\n")
                    .await
                    .unwrap()
            );
            if i > 0 {
                let replaced_at = if i == 3 { 9_000 } else { 1_000 + i };
                storage
                    .revision_replaced("main", &format!("{:012}", i - 1), replaced_at)
                    .await
                    .unwrap();
            }
        }
        // Another rule set's only revision, long replaced: among its last 100, kept.
        let mut other = revision(0);
        other.ruleset = "sales".into();
        storage
            .record_revision(&other, "default: y\nrules: []\n")
            .await
            .unwrap();
        storage
            .revision_replaced("sales", &other.hash, 1_001)
            .await
            .unwrap();

        // Calls are kept from 5,000 on: revision 2 served until 9,000 and stays.
        let deleted = storage.purge_revisions(5_000).await.unwrap();
        assert_eq!(deleted, 9, "{url}: the 10 oldest less revision 2");
        let left = storage.revisions("main", 1_000).await.unwrap();
        assert_eq!(left.len(), 101, "{url}");
        assert!(left.iter().any(|r| r.hash == format!("{:012}", 2)), "{url}");
        assert!(
            !left.iter().any(|r| r.hash == format!("{:012}", 1)),
            "{url}"
        );
        assert_eq!(storage.revisions("sales", 10).await.unwrap().len(), 1);
        // Stored once: the same content again is not a new revision.
        assert!(!storage.record_revision(&revision(50), "x").await.unwrap());
        storage.close().await;
        if let Some(pg) = pg {
            pg.drop().await;
        }
    }
}
