//! Rule sets: what operators write in `rules/{name}.yaml`, validated and compiled.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::NaiveDate;
use chrono_tz::Tz;
use sha2::{Digest, Sha256};

use crate::clock::{self, Deadline, Holidays, parse_time_zone};
use crate::diagnostic::{Diagnostic, Diagnostics, Position};
use crate::sandbox::Quarantine;
use crate::script::{OfficeHoursTable, PrintBudget, Script, ScriptEngine, ScriptKind, Unbounded};
use crate::test_case::{self, TestCase};
use crate::yaml::{self, Fields, Node};

pub const MIN_TIMEOUT: Duration = Duration::from_secs(1);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest route accepted; Callvoip stores it in a belplan variable.
pub const MAX_ROUTE_LEN: usize = 255;

/// The two variables every rule can read; lookups add one each.
pub const CALL_VARIABLES: [&str; 2] = ["call", "caller"];

const KEYS: [&str; 8] = [
    "description",
    "timeout",
    "default",
    "lookups",
    "timezone",
    "holidays",
    "rules",
    "tests",
];
const RULE_KEYS: [&str; 4] = ["name", "when", "route", "script"];

/// A validated, compiled rule set: one version of one file.
#[derive(Debug)]
pub struct RuleSet {
    /// The file stem: `/hooks/{name}`.
    pub name: Arc<str>,
    pub file: PathBuf,
    /// Short content hash: which version of the file answered a call.
    pub version: String,
    /// The file's text, as loaded: what a worker process compiles.
    pub source: Arc<str>,
    pub description: String,
    /// Callvoip's Request Timeout for this Webhook-app.
    pub timeout: Duration,
    /// Answered when no rule matches or time runs out.
    pub default_route: String,
    /// Plugin instances this set may use, in the order written.
    pub lookups: Vec<String>,
    pub time_zone: Tz,
    pub holidays: Arc<Holidays>,
    pub rules: Vec<Rule>,
    /// Tests written in the file's own `tests:` section.
    pub tests: Vec<TestCase>,
    /// The office-hours texts its rules write literally, read once at load.
    pub office_hours: Arc<OfficeHoursTable>,
    /// Its allowance of `print`/`debug` log lines.
    pub print: Arc<PrintBudget>,
    /// Until when (Unix milliseconds) its calls skip the inline attempt and go straight to the
    /// evaluation pool: a rule of this version needed more than the inline budget.
    heavy_until: AtomicU64,
    /// This version's record of worker processes its rules made the operating system stop.
    pub quarantine: Quarantine,
}

/// One rule: tried in order, the first that matches answers.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    /// Where the rule starts in its file.
    pub position: Position,
    /// `None` always matches.
    pub when: Option<Script>,
    pub action: Action,
}

#[derive(Debug)]
pub enum Action {
    /// A literal route.
    Route(String),
    /// A script whose text result is the route; `()` falls through to the next rule.
    Script(Script),
}

impl Rule {
    /// Does the rule read lookup `name` (in `when` or `script`)?
    pub fn reads(&self, name: &str) -> bool {
        self.scripts().any(|s| s.reads(name))
    }

    /// What makes this rule run in a worker process (its first loop, closure, function or
    /// call not proven bounded); `None` when it runs in the server.
    pub fn unbounded(&self) -> Option<&Unbounded> {
        self.scripts().find_map(Script::unbounded)
    }

    /// Its `when` and its `script`, where it has them.
    pub fn scripts(&self) -> impl Iterator<Item = &Script> {
        let script = match &self.action {
            Action::Script(s) => Some(s),
            Action::Route(_) => None,
        };
        self.when.iter().chain(script)
    }
}

/// What loading needs to know about the rest of the server.
#[derive(Debug)]
pub struct LoadContext<'a> {
    pub scripts: &'a ScriptEngine,
    /// Names of the plugin instances configured in `belroute.yaml`.
    pub configured_lookups: &'a BTreeSet<String>,
    /// The zone used when the rule set names none.
    pub time_zone: Tz,
}

