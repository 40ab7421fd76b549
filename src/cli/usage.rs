//! Names the operator typed on the command line: rule sets and `--facts` lookups. A name that
//! does not exist is said, with "did you mean" and the names there are, instead of ignored.

use std::collections::BTreeMap;
use std::path::Path;

use belroute_engine::{LookupResult, RuleSet, rule_files, suggestion};

/// A rule set named on the command line has no file: `belroute` exits 1 (not 2, a usage
/// error), as for a test that fails, since the command line itself was well formed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UnknownRuleSet(pub String);

/// Fails with [`UnknownRuleSet`] unless every name in `names` is a rule file in `dir`.
pub fn require_rulesets(dir: &Path, names: &[String]) -> anyhow::Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let files = rule_files(dir)?;
    let known: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !known.contains(&n.as_str()))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut lines = Vec::new();
    for name in missing {
        let mut line = format!(
            "no rule set `{name}` in {} (there is no {})",
            dir.display(),
            dir.join(format!("{name}.yaml")).display()
        );
        if let Some(close) = suggestion(name, known.iter().copied()) {
            line.push_str(&format!("; did you mean {close}?"));
        }
        lines.push(line);
    }
    if known.is_empty() {
        lines.push(format!(
            "{} has no rule files (NAME.yaml); give the rules directory with --rules DIR",
            dir.display()
        ));
    } else {
        lines.push(format!("the rule sets there: {}", known.join(", ")));
    }
    Err(UnknownRuleSet(lines.join("\n")).into())
}

/// `simulate --facts NAME=…` for a NAME that `set` does not declare in `lookups:` would be
/// ignored, and the decision made without it: an error naming the lookups it does declare.
pub fn require_declared_facts(
    set: &RuleSet,
    facts: &BTreeMap<String, LookupResult>,
) -> anyhow::Result<()> {
    let declared: Vec<&str> = set.lookups.iter().map(String::as_str).collect();
    let undeclared: Vec<&String> = facts
        .keys()
        .filter(|name| !declared.contains(&name.as_str()))
        .collect();
    let Some(first) = undeclared.first() else {
        return Ok(());
    };
    let mut message = format!(
        "`--facts {first}=…`: rule set `{}` has no lookup `{first}`",
        set.name
    );
    if let Some(close) = suggestion(first, declared.iter().copied()) {
        message.push_str(&format!("; did you mean {close}?"));
    }
    if declared.is_empty() {
        message.push_str(&format!(
            " ({} declares no `lookups:`, so it asks no plugin; leave out --facts, or use the \
             rules directory whose rule set declares it)",
            set.file.display()
        ));
    } else {
        message.push_str(&format!(
            " (its `lookups:` in {}: {})",
            set.file.display(),
            declared.join(", ")
        ));
    }
    for other in &undeclared[1..] {
        message.push_str(&format!("; `--facts {other}=…` is not declared either"));
    }
    anyhow::bail!(message)
}
