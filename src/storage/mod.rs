//! belroute's own state in SQLite (the default, a file created on start) or PostgreSQL (shared
//! by several instances): the call log, agent reports and routing events. One code path for
//! both; the SQL is written so both engines take it as is.
//!
//! Storage does not know subscriptions: events are written for, and announced to, an
//! [`EventSink`] (see [`events`]).

mod record;
mod spill;
mod writer;

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use belroute_plugins::history::{HistoryQuery, PastCall};
use sqlx::Row;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use spill::SPILL_FILE;
pub use writer::{
    AgentReported, CallLog, CallLogStats, CallRecord, CallRow, STALL, WriterSettings,
};

/// The last row id an INSERT gave, where the engine says so without RETURNING (SQLite).
trait LastInsertId {
    fn last_insert_id(&self) -> Option<i64>;
}

impl LastInsertId for sqlx::sqlite::SqliteQueryResult {
    fn last_insert_id(&self) -> Option<i64> {
        Some(self.last_insert_rowid())
    }
}

impl LastInsertId for sqlx::postgres::PgQueryResult {
    fn last_insert_id(&self) -> Option<i64> {
        None
    }
}

/// A connection pool to belroute's database.
#[derive(Debug, Clone)]
pub enum Storage {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// Runs the same body on whichever pool this is.
macro_rules! on_pool {
    ($storage:expr, $pool:ident => $body:expr) => {
        match $storage {
            Storage::Sqlite($pool) => $body,
            Storage::Postgres($pool) => $body,
        }
    };
}

/// Inserts one event (`$call_id`: the call row whose `call_data` is joined in as `data.call`
/// when it is claimed) and a new delivery per subscriber, inside transaction `$tx`.
macro_rules! insert_event {
    ($tx:expr, $kind:expr, $uuid:expr, $created_at:expr, $data:expr, $call_id:expr, $subscribers:expr) => {{
        let id: i64 = sqlx::query_scalar("INSERT INTO events (kind, call_uuid, created_at, data, call_id) VALUES ($1, $2, $3, $4, $5) RETURNING id")
            .bind($kind)
            .bind($uuid)
            .bind($created_at)
            .bind($data)
            .bind($call_id)
            .fetch_one(&mut *$tx)
            .await?;
        for subscription in $subscribers {
            sqlx::query("INSERT INTO deliveries (subscription, event_id, status, attempts, updated_at) VALUES ($1, $2, $3, 0, $4)")
                .bind(subscription)
                .bind(id)
                .bind(events::DeliveryStatus::New.as_str())
                .bind($created_at)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}

pub mod calls;
pub mod cluster;
pub mod events;
mod journal;
#[cfg(test)]
pub mod memory;
pub mod recent;
pub mod replay;
pub mod revisions;
pub mod store;
pub mod subscriptions;
mod url;
pub use calls::{Activity, AgentReport, CallFilter, CallKey, LoggedCall};
pub use events::{ClaimedEvent, Closed, DeliveryStatus, EventKind, EventSink, NoSubscribers};
pub use store::{CallStore, DeliveryStore, StoreError};
pub use subscriptions::{SubscriptionRow, WriteError};
pub use url::DatabaseUrl;

/// Rows per INSERT statement: 12 parameters each stays under every engine's limit.
const INSERT_ROWS: usize = 500;

/// The row counts a multi-row INSERT is made of. Each count is its own prepared statement,
/// kept in the connection's cache: a handful of sizes keeps that cache small (one statement per
/// batch size grew it by ~50 MB after a burst) while every insert stays prepared.
const INSERT_SIZES: [usize; 5] = [INSERT_ROWS, 100, 20, 5, 1];

/// `rows` cut into chunks of the [`INSERT_SIZES`], largest first.
fn insert_chunks<T>(rows: &[T]) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    let mut rest = rows;
    for size in INSERT_SIZES {
        while rest.len() >= size {
            let (chunk, after) = rest.split_at(size);
            chunks.push(chunk);
            rest = after;
        }
    }
    chunks
}

use crate::time::rfc3339;

/// A caller's calls in the window (`window_calls`) and today (`today_calls`): the days from
/// `caller_days`, the part-day before the first whole one from `calls`. $1 the caller, $2 the
/// window's start, $3 its first whole day's start and $4 that day; $5–$7 the same for today.
macro_rules! counts_columns {
    () => {
        "(SELECT COUNT(*) FROM calls WHERE caller_e164 = $1 AND received_at >= $2 AND received_at < $3) \
           + (SELECT CAST(COALESCE(SUM(calls), 0) AS BIGINT) FROM caller_days WHERE caller_e164 = $1 AND day >= $4) AS window_calls, \
         (SELECT COUNT(*) FROM calls WHERE caller_e164 = $1 AND received_at >= $5 AND received_at < $6) \
           + (SELECT CAST(COALESCE(SUM(calls), 0) AS BIGINT) FROM caller_days WHERE caller_e164 = $1 AND day >= $7) AS today_calls"
    };
}

/// Binds `counts_columns!`' $1–$7: the caller, and for the window and for today its start, the
/// start of its first whole day and that day.
macro_rules! bind_counts {
    ($query:expr, $caller:expr, $window_ms:expr, $window_day:expr, $today_ms:expr, $today_day:expr) => {
        $query
            .bind($caller)
            .bind($window_ms)
            .bind($window_day.saturating_mul(DAY_MS))
            .bind($window_day)
            .bind($today_ms)
            .bind($today_day.saturating_mul(DAY_MS))
            .bind($today_day)
    };
}

/// `counts_columns!`' two values from a row (`?` on a column that cannot be read).
macro_rules! counts_of {
    ($row:expr) => {
        (
            $row.try_get::<i64, _>("window_calls")?,
            $row.try_get::<i64, _>("today_calls")?,
        )
    };
}

/// A [`PastCall`] from a row with `received_at`, `route`, `rule` and `agent`.
macro_rules! past_call {
    ($row:expr) => {
        PastCall {
            received_at_ms: $row.try_get("received_at")?,
            route: $row.try_get("route")?,
            rule: $row.try_get("rule")?,
            agent: $row.try_get("agent")?,
        }
    };
}

impl Storage {
    /// A pool for `url` (`sqlite://file`, `sqlite::memory:`, `postgres://…`); it connects on
    /// first use, so a database that is down does not stop belroute from answering calls.
    pub fn open(url: &str) -> anyhow::Result<Self> {
        let url: DatabaseUrl = url.parse().map_err(anyhow::Error::msg)?;
        let in_memory = matches!(url, DatabaseUrl::SqliteMemory { .. });
        match &url {
            DatabaseUrl::SqliteFile { url, .. } | DatabaseUrl::SqliteMemory { url } => {
                let options = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // With WAL this never corrupts; a power cut may lose the last moments.
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(5))
                    .foreign_keys(true);
                // An in-memory database exists once per connection: keep exactly one.
                let connections = if in_memory { 1 } else { 4 };
                let pool = SqlitePoolOptions::new()
                    .max_connections(connections)
                    .min_connections(u32::from(connections == 1))
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_lazy_with(options);
                Ok(Storage::Sqlite(pool))
            }
            DatabaseUrl::Postgres { url } => {
                let pool = PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(5))
                    .idle_timeout(Duration::from_secs(300))
                    .connect_lazy(url)?;
                Ok(Storage::Postgres(pool))
            }
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Storage::Sqlite(_) => "sqlite",
            Storage::Postgres(_) => "postgres",
        }
    }

    /// Applies the migrations under migrations/{sqlite,postgres} (embedded in the binary).
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        let migrator = self.migrator();
        match self {
            Storage::Sqlite(pool) => migrator.run(pool).await,
            Storage::Postgres(pool) => migrator.run(pool).await,
        }
    }

