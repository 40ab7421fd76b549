//! The operator's console at `/admin`: server-rendered HTML pages to see and try routing,
//! behind the admin token.
//!
//! One guard ([`console_guard`]) sits in front of every `/admin` path: without a live session
//! a page answers `401` with the login form; a `POST` must also carry the session's CSRF token
//! (`403` without it). Only the login itself, the language switch and the static assets pass
//! without a session. Sessions live in the database ([`session::Sessions`]); the cookie is HttpOnly,
//! SameSite=Strict and scoped to `/admin`. Without `admin.token` the console is off.

mod labels;
mod layout;
mod pages;
pub mod session;
mod trace;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};

use self::labels::{Lang, cookie};
use self::layout::{Tone, login_form, notice, page};
pub use self::session::{Session, Sessions};
use super::auth::{same_secret, url_pairs};
use super::throttle::{self, Kind, Throttle};
use crate::access::Permission;
use crate::app::Belroute;
use maud::Markup;

/// The fields of a console form, read (and its CSRF token checked) by the guard.
#[derive(Debug, Clone, Default)]
pub struct Form(pub Vec<(String, String)>);

impl Form {
    /// The first value of field `name`, or "".
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// The `/admin` routes, all behind [`console_guard`].
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .wrap(from_fn(console_guard))
            .route("", web::get().to(pages::overview::show))
            .route("/", web::get().to(pages::overview::show))
            .route("/login", web::post().to(login))
            .route("/login", web::get().to(to_overview))
            .route("/logout", web::post().to(logout))
            .route("/lang/{code}", web::get().to(switch_language))
            .route("/assets/console.css", web::get().to(css))
            .route("/assets/console.js", web::get().to(js))
            .route("/calls", web::get().to(pages::calls::show))
            .route("/calls/by-id/{id:\\d+}", web::get().to(pages::call::show))
            .route(
                "/calls/by-id/{id:\\d+}/reveal",
                web::post().to(pages::call::reveal),
            )
            .route("/calls/{uuid}", web::get().to(pages::call::show))
            .route("/calls/{uuid}/reveal", web::post().to(pages::call::reveal))
            .route("/try", web::get().to(pages::try_call::form))
            .route("/try", web::post().to(pages::try_call::run))
            .route(
                "/rulesets/{name}/release",
                web::post().to(pages::overview::release),
            )
            .route("/rulesets/new", web::get().to(pages::rulesets::new_form))
            .route("/rulesets/new", web::post().to(pages::rulesets::new_draft))
            .route("/rulesets/{name}", web::get().to(pages::rulesets::show))
            .route(
                "/rulesets/{name}/edit",
                web::get().to(pages::rulesets::edit),
            )
            .route(
                "/rulesets/{name}/edit",
                web::post().to(pages::rulesets::act),
            )
            .route(
                "/rulesets/{name}/hours",
                web::get().to(pages::rulesets::hours),
            )
            .route(
                "/rulesets/{name}/hours",
                web::post().to(pages::rulesets::form_draft),
            )
            .route(
                "/rulesets/{name}/holidays",
                web::get().to(pages::rulesets::holidays),
            )
            .route(
                "/rulesets/{name}/holidays",
                web::post().to(pages::rulesets::form_draft),
            )
            .route(
                "/rulesets/{name}/diff",
                web::get().to(pages::rulesets::compare_revisions),
            )
            .route(
                "/rulesets/{name}/revisions/{hash}",
                web::get().to(pages::rulesets::revision),
            )
            .route(
                "/rulesets/{name}/revisions/{hash}/restore",
                web::post().to(pages::rulesets::restore),
            )
            .route("/tokens", web::get().to(pages::tokens::show))
            .route("/tokens", web::post().to(pages::tokens::create))
            .route(
                "/tokens/{name}/delete",
                web::post().to(pages::tokens::delete),
            )
            .route("/audit", web::get().to(pages::audit::show))
            .route("/plugins", web::get().to(pages::plugins::show))
            .route(
                "/plugins/{name}/invalidate",
                web::post().to(pages::plugins::invalidate),
            )
            .route("/subscriptions", web::get().to(pages::subscriptions::show))
            .route(
                "/subscriptions",
                web::post().to(pages::subscriptions::create),
            )
            .route(
                "/subscriptions/{name}",
                web::post().to(pages::subscriptions::update),
            )
            .route(
                "/subscriptions/{name}/test",
                web::post().to(pages::subscriptions::test),
            )
            .route(
                "/subscriptions/{name}/rotate-key",
                web::post().to(pages::subscriptions::rotate_key),
            )
            .route(
                "/subscriptions/{name}/requeue",
                web::post().to(pages::subscriptions::requeue),
            ),
    );
}

