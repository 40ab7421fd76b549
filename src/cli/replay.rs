//! `belroute replay`: what the rule files on disk now would have done to the calls in the log.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use belroute_engine::{LocalTime, LookupResult, Router, RuleSet};
use serde_json::{Value, json};

use crate::config::Config;
use crate::replay::{Limits, Replayer, Summary, masked_caller, replay_window, short};
use crate::storage::Storage;
use crate::storage::replay::ReplayWindow;

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    /// Only these rule sets; every rule set in the log when empty.
    pub rulesets: Vec<String>,
    /// `24h`, `7d`: calls received this long back from now (when neither from nor to is given).
    pub since: Option<String>,
    /// RFC 3339, or a local time in the configured zone ("2026-11-23 09:00").
    pub from: Option<String>,
    pub to: Option<String>,
    /// One call in full, by uuid.
    pub call: Option<String>,
    pub json: bool,
    /// Exit 1 when a call would change.
    pub fail_on_change: bool,
    pub page_size: usize,
}

/// Runs `belroute replay`; `Ok(false)` (exit 1) only with `--fail-on-change` and a change, or
/// when a rule file asked for does not load.
pub async fn replay(
    dir: &Path,
    router: &Router,
    config: &Config,
    storage: &Storage,
    request: &ReplayRequest,
    out: &mut String,
) -> anyhow::Result<bool> {
    let checked = super::check_dir(dir, router, config)?;
    let sets: BTreeMap<String, Arc<RuleSet>> = checked
        .rulesets
        .iter()
        .map(|set| (set.name.to_string(), set.clone()))
        .collect();
    for name in &request.rulesets {
        if !sets.contains_key(name) {
            let broken: Vec<_> = checked
                .problems
                .iter()
                .filter(|p| p.file.file_stem().and_then(|s| s.to_str()) == Some(name.as_str()))
                .collect();
            if broken.is_empty() {
                anyhow::bail!(
                    "no rule set `{name}` in {} (there are: {})",
                    dir.display(),
                    sets.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            }
            for problem in broken {
                let _ = writeln!(out, "{problem}");
            }
            let _ = writeln!(
                out,
                "rule set `{name}` does not load; fix it (`belroute check`) before replaying"
            );
            return Ok(false);
        }
    }
    let replayer = Replayer::new(
        router.scripts().clone(),
        router.normaliser().clone(),
        config.hooks.margin,
        &config.sandbox.pool,
        belroute_engine::WorkerCommand::this_binary()
            .context("cannot find this program to start rule workers")?,
    );
    if let Some(uuid) = &request.call {
        return one_call(&replayer, storage, &sets, uuid, request.json, out).await;
    }
    let (from_ms, to_ms) = window(request, config)?;
    let window = ReplayWindow {
        rulesets: request.rulesets.clone(),
        from_ms,
        to_ms,
        except_version: None,
    };
    let limits = Limits {
        page_size: request.page_size,
        ..Limits::default()
    };
    let summary = replay_window(
        &replayer,
        storage,
        &window,
        &sets,
        crate::replay::Against::Logged,
        &limits,
    )
    .await
    .map_err(|e| database_error(&e, e.no_tables()))?;
    if request.json {
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&summary)?);
    } else {
        write_summary(&summary, &sets, out);
    }
    Ok(!(request.fail_on_change && summary.changed > 0))
}

fn database_error(e: &impl std::fmt::Display, no_tables: bool) -> anyhow::Error {
    let hint = if no_tables {
        " (no call log there: pass the database `belroute serve` logs to with --database)"
    } else {
        " (pass the database `belroute serve` logs to with --database, or set BELROUTE_DATABASE)"
    };
    anyhow::anyhow!("cannot read the call log: {e}{hint}")
}

fn no_tables(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db)
        if db.message().contains("no such table") || db.message().contains("does not exist"))
}

