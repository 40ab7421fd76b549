//! What rules can read, and of which type: the fields of `call`, `caller` and `now()`, and the
//! facts each lookup declares. The checker holds every rule to it when the file loads, so a typo
//! (`caller.knd`, `invoices.open_cnt`) or a comparison of text with a number is a load error
//! with its position and the fix — never a rule that is silently false on every call.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The type of a field or a fact. A value may also be `()` (a missing fact, a withheld
/// caller's empty field is text); comparing with `()` is always allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactType {
    Text,
    Int,
    Float,
    Bool,
    List,
    Map,
    /// Anything: not checked.
    Any,
}

impl FactType {
    pub const NAMES: [&'static str; 7] = ["text", "int", "float", "bool", "list", "map", "any"];

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "text" | "string" => FactType::Text,
            "int" | "integer" => FactType::Int,
            "float" | "number" => FactType::Float,
            "bool" | "boolean" => FactType::Bool,
            "list" | "array" => FactType::List,
            "map" | "object" => FactType::Map,
            "any" => FactType::Any,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            FactType::Text => "text",
            FactType::Int => "int",
            FactType::Float => "float",
            FactType::Bool => "bool",
            FactType::List => "list",
            FactType::Map => "map",
            FactType::Any => "any",
        }
    }

    /// Can a value of this type be compared with one of `other` (and mean something)?
    pub fn comparable(self, other: FactType) -> bool {
        use FactType::*;
        self == other
            || matches!((self, other), (Int | Float, Int | Float))
            || self == Any
            || other == Any
    }

    /// The type of a JSON value, as a plugin answered it; `None` for `null`.
    pub fn of_json(value: &serde_json::Value) -> Option<FactType> {
        use serde_json::Value;
        Some(match value {
            Value::Null => return None,
            Value::Bool(_) => FactType::Bool,
            Value::Number(n) if n.is_i64() || n.is_u64() => FactType::Int,
            Value::Number(_) => FactType::Float,
            Value::String(_) => FactType::Text,
            Value::Array(_) => FactType::List,
            Value::Object(_) => FactType::Map,
        })
    }

    /// Does a JSON value (as a plugin answered it) fit this type? `null` fits every type: a
    /// fact may be missing for one caller.
    pub fn admits(self, value: &serde_json::Value) -> bool {
        match FactType::of_json(value) {
            None => true,
            Some(actual) => {
                self == FactType::Any
                    || actual == self
                    || (self == FactType::Float && actual == FactType::Int)
            }
        }
    }

    /// How a person reads it in a message.
    pub fn described(self) -> &'static str {
        match self {
            FactType::Text => "text",
            FactType::Int => "a whole number",
            FactType::Float => "a number",
            FactType::Bool => "true or false",
            FactType::List => "a list",
            FactType::Map => "a map",
            FactType::Any => "anything",
        }
    }
}

impl fmt::Display for FactType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The facts a lookup plugin declares it answers, by name.
pub type DeclaredFacts = BTreeMap<String, FactType>;

/// Every field of `caller` (see `Caller`), and its type.
pub const CALLER_FIELDS: [(&str, FactType); 11] = [
    ("raw", FactType::Text),
    ("e164", FactType::Text),
    ("national", FactType::Text),
    ("international", FactType::Text),
    ("digits", FactType::Text),
    ("country", FactType::Text),
    ("country_code", FactType::Int),
    ("kind", FactType::Text),
    ("valid", FactType::Bool),
    ("anonymous", FactType::Bool),
    ("is_sip_account", FactType::Bool),
];

/// Every field of `now()`, and its type (`holiday` is text or `()`).
pub const NOW_FIELDS: [(&str, FactType); 13] = [
    ("year", FactType::Int),
    ("month", FactType::Int),
    ("day", FactType::Int),
    ("hour", FactType::Int),
    ("minute", FactType::Int),
    ("second", FactType::Int),
    ("weekday", FactType::Text),
    ("weekday_number", FactType::Int),
    ("date", FactType::Text),
    ("time", FactType::Text),
    ("timestamp", FactType::Int),
    ("holiday", FactType::Text),
    // Not a field, but what a rule set's `holiday` name reads through `now()` too.
    ("is_holiday", FactType::Bool),
];

/// The checks a rule set may relax for a migration period (`relax: [facts]`): their problems
/// are then warnings, and `check` says the check is relaxed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// Fields of `call`, `caller` and `now()`.
    Fields,
    /// Facts of lookups.
    Facts,
    /// Comparisons of values of different types.
    Types,
    /// Routes outside `routes:`.
    Routes,
}

impl Check {
    pub const ALL: [Check; 4] = [Check::Fields, Check::Facts, Check::Types, Check::Routes];

    pub fn name(self) -> &'static str {
        match self {
            Check::Fields => "fields",
            Check::Facts => "facts",
            Check::Types => "types",
            Check::Routes => "routes",
        }
    }

    pub fn parse(name: &str) -> Option<Check> {
        Check::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// What one rule set's rules may read.
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    /// Callvoip's fields and those the rule set declares in `call_fields:`.
    pub call_fields: Vec<String>,
    /// The rule set's lookups and what each declares (`None`: the plugin declares nothing).
    pub lookups: BTreeMap<String, Option<DeclaredFacts>>,
}

