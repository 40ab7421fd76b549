//! Subscriptions, the Koppeltaal way, with belroute as the publisher: every routed call (and
//! agent report) becomes an event; each active subscription with an endpoint is notified with
//! a data-free POST and pulls events with GetNextNewAndClaim. Notifications are coalesced
//! while the subscriber has not drained its events, retried with backoff, and never touch the
//! answer path.
//!
//! This module owns who subscribes to what and the wake-ups; storage owns writing and
//! claiming events, and reaches the subscriptions only through [`EventSink`], which
//! [`Subscriptions`] implements. The dependency goes one way: subscriptions → storage.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::Notify;

use crate::storage::{EventSink, Storage, epoch_ms};

pub use crate::config::{EventKind, Status, SubscriptionConfig};

/// What the notifier knows about a subscription, for the admin API.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NotifierState {
    /// active, off, or error (the endpoint keeps failing; as a FHIR R4 Subscription).
    pub status: String,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    pub notifications_sent: u64,
    #[serde(skip)]
    last_notified: Option<Instant>,
    /// A notification was delivered and the subscriber has not drained its events since.
    #[serde(skip)]
    awaiting_pull: bool,
}

/// One configured subscription at run time.
#[derive(Debug)]
pub struct Subscription {
    pub name: String,
    pub config: SubscriptionConfig,
    wake: Notify,
    state: Mutex<NotifierState>,
}

impl Subscription {
    fn state(&self) -> MutexGuard<'_, NotifierState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn notifier_state(&self) -> NotifierState {
        self.state().clone()
    }

    /// The subscriber found nothing more to claim: the next event notifies again.
    pub fn drained(&self) {
        self.state().awaiting_pull = false;
    }

    fn wants(&self, kind: EventKind) -> bool {
        self.config.status == Status::Active && self.config.events.contains(&kind)
    }
}

/// All subscriptions, by name.
#[derive(Debug, Default)]
pub struct Subscriptions {
    all: BTreeMap<String, Arc<Subscription>>,
}

impl Subscriptions {
    pub fn new(configs: &BTreeMap<String, SubscriptionConfig>) -> Self {
        let all = configs
            .iter()
            .map(|(name, config)| {
                let status = match config.status {
                    Status::Active => "active",
                    Status::Off => "off",
                };
                let state = NotifierState {
                    status: status.into(),
                    ..NotifierState::default()
                };
                let subscription = Subscription {
                    name: name.clone(),
                    config: config.clone(),
                    wake: Notify::new(),
                    state: Mutex::new(state),
                };
                (name.clone(), Arc::new(subscription))
            })
            .collect();
        Subscriptions { all }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Subscription>> {
        self.all.get(name)
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Subscription>> {
        self.all.values()
    }

    /// Starts one notifier task per active subscription with an endpoint.
    pub fn start_notifiers(&self, storage: &Storage) -> anyhow::Result<()> {
        belroute_plugins::install_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("belroute/", env!("CARGO_PKG_VERSION")))
            .build()?;
        for subscription in self.all.values() {
            if subscription.config.status == Status::Active
                && subscription.config.endpoint.is_some()
            {
                tokio::spawn(notify_loop(
                    subscription.clone(),
                    storage.clone(),
                    client.clone(),
                ));
            }
        }
        Ok(())
    }
}

impl EventSink for Subscriptions {
    /// The active subscriptions that want events of `kind`.
    fn subscribers(&self, kind: EventKind) -> Vec<String> {
        self.all
            .values()
            .filter(|s| s.wants(kind))
            .map(|s| s.name.clone())
            .collect()
    }

    /// New events were committed for these subscriptions: their notifiers look now.
    fn wake(&self, names: &[String]) {
        for name in names {
            if let Some(subscription) = self.all.get(name) {
                subscription.wake.notify_one();
            }
        }
    }
}

/// How often a notifier looks for events without being woken (events written by another
/// instance, or before a restart).
const CHECK_EVERY: Duration = Duration::from_secs(30);

async fn notify_loop(subscription: Arc<Subscription>, storage: Storage, client: reqwest::Client) {
    let renotify_after = subscription.config.renotify_after;
    loop {
        let _ = tokio::time::timeout(CHECK_EVERY, subscription.wake.notified()).await;
        {
            let state = subscription.state();
            if state.awaiting_pull
                && state
                    .last_notified
                    .is_some_and(|t| t.elapsed() < renotify_after)
            {
                // Coalesced: the subscriber was told and has not drained its events yet.
                continue;
            }
        }
        match storage
            .has_new_events(&subscription.name, epoch_ms(SystemTime::now()))
            .await
        {
            Ok(true) => deliver(&subscription, &client).await,
            Ok(false) => subscription.drained(),
            Err(e) => {
                tracing::debug!(subscription = %subscription.name, "cannot check for new events: {e}")
            }
        }
    }
}

/// Sends one notification, retrying with exponential backoff and jitter until it is taken.
async fn deliver(subscription: &Subscription, client: &reqwest::Client) {
    let Some(endpoint) = &subscription.config.endpoint else {
        return;
    };
    let mut backoff = subscription.config.retry_initial;
    loop {
        let mut request = client
            .post(endpoint.expose())
            .header("x-belroute-subscription", &subscription.name)
            .header("content-length", "0");
        for (name, value) in &subscription.config.headers {
            request = request.header(name.as_str(), value.expose());
        }
        let failure = match request.send().await {
            Ok(response) if response.status().is_success() => None,
            Ok(response) => Some(format!("HTTP {}", response.status())),
            Err(e) => Some(e.without_url().to_string()),
        };
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
                    state.notifications_sent += 1;
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
