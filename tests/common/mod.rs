//! A real belroute on a loopback port, over real files in a temporary rules directory.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly
#![allow(dead_code)]

pub mod binary;
pub mod crm;
pub mod db;
pub mod proxy;
pub mod receiver;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use belroute::app::Belroute;
use belroute::config::Config;
use belroute::server::{self, Running, ServerOptions};
use belroute_engine::watch::{self, RulesWatcher};

pub struct TestServer {
    pub dir: tempfile::TempDir,
    /// The rules directory served (inside `dir`, or a symlink in it).
    pub rules: PathBuf,
    pub base: String,
    pub client: reqwest::Client,
    pub app: Belroute,
    running: Option<Running>,
    _watcher: RulesWatcher,
}

impl TestServer {
    /// Serves `files` (name → content) from a fresh rules directory, with no belroute.yaml.
    pub async fn start(files: &[(&str, &str)]) -> Self {
        Self::with_config(files, "").await
    }

    pub async fn with_config(files: &[(&str, &str)], config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules");
        std::fs::create_dir(&rules).unwrap();
        for (name, content) in files {
            std::fs::write(rules.join(name), content).unwrap();
        }
        Self::serve(dir, rules, config).await
    }

    /// Serves `files` with `config`, logging calls to the database at `database`.
    pub async fn with_database(files: &[(&str, &str)], config: &str, database: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules");
        std::fs::create_dir(&rules).unwrap();
        for (name, content) in files {
            std::fs::write(rules.join(name), content).unwrap();
        }
        Self::serve_with_database(dir, rules, config, Some(database)).await
    }

    /// Serves an existing rules path (a directory or a symlink to one) inside `dir`.
    pub async fn serve(dir: tempfile::TempDir, rules: PathBuf, config: &str) -> Self {
        Self::serve_with_database(dir, rules, config, None).await
    }

    /// As [`serve`]; the database defaults to a SQLite file in `dir`.
    pub async fn serve_with_database(
        dir: tempfile::TempDir,
        rules: PathBuf,
        config: &str,
        database: Option<&str>,
    ) -> Self {
        if std::env::var_os("BELROUTE_TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(
                    "debug,sqlx=info,actix=info,hyper=info,reqwest=info",
                ))
                .with_test_writer()
                .try_init();
        }
        let mut config = Config::parse(Path::new("belroute.yaml"), config).unwrap();
        // Each server its own spill file and crash journal, also on PostgreSQL (whose default
        // is the working directory, shared by every test).
        if config.storage.spill.is_none() {
            config.storage.spill = Some(dir.path().join("belroute-spill.jsonl"));
        }
        let default_db = format!("sqlite://{}", dir.path().join("belroute.db").display());
        let app = Belroute::open(config, &rules, database.unwrap_or(&default_db), worker())
            .await
            .unwrap();
        let watcher = watch::watch(app.store.clone()).unwrap();
        let options = ServerOptions {
            listen: "127.0.0.1:0".into(),
            workers: Some(2),
            shutdown_timeout: Duration::from_secs(1),
        };
        let running = server::start(&app, &options).await.unwrap();
        let base = format!("http://{}", running.addr());
        belroute_plugins::install_crypto_provider();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        TestServer {
            dir,
            rules,
            base,
            client,
            app,
            running: Some(running),
            _watcher: watcher,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn post_json(&self, path: &str, body: impl Into<String>) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.into())
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// The route answered for a call from `caller`.
    pub async fn route(&self, ruleset: &str, caller: &str) -> String {
        let body = serde_json::json!({ "caller_number": caller, "uuid": "test" }).to_string();
        let response = self.post_json(&format!("/hooks/{ruleset}"), body).await;
        assert_eq!(
            response.status(),
            200,
            "hook answered {}",
            response.status()
        );
        response.text().await.unwrap()
    }

    /// Polls until `check` is true; returns how long it took, or panics after `limit`.
    pub async fn eventually<F, Fut>(&self, limit: Duration, what: &str, check: F) -> Duration
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let started = Instant::now();
        loop {
            if check().await {
                return started.elapsed();
            }
            if started.elapsed() > limit {
                panic!("{what}: not within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops like SIGTERM does: requests in flight finish, the call log is flushed.
    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
        self.app.shutdown().await;
    }
}

/// Logs in to the console at `base` (a server or a balancer) with `token`; the session cookie
/// (`name=value`), after checking the login answered `303`.
pub async fn console_login(client: &reqwest::Client, base: &str, token: &str) -> String {
    let login = client
        .post(format!("{base}/admin/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string([("token", token)]).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303, "the console login");
    login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// A rule set that routes on the caller alone (no clock), so tests do not depend on the hour.
pub const CALLER_RULES: &str = r#"
description: test
timeout: 2s
default: receptie
rules:
  - name: Withheld
    when: caller.anonymous
    route: anoniem
  - name: Abroad
    when: caller.valid && caller.country != "NL"
    route: international
"#;

/// One rule set whose single rule answers `route`.
pub fn answering(route: &str) -> String {
    format!("default: fallback\nrules:\n  - name: Always\n    route: {route}\n")
}

/// The real binary's `worker` subcommand: rules not proven bounded run there, as in `serve`.
pub fn worker() -> belroute_engine::WorkerCommand {
    belroute_engine::WorkerCommand::new(env!("CARGO_BIN_EXE_belroute"), &["worker"])
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/callvoip")
            .join(name),
    )
    .unwrap()
}
