//! How a call was decided, as the call log keeps it: the caller as normalised, every rule's
//! outcome and every lookup's result. Written from a [`Decision`] and read back as this one
//! type wherever a logged decision is looked at again (replay, the console, the admin API),
//! so its shape is said once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::caller::Caller;
use crate::decide::{Decision, RuleTrace};
use crate::lookups::{LookupResult, LookupTrace};

/// A decision's explanation: `{"caller": …, "rules": […], "lookups": […]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    #[serde(default)]
    pub caller: Arc<Caller>,
    #[serde(default)]
    pub rules: Vec<RuleTrace>,
    #[serde(default)]
    pub lookups: Vec<LookupTrace>,
}

/// The same fields, borrowed: a decision's trace is written without copying it.
#[derive(Serialize)]
struct Borrowed<'a> {
    caller: &'a Caller,
    rules: &'a [RuleTrace],
    lookups: &'a [LookupTrace],
}

impl Trace {
    /// `decision`'s trace.
    pub fn of(decision: &Decision) -> Trace {
        Trace {
            caller: decision.caller.clone(),
            rules: decision.rules.clone(),
            lookups: decision.lookups.clone(),
        }
    }

    /// `decision`'s trace as the call log stores it (JSON).
    pub fn json(decision: &Decision) -> String {
        serde_json::to_string(&Borrowed {
            caller: &decision.caller,
            rules: &decision.rules,
            lookups: &decision.lookups,
        })
        .unwrap_or_else(|_| "{}".into())
    }

    /// A stored trace; a field an older record lacks takes its default.
    pub fn parse(text: &str) -> Result<Trace, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The facts this trace recorded, and the names of the lookups whose facts are known: a
    /// lookup unavailable only because no rule waited for it is not known (replay gives it
    /// no facts it did not have).
    pub fn recorded_facts(&self) -> (BTreeMap<String, LookupResult>, BTreeSet<String>) {
        let mut facts = BTreeMap::new();
        let mut known = BTreeSet::new();
        for lookup in &self.lookups {
            let result = match &lookup.result {
                LookupResult::Unavailable { .. } if !lookup.awaited => continue,
                LookupResult::Unavailable { reason } => LookupResult::Unavailable {
                    reason: format!("unavailable then: {reason}"),
                },
                other => other.clone(),
            };
            known.insert(lookup.name.clone());
            facts.insert(lookup.name.clone(), result);
        }
        (facts, known)
    }

    /// The lookup named `name`, if the trace has it.
    pub fn lookup(&self, name: &str) -> Option<&LookupTrace> {
        self.lookups.iter().find(|l| l.name == name)
    }

    /// The rule named `name`, if the trace has it.
    pub fn rule(&self, name: &str) -> Option<&RuleTrace> {
        self.rules.iter().find(|r| r.name == name)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::decide::{Reason, RuleOutcome};
    use crate::diagnostic::Position;

    fn decision() -> Decision {
        let caller = crate::caller::Normaliser::default().normalise("0152026057");
        Decision {
            route: "finance".into(),
            rule: Some("Invoices".into()),
            reason: Reason::Matched,
            ruleset: "main".into(),
            version: "v1".into(),
            caller,
            rules: vec![
                RuleTrace {
                    name: "Broken".into(),
                    outcome: RuleOutcome::Error {
                        message: "no such variable".into(),
                        position: Position { line: 4, column: 9 },
                    },
                    micros: 12,
                },
                RuleTrace {
                    name: "Skipped".into(),
                    outcome: RuleOutcome::Skipped {
                        reason: "crm unavailable (timeout)".into(),
                    },
                    micros: 3,
                },
                RuleTrace {
                    name: "Invoices".into(),
                    outcome: RuleOutcome::Matched,
                    micros: 40,
                },
            ],
            lookups: vec![
                LookupTrace {
                    name: "crm".into(),
                    result: LookupResult::Found {
                        facts: Arc::new(
                            serde_json::json!({"open": 2}).as_object().cloned().unwrap(),
                        ),
                    },
                    micros: 900,
                    cached: true,
                    stale: false,
                    awaited: true,
                },
                LookupTrace {
                    name: "history".into(),
                    result: LookupResult::Unavailable {
                        reason: "timeout".into(),
                    },
                    micros: 0,
                    cached: false,
                    stale: false,
                    awaited: false,
                },
            ],
            micros: 1000,
            panicked: false,
        }
    }

    #[test]
    fn a_written_trace_reads_back_as_it_was() {
        let decision = decision();
        let read = Trace::parse(&Trace::json(&decision)).unwrap();
        assert_eq!(read, Trace::of(&decision));
        assert_eq!(read.caller.e164, "+31152026057");
        assert_eq!(read.caller.kind, "fixed");
    }

    #[test]
    fn an_older_record_reads_with_defaults() {
        let read = Trace::parse(
            r#"{"caller":{"raw":"x"},"rules":[{"name":"A","outcome":"no_match"}],
                "lookups":[{"name":"crm","result":"not_found"}]}"#,
        )
        .unwrap();
        assert_eq!(read.caller.raw, "x");
        assert_eq!(read.caller.kind, "unknown");
        assert_eq!(read.rules[0].outcome, RuleOutcome::NoMatch);
        assert!(read.lookups[0].awaited, "lookups were all waited for then");
        assert!(Trace::parse("[1]").is_err());
    }

    #[test]
    fn only_facts_a_rule_waited_for_are_known() {
        let (facts, known) = Trace::of(&decision()).recorded_facts();
        assert!(known.contains("crm") && !known.contains("history"));
        assert!(matches!(facts["crm"], LookupResult::Found { .. }));
        assert!(!facts.contains_key("history"));
    }
}
