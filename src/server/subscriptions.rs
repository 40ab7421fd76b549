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
use crate::storage::{Closed, DeliveryStatus, WriteError, epoch_ms};
use crate::subscriptions::admin::{self, AdminError};
use crate::subscriptions::{Source, Subscription};

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
    match admin::requeue(&state, name, query.event, BY_ADMIN_TOKEN).await {
        Ok(requeued) => {
            HttpResponse::Ok().json(json!({ "subscription": name, "requeued": requeued }))
        }
        Err(e) => refused(&e),
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

/// The answer for an [`AdminError`]: 400 / 404 / 409 / 503 / 500 with its message.
fn refused(error: &AdminError) -> HttpResponse {
    let status = match error {
        AdminError::Invalid(_) => StatusCode::BAD_REQUEST,
        AdminError::NotFound(_) => StatusCode::NOT_FOUND,
        AdminError::Conflict(_) => StatusCode::CONFLICT,
        AdminError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        AdminError::Database(e) => return unavailable(e),
        AdminError::NoKey => StatusCode::INTERNAL_SERVER_ERROR,
    };
    text(status, &error.to_string())
}

fn problems(list: &[String]) -> HttpResponse {
    text(StatusCode::BAD_REQUEST, &list.join("\n"))
}

fn not_found(name: &str) -> HttpResponse {
    text(
        StatusCode::NOT_FOUND,
        &format!("no subscription named `{name}`; GET /api/v1/subscriptions lists them"),
    )
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
    let created = match admin::create(&state, &name, body, BY_ADMIN_TOKEN).await {
        Ok(created) => created,
        Err(e) => return refused(&e),
    };
    match shown(&state, &name).await {
        Ok(mut shown) => {
            shown["api_key"] = json!(created.key);
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
    if let Err(e) = admin::update(&state, name, body, BY_ADMIN_TOKEN).await {
        return refused(&e);
    }
    match shown(&state, name).await {
        Ok(shown) => HttpResponse::Ok().json(shown),
        Err(response) => response,
    }
}

/// `DELETE /api/v1/subscriptions/{name}`: the subscription, its deliveries, and the events
/// no other subscription has.
pub async fn delete(req: HttpRequest, state: web::Data<Belroute>) -> HttpResponse {
    let name = req.match_info().get("name").unwrap_or_default();
    if let Err(e) = admin::deletable(&state, name).await {
        return refused(&e);
    }
    match state.storage.delete_subscription(name).await {
        Ok(deliveries) => {
            tracing::info!(subscription = %name, by = BY_ADMIN_TOKEN, deliveries, "subscription deleted with its events");
            if let Err(e) = state.subscriptions.reload().await {
                tracing::warn!(
                    "subscriptions changed but cannot be read back yet ({e}); this instance picks the change up within seconds"
                );
            }
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
    use belroute_engine::settings::Section;
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
            s.duration("grace", admin::GRACE_DEFAULT, admin::GRACE)
        };
        let found: Vec<String> = diags.into_vec().into_iter().map(|d| d.message).collect();
        if !found.is_empty() {
            return problems(&found);
        }
        grace
    };
    match admin::rotate_key(&state, name, grace, BY_ADMIN_TOKEN).await {
        Ok(rotated) => HttpResponse::Ok().json(json!({
            "subscription": name,
            "api_key": rotated.key,
            "api_key_note": "shown once: give it to the subscriber now; belroute keeps only its hash",
            "previous_key_valid_until": rotated.previous_valid_until.map_or(Value::Null, ms_rfc3339),
        })),
        Err(e) => refused(&e),
    }
}

/// `POST /api/v1/subscriptions/{name}/test`: one notification, as the subscriber would get
/// it (plus `x-belroute-test: true`); the endpoint's status and latency.
pub async fn test(req: HttpRequest, state: web::Data<Belroute>) -> HttpResponse {
    let name = req.match_info().get("name").unwrap_or_default();
    match admin::send_test(&state, name, BY_ADMIN_TOKEN).await {
        Ok(tested) => HttpResponse::Ok().json(json!({
            "subscription": name,
            "endpoint": tested.endpoint,
            "delivered": tested.outcome.delivered,
            "status": tested.outcome.status,
            "latency_ms": tested.outcome.latency_ms,
            "error": tested.outcome.error,
        })),
        Err(e) => refused(&e),
    }
}
