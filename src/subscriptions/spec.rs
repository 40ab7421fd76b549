//! A runtime subscription's settings as the admin API takes them: a JSON object with the keys
//! of belroute.yaml's `subscriptions.<name>` (all but `api_key`, which belroute makes). They
//! are checked by the very reader belroute.yaml uses ([`SubscriptionConfig::read`]), so the
//! messages and ranges are the same; only the `file:line:col:` in front is left out.

use std::path::Path;

use belroute_engine::diagnostic::Diagnostics;
use belroute_engine::settings::{Section, format_duration};
use serde_json::{Map, Value, json};

use crate::config::{Status, SubscriptionConfig};
use crate::storage::SubscriptionRow;

/// Put where belroute.yaml has `api_key` while checking: the key itself is stored as a hash.
const KEY_PLACEHOLDER: &str = "(stored as a hash)";

/// The settings an administrator may write (belroute.yaml's keys but `api_key`).
pub fn editable() -> impl Iterator<Item = &'static str> {
    SubscriptionConfig::KEYS
        .into_iter()
        .filter(|k| *k != "api_key")
}

/// Checks `spec` for subscription `name` exactly as belroute.yaml's `subscriptions.<name>`
/// would be checked; every problem as one sentence naming the setting.
pub fn check(name: &str, spec: &Map<String, Value>) -> Result<SubscriptionConfig, Vec<String>> {
    let path = format!("subscriptions.{name}");
    if spec.contains_key("api_key") {
        return Err(vec![format!(
            "`{path}.api_key` is made by belroute and shown once: leave it out (a new one: POST /api/v1/subscriptions/{name}/rotate-key)"
        )]);
    }
    let mut doc = spec.clone();
    doc.insert("api_key".into(), Value::String(KEY_PLACEHOLDER.into()));
    let text = serde_json::to_string_pretty(&Value::Object(doc))
        .map_err(|e| vec![format!("`{path}` cannot be read: {e}")])?;
    let root = belroute_engine::yaml::parse(&text)
        .map_err(|e| vec![format!("`{path}` cannot be read: {e}")])?;
    let mut diags = Diagnostics::new(Path::new("request"));
    let config = {
        let mut s = Section::read(&root, &path, &SubscriptionConfig::KEYS, &mut diags);
        SubscriptionConfig::read(name, &mut s)
    };
    let problems: Vec<String> = diags.into_vec().into_iter().map(|d| d.message).collect();
    match config {
        Some(config) if problems.is_empty() => Ok(config),
        _ if problems.is_empty() => Err(vec![format!("`{path}` is not valid")]),
        _ => Err(problems),
    }
}

/// The settings of a stored subscription, as the administrator wrote them.
pub fn from_row(row: &SubscriptionRow) -> Map<String, Value> {
    let duration = |ms: i64| {
        let ms = u64::try_from(ms).unwrap_or(0);
        Value::String(format_duration(std::time::Duration::from_millis(ms)))
    };
    let mut spec = Map::new();
    spec.insert("status".into(), json!(row.status));
    if let Some(endpoint) = &row.endpoint {
        spec.insert("endpoint".into(), json!(endpoint));
    }
    spec.insert(
        "headers".into(),
        serde_json::from_str(&row.headers).unwrap_or_else(|_| json!({})),
    );
    spec.insert(
        "events".into(),
        serde_json::from_str(&row.events).unwrap_or_else(|_| json!([])),
    );
    spec.insert(
        "visibility_timeout".into(),
        duration(row.visibility_timeout_ms),
    );
    spec.insert("max_retries".into(), json!(row.max_retries));
    spec.insert("retry_initial".into(), duration(row.retry_initial_ms));
    spec.insert("retry_max".into(), duration(row.retry_max_ms));
    spec.insert("renotify_after".into(), duration(row.renotify_after_ms));
    spec
}

/// Writes the checked settings into `row` (the endpoint and headers as written).
pub fn into_row(spec: &Map<String, Value>, config: &SubscriptionConfig, row: &mut SubscriptionRow) {
    let ms = crate::time::millis;
    row.status = match config.status {
        Status::Active => "active",
        Status::Off => "off",
    }
    .into();
    row.endpoint = config.endpoint.as_ref().map(|e| e.written().to_string());
    row.headers = spec
        .get("headers")
        .filter(|h| h.is_object())
        .map_or_else(|| "{}".to_string(), Value::to_string);
    row.events = serde_json::to_string(&config.events).unwrap_or_else(|_| "[]".into());
    row.visibility_timeout_ms = ms(config.visibility_timeout);
    row.max_retries = i64::from(config.max_retries);
    row.retry_initial_ms = ms(config.retry_initial);
    row.retry_max_ms = ms(config.retry_max);
    row.renotify_after_ms = ms(config.renotify_after);
}

