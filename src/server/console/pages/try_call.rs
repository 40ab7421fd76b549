//! `GET`/`POST /admin/try`: decides a call against the live rule set, as `belroute simulate`
//! does (the same code), and shows the route and the trace. Nothing is logged or sent.

use actix_web::{HttpRequest, HttpResponse, web};
use belroute_engine::{Call, Decision, Trace};
use maud::{Markup, html};

use super::{Posted, Ses, ok};
use crate::app::Belroute;
use crate::read::privacy::Shown;
use crate::read::simulate::{self, Simulation};
use crate::server::console::labels::Lang;
use crate::server::console::layout::{Tone, csrf, ms, notice};
use crate::server::console::trace::{self, Facts, reason_cell};
use crate::server::console::{Form, Session};

/// `GET /admin/try`: the form.
pub async fn form(req: HttpRequest, state: web::Data<Belroute>, session: Ses) -> HttpResponse {
    let lang = Lang::of(&req);
    let body = the_form(lang, &state, &session, &Form::default());
    ok(lang, lang.t("try"), "/admin/try", &session, body)
}

fn the_form(lang: Lang, state: &Belroute, session: &Session, form: &Form) -> Markup {
    html! {
        p.muted { (lang.t("try_hint")) }
        form method="post" action="/admin/try" class="try card" {
            (csrf(session))
            label {
                (lang.t("ruleset"))
                select name="ruleset" #ruleset {
                    @for name in state.store.catalog().rulesets.keys() {
                        option selected[name == form.get("ruleset")] { (name) }
                    }
                }
            }
            label { (lang.t("caller")) input name="caller" #caller inputmode="tel" value=(form.get("caller")) placeholder="31152026057"; }
            label { (lang.t("fields")) textarea name="fields" placeholder="dp_id=12345" { (form.get("fields")) } }
            label { (lang.t("at")) input name="at" value=(form.get("at")) placeholder="2026-11-23 10:00"; }
            label { (lang.t("facts")) textarea name="facts" placeholder="invoices={\"open_count\": 2}" { (form.get("facts")) } }
            button #run { (lang.t("run")) }
        }
    }
}

/// Non-empty lines of a text area.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty())
}

/// The form as a [`Simulation`]; the sentence to show when it does not read.
fn simulation(lang: Lang, form: &Form) -> Result<Simulation, String> {
    let mut pairs = Vec::new();
    for line in lines(form.get("fields")) {
        pairs.push(simulate::field(line).map_err(|e| format!("{e}, one a line"))?);
    }
    let caller = form.get("caller").trim();
    if !caller.is_empty() {
        pairs.push(("caller_number".into(), caller.to_string()));
    }
    let at = match form.get("at").trim() {
        "" => None,
        text => Some(
            simulate::local_time(text).map_err(|_| format!("`{text}`: {}", lang.t("bad_time")))?,
        ),
    };
    let facts = if lines(form.get("facts")).next().is_some() {
        Some(
            lines(form.get("facts"))
                .map(|line| simulate::facts(line).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?,
        )
    } else {
        None
    };
    Ok(Simulation {
        call: Call::from_pairs(pairs),
        at,
        facts,
    })
}

async fn decide(lang: Lang, state: &Belroute, form: &Form) -> Result<(Decision, bool), String> {
    let name = form.get("ruleset");
    let set = state
        .store
        .catalog()
        .get(name)
        .cloned()
        .ok_or_else(|| format!("`{name}`: {}", lang.t("unknown_ruleset")))?;
    let simulation = simulation(lang, form)?;
    let given = simulation.facts.is_some();
    let (decision, _) =
        simulate::decide(&state.router, &set, simulation, state.config.hooks.margin).await?;
    Ok((decision, given))
}

fn result(lang: Lang, decision: &Decision, given: bool) -> Markup {
    let record = serde_json::to_string_pretty(decision).unwrap_or_default();
    let facts = if given { Facts::Given } else { Facts::Asked };
    html! {
        section #result {
            dl.facts {
                dt { (lang.t("route")) } dd.route #route { (decision.route) }
                dt { (lang.t("rule")) } dd { (decision.rule.as_deref().unwrap_or(lang.t("by_default"))) }
                dt { (lang.t("reason")) } dd { (reason_cell(lang, decision.reason.as_str())) }
                dt { (lang.t("duration")) } dd { (ms(i64::try_from(decision.micros).unwrap_or(i64::MAX))) }
            }
        }
        (trace::render(lang, &Trace::of(decision), Shown { revealed: true }, facts))
        details.card {
            summary { (lang.t("record")) }
            pre { (record) }
        }
    }
}

/// `POST /admin/try`.
pub async fn run(
    req: HttpRequest,
    state: web::Data<Belroute>,
    session: Ses,
    form: Posted,
) -> HttpResponse {
    let lang = Lang::of(&req);
    let outcome = match decide(lang, &state, &form).await {
        Ok((decision, given)) => result(lang, &decision, given),
        Err(message) => notice(Tone::Error, &message),
    };
    let body = html! { (outcome) (the_form(lang, &state, &session, &form)) };
    ok(lang, lang.t("try"), "/admin/try", &session, body)
}
