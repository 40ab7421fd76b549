//! Routing events, in one place: their kinds and payloads, the delivery states, writing them
//! (in the transaction of what they report) and waking their subscribers after the commit,
//! GetNextNewAndClaim and closing a claim.
//!
//! Who subscribes to what, and how a subscriber is woken, is the [`EventSink`]'s business
//! (`crate::subscriptions` implements it); storage knows nothing more of subscriptions.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{CallRow, Storage, rfc3339};

/// What an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum EventKind {
    /// A call was answered.
    #[serde(rename = "call.routed")]
    CallRouted,
    /// An agent was reported for a call.
    #[serde(rename = "call.agent")]
    CallAgent,
}

impl EventKind {
    /// The name subscribers see as `type` (and the configuration's `events:` uses).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::CallRouted => "call.routed",
            EventKind::CallAgent => "call.agent",
        }
    }
}

/// Who wants events, and how to tell them new ones were committed.
pub trait EventSink: Send + Sync + fmt::Debug {
    /// The subscriptions that want events of `kind` now.
    fn subscribers(&self, kind: EventKind) -> Vec<String>;
    /// Events for these subscriptions were committed.
    fn wake(&self, subscribers: &[String]);
}

/// Nobody subscribes: no events are written (tools, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSubscribers;

impl EventSink for NoSubscribers {
    fn subscribers(&self, _kind: EventKind) -> Vec<String> {
        Vec::new()
    }

    fn wake(&self, _subscribers: &[String]) {}
}

