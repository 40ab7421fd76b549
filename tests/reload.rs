//! Hot reload, every way an editor or an orchestrator saves a file, with real files and time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::os::unix::fs::symlink;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{TestServer, answering};

/// Operators are promised a saved file is live within a second.
const RELOAD_LIMIT: Duration = Duration::from_secs(1);

async fn wait_for_route(server: &TestServer, ruleset: &str, route: &str) -> Duration {
    server
        .eventually(
            RELOAD_LIMIT,
            &format!("{ruleset} answering {route}"),
            || async {
                let response = server.post_json(&format!("/hooks/{ruleset}"), "{}").await;
                response.status() == 200 && response.text().await.unwrap() == route
            },
        )
        .await
}

#[tokio::test]
async fn in_place_write_is_live_within_a_second() {
    let server = TestServer::start(&[("main.yaml", &answering("one"))]).await;
    assert_eq!(server.route("main", "").await, "one");
    // Truncate and write the same inode, as vim with `backupcopy=yes` and most IDEs do.
    std::fs::write(server.rules.join("main.yaml"), answering("two")).unwrap();
    let took = wait_for_route(&server, "main", "two").await;
    eprintln!("in-place write live after {took:?}");
    server.stop().await;
}

#[tokio::test]
async fn write_then_rename_is_live_within_a_second() {
    let server = TestServer::start(&[("main.yaml", &answering("one"))]).await;
    let tmp = server.rules.join(".main.yaml.swp");
    std::fs::write(&tmp, answering("two")).unwrap();
    std::fs::rename(&tmp, server.rules.join("main.yaml")).unwrap();
    wait_for_route(&server, "main", "two").await;
    server.stop().await;
}

/// Kubernetes mounts a ConfigMap as `..data -> ..2026_…` with `main.yaml -> ..data/main.yaml`
/// and swaps `..data` atomically on update.
#[tokio::test]
async fn kubernetes_configmap_symlink_swap_is_live_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(rules.join("..v1")).unwrap();
    std::fs::write(rules.join("..v1/main.yaml"), answering("one")).unwrap();
    symlink("..v1", rules.join("..data")).unwrap();
    symlink("..data/main.yaml", rules.join("main.yaml")).unwrap();
    let server = TestServer::serve(dir, rules.clone(), "").await;
    assert_eq!(server.route("main", "").await, "one");

    std::fs::create_dir(rules.join("..v2")).unwrap();
    std::fs::write(rules.join("..v2/main.yaml"), answering("two")).unwrap();
    symlink("..v2", rules.join("..data_tmp")).unwrap();
    std::fs::rename(rules.join("..data_tmp"), rules.join("..data")).unwrap();
    std::fs::remove_dir_all(rules.join("..v1")).unwrap();
    wait_for_route(&server, "main", "two").await;
    server.stop().await;
}

/// `--rules /etc/belroute/rules` where `rules` is itself a symlink that a deploy swaps.
#[tokio::test]
async fn swapping_the_rules_directory_symlink_is_live_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    for (version, route) in [("v1", "one"), ("v2", "two")] {
        std::fs::create_dir(dir.path().join(version)).unwrap();
        std::fs::write(dir.path().join(version).join("main.yaml"), answering(route)).unwrap();
    }
    let rules = dir.path().join("rules");
    symlink("v1", &rules).unwrap();
    let server = TestServer::serve(dir, rules.clone(), "").await;
    assert_eq!(server.route("main", "").await, "one");

    let tmp = server.dir.path().join("rules.tmp");
    symlink("v2", &tmp).unwrap();
    std::fs::rename(&tmp, &rules).unwrap();
    wait_for_route(&server, "main", "two").await;
    // And edits in the new target are watched too.
    std::fs::write(server.dir.path().join("v2/main.yaml"), answering("three")).unwrap();
    wait_for_route(&server, "main", "three").await;
    server.stop().await;
}

#[tokio::test]
async fn new_files_add_and_deleted_files_remove_a_rule_set() {
    let server = TestServer::start(&[("main.yaml", &answering("one"))]).await;
    assert_eq!(server.post_json("/hooks/extra", "{}").await.status(), 404);
    std::fs::write(server.rules.join("extra.yaml"), answering("extra")).unwrap();
    wait_for_route(&server, "extra", "extra").await;
    std::fs::remove_file(server.rules.join("extra.yaml")).unwrap();
    server
        .eventually(RELOAD_LIMIT, "extra removed", || async {
            server.post_json("/hooks/extra", "{}").await.status() == 404
        })
        .await;
    assert_eq!(server.route("main", "").await, "one");
    server.stop().await;
}

