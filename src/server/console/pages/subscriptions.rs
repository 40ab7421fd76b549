//! `/admin/subscriptions`: each subscription's notifier, backlog and parked events; the form
//! that creates and changes stored ones (through `subscriptions::admin`, as the API does).

use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde_json::{Map, Value};

use super::{Posted, Ses, ok};
use crate::app::Belroute;
use crate::read::subscriptions::SubscriptionView;
use crate::server::console::labels::Lang;
use crate::server::console::layout::{Tone, csrf, local, notice, url_part};
use crate::server::console::{Form, Session};
use crate::storage::DeliveryStatus;
use crate::subscriptions::admin::{self, AdminError};
use crate::subscriptions::{Source, Status, Subscription};

/// The events a subscription can take, as the form's checkboxes.
const EVENT_KINDS: [&str; 2] = ["call.routed", "call.agent"];

/// `GET /admin/subscriptions`.
pub async fn show(req: HttpRequest, state: web::Data<Belroute>, session: Ses) -> HttpResponse {
    let lang = Lang::of(&req);
    render(lang, &state, &session, html! {}).await
}

/// A notice per message of a refused change; the database's trouble as the usual notice.
fn refused(lang: Lang, error: AdminError) -> Markup {
    match error {
        AdminError::Invalid(list) => html! { @for m in &list { (notice(Tone::Error, m)) } },
        AdminError::Database(e) => {
            tracing::warn!("console: call log database: {e}");
            notice(Tone::Error, lang.t("database_unavailable"))
        }
        other => notice(Tone::Error, &other.to_string()),
    }
}

/// A new API key, shown once.
fn key_notice(lang: Lang, name: &str, key: &str) -> Markup {
    html! {
        p.notice.ok role="status" {
            (lang.t("api_key_for")) " " strong { (name) } ": " code #api-key { (key) }
            br; (lang.t("api_key_once"))
        }
    }
}

/// Non-empty lines of a text area.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty())
}

/// The settings the form gives, as the admin API's JSON: a whole spec for a new subscription
/// (`stored` is `None`), or a merge patch of the stored one, whose header names are `stored`
/// (a header line with a blank value keeps its stored value; a stored header not listed is
/// removed).
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
fn fields(lang: Lang, existing: Option<&Subscription>) -> Markup {
    let active = existing.is_none_or(|s| s.config.status == Status::Active);
    let endpoint = existing
        .and_then(|s| s.config.endpoint.as_ref())
        .map_or("", |e| e.written());
    let header_names: String = existing.map_or_else(String::new, |s| {
        s.config
            .headers
            .keys()
            .map(|name| format!("{name}: \n"))
            .collect()
    });
    let taken: Vec<&str> = match existing {
        None => EVENT_KINDS.to_vec(),
        Some(s) => s.config.events.iter().map(|e| e.as_str()).collect(),
    };
    html! {
        @if existing.is_none() {
            label { (lang.t("name")) input name="name" required pattern="[A-Za-z0-9_-]+" placeholder="crm"; }
        }
        label {
            (lang.t("status"))
            select name="status" {
                option value="active" selected[active] { (lang.t("status_active")) }
                option value="off" selected[!active] { (lang.t("status_off")) }
            }
        }
        label { (lang.t("channel_type")) input value="RestHook" readonly; }
        label { (lang.t("endpoint")) input name="endpoint" type="url" value=(endpoint) placeholder="https://crm.example.nl/belroute/notify"; }
        label { (lang.t("payload_type")) input value="notification-only" readonly; }
        label {
            @if existing.is_some() { (lang.t("headers_keep")) } @else { (lang.t("headers")) }
            textarea name="headers" placeholder="Authorization: Bearer …" { (header_names) }
        }
        fieldset {
            legend { (lang.t("events")) }
            @for kind in EVENT_KINDS {
                label.check { input type="checkbox" name="events" value=(kind) checked[taken.contains(&kind)]; " " (kind) }
            }
        }
    }
}