    /// The migrations this build knows. Migrations a newer build applied are tolerated: they
    /// only add (tables, columns, indexes; `tests/upgrade.rs` holds every migration to that),
    /// so during a rolling upgrade, or after going back to the previous package, an instance
    /// of the older build starts and works on the database the newer one migrated.
    pub fn migrator(&self) -> sqlx::migrate::Migrator {
        let mut migrator = match self {
            Storage::Sqlite(_) => sqlx::migrate!("./migrations/sqlite"),
            Storage::Postgres(_) => sqlx::migrate!("./migrations/postgres"),
        };
        migrator.set_ignore_missing(true);
        migrator
    }

    /// Writes call records in one transaction, each with its `call.routed` event for
    /// `subscribers` (named here; nobody is woken: for tools and tests).
    pub async fn insert_calls(
        &self,
        records: &[CallRecord],
        subscribers: &[String],
    ) -> Result<(), sqlx::Error> {
        let rows: Vec<CallRow> = records.iter().map(CallRow::from).collect();
        self.insert_rows_for(&rows, subscribers, false, false)
            .await
            .map(|_| ())
    }

    /// Writes rows in one transaction, each with its `call.routed` event for the sink's
    /// subscribers, woken once it is committed; returns how many were inserted. With
    /// `skip_existing` (replaying the spill file, which a crash may have left half replayed)
    /// rows whose call (uuid and time) is in the database already are skipped.
    pub async fn insert_rows(
        &self,
        rows: &[CallRow],
        events: &dyn EventSink,
        skip_existing: bool,
    ) -> Result<u64, sqlx::Error> {
        self.insert_rows_numbered(rows, events, skip_existing, false)
            .await
            .map(|(inserted, _)| inserted)
    }

