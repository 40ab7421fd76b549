//! `/api/v1/*`: the admin API, behind `admin.token` (`Authorization: Bearer …`, checked by
//! [`super::auth::api_guard`] before a handler runs). Handlers parse, ask the read layer
//! ([`crate::read`]) or the part that acts, and answer its view as JSON.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::error::HttpError;
use crate::access::{Permission, Principal};
use crate::app::Belroute;
use crate::read::calls::{caller_filter, detail};
use crate::read::plugins::PluginView;
use crate::read::privacy::Shown;
use crate::read::rulesets::{self, QuarantinedView, RefusedView, Released, RuleSetView};
use crate::storage::{AgentReported, CallFilter, CallKey};

type Answer = Result<HttpResponse, HttpError>;

/// `GET /api/v1/openapi.json`: the OpenAPI description (docs/openapi.json, built in).
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(include_str!("../../docs/openapi.json"))
}

/// `GET /api/v1/rulesets`: what is served, and what was refused and why.
pub async fn rulesets(state: web::Data<Belroute>) -> HttpResponse {
    let catalog = state.store.catalog();
    HttpResponse::Ok().json(json!({
        "generation": catalog.generation,
        "rulesets": RuleSetView::all(&catalog, &state.metrics, &state.replays),
        "refused": RefusedView::all(&catalog),
        "quarantined": QuarantinedView::all(&catalog),
    }))
}

/// `GET /api/v1/rulesets/{name}`: one rule set as served, why a newer file was refused (if
/// it was), and the summary of the replay after its last reload (`last_replay`, `null` until
/// one ran).
pub async fn ruleset(req: HttpRequest, state: web::Data<Belroute>) -> Answer {
    let name = req.match_info().get("name").unwrap_or_default();
    let catalog = state.store.catalog();
    let refused = catalog.refused.get(name);
    let Some(set) = catalog.get(name) else {
        return match refused {
            Some(refusal) => Ok(HttpResponse::Ok().json(json!({
                "name": name,
                "served": false,
                "refused": refusal,
                "last_replay": state.replays.get(name).as_deref(),
            }))),
            None => Err(HttpError::not_found(format!(
                "no rule set `{name}`; GET /api/v1/rulesets lists them (rules/{name}.yaml would serve it)"
            ))),
        };
    };
    let view = RuleSetView::of(set, &state.metrics, &state.replays);
    let mut body = serde_json::to_value(&view).unwrap_or_default();
    let extra = json!({
        "served": true,
        "in_workers": view.in_workers,
        "quarantine": view.quarantine,
        "refused": refused,
        "last_replay": view.last_replay.as_deref(),
    });
    if let (Some(body), serde_json::Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    Ok(HttpResponse::Ok().json(body))
}

/// `POST /api/v1/rulesets/{name}/release`: ends a rule set's quarantine (its calls are decided
/// by its rules again). `{"released": false}` when it was not quarantined.
pub async fn release(
    req: HttpRequest,
    state: web::Data<Belroute>,
    who: web::ReqData<Principal>,
) -> Answer {
    let name = req.match_info().get("name").unwrap_or_default();
    let released = match rulesets::release(&state.store.catalog(), name, &who.name) {
        Released::NoSuchRuleSet => {
            return Err(HttpError::not_found(format!(
                "no rule set `{name}`; GET /api/v1/rulesets lists them"
            )));
        }
        Released::Released => true,
        Released::NotQuarantined => false,
    };
    if released {
        super::changes::audit(&state, &who.name, "ruleset.release", name, json!({})).await;
    }
    Ok(HttpResponse::Ok().json(json!({ "ruleset": name, "released": released })))
}

/// `GET /api/v1/plugins`: each plugin's kind, target, timeout and cache, breaker and counters.
pub async fn plugins(state: web::Data<Belroute>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "plugins": PluginView::all(state.router.lookups(), &state.config.lookups),
    }))
}

#[derive(Debug, Deserialize)]
pub struct Invalidate {
    /// The caller, written any way (`0152026057`, `31152026057`, `+31 15 …`).
    caller: String,
}

