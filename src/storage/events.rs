//! Delivery of routing events: GetNextNewAndClaim and closing a claim.

use serde::Serialize;
use sqlx::Row;

use super::{Storage, rfc3339};

/// An event handed to a subscriber, with the claim it must close.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimedEvent {
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: String,
    pub claim: String,
    pub claim_expires_at: String,
    /// 1 the first time the event is handed out.
    pub attempt: i64,
    pub data: serde_json::Value,
}

/// How closing a claim went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    Done,
    /// No such event for this subscription.
    Unknown,
    /// The claim is not (or no longer) the current one: it expired and was handed out again,
    /// or it was closed already.
    NotClaimed,
}

/// Claims the oldest claimable event of `subscription`: new, or claimed and expired.
/// `$1` subscription, `$2` now, `$3` max attempts, `$4` claim token, `$5` claimed until.
const CLAIM_POSTGRES: &str = "UPDATE deliveries SET status = 'claimed', claim = $4, claimed_until = $5, attempts = attempts + 1, updated_at = $2 \
     WHERE subscription = $1 AND event_id = ( \
         SELECT event_id FROM deliveries \
         WHERE subscription = $1 AND (status = 'new' OR (status = 'claimed' AND claimed_until < $2)) AND attempts < $3 \
         ORDER BY event_id LIMIT 1 FOR UPDATE SKIP LOCKED) \
     RETURNING event_id, attempts";

/// SQLite runs one writer at a time, so the same statement without row locks is just as safe.
const CLAIM_SQLITE: &str = "UPDATE deliveries SET status = 'claimed', claim = $4, claimed_until = $5, attempts = attempts + 1, updated_at = $2 \
     WHERE subscription = $1 AND event_id = ( \
         SELECT event_id FROM deliveries \
         WHERE subscription = $1 AND (status = 'new' OR (status = 'claimed' AND claimed_until < $2)) AND attempts < $3 \
         ORDER BY event_id LIMIT 1) \
     RETURNING event_id, attempts";

/// An event's `data` as the subscriber sees it: as stored, with the call's fields joined in as
/// `call` when the event names its call row (`call.routed` since the event_call migration).
fn event_data(data: &str, call_data: Option<String>) -> serde_json::Value {
    let mut data: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
    if let (Some(call), Some(object)) = (call_data, data.as_object_mut()) {
        let call = serde_json::from_str(&call).unwrap_or(serde_json::Value::Null);
        object.insert("call".into(), call);
    }
    data
}

