//! `/api/v1/*`: the admin API, behind `admin.token` (`Authorization: Bearer …`).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::State;

/// Checks the admin bearer token: the response to send when the request may not proceed.
pub fn denied(req: &HttpRequest, state: &State) -> Option<HttpResponse> {
    let Some(token) = &state.config.admin.token else {
        return Some(
            HttpResponse::Forbidden()
                .content_type("text/plain; charset=utf-8")
                .body("the admin API is off: set admin.token in belroute.yaml\n"),
        );
    };
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if super::auth::same_secret(given.as_bytes(), token.expose()) {
        None
    } else {
        tracing::warn!(path = %req.path(), "admin API: missing or wrong bearer token");
        Some(
            HttpResponse::Unauthorized()
                .insert_header(("www-authenticate", "Bearer"))
                .finish(),
        )
    }
}

/// `GET /api/v1/rulesets`: what is served, and what was refused and why.
pub async fn rulesets(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    if let Some(denied) = denied(&req, &state) {
        return denied;
    }
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
    HttpResponse::Ok().json(
        json!({ "generation": catalog.generation, "rulesets": served, "refused": catalog.refused }),
    )
}

/// `GET /api/v1/plugins`: each plugin's breaker, counters and cache size.
pub async fn plugins(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    if let Some(denied) = denied(&req, &state) {
        return denied;
    }
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
    state: web::Data<State>,
    body: web::Json<Invalidate>,
) -> HttpResponse {
    if let Some(denied) = denied(&req, &state) {
        return denied;
    }
    let name = req.match_info().get("name").unwrap_or_default();
    let caller = state.router.normaliser().normalise(&body.caller);
    let key = if caller.e164.is_empty() {
        caller.raw.clone()
    } else {
        caller.e164.clone()
    };
    let plugin = (name != "*").then_some(name);
    if state.router.lookups().invalidate(plugin, &key) {
        HttpResponse::NoContent().finish()
    } else {
        HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body(format!("no plugin named `{name}`\n"))
    }
}