#[tokio::test]
async fn a_broken_file_is_refused_and_the_last_good_version_keeps_serving() {
    let server = TestServer::start(&[("main.yaml", &answering("one"))]).await;
    std::fs::write(
        server.rules.join("main.yaml"),
        "default: x\nrules:\n  - name: Broken\n    when: 'caller.anonymous &&'\n    route: two\n",
    )
    .unwrap();
    server
        .eventually(RELOAD_LIMIT, "readyz reports the refusal", || async {
            server.get("/readyz").await.status() == 503
        })
        .await;
    let ready: serde_json::Value = server.get("/readyz").await.json().await.unwrap();
    let refused = &ready["refused"][0];
    assert_eq!(refused["ruleset"], "main");
    let error = refused["errors"][0].as_str().unwrap();
    assert!(
        error.contains("main.yaml:4:") && error.contains("rule `Broken`"),
        "{error}"
    );
    assert!(refused["serving_version"].is_string());
    assert_eq!(
        server.route("main", "").await,
        "one",
        "last good version still answers"
    );

    std::fs::write(server.rules.join("main.yaml"), answering("fixed")).unwrap();
    wait_for_route(&server, "main", "fixed").await;
    assert_eq!(server.get("/readyz").await.status(), 200);
    server.stop().await;
}

/// A typo in a field name is refused like a syntax error, before any call sees it: a rule
/// reading `caller.knd` would otherwise be silently false on every call.
#[tokio::test]
async fn a_field_typo_is_refused_and_the_last_good_version_keeps_serving() {
    let server = TestServer::start(&[("main.yaml", &answering("one"))]).await;
    std::fs::write(
        server.rules.join("main.yaml"),
        "default: x
rules:
  - name: Mobiles
    when: caller.knd == \"mobile\"
    route: two
",
    )
    .unwrap();
    server
        .eventually(RELOAD_LIMIT, "readyz reports the refusal", || async {
            server.get("/readyz").await.status() == 503
        })
        .await;
    let ready: serde_json::Value = server.get("/readyz").await.json().await.unwrap();
    let error = ready["refused"][0]["errors"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.ends_with(
            "main.yaml:4:18: rule `Mobiles`: unknown field `caller.knd`; did you mean `kind`?"
        ),
        "{error}"
    );
    assert_eq!(server.route("main", "0612345678").await, "one");
    server.stop().await;
}

/// A rule set that never loaded cannot answer; it says so, and the others still serve.
#[tokio::test]
async fn a_file_broken_from_the_start_is_503_and_the_others_serve() {
    let server =
        TestServer::start(&[("good.yaml", &answering("good")), ("bad.yaml", "rules: [")]).await;
    assert_eq!(server.route("good", "").await, "good");
    let response = server.post_json("/hooks/bad", "{}").await;
    assert_eq!(response.status(), 503);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("bad.yaml:1:9: YAML syntax")
    );
    server.stop().await;
}

