//! The console's pages: Overview, Calls (and a call's trace), Try a call, Plugins and
//! Subscriptions. Each reads what the JSON admin API reads and renders it as HTML; every
//! value that comes from a file, a caller or a plugin goes through [`esc`].

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use belroute_engine::text::{escape, mask_numbers};
use serde_json::{Map, Value};

use super::html::{Lang, csrf_field, esc, notice, page, url_part};
use super::{Form, Session, html_response};
use crate::app::Belroute;
use crate::metrics::DecisionLabels;
use crate::storage::console::ConsoleCallFilter;
use crate::storage::{StoredCall, epoch_ms};
use crate::subscriptions::admin::{self, AdminError};
use crate::subscriptions::{Source, Subscription};

type Ses = web::ReqData<Session>;
type Posted = web::ReqData<Form>;

const HOUR_MS: i64 = 3_600_000;

/// A time in the server's zone (`timezone:` in belroute.yaml).
fn local(state: &Belroute, ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&state.config.timezone.0)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

fn ms_text(micros: i64) -> String {
    format!("{:.1} ms", micros as f64 / 1000.0)
}

fn ok(lang: Lang, title: &str, here: &str, session: &Session, body: &str) -> HttpResponse {
    html_response(StatusCode::OK, page(lang, title, here, Some(session), body))
}

// ---------------------------------------------------------------------------------------------
// Overview

/// `GET /admin`: the rule sets, what was refused, and the last hour.
pub async fn overview(req: HttpRequest, state: web::Data<Belroute>, session: Ses) -> HttpResponse {
    let lang = Lang::of(&req);
    overview_page(lang, &state, &session, String::new()).await
}

/// `POST /admin/rulesets/{name}/release`: ends a rule set's quarantine, as
/// `POST /api/v1/rulesets/{name}/release` does.
pub async fn release(req: HttpRequest, state: web::Data<Belroute>, session: Ses) -> HttpResponse {
    let lang = Lang::of(&req);
    let name = req.match_info().get("name").unwrap_or_default();
    let catalog = state.store.catalog();
    let message = match catalog.get(name) {
        Some(set) if set.quarantine.release() => {
            tracing::warn!(ruleset = %set.name, by = BY_CONSOLE, "quarantine released: its calls are decided by its rules again");
            notice("ok", &format!("{name}: {}", lang.t("released")))
        }
        Some(_) => notice("ok", &format!("{name}: {}", lang.t("not_quarantined"))),
        None => notice("error", &format!("no rule set `{name}`")),
    };
    overview_page(lang, &state, &session, message).await
}

async fn overview_page(
    lang: Lang,
    state: &Belroute,
    session: &Session,
    message: String,
) -> HttpResponse {
    let catalog = state.store.catalog();
    let mut body = message;

    let _ = write!(
        body,
        "<section><h2>{}</h2><table id=\"rulesets\"><thead><tr><th>{}</th><th>{}</th><th class=\"num\">{}</th>\
         <th class=\"wide\">{}</th><th>{}</th><th>{}</th><th class=\"num\">{}</th></tr></thead><tbody>",
        lang.t("rulesets"),
        lang.t("ruleset"),
        lang.t("version"),
        lang.t("rules"),
        lang.t("file"),
        lang.t("saved"),
        lang.t("default"),
        lang.t("deadline_hits"),
    );
    for set in catalog.rulesets.values() {
        let saved = std::fs::metadata(&set.file)
            .and_then(|m| m.modified())
            .map(|t| local(state, epoch_ms(t)))
            .unwrap_or_default();
        let deadline_hits = state
            .metrics
            .decisions
            .get(&DecisionLabels {
                ruleset: set.name.to_string(),
                reason: "deadline".into(),
            })
            .map_or(0, |c| c.get());
        let _ = write!(
            body,
            "<tr><td><strong>{name}</strong><br><span class=\"muted\">{description}</span>{replay}</td>\
             <td class=\"mono\">{version}</td><td class=\"num\">{rules}</td>\
             <td class=\"wide mono\">{file}</td><td>{saved}</td><td class=\"mono\">{default}</td>\
             <td class=\"num\">{deadline_hits}</td></tr>",
            replay = state
                .replays
                .get(&set.name)
                .map_or(String::new(), |r| format!(
                    "<br><span class=\"replay\">{}: {}</span>",
                    lang.t("last_replay"),
                    esc(&r.line)
                )),
            name = esc(&set.name),
            description = esc(&set.description),
            version = esc(&set.version),
            rules = set.rules.len(),
            file = esc(&set.file.display().to_string()),
            default = esc(&set.default_route),
        );
    }
    body.push_str("</tbody></table></section>");

    let _ = write!(
        body,
        "<section id=\"refused\"><h2>{}</h2>",
        lang.t("refused")
    );
    if catalog.refused.is_empty() {
        let _ = write!(body, "<p class=\"muted\">{}</p>", lang.t("refused_none"));
    }
    for (name, refusal) in &catalog.refused {
        let serving = match &refusal.serving_version {
            Some(version) => format!("{} <code>{}</code>", lang.t("serving"), esc(version)),
            None => esc(lang.t("never_loaded")),
        };
        let _ = write!(
            body,
            "<h3>{} <span class=\"muted\">({serving})</span></h3><pre class=\"down\">",
            esc(name)
        );
        for diagnostic in &refusal.diagnostics {
            let _ = writeln!(body, "{}", esc(&diagnostic.to_string()));
        }
        body.push_str("</pre>");
    }
    body.push_str("</section>");

    let _ = write!(
        body,
        "<section id=\"quarantined\"><h2>{}</h2>",
        lang.t("quarantined")
    );
    let mut any = false;
    for (name, set) in &catalog.rulesets {
        let Some(q) = set.quarantine.status() else {
            continue;
        };
        any = true;
        let since: chrono::DateTime<chrono::Utc> = q.since.into();
        let _ = write!(
            body,
            "<h3>{name} <span class=\"muted\">({version})</span></h3>\
             <p class=\"down\">{answers} <code>{default}</code> {since_label} {since}: {rule_label} <strong>{rule}</strong> — {cause} ({kills}×)</p>\
             <form method=\"post\" action=\"/admin/rulesets/{path}/release\" class=\"filters\">{csrf}\
             <button>{release}</button></form>",
            name = esc(name),
            version = esc(&set.version),
            answers = esc(lang.t("quarantine_answers")),
            default = esc(&set.default_route),
            since_label = esc(lang.t("since")),
            since = esc(&local(state, since.timestamp_millis())),
            rule_label = esc(lang.t("rule")),
            rule = esc(&q.rule),
            cause = esc(&q.cause),
            kills = q.kills,
            path = url_part(name),
            csrf = csrf_field(session),
            release = esc(lang.t("release")),
        );
    }
    if !any {
        let _ = write!(
            body,
            "<p class=\"muted\">{}</p>",
            lang.t("quarantined_none")
        );
    }
    body.push_str("</section>");

    let now = epoch_ms(SystemTime::now());
    let _ = write!(body, "<section><h2>{}</h2>", lang.t("last_hour"));
    match state.storage.activity(now - HOUR_MS).await {
        Ok(activity) => {
            let total: i64 = activity.per_minute.iter().map(|(_, n)| n).sum();
            let _ = write!(
                body,
                "<h3>{} <span class=\"muted\">({total})</span></h3>{}",
                lang.t("calls_per_minute"),
                chart(lang, now / 60_000, &activity.per_minute)
            );
            let _ = write!(
                body,
                "<h3>{}</h3><table id=\"routes\"><thead><tr><th>{}</th><th class=\"num\">{}</th><th></th></tr></thead><tbody>",
                lang.t("routes"),
                lang.t("route"),
                lang.t("count")
            );
            let most = activity.routes.first().map_or(1, |(_, n)| (*n).max(1));
            for (route, n) in &activity.routes {
                let _ = write!(
                    body,
                    "<tr><td class=\"mono\">{}</td><td class=\"num\">{n}</td><td><meter min=\"0\" max=\"{most}\" value=\"{n}\"></meter></td></tr>",
                    esc(route)
                );
            }
            if activity.routes.is_empty() {
                let _ = write!(
                    body,
                    "<tr><td colspan=\"3\" class=\"muted\">{}</td></tr>",
                    lang.t("no_calls")
                );
            }
            body.push_str("</tbody></table>");
            if !activity.reasons.is_empty() {
                let _ = write!(body, "<h3>{}</h3><p>", lang.t("reasons"));
                for (reason, n) in &activity.reasons {
                    let _ = write!(
                        body,
                        "<span class=\"mono\">{}</span>: {n} &nbsp; ",
                        esc(reason)
                    );
                }
                body.push_str("</p>");
            }
        }
        Err(e) => {
            tracing::warn!("console: call log database: {e}");
            body.push_str(&notice("error", lang.t("database_unavailable")));
        }
    }
    body.push_str("</section>");

    let stats = state.call_log.stats();
    let _ = write!(
        body,
        "<section id=\"call-log\"><h2>{}</h2><dl class=\"facts\">\
         <dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{} / {}</dd><dt>{}</dt><dd>{}</dd></dl></section>",
        lang.t("call_log"),
        lang.t("database"),
        if stats.database_up {
            format!(
                "<span class=\"up\">{}</span> ({})",
                lang.t("up"),
                state.storage.kind()
            )
        } else {
            format!(
                "<span class=\"down\">{}</span> ({})",
                lang.t("down"),
                state.storage.kind()
            )
        },
        lang.t("queued"),
        stats.queued,
        lang.t("written"),
        stats.written,
        lang.t("spilled"),
        stats.spilled,
        stats.replayed,
        lang.t("dropped"),
        if stats.dropped > 0 {
            format!("<span class=\"down\">{}</span>", stats.dropped)
        } else {
            "0".into()
        },
    );
    ok(lang, lang.t("overview"), "/admin", session, &body)
}

