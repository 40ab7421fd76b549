//! The rule sets being served: read from a directory, swapped atomically when files change.
//!
//! A request takes one [`Catalog`] snapshot and uses that version of its rule set from start
//! to end; a reload builds a new catalog beside it and swaps the pointer.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use chrono_tz::Tz;

use crate::diagnostic::{Diagnostic, Position};
use crate::ruleset::{LoadContext, RuleSet, content_version};
use crate::script::ScriptEngine;

/// A file that failed validation, and what still serves in its place.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Refusal {
    pub file: PathBuf,
    pub diagnostics: Vec<Diagnostic>,
    /// Content hash of the refused text.
    pub refused_version: String,
    /// The last good version, still answering calls; `None` if the file never loaded.
    pub serving_version: Option<String>,
}

/// One consistent view of every rule set.
#[derive(Debug, Default)]
pub struct Catalog {
    pub rulesets: BTreeMap<String, Arc<RuleSet>>,
    /// Refused files, by rule set name.
    pub refused: BTreeMap<String, Refusal>,
    /// Counts swaps, so logs and the admin API can tell catalogs apart.
    pub generation: u64,
}

impl Catalog {
    pub fn get(&self, name: &str) -> Option<&Arc<RuleSet>> {
        self.rulesets.get(name)
    }
}

/// What loading rule files needs from the server.
#[derive(Debug, Clone)]
pub struct StoreContext {
    pub scripts: Arc<ScriptEngine>,
    pub configured_lookups: BTreeSet<String>,
    pub time_zone: Tz,
}

/// Why the rules directory cannot be served at all.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("rules directory {0} does not exist; create it or pass --rules DIR")]
    Missing(PathBuf),
    #[error("rules directory {0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("cannot read rules directory {0}: {1}")]
    Unreadable(PathBuf, io::Error),
}

/// What one rescan changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScanSummary {
    pub loaded: Vec<String>,
    pub refused: Vec<String>,
    pub removed: Vec<String>,
}

impl ScanSummary {
    pub fn changed(&self) -> bool {
        !(self.loaded.is_empty() && self.refused.is_empty() && self.removed.is_empty())
    }
}

/// The rules directory and the catalog currently served from it.
#[derive(Debug)]
pub struct RuleStore {
    dir: PathBuf,
    context: StoreContext,
    current: ArcSwap<Catalog>,
    /// One rescan at a time (watcher, poller and admin may all ask).
    scanning: Mutex<()>,
}

/// Is this file name a rule set (`main.yaml`), rather than a test file, a hidden or editor file?
pub fn rule_file_name(file_name: &str) -> Option<&str> {
    if file_name.starts_with('.') {
        return None;
    }
    let stem = file_name
        .strip_suffix(".yaml")
        .or_else(|| file_name.strip_suffix(".yml"))?;
    if stem.ends_with(".test") || stem.is_empty() {
        return None;
    }
    Some(stem)
}

/// The rule files in `dir`, by rule set name, sorted.
pub fn rule_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, StoreError> {
    let entries = std::fs::read_dir(dir).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => StoreError::Missing(dir.to_path_buf()),
        io::ErrorKind::NotADirectory => StoreError::NotADirectory(dir.to_path_buf()),
        _ => StoreError::Unreadable(dir.to_path_buf(), e),
    })?;
    let mut files: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_string();
            let stem = rule_file_name(&name)?.to_string();
            // Follows symlinks (Kubernetes ConfigMaps link every file through `..data`).
            let is_file = std::fs::metadata(entry.path())
                .map(|m| m.is_file())
                .unwrap_or(false);
            is_file.then(|| (stem, entry.path()))
        })
        .collect();
    files.sort();
    Ok(files)
}

