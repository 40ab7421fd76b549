//! belroute-plugins: the built-in lookup plugins.
//!
//! Each kind is a settings struct, read from belroute.yaml with the engine's settings toolkit
//! ([`belroute_engine::settings::Section`]), and a type implementing
//! [`belroute_engine::Lookup`]. [`PluginConfig`] is the closed list of kinds: adding a plugin
//! is one struct, one `impl Lookup`, and one arm in each match here (see docs/plugins.md).
//!
//! Plugins know nothing of Rhai or of HTTP serving.
#![forbid(unsafe_code)]

pub mod example_crm;
pub mod history;
pub mod http;
pub mod params;
pub mod probe;
pub mod sql;

use std::path::Path;
use std::sync::Arc;

use belroute_engine::diagnostic::{Diagnostic, Diagnostics};
use belroute_engine::settings::{Section, check_lookup_name, or_list, value};
use belroute_engine::yaml::{self, Node};
use belroute_engine::{Lookup, LookupSettings};

/// The settings of one plugin instance, by `kind`.
#[derive(Debug, Clone)]
pub enum PluginConfig {
    Http(http::HttpConfig),
    Sql(sql::SqlConfig),
    History(history::HistoryConfig),
    /// The worked example of docs/plugins.md.
    ExampleCrm(example_crm::ExampleCrmConfig),
}

/// Every `kind:`, as written in belroute.yaml.
pub const KINDS: [&str; 4] = ["http", "sql", "history", "example_crm"];

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
    /// The `kind:` this was read from.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginConfig::Http(_) => "http",
            PluginConfig::Sql(_) => "sql",
            PluginConfig::History(_) => "history",
            PluginConfig::ExampleCrm(_) => "example_crm",
        }
    }

    /// The facts an instance answers, with their types: what rules may read of it. `None` for
    /// an `http` plugin without a `facts:` mapping or a `sql` one (`result: row`) without
    /// `facts:` — belroute cannot know what they answer.
    pub fn facts(&self) -> Option<belroute_engine::vocabulary::DeclaredFacts> {
        match self {
            PluginConfig::Http(c) => c.declared_facts(),
            PluginConfig::Sql(c) => c.declared_facts(),
            PluginConfig::History(_) => Some(history::HistoryConfig::facts()),
            PluginConfig::ExampleCrm(_) => Some(example_crm::ExampleCrmConfig::facts()),
        }
    }

    /// The keys of a kind's own settings, or `None` for an unknown kind.
    pub fn keys(kind: &str) -> Option<&'static [&'static str]> {
        Some(match kind {
            "http" => &http::HttpConfig::KEYS,
            "sql" => &sql::SqlConfig::KEYS,
            "history" => &history::HistoryConfig::KEYS,
            "example_crm" => &example_crm::ExampleCrmConfig::KEYS,
            _ => return None,
        })
    }

    /// Reads the settings of `kind` from its section, reporting every problem there; `None`
    /// when a required setting is missing or refused.
    pub fn read(kind: &str, section: &mut Section<'_, '_, '_>) -> Option<Self> {
        match kind {
            "http" => http::HttpConfig::read(section).map(PluginConfig::Http),
            "sql" => sql::SqlConfig::read(section).map(PluginConfig::Sql),
            "history" => history::HistoryConfig::read(section).map(PluginConfig::History),
            "example_crm" => {
                example_crm::ExampleCrmConfig::read(section).map(PluginConfig::ExampleCrm)
            }
            _ => None,
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

/// The facts a `plugins:` entry declares, read from its settings alone: `kind`, `facts` and
/// `result`, none of which take a secret. `check` reads them even where a `${VARIABLE}` is
/// unset and the rest of the entry cannot be read.
pub fn declared_facts(node: &Node) -> Option<belroute_engine::vocabulary::DeclaredFacts> {
    let map = node.as_map()?;
    let get = |key: &str| {
        map.iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    };
    let facts = || -> Option<belroute_engine::vocabulary::DeclaredFacts> {
        let entries = get("facts")?.as_map()?;
        let mut declared = belroute_engine::vocabulary::DeclaredFacts::new();
        for (name, value) in entries.iter() {
            let name = name.as_str()?;
            declared.insert(name.to_string(), http::read_fact(name, value).ok()?.1);
        }
        Some(declared)
    };
    match get("kind")?.as_str()? {
        "history" => Some(history::HistoryConfig::facts()),
        "example_crm" => Some(example_crm::ExampleCrmConfig::facts()),
        "sql" if get("result").and_then(Node::as_str) == Some("rows") => {
            sql::SqlConfig::rows_facts().into()
        }
        "sql" | "http" => facts(),
        _ => None,
    }
}

/// One entry of `plugins:` in belroute.yaml: its name, engine settings and kind settings.
#[derive(Debug, Clone)]
pub struct PluginInstance {
    pub name: String,
    pub settings: LookupSettings,
    pub config: PluginConfig,
}

/// Reads one `plugins:` entry: `name` (written at `key`) and its mapping `node`. Every problem
/// is reported to `diags` with its position; `None` when there was any.
pub fn parse_instance(
    name: &str,
    key: &Node,
    node: &Node,
    diags: &mut Diagnostics<'_>,
) -> Option<PluginInstance> {
    let path = format!("plugins.{name}");
    let named = check_lookup_name(name);
    if let Err(message) = &named {
        diags.error(key.position, message.clone());
    }
    let Some(map) = node.as_map() else {
        diags.error(
            node.position,
            format!(
                "`{path}` must be a mapping with at least `kind:` ({}), found {}",
                or_list(&KINDS),
                node.kind_name()
            ),
        );
        return None;
    };
    let Some(kind_node) = map
        .iter()
        .find(|(k, _)| k.as_str() == Some("kind"))
        .map(|(_, v)| v)
    else {
        diags.error(
            node.position,
            format!("`{path}` needs `kind`: {}", or_list(&KINDS)),
        );
        return None;
    };
    let choices = KINDS.map(|k| (k, k));
    let kind = match value::choice(kind_node, &choices) {
        Ok(kind) => kind,
        Err(invalid) => {
            diags.error(
                invalid.position,
                invalid.for_setting(&format!("{path}.kind")),
            );
            return None;
        }
    };
    let mut keys = vec!["kind"];
    keys.extend(LookupSettings::KEYS);
    keys.extend(PluginConfig::keys(kind).unwrap_or_default());
    let mut section = Section::read(node, &path, &keys, diags);
    let settings = LookupSettings::read(&mut section);
    let config = PluginConfig::read(kind, &mut section);
    match config {
        Some(config) if section.is_ok() && named.is_ok() => Some(PluginInstance {
            name: name.to_string(),
            settings,
            config,
        }),
        _ => None,
    }
}

/// Reads one plugin instance from YAML text (its settings mapping), for tests and tools; the
/// problems are as belroute.yaml reports them, with positions in `text`.
pub fn parse_instance_text(name: &str, text: &str) -> Result<PluginInstance, Vec<Diagnostic>> {
    let file = Path::new("plugin.yaml");
    let mut diags = Diagnostics::new(file);
    let node = match yaml::parse(text) {
        Ok(node) => node,
        Err(e) => {
            diags.error(e.position, e.to_string());
            return Err(diags.into_vec());
        }
    };
    let key = yaml::parse(name).unwrap_or_else(|_| node.clone());
    match parse_instance(name, &key, &node, &mut diags) {
        Some(instance) if diags.is_empty() => Ok(instance),
        _ => Err(diags.into_vec()),
    }
}

/// rustls needs one process-wide crypto provider; ring is the one sqlx uses too. Call it before
/// building any HTTP client.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
