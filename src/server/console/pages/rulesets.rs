//! `/admin/rulesets/{name}`: a rule set's source, its history (who, when, why; any two
//! revisions compared line by line) and, for editors, the draft: check, test, compare against
//! real calls, publish, restore; and the two forms for people who do not write YAML (opening
//! hours, holidays). Every change goes through [`crate::changes::Changes`], as the API's do.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};

use super::{Posted, Ses, answer, ok};
use crate::access::Permission;
use crate::app::Belroute;
use crate::changes::{COMPARE_WINDOW, ChangeError, Checked, Problem, TestResult, diff, forms};
use crate::replay::{Summary, short};
use crate::server::console::Session;
use crate::server::console::labels::Lang;
use crate::server::console::layout::{Tone, csrf, local, notice, url_part};
use crate::storage::revisions::{Revision, Source};
use belroute_engine::RuleSet;

fn name(req: &HttpRequest) -> String {
    req.match_info().get("name").unwrap_or_default().to_string()
}

fn here(name: &str) -> String {
    format!("/admin/rulesets/{}", url_part(name))
}

/// A text with its line numbers; `notes` are shown under their line.
fn numbered(text: &str, notes: &[Problem]) -> Markup {
    html! {
        div.scroll {
            table.source {
                tbody {
                    @for (i, line) in text.lines().enumerate() {
                        @let n = i + 1;
                        @let here: Vec<&Problem> = notes.iter().filter(|p| p.line == n).collect();
                        tr id={ "L" (n) } class=[(!here.is_empty()).then_some("has-problem")] {
                            td.num.muted { (n) }
                            td { code { (line) } }
                        }
                        @for problem in here {
                            tr.problem { td {} td { (problem.column) ": " (problem.message) } }
                        }
                    }
                }
            }
        }
    }
}

/// The checklist for the belplan: the answers its Voorwaarde-app must branch on (`routes:`).
fn branches(lang: Lang, set: &RuleSet) -> Markup {
    html! {
        h2 { (lang.t("branches_head")) }
        @match &set.routes {
            Some(routes) => {
                p.muted { (lang.t("branches_help")) }
                ul #branches {
                    @for route in routes {
                        li {
                            @if route == "*" { em { (lang.t("any_text")) } } @else { code { (route) } }
                            @if *route == set.default_route { " (" (lang.t("the_default")) ")" }
                        }
                    }
                }
            }
            None => { p.muted #branches { (lang.t("branches_undeclared")) } }
        }
    }
}

/// The `404` page of a rule set that has no file.
fn not_found(lang: Lang, name: &str, session: &Session) -> HttpResponse {
    answer(
        StatusCode::NOT_FOUND,
        lang,
        name,
        "/admin",
        session,
        notice(
            Tone::Error,
            &format!("`{name}`: {}", lang.t("unknown_ruleset")),
        ),
    )
}

