//! `kind: http` — a REST/JSON CRM: one GET (or POST) per caller, facts picked from the JSON
//! answer by JSON pointer.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use belroute_engine::settings::{EnvText, Invalid, Range, Secret, Section, value};
use belroute_engine::vocabulary::{DeclaredFacts, FactType};
use belroute_engine::yaml::Node;
use belroute_engine::{Facts, Lookup, LookupError, LookupRequest};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::params::{self, Template};

/// Characters left as they are in a URL component (RFC 3986 unreserved).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// Largest answer read from a CRM.
const MAX_BODY: usize = 1024 * 1024;

/// Settings of an `http` plugin.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `https://crm.example.nl/api/persons?phone={caller_e164}`; placeholders are
    /// percent-encoded.
    pub url: EnvText,
    pub method: Method,
    /// Request headers; values may come from the environment (`Token ${CRM_TOKEN}`).
    pub headers: BTreeMap<String, Secret>,
    /// A JSON body for POST; placeholders in its strings are filled in (and JSON-escaped).
    pub json: Option<Value>,
    /// Fact name → JSON pointer into the answer (`/0/owner/extension`); a last segment
    /// `length` after an array gives its number of items. Without it, an object answer is the
    /// facts and an array answer becomes `{items, count}`.
    pub facts: BTreeMap<String, String>,
    /// Each fact's declared type (`any` when only a pointer was written).
    pub fact_types: BTreeMap<String, FactType>,
    /// Status codes that mean "the CRM does not know this caller".
    pub not_found_status: Vec<u16>,
    /// Time to set up a connection (the plugin's `timeout` bounds the whole request).
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Method {
    #[default]
    Get,
    Post,
}

impl HttpConfig {
    pub const KEYS: [&'static str; 7] = [
        "url",
        "method",
        "headers",
        "json",
        "facts",
        "not_found_status",
        "connect_timeout",
    ];
    pub const CONNECT_TIMEOUT: Range<Duration> =
        Range::new(Duration::from_millis(1), Duration::from_secs(10));
    pub const STATUS: Range<u16> = Range::new(100, 599);

    /// Reads `kind: http` settings, reporting each problem at its key.
    pub fn read(s: &mut Section<'_, '_, '_>) -> Option<Self> {
        let url = s.required(
            "url",
            "\"https://crm.example.nl/api/persons?phone={caller_e164}\"",
            value::env_text,
        );
        let method = s.choice(
            "method",
            Method::Get,
            &[("GET", Method::Get), ("POST", Method::Post)],
        );
        let headers = read_headers(s, "headers");
        let json = s.node("json").map(Node::to_json);
        if let Some(body) = &json {
            if let Err(e) = check_json_template(body) {
                s.error("json", format!(": {e}"));
            }
            if method == Method::Get {
                s.error("json", "is a request body: set `method: POST`");
            }
        }
        let facts = s.map("facts", read_fact).unwrap_or_default();
        let not_found_status = s
            .list("not_found_status", |n| value::count(n, Self::STATUS))
            .unwrap_or_else(|| vec![404]);
        let connect_timeout = s.duration(
            "connect_timeout",
            Duration::from_millis(500),
            Self::CONNECT_TIMEOUT,
        );
        if let Some(url) = &url
            && let Err(e) = check_url(url.expose(), json.is_some())
        {
            s.error("url", e);
        }
        Some(HttpConfig {
            url: url?,
            method,
            headers,
            json,
            fact_types: facts
                .iter()
                .map(|(name, (_, kind))| (name.clone(), *kind))
                .collect(),
            facts: facts
                .into_iter()
                .map(|(name, (pointer, _))| (name, pointer))
                .collect(),
            not_found_status,
            connect_timeout,
        })
    }

    /// What rules may read: the facts mapped under `facts:`; `None` without a mapping (the
    /// whole answer is the facts, which belroute cannot know).
    pub fn declared_facts(&self) -> Option<DeclaredFacts> {
        (!self.fact_types.is_empty()).then(|| self.fact_types.clone())
    }

    /// Checks everything that can be checked without a network.
    pub fn validate(&self) -> Result<(), String> {
        check_url(self.url.expose(), self.json.is_some()).map_err(|e| format!("`url` {e}"))?;
        if self.json.is_some() && self.method == Method::Get {
            return Err("`json` is a request body: set `method: POST`".into());
        }
        if let Some(body) = &self.json {
            check_json_template(body)?;
        }
        for (name, value) in &self.headers {
            check_header(name, value).map_err(|e| format!("header `{name}` {e}"))?;
        }
        for (fact, pointer) in &self.facts {
            check_pointer(pointer).map_err(|e| format!("fact `{fact}` {e}"))?;
        }
        Ok(())
    }