/// Where one subscription's copy of an event stands (`deliveries.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DeliveryStatus {
    /// Waiting to be claimed.
    #[serde(rename = "new")]
    New,
    /// Handed out; back to new when the claim expires.
    #[serde(rename = "claimed")]
    Claimed,
    /// Closed `success`: final.
    #[serde(rename = "success")]
    Success,
    /// Handed out `max_retries` times without success: parked for the operator.
    #[serde(rename = "max-retries-exceeded")]
    MaxRetriesExceeded,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 4] = [
        DeliveryStatus::New,
        DeliveryStatus::Claimed,
        DeliveryStatus::Success,
        DeliveryStatus::MaxRetriesExceeded,
    ];

    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::New => "new",
            DeliveryStatus::Claimed => "claimed",
            DeliveryStatus::Success => "success",
            DeliveryStatus::MaxRetriesExceeded => "max-retries-exceeded",
        }
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A delivery status that does not exist.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{0}` is not a delivery status; use new, claimed, success or max-retries-exceeded")]
pub struct UnknownStatus(pub String);

impl FromStr for DeliveryStatus {
    type Err = UnknownStatus;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        DeliveryStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| UnknownStatus(text.to_string()))
    }
}

/// The `call.routed` payload as stored: what a subscriber learns when it claims it, without
/// the call's fields (`data.call`), which are joined in from the call's row at claim time.
pub(super) fn routed_payload(row: &CallRow) -> String {
    serde_json::json!({
        "uuid": row.uuid,
        "received_at": rfc3339(row.received_at),
        "ruleset": row.ruleset,
        "route": row.route,
        "rule": row.rule,
        "reason": row.reason,
        "caller": { "raw": row.caller_raw, "e164": row.caller_e164, "anonymous": row.caller_anonymous },
    })
    .to_string()
}

/// The `call.agent` payload.
pub(super) fn agent_payload(uuid: &str, agent: &str, at_ms: i64) -> String {
    serde_json::json!({ "uuid": uuid, "agent": agent, "reported_at": rfc3339(at_ms) }).to_string()
}

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
/// `$1` subscription, `$2` now, `$3` max attempts, `$4` claim token, `$5` claimed until,
/// `$6` claimed, `$7` new.
const CLAIM_POSTGRES: &str = "UPDATE deliveries SET status = $6, claim = $4, claimed_until = $5, attempts = attempts + 1, updated_at = $2 \
     WHERE subscription = $1 AND event_id = ( \
         SELECT event_id FROM deliveries \
         WHERE subscription = $1 AND (status = $7 OR (status = $6 AND claimed_until < $2)) AND attempts < $3 \
         ORDER BY event_id LIMIT 1 FOR UPDATE SKIP LOCKED) \
     RETURNING event_id, attempts";

/// SQLite runs one writer at a time, so the same statement without row locks is just as safe.
const CLAIM_SQLITE: &str = "UPDATE deliveries SET status = $6, claim = $4, claimed_until = $5, attempts = attempts + 1, updated_at = $2 \
     WHERE subscription = $1 AND event_id = ( \
         SELECT event_id FROM deliveries \
         WHERE subscription = $1 AND (status = $7 OR (status = $6 AND claimed_until < $2)) AND attempts < $3 \
         ORDER BY event_id LIMIT 1) \
     RETURNING event_id, attempts";

impl Storage {
    /// Returns `subscription`'s parked (`max-retries-exceeded`) deliveries to new with their
    /// attempts reset — all of them, or only `event`; how many.
    pub async fn requeue_parked(
        &self,
        subscription: &str,
        event: Option<i64>,
        now_ms: i64,
    ) -> Result<u64, sqlx::Error> {
        on_pool!(self, pool => {
            let done = sqlx::query(
                "UPDATE deliveries SET status = $2, attempts = 0, claim = NULL, claimed_until = NULL, updated_at = $3 \
                 WHERE subscription = $1 AND status = $4 AND ($5 IS NULL OR event_id = $5)",
            )
            .bind(subscription)
            .bind(DeliveryStatus::New.as_str())
            .bind(now_ms)
            .bind(DeliveryStatus::MaxRetriesExceeded.as_str())
            .bind(event)
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        })
    }

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
                "UPDATE deliveries SET status = $4, claim = NULL, claimed_until = NULL, updated_at = $2 \
                 WHERE subscription = $1 AND status = $5 AND claimed_until < $2 AND attempts >= $3",
            )
            .bind(subscription)
            .bind(now_ms)
            .bind(max_attempts)
            .bind(DeliveryStatus::MaxRetriesExceeded.as_str())
            .bind(DeliveryStatus::Claimed.as_str())
            .execute(&mut *tx)
            .await?;
            let claimed = sqlx::query(claim)
                .bind(subscription)
                .bind(now_ms)
                .bind(max_attempts)
                .bind(token)
                .bind(claimed_until_ms)
                .bind(DeliveryStatus::Claimed.as_str())
                .bind(DeliveryStatus::New.as_str())
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
        // Success is final; a failure goes back to new, or is parked after the last attempt.
        let final_status = success.then_some(DeliveryStatus::Success.as_str());
        on_pool!(self, pool => {
            let updated = sqlx::query(
                "UPDATE deliveries SET status = COALESCE($4, CASE WHEN attempts >= $6 THEN $7 ELSE $8 END), \
                 claim = NULL, claimed_until = NULL, updated_at = $5 \
                 WHERE subscription = $1 AND event_id = $2 AND status = $9 AND claim = $3",
            )
            .bind(subscription)
            .bind(event_id)
            .bind(claim)
            .bind(final_status)
            .bind(now_ms)
            .bind(max_attempts)
            .bind(DeliveryStatus::MaxRetriesExceeded.as_str())
            .bind(DeliveryStatus::New.as_str())
            .bind(DeliveryStatus::Claimed.as_str())
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
                "SELECT event_id FROM deliveries WHERE subscription = $1 AND (status = $3 OR (status = $4 AND claimed_until < $2)) LIMIT 1",
            )
            .bind(subscription)
            .bind(now_ms)
            .bind(DeliveryStatus::New.as_str())
            .bind(DeliveryStatus::Claimed.as_str())
            .fetch_optional(pool)
            .await?;
            Ok(found.is_some())
        })
    }

    /// Events of `subscription` in `status`, oldest first (for the admin API).
    pub async fn events_in_status(
        &self,
        subscription: &str,
        status: DeliveryStatus,
        limit: i64,
    ) -> Result<Vec<serde_json::Value>, sqlx::Error> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT e.id, e.kind, e.created_at, e.data, c.call_data, d.attempts, d.updated_at FROM deliveries d JOIN events e ON e.id = d.event_id \
                 LEFT JOIN calls c ON c.id = e.call_id WHERE d.subscription = $1 AND d.status = $2 ORDER BY e.id LIMIT $3",
            )
            .bind(subscription)
            .bind(status.as_str())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_statuses_read_back_as_written() {
        for status in DeliveryStatus::ALL {
            assert_eq!(status.as_str().parse::<DeliveryStatus>().ok(), Some(status));
            assert_eq!(
                serde_json::to_value(status).ok(),
                Some(serde_json::Value::from(status.as_str()))
            );
        }
        let wrong = "parked"
            .parse::<DeliveryStatus>()
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            wrong.as_deref(),
            Some(
                "`parked` is not a delivery status; use new, claimed, success or max-retries-exceeded"
            )
        );
    }

    #[test]
    fn a_routed_event_is_joined_with_its_call() {
        let data = event_data(
            r#"{"uuid":"u","route":"r"}"#,
            Some(r#"{"dp_id":"d"}"#.into()),
        );
        assert_eq!(
            data,
            serde_json::json!({ "uuid": "u", "route": "r", "call": { "dp_id": "d" } })
        );
        let old = event_data(r#"{"uuid":"u","call":{"x":"y"}}"#, None);
        assert_eq!(
            old,
            serde_json::json!({ "uuid": "u", "call": { "x": "y" } })
        );
    }
}
