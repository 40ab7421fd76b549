//! `GET /admin/calls/{uuid}` (or `/admin/calls/by-id/{id}` for a call without a uuid): one
//! call in full, numbers masked unless the operator asks to see them (logged).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use belroute_engine::text::escape;
use maud::{Markup, html};

use super::{Posted, Ses, answer};
use crate::app::Belroute;
use crate::read::calls::{CallDetail, detail};
use crate::read::privacy::Shown;
use crate::server::console::Session;
use crate::server::console::labels::Lang;
use crate::server::console::layout::{Tone, csrf, local, ms, notice};
use crate::server::console::trace::{self, Facts, caller_text, reason_cell};
use crate::server::error::HttpError;
use crate::storage::CallKey;

/// The call the path names.
fn key(req: &HttpRequest) -> Option<CallKey<'_>> {
    let info = req.match_info();
    match info.get("id") {
        Some(id) => id.parse().ok().map(CallKey::Id),
        None => info.get("uuid").map(CallKey::Uuid),
    }
}

/// `GET`: the trace, numbers masked.
pub async fn show(req: HttpRequest, state: web::Data<Belroute>, session: Ses) -> HttpResponse {
    render(&req, &state, &session, Shown::MASKED).await
}

/// `POST …/reveal`: the same page with the numbers shown; logged.
pub async fn reveal(
    req: HttpRequest,
    state: web::Data<Belroute>,
    session: Ses,
    _form: Posted,
) -> HttpResponse {
    let which = req
        .match_info()
        .get("uuid")
        .or_else(|| req.match_info().get("id"))
        .unwrap_or_default();
    let client = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    tracing::info!(
        target: "belroute::console",
        uuid = %escape(which),
        client = %client,
        "console: caller number revealed"
    );
    render(&req, &state, &session, Shown { revealed: true }).await
}

fn reveal_action(detail: &CallDetail) -> String {
    format!("{}/reveal", super::calls::href(&detail.call))
}

fn body(
    lang: Lang,
    state: &Belroute,
    session: &Session,
    detail: &CallDetail,
    shown: Shown,
) -> Markup {
    let call = &detail.call;
    let zone = state.config.timezone.0;
    let agent = match (&call.agent, detail.agent_reports.last()) {
        (Some(agent), Some(report)) => format!("{agent} ({})", report.reported_at),
        (Some(agent), None) => agent.clone(),
        _ => "—".into(),
    };
    let mut record = serde_json::to_value(detail).unwrap_or_default();
    shown.json(&mut record);
    html! {
        @if shown.revealed { (notice(Tone::Ok, lang.t("revealed"))) }
        section {
            dl.facts {
                dt { "uuid" } dd.mono { @if call.uuid.is_empty() { span.muted { (lang.t("no_uuid")) } } @else { (call.uuid) } }
                dt { (lang.t("time")) } dd { (local(zone, call.received_at)) }
                dt { (lang.t("ruleset")) } dd {
                    (call.ruleset) " "
                    a.mono #rule-file href={ "/admin/rulesets/" (crate::server::console::layout::url_part(&call.ruleset)) "/revisions/" (crate::server::console::layout::url_part(&call.version)) } title=(lang.t("rule_file_then")) { (crate::replay::short(&call.version)) }
                }
                dt { (lang.t("caller")) }
                dd {
                    span.mono #caller { (caller_text(lang, &call.caller_raw, shown)) }
                    @if !shown.revealed && !call.caller_raw.trim().is_empty() && session.may(crate::access::Permission::RevealNumbers) {
                        " "
                        form method="post" action=(reveal_action(detail)) class="inline" {
                            (csrf(session))
                            button #reveal { (lang.t("reveal")) }
                        }
                    }
                }
                dt { (lang.t("route")) } dd.route #route { (call.route) }
                dt { (lang.t("rule")) } dd { (call.rule.as_deref().unwrap_or(lang.t("by_default"))) }
                dt { (lang.t("reason")) } dd { (reason_cell(lang, &call.reason)) }
                dt { (lang.t("duration")) } dd { (ms(call.micros)) }
                dt { (lang.t("agent")) } dd { (agent) }
            }
        }
        @match call.trace() {
            Ok(trace) => { (trace::render(lang, &trace, shown, Facts::Asked)) }
            Err(_) => { (notice(Tone::Error, lang.t("trace_unreadable"))) }
        }
        section {
            h2 { (lang.t("call_data")) }
            div.scroll {
                table #call-data {
                    @for (name, value) in call.fields() {
                        @let value = value.as_str().map_or_else(|| value.to_string(), str::to_string);
                        tr { th.mono { (name) } td.mono { (shown.field(&name, &value)) } }
                    }
                }
            }
        }
        details.card {
            summary { (lang.t("record")) }
            pre { (serde_json::to_string_pretty(&record).unwrap_or_default()) }
        }
        p { a href="/admin/calls" { (lang.t("back")) } }
    }
}

async fn render(
    req: &HttpRequest,
    state: &Belroute,
    session: &Session,
    shown: Shown,
) -> HttpResponse {
    let lang = Lang::of(req);
    let found = match key(req) {
        Some(key) => detail(&state.call_log, &state.storage, key).await,
        None => Ok(None),
    };
    match found {
        Ok(Some(detail)) => {
            let title = format!("{} {}", lang.t("call"), detail.call.uuid);
            let body = body(lang, state, session, &detail, shown);
            answer(
                StatusCode::OK,
                lang,
                title.trim(),
                "/admin/calls",
                session,
                body,
            )
        }
        Ok(None) => {
            let status = HttpError::not_found("no such call").status();
            let body = html! {
                (notice(Tone::Error, lang.t("not_found_call")))
                p { a href="/admin/calls" { (lang.t("back")) } }
            };
            answer(status, lang, lang.t("call"), "/admin/calls", session, body)
        }
        Err(e) => {
            let status = HttpError::database(&e).status();
            let body = notice(Tone::Error, lang.t("database_unavailable"));
            answer(status, lang, lang.t("call"), "/admin/calls", session, body)
        }
    }
}