    pub fn build(&self, timeout: Duration) -> Result<HttpLookup, String> {
        self.validate()?;
        crate::install_crypto_provider();
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &self.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| e.to_string())?;
            let mut value = reqwest::header::HeaderValue::from_str(value.expose())
                .map_err(|e| e.to_string())?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(self.connect_timeout.min(timeout))
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("belroute/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot create the HTTP client: {e}"))?;
        Ok(HttpLookup {
            url: Template::parse(self.url.expose())?,
            config: self.clone(),
            client,
        })
    }
}

/// What is wrong with a URL template, said after its name ("is not a URL: …").
fn check_url(url: &str, has_json: bool) -> Result<(), String> {
    let template = Template::parse(url).map_err(|e| format!(": {e}"))?;
    let sample = url::Url::parse(&template.sample()).map_err(|e| format!("is not a URL: {e}"))?;
    if !matches!(sample.scheme(), "http" | "https") {
        return Err(format!(
            "must be http:// or https://, not {}://",
            sample.scheme()
        ));
    }
    if !template.has_params() && !has_json {
        return Err(
            "uses no placeholder such as {caller_e164}, so every caller would get the same facts"
                .into(),
        );
    }
    Ok(())
}

/// A map of header name → value (a secret, `${NAME}` from the environment), each checked to be
/// sendable; for plugins and for subscriptions' notifications alike.
pub fn read_headers(s: &mut Section<'_, '_, '_>, key: &str) -> BTreeMap<String, Secret> {
    s.map(key, |name, node| {
        let secret = value::secret(node)?;
        check_header(name, &secret).map_err(|e| Invalid::new(node, e))?;
        Ok(secret)
    })
    .unwrap_or_default()
    .into_iter()
    .collect()
}

/// What is wrong with a header, said after its name.
fn check_header(name: &str, value: &Secret) -> Result<(), String> {
    reqwest::header::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| "is not a header name; use letters, digits and -".to_string())?;
    reqwest::header::HeaderValue::from_str(value.expose()).map_err(|_| {
        "has a value that cannot be sent in a header (a line break or control character?)"
            .to_string()
    })?;
    Ok(())
}

/// What is wrong with a fact's JSON pointer, said after the fact's name.
/// One entry of `facts:`: `name: /pointer` (any type), `name: int` (the answer's key `name`, of
/// that type), or `name: {pointer: /…, type: int}`. Returns the pointer and the type.
pub fn read_fact(name: &str, node: &Node) -> Result<(String, FactType), Invalid> {
    if let Some(entry) = node.as_map() {
        let mut pointer = format!("/{name}");
        let mut kind = FactType::Any;
        for (key, value) in entry.iter() {
            match key.as_str() {
                Some("pointer") => pointer = value::text(value)?.to_string(),
                Some("type") => kind = value::fact_type(value)?,
                _ => {
                    return Err(Invalid::new(
                        key,
                        "is not a key of a fact; write {pointer: /…, type: int}",
                    ));
                }
            }
        }
        check_pointer(&pointer).map_err(|e| Invalid::new(node, e))?;
        return Ok((pointer, kind));
    }
    let written = value::text(node)?;
    if let Some(kind) = FactType::parse(written) {
        return Ok((format!("/{name}"), kind));
    }
    check_pointer(written).map_err(|e| Invalid::new(node, e))?;
    Ok((written.to_string(), FactType::Any))
}

fn check_pointer(pointer: &str) -> Result<(), String> {
    if !(pointer.is_empty() || pointer.starts_with('/')) {
        return Err(format!(
            "is `{pointer}`, not a JSON pointer; write e.g. /0/owner/extension or / for the whole answer"
        ));
    }
    Ok(())
}

fn check_json_template(value: &Value) -> Result<(), String> {
    match value {
        Value::String(s) => Template::parse(s).map(|_| ()),
        Value::Array(items) => items.iter().try_for_each(check_json_template),
        Value::Object(map) => map.values().try_for_each(check_json_template),
        _ => Ok(()),
    }
}

