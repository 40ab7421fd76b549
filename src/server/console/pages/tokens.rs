//! `/admin/tokens` (admins only): the run-time tokens and their roles; a new token is shown
//! once, when it is created; deleting one ends its console sessions at their next request.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde_json::json;

use super::{Posted, Ses, answer};
use crate::access::{CreateError, Role};
use crate::app::Belroute;
use crate::server::console::Session;
use crate::server::console::labels::Lang;
use crate::server::console::layout::{Tone, csrf, local, notice, url_part};

/// `GET /admin/tokens`.
pub async fn show(req: HttpRequest, state: web::Data<Belroute>, session: Ses) -> HttpResponse {
    let lang = Lang::of(&req);
    render(lang, &state, &session, StatusCode::OK, html! {}).await
}

/// `POST /admin/tokens` (`name`, `role`): a new token, shown on this page once.
pub async fn create(
    req: HttpRequest,
    state: web::Data<Belroute>,
    session: Ses,
    form: Posted,
) -> HttpResponse {
    let lang = Lang::of(&req);
    let name = form.get("name").trim();
    let role = match Role::parse(form.get("role")) {
        Ok(role) => role,
        Err(e) => {
            return render(
                lang,
                &state,
                &session,
                StatusCode::BAD_REQUEST,
                notice(Tone::Error, &e),
            )
            .await;
        }
    };
    match state
        .tokens
        .create(&state.storage, name, role, &session.principal.name)
        .await
    {
        Ok(token) => {
            crate::server::changes::audit(
                &state,
                &session.principal.name,
                "token.create",
                name,
                json!({ "role": role.as_str() }),
            )
            .await;
            let shown = html! {
                p.notice.ok role="status" {
                    (lang.t("token_for")) " " strong { (name) } " (" (role.as_str()) "): " code #new-token { (token) }
                    br; (lang.t("api_key_once"))
                }
            };
            render(lang, &state, &session, StatusCode::CREATED, shown).await
        }
        Err(e) => {
            let status = match &e {
                CreateError::Invalid(_) => StatusCode::BAD_REQUEST,
                CreateError::Write(crate::storage::revisions::TokenWriteError::Exists(_)) => {
                    StatusCode::CONFLICT
                }
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            render(
                lang,
                &state,
                &session,
                status,
                notice(Tone::Error, &e.to_string()),
            )
            .await
        }
    }
}

/// `POST /admin/tokens/{name}/delete`.
pub async fn delete(
    req: HttpRequest,
    state: web::Data<Belroute>,
    session: Ses,
    _form: Posted,
) -> HttpResponse {
    let lang = Lang::of(&req);
    let name = req.match_info().get("name").unwrap_or_default().to_string();
    let (status, message) = match state.tokens.delete(&state.storage, &name).await {
        Ok(true) => {
            crate::server::changes::audit(
                &state,
                &session.principal.name,
                "token.delete",
                &name,
                json!({}),
            )
            .await;
            (
                StatusCode::OK,
                notice(Tone::Ok, &lang.t("token_deleted").replace("{name}", &name)),
            )
        }
        Ok(false) => (
            StatusCode::NOT_FOUND,
            notice(
                Tone::Error,
                &lang.t("no_such_token").replace("{name}", &name),
            ),
        ),
        Err(e) => {
            tracing::warn!("console: tokens: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                notice(Tone::Error, lang.t("database_unavailable")),
            )
        }
    };
    render(lang, &state, &session, status, message).await
}

async fn render(
    lang: Lang,
    state: &Belroute,
    session: &Session,
    status: StatusCode,
    message: Markup,
) -> HttpResponse {
    let zone = state.config.timezone.0;
    let list = state.storage.tokens().await;
    let body = html! {
        (message)
        section {
            h2 { (lang.t("tokens")) }
            p.muted { (lang.t("tokens_hint")) }
            @match &list {
                Err(e) => { ({ tracing::warn!("console: tokens: {e}"); notice(Tone::Error, lang.t("database_unavailable")) }) }
                Ok(list) => {
                    div.scroll {
                        table #tokens {
                            thead { tr { th { (lang.t("name")) } th { (lang.t("role")) } th { (lang.t("created")) } th { (lang.t("who")) } th {} } }
                            tbody {
                                @for t in list {
                                    tr {
                                        td { (t.name) } td { (t.role) } td { (local(zone, t.created_at)) } td { (t.created_by) }
                                        td {
                                            form method="post" action={ "/admin/tokens/" (url_part(&t.name)) "/delete" } class="inline" {
                                                (csrf(session))
                                                button { (lang.t("delete")) }
                                            }
                                        }
                                    }
                                }
                                @if list.is_empty() { tr { td colspan="5" class="muted" { (lang.t("no_tokens")) } } }
                            }
                        }
                    }
                }
            }
        }
        section {
            h2 { (lang.t("new_token")) }
            form.try method="post" action="/admin/tokens" #token-form {
                (csrf(session))
                label { (lang.t("name")) input type="text" name="name" #token-name required maxlength="64" spellcheck="false"; }
                label { (lang.t("role"))
                    select name="role" #token-role {
                        @for role in Role::ALL { option value=(role.as_str()) selected[role == Role::Editor] { (role.as_str()) " — " (lang.t(role_key(role))) } }
                    }
                }
                button #create-token { (lang.t("create")) }
            }
        }
    };
    answer(
        status,
        lang,
        lang.t("tokens"),
        "/admin/tokens",
        session,
        body,
    )
}

/// The label that says what a role may do.
fn role_key(role: Role) -> &'static str {
    match role {
        Role::Admin => "role_admin",
        Role::Editor => "role_editor",
        Role::Viewer => "role_viewer",
        Role::Agent => "role_agent",
    }
}
