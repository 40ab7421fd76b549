//! Wiring: from a configuration, a rules directory and a database to a ready engine.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use belroute_engine::text::escape;
use belroute_engine::{
    Call, Caller, Deadline, Decision, Lookups, Reason, Router, RuleSet, RuleStore, ScriptEngine,
    StoreContext, WorkerCommand,
};
use belroute_plugins::BuildContext;
use belroute_plugins::history::CallHistory;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::storage::recent::RecentCalls;
use crate::storage::{CallLog, CallRecord, CallStore, Storage};
use crate::subscriptions::Subscriptions;

/// `rules.source: database` at start: the rules directory made the published versions before
/// it is read. A database that does not answer leaves the directory as it is (this instance's
/// last copy), logged; the recorder catches up when it answers.
async fn sync_at_start(storage: &Storage, rules_dir: &Path) {
    let sync = crate::changes::shared::sync_directory(storage, rules_dir);
    match tokio::time::timeout(Duration::from_secs(5), sync).await {
        Ok(Ok(synced)) => tracing::info!(
            written = %synced.written.join(","),
            removed = %synced.removed.join(","),
            published = %synced.published.join(","),
            "rules.source is database: the rules directory holds the published versions"
        ),
        Ok(Err(e)) => tracing::warn!(
            "rules.source is database, but the database did not answer ({e}): serving the rules directory as it is until it does"
        ),
        Err(_) => tracing::warn!(
            "rules.source is database, but the database did not answer within 5s: serving the rules directory as it is until it does"
        ),
    }
}

/// How long past the deadline [`Belroute::decide`] waits for the engine before answering the
/// default itself; the engine returns by the deadline, this only guards against a bug.
const ENGINE_GRACE: Duration = Duration::from_millis(20);

/// Everything a running belroute shares between requests: the HTTP layer serves this value
/// (cloning it clones handles, not state).
#[derive(Debug, Clone)]
pub struct Belroute {
    pub config: Arc<Config>,
    pub store: Arc<RuleStore>,
    pub router: Arc<Router>,
    pub metrics: Arc<Metrics>,
    pub storage: Storage,
    pub call_log: Arc<CallLog>,
    pub subscriptions: Arc<Subscriptions>,
    /// The last replay after each rule set's reload (see [`crate::replay`]).
    pub replays: Arc<crate::replay::LastReplays>,
    /// Drafts checked, tested, compared and published; revisions (see [`crate::changes`]).
    pub changes: Arc<crate::changes::Changes>,
    /// The tokens created at run time, beside `admin.token` (see [`crate::access`]).
    pub tokens: Arc<crate::access::Tokens>,
    /// This instance among the others on the same database (see [`crate::cluster`]).
    pub cluster: Arc<crate::cluster::Cluster>,
}

