//! `GET /admin/plugins`: each plugin's kind, target, timeout and cache, its breaker and
//! counters; a "forget this caller" form where it caches.

use actix_web::{HttpRequest, HttpResponse, web};
use belroute_engine::text::escape;
use maud::{Markup, html};

use super::{Posted, Ses, ok};
use crate::app::Belroute;
use crate::read::plugins::PluginView;
use crate::server::console::Session;
use crate::server::console::labels::Lang;
use crate::server::console::layout::{Tone, csrf, notice, url_part};

/// `GET /admin/plugins`.
pub async fn show(req: HttpRequest, state: web::Data<Belroute>, session: Ses) -> HttpResponse {
    let lang = Lang::of(&req);
    render(lang, &state, &session, html! {})
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "—".into()
    } else {
        format!("{:.1} %", part as f64 * 100.0 / whole as f64)
    }
}

/// A breaker's state in words.
pub fn breaker(lang: Lang, state: &str) -> &'static str {
    match state {
        "closed" => lang.t("breaker_closed"),
        "open" => lang.t("breaker_open"),
        "half_open" => lang.t("breaker_half_open"),
        _ => lang.t("reason_other"),
    }
}

fn plugin(lang: Lang, session: &Session, p: &PluginView) -> Markup {
    let s = &p.status;
    let answered = s.cache_hits + s.requests + s.shared;
    html! {
        section id={ "plugin-" (s.name) } {
            h2 { (s.name) " " span.muted { "(" (p.kind) ")" } }
            dl.facts {
                dt { (lang.t("target")) } dd.mono { (p.target) }
                dt { (lang.t("timeout")) } dd { (p.timeout) }
                dt { (lang.t("cache")) }
                dd {
                    @if p.cache.on {
                        (lang.t("cache_ttl")) " " (p.cache.ttl) ", " (lang.t("cache_negative")) " " (p.cache.negative_ttl)
                        ", " (lang.t("cache_stale")) " " (p.cache.stale_if_error) ", " (lang.t("cache_max")) " " (p.cache.max_entries)
                    } @else {
                        span.muted { (lang.t("cache_off")) }
                    }
                }
                dt { (lang.t("breaker")) } dd class={ "breaker-" (s.breaker) } { (breaker(lang, s.breaker)) }
                dt { (lang.t("requests")) } dd { (s.requests) }
                dt { (lang.t("failures")) } dd { (s.failures) }
                dt { (lang.t("error_rate")) } dd { (percent(s.failures, s.requests)) }
                dt { (lang.t("cache_hits")) } dd { (s.cache_hits) }
                dt { (lang.t("hit_rate")) } dd { (percent(s.cache_hits, answered)) }
                dt { (lang.t("cached_entries")) } dd { (s.cached_entries) }
                dt { (lang.t("skipped_open")) } dd { (s.skipped) }
                dt { (lang.t("no_number")) } dd { (s.no_number) }
            }
            @if p.cache.on && session.may(crate::access::Permission::ChangeRules) {
                form method="post" action={ "/admin/plugins/" (url_part(&s.name)) "/invalidate" } class="actions" {
                    (csrf(session))
                    label { (lang.t("caller")) input name="caller" inputmode="tel" required; }
                    button { (lang.t("invalidate")) }
                }
            }
        }
    }
}

fn render(lang: Lang, state: &Belroute, session: &Session, message: Markup) -> HttpResponse {
    let views = PluginView::all(state.router.lookups(), &state.config.lookups);
    let body = html! {
        (message)
        @if views.is_empty() { p.muted { (lang.t("no_plugins")) } }
        @for view in &views { (plugin(lang, session, view)) }
    };
    ok(lang, lang.t("plugins"), "/admin/plugins", session, body)
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
        notice(Tone::Error, lang.t("type_caller"))
    } else if state.forget(Some(name), caller.key()).await {
        tracing::info!(plugin = %escape(name), "console: cached answer for a caller invalidated");
        notice(Tone::Ok, &format!("{name}: {}", lang.t("invalidated")))
    } else {
        notice(
            Tone::Error,
            &format!("`{name}`: {}", lang.t("no_such_plugin")),
        )
    };
    render(lang, &state, &session, message)
}
