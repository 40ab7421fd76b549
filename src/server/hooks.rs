//! `/hooks/{ruleset}`: Callvoip's Webhook-app asks, belroute answers the route as plain text.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use belroute_engine::call::CallDataError;
use belroute_engine::decide::RuleOutcome;
use belroute_engine::{Call, Decision, Reason};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::State;
use super::auth::{self, Denied};
use crate::metrics::{DecisionLabels, RuleLabels, RulesetLabels};
use crate::storage::CallRecord;

/// A request refused before routing: its status, the one-line reason, and its metric label.
#[derive(Debug)]
struct Rejection {
    status: StatusCode,
    reason: String,
    label: &'static str,
}

impl Rejection {
    fn new(status: StatusCode, label: &'static str, reason: impl Into<String>) -> Self {
        Rejection {
            status,
            reason: reason.into(),
            label,
        }
    }

    fn bad(label: &'static str, reason: impl Into<String>) -> Self {
        Rejection::new(StatusCode::BAD_REQUEST, label, reason)
    }

    fn from_call_data(error: CallDataError) -> Self {
        let label = match error {
            CallDataError::NotUtf8(_) => "not_utf8",
            CallDataError::NotJson(_) => "not_json",
            CallDataError::NotAnObject(_) => "not_an_object",
        };
        Rejection::bad(label, error.to_string())
    }
}

pub async fn hook(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> HttpResponse {
    let arrived = Instant::now();
    let received_at = SystemTime::now();
    let name = req
        .match_info()
        .get("ruleset")
        .unwrap_or_default()
        .to_string();
    match answer(&req, payload, &state, &name, (arrived, received_at)).await {
        Ok(response) => response,
        Err(rejection) => {
            state.metrics.reject(rejection.label);
            let peer = req
                .peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            tracing::warn!(ruleset = %name, %peer, status = rejection.status.as_u16(), "hook request refused: {}", rejection.reason);
            let mut response = HttpResponse::build(rejection.status);
            response.insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"));
            // Authentication failures say nothing about why.
            if matches!(
                rejection.status,
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
            ) {
                response.finish()
            } else {
                response.body(format!("{}\n", rejection.reason))
            }
        }
    }
}

async fn answer(
    req: &HttpRequest,
    payload: web::Payload,
    state: &State,
    name: &str,
    (arrived, received_at): (Instant, SystemTime),
) -> Result<HttpResponse, Rejection> {
    let auth = state.config.auth_for(name);
    auth::check(auth, req).map_err(|denied| match denied {
        Denied::Forbidden(why) => Rejection::new(StatusCode::FORBIDDEN, "forbidden", why),
        Denied::Unauthorized(why) => Rejection::new(StatusCode::UNAUTHORIZED, "unauthorized", why),
    })?;

    let catalog = state.store.catalog();
    let Some(set) = catalog.get(name).cloned() else {
        return Err(match catalog.refused.get(name) {
            Some(refusal) => Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
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
                StatusCode::NOT_FOUND,
                "unknown_ruleset",
                format!("no rule set named `{name}` (no file {name}.yaml in the rules directory)"),
            ),
        });
    };
    let deadline = arrived + set.timeout.saturating_sub(state.config.hooks.margin);

    let call = match tokio::time::timeout_at(deadline.into(), read_call(req, payload, state)).await
    {
        Ok(call) => call?,
        // The body did not arrive in time: the rules cannot judge a call they cannot see.
        Err(_) => {
            tracing::warn!(ruleset = %name, "the request body was not complete by the deadline; answering the default");
            let decision = deadline_decision(&set, arrived);
            let response = route_response(&decision);
            record(state, decision, Arc::new(Call::default()), received_at);
            return Ok(response);
        }
    };

    let call = Arc::new(call);
    let routing = state
        .router
        .route(&set, call.clone(), arrived, deadline, chrono::Utc::now());
    let decision = match tokio::time::timeout_at(deadline.into(), routing).await {
        Ok(decision) => decision,
        Err(_) => deadline_decision(&set, arrived),
    };
    let response = route_response(&decision);
    record(state, decision, call, received_at);
    Ok(response)
}

