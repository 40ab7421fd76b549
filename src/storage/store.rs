//! The seams between belroute's moving parts and its database: what the call log writer, the
//! replay and the subscriptions' notifiers need of storage, as traits. [`Storage`] is the real
//! one; the unit tests give doubles ([`super::memory`]) and a paused clock, as the engine's
//! tests give `Loader` doubles, so batching, spilling, replay and notification retries are
//! tested without a database or a sleep.

use std::fmt;

use async_trait::async_trait;

use super::events::EventSink;
use super::replay::{PageCursor, ReplayWindow};
use super::{CallRow, LoggedCall, Storage};

/// Why a storage call did not go through.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    pub message: String,
    /// The database refused these rows for what they hold (a value it cannot store, a
    /// constraint): it would refuse them again. Otherwise it is unavailable, locked or busy.
    pub refused: bool,
}

impl StoreError {
    /// The database is unavailable (for doubles and migrations).
    pub fn unavailable(message: impl Into<String>) -> Self {
        StoreError {
            message: message.into(),
            refused: false,
        }
    }

    /// The call log has no tables there (an empty file, a database never migrated).
    pub fn no_tables(&self) -> bool {
        self.message.contains("no such table") || self.message.contains("does not exist")
    }
}

/// What the call log's writer and replay need: writing rows with their events, agent
/// reports, and reading logged calls a page at a time.
#[async_trait]
pub trait CallStore: Send + Sync + fmt::Debug {
    /// `sqlite`, `postgres`, … for messages.
    fn kind(&self) -> &'static str;

    async fn migrate(&self) -> Result<(), StoreError>;

    /// Writes rows in one transaction, each with its `call.routed` event for the sink's
    /// subscribers (woken once committed); how many were inserted. With `skip_existing`, rows
    /// whose call (uuid and time) is stored already are skipped.
    async fn insert_rows(
        &self,
        rows: &[CallRow],
        events: &dyn EventSink,
        skip_existing: bool,
    ) -> Result<u64, StoreError>;

    /// Records that `agent` handled the latest call with `uuid`; `false` when there is none.
    async fn report_agent(
        &self,
        uuid: &str,
        agent: &str,
        at_ms: i64,
        events: &dyn EventSink,
    ) -> Result<bool, StoreError>;

    /// The next page of at most `limit` logged calls in `window`, oldest first.
    async fn replay_page(
        &self,
        window: &ReplayWindow,
        after: Option<PageCursor>,
        limit: i64,
    ) -> Result<Vec<LoggedCall>, StoreError>;
}

/// What a subscription's notifier needs: whether there is anything to tell the subscriber.
#[async_trait]
pub trait DeliveryStore: Send + Sync + fmt::Debug {
    /// Does `subscription` have events waiting to be claimed (new, or claimed and expired at
    /// `now_ms`)?
    async fn has_new_events(&self, subscription: &str, now_ms: i64) -> Result<bool, StoreError>;
}

impl Storage {
    /// A database error as a [`StoreError`].
    pub fn store_error(&self, error: &sqlx::Error) -> StoreError {
        StoreError {
            message: error.to_string(),
            refused: refuses(self, error),
        }
    }
}

/// Whether `error` says the rows themselves are refused (a value the database cannot store, a
/// constraint), not that the database is unavailable, locked or busy.
fn refuses(storage: &Storage, error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(e) = error else {
        return matches!(error, sqlx::Error::Encode(_));
    };
    if !matches!(e.kind(), sqlx::error::ErrorKind::Other) {
        return true;
    }
    let Some(code) = e.code() else {
        return false;
    };
    match storage {
        // Class 22, data exception: an invalid byte sequence (a NUL), a value out of range.
        Storage::Postgres(_) => code.len() == 5 && code.starts_with("22"),
        // TOOBIG, CONSTRAINT, MISMATCH (with their extended codes); BUSY and LOCKED are not.
        Storage::Sqlite(_) => code
            .parse::<i64>()
            .is_ok_and(|n| matches!(n & 0xff, 18..=20)),
    }
}

#[async_trait]
impl CallStore for Storage {
    fn kind(&self) -> &'static str {
        Storage::kind(self)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        Storage::migrate(self)
            .await
            .map_err(|e| StoreError::unavailable(e.to_string()))
    }

    async fn insert_rows(
        &self,
        rows: &[CallRow],
        events: &dyn EventSink,
        skip_existing: bool,
    ) -> Result<u64, StoreError> {
        Storage::insert_rows(self, rows, events, skip_existing)
            .await
            .map_err(|e| self.store_error(&e))
    }

    async fn report_agent(
        &self,
        uuid: &str,
        agent: &str,
        at_ms: i64,
        events: &dyn EventSink,
    ) -> Result<bool, StoreError> {
        Storage::report_agent(self, uuid, agent, at_ms, events)
            .await
            .map_err(|e| self.store_error(&e))
    }

    async fn replay_page(
        &self,
        window: &ReplayWindow,
        after: Option<PageCursor>,
        limit: i64,
    ) -> Result<Vec<LoggedCall>, StoreError> {
        Storage::replay_page(self, window, after, limit)
            .await
            .map_err(|e| self.store_error(&e))
    }
}

#[async_trait]
impl DeliveryStore for Storage {
    async fn has_new_events(&self, subscription: &str, now_ms: i64) -> Result<bool, StoreError> {
        Storage::has_new_events(self, subscription, now_ms)
            .await
            .map_err(|e| self.store_error(&e))
    }
}
