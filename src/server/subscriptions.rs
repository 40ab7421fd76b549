//! `/api/v1/subscriptions/*`: GetNextNewAndClaim and closing claims (the subscriber's API key),
//! and the subscriptions' state (the admin token).

use std::sync::Arc;
use std::time::SystemTime;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{text, unavailable};
use crate::app::Belroute;
use crate::storage::{Closed, DeliveryStatus, SubscriptionRow, WriteError, epoch_ms};
use crate::subscriptions::{Source, Subscription, spec};

/// The subscription whose API key the request carries (checked by [`super::auth::api_guard`]).
type Subscriber = web::ReqData<Arc<Subscription>>;

/// `POST /api/v1/subscriptions/{name}/next`: GetNextNewAndClaim. The oldest new event, now
/// claimed (200), or 204 when there is none.
pub async fn next(subscription: Subscriber, state: web::Data<Belroute>) -> HttpResponse {
    let now = epoch_ms(SystemTime::now());
    let until = now
        + i64::try_from(subscription.config.visibility_timeout.as_millis()).unwrap_or(i64::MAX / 2);
    let token = format!("{:032x}", fastrand::u128(..));
    let max = i64::from(subscription.config.max_retries);
    match state
        .storage
        .claim_next(&subscription.name, now, until, max, &token)
        .await
    {
        Ok(Some(event)) => HttpResponse::Ok()
            .insert_header(("cache-control", "no-store"))
            .json(event),
        Ok(None) => {
            subscription.drained();
            HttpResponse::NoContent().finish()
        }
        Err(e) => unavailable(&e),
    }
}

#[derive(Debug, Deserialize)]
pub struct CloseBody {
    status: String,
    claim: String,
}

/// `POST /api/v1/subscriptions/{name}/events/{id}` `{"status": "success"|"failed", "claim": "…"}`.
pub async fn close(
    req: HttpRequest,
    subscription: Subscriber,
    state: web::Data<Belroute>,
    body: web::Json<CloseBody>,
) -> HttpResponse {
    let Some(id) = req
        .match_info()
        .get("id")
        .and_then(|id| id.parse::<i64>().ok())
    else {
        return text(StatusCode::NOT_FOUND, "no such event");
    };
    let success = match body.status.as_str() {
        "success" => true,
        "failed" => false,
        other => {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("`status` is success or failed, not `{other}`"),
            );
        }
    };
    let now = epoch_ms(SystemTime::now());
    let max = i64::from(subscription.config.max_retries);
    match state
        .storage
        .close_claim(&subscription.name, id, &body.claim, success, now, max)
        .await
    {
        Ok(Closed::Done) => HttpResponse::NoContent().finish(),
        Ok(Closed::Unknown) => text(
            StatusCode::NOT_FOUND,
            &format!("subscription `{}` has no event {id}", subscription.name),
        ),
        Ok(Closed::NotClaimed) => text(
            StatusCode::CONFLICT,
            "this claim is not current: it expired (and the event was handed out again) or was closed already",
        ),
        Err(e) => unavailable(&e),
    }
}

/// `GET /api/v1/subscriptions` (admin): every subscription, from belroute.yaml (`source:
/// file`, read-only) and stored (`source: api`), with its notifier state and deliveries.
pub async fn list(state: web::Data<Belroute>) -> HttpResponse {
    let mut out = Vec::new();
    for subscription in state.subscriptions.all() {
        match view(&state, &subscription).await {
            Ok(shown) => out.push(shown),
            Err(e) => return unavailable(&e),
        }
    }
    HttpResponse::Ok().json(json!({ "subscriptions": out }))
}

#[derive(Debug, Deserialize)]
pub struct RequeueQuery {
    /// One event; every parked event of the subscription when absent.
    event: Option<i64>,
}

