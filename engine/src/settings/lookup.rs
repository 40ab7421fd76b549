//! The settings every plugin instance has, read by the engine (not the plugin): `timeout`,
//! `cache`, `breaker`; and which names a lookup may have.

use std::time::Duration;

use crate::lookups::{BreakerSettings, CacheSettings, LookupSettings};
use crate::ruleset::CALL_VARIABLES;
use crate::script::FUNCTIONS as RULE_FUNCTIONS;

use super::{Range, Section};

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

impl LookupSettings {
    /// Keys of a plugin instance that are the engine's; the rest belong to the plugin's kind.
    pub const KEYS: [&'static str; 4] = ["timeout", "cache", "breaker", "ask_without_number"];
    /// One plugin request at most; a call never waits past its own deadline anyway.
    pub const TIMEOUT: Range<Duration> = Range::new(ms(1), ms(10_000));

    /// Reads the engine's keys of one plugin instance; the section's other keys are the kind's.
    pub fn read(section: &mut Section<'_, '_, '_>) -> Self {
        let default = LookupSettings::default();
        LookupSettings {
            timeout: section.duration("timeout", default.timeout, Self::TIMEOUT),
            cache: section.section("cache", &CacheSettings::KEYS, CacheSettings::read),
            breaker: section.section("breaker", &BreakerSettings::KEYS, BreakerSettings::read),
            ask_without_number: section.choice(
                "ask_without_number",
                default.ask_without_number,
                &[("true", true), ("false", false)],
            ),
        }
    }
}

impl CacheSettings {
    pub const KEYS: [&'static str; 5] = [
        "ttl",
        "negative_ttl",
        "stale_if_error",
        "refresh_ahead",
        "max_entries",
    ];
    /// `ttl`, `negative_ttl` and `stale_if_error` each; a month is long for "open invoices".
    pub const TTL: Range<Duration> = Range::new(Duration::ZERO, days(30));
    pub const REFRESH_AHEAD: Range<f64> = Range::new(0.0, 1.0);
    /// Callers remembered per plugin; each holds its facts in memory.
    pub const MAX_ENTRIES: Range<u64> = Range::new(1, 1_000_000);

    pub fn read(section: &mut Section<'_, '_, '_>) -> Self {
        let default = CacheSettings::default();
        CacheSettings {
            ttl: section.duration("ttl", default.ttl, Self::TTL),
            negative_ttl: section.optional_duration("negative_ttl", Self::TTL),
            stale_if_error: section.duration("stale_if_error", default.stale_if_error, Self::TTL),
            refresh_ahead: section.fraction(
                "refresh_ahead",
                default.refresh_ahead,
                Self::REFRESH_AHEAD.because("a part of the ttl; 1 turns it off"),
            ),
            max_entries: section.count("max_entries", default.max_entries, Self::MAX_ENTRIES),
        }
    }
}

impl BreakerSettings {
    pub const KEYS: [&'static str; 2] = ["failures", "cool_down"];
    pub const FAILURES: Range<u32> = Range::new(0, 1_000);
    pub const COOL_DOWN: Range<Duration> = Range::new(ms(1_000), days(1));

    pub fn read(section: &mut Section<'_, '_, '_>) -> Self {
        let default = BreakerSettings::default();
        BreakerSettings {
            failures: section.count(
                "failures",
                default.failures,
                Self::FAILURES.because("0 never opens the breaker"),
            ),
            cool_down: section.duration("cool_down", default.cool_down, Self::COOL_DOWN),
        }
    }
}

/// Is `name` taken in rules: `call`, `caller`, a rule function, or a Rhai keyword (reserved
/// or not), as Rhai itself sees it?
pub fn is_reserved_name(name: &str) -> bool {
    if CALL_VARIABLES.contains(&name) || RULE_FUNCTIONS.contains(&name) {
        return true;
    }
    if rhai::Token::lookup_symbol_from_syntax(name).is_some() {
        return true; // `true`, `let`, `if`: keywords that would compile as something else
    }
    // Reserved words (`print`, `this`, `match`, `default`, …) do not compile as a variable.
    let mut scope = rhai::Scope::new();
    scope.push_dynamic(name, rhai::Dynamic::UNIT);
    rhai::Engine::new_raw()
        .compile_expression_with_scope(&scope, format!("{name} == ()"))
        .is_err()
}

/// Can a plugin instance be called `name`? Rules read a lookup as a variable of that name.
pub fn check_lookup_name(name: &str) -> Result<(), String> {
    let well_formed = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !well_formed {
        return Err(format!(
            "`{name}` cannot be a lookup name: rules read it as a variable, so use lowercase letters, digits and _, starting with a letter (e.g. `invoices`)"
        ));
    }
    if is_reserved_name(name) {
        return Err(format!(
            "`{name}` cannot be a lookup name: rules already use it (call, caller, {} and Rhai's keywords are taken); choose another, e.g. `{name}_crm`",
            RULE_FUNCTIONS.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_names_rules_can_read() {
        for name in [
            "invoices", "tickets", "history", "crm2", "_x", "global", "exit",
        ] {
            assert_eq!(check_lookup_name(name), Ok(()), "{name}");
        }
        let taken = [
            "call",
            "caller",
            "now",
            "open_hours",
            "holiday",
            "is_holiday",
            "true",
            "false",
            "let",
            "fn",
            "this",
            "if",
            "print",
            "debug",
            "eval",
            "type_of",
            "match",
            "default",
            "null",
            "import",
        ];
        for name in taken {
            let err = check_lookup_name(name).unwrap_err();
            assert!(err.contains("rules already use it"), "{name}: {err}");
        }
        for name in ["", "Invoices", "2crm", "my-crm", "crm.x", "klant€"] {
            let err = check_lookup_name(name).unwrap_err();
            assert!(err.contains("lowercase letters"), "{name}: {err}");
        }
    }

    /// What the check accepts really works as a variable in a rule, through the engine rules
    /// are compiled with.
    #[test]
    fn accepted_names_compile_as_variables_in_rules() {
        let scripts = crate::script::ScriptEngine::new(&crate::script::Limits::default());
        for name in ["invoices", "global", "exit", "x1", "_private"] {
            assert_eq!(check_lookup_name(name), Ok(()));
            let text = format!("when: {name}.count > 0 && {name} != ()\n");
            let doc = crate::yaml::parse(&text).unwrap();
            let node = &doc.as_map().unwrap()[0].1;
            let mut names = CALL_VARIABLES.to_vec();
            names.push(name);
            scripts
                .compile(crate::script::ScriptKind::Condition, node, &names)
                .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        }
    }
}