/// `GET /admin/rulesets/{name}`.
pub async fn show(req: HttpRequest, state: web::Data<Belroute>, session: Ses) -> HttpResponse {
    let lang = Lang::of(&req);
    let name = name(&req);
    let catalog = state.store.catalog();
    let serving = catalog.get(&name).cloned();
    let current = state.changes.current(&name);
    let (text, version) = match (&current, &serving) {
        (Ok(Some((text, version))), _) => (text.clone(), Some(version.clone())),
        (_, Some(set)) => (set.source.to_string(), Some(set.version.clone())),
        _ => (String::new(), None),
    };
    if version.is_none() {
        return not_found(lang, &name, &session);
    }
    let history = state.changes.storage().revisions(&name, 100).await;
    let refused = catalog.refused.get(&name);
    let may_change = session.may(Permission::ChangeRules);
    let zone = state.config.timezone.0;
    let body = html! {
        section {
            dl.facts {
                dt { (lang.t("serving_now")) }
                dd.mono { @if let Some(set) = &serving { (set.version) } @else { (lang.t("never_loaded")) } }
                dt { (lang.t("file")) } dd.mono { (state.changes.file_for(&name).display().to_string()) }
                @if let Some(version) = &version {
                    @if serving.as_ref().is_none_or(|s| &s.version != version) {
                        dt { (lang.t("on_disk")) } dd.mono { (version) }
                    }
                }
            }
            @if let Some(set) = &serving {
                (branches(lang, set))
            }
            @if let Some(refusal) = refused {
                (notice(Tone::Error, lang.t("file_refused")))
                pre.down { @for d in &refusal.diagnostics { (d.to_string()) "\n" } }
            }
            @if may_change {
                p.actions {
                    a.button href={ (here(&name)) "/edit" } #edit { (lang.t("edit")) }
                    @if !forms::opening_hours(&text).is_empty() {
                        a.button href={ (here(&name)) "/hours" } #hours { (lang.t("form_hours")) }
                    }
                    a.button href={ (here(&name)) "/holidays" } #holidays { (lang.t("form_holidays")) }
                }
            }
        }
        section {
            h2 { (lang.t("history")) }
            @match &history {
                Err(e) => {
                    ({ tracing::warn!("console: revisions: {e}"); notice(Tone::Error, lang.t("database_unavailable")) })
                }
                Ok(list) if list.is_empty() => { p.muted { (lang.t("no_revisions")) } }
                Ok(list) => {
                    form method="get" action={ (here(&name)) "/diff" } {
                        div.scroll {
                            table #history {
                                thead { tr {
                                    th { (lang.t("compare_a")) } th { (lang.t("compare_b")) }
                                    th { (lang.t("version")) } th { (lang.t("when")) } th { (lang.t("who")) }
                                    th { (lang.t("source")) } th { (lang.t("note")) }
                                } }
                                tbody {
                                    @for (i, r) in list.iter().enumerate() {
                                        tr {
                                            td { input type="radio" name="a" value=(r.hash) checked[i == 1 || list.len() == 1] aria-label=(lang.t("compare_a")); }
                                            td { input type="radio" name="b" value=(r.hash) checked[i == 0] aria-label=(lang.t("compare_b")); }
                                            td.mono {
                                                a href={ (here(&name)) "/revisions/" (url_part(&r.hash)) } { (short(&r.hash)) }
                                                @if serving.as_ref().is_some_and(|s| s.version == r.hash) { " " span.up { (lang.t("serving_now")) } }
                                            }
                                            td { (local(zone, r.loaded_at)) }
                                            td { (r.author) }
                                            td { (source_text(lang, r.source)) }
                                            td { (r.note) }
                                        }
                                    }
                                }
                            }
                        }
                        @if list.len() > 1 { p.actions { button #diff { (lang.t("compare_revisions")) } } }
                    }
                }
            }
        }
        section {
            h2 { (lang.t("source_now")) }
            (numbered(&text, &[]))
        }
    };
    ok(lang, &name, "/admin", &session, body)
}

fn source_text(lang: Lang, source: Source) -> &'static str {
    match source {
        Source::File => lang.t("source_file"),
        Source::Console => lang.t("source_console"),
        Source::Api => lang.t("source_api"),
        Source::Restore => lang.t("source_restore"),
        Source::Push => lang.t("source_push"),
    }
}

async fn find_revision(
    state: &Belroute,
    name: &str,
    hash: &str,
) -> Result<Option<Revision>, Markup> {
    state
        .changes
        .storage()
        .revision(name, hash)
        .await
        .map_err(|e| {
            tracing::warn!("console: revisions: {e}");
            html! {}
        })
}

