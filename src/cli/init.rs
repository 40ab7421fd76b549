//! `belroute init [DIR]`: a starting point that passes `check` and `test` as written — a
//! commented `belroute.yaml`, `rules/main.yaml` with its tests, and a `.gitignore` — and never
//! writes over a file that is already there.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// `init` found files it would have written over: it wrote nothing (exit 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The files `init` writes, relative to its directory.
pub const FILES: [(&str, &str); 4] = [
    ("belroute.yaml", BELROUTE_YAML),
    ("rules/main.yaml", MAIN_YAML),
    ("rules/main.test.yaml", MAIN_TEST_YAML),
    (".gitignore", GITIGNORE),
];

/// Writes the starter files into `dir` (created when missing) and returns what to tell the
/// operator: the files written and the next three commands.
pub fn init(dir: &Path) -> anyhow::Result<String> {
    let existing: Vec<PathBuf> = FILES
        .iter()
        .map(|(name, _)| dir.join(name))
        .filter(|path| path.exists())
        .collect();
    if !existing.is_empty() {
        let names: Vec<String> = existing.iter().map(|p| p.display().to_string()).collect();
        let (verb, them) = if names.len() == 1 {
            ("exists", "it")
        } else {
            ("exist", "them")
        };
        return Err(Refused(format!(
            "{} already {verb}; belroute init writes nothing over an existing file, so it \
             wrote nothing: move {them} away, or run `belroute init NEW-DIR`",
            names.join(", "),
        ))
        .into());
    }
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", rules.display()))?;
    let mut written: Vec<PathBuf> = Vec::new();
    for (name, text) in FILES {
        let path = dir.join(name);
        if let Err(e) = write_new(&path, text) {
            // Another process made one of them meanwhile: leave no half set behind.
            for done in &written {
                let _ = std::fs::remove_file(done);
            }
            anyhow::bail!("cannot write {}: {e}; wrote nothing", path.display());
        }
        written.push(path);
    }
    let mut out = String::new();
    let shown = if dir == Path::new(".") {
        String::new()
    } else {
        format!(" in {}", dir.display())
    };
    let _ = writeln!(
        out,
        "wrote{shown}: belroute.yaml, rules/main.yaml, rules/main.test.yaml, .gitignore"
    );
    let _ = writeln!(out, "next:");
    if dir != Path::new(".") {
        let _ = writeln!(out, "  cd {}", shell_word(&dir.display().to_string()));
    }
    let _ = writeln!(
        out,
        "  belroute check    # validate belroute.yaml and every rule file"
    );
    let _ = writeln!(
        out,
        "  belroute test     # run the tests in rules/main.test.yaml"
    );
    let _ = writeln!(
        out,
        "  belroute serve    # answer Callvoip at http://0.0.0.0:8080/hooks/main"
    );
    Ok(out)
}

fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// `dir` as one shell word: quoted when it holds anything but plain path characters.
fn shell_word(text: &str) -> String {
    if !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@".contains(&b))
    {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

const BELROUTE_YAML: &str = r#"## belroute.yaml: the server's own settings (the routing rules are in rules/).
## Every key is optional; each one below is commented out and shows its default or an example.
## Remove the `# ` to use one. Read once at start: restart belroute after a change.
## Reference: docs/operators.md, "belroute.yaml" (from the Debian package:
## /usr/share/doc/belroute/operators.md). `belroute check` validates this file.
##
## Secrets come from the environment as "${NAME}" (for the service: /etc/belroute/belroute.env);
## `check` and `test` work without them.

## The zone for now(), open_hours() and holidays in rule sets without their own `timezone`.
# timezone: Europe/Amsterdam

## The country of numbers written nationally (0152026057).
# default_region: NL

## The /hooks/{ruleset} endpoint Callvoip's Webhook-app calls.
# hooks:
#   margin: 250ms                 # answer this long before the rule set's timeout
#   max_body: 64KiB               # largest request body accepted
#   auth:                         # every check configured here must pass (default: none)
#     query: { name: token, value: "${BELROUTE_HOOK_TOKEN}" }   # ?token=… in the Webhook-app's URL
#     allow_ips: [ "203.0.113.0/24" ]                           # Callvoip's addresses (ask them)
#     trusted_proxies: [ "127.0.0.1/32" ]                       # your reverse proxy, for X-Forwarded-For
#   drain: 0s                     # after SIGTERM, 503 on /healthz this long first (for a load balancer)

## Limits on what one rule may do.
# sandbox:
#   max_operations: 100000
#   rule_time: 100ms

## A saved rule file goes live only when its own tests pass.
# reload:
#   run_tests: true

## Several instances behind a load balancer, on one PostgreSQL (docs/operators.md,
## "Several instances"): rule sets published in the database reach every instance.
# rules:
#   source: files                 # or database

## The admin API (/api/v1/…) and the operator's console (/admin); off without a token.
# admin:
#   token: "${BELROUTE_ADMIN_TOKEN}"

## The call log (SQLite belroute.db by default; --database postgres://… for several instances).
# storage:
#   retention: 90d                # calls (phone numbers!) older than this are deleted
#   queue: 10000                  # records that may wait for the database in memory
#   batch: 500                    # records per transaction at most
#   spill_limit: 1GiB             # overflow kept on disk (belroute-spill.jsonl) at most

## Company days off that several rule sets share: `calendar: { include: [kantoor] }` in a rule set.
# calendars:
#   kantoor:
#     - { every: 12-24, name: Kerstavond }         # every year
#     - { date: 2027-07-16, name: Bedrijfsuitje }  # that day only

## CRM lookups, by name; a rule set uses them through `lookups:` (see docs/plugins.md).
# plugins:
#   tickets:
#     kind: http
#     url: "https://helpdesk.example.nl/api/v1/tickets/search?query=phone:{caller_e164}&state=open"
#     headers: { Authorization: "Token token=${HELPDESK_TOKEN}" }
#     facts: { open: "/", agent: "/0/owner/extension" }
#     timeout: 800ms
#   history:
#     kind: history

## Applications told where each call went (see docs/subscriptions.md).
# subscriptions:
#   crm:
#     endpoint: https://crm.example.nl/belroute/notify
#     api_key: "${CRM_API_KEY}"
#     events: [call.routed]
"#;

/// The starter rule set; the console's "New rule set" starts from it too.
pub const MAIN_YAML: &str = r#"# The rule set `main`: point the Webhook-app in Callvoip's belplan at
#   https://your-host/hooks/main
# belroute answers the route of the first rule that matches, else `default`. The
# Voorwaarde-app after the Webhook-app needs a branch for each route in `routes:`.
# Reference: docs/rules.md. Saved changes go live at once if `belroute check` and the tests in
# main.test.yaml pass.
description: Main number — office hours and withheld numbers
timeout: 2s          # equal to the Webhook-app's Request Timeout (1s to 10s)
default: receptie    # answered when no rule matches, or time runs out
routes: [gesloten, anoniem, receptie]   # the Voorwaarde-app's branches; `check` refuses any other
                                        # (a family of routes: "agent_*")
# lookups: [tickets] # CRM lookups from belroute.yaml `plugins:` that this rule set may use

calendar:            # open_hours() is false on the Dutch public holidays of every year,
  country: nl        # except the ones the company works
  except: [Goede Vrijdag]
# holidays:          # more days the company is closed
#   - { date: 2027-07-16, name: Bedrijfsuitje }

rules:
  - name: Closed outside office hours
    # Quoted: YAML reads an unquoted leading `!` as a tag.
    when: '!open_hours("mon-fri 08:30-17:30")'
    route: gesloten

  - name: Withheld numbers
    when: caller.anonymous
    route: anoniem
"#;

const MAIN_TEST_YAML: &str = r#"# Tests of rules/main.yaml: `belroute test` runs them without a real call or CRM.
# `at` is local time in the rule set's zone; `expect` is the route, or { route, rule }.
tests:
  - name: A Dutch caller during office hours goes to reception
    at: 2026-11-23 10:00          # a Monday
    call: { caller_number: "31152026057" }
    expect: receptie

  - name: Closed on Sunday
    at: 2026-11-22 11:00
    call: { caller_number: "31152026057" }
    expect: { route: gesloten, rule: Closed outside office hours }

  - name: Closed on a holiday inside the hours
    at: 2027-04-27 10:00          # Koningsdag, a Tuesday
    call: { caller_number: "31612345678" }
    expect: gesloten

  - name: A withheld number
    at: 2026-11-23 10:00
    call: { caller_number: anonymous }
    expect: { route: anoniem, rule: Withheld numbers }
"#;

const GITIGNORE: &str = "# belroute's call log (SQLite, with its -wal and -shm files), its overflow file and crash\n\
# journal, and their lock\n\
belroute.db*\n\
belroute-spill*.jsonl\n\
belroute-spill.lock\n";

#[cfg(test)]
mod tests {
    use super::*;

    /// Every setting shown commented out is valid once uncommented: the starter file
    /// teaches nothing `check` would refuse.
    #[test]
    fn every_commented_setting_is_valid_uncommented() {
        let uncommented: String = BELROUTE_YAML
            .lines()
            .filter(|l| !l.starts_with("##"))
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .map(|l| format!("{l}\n"))
            .collect();
        let (config, _) = belroute_engine::settings::tolerating_missing_env(|| {
            crate::config::Config::parse(Path::new("belroute.yaml"), &uncommented)
        });
        if let Err(e) = config {
            panic!("{e}\n{uncommented}");
        }
        for key in crate::config::Config::KEYS {
            assert!(
                uncommented.contains(&format!("\n{key}:")),
                "`{key}` is not shown"
            );
        }
    }

    /// The template closes on the public holidays of every year, not a list that runs out.
    #[test]
    fn the_template_uses_the_calendar_of_every_year() {
        let scripts = belroute_engine::ScriptEngine::new(&belroute_engine::Limits::default());
        let ctx = belroute_engine::LoadContext {
            scripts: &scripts,
            lookups: &belroute_engine::LookupFacts::new(),
            calendars: &belroute_engine::calendar::NO_CALENDARS,
            time_zone: belroute_engine::DEFAULT_TIME_ZONE,
        };
        let set = belroute_engine::RuleSet::load("main", Path::new("main.yaml"), MAIN_YAML, &ctx)
            .unwrap();
        let day = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(
            set.holidays.name(day(2040, 12, 25)),
            Some("Eerste Kerstdag")
        );
        assert_eq!(
            set.holidays.name(day(2027, 3, 26)),
            None,
            "Goede Vrijdag is worked"
        );
    }

    #[test]
    fn a_directory_is_quoted_for_the_shell_when_needed() {
        assert_eq!(shell_word("my-dir/x"), "my-dir/x");
        assert_eq!(shell_word("it's here"), r"'it'\''s here'");
    }
}
