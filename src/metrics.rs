//! Prometheus metrics: what operators graph and alert on.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use belroute_engine::{Decision, Router, RuleOutcome};

use crate::storage::CallLog;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
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
    /// unauthorized, forbidden, throttled, loop, unknown_ruleset, refused_ruleset, too_large, content_type, not_utf8, not_json, not_an_object, read_error
    pub reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CredentialLabels {
    /// console_login, admin_api, subscription_key, hook_secret
    pub kind: String,
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
    /// 1 for each quarantined rule set; set at each scrape from the catalog.
    pub quarantined: Family<RulesetLabels, Gauge>,
    pub panics: Counter,
    pub calls_without_fields: Family<RulesetLabels, Counter>,
    /// Logs a GET without fields once per rule set per minute.
    without_fields_said: crate::logging::Throttle,
    /// HTTP connections open now, and at most (after the file limit).
    pub connections_open: Gauge,
    pub connections_max: Gauge,
    /// The process's file descriptor limit (soft), as raised at start.
    pub file_limit: Gauge,
    /// Wrong credentials, and tries refused (`429`) because their address must wait.
    pub auth_failures: Family<CredentialLabels, Counter>,
    pub auth_throttled_tries: Family<CredentialLabels, Counter>,
    /// Client addresses whose wrong credentials are counted now.
    pub auth_addresses: Gauge,
    last_panic: Mutex<Option<(SystemTime, String)>>,
}

/// How long a caught panic keeps `/readyz` at 503: long enough for an operator to notice.
pub const PANIC_SHOWN_FOR: Duration = Duration::from_secs(600);

impl Metrics {
    /// Exports where `history` lookups were answered (`belroute_history_answers_total`).
    pub fn watch_history(&mut self, recent: Arc<crate::storage::recent::RecentCalls>) {
        self.registry
            .register_collector(Box::new(HistoryCollector(recent)));
    }

    pub fn new(router: Arc<Router>, call_log: Arc<CallLog>) -> Self {
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
        let quarantined = Family::<RulesetLabels, Gauge>::default();
        registry.register(
            "ruleset_quarantined",
            "1 while the rule set is quarantined (its calls answer its default at once)",
            quarantined.clone(),
        );
        let panics = Counter::default();
        registry.register(
            "panics",
            "Panics caught on a request path (each answered the rule set's default)",
            panics.clone(),
        );
        let calls_without_fields = Family::<RulesetLabels, Counter>::default();
        registry.register(
            "calls_without_fields",
            "GET hook requests with no call data at all (is the Webhook-app set to GET?)",
            calls_without_fields.clone(),
        );
        registry.register_collector(Box::new(WorkerCollector(router.clone())));
        let connections_open = Gauge::default();
        registry.register(
            "connections_open",
            "HTTP connections open now",
            connections_open.clone(),
        );
        let connections_max = Gauge::default();
        registry.register(
            "connections_max",
            "HTTP connections open at most (hooks.connections.max, lowered to fit the file limit)",
            connections_max.clone(),
        );
        let file_limit = Gauge::default();
        registry.register(
            "file_limit",
            "File descriptors the process may open (the soft limit, raised at start)",
            file_limit.clone(),
        );
        let auth_failures = Family::<CredentialLabels, Counter>::default();
        registry.register(
            "auth_failures",
            "Wrong credentials presented, by kind (console_login, admin_api, subscription_key, hook_secret)",
            auth_failures.clone(),
        );
        let auth_throttled_tries = Family::<CredentialLabels, Counter>::default();
        registry.register(
            "auth_throttled",
            "Tries answered 429 unchecked because their address had too many wrong credentials",
            auth_throttled_tries.clone(),
        );
        // Every kind shows from the start (0), so an alert can compare with it.
        for kind in [
            "console_login",
            "admin_api",
            "subscription_key",
            "hook_secret",
        ] {
            let labels = CredentialLabels {
                kind: kind.to_string(),
            };
            let _ = auth_failures.get_or_create(&labels);
            let _ = auth_throttled_tries.get_or_create(&labels);
        }
        let auth_addresses = Gauge::default();
        registry.register(
            "auth_throttle_addresses",
            "Client addresses whose wrong credentials are being counted (at most 10000)",
            auth_addresses.clone(),
        );
        registry.register_collector(Box::new(LookupCollector(router)));
        registry.register_collector(Box::new(CallLogCollector(call_log)));
        Metrics {
            registry,
            decisions,
            decision_seconds,
            rejections,
            rule_errors,
            rulesets_loaded,
            rulesets_refused,
            quarantined,
            panics,
            calls_without_fields,
            without_fields_said: crate::logging::Throttle::new(Duration::from_secs(60), 10_000),
            connections_open,
            connections_max,
            file_limit,
            auth_failures,
            auth_throttled_tries,
            auth_addresses,
            last_panic: Mutex::new(None),
        }
    }