/// Calls per minute over the 60 minutes up to `now_minute`, as an inline SVG bar chart.
fn chart(lang: Lang, now_minute: i64, per_minute: &[(i64, i64)]) -> String {
    const W: i64 = 600;
    const H: i64 = 100;
    let first = now_minute - 59;
    let max = per_minute.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let mut out = format!(
        "<svg class=\"chart\" id=\"chart\" viewBox=\"0 0 {W} {}\" role=\"img\" aria-label=\"{}\">",
        H + 14,
        lang.t("calls_per_minute")
    );
    for (minute, n) in per_minute {
        let i = minute - first;
        if !(0..60).contains(&i) {
            continue;
        }
        let h = (n * H / max).max(1);
        let _ = write!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"8\" height=\"{h}\"><title>{n}</title></rect>",
            i * 10 + 1,
            H - h
        );
    }
    let _ = write!(
        out,
        "<line x1=\"0\" y1=\"{H}\" x2=\"{W}\" y2=\"{H}\" stroke=\"#d9dee2\"/>\
         <text x=\"0\" y=\"{}\">−60 min</text><text x=\"{W}\" y=\"{}\" text-anchor=\"end\">0</text>\
         <text x=\"2\" y=\"10\">{max}</text></svg>",
        H + 12,
        H + 12
    );
    out
}

// ---------------------------------------------------------------------------------------------
// Calls

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

/// A local time (`2026-11-23 10:00`, or the browser's `2026-11-23T10:00`) in the server's
/// zone as milliseconds since the epoch; `Err` with the label to show when unreadable.
fn local_ms(state: &Belroute, text: &str) -> Result<Option<i64>, &'static str> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let naive = crate::cli::parse_local_time(text).ok_or("bad_time")?;
    belroute_engine::local_to_utc(state.config.timezone.0, naive)
        .map(|t| Some(t.timestamp_millis()))
        .map_err(|_| "bad_time")
}