impl Belroute {
    /// Opens (and migrates) the database, builds the engine and reads the rules directory once.
    /// Rule files that fail are refused (logged, and shown by `/readyz`), not fatal; a database
    /// that cannot be reached is logged and retried: calls are answered meanwhile. Rules not
    /// proven bounded run in worker processes started with `worker` (this binary's `worker`
    /// subcommand: [`WorkerCommand::this_binary`]).
    pub async fn open(
        config: Config,
        rules_dir: &Path,
        database: &str,
        worker: WorkerCommand,
    ) -> anyhow::Result<Self> {
        let inherited = belroute_engine::inherited_descriptors();
        if !inherited.is_empty() {
            let list: Vec<String> = inherited
                .iter()
                .map(|(fd, target)| format!("{fd} ({})", escape(target)))
                .collect();
            tracing::warn!(
                "belroute was started with open descriptors {}: its rule workers inherit them too; start it without them (systemd passes none)",
                list.join(", ")
            );
        }
        let storage = Storage::open(database)?;
        migrate_at_start(&storage).await?;
        // One server writes a SQLite file: `history` can follow its callers in memory.
        let recent = match &storage {
            Storage::Sqlite(_) if config.storage.history_callers > 0 => Some(Arc::new(
                RecentCalls::new(storage.clone(), config.storage.history_callers),
            )),
            _ => None,
        };
        let history: Arc<dyn CallHistory> = match &recent {
            Some(recent) => recent.clone(),
            None => Arc::new(storage.clone()),
        };
        let router = Arc::new(router(&config, history, worker.clone(), true)?);
        let cluster = crate::cluster::Cluster::new(storage.clone());
        let shared_rules = config.rules.source == crate::config::RulesSource::Database;
        if shared_rules {
            sync_at_start(&storage, rules_dir).await;
        }
        let context = StoreContext {
            scripts: router.scripts().clone(),
            lookups: router.lookups().declared(),
            calendars: config.calendars.clone(),
            time_zone: config.timezone.0,
        };
        let store = if config.reload.run_tests {
            let loader = belroute_engine::TestedLoader::new(context.clone(), router.clone());
            RuleStore::with_loader(rules_dir, Arc::new(loader))
        } else {
            RuleStore::open(rules_dir, context.clone())
        }
        .context("cannot serve rules")?;
        let subscriptions = Arc::new(Subscriptions::new(&config.subscriptions));
        subscriptions.start(&storage).await?;
        let call_log = Arc::new(
            CallLog::start(
                match &recent {
                    Some(recent) => recent.clone() as Arc<dyn CallStore>,
                    None => Arc::new(storage.clone()),
                },
                config.storage.writer(database),
                subscriptions.clone() as Arc<dyn crate::storage::EventSink>,
            )
            .context("cannot start the call log")?,
        );
        let mut metrics = Metrics::new(router.clone(), call_log.clone());
        if let Some(recent) = &recent {
            metrics.watch_history(recent.clone());
        }
        let metrics = Arc::new(metrics);
        spawn_retention(storage.clone(), config.storage.retention, recent.clone());
        let store = Arc::new(store);
        let replays = Arc::new(crate::replay::LastReplays::default());
        // One replayer, with its own worker process, for the replay after a reload and the
        // console's compares: neither takes a live call's share of the pool.
        let replayer = Arc::new(crate::replay::Replayer::new(
            router.scripts().clone(),
            router.normaliser().clone(),
            config.hooks.margin,
            &config.sandbox.pool,
            worker,
        ));
        crate::replay::watch_reloads(
            store.clone(),
            storage.clone(),
            replayer.clone(),
            config.reload.replay.clone(),
            replays.clone(),
        );
        let changes = Arc::new(crate::changes::Changes::new(
            store.clone(),
            context,
            router.clone(),
            replayer,
            storage.clone(),
            config.reload.replay.max_calls,
            config.reload.replay.max_time,
            shared_rules.then(|| cluster.clone()),
        ));
        crate::changes::record_revisions(store.clone(), changes.clone());
        {
            let changes = changes.clone();
            cluster.on(
                crate::cluster::kind::RULESET,
                Arc::new(move |name: String| {
                    let changes = changes.clone();
                    if changes.shared() {
                        tokio::spawn(async move { changes.follow(&name).await });
                    }
                }),
            );
            let router = router.clone();
            cluster.on(
                crate::cluster::kind::FORGET,
                Arc::new(move |subject: String| {
                    if let Some((plugin, caller)) = subject.split_once('\n') {
                        router
                            .lookups()
                            .invalidate((plugin != "*").then_some(plugin), caller);
                    }
                }),
            );
        }
        if let Some(recent) = &recent {
            let recent = recent.clone();
            cluster.on_others_seen(Arc::new(move |others| recent.others_seen(others)));
        }
        cluster.start(store.clone());
        let tokens = Arc::new(crate::access::Tokens::default());
        match tokio::time::timeout(Duration::from_secs(3), tokens.refresh(&storage)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(
                "cannot read the tokens from the database ({e}); admin.token works, the others once it answers"
            ),
            Err(_) => tracing::warn!(
                "the database did not answer within 3s for the tokens; admin.token works, the others once it answers"
            ),
        }
        tokens.start(storage.clone());
        Ok(Belroute {
            config: Arc::new(config),
            store,
            router,
            metrics,
            storage,
            call_log,
            subscriptions,
            replays,
            changes,
            tokens,
            cluster,
        })
    }

    /// Forgets what plugin `plugin` (every plugin when `None`) cached for the caller with key
    /// `caller`, here and on every other instance; `false` when there is no such plugin.
    pub async fn forget(&self, plugin: Option<&str>, caller: &str) -> bool {
        if !self.router.lookups().invalidate(plugin, caller) {
            return false;
        }
        let subject = format!("{}\n{caller}", plugin.unwrap_or("*"));
        self.cluster
            .broadcast(crate::cluster::kind::FORGET, &subject)
            .await;
        true
    }

    /// Routes one call of `set`; answers by `deadline` whatever the engine does.
    pub async fn decide(
        &self,
        set: &Arc<RuleSet>,
        call: Arc<Call>,
        deadline: Deadline,
    ) -> Decision {
        let routing = self
            .router
            .route(set, call.clone(), deadline, chrono::Utc::now());
        let guard = Deadline::new(deadline.at, ENGINE_GRACE).at;
        match tokio::time::timeout_at(guard, routing).await {
            Ok(decision) => decision,
            Err(_) => {
                let caller: Arc<Caller> = self.router.normaliser().normalise(call.caller_number());
                Decision::fallback(set, caller, Reason::Deadline, &deadline)
            }
        }
    }

    /// An answered call: counted, logged, and its record queued (the answer never waits for
    /// the database). Every answer of the webhook, default or not, comes through here.
    pub fn answered(&self, decision: Decision, call: Arc<Call>, received_at: SystemTime) {
        self.metrics.observe(&decision);
        if decision.panicked {
            self.metrics.panicked(&format!(
                "deciding a call of rule set `{}` failed",
                decision.ruleset
            ));
        }
        tracing::info!(
            target: "belroute::call",
            ruleset = %decision.ruleset,
            uuid = %escape(call.uuid()),
            route = %decision.route,
            rule = %escape(decision.rule.as_deref().unwrap_or("(default)")),
            reason = decision.reason.as_str(),
            micros = decision.micros,
            "call routed"
        );
        self.call_log.record(CallRecord {
            received_at,
            call,
            decision,
        });
    }

