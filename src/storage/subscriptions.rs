//! Subscriptions managed while running (the admin API), one row each in `subscriptions`.
//! Storage keeps the rows as written; checking them is `crate::subscriptions`' business.

use sqlx::Row;

use super::Storage;

/// One stored subscription, as written by the administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRow {
    pub name: String,
    pub status: String,
    /// As written: `${NAME}` is expanded at use.
    pub endpoint: Option<String>,
    /// A JSON object, values as written.
    pub headers: String,
    /// A JSON list of event kinds.
    pub events: String,
    pub visibility_timeout_ms: i64,
    pub max_retries: i64,
    pub retry_initial_ms: i64,
    pub retry_max_ms: i64,
    pub renotify_after_ms: i64,
    /// SHA-256 of the API key, hex.
    pub api_key_hash: String,
    pub previous_key_hash: Option<String>,
    /// Until when (ms since the epoch) the previous key is still taken.
    pub previous_key_until: Option<i64>,
    pub revision: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "name, status, endpoint, headers, events, visibility_timeout_ms, max_retries, retry_initial_ms, retry_max_ms, renotify_after_ms, api_key_hash, previous_key_hash, previous_key_until, revision, created_at, updated_at";

fn row<R: Row>(r: &R) -> Result<SubscriptionRow, sqlx::Error>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    Ok(SubscriptionRow {
        name: r.try_get("name")?,
        status: r.try_get("status")?,
        endpoint: r.try_get("endpoint")?,
        headers: r.try_get("headers")?,
        events: r.try_get("events")?,
        visibility_timeout_ms: r.try_get("visibility_timeout_ms")?,
        max_retries: r.try_get("max_retries")?,
        retry_initial_ms: r.try_get("retry_initial_ms")?,
        retry_max_ms: r.try_get("retry_max_ms")?,
        renotify_after_ms: r.try_get("renotify_after_ms")?,
        api_key_hash: r.try_get("api_key_hash")?,
        previous_key_hash: r.try_get("previous_key_hash")?,
        previous_key_until: r.try_get("previous_key_until")?,
        revision: r.try_get("revision")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Why a stored subscription could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("a subscription named `{0}` exists already")]
    Exists(String),
    #[error("no subscription named `{0}`")]
    Missing(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl Storage {
    /// Every stored subscription, by name.
    pub async fn stored_subscriptions(&self) -> Result<Vec<SubscriptionRow>, sqlx::Error> {
        on_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM subscriptions ORDER BY name")))
                .fetch_all(pool)
                .await?;
            rows.iter().map(row).collect()
        })
    }

    /// One stored subscription.
    pub async fn stored_subscription(
        &self,
        name: &str,
    ) -> Result<Option<SubscriptionRow>, sqlx::Error> {
        on_pool!(self, pool => {
            let found = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM subscriptions WHERE name = $1")))
                .bind(name)
                .fetch_optional(pool)
                .await?;
            found.as_ref().map(row).transpose()
        })
    }

    /// Stores a new subscription (its revision 1).
    pub async fn insert_subscription(&self, s: &SubscriptionRow) -> Result<(), WriteError> {
        let done = on_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO subscriptions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1, $14, $14) ON CONFLICT (name) DO NOTHING"
            )))
            .bind(&s.name)
            .bind(&s.status)
            .bind(&s.endpoint)
            .bind(&s.headers)
            .bind(&s.events)
            .bind(s.visibility_timeout_ms)
            .bind(s.max_retries)
            .bind(s.retry_initial_ms)
            .bind(s.retry_max_ms)
            .bind(s.renotify_after_ms)
            .bind(&s.api_key_hash)
            .bind(&s.previous_key_hash)
            .bind(s.previous_key_until)
            .bind(s.created_at)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if done == 0 {
            return Err(WriteError::Exists(s.name.clone()));
        }
        Ok(())
    }

    /// Writes every column of `s` over the stored row, if its revision is still `s.revision`
    /// (no other change came in between), and moves the revision on.
    pub async fn update_subscription(&self, s: &SubscriptionRow) -> Result<bool, WriteError> {
        let done = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE subscriptions SET status = $2, endpoint = $3, headers = $4, events = $5, visibility_timeout_ms = $6, \
                 max_retries = $7, retry_initial_ms = $8, retry_max_ms = $9, renotify_after_ms = $10, api_key_hash = $11, \
                 previous_key_hash = $12, previous_key_until = $13, updated_at = $14, revision = revision + 1 \
                 WHERE name = $1 AND revision = $15",
            )
            .bind(&s.name)
            .bind(&s.status)
            .bind(&s.endpoint)
            .bind(&s.headers)
            .bind(&s.events)
            .bind(s.visibility_timeout_ms)
            .bind(s.max_retries)
            .bind(s.retry_initial_ms)
            .bind(s.retry_max_ms)
            .bind(s.renotify_after_ms)
            .bind(&s.api_key_hash)
            .bind(&s.previous_key_hash)
            .bind(s.previous_key_until)
            .bind(s.updated_at)
            .bind(s.revision)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// Deletes a stored subscription with its deliveries, and the events no other
    /// subscription still has; returns how many deliveries went.
    pub async fn delete_subscription(&self, name: &str) -> Result<u64, WriteError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let gone = sqlx::query("DELETE FROM subscriptions WHERE name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            if gone.rows_affected() == 0 {
                return Err(WriteError::Missing(name.to_string()));
            }
            let deliveries: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE subscription = $1")
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
            // Events first (their deliveries go with them: ON DELETE CASCADE), then the rest.
            sqlx::query(
                "DELETE FROM events WHERE id IN (SELECT event_id FROM deliveries WHERE subscription = $1) \
                 AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id AND d.subscription <> $1)",
            )
            .bind(name)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM deliveries WHERE subscription = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(u64::try_from(deliveries).unwrap_or(0))
        })
    }
}