/// Paths that need no session: logging in, the language switch (a preference cookie, no
/// data) and the stylesheet and script.
fn open_path(method: &Method, path: &str) -> bool {
    (method == Method::POST && path == "/admin/login")
        || (method == Method::GET
            && matches!(
                path,
                "/admin/login"
                    | "/admin/lang/en"
                    | "/admin/lang/nl"
                    | "/admin/assets/console.css"
                    | "/admin/assets/console.js"
            ))
}

/// What a console path needs of the session's role: changing rule sets, revealing numbers,
/// administering tokens and subscriptions; reading needs only a console login. A form
/// anywhere else is an admin's, so a new one cannot be forgotten open.
fn needs(method: &Method, path: &str) -> Permission {
    let parts: Vec<&str> = path
        .strip_prefix("/admin")
        .unwrap_or(path)
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    match (method, parts.as_slice()) {
        (_, ["tokens", ..]) => Permission::Administer,
        (_, ["rulesets", "new"])
        | (_, ["rulesets", _, "edit" | "hours" | "holidays"])
        | (_, ["rulesets", _, "revisions", _, "restore"]) => Permission::ChangeRules,
        (&Method::POST, ["rulesets", _, "release"] | ["plugins", _, "invalidate"]) => {
            Permission::ChangeRules
        }
        (&Method::POST, ["calls", .., "reveal"]) => Permission::RevealNumbers,
        (&Method::POST, ["logout"] | ["try"]) => Permission::Console,
        (&Method::POST, _) => Permission::Administer,
        _ => Permission::Console,
    }
}

/// The guard of every `/admin` path (`middleware::from_fn`): the console must be on, the
/// session live, and a `POST` must carry the session's CSRF token. Hands the handler the
/// [`Session`] and, for a `POST`, the [`Form`] in the request's extensions.
pub async fn console_guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(app) = req.app_data::<web::Data<Belroute>>().cloned() else {
        let response = HttpResponse::InternalServerError().finish();
        return Ok(req.into_response(response).map_into_right_body());
    };
    let lang = Lang::of(req.request());
    let is_asset = matches!(
        req.path(),
        "/admin/assets/console.css" | "/admin/assets/console.js"
    );
    if app.config.admin.token.is_none() && !is_asset {
        let body = page(
            lang,
            lang.t("console"),
            "/admin",
            None,
            notice(Tone::Error, lang.t("console_off")),
        );
        let response = html_response(StatusCode::FORBIDDEN, body);
        return Ok(req.into_response(response).map_into_right_body());
    }
    if open_path(req.method(), req.path()) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let sessions = req.app_data::<web::Data<Sessions>>().cloned();
    let session = match (cookie(req.request(), session::COOKIE), sessions) {
        (Some(id), Some(sessions)) => sessions.get(&id).await,
        _ => None,
    }
    .filter(|s| app.tokens.holds(&s.principal));
    let Some(session) = session else {
        tracing::debug!(path = %belroute_engine::text::escape(req.path()), "console: no session, login form shown");
        let response = html_response(StatusCode::UNAUTHORIZED, login_form(lang, None));
        return Ok(req.into_response(response).map_into_right_body());
    };
    let need = needs(req.method(), req.path());
    if !session.may(need) {
        tracing::warn!(
            path = %belroute_engine::text::escape(req.path()),
            token = %belroute_engine::text::escape(&session.principal.name),
            role = session.principal.role.as_str(),
            "console: the token's role may not do this"
        );
        let message = lang
            .t("role_may_not")
            .replace("{name}", &session.principal.name)
            .replace("{role}", session.principal.role.as_str());
        let body = page(
            lang,
            lang.t("console"),
            "/admin",
            Some(&session),
            notice(Tone::Error, &message),
        );
        let response = html_response(StatusCode::FORBIDDEN, body);
        return Ok(req.into_response(response).map_into_right_body());
    }
    if req.method() == Method::POST {
        let body = match req.extract::<web::Bytes>().await {
            Ok(body) => body,
            Err(e) => return Err(e),
        };
        let text = std::str::from_utf8(&body).unwrap_or_default();
        let form = Form(url_pairs(text).collect());
        if !same_secret(form.get("csrf").as_bytes(), &session.csrf) {
            tracing::warn!(path = %belroute_engine::text::escape(req.path()), "console: form without the session's CSRF token refused");
            let body = page(
                lang,
                lang.t("console"),
                "/admin",
                Some(&session),
                notice(Tone::Error, lang.t("csrf")),
            );
            let response = html_response(StatusCode::FORBIDDEN, body);
            return Ok(req.into_response(response).map_into_right_body());
        }
        req.extensions_mut().insert(form);
    }
    req.extensions_mut().insert(session);
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// An HTML response with the console's security headers: nothing cached, nothing framed,
/// scripts and styles only from belroute itself.
pub(crate) fn html_response(status: StatusCode, body: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("cache-control", "no-store"))
        .insert_header(("x-frame-options", "DENY"))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("referrer-policy", "same-origin"))
        .insert_header((
            "content-security-policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ))
        .body(body.into_string())
}

fn see_other(location: &str) -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::SeeOther();
    response
        .insert_header(("location", location))
        .insert_header(("cache-control", "no-store"));
    response
}

