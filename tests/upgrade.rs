//! Upgrades while calls flow: an instance of the previous build keeps working on a database a
//! newer build has migrated (a rolling upgrade, or going back to the previous package). That
//! holds because every migration only adds — checked here statement by statement — and
//! because belroute tolerates migrations it does not know; the second test starts this build
//! on a database that a "newer build" migrated further, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::path::Path;
use std::time::Duration;

use common::TestServer;
use sqlx::{Connection, Executor};

/// The statements of a migration file, without comments; a function's `$$` body is left out,
/// and a SQLite trigger's `BEGIN … END` stays one statement.
fn statements(text: &str) -> Vec<String> {
    let without_comments: String = text
        .lines()
        .map(|line| line.split("--").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let without_bodies: String = without_comments
        .split("$$")
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(_, part)| part)
        .collect::<Vec<_>>()
        .join("$$ $$");
    let mut statements: Vec<String> = Vec::new();
    let mut open_trigger = false;
    for part in without_bodies.split(';') {
        let part = part.split_whitespace().collect::<Vec<_>>().join(" ");
        if part.is_empty() {
            continue;
        }
        if open_trigger {
            let last = statements.last_mut().unwrap();
            last.push_str("; ");
            last.push_str(&part);
            open_trigger = part.to_uppercase() != "END";
            continue;
        }
        let upper = part.to_uppercase();
        open_trigger = upper.starts_with("CREATE TRIGGER ") && upper.contains(" BEGIN ");
        statements.push(part);
    }
    statements
}

#[test]
fn every_migration_only_adds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let names = |db: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(root.join(db))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names("sqlite"),
        names("postgres"),
        "every migration exists for SQLite and for PostgreSQL, under the same name"
    );
    for db in ["sqlite", "postgres"] {
        for name in names(db) {
            let text = std::fs::read_to_string(root.join(db).join(&name)).unwrap();
            for statement in statements(&text) {
                let upper = statement.to_uppercase();
                // New tables, indexes, triggers and their functions, rows for a new table, and
                // nullable columns (or ones with a DEFAULT).
                // An index may also go: a query of an older build that used it still runs
                // (none names an index), only by another path.
                let adds = upper.starts_with("CREATE TABLE ")
                    || upper.starts_with("DROP INDEX IF EXISTS ")
                    || upper.starts_with("CREATE INDEX ")
                    || upper.starts_with("CREATE UNIQUE INDEX ")
                    || upper.starts_with("CREATE TRIGGER ")
                    || upper.starts_with("CREATE FUNCTION ")
                    || upper.starts_with("INSERT INTO ")
                    || (upper.starts_with("ALTER TABLE ")
                        && upper.contains(" ADD COLUMN ")
                        && (!upper.contains("NOT NULL") || upper.contains("DEFAULT")));
                assert!(
                    adds,
                    "migrations/{db}/{name}: `{statement}` does not only add: an instance of the previous build could not work beside the new one during an upgrade. Add tables, indexes or nullable columns (or columns with a DEFAULT); remove old ones in a later release"
                );
            }
        }
    }
}

/// Plays the newer build: one more migration, applied and recorded as sqlx records it.
async fn migrate_as_a_newer_build(url: &str) {
    const NEWER: [&str; 2] = [
        "CREATE TABLE from_a_newer_release (id BIGINT PRIMARY KEY, note TEXT)",
        "ALTER TABLE calls ADD COLUMN newer_field TEXT",
    ];
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        for statement in NEWER {
            conn.execute(statement).await.unwrap();
        }
        conn.execute("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (99990101000001, 'from a newer release', 1, x'00', 0)").await.unwrap();
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        for statement in NEWER {
            conn.execute(statement).await.unwrap();
        }
        conn.execute("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (99990101000001, 'from a newer release', true, '\\x00'::bytea, 0)").await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn this_build_starts_and_works_on_a_database_a_newer_build_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let mut databases = vec![(
        format!("sqlite://{}", dir.path().join("upgrade.db").display()),
        None,
    )];
    if let Some(pg) = common::db::postgres("upgrade").await {
        databases.push((pg.url.clone(), Some(pg)));
    }
    for (url, pg) in databases {
        // The database as this build leaves it, then migrated further by a newer one.
        let storage = belroute::storage::Storage::open(&url).unwrap();
        storage.migrate().await.unwrap();
        storage.close().await;
        migrate_as_a_newer_build(&url).await;

        // This build starts on it, answers and records calls.
        let server =
            TestServer::with_database(&[("main.yaml", common::CALLER_RULES)], "", &url).await;
        assert_eq!(server.route("main", "442079460958").await, "international");
        assert!(server.app.call_log.flush(Duration::from_secs(10)).await);
        server.stop().await;
        let calls = common::db::count(&url, "SELECT COUNT(*) FROM calls").await;
        assert_eq!(calls, 1, "{url}: the call's record is in the log");

        // `belroute migrate` says so too, and changes nothing.
        let out = common::binary::belroute()
            .args(["migrate", "--database", &url])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("up to date"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        if let Some(pg) = pg {
            pg.drop().await;
        }
    }
}
