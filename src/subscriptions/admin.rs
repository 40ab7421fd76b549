//! Managing stored (`source: api`) subscriptions while running: the one implementation of
//! create, change, rotate-key and test that both the admin API
//! (`src/server/subscriptions.rs`) and the console's Subscriptions form call. Each function
//! checks, writes, logs (with who did it) and brings this instance's set up to date; the
//! callers only parse their input and render the answer.

use std::time::Duration;

use serde_json::{Map, Value};

use super::Subscriptions;
use super::{Source, TestOutcome, spec};
use crate::storage::{Storage, SubscriptionRow, WriteError};

/// How long the key before a rotation is still taken, by default and at most.
pub const GRACE_DEFAULT: Duration = Duration::from_secs(3_600);
pub const GRACE: belroute_engine::settings::Range<Duration> =
    belroute_engine::settings::Range::new(Duration::ZERO, Duration::from_secs(7 * 86_400));

/// What managing subscriptions needs: the database they are stored in and the running set.
/// (Not the whole application: subscriptions know nothing above them.)
#[derive(Debug, Clone, Copy)]
pub struct Admin<'a> {
    pub storage: &'a Storage,
    pub subscriptions: &'a Subscriptions,
}

/// Adds the change to the audit log; a database that does not answer is logged, the change
/// stands.
async fn audit(app: &Admin<'_>, by: &str, action: &str, name: &str, detail: serde_json::Value) {
    if let Err(e) = app.storage.audit(by, action, name, &detail).await {
        tracing::warn!(subscription = %belroute_engine::text::escape(name), action, "cannot write the audit log entry (database: {e}); the change itself was made");
    }
}

/// Why a change was not made. The admin API answers 400 / 404 / 409 / 503 / 500 for them;
/// each message names the subscription or setting and what to do.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The settings are not valid: belroute.yaml's messages, one per problem (400).
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// No such subscription (404).
    #[error("{0}")]
    NotFound(String),
    /// Read-only, exists already, changed meanwhile, or no endpoint to test (409).
    #[error("{0}")]
    Conflict(String),
    /// Not possible on this instance now (503).
    #[error("{0}")]
    Unavailable(String),
    /// The database did not answer (503).
    #[error("the call log database is unavailable; try again")]
    Database(#[source] sqlx::Error),
    /// The operating system's random source failed (500).
    #[error("cannot make an API key now; try again")]
    NoKey,
}

impl From<sqlx::Error> for AdminError {
    fn from(e: sqlx::Error) -> Self {
        AdminError::Database(e)
    }
}

/// A new subscription: its API key, to be shown once.
#[derive(Debug)]
pub struct Created {
    pub key: String,
}

/// A rotated key: the new one (shown once) and until when the previous one is still taken.
#[derive(Debug)]
pub struct Rotated {
    pub key: String,
    pub previous_valid_until: Option<i64>,
}

/// What a test notification did.
#[derive(Debug)]
pub struct Tested {
    /// The endpoint without its query or user info.
    pub endpoint: Option<String>,
    pub outcome: TestOutcome,
}

fn not_found(name: &str) -> AdminError {
    AdminError::NotFound(format!(
        "no subscription named `{name}`; GET /api/v1/subscriptions lists them"
    ))
}

fn new_key() -> Result<String, AdminError> {
    super::new_key().map_err(|e| {
        tracing::error!("cannot make an API key: the operating system's random source failed: {e}");
        AdminError::NoKey
    })
}

/// Brings this instance's set in line with the database after a change made here, so the
/// change is served at once (other instances follow within seconds).
async fn reload_now(app: &Admin<'_>) {
    if let Err(e) = app.subscriptions.reload().await {
        tracing::warn!(
            "subscriptions changed but cannot be read back yet ({e}); this instance picks the change up within seconds"
        );
    }
}

/// Refuses an endpoint that is this server's own webhook (see
/// [`super::Subscriptions::loops_back`]).
async fn not_back_to_us(
    app: &Admin<'_>,
    name: &str,
    config: &super::SubscriptionConfig,
) -> Result<(), AdminError> {
    let Some(endpoint) = &config.endpoint else {
        return Ok(());
    };
    match app.subscriptions.loops_back(endpoint.expose()).await {
        Some(why) => Err(AdminError::Invalid(vec![format!(
            "`subscriptions.{name}.endpoint` {why}"
        )])),
        None => Ok(()),
    }
}