impl RuleStore {
    /// Reads every rule file in `dir`. Files that fail are refused (and logged), not fatal:
    /// the server starts and serves the others.
    pub fn open(dir: &Path, context: StoreContext) -> Result<Self, StoreError> {
        match std::fs::metadata(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::Missing(dir.to_path_buf()));
            }
            Err(e) => return Err(StoreError::Unreadable(dir.to_path_buf(), e)),
            Ok(m) if !m.is_dir() => return Err(StoreError::NotADirectory(dir.to_path_buf())),
            Ok(_) => {}
        }
        let store = RuleStore {
            dir: dir.to_path_buf(),
            context,
            current: ArcSwap::from_pointee(Catalog::default()),
            scanning: Mutex::new(()),
        };
        store.rescan();
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The catalog now: hold it for the length of one request.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.current.load_full()
    }

    /// Re-reads the directory; changed files are validated and swapped in, broken ones refused.
    pub fn rescan(&self) -> ScanSummary {
        let _one_at_a_time = self
            .scanning
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let old = self.current.load_full();
        let mut summary = ScanSummary::default();
        let files = match rule_files(&self.dir) {
            Ok(files) => files,
            Err(e) => {
                // A directory swapped away for a moment (symlink swap) must not empty the catalog.
                tracing::warn!("{e}; keeping the rule sets loaded before");
                return summary;
            }
        };
        let load_ctx = LoadContext {
            scripts: &self.context.scripts,
            configured_lookups: &self.context.configured_lookups,
            time_zone: self.context.time_zone,
        };
        let mut next = Catalog {
            generation: old.generation + 1,
            ..Catalog::default()
        };
        for (name, file) in &files {
            if next.rulesets.contains_key(name) || next.refused.contains_key(name) {
                let message = format!(
                    "another file already defines rule set `{name}`; remove one of {name}.yaml and {name}.yml"
                );
                self.refuse(
                    &mut next,
                    &old,
                    name,
                    file,
                    String::new(),
                    vec![Diagnostic::new(file, Position::START, message)],
                );
                summary.refused.push(name.clone());
                continue;
            }
            let text = match std::fs::read_to_string(file) {
                Ok(text) => text,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    let message = format!("cannot read the file: {e}");
                    self.refuse(
                        &mut next,
                        &old,
                        name,
                        file,
                        String::new(),
                        vec![Diagnostic::new(file, Position::START, message)],
                    );
                    summary.refused.push(name.clone());
                    continue;
                }
            };
            let version = content_version(&text);
            if let Some(current) = old
                .get(name)
                .filter(|s| s.version == version && s.file == *file)
            {
                next.rulesets.insert(name.clone(), current.clone());
                continue;
            }
            if let Some(refusal) = old
                .refused
                .get(name)
                .filter(|r| r.refused_version == version)
            {
                next.refused.insert(name.clone(), refusal.clone());
                if let Some(serving) = old.get(name) {
                    next.rulesets.insert(name.clone(), serving.clone());
                }
                continue;
            }
            match RuleSet::load(name, file, &text, &load_ctx) {
                Ok(set) => {
                    match old.get(name) {
                        Some(prev) => tracing::info!(
                            ruleset = %name,
                            "rule set reloaded from {} (version {} → {}, {} rules)",
                            file.display(),
                            prev.version,
                            set.version,
                            set.rules.len()
                        ),
                        None => tracing::info!(
                            ruleset = %name,
                            "rule set loaded from {} (version {}, {} rules)",
                            file.display(),
                            set.version,
                            set.rules.len()
                        ),
                    }
                    next.rulesets.insert(name.clone(), Arc::new(set));
                    summary.loaded.push(name.clone());
                }
                Err(diagnostics) => {
                    self.refuse(&mut next, &old, name, file, version, diagnostics);
                    summary.refused.push(name.clone());
                }
            }
        }
        for name in old.rulesets.keys().chain(old.refused.keys()) {
            if !files.iter().any(|(n, _)| n == name) && !summary.removed.contains(name) {
                tracing::info!(ruleset = %name, "rule set removed: its file is gone");
                summary.removed.push(name.clone());
            }
        }
        // A file restored to the text already serving clears its refusal without a reload.
        let refusals_changed = !old.refused.keys().eq(next.refused.keys());
        for name in old
            .refused
            .keys()
            .filter(|n| !next.refused.contains_key(*n) && next.rulesets.contains_key(*n))
        {
            tracing::info!(ruleset = %name, "refusal cleared: the file is valid again");
        }
        if summary.changed() || refusals_changed {
            self.current.store(Arc::new(next));
        }
        summary
    }

    fn refuse(
        &self,
        next: &mut Catalog,
        old: &Catalog,
        name: &str,
        file: &Path,
        version: String,
        diagnostics: Vec<Diagnostic>,
    ) {
        let serving = old.get(name).filter(|s| s.file == file).cloned();
        match &serving {
            Some(set) => tracing::warn!(
                ruleset = %name,
                "{} refused ({} problem(s)); still serving version {}",
                file.display(),
                diagnostics.len(),
                set.version
            ),
            None => tracing::warn!(
                ruleset = %name,
                "{} refused ({} problem(s)); rule set `{name}` is not served until it is fixed",
                file.display(),
                diagnostics.len()
            ),
        }
        for d in &diagnostics {
            tracing::warn!(ruleset = %name, "{d}");
        }
        next.refused.insert(
            name.to_string(),
            Refusal {
                file: file.to_path_buf(),
                diagnostics,
                refused_version: version,
                serving_version: serving.as_ref().map(|s| s.version.clone()),
            },
        );
        if let Some(set) = serving {
            next.rulesets.insert(name.to_string(), set);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_files_are_rule_sets() {
        assert_eq!(rule_file_name("main.yaml"), Some("main"));
        assert_eq!(rule_file_name("main.yml"), Some("main"));
        assert_eq!(rule_file_name("main.test.yaml"), None);
        assert_eq!(rule_file_name(".main.yaml.swp"), None);
        assert_eq!(rule_file_name("..data"), None);
        assert_eq!(rule_file_name("main.yaml~"), None);
        assert_eq!(rule_file_name("README.md"), None);
    }
}
