//! Rule sets: what operators write in `rules/{name}.yaml`, validated and compiled.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{Datelike, NaiveDate};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};

use crate::clock::{self, Deadline, Holidays, parse_time_zone};
use crate::diagnostic::{Diagnostic, Diagnostics, Position};
use crate::sandbox::Quarantine;
use crate::script::{OfficeHoursTable, PrintBudget, Script, ScriptEngine, ScriptKind, Unbounded};
use crate::test_case::{self, TestCase};
use crate::vocabulary::{Check, DeclaredFacts, Vocabulary};
use crate::yaml::{self, Fields, Node};

pub const MIN_TIMEOUT: Duration = Duration::from_secs(1);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest route accepted; Callvoip stores it in a belplan variable.
pub const MAX_ROUTE_LEN: usize = 255;

/// The two variables every rule can read; lookups add one each.
pub const CALL_VARIABLES: [&str; 2] = ["call", "caller"];

const KEYS: [&str; 12] = [
    "description",
    "timeout",
    "default",
    "routes",
    "call_fields",
    "lookups",
    "timezone",
    "calendar",
    "holidays",
    "rules",
    "tests",
    "relax",
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
    /// The routes the belplan's Voorwaarde-app has branches for (`routes:`; `*` matches any
    /// text); `None` when the rule set does not list them.
    pub routes: Option<Vec<String>>,
    /// What its rules may read: `call`'s fields and each lookup's declared facts.
    pub vocabulary: Vocabulary,
    /// Checks the rule set relaxes for a migration period (`relax:`).
    pub relaxed: BTreeSet<Check>,
    /// The company calendars it was loaded with (a worker compiles it with the same).
    pub calendars: Arc<crate::calendar::Calendars>,
    /// What does not stop the file loading but an operator should know: a rule that is never
    /// reached, that runs in a worker, holidays all past, a relaxed check's problems.
    pub warnings: Vec<Diagnostic>,
    /// The office-hours texts its rules write literally, read once at load.
    pub office_hours: Arc<OfficeHoursTable>,
    /// Its allowance of `print`/`debug` log lines.
    pub print: Arc<PrintBudget>,
    /// Until when (Unix milliseconds) its calls skip the inline attempt and go straight to the
    /// evaluation pool: a rule of this version needed more than the inline budget.
    heavy_until: AtomicU64,
    /// This version's record of worker processes its rules made the operating system stop.
    pub quarantine: Quarantine,
    /// The `call` fields its rules read (`None`: some rule may read any): rules are given
    /// `call` with only these, not a map of every field on every call.
    pub call_fields_read: Option<Vec<String>>,
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
    /// Where its `route` (or `script`) is written.
    pub route_position: Position,
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

/// The plugin instances configured in belroute.yaml, by name, with the facts each declares
/// (`None`: a plugin whose answers belroute cannot know, so rules cannot read its facts).
pub type LookupFacts = BTreeMap<String, Option<DeclaredFacts>>;

/// What loading needs to know about the rest of the server.
#[derive(Debug)]
pub struct LoadContext<'a> {
    pub scripts: &'a ScriptEngine,
    /// The plugin instances configured in `belroute.yaml`, and what each answers.
    pub lookups: &'a LookupFacts,
    /// The company calendars of belroute.yaml `calendars:`, which `calendar: include:` names.
    pub calendars: &'a crate::calendar::Calendars,
    /// The zone used when the rule set names none.
    pub time_zone: Tz,
}