async fn to_overview() -> HttpResponse {
    see_other("/admin").finish()
}

/// `; Secure` when the browser reached belroute over HTTPS (directly or, per the proxy's
/// `X-Forwarded-Proto`, through one).
fn secure(req: &HttpRequest) -> &'static str {
    if req.connection_info().scheme() == "https" {
        "; Secure"
    } else {
        ""
    }
}

/// `POST /admin/login` (field `token`): on the admin token, a new session and its cookie.
/// An address with too many wrong tokens waits (`429`, `Retry-After`), its token unchecked.
async fn login(
    req: HttpRequest,
    state: web::Data<Belroute>,
    sessions: web::Data<Sessions>,
    throttle: web::Data<Throttle>,
    body: web::Bytes,
) -> HttpResponse {
    let lang = Lang::of(&req);
    let text = std::str::from_utf8(&body).unwrap_or_default();
    let form = Form(url_pairs(text).collect());
    let Some(bootstrap) = &state.config.admin.token else {
        // The guard answers first; this stays closed if that ever changes.
        return html_response(
            StatusCode::FORBIDDEN,
            login_form(lang, Some(lang.t("console_off"))),
        );
    };
    let given = form.get("token");
    // An empty field guesses nothing: not counted.
    let ticket = if given.is_empty() {
        None
    } else {
        let client = throttle.client(&req, &state.config.hooks.auth.trusted_proxies);
        match throttle.check(Kind::ConsoleLogin, client) {
            Ok(ticket) => Some(ticket),
            Err(wait) => {
                let seconds = throttle::retry_after(wait);
                let message = lang.t("too_many_tries").replace("{s}", &seconds);
                let mut response = html_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    login_form(lang, Some(&message)),
                );
                if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&seconds) {
                    response
                        .headers_mut()
                        .insert(actix_web::http::header::RETRY_AFTER, value);
                }
                return response;
            }
        }
    };
    let Some(principal) = state.tokens.principal(given, Some(bootstrap)) else {
        if ticket.is_none_or(throttle::Ticket::failed) {
            tracing::warn!("console: login with an unknown token");
        }
        return html_response(
            StatusCode::UNAUTHORIZED,
            login_form(lang, Some(lang.t("wrong_token"))),
        );
    };
    if let Some(ticket) = ticket {
        ticket.succeeded();
    }
    if !principal.may(Permission::Console) {
        tracing::warn!(token = %belroute_engine::text::escape(&principal.name), "console: login with a token whose role has no console");
        let message = lang
            .t("role_no_console")
            .replace("{name}", &principal.name)
            .replace("{role}", principal.role.as_str());
        return html_response(StatusCode::FORBIDDEN, login_form(lang, Some(&message)));
    }
    let who = principal.name.clone();
    match sessions.create(principal).await {
        Ok(session) => {
            tracing::info!(token = %belroute_engine::text::escape(&who), "console: operator logged in");
            see_other("/admin")
                .insert_header((
                    "set-cookie",
                    format!(
                        "{}={}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={}{}",
                        session::COOKIE,
                        session.id,
                        session::ABSOLUTE_TIMEOUT.as_secs(),
                        secure(&req)
                    ),
                ))
                .finish()
        }
        Err(e) => {
            tracing::error!("console: {e}");
            html_response(
                StatusCode::SERVICE_UNAVAILABLE,
                page(
                    lang,
                    lang.t("login"),
                    "/admin",
                    None,
                    notice(Tone::Error, &e.to_string()),
                ),
            )
        }
    }
}

