//! `GET /admin`: the rule sets, what was refused or quarantined, the last hour, the call log.

use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};

use super::{Ses, ok};
use crate::app::Belroute;
use crate::read::calls::last_hour;
use crate::read::rulesets::{self, QuarantinedView, RefusedView, Released, RuleSetView};
use crate::replay::ReloadReplay;
use crate::server::console::Session;
use crate::server::console::labels::Lang;
use crate::server::console::layout::{Tone, csrf, local, notice, url_part};
use crate::server::console::trace::reason;

/// `GET /admin`.
pub async fn show(req: HttpRequest, state: web::Data<Belroute>, session: Ses) -> HttpResponse {
    let lang = Lang::of(&req);
    render(lang, &state, &session, html! {}).await
}

/// `POST /admin/rulesets/{name}/release`: ends a rule set's quarantine, as
/// `POST /api/v1/rulesets/{name}/release` does.
pub async fn release(req: HttpRequest, state: web::Data<Belroute>, session: Ses) -> HttpResponse {
    let lang = Lang::of(&req);
    let name = req.match_info().get("name").unwrap_or_default();
    let message = match rulesets::release(&state.store.catalog(), name, &session.principal.name) {
        Released::Released => {
            crate::server::changes::audit(
                &state,
                &session.principal.name,
                "ruleset.release",
                name,
                serde_json::json!({}),
            )
            .await;
            notice(Tone::Ok, &format!("{name}: {}", lang.t("released")))
        }
        Released::NotQuarantined => {
            notice(Tone::Ok, &format!("{name}: {}", lang.t("not_quarantined")))
        }
        Released::NoSuchRuleSet => notice(
            Tone::Error,
            &format!("`{name}`: {}", lang.t("unknown_ruleset")),
        ),
    };
    render(lang, &state, &session, message).await
}

/// The replay after a reload, in the operator's language.
fn replay_text(lang: Lang, replay: &ReloadReplay) -> String {
    let s = &replay.summary;
    let mut text = lang
        .t("replay_summary")
        .replace("{old}", &crate::replay::short(&replay.old_version))
        .replace("{new}", &crate::replay::short(&replay.new_version))
        .replace("{n}", &s.replayed.to_string())
        .replace("{changed}", &s.changed.to_string());
    if !s.changes.is_empty() {
        let rows: Vec<String> = s
            .changes
            .iter()
            .map(|c| format!("{}→{} {}", c.from.route, c.to.route, c.calls))
            .collect();
        text.push_str(": ");
        text.push_str(&rows.join(", "));
    }
    if s.unrecorded.calls > 0 {
        text.push_str("; ");
        text.push_str(
            &lang
                .t("replay_unrecorded")
                .replace("{n}", &s.unrecorded.calls.to_string()),
        );
    }
    let skipped: u64 = s.not_compared.values().sum();
    if skipped > 0 {
        text.push_str("; ");
        text.push_str(
            &lang
                .t("replay_not_compared")
                .replace("{n}", &skipped.to_string()),
        );
    }
    if s.stopped.is_some() {
        text.push_str("; ");
        text.push_str(lang.t("replay_stopped"));
    }
    text
}