/// Does `route` match one of the `routes:` patterns (`*` matches any text, even none)?
pub fn route_matches(pattern: &str, route: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return false;
    };
    let Some(mut rest) = route.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
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

    /// Is `route` one the Voorwaarde-app has a branch for? Always, when `routes:` is not
    /// listed.
    pub fn route_declared(&self, route: &str) -> bool {
        self.routes
            .as_ref()
            .is_none_or(|routes| routes.iter().any(|p| route_matches(p, route)))
    }

    /// Checks tests (a `{name}.test.yaml`'s, which the rule file does not hold) against what
    /// the rule set's lookups declare: a fact a test gives that no rule could read is a typo.
    /// Returns the problems and the warnings (of a relaxed check).
    pub fn check_tests(&self, tests: &[TestCase]) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
        check_test_facts(&self.vocabulary, &self.relaxed, tests)
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
        let relaxed = read_relax(&fields, &mut diags);
        let mut warnings = Diagnostics::new(file);
        for check in &relaxed {
            warnings.error(
                fields.key_position("relax").unwrap_or(Position::START),
                format!(
                    "note: check `{}` is relaxed in this rule set: its problems are shown as warnings and do not stop the file loading; remove it from `relax:` once they are fixed",
                    check.name()
                ),
            );
        }
        let routes = read_routes(&fields, &mut diags);
        let call_fields = read_call_fields(&fields, &mut diags);
        let (lookups, unknown_lookups) = read_lookups(&fields, ctx, &mut diags);
        let vocabulary = Vocabulary {
            call_fields,
            lookups: lookups
                .iter()
                .map(|name| (name.clone(), ctx.lookups.get(name).cloned().flatten()))
                .collect(),
        };
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
        let mut holidays = read_holidays(&fields, &mut diags, &mut warnings);
        read_calendar(&fields, ctx, &mut holidays, &mut diags);

        let mut names: Vec<&str> = CALL_VARIABLES.to_vec();
        names.extend(lookups.iter().map(String::as_str));
        names.extend(unknown_lookups.iter().map(String::as_str));
        let rules = read_rules(&fields, ctx, &names, &lookups, &mut diags);
        let tests = match fields.get("tests") {
            Some(node) => test_case::read_tests(node, &mut diags),
            None => Vec::new(),
        };
        let mut strict = Strict {
            relaxed: &relaxed,
            problems: &mut diags,
            warnings: &mut warnings,
        };
        for rule in &rules {
            for script in rule.scripts() {
                for finding in script.check(&vocabulary) {
                    strict.found(
                        finding.check,
                        finding.position,
                        format!("rule `{}`: {}", rule.name, finding.message),
                    );
                }
            }
        }
        check_routes(&fields, routes.as_deref(), &rules, &mut strict);
        let (test_problems, test_warnings) = check_test_facts(&vocabulary, &relaxed, &tests);
        for problem in test_problems {
            strict.problems.error(problem.position, problem.message);
        }
        for warning in test_warnings {
            strict.warnings.error(warning.position, warning.message);
        }
        never_reached(&rules, strict.warnings);
        for rule in &rules {
            if let Some(why) = rule.unbounded() {
                strict.warnings.error(
                    why.position,
                    format!(
                        "warning: rule `{}` runs in a worker process because it uses {}: a few dozen microseconds more per call, and stopped by the operating system at the deadline; a rule without loops, functions, closures and calls outside the bounded list runs in the server (docs/sandbox.md)",
                        rule.name, why.what
                    ),
                );
            }
        }

        if !diags.is_empty() {
            return Err(diags.into_vec());
        }
        let office_hours: OfficeHoursTable = rules
            .iter()
            .flat_map(|rule| rule.scripts())
            .flat_map(|script| script.office_hours())
            .map(|(spec, hours)| (spec.to_string(), hours.clone()))
            .collect();
        let call_fields_read = rules
            .iter()
            .flat_map(|rule| rule.scripts())
            .map(Script::call_fields)
            .try_fold(Vec::new(), |mut all, fields| {
                all.extend(fields?.iter().cloned());
                Some(all)
            })
            .map(|mut all| {
                all.sort();
                all.dedup();
                all
            });
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
            routes,
            vocabulary,
            relaxed,
            calendars: Arc::new(ctx.calendars.clone()),
            warnings: warnings.into_vec(),
            office_hours: Arc::new(office_hours),
            print: Arc::default(),
            heavy_until: AtomicU64::new(0),
            quarantine: Quarantine::default(),
            call_fields_read,
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
        if !ctx.lookups.contains_key(name) {
            let configured = if ctx.lookups.is_empty() {
                "none are configured".to_string()
            } else {
                format!(
                    "configured: {}",
                    ctx.lookups.keys().cloned().collect::<Vec<_>>().join(", ")
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

fn read_holidays(
    fields: &Fields<'_>,
    diags: &mut Diagnostics<'_>,
    warnings: &mut Diagnostics<'_>,
) -> Holidays {
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
    let mut last: Option<NaiveDate> = None;
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
        match date_node.as_str().map(parse_date) {
            Some(Ok(date)) => {
                last = last.max(Some(date));
                if holidays.insert(date, name).is_some() {
                    diags.error(
                        date_node.position,
                        format!("holiday {date} is listed twice"),
                    );
                }
            }
            Some(Err(message)) => diags.error(date_node.position, message),
            None => diags.error(
                date_node.position,
                "a holiday date is written YYYY-MM-DD, e.g. 2026-12-25",
            ),
        }
    }
    let today = chrono::Utc::now().date_naive();
    if let Some(last) = last.filter(|last| *last < today)
        && fields.get("calendar").is_none()
    {
        warnings.error(
            node.position,
            format!(
                "warning: every holiday listed is in the past (the last is {last}): add this year's (or name a calendar: `calendar: nl` computes the public holidays of every year), or open_hours() and is_holiday() see none"
            ),
        );
    }
    holidays
}

/// `calendar:`: a country's public holidays for every year (`calendar: nl`), less the days the
/// company works (`except:`), plus company calendars from belroute.yaml (`include:`).
fn read_calendar(
    fields: &Fields<'_>,
    ctx: &LoadContext<'_>,
    holidays: &mut Holidays,
    diags: &mut Diagnostics<'_>,
) {
    use crate::calendar::{CompanyDay, Country};
    let Some(node) = fields.get("calendar") else {
        return;
    };
    let country = |node: &Node, diags: &mut Diagnostics<'_>| -> Option<Country> {
        let code = node.as_str().unwrap_or_default();
        let found = Country::parse(code);
        if found.is_none() {
            diags.error(
                node.position,
                format!(
                    "`calendar`: belroute computes the public holidays of {}, not `{code}`; list other days under `holidays:`",
                    Country::CODES.join(", ")
                ),
            );
        }
        found
    };
    if node.as_str().is_some() {
        if let Some(c) = country(node, diags) {
            holidays.set_country(c, Vec::new());
        }
        return;
    }
    let Some(entry) = Fields::read(node, &["country", "except", "include"], "`calendar`", diags)
    else {
        return;
    };
    let found = entry.get("country").and_then(|n| country(n, diags));
    let mut except = Vec::new();
    if let Some(list) = entry.get("except") {
        match (list.as_seq(), found) {
            (Some(items), Some(c)) => {
                for item in items {
                    let name = item.as_str().unwrap_or_default();
                    if c.names().contains(&name) {
                        except.push(name.to_string());
                    } else {
                        let hint = crate::diagnostic::suggestion(name, c.names().iter().copied())
                            .map(|s| format!("did you mean {s}? "))
                            .unwrap_or_default();
                        diags.error(
                            item.position,
                            format!(
                                "`calendar.except`: `{name}` is not a public holiday; {hint}they are: {}",
                                c.names().join(", ")
                            ),
                        );
                    }
                }
            }
            (None, _) => diags.error(
                list.position,
                "`calendar.except` is a list of public holidays the company works, e.g. [Goede Vrijdag]",
            ),
            (Some(_), None) => diags.error(
                list.position,
                "`calendar.except` needs a `country` whose holidays it leaves out",
            ),
        }
    }
    if let Some(c) = found {
        holidays.set_country(c, except);
    }
    let Some(include) = entry.get("include") else {
        return;
    };
    let Some(items) = include.as_seq() else {
        diags.error(
            include.position,
            "`calendar.include` is a list of calendars from belroute.yaml `calendars:`",
        );
        return;
    };
    for item in items {
        let name = item.as_str().unwrap_or_default();
        match ctx.calendars.get(name) {
            Some(days) => {
                for day in days {
                    match day {
                        CompanyDay::On(date, label) => {
                            holidays.insert(*date, label.clone());
                        }
                        CompanyDay::Every { month, day, name } => {
                            holidays.insert_yearly(*month, *day, name.clone());
                        }
                    }
                }
            }
            None => {
                let configured: Vec<&str> = ctx.calendars.keys().map(String::as_str).collect();
                let hint = crate::diagnostic::suggestion(name, configured.iter().copied())
                    .map(|s| format!("did you mean {s}? "))
                    .unwrap_or_default();
                diags.error(
                    item.position,
                    format!(
                        "`calendar.include`: no calendar `{name}` in belroute.yaml `calendars:`; {hint}({})",
                        if configured.is_empty() {
                            "none are configured".to_string()
                        } else {
                            format!("configured: {}", configured.join(", "))
                        }
                    ),
                );
            }
        }
    }
}

/// Reads `YYYY-MM-DD`, saying which part is out of range.
fn parse_date(text: &str) -> Result<NaiveDate, String> {
    let shape = || format!("`{text}` is not a date: write YYYY-MM-DD, e.g. 2026-12-25");
    let parts: Vec<&str> = text.split('-').collect();
    let [year, month, day] = parts.as_slice() else {
        return Err(shape());
    };
    if year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return Err(shape());
    }
    let (Ok(year), Ok(month), Ok(day)) = (
        year.parse::<i32>(),
        month.parse::<u32>(),
        day.parse::<u32>(),
    ) else {
        return Err(shape());
    };
    if !(1..=12).contains(&month) {
        return Err(format!(
            "`{text}`: the month is {month:02}; it is 01 to 12 (YYYY-MM-DD)"
        ));
    }
    NaiveDate::from_ymd_opt(year, month, day).ok_or_else(|| {
        let days = NaiveDate::from_ymd_opt(year, month % 12 + 1, 1)
            .or_else(|| NaiveDate::from_ymd_opt(year + 1, 1, 1))
            .and_then(|next| next.pred_opt())
            .map_or(31, |last| last.day());
        format!("`{text}`: the day is {day:02}; {year}-{month:02} has days 01 to {days}")
    })
}

