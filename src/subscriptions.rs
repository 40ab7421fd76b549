//! Subscriptions, the Koppeltaal way, with belroute as the publisher: every routed call (and
//! agent report) becomes an event; each active subscription with an endpoint is notified with
//! a data-free POST and pulls events with GetNextNewAndClaim. Notifications are coalesced
//! while the subscriber has not drained its events, retried with backoff, and never touch the
//! answer path.
//!
//! Subscriptions come from belroute.yaml (read-only while running) or from the database
//! (managed through the admin API; see [`spec`]). The set is reloaded from the database every
//! [`RELOAD_EVERY`] and at once after a change made here, so every instance on one database
//! serves the same set within seconds; notifiers start and stop as subscriptions appear,
//! change or go. A subscription that is `off` still has its events recorded (so that resuming
//! it delivers the backlog) but is not notified.
//!
//! This module owns who subscribes to what and the wake-ups; storage owns writing and
//! claiming events, and reaches the subscriptions only through [`EventSink`], which
//! [`Subscriptions`] implements. The dependency goes one way: subscriptions → storage.

pub mod admin;
mod send_error;
pub mod spec;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, Weak};
use std::time::Duration;

use tokio::time::Instant;

use belroute_engine::settings::Secret;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Notify;

use crate::storage::{DeliveryStore, EventSink, Storage, SubscriptionRow};

pub use crate::config::{EventKind, Status, SubscriptionConfig};

/// How often every instance reads the stored subscriptions again.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// The header every notification carries (its value: the subscription's name). `/hooks`
/// refuses a request with it, so a notification that reaches belroute itself is never taken
/// for a call.
pub const NOTIFICATION_HEADER: &str = "x-belroute-subscription";

/// Notifications to one subscription are at least this far apart (retries included): a
/// subscriber never needs more (it pulls every event it is told of), and a subscription that
/// somehow feeds itself cannot spin.
pub const NOTIFY_AT_MOST_EVERY: Duration = Duration::from_millis(500);

/// How long resolving an endpoint's host may take when checking where it points.
const RESOLVE_WITHIN: Duration = Duration::from_secs(2);

/// What the notifier knows about a subscription, for the admin API.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NotifierState {
    /// active, off, or error (the endpoint keeps failing; as a FHIR R4 Subscription).
    pub status: String,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    /// Notifications this instance delivered for the subscription since it started, across
    /// changes to the subscription (a change restarts its notifier, not the count).
    pub notifications_sent: u64,
    #[serde(skip)]
    last_notified: Option<Instant>,
    /// A notification was delivered and the subscriber has not drained its events since.
    #[serde(skip)]
    awaiting_pull: bool,
    /// When the last notification (or retry) was sent, for [`NOTIFY_AT_MOST_EVERY`].
    #[serde(skip)]
    last_sent: Option<Instant>,
}

/// Where a subscription is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// belroute.yaml: read-only while running.
    File,
    /// The database, managed through the admin API.
    Api,
}

/// What a subscriber presents to claim its events.
#[derive(Debug)]
enum Keys {
    /// belroute.yaml's `api_key`.
    File(Secret),
    /// SHA-256 of the current key, and of the previous one until a deadline (ms).
    Hashed {
        current: [u8; 32],
        previous: Option<([u8; 32], i64)>,
    },
}

/// One subscription at run time.
#[derive(Debug)]
pub struct Subscription {
    pub name: String,
    /// For a stored subscription `api_key` is a placeholder: its key is checked by
    /// [`Subscription::accepts`] against the stored hash.
    pub config: SubscriptionConfig,
    pub source: Source,
    /// The stored row's revision (0 for belroute.yaml's).
    pub revision: i64,
    keys: Keys,
    wake: Notify,
    state: Mutex<NotifierState>,
    /// Delivered notifications; shared with the versions before and after a change.
    sent: Arc<AtomicU64>,
    notifier: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Subscription {
    fn new(
        name: &str,
        config: SubscriptionConfig,
        source: Source,
        keys: Keys,
        revision: i64,
    ) -> Self {
        let status = match config.status {
            Status::Active => "active",
            Status::Off => "off",
        };
        Subscription {
            name: name.to_string(),
            config,
            source,
            revision,
            keys,
            wake: Notify::new(),
            state: Mutex::new(NotifierState {
                status: status.into(),
                ..NotifierState::default()
            }),
            sent: Arc::default(),
            notifier: Mutex::new(None),
        }
    }

    fn state(&self) -> MutexGuard<'_, NotifierState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn notifier_state(&self) -> NotifierState {
        let mut state = self.state().clone();
        state.notifications_sent = self.sent.load(Ordering::Relaxed);
        state
    }

