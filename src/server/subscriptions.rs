//! `/api/v1/subscriptions/*`: GetNextNewAndClaim and closing claims (the subscriber's API key),
//! and the subscriptions' state (the admin token).

use std::sync::Arc;
use std::time::SystemTime;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::api::{text, unavailable};
use crate::app::Belroute;
use crate::storage::{Closed, DeliveryStatus, epoch_ms};
use crate::subscriptions::Subscription;

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

/// `GET /api/v1/subscriptions` (admin): each subscription's notifier state and deliveries.
pub async fn list(state: web::Data<Belroute>) -> HttpResponse {
    let mut out = Vec::new();
    for subscription in state.subscriptions.all() {
        let deliveries = match state.storage.delivery_counts(&subscription.name).await {
            Ok(counts) => counts
                .into_iter()
                .map(|(status, n)| (status, json!(n)))
                .collect::<serde_json::Map<String, serde_json::Value>>(),
            Err(e) => return unavailable(&e),
        };
        out.push(json!({
            "name": subscription.name,
            "endpoint": subscription.config.endpoint.as_ref().map(|e| e.written()),
            "events": subscription.config.events,
            "notifier": subscription.notifier_state(),
            "deliveries": deliveries,
        }));
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