/// Rule files rewritten over and over (good, other good, broken) while clients call: no request
/// fails, and every answer comes from one consistent version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_loop_under_concurrent_requests_fails_no_request() {
    let version_a = answering("route_a");
    let version_b = answering("route_b");
    let broken = "default: x\nrules: [ {name: x, when: '((', route: y} ]\n";
    let server = Arc::new(TestServer::start(&[("main.yaml", &version_a)]).await);
    let versions = [
        (belroute_engine::content_version(&version_a), "route_a"),
        (belroute_engine::content_version(&version_b), "route_b"),
    ];
    let done = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (server, done, answered, versions) = (
            server.clone(),
            done.clone(),
            answered.clone(),
            versions.clone(),
        );
        clients.push(tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let response = server
                    .post_json("/hooks/main", r#"{"caller_number":"31152026057"}"#)
                    .await;
                assert_eq!(response.status(), 200);
                let version = response.headers()["x-belroute-version"]
                    .to_str()
                    .unwrap()
                    .to_string();
                let route = response.text().await.unwrap();
                let expected = versions
                    .iter()
                    .find(|(v, _)| *v == version)
                    .map(|(_, r)| *r);
                assert_eq!(
                    Some(route.as_str()),
                    expected,
                    "route and version from one file version"
                );
                answered.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for round in 0..60 {
        let content = match round % 3 {
            0 => version_b.as_str(),
            1 => broken,
            _ => version_a.as_str(),
        };
        if round % 2 == 0 {
            std::fs::write(server.rules.join("main.yaml"), content).unwrap();
        } else {
            let tmp = server.rules.join(".main.tmp");
            std::fs::write(&tmp, content).unwrap();
            std::fs::rename(&tmp, server.rules.join("main.yaml")).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    done.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    assert!(
        answered.load(Ordering::Relaxed) > 100,
        "clients kept calling during reloads"
    );
}

/// A YAML alias bomb (~350 bytes expanding to 10⁹ nodes) saved into the live rules directory,
/// over a served file and as a new one: both refused at once with the alias's position; every
/// rule set keeps answering.
#[tokio::test]
async fn an_alias_bomb_in_the_live_directory_is_refused_and_calls_are_answered() {
    let server = TestServer::start(&[
        ("main.yaml", &answering("one")),
        ("other.yaml", &answering("other")),
    ])
    .await;
    let mut bomb = String::from("default: x\nrules: []\na: &a [lol]\n");
    for pair in ('a'..='j').collect::<Vec<_>>().windows(2) {
        let refs = vec![format!("*{}", pair[0]); 10].join(",");
        bomb.push_str(&format!("{0}: &{0} [{refs}]\n", pair[1]));
    }
    std::fs::write(server.rules.join("main.yaml"), &bomb).unwrap();
    std::fs::write(server.rules.join("bomb.yaml"), &bomb).unwrap();
    server
        .eventually(RELOAD_LIMIT, "both bombs refused", || async {
            let ready: serde_json::Value = server.get("/readyz").await.json().await.unwrap();
            ready["refused"].as_array().map(Vec::len) == Some(2)
        })
        .await;
    let ready: serde_json::Value = server.get("/readyz").await.json().await.unwrap();
    for refused in ready["refused"].as_array().unwrap() {
        let error = refused["errors"][0].as_str().unwrap();
        assert!(
            error.contains(".yaml:9:") && error.contains("YAML aliases expand to more than"),
            "{error}"
        );
    }
    assert_eq!(server.route("main", "").await, "one", "last good version");
    assert_eq!(server.route("other", "").await, "other");
    assert_eq!(server.get("/healthz").await.status(), 200);
    assert_eq!(server.post_json("/hooks/bomb", "{}").await.status(), 503);
    server.stop().await;
}

/// A rule set with its own test; `route` is what it answers, `expected` what its test expects.
fn tested(route: &str, expected: &str) -> String {
    format!(
        "default: fallback\nrules:\n  - name: Always\n    route: {route}\ntests:\n  - name: Answers {expected}\n    expect: {expected}\n"
    )
}

#[tokio::test]
async fn a_version_whose_own_tests_fail_is_refused_and_the_last_good_one_serves() {
    let server = TestServer::start(&[("main.yaml", &tested("one", "one"))]).await;
    assert_eq!(server.route("main", "").await, "one");

    // Saved with a test that fails: refused like a syntax error, "one" keeps answering.
    std::fs::write(server.rules.join("main.yaml"), tested("two", "one")).unwrap();
    server
        .eventually(RELOAD_LIMIT * 2, "the failing test on /readyz", || async {
            server.get("/readyz").await.status() == 503
        })
        .await;
    let ready = server.get("/readyz").await.text().await.unwrap();
    assert!(
        ready.contains("main.yaml:6:5: test `Answers one` fails: expected route `one`, got `two`"),
        "{ready}"
    );
    assert_eq!(server.route("main", "").await, "one");

    // Fixed: the new version goes live and the refusal clears.
    std::fs::write(server.rules.join("main.yaml"), tested("two", "two")).unwrap();
    wait_for_route(&server, "main", "two").await;
    assert_eq!(server.get("/readyz").await.status(), 200);

    // The test file beside it counts too, and saving it alone runs the tests again.
    std::fs::write(
        server.rules.join("main.test.yaml"),
        "- name: From the test file\n  expect: three\n",
    )
    .unwrap();
    server
        .eventually(RELOAD_LIMIT * 2, "the test file's failure", || async {
            server.get("/readyz").await.text().await.unwrap().contains(
                "main.test.yaml:1:3: test `From the test file` fails: expected route `three`",
            )
        })
        .await;
    assert_eq!(server.route("main", "").await, "two");
    server.stop().await;
}

#[tokio::test]
async fn a_rule_set_failing_its_tests_at_start_up_is_not_served() {
    let server = TestServer::start(&[
        ("bad.yaml", &tested("two", "one")),
        ("good.yaml", &tested("ok", "ok")),
    ])
    .await;
    assert_eq!(server.post_json("/hooks/bad", "{}").await.status(), 503);
    assert_eq!(server.route("good", "").await, "ok");
    server.stop().await;

    // The gate can be turned off.
    let server = TestServer::with_config(
        &[("bad.yaml", &tested("two", "one"))],
        "reload:\n  run_tests: false\n",
    )
    .await;
    assert_eq!(server.route("bad", "").await, "two");
    server.stop().await;
}