/// Is `name` usable as a rule set name (a URL path segment and a file stem)?
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The short content hash that identifies a version of a file.
pub fn content_version(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// Checks a route text: one printable line Callvoip can store and compare.
pub fn check_route(route: &str) -> Result<(), String> {
    if route.is_empty() {
        return Err("route is empty".into());
    }
    if route.chars().count() > MAX_ROUTE_LEN {
        return Err(format!("route is longer than {MAX_ROUTE_LEN} characters"));
    }
    if route.chars().any(crate::text::is_unprintable) {
        return Err(
            "route contains a line break, control character or invisible character (such as U+2028 or a zero-width space)"
                .into(),
        );
    }
    if route.trim() != route {
        return Err(
            "route starts or ends with spaces, which the Voorwaarde-app would have to match too"
                .into(),
        );
    }
    Ok(())
}

impl RuleSet {
    /// When a call that arrived at `arrived` must be answered: `timeout − margin` later.
    pub fn deadline(&self, arrived: tokio::time::Instant, margin: Duration) -> Deadline {
        Deadline::new(arrived, self.timeout.saturating_sub(margin))
    }

    /// Did a rule of this version recently need more than the inline budget?
    pub fn is_heavy(&self) -> bool {
        self.heavy_until.load(Ordering::Relaxed) > clock::unix_millis()
    }

    /// Sends this version's calls straight to the evaluation pool for `how_long`.
    pub fn mark_heavy(&self, how_long: Duration) {
        let until = clock::unix_millis()
            .saturating_add(u64::try_from(how_long.as_millis()).unwrap_or(u64::MAX));
        if self.heavy_until.swap(until, Ordering::Relaxed) <= clock::unix_millis() {
            tracing::info!(ruleset = %self.name, "a rule took longer than the inline budget: this rule set's calls are evaluated in the evaluation pool for {}", humantime::format_duration(how_long));
        }
    }

    /// Validates and compiles one rule file, reporting every problem found, not just the first.
    pub fn load(
        name: &str,
        file: &Path,
        text: &str,
        ctx: &LoadContext<'_>,
    ) -> Result<RuleSet, Vec<Diagnostic>> {
        RuleSet::load_text(name, file, text, ctx).map_err(|mut problems| {
            // Every problem is a place an editor can jump to: none past the end of the file.
            let end = yaml::end_of(text);
            for problem in &mut problems {
                problem.position = problem.position.min(end);
            }
            problems
        })
    }

    fn load_text(
        name: &str,
        file: &Path,
        text: &str,
        ctx: &LoadContext<'_>,
    ) -> Result<RuleSet, Vec<Diagnostic>> {
        let mut diags = Diagnostics::new(file);
        if !valid_name(name) {
            diags.error(
                Position::START,
                format!("rule set name `{name}` (the file name) may use only letters, digits, `-` and `_`; rename the file"),
            );
        }
        let root = match yaml::parse(text) {
            Ok(root) => root,
            Err(e) => {
                diags.error(e.position, e.to_string());
                return Err(diags.into_vec());
            }
        };
        if root.is_null() {
            diags.error(
                Position::START,
                "the file is empty; a rule set needs at least `default` and `rules`",
            );
            return Err(diags.into_vec());
        }
        let Some(fields) = Fields::read(&root, &KEYS, "a rule set", &mut diags) else {
            return Err(diags.into_vec());
        };

        let description = fields
            .text("description", "rule set", &mut diags)
            .unwrap_or_default()
            .to_string();
        let timeout = read_timeout(&fields, &mut diags);
        let default_route = read_default(&fields, &mut diags);
        let (lookups, unknown_lookups) = read_lookups(&fields, ctx, &mut diags);
        let time_zone = match fields.get("timezone") {
            None => ctx.time_zone,
            Some(node) => match node.as_str().map(parse_time_zone) {
                Some(Ok(tz)) => tz,
                Some(Err(message)) => {
                    diags.error(node.position, message);
                    ctx.time_zone
                }
                None => {
                    diags.error(
                        node.position,
                        "`timezone` must be a name such as Europe/Amsterdam",
                    );
                    ctx.time_zone
                }
            },
        };
        let holidays = read_holidays(&fields, &mut diags);

        let mut names: Vec<&str> = CALL_VARIABLES.to_vec();
        names.extend(lookups.iter().map(String::as_str));
        names.extend(unknown_lookups.iter().map(String::as_str));
        let rules = read_rules(&fields, ctx, &names, &lookups, &mut diags);
        let tests = match fields.get("tests") {
            Some(node) => test_case::read_tests(node, &mut diags),
            None => Vec::new(),
        };

        if !diags.is_empty() {
            return Err(diags.into_vec());
        }
        let office_hours: OfficeHoursTable = rules
            .iter()
            .flat_map(|rule| rule.scripts())
            .flat_map(|script| script.office_hours())
            .map(|(spec, hours)| (spec.to_string(), hours.clone()))
            .collect();
        Ok(RuleSet {
            name: Arc::from(name),
            file: file.to_path_buf(),
            version: content_version(text),
            source: Arc::from(text),
            description,
            timeout,
            default_route: default_route.unwrap_or_default(),
            lookups,
            time_zone,
            holidays: Arc::new(holidays),
            rules,
            tests,
            office_hours: Arc::new(office_hours),
            print: Arc::default(),
            heavy_until: AtomicU64::new(0),
            quarantine: Quarantine::default(),
        })
    }
}

fn read_timeout(fields: &Fields<'_>, diags: &mut Diagnostics<'_>) -> Duration {
    let Some(node) = fields.get("timeout") else {
        return DEFAULT_TIMEOUT;
    };
    let parsed = node
        .as_str()
        .ok_or_else(|| "`timeout` must be a duration such as 2s".to_string())
        .and_then(crate::settings::parse_duration);
    match parsed {
        Ok(t) if (MIN_TIMEOUT..=MAX_TIMEOUT).contains(&t) => t,
        Ok(t) => {
            diags.error(
                node.position,
                format!(
                    "`timeout` is {}; Callvoip's Request Timeout is 1s to 10s, set it to the value in the Webhook-app",
                    humantime::format_duration(t)
                ),
            );
            DEFAULT_TIMEOUT
        }
        Err(message) => {
            diags.error(node.position, message);
            DEFAULT_TIMEOUT
        }
    }
}

fn read_default(fields: &Fields<'_>, diags: &mut Diagnostics<'_>) -> Option<String> {
    let Some(node) = fields.get("default") else {
        diags.error(
            Position::START,
            "missing `default`: the route answered when no rule matches or time runs out (e.g. `default: receptie`)",
        );
        return None;
    };
    let Some(route) = node.as_str() else {
        diags.error(
            node.position,
            format!("`default` must be a route text, found {}", node.kind_name()),
        );
        return None;
    };
    if let Err(message) = check_route(route) {
        diags.error(node.position, format!("`default`: {message}"));
    }
    Some(route.to_string())
}

/// The declared lookups that are configured, and the names of those that are not (already
/// reported once here; rules reading them are not reported again).
fn read_lookups(
    fields: &Fields<'_>,
    ctx: &LoadContext<'_>,
    diags: &mut Diagnostics<'_>,
) -> (Vec<String>, Vec<String>) {
    let mut unknown: Vec<String> = Vec::new();
    let Some(node) = fields.get("lookups") else {
        return (Vec::new(), unknown);
    };
    let Some(items) = node.as_seq() else {
        diags.error(
            node.position,
            format!(
                "`lookups` must be a list of plugin names, found {}",
                node.kind_name()
            ),
        );
        return (Vec::new(), unknown);
    };
    let mut lookups: Vec<String> = Vec::new();
    for item in items {
        let Some(name) = item.as_str() else {
            diags.error(
                item.position,
                format!("a lookup is a plugin name, found {}", item.kind_name()),
            );
            continue;
        };
        if lookups.iter().any(|l| l == name) {
            diags.error(item.position, format!("lookup `{name}` is listed twice"));
            continue;
        }
        if !ctx.configured_lookups.contains(name) {
            let configured = if ctx.configured_lookups.is_empty() {
                "none are configured".to_string()
            } else {
                format!(
                    "configured: {}",
                    ctx.configured_lookups
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            diags.error(
                item.position,
                format!("unknown lookup `{name}`: no plugin of that name in belroute.yaml `plugins:` ({configured})"),
            );
            unknown.push(name.to_string());
            continue;
        }
        lookups.push(name.to_string());
    }
    (lookups, unknown)
}

fn read_holidays(fields: &Fields<'_>, diags: &mut Diagnostics<'_>) -> Holidays {
    let mut holidays = Holidays::default();
    let Some(node) = fields.get("holidays") else {
        return holidays;
    };
    let Some(items) = node.as_seq() else {
        diags.error(
            node.position,
            "`holidays` must be a list of dates (2026-12-25) or {date, name} entries",
        );
        return holidays;
    };
    for item in items {
        let (date_node, name) = match item.as_map() {
            Some(_) => {
                let Some(entry) = Fields::read(item, &["date", "name"], "a holiday", diags) else {
                    continue;
                };
                let Some(date) = entry.get("date") else {
                    diags.error(item.position, "a holiday needs a `date` (YYYY-MM-DD)");
                    continue;
                };
                (
                    date,
                    entry
                        .text("name", "holiday", diags)
                        .unwrap_or("holiday")
                        .to_string(),
                )
            }
            None => (item, "holiday".to_string()),
        };
        match date_node
            .as_str()
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        {
            Some(date) => {
                if holidays.insert(date, name).is_some() {
                    diags.error(
                        date_node.position,
                        format!("holiday {date} is listed twice"),
                    );
                }
            }
            None => diags.error(
                date_node.position,
                "a holiday date is written YYYY-MM-DD, e.g. 2026-12-25",
            ),
        }
    }
    holidays
}

fn read_rules(
    fields: &Fields<'_>,
    ctx: &LoadContext<'_>,
    names: &[&str],
    declared: &[String],
    diags: &mut Diagnostics<'_>,
) -> Vec<Rule> {
    let Some(node) = fields.get("rules") else {
        if fields.key_position("rules").is_none() {
            diags.error(
                Position::START,
                "missing `rules`: a list of rules tried in order (it may be empty: `rules: []`)",
            );
        }
        return Vec::new();
    };
    let Some(items) = node.as_seq() else {
        diags.error(
            node.position,
            format!(
                "`rules` must be a list of rules, found {}",
                node.kind_name()
            ),
        );
        return Vec::new();
    };
    let mut rules: Vec<Rule> = Vec::new();
    // First position of each rule name, for duplicates in one pass (files can be large).
    let mut first_lines: HashMap<String, usize> = HashMap::new();
    for (index, item) in items.iter().enumerate() {
        let Some(rule_fields) = Fields::read(item, &RULE_KEYS, "a rule", diags) else {
            continue;
        };
        let name = match rule_fields.text("name", "rule", diags) {
            Some(n) if !n.trim().is_empty() => n.to_string(),
            _ => {
                diags.error(
                    item.position,
                    format!(
                        "rule {} has no `name`; give each rule a short unique name",
                        index + 1
                    ),
                );
                format!("rule {}", index + 1)
            }
        };
        if let Some(first_line) = first_lines.get(&name) {
            diags.error(
                rule_fields.key_position("name").unwrap_or(item.position),
                format!("duplicate rule name `{name}` (first at line {first_line}); names identify rules in logs and tests"),
            );
        } else {
            first_lines.insert(name.clone(), item.position.line);
        }
        let mut compile = |kind: ScriptKind, node: &Node| -> Option<Script> {
            if node.as_str().is_none() {
                diags.error(
                    node.position,
                    format!(
                        "rule `{name}`: expected Rhai text, found {}",
                        node.kind_name()
                    ),
                );
                return None;
            }
            match ctx.scripts.compile(kind, node, names) {
                Ok(script) => Some(script),
                Err(e) => {
                    diags.error(
                        e.position,
                        format!(
                            "rule `{name}`: {}",
                            explain_undeclared(&e.message, ctx, declared)
                        ),
                    );
                    None
                }
            }
        };
        let when = rule_fields
            .get("when")
            .and_then(|n| compile(ScriptKind::Condition, n));
        let action = match (rule_fields.get("route"), rule_fields.get("script")) {
            (Some(route), None) => match route.as_str() {
                Some(text) => {
                    if let Err(message) = check_route(text) {
                        diags.error(route.position, format!("rule `{name}`: {message}"));
                    }
                    Some(Action::Route(text.to_string()))
                }
                None => {
                    diags.error(
                        route.position,
                        format!(
                            "rule `{name}`: `route` must be text, found {}",
                            route.kind_name()
                        ),
                    );
                    None
                }
            },
            (None, Some(script)) => compile(ScriptKind::Route, script).map(Action::Script),
            (Some(_), Some(_)) => {
                diags.error(
                    rule_fields.key_position("script").unwrap_or(item.position),
                    format!("rule `{name}` has both `route` and `script`; keep one"),
                );
                None
            }
            (None, None) => {
                diags.error(
                    item.position,
                    format!("rule `{name}` needs a `route` (a literal) or a `script` (Rhai)"),
                );
                None
            }
        };
        if let Some(action) = action {
            rules.push(Rule {
                name,
                position: item.position,
                when,
                action,
            });
        }
    }
    rules
}

/// Turns "unknown variable `invoices`" into the fix when `invoices` is a configured plugin.
fn explain_undeclared(message: &str, ctx: &LoadContext<'_>, declared: &[String]) -> String {
    let name = message
        .strip_prefix("unknown variable `")
        .and_then(|rest| rest.split('`').next());
    match name {
        Some(name)
            if ctx.configured_lookups.contains(name) && !declared.iter().any(|d| d == name) =>
        {
            format!("`{name}` is a lookup this rule set does not declare; add it to `lookups:`")
        }
        _ => message.to_string(),
    }
}
