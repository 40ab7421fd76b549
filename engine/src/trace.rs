//! How a call was decided, as the call log keeps it: the caller as normalised, every rule's
//! outcome and every lookup's result. Written from a [`Decision`] and read back as this one
//! type wherever a logged decision is looked at again (replay, the console, the admin API),
//! so its shape is said once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::caller::Caller;
use crate::decide::{Decision, RuleOutcome, RuleTrace};
use crate::lookups::{LookupResult, LookupTrace};

/// A decision's explanation: `{"caller": …, "rules": […], "lookups": […]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    #[serde(default)]
    pub caller: Arc<Caller>,
    #[serde(default, deserialize_with = "read_rules")]
    pub rules: Vec<RuleTrace>,
    #[serde(default)]
    pub lookups: Vec<LookupTrace>,
}

/// A decision's trace as the call log stores it, borrowed (written without copying it) and
/// short: the caller as its number and region (normalised again when read), a rule whose
/// outcome carries nothing more as `[name, outcome, micros]`, a lookup's `cached` and `stale`
/// only when true. [`Trace`]'s `Deserialize` reads this and the longer form of older records.
#[derive(Serialize)]
struct Stored<'a> {
    #[serde(serialize_with = "stored_caller")]
    caller: &'a Caller,
    #[serde(serialize_with = "stored_rules")]
    rules: &'a [RuleTrace],
    #[serde(serialize_with = "stored_lookups")]
    lookups: &'a [LookupTrace],
}

fn stored_caller<S: serde::Serializer>(caller: &&Caller, s: S) -> Result<S::Ok, S::Error> {
    caller.serialize_stored(s)
}

fn stored_rules<S: serde::Serializer>(rules: &&[RuleTrace], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(rules.iter().map(StoredRule))
}

fn stored_lookups<S: serde::Serializer>(lookups: &&[LookupTrace], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(lookups.iter().map(StoredLookup))
}

struct StoredRule<'a>(&'a RuleTrace);

impl Serialize for StoredRule<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let rule = self.0;
        let outcome = match rule.outcome {
            RuleOutcome::Matched => "matched",
            RuleOutcome::NoMatch => "no_match",
            RuleOutcome::FellThrough => "fell_through",
            RuleOutcome::NotReached => "not_reached",
            RuleOutcome::Skipped { .. } | RuleOutcome::Error { .. } => return rule.serialize(s),
        };
        let mut tuple = s.serialize_tuple(3)?;
        tuple.serialize_element(&rule.name)?;
        tuple.serialize_element(outcome)?;
        tuple.serialize_element(&rule.micros)?;
        tuple.end()
    }
}

/// A lookup without its `cached` and `stale` when false (their default when read).
struct StoredLookup<'a>(&'a LookupTrace);

impl Serialize for StoredLookup<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Short<'a> {
            name: &'a str,
            #[serde(flatten)]
            result: &'a LookupResult,
            micros: u64,
            #[serde(skip_serializing_if = "is_false")]
            cached: bool,
            #[serde(skip_serializing_if = "is_false")]
            stale: bool,
            awaited: bool,
        }
        let l = self.0;
        Short {
            name: &l.name,
            result: &l.result,
            micros: l.micros,
            cached: l.cached,
            stale: l.stale,
            awaited: l.awaited,
        }
        .serialize(s)
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A rule as stored: `[name, outcome, micros]`, or the whole object.
#[derive(Deserialize)]
#[serde(untagged)]
enum RuleRead {
    Short(String, String, u64),
    Whole(RuleTrace),
}

fn read_rules<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<RuleTrace>, D::Error> {
    let read = Vec::<RuleRead>::deserialize(d)?;
    read.into_iter()
        .map(|rule| match rule {
            RuleRead::Whole(rule) => Ok(rule),
            RuleRead::Short(name, outcome, micros) => {
                let outcome = match outcome.as_str() {
                    "matched" => RuleOutcome::Matched,
                    "no_match" => RuleOutcome::NoMatch,
                    "fell_through" => RuleOutcome::FellThrough,
                    "not_reached" => RuleOutcome::NotReached,
                    other => {
                        return Err(serde::de::Error::custom(format!(
                            "rule `{name}`: unknown outcome `{other}`"
                        )));
                    }
                };
                Ok(RuleTrace {
                    name,
                    outcome,
                    micros,
                })
            }
        })
        .collect()
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
        serde_json::to_string(&Stored {
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

    /// What the call log stores, exactly: the caller as its number and region, short rules
    /// where the outcome carries nothing more, no `cached`/`stale` when false.
    #[test]
    fn the_stored_trace_is_short() {
        let mut decision = decision();
        decision.rules.push(RuleTrace {
            name: "Hours".into(),
            outcome: RuleOutcome::NoMatch,
            micros: 7,
        });
        let stored = Trace::json(&decision);
        assert_eq!(
            stored,
            concat!(
                r#"{"caller":{"raw":"0152026057","region":"NL"},"rules":["#,
                r#"{"name":"Broken","outcome":"error","message":"no such variable","line":4,"column":9,"micros":12},"#,
                r#"{"name":"Skipped","outcome":"skipped","reason":"crm unavailable (timeout)","micros":3},"#,
                r#"["Invoices","matched",40],["Hours","no_match",7]],"lookups":["#,
                r#"{"name":"crm","result":"found","facts":{"open":2},"micros":900,"cached":true,"awaited":true},"#,
                r#"{"name":"history","result":"unavailable","reason":"timeout","micros":0,"awaited":false}]}"#
            )
        );
        let read = Trace::parse(&stored).unwrap();
        assert_eq!(read, Trace::of(&decision));
        // Normalised again, by the same code: every field, not only the compared ones.
        assert_eq!(
            serde_json::to_value(&*read.caller).unwrap(),
            serde_json::to_value(&*decision.caller).unwrap()
        );
        assert!(Trace::parse(r#"{"rules":[["A","won",1]]}"#).is_err());
    }

    /// A caller normalised for another default region is read back for that region.
    #[test]
    fn a_stored_caller_keeps_its_region() {
        let mut decision = decision();
        decision.caller = crate::caller::Normaliser::new("be")
            .unwrap()
            .normalise("023456789");
        let read = Trace::parse(&Trace::json(&decision)).unwrap();
        assert_eq!(read.caller.e164, "+3223456789");
        assert_eq!(read.caller.country, "BE");
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
