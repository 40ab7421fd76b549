//! What the call log keeps of one answered call, and the counters the writer and the spill
//! file share: the records' one home, so the writer and the spill file need only this.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::SystemTime;

use belroute_engine::{Call, Decision, Trace};
use serde::{Deserialize, Serialize};

use crate::time::epoch_ms;

/// One answered call, as it will be stored.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub received_at: SystemTime,
    pub call: Arc<Call>,
    pub decision: Decision,
}

/// A record's column values, built once when the call is recorded (its crash journal line is
/// written before the answer leaves), then written by the writer or the spill thread. It is
/// also the spill file's and the journal's line format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRow {
    pub uuid: String,
    /// Milliseconds since the Unix epoch.
    pub received_at: i64,
    pub ruleset: String,
    pub version: String,
    pub caller_raw: String,
    pub caller_e164: String,
    #[serde(default)]
    pub caller_anonymous: bool,
    pub route: String,
    pub rule: Option<String>,
    pub reason: String,
    pub micros: i64,
    /// The call fields as received (a JSON object).
    pub call_data: String,
    /// The decision trace (JSON).
    pub trace: String,
}

impl From<&CallRecord> for CallRow {
    fn from(record: &CallRecord) -> Self {
        let d = &record.decision;
        CallRow {
            uuid: record.call.uuid().to_string(),
            received_at: epoch_ms(record.received_at),
            ruleset: d.ruleset.clone(),
            version: d.version.clone(),
            caller_raw: d.caller.raw.clone(),
            caller_e164: d.caller.e164.clone(),
            caller_anonymous: d.caller.anonymous,
            route: d.route.clone(),
            rule: d.rule.clone(),
            reason: d.reason.as_str().to_string(),
            micros: i64::try_from(d.micros).unwrap_or(i64::MAX),
            call_data: serde_json::to_string(record.call.sent_fields())
                .unwrap_or_else(|_| "{}".into()),
            // Serialised straight from the decision into one buffer.
            trace: Trace::json(d),
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Stats {
    /// Accepted and not yet written or spilled (in a queue or in the batch being written).
    pub pending: AtomicU64,
    pub written: AtomicU64,
    pub spilled: AtomicU64,
    pub replayed: AtomicU64,
    pub dropped: AtomicU64,
    /// Records the database refused for what they hold, kept in a file beside the spill file.
    pub set_aside: AtomicU64,
    pub database_up: AtomicBool,
    last_drop_log_ms: AtomicI64,
}

impl Stats {
    /// Counters of a call log whose database is taken to be up until a write fails.
    pub fn new() -> Self {
        Stats {
            database_up: AtomicBool::new(true),
            ..Stats::default()
        }
    }

    /// A record is lost: counted, and said at most every 10 s.
    pub fn drop_record(&self, why: &str) {
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        let now = crate::time::now_ms();
        let last = self.last_drop_log_ms.load(Ordering::Relaxed);
        if now - last >= 10_000
            && self
                .last_drop_log_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::error!(
                dropped_total = dropped,
                "call log: call records are being dropped: {why}"
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The trace written straight from the decision reads back as the decision's trace, and
    /// holds what the `serde_json::Value` it was built through before held (the caller and
    /// the rules now in their short forms, normalised again when read).
    #[test]
    fn the_trace_is_the_decision_s() {
        let caller = belroute_engine::Normaliser::default().normalise("0612345678");
        let decision = Decision {
            route: "finance".into(),
            rule: Some("Invoices".into()),
            reason: belroute_engine::Reason::Matched,
            ruleset: "main".into(),
            version: "v1".into(),
            caller,
            rules: vec![belroute_engine::RuleTrace {
                name: "Invoices".into(),
                outcome: belroute_engine::RuleOutcome::Matched,
                micros: 40,
            }],
            lookups: Vec::new(),
            micros: 1000,
            panicked: false,
        };
        let record = CallRecord {
            received_at: SystemTime::now(),
            call: Arc::new(Call::from_pairs([
                ("uuid", "u1"),
                ("caller_number", "0612345678"),
            ])),
            decision,
        };
        let row = CallRow::from(&record);
        let d = &record.decision;
        let before =
            serde_json::json!({ "caller": d.caller, "rules": d.rules, "lookups": d.lookups });
        let read = Trace::parse(&row.trace).unwrap();
        assert_eq!(read, Trace::of(d));
        assert_eq!(serde_json::to_value(&read).unwrap(), before);
    }
}