/// A stored subscription's edit form and its test and rotate-key buttons; for one from
/// belroute.yaml, only where it comes from.
fn manage(lang: Lang, session: &Session, subscription: &Subscription) -> Markup {
    if !session.may(crate::access::Permission::Administer) {
        return html! {};
    }
    if subscription.source == Source::File {
        return html! { p.muted { (lang.t("from_file")) } };
    }
    let path = url_part(&subscription.name);
    html! {
        details.card {
            summary { (lang.t("edit")) }
            form method="post" action={ "/admin/subscriptions/" (path) } class="try" {
                (csrf(session)) (fields(lang, Some(subscription)))
                button { (lang.t("save")) }
            }
        }
        div.actions {
            form method="post" action={ "/admin/subscriptions/" (path) "/test" } {
                (csrf(session)) button { (lang.t("send_test")) }
            }
            form method="post" action={ "/admin/subscriptions/" (path) "/rotate-key" } {
                (csrf(session)) button { (lang.t("rotate_key")) }
            }
        }
    }
}

/// A notifier's status in words.
pub fn notifier_status(lang: Lang, status: &str) -> &'static str {
    match status {
        "active" => lang.t("status_active"),
        "off" => lang.t("status_off"),
        "error" => lang.t("status_error"),
        _ => lang.t("reason_other"),
    }
}

/// A delivery status in words.
pub fn delivery_status(lang: Lang, status: &str) -> &'static str {
    match status {
        "new" => lang.t("delivery_new"),
        "claimed" => lang.t("delivery_claimed"),
        "success" => lang.t("delivery_success"),
        "max-retries-exceeded" => lang.t("delivery_parked"),
        _ => lang.t("reason_other"),
    }
}

fn subscription(
    lang: Lang,
    session: &Session,
    subscription: &Subscription,
    view: Result<SubscriptionView, sqlx::Error>,
) -> Markup {
    let notifier = subscription.notifier_state();
    let events: Vec<&str> = subscription
        .config
        .events
        .iter()
        .map(|e| e.as_str())
        .collect();
    let endpoint = subscription
        .config
        .endpoint
        .as_ref()
        .map_or("—", |e| e.written());
    html! {
        section id={ "subscription-" (subscription.name) } {
            h2 { (subscription.name) }
            dl.facts {
                dt { (lang.t("status")) }
                dd class={ "status-" (notifier.status) } { (notifier_status(lang, &notifier.status)) }
                dt { (lang.t("endpoint")) } dd.mono { (endpoint) }
                dt { (lang.t("events")) } dd.mono { (events.join(", ")) }
                dt { (lang.t("last_error")) } dd { (notifier.last_error.as_deref().unwrap_or("—")) }
                dt { (lang.t("failures_in_a_row")) } dd { (notifier.consecutive_failures) }
                dt { (lang.t("notifications")) } dd { (notifier.notifications_sent) }
                @match &view {
                    Ok(view) => {
                        dt { (lang.t("backlog")) } dd { (view.backlog()) }
                        dt { (lang.t("parked")) }
                        @let parked = view.count(DeliveryStatus::MaxRetriesExceeded);
                        dd class=[(parked > 0).then_some("down")] { (parked) }
                        dt { (lang.t("deliveries")) }
                        dd {
                            @if view.deliveries.is_empty() { "—" }
                            @for (status, n) in &view.deliveries {
                                span.count title=(status) { (delivery_status(lang, status)) ": " (n) } " "
                            }
                        }
                    }
                    Err(_) => { dt { (lang.t("deliveries")) } dd { (lang.t("database_unavailable")) } }
                }
            }
            @if session.may(crate::access::Permission::Administer) {
                div.actions {
                    form method="post" action={ "/admin/subscriptions/" (url_part(&subscription.name)) "/requeue" } {
                        (csrf(session)) button { (lang.t("requeue")) }
                    }
                }
            }
            (manage(lang, session, subscription))
        }
    }
}

