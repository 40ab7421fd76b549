//! `/healthz`, `/readyz` and `/metrics`: what orchestrators and Prometheus ask.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::app::Belroute;
use crate::read::rulesets::{QuarantinedView, RefusedView};
use crate::time::rfc3339_secs;

/// Alive and taking calls: `ok`; `503 draining` once a stop has begun (SIGTERM), so that a load
/// balancer checking it sends new calls to another instance. Every rule set answers (its last
/// good version), so this is what a balancer should check.
pub async fn healthz(state: web::Data<Belroute>) -> HttpResponse {
    if state.cluster.draining() {
        return HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .insert_header(("cache-control", "no-store"))
            .body("draining\n");
    }
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok\n")
}

/// Ready when every rule file is valid; 503 listing each refused file and its problems. A
/// quarantined rule set does not make the server unready (every other rule set is served):
/// it is listed, with the worker processes' state.
pub async fn readyz(state: web::Data<Belroute>) -> HttpResponse {
    let catalog = state.store.catalog();
    let rulesets: serde_json::Map<String, serde_json::Value> = catalog
        .rulesets
        .iter()
        .map(|(name, set)| (name.clone(), json!(set.version)))
        .collect();
    let refused = RefusedView::all(&catalog);
    let panic = state.metrics.recent_panic().map(|(at, what)| {
        json!({
            "at": rfc3339_secs(crate::time::epoch_ms(at)),
            "what": what,
        })
    });
    let draining = state.cluster.draining();
    let ready = refused.is_empty() && panic.is_none() && !draining;
    let status = match (draining, refused.is_empty(), panic.is_none()) {
        (true, _, _) => "draining",
        (false, true, true) => "ready",
        (false, false, _) => "refused",
        (false, true, false) => "panicked",
    };
    let metrics = &state.metrics;
    // Not a reason to be unready: the server serves what it read at start.
    let config = state.config.file.as_ref().map(|file| {
        json!({
            "file": file.path(),
            "changed_on_disk": file.changed().map(|changed| json!({
                "at": rfc3339_secs(crate::time::epoch_ms(changed.at)),
                "removed": changed.removed,
                "message": file.message(),
            })),
        })
    });
    let body = json!({
        "status": status,
        "rulesets": rulesets,
        "refused": refused,
        "quarantined": QuarantinedView::all(&catalog),
        "workers": state.router.pool().status(),
        "last_panic": panic,
        "connections": {
            "open": metrics.connections_open.get(),
            "max": metrics.connections_max.get(),
            "file_limit": metrics.file_limit.get(),
        },
        "config": config,
        "instance": state.cluster.id,
        "rules_source": state.config.rules.source.as_str(),
        "instances": state.cluster.instances(),
    });
    let mut response = if ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response
        .insert_header(("cache-control", "no-store"))
        .json(body)
}

pub async fn metrics(state: web::Data<Belroute>) -> HttpResponse {
    let catalog = state.store.catalog();
    state
        .metrics
        .rulesets_loaded
        .set(i64::try_from(catalog.rulesets.len()).unwrap_or(i64::MAX));
    state
        .metrics
        .rulesets_refused
        .set(i64::try_from(catalog.refused.len()).unwrap_or(i64::MAX));
    state.metrics.quarantined.clear();
    for (name, set) in &catalog.rulesets {
        state
            .metrics
            .quarantined
            .get_or_create(&crate::metrics::RulesetLabels {
                ruleset: name.clone(),
            })
            .set(i64::from(set.quarantine.is_active()));
    }
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.render())
}
