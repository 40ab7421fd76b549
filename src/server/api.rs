//! `/api/v1/*`: the admin API, behind `admin.token` (`Authorization: Bearer …`, checked by
//! [`super::auth::api_guard`] before a handler runs).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::app::Belroute;

/// `GET /api/v1/openapi.json`: the OpenAPI description (docs/openapi.json, built in).
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(include_str!("../../docs/openapi.json"))
}

/// `GET /api/v1/rulesets`: what is served, and what was refused and why.
pub async fn rulesets(state: web::Data<Belroute>) -> HttpResponse {
    let catalog = state.store.catalog();
    let served: Vec<_> = catalog
        .rulesets
        .values()
        .map(|set| {
            json!({
                "name": set.name,
                "file": set.file,
                "version": set.version,
                "description": set.description,
                "timeout_ms": set.timeout.as_millis() as u64,
                "default": set.default_route,
                "lookups": set.lookups,
                "rules": set.rules.iter().map(|r| &r.name).collect::<Vec<_>>(),
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({
        "generation": catalog.generation,
        "rulesets": served,
        "refused": super::health::refused(&catalog),
        "quarantined": super::health::quarantined(&catalog),
    }))
}

/// `GET /api/v1/rulesets/{name}`: one rule set as served, why a newer file was refused (if
/// it was), and the summary of the replay after its last reload (`last_replay`, `null` until
/// one ran).
pub async fn ruleset(req: HttpRequest, state: web::Data<Belroute>) -> HttpResponse {
    let name = req.match_info().get("name").unwrap_or_default();
    let catalog = state.store.catalog();
    let refused = catalog.refused.get(name);
    let Some(set) = catalog.get(name) else {
        if let Some(refusal) = refused {
            return HttpResponse::Ok().json(json!({
                "name": name,
                "served": false,
                "refused": refusal,
                "last_replay": state.replays.get(name).as_deref(),
            }));
        }
        return text(
            actix_web::http::StatusCode::NOT_FOUND,
            &format!(
                "no rule set `{name}`; GET /api/v1/rulesets lists them (rules/{name}.yaml would serve it)"
            ),
        );
    };
    HttpResponse::Ok().json(json!({
        "name": set.name,
        "served": true,
        "file": set.file,
        "version": set.version,
        "description": set.description,
        "timeout_ms": set.timeout.as_millis() as u64,
        "default": set.default_route,
        "lookups": set.lookups,
        "rules": set.rules.iter().map(|r| &r.name).collect::<Vec<_>>(),
        "in_workers": set
            .rules
            .iter()
            .filter_map(|r| Some(json!({ "rule": r.name, "because": r.unbounded()?.what })))
            .collect::<Vec<_>>(),
        "quarantine": set.quarantine.status(),
        "routes": set.routes,
        "warnings": set.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "refused": refused,
        "last_replay": state.replays.get(name).as_deref(),
    }))
}

/// `POST /api/v1/rulesets/{name}/release`: ends a rule set's quarantine (its calls are decided
/// by its rules again). `{"released": false}` when it was not quarantined.
pub async fn release(req: HttpRequest, state: web::Data<Belroute>) -> HttpResponse {
    let name = req.match_info().get("name").unwrap_or_default();
    let catalog = state.store.catalog();
    let Some(set) = catalog.get(name) else {
        return text(
            actix_web::http::StatusCode::NOT_FOUND,
            &format!("no rule set `{name}`; GET /api/v1/rulesets lists them"),
        );
    };
    let released = set.quarantine.release();
    if released {
        tracing::warn!(ruleset = %set.name, by = "admin token", "quarantine released: its calls are decided by its rules again");
    }
    HttpResponse::Ok().json(json!({ "ruleset": set.name, "released": released }))
}

/// `GET /api/v1/plugins`: each plugin's breaker, counters and cache size.
pub async fn plugins(state: web::Data<Belroute>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "plugins": state.router.lookups().status() }))
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
) -> HttpResponse {
    let name = req.match_info().get("name").unwrap_or_default();
    let caller = state.router.normaliser().normalise(&body.caller);
    let plugin = (name != "*").then_some(name);
    if state.router.lookups().invalidate(plugin, caller.key()) {
        HttpResponse::NoContent().finish()
    } else {
        HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body(format!("no plugin named `{name}`\n"))
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
) -> HttpResponse {
    let uuid = req.match_info().get("uuid").unwrap_or_default();
    let agent = body.agent.trim();
    if agent.is_empty()
        || agent.chars().count() > 64
        || agent.chars().any(belroute_engine::text::is_unprintable)
    {
        return text(
            actix_web::http::StatusCode::BAD_REQUEST,
            "`agent` must be 1 to 64 printable characters (no line breaks, zero-width or direction marks)",
        );
    }
    match state.call_log.report_agent(uuid, agent).await {
        Ok(crate::storage::AgentReported::Recorded) => HttpResponse::NoContent().finish(),
        Ok(crate::storage::AgentReported::NoSuchCall) => text(
            actix_web::http::StatusCode::NOT_FOUND,
            &format!("no call with uuid `{uuid}` in the call log"),
        ),
        Err(e) => unavailable(&e),
    }
}

#[derive(Debug, Deserialize)]
pub struct CallsQuery {
    caller: Option<String>,
    /// RFC 3339 time, or a duration back from now (`24h`, `7d`).
    since: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/v1/calls?caller=…&since=…&limit=…`: calls, newest first.
pub async fn calls(state: web::Data<Belroute>, query: web::Query<CallsQuery>) -> HttpResponse {
    let since_ms = match query.since.as_deref().map(parse_since) {
        None => 0,
        Some(Ok(ms)) => ms,
        Some(Err(message)) => return text(actix_web::http::StatusCode::BAD_REQUEST, &message),
    };
    let caller = query
        .caller
        .as_deref()
        .map(|c| state.router.normaliser().normalise(c).key().to_string());
    let filter = crate::storage::CallQuery {
        caller,
        since_ms,
        limit: query.limit.unwrap_or(50),
    };
    match state.storage.calls(&filter).await {
        Ok(calls) => HttpResponse::Ok().json(json!({ "calls": calls })),
        Err(e) => unavailable(&e),
    }
}

/// `GET /api/v1/calls/{uuid}`: the full decision record of the latest call with this uuid.
pub async fn call(req: HttpRequest, state: web::Data<Belroute>) -> HttpResponse {
    let uuid = req.match_info().get("uuid").unwrap_or_default();
    state
        .call_log
        .flush(std::time::Duration::from_secs(2))
        .await;
    match state.storage.call(uuid).await {
        Ok(Some((call, reports))) => {
            let mut body = serde_json::to_value(call).unwrap_or_default();
            body["agent_reports"] = json!(reports);
            HttpResponse::Ok().json(body)
        }
        Ok(None) => text(
            actix_web::http::StatusCode::NOT_FOUND,
            &format!("no call with uuid `{uuid}` in the call log"),
        ),
        Err(e) => unavailable(&e),
    }
}

fn parse_since(text: &str) -> Result<i64, String> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp_millis());
    }
    let back = belroute_engine::settings::parse_duration(text)
        .map_err(|_| format!("`since` is an RFC 3339 time (2026-11-22T09:00:00Z) or a duration back from now (24h), not `{text}`"))?;
    let now = crate::storage::epoch_ms(std::time::SystemTime::now());
    Ok(now.saturating_sub(i64::try_from(back.as_millis()).unwrap_or(i64::MAX)))
}

pub(super) fn text(status: actix_web::http::StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(format!("{message}\n"))
}

pub(super) fn unavailable(error: &sqlx::Error) -> HttpResponse {
    tracing::warn!("call log database: {error}");
    text(
        actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
        "the call log database is unavailable; try again",
    )
}
