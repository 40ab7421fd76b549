//! What the operator's console (`/admin`) reads from the call log that the JSON API does not:
//! calls filtered by rule set, route, caller and time, and the last hour in numbers.

use sqlx::Row;

use super::{CALL_COLUMNS, Storage, StoredCall, stored_call};

/// The Calls page's filters; empty strings filter nothing.
#[derive(Debug, Clone, Default)]
pub struct ConsoleCallFilter {
    pub ruleset: String,
    pub route: String,
    /// E.164 (or raw) caller number.
    pub caller: String,
    /// Milliseconds since the epoch; calls at or after this.
    pub since_ms: i64,
    /// Milliseconds since the epoch; calls before this.
    pub until_ms: i64,
    pub limit: i64,
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

impl Storage {
    /// Calls matching `filter`, newest first, at most `filter.limit` (1 to 500).
    pub async fn console_calls(
        &self,
        filter: &ConsoleCallFilter,
    ) -> Result<Vec<StoredCall>, sqlx::Error> {
        let limit = filter.limit.clamp(1, 500);
        on_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {CALL_COLUMNS} FROM calls WHERE received_at >= $1 AND received_at < $2 \
                 AND ($3 = '' OR ruleset = $3) AND ($4 = '' OR route = $4) \
                 AND ($5 = '' OR caller_e164 = $5 OR caller_raw = $5) \
                 ORDER BY received_at DESC, id DESC LIMIT $6"
            )))
            .bind(filter.since_ms)
            .bind(filter.until_ms)
            .bind(filter.ruleset.as_str())
            .bind(filter.route.as_str())
            .bind(filter.caller.as_str())
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.iter().map(stored_call).collect()
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
        let uuids = |filter: ConsoleCallFilter| {
            let storage = storage.clone();
            async move {
                storage
                    .console_calls(&filter)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|c| c.uuid)
                    .collect::<Vec<_>>()
            }
        };
        let all = ConsoleCallFilter {
            until_ms: i64::MAX,
            limit: 100,
            ..ConsoleCallFilter::default()
        };
        assert_eq!(uuids(all.clone()).await, ["u2", "u1", "u0"]);
        let main = ConsoleCallFilter {
            ruleset: "main".into(),
            ..all.clone()
        };
        assert_eq!(uuids(main).await, ["u1", "u0"]);
        let finance = ConsoleCallFilter {
            route: "finance".into(),
            caller: "+31152026057".into(),
            ..all.clone()
        };
        assert_eq!(uuids(finance).await, ["u2", "u0"]);
        let window = ConsoleCallFilter {
            since_ms: 150_000,
            until_ms: 240_000,
            ..all.clone()
        };
        assert_eq!(uuids(window).await, ["u1"]);
        let activity = storage.activity(0).await.unwrap();
        assert_eq!(activity.per_minute, [(2, 1), (3, 1), (4, 1)]);
        assert_eq!(
            activity.routes,
            [("finance".to_string(), 2), ("receptie".to_string(), 1)]
        );
        assert_eq!(activity.reasons, [("matched".to_string(), 3)]);
    }
}