/// `GET /admin/rulesets/{name}/revisions/{hash}`: a revision as it was, e.g. when a call was
/// routed by it.
pub async fn revision(req: HttpRequest, state: web::Data<Belroute>, session: Ses) -> HttpResponse {
    let lang = Lang::of(&req);
    let name = name(&req);
    let hash = req.match_info().get("hash").unwrap_or_default().to_string();
    let revision = match find_revision(&state, &name, &hash).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return answer(
                StatusCode::NOT_FOUND,
                lang,
                &name,
                "/admin",
                &session,
                notice(
                    Tone::Error,
                    &lang.t("no_such_revision").replace("{hash}", &hash),
                ),
            );
        }
        Err(_) => {
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                lang,
                &name,
                "/admin",
                &session,
                notice(Tone::Error, lang.t("database_unavailable")),
            );
        }
    };
    let zone = state.config.timezone.0;
    let content = revision.content.clone().unwrap_or_default();
    let current = state.changes.current(&name).ok().flatten();
    let body = html! {
        section {
            dl.facts {
                dt { (lang.t("ruleset")) } dd { a href=(here(&name)) { (name) } }
                dt { (lang.t("version")) } dd.mono { (revision.hash) }
                dt { (lang.t("when")) } dd { (local(zone, revision.loaded_at)) }
                dt { (lang.t("who")) } dd { (revision.author) " (" (source_text(lang, revision.source)) ")" }
                @if !revision.note.is_empty() { dt { (lang.t("note")) } dd { (revision.note) } }
            }
            @if session.may(Permission::ChangeRules) {
                form method="post" action={ (here(&name)) "/revisions/" (url_part(&hash)) "/restore" } class="actions" {
                    (csrf(&session))
                    button #restore { (lang.t("restore")) }
                }
            }
        }
        @if let Some((now, now_version)) = &current {
            @if *now_version != revision.hash {
                section {
                    h2 { (lang.t("diff_with_now")) " " span.mono.muted { (short(&revision.hash)) " → " (short(now_version)) } }
                    (diff_view(&content, now))
                }
            }
        }
        section {
            h2 { (lang.t("content")) }
            (numbered(&content, &[]))
        }
    };
    ok(
        lang,
        &format!("{name} {}", short(&hash)),
        "/admin",
        &session,
        body,
    )
}

#[derive(Debug, serde::Deserialize)]
pub struct Pair {
    a: Option<String>,
    b: Option<String>,
}

/// `GET /admin/rulesets/{name}/diff?a=…&b=…`: two revisions, line by line.
pub async fn compare_revisions(
    req: HttpRequest,
    state: web::Data<Belroute>,
    session: Ses,
    pair: web::Query<Pair>,
) -> HttpResponse {
    let lang = Lang::of(&req);
    let name = name(&req);
    let (Some(a), Some(b)) = (&pair.a, &pair.b) else {
        return answer(
            StatusCode::BAD_REQUEST,
            lang,
            &name,
            "/admin",
            &session,
            notice(Tone::Error, lang.t("pick_two")),
        );
    };
    let (old, new) = (
        find_revision(&state, &name, a).await,
        find_revision(&state, &name, b).await,
    );
    let (Ok(Some(old)), Ok(Some(new))) = (old, new) else {
        return answer(
            StatusCode::NOT_FOUND,
            lang,
            &name,
            "/admin",
            &session,
            notice(Tone::Error, lang.t("pick_two")),
        );
    };
    let body = html! {
        section {
            h2.mono { (short(&old.hash)) " → " (short(&new.hash)) }
            p.muted { (old.note) " → " (new.note) }
            (diff_view(old.content.as_deref().unwrap_or_default(), new.content.as_deref().unwrap_or_default()))
        }
    };
    ok(lang, &name, "/admin", &session, body)
}

fn diff_view(old: &str, new: &str) -> Markup {
    let lines = diff::lines(old, new);
    html! {
        @if lines.is_empty() { p.muted { "=" } }
        div.scroll {
            table.diff {
                tbody {
                    @for line in &lines {
                        @match line {
                            diff::Line::Same(a, b, text) => tr { td.num.muted { (a) } td.num.muted { (b) } td { code { " " (text) } } },
                            diff::Line::Removed(a, text) => tr.removed { td.num.muted { (a) } td {} td { code { "-" (text) } } },
                            diff::Line::Added(b, text) => tr.added { td {} td.num.muted { (b) } td { code { "+" (text) } } },
                            diff::Line::Skipped(n) => tr.skipped { td colspan="3" { "⋯ " (n) } },
                        }
                    }
                }
            }
        }
    }
}

