//! `/hooks/{ruleset}`: Callvoip's Webhook-app asks, belroute answers the route as plain text.
//!
//! The handler authenticates, reads the call data by what it is, asks the engine and answers.
//! Whatever happens on the way — unreadable call data, a body that does not arrive, a panic —
//! a known rule set answers its default, in time; only requests no rule set applies to (a wrong
//! secret, an unknown rule set) get a 4xx.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::SystemTime;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use belroute_engine::text::escape;
use belroute_engine::{Call, CallDataError, Deadline, Decision, Reason, RuleSet};
use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, StreamExt};
use tokio::time::Instant;

use super::auth::{self, Denied};
use super::error::{HttpError, Kind};
use super::throttle::{self, Throttle};
use crate::app::Belroute;

/// A request no rule set can answer: the error (its kind gives the status), its metric label.
#[derive(Debug)]
struct Rejection {
    error: HttpError,
    label: &'static str,
    /// Counted, not logged one by one (a burst of guesses logs one warning).
    quiet: bool,
}

impl Rejection {
    fn new(kind: Kind, label: &'static str, reason: impl Into<String>) -> Self {
        Rejection {
            error: HttpError::new(kind, reason),
            label,
            quiet: false,
        }
    }

    /// Too many wrong secrets from this address: the secret was not checked.
    fn throttled(wait: std::time::Duration) -> Self {
        Rejection {
            error: HttpError::throttled(wait, "too many wrong secrets from this address"),
            label: "throttled",
            quiet: true,
        }
    }
}

/// Why a known rule set answers its default without running its rules.
#[derive(Debug)]
enum Unreadable {
    Data(CallDataError),
    TooLarge(usize),
    ReadError(String),
    Late,
}

impl Unreadable {
    fn label(&self) -> &'static str {
        match self {
            Unreadable::Data(e) => e.label(),
            Unreadable::TooLarge(_) => "too_large",
            Unreadable::ReadError(_) => "read_error",
            Unreadable::Late => "body_late",
        }
    }

    fn describe(&self) -> String {
        match self {
            Unreadable::Data(e) => e.to_string(),
            Unreadable::TooLarge(limit) => format!("body is larger than {limit} bytes"),
            Unreadable::ReadError(e) => format!("could not read the body: {e}"),
            Unreadable::Late => "the request body was not complete by the deadline".into(),
        }
    }
}

pub async fn hook(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<Belroute>,
    throttle: web::Data<Throttle>,
) -> HttpResponse {
    let arrived = Instant::now();
    let received_at = SystemTime::now();
    let name = req.match_info().get("ruleset").unwrap_or_default();
    if let Some(refusal) = notification(&req, &state, name) {
        return refusal;
    }
    let answered = AssertUnwindSafe(answer(
        &req,
        payload,
        &state,
        &throttle,
        name,
        arrived,
        received_at,
    ))
    .catch_unwind()
    .await;
    match answered {
        Ok(Ok(response)) => response,
        Ok(Err(rejection)) => refuse(&req, &state, name, rejection),
        Err(panic) => {
            let what = belroute_engine::panic_message(panic.as_ref());
            state
                .metrics
                .panicked(&format!("webhook for rule set `{}`: {what}", escape(name)));
            match state.store.catalog().get(name) {
                Some(set) => {
                    let deadline = set.deadline(arrived, state.config.hooks.margin);
                    let decision =
                        Decision::fallback(set, Arc::default(), Reason::Failed, &deadline);
                    let response = route_response(&decision);
                    state.answered(decision, Arc::default(), received_at);
                    response
                }
                None => HttpResponse::InternalServerError().finish(),
            }
        }
    }
}

/// A subscription's notification that reached belroute itself (its endpoint leads here, by a
/// proxy or a name the check at its creation could not see through): refused, `508 Loop
/// Detected`, and no call recorded, so it cannot feed itself.
fn notification(req: &HttpRequest, state: &Belroute, name: &str) -> Option<HttpResponse> {
    let subscription = req
        .headers()
        .get(crate::subscriptions::NOTIFICATION_HEADER)?;
    let subscription = String::from_utf8_lossy(subscription.as_bytes()).into_owned();
    let subscription = escape(&subscription).to_string();
    state.metrics.reject("loop");
    tracing::warn!(ruleset = %escape(name), %subscription, "hook request refused: it is belroute's own notification for subscription `{subscription}`, whose endpoint leads back to /hooks; set that endpoint to the application that should be told");
    Some(
        HttpError::new(
            Kind::LoopDetected,
            format!(
                "this is a belroute notification (subscription `{subscription}`), not a call: /hooks does not take notifications; point the subscription's endpoint at the application that should be told"
            ),
        )
        .error_response(),
    )
}

fn refuse(req: &HttpRequest, state: &Belroute, name: &str, rejection: Rejection) -> HttpResponse {
    state.metrics.reject(rejection.label);
    let peer = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let status = rejection.error.status().as_u16();
    let reason = &rejection.error.message;
    if rejection.quiet {
        tracing::debug!(ruleset = %escape(name), %peer, status, "hook request refused: {reason}");
    } else {
        tracing::warn!(ruleset = %escape(name), %peer, status, "hook request refused: {reason}");
    }
    // Authentication failures say nothing about why (the error's kind sees to it).
    rejection.error.error_response()
}

