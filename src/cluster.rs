//! Several instances on one database: what one tells the others, who runs, who is stopping.
//!
//! A broadcast is a row in `broadcasts`; every instance reads the rows after the last one it
//! read — woken at once by PostgreSQL's `NOTIFY`, and every [`SAFETY_POLL`] anyway (a
//! notification lost while the listening connection reconnects costs a moment, not the
//! message); SQLite, which has no notifications, is read every [`SQLITE_POLL`]. Each instance
//! writes its row in `instances` every [`HEARTBEAT`] with the versions it serves: `/readyz` and
//! the console show them. A single instance runs the same code; it only hears itself.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use belroute_engine::RuleStore;

use crate::storage::Storage;
use crate::storage::cluster::{CHANNEL, InstanceRow};

/// How often an instance says it runs.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// An instance not seen for this long is not listed.
pub const GONE_AFTER: Duration = Duration::from_secs(10);
/// Broadcasts are read this often on PostgreSQL even without a notification.
pub const SAFETY_POLL: Duration = Duration::from_secs(2);
/// …and this often on SQLite.
pub const SQLITE_POLL: Duration = Duration::from_millis(250);
/// Broadcasts are kept this long.
const KEEP_BROADCASTS: i64 = 3_600_000;

/// What a broadcast is about.
pub mod kind {
    /// A rule set was published (`rules.source: database`); the subject is its name.
    pub const RULESET: &str = "ruleset";
    /// Forget a caller's cached lookups; the subject is `plugin` (or `*`), a line break and
    /// the caller's key.
    pub const FORGET: &str = "forget";
}

/// What runs when a broadcast of one kind comes in (from another instance).
pub type Handler = Arc<dyn Fn(String) + Send + Sync>;

/// What runs at every heartbeat with how many other instances were seen.
pub type OthersSeen = Arc<dyn Fn(usize) + Send + Sync>;

/// This instance among the others.
pub struct Cluster {
    /// Unique per process: host, process id and a random part.
    pub id: String,
    host: String,
    started_at: i64,
    storage: Storage,
    draining: AtomicBool,
    handlers: Mutex<BTreeMap<&'static str, Handler>>,
    /// The instances seen lately, as the heartbeat last read them.
    seen: Mutex<Vec<InstanceRow>>,
    /// Told, at every heartbeat, how many other instances were seen.
    others_seen: Mutex<Option<OthersSeen>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("id", &self.id).finish()
    }
}

impl Cluster {
    pub fn new(storage: Storage) -> Arc<Cluster> {
        let host = hostname();
        let mut random = [0u8; 3];
        let _ = getrandom::fill(&mut random);
        let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
        Arc::new(Cluster {
            id: format!("{host}-{}-{suffix}", std::process::id()),
            host,
            started_at: crate::time::now_ms(),
            storage,
            draining: AtomicBool::new(false),
            handlers: Mutex::new(BTreeMap::new()),
            seen: Mutex::new(Vec::new()),
            others_seen: Mutex::new(None),
        })
    }

    /// Runs `watch` at every heartbeat with how many other instances were seen.
    pub fn on_others_seen(&self, watch: OthersSeen) {
        *self.others_seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(watch);
    }

    /// Runs `handler` for every broadcast of `kind` another instance sends.
    pub fn on(&self, kind: &'static str, handler: Handler) {
        self.handlers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(kind, handler);
    }

    /// Tells the other instances; a database that does not answer is logged (each instance
    /// still reads the database's state on its own, at start and on the next broadcast).
    pub async fn broadcast(&self, kind: &str, subject: &str) {
        if let Err(e) = self.storage.broadcast(&self.id, kind, subject).await {
            tracing::warn!(
                "cannot tell the other instances ({kind}: database: {e}); they catch up at their next start or broadcast"
            );
        }
    }

    /// From now on `/healthz` and `/readyz` say `draining` (`503`), so balancers stop sending.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// The instances seen in the last [`GONE_AFTER`] (this one included, once its first
    /// heartbeat is written).
    pub fn instances(&self) -> Vec<InstanceRow> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Starts listening for broadcasts and the heartbeat, on the current runtime.
    pub fn start(self: &Arc<Self>, store: Arc<RuleStore>) {
        let this = self.clone();
        tokio::spawn(async move { this.listen().await });
        let this = self.clone();
        tokio::spawn(async move { this.heartbeat(store).await });
    }