    /// [`insert_rows`](Storage::insert_rows), and with `numbered` the inserted rows' ids, each
    /// with the row's index in `rows`, ascending: SQLite gives ids in the order of commits,
    /// which is how the history kept in memory ([`recent`]) tells a row it has from one it has
    /// not.
    pub async fn insert_rows_numbered(
        &self,
        rows: &[CallRow],
        events: &dyn EventSink,
        skip_existing: bool,
        numbered: bool,
    ) -> Result<(u64, Vec<(usize, i64)>), sqlx::Error> {
        let subscribers = events.subscribers(EventKind::CallRouted);
        let inserted = self
            .insert_rows_for(rows, &subscribers, skip_existing, numbered)
            .await?;
        if inserted.0 > 0 && !subscribers.is_empty() {
            events.wake(&subscribers);
        }
        Ok(inserted)
    }

    async fn insert_rows_for(
        &self,
        rows: &[CallRow],
        subscribers: &[String],
        skip_existing: bool,
        numbered: bool,
    ) -> Result<(u64, Vec<(usize, i64)>), sqlx::Error> {
        // SQLite says the last row id an INSERT gave: no RETURNING (a temporary table of the
        // rows, ~46,000 instructions a call) needed.
        let by_rowid = matches!(self, Storage::Sqlite(_));
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut numbers = Vec::new();
            let mut fresh: Vec<(usize, &CallRow)> = rows.iter().enumerate().collect();
            if skip_existing && !rows.is_empty() {
                let mut existing: HashSet<(String, i64)> = HashSet::new();
                for chunk in insert_chunks(rows) {
                    let mut select = sqlx::QueryBuilder::new("SELECT uuid, received_at FROM calls WHERE uuid IN (");
                    let mut uuids = select.separated(", ");
                    for row in chunk {
                        uuids.push_bind(row.uuid.as_str());
                    }
                    select.push(")");
                    for found in select.build().fetch_all(&mut *tx).await? {
                        existing.insert((found.try_get("uuid")?, found.try_get("received_at")?));
                    }
                }
                fresh.retain(|(_, row)| !existing.contains(&(row.uuid.clone(), row.received_at)));
            }
            // One multi-row INSERT per batch: several times the rows per second of one each.
            for chunk in insert_chunks(&fresh) {
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO calls (uuid, received_at, ruleset, version, caller_raw, caller_e164, route, rule, reason, micros, call_data, trace) ",
                );
                insert.push_values(chunk, |mut values, (_, row)| {
                    values
                        .push_bind(row.uuid.as_str())
                        .push_bind(row.received_at)
                        .push_bind(row.ruleset.as_str())
                        .push_bind(row.version.as_str())
                        .push_bind(row.caller_raw.as_str())
                        .push_bind(row.caller_e164.as_str())
                        .push_bind(row.route.as_str())
                        .push_bind(row.rule.as_deref())
                        .push_bind(row.reason.as_str())
                        .push_bind(row.micros)
                        .push_bind(row.call_data.as_str())
                        .push_bind(row.trace.as_str());
                });
                let ids: Vec<i64> = if by_rowid || (subscribers.is_empty() && !numbered) {
                    let done = insert.build().execute(&mut *tx).await?;
                    // One INSERT's rows take consecutive ids (AUTOINCREMENT, one writer).
                    match done.last_insert_id() {
                        Some(last) => (last - chunk.len() as i64 + 1..=last).collect(),
                        None => Vec::new(),
                    }
                } else {
                    // The ids of one multi-row INSERT ascend in the order of its VALUES
                    // (PostgreSQL draws the sequence row by row), whatever order RETURNING
                    // gives them in: sorted, they pair with the rows.
                    insert.push(" RETURNING id");
                    let mut ids: Vec<i64> = insert.build_query_scalar().fetch_all(&mut *tx).await?;
                    ids.sort_unstable();
                    ids
                };
                for ((index, row), call_id) in chunk.iter().zip(ids) {
                    if numbered {
                        numbers.push((*index, call_id));
                    }
                    if !subscribers.is_empty() {
                        let data = events::routed_payload(row);
                        insert_event!(tx, EventKind::CallRouted.as_str(), row.uuid.as_str(), row.received_at, data, Some(call_id), subscribers);
                    }
                }
            }
            tx.commit().await?;
            Ok((fresh.len() as u64, numbers))
        })
    }

    /// Records that `agent` handled the latest call with `uuid`; `false` when there is none.
    /// Also writes a `call.agent` event for the sink's subscribers, in the same transaction,
    /// and wakes them once it is committed.
    pub async fn report_agent(
        &self,
        uuid: &str,
        agent: &str,
        at_ms: i64,
        events: &dyn EventSink,
    ) -> Result<bool, sqlx::Error> {
        Ok(self
            .report_agent_of_caller(uuid, agent, at_ms, events)
            .await?
            .is_some())
    }

    /// [`report_agent`](Storage::report_agent), naming the caller of the call (its E.164
    /// number) when there is one: the history kept in memory forgets what it knew of them.
    pub async fn report_agent_of_caller(
        &self,
        uuid: &str,
        agent: &str,
        at_ms: i64,
        events: &dyn EventSink,
    ) -> Result<Option<String>, sqlx::Error> {
        let subscribers = events.subscribers(EventKind::CallAgent);
        let caller = self
            .report_agent_for(uuid, agent, at_ms, &subscribers)
            .await?;
        if caller.is_some() && !subscribers.is_empty() {
            events.wake(&subscribers);
        }
        Ok(caller)
    }

    async fn report_agent_for(
        &self,
        uuid: &str,
        agent: &str,
        at_ms: i64,
        subscribers: &[String],
    ) -> Result<Option<String>, sqlx::Error> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let call: Option<(i64, String)> = sqlx::query_as("SELECT id, caller_e164 FROM calls WHERE uuid = $1 ORDER BY received_at DESC, id DESC LIMIT 1")
                .bind(uuid)
                .fetch_optional(&mut *tx)
                .await?;
            let Some((id, caller)) = call else {
                return Ok(None);
            };
            sqlx::query("INSERT INTO agent_reports (call_id, agent, reported_at) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(agent)
                .bind(at_ms)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE calls SET agent = $1, agent_at = $2 WHERE id = $3")
                .bind(agent)
                .bind(at_ms)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if !subscribers.is_empty() {
                let data = events::agent_payload(uuid, agent, at_ms);
                insert_event!(tx, EventKind::CallAgent.as_str(), uuid, at_ms, data, None::<i64>, subscribers);
            }
            tx.commit().await?;
            Ok(Some(caller))
        })
    }

    /// The caller's calls since `since_ms`, newest first, at most `limit`.
    pub async fn recent_calls(
        &self,
        caller_e164: &str,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<PastCall>, sqlx::Error> {
        let select = sqlx::AssertSqlSafe(recent_calls_statement(limit));
        on_pool!(self, pool => {
            let rows = sqlx::query(select)
            .bind(caller_e164)
            .bind(since_ms)
            .fetch_all(pool)
            .await?;
            rows.iter().map(|r| Ok(past_call!(r))).collect()
        })
    }

    /// How many calls the caller made since `window_ms`, and how many since `today_ms`: whole
    /// days from `caller_days` (kept by the database's triggers), the part of a day before the
    /// first whole one from the calls themselves. So a frequent caller costs a row per day of
    /// the window, not a row per call.
    pub async fn count_calls(
        &self,
        caller_e164: &str,
        window_ms: i64,
        today_ms: i64,
    ) -> Result<(i64, i64), sqlx::Error> {
        // Calls before 1970 and withheld callers are not in caller_days: counted one by one
        // (no call is that old; `history` never asks for a withheld caller).
        let Some((window_day, today_day)) = counted_by_day(caller_e164, window_ms, today_ms) else {
            return self
                .count_calls_one_by_one(caller_e164, window_ms, today_ms)
                .await;
        };
        on_pool!(self, pool => {
            let query = sqlx::query(concat!("SELECT ", counts_columns!()));
            let row = bind_counts!(query, caller_e164, window_ms, window_day, today_ms, today_day)
                .fetch_one(pool)
                .await?;
            Ok(counts_of!(row))
        })
    }

    /// The same counts, every call in the window read: what `count_calls` must agree with.
    pub async fn count_calls_one_by_one(
        &self,
        caller_e164: &str,
        window_ms: i64,
        today_ms: i64,
    ) -> Result<(i64, i64), sqlx::Error> {
        on_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT COUNT(*) AS window_calls, COALESCE(SUM(CASE WHEN received_at >= $3 THEN 1 ELSE 0 END), 0) AS today_calls \
                 FROM calls WHERE caller_e164 = $1 AND received_at >= $2",
            )
            .bind(caller_e164)
            .bind(window_ms)
            .bind(today_ms)
            .fetch_one(pool)
            .await?;
            Ok((row.try_get::<i64, _>("window_calls")?, row.try_get::<i64, _>("today_calls")?))
        })
    }

    /// `history` in one statement: of the caller's `limit` most recent calls since
    /// `window_ms`, the last one and the last one with an agent (reported, or named by a
    /// route that starts with `agent_route_prefix` and goes on), newest first, with
    /// [`count_calls`](Storage::count_calls)' counts. Only the index is read, and at most two
    /// rows come back: a caller's 1,000th call costs what its first does. The counts are
    /// subqueries without reference to the rows, which SQLite and PostgreSQL each run once per
    /// statement; `None` when no call came back (no row to carry them), and for a caller that
    /// `count_calls` counts one by one (then the calls are `recent_calls`').
    pub async fn last_calls_and_counts(
        &self,
        query: &HistoryQuery<'_>,
    ) -> Result<(Vec<PastCall>, Option<(i64, i64)>), sqlx::Error> {
        if counted_by_day(query.caller_e164, query.window_ms, query.today_ms).is_none() {
            return Ok((
                self.recent_calls(query.caller_e164, query.window_ms, query.limit)
                    .await?,
                None,
            ));
        }
        let snapshot = self.history_snapshot(query).await?;
        Ok((snapshot.calls, snapshot.counts))
    }

    /// [`last_calls_and_counts`](Storage::last_calls_and_counts)' statement's whole answer,
    /// what the history kept in memory ([`recent`]) starts from. A withheld caller, or a
    /// window from before 1970, is refused (a `Protocol` error): those are counted one by one.
    pub async fn history_snapshot(
        &self,
        query: &HistoryQuery<'_>,
    ) -> Result<HistorySnapshot, sqlx::Error> {
        let HistoryQuery {
            caller_e164,
            window_ms,
            today_ms,
            limit,
            agent_route_prefix,
        } = *query;
        let Some((window_day, today_day)) = counted_by_day(caller_e164, window_ms, today_ms) else {
            return Err(sqlx::Error::Protocol(format!(
                "history: caller `{caller_e164}` from {window_ms} is counted one by one"
            )));
        };
        let select = sqlx::AssertSqlSafe(last_calls_and_counts_statement(limit));
        on_pool!(self, pool => {
            let query = sqlx::query(select);
            let rows = bind_counts!(query, caller_e164, window_ms, window_day, today_ms, today_day)
                .bind(agent_route_prefix)
                .fetch_all(pool)
                .await?;
            let mut snapshot = HistorySnapshot::default();
            if let Some(r) = rows.first() {
                snapshot.counts = Some(counts_of!(r));
                snapshot.as_of = r.try_get("as_of")?;
                snapshot.oldest = r.try_get("oldest")?;
            }
            if let Some(r) = rows.get(1) {
                snapshot.agent_rank = Some(r.try_get("rank")?);
            }
            snapshot.calls = rows
                .iter()
                .map(|r| Ok(past_call!(r)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            Ok(snapshot)
        })
    }

    /// Deletes calls (and their agent reports) received before `before_ms`; returns how many.
    pub async fn purge(&self, before_ms: i64) -> Result<u64, sqlx::Error> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM agent_reports WHERE call_id IN (SELECT id FROM calls WHERE received_at < $1)")
                .bind(before_ms)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM deliveries WHERE event_id IN (SELECT id FROM events WHERE created_at < $1)")
                .bind(before_ms)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM events WHERE created_at < $1").bind(before_ms).execute(&mut *tx).await?;
            let deleted = sqlx::query("DELETE FROM calls WHERE received_at < $1").bind(before_ms).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(deleted.rows_affected())
        })
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}

