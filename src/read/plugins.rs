//! Plugins as configured and as they are doing: one view for `GET /api/v1/plugins` and the
//! console's Plugins page.

use belroute_engine::settings::format_duration;
use belroute_engine::{LookupStatus, Lookups};
use belroute_plugins::{PluginConfig, PluginInstance};
use serde::Serialize;

/// One plugin instance: what it is, where it asks, and its counters.
#[derive(Debug, Clone, Serialize)]
pub struct PluginView {
    #[serde(flatten)]
    pub status: LookupStatus,
    /// Its `kind:` (`http`, `sql`, `history`, …).
    pub kind: &'static str,
    /// The host it asks (`crm.example.nl`), or `call log` for `history`; never a URL's path,
    /// query or credentials.
    pub target: String,
    /// Longest one request may take.
    pub timeout: String,
    pub cache: CacheView,
}

/// A plugin's cache settings, as written in belroute.yaml.
#[derive(Debug, Clone, Serialize)]
pub struct CacheView {
    /// Off when `ttl` is 0s: every call asks the plugin.
    pub on: bool,
    pub ttl: String,
    pub negative_ttl: String,
    pub stale_if_error: String,
    pub max_entries: u64,
}

impl PluginView {
    /// Every plugin the router has, with its configuration from `instances`.
    pub fn all(lookups: &Lookups, instances: &[PluginInstance]) -> Vec<PluginView> {
        lookups
            .status()
            .into_iter()
            .filter_map(|status| {
                let instance = instances.iter().find(|i| i.name == status.name)?;
                let cache = &instance.settings.cache;
                Some(PluginView {
                    kind: instance.config.kind(),
                    target: target(&instance.config),
                    timeout: format_duration(instance.settings.timeout),
                    cache: CacheView {
                        on: !cache.ttl.is_zero(),
                        ttl: format_duration(cache.ttl),
                        negative_ttl: format_duration(cache.negative_ttl.unwrap_or(cache.ttl)),
                        stale_if_error: format_duration(cache.stale_if_error),
                        max_entries: cache.max_entries,
                    },
                    status,
                })
            })
            .collect()
    }
}

/// The host a plugin asks: from its URL as written (`${VAR}` stays as written), never its
/// credentials or path.
fn target(config: &PluginConfig) -> String {
    match config {
        PluginConfig::Http(c) => host(c.url.written()),
        PluginConfig::ExampleCrm(c) => host(c.base_url.written()),
        PluginConfig::Sql(c) => host(c.url.expose()),
        PluginConfig::History(_) => "call log".into(),
    }
}

/// `https://user:pw@crm.example.nl:8443/api/{e164}` → `crm.example.nl:8443`.
fn host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host.is_empty() {
        "—".into()
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_target_is_a_host_without_credentials() {
        assert_eq!(
            super::host("https://u:pw@crm.example.nl:8443/api/{e164}?k=1"),
            "crm.example.nl:8443"
        );
        assert_eq!(super::host("postgres://u:secret@db/crm"), "db");
        assert_eq!(super::host("${CRM_URL}/x"), "${CRM_URL}");
        assert_eq!(super::host("sqlite::memory:"), "sqlite::memory:");
    }
}