/// A draft on the editor page: its text, where it started, and what it is.
struct Draft {
    name: String,
    content: String,
    /// The version it started from; `None` for a new rule set.
    base: Option<String>,
    source: Source,
    note: String,
    since: String,
}

/// The editor: the draft in a text area, the four buttons, and `results` above it.
fn editor(lang: Lang, session: &Session, draft: &Draft, results: Markup) -> Markup {
    html! {
        (results)
        form.editor method="post" action={ (here(&draft.name)) "/edit" } #draft {
            (csrf(session))
            input type="hidden" name="base" value=(draft.base.as_deref().unwrap_or_default());
            input type="hidden" name="source" value=(draft.source.as_str());
            label {
                (lang.t("draft")) " "
                span.muted { @match &draft.base { Some(base) => { (lang.t("based_on")) " " code { (short(base)) } }, None => { (lang.t("new_ruleset")) } } }
                // A browser drops one line break right after the tag: this one, not the draft's.
                textarea name="content" #content rows="24" spellcheck="false" autocapitalize="off" { "\n" (draft.content) }
            }
            div.actions {
                label { (lang.t("compare_since"))
                    select name="since" {
                        @for (value, key) in [("1d", "window_day"), ("7d", "window_week"), ("30d", "window_month")] {
                            option value=(value) selected[draft.since == value] { (lang.t(key)) }
                        }
                    }
                }
                button name="action" value="check" #check { (lang.t("check")) }
                button name="action" value="test" #test { (lang.t("test")) }
                button name="action" value="compare" #compare { (lang.t("compare")) }
            }
            div.actions {
                label.grow { (lang.t("note_required")) input type="text" name="note" #note value=(draft.note) maxlength="500"; }
                button name="action" value="publish" #publish { (lang.t("publish")) }
            }
        }
    }
}

fn problems_view(lang: Lang, draft: &str, checked: &Checked) -> Markup {
    html! {
        @if checked.problems.is_empty() {
            (notice(Tone::Ok, lang.t("check_ok")))
        } @else {
            (notice(Tone::Error, &lang.t("check_problems").replace("{n}", &checked.problems.len().to_string())))
        }
        @if !checked.warnings.is_empty() {
            ul.warnings { @for w in &checked.warnings { li { (w.file) ":" (w.line) ":" (w.column) ": " (w.message) } } }
        }
        @if !checked.problems.is_empty() {
            @let elsewhere: Vec<&Problem> = checked.problems.iter().filter(|p| !p.file.ends_with(".yaml") || p.file.ends_with(".test.yaml")).collect();
            @if !elsewhere.is_empty() {
                ul.down { @for p in elsewhere { li { (p.file) ":" (p.line) ":" (p.column) ": " (p.message) } } }
            }
            section.problems {
                @let here: Vec<Problem> = checked.problems.iter().filter(|p| !p.file.ends_with(".test.yaml")).cloned().collect();
                (numbered(draft, &here))
            }
        }
    }
}

