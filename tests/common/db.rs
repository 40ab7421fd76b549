//! Real databases for tests: a fresh MariaDB database or PostgreSQL schema per test, from the
//! URLs `.ci/run` sets; a test without its URL says it is skipped — except under CI (`CI` set),
//! where a skipped database test would pass without testing anything, so it fails instead.

use sqlx::{Connection, Executor};

/// A database to run one test in, and the URL a plugin uses to reach it.
pub struct TestDb {
    pub url: String,
    cleanup: Option<(String, String)>,
}

/// The server URL in `variable`; `None` (and a note) when unset outside CI.
fn server_url(variable: &str, example: &str, test: &str) -> Option<String> {
    if let Ok(url) = std::env::var(variable) {
        return Some(url);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test} needs a database under CI: set {variable} (e.g. {example})"
    );
    eprintln!("skipped {test}: set {variable} (e.g. {example}) to run it");
    None
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}_{}_{}", std::process::id(), nanos % 1_000_000_000)
}

/// A new MariaDB/MySQL database, or `None` (and a note) when BELROUTE_TEST_MYSQL_URL is unset.
pub async fn mysql(test: &str) -> Option<TestDb> {
    let server = server_url(
        "BELROUTE_TEST_MYSQL_URL",
        "mysql://root@127.0.0.1:3306/test",
        test,
    )?;
    let name = unique("belroute_t");
    let mut conn = sqlx::MySqlConnection::connect(&server)
        .await
        .expect("MariaDB at BELROUTE_TEST_MYSQL_URL");
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(&server);
    Some(TestDb {
        url: format!("{base}/{name}"),
        cleanup: Some((server.clone(), format!("DROP DATABASE {name}"))),
    })
}

/// A new PostgreSQL schema, or `None` (and a note) when BELROUTE_TEST_POSTGRES_URL is unset.
pub async fn postgres(test: &str) -> Option<TestDb> {
    let server = server_url(
        "BELROUTE_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/test",
        test,
    )?;
    let name = unique("t");
    let mut conn = sqlx::PgConnection::connect(&server)
        .await
        .expect("PostgreSQL at BELROUTE_TEST_POSTGRES_URL");
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
        .await
        .unwrap();
    let separator = if server.contains('?') { '&' } else { '?' };
    Some(TestDb {
        url: format!("{server}{separator}options=-c%20search_path%3D{name}"),
        cleanup: Some((server.clone(), format!("DROP SCHEMA {name} CASCADE"))),
    })
}

/// A new SQLite file.
pub fn sqlite(dir: &std::path::Path) -> TestDb {
    TestDb {
        url: format!("sqlite://{}?mode=rwc", dir.join("crm.db").display()),
        cleanup: None,
    }
}

impl TestDb {
    /// Runs statements (schema and data) on this database.
    pub async fn run(&self, statements: &[&str]) {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.url).await.unwrap();
        for statement in statements {
            conn.execute(sqlx::AssertSqlSafe(statement.to_string()))
                .await
                .unwrap();
        }
    }

    pub async fn drop(self) {
        if let Some((server, statement)) = &self.cleanup {
            sqlx::any::install_default_drivers();
            let mut conn = sqlx::AnyConnection::connect(server).await.unwrap();
            conn.execute(sqlx::AssertSqlSafe(statement.clone()))
                .await
                .unwrap();
        }
    }
}

/// A number from `query` (`SELECT COUNT(*) …`), read with a direct connection, not through
/// belroute.
pub async fn count(url: &str, query: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(query.to_string()))
        .fetch_one(&mut conn)
        .await
        .unwrap()
}
