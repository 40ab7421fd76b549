//! A logged call with everything known about it: the one view of a call the admin API, the
//! console and `simulate --json` show.

use std::time::Duration;

use belroute_engine::Normaliser;
use serde::Serialize;

use crate::storage::{AgentReport, CallKey, CallLog, LoggedCall, Storage};

/// How long reading one call waits for the records queued before it to be written: the call
/// may have been answered a moment ago.
pub const FLUSH_FIRST: Duration = Duration::from_secs(2);

/// One call in full: its record and who handled it.
#[derive(Debug, Clone, Serialize)]
pub struct CallDetail {
    #[serde(flatten)]
    pub call: LoggedCall,
    pub agent_reports: Vec<AgentReport>,
}

/// The call `key` names, after what was queued before it is written.
pub async fn detail(
    call_log: &CallLog,
    storage: &Storage,
    key: CallKey<'_>,
) -> Result<Option<CallDetail>, sqlx::Error> {
    call_log.flush(FLUSH_FIRST).await;
    Ok(storage
        .call(key)
        .await?
        .map(|(call, agent_reports)| CallDetail {
            call,
            agent_reports,
        }))
}

/// A caller to filter calls by, written any way: the key the call log stores it under
/// (E.164, or the number as received when it is not a valid one); `None` when empty.
pub fn caller_filter(normaliser: &Normaliser, text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| normaliser.normalise(text).key().to_string())
}

/// Calls matching `filter`, newest first (the admin API's list and the console's).
pub async fn list(
    storage: &Storage,
    filter: &crate::storage::CallFilter,
) -> Result<Vec<LoggedCall>, sqlx::Error> {
    storage.calls(filter).await
}

/// The last hour in numbers, up to `now_ms`.
pub async fn last_hour(
    storage: &Storage,
    now_ms: i64,
) -> Result<crate::storage::Activity, sqlx::Error> {
    storage.activity(now_ms - 3_600_000).await
}
