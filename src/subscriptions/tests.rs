//! The notifier on a paused clock, with a delivery table and a subscriber's endpoint in
//! memory: retries and their backoff, coalescing, and a claim that outlives its visibility
//! timeout. No database, no HTTP server, no sleep.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::{Keys, NOTIFY_AT_MOST_EVERY, Sender, Source, Subscription, notify_loop};
use crate::storage::memory::MemoryDeliveries;

/// A subscriber's endpoint: answers as told (success once the script runs out), noting when.
#[derive(Debug, Default)]
struct Endpoint {
    script: Mutex<VecDeque<Result<(), String>>>,
    sent: Mutex<Vec<Instant>>,
}

impl Endpoint {
    fn failing(times: usize) -> Arc<Self> {
        let endpoint = Endpoint::default();
        for _ in 0..times {
            endpoint
                .script
                .lock()
                .unwrap()
                .push_back(Err("HTTP 503 Service Unavailable".into()));
        }
        Arc::new(endpoint)
    }

    fn sent(&self) -> Vec<Instant> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Sender for Endpoint {
    async fn send(&self, _subscription: &Subscription) -> Result<(), String> {
        self.sent.lock().unwrap().push(Instant::now());
        self.script.lock().unwrap().pop_front().unwrap_or(Ok(()))
    }
}

fn subscription(settings: serde_json::Value) -> Arc<Subscription> {
    let mut spec = serde_json::json!({
        "endpoint": "http://crm.invalid/notify",
        "events": ["call.routed"],
        "retry_initial": "1s",
        "retry_max": "4s",
        "renotify_after": "30s",
        "visibility_timeout": "60s",
    });
    if let (Some(spec), serde_json::Value::Object(settings)) = (spec.as_object_mut(), settings) {
        spec.extend(settings);
    }
    let config = super::spec::check("crm", spec.as_object().unwrap()).unwrap();
    Arc::new(Subscription::new(
        "crm",
        config,
        Source::Api,
        Keys::Hashed {
            current: [0; 32],
            previous: None,
        },
        1,
    ))
}

/// Starts the notifier of `subscription` on `deliveries` and `endpoint`.
fn notifier(
    subscription: &Arc<Subscription>,
    deliveries: &Arc<MemoryDeliveries>,
    endpoint: &Arc<Endpoint>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(notify_loop(
        subscription.clone(),
        deliveries.clone(),
        endpoint.clone(),
    ))
}

#[tokio::test(start_paused = true)]
async fn a_failing_endpoint_is_retried_with_growing_waits_and_the_subscription_shows_it() {
    let subscription = subscription(serde_json::json!({}));
    let deliveries = Arc::new(MemoryDeliveries::default());
    deliveries.add("crm");
    let endpoint = Endpoint::failing(4);
    let start = Instant::now();
    let task = notifier(&subscription, &deliveries, &endpoint);
    // Sent at 0 s, ~1 s and ~3 s (each wait up to a quarter longer): three failures by 4 s.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let state = subscription.notifier_state();
    assert_eq!(state.status, "error", "in error after 3 failures in a row");
    assert_eq!(state.consecutive_failures, 3);
    assert_eq!(
        state.last_error.as_deref(),
        Some("HTTP 503 Service Unavailable")
    );
    tokio::time::sleep(Duration::from_secs(20)).await;
    let sent = endpoint.sent();
    assert_eq!(sent.len(), 5, "four failures, then delivered: {sent:?}");
    assert_eq!(
        sent[0], start,
        "at once: a subscription that starts may have a backlog"
    );
    // 1 s, 2 s, 4 s, 4 s (retry_max), each with up to a quarter more.
    for (gap, wait) in sent.windows(2).zip([1, 2, 4, 4]) {
        let gap = gap[1] - gap[0];
        let wait = Duration::from_secs(wait);
        assert!(
            gap >= wait && gap <= wait + wait / 4 + Duration::from_millis(1),
            "waited {gap:?} where {wait:?} (+ up to 25 % jitter) was due"
        );
    }
    let state = subscription.notifier_state();
    assert_eq!(state.status, "active", "delivered again");
    assert_eq!(state.consecutive_failures, 0);
    assert_eq!(state.last_error, None);
    assert_eq!(state.notifications_sent, 1);
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn notifications_are_coalesced_until_the_subscriber_drains_or_renotify_after() {
    let subscription = subscription(serde_json::json!({}));
    let deliveries = Arc::new(MemoryDeliveries::default());
    deliveries.add("crm");
    let endpoint = Arc::new(Endpoint::default());
    let start = Instant::now();
    let task = notifier(&subscription, &deliveries, &endpoint);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(endpoint.sent().len(), 1);
    // More events while the subscriber has not pulled: woken, but not told again.
    for _ in 0..5 {
        deliveries.add("crm");
        subscription.wake.notify_one();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(endpoint.sent().len(), 1, "coalesced");
    // It pulls everything, finds nothing more (drained): the next event notifies at once,
    // but never sooner than NOTIFY_AT_MOST_EVERY after the last.
    while let Some(i) = deliveries.claim("crm", Duration::from_secs(60)) {
        deliveries.close(i);
    }
    subscription.drained();
    deliveries.add("crm");
    subscription.wake.notify_one();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let sent = endpoint.sent();
    assert_eq!(sent.len(), 2, "drained, so told of the next event");
    assert!(sent[1] - sent[0] >= NOTIFY_AT_MOST_EVERY);
    // It does not pull this time: told again when renotify_after (30 s) is up, woken or not.
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert_eq!(endpoint.sent().len(), 2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent = endpoint.sent();
    assert_eq!(sent.len(), 3, "renotified");
    let gap = sent[2] - sent[1];
    assert!(
        gap >= Duration::from_secs(30) && gap < Duration::from_secs(31),
        "{gap:?} after"
    );
    assert!(sent[2] - start < Duration::from_secs(40));
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_claim_not_closed_within_its_visibility_timeout_is_told_again() {
    let subscription = subscription(serde_json::json!({
        "visibility_timeout": "5s",
        "renotify_after": "1h",
    }));
    let deliveries = Arc::new(MemoryDeliveries::default());
    deliveries.add("crm");
    let endpoint = Arc::new(Endpoint::default());
    let task = notifier(&subscription, &deliveries, &endpoint);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(endpoint.sent().len(), 1);
    // The subscriber claims the event, then crashes before closing the claim; its pull found
    // nothing more after it (drained).
    let visibility = subscription.config.visibility_timeout;
    assert!(deliveries.claim("crm", visibility).is_some());
    assert!(deliveries.claim("crm", visibility).is_none());
    subscription.drained();
    // While the claim holds there is nothing to tell; once it has expired the event is new
    // again, and the notifier's next look (CHECK_EVERY, 30 s) tells the subscriber.
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert_eq!(endpoint.sent().len(), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(endpoint.sent().len(), 2, "the expired claim is told again");
    assert!(
        deliveries.claim("crm", visibility).is_some(),
        "and can be claimed again"
    );
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn notifications_are_never_closer_than_notify_at_most_every() {
    let subscription = subscription(serde_json::json!({}));
    let deliveries = Arc::new(MemoryDeliveries::default());
    let endpoint = Arc::new(Endpoint::default());
    let task = notifier(&subscription, &deliveries, &endpoint);
    // A call every 20 ms for 3 s; the subscriber drains after every notification.
    let mut seen = 0;
    for _ in 0..150 {
        deliveries.add("crm");
        subscription.wake.notify_one();
        tokio::time::sleep(Duration::from_millis(20)).await;
        if endpoint.sent().len() > seen {
            seen = endpoint.sent().len();
            while let Some(i) = deliveries.claim("crm", Duration::from_secs(60)) {
                deliveries.close(i);
            }
            subscription.drained();
        }
    }
    let sent = endpoint.sent();
    assert!(sent.len() >= 5, "told while calls flow: {}", sent.len());
    assert!(sent.len() <= 7, "{} notifications in 3 s", sent.len());
    for gap in sent.windows(2) {
        assert!(
            gap[1] - gap[0] >= NOTIFY_AT_MOST_EVERY,
            "{:?}",
            gap[1] - gap[0]
        );
    }
    task.abort();
}