fn rulesets(lang: Lang, state: &Belroute, session: &Session, views: &[RuleSetView]) -> Markup {
    let zone = state.config.timezone.0;
    html! {
        section {
            h2 { (lang.t("rulesets")) }
            @if session.may(crate::access::Permission::ChangeRules) {
                p.actions { a.button href="/admin/rulesets/new" #new-ruleset { (lang.t("new_ruleset")) } }
            }
            div.scroll {
                table #rulesets {
                    thead { tr {
                        th { (lang.t("ruleset")) } th { (lang.t("version")) } th.num { (lang.t("rules")) }
                        th.wide { (lang.t("file")) } th.wide { (lang.t("saved")) } th { (lang.t("default")) }
                        th.num { (lang.t("deadline_hits")) }
                    } }
                    tbody {
                        @for set in views {
                            tr {
                                td { strong { a href={ "/admin/rulesets/" (url_part(&set.name)) } { (set.name) } } br; span.muted { (set.description) } }
                                td.mono title=(set.version) { (crate::replay::short(&set.version)) }
                                td.num { (set.rules.len()) }
                                td.wide.mono { (set.file.display().to_string()) }
                                td.wide { (set.saved_ms.map(|ms| local(zone, ms)).unwrap_or_default()) }
                                td.mono { (set.default) }
                                td.num { (set.deadline_hits) }
                            }
                            @if let Some(replay) = &set.last_replay {
                                tr.replay-row {
                                    td colspan="7" {
                                        span.replay { (lang.t("last_replay")) ": " (replay_text(lang, replay)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Every instance on the database and the version of each rule set it serves: shown when
/// there is more than this one, or the rules come from the database.
fn instances(lang: Lang, state: &Belroute) -> Markup {
    let list = state.cluster.instances();
    let shared = state.config.rules.source == crate::config::RulesSource::Database;
    if list.len() < 2 && !shared {
        return html! {};
    }
    let zone = state.config.timezone.0;
    html! {
        section #instances {
            h2 { (lang.t("instances")) }
            div.scroll {
                table {
                    thead { tr { th { (lang.t("instance")) } th { (lang.t("seen")) } th { (lang.t("serving_versions")) } } }
                    tbody {
                        @for instance in &list {
                            tr {
                                td.mono {
                                    (instance.id)
                                    @if instance.id == state.cluster.id { " " span.up { (lang.t("this_instance")) } }
                                    @if instance.draining { " " span.down { (lang.t("draining")) } }
                                }
                                td { (local(zone, instance.seen_at)) }
                                td.mono {
                                    @if let Some(versions) = instance.versions.as_object() {
                                        @for (name, version) in versions {
                                            (name) " " (crate::replay::short(version.as_str().unwrap_or_default())) " "
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn refused(lang: Lang, views: &[RefusedView]) -> Markup {
    html! {
        section #refused {
            h2 { (lang.t("refused")) }
            @if views.is_empty() { p.muted { (lang.t("refused_none")) } }
            @for refusal in views {
                h3 {
                    (refusal.ruleset) " "
                    span.muted {
                        "("
                        @match &refusal.serving_version {
                            Some(version) => { (lang.t("serving")) " " code { (crate::replay::short(version)) } }
                            None => { (lang.t("never_loaded")) }
                        }
                        ")"
                    }
                }
                pre.down { @for error in &refusal.errors { (error) "\n" } }
            }
        }
    }
}

fn quarantined(
    lang: Lang,
    state: &Belroute,
    session: &Session,
    views: &[QuarantinedView],
) -> Markup {
    let zone = state.config.timezone.0;
    html! {
        section #quarantined {
            h2 { (lang.t("quarantined")) }
            @if views.is_empty() { p.muted { (lang.t("quarantined_none")) } }
            @for q in views {
                h3 { (q.ruleset) " " span.muted { "(" (crate::replay::short(&q.version)) ")" } }
                p.down {
                    (lang.t("quarantine_answers")) " " code { (q.default) } " "
                    (lang.t("since")) " " (local(zone, crate::time::epoch_ms(q.status.since))) ": "
                    (lang.t("rule")) " " strong { (q.status.rule) } " — " (q.status.cause)
                    " (" (q.status.kills) "×)"
                }
                @if session.may(crate::access::Permission::ChangeRules) {
                    form method="post" action={ "/admin/rulesets/" (url_part(&q.ruleset)) "/release" } class="actions" {
                        (csrf(session))
                        button { (lang.t("release")) }
                    }
                }
            }
        }
    }
}

/// Calls per minute over the 60 minutes up to `now_minute`, as an inline SVG bar chart.
fn chart(lang: Lang, now_minute: i64, per_minute: &[(i64, i64)]) -> Markup {
    const W: i64 = 600;
    const H: i64 = 100;
    let first = now_minute - 59;
    let max = per_minute.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    html! {
        svg.chart #chart viewBox={ "0 0 " (W) " " (H + 14) } role="img" aria-label=(lang.t("calls_per_minute")) {
            @for (minute, n) in per_minute {
                @let i = minute - first;
                @if (0..60).contains(&i) {
                    @let h = (n * H / max).max(1);
                    rect x=(i * 10 + 1) y=(H - h) width="8" height=(h) { title { (n) } }
                }
            }
            line x1="0" y1=(H) x2=(W) y2=(H) stroke="#d9dee2" {}
            text x="0" y=(H + 12) { "−60 min" }
            text x=(W) y=(H + 12) text-anchor="end" { "0" }
            text x="2" y="10" { (max) }
        }
    }
}

async fn last_hour_section(lang: Lang, state: &Belroute) -> Markup {
    let now = crate::time::now_ms();
    let activity = match last_hour(&state.storage, now).await {
        Ok(activity) => activity,
        Err(e) => {
            tracing::warn!("console: call log database: {e}");
            return html! { section { h2 { (lang.t("last_hour")) } (notice(Tone::Error, lang.t("database_unavailable"))) } };
        }
    };
    let total: i64 = activity.per_minute.iter().map(|(_, n)| n).sum();
    let most = activity.routes.first().map_or(1, |(_, n)| (*n).max(1));
    html! {
        section {
            h2 { (lang.t("last_hour")) }
            h3 { (lang.t("calls_per_minute")) " " span.muted { "(" (total) ")" } }
            (chart(lang, now / 60_000, &activity.per_minute))
            h3 { (lang.t("routes")) }
            div.scroll {
                table #routes {
                    thead { tr { th { (lang.t("route")) } th.num { (lang.t("count")) } th {} } }
                    tbody {
                        @for (route, n) in &activity.routes {
                            tr { td.mono { (route) } td.num { (n) } td { meter min="0" max=(most) value=(n) {} } }
                        }
                        @if activity.routes.is_empty() {
                            tr { td colspan="3" class="muted" { (lang.t("no_calls")) } }
                        }
                    }
                }
            }
            @if !activity.reasons.is_empty() {
                h3 { (lang.t("reasons")) }
                ul.counts {
                    @for (code, n) in &activity.reasons {
                        li { span class={ "outcome-" (code) } title=(code) { (reason(lang, code)) } ": " (n) }
                    }
                }
            }
        }
    }
}

fn call_log(lang: Lang, state: &Belroute) -> Markup {
    let stats = state.call_log.stats();
    let kind = state.storage.kind();
    html! {
        section #call-log {
            h2 { (lang.t("call_log")) }
            dl.facts {
                dt { (lang.t("database")) }
                dd {
                    @if stats.database_up { span.up { (lang.t("up")) } } @else { span.down { (lang.t("down")) } }
                    " (" (kind) ")"
                }
                dt { (lang.t("queued")) } dd { (stats.queued) }
                dt { (lang.t("written")) } dd { (stats.written) }
                dt { (lang.t("spilled")) } dd { (stats.spilled) " / " (stats.replayed) }
                dt { (lang.t("dropped")) }
                dd { @if stats.dropped > 0 { span.down { (stats.dropped) } } @else { "0" } }
            }
        }
    }
}

async fn render(lang: Lang, state: &Belroute, session: &Session, message: Markup) -> HttpResponse {
    let catalog = state.store.catalog();
    let views = RuleSetView::all(&catalog, &state.metrics, &state.replays);
    let hour = last_hour_section(lang, state).await;
    let body = html! {
        (message)
        (rulesets(lang, state, session, &views))
        (instances(lang, state))
        (refused(lang, &RefusedView::all(&catalog)))
        (quarantined(lang, state, session, &QuarantinedView::all(&catalog)))
        (hour)
        (call_log(lang, state))
    };
    ok(lang, lang.t("overview"), "/admin", session, body)
}