/// The stored row of `name`, or why it cannot be changed.
async fn stored(app: &Admin<'_>, name: &str) -> Result<SubscriptionRow, AdminError> {
    if app
        .subscriptions
        .get(name)
        .is_some_and(|s| s.source == Source::File)
    {
        return Err(AdminError::Conflict(format!(
            "subscription `{name}` is defined in belroute.yaml and is read-only here: change it in belroute.yaml and restart belroute"
        )));
    }
    match app.storage.stored_subscription(name).await? {
        Some(row) => Ok(row),
        None => Err(not_found(name)),
    }
}

/// Returns `name`'s parked events to new — all, or only `event` — and wakes its notifier; how
/// many. For file and stored subscriptions alike.
pub async fn requeue(
    app: &Admin<'_>,
    name: &str,
    event: Option<i64>,
    by: &str,
) -> Result<u64, AdminError> {
    if app.subscriptions.get(name).is_none() {
        return Err(AdminError::NotFound(format!(
            "no subscription named `{name}`"
        )));
    }
    let requeued = app
        .storage
        .requeue_parked(name, event, crate::time::now_ms())
        .await?;
    tracing::info!(subscription = %belroute_engine::text::escape(name), ?event, requeued, by, "parked events returned to new");
    audit(
        app,
        by,
        "subscription.requeue",
        name,
        serde_json::json!({ "event": event, "requeued": requeued }),
    )
    .await;
    crate::storage::EventSink::wake(app.subscriptions, &[name.to_string()]);
    Ok(requeued)
}

/// Deletes stored subscription `name` with its deliveries and the events no other
/// subscription has; how many deliveries went. One from belroute.yaml is refused.
pub async fn delete(app: &Admin<'_>, name: &str, by: &str) -> Result<u64, AdminError> {
    stored(app, name).await?;
    let deliveries = match app.storage.delete_subscription(name).await {
        Ok(deliveries) => deliveries,
        Err(WriteError::Database(e)) => return Err(AdminError::Database(e)),
        Err(_) => return Err(not_found(name)),
    };
    tracing::info!(subscription = %name, by, deliveries, "subscription deleted with its events");
    audit(
        app,
        by,
        "subscription.delete",
        name,
        serde_json::json!({ "deliveries": deliveries }),
    )
    .await;
    reload_now(app).await;
    Ok(deliveries)
}

/// A new stored subscription `name` with `settings` (belroute.yaml's keys but `api_key`),
/// served at once. `by` says who, for the log.
pub async fn create(
    app: &Admin<'_>,
    name: &str,
    settings: Map<String, Value>,
    by: &str,
) -> Result<Created, AdminError> {
    if app
        .subscriptions
        .get(name)
        .is_some_and(|s| s.source == Source::File)
    {
        return Err(AdminError::Conflict(format!(
            "subscription `{name}` is defined in belroute.yaml already: choose another name"
        )));
    }
    let mut merged = Value::Object(Map::new());
    spec::merge_patch(&mut merged, &Value::Object(settings));
    let settings = match merged {
        Value::Object(settings) => settings,
        _ => Map::new(),
    };
    let config = spec::check(name, &settings).map_err(AdminError::Invalid)?;
    not_back_to_us(app, name, &config).await?;
    let key = new_key()?;
    let now = crate::time::now_ms();
    let mut row = SubscriptionRow {
        name: name.to_string(),
        status: String::new(),
        endpoint: None,
        headers: String::new(),
        events: String::new(),
        visibility_timeout_ms: 0,
        max_retries: 0,
        retry_initial_ms: 0,
        retry_max_ms: 0,
        renotify_after_ms: 0,
        api_key_hash: super::key_hash(&key),
        previous_key_hash: None,
        previous_key_until: None,
        revision: 1,
        created_at: now,
        updated_at: now,
    };
    spec::into_row(&settings, &config, &mut row);
    match app.storage.insert_subscription(&row).await {
        Ok(()) => {}
        Err(WriteError::Exists(_)) => {
            return Err(AdminError::Conflict(format!(
                "subscription `{name}` exists already: change it with PATCH /api/v1/subscriptions/{name}, or choose another name"
            )));
        }
        Err(WriteError::Missing(_)) => return Err(not_found(name)),
        Err(WriteError::Database(e)) => return Err(AdminError::Database(e)),
    }
    let changes = spec::describe_change(&Map::new(), &settings);
    tracing::info!(subscription = %name, by, changes = %changes, "subscription created (API key made; not logged)");
    audit(
        app,
        by,
        "subscription.create",
        name,
        serde_json::json!({ "changes": changes.to_string() }),
    )
    .await;
    reload_now(app).await;
    Ok(Created { key })
}