    /// What managing subscriptions needs of the application.
    pub fn admin(&self) -> crate::subscriptions::admin::Admin<'_> {
        crate::subscriptions::admin::Admin {
            storage: &self.storage,
            subscriptions: &self.subscriptions,
        }
    }

    /// Writes every waiting call record (or leaves it in the spill file); call after the
    /// server stopped taking requests.
    pub async fn shutdown(&self) {
        self.router.pool().shutdown().await;
        self.call_log.close(self.config.storage.shutdown_wait).await;
        // A connection stuck in a write the stop gave up on is not waited for long.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.storage.close()).await;
    }
}

/// Migrates now if the database answers; if it does not, the writer migrates when it does.
async fn migrate_at_start(storage: &Storage) -> anyhow::Result<()> {
    match tokio::time::timeout(Duration::from_secs(10), storage.migrate()).await {
        Ok(Ok(())) => {
            tracing::info!("call log database ready ({})", storage.kind());
            Ok(())
        }
        Ok(Err(sqlx::migrate::MigrateError::Execute(e))) if unreachable(&e) => {
            tracing::error!(
                "call log database unreachable at start ({e}); calls are answered and their records wait"
            );
            Ok(())
        }
        Ok(Err(e)) => Err(anyhow::anyhow!("cannot migrate the call log database: {e}")),
        Err(_) => {
            tracing::error!(
                "call log database did not answer within 10s; calls are answered and their records wait"
            );
            Ok(())
        }
    }
}

fn unreachable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolClosed
    )
}

/// Deletes calls older than `retention`, at start and every hour (and then forgets the
/// history kept in memory: a window longer than the retention counted those calls).
fn spawn_retention(storage: Storage, retention: Duration, recent: Option<Arc<RecentCalls>>) {
    tokio::spawn(async move {
        let mut every_hour = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every_hour.tick().await;
            let before = crate::time::now_ms().saturating_sub(crate::time::millis(retention));
            match storage.purge(before).await {
                Ok(0) => {}
                Ok(n) => {
                    if let Some(recent) = &recent {
                        recent.forget();
                    }
                    tracing::info!(
                        "retention: deleted {n} call(s) older than {}",
                        humantime::format_duration(retention)
                    )
                }
                Err(e) => tracing::warn!("retention: cannot delete old calls: {e}"),
            }
            // A revision stays while a retained call can point at it, and the last 100 of
            // each rule set whatever their age.
            match storage.purge_revisions(before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    "retention: deleted {n} rule set revision(s) no retained call points at"
                ),
                Err(e) => tracing::warn!("retention: cannot delete old revisions: {e}"),
            }
        }
    });
}

/// The router `check`, `test`, `simulate` and `replay` use: rules and scripts, no plugins
/// (tests give the facts); rules not proven bounded run in worker processes of this binary,
/// started when first needed.
pub fn offline_router(config: &Config) -> anyhow::Result<Router> {
    Ok(Router::with_workers(
        Arc::new(ScriptEngine::new(&config.sandbox.limits)),
        config.default_region.0.clone(),
        Lookups::default(),
        config.sandbox.pool.clone(),
        WorkerCommand::this_binary().context("cannot find this program to start rule workers")?,
        false,
    ))
}

/// The router for `config`: the sandboxed script engine, caller normalisation, plugins and
/// the worker processes (`eager`: started now, as a server does; else when first needed).
/// `history` is belroute's own call log, for the `history` plugin.
pub fn router(
    config: &Config,
    history: Arc<dyn CallHistory>,
    worker: WorkerCommand,
    eager: bool,
) -> anyhow::Result<Router> {
    let scripts = Arc::new(ScriptEngine::new(&config.sandbox.limits));
    let normaliser = config.default_region.0.clone();
    // The numbering-plan database loads on first use (~1 s in debug builds): not on a live call
    // (a Dutch number alone would take the fast path and leave it unloaded).
    normaliser.parse_by_numbering_plan("31152026057");
    let mut lookups = Lookups::default();
    let context = BuildContext {
        history: Some(history),
        time_zone: Some(config.timezone.0),
    };
    for instance in &config.lookups {
        let plugin = instance
            .config
            .build(&instance.settings, &context)
            .map_err(|e| anyhow::anyhow!("plugin `{}`: {e}", instance.name))?;
        lookups.insert(&instance.name, plugin, instance.settings.clone());
    }
    Ok(Router::with_workers(
        scripts,
        normaliser,
        lookups,
        config.sandbox.pool.clone(),
        worker,
        eager,
    ))
}
