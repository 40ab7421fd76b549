//! `belroute rules push DIR`: publishes a directory of rule files to the database every
//! instance with `rules.source: database` serves from — for a git repository and its CI. The
//! same gate as a publish: every file checked and every test passed, or nothing is pushed.

use std::fmt::Write as _;
use std::path::Path;

use belroute_engine::{Router, rule_files};

use crate::config::Config;
use crate::storage::revisions::{Revision, Source};

/// What to push, and how.
#[derive(Debug, Clone)]
pub struct Push<'a> {
    pub dir: &'a Path,
    pub database: &'a str,
    /// Also remove the published rule sets that have no file in `dir`.
    pub prune: bool,
    /// Shown in each revision's history (e.g. the commit).
    pub note: &'a str,
}

/// Checks and tests `push.dir`, then publishes each file that differs from the published
/// version; false (nothing pushed) when a check or test fails.
pub async fn push(
    push: &Push<'_>,
    router: &Router,
    config: &Config,
    out: &mut String,
) -> anyhow::Result<bool> {
    if !super::check(push.dir, router, config, out)? {
        let _ = writeln!(out, "nothing pushed: fix the problems above first");
        return Ok(false);
    }
    if !super::test(push.dir, router, config, &[], out).await? {
        let _ = writeln!(out, "nothing pushed: the tests above fail");
        return Ok(false);
    }
    let (storage, _) = super::migrate::migrate(push.database).await?;
    let instance = format!("push-{}", std::process::id());
    let heads = storage.heads().await?;
    let published = |name: &str| {
        heads
            .iter()
            .find(|h| h.ruleset == name)
            .and_then(|h| h.hash.clone())
    };
    let files = rule_files(push.dir)?;
    let note = if push.note.trim().is_empty() {
        format!("pushed from {}", push.dir.display())
    } else {
        push.note.trim().to_string()
    };
    let (mut changed, mut same) = (0, 0);
    for (name, file) in &files {
        let text = belroute_engine::catalog::read_capped(file)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
        let hash = belroute_engine::content_version(&text);
        let before = published(name);
        if before.as_deref() == Some(hash.as_str()) {
            same += 1;
            let _ = writeln!(out, "{name}: unchanged ({hash})");
            continue;
        }
        let revision = Revision {
            ruleset: name.clone(),
            hash: hash.clone(),
            loaded_at: crate::time::now_ms(),
            source: Source::Push,
            author: "push".into(),
            note: note.clone(),
            content: None,
        };
        storage.record_revision(&revision, &text).await?;
        storage
            .publish_head(name, Some(&hash), None, "push")
            .await?;
        let detail =
            serde_json::json!({ "from": before, "to": hash, "source": "push", "note": note });
        storage.audit("push", "ruleset.push", name, &detail).await?;
        storage
            .broadcast(&instance, crate::cluster::kind::RULESET, name)
            .await?;
        changed += 1;
        match before {
            Some(before) => {
                let _ = writeln!(out, "{name}: published {hash} (was {before})");
            }
            None => {
                let _ = writeln!(out, "{name}: published {hash} (new)");
            }
        }
    }
    let mut removed = 0;
    if push.prune {
        for head in &heads {
            let Some(hash) = &head.hash else { continue };
            if files.iter().any(|(name, _)| *name == head.ruleset) {
                continue;
            }
            storage
                .publish_head(&head.ruleset, None, None, "push")
                .await?;
            let detail = serde_json::json!({ "from": hash, "source": "push", "note": note });
            storage
                .audit("push", "ruleset.remove", &head.ruleset, &detail)
                .await?;
            storage
                .broadcast(&instance, crate::cluster::kind::RULESET, &head.ruleset)
                .await?;
            removed += 1;
            let _ = writeln!(out, "{}: removed (was {hash})", head.ruleset);
        }
    }
    let _ = writeln!(
        out,
        "pushed to the {} database: {changed} published, {same} unchanged, {removed} removed; every instance with rules.source: database serves them within a second",
        storage.kind()
    );
    storage.close().await;
    Ok(true)
}