/// `GET /admin/calls?ruleset=&route=&caller=&since=&until=`: recent calls, newest first,
/// updating live.
pub async fn calls(
    req: HttpRequest,
    state: web::Data<Belroute>,
    session: Ses,
    query: web::Query<CallsQuery>,
) -> HttpResponse {
    let lang = Lang::of(&req);
    let mut problem = None;
    let since_ms = local_ms(&state, &query.since).unwrap_or_else(|e| {
        problem = Some(e);
        None
    });
    let until_ms = local_ms(&state, &query.until).unwrap_or_else(|e| {
        problem = Some(e);
        None
    });
    let caller = query.caller.trim();
    let caller = if caller.is_empty() {
        String::new()
    } else {
        let normalised = state.router.normaliser().normalise(caller);
        if normalised.key().is_empty() {
            caller.to_string()
        } else {
            normalised.key().to_string()
        }
    };
    let filter = ConsoleCallFilter {
        ruleset: query.ruleset.trim().to_string(),
        route: query.route.trim().to_string(),
        caller,
        since_ms: since_ms.unwrap_or(0),
        until_ms: until_ms.unwrap_or(i64::MAX),
        limit: 100,
    };
    let rows = match state.storage.console_calls(&filter).await {
        Ok(calls) => call_rows(lang, &state, &calls),
        Err(e) => {
            tracing::warn!("console: call log database: {e}");
            format!(
                "<tr><td colspan=\"7\">{}</td></tr>",
                notice("error", lang.t("database_unavailable"))
            )
        }
    };
    if !query.partial.is_empty() {
        return html_response(StatusCode::OK, rows);
    }
    let mut body = String::new();
    if let Some(key) = problem {
        body.push_str(&notice("error", lang.t(key)));
    }
    let catalog = state.store.catalog();
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/admin/calls\" class=\"filters card\">\
         <label>{ruleset}<select name=\"ruleset\"><option value=\"\">({all})</option>",
        ruleset = lang.t("ruleset"),
        all = lang.t("all"),
    );
    for name in catalog.rulesets.keys() {
        let selected = if *name == query.ruleset {
            " selected"
        } else {
            ""
        };
        let _ = write!(body, "<option{selected}>{}</option>", esc(name));
    }
    let _ = write!(
        body,
        "</select></label>\
         <label>{route}<input name=\"route\" value=\"{route_v}\"></label>\
         <label>{caller}<input name=\"caller\" value=\"{caller_v}\" inputmode=\"tel\"></label>\
         <label>{since}<input name=\"since\" type=\"datetime-local\" value=\"{since_v}\"></label>\
         <label>{until}<input name=\"until\" type=\"datetime-local\" value=\"{until_v}\"></label>\
         <button>{filter}</button></form>",
        route = lang.t("route"),
        route_v = esc(&query.route),
        caller = lang.t("caller"),
        caller_v = esc(&query.caller),
        since = lang.t("since"),
        since_v = esc(&query.since),
        until = lang.t("until"),
        until_v = esc(&query.until),
        filter = lang.t("filter"),
    );
    let poll = format!("/admin/calls?{}&partial=1", query.query_string());
    let _ = write!(
        body,
        "<section><p class=\"muted\">{live} {masked}</p><table id=\"calls\"><thead><tr>\
         <th>{time}</th><th>{ruleset}</th><th>{caller}</th><th>{route}</th><th class=\"wide\">{rule}</th>\
         <th class=\"wide\">{reason}</th><th class=\"num\">{duration}</th></tr></thead>\
         <tbody data-poll=\"{poll}\">{rows}</tbody></table></section>",
        live = lang.t("live"),
        masked = lang.t("masked"),
        time = lang.t("time"),
        ruleset = lang.t("ruleset"),
        caller = lang.t("caller"),
        route = lang.t("route"),
        rule = lang.t("rule"),
        reason = lang.t("reason"),
        duration = lang.t("duration"),
        poll = esc(&poll),
    );
    ok(lang, lang.t("calls"), "/admin/calls", &session, &body)
}

fn call_rows(lang: Lang, state: &Belroute, calls: &[StoredCall]) -> String {
    if calls.is_empty() {
        return format!(
            "<tr><td colspan=\"7\" class=\"muted\">{}</td></tr>",
            lang.t("no_calls")
        );
    }
    let mut out = String::new();
    for call in calls {
        let when = chrono::DateTime::parse_from_rfc3339(&call.received_at)
            .map(|t| local(state, t.timestamp_millis()))
            .unwrap_or_else(|_| call.received_at.clone());
        let time = if call.uuid.is_empty() {
            esc(&when)
        } else {
            format!(
                "<a href=\"/admin/calls/{}\">{}</a>",
                esc(&url_part(&call.uuid)),
                esc(&when)
            )
        };
        let _ = write!(
            out,
            "<tr><td>{time}</td><td>{ruleset}</td><td class=\"mono\">{caller}</td>\
             <td class=\"mono\">{route}</td><td class=\"wide\">{rule}</td>\
             <td class=\"wide outcome-{reason}\">{reason}</td><td class=\"num\">{ms}</td></tr>",
            ruleset = esc(&call.ruleset),
            caller = esc(&mask_numbers(&call.caller)),
            route = esc(&call.route),
            rule = esc(call.rule.as_deref().unwrap_or("—")),
            reason = esc(&call.reason),
            ms = ms_text(call.micros),
        );
    }
    out
}

/// `GET /admin/calls/{uuid}`: one call's full trace, numbers masked.
pub async fn call(req: HttpRequest, state: web::Data<Belroute>, session: Ses) -> HttpResponse {
    call_page(&req, &state, &session, false).await
}

/// `POST /admin/calls/{uuid}/reveal`: the same page with the numbers shown; logged.
pub async fn reveal(
    req: HttpRequest,
    state: web::Data<Belroute>,
    session: Ses,
    _form: Posted,
) -> HttpResponse {
    let uuid = req.match_info().get("uuid").unwrap_or_default();
    let client = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    tracing::info!(
        target: "belroute::console",
        uuid = %escape(uuid),
        client = %client,
        "console: caller number revealed"
    );
    call_page(&req, &state, &session, true).await
}