/// `POST /api/v1/subscriptions/{name}/requeue[?event=ID]` (admin): parked events back to new,
/// so a subscriber that was down for long gets them after all.
pub async fn requeue(
    req: HttpRequest,
    state: web::Data<Belroute>,
    query: web::Query<RequeueQuery>,
) -> HttpResponse {
    let name = req.match_info().get("name").unwrap_or_default();
    if state.subscriptions.get(name).is_none() {
        return text(
            StatusCode::NOT_FOUND,
            &format!("no subscription named `{name}`"),
        );
    }
    let now = epoch_ms(SystemTime::now());
    match state.storage.requeue_parked(name, query.event, now).await {
        Ok(requeued) => {
            tracing::info!(subscription = %name, event = ?query.event, requeued, "parked events returned to new");
            crate::storage::EventSink::wake(&*state.subscriptions, &[name.to_string()]);
            HttpResponse::Ok().json(json!({ "subscription": name, "requeued": requeued }))
        }
        Err(e) => unavailable(&e),
    }
}

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    status: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/v1/subscriptions/{name}/events?status=max-retries-exceeded` (admin): events in
/// one delivery state, such as the parked ones.
pub async fn events(
    req: HttpRequest,
    state: web::Data<Belroute>,
    query: web::Query<EventsQuery>,
) -> HttpResponse {
    let name = req.match_info().get("name").unwrap_or_default();
    if state.subscriptions.get(name).is_none() {
        return text(
            StatusCode::NOT_FOUND,
            &format!("no subscription named `{name}`"),
        );
    }
    let status = match query.status.as_deref() {
        None => DeliveryStatus::MaxRetriesExceeded,
        Some(written) => match written.parse::<DeliveryStatus>() {
            Ok(status) => status,
            Err(e) => return text(StatusCode::BAD_REQUEST, &format!("`status`: {e}")),
        },
    };
    match state
        .storage
        .events_in_status(name, status, query.limit.unwrap_or(100))
        .await
    {
        Ok(events) => HttpResponse::Ok()
            .json(json!({ "subscription": name, "status": status, "events": events })),
        Err(e) => unavailable(&e),
    }
}

// ---------------------------------------------------------------------------------------------
// Managing subscriptions while running (admin token)

/// Who changed a subscription, for the log: these endpoints take only the admin token.
const BY_ADMIN_TOKEN: &str = "admin token";

/// How long the key before a rotation is still taken, by default and at most.
const GRACE_DEFAULT: std::time::Duration = std::time::Duration::from_secs(3_600);
const GRACE: belroute_engine::settings::Range<std::time::Duration> =
    belroute_engine::settings::Range::new(
        std::time::Duration::ZERO,
        std::time::Duration::from_secs(7 * 86_400),
    );

fn ms_rfc3339(ms: i64) -> Value {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| json!(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
        .unwrap_or(Value::Null)
}

/// A subscription as the admin API shows it: settings (header values and keys never),
/// where it is defined, its notifier and its deliveries.
async fn view(state: &Belroute, subscription: &Subscription) -> Result<Value, sqlx::Error> {
    use belroute_engine::settings::format_duration;
    let deliveries = state
        .storage
        .delivery_counts(&subscription.name)
        .await?
        .into_iter()
        .map(|(status, n)| (status, json!(n)))
        .collect::<serde_json::Map<String, Value>>();
    let config = &subscription.config;
    let now = epoch_ms(SystemTime::now());
    Ok(json!({
        "name": subscription.name,
        "source": subscription.source,
        "read_only": subscription.source == Source::File,
        "status": config.status,
        "channel": "resthook",
        "endpoint": config.endpoint.as_ref().map(|e| e.written()),
        "payload": "notification-only",
        "header_names": config.headers.keys().collect::<Vec<_>>(),
        "events": config.events,
        "visibility_timeout": format_duration(config.visibility_timeout),
        "max_retries": config.max_retries,
        "retry_initial": format_duration(config.retry_initial),
        "retry_max": format_duration(config.retry_max),
        "renotify_after": format_duration(config.renotify_after),
        "previous_key_valid_until": subscription.previous_key_until(now).map_or(Value::Null, ms_rfc3339),
        "notifier": subscription.notifier_state(),
        "deliveries": deliveries,
    }))
}

fn problems(list: &[String]) -> HttpResponse {
    text(StatusCode::BAD_REQUEST, &list.join("\n"))
}

fn read_only(name: &str) -> HttpResponse {
    text(
        StatusCode::CONFLICT,
        &format!(
            "subscription `{name}` is defined in belroute.yaml and is read-only here: change it in belroute.yaml and restart belroute"
        ),
    )
}

fn not_found(name: &str) -> HttpResponse {
    text(
        StatusCode::NOT_FOUND,
        &format!("no subscription named `{name}`; GET /api/v1/subscriptions lists them"),
    )
}

/// Brings this instance's set in line with the database after a change made here, so the
/// change is served at once (other instances follow within seconds).
async fn reload_now(state: &Belroute) {
    if let Err(e) = state.subscriptions.reload().await {
        tracing::warn!(
            "subscriptions changed but cannot be read back yet ({e}); this instance picks the change up within seconds"
        );
    }
}

/// The subscription's JSON view, or the answer saying why there is none.
async fn shown(state: &Belroute, name: &str) -> Result<Value, HttpResponse> {
    match state.subscriptions.get(name) {
        Some(subscription) => view(state, &subscription)
            .await
            .map_err(|e| unavailable(&e)),
        None => Err(text(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "subscription `{name}` is stored but cannot be served on this instance: see the log, then fix it with PATCH"
            ),
        )),
    }
}

fn object(body: Value) -> Result<serde_json::Map<String, Value>, String> {
    match body {
        Value::Object(map) => Ok(map),
        other => Err(format!(
            "the body must be a JSON object of subscription settings, as docs/api.md shows, not {other}"
        )),
    }
}

/// `POST /api/v1/subscriptions` `{"name": "crm", "endpoint": …, "headers": {…}, …}`: a new
/// stored subscription, served at once; its API key is in the answer, once.
pub async fn create(state: web::Data<Belroute>, body: web::Json<Value>) -> HttpResponse {
    let mut body = match object(body.into_inner()) {
        Ok(body) => body,
        Err(message) => return text(StatusCode::BAD_REQUEST, &message),
    };
    let name = match body.remove("name") {
        Some(Value::String(name)) => name,
        _ => {
            return text(
                StatusCode::BAD_REQUEST,
                "`name` is missing: give the subscription a name of letters, digits, - and _ (it is part of the API path)",
            );
        }
    };
    if state
        .subscriptions
        .get(&name)
        .is_some_and(|s| s.source == crate::subscriptions::Source::File)
    {
        return text(
            StatusCode::CONFLICT,
            &format!(
                "subscription `{name}` is defined in belroute.yaml already: choose another name"
            ),
        );
    }
    let mut spec = Value::Object(serde_json::Map::new());
    spec::merge_patch(&mut spec, &Value::Object(body));
    let spec = match spec {
        Value::Object(spec) => spec,
        _ => serde_json::Map::new(),
    };
    let config = match spec::check(&name, &spec) {
        Ok(config) => config,
        Err(list) => return problems(&list),
    };
    let key = match crate::subscriptions::new_key() {
        Ok(key) => key,
        Err(e) => {
            tracing::error!(
                "cannot make an API key: the operating system's random source failed: {e}"
            );
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot make an API key now; try again",
            );
        }
    };
    let now = epoch_ms(SystemTime::now());
    let mut row = SubscriptionRow {
        name: name.clone(),
        status: String::new(),
        endpoint: None,
        headers: String::new(),
        events: String::new(),
        visibility_timeout_ms: 0,
        max_retries: 0,
        retry_initial_ms: 0,
        retry_max_ms: 0,
        renotify_after_ms: 0,
        api_key_hash: crate::subscriptions::key_hash(&key),
        previous_key_hash: None,
        previous_key_until: None,
        revision: 1,
        created_at: now,
        updated_at: now,
    };
    spec::into_row(&spec, &config, &mut row);
    match state.storage.insert_subscription(&row).await {
        Ok(()) => {}
        Err(WriteError::Exists(_)) => {
            return text(
                StatusCode::CONFLICT,
                &format!(
                    "subscription `{name}` exists already: change it with PATCH /api/v1/subscriptions/{name}, or choose another name"
                ),
            );
        }
        Err(WriteError::Missing(_)) => return not_found(&name),
        Err(WriteError::Database(e)) => return unavailable(&e),
    }
    tracing::info!(subscription = %name, by = BY_ADMIN_TOKEN, changes = %spec::describe_change(&serde_json::Map::new(), &spec), "subscription created (API key made; not logged)");
    reload_now(&state).await;
    match shown(&state, &name).await {
        Ok(mut shown) => {
            shown["api_key"] = json!(key);
            shown["api_key_note"] =
                json!("shown once: give it to the subscriber now; belroute keeps only its hash");
            HttpResponse::Created().json(shown)
        }
        Err(response) => response,
    }
}

/// `GET /api/v1/subscriptions/{name}`.
pub async fn get(req: HttpRequest, state: web::Data<Belroute>) -> HttpResponse {
    let name = req.match_info().get("name").unwrap_or_default();
    if state.subscriptions.get(name).is_none() {
        return not_found(name);
    }
    match shown(&state, name).await {
        Ok(shown) => HttpResponse::Ok().json(shown),
        Err(response) => response,
    }
}

/// The stored row of `name`, or the answer saying why it cannot be changed.
async fn stored(state: &Belroute, name: &str) -> Result<SubscriptionRow, HttpResponse> {
    if state
        .subscriptions
        .get(name)
        .is_some_and(|s| s.source == crate::subscriptions::Source::File)
    {
        return Err(read_only(name));
    }
    match state.storage.stored_subscription(name).await {
        Ok(Some(row)) => Ok(row),
        Ok(None) => Err(not_found(name)),
        Err(e) => Err(unavailable(&e)),
    }
}

/// `PATCH /api/v1/subscriptions/{name}`: a JSON merge patch (RFC 7396) of the settings —
/// what is given replaces, `null` removes (back to the default), `headers` merge by name.
pub async fn patch(
    req: HttpRequest,
    state: web::Data<Belroute>,
    body: web::Json<Value>,
) -> HttpResponse {
    let name = req.match_info().get("name").unwrap_or_default();
    let body = match object(body.into_inner()) {
        Ok(body) => body,
        Err(message) => return text(StatusCode::BAD_REQUEST, &message),
    };
    if body.contains_key("name") {
        return text(
            StatusCode::BAD_REQUEST,
            "`name` cannot be changed: create a subscription with the new name and delete this one",
        );
    }
    let mut row = match stored(&state, name).await {
        Ok(row) => row,
        Err(response) => return response,
    };
    let before = spec::from_row(&row);
    let mut merged = Value::Object(before.clone());
    spec::merge_patch(&mut merged, &Value::Object(body));
    let after = match merged {
        Value::Object(after) => after,
        _ => serde_json::Map::new(),
    };
    let config = match spec::check(name, &after) {
        Ok(config) => config,
        Err(list) => return problems(&list),
    };
    spec::into_row(&after, &config, &mut row);
    row.updated_at = epoch_ms(SystemTime::now());
    match state.storage.update_subscription(&row).await {
        Ok(true) => {}
        Ok(false) => {
            return text(
                StatusCode::CONFLICT,
                &format!(
                    "subscription `{name}` was changed or deleted meanwhile: GET it again and repeat the change"
                ),
            );
        }
        Err(WriteError::Database(e)) => return unavailable(&e),
        Err(_) => return not_found(name),
    }
    tracing::info!(subscription = %name, by = BY_ADMIN_TOKEN, changes = %spec::describe_change(&before, &spec::from_row(&row)), "subscription changed");
    reload_now(&state).await;
    match shown(&state, name).await {
        Ok(shown) => HttpResponse::Ok().json(shown),
        Err(response) => response,
    }
}

/// `DELETE /api/v1/subscriptions/{name}`: the subscription, its deliveries, and the events
/// no other subscription has.
pub async fn delete(req: HttpRequest, state: web::Data<Belroute>) -> HttpResponse {
    let name = req.match_info().get("name").unwrap_or_default();
    if let Err(response) = stored(&state, name).await {
        return response;
    }
    match state.storage.delete_subscription(name).await {
        Ok(deliveries) => {
            tracing::info!(subscription = %name, by = BY_ADMIN_TOKEN, deliveries, "subscription deleted with its events");
            reload_now(&state).await;
            HttpResponse::Ok().json(json!({ "deleted": name, "deliveries_deleted": deliveries }))
        }
        Err(WriteError::Database(e)) => unavailable(&e),
        Err(_) => not_found(name),
    }
}

/// `POST /api/v1/subscriptions/{name}/rotate-key` `{"grace": "1h"}` (optional): a new API key,
/// shown once; the old one is still taken for `grace` (0s–7d, default 1h).
pub async fn rotate_key(
    req: HttpRequest,
    state: web::Data<Belroute>,
    body: web::Bytes,
) -> HttpResponse {
    use belroute_engine::settings::{Section, format_duration};
    let name = req.match_info().get("name").unwrap_or_default();
    let text_body = String::from_utf8_lossy(&body);
    let text_body = if text_body.trim().is_empty() {
        "{}"
    } else {
        text_body.trim()
    };
    let grace = {
        let parsed = match serde_json::from_str::<Value>(text_body) {
            Ok(Value::Object(map)) => Value::Object(map),
            _ => {
                return text(
                    StatusCode::BAD_REQUEST,
                    "the body must be empty or a JSON object such as {\"grace\": \"1h\"}",
                );
            }
        };
        let Ok(root) = belroute_engine::yaml::parse(&parsed.to_string()) else {
            return text(
                StatusCode::BAD_REQUEST,
                "the body cannot be read as {\"grace\": \"1h\"}",
            );
        };
        let mut diags =
            belroute_engine::diagnostic::Diagnostics::new(std::path::Path::new("request"));
        let grace = {
            let mut s = Section::read(&root, "", &["grace"], &mut diags);
            s.duration("grace", GRACE_DEFAULT, GRACE)
        };
        let found: Vec<String> = diags.into_vec().into_iter().map(|d| d.message).collect();
        if !found.is_empty() {
            return problems(&found);
        }
        grace
    };
    let mut row = match stored(&state, name).await {
        Ok(row) => row,
        Err(response) => return response,
    };
    let key = match crate::subscriptions::new_key() {
        Ok(key) => key,
        Err(e) => {
            tracing::error!(
                "cannot make an API key: the operating system's random source failed: {e}"
            );
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot make an API key now; try again",
            );
        }
    };
    let now = epoch_ms(SystemTime::now());
    let until = now + i64::try_from(grace.as_millis()).unwrap_or(i64::MAX / 2);
    if grace.is_zero() {
        row.previous_key_hash = None;
        row.previous_key_until = None;
    } else {
        row.previous_key_hash = Some(row.api_key_hash.clone());
        row.previous_key_until = Some(until);
    }
    row.api_key_hash = crate::subscriptions::key_hash(&key);
    row.updated_at = now;
    match state.storage.update_subscription(&row).await {
        Ok(true) => {}
        Ok(false) => {
            return text(
                StatusCode::CONFLICT,
                &format!("subscription `{name}` was changed or deleted meanwhile: rotate again"),
            );
        }
        Err(WriteError::Database(e)) => return unavailable(&e),
        Err(_) => return not_found(name),
    }
    tracing::info!(subscription = %name, by = BY_ADMIN_TOKEN, grace = %format_duration(grace), "API key rotated (keys not logged); the previous key is taken until the grace period ends");
    reload_now(&state).await;
    HttpResponse::Ok().json(json!({
        "subscription": name,
        "api_key": key,
        "api_key_note": "shown once: give it to the subscriber now; belroute keeps only its hash",
        "previous_key_valid_until": if grace.is_zero() { Value::Null } else { ms_rfc3339(until) },
    }))
}

/// `POST /api/v1/subscriptions/{name}/test`: one notification, as the subscriber would get
/// it (plus `x-belroute-test: true`); the endpoint's status and latency.
pub async fn test(req: HttpRequest, state: web::Data<Belroute>) -> HttpResponse {
    let name = req.match_info().get("name").unwrap_or_default();
    let Some(subscription) = state.subscriptions.get(name) else {
        return not_found(name);
    };
    let Some(client) = state.subscriptions.client() else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "notifications are not started yet; try again",
        );
    };
    let Some(outcome) = crate::subscriptions::send_test(&subscription, client).await else {
        return text(
            StatusCode::CONFLICT,
            &format!(
                "subscription `{name}` has no endpoint (its subscriber polls): set `endpoint` first"
            ),
        );
    };
    tracing::info!(subscription = %name, by = BY_ADMIN_TOKEN, status = ?outcome.status, latency_ms = outcome.latency_ms, error = ?outcome.error, "test notification sent");
    HttpResponse::Ok().json(json!({
        "subscription": name,
        "endpoint": subscription.config.endpoint.as_ref().map(|e| spec::masked_url(e.written())),
        "delivered": outcome.delivered,
        "status": outcome.status,
        "latency_ms": outcome.latency_ms,
        "error": outcome.error,
    }))
}