/// `POST /admin/logout`: the session ends and its cookie is cleared.
async fn logout(
    req: HttpRequest,
    sessions: web::Data<Sessions>,
    session: web::ReqData<Session>,
) -> HttpResponse {
    sessions.remove(&session.id).await;
    tracing::info!("console: operator logged out");
    see_other("/admin")
        .insert_header((
            "set-cookie",
            format!(
                "{}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0{}",
                session::COOKIE,
                secure(&req)
            ),
        ))
        .finish()
}

#[derive(Debug, serde::Deserialize)]
struct Back {
    to: Option<String>,
}

/// `GET /admin/lang/{en|nl}?to=/admin/…`: remembers the language in the `lang` cookie and
/// goes back to the page (only ever a console page: no open redirect).
async fn switch_language(req: HttpRequest, back: web::Query<Back>) -> HttpResponse {
    let code = req.match_info().get("code").unwrap_or_default();
    let Some(lang) = Lang::from_code(code) else {
        return html_response(
            StatusCode::NOT_FOUND,
            maud::html! { "use /admin/lang/en or /admin/lang/nl" },
        );
    };
    let to = back
        .to
        .as_deref()
        .filter(|to| {
            (*to == "/admin" || to.starts_with("/admin/"))
                && !to.contains("//")
                && !to.contains('\\')
                && to.bytes().all(|b| b.is_ascii_graphic())
        })
        .unwrap_or("/admin");
    see_other(to)
        .insert_header((
            "set-cookie",
            format!(
                "{}={}; Path=/admin; SameSite=Lax; Max-Age=31536000{}",
                labels::LANG_COOKIE,
                lang.code(),
                secure(&req)
            ),
        ))
        .finish()
}

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-content-type-options", "nosniff"))
        .body(CSS)
}

async fn js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-content-type-options", "nosniff"))
        .body(JS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_login_language_and_assets_are_open() {
        let open = [
            (Method::POST, "/admin/login"),
            (Method::GET, "/admin/login"),
            (Method::GET, "/admin/lang/nl"),
            (Method::GET, "/admin/assets/console.css"),
        ];
        for (method, path) in open {
            assert!(open_path(&method, path), "{method} {path}");
        }
        let closed = [
            (Method::GET, "/admin"),
            (Method::GET, "/admin/"),
            (Method::GET, "/admin/calls"),
            (Method::POST, "/admin/logout"),
            (Method::POST, "/admin/lang/nl"),
            (Method::POST, "/admin/assets/console.css"),
            (Method::GET, "/admin/anything-new"),
            (Method::GET, "/admin/loginx"),
            (Method::GET, "/admin/assets/../calls"),
            (Method::GET, "/admin/lang/nl/../../calls"),
        ];
        for (method, path) in closed {
            assert!(!open_path(&method, path), "{method} {path}");
        }
    }
}