    /// This is a changed version of `before`: its deliveries stay counted (the old
    /// notifier's last ones too, until it is stopped).
    fn counting_on_from(mut self, before: &Subscription) -> Self {
        self.sent = before.sent.clone();
        self
    }

    /// The subscriber found nothing more to claim: the next event notifies again.
    pub fn drained(&self) {
        self.state().awaiting_pull = false;
    }

    /// Events of `kind` are recorded for it (also while it is `off`, for the backlog).
    fn wants(&self, kind: EventKind) -> bool {
        self.config.events.contains(&kind)
    }

    /// Whether `given` is this subscription's API key at `now_ms` (the previous key too,
    /// until its grace period ends). Constant time.
    pub fn accepts(&self, given: &str, now_ms: i64) -> bool {
        let given = Sha256::digest(given.as_bytes());
        match &self.keys {
            Keys::File(key) => {
                let expected = Sha256::digest(key.expose().as_bytes());
                given.ct_eq(&expected).into()
            }
            Keys::Hashed { current, previous } => {
                let now = given.ct_eq(current);
                let before = match previous {
                    Some((hash, until)) => {
                        given.ct_eq(hash) & subtle::Choice::from(u8::from(now_ms < *until))
                    }
                    None => subtle::Choice::from(0),
                };
                (now | before).into()
            }
        }
    }

    /// Until when (ms) the key before the last rotation is still taken, if it is.
    pub fn previous_key_until(&self, now_ms: i64) -> Option<i64> {
        match &self.keys {
            Keys::Hashed {
                previous: Some((_, until)),
                ..
            } if *until > now_ms => Some(*until),
            _ => None,
        }
    }

    /// Starts the notifier when the subscription is active and has an endpoint.
    fn start_notifier(self: &Arc<Self>, storage: &Storage, client: &reqwest::Client) {
        if self.config.status == Status::Active && self.config.endpoint.is_some() {
            let task = tokio::spawn(notify_loop(
                self.clone(),
                Arc::new(storage.clone()),
                Arc::new(HttpSender(client.clone())),
            ));
            *self
                .notifier
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(task.abort_handle());
        }
    }

    /// Stops the notifier (the subscription was changed or deleted).
    fn stop(&self) {
        if let Some(task) = self
            .notifier
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
        {
            task.abort();
        }
    }
}

