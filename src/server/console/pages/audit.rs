//! `/admin/audit`: every change of the last 30 days, newest first: rule sets (published,
//! restored, saved on disk), tokens, subscriptions, quarantines released.

use actix_web::{HttpRequest, HttpResponse, web};
use maud::html;

use super::{Ses, ok};
use crate::app::Belroute;
use crate::server::console::labels::Lang;
use crate::server::console::layout::{Tone, local, notice, url_part};

/// How far back the page reads.
const DAYS: i64 = 30;

/// `GET /admin/audit`.
pub async fn show(req: HttpRequest, state: web::Data<Belroute>, session: Ses) -> HttpResponse {
    let lang = Lang::of(&req);
    let zone = state.config.timezone.0;
    let since = crate::time::now_ms() - DAYS * 24 * 3600 * 1000;
    let entries = state.storage.audit_since(since, 10_000).await;
    let body = html! {
        section {
            @match &entries {
                Err(e) => { ({ tracing::warn!("console: audit: {e}"); notice(Tone::Error, lang.t("database_unavailable")) }) }
                Ok(list) => {
                    div.scroll {
                        table #audit {
                            thead { tr { th { (lang.t("when")) } th { (lang.t("who")) } th { (lang.t("what")) } th { (lang.t("which")) } th { (lang.t("details")) } } }
                            tbody {
                                @for e in list.iter().rev() {
                                    tr {
                                        td { (local(zone, e.at)) }
                                        td { (e.actor) }
                                        td.mono { (e.action) }
                                        td {
                                            @if e.action.starts_with("ruleset.") {
                                                a href={ "/admin/rulesets/" (url_part(&e.target)) } { (e.target) }
                                            } @else { (e.target) }
                                        }
                                        td.mono { (e.detail) }
                                    }
                                }
                                @if list.is_empty() { tr { td colspan="5" class="muted" { (lang.t("no_changes")) } } }
                            }
                        }
                    }
                }
            }
        }
    };
    ok(lang, lang.t("audit"), "/admin/audit", &session, body)
}