/// The `history` plugin reads the call log through this.
#[async_trait::async_trait]
impl belroute_plugins::history::CallHistory for Storage {
    async fn recent(
        &self,
        caller_e164: &str,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<PastCall>, String> {
        self.recent_calls(caller_e164, since_ms, limit)
            .await
            .map_err(|e| history_error(&e))
    }

    async fn counts(
        &self,
        caller_e164: &str,
        window_ms: i64,
        today_ms: i64,
    ) -> Result<(i64, i64), String> {
        self.count_calls(caller_e164, window_ms, today_ms)
            .await
            .map_err(|e| history_error(&e))
    }

    async fn last_calls_and_counts(
        &self,
        query: &HistoryQuery<'_>,
    ) -> Result<(Vec<PastCall>, Option<(i64, i64)>), String> {
        Storage::last_calls_and_counts(self, query)
            .await
            .map_err(|e| history_error(&e))
    }
}

/// `caller_days` counts calls per UTC day: `received_at / DAY_MS`.
const DAY_MS: i64 = 86_400_000;

/// The first whole days of the window and of today, when `caller_days` can count the caller:
/// not for a withheld caller, nor from before 1970 (`caller_days` has neither).
fn counted_by_day(caller_e164: &str, window_ms: i64, today_ms: i64) -> Option<(i64, i64)> {
    if caller_e164.is_empty() {
        return None;
    }
    Some((first_whole_day(window_ms)?, first_whole_day(today_ms)?))
}

/// The first whole day at or after `ms` (`None` before 1970, which `caller_days` leaves out).
fn first_whole_day(ms: i64) -> Option<i64> {
    (ms >= 0).then(|| ms / DAY_MS + i64::from(ms % DAY_MS != 0))
}

/// A call log without its tables (an empty file, a database never migrated) says the fix.
/// `recent_calls`' query. Everything it reads is in the index `calls_by_caller_recent`, so a
/// caller's recent calls come from a page or two of the index, not from rows of `calls`
/// scattered over the file (a random read each: the cost per call grew with the log).
/// The limit is written into the statement, not bound: SQLite plans with a bound LIMIT's value
/// and so prepares such a statement again on every call (~74,000 instructions).
fn recent_calls_statement(limit: i64) -> String {
    format!(
        "SELECT received_at, route, rule, agent FROM calls WHERE caller_e164 = $1 AND received_at >= $2 ORDER BY received_at DESC, id DESC LIMIT {limit}"
    )
}

/// `last_calls_and_counts`' statement: `recent_calls_statement`'s calls as `recent`, of them
/// the newest and the newest with an agent ($8 the agent route prefix; the same test as
/// the `history` plugin's), each with the counts, its rank among `recent` (1 the newest), the
/// newest call id in the log (`as_of`) and the caller's oldest call in the window.
fn last_calls_and_counts_statement(limit: i64) -> String {
    format!(
        "WITH recent AS (SELECT received_at, id, route, rule, agent FROM calls \
           WHERE caller_e164 = $1 AND received_at >= $2 ORDER BY received_at DESC, id DESC LIMIT {limit}), \
         last AS (SELECT * FROM (SELECT received_at, id, route, rule, agent FROM recent ORDER BY received_at DESC, id DESC LIMIT 1) AS newest \
           UNION ALL \
           SELECT * FROM (SELECT received_at, id, route, rule, agent FROM recent \
             WHERE agent IS NOT NULL OR ($8 <> '' AND LENGTH(route) > LENGTH($8) AND SUBSTR(route, 1, LENGTH($8)) = $8) \
             ORDER BY received_at DESC, id DESC LIMIT 1) AS with_agent) \
         SELECT received_at, route, rule, agent, \
           (SELECT COUNT(*) FROM recent AS newer WHERE newer.received_at > last.received_at \
             OR (newer.received_at = last.received_at AND newer.id > last.id)) + 1 AS rank, {}, \
           (SELECT MAX(id) FROM calls) AS as_of, \
           (SELECT MIN(received_at) FROM calls WHERE caller_e164 = $1 AND received_at >= $2) AS oldest \
         FROM last ORDER BY received_at DESC, id DESC",
        counts_columns!()
    )
}

/// Everything [`Storage::history_snapshot`]'s one statement answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistorySnapshot {
    /// The newest call and the newest with an agent, in that order (the same call twice when
    /// the newest has the agent); none when the caller has no call in the window.
    pub calls: Vec<PastCall>,
    /// Calls in the window, and today.
    pub counts: Option<(i64, i64)>,
    /// The rank of the call with the agent among the caller's most recent (1: the newest).
    pub agent_rank: Option<i64>,
    /// The newest call id in the log when the statement read it.
    pub as_of: i64,
    /// When the caller's oldest call in the window was received.
    pub oldest: Option<i64>,
}

