//! Reading the call log: one read model of a logged call ([`LoggedCall`]) and one filter
//! ([`CallFilter`]) for everyone who reads it — the admin API, the console, replay and
//! `belroute replay` — and the last hour in numbers for the overview.

use belroute_engine::Trace;
use serde::Serialize;
use sqlx::Row;

use super::Storage;
use crate::time::rfc3339;

/// One logged call, as read back. Serialised, it is the admin API's call record.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedCall {
    /// The row's id: names a call that has no uuid.
    #[serde(skip)]
    pub id: i64,
    pub uuid: String,
    /// Milliseconds since the Unix epoch (RFC 3339 in JSON).
    #[serde(serialize_with = "as_rfc3339")]
    pub received_at: i64,
    pub ruleset: String,
    pub version: String,
    /// The caller's number as received.
    #[serde(rename = "caller")]
    pub caller_raw: String,
    pub caller_e164: String,
    pub route: String,
    pub rule: Option<String>,
    pub reason: String,
    pub micros: i64,
    pub agent: Option<String>,
    /// The call fields as received (a JSON object, as stored).
    #[serde(rename = "call", serialize_with = "as_json")]
    pub call_data: String,
    /// The decision trace as stored; read it with [`LoggedCall::trace`].
    #[serde(rename = "trace", serialize_with = "as_trace")]
    pub trace_json: String,
}

impl LoggedCall {
    /// How the call was decided; `Err` says why a stored trace cannot be read.
    pub fn trace(&self) -> Result<Trace, String> {
        Trace::parse(&self.trace_json).map_err(|e| format!("its trace cannot be read: {e}"))
    }

    /// The call fields as received.
    pub fn fields(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::from_str(&self.call_data) {
            Ok(serde_json::Value::Object(fields)) => fields,
            _ => serde_json::Map::new(),
        }
    }
}

fn as_rfc3339<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ms))
}

fn as_json<S: serde::Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
    serde_json::from_str::<serde_json::Value>(text)
        .unwrap_or(serde_json::Value::Null)
        .serialize(s)
}

fn as_trace<S: serde::Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
    Trace::parse(text).ok().serialize(s)
}

/// A record as the call log would keep it, before it is written (`simulate --json`).
impl From<super::CallRow> for LoggedCall {
    fn from(row: super::CallRow) -> Self {
        LoggedCall {
            id: 0,
            uuid: row.uuid,
            received_at: row.received_at,
            ruleset: row.ruleset,
            version: row.version,
            caller_raw: row.caller_raw,
            caller_e164: row.caller_e164,
            route: row.route,
            rule: row.rule,
            reason: row.reason,
            micros: row.micros,
            agent: None,
            call_data: row.call_data,
            trace_json: row.trace,
        }
    }
}

/// Who handled a call, and when (RFC 3339).
#[derive(Debug, Clone, Serialize)]
pub struct AgentReport {
    pub agent: String,
    pub reported_at: String,
}

/// Which calls to read; `None` and empty filter nothing. Newest first, at most `limit`
/// (1 to [`CallFilter::MAX`]).
#[derive(Debug, Clone)]
pub struct CallFilter {
    pub ruleset: Option<String>,
    pub route: Option<String>,
    /// E.164 (or raw) caller number.
    pub caller: Option<String>,
    /// Milliseconds since the epoch; calls at or after this.
    pub since_ms: i64,
    /// Milliseconds since the epoch; calls before this.
    pub until_ms: i64,
    pub limit: i64,
}

impl Default for CallFilter {
    fn default() -> Self {
        CallFilter {
            ruleset: None,
            route: None,
            caller: None,
            since_ms: 0,
            until_ms: i64::MAX,
            limit: 50,
        }
    }
}

impl CallFilter {
    pub const MAX: i64 = 1000;
}

/// The last hour (or any window) in numbers, for the overview.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    /// `(minute since the epoch, calls)`, only minutes with calls, oldest first.
    pub per_minute: Vec<(i64, i64)>,
    /// `(route, calls)`, most calls first.
    pub routes: Vec<(String, i64)>,
    /// `(reason, calls)`: matched, no_match, deadline, …
    pub reasons: Vec<(String, i64)>,
}

/// The columns [`logged_call`] reads.
pub(super) const CALL_COLUMNS: &str = "id, uuid, received_at, ruleset, version, caller_raw, caller_e164, route, rule, reason, micros, agent, call_data, trace";

pub(super) fn logged_call<R: Row>(row: &R) -> Result<LoggedCall, sqlx::Error>
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
        caller_e164: row.try_get("caller_e164")?,
        route: row.try_get("route")?,
        rule: row.try_get("rule")?,
        reason: row.try_get("reason")?,
        micros: row.try_get("micros")?,
        agent: row.try_get("agent")?,
        call_data: row.try_get("call_data")?,
        trace_json: row.try_get("trace")?,
    })
}

/// Which logged call: by uuid (the latest with it), or by its row's id (a call without one).
#[derive(Debug, Clone, Copy)]
pub enum CallKey<'a> {
    Uuid(&'a str),
    Id(i64),
}