async fn call_page(
    req: &HttpRequest,
    state: &Belroute,
    session: &Session,
    reveal: bool,
) -> HttpResponse {
    let lang = Lang::of(req);
    let uuid = req.match_info().get("uuid").unwrap_or_default();
    // The call may have been answered a moment ago: write what is queued first.
    state.call_log.flush(Duration::from_secs(2)).await;
    let found = match state.storage.call(uuid).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!("console: call log database: {e}");
            let body = notice("error", lang.t("database_unavailable"));
            return html_response(
                StatusCode::SERVICE_UNAVAILABLE,
                page(lang, lang.t("call"), "/admin/calls", Some(session), &body),
            );
        }
    };
    let Some((call, reports)) = found else {
        let body = format!(
            "{}<p><a href=\"/admin/calls\">{}</a></p>",
            notice("error", lang.t("not_found_call")),
            lang.t("back")
        );
        return html_response(
            StatusCode::NOT_FOUND,
            page(lang, lang.t("call"), "/admin/calls", Some(session), &body),
        );
    };
    let shown = |text: &str| {
        if reveal {
            text.to_string()
        } else {
            mask_numbers(text)
        }
    };
    let mut body = String::new();
    if reveal {
        body.push_str(&notice("ok", lang.t("revealed")));
    }
    let when = chrono::DateTime::parse_from_rfc3339(&call.received_at)
        .map(|t| local(state, t.timestamp_millis()))
        .unwrap_or_else(|_| call.received_at.clone());
    let reveal_form = if reveal {
        String::new()
    } else {
        format!(
            " <form method=\"post\" action=\"/admin/calls/{}/reveal\" class=\"inline\">{}<button id=\"reveal\">{}</button></form>",
            esc(&url_part(uuid)),
            csrf_field(session),
            lang.t("reveal")
        )
    };
    let agent = match (&call.agent, reports.last()) {
        (Some(agent), Some(report)) => format!("{} ({})", esc(agent), esc(&report.reported_at)),
        (Some(agent), None) => esc(agent),
        _ => "—".into(),
    };
    let _ = write!(
        body,
        "<section><dl class=\"facts\">\
         <dt>uuid</dt><dd class=\"mono\">{uuid_v}</dd><dt>{time}</dt><dd>{when}</dd>\
         <dt>{ruleset}</dt><dd>{ruleset_v} <span class=\"muted mono\">{version}</span></dd>\
         <dt>{caller}</dt><dd><span class=\"mono\" id=\"caller\">{caller_v}</span>{reveal_form}</dd>\
         <dt>{route}</dt><dd class=\"route\" id=\"route\">{route_v}</dd>\
         <dt>{rule}</dt><dd>{rule_v}</dd><dt>{reason}</dt><dd class=\"outcome-{reason_v}\">{reason_v}</dd>\
         <dt>{duration}</dt><dd>{ms}</dd><dt>agent</dt><dd>{agent}</dd></dl></section>",
        uuid_v = esc(&call.uuid),
        time = lang.t("time"),
        when = esc(&when),
        ruleset = lang.t("ruleset"),
        ruleset_v = esc(&call.ruleset),
        version = esc(&call.version),
        caller = lang.t("caller"),
        caller_v = esc(&shown(&call.caller)),
        route = lang.t("route"),
        route_v = esc(&call.route),
        rule = lang.t("rule"),
        rule_v = esc(call.rule.as_deref().unwrap_or(lang.t("by_default"))),
        reason = lang.t("reason"),
        reason_v = esc(&call.reason),
        duration = lang.t("duration"),
        ms = ms_text(call.micros),
    );
    let mut trace = call.trace.clone();
    if !reveal {
        mask_json(&mut trace);
    }
    body.push_str(&render_trace(lang, &trace));
    let _ = write!(
        body,
        "<section><h2>{}</h2><table id=\"call-data\">",
        lang.t("call_data")
    );
    if let Value::Object(fields) = &call.call {
        for (name, value) in fields {
            let value = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_string);
            let _ = write!(
                body,
                "<tr><th class=\"mono\">{}</th><td class=\"mono\">{}</td></tr>",
                esc(name),
                esc(&shown(&value))
            );
        }
    }
    body.push_str("</table></section>");
    let mut record = serde_json::to_value(&call).unwrap_or_default();
    record["agent_reports"] = serde_json::json!(reports);
    if !reveal {
        mask_json(&mut record);
    }
    let _ = write!(
        body,
        "<details class=\"card\"><summary>{}</summary><pre>{}</pre></details>\
         <p><a href=\"/admin/calls\">{}</a></p>",
        lang.t("record"),
        esc(&serde_json::to_string_pretty(&record).unwrap_or_default()),
        lang.t("back")
    );
    let title = format!("{} {}", lang.t("call"), call.uuid);
    ok(lang, &title, "/admin/calls", session, &body)
}

/// Keys whose text is never a caller's data: left readable when numbers are masked.
const NOT_PERSONAL: [&str; 11] = [
    "uuid",
    "name",
    "version",
    "ruleset",
    "route",
    "rule",
    "outcome",
    "result",
    "kind",
    "country",
    "received_at",
];

/// Masks every number in the strings of `value` (all but the last 3 digits), except under
/// [`NOT_PERSONAL`] keys.
fn mask_json(value: &mut Value) {
    match value {
        Value::String(text) => *text = mask_numbers(text),
        Value::Array(items) => items.iter_mut().for_each(mask_json),
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if !NOT_PERSONAL.contains(&key.as_str()) {
                    mask_json(item);
                }
            }
        }
        _ => {}
    }
}