    /// Counts one answered call: its reason, its time, its failed rules.
    pub fn observe(&self, decision: &Decision) {
        self.decisions
            .get_or_create(&DecisionLabels {
                ruleset: decision.ruleset.clone(),
                reason: decision.reason.as_str().to_string(),
            })
            .inc();
        self.decision_seconds
            .get_or_create(&RulesetLabels {
                ruleset: decision.ruleset.clone(),
            })
            .observe(decision.micros as f64 / 1e6);
        for rule in &decision.rules {
            if matches!(rule.outcome, RuleOutcome::Error { .. }) {
                self.rule_errors
                    .get_or_create(&RuleLabels {
                        ruleset: decision.ruleset.clone(),
                        rule: rule.name.clone(),
                    })
                    .inc();
            }
        }
    }

    /// A panic was caught on a request path: counted, logged, and shown by `/readyz`.
    pub fn panicked(&self, what: &str) {
        self.panics.inc();
        tracing::error!("panic caught, the rule set's default was answered: {what}");
        let mut last = self.last_panic.lock().unwrap_or_else(|p| p.into_inner());
        *last = Some((SystemTime::now(), what.to_string()));
    }

    /// The last caught panic, if it was within [`PANIC_SHOWN_FOR`].
    pub fn recent_panic(&self) -> Option<(SystemTime, String)> {
        let last = self.last_panic.lock().unwrap_or_else(|p| p.into_inner());
        last.clone()
            .filter(|(at, _)| at.elapsed().is_ok_and(|age| age < PANIC_SHOWN_FOR))
    }

    /// A wrong credential of `kind`.
    pub fn auth_failed(&self, kind: &str) {
        self.auth_failures
            .get_or_create(&CredentialLabels {
                kind: kind.to_string(),
            })
            .inc();
    }

    /// A try of `kind` refused unchecked: its address must wait.
    pub fn auth_throttled(&self, kind: &str) {
        self.auth_throttled_tries
            .get_or_create(&CredentialLabels {
                kind: kind.to_string(),
            })
            .inc();
    }

