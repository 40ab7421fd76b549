//! One entry of `subscriptions:` in belroute.yaml, read and checked: an application told
//! where calls went (see docs/subscriptions.md).

use std::collections::BTreeMap;
use std::time::Duration;

use belroute_engine::settings::{EnvText, Invalid, Range, Secret, Section, format_duration, value};
use serde::Serialize;

/// The event types a subscription can ask for (defined with the events themselves).
pub use crate::storage::EventKind;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Active,
    Off,
}

impl Status {
    /// As written in belroute.yaml and the API: `active` or `off`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Off => "off",
        }
    }
}

/// The one channel type (FHIR's rest-hook).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Channel {
    #[default]
    Resthook,
}

/// The one payload type: notifications carry no call data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Payload {
    #[default]
    NotificationOnly,
}

/// One entry of `subscriptions:` in belroute.yaml.
#[derive(Debug, Clone)]
pub struct SubscriptionConfig {
    pub status: Status,
    pub channel: Channel,
    /// Where notifications go; without one the subscriber polls.
    pub endpoint: Option<EnvText>,
    pub payload: Payload,
    /// Sent with every notification, e.g. an `identifier` the receiver checks.
    pub headers: BTreeMap<String, Secret>,
    /// What the subscriber presents (`Authorization: Bearer …`) to claim its events.
    pub api_key: Secret,
    pub events: Vec<EventKind>,
    /// A claim not closed within this returns its event to new.
    pub visibility_timeout: Duration,
    /// Times an event is handed out before it is parked as `max-retries-exceeded`.
    pub max_retries: u32,
    /// First wait after a failed notification; doubles up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Notify again when events stay unclaimed this long after a notification.
    pub renotify_after: Duration,
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

impl SubscriptionConfig {
    pub const KEYS: [&'static str; 12] = [
        "status",
        "channel",
        "endpoint",
        "payload",
        "headers",
        "api_key",
        "events",
        "visibility_timeout",
        "max_retries",
        "retry_initial",
        "retry_max",
        "renotify_after",
    ];
    pub const VISIBILITY_TIMEOUT: Range<Duration> = Range::new(secs(1), secs(86_400));
    pub const MAX_RETRIES: Range<u32> = Range::new(1, 1_000);
    pub const RETRY: Range<Duration> = Range::new(Duration::from_millis(10), secs(86_400));
    pub const RETRY_INITIAL: Range<Duration> = Range::new(Duration::from_millis(10), secs(3_600));
    pub const RENOTIFY_AFTER: Range<Duration> = Range::new(secs(1), secs(86_400));

    /// Reads one subscription (the section `subscriptions.<name>`), reporting every problem
    /// at its key; `None` when there was any.
    pub fn read(name: &str, s: &mut Section<'_, '_, '_>) -> Option<Self> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            let position = s.position();
            s.error_at(
                position,
                format!("subscription name `{name}`: use letters, digits, - and _ (it is part of the API path)"),
            );
        }
        let status = s.choice(
            "status",
            Status::Active,
            &[("active", Status::Active), ("off", Status::Off)],
        );
        let channel = s.choice(
            "channel",
            Channel::Resthook,
            &[("resthook", Channel::Resthook)],
        );
        let payload = s.choice(
            "payload",
            Payload::NotificationOnly,
            &[("notification-only", Payload::NotificationOnly)],
        );
        let endpoint = s.get("endpoint", |node| {
            let endpoint = value::env_text(node)?;
            let url = url::Url::parse(endpoint.expose())
                .map_err(|e| Invalid::new(node, format!("is not a URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(Invalid::new(node, "must be http:// or https://"));
            }
            Ok(endpoint)
        });
        let headers = belroute_plugins::http::read_headers(s, "headers");
        let api_key = s.required("api_key", "\"${CRM_API_KEY}\"", value::secret);
        let events = s
            .list("events", |node| {
                value::choice(
                    node,
                    &[
                        (EventKind::CallRouted.as_str(), EventKind::CallRouted),
                        (EventKind::CallAgent.as_str(), EventKind::CallAgent),
                    ],
                )
            })
            .unwrap_or_else(|| vec![EventKind::CallRouted]);
        if events.is_empty() && s.contains("events") {
            s.error("events", "is empty: list call.routed and/or call.agent");
        }
        let visibility_timeout =
            s.duration("visibility_timeout", secs(300), Self::VISIBILITY_TIMEOUT);
        let max_retries = s.count("max_retries", 5, Self::MAX_RETRIES);
        let before = s.errors();
        let retry_initial = s.duration("retry_initial", secs(1), Self::RETRY_INITIAL);
        let retry_max = s.duration("retry_max", secs(300), Self::RETRY);
        if retry_max < retry_initial && s.errors() == before {
            s.error(
                "retry_max",
                format!(
                    "is {}, shorter than `retry_initial` ({}); make it at least {}",
                    format_duration(retry_max),
                    format_duration(retry_initial),
                    format_duration(retry_initial)
                ),
            );
        }
        let renotify_after = s.duration("renotify_after", secs(300), Self::RENOTIFY_AFTER);
        let config = SubscriptionConfig {
            status,
            channel,
            endpoint,
            payload,
            headers,
            api_key: api_key?,
            events,
            visibility_timeout,
            max_retries,
            retry_initial,
            retry_max,
            renotify_after,
        };
        s.is_ok().then_some(config)
    }
}