/// Changes stored subscription `name` by a JSON merge patch (RFC 7396) of its settings:
/// what is given replaces, `null` removes (back to the default), `headers` merge by name.
pub async fn update(
    app: &Admin<'_>,
    name: &str,
    patch: Map<String, Value>,
    by: &str,
) -> Result<(), AdminError> {
    if patch.contains_key("name") {
        return Err(AdminError::Invalid(vec![
            "`name` cannot be changed: create a subscription with the new name and delete this one"
                .into(),
        ]));
    }
    let mut row = stored(app, name).await?;
    let before = spec::from_row(&row);
    let mut merged = Value::Object(before.clone());
    spec::merge_patch(&mut merged, &Value::Object(patch));
    let after = match merged {
        Value::Object(after) => after,
        _ => Map::new(),
    };
    let config = spec::check(name, &after).map_err(AdminError::Invalid)?;
    not_back_to_us(app, name, &config).await?;
    spec::into_row(&after, &config, &mut row);
    row.updated_at = crate::time::now_ms();
    match app.storage.update_subscription(&row).await {
        Ok(true) => {}
        Ok(false) => {
            return Err(AdminError::Conflict(format!(
                "subscription `{name}` was changed or deleted meanwhile: GET it again and repeat the change"
            )));
        }
        Err(WriteError::Database(e)) => return Err(AdminError::Database(e)),
        Err(_) => return Err(not_found(name)),
    }
    let changes = spec::describe_change(&before, &spec::from_row(&row));
    tracing::info!(subscription = %name, by, changes = %changes, "subscription changed");
    audit(
        app,
        by,
        "subscription.update",
        name,
        serde_json::json!({ "changes": changes.to_string() }),
    )
    .await;
    reload_now(app).await;
    Ok(())
}

/// A new API key for stored subscription `name`; the old one is still taken for `grace`
/// (checked by the caller against [`GRACE`]).
pub async fn rotate_key(
    app: &Admin<'_>,
    name: &str,
    grace: Duration,
    by: &str,
) -> Result<Rotated, AdminError> {
    use belroute_engine::settings::format_duration;
    let mut row = stored(app, name).await?;
    let key = new_key()?;
    let now = crate::time::now_ms();
    let until = now.saturating_add(crate::time::millis(grace));
    if grace.is_zero() {
        row.previous_key_hash = None;
        row.previous_key_until = None;
    } else {
        row.previous_key_hash = Some(row.api_key_hash.clone());
        row.previous_key_until = Some(until);
    }
    row.api_key_hash = super::key_hash(&key);
    row.updated_at = now;
    match app.storage.update_subscription(&row).await {
        Ok(true) => {}
        Ok(false) => {
            return Err(AdminError::Conflict(format!(
                "subscription `{name}` was changed or deleted meanwhile: rotate again"
            )));
        }
        Err(WriteError::Database(e)) => return Err(AdminError::Database(e)),
        Err(_) => return Err(not_found(name)),
    }
    tracing::info!(subscription = %name, by, grace = %format_duration(grace), "API key rotated (keys not logged); the previous key is taken until the grace period ends");
    audit(
        app,
        by,
        "subscription.rotate_key",
        name,
        serde_json::json!({ "grace": format_duration(grace).to_string() }),
    )
    .await;
    reload_now(app).await;
    Ok(Rotated {
        key,
        previous_valid_until: (!grace.is_zero()).then_some(until),
    })
}

/// One notification to subscription `name`'s endpoint, as the subscriber would get it (plus
/// `x-belroute-test: true`): the endpoint's status and latency.
pub async fn send_test(app: &Admin<'_>, name: &str, by: &str) -> Result<Tested, AdminError> {
    let Some(subscription) = app.subscriptions.get(name) else {
        return Err(not_found(name));
    };
    let Some(client) = app.subscriptions.client() else {
        return Err(AdminError::Unavailable(
            "notifications are not started yet; try again".into(),
        ));
    };
    let Some(outcome) = super::send_test(&subscription, client).await else {
        return Err(AdminError::Conflict(format!(
            "subscription `{name}` has no endpoint (its subscriber polls): set `endpoint` first"
        )));
    };
    let latency_ms = outcome.latency_ms;
    match (outcome.status, &outcome.error) {
        (Some(status), None) => {
            tracing::info!(subscription = %name, by, status, latency_ms, "test notification delivered")
        }
        (Some(status), Some(error)) => {
            tracing::warn!(subscription = %name, by, status, latency_ms, "test notification refused by the endpoint: {error}")
        }
        (None, error) => {
            tracing::warn!(subscription = %name, by, latency_ms, "test notification not delivered: {}", error.as_deref().unwrap_or("no answer"))
        }
    }
    Ok(Tested {
        endpoint: subscription
            .config
            .endpoint
            .as_ref()
            .map(|e| spec::masked_url(e.written())),
        outcome,
    })
}
