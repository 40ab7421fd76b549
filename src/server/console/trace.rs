//! A decision's trace as the console shows it (a logged call's, or one tried on the page):
//! who called, every rule with its outcome, every lookup with its result, time and source.

use belroute_engine::{Caller, LookupResult, LookupTrace, RuleOutcome, Trace};
use maud::{Markup, html};

use super::labels::Lang;
use super::layout::ms;
use crate::read::privacy::Shown;

/// Where the facts of a decision came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Facts {
    /// Asked of the plugins (or their cache).
    Asked,
    /// Typed in on the "Try a call" page.
    Given,
}

/// A reason as an operator reads it.
pub fn reason(lang: Lang, reason: &str) -> &'static str {
    match reason {
        "matched" => lang.t("reason_matched"),
        "no_match" => lang.t("reason_no_match"),
        "deadline" => lang.t("reason_deadline"),
        "over_share" => lang.t("reason_over_share"),
        "unreadable" => lang.t("reason_unreadable"),
        "failed" => lang.t("reason_failed"),
        "quarantined" => lang.t("reason_quarantined"),
        "undeclared_route" => lang.t("reason_undeclared_route"),
        _ => lang.t("reason_other"),
    }
}

/// Every [`Reason`], for the test that each has its words.
#[cfg(test)]
pub fn reasons() -> impl Iterator<Item = &'static str> {
    belroute_engine::Reason::ALL
        .into_iter()
        .map(belroute_engine::Reason::as_str)
}

/// The reason cell: its words, coloured by what it is.
pub fn reason_cell(lang: Lang, code: &str) -> Markup {
    html! { span class={ "outcome-" (code) } title=(code) { (reason(lang, code)) } }
}

/// The caller as a person reads it: the number (masked unless revealed), or "withheld".
pub fn caller_text(lang: Lang, raw: &str, shown: Shown) -> String {
    if raw.trim().is_empty() {
        lang.t("withheld").to_string()
    } else {
        shown.text(raw)
    }
}

fn who(lang: Lang, caller: &Caller, shown: Shown) -> String {
    if caller.anonymous {
        lang.t("withheld").to_string()
    } else if caller.valid {
        format!(
            "{} ({}, {})",
            shown.text(&caller.e164),
            caller.kind,
            caller.country
        )
    } else {
        format!("{} ({})", lang.t("invalid_number"), caller.kind)
    }
}

fn outcome(lang: Lang, outcome: &RuleOutcome) -> (&'static str, &'static str, String) {
    match outcome {
        RuleOutcome::Matched => ("matched", lang.t("matched"), String::new()),
        RuleOutcome::NoMatch => ("no_match", lang.t("no_match"), String::new()),
        RuleOutcome::FellThrough => ("fell_through", lang.t("fell_through"), String::new()),
        RuleOutcome::Skipped { reason } => ("skipped", lang.t("skipped"), format!(": {reason}")),
        RuleOutcome::Error { message, position } => (
            "error",
            lang.t("error"),
            format!(" {}:{}: {message}", position.line, position.column),
        ),
        RuleOutcome::NotReached => ("not_reached", lang.t("not_reached"), String::new()),
    }
}

fn lookup_result(
    lang: Lang,
    lookup: &LookupTrace,
    shown: Shown,
) -> (&'static str, &'static str, String) {
    if !lookup.awaited {
        // Started for the cache, but no rule that ran reads it: not a failure.
        return ("not_needed", lang.t("not_needed"), String::new());
    }
    match &lookup.result {
        LookupResult::Found { facts } => {
            let mut facts = serde_json::Value::Object((**facts).clone());
            shown.json(&mut facts);
            ("found", lang.t("found"), format!(" {facts}"))
        }
        LookupResult::NotFound => ("not_found", lang.t("not_found"), String::new()),
        LookupResult::Unavailable { reason } => (
            "unavailable",
            lang.t("unavailable"),
            format!(": {}", shown.text(reason)),
        ),
    }
}

fn source(lang: Lang, lookup: &LookupTrace, facts: Facts) -> &'static str {
    if !lookup.awaited {
        "—"
    } else if facts == Facts::Given {
        lang.t("typed_in")
    } else if lookup.stale {
        lang.t("stale")
    } else if lookup.cached {
        lang.t("from_cache")
    } else {
        lang.t("asked")
    }
}

/// The whole trace.
pub fn render(lang: Lang, trace: &Trace, shown: Shown, facts: Facts) -> Markup {
    let raw = &trace.caller.raw;
    html! {
        p {
            (lang.t("caller")) ": "
            span.mono { (caller_text(lang, raw, shown)) }
            @if !raw.trim().is_empty() { " → " (who(lang, &trace.caller, shown)) }
        }
        section {
            h2 { (lang.t("rules")) }
            div.scroll {
                table #trace-rules {
                    thead { tr { th { (lang.t("rule")) } th { (lang.t("outcome")) } th.num { (lang.t("duration")) } } }
                    tbody {
                        @for rule in &trace.rules {
                            @let (code, label, detail) = outcome(lang, &rule.outcome);
                            tr {
                                td { (rule.name) }
                                td class={ "outcome-" (code) } { (label) (shown.text(&detail)) }
                                td.num { (ms(i64::try_from(rule.micros).unwrap_or(i64::MAX))) }
                            }
                        }
                    }
                }
            }
        }
        @if !trace.lookups.is_empty() {
            section {
                h2 { (lang.t("lookups")) }
                div.scroll {
                    table #trace-lookups {
                        thead { tr {
                            th { (lang.t("lookup")) } th { (lang.t("outcome")) }
                            th.num { (lang.t("duration")) } th { (lang.t("source")) }
                        } }
                        tbody {
                            @for lookup in &trace.lookups {
                                @let (code, label, detail) = lookup_result(lang, lookup, shown);
                                tr {
                                    td { (lookup.name) }
                                    td { span class={ "result-" (code) } { (label) } span.mono { (detail) } }
                                    td.num {
                                        @if lookup.awaited { (ms(i64::try_from(lookup.micros).unwrap_or(i64::MAX))) } @else { "—" }
                                    }
                                    td { (source(lang, lookup, facts)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