/// `POST /api/v1/plugins/{name}/invalidate` `{"caller": "…"}`: forget what the plugin cached
/// for this caller, so a CRM can say "this customer just paid". `{name}` may be `*`.
pub async fn invalidate(
    req: HttpRequest,
    state: web::Data<Belroute>,
    body: web::Json<Invalidate>,
) -> Answer {
    let name = req.match_info().get("name").unwrap_or_default();
    let caller = state.router.normaliser().normalise(&body.caller);
    let plugin = (name != "*").then_some(name);
    if state.forget(plugin, caller.key()).await {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(HttpError::not_found(format!("no plugin named `{name}`")))
    }
}

#[derive(Debug, Deserialize)]
pub struct AgentReportBody {
    /// Who handled the call: an extension or agent id (`1003`).
    agent: String,
}

/// `POST /api/v1/calls/{uuid}/agent` `{"agent": "1003"}`: who handled a call, so the next call
/// from the same number can go to the same colleague.
pub async fn report_agent(
    req: HttpRequest,
    state: web::Data<Belroute>,
    body: web::Json<AgentReportBody>,
) -> Answer {
    let uuid = req.match_info().get("uuid").unwrap_or_default();
    let agent = body.agent.trim();
    if agent.is_empty()
        || agent.chars().count() > 64
        || agent.chars().any(belroute_engine::text::is_unprintable)
    {
        return Err(HttpError::bad_request(
            "`agent` must be 1 to 64 printable characters (no line breaks, zero-width or direction marks)",
        ));
    }
    match state.call_log.report_agent(uuid, agent).await? {
        AgentReported::Recorded => Ok(HttpResponse::NoContent().finish()),
        AgentReported::NoSuchCall => Err(HttpError::not_found(format!(
            "no call with uuid `{uuid}` in the call log"
        ))),
    }
}

#[derive(Debug, Deserialize)]
pub struct CallsQuery {
    caller: Option<String>,
    /// RFC 3339 time, or a duration back from now (`24h`, `7d`).
    since: Option<String>,
    limit: Option<i64>,
}

/// An answer with the callers' numbers masked when the token's role may not see them
/// (a viewer's): the same shape, all but the last digits of every number replaced.
fn shown_to(who: &Principal, value: serde_json::Value) -> HttpResponse {
    let mut value = value;
    if !who.may(Permission::RevealNumbers) {
        Shown::MASKED.json(&mut value);
    }
    HttpResponse::Ok().json(value)
}

/// `GET /api/v1/calls?caller=…&since=…&limit=…`: calls, newest first.
pub async fn calls(
    state: web::Data<Belroute>,
    who: web::ReqData<Principal>,
    query: web::Query<CallsQuery>,
) -> Answer {
    let since_ms = match &query.since {
        None => 0,
        Some(text) => {
            crate::time::since(text, crate::time::now_ms()).map_err(HttpError::bad_request)?
        }
    };
    let filter = CallFilter {
        caller: query
            .caller
            .as_deref()
            .and_then(|c| caller_filter(state.router.normaliser(), c)),
        since_ms,
        limit: query.limit.unwrap_or(50),
        ..CallFilter::default()
    };
    let calls = state.storage.calls(&filter).await?;
    Ok(shown_to(&who, json!({ "calls": calls })))
}

/// `GET /api/v1/calls/{uuid}`: the full decision record of the latest call with this uuid.
pub async fn call(
    req: HttpRequest,
    state: web::Data<Belroute>,
    who: web::ReqData<Principal>,
) -> Answer {
    let uuid = req.match_info().get("uuid").unwrap_or_default();
    match detail(&state.call_log, &state.storage, CallKey::Uuid(uuid)).await? {
        Some(detail) => Ok(shown_to(
            &who,
            serde_json::to_value(&detail).unwrap_or_default(),
        )),
        None => Err(HttpError::not_found(format!(
            "no call with uuid `{uuid}` in the call log"
        ))),
    }
}