/// The window in Unix milliseconds.
fn window(request: &ReplayRequest, config: &Config) -> anyhow::Result<(i64, i64)> {
    let now = crate::time::now_ms();
    if request.from.is_none() && request.to.is_none() {
        let since = request.since.as_deref().unwrap_or("24h");
        let from = crate::time::back(since, now).map_err(|_| {
            anyhow::anyhow!(
                "`--since {since}`: write a duration back from now such as 30m, 24h or 7d"
            )
        })?;
        return Ok((from, now.saturating_add(1)));
    }
    let from = match &request.from {
        Some(text) => time(text, "--from", config)?,
        None => 0,
    };
    let to = match &request.to {
        Some(text) => time(text, "--to", config)?,
        None => now.saturating_add(1),
    };
    if to <= from {
        anyhow::bail!("`--to` must be later than `--from`");
    }
    Ok((from, to))
}

fn time(text: &str, flag: &str, config: &Config) -> anyhow::Result<i64> {
    crate::time::written(text, config.timezone.0)
        .with_context(|| {
            format!(
                "`{flag} {text}`: write a local time such as \"2026-11-23 09:00\" ({}) or RFC 3339 (2026-11-23T08:00:00Z)",
                config.timezone.0
            )
        })?
        .map_err(|e| anyhow::anyhow!("`{flag}`: {e}"))
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The summary as a newcomer reads it.
fn write_summary(summary: &Summary, sets: &BTreeMap<String, Arc<RuleSet>>, out: &mut String) {
    let versions: Vec<String> = summary
        .versions
        .iter()
        .filter(|(name, _)| {
            summary.logged_versions.contains_key(*name) || summary.versions.len() == 1
        })
        .map(|(name, version)| format!("{name} {}", short(version)))
        .collect();
    let _ = writeln!(
        out,
        "Replayed the calls logged from {} to {} with the rule files as they are now{}.",
        summary.from,
        summary.to,
        if versions.is_empty() {
            String::new()
        } else {
            format!(" ({})", versions.join(", "))
        }
    );
    let _ = writeln!(
        out,
        "{} replayed: {} unchanged, {} would route differently{}.",
        plural(summary.replayed, "call", "calls"),
        summary.unchanged,
        summary.changed,
        if summary.unrecorded.changed > 0 {
            format!(
                "; {} more only because a lookup was not recorded then (below, not counted)",
                summary.unrecorded.changed
            )
        } else {
            String::new()
        }
    );
    if summary.other_rule > 0 {
        let _ = writeln!(
            out,
            "{} keep their route but are now decided by another rule.",
            plural(summary.other_rule, "call", "calls")
        );
    }
    let multi = sets.len() > 1 && summary.logged_versions.len() > 1;
    if !summary.changes.is_empty() {
        let _ = writeln!(out);
        write_changes(&summary.changes, "to", multi, out);
        if let Some(example) = summary.changes.first().and_then(|c| c.examples.first()) {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "See one call in full, then and now side by side: belroute replay --call {}",
                example.uuid
            );
        }
    }
    if summary.unrecorded.calls > 0 {
        let lookups: Vec<String> = summary
            .unrecorded
            .lookups
            .iter()
            .map(|(name, n)| format!("`{name}` ({})", plural(*n, "call", "calls")))
            .collect();
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{} now read a lookup the log did not record for them: {}. It counted as unavailable, as if the CRM had not answered; the live answer may differ.",
            plural(summary.unrecorded.calls, "call", "calls"),
            lookups.join(", ")
        );
    }
    if !summary.unrecorded.changes.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Not known from the log: {} route differently only because a lookup they now read was not recorded for them (it counted as unavailable). These are not counted as changes above; whether they would change live depends on what the CRM answers:",
            plural(summary.unrecorded.changed, "call", "calls")
        );
        let _ = writeln!(out);
        write_changes(
            &summary.unrecorded.changes,
            "to, with the lookup unavailable",
            multi,
            out,
        );
    }
    if !summary.not_compared.is_empty() {
        let parts: Vec<String> = summary
            .not_compared
            .iter()
            .map(|(why, n)| format!("{n} {}", not_compared_reason(why)))
            .collect();
        let _ = writeln!(out);
        let _ = writeln!(out, "Not compared: {}.", parts.join("; "));
    }
    if summary.replayed == 0 && summary.not_compared.is_empty() {
        let _ = writeln!(
            out,
            "No calls in this window; try a longer one (--since 7d) or check --database."
        );
    }
}