/// A decision trace (`caller`, `rules`, `lookups`, as the call log and `simulate --json` have
/// them): every rule with its outcome, every lookup with result, time and cache status.
fn render_trace(lang: Lang, trace: &Value) -> String {
    let mut out = String::new();
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    let number = |v: &Value, key: &str| v.get(key).and_then(Value::as_i64).unwrap_or(0);
    let caller = &trace["caller"];
    if caller.is_object() {
        let who = if caller["anonymous"].as_bool() == Some(true) {
            "withheld".to_string()
        } else if caller["valid"].as_bool() == Some(true) {
            format!(
                "{} ({}, {})",
                text(caller, "e164"),
                text(caller, "kind"),
                text(caller, "country")
            )
        } else {
            format!("not a valid number ({})", text(caller, "kind"))
        };
        let _ = write!(
            out,
            "<p>{}: <span class=\"mono\">{}</span> → {}</p>",
            lang.t("caller"),
            esc(&text(caller, "raw")),
            esc(&who)
        );
    }
    let _ = write!(
        out,
        "<section><h2>{}</h2><table id=\"trace-rules\"><thead><tr><th>{}</th><th>{}</th><th class=\"num\">{}</th></tr></thead><tbody>",
        lang.t("rules"),
        lang.t("rule"),
        lang.t("outcome"),
        lang.t("duration")
    );
    for rule in trace["rules"].as_array().into_iter().flatten() {
        let outcome = text(rule, "outcome");
        let label = match outcome.as_str() {
            "matched" => lang.t("matched"),
            "no_match" => lang.t("no_match"),
            "fell_through" => lang.t("fell_through"),
            "skipped" => lang.t("skipped"),
            "error" => lang.t("error"),
            "not_reached" => lang.t("not_reached"),
            _ => "?",
        };
        let detail = match outcome.as_str() {
            "skipped" => format!(": {}", text(rule, "reason")),
            "error" => format!(
                " {}:{}: {}",
                number(rule, "line"),
                number(rule, "column"),
                text(rule, "message")
            ),
            _ => String::new(),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"outcome-{}\">{}{}</td><td class=\"num\">{}</td></tr>",
            esc(&text(rule, "name")),
            esc(&outcome),
            label,
            esc(&detail),
            ms_text(number(rule, "micros"))
        );
    }
    out.push_str("</tbody></table></section>");
    let lookups = trace["lookups"].as_array().cloned().unwrap_or_default();
    if !lookups.is_empty() {
        let _ = write!(
            out,
            "<section><h2>{}</h2><table id=\"trace-lookups\"><thead><tr><th>{}</th><th>{}</th><th class=\"num\">{}</th><th>{}</th></tr></thead><tbody>",
            lang.t("lookups"),
            lang.t("lookup"),
            lang.t("outcome"),
            lang.t("duration"),
            lang.t("cache")
        );
        for lookup in &lookups {
            let result = text(lookup, "result");
            let detail = match result.as_str() {
                "found" => format!(
                    " {}",
                    lookup
                        .get("facts")
                        .map(Value::to_string)
                        .unwrap_or_default()
                ),
                "unavailable" => format!(": {}", text(lookup, "reason")),
                _ => String::new(),
            };
            let label = match result.as_str() {
                "found" => lang.t("found"),
                "not_found" => lang.t("not_found"),
                "unavailable" => lang.t("unavailable"),
                _ => "?",
            };
            let cache = if lookup["stale"].as_bool() == Some(true) {
                lang.t("stale")
            } else if lookup["cached"].as_bool() == Some(true) {
                lang.t("from_cache")
            } else {
                lang.t("asked")
            };
            let _ = write!(
                out,
                "<tr><td>{}</td><td><span class=\"result-{}\">{}</span><span class=\"mono\">{}</span></td><td class=\"num\">{}</td><td>{}</td></tr>",
                esc(&text(lookup, "name")),
                esc(&result),
                label,
                esc(&detail),
                ms_text(number(lookup, "micros")),
                cache
            );
        }
        out.push_str("</tbody></table></section>");
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Try a call

/// `GET /admin/try`: the form.
pub async fn try_form(req: HttpRequest, state: web::Data<Belroute>, session: Ses) -> HttpResponse {
    let lang = Lang::of(&req);
    let body = try_page_form(lang, &state, &session, &Form::default());
    ok(lang, lang.t("try"), "/admin/try", &session, &body)
}

fn try_page_form(lang: Lang, state: &Belroute, session: &Session, form: &Form) -> String {
    let mut body = format!("<p class=\"muted\">{}</p>", lang.t("try_hint"));
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/admin/try\" class=\"try card\">{}<label>{}<select name=\"ruleset\" id=\"ruleset\">",
        csrf_field(session),
        lang.t("ruleset")
    );
    for name in state.store.catalog().rulesets.keys() {
        let selected = if name == form.get("ruleset") {
            " selected"
        } else {
            ""
        };
        let _ = write!(body, "<option{selected}>{}</option>", esc(name));
    }
    let _ = write!(
        body,
        "</select></label>\
         <label>{caller}<input name=\"caller\" id=\"caller\" inputmode=\"tel\" value=\"{caller_v}\" placeholder=\"31152026057\"></label>\
         <label>{fields}<textarea name=\"fields\" placeholder=\"dp_id=12345\">{fields_v}</textarea></label>\
         <label>{at}<input name=\"at\" value=\"{at_v}\" placeholder=\"2026-11-23 10:00\"></label>\
         <label>{facts}<textarea name=\"facts\" placeholder='invoices={{\"open_count\": 2}}'>{facts_v}</textarea></label>\
         <button id=\"run\">{run}</button></form>",
        caller = lang.t("caller"),
        caller_v = esc(form.get("caller")),
        fields = lang.t("fields"),
        fields_v = esc(form.get("fields")),
        at = lang.t("at"),
        at_v = esc(form.get("at")),
        facts = lang.t("facts"),
        facts_v = esc(form.get("facts")),
        run = lang.t("run"),
    );
    body
}

/// Non-empty lines of a text area.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty())
}

/// `POST /admin/try`: decides the call against the live rule set, as `belroute simulate`
/// does (the same code), and shows the route and the trace. Nothing is logged or sent.
pub async fn try_call(
    req: HttpRequest,
    state: web::Data<Belroute>,
    session: Ses,
    form: Posted,
) -> HttpResponse {
    let lang = Lang::of(&req);
    let mut body = String::new();
    match decide(lang, &state, &form).await {
        Ok((decision, record)) => {
            let by = decision
                .rule
                .clone()
                .unwrap_or_else(|| lang.t("by_default").to_string());
            let _ = write!(
                body,
                "<section id=\"result\"><dl class=\"facts\"><dt>{}</dt><dd class=\"route\" id=\"route\">{}</dd>\
                 <dt>{}</dt><dd>{}</dd><dt>{}</dt><dd class=\"outcome-{r}\">{r}</dd><dt>{}</dt><dd>{}</dd></dl></section>",
                lang.t("route"),
                esc(&decision.route),
                lang.t("rule"),
                esc(&by),
                lang.t("reason"),
                lang.t("duration"),
                ms_text(i64::try_from(decision.micros).unwrap_or(i64::MAX)),
                r = decision.reason.as_str(),
            );
            body.push_str(&render_trace(lang, &record));
            let _ = write!(
                body,
                "<details class=\"card\"><summary>{}</summary><pre>{}</pre></details>",
                lang.t("record"),
                esc(&serde_json::to_string_pretty(&record).unwrap_or_default())
            );
        }
        Err(message) => body.push_str(&notice("error", &message)),
    }
    body.push_str(&try_page_form(lang, &state, &session, &form));
    ok(lang, lang.t("try"), "/admin/try", &session, &body)
}

async fn decide(
    lang: Lang,
    state: &Belroute,
    form: &Form,
) -> Result<(belroute_engine::Decision, Value), String> {
    let name = form.get("ruleset");
    let catalog = state.store.catalog();
    let set = catalog
        .get(name)
        .cloned()
        .ok_or_else(|| format!("`{name}`: {}", lang.t("unknown_ruleset")))?;
    let mut pairs = Vec::new();
    for line in lines(form.get("fields")) {
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| format!("`{line}`: write FIELD=VALUE, one a line"))?;
        pairs.push((k.trim().to_string(), v.trim().to_string()));
    }
    let caller = form.get("caller").trim();
    if !caller.is_empty() {
        pairs.push(("caller_number".into(), caller.to_string()));
    }
    let call = belroute_engine::Call::from_pairs(pairs);
    let at = match form.get("at").trim() {
        "" => None,
        text => Some(
            crate::cli::parse_local_time(text)
                .ok_or_else(|| format!("`{text}`: {}", lang.t("bad_time")))?,
        ),
    };
    let facts_text = form.get("facts");
    let facts = if lines(facts_text).next().is_some() {
        Some(
            lines(facts_text)
                .map(|line| crate::cli::parse_facts(line).map_err(|e| e.to_string()))
                .collect::<Result<std::collections::BTreeMap<_, _>, _>>()?,
        )
    } else {
        None
    };
    let (decision, _) = crate::cli::decide(
        &state.router,
        &set,
        call,
        at,
        facts.as_ref(),
        state.config.hooks.margin,
    )
    .await?;
    let record = serde_json::to_value(&decision).map_err(|e| e.to_string())?;
    Ok((decision, record))
}