impl Storage {
    /// Calls matching `filter`, newest first.
    pub async fn calls(&self, filter: &CallFilter) -> Result<Vec<LoggedCall>, sqlx::Error> {
        let limit = filter.limit.clamp(1, CallFilter::MAX);
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        on_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {CALL_COLUMNS} FROM calls WHERE received_at >= $1 AND received_at < $2 \
                 AND ($3 = '' OR ruleset = $3) AND ($4 = '' OR route = $4) \
                 AND ($5 = '' OR caller_e164 = $5 OR caller_raw = $5) \
                 ORDER BY received_at DESC, id DESC LIMIT $6"
            )))
            .bind(filter.since_ms)
            .bind(filter.until_ms)
            .bind(text(&filter.ruleset))
            .bind(text(&filter.route))
            .bind(text(&filter.caller))
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.iter().map(logged_call).collect()
        })
    }

    /// One call and every agent report for it.
    pub async fn call(
        &self,
        key: CallKey<'_>,
    ) -> Result<Option<(LoggedCall, Vec<AgentReport>)>, sqlx::Error> {
        on_pool!(self, pool => {
            let row = match key {
                CallKey::Uuid(uuid) => sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {CALL_COLUMNS} FROM calls WHERE uuid = $1 ORDER BY received_at DESC, id DESC LIMIT 1"
                )))
                .bind(uuid)
                .fetch_optional(pool)
                .await?,
                CallKey::Id(id) => sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {CALL_COLUMNS} FROM calls WHERE id = $1"
                )))
                .bind(id)
                .fetch_optional(pool)
                .await?,
            };
            let Some(row) = row else {
                return Ok(None);
            };
            let call = logged_call(&row)?;
            let reports = sqlx::query("SELECT agent, reported_at FROM agent_reports WHERE call_id = $1 ORDER BY reported_at, id")
                .bind(call.id)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| Ok(AgentReport { agent: r.try_get("agent")?, reported_at: rfc3339(r.try_get("reported_at")?) }))
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            Ok(Some((call, reports)))
        })
    }

    /// Calls per minute, per route and per reason since `since_ms`.
    pub async fn activity(&self, since_ms: i64) -> Result<Activity, sqlx::Error> {
        on_pool!(self, pool => {
            let per_minute = sqlx::query(
                "SELECT received_at / 60000 AS minute, COUNT(*) AS n FROM calls WHERE received_at >= $1 GROUP BY received_at / 60000 ORDER BY minute",
            )
            .bind(since_ms)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("minute")?, r.try_get("n")?)))
            .collect::<Result<Vec<(i64, i64)>, sqlx::Error>>()?;
            let routes = sqlx::query(
                "SELECT route, COUNT(*) AS n FROM calls WHERE received_at >= $1 GROUP BY route ORDER BY n DESC, route LIMIT 20",
            )
            .bind(since_ms)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("route")?, r.try_get("n")?)))
            .collect::<Result<Vec<(String, i64)>, sqlx::Error>>()?;
            let reasons = sqlx::query(
                "SELECT reason, COUNT(*) AS n FROM calls WHERE received_at >= $1 GROUP BY reason ORDER BY reason",
            )
            .bind(since_ms)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("reason")?, r.try_get("n")?)))
            .collect::<Result<Vec<(String, i64)>, sqlx::Error>>()?;
            Ok(Activity { per_minute, routes, reasons })
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn filters_and_counts_on_sqlite() {
        let storage = Storage::open("sqlite::memory:").unwrap();
        storage.migrate().await.unwrap();
        let Storage::Sqlite(pool) = &storage else {
            unreachable!()
        };
        for (i, (ruleset, route, caller)) in [
            ("main", "finance", "+31152026057"),
            ("main", "receptie", "+31201234567"),
            ("other", "finance", "+31152026057"),
        ]
        .into_iter()
        .enumerate()
        {
            sqlx::query("INSERT INTO calls (uuid, received_at, ruleset, version, caller_raw, caller_e164, route, rule, reason, micros, call_data, trace) VALUES ($1, $2, $3, 'v', $4, $4, $5, NULL, 'matched', 10, '{}', '{}')")
                .bind(format!("u{i}"))
                .bind(120_000 + i as i64 * 60_000)
                .bind(ruleset)
                .bind(caller)
                .bind(route)
                .execute(pool)
                .await
                .unwrap();
        }
        let uuids = |filter: CallFilter| {
            let storage = storage.clone();
            async move {
                storage
                    .calls(&filter)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|c| c.uuid)
                    .collect::<Vec<_>>()
            }
        };
        let all = CallFilter::default();
        assert_eq!(uuids(all.clone()).await, ["u2", "u1", "u0"]);
        let main = CallFilter {
            ruleset: Some("main".into()),
            ..all.clone()
        };
        assert_eq!(uuids(main).await, ["u1", "u0"]);
        let finance = CallFilter {
            route: Some("finance".into()),
            caller: Some("+31152026057".into()),
            ..all.clone()
        };
        assert_eq!(uuids(finance).await, ["u2", "u0"]);
        let window = CallFilter {
            since_ms: 150_000,
            until_ms: 240_000,
            ..all.clone()
        };
        assert_eq!(uuids(window).await, ["u1"]);
        let one = CallFilter { limit: 1, ..all };
        assert_eq!(uuids(one).await, ["u2"]);
        let (by_uuid, _) = storage.call(CallKey::Uuid("u1")).await.unwrap().unwrap();
        let (by_id, _) = storage
            .call(CallKey::Id(by_uuid.id))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_id.uuid, "u1");
        assert!(storage.call(CallKey::Uuid("nope")).await.unwrap().is_none());
        let activity = storage.activity(0).await.unwrap();
        assert_eq!(activity.per_minute, [(2, 1), (3, 1), (4, 1)]);
        assert_eq!(
            activity.routes,
            [("finance".to_string(), 2), ("receptie".to_string(), 1)]
        );
        assert_eq!(activity.reasons, [("matched".to_string(), 3)]);
    }
}