fn render_json(value: &Value, request: &LookupRequest) -> Value {
    match value {
        Value::String(s) => match Template::parse(s) {
            Ok(t) => Value::String(t.render(request, str::to_string)),
            Err(_) => value.clone(),
        },
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| render_json(v, request)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), render_json(v, request)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A built `http` plugin: one client (and connection pool) per instance.
#[derive(Debug)]
pub struct HttpLookup {
    config: HttpConfig,
    url: Template,
    client: reqwest::Client,
}

impl HttpLookup {
    fn url(&self, request: &LookupRequest) -> String {
        self.url
            .render(request, |v| utf8_percent_encode(v, COMPONENT).to_string())
    }
}

#[async_trait]
impl Lookup for HttpLookup {
    fn facts(&self) -> Option<DeclaredFacts> {
        self.config.declared_facts()
    }

    async fn lookup(&self, request: &LookupRequest) -> Result<Option<Facts>, LookupError> {
        let url = self.url(request);
        let sent = match (&self.config.method, &self.config.json) {
            (Method::Post, Some(body)) => self.client.post(&url).json(&render_json(body, request)),
            (Method::Post, None) => self.client.post(&url),
            (Method::Get, _) => self.client.get(&url),
        };
        let mut response = sent
            .header("accept", "application/json")
            .send()
            .await
            .map_err(request_error)?;
        let status = response.status();
        if self.config.not_found_status.contains(&status.as_u16()) {
            return Ok(None);
        }
        match status.as_u16() {
            200..=299 => {}
            401 | 403 => {
                return Err(LookupError::Misconfigured(format!(
                    "HTTP {status}: check the plugin's credentials"
                )));
            }
            429 | 500..=599 => return Err(LookupError::Unavailable(format!("HTTP {status}"))),
            _ => return Err(LookupError::BadResponse(format!("HTTP {status}"))),
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(request_error)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(LookupError::BadResponse(format!(
                    "answer larger than {MAX_BODY} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        let document: Value = serde_json::from_slice(&body)
            .map_err(|e| LookupError::BadResponse(format!("not JSON: {e}")))?;
        Ok(facts_from(&document, &self.config.facts))
    }

    fn cache_key(&self, request: &LookupRequest) -> Option<String> {
        if request.caller.anonymous {
            return None;
        }
        // The rendered request is the question; a JSON body is part of it.
        let body = self
            .config
            .json
            .as_ref()
            .map(|b| render_json(b, request).to_string())
            .unwrap_or_default();
        Some(format!("{} {body}", self.url(request)))
    }

    fn keyed_on_caller(&self) -> bool {
        self.url.reads_number()
            || self.config.json.as_ref().is_some_and(|body| {
                let text = body.to_string();
                params::CALLER_PARAMS.iter().any(|(name, _)| {
                    params::is_number_param(name) && text.contains(&format!("{{{name}}}"))
                })
            })
    }
}

fn request_error(e: reqwest::Error) -> LookupError {
    // The URL carries the caller's number: personal data stays out of logs and traces.
    let e = e.without_url();
    if e.is_timeout() {
        LookupError::Timeout
    } else if e.is_connect() {
        LookupError::Unavailable(format!("cannot connect: {}", source_text(&e)))
    } else {
        LookupError::Unavailable(source_text(&e))
    }
}

/// reqwest's top-level message is generic; its cause says what happened.
fn source_text(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

/// Picks facts from a JSON answer; `None` when the answer is empty (`null`, `[]`, `{}`).
pub fn facts_from(document: &Value, mapping: &BTreeMap<String, String>) -> Option<Facts> {
    let empty = match document {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    };
    if empty && !mapping.values().any(|p| p.ends_with("/length")) {
        return None;
    }
    if mapping.is_empty() {
        return Some(match document {
            Value::Object(map) => map.clone(),
            Value::Array(items) => {
                let mut facts = Facts::new();
                facts.insert("count".into(), Value::from(items.len()));
                facts.insert("items".into(), document.clone());
                facts
            }
            other => {
                let mut facts = Facts::new();
                facts.insert("value".into(), other.clone());
                facts
            }
        });
    }
    Some(
        mapping
            .iter()
            .map(|(name, pointer)| (name.clone(), pointer_value(document, pointer)))
            .collect(),
    )
}

/// RFC 6901, plus `length` after an array.
fn pointer_value(document: &Value, pointer: &str) -> Value {
    if pointer.is_empty() || pointer == "/" {
        return document.clone();
    }
    if let Some(found) = document.pointer(pointer) {
        return found.clone();
    }
    match pointer.rsplit_once('/') {
        Some((parent, "length")) => match pointer_value(document, parent) {
            Value::Array(items) => Value::from(items.len()),
            Value::String(s) => Value::from(s.chars().count()),
            _ => Value::Null,
        },
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn facts_by_pointer_with_length() {
        let tickets = json!([{"id": 7, "owner": {"extension": "1003"}}, {"id": 8}]);
        let mapping: BTreeMap<String, String> = [
            ("open", "/"),
            ("count", "/length"),
            ("agent", "/0/owner/extension"),
            ("none", "/9/x"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let facts = facts_from(&tickets, &mapping).unwrap();
        assert_eq!(facts["count"], json!(2));
        assert_eq!(facts["agent"], json!("1003"));
        assert_eq!(facts["open"], tickets);
        assert_eq!(facts["none"], Value::Null);
    }

    #[test]
    fn empty_answers_are_not_found_unless_counted() {
        assert_eq!(facts_from(&json!([]), &BTreeMap::new()), None);
        assert_eq!(facts_from(&json!(null), &BTreeMap::new()), None);
        let count: BTreeMap<String, String> = [("count".to_string(), "/length".to_string())].into();
        assert_eq!(facts_from(&json!([]), &count).unwrap()["count"], json!(0));
        let whole = facts_from(&json!([1, 2]), &BTreeMap::new()).unwrap();
        assert_eq!(whole["count"], json!(2));
    }
}