    /// A GET that carried no call data at all: Callvoip sends the call data only with POST, so
    /// the Webhook-app is most likely set to GET. Counted; logged once per rule set per minute.
    pub fn call_without_fields(&self, ruleset: &str) {
        self.calls_without_fields
            .get_or_create(&RulesetLabels {
                ruleset: ruleset.to_string(),
            })
            .inc();
        if self
            .without_fields_said
            .allow(ruleset, std::time::Instant::now())
        {
            tracing::warn!(
                ruleset = %ruleset,
                "call without any fields — is the Webhook-app set to GET? Only POST carries the call data (said once a minute per rule set; counted in belroute_calls_without_fields_total)"
            );
        }
    }

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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KillLabels {
    ruleset: String,
    rule: String,
    /// `deadline` (killed at the call's deadline) or `died` (memory cap, crash).
    cause: String,
}

/// The rule worker processes, read from the engine at each scrape.
#[derive(Debug)]
struct WorkerCollector(Arc<Router>);

impl Collector for WorkerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let status = self.0.pool().status();
        let running = encoder.encode_descriptor(
            "workers_running",
            "Rule worker processes running (idle or busy)",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::try_from(status.running).unwrap_or(i64::MAX)).encode(running)?;
        let busy = encoder.encode_descriptor(
            "workers_busy",
            "Evaluations in the pool now (running or waiting for a worker)",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::try_from(status.busy).unwrap_or(i64::MAX)).encode(busy)?;
        let started = encoder.encode_descriptor(
            "worker_starts",
            "Rule worker processes started (replacements included)",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(status.started).encode(started)?;
        let mut kills = encoder.encode_descriptor(
            "worker_kills",
            "Worker processes the operating system stopped while a rule ran, by rule set, rule and cause",
            None,
            MetricType::Counter,
        )?;
        for kill in &status.kills {
            let labels = KillLabels {
                ruleset: kill.ruleset.clone(),
                rule: kill.rule.clone(),
                cause: kill.cause.to_string(),
            };
            ConstCounter::new(kill.count).encode(kills.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MismatchLabels {
    lookup: String,
    /// `undeclared` or `mistyped`.
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LookupLabels {
    lookup: String,
}

/// Per-plugin counters and breaker state, read from the engine at each scrape.
#[derive(Debug)]
struct LookupCollector(Arc<Router>);

impl Collector for LookupCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let statuses = self.0.lookups().status();
        type Field = fn(&belroute_engine::LookupStatus) -> u64;
        let counters: [(&str, &str, Field); 5] = [
            (
                "lookup_requests",
                "Requests sent to each lookup plugin",
                |s| s.requests,
            ),
            (
                "lookup_failures",
                "Plugin requests that failed or timed out",
                |s| s.failures,
            ),
            (
                "lookup_cache_hits",
                "Lookups answered from the cache",
                |s| s.cache_hits,
            ),
            (
                "lookup_shared",
                "Lookups that joined a request already in flight",
                |s| s.shared,
            ),
            (
                "lookup_skipped",
                "Lookups skipped because the plugin's circuit breaker was open",
                |s| s.skipped,
            ),
        ];
        for (name, help, field) in counters {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for status in &statuses {
                let labels = LookupLabels {
                    lookup: status.name.clone(),
                };
                ConstCounter::new(field(status)).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "lookup_facts_mismatched",
            "Facts a plugin answered that it does not declare (dropped) or of another type than declared (shown as ())",
            None,
            MetricType::Counter,
        )?;
        for status in &statuses {
            for (kind, count) in [
                ("undeclared", status.undeclared_facts),
                ("mistyped", status.mistyped_facts),
            ] {
                let labels = MismatchLabels {
                    lookup: status.name.clone(),
                    kind: kind.to_string(),
                };
                ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "lookup_breaker_open",
            "1 while the plugin's circuit breaker is open or probing",
            None,
            MetricType::Gauge,
        )?;
        for status in &statuses {
            let labels = LookupLabels {
                lookup: status.name.clone(),
            };
            ConstGauge::new(i64::from(status.breaker != "closed"))
                .encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Where `history` lookups were answered (a SQLite call log keeps them in memory).
#[derive(Debug)]
struct HistoryCollector(Arc<crate::storage::recent::RecentCalls>);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HistoryLabels {
    from: &'static str,
}

impl Collector for HistoryCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (memory, database) = self.0.answered();
        let mut family = encoder.encode_descriptor(
            "history_answers",
            "history lookups answered from memory, and by reading the call log (a caller's first, or one memory cannot know)",
            None,
            MetricType::Counter,
        )?;
        for (from, count) in [("memory", memory), ("database", database)] {
            ConstCounter::new(count).encode(family.encode_family(&HistoryLabels { from })?)?;
        }
        Ok(())
    }
}

/// The call log writer's counters, read at each scrape.
#[derive(Debug)]
struct CallLogCollector(Arc<CallLog>);

impl Collector for CallLogCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.0.stats();
        let written = encoder.encode_descriptor(
            "call_log_written",
            "Call records written to the database",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(stats.written).encode(written)?;
        let dropped = encoder.encode_descriptor(
            "call_log_dropped",
            "Call records lost: the queue and the spill file were full, or the spill file could not be written",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(stats.dropped).encode(dropped)?;
        let spilled = encoder.encode_descriptor(
            "call_log_spilled",
            "Call records sent to the spill file: the queue was full, or the database could not take them",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(stats.spilled).encode(spilled)?;
        let set_aside = encoder.encode_descriptor(
            "call_log_set_aside",
            "Call records the database refused for what they hold, kept in a belroute-spill.bad-<time>.jsonl file",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(stats.set_aside).encode(set_aside)?;
        let spill_records = encoder.encode_descriptor(
            "call_log_spill_records",
            "Call records waiting in the spill file",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::try_from(stats.spill_records).unwrap_or(i64::MAX))
            .encode(spill_records)?;
        let replayed = encoder.encode_descriptor(
            "call_log_replayed",
            "Call records replayed from the spill file into the database",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(stats.replayed).encode(replayed)?;
        let spill_bytes = encoder.encode_descriptor(
            "call_log_spill_bytes",
            "Bytes of call records waiting in the spill file",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::try_from(stats.spill_bytes).unwrap_or(i64::MAX))
            .encode(spill_bytes)?;
        let queued = encoder.encode_descriptor(
            "call_log_queued",
            "Call records waiting to be written",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::try_from(stats.queued).unwrap_or(i64::MAX)).encode(queued)?;
        let up = encoder.encode_descriptor(
            "call_log_database_up",
            "1 while the call log database takes writes",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::from(stats.database_up)).encode(up)?;
        Ok(())
    }
}