    /// Writes this instance's row, reads everyone's, and purges what is past use.
    async fn heartbeat(self: Arc<Self>, store: Arc<RuleStore>) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut beats: u64 = 0;
        loop {
            tick.tick().await;
            self.beat(&store).await;
            beats += 1;
            if beats % 30 == 1 {
                let now = crate::time::now_ms();
                let idle = crate::server::console::session::IDLE_TIMEOUT.as_millis() as i64;
                let absolute = crate::server::console::session::ABSOLUTE_TIMEOUT.as_millis() as i64;
                if let Err(e) = self
                    .storage
                    .purge_cluster(
                        now - KEEP_BROADCASTS,
                        now - idle,
                        now - absolute,
                        now - 86_400_000,
                    )
                    .await
                {
                    tracing::debug!("cannot purge broadcasts and sessions: {e}");
                }
            }
        }
    }

    /// One heartbeat: this instance's row written, the list read.
    pub async fn beat(&self, store: &RuleStore) {
        let catalog = store.catalog();
        let versions: serde_json::Map<String, serde_json::Value> = catalog
            .rulesets
            .iter()
            .map(|(name, set)| (name.clone(), set.version.clone().into()))
            .collect();
        let now = crate::time::now_ms();
        let row = InstanceRow {
            id: self.id.clone(),
            host: self.host.clone(),
            started_at: self.started_at,
            seen_at: now,
            draining: self.draining(),
            versions: versions.into(),
        };
        let since = now - GONE_AFTER.as_millis() as i64;
        match self.storage.instance_seen(&row).await {
            Ok(()) => match self.storage.instances(since).await {
                Ok(list) => {
                    let others = list.iter().filter(|i| i.id != self.id).count();
                    *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = list;
                    let watch = self
                        .others_seen
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone();
                    if let Some(watch) = watch {
                        watch(others);
                    }
                }
                Err(e) => tracing::debug!("cannot read the instances: {e}"),
            },
            Err(e) => tracing::debug!("cannot write this instance's heartbeat: {e}"),
        }
    }

    /// Reads and handles broadcasts for as long as the process runs.
    async fn listen(self: Arc<Self>) {
        let mut last = loop {
            match self.storage.last_broadcast().await {
                Ok(id) => break id,
                Err(e) => {
                    tracing::debug!("cannot read the broadcasts yet: {e}");
                    tokio::time::sleep(SAFETY_POLL).await;
                }
            }
        };
        let mut listener = None;
        loop {
            self.wait(&mut listener).await;
            match self.storage.broadcasts_after(last).await {
                Ok(list) => {
                    for broadcast in list {
                        last = broadcast.id;
                        if broadcast.instance == self.id {
                            continue;
                        }
                        let handler = self
                            .handlers
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get(broadcast.kind.as_str())
                            .cloned();
                        if let Some(handler) = handler {
                            handler(broadcast.subject);
                        }
                    }
                }
                Err(e) => tracing::debug!("cannot read the broadcasts: {e}"),
            }
        }
    }

    /// Until the next broadcast may be there: a notification or the poll.
    async fn wait(&self, listener: &mut Option<sqlx::postgres::PgListener>) {
        let Storage::Postgres(pool) = &self.storage else {
            tokio::time::sleep(SQLITE_POLL).await;
            return;
        };
        if listener.is_none() {
            match sqlx::postgres::PgListener::connect_with(pool).await {
                Ok(mut l) => match l.listen(CHANNEL).await {
                    Ok(()) => *listener = Some(l),
                    Err(e) => tracing::debug!("cannot LISTEN for broadcasts: {e}"),
                },
                Err(e) => tracing::debug!("cannot connect to LISTEN for broadcasts: {e}"),
            }
        }
        let Some(l) = listener.as_mut() else {
            tokio::time::sleep(SAFETY_POLL).await;
            return;
        };
        match tokio::time::timeout(SAFETY_POLL, l.recv()).await {
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(e)) => {
                tracing::debug!("the LISTEN connection failed ({e}); connecting again");
                *listener = None;
            }
        }
    }
}

/// The host's name, for people reading the instance list.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "belroute".into())
}