/// SHA-256 of an API key, in hex: how a stored subscription keeps it.
pub fn key_hash(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// A new API key: 256 random bits from the operating system, as 64 hex digits.
pub fn new_key() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A stored row as a running subscription; the problems when it does not read.
fn build(row: &SubscriptionRow) -> Result<Subscription, Vec<String>> {
    let config = spec::check(&row.name, &spec::from_row(row))?;
    let current = parse_hash(&row.api_key_hash).ok_or_else(|| {
        vec![format!(
            "subscription `{}`: the stored API key hash is damaged; rotate the key",
            row.name
        )]
    })?;
    let previous = match (&row.previous_key_hash, row.previous_key_until) {
        (Some(hash), Some(until)) => parse_hash(hash).map(|h| (h, until)),
        _ => None,
    };
    Ok(Subscription::new(
        &row.name,
        config,
        Source::Api,
        Keys::Hashed { current, previous },
        row.revision,
    ))
}

type Set = Arc<BTreeMap<String, Arc<Subscription>>>;

/// All subscriptions, by name: belroute.yaml's and the stored ones.
#[derive(Debug, Default)]
pub struct Subscriptions {
    current: RwLock<Set>,
    /// Where notifiers deliver from, once [`Subscriptions::start`] ran.
    runtime: OnceLock<(Storage, reqwest::Client)>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// Stored subscriptions (name → revision) that did not read, reported once.
    reported: Mutex<HashMap<String, i64>>,
    /// Where this server listens, once it does: no endpoint may point back at its `/hooks`.
    listening: OnceLock<Vec<SocketAddr>>,
}

impl Subscriptions {
    /// belroute.yaml's subscriptions; the stored ones join with [`Subscriptions::start`].
    pub fn new(configs: &BTreeMap<String, SubscriptionConfig>) -> Self {
        let all = configs
            .iter()
            .map(|(name, config)| {
                let keys = Keys::File(config.api_key.clone());
                let subscription = Subscription::new(name, config.clone(), Source::File, keys, 0);
                (name.clone(), Arc::new(subscription))
            })
            .collect();
        Subscriptions {
            current: RwLock::new(Arc::new(all)),
            ..Subscriptions::default()
        }
    }

    fn set(&self) -> Set {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn get(&self, name: &str) -> Option<Arc<Subscription>> {
        self.set().get(name).cloned()
    }

    /// Every subscription, by name.
    pub fn all(&self) -> Vec<Arc<Subscription>> {
        self.set().values().cloned().collect()
    }

    /// Starts belroute.yaml's notifiers, reads the stored subscriptions (a database that is
    /// down is logged, and read again later), and reloads them every [`RELOAD_EVERY`].
    pub async fn start(self: &Arc<Self>, storage: &Storage) -> anyhow::Result<()> {
        belroute_plugins::install_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("belroute/", env!("CARGO_PKG_VERSION")))
            .build()?;
        for subscription in self.set().values() {
            subscription.start_notifier(storage, &client);
        }
        let _ = self.runtime.set((storage.clone(), client));
        // Bounded: a database that is down must not hold up start-up (calls are answered).
        let first = tokio::time::timeout(Duration::from_secs(3), self.reload()).await;
        if let Err(e) = first
            .map_err(|_| "no answer within 3s".to_string())
            .and_then(|done| done.map_err(|e| e.to_string()))
        {
            tracing::warn!(
                "cannot read the stored subscriptions yet ({e}); trying again every {}s",
                RELOAD_EVERY.as_secs()
            );
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RELOAD_EVERY).await;
                let Some(this) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = this.reload().await {
                    tracing::debug!("cannot read the stored subscriptions: {e}");
                }
            }
        });
        Ok(())
    }

    /// Where the server listens: endpoints are checked against it from now on.
    pub fn listening_on(&self, addrs: &[SocketAddr]) {
        let _ = self.listening.set(addrs.to_vec());
    }

    /// Why `endpoint` must be refused, if it is belroute's own webhook: its host resolves to
    /// an address this server listens on (any local address when it listens on all), on the
    /// same port, and its path is under `/hooks/`.
    pub async fn loops_back(&self, endpoint: &str) -> Option<String> {
        let listening = self.listening.get()?;
        points_at(endpoint, listening).await
    }

    /// The HTTP client notifications go out with.
    pub fn client(&self) -> Option<&reqwest::Client> {
        self.runtime.get().map(|(_, client)| client)
    }

    /// Reads the stored subscriptions and brings the running set in line: new ones start,
    /// changed ones (their revision moved) are rebuilt, deleted ones stop. belroute.yaml's
    /// stay; a stored one with the same name is ignored (logged).
    pub async fn reload(&self) -> Result<(), sqlx::Error> {
        let Some((storage, client)) = self.runtime.get() else {
            return Ok(());
        };
        let _one = self.reloading.lock().await;
        let rows = storage.stored_subscriptions().await?;
        let old = self.set();
        let mut next: BTreeMap<String, Arc<Subscription>> = old
            .iter()
            .filter(|(_, s)| s.source == Source::File)
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect();
        for row in &rows {
            let before = old.get(&row.name);
            if let Some(existing) = before {
                if existing.source == Source::File {
                    self.report_once(row, || {
                        tracing::warn!(subscription = %row.name, "a subscription of this name is in belroute.yaml and in the database; belroute.yaml's is served: delete the stored one (DELETE /api/v1/subscriptions/{}) or rename one", row.name);
                    });
                    continue;
                }
                if existing.revision == row.revision {
                    next.insert(row.name.clone(), existing.clone());
                    continue;
                }
            }
            match build(row) {
                Ok(subscription) => {
                    let subscription = Arc::new(match before {
                        Some(before) => subscription.counting_on_from(before),
                        None => subscription,
                    });
                    subscription.start_notifier(storage, client);
                    if before.is_none() {
                        tracing::info!(subscription = %row.name, revision = row.revision, status = %row.status, "stored subscription now served");
                    } else {
                        tracing::info!(subscription = %row.name, revision = row.revision, status = %row.status, "stored subscription changed; now served as changed");
                    }
                    next.insert(row.name.clone(), subscription);
                }
                Err(problems) => {
                    self.report_once(row, || {
                        tracing::error!(subscription = %row.name, revision = row.revision, "stored subscription cannot be served on this instance ({}); fix it with PATCH /api/v1/subscriptions/{}{}", problems.join("; "), row.name, if before.is_some() { " (the previous version keeps serving)" } else { "" });
                    });
                    if let Some(existing) = before {
                        next.insert(row.name.clone(), existing.clone());
                    }
                }
            }
        }
        for (name, subscription) in old.iter() {
            if subscription.source == Source::Api
                && !next.get(name).is_some_and(|s| Arc::ptr_eq(s, subscription))
            {
                subscription.stop();
                if !next.contains_key(name) {
                    tracing::info!(subscription = %name, "stored subscription deleted; no longer served");
                }
            }
        }
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(next);
        Ok(())
    }

    fn report_once(&self, row: &SubscriptionRow, report: impl FnOnce()) {
        let mut reported = self
            .reported
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if reported.get(&row.name) != Some(&row.revision) {
            reported.insert(row.name.clone(), row.revision);
            report();
        }
    }
}

