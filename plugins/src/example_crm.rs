//! `kind: example_crm` — the worked example of docs/plugins.md: a plugin for a small CRM with
//! its own REST API, where one question takes two requests.
//!
//! The CRM ("Klantbeheer", say) answers `GET {base_url}/customers?phone=+31…` with the matching
//! customers, and `GET {base_url}/customers/{id}/summary` with their open invoices and account
//! manager. The generic `http` kind asks one URL; this needs the id from the first answer for
//! the second, so it is a plugin of its own. Copy this file to start yours.

use std::time::Duration;

use async_trait::async_trait;
use belroute_engine::settings::{EnvText, Secret, Section, value};
use belroute_engine::vocabulary::{DeclaredFacts, FactType};
use belroute_engine::{Facts, Lookup, LookupError, LookupRequest};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

/// RFC 3986 unreserved characters stay; `+` of an E.164 number becomes `%2B`.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Settings of an `example_crm` plugin, as written in belroute.yaml.
#[derive(Debug, Clone)]
pub struct ExampleCrmConfig {
    /// `https://crm.example.nl/api`, usually `${CRM_URL}`.
    pub base_url: EnvText,
    /// Sent as `X-Api-Key`; from the environment (`${CRM_API_KEY}`).
    pub api_key: Secret,
}

impl ExampleCrmConfig {
    /// Its own keys; `kind`, `timeout`, `cache` and `breaker` are the engine's.
    pub const KEYS: [&'static str; 2] = ["base_url", "api_key"];

    /// Reads the settings, reporting every problem at its key (and going on, so an operator
    /// sees them all at once). `None` when a required setting is missing or refused.
    pub fn read(s: &mut Section<'_, '_, '_>) -> Option<Self> {
        let base_url = s.required("base_url", "\"${CRM_URL}\"", value::env_text);
        let api_key = s.required("api_key", "\"${CRM_API_KEY}\"", value::secret);
        if let Some(url) = &base_url
            && let Err(e) = check_base_url(url.expose())
        {
            s.error("base_url", e);
        }
        Some(ExampleCrmConfig {
            base_url: base_url?,
            api_key: api_key?,
        })
    }

    /// Everything that can be checked at start-up, without the network.
    pub fn validate(&self) -> Result<(), String> {
        check_base_url(self.base_url.expose()).map_err(|e| format!("`base_url` {e}"))
    }

    /// One client per instance: its connections are reused from call to call.
    pub fn build(&self, timeout: Duration) -> Result<ExampleCrm, String> {
        self.validate()?;
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(500).min(timeout))
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot create the HTTP client: {e}"))?;
        let base_url = self.base_url.expose().trim_end_matches('/').to_string();
        Ok(ExampleCrm {
            base_url,
            api_key: self.api_key.clone(),
            client,
        })
    }
}

/// What is wrong with the base URL, said after its name.
fn check_base_url(base_url: &str) -> Result<(), String> {
    let url = url::Url::parse(base_url).map_err(|e| format!("is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be http:// or https://".into());
    }
    Ok(())
}

/// A built `example_crm` plugin.
#[derive(Debug)]
pub struct ExampleCrm {
    base_url: String,
    api_key: Secret,
    client: reqwest::Client,
}

impl ExampleCrm {
    /// GETs `url` as JSON; `None` for 404. Maps every other failure to the error kind the engine
    /// acts on (all count for the circuit breaker; `Misconfigured` is the one a person must fix).
    async fn get(&self, url: &str) -> Result<Option<Value>, LookupError> {
        let response = self
            .client
            .get(url)
            .header("x-api-key", self.api_key.expose())
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    LookupError::Timeout
                } else {
                    // The URL carries the caller's number: keep it out of logs.
                    LookupError::Unavailable(format!("cannot reach the CRM: {}", e.without_url()))
                }
            })?;
        match response.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            401 | 403 => {
                return Err(LookupError::Misconfigured(
                    "the CRM refused the API key: check CRM_API_KEY".into(),
                ));
            }
            status => {
                return Err(LookupError::Unavailable(format!(
                    "the CRM answered HTTP {status}"
                )));
            }
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| LookupError::Unavailable(e.to_string()))?;
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| LookupError::BadResponse(format!("not JSON: {e}")))
    }
}

impl ExampleCrmConfig {
    /// What the example CRM answers.
    pub fn facts() -> DeclaredFacts {
        use FactType::{Any, Float, Int, Text};
        [
            ("customer_id", Any),
            ("name", Text),
            ("open_invoices", Int),
            ("open_amount", Float),
            ("account_manager", Text),
        ]
        .into_iter()
        .map(|(name, kind)| (name.to_string(), kind))
        .collect()
    }
}

#[async_trait]
impl Lookup for ExampleCrm {
    fn facts(&self) -> Option<DeclaredFacts> {
        Some(ExampleCrmConfig::facts())
    }

    /// Who is this caller to the CRM? `Ok(None)` when it does not know them.
    async fn lookup(&self, request: &LookupRequest) -> Result<Option<Facts>, LookupError> {
        let phone = &request.caller.e164;
        if phone.is_empty() {
            // Asked only with `ask_without_number: true`: such numbers match nobody.
            return Ok(None);
        }
        let url = format!(
            "{}/customers?phone={}",
            self.base_url,
            utf8_percent_encode(phone, COMPONENT)
        );
        let Some(found) = self.get(&url).await? else {
            return Ok(None);
        };
        let Some(customer) = found
            .get("customers")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        else {
            return Ok(None);
        };
        let id = match customer.get("id") {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => utf8_percent_encode(s, COMPONENT).to_string(),
            _ => return Err(LookupError::BadResponse("a customer without an id".into())),
        };
        // The customer exists, so no summary (404) is an inconsistency, not "unknown caller".
        let summary = self
            .get(&format!("{}/customers/{id}/summary", self.base_url))
            .await?
            .ok_or_else(|| LookupError::BadResponse(format!("customer {id} has no summary")))?;
        let facts = json!({
            "customer_id": customer["id"],
            "name": customer["name"],
            "open_invoices": summary["open_invoices"],
            "open_amount": summary["open_amount"],
            "account_manager": summary["account_manager"]["extension"],
        });
        Ok(facts.as_object().cloned())
    }
}
