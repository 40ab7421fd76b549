//! The page around each view, and the small pieces every page uses.
//!
//! Pages are maud templates: `html! { … }` is checked when belroute compiles, and every value
//! spliced into it — a rule name, a caller's field, a plugin's error — is escaped unless it
//! is already [`Markup`]. Text and markup are different types, so a missed escape does not
//! compile. (maud rather than askama: the console's pages are many small pieces built from
//! typed views, which compose as plain functions returning `Markup`; no template files or
//! derive structs stand between a view and its HTML, and the output is a `String` written
//! in one pass, as fast as the `write!` it replaces.)

use chrono_tz::Tz;
use maud::{DOCTYPE, Markup, html};

use super::labels::Lang;
use super::session::Session;
use crate::access::Permission;

/// The pages of the navigation bar: `(path, label key, what the session must be allowed)`.
const NAV: [(&str, &str, Permission); 7] = [
    ("/admin", "overview", Permission::Console),
    ("/admin/calls", "calls", Permission::Console),
    ("/admin/try", "try", Permission::Console),
    ("/admin/plugins", "plugins", Permission::Console),
    ("/admin/subscriptions", "subscriptions", Permission::Console),
    ("/admin/audit", "audit", Permission::Console),
    ("/admin/tokens", "tokens", Permission::Administer),
];

/// A whole page: head, navigation (when logged in), `body`.
pub fn page(
    lang: Lang,
    title: &str,
    here: &str,
    session: Option<&Session>,
    body: Markup,
) -> Markup {
    let other = match lang {
        Lang::En => Lang::Nl,
        Lang::Nl => Lang::En,
    };
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (lang.t("console")) }
                link rel="stylesheet" href="/admin/assets/console.css";
                script src="/admin/assets/console.js" defer {}
            }
            body {
                header {
                    strong { (lang.t("console")) }
                    nav {
                        @if let Some(session) = session {
                            @for (path, key, need) in NAV {
                                @if session.may(need) {
                                a href=(path) aria-current=[(path == here).then_some("page")] { (lang.t(key)) }
                                }
                            }
                            span.muted.who title=(session.principal.role.as_str()) { (session.principal.name) " (" (session.principal.role.as_str()) ")" }
                            form method="post" action="/admin/logout" class="inline" {
                                (csrf(session))
                                button { (lang.t("logout")) }
                            }
                        }
                        a.lang href={ "/admin/lang/" (other.code()) "?to=" (url_part(here)) } hreflang=(other.code()) {
                            (lang.t("lang_other"))
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden field every form of a session carries.
pub fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// How a notice reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Ok,
    Error,
}

/// A notice box.
pub fn notice(tone: Tone, text: &str) -> Markup {
    let class = match tone {
        Tone::Ok => "notice ok",
        Tone::Error => "notice error",
    };
    html! { p class=(class) role="status" { (text) } }
}

/// The login form; `error` shown above it.
pub fn login_form(lang: Lang, error: Option<&str>) -> Markup {
    let body = html! {
        @if let Some(error) = error { (notice(Tone::Error, error)) }
        form method="post" action="/admin/login" class="card" {
            p { (lang.t("login_hint")) }
            label {
                (lang.t("token")) " "
                input type="password" name="token" id="token" autocomplete="current-password" required autofocus;
            }
            button id="login" { (lang.t("login")) }
        }
    };
    page(lang, lang.t("login"), "/admin", None, body)
}

/// A path segment or query value made safe for a URL (the template escapes it for the
/// attribute).
pub fn url_part(text: &str) -> String {
    /// Everything but RFC 3986's unreserved characters.
    const ENCODED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(text, ENCODED).to_string()
}

/// Microseconds as `1.2 ms`.
pub fn ms(micros: i64) -> String {
    format!("{:.1} ms", micros as f64 / 1000.0)
}

/// A stored time in the server's zone (`timezone:` in belroute.yaml).
pub fn local(zone: Tz, ms: i64) -> String {
    crate::time::local(zone, ms)
}