async fn render(lang: Lang, state: &Belroute, session: &Session, message: Markup) -> HttpResponse {
    let mut sections = Vec::new();
    for s in state.subscriptions.all() {
        let view = SubscriptionView::of(&state.storage, &s).await;
        if let Err(e) = &view {
            tracing::warn!("console: call log database: {e}");
        }
        sections.push(subscription(lang, session, &s, view));
    }
    let body = html! {
        (message)
        @if session.may(crate::access::Permission::Administer) {
            details.card #new-subscription {
                summary { (lang.t("new_subscription")) }
                form method="post" action="/admin/subscriptions" class="try" {
                    (csrf(session)) (fields(lang, None))
                    button { (lang.t("create")) }
                }
            }
        }
        @if sections.is_empty() { p.muted { (lang.t("no_subscriptions")) } }
        @for section in sections { (section) }
    };
    ok(
        lang,
        lang.t("subscriptions"),
        "/admin/subscriptions",
        session,
        body,
    )
}

/// `POST /admin/subscriptions`: a new stored subscription from the form; its API key shown once.
pub async fn create(
    req: HttpRequest,
    state: web::Data<Belroute>,
    session: Ses,
    form: Posted,
) -> HttpResponse {
    let lang = Lang::of(&req);
    let name = form.get("name").trim().to_string();
    let message = if name.is_empty() {
        notice(Tone::Error, lang.t("name_missing"))
    } else {
        match form_settings(&form, None) {
            Err(problem) => notice(Tone::Error, &problem),
            Ok(settings) => {
                match admin::create(&state.admin(), &name, settings, &session.principal.name).await
                {
                    Ok(created) => key_notice(lang, &name, &created.key),
                    Err(e) => refused(lang, e),
                }
            }
        }
    };
    render(lang, &state, &session, message).await
}

/// `POST /admin/subscriptions/{name}`: the edit form of a stored subscription.
pub async fn update(
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
        Err(problem) => notice(Tone::Error, &problem),
        Ok(patch) => {
            match admin::update(&state.admin(), name, patch, &session.principal.name).await {
                Ok(()) => notice(Tone::Ok, &format!("{name}: {}", lang.t("changes_saved"))),
                Err(e) => refused(lang, e),
            }
        }
    };
    render(lang, &state, &session, message).await
}

/// `POST /admin/subscriptions/{name}/test`: one test notification; the status and latency.
pub async fn test(req: HttpRequest, state: web::Data<Belroute>, session: Ses) -> HttpResponse {
    let lang = Lang::of(&req);
    let name = req.match_info().get("name").unwrap_or_default();
    let message = match admin::send_test(&state.admin(), name, &session.principal.name).await {
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
                text.push_str(&format!(" · {error}"));
            }
            notice(
                if outcome.delivered {
                    Tone::Ok
                } else {
                    Tone::Error
                },
                &text,
            )
        }
        Err(e) => refused(lang, e),
    };
    render(lang, &state, &session, message).await
}

/// `POST /admin/subscriptions/{name}/rotate-key`: a new API key (shown once); the old one is
/// still taken for an hour, as the API's default grace.
pub async fn rotate_key(
    req: HttpRequest,
    state: web::Data<Belroute>,
    session: Ses,
) -> HttpResponse {
    let lang = Lang::of(&req);
    let name = req.match_info().get("name").unwrap_or_default();
    let message = match admin::rotate_key(
        &state.admin(),
        name,
        admin::GRACE_DEFAULT,
        &session.principal.name,
    )
    .await
    {
        Ok(rotated) => html! {
            (key_notice(lang, name, &rotated.key))
            @if let Some(until) = rotated.previous_valid_until {
                p.muted { (lang.t("previous_key_until")) " " (local(state.config.timezone.0, until)) }
            }
        },
        Err(e) => refused(lang, e),
    };
    render(lang, &state, &session, message).await
}

/// `POST /admin/subscriptions/{name}/requeue`: every parked event back to new, as
/// `POST /api/v1/subscriptions/{name}/requeue` does.
pub async fn requeue(req: HttpRequest, state: web::Data<Belroute>, session: Ses) -> HttpResponse {
    let lang = Lang::of(&req);
    let name = req.match_info().get("name").unwrap_or_default();
    let message = match admin::requeue(&state.admin(), name, None, &session.principal.name).await {
        Ok(n) => notice(Tone::Ok, &format!("{name}: {n} {}", lang.t("requeued"))),
        Err(e) => refused(lang, e),
    };
    render(lang, &state, &session, message).await
}