/// `relax:`: the checks a rule set relaxes for a migration period.
fn read_relax(fields: &Fields<'_>, diags: &mut Diagnostics<'_>) -> BTreeSet<Check> {
    let mut relaxed = BTreeSet::new();
    let Some(node) = fields.get("relax") else {
        return relaxed;
    };
    let names: Vec<&str> = Check::ALL.iter().map(|c| c.name()).collect();
    let Some(items) = node.as_seq() else {
        diags.error(
            node.position,
            format!("`relax` is a list of checks: {}", names.join(", ")),
        );
        return relaxed;
    };
    for item in items {
        match item.as_str().and_then(Check::parse) {
            Some(check) => {
                relaxed.insert(check);
            }
            None => {
                let written = item.as_str().unwrap_or_default();
                let hint = crate::diagnostic::suggestion(written, names.iter().copied())
                    .map(|s| format!("did you mean {s}? "))
                    .unwrap_or_default();
                diags.error(
                    item.position,
                    format!(
                        "`relax`: `{written}` is no check; {hint}the checks are {}",
                        names.join(", ")
                    ),
                );
            }
        }
    }
    relaxed
}

/// `routes:`: the values the belplan's Voorwaarde-app branches on; `*` matches any text.
fn read_routes(fields: &Fields<'_>, diags: &mut Diagnostics<'_>) -> Option<Vec<String>> {
    let node = fields.get("routes")?;
    let Some(items) = node.as_seq() else {
        diags.error(
            node.position,
            "`routes` is the list of values your Voorwaarde-app has a branch for, e.g. [gesloten, receptie, \"agent_*\"]",
        );
        return None;
    };
    let mut routes = Vec::new();
    for item in items {
        match item.as_str() {
            Some(route) => {
                if let Err(message) = check_route(&route.replace('*', "x")) {
                    diags.error(item.position, format!("`routes`: {message}"));
                } else if routes.iter().any(|r| r == route) {
                    diags.error(item.position, format!("route `{route}` is listed twice"));
                } else {
                    routes.push(route.to_string());
                }
            }
            None => diags.error(
                item.position,
                format!("a route is text, found {}", item.kind_name()),
            ),
        }
    }
    Some(routes)
}

