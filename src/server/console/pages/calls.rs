//! `GET /admin/calls`: recent calls, filtered, newest first, updating live.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};

use super::{Ses, ok};
use crate::app::Belroute;
use crate::read::calls::{caller_filter, list};
use crate::read::privacy::Shown;
use crate::server::console::html_response;
use crate::server::console::labels::Lang;
use crate::server::console::layout::{Tone, local, ms, notice, url_part};
use crate::server::console::trace::{caller_text, reason_cell};
use crate::storage::{CallFilter, LoggedCall};

/// Calls shown at once.
const SHOWN: i64 = 100;

#[derive(Debug, Default, serde::Deserialize)]
pub struct CallsQuery {
    #[serde(default)]
    ruleset: String,
    #[serde(default)]
    route: String,
    #[serde(default)]
    caller: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    /// Only the table's rows (for the live update).
    #[serde(default)]
    partial: String,
}

impl CallsQuery {
    fn query_string(&self) -> String {
        serde_urlencoded::to_string([
            ("ruleset", self.ruleset.as_str()),
            ("route", self.route.as_str()),
            ("caller", self.caller.as_str()),
            ("since", self.since.as_str()),
            ("until", self.until.as_str()),
        ])
        .unwrap_or_default()
    }
}

/// A local time from the filter (`2026-11-23 10:00`, or the browser's `2026-11-23T10:00`);
/// `Err` when it does not read.
fn time(state: &Belroute, text: &str) -> Result<Option<i64>, ()> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    match crate::time::written(text, state.config.timezone.0) {
        Some(Ok(ms)) => Ok(Some(ms)),
        _ => Err(()),
    }
}

fn some(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// The link to a call: by uuid, or by its row when it has none.
pub fn href(call: &LoggedCall) -> String {
    if call.uuid.is_empty() {
        format!("/admin/calls/by-id/{}", call.id)
    } else {
        format!("/admin/calls/{}", url_part(&call.uuid))
    }
}

fn rows(lang: Lang, state: &Belroute, calls: &[LoggedCall]) -> Markup {
    let zone = state.config.timezone.0;
    html! {
        @if calls.is_empty() {
            tr { td colspan="7" class="muted" { (lang.t("no_calls")) } }
        }
        @for call in calls {
            tr {
                td { a href=(href(call)) { (local(zone, call.received_at)) } }
                td { (call.ruleset) }
                td.mono { (caller_text(lang, &call.caller_raw, Shown::MASKED)) }
                td.mono { (call.route) }
                td.wide { (call.rule.as_deref().unwrap_or("—")) }
                td.wide { (reason_cell(lang, &call.reason)) }
                td.num { (ms(call.micros)) }
            }
        }
    }
}

/// `GET /admin/calls?ruleset=&route=&caller=&since=&until=`.
pub async fn show(
    req: HttpRequest,
    state: web::Data<Belroute>,
    session: Ses,
    query: web::Query<CallsQuery>,
) -> HttpResponse {
    let lang = Lang::of(&req);
    let since = time(&state, &query.since);
    let until = time(&state, &query.until);
    let filter = CallFilter {
        ruleset: some(&query.ruleset),
        route: some(&query.route),
        caller: caller_filter(state.router.normaliser(), &query.caller),
        since_ms: since.unwrap_or_default().unwrap_or(0),
        until_ms: until.unwrap_or_default().unwrap_or(i64::MAX),
        limit: SHOWN,
    };
    let rows = match list(&state.storage, &filter).await {
        Ok(calls) => rows(lang, &state, &calls),
        Err(e) => {
            tracing::warn!("console: call log database: {e}");
            html! { tr { td colspan="7" { (notice(Tone::Error, lang.t("database_unavailable"))) } } }
        }
    };
    if !query.partial.is_empty() {
        return html_response(StatusCode::OK, rows);
    }
    let catalog = state.store.catalog();
    let poll = format!("/admin/calls?{}&partial=1", query.query_string());
    let body = html! {
        @if since.is_err() || until.is_err() { (notice(Tone::Error, lang.t("bad_time"))) }
        form method="get" action="/admin/calls" class="filters card" {
            label {
                (lang.t("ruleset"))
                select name="ruleset" {
                    option value="" { "(" (lang.t("all")) ")" }
                    @for name in catalog.rulesets.keys() {
                        option selected[*name == query.ruleset] { (name) }
                    }
                }
            }
            label { (lang.t("route")) input name="route" value=(query.route); }
            label { (lang.t("caller")) input name="caller" value=(query.caller) inputmode="tel"; }
            label { (lang.t("since")) input name="since" type="datetime-local" value=(query.since); }
            label { (lang.t("until")) input name="until" type="datetime-local" value=(query.until); }
            button { (lang.t("filter")) }
        }
        section {
            p.muted { (lang.t("live")) " " (lang.t("masked")) }
            div.scroll {
                table #calls {
                    thead { tr {
                        th { (lang.t("time")) } th { (lang.t("ruleset")) } th { (lang.t("caller")) }
                        th { (lang.t("route")) } th.wide { (lang.t("rule")) } th.wide { (lang.t("reason")) }
                        th.num { (lang.t("duration")) }
                    } }
                    tbody data-poll=(poll) { (rows) }
                }
            }
        }
    };
    ok(lang, lang.t("calls"), "/admin/calls", &session, body)
}
