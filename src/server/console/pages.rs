//! The console's pages, one module each. A page reads its views from the read layer
//! ([`crate::read`]) or asks the part that acts (releasing a quarantine, changing a
//! subscription), and renders a template; it never reaches storage or the CLI itself.

pub mod audit;
pub mod call;
pub mod calls;
pub mod overview;
pub mod plugins;
pub mod rulesets;
pub mod subscriptions;
pub mod tokens;
pub mod try_call;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::web;
use maud::Markup;

use super::html_response;
use super::labels::Lang;
use super::layout::page;
use super::{Form, Session};

pub(super) type Ses = web::ReqData<Session>;
pub(super) type Posted = web::ReqData<Form>;

/// A page with `status`.
pub(super) fn answer(
    status: StatusCode,
    lang: Lang,
    title: &str,
    here: &str,
    session: &Session,
    body: Markup,
) -> HttpResponse {
    html_response(status, page(lang, title, here, Some(session), body))
}

/// A page, `200`.
pub(super) fn ok(
    lang: Lang,
    title: &str,
    here: &str,
    session: &Session,
    body: Markup,
) -> HttpResponse {
    answer(StatusCode::OK, lang, title, here, session, body)
}