/// `call_fields:`: fields the Webhook-app sends besides Callvoip's, which rules may read.
fn read_call_fields(fields: &Fields<'_>, diags: &mut Diagnostics<'_>) -> Vec<String> {
    let mut known: Vec<String> = crate::call::CALLVOIP_FIELDS
        .iter()
        .map(|f| f.to_string())
        .collect();
    let Some(node) = fields.get("call_fields") else {
        return known;
    };
    let Some(items) = node.as_seq() else {
        diags.error(
            node.position,
            "`call_fields` is a list of the call fields your Webhook-app sends besides Callvoip's, e.g. [campaign]",
        );
        return known;
    };
    for item in items {
        match item.as_str() {
            Some(field) if !known.iter().any(|f| f == field) => known.push(field.to_string()),
            Some(field) => diags.error(
                item.position,
                format!("`call_fields`: `{field}` is listed twice, or is one of Callvoip's own fields, which need no listing"),
            ),
            None => diags.error(
                item.position,
                format!("a call field is a name, found {}", item.kind_name()),
            ),
        }
    }
    known
}

/// Problems of the checks a rule set may relax: errors, or warnings when relaxed.
struct Strict<'r, 'd, 'f> {
    relaxed: &'r BTreeSet<Check>,
    problems: &'d mut Diagnostics<'f>,
    warnings: &'d mut Diagnostics<'f>,
}

