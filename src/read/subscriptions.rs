//! Subscriptions as served: one view for the admin API (`/api/v1/subscriptions…`) and the
//! console's Subscriptions page.

use std::collections::BTreeMap;

use belroute_engine::settings::format_duration;
use serde::Serialize;

use crate::storage::{DeliveryStatus, Storage};
use crate::subscriptions::{EventKind, NotifierState, Source, Status, Subscription};
use crate::time::{now_ms, rfc3339};

/// A subscription's settings (header values and keys never), where it is defined, its
/// notifier and its deliveries.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionView {
    pub name: String,
    pub source: Source,
    pub read_only: bool,
    pub status: Status,
    pub channel: &'static str,
    /// As written (`${NAME}` not expanded).
    pub endpoint: Option<String>,
    pub payload: &'static str,
    pub header_names: Vec<String>,
    pub events: Vec<EventKind>,
    pub visibility_timeout: String,
    pub max_retries: u32,
    pub retry_initial: String,
    pub retry_max: String,
    pub renotify_after: String,
    /// RFC 3339, while the key before the last rotation is still taken.
    pub previous_key_valid_until: Option<String>,
    pub notifier: NotifierState,
    /// Deliveries by status (`new`, `claimed`, `success`, `max-retries-exceeded`).
    pub deliveries: BTreeMap<String, i64>,
}

impl SubscriptionView {
    pub async fn of(storage: &Storage, subscription: &Subscription) -> Result<Self, sqlx::Error> {
        let deliveries = storage
            .delivery_counts(&subscription.name)
            .await?
            .into_iter()
            .collect();
        let config = &subscription.config;
        Ok(SubscriptionView {
            name: subscription.name.clone(),
            source: subscription.source,
            read_only: subscription.source == Source::File,
            status: config.status,
            channel: "resthook",
            endpoint: config.endpoint.as_ref().map(|e| e.written().to_string()),
            payload: "notification-only",
            header_names: config.headers.keys().cloned().collect(),
            events: config.events.clone(),
            visibility_timeout: format_duration(config.visibility_timeout),
            max_retries: config.max_retries,
            retry_initial: format_duration(config.retry_initial),
            retry_max: format_duration(config.retry_max),
            renotify_after: format_duration(config.renotify_after),
            previous_key_valid_until: subscription.previous_key_until(now_ms()).map(rfc3339),
            notifier: subscription.notifier_state(),
            deliveries,
        })
    }

    /// Deliveries in `status`.
    pub fn count(&self, status: DeliveryStatus) -> i64 {
        self.deliveries.get(status.as_str()).copied().unwrap_or(0)
    }

    /// Events waiting to be claimed or claimed and not closed.
    pub fn backlog(&self) -> i64 {
        self.count(DeliveryStatus::New) + self.count(DeliveryStatus::Claimed)
    }
}