impl EventSink for Subscriptions {
    /// The subscriptions that want events of `kind` (active or off).
    fn subscribers(&self, kind: EventKind) -> Vec<String> {
        self.set()
            .values()
            .filter(|s| s.wants(kind))
            .map(|s| s.name.clone())
            .collect()
    }

    /// New events were committed for these subscriptions: their notifiers look now.
    fn wake(&self, names: &[String]) {
        let set = self.set();
        for name in names {
            if let Some(subscription) = set.get(name) {
                subscription.wake.notify_one();
            }
        }
    }
}

/// Why `endpoint` is belroute's own webhook, if it is one of the servers at `listening`.
pub async fn points_at(endpoint: &str, listening: &[SocketAddr]) -> Option<String> {
    let url = url::Url::parse(endpoint).ok()?;
    let path = percent_encoding::percent_decode_str(url.path()).decode_utf8_lossy();
    if !(path.starts_with("/hooks/") || path == "/hooks") {
        return None;
    }
    let host = url
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = url.port_or_known_default()?;
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            match tokio::time::timeout(RESOLVE_WITHIN, tokio::net::lookup_host((host, port))).await
            {
                Ok(Ok(found)) => found.collect(),
                // Not resolvable now: it cannot be shown to be belroute (the notification
                // header still stops a loop).
                _ => return None,
            }
        }
    };
    let reached = addrs.iter().find(|addr| {
        listening.iter().any(|own| {
            own.port() == addr.port()
                && (own.ip() == addr.ip() || (own.ip().is_unspecified() && is_local(addr.ip())))
        })
    })?;
    Some(format!(
        "points at belroute's own webhook ({} reaches this server at {reached}): each notification would be taken for a call, logged, and make an event of its own; set it to the address of the application that should be told",
        spec::masked_url(endpoint)
    ))
}

/// An address of this machine: loopback, unspecified, or one a socket can be bound to.
fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback()
        || ip.is_unspecified()
        || std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// What the endpoint made of a test notification.
#[derive(Debug, Clone, Serialize)]
pub struct TestOutcome {
    /// The HTTP status, when the endpoint answered.
    pub status: Option<u16>,
    pub delivered: bool,
    pub latency_ms: u64,
    pub error: Option<String>,
}

/// Sends one notification to `subscription`'s endpoint (its headers, plus
/// `x-belroute-test: true`) and reports how the endpoint answered; `None` without an endpoint.
pub async fn send_test(
    subscription: &Subscription,
    client: &reqwest::Client,
) -> Option<TestOutcome> {
    let endpoint = subscription.config.endpoint.as_ref()?;
    let mut request = client
        .post(endpoint.expose())
        .header(NOTIFICATION_HEADER, &subscription.name)
        .header("x-belroute-test", "true")
        .header("content-length", "0");
    for (name, value) in &subscription.config.headers {
        request = request.header(name.as_str(), value.expose());
    }
    let started = std::time::Instant::now();
    let answer = request.send().await;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Some(match answer {
        Ok(response) => TestOutcome {
            status: Some(response.status().as_u16()),
            delivered: response.status().is_success(),
            latency_ms,
            error: (!response.status().is_success()).then(|| format!("HTTP {}", response.status())),
        },
        Err(e) => TestOutcome {
            status: None,
            delivered: false,
            latency_ms,
            error: Some(send_error::describe(&e)),
        },
    })
}

/// How often a notifier looks for events without being woken (events written by another
/// instance, or before a restart).
const CHECK_EVERY: Duration = Duration::from_secs(30);