/// The call data: query parameters, under a JSON (or form) body for POST.
async fn read_call(
    req: &HttpRequest,
    payload: web::Payload,
    state: &State,
) -> Result<Call, Rejection> {
    let mut call = Call::from_pairs(auth::url_pairs(req.query_string()));
    if let Some(query) = &state
        .config
        .auth_for(req.match_info().get("ruleset").unwrap_or_default())
        .query
    {
        // The URL's secret is not call data: rules and the call log never see it.
        call.remove(&query.name);
    }
    if req.method() == Method::GET {
        return Ok(call);
    }
    let kind = content_type(req);
    let body = read_body(req, payload, state.config.hooks.max_body.0).await?;
    let mut from_body = match kind.as_str() {
        "" | "application/json" => Call::from_json(&body).map_err(Rejection::from_call_data)?,
        k if k.starts_with("application/") && k.ends_with("+json") => {
            Call::from_json(&body).map_err(Rejection::from_call_data)?
        }
        "application/x-www-form-urlencoded" => {
            let text = std::str::from_utf8(&body)
                .map_err(|e| Rejection::from_call_data(CallDataError::NotUtf8(e.valid_up_to())))?;
            Call::from_pairs(auth::url_pairs(text))
        }
        other => {
            return Err(Rejection::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "content_type",
                format!(
                    "content type `{other}` is not accepted; send application/json (or a form)"
                ),
            ));
        }
    };
    from_body.merge_missing(call);
    Ok(from_body)
}

fn content_type(req: &HttpRequest) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Bytes, Rejection> {
    let too_large = || {
        Rejection::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("body is larger than {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| Rejection::bad("read_error", format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// When routing itself overran (it should not): the default, said plainly.
fn deadline_decision(set: &belroute_engine::RuleSet, arrived: Instant) -> Decision {
    Decision {
        route: set.default_route.clone(),
        rule: None,
        reason: Reason::Deadline,
        ruleset: set.name.clone(),
        version: set.version.clone(),
        caller: belroute_engine::Caller::default(),
        rules: Vec::new(),
        lookups: Vec::new(),
        micros: u64::try_from(arrived.elapsed().as_micros()).unwrap_or(u64::MAX),
    }
}

/// Counts, logs and queues the call record (the answer never waits for the database).
fn record(state: &State, decision: Decision, call: Arc<Call>, received_at: SystemTime) {
    let reason = match decision.reason {
        Reason::Matched => "matched",
        Reason::NoMatch => "no_match",
        Reason::Deadline => "deadline",
    };
    state
        .metrics
        .decisions
        .get_or_create(&DecisionLabels {
            ruleset: decision.ruleset.clone(),
            reason: reason.to_string(),
        })
        .inc();
    state
        .metrics
        .decision_seconds
        .get_or_create(&RulesetLabels {
            ruleset: decision.ruleset.clone(),
        })
        .observe(decision.micros as f64 / 1e6);
    for rule in &decision.rules {
        if matches!(rule.outcome, RuleOutcome::Error { .. }) {
            state
                .metrics
                .rule_errors
                .get_or_create(&RuleLabels {
                    ruleset: decision.ruleset.clone(),
                    rule: rule.name.clone(),
                })
                .inc();
        }
    }
    tracing::info!(
        target: "belroute::call",
        ruleset = %decision.ruleset,
        uuid = call.uuid(),
        route = %decision.route,
        rule = decision.rule.as_deref().unwrap_or("(default)"),
        reason,
        micros = decision.micros,
        "call routed"
    );
    state.call_log.record(CallRecord {
        received_at,
        call,
        decision,
    });
}

fn route_response(decision: &Decision) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    response.insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"));
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    if let Some(rule) = &decision.rule {
        response.insert_header(("x-belroute-rule", header_text(rule)));
    }
    response.insert_header((
        "x-belroute-reason",
        match decision.reason {
            Reason::Matched => "matched",
            Reason::NoMatch => "no_match",
            Reason::Deadline => "deadline",
        },
    ));
    response.insert_header(("x-belroute-version", header_text(&decision.version)));
    response.body(decision.route.clone())
}

/// Header values are ASCII; other characters are percent-encoded.
fn header_text(text: &str) -> HeaderValue {
    let encoded: String = text
        .chars()
        .flat_map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                vec![c.to_string()]
            } else {
                let mut buf = [0u8; 4];
                c.encode_utf8(&mut buf)
                    .bytes()
                    .map(|b| format!("%{b:02X}"))
                    .collect()
            }
        })
        .collect();
    HeaderValue::from_str(&encoded).unwrap_or(HeaderValue::from_static(""))
}
