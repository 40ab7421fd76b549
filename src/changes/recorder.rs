//! Every version the server loads becomes a revision, whoever wrote it: a watch on the
//! catalog stores each new version once (by content hash) with its author — the token that
//! published it here, or `file` for a file saved by hand — and adds a `ruleset.file` entry to
//! the audit log for a change nobody published through belroute. A database that does not
//! answer is tried again on the next look; nothing is lost while the version still serves.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use belroute_engine::RuleStore;

use super::Changes;
use crate::storage::revisions::{Revision, Source};

/// How often the catalog is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// Starts the recorder on the current runtime.
pub fn record_revisions(store: Arc<RuleStore>, changes: Arc<Changes>) {
    tokio::spawn(async move {
        // What is stored, by rule set: its version, as this recorder last stored it.
        let mut recorded: BTreeMap<String, String> = BTreeMap::new();
        let mut first = true;
        let mut failing = false;
        let mut tick = tokio::time::interval(LOOK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match look(&store, &changes, &mut recorded, first).await {
                Ok(()) => {
                    first = false;
                    if failing {
                        failing = false;
                        tracing::info!("rule set revisions are stored again");
                    }
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(
                        "cannot store rule set revisions (database: {e}); calls are not affected, and they are stored when the database answers"
                    );
                }
                Err(_) => {}
            }
        }
    });
}

/// Stores what changed since the last look. At the first look (start-up) versions are stored
/// without an audit entry: nothing changed, the server started.
async fn look(
    store: &RuleStore,
    changes: &Changes,
    recorded: &mut BTreeMap<String, String>,
    first: bool,
) -> Result<(), sqlx::Error> {
    let catalog = store.catalog();
    let storage = changes.storage();
    let now = crate::time::now_ms();
    for (name, set) in &catalog.rulesets {
        let previous = recorded.get(name.as_str()).cloned();
        if previous.as_deref() == Some(set.version.as_str()) {
            continue;
        }
        let credited = changes.credited(name, &set.version);
        let who = credited.clone().unwrap_or(super::Attribution {
            source: Source::File,
            author: "file".into(),
            note: String::new(),
        });
        let revision = Revision {
            ruleset: name.clone(),
            hash: set.version.clone(),
            loaded_at: now,
            source: who.source,
            author: who.author,
            note: who.note,
            content: None,
        };
        storage.record_revision(&revision, &set.source).await?;
        if let Some(previous) = &previous {
            storage.revision_replaced(name, previous, now).await?;
        }
        if changes.shared() && credited.is_none() {
            changes
                .loaded_by_hand(name, previous.as_deref(), &set.version)
                .await?;
        }
        if !first && credited.is_none() {
            let detail =
                serde_json::json!({ "from": previous, "to": set.version, "file": set.file });
            storage.audit("file", "ruleset.file", name, &detail).await?;
        }
        if credited.is_some() {
            changes.credit_used(name, &set.version);
        }
        recorded.insert(name.clone(), set.version.clone());
    }
    let gone: Vec<(String, String)> = recorded
        .iter()
        .filter(|(name, _)| {
            catalog.get(name.as_str()).is_none() && !catalog.refused.contains_key(name.as_str())
        })
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    for (name, version) in gone {
        storage.revision_replaced(&name, &version, now).await?;
        // Removed because the database says so: the person who removed it was audited there.
        if !(changes.shared() && changes.removal_expected(&name)) {
            if changes.shared() {
                changes.removed_by_hand(&name, &version).await?;
            }
            let detail = serde_json::json!({ "from": version });
            storage
                .audit("file", "ruleset.remove", &name, &detail)
                .await?;
        }
        recorded.remove(&name);
    }
    Ok(())
}
