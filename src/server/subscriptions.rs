//! `/api/v1/subscriptions/*`: GetNextNewAndClaim and closing claims (the subscriber's API key),
//! and the subscriptions' state (the admin token).

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{HttpError, Kind};
use crate::access::Principal;
use crate::app::Belroute;
use crate::read::subscriptions::SubscriptionView;
use crate::storage::{Closed, DeliveryStatus};
use crate::subscriptions::Subscription;
use crate::subscriptions::admin;
use crate::time::{millis, now_ms, rfc3339};

type Answer = Result<HttpResponse, HttpError>;

/// The subscription whose API key the request carries (checked by [`super::auth::api_guard`]).
type Subscriber = web::ReqData<Arc<Subscription>>;

/// `POST /api/v1/subscriptions/{name}/next`: GetNextNewAndClaim. The oldest new event, now
/// claimed (200), or 204 when there is none.
pub async fn next(subscription: Subscriber, state: web::Data<Belroute>) -> Answer {
    let now = now_ms();
    let until = now.saturating_add(millis(subscription.config.visibility_timeout));
    let token = format!("{:032x}", fastrand::u128(..));
    let max = i64::from(subscription.config.max_retries);
    match state
        .storage
        .claim_next(&subscription.name, now, until, max, &token)
        .await?
    {
        Some(event) => Ok(HttpResponse::Ok()
            .insert_header(("cache-control", "no-store"))
            .json(event)),
        None => {
            subscription.drained();
            Ok(HttpResponse::NoContent().finish())
        }
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
) -> Answer {
    let Some(id) = req
        .match_info()
        .get("id")
        .and_then(|id| id.parse::<i64>().ok())
    else {
        return Err(HttpError::not_found("no such event"));
    };
    let success = match body.status.as_str() {
        "success" => true,
        "failed" => false,
        other => {
            return Err(HttpError::bad_request(format!(
                "`status` is success or failed, not `{other}`"
            )));
        }
    };
    let max = i64::from(subscription.config.max_retries);
    match state
        .storage
        .close_claim(&subscription.name, id, &body.claim, success, now_ms(), max)
        .await?
    {
        Closed::Done => Ok(HttpResponse::NoContent().finish()),
        Closed::Unknown => Err(HttpError::not_found(format!(
            "subscription `{}` has no event {id}",
            subscription.name
        ))),
        Closed::NotClaimed => Err(HttpError::new(
            Kind::Conflict,
            "this claim is not current: it expired (and the event was handed out again) or was closed already",
        )),
    }
}

/// `GET /api/v1/subscriptions` (admin): every subscription, from belroute.yaml (`source:
/// file`, read-only) and stored (`source: api`), with its notifier state and deliveries.
pub async fn list(state: web::Data<Belroute>) -> Answer {
    let mut out = Vec::new();
    for subscription in state.subscriptions.all() {
        out.push(SubscriptionView::of(&state.storage, &subscription).await?);
    }
    Ok(HttpResponse::Ok().json(json!({ "subscriptions": out })))
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
    who: web::ReqData<Principal>,
    query: web::Query<RequeueQuery>,
) -> Answer {
    let name = req.match_info().get("name").unwrap_or_default();
    let requeued = admin::requeue(&state.admin(), name, query.event, &who.name).await?;
    Ok(HttpResponse::Ok().json(json!({ "subscription": name, "requeued": requeued })))
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
) -> Answer {
    let name = req.match_info().get("name").unwrap_or_default();
    if state.subscriptions.get(name).is_none() {
        return Err(HttpError::not_found(format!(
            "no subscription named `{name}`"
        )));
    }
    let status = match query.status.as_deref() {
        None => DeliveryStatus::MaxRetriesExceeded,
        Some(written) => written
            .parse::<DeliveryStatus>()
            .map_err(|e| HttpError::bad_request(format!("`status`: {e}")))?,
    };
    let events = state
        .storage
        .events_in_status(name, status, query.limit.unwrap_or(100))
        .await?;
    Ok(
        HttpResponse::Ok()
            .json(json!({ "subscription": name, "status": status, "events": events })),
    )
}

// ---------------------------------------------------------------------------------------------
// Managing subscriptions while running (admin token)

fn not_found(name: &str) -> HttpError {
    HttpError::not_found(format!(
        "no subscription named `{name}`; GET /api/v1/subscriptions lists them"
    ))
}

/// The subscription's view, or why there is none.
async fn shown(state: &Belroute, name: &str) -> Result<SubscriptionView, HttpError> {
    match state.subscriptions.get(name) {
        Some(subscription) => Ok(SubscriptionView::of(&state.storage, &subscription).await?),
        None => Err(HttpError::new(
            Kind::Unavailable,
            format!(
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
pub async fn create(
    state: web::Data<Belroute>,
    who: web::ReqData<Principal>,
    body: web::Json<Value>,
) -> Answer {
    let mut body = object(body.into_inner()).map_err(HttpError::bad_request)?;
    let name = match body.remove("name") {
        Some(Value::String(name)) => name,
        _ => {
            return Err(HttpError::bad_request(
                "`name` is missing: give the subscription a name of letters, digits, - and _ (it is part of the API path)",
            ));
        }
    };
    let created = admin::create(&state.admin(), &name, body, &who.name).await?;
    let mut shown = serde_json::to_value(shown(&state, &name).await?).unwrap_or_default();
    shown["api_key"] = json!(created.key);
    shown["api_key_note"] =
        json!("shown once: give it to the subscriber now; belroute keeps only its hash");
    Ok(HttpResponse::Created().json(shown))
}

/// `GET /api/v1/subscriptions/{name}`.
pub async fn get(req: HttpRequest, state: web::Data<Belroute>) -> Answer {
    let name = req.match_info().get("name").unwrap_or_default();
    if state.subscriptions.get(name).is_none() {
        return Err(not_found(name));
    }
    Ok(HttpResponse::Ok().json(shown(&state, name).await?))
}

/// `PATCH /api/v1/subscriptions/{name}`: a JSON merge patch (RFC 7396) of the settings —
/// what is given replaces, `null` removes (back to the default), `headers` merge by name.
pub async fn patch(
    req: HttpRequest,
    state: web::Data<Belroute>,
    who: web::ReqData<Principal>,
    body: web::Json<Value>,
) -> Answer {
    let name = req.match_info().get("name").unwrap_or_default();
    let body = object(body.into_inner()).map_err(HttpError::bad_request)?;
    admin::update(&state.admin(), name, body, &who.name).await?;
    Ok(HttpResponse::Ok().json(shown(&state, name).await?))
}

/// `DELETE /api/v1/subscriptions/{name}`: the subscription, its deliveries, and the events
/// no other subscription has.
pub async fn delete(
    req: HttpRequest,
    state: web::Data<Belroute>,
    who: web::ReqData<Principal>,
) -> Answer {
    let name = req.match_info().get("name").unwrap_or_default();
    let deliveries = admin::delete(&state.admin(), name, &who.name).await?;
    Ok(HttpResponse::Ok().json(json!({ "deleted": name, "deliveries_deleted": deliveries })))
}

/// `POST /api/v1/subscriptions/{name}/rotate-key` `{"grace": "1h"}` (optional): a new API key,
/// shown once; the old one is still taken for `grace` (0s–7d, default 1h).
pub async fn rotate_key(
    req: HttpRequest,
    state: web::Data<Belroute>,
    who: web::ReqData<Principal>,
    body: web::Bytes,
) -> Answer {
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
                return Err(HttpError::bad_request(
                    "the body must be empty or a JSON object such as {\"grace\": \"1h\"}",
                ));
            }
        };
        let Ok(root) = belroute_engine::yaml::parse(&parsed.to_string()) else {
            return Err(HttpError::bad_request(
                "the body cannot be read as {\"grace\": \"1h\"}",
            ));
        };
        let mut diags =
            belroute_engine::diagnostic::Diagnostics::new(std::path::Path::new("request"));
        let grace = {
            let mut s = Section::read(&root, "", &["grace"], &mut diags);
            s.duration("grace", admin::GRACE_DEFAULT, admin::GRACE)
        };
        let found: Vec<String> = diags.into_vec().into_iter().map(|d| d.message).collect();
        if !found.is_empty() {
            return Err(HttpError::bad_request(found.join("\n")));
        }
        grace
    };
    let rotated = admin::rotate_key(&state.admin(), name, grace, &who.name).await?;
    Ok(HttpResponse::Ok().json(json!({
        "subscription": name,
        "api_key": rotated.key,
        "api_key_note": "shown once: give it to the subscriber now; belroute keeps only its hash",
        "previous_key_valid_until": rotated.previous_valid_until.map(rfc3339),
    })))
}

/// `POST /api/v1/subscriptions/{name}/test`: one notification, as the subscriber would get
/// it (plus `x-belroute-test: true`); the endpoint's status and latency.
pub async fn test(
    req: HttpRequest,
    state: web::Data<Belroute>,
    who: web::ReqData<Principal>,
) -> Answer {
    let name = req.match_info().get("name").unwrap_or_default();
    let tested = admin::send_test(&state.admin(), name, &who.name).await?;
    Ok(HttpResponse::Ok().json(json!({
        "subscription": name,
        "endpoint": tested.endpoint,
        "delivered": tested.outcome.delivered,
        "status": tested.outcome.status,
        "latency_ms": tested.outcome.latency_ms,
        "error": tested.outcome.error,
    })))
}
