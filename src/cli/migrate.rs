//! `belroute migrate`: creates or updates belroute's own tables and says what it did. A
//! failure is said once, in the operator's terms: which server, and what went wrong there.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgDatabaseError};

use crate::storage::Storage;

/// How long `migrate` waits for the database server to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What `migrate` did: the migrations applied now, and how many the binary knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    pub applied: usize,
    pub total: usize,
}

impl std::fmt::Display for Migrated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.applied == 0 {
            write!(f, "up to date, {} migration(s)", self.total)
        } else {
            write!(
                f,
                "applied {} migration(s), {} in all",
                self.applied, self.total
            )
        }
    }
}

/// Runs the migrations on the database at `url` (`sqlite://FILE` or `postgres://…`). The error
/// is one line without a chain of sources (each of sqlx's errors repeats its source's text).
pub async fn migrate(url: &str) -> anyhow::Result<(Storage, Migrated)> {
    let storage = Storage::open(url)?;
    let target = target(url);
    if let Storage::Postgres(_) = storage {
        // The pool retries a refused connection until its timeout and then says only "pool
        // timed out": one connection of our own finds out why.
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| anyhow::anyhow!("database URL `{}`: {e}", redacted(url)))?;
        match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options)).await {
            Ok(Ok(connection)) => {
                let _ = connection.close().await;
            }
            Ok(Err(e)) => anyhow::bail!("cannot connect to {target}: {}", describe(&e, &target)),
            Err(_) => anyhow::bail!(
                "cannot connect to {target}: no answer within {} s; check the host and port in \
                 --database and that a firewall lets belroute through",
                CONNECT_TIMEOUT.as_secs()
            ),
        }
    }
    let migrator: Migrator = storage.migrator();
    let total = migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .count();
    let before = applied_count(&storage).await;
    let run = match &storage {
        Storage::Sqlite(pool) => migrator.run(pool).await,
        Storage::Postgres(pool) => migrator.run(pool).await,
    };
    if let Err(e) = run {
        anyhow::bail!(
            "migrating {target} failed: {}",
            describe_migrate(&e, &target)
        );
    }
    let after = applied_count(&storage).await.unwrap_or(total);
    let applied = after.saturating_sub(before.unwrap_or(0));
    Ok((storage, Migrated { applied, total }))
}

/// The migrations recorded as applied; `None` where the table does not exist yet.
async fn applied_count(storage: &Storage) -> Option<usize> {
    const QUERY: &str = "SELECT COUNT(*) FROM _sqlx_migrations WHERE success";
    let count: i64 = match storage {
        Storage::Sqlite(pool) => sqlx::query_scalar(QUERY).fetch_one(pool).await.ok()?,
        Storage::Postgres(pool) => sqlx::query_scalar(QUERY).fetch_one(pool).await.ok()?,
    };
    usize::try_from(count).ok()
}

/// "PostgreSQL at host:port (database name)" or "SQLite database FILE", without a password.
fn target(url: &str) -> String {
    url.parse::<crate::storage::DatabaseUrl>()
        .map(|url| url.describe())
        .unwrap_or_else(|_| format!("database {}", redacted(url)))
}

/// `url` with any password replaced by `***`.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

fn describe_migrate(error: &MigrateError, target: &str) -> String {
    match error {
        MigrateError::Execute(e) => describe(e, target),
        MigrateError::ExecuteMigration(e, version) => {
            format!("migration {version}: {}", describe(e, target))
        }
        MigrateError::VersionMismatch(version) => format!(
            "migration {version} was applied in a different form than this belroute has; the \
             database was migrated by another build of belroute: use that build, or a fresh \
             database"
        ),
        MigrateError::VersionMissing(version) | MigrateError::VersionTooNew(version, _) => {
            format!(
                "the database has migration {version}, which this belroute does not know: it was \
                 migrated by a newer belroute; upgrade this one"
            )
        }
        other => other.to_string(),
    }
}

/// One line for an error from the database server or the way to it, without sqlx's
/// repetitions and without PostgreSQL's source-file line ("at line 948").
fn describe(error: &sqlx::Error, target: &str) -> String {
    match error {
        sqlx::Error::Database(db) => {
            let mut text = db.message().to_string();
            // SQLITE_CANTOPEN
            if target.starts_with("SQLite") && db.code().as_deref() == Some("14") {
                text.push_str(
                    "; check that its directory exists and that belroute may write there",
                );
            }
            if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
                if let Some(detail) = pg.detail() {
                    text.push_str(&format!(" ({detail})"));
                }
                if let Some(hint) = pg.hint() {
                    text.push_str(&format!("; {hint}"));
                }
                match pg.code() {
                    // invalid_catalog_name
                    "3D000" => text.push_str(
                        "; create it first (createdb, or CREATE DATABASE) or name an existing \
                         one in --database",
                    ),
                    // invalid_password, invalid_authorization_specification
                    "28P01" | "28000" => text.push_str(
                        "; check the user and password in --database and the server's pg_hba.conf",
                    ),
                    _ => {}
                }
            }
            text
        }
        sqlx::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused (nothing listens \
                 there); start the database server, or correct the host and port in --database"
                .to_string(),
            std::io::ErrorKind::TimedOut => {
                "connection timed out; check the host and port in --database and the firewall"
                    .to_string()
            }
            std::io::ErrorKind::NotFound => {
                "not found; check the host name or socket path in --database".to_string()
            }
            _ => format!("{io}"),
        },
        sqlx::Error::PoolTimedOut => format!(
            "no connection within the pool's timeout; check that {target} is up and reachable"
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names_host_port_and_database_without_password() {
        assert_eq!(
            target("postgres://u:secret@db.example:6543/calls"),
            "PostgreSQL at db.example:6543 (database calls)"
        );
        assert_eq!(
            target("sqlite://belroute.db"),
            "SQLite database belroute.db"
        );
        assert_eq!(
            redacted("postgres://u:secret@db:5432/x"),
            "postgres://u:***@db:5432/x"
        );
    }

    #[test]
    fn migrated_reads_as_a_sentence() {
        let fresh = Migrated {
            applied: 3,
            total: 3,
        };
        assert_eq!(fresh.to_string(), "applied 3 migration(s), 3 in all");
        let same = Migrated {
            applied: 0,
            total: 3,
        };
        assert_eq!(same.to_string(), "up to date, 3 migration(s)");
    }
}