async fn answer(
    req: &HttpRequest,
    payload: web::Payload,
    state: &Belroute,
    throttle: &Throttle,
    name: &str,
    arrived: Instant,
    received_at: SystemTime,
) -> Result<HttpResponse, Rejection> {
    let auth = state.config.auth_for(name);
    // A presented secret is a try: an address with too many wrong ones waits.
    let ticket = if auth::presents_secret(auth, req) {
        let client = throttle.client(req, &auth.trusted_proxies);
        Some(
            throttle
                .check(throttle::Kind::HookSecret, client)
                .map_err(Rejection::throttled)?,
        )
    } else {
        None
    };
    match auth::check(auth, req) {
        Ok(()) => {
            if let Some(ticket) = ticket {
                ticket.succeeded();
            }
        }
        Err(Denied::Forbidden(why)) => {
            return Err(Rejection::new(Kind::Forbidden, "forbidden", why));
        }
        Err(Denied::Unauthorized(why)) => {
            return Err(Rejection::new(Kind::Unauthorized, "unauthorized", why));
        }
        Err(Denied::WrongSecret(why)) => {
            let free = ticket.is_none_or(throttle::Ticket::failed);
            return Err(Rejection {
                quiet: !free,
                ..Rejection::new(Kind::Unauthorized, "unauthorized", why)
            });
        }
    }
    let set = ruleset(state, name)?;
    let deadline = set.deadline(arrived, state.config.hooks.margin);
    let hidden = auth.query.as_ref().map(|q| q.name.as_str());

    let call = match read_call(req, payload, state, &deadline, hidden).await {
        Ok(call) => Arc::new(call),
        Err(unreadable) => {
            state.metrics.reject(unreadable.label());
            tracing::warn!(ruleset = %set.name, "answering the default: {}", escape(&unreadable.describe()));
            let decision = Decision::fallback(&set, Arc::default(), Reason::Unreadable, &deadline);
            let response = route_response(&decision);
            state.answered(decision, Arc::default(), received_at);
            return Ok(response);
        }
    };

    if req.method() == actix_web::http::Method::GET && call.sent_fields().is_empty() {
        state.metrics.call_without_fields(&set.name);
    }
    let decision = state.decide(&set, call.clone(), deadline).await;
    let response = route_response(&decision);
    state.answered(decision, call, received_at);
    Ok(response)
}

/// The rule set named in the path, as served now.
fn ruleset(state: &Belroute, name: &str) -> Result<Arc<RuleSet>, Rejection> {
    let catalog = state.store.catalog();
    if let Some(set) = catalog.get(name) {
        return Ok(set.clone());
    }
    let refused = catalog.refused.get(name);
    // Bounded work for a name from the URL: only a name a rule file could have is compared.
    let close = (name.len() <= 64 && belroute_engine::valid_name(name))
        .then(|| belroute_engine::suggestion(name, catalog.rulesets.keys().map(String::as_str)))
        .flatten();
    let name = escape(name);
    Err(match refused {
        Some(refusal) => Rejection::new(
            Kind::Unavailable,
            "refused_ruleset",
            format!(
                "rule set `{name}` failed validation and has no earlier version to serve: {}",
                refusal
                    .diagnostics
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            ),
        ),
        None => Rejection::new(
            Kind::NotFound,
            "unknown_ruleset",
            match close {
                Some(close) => format!(
                    "no rule set named `{name}` (no file {name}.yaml in the rules directory); did you mean {close}?"
                ),
                None => format!(
                    "no rule set named `{name}` (no file {name}.yaml in the rules directory)"
                ),
            },
        ),
    })
}

/// The call data: query parameters, under the body for a POST; the body must arrive in time.
async fn read_call(
    req: &HttpRequest,
    payload: web::Payload,
    state: &Belroute,
    deadline: &Deadline,
    hidden: Option<&str>,
) -> Result<Call, Unreadable> {
    let body = if req.method() == actix_web::http::Method::GET {
        None
    } else {
        let limit = state.config.hooks.max_body.0;
        match tokio::time::timeout_at(deadline.at, read_body(req, payload, limit)).await {
            Ok(body) => Some(body?),
            Err(_) => return Err(Unreadable::Late),
        }
    };
    Call::from_request(req.query_string(), body.as_deref(), hidden).map_err(Unreadable::Data)
}

async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Bytes, Unreadable> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(Unreadable::TooLarge(limit));
    }
    let capacity = declared
        .and_then(|len| usize::try_from(len).ok())
        .unwrap_or(1024)
        .min(limit);
    let mut body = BytesMut::with_capacity(capacity);
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| Unreadable::ReadError(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(Unreadable::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn route_response(decision: &Decision) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    response.insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"));
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    if let Some(rule) = &decision.rule {
        response.insert_header(("x-belroute-rule", header_text(rule)));
    }
    response.insert_header(("x-belroute-reason", decision.reason.as_str()));
    response.insert_header(("x-belroute-version", header_text(&decision.version)));
    response.body(decision.route.clone())
}

/// Header values are ASCII; other characters are percent-encoded.
fn header_text(text: &str) -> HeaderValue {
    let mut encoded = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            encoded.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                encoded.push_str(&format!("%{b:02X}"));
            }
        }
    }
    HeaderValue::from_str(&encoded).unwrap_or(HeaderValue::from_static(""))
}
