//! Reading the call log for `belroute replay` and the replay after a reload: the logged calls
//! of a time window, a page at a time (keyset paging on `(received_at, id)`, so each page is
//! one index range whatever the window's size), and a read-only pool for the command, which
//! never writes to the call log.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use super::Storage;

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

/// One logged call, as replay reads it.
#[derive(Debug, Clone)]
pub struct LoggedCall {
    pub id: i64,
    pub uuid: String,
    /// Unix milliseconds.
    pub received_at: i64,
    pub ruleset: String,
    pub version: String,
    pub caller_raw: String,
    pub route: String,
    pub rule: Option<String>,
    pub reason: String,
    /// The call fields as received (a JSON object).
    pub call_data: String,
    /// The decision trace (JSON): `caller`, `rules`, `lookups`.
    pub trace: String,
}

const COLUMNS: &str =
    "id, uuid, received_at, ruleset, version, caller_raw, route, rule, reason, call_data, trace";

fn logged_call<R: Row>(row: &R) -> Result<LoggedCall, sqlx::Error>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    Ok(LoggedCall {
        id: row.try_get("id")?,
        uuid: row.try_get("uuid")?,
        received_at: row.try_get("received_at")?,
        ruleset: row.try_get("ruleset")?,
        version: row.try_get("version")?,
        caller_raw: row.try_get("caller_raw")?,
        route: row.try_get("route")?,
        rule: row.try_get("rule")?,
        reason: row.try_get("reason")?,
        call_data: row.try_get("call_data")?,
        trace: row.try_get("trace")?,
    })
}

/// The file a `sqlite:` database URL names; `None` for an in-memory database, another kind
/// of database or a URL that does not read.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    if !url.starts_with("sqlite:") || url.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    let options = SqliteConnectOptions::from_str(url).ok()?;
    let file = options.get_filename();
    (!file.as_os_str().is_empty()).then(|| file.to_path_buf())
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
        let in_memory =
            url.starts_with("sqlite:") && (url.contains(":memory:") || url.contains("mode=memory"));
        if in_memory {
            return Ok((empty().await?, None));
        }
        match sqlite_file(url) {
            Some(file) if !file.exists() => {
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
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => {
                let options = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(false)
                    .read_only(true)
                    .busy_timeout(Duration::from_secs(5));
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_lazy_with(options);
                Ok(Storage::Sqlite(pool))
            }
            "postgres" | "postgresql" => {
                let options = PgConnectOptions::from_str(url)?
                    .options([("default_transaction_read_only", "on")]);
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_lazy_with(options);
                Ok(Storage::Postgres(pool))
            }
            _ => anyhow::bail!(
                "database URL `{url}`: use sqlite://FILE (the default is sqlite://belroute.db) or postgres://…"
            ),
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
            let mut query = sqlx::QueryBuilder::new(format!("SELECT {COLUMNS} FROM calls WHERE received_at < "));
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

    /// The latest logged call with `uuid`, as replay reads it.
    pub async fn logged_call(&self, uuid: &str) -> Result<Option<LoggedCall>, sqlx::Error> {
        on_pool!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM calls WHERE uuid = $1 ORDER BY received_at DESC, id DESC LIMIT 1"
            )))
            .bind(uuid)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(logged_call).transpose()
        })
    }
}