impl Vocabulary {
    /// The type of field `field` of variable `variable` (`call`, `caller`, a lookup), or why it
    /// cannot be read.
    pub fn field(&self, variable: &str, field: &str) -> Result<Option<FactType>, Unknown> {
        match variable {
            "caller" => known(&CALLER_FIELDS, field).ok_or_else(|| Unknown {
                check: Check::Fields,
                message: unknown_field("caller", field, CALLER_FIELDS.iter().map(|(f, _)| *f), ""),
            }),
            "call" => {
                if self.call_fields.iter().any(|f| f == field) {
                    Ok(Some(FactType::Text))
                } else {
                    Err(Unknown {
                        check: Check::Fields,
                        message: unknown_field(
                            "call",
                            field,
                            self.call_fields.iter().map(String::as_str),
                            "; a field your Webhook-app adds to Callvoip's must be listed in the rule set's `call_fields:`",
                        ),
                    })
                }
            }
            lookup => match self.lookups.get(lookup) {
                None => Ok(None),
                Some(None) => Err(Unknown {
                    check: Check::Facts,
                    message: format!(
                        "`{lookup}.{field}`: plugin `{lookup}` declares no facts, so belroute cannot tell whether it answers `{field}`; list what it answers under `facts:` in belroute.yaml `plugins.{lookup}` (docs/plugins.md)"
                    ),
                }),
                Some(Some(facts)) => match facts.get(field) {
                    Some(FactType::Any) => Ok(None),
                    Some(t) => Ok(Some(*t)),
                    None => Err(Unknown {
                        check: Check::Facts,
                        message: unknown_field(
                            lookup,
                            field,
                            facts.keys().map(String::as_str),
                            &format!(
                                "; add it to `facts:` of plugins.{lookup} in belroute.yaml if the plugin answers it"
                            ),
                        ),
                    }),
                },
            },
        }
    }
}

/// A field a rule reads that is not there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    pub check: Check,
    pub message: String,
}

fn known(fields: &[(&str, FactType)], field: &str) -> Option<Option<FactType>> {
    fields
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, t)| Some(*t))
}

/// "unknown field `caller.knd`; did you mean `kind`? (caller has: …)".
pub fn unknown_field<'a>(
    variable: &str,
    field: &str,
    fields: impl Iterator<Item = &'a str> + Clone,
    fix: &str,
) -> String {
    let hint = match crate::diagnostic::suggestion(field, fields.clone()) {
        Some(s) => format!("did you mean {s}?"),
        None => {
            let all: Vec<&str> = fields.collect();
            format!("{variable} has: {}", all.join(", "))
        }
    };
    format!("unknown field `{variable}.{field}`; {hint}{fix}")
}

/// The fields of `now()`, for messages.
pub fn now_field(field: &str) -> Result<Option<FactType>, Unknown> {
    known(&NOW_FIELDS[..12], field).ok_or_else(|| Unknown {
        check: Check::Fields,
        message: unknown_field("now()", field, NOW_FIELDS[..12].iter().map(|(f, _)| *f), ""),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_say_what_was_meant() {
        let vocabulary = Vocabulary {
            call_fields: vec!["caller_number".into(), "dp_in_number".into()],
            lookups: BTreeMap::from([
                (
                    "invoices".to_string(),
                    Some(BTreeMap::from([("open_count".to_string(), FactType::Int)])),
                ),
                ("crm".to_string(), None),
            ]),
        };
        assert_eq!(
            vocabulary.field("caller", "knd").unwrap_err().message,
            "unknown field `caller.knd`; did you mean `kind`?"
        );
        assert_eq!(vocabulary.field("caller", "kind"), Ok(Some(FactType::Text)));
        assert_eq!(
            vocabulary
                .field("invoices", "open_cnt")
                .unwrap_err()
                .message,
            "unknown field `invoices.open_cnt`; did you mean `open_count`?; add it to `facts:` of plugins.invoices in belroute.yaml if the plugin answers it"
        );
        assert_eq!(
            vocabulary.field("crm", "x").unwrap_err().check,
            Check::Facts
        );
        assert!(
            vocabulary
                .field("call", "campaign")
                .unwrap_err()
                .message
                .contains("`call_fields:`")
        );
        assert_eq!(now_field("hour"), Ok(Some(FactType::Int)));
        assert!(now_field("hours").unwrap_err().message.contains("`hour`"));
    }

    #[test]
    fn types_compare_as_rhai_would_mean_them() {
        assert!(FactType::Int.comparable(FactType::Float));
        assert!(!FactType::Text.comparable(FactType::Int));
        assert!(FactType::Any.comparable(FactType::Bool));
        assert!(FactType::Float.admits(&serde_json::json!(3)));
        assert!(!FactType::Int.admits(&serde_json::json!("3")));
        assert!(FactType::Text.admits(&serde_json::Value::Null));
    }
}