// ---------------------------------------------------------------------------------------------
// Plugins

/// `GET /admin/plugins`: each lookup's breaker, counters and cache, with an invalidate form.
pub async fn plugins(req: HttpRequest, state: web::Data<Belroute>, session: Ses) -> HttpResponse {
    let lang = Lang::of(&req);
    plugins_page(lang, &state, &session, "")
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "—".into()
    } else {
        format!("{:.1} %", part as f64 * 100.0 / whole as f64)
    }
}

fn plugins_page(lang: Lang, state: &Belroute, session: &Session, message: &str) -> HttpResponse {
    let statuses = state.router.lookups().status();
    let mut body = message.to_string();
    if statuses.is_empty() {
        let _ = write!(body, "<p class=\"muted\">{}</p>", lang.t("no_plugins"));
    }
    for s in &statuses {
        let asked = s.requests;
        let answered = s.cache_hits + s.requests + s.shared;
        let _ = write!(
            body,
            "<section id=\"plugin-{id}\"><h2>{name}</h2><dl class=\"facts\">\
             <dt>{breaker}</dt><dd class=\"breaker-{state}\">{state}</dd>\
             <dt>{requests}</dt><dd>{asked}</dd>\
             <dt>{failures}</dt><dd>{failed}</dd>\
             <dt>{error_rate}</dt><dd>{rate}</dd>\
             <dt>{cache_hits}</dt><dd>{hits}</dd>\
             <dt>{hit_rate}</dt><dd>{hit_rate_v}</dd>\
             <dt>{cached}</dt><dd>{entries}</dd>\
             <dt>{skipped}</dt><dd>{skipped_v}</dd></dl>\
             <form method=\"post\" action=\"/admin/plugins/{path}/invalidate\" class=\"filters\">{csrf}\
             <label>{caller}<input name=\"caller\" inputmode=\"tel\" required></label>\
             <button>{invalidate}</button></form></section>",
            id = esc(&s.name),
            name = esc(&s.name),
            breaker = lang.t("breaker"),
            state = esc(s.breaker),
            requests = lang.t("requests"),
            failures = lang.t("failures"),
            failed = s.failures,
            error_rate = lang.t("error_rate"),
            rate = percent(s.failures, asked),
            cache_hits = lang.t("cache_hits"),
            hits = s.cache_hits,
            hit_rate = lang.t("hit_rate"),
            hit_rate_v = percent(s.cache_hits, answered),
            cached = lang.t("cached_entries"),
            entries = s.cached_entries,
            skipped = lang.t("skipped_open"),
            skipped_v = s.skipped,
            path = esc(&url_part(&s.name)),
            csrf = csrf_field(session),
            caller = lang.t("caller"),
            invalidate = lang.t("invalidate"),
        );
    }
    ok(lang, lang.t("plugins"), "/admin/plugins", session, &body)
}

/// `POST /admin/plugins/{name}/invalidate` (field `caller`): forget what the plugin cached for
/// this caller, as `POST /api/v1/plugins/{name}/invalidate` does.
pub async fn invalidate(
    req: HttpRequest,
    state: web::Data<Belroute>,
    session: Ses,
    form: Posted,
) -> HttpResponse {
    let lang = Lang::of(&req);
    let name = req.match_info().get("name").unwrap_or_default();
    let raw = form.get("caller").trim();
    let caller = state.router.normaliser().normalise(raw);
    let message = if raw.is_empty() {
        notice("error", lang.t("type_caller"))
    } else if state.router.lookups().invalidate(Some(name), caller.key()) {
        tracing::info!(plugin = %escape(name), "console: cached answer for a caller invalidated");
        notice("ok", &format!("{name}: {}", lang.t("invalidated")))
    } else {
        notice("error", &format!("no plugin named `{name}`"))
    };
    plugins_page(lang, &state, &session, &message)
}

// ---------------------------------------------------------------------------------------------
// Subscriptions

/// `GET /admin/subscriptions`: each subscription's notifier, backlog and parked events.
pub async fn subscriptions(
    req: HttpRequest,
    state: web::Data<Belroute>,
    session: Ses,
) -> HttpResponse {
    let lang = Lang::of(&req);
    subscriptions_page(lang, &state, &session, String::new()).await
}

/// `POST /admin/subscriptions/{name}/requeue`: every parked event back to new, as
/// `POST /api/v1/subscriptions/{name}/requeue` does.
pub async fn requeue(req: HttpRequest, state: web::Data<Belroute>, session: Ses) -> HttpResponse {
    let lang = Lang::of(&req);
    let name = req.match_info().get("name").unwrap_or_default();
    let message = match admin::requeue(&state, name, None, BY_CONSOLE).await {
        Ok(n) => notice("ok", &format!("{name}: {n} {}", lang.t("requeued"))),
        Err(e) => refused(lang, &e),
    };
    subscriptions_page(lang, &state, &session, message).await
}

/// Who changed a subscription, for the log.
const BY_CONSOLE: &str = "console";

/// The events a subscription can take, as the form's checkboxes.
const EVENT_KINDS: [&str; 2] = ["call.routed", "call.agent"];

/// A notice per message of a refused change; the database's trouble as the usual notice.
fn refused(lang: Lang, error: &AdminError) -> String {
    match error {
        AdminError::Invalid(list) => list.iter().map(|m| notice("error", m)).collect(),
        AdminError::Database(e) => {
            tracing::warn!("console: call log database: {e}");
            notice("error", lang.t("database_unavailable"))
        }
        other => notice("error", &other.to_string()),
    }
}

/// A new API key, shown once.
fn key_notice(lang: Lang, name: &str, key: &str) -> String {
    format!(
        "<p class=\"notice ok\" role=\"status\">{} <strong>{}</strong>: <code id=\"api-key\">{}</code><br>{}</p>",
        lang.t("api_key_for"),
        esc(name),
        esc(key),
        lang.t("api_key_once"),
    )
}