/// RFC 7396 JSON merge patch: objects merge key by key, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// What a change touched, for the log: values of plain settings, only the names of headers
/// (their values may be secrets), the endpoint without its query or user info.
pub fn describe_change(before: &Map<String, Value>, after: &Map<String, Value>) -> String {
    let mut changes = Vec::new();
    for key in editable() {
        let (old, new) = (before.get(key), after.get(key));
        if old == new {
            continue;
        }
        let shown = |v: Option<&Value>| match (key, v) {
            (_, None) => "(unset)".to_string(),
            ("headers", Some(Value::Object(h))) => {
                let names: Vec<&str> = h.keys().map(String::as_str).collect();
                format!("[{}]", names.join(", "))
            }
            ("endpoint", Some(Value::String(e))) => masked_url(e),
            (_, Some(v)) => v.to_string(),
        };
        if key == "headers" {
            // A changed value under the same names still shows as a change.
            changes.push(format!(
                "headers {} → {} (values not shown)",
                shown(old),
                shown(new)
            ));
        } else {
            changes.push(format!("{key} {} → {}", shown(old), shown(new)));
        }
    }
    if changes.is_empty() {
        "nothing".into()
    } else {
        changes.join("; ")
    }
}

/// A URL as written, without user info or query (where a secret may sit).
pub fn masked_url(written: &str) -> String {
    match url::Url::parse(written) {
        Ok(mut url) if !written.contains("${") => {
            let had_query = url.query().is_some();
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            let mut shown = url.to_string();
            if had_query {
                shown.push_str("?…");
            }
            shown
        }
        _ => written.split('?').next().unwrap_or_default().to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn the_messages_are_belroute_yaml_s() {
        let problems = check(
            "crm",
            &spec(json!({
                "endpoint": "ftp://x",
                "max_retries": 0,
                "visibility_timeout": "2d",
                "headers": { "bad header": "x" },
                "colour": "red",
            })),
        )
        .unwrap_err();
        let text = problems.join("\n");
        for expected in [
            "`subscriptions.crm.endpoint` must be http:// or https://",
            "`subscriptions.crm.max_retries` is 0; it must be between 1 and 1000",
            "`subscriptions.crm.visibility_timeout` is 2d; it must be between 1s and 1d",
            "`subscriptions.crm.headers.bad header` is not a header name",
            "unknown key `colour` in `subscriptions.crm`",
        ] {
            assert!(text.contains(expected), "{expected} in:\n{text}");
        }
        assert!(check("crm", &spec(json!({"api_key": "x"}))).is_err());
        assert!(check("a b", &spec(json!({}))).is_err());
    }

    #[test]
    fn a_stored_row_reads_back_to_the_same_settings() {
        let written = spec(json!({
            "status": "off",
            "endpoint": "https://crm.example.nl/notify",
            "headers": { "identifier": "${SOME_ID}x" },
            "events": ["call.agent"],
            "visibility_timeout": "1m30s",
            "max_retries": 3,
            "retry_initial": "250ms",
            "retry_max": "1h",
            "renotify_after": "10m",
        }));
        let mut plain = written.clone();
        plain.insert("headers".into(), json!({ "identifier": "x" }));
        let config = check("crm", &plain).unwrap();
        let mut row = SubscriptionRow {
            name: "crm".into(),
            status: String::new(),
            endpoint: None,
            headers: String::new(),
            events: String::new(),
            visibility_timeout_ms: 0,
            max_retries: 0,
            retry_initial_ms: 0,
            retry_max_ms: 0,
            renotify_after_ms: 0,
            api_key_hash: String::new(),
            previous_key_hash: None,
            previous_key_until: None,
            revision: 1,
            created_at: 0,
            updated_at: 0,
        };
        into_row(&written, &config, &mut row);
        assert_eq!(from_row(&row), written);
    }

    #[test]
    fn merge_patch_merges_headers_and_null_removes() {
        let mut target =
            json!({"status": "active", "endpoint": "http://a", "headers": {"a": "1", "b": "2"}});
        merge_patch(
            &mut target,
            &json!({"status": "off", "endpoint": null, "headers": {"a": null, "c": "3"}}),
        );
        assert_eq!(
            target,
            json!({"status": "off", "headers": {"b": "2", "c": "3"}})
        );
    }

    #[test]
    fn endpoints_are_logged_without_secrets() {
        assert_eq!(
            masked_url("https://u:p@crm.example.nl/n?token=s3cret"),
            "https://crm.example.nl/n?…"
        );
        assert_eq!(masked_url("${CRM_URL}?t=1"), "${CRM_URL}");
    }
}
