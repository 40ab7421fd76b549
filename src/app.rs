//! Wiring: from a configuration and a rules directory to a ready engine.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use belroute_engine::{Lookups, Router, RuleStore, ScriptEngine, StoreContext};

use crate::config::Config;
use crate::metrics::Metrics;

/// Everything a running belroute shares between requests.
#[derive(Debug)]
pub struct Belroute {
    pub config: Arc<Config>,
    pub store: Arc<RuleStore>,
    pub router: Arc<Router>,
    pub metrics: Arc<Metrics>,
}

impl Belroute {
    /// Builds the engine and reads the rules directory once. Rule files that fail are refused
    /// (logged, and shown by `/readyz`), not fatal.
    pub fn open(config: Config, rules_dir: &Path) -> anyhow::Result<Self> {
        let router = Arc::new(router(&config)?);
        let context = StoreContext {
            scripts: router.scripts().clone(),
            configured_lookups: router.lookups().names(),
            time_zone: config.timezone.0,
        };
        let store = RuleStore::open(rules_dir, context).context("cannot serve rules")?;
        let metrics = Arc::new(Metrics::new(router.clone()));
        Ok(Belroute {
            config: Arc::new(config),
            store: Arc::new(store),
            router,
            metrics,
        })
    }
}

/// The router for `config`: the sandboxed script engine, caller normalisation and plugins.
pub fn router(config: &Config) -> anyhow::Result<Router> {
    let scripts = Arc::new(ScriptEngine::new(&config.sandbox));
    let normaliser = config.default_region.0;
    // The numbering-plan database loads on first use (~1 s in debug builds): not on a live call.
    normaliser.normalise("31152026057");
    let mut lookups = Lookups::default();
    for instance in &config.lookups {
        let plugin = instance
            .config
            .build(&instance.settings)
            .map_err(|e| anyhow::anyhow!("plugin `{}`: {e}", instance.name))?;
        lookups.insert(&instance.name, plugin, instance.settings.clone());
    }
    Ok(Router::new(scripts, normaliser, lookups))
}
