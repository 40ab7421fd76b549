//! Prometheus metrics: what operators graph and alert on.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RulesetLabels {
    pub ruleset: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub ruleset: String,
    /// matched, no_match or deadline.
    pub reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectionLabels {
    /// unauthorized, forbidden, unknown_ruleset, refused_ruleset, too_large, content_type, not_utf8, not_json, not_an_object, read_error
    pub reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub ruleset: String,
    pub rule: String,
}

/// Every metric belroute exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub decisions: Family<DecisionLabels, Counter>,
    pub decision_seconds: Family<RulesetLabels, Histogram>,
    pub rejections: Family<RejectionLabels, Counter>,
    pub rule_errors: Family<RuleLabels, Counter>,
    pub rulesets_loaded: Gauge,
    pub rulesets_refused: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("belroute");
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decisions",
            "Calls answered, by rule set and why (matched, no_match, deadline)",
            decisions.clone(),
        );
        let decision_seconds = Family::<RulesetLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0,
                10.0,
            ])
        });
        registry.register(
            "decision_seconds",
            "Time from a hook request's arrival to its answer",
            decision_seconds.clone(),
        );
        let rejections = Family::<RejectionLabels, Counter>::default();
        registry.register(
            "hook_rejections",
            "Hook requests refused before routing, by reason",
            rejections.clone(),
        );
        let rule_errors = Family::<RuleLabels, Counter>::default();
        registry.register(
            "rule_errors",
            "Rule evaluations that failed (error or sandbox limit)",
            rule_errors.clone(),
        );
        let rulesets_loaded = Gauge::default();
        registry.register(
            "rulesets_loaded",
            "Rule sets being served",
            rulesets_loaded.clone(),
        );
        let rulesets_refused = Gauge::default();
        registry.register(
            "rulesets_refused",
            "Rule files refused by validation (last good version still serving)",
            rulesets_refused.clone(),
        );
        Metrics {
            registry,
            decisions,
            decision_seconds,
            rejections,
            rule_errors,
            rulesets_loaded,
            rulesets_refused,
        }
    }
}

impl Metrics {
    pub fn reject(&self, reason: &str) {
        self.rejections
            .get_or_create(&RejectionLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
