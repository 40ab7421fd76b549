//! The call data Callvoip's Webhook-app sends, as rules see it.

use std::collections::BTreeMap;

use serde_json::Value;

/// The fields Callvoip documents; they are always present in `call`, empty when not sent.
pub const CALLVOIP_FIELDS: [&str; 12] = [
    "com_id",
    "dp_id",
    "dp_in_number",
    "dp_ex_number",
    "callee_number",
    "caller_number",
    "uuid",
    "phonebook_caller_name",
    "rta_call_id",
    "sip_call_id",
    "event_time",
    "call_start_time",
];

/// One call's data: every field as text.
///
/// Callvoip sends strings only; a number or boolean sent by another client is kept as its JSON
/// text, nested values as compact JSON, `null` as empty. Unknown fields are kept: rules see them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Call {
    fields: BTreeMap<String, String>,
}

/// Why a request body is not call data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallDataError {
    #[error("body is not valid UTF-8 (first bad byte at offset {0})")]
    NotUtf8(usize),
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("body must be a JSON object of call fields, found {0}")]
    NotAnObject(&'static str),
}

impl Call {
    /// Call data from field/value pairs (query parameters, a form, a test file).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut call = Call::default();
        for (k, v) in pairs {
            call.fields.insert(k.into(), v.into());
        }
        call
    }

    /// Call data from a JSON request body.
    pub fn from_json(body: &[u8]) -> Result<Self, CallDataError> {
        let text =
            std::str::from_utf8(body).map_err(|e| CallDataError::NotUtf8(e.valid_up_to()))?;
        if text.trim().is_empty() {
            return Ok(Call::default());
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| CallDataError::NotJson(e.to_string()))?;
        Call::from_json_value(value)
    }

    /// Call data from a parsed JSON object.
    pub fn from_json_value(value: Value) -> Result<Self, CallDataError> {
        let Value::Object(object) = value else {
            return Err(CallDataError::NotAnObject(json_kind(&value)));
        };
        Ok(Call::from_pairs(
            object.into_iter().map(|(k, v)| (k, json_text(v))),
        ))
    }

    /// Adds fields that are not already present (query parameters under a JSON body).
    pub fn merge_missing(&mut self, other: Call) {
        for (k, v) in other.fields {
            self.fields.entry(k).or_insert(v);
        }
    }

    /// Removes a field, so a secret query parameter never reaches rules or the call log.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.fields.remove(name)
    }

    /// A field's text; empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.fields.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn caller_number(&self) -> &str {
        self.get("caller_number")
    }

    pub fn uuid(&self) -> &str {
        self.get("uuid")
    }

    /// Every field, Callvoip's documented ones included even when they were not sent.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        let missing = CALLVOIP_FIELDS
            .iter()
            .filter(|f| !self.fields.contains_key(**f))
            .map(|f| (*f, ""));
        self.fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(missing)
    }

    /// Only the fields that were sent.
    pub fn sent_fields(&self) -> &BTreeMap<String, String> {
        &self.fields
    }
}

fn json_text(value: Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s,
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_nulls_become_text() {
        let call = Call::from_json(
            br#"{"caller_number": 31152026057, "uuid": null, "x": true, "n": {"a": 1}}"#,
        )
        .unwrap();
        assert_eq!(call.caller_number(), "31152026057");
        assert_eq!(call.uuid(), "");
        assert_eq!(call.get("x"), "true");
        assert_eq!(call.get("n"), r#"{"a":1}"#);
    }

    #[test]
    fn documented_fields_are_always_present() {
        let call = Call::from_pairs([("extra", "1")]);
        let names: Vec<&str> = call.fields().map(|(k, _)| k).collect();
        assert!(names.contains(&"extra"));
        for f in CALLVOIP_FIELDS {
            assert!(names.contains(&f), "{f} missing");
        }
    }

    #[test]
    fn bad_bodies_say_why() {
        assert_eq!(Call::from_json(b"\xff\xfe"), Err(CallDataError::NotUtf8(0)));
        assert_eq!(
            Call::from_json(b"[1]"),
            Err(CallDataError::NotAnObject("an array"))
        );
        let printed =
            include_str!("../../tests/fixtures/callvoip/post-example-as-printed-in-docs.txt");
        let err = Call::from_json(printed.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("line 13"), "{err}");
        assert_eq!(Call::from_json(b"  "), Ok(Call::default()));
    }
}
