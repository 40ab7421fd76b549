//! Reading the call log for `belroute replay` and the replay after a reload: the logged calls
//! of a time window, a page at a time (keyset paging on `(received_at, id)`, so each page is
//! one index range whatever the window's size), and a read-only pool for the command, which
//! never writes to the call log.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use super::calls::{CALL_COLUMNS, LoggedCall, logged_call};
use super::{DatabaseUrl, Storage};

/// Which logged calls to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayWindow {
    /// Only calls of these rule sets; every rule set when empty.
    pub rulesets: Vec<String>,
    /// Received at or after (Unix milliseconds).
    pub from_ms: i64,
    /// Received before (Unix milliseconds).
    pub to_ms: i64,
    /// Leave out calls already answered by this version (the one being replayed).
    pub except_version: Option<String>,
}

/// Where the previous page ended: the next page starts after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageCursor {
    pub received_at: i64,
    pub id: i64,
}

impl Storage {
    /// The call log for `belroute simulate`'s `history` lookups, opened without creating or
    /// writing anything: read-only where it exists; where a SQLite file does not exist yet,
    /// an empty log in memory (so the lookup finds no earlier calls) and a note saying so.
    pub async fn open_for_lookups(url: &str) -> anyhow::Result<(Self, Option<String>)> {
        let empty = || async {
            let empty = Storage::open("sqlite::memory:")?;
            empty
                .migrate()
                .await
                .map_err(|e| anyhow::anyhow!("cannot prepare an empty call log in memory: {e}"))?;
            anyhow::Ok(empty)
        };
        match url.parse::<DatabaseUrl>() {
            Ok(DatabaseUrl::SqliteMemory { .. }) => Ok((empty().await?, None)),
            Ok(DatabaseUrl::SqliteFile { file, .. }) if !file.exists() => {
                let note = format!(
                    "no call log at {} (`belroute serve` creates it there): `history` lookups find no earlier calls; pass the one serve writes with --database",
                    file.display()
                );
                Ok((empty().await?, Some(note)))
            }
            _ => Ok((Storage::open_read_only(url)?, None)),
        }
    }

    /// A pool that only reads: SQLite opened read-only (a missing file is an error, not a new
    /// database), PostgreSQL with read-only transactions. For `belroute replay`.
    pub fn open_read_only(url: &str) -> anyhow::Result<Self> {
        match url.parse::<DatabaseUrl>().map_err(anyhow::Error::msg)? {
            DatabaseUrl::SqliteFile { url, .. } | DatabaseUrl::SqliteMemory { url } => {
                let options = SqliteConnectOptions::from_str(&url)?
                    .create_if_missing(false)
                    .read_only(true)
                    .busy_timeout(Duration::from_secs(5));
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_lazy_with(options);
                Ok(Storage::Sqlite(pool))
            }
            DatabaseUrl::Postgres { url } => {
                let options = PgConnectOptions::from_str(&url)?
                    .options([("default_transaction_read_only", "on")]);
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_lazy_with(options);
                Ok(Storage::Postgres(pool))
            }
        }
    }

    /// The next page of at most `limit` logged calls in `window`, oldest first, after `after`
    /// (`None`: from the window's start).
    pub async fn replay_page(
        &self,
        window: &ReplayWindow,
        after: Option<PageCursor>,
        limit: i64,
    ) -> Result<Vec<LoggedCall>, sqlx::Error> {
        let limit = limit.clamp(1, 100_000);
        on_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new(format!("SELECT {CALL_COLUMNS} FROM calls WHERE received_at < "));
            query.push_bind(window.to_ms);
            match after {
                // One index range: (received_at, id) after the cursor.
                Some(cursor) => {
                    query.push(" AND (received_at > ");
                    query.push_bind(cursor.received_at);
                    query.push(" OR (received_at = ");
                    query.push_bind(cursor.received_at);
                    query.push(" AND id > ");
                    query.push_bind(cursor.id);
                    query.push("))");
                }
                None => {
                    query.push(" AND received_at >= ");
                    query.push_bind(window.from_ms);
                }
            }
            if !window.rulesets.is_empty() {
                query.push(" AND ruleset IN (");
                let mut names = query.separated(", ");
                for name in &window.rulesets {
                    names.push_bind(name.as_str());
                }
                query.push(")");
            }
            if let Some(version) = &window.except_version {
                query.push(" AND version <> ");
                query.push_bind(version.as_str());
            }
            query.push(" ORDER BY received_at, id LIMIT ");
            query.push_bind(limit);
            let rows = query.build().fetch_all(pool).await?;
            rows.iter().map(logged_call).collect()
        })
    }
}
