//! The call data Callvoip's Webhook-app sends, as rules see it.

use std::collections::BTreeMap;

use serde::Deserialize;
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

/// Most fields one call may carry (Callvoip sends 12).
pub const MAX_FIELDS: usize = 64;
/// Longest field name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Longest field value, in bytes (a nested JSON value counts as its compact text).
pub const MAX_VALUE_LEN: usize = 1024;

/// Why a request is not call data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallDataError {
    #[error("body is not valid UTF-8 (first bad byte at offset {0})")]
    NotUtf8(usize),
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("body must be a JSON object of call fields, found {0}")]
    NotAnObject(&'static str),
    #[error("body is neither a JSON object nor form data (k=v&k2=v2)")]
    NotCallData,
    #[error("the call has more than {MAX_FIELDS} fields")]
    TooManyFields,
    #[error("field `{0}` is longer than {MAX_VALUE_LEN} bytes (or its name than {MAX_NAME_LEN})")]
    FieldTooLong(String),
}

impl CallDataError {
    /// A short stable name for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            CallDataError::NotUtf8(_) => "not_utf8",
            CallDataError::NotJson(_) => "not_json",
            CallDataError::NotAnObject(_) => "not_an_object",
            CallDataError::NotCallData => "not_call_data",
            CallDataError::TooManyFields => "too_many_fields",
            CallDataError::FieldTooLong(_) => "field_too_long",
        }
    }
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

    /// A webhook request's call data: the query string's fields, under the body's (a POST's
    /// body wins where both name a field). The body is read by what it is, whatever its
    /// Content-Type says — Callvoip's manual does not say which it sends: a JSON object is
    /// JSON, `k=v&…` is form data, empty is no fields; anything else is not call data.
    /// `hidden` is a query parameter that is not call data (the URL's secret).
    pub fn from_request(
        query: &str,
        body: Option<&[u8]>,
        hidden: Option<&str>,
    ) -> Result<Self, CallDataError> {
        let mut from_query = Call::from_form(query)?;
        if let Some(name) = hidden {
            from_query.remove(name);
        }
        let Some(body) = body else {
            return Ok(from_query);
        };
        let mut call = Call::from_body(body)?;
        call.merge_missing(from_query);
        call.check_bounds()?;
        Ok(call)
    }

    /// Call data from a request body: a JSON object or form data (see [`Call::from_request`]).
    pub fn from_body(body: &[u8]) -> Result<Self, CallDataError> {
        let text =
            std::str::from_utf8(body).map_err(|e| CallDataError::NotUtf8(e.valid_up_to()))?;
        let text = text.trim_start_matches('\u{feff}').trim();
        match text.chars().next() {
            None => Ok(Call::default()),
            Some('{' | '[' | '"') => Call::from_json(text.as_bytes()),
            Some(_) if looks_like_form(text) => Call::from_form(text),
            Some(_) => match serde_json::from_str::<Value>(text) {
                // `12`, `true`, `null`: JSON, but not an object.
                Ok(value) => Err(CallDataError::NotAnObject(json_kind(&value))),
                Err(_) => Err(CallDataError::NotCallData),
            },
        }
    }

    /// Call data from form data or a query string (`k=v&k2=v2`, percent-encoded).
    pub fn from_form(text: &str) -> Result<Self, CallDataError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(text).map_err(|_| CallDataError::NotCallData)?;
        let call = Call::from_pairs(pairs.into_iter().filter(|(k, _)| !k.is_empty()));
        call.check_bounds()?;
        Ok(call)
    }

    /// Call data from a JSON request body.
    pub fn from_json(body: &[u8]) -> Result<Self, CallDataError> {
        let text =
            std::str::from_utf8(body).map_err(|e| CallDataError::NotUtf8(e.valid_up_to()))?;
        if text.trim().is_empty() {
            return Ok(Call::default());
        }
        // Straight into the fields (no `Value` in between): a JSON object, as every webhook
        // call is. Anything else takes the way below, which says what it is.
        if let Ok(fields) = serde_json::from_str::<BTreeMap<String, FieldText>>(text) {
            if fields.len() > MAX_FIELDS {
                return Err(CallDataError::TooManyFields);
            }
            let call = Call {
                fields: fields.into_iter().map(|(k, v)| (k, v.0)).collect(),
            };
            call.check_bounds()?;
            return Ok(call);
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
        if object.len() > MAX_FIELDS {
            return Err(CallDataError::TooManyFields);
        }
        let call = Call::from_pairs(object.into_iter().map(|(k, v)| (k, json_text(v))));
        call.check_bounds()?;
        Ok(call)
    }

    /// Bounds a call's size: how many fields, how long each name and value.
    fn check_bounds(&self) -> Result<(), CallDataError> {
        if self.fields.len() > MAX_FIELDS {
            return Err(CallDataError::TooManyFields);
        }
        match self
            .fields
            .iter()
            .find(|(k, v)| k.len() > MAX_NAME_LEN || v.len() > MAX_VALUE_LEN)
        {
            Some((k, _)) => Err(CallDataError::FieldTooLong(crate::text::shorten(
                k,
                MAX_NAME_LEN,
            ))),
            None => Ok(()),
        }
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

    /// A field as rules see it: a documented field that was not sent is empty, any other
    /// field not sent is `None` (`()` to rules).
    pub fn field(&self, name: &str) -> Option<&str> {
        match self.fields.get(name) {
            Some(value) => Some(value),
            None => CALLVOIP_FIELDS.contains(&name).then_some(""),
        }
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

/// `k=v&k2=v2`: every `&`-separated part has a name and an `=`, and nothing is raw
/// whitespace or a control character (a form encoder would have percent-encoded it).
fn looks_like_form(text: &str) -> bool {
    !text.chars().any(|c| c.is_whitespace() || c.is_control())
        && text
            .split('&')
            .filter(|part| !part.is_empty())
            .all(|part| part.find('=').is_some_and(|i| i > 0))
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

/// A call field's value read straight from JSON as its text, as `json_text` gives it from a
/// parsed `Value`: a string as it is, `null` empty, a number or boolean as its JSON text,
/// an array or object as compact JSON.
struct FieldText(String);

impl<'de> serde::Deserialize<'de> for FieldText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldTextVisitor)
    }
}

struct FieldTextVisitor;

impl<'de> serde::de::Visitor<'de> for FieldTextVisitor {
    type Value = FieldText;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FieldText, E> {
        Ok(FieldText(v.to_string()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<FieldText, E> {
        Ok(FieldText(v))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<FieldText, E> {
        Ok(FieldText(String::new()))
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<FieldText, E> {
        Ok(FieldText(json_text(Value::from(v))))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<FieldText, E> {
        Ok(FieldText(json_text(Value::from(v))))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<FieldText, E> {
        Ok(FieldText(json_text(Value::from(v))))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<FieldText, E> {
        Ok(FieldText(json_text(Value::from(v))))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<FieldText, A::Error> {
        let value = Value::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
        Ok(FieldText(json_text(value)))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<FieldText, A::Error> {
        let value = Value::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        Ok(FieldText(json_text(value)))
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

    /// Read straight into the fields, every kind of JSON value gives what reading it as a
    /// `Value` first gives, and what is not a JSON object is refused the same way.
    #[test]
    fn typed_reading_agrees_with_reading_a_value() {
        let mut many = String::from("{");
        for i in 0..=MAX_FIELDS {
            many.push_str(&format!("\"f{i}\": \"v\","));
        }
        many.push_str("\"last\": 1}");
        let long = format!(r#"{{"a": "{}"}}"#, "x".repeat(MAX_VALUE_LEN + 1));
        for body in [
            r#"{"caller_number": "31152026057", "uuid": "u-1"}"#,
            r#"{"n": 12, "neg": -7, "big": 18446744073709551615, "f": 1.5e3, "g": 0.1, "t": true, "z": null}"#,
            r#"{"nested": {"b": [1, "two", {"c": null}], "a": 1.0}, "arr": []}"#,
            r#"{"esc": "a\"b\\c\u00e9\n", "dup": "first", "dup": "second"}"#,
            r#"{}"#,
            r#"[1, 2]"#,
            r#""text""#,
            r#"{"a": 1} trailing"#,
            r#"{"a": }"#,
            many.as_str(),
            long.as_str(),
        ] {
            let by_value = serde_json::from_str::<Value>(body)
                .map_err(|e| CallDataError::NotJson(e.to_string()))
                .and_then(Call::from_json_value);
            assert_eq!(Call::from_json(body.as_bytes()), by_value, "{body}");
        }
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
    fn bodies_are_read_by_what_they_are() {
        let json = br#"{"caller_number": "31152026057"}"#;
        assert_eq!(
            Call::from_body(json).unwrap().caller_number(),
            "31152026057"
        );
        let form = b"caller_number=31152026057&dp_id=d%201";
        let call = Call::from_body(form).unwrap();
        assert_eq!(call.caller_number(), "31152026057");
        assert_eq!(call.get("dp_id"), "d 1");
        assert_eq!(Call::from_body(b"\xef\xbb\xbf  ").unwrap(), Call::default());
        assert_eq!(
            Call::from_body(b"hello world"),
            Err(CallDataError::NotCallData)
        );
        assert_eq!(Call::from_body(b"hello"), Err(CallDataError::NotCallData));
        assert_eq!(
            Call::from_body(b"12"),
            Err(CallDataError::NotAnObject("a number"))
        );
        assert_eq!(
            Call::from_body(b"[1]"),
            Err(CallDataError::NotAnObject("an array"))
        );
    }

    #[test]
    fn query_under_body_and_the_secret_hidden() {
        let call = Call::from_request(
            "caller_number=1&token=s3cret&dp_id=q",
            Some(br#"{"caller_number": "2"}"#),
            Some("token"),
        )
        .unwrap();
        assert_eq!(call.caller_number(), "2");
        assert_eq!(call.get("dp_id"), "q");
        assert_eq!(call.get("token"), "");
        assert!(!call.sent_fields().contains_key("token"));
    }

    #[test]
    fn calls_are_bounded() {
        let many: String = (0..=MAX_FIELDS).map(|i| format!("f{i}=1&")).collect();
        assert_eq!(Call::from_form(&many), Err(CallDataError::TooManyFields));
        let long = format!("a={}", "x".repeat(MAX_VALUE_LEN + 1));
        assert!(matches!(
            Call::from_form(&long),
            Err(CallDataError::FieldTooLong(_))
        ));
        let json = format!(r#"{{"a": "{}"}}"#, "x".repeat(MAX_VALUE_LEN + 1));
        assert!(matches!(
            Call::from_body(json.as_bytes()),
            Err(CallDataError::FieldTooLong(_))
        ));
        let ok = format!("a={}", "x".repeat(MAX_VALUE_LEN));
        assert!(Call::from_form(&ok).is_ok());
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