/// Sends a subscription's notifications: the subscriber's endpoint over HTTP, or a double.
#[async_trait::async_trait]
pub trait Sender: Send + Sync + std::fmt::Debug {
    /// One data-free notification to `subscription`'s endpoint; `Err` says why it was not taken.
    async fn send(&self, subscription: &Subscription) -> Result<(), String>;
}

/// Notifications over HTTP: a POST with the subscription's headers and no body.
#[derive(Debug, Clone)]
pub struct HttpSender(pub reqwest::Client);

#[async_trait::async_trait]
impl Sender for HttpSender {
    async fn send(&self, subscription: &Subscription) -> Result<(), String> {
        let Some(endpoint) = &subscription.config.endpoint else {
            return Ok(());
        };
        let mut request = self
            .0
            .post(endpoint.expose())
            .header(NOTIFICATION_HEADER, &subscription.name)
            .header("content-length", "0");
        for (name, value) in &subscription.config.headers {
            request = request.header(name.as_str(), value.expose());
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!("HTTP {}", response.status())),
            Err(e) => Err(send_error::describe(&e)),
        }
    }
}

/// Tells `subscription`'s endpoint about new events as long as it runs: looks when woken, when
/// `renotify_after` is up after a notification the subscriber has not drained, and every
/// [`CHECK_EVERY`]; notifications are coalesced, spaced and retried ([`deliver`]).
pub(crate) async fn notify_loop(
    subscription: Arc<Subscription>,
    store: Arc<dyn DeliveryStore>,
    sender: Arc<dyn Sender>,
) {
    let renotify_after = subscription.config.renotify_after;
    // Look at once: a subscription that starts (or resumes) may have a backlog.
    let mut wait = Duration::ZERO;
    loop {
        if !wait.is_zero() {
            let _ = tokio::time::timeout(wait, subscription.wake.notified()).await;
        }
        wait = CHECK_EVERY;
        {
            let state = subscription.state();
            let since = state.last_notified.map(|t| t.elapsed());
            if state.awaiting_pull
                && let Some(since) = since.filter(|since| *since < renotify_after)
            {
                // Coalesced: the subscriber was told and has not drained its events yet. Look
                // again when `renotify_after` is up, woken or not: the events that came
                // after its last pull must not wait for the next call.
                wait = (renotify_after - since).min(CHECK_EVERY);
                continue;
            }
        }
        match store
            .has_new_events(&subscription.name, crate::time::now_ms())
            .await
        {
            Ok(true) => deliver(&subscription, sender.as_ref()).await,
            Ok(false) => subscription.drained(),
            Err(e) => {
                tracing::debug!(subscription = %subscription.name, "cannot check for new events: {e}")
            }
        }
    }
}

/// Sends one notification, retrying with exponential backoff and jitter until it is taken.
async fn deliver(subscription: &Subscription, sender: &dyn Sender) {
    if subscription.config.endpoint.is_none() {
        return;
    }
    let mut backoff = subscription.config.retry_initial;
    loop {
        let last_sent = subscription.state().last_sent;
        if let Some(last) = last_sent {
            tokio::time::sleep_until(last + NOTIFY_AT_MOST_EVERY).await;
        }
        subscription.state().last_sent = Some(Instant::now());
        let failure = sender.send(subscription).await.err();
        // The guard must not live across the sleep below.
        {
            let mut state = subscription.state();
            match failure {
                None => {
                    if state.status == "error" {
                        tracing::info!(subscription = %subscription.name, "notifications are delivered again");
                    }
                    state.status = "active".into();
                    state.last_error = None;
                    state.consecutive_failures = 0;
                    subscription.sent.fetch_add(1, Ordering::Relaxed);
                    state.awaiting_pull = true;
                    state.last_notified = Some(Instant::now());
                    return;
                }
                Some(error) => {
                    state.consecutive_failures += 1;
                    state.last_error = Some(error.clone());
                    if state.consecutive_failures >= 3 && state.status != "error" {
                        state.status = "error".into();
                        tracing::error!(subscription = %subscription.name, "notifications keep failing ({error}); the subscription is in error until one is delivered");
                    } else {
                        tracing::warn!(subscription = %subscription.name, "notification failed ({error}); retrying in {}", humantime::format_duration(backoff));
                    }
                }
            }
        }
        // Up to a quarter extra, so many belroute instances do not retry in step.
        let jitter = backoff.mul_f64(fastrand::f64() / 4.0);
        tokio::time::sleep(backoff + jitter).await;
        backoff = (backoff * 2).min(subscription.config.retry_max);
    }
}