/// The settings the Subscriptions form gives, as the admin API's JSON: a whole spec for a
/// new subscription (`stored` is `None`), or a merge patch of the stored one, whose header
/// names are `stored` (a header line with a blank value keeps its stored value; a stored
/// header not listed is removed).
fn form_settings(form: &Form, stored: Option<&[String]>) -> Result<Map<String, Value>, String> {
    let mut settings = Map::new();
    settings.insert("status".into(), Value::String(form.get("status").into()));
    let endpoint = form.get("endpoint").trim();
    if !endpoint.is_empty() {
        settings.insert("endpoint".into(), Value::String(endpoint.into()));
    } else if stored.is_some() {
        settings.insert("endpoint".into(), Value::Null);
    }
    let mut headers = Map::new();
    for line in lines(form.get("headers")) {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() {
            return Err(format!(
                "`headers`: the line `{line}` has no header name: write one header per line as `Name: value`"
            ));
        }
        if value.is_empty() {
            if stored.is_some_and(|names| names.iter().any(|n| n == name)) {
                continue; // blank: keeps the stored value
            }
            return Err(format!(
                "`headers`: `{name}` has no value: write it as `{name}: value`"
            ));
        }
        headers.insert(name.into(), Value::String(value.into()));
    }
    if let Some(names) = stored {
        let listed: Vec<&str> = lines(form.get("headers"))
            .map(|l| l.split_once(':').map_or(l, |(n, _)| n).trim())
            .collect();
        for name in names {
            if !listed.contains(&name.as_str()) {
                headers.insert(name.clone(), Value::Null);
            }
        }
    }
    settings.insert("headers".into(), Value::Object(headers));
    let events: Vec<Value> = form
        .0
        .iter()
        .filter(|(k, _)| k == "events")
        .map(|(_, v)| Value::String(v.clone()))
        .collect();
    settings.insert("events".into(), Value::Array(events));
    Ok(settings)
}

/// The form's fields: `existing` filled in (header values never shown), or empty for a new one.
fn subscription_fields(lang: Lang, existing: Option<&Subscription>) -> String {
    let active = existing.is_none_or(|s| s.config.status == crate::config::Status::Active);
    let mut out = String::new();
    if existing.is_none() {
        let _ = write!(
            out,
            "<label>{}<input name=\"name\" required pattern=\"[A-Za-z0-9_-]+\" placeholder=\"crm\"></label>",
            lang.t("name")
        );
    }
    let _ = write!(
        out,
        "<label>{status}<select name=\"status\"><option value=\"active\"{a}>active</option><option value=\"off\"{o}>off</option></select></label>\
         <label>{channel}<input value=\"RestHook\" readonly></label>\
         <label>{endpoint}<input name=\"endpoint\" type=\"url\" value=\"{endpoint_v}\" placeholder=\"https://crm.example.nl/belroute/notify\"></label>\
         <label>{payload}<input value=\"notification-only\" readonly></label>\
         <label>{headers}<textarea name=\"headers\" placeholder=\"Authorization: Bearer …\">{headers_v}</textarea></label>\
         <fieldset><legend>{events}</legend>",
        status = lang.t("status"),
        a = if active { " selected" } else { "" },
        o = if active { "" } else { " selected" },
        channel = lang.t("channel_type"),
        endpoint = lang.t("endpoint"),
        endpoint_v = esc(existing
            .and_then(|s| s.config.endpoint.as_ref())
            .map_or("", |e| e.written())),
        payload = lang.t("payload_type"),
        headers = if existing.is_some() {
            lang.t("headers_keep")
        } else {
            lang.t("headers")
        },
        headers_v = esc(&existing.map_or_else(String::new, |s| {
            s.config
                .headers
                .keys()
                .map(|name| format!("{name}: \n"))
                .collect::<String>()
        })),
        events = lang.t("events"),
    );
    let taken: Vec<String> = existing.map_or_else(
        || EVENT_KINDS.iter().map(|k| (*k).to_string()).collect(),
        |s| {
            s.config
                .events
                .iter()
                .filter_map(|e| serde_json::to_value(e).ok())
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        },
    );
    for kind in EVENT_KINDS {
        let _ = write!(
            out,
            "<label><input type=\"checkbox\" name=\"events\" value=\"{kind}\"{}> {kind}</label>",
            if taken.iter().any(|t| t == kind) {
                " checked"
            } else {
                ""
            }
        );
    }
    out.push_str("</fieldset>");
    out
}

/// `POST /admin/subscriptions`: a new stored subscription from the form; its API key shown once.
pub async fn create_subscription(
    req: HttpRequest,
    state: web::Data<Belroute>,
    session: Ses,
    form: Posted,
) -> HttpResponse {
    let lang = Lang::of(&req);
    let name = form.get("name").trim().to_string();
    let message = if name.is_empty() {
        notice("error", lang.t("name_missing"))
    } else {
        match form_settings(&form, None) {
            Err(problem) => notice("error", &problem),
            Ok(settings) => match admin::create(&state, &name, settings, BY_CONSOLE).await {
                Ok(created) => key_notice(lang, &name, &created.key),
                Err(e) => refused(lang, &e),
            },
        }
    };
    subscriptions_page(lang, &state, &session, message).await
}

/// `POST /admin/subscriptions/{name}`: the edit form of a stored subscription.
pub async fn update_subscription(
    req: HttpRequest,
    state: web::Data<Belroute>,
    session: Ses,
    form: Posted,
) -> HttpResponse {
    let lang = Lang::of(&req);
    let name = req.match_info().get("name").unwrap_or_default();
    let stored: Vec<String> = state
        .subscriptions
        .get(name)
        .map(|s| s.config.headers.keys().cloned().collect())
        .unwrap_or_default();
    let message = match form_settings(&form, Some(&stored)) {
        Err(problem) => notice("error", &problem),
        Ok(patch) => match admin::update(&state, name, patch, BY_CONSOLE).await {
            Ok(()) => notice("ok", &format!("{name}: {}", lang.t("changes_saved"))),
            Err(e) => refused(lang, &e),
        },
    };
    subscriptions_page(lang, &state, &session, message).await
}

/// `POST /admin/subscriptions/{name}/test`: one test notification; the status and latency.
pub async fn test_subscription(
    req: HttpRequest,
    state: web::Data<Belroute>,
    session: Ses,
) -> HttpResponse {
    let lang = Lang::of(&req);
    let name = req.match_info().get("name").unwrap_or_default();
    let message = match admin::send_test(&state, name, BY_CONSOLE).await {
        Ok(tested) => {
            let outcome = &tested.outcome;
            let status = outcome
                .status
                .map_or_else(|| "—".to_string(), |s| s.to_string());
            let mut text = format!(
                "{name}: {} {} · HTTP {status} · {} ms",
                lang.t("test_sent"),
                tested.endpoint.as_deref().unwrap_or(""),
                outcome.latency_ms
            );
            if let Some(error) = &outcome.error {
                let _ = write!(text, " · {error}");
            }
            notice(if outcome.delivered { "ok" } else { "error" }, &text)
        }
        Err(e) => refused(lang, &e),
    };
    subscriptions_page(lang, &state, &session, message).await
}