fn history_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db)
            if db.message().contains("no such table") || db.message().contains("does not exist") =>
        {
            "call log database has no call log tables yet: run `belroute migrate` with this --database (serve does it on start)".into()
        }
        _ => format!("call log database: {e}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    /// `history` reads no row of `calls`: its query is answered from the index alone, in the
    /// index's order (no sort), on a migrated database.
    #[tokio::test]
    async fn history_reads_only_the_index() {
        let storage = super::Storage::open("sqlite::memory:").unwrap();
        storage.migrate().await.unwrap();
        let super::Storage::Sqlite(pool) = &storage else {
            unreachable!("opened as SQLite")
        };
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {}",
            super::recent_calls_statement(50)
        )))
        .bind("+31612345678")
        .bind(0_i64)
        .fetch_all(pool)
        .await
        .unwrap();
        let steps: Vec<&str> = plan.iter().map(|p| p.3.as_str()).collect();
        assert_eq!(
            steps,
            [
                "SEARCH calls USING COVERING INDEX calls_by_caller_recent (caller_e164=? AND received_at>?)"
            ],
            "history's query should be answered by the covering index alone"
        );
        // `history`'s one statement: every read of `calls` from the index, `caller_days` by its
        // key (the rest reads the statement's own 50 and 2 rows).
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {}",
            super::last_calls_and_counts_statement(50)
        )))
        .bind("+31612345678")
        .bind(0_i64)
        .bind(86_400_000_i64)
        .bind(1_i64)
        .bind(0_i64)
        .bind(86_400_000_i64)
        .bind(1_i64)
        .bind("agent_")
        .fetch_all(pool)
        .await
        .unwrap();
        let reads: Vec<&str> = plan
            .iter()
            .map(|p| p.3.as_str())
            .filter(|step| step.starts_with("SEARCH") || step.starts_with("SCAN"))
            .collect();
        let tables = |table: &str| reads.iter().filter(|r| r.contains(table)).count();
        assert!(
            tables(" calls ") >= 3 && tables("caller_days") == 2,
            "{plan:?}"
        );
        for read in reads {
            // `SEARCH calls` alone: the newest id, the table's last entry.
            assert!(
                read.starts_with("SEARCH calls USING COVERING INDEX calls_by_caller_recent")
                    || read.starts_with("SEARCH caller_days USING PRIMARY KEY")
                    || read == "SEARCH calls"
                    || !(read.contains(" calls ") || read.contains("caller_days")),
                "{read} (the whole plan: {plan:?})"
            );
        }
    }

    #[test]
    fn inserts_are_cut_into_a_few_sizes() {
        let rows: Vec<u32> = (0..1437).collect();
        let sizes: Vec<usize> = super::insert_chunks(&rows)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, [500, 500, 100, 100, 100, 100, 20, 5, 5, 5, 1, 1]);
        let again: Vec<u32> = super::insert_chunks(&rows).concat();
        assert_eq!(again, rows, "every row once, in order");
        assert!(super::insert_chunks::<u32>(&[]).is_empty());
    }
}