impl Storage {
    /// GetNextNewAndClaim: the oldest new event of `subscription`, now claimed until
    /// `claimed_until_ms`; `None` when there is none.
    pub async fn claim_next(
        &self,
        subscription: &str,
        now_ms: i64,
        claimed_until_ms: i64,
        max_attempts: i64,
        token: &str,
    ) -> Result<Option<ClaimedEvent>, sqlx::Error> {
        let claim = match self {
            Storage::Sqlite(_) => CLAIM_SQLITE,
            Storage::Postgres(_) => CLAIM_POSTGRES,
        };
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // Claims that expired after their last allowed attempt are parked, not handed out.
            sqlx::query(
                "UPDATE deliveries SET status = 'max-retries-exceeded', claim = NULL, claimed_until = NULL, updated_at = $2 \
                 WHERE subscription = $1 AND status = 'claimed' AND claimed_until < $2 AND attempts >= $3",
            )
            .bind(subscription)
            .bind(now_ms)
            .bind(max_attempts)
            .execute(&mut *tx)
            .await?;
            let claimed = sqlx::query(claim)
                .bind(subscription)
                .bind(now_ms)
                .bind(max_attempts)
                .bind(token)
                .bind(claimed_until_ms)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(claimed) = claimed else {
                tx.commit().await?;
                return Ok(None);
            };
            let id: i64 = claimed.try_get("event_id")?;
            let attempt: i64 = claimed.try_get("attempts")?;
            let event = sqlx::query("SELECT e.kind, e.created_at, e.data, c.call_data FROM events e LEFT JOIN calls c ON c.id = e.call_id WHERE e.id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(ClaimedEvent {
                id,
                kind: event.try_get("kind")?,
                created_at: rfc3339(event.try_get("created_at")?),
                claim: token.to_string(),
                claim_expires_at: rfc3339(claimed_until_ms),
                attempt,
                data: event_data(&event.try_get::<String, _>("data")?, event.try_get("call_data")?),
            }))
        })
    }

    /// Closes a claim: `success`, or failed (back to new, or parked after `max_attempts`).
    pub async fn close_claim(
        &self,
        subscription: &str,
        event_id: i64,
        claim: &str,
        success: bool,
        now_ms: i64,
        max_attempts: i64,
    ) -> Result<Closed, sqlx::Error> {
        let outcome = if success { "success" } else { "failed" };
        on_pool!(self, pool => {
            let updated = sqlx::query(
                "UPDATE deliveries SET status = CASE WHEN $4 = 'success' THEN 'success' WHEN attempts >= $6 THEN 'max-retries-exceeded' ELSE 'new' END, \
                 claim = NULL, claimed_until = NULL, updated_at = $5 \
                 WHERE subscription = $1 AND event_id = $2 AND status = 'claimed' AND claim = $3",
            )
            .bind(subscription)
            .bind(event_id)
            .bind(claim)
            .bind(outcome)
            .bind(now_ms)
            .bind(max_attempts)
            .execute(pool)
            .await?;
            if updated.rows_affected() == 1 {
                return Ok(Closed::Done);
            }
            let exists: Option<i64> = sqlx::query_scalar("SELECT event_id FROM deliveries WHERE subscription = $1 AND event_id = $2")
                .bind(subscription)
                .bind(event_id)
                .fetch_optional(pool)
                .await?;
            Ok(if exists.is_some() { Closed::NotClaimed } else { Closed::Unknown })
        })
    }

    /// Deliveries of `subscription` by status.
    pub async fn delivery_counts(
        &self,
        subscription: &str,
    ) -> Result<Vec<(String, i64)>, sqlx::Error> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM deliveries WHERE subscription = $1 GROUP BY status ORDER BY status")
                .bind(subscription)
                .fetch_all(pool)
                .await?;
            rows.iter().map(|r| Ok((r.try_get("status")?, r.try_get("n")?))).collect()
        })
    }

    /// Does `subscription` have events waiting to be claimed?
    pub async fn has_new_events(
        &self,
        subscription: &str,
        now_ms: i64,
    ) -> Result<bool, sqlx::Error> {
        on_pool!(self, pool => {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT event_id FROM deliveries WHERE subscription = $1 AND (status = 'new' OR (status = 'claimed' AND claimed_until < $2)) LIMIT 1",
            )
            .bind(subscription)
            .bind(now_ms)
            .fetch_optional(pool)
            .await?;
            Ok(found.is_some())
        })
    }

    /// Events of `subscription` in `status`, oldest first (for the admin API).
    pub async fn events_in_status(
        &self,
        subscription: &str,
        status: &str,
        limit: i64,
    ) -> Result<Vec<serde_json::Value>, sqlx::Error> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT e.id, e.kind, e.created_at, e.data, c.call_data, d.attempts, d.updated_at FROM deliveries d JOIN events e ON e.id = d.event_id \
                 LEFT JOIN calls c ON c.id = e.call_id WHERE d.subscription = $1 AND d.status = $2 ORDER BY e.id LIMIT $3",
            )
            .bind(subscription)
            .bind(status)
            .bind(limit.clamp(1, 1000))
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(serde_json::json!({
                        "id": r.try_get::<i64, _>("id")?,
                        "type": r.try_get::<String, _>("kind")?,
                        "created_at": rfc3339(r.try_get("created_at")?),
                        "attempts": r.try_get::<i64, _>("attempts")?,
                        "updated_at": rfc3339(r.try_get("updated_at")?),
                        "data": event_data(&r.try_get::<String, _>("data")?, r.try_get("call_data")?),
                    }))
                })
                .collect()
        })
    }
}
