//! `belroute check --probe`: what a plugin's source really answers, against what its `facts:`
//! declare. A `sql` query is prepared (not run) so the database names its columns and their
//! types; an `http` API is asked about a probe caller. Differences are problems: a declared
//! fact the source never answers is a rule that is silently false on every call.

use std::sync::Arc;
use std::time::Duration;

use belroute_engine::vocabulary::{DeclaredFacts, FactType};
use belroute_engine::{Call, Caller, Lookup, LookupRequest};

use crate::{PluginConfig, PluginInstance, sql::ResultShape};

/// How long one probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What probing one plugin found.
#[derive(Debug, Default)]
pub struct Probe {
    pub plugin: String,
    /// What differs from the declaration (`check --probe` fails on these).
    pub problems: Vec<String>,
    /// What was not compared, and why; what the source answers beyond the declaration.
    pub notes: Vec<String>,
}

/// Compares `instance`'s declared facts with what its source answers for `caller`.
pub async fn probe(instance: &PluginInstance, caller: Arc<Caller>) -> Probe {
    let mut found = Probe {
        plugin: instance.name.clone(),
        ..Probe::default()
    };
    let name = &instance.name;
    match (&instance.config, instance.config.facts()) {
        (PluginConfig::History(_) | PluginConfig::ExampleCrm(_), _) => found
            .notes
            .push(format!("plugins.{name}: built in; its facts are known, not probed")),
        (PluginConfig::Sql(c), _) if c.result == ResultShape::Rows => found.notes.push(format!(
            "plugins.{name}: `result: rows` answers `rows` and `count` whatever the query; not probed"
        )),
        (_, None) => found.notes.push(format!(
            "plugins.{name}: declares no `facts:`; nothing to compare"
        )),
        (PluginConfig::Sql(c), Some(declared)) => {
            let columns = match c.build(PROBE_TIMEOUT) {
                Ok(lookup) => tokio::time::timeout(PROBE_TIMEOUT, lookup.columns())
                    .await
                    .unwrap_or_else(|_| Err("the database did not answer in time".into())),
                Err(e) => Err(e),
            };
            match columns {
                Ok(columns) => compare(name, "the query", &declared, &columns, &mut found),
                Err(e) => found
                    .problems
                    .push(format!("plugins.{name}: cannot probe the query: {e}")),
            }
        }
        (PluginConfig::Http(c), Some(declared)) => {
            let lookup = match c.build(PROBE_TIMEOUT) {
                Ok(lookup) => lookup,
                Err(e) => {
                    found
                        .problems
                        .push(format!("plugins.{name}: cannot probe: {e}"));
                    return found;
                }
            };
            let request = LookupRequest {
                caller: caller.clone(),
                call: Arc::new(Call::from_pairs([("caller_number", caller.raw.as_str())])),
            };
            match tokio::time::timeout(PROBE_TIMEOUT, lookup.lookup(&request)).await {
                Err(_) => found.problems.push(format!(
                    "plugins.{name}: the API did not answer within {}s",
                    PROBE_TIMEOUT.as_secs()
                )),
                Ok(Err(e)) => found
                    .problems
                    .push(format!("plugins.{name}: cannot probe the API: {e}")),
                Ok(Ok(None)) => found.notes.push(format!(
                    "plugins.{name}: the API does not know the probe caller {}; give one it knows with --probe-caller",
                    caller.key()
                )),
                Ok(Ok(Some(facts))) => {
                    let answered: Vec<(String, Option<FactType>)> = facts
                        .iter()
                        .filter(|(_, v)| !v.is_null())
                        .map(|(k, v)| (k.clone(), FactType::of_json(v)))
                        .collect();
                    compare(name, "the API", &declared, &answered, &mut found);
                }
            }
        }
    }
    found
}

/// Declared facts against what the source answers (name and type, where known).
fn compare(
    plugin: &str,
    source: &str,
    declared: &DeclaredFacts,
    answered: &[(String, Option<FactType>)],
    found: &mut Probe,
) {
    let names: Vec<&str> = answered.iter().map(|(n, _)| n.as_str()).collect();
    for (fact, kind) in declared {
        match answered.iter().find(|(n, _)| n == fact) {
            None => {
                let hint = belroute_engine::suggestion(fact, names.iter().copied())
                    .map(|s| format!("did you mean {s}? "))
                    .unwrap_or_default();
                found.problems.push(format!(
                    "plugins.{plugin}: `facts:` declares `{fact}`, which {source} does not answer; {hint}it answers: {}",
                    if names.is_empty() { "nothing".to_string() } else { names.join(", ") }
                ));
            }
            Some((_, Some(actual)))
                if *kind != FactType::Any
                    && *actual != FactType::Any
                    && !(actual == kind
                        || (*kind == FactType::Float && *actual == FactType::Int)) =>
            {
                found.problems.push(format!(
                    "plugins.{plugin}: `facts:` declares `{fact}` as {kind}, but {source} answers {actual}"
                ));
            }
            Some(_) => {}
        }
    }
    for (name, kind) in answered {
        if !declared.contains_key(name) {
            found.notes.push(format!(
                "plugins.{plugin}: {source} also answers `{name}`{}, which `facts:` does not declare: rules cannot read it",
                kind.map(|k| format!(" ({k})")).unwrap_or_default()
            ));
        }
    }
}