impl Strict<'_, '_, '_> {
    fn found(&mut self, check: Check, position: Position, message: String) {
        if self.relaxed.contains(&check) {
            self.warnings.error(
                position,
                format!("warning (check `{}` relaxed): {message}", check.name()),
            );
        } else {
            self.problems.error(position, message);
        }
    }
}

/// The facts tests give, against what their lookups declare.
fn check_test_facts(
    vocabulary: &Vocabulary,
    relaxed_checks: &BTreeSet<Check>,
    tests: &[TestCase],
) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
    let (mut problems, mut warnings) = (Vec::new(), Vec::new());
    for test in tests {
        for (lookup, fact, position) in &test.facts_at {
            let Some(Some(_)) = vocabulary.lookups.get(lookup) else {
                continue;
            };
            if let Err(unknown) = vocabulary.field(lookup, fact) {
                let message = format!("test `{}`: {}", test.name, unknown.message);
                let diagnostic = Diagnostic::new(&test.file, *position, message);
                if relaxed_checks.contains(&unknown.check) {
                    warnings.push(relaxed(diagnostic, unknown.check));
                } else {
                    problems.push(diagnostic);
                }
            }
        }
    }
    (problems, warnings)
}

/// A relaxed check's problem, as a warning.
fn relaxed(mut diagnostic: Diagnostic, check: Check) -> Diagnostic {
    diagnostic.message = format!(
        "warning (check `{}` relaxed): {}",
        check.name(),
        diagnostic.message
    );
    diagnostic
}

/// The default and every literal route must be among `routes:`, when it is listed.
fn check_routes(
    fields: &Fields<'_>,
    routes: Option<&[String]>,
    rules: &[Rule],
    strict: &mut Strict<'_, '_, '_>,
) {
    let Some(routes) = routes else {
        return;
    };
    let declared = |route: &str| routes.iter().any(|p| route_matches(p, route));
    let listed = routes.join(", ");
    if let Some(node) = fields.get("default")
        && let Some(route) = node.as_str()
        && !declared(route)
    {
        strict.found(
            Check::Routes,
            node.position,
            format!("`default` is `{route}`, which is not in `routes:` ({listed}); the Voorwaarde-app needs a branch for it: add it to `routes:`"),
        );
    }
    for rule in rules {
        if let Action::Route(route) = &rule.action
            && !declared(route)
        {
            let hint = crate::diagnostic::suggestion(route, routes.iter().map(String::as_str))
                .map(|s| format!("did you mean {s}? "))
                .unwrap_or_default();
            strict.found(
                Check::Routes,
                rule.route_position,
                format!(
                    "rule `{}`: route `{route}` is not in `routes:` ({listed}); {hint}a value without a branch sends the caller down the Voorwaarde-app's \"else\"",
                    rule.name
                ),
            );
        }
    }
}

/// A rule after one that always matches is never reached.
fn never_reached(rules: &[Rule], warnings: &mut Diagnostics<'_>) {
    let Some(always) = rules.iter().position(|rule| {
        rule.when.as_ref().is_none_or(Script::always_true)
            && matches!(rule.action, Action::Route(_))
    }) else {
        return;
    };
    let first = &rules[always];
    for rule in &rules[always + 1..] {
        warnings.error(
            rule.position,
            format!(
                "warning: rule `{}` is never reached: rule `{}` (line {}) always matches before it",
                rule.name, first.name, first.position.line
            ),
        );
    }
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
            let route_position = rule_fields
                .get("route")
                .or_else(|| rule_fields.get("script"))
                .map_or(item.position, |n| n.position);
            rules.push(Rule {
                name,
                position: item.position,
                when,
                action,
                route_position,
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
        Some(name) if ctx.lookups.contains_key(name) && !declared.iter().any(|d| d == name) => {
            format!("`{name}` is a lookup this rule set does not declare; add it to `lookups:`")
        }
        _ => message.to_string(),
    }
}