/// `POST /admin/subscriptions/{name}/rotate-key`: a new API key (shown once); the old one is
/// still taken for an hour, as the API's default grace.
pub async fn rotate_subscription_key(
    req: HttpRequest,
    state: web::Data<Belroute>,
    session: Ses,
) -> HttpResponse {
    let lang = Lang::of(&req);
    let name = req.match_info().get("name").unwrap_or_default();
    let message = match admin::rotate_key(&state, name, admin::GRACE_DEFAULT, BY_CONSOLE).await {
        Ok(rotated) => {
            let mut text = key_notice(lang, name, &rotated.key);
            if let Some(until) = rotated.previous_valid_until {
                let _ = write!(
                    text,
                    "<p class=\"muted\">{} {}</p>",
                    lang.t("previous_key_until"),
                    esc(&local(&state, until))
                );
            }
            text
        }
        Err(e) => refused(lang, &e),
    };
    subscriptions_page(lang, &state, &session, message).await
}

async fn subscriptions_page(
    lang: Lang,
    state: &Belroute,
    session: &Session,
    message: String,
) -> HttpResponse {
    let mut body = message;
    let _ = write!(
        body,
        "<details class=\"card\" id=\"new-subscription\"><summary>{new}</summary>\
         <form method=\"post\" action=\"/admin/subscriptions\" class=\"try\">{csrf}{fields}\
         <button>{create}</button></form></details>",
        new = lang.t("new_subscription"),
        csrf = csrf_field(session),
        fields = subscription_fields(lang, None),
        create = lang.t("create"),
    );
    let mut any = false;
    for subscription in state.subscriptions.all() {
        any = true;
        let notifier = subscription.notifier_state();
        let counts = state.storage.delivery_counts(&subscription.name).await;
        let deliveries = match &counts {
            Ok(counts) => {
                let count = |status: &str| {
                    counts
                        .iter()
                        .filter(|(s, _)| s == status)
                        .map(|(_, n)| n)
                        .sum::<i64>()
                };
                let mut text = format!(
                    "<dt>{}</dt><dd>{}</dd><dt>{}</dt><dd{}>{}</dd><dt>{}</dt><dd class=\"mono\">",
                    lang.t("backlog"),
                    count("new") + count("claimed"),
                    lang.t("parked"),
                    if count("max-retries-exceeded") > 0 {
                        " class=\"down\""
                    } else {
                        ""
                    },
                    count("max-retries-exceeded"),
                    lang.t("deliveries"),
                );
                for (status, n) in counts {
                    let _ = write!(text, "{}: {n} &nbsp; ", esc(status));
                }
                text.push_str("</dd>");
                text
            }
            Err(e) => {
                tracing::warn!("console: call log database: {e}");
                format!(
                    "<dt>{}</dt><dd>{}</dd>",
                    lang.t("deliveries"),
                    lang.t("database_unavailable")
                )
            }
        };
        let events: Vec<String> = subscription
            .config
            .events
            .iter()
            .filter_map(|e| serde_json::to_value(e).ok())
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let _ = write!(
            body,
            "<section id=\"subscription-{id}\"><h2>{name}</h2><dl class=\"facts\">\
             <dt>{status}</dt><dd class=\"status-{status_v}\">{status_v}</dd>\
             <dt>endpoint</dt><dd class=\"mono\">{endpoint}</dd><dt>events</dt><dd class=\"mono\">{events}</dd>\
             <dt>{last_error}</dt><dd>{last_error_v}</dd>\
             <dt>{in_a_row}</dt><dd>{in_a_row_v}</dd><dt>{sent}</dt><dd>{sent_v}</dd>{deliveries}</dl>\
             <form method=\"post\" action=\"/admin/subscriptions/{path}/requeue\" class=\"filters\">{csrf}\
             <button>{requeue}</button></form>{manage}</section>",
            manage = manage(lang, session, &subscription),
            path = esc(&url_part(&subscription.name)),
            csrf = csrf_field(session),
            requeue = lang.t("requeue"),
            id = esc(&subscription.name),
            name = esc(&subscription.name),
            status = lang.t("status"),
            status_v = esc(&notifier.status),
            endpoint = esc(&subscription
                .config
                .endpoint
                .as_ref()
                .map(|e| e.written().to_string())
                .unwrap_or_else(|| "—".into())),
            events = esc(&events.join(", ")),
            last_error = lang.t("last_error"),
            last_error_v = esc(notifier.last_error.as_deref().unwrap_or("—")),
            in_a_row = lang.t("failures_in_a_row"),
            in_a_row_v = notifier.consecutive_failures,
            sent = lang.t("notifications"),
            sent_v = notifier.notifications_sent,
        );
    }
    if !any {
        let _ = write!(
            body,
            "<p class=\"muted\">{}</p>",
            lang.t("no_subscriptions")
        );
    }
    ok(
        lang,
        lang.t("subscriptions"),
        "/admin/subscriptions",
        session,
        &body,
    )
}

/// A stored subscription's edit form and its test and rotate-key buttons; for one from
/// belroute.yaml, only where it comes from.
fn manage(lang: Lang, session: &Session, subscription: &Subscription) -> String {
    if subscription.source == Source::File {
        return format!("<p class=\"muted\">{}</p>", lang.t("from_file"));
    }
    let path = esc(&url_part(&subscription.name));
    let csrf = csrf_field(session);
    format!(
        "<details class=\"card\"><summary>{edit}</summary>\
         <form method=\"post\" action=\"/admin/subscriptions/{path}\" class=\"try\">{csrf}{fields}\
         <button>{save}</button></form></details>\
         <form method=\"post\" action=\"/admin/subscriptions/{path}/test\" class=\"filters\">{csrf}\
         <button>{test}</button></form>\
         <form method=\"post\" action=\"/admin/subscriptions/{path}/rotate-key\" class=\"filters\">{csrf}\
         <button>{rotate}</button></form>",
        edit = lang.t("edit"),
        fields = subscription_fields(lang, Some(subscription)),
        save = lang.t("save"),
        test = lang.t("send_test"),
        rotate = lang.t("rotate_key"),
    )
}
