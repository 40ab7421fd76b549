//! belroute-plugins: the built-in lookup plugins.
//!
//! Each kind is a settings struct (validated at start-up) and a type implementing
//! [`belroute_engine::Lookup`]. [`PluginConfig`] is the closed list of kinds: adding a plugin
//! is one struct, one `impl Lookup`, and one arm here (see docs/plugins.md).
//!
//! Plugins know nothing of Rhai or of HTTP serving.
#![forbid(unsafe_code)]

pub mod example_crm;
pub mod history;
pub mod http;
pub mod params;
pub mod sql;

use std::sync::Arc;

use belroute_engine::{Lookup, LookupSettings};
use serde::Deserialize;

/// The settings of one plugin instance, by `kind`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PluginConfig {
    Http(http::HttpConfig),
    Sql(sql::SqlConfig),
    History(history::HistoryConfig),
    /// The worked example of docs/plugins.md.
    ExampleCrm(example_crm::ExampleCrmConfig),
}

/// What building a plugin may need from the server around it.
#[derive(Clone, Default)]
pub struct BuildContext {
    /// belroute's own call log, for `history`.
    pub history: Option<Arc<dyn history::CallHistory>>,
    /// The server's time zone ("today" for `history`).
    pub time_zone: Option<chrono_tz::Tz>,
}

impl std::fmt::Debug for BuildContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildContext")
            .field("history", &self.history.is_some())
            .field("time_zone", &self.time_zone)
            .finish()
    }
}

impl PluginConfig {
    /// Checks the settings without touching the network.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            PluginConfig::Http(c) => c.validate(),
            PluginConfig::Sql(c) => c.validate(),
            PluginConfig::History(c) => c.validate(),
            PluginConfig::ExampleCrm(c) => c.validate(),
        }
    }

    /// Creates the plugin. Connections are made on first use, not here.
    pub fn build(
        &self,
        settings: &LookupSettings,
        context: &BuildContext,
    ) -> Result<Arc<dyn Lookup>, String> {
        Ok(match self {
            PluginConfig::Http(c) => Arc::new(c.build(settings.timeout)?),
            PluginConfig::Sql(c) => Arc::new(c.build(settings.timeout)?),
            PluginConfig::History(c) => {
                let zone = context
                    .time_zone
                    .unwrap_or(belroute_engine::DEFAULT_TIME_ZONE);
                Arc::new(c.build(context.history.clone(), zone)?)
            }
            PluginConfig::ExampleCrm(c) => Arc::new(c.build(settings.timeout)?),
        })
    }
}

/// One entry of `plugins:` in belroute.yaml: its name, engine settings and kind settings.
#[derive(Debug, Clone)]
pub struct PluginInstance {
    pub name: String,
    pub settings: LookupSettings,
    pub config: PluginConfig,
}

/// Keys every plugin has, handled by the engine rather than the plugin.
const ENGINE_KEYS: [&str; 4] = ["timeout", "cache", "breaker", "ask_without_number"];

/// Names rules cannot use for a lookup variable.
const RESERVED: [&str; 8] = [
    "call", "caller", "now", "true", "false", "let", "fn", "this",
];

/// Reads one `plugins:` entry. Errors say what to fix; the caller adds file and position.
pub fn parse_instance(name: &str, value: &serde_yaml::Value) -> Result<PluginInstance, String> {
    let valid_name = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid_name || RESERVED.contains(&name) {
        return Err(format!(
            "plugin name `{name}`: rules read it as a variable, so use lowercase letters, digits and _ (not call, caller or a Rhai keyword)"
        ));
    }
    let serde_yaml::Value::Mapping(map) = value else {
        return Err("a plugin is a mapping with at least `kind:` (http, sql or history)".into());
    };
    let (mut engine, mut kind) = (serde_yaml::Mapping::new(), serde_yaml::Mapping::new());
    for (key, value) in map {
        let is_engine_key = key.as_str().is_some_and(|k| ENGINE_KEYS.contains(&k));
        if is_engine_key {
            &mut engine
        } else {
            &mut kind
        }
        .insert(key.clone(), value.clone());
    }
    if !kind.contains_key("kind") {
        return Err("missing `kind`: http, sql or history".into());
    }
    let settings: LookupSettings =
        serde_yaml::from_value(serde_yaml::Value::Mapping(engine)).map_err(|e| e.to_string())?;
    let config: PluginConfig =
        serde_yaml::from_value(serde_yaml::Value::Mapping(kind)).map_err(|e| e.to_string())?;
    config.validate()?;
    if !(0.0..=1.0).contains(&settings.cache.refresh_ahead) {
        return Err(
            "`cache.refresh_ahead` is a fraction of the ttl between 0 and 1 (1 turns it off)"
                .into(),
        );
    }
    if settings.timeout.is_zero() || settings.timeout > std::time::Duration::from_secs(10) {
        return Err("`timeout` must be between 1ms and 10s".into());
    }
    Ok(PluginInstance {
        name: name.to_string(),
        settings,
        config,
    })
}

/// rustls needs one process-wide crypto provider; ring is the one sqlx uses too. Call it before
/// building any HTTP client.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
