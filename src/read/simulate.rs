//! Deciding one call without Callvoip, as `belroute simulate` and the console's "Try a call"
//! do it (the same code): the call written by hand, a local time, and facts given instead of
//! asking the plugins. Nothing is logged or sent.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use belroute_engine::{Call, Decision, LookupResult, Router, RuleSet};
use chrono::{DateTime, NaiveDateTime, Utc};

/// One call to decide, as a person wrote it.
#[derive(Debug, Clone, Default)]
pub struct Simulation {
    pub call: Call,
    /// Local time in the rule set's zone; now when `None`.
    pub at: Option<NaiveDateTime>,
    /// Facts to use instead of asking the plugins; `None` asks them.
    pub facts: Option<BTreeMap<String, LookupResult>>,
}

/// What is wrong with what was written: the text, and how to write it. Each face says where
/// it was (`--facts x`, the Facts box).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}`: {fix}")]
pub struct Written {
    pub text: String,
    pub fix: String,
}

impl Written {
    fn new(text: &str, fix: impl Into<String>) -> Self {
        Written {
            text: text.to_string(),
            fix: fix.into(),
        }
    }
}

/// A call field written as `FIELD=VALUE`.
pub fn field(text: &str) -> Result<(String, String), Written> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| Written::new(text, "write FIELD=VALUE"))?;
    Ok((name.trim().to_string(), value.trim().to_string()))
}

/// What a lookup answers, written `NAME={json}`, `NAME=not-found` or `NAME=unavailable`.
pub fn facts(text: &str) -> Result<(String, LookupResult), Written> {
    let (name, value) = text.split_once('=').ok_or_else(|| {
        Written::new(
            text,
            "write NAME={json}, NAME=not-found or NAME=unavailable",
        )
    })?;
    let result = match value.trim() {
        "not-found" | "{}" => LookupResult::NotFound,
        "unavailable" => LookupResult::Unavailable {
            reason: "unavailable in this simulation".into(),
        },
        json => match serde_json::from_str(json) {
            Ok(serde_json::Value::Object(facts)) => LookupResult::Found {
                facts: Arc::new(facts),
            },
            _ => {
                return Err(Written::new(
                    &format!("{}=…", name.trim()),
                    "facts are a JSON object such as '{\"open_count\": 2}'",
                ));
            }
        },
    };
    Ok((name.trim().to_string(), result))
}

/// A local time written `2026-11-23 10:00` (or with seconds, or a `T`).
pub fn local_time(text: &str) -> Result<NaiveDateTime, Written> {
    belroute_engine::parse_local_time(text)
        .ok_or_else(|| Written::new(text, "write a local time such as \"2026-11-23 10:00\""))
}

/// Decides `simulation` with `set`: at its local time in the rule set's zone (now when not
/// given), with its facts instead of asking the plugins when given, by the rule set's
/// deadline as a live call would be (`margin`: `hooks.margin`). Fails only when the time does
/// not exist in the rule set's zone (the clock skips it for summer time). Returns the
/// decision and the moment it was made for.
pub async fn decide(
    router: &Router,
    set: &Arc<RuleSet>,
    simulation: Simulation,
    margin: Duration,
) -> Result<(Decision, DateTime<Utc>), String> {
    let now = match simulation.at {
        Some(local) => belroute_engine::local_to_utc(set.time_zone, local)?,
        None => Utc::now(),
    };
    let deadline = set.deadline(tokio::time::Instant::now(), margin);
    let decision = match &simulation.facts {
        Some(facts) => {
            router
                .route_with_facts(set, simulation.call, facts, deadline, now)
                .await
        }
        None => {
            router
                .route(set, Arc::new(simulation.call), deadline, now)
                .await
        }
    };
    Ok((decision, now))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn what_a_person_writes_is_read_or_named() {
        assert_eq!(field("dp_id = 12").unwrap(), ("dp_id".into(), "12".into()));
        assert_eq!(field("no equals").unwrap_err().fix, "write FIELD=VALUE");
        assert_eq!(facts("crm=not-found").unwrap().1, LookupResult::NotFound);
        assert!(matches!(
            facts("crm={\"open\": 1}").unwrap().1,
            LookupResult::Found { .. }
        ));
        let wrong = facts("crm=[1]").unwrap_err();
        assert_eq!(
            wrong.to_string(),
            "`crm=…`: facts are a JSON object such as '{\"open_count\": 2}'"
        );
        assert!(local_time("2026-11-23T10:00").is_ok());
        assert!(
            local_time("tomorrow")
                .unwrap_err()
                .fix
                .contains("2026-11-23 10:00")
        );
    }
}