/// A from → to table of `changes` and a few example calls of each row.
fn write_changes(changes: &[crate::replay::Change], to_head: &str, multi: bool, out: &mut String) {
    let rows: Vec<(String, String, String)> = changes
        .iter()
        .map(|c| (c.calls.to_string(), c.from.to_string(), c.to.to_string()))
        .collect();
    let width = rows
        .iter()
        .map(|r| r.1.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(out, "  calls  {:<width$}  →  {to_head}", "from");
    for (change, (calls, from, to)) in changes.iter().zip(&rows) {
        let set = if multi {
            format!("  [{}]", change.ruleset)
        } else {
            String::new()
        };
        let _ = writeln!(out, "  {calls:>5}  {from:<width$}  →  {to}{set}");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "For example:");
    for change in changes {
        let _ = writeln!(
            out,
            "  {} → {} ({}):",
            change.from.route,
            change.to.route,
            plural(change.calls, "call", "calls")
        );
        for example in &change.examples {
            let _ = writeln!(
                out,
                "    {}  caller {}  {}",
                example.uuid, example.caller, example.at
            );
        }
    }
}

fn not_compared_reason(why: &str) -> &str {
    match why {
        "deadline" => "answered the default when time ran out (not a decision of the rules)",
        "over_share" => "answered the default when the rule set was over its share",
        "unreadable" => "had no readable call data",
        "failed" => "answered the default after an internal failure",
        "no rule file" => "of rule sets that have no rule file now",
        "unreadable record" => "could not be read back from the log",
        "undecided" => "ran out of time or failed when replayed",
        other => other,
    }
}

/// `--call UUID`: the logged decision and the one now, side by side.
async fn one_call(
    replayer: &Replayer,
    storage: &Storage,
    sets: &BTreeMap<String, Arc<RuleSet>>,
    uuid: &str,
    as_json: bool,
    out: &mut String,
) -> anyhow::Result<bool> {
    let (logged, _) = storage
        .call(crate::storage::CallKey::Uuid(uuid))
        .await
        .map_err(|e| database_error(&e, no_tables(&e)))?
        .with_context(|| format!("no call with uuid `{uuid}` in the call log"))?;
    let set = sets.get(&logged.ruleset).with_context(|| {
        format!(
            "call `{uuid}` was answered by rule set `{}`, which has no rule file now",
            logged.ruleset
        )
    })?;
    let replayed = replayer
        .replay(set, &logged)
        .await
        .map_err(|e| anyhow::anyhow!("call `{uuid}`: {e}"))?;
    let now = &replayed.decision;
    if as_json {
        let body = json!({
            "uuid": logged.uuid,
            "ruleset": logged.ruleset,
            "received_at": crate::time::rfc3339(replayed.at.timestamp_millis()),
            "then": {
                "version": logged.version,
                "route": logged.route,
                "rule": logged.rule,
                "reason": logged.reason,
                "trace": replayed.then,
            },
            "now": now,
            "changed": now.route != logged.route && replayed.unrecorded.is_empty(),
            "changed_only_for_unrecorded": now.route != logged.route && !replayed.unrecorded.is_empty(),
            "unrecorded": replayed.unrecorded,
        });
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&body)?);
        return Ok(true);
    }
    let local = replayed.at.with_timezone(&set.time_zone);
    let _ = writeln!(
        out,
        "call {} of rule set {}, received {}, caller {}",
        logged.uuid,
        logged.ruleset,
        LocalTime(&local),
        masked_caller(&logged.caller_raw)
    );
    let then_head = format!("then (version {})", short(&logged.version));
    let now_head = format!("now (version {}, on disk)", short(&set.version));
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let by = |rule: &Option<String>| {
        rule.as_deref()
            .map(|r| format!("rule `{r}`"))
            .unwrap_or_else(|| "the default".into())
    };
    rows.push(("route".into(), logged.route.clone(), now.route.clone()));
    rows.push(("by".into(), by(&logged.rule), by(&now.rule)));
    rows.push((String::new(), String::new(), String::new()));
    rows.push(("lookups".into(), String::new(), String::new()));
    let then_lookups: BTreeMap<String, String> = replayed
        .then
        .lookups
        .iter()
        .map(|l| (l.name.clone(), lookup_text(&l.result)))
        .collect();
    let mut names: Vec<String> = now.lookups.iter().map(|l| l.name.clone()).collect();
    for name in then_lookups.keys() {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    for name in &names {
        let then = then_lookups
            .get(name)
            .cloned()
            .unwrap_or_else(|| "(not recorded)".into());
        let now_text = match now.lookups.iter().find(|l| &l.name == name) {
            None => "(not declared now)".into(),
            Some(_) if replayed.unrecorded.contains(name) => {
                "unavailable: not recorded then, so not known".into()
            }
            Some(l) if !l.awaited => format!("{} (no rule read it)", lookup_text(&l.result)),
            Some(l) => lookup_text(&l.result),
        };
        rows.push((format!("  {name}"), then, now_text));
    }
    rows.push((String::new(), String::new(), String::new()));
    rows.push(("rules".into(), String::new(), String::new()));
    let then_rules: Vec<(String, String)> = replayed
        .then
        .rules
        .iter()
        .map(|r| (r.name.clone(), super::describe(&r.outcome)))
        .collect();
    let mut rule_names: Vec<String> = now.rules.iter().map(|r| r.name.clone()).collect();
    let known: BTreeSet<&String> = rule_names.iter().collect();
    let gone: Vec<String> = then_rules
        .iter()
        .filter(|(name, _)| !known.contains(name))
        .map(|(name, _)| name.clone())
        .collect();
    rule_names.extend(gone);
    for name in &rule_names {
        let then = then_rules
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| "(not in that version)".into());
        let now_text = now
            .rules
            .iter()
            .find(|r| &r.name == name)
            .map(|r| super::describe(&r.outcome))
            .unwrap_or_else(|| "(not in this version)".into());
        rows.push((format!("  {name}"), then, now_text));
    }
    let label = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let left = rows
        .iter()
        .map(|r| r.1.chars().count())
        .chain([then_head.chars().count()])
        .max()
        .unwrap_or(0);
    let _ = writeln!(out);
    let _ = writeln!(out, "{:<label$}  {then_head:<left$}  {now_head}", "");
    for (name, then, now_text) in &rows {
        let line = format!("{name:<label$}  {then:<left$}  {now_text}");
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let _ = writeln!(out);
    let unrecorded: Vec<String> = replayed
        .unrecorded
        .iter()
        .map(|n| format!("`{n}`"))
        .collect();
    if now.route == logged.route {
        let _ = writeln!(out, "unchanged: both answer `{}`", now.route);
    } else if unrecorded.is_empty() {
        let _ = writeln!(out, "changed: `{}` then, `{}` now", logged.route, now.route);
    } else {
        let _ = writeln!(
            out,
            "not known: `{}` then, `{}` now only because {} {} not recorded when the call was logged (it counted as unavailable); live, the answer depends on what the CRM says",
            logged.route,
            now.route,
            unrecorded.join(", "),
            if unrecorded.len() == 1 { "was" } else { "were" }
        );
    }
    Ok(true)
}

fn lookup_text(result: &LookupResult) -> String {
    match result {
        LookupResult::Found { facts } => {
            format!("found {}", Value::Object((**facts).clone()))
        }
        LookupResult::NotFound => "not found".into(),
        LookupResult::Unavailable { reason } => format!("unavailable: {reason}"),
    }
}