fn tests_view(lang: Lang, tests: &[TestResult]) -> Markup {
    let failed = tests.iter().filter(|t| !t.passed).count();
    html! {
        @if tests.is_empty() { (notice(Tone::Ok, lang.t("no_tests"))) }
        @else if failed == 0 { (notice(Tone::Ok, &lang.t("tests_pass").replace("{n}", &tests.len().to_string()))) }
        @else { (notice(Tone::Error, &lang.t("tests_fail").replace("{n}", &failed.to_string()).replace("{of}", &tests.len().to_string()))) }
        @if !tests.is_empty() {
            div.scroll {
                table #tests {
                    thead { tr { th { (lang.t("test_name")) } th { (lang.t("result")) } th { (lang.t("route")) } th { (lang.t("why")) } } }
                    tbody {
                        @for t in tests {
                            tr {
                                td { (t.name) br; span.muted { (t.file) ":" (t.line) } }
                                td { @if t.passed { span.up { (lang.t("passed")) } } @else { span.down { (lang.t("failed")) } } }
                                td.mono { (t.route) }
                                td { (t.failure.as_deref().unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn compare_view(lang: Lang, summary: &Summary) -> Markup {
    let skipped: u64 = summary.not_compared.values().sum();
    html! {
        section #comparison {
            h2 { (lang.t("compare_title")) }
            p {
                (lang.t("compare_line").replace("{n}", &summary.replayed.to_string()).replace("{changed}", &summary.changed.to_string()))
                " " span.muted { "(" (summary.from) " – " (summary.to) ")" }
            }
            @if summary.unrecorded.calls > 0 {
                p.muted { (lang.t("replay_unrecorded").replace("{n}", &summary.unrecorded.calls.to_string())) }
            }
            @if skipped > 0 { p.muted { (lang.t("replay_not_compared").replace("{n}", &skipped.to_string())) } }
            @if let Some(stopped) = &summary.stopped { p.muted { (stopped) } }
            @if !summary.changes.is_empty() {
                div.scroll {
                    table #changes {
                        thead { tr { th { (lang.t("from")) } th { (lang.t("to")) } th.num { (lang.t("count")) } th { (lang.t("examples_head")) } } }
                        tbody {
                            @for change in &summary.changes {
                                tr {
                                    td { code { (change.from.route) } br; span.muted { (change.from.rule.as_deref().unwrap_or(lang.t("the_default"))) } }
                                    td { code { (change.to.route) } br; span.muted { (change.to.rule.as_deref().unwrap_or(lang.t("the_default"))) } }
                                    td.num { (change.calls) }
                                    td {
                                        details {
                                            summary { (change.examples.len()) " " (lang.t("examples")) }
                                            table.examples {
                                                @for e in &change.examples {
                                                    tr {
                                                        td { a href={ "/admin/calls/" (url_part(&e.uuid)) } { (if e.uuid.is_empty() { "—" } else { &e.uuid }) } }
                                                        td.mono { (e.caller) }
                                                        td { (e.at) }
                                                        td { code { (change.from.route) } " → " code { (change.to.route) } }
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
        }
    }
}

/// What a refused change says, as notices (and the problems at their lines).
fn refusal(lang: Lang, draft: &str, error: &ChangeError) -> Markup {
    match error {
        ChangeError::Refused(problems) => problems_view(
            lang,
            draft,
            &Checked {
                problems: problems.clone(),
                ..Checked::default()
            },
        ),
        ChangeError::FailedTests(tests) => html! {
            (notice(Tone::Error, &error.to_string()))
            (tests_view(lang, tests))
        },
        ChangeError::Conflict { .. } => html! {
            (notice(Tone::Error, &error.to_string()))
            (notice(Tone::Error, lang.t("draft_kept")))
        },
        other => notice(Tone::Error, &other.to_string()),
    }
}

/// `GET /admin/rulesets/{name}/edit`: a draft of the file as it is now.
pub async fn edit(req: HttpRequest, state: web::Data<Belroute>, session: Ses) -> HttpResponse {
    let lang = Lang::of(&req);
    let name = name(&req);
    let draft = match state.changes.current(&name) {
        Ok(Some((content, version))) => Draft {
            name: name.clone(),
            content,
            base: Some(version),
            source: Source::Console,
            note: String::new(),
            since: "7d".into(),
        },
        Ok(None) => {
            return not_found(lang, &name, &session);
        }
        Err(e) => return change_error_page(lang, &name, &session, &e),
    };
    ok(
        lang,
        &edit_title(lang, &name),
        "/admin",
        &session,
        editor(lang, &session, &draft, html! {}),
    )
}

fn edit_title(lang: Lang, name: &str) -> String {
    format!("{name} — {}", lang.t("edit"))
}

fn change_error_page(lang: Lang, name: &str, session: &Session, e: &ChangeError) -> HttpResponse {
    let status = crate::server::error::HttpError::from(e.clone()).status();
    answer(
        status,
        lang,
        name,
        "/admin",
        session,
        notice(Tone::Error, &e.to_string()),
    )
}

/// `POST /admin/rulesets/{name}/edit`: check, test, compare or publish the draft.
pub async fn act(
    req: HttpRequest,
    state: web::Data<Belroute>,
    session: Ses,
    form: Posted,
) -> HttpResponse {
    let lang = Lang::of(&req);
    let name = name(&req);
    let base = form.get("base");
    // Browsers send a text area's lines ending in CR LF: back to the file's own endings.
    let content = form.get("content").replace("\r\n", "\n");
    let crlf = matches!(state.changes.current(&name), Ok(Some((text, _))) if text.contains("\r\n"));
    let content = if crlf {
        content.replace('\n', "\r\n")
    } else {
        content
    };
    let mut draft = Draft {
        name: name.clone(),
        content,
        base: (!base.is_empty()).then(|| base.to_string()),
        source: if form.get("source") == "restore" {
            Source::Restore
        } else {
            Source::Console
        },
        note: form.get("note").to_string(),
        since: match form.get("since") {
            s @ ("1d" | "7d" | "30d") => s.to_string(),
            _ => "7d".into(),
        },
    };
    let (status, results) = match form.get("action") {
        "publish" => {
            let published = state
                .changes
                .publish(
                    &name,
                    &draft.content,
                    draft.base.as_deref(),
                    &session.principal,
                    draft.source,
                    &draft.note,
                )
                .await;
            match published {
                Ok(p) => {
                    draft.base = Some(p.hash.clone());
                    draft.note.clear();
                    draft.source = Source::Console;
                    let text = if p.changed {
                        lang.t("published").replace("{hash}", &short(&p.hash))
                    } else {
                        lang.t("published_same").replace("{hash}", &short(&p.hash))
                    };
                    (
                        StatusCode::OK,
                        html! {
                            p.notice.ok role="status" #published { (text) " " a href=(here(&name)) { (lang.t("history")) } }
                        },
                    )
                }
                Err(e) => {
                    let status = crate::server::error::HttpError::from(e.clone()).status();
                    (status, refusal(lang, &draft.content, &e))
                }
            }
        }
        action @ ("check" | "test" | "compare") => run(lang, &state, &draft, action).await,
        _ => (
            StatusCode::BAD_REQUEST,
            notice(Tone::Error, lang.t("pick_action")),
        ),
    };
    answer(
        status,
        lang,
        &edit_title(lang, &name),
        "/admin",
        &session,
        editor(lang, &session, &draft, results),
    )
}

/// Check (always), then the tests or the compare.
async fn run(lang: Lang, state: &Belroute, draft: &Draft, action: &str) -> (StatusCode, Markup) {
    let checked = match state.changes.check(&draft.name, &draft.content).await {
        Ok(checked) => checked,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                notice(Tone::Error, &e.to_string()),
            );
        }
    };
    let checks = problems_view(lang, &draft.content, &checked);
    let Some(set) = &checked.set else {
        return (StatusCode::UNPROCESSABLE_ENTITY, checks);
    };
    match action {
        "test" => match state.changes.test(set).await {
            Ok(tests) => (
                StatusCode::OK,
                html! { (checks) (tests_view(lang, &tests)) },
            ),
            Err(e) => (
                StatusCode::SERVICE_UNAVAILABLE,
                html! { (checks) (notice(Tone::Error, &e.to_string())) },
            ),
        },
        "compare" => {
            let back = crate::time::back(&draft.since, crate::time::now_ms())
                .unwrap_or_else(|_| crate::time::now_ms() - crate::time::millis(COMPARE_WINDOW));
            match state.changes.compare(set, back).await {
                Ok(summary) => (
                    StatusCode::OK,
                    html! { (checks) (compare_view(lang, &summary)) },
                ),
                Err(e) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    html! { (checks) (notice(Tone::Error, &e.to_string())) },
                ),
            }
        }
        _ => (StatusCode::OK, checks),
    }
}

/// `POST /admin/rulesets/{name}/revisions/{hash}/restore`: the revision as a draft.
pub async fn restore(
    req: HttpRequest,
    state: web::Data<Belroute>,
    session: Ses,
    _form: Posted,
) -> HttpResponse {
    let lang = Lang::of(&req);
    let name = name(&req);
    let hash = req.match_info().get("hash").unwrap_or_default().to_string();
    let Ok(Some(revision)) = find_revision(&state, &name, &hash).await else {
        return answer(
            StatusCode::NOT_FOUND,
            lang,
            &name,
            "/admin",
            &session,
            notice(
                Tone::Error,
                &lang.t("no_such_revision").replace("{hash}", &hash),
            ),
        );
    };
    let base = state.changes.current(&name).ok().flatten().map(|(_, v)| v);
    let draft = Draft {
        name: name.clone(),
        content: revision.content.unwrap_or_default(),
        base,
        source: Source::Restore,
        note: lang.t("restore_note").replace("{hash}", &short(&hash)),
        since: "7d".into(),
    };
    let (status, results) = run(lang, &state, &draft, "compare").await;
    let results = html! { (notice(Tone::Ok, &lang.t("restore_draft").replace("{hash}", &short(&hash)))) (results) };
    answer(
        status,
        lang,
        &edit_title(lang, &name),
        "/admin",
        &session,
        editor(lang, &session, &draft, results),
    )
}

/// `GET /admin/rulesets/{name}/hours`: the opening hours of each `open_hours("…")`.
pub async fn hours(req: HttpRequest, state: web::Data<Belroute>, session: Ses) -> HttpResponse {
    let lang = Lang::of(&req);
    let name = name(&req);
    let Ok(Some((text, version))) = state.changes.current(&name) else {
        return not_found(lang, &name, &session);
    };
    let spots = forms::opening_hours(&text);
    let body = html! {
        p.muted { (lang.t("hours_hint")) }
        form.try method="post" action={ (here(&name)) "/hours" } #hours-form {
            (csrf(&session))
            input type="hidden" name="base" value=(version);
            @for (i, spot) in spots.iter().enumerate() {
                label {
                    (spot.rule.as_deref().unwrap_or("")) " " span.muted { "(" (lang.t("line")) " " (spot.line) ")" }
                    input type="text" name={ "spec" (i) } id={ "spec" (i) } value=(spot.spec) spellcheck="false";
                }
            }
            button #hours-next { (lang.t("form_next")) }
        }
    };
    ok(
        lang,
        &format!("{name} — {}", lang.t("form_hours")),
        "/admin",
        &session,
        body,
    )
}

/// `GET /admin/rulesets/{name}/holidays`: the `holidays` list, one day per line.
pub async fn holidays(req: HttpRequest, state: web::Data<Belroute>, session: Ses) -> HttpResponse {
    let lang = Lang::of(&req);
    let name = name(&req);
    let Ok(Some((text, version))) = state.changes.current(&name) else {
        return not_found(lang, &name, &session);
    };
    let listed = match forms::holidays(&text) {
        Ok(days) => days,
        Err(e) => {
            return answer(
                StatusCode::UNPROCESSABLE_ENTITY,
                lang,
                &name,
                "/admin",
                &session,
                notice(Tone::Error, &e.to_string()),
            );
        }
    };
    let value: String = listed
        .iter()
        .map(|d| match &d.name {
            Some(n) => format!("{} {n}\n", d.date),
            None => format!("{}\n", d.date),
        })
        .collect();
    let body = html! {
        p.muted { (lang.t("holidays_hint")) }
        form.try method="post" action={ (here(&name)) "/holidays" } #holidays-form {
            (csrf(&session))
            input type="hidden" name="base" value=(version);
            label { (lang.t("form_holidays")) textarea name="days" #days rows="12" spellcheck="false" { (value) } }
            button #holidays-next { (lang.t("form_next")) }
        }
    };
    ok(
        lang,
        &format!("{name} — {}", lang.t("form_holidays")),
        "/admin",
        &session,
        body,
    )
}

/// `POST /admin/rulesets/{name}/hours` and `…/holidays`: the form's values written into the
/// file's text as a draft (nothing else in it changes), checked and compared, ready to publish.
pub async fn form_draft(
    req: HttpRequest,
    state: web::Data<Belroute>,
    session: Ses,
    form: Posted,
) -> HttpResponse {
    let lang = Lang::of(&req);
    let name = name(&req);
    let Ok(Some((text, version))) = state.changes.current(&name) else {
        return not_found(lang, &name, &session);
    };
    if form.get("base") != version {
        return answer(
            StatusCode::CONFLICT,
            lang,
            &name,
            "/admin",
            &session,
            notice(Tone::Error, &forms::FormError::Stale.to_string()),
        );
    }
    let edited = if req.path().ends_with("/hours") {
        let specs: Vec<String> = (0..forms::opening_hours(&text).len())
            .map(|i| form.get(&format!("spec{i}")).to_string())
            .collect();
        forms::set_opening_hours(&text, &specs)
    } else {
        forms::parse_holidays(form.get("days")).and_then(|days| forms::set_holidays(&text, &days))
    };
    let content = match edited {
        Ok(content) => content,
        Err(e) => {
            return answer(
                StatusCode::UNPROCESSABLE_ENTITY,
                lang,
                &name,
                "/admin",
                &session,
                notice(Tone::Error, &e.to_string()),
            );
        }
    };
    let draft = Draft {
        name: name.clone(),
        content,
        base: Some(version),
        source: Source::Console,
        note: String::new(),
        since: "7d".into(),
    };
    let (status, results) = run(lang, &state, &draft, "compare").await;
    answer(
        status,
        lang,
        &edit_title(lang, &name),
        "/admin",
        &session,
        editor(lang, &session, &draft, results),
    )
}

/// `GET /admin/rulesets/new`: a name for a new rule set.
pub async fn new_form(req: HttpRequest, session: Ses) -> HttpResponse {
    let lang = Lang::of(&req);
    let body = html! {
        form.try method="post" action="/admin/rulesets/new" #new-form {
            (csrf(&session))
            label { (lang.t("ruleset_name")) input type="text" name="name" #name required pattern="[A-Za-z0-9_-]+" spellcheck="false"; }
            button #new-next { (lang.t("form_next")) }
        }
    };
    ok(lang, lang.t("new_ruleset"), "/admin", &session, body)
}

/// `POST /admin/rulesets/new`: a draft of `belroute init`'s rule set, under the new name.
pub async fn new_draft(
    req: HttpRequest,
    state: web::Data<Belroute>,
    session: Ses,
    form: Posted,
) -> HttpResponse {
    let lang = Lang::of(&req);
    let name = form.get("name").trim().to_string();
    match state.changes.current(&name) {
        Ok(None) => {}
        Ok(Some(_)) => {
            return answer(
                StatusCode::CONFLICT,
                lang,
                lang.t("new_ruleset"),
                "/admin",
                &session,
                notice(
                    Tone::Error,
                    &format!("`{name}`: {}", lang.t("ruleset_exists")),
                ),
            );
        }
        Err(e) => return change_error_page(lang, lang.t("new_ruleset"), &session, &e),
    }
    let draft = Draft {
        name: name.clone(),
        content: crate::cli::init::MAIN_YAML
            .replace("rule set `main`", &format!("rule set `{name}`"))
            .replace("/hooks/main", &format!("/hooks/{name}"))
            .replace("main.test.yaml", &format!("{name}.test.yaml")),
        base: None,
        source: Source::Console,
        note: String::new(),
        since: "7d".into(),
    };
    ok(
        lang,
        &edit_title(lang, &name),
        "/admin",
        &session,
        editor(lang, &session, &draft, html! {}),
    )
}
