//! Rule sets as served: one view for the admin API (`/api/v1/rulesets…`), `/readyz` and the
//! console's overview.

use std::sync::Arc;

use belroute_engine::{Catalog, Quarantined, Refusal, RuleSet};
use serde::Serialize;

use crate::metrics::{DecisionLabels, Metrics};
use crate::replay::{LastReplays, ReloadReplay};

/// A rule set as served.
#[derive(Debug, Clone, Serialize)]
pub struct RuleSetView {
    pub name: String,
    pub file: std::path::PathBuf,
    pub version: String,
    pub description: String,
    pub timeout_ms: u64,
    pub default: String,
    pub lookups: Vec<String>,
    pub rules: Vec<String>,
    /// The Voorwaarde-app's branches, when the rule set declares them (`routes:`).
    pub routes: Option<Vec<String>>,
    /// What `check` would warn about, each `file:line:col: …`.
    pub warnings: Vec<String>,
    /// Rules that run in a worker process, and why.
    #[serde(skip)]
    pub in_workers: Vec<InWorker>,
    #[serde(skip)]
    pub quarantine: Option<Quarantined>,
    /// When its file was saved (ms since the epoch), if that can be read.
    #[serde(skip)]
    pub saved_ms: Option<i64>,
    /// Calls answered by the default because time ran out, since start.
    #[serde(skip)]
    pub deadline_hits: u64,
    /// The replay after its last reload, if one ran.
    #[serde(skip)]
    pub last_replay: Option<Arc<ReloadReplay>>,
}

/// A rule that runs in a worker process, and what in it makes it so.
#[derive(Debug, Clone, Serialize)]
pub struct InWorker {
    pub rule: String,
    pub because: String,
}

impl RuleSetView {
    pub fn of(set: &RuleSet, metrics: &Metrics, replays: &LastReplays) -> Self {
        RuleSetView {
            name: set.name.to_string(),
            file: set.file.clone(),
            version: set.version.clone(),
            description: set.description.clone(),
            timeout_ms: u64::try_from(set.timeout.as_millis()).unwrap_or(u64::MAX),
            default: set.default_route.clone(),
            lookups: set.lookups.clone(),
            rules: set.rules.iter().map(|r| r.name.clone()).collect(),
            routes: set.routes.clone(),
            warnings: set.warnings.iter().map(ToString::to_string).collect(),
            in_workers: set
                .rules
                .iter()
                .filter_map(|r| {
                    Some(InWorker {
                        rule: r.name.clone(),
                        because: r.unbounded()?.what.to_string(),
                    })
                })
                .collect(),
            quarantine: set.quarantine.status(),
            saved_ms: std::fs::metadata(&set.file)
                .and_then(|m| m.modified())
                .ok()
                .map(crate::time::epoch_ms),
            deadline_hits: metrics
                .decisions
                .get(&DecisionLabels {
                    ruleset: set.name.to_string(),
                    reason: "deadline".into(),
                })
                .map_or(0, |c| c.get()),
            last_replay: replays.get(&set.name),
        }
    }

    /// Every rule set served, by name.
    pub fn all(catalog: &Catalog, metrics: &Metrics, replays: &LastReplays) -> Vec<Self> {
        catalog
            .rulesets
            .values()
            .map(|set| RuleSetView::of(set, metrics, replays))
            .collect()
    }
}

/// A rule file refused, and what still serves in its place.
#[derive(Debug, Clone, Serialize)]
pub struct RefusedView {
    pub ruleset: String,
    pub file: std::path::PathBuf,
    pub serving_version: Option<String>,
    pub errors: Vec<String>,
}

impl RefusedView {
    pub fn of(name: &str, refusal: &Refusal) -> Self {
        RefusedView {
            ruleset: name.to_string(),
            file: refusal.file.clone(),
            serving_version: refusal.serving_version.clone(),
            errors: refusal
                .diagnostics
                .iter()
                .map(ToString::to_string)
                .collect(),
        }
    }

    /// The refused files, one shape for `/readyz`, the admin API and the console.
    pub fn all(catalog: &Catalog) -> Vec<Self> {
        catalog
            .refused
            .iter()
            .map(|(name, refusal)| RefusedView::of(name, refusal))
            .collect()
    }
}

/// A quarantined rule set, one shape for `/readyz`, the admin API and the console.
#[derive(Debug, Clone, Serialize)]
pub struct QuarantinedView {
    pub ruleset: String,
    pub version: String,
    /// What its calls answer meanwhile.
    #[serde(skip)]
    pub default: String,
    /// How to end it through the API.
    pub release: String,
    #[serde(flatten)]
    pub status: Quarantined,
}

impl QuarantinedView {
    pub fn all(catalog: &Catalog) -> Vec<Self> {
        catalog
            .rulesets
            .iter()
            .filter_map(|(name, set)| {
                Some(QuarantinedView {
                    ruleset: name.clone(),
                    version: set.version.clone(),
                    default: set.default_route.clone(),
                    release: format!("POST /api/v1/rulesets/{name}/release"),
                    status: set.quarantine.status()?,
                })
            })
            .collect()
    }
}

/// How releasing a rule set's quarantine went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    Released,
    NotQuarantined,
    NoSuchRuleSet,
}

/// Ends `name`'s quarantine (its calls are decided by its rules again), logged with `by`.
pub fn release(catalog: &Catalog, name: &str, by: &str) -> Released {
    match catalog.get(name) {
        None => Released::NoSuchRuleSet,
        Some(set) if set.quarantine.release() => {
            tracing::warn!(ruleset = %set.name, by, "quarantine released: its calls are decided by its rules again");
            Released::Released
        }
        Some(_) => Released::NotQuarantined,
    }
}
