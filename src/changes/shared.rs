//! `rules.source: database`: the rule sets every instance serves are the published revisions
//! in the database (`rule_heads`); each instance's rules directory holds its copy, written by
//! belroute and loaded by the ordinary reload with its checks and test gate. A publish on one
//! instance (console, API, restore), `belroute rules push`, or a file saved by hand in one
//! instance's directory becomes the published version, and a broadcast tells the others,
//! which write it into their directory at once. The database down: every instance serves
//! its copy, and catches up when it answers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Attribution, Changes, write_atomically};
use crate::cluster::kind;
use crate::storage::Storage;
use crate::storage::cluster::Head;
use crate::storage::revisions::{Revision, Source};

/// What a synchronisation of a rules directory with the database did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Synced {
    /// Rule sets whose file was written with the published version.
    pub written: Vec<String>,
    /// Rule sets whose file was removed (removed in the database).
    pub removed: Vec<String>,
    /// Rule sets only this directory had, published from it.
    pub published: Vec<String>,
}

/// The rule files of `dir`, by rule set name.
fn files_in(dir: &Path) -> BTreeMap<String, PathBuf> {
    belroute_engine::rule_files(dir)
        .map(|files| files.into_iter().collect())
        .unwrap_or_default()
}

/// At start, before the directory is read: rule sets only this directory has are published
/// (the first instance seeds the database), then every file is made the published version.
pub async fn sync_directory(storage: &Storage, dir: &Path) -> Result<Synced, sqlx::Error> {
    let mut synced = Synced::default();
    let heads: BTreeMap<String, Head> = storage
        .heads()
        .await?
        .into_iter()
        .map(|h| (h.ruleset.clone(), h))
        .collect();
    for (name, file) in files_in(dir) {
        if heads.contains_key(&name) {
            continue;
        }
        let Ok(text) = belroute_engine::catalog::read_capped(&file) else {
            continue;
        };
        let hash = belroute_engine::content_version(&text);
        let revision = Revision {
            ruleset: name.clone(),
            hash: hash.clone(),
            loaded_at: crate::time::now_ms(),
            source: Source::File,
            author: "file".into(),
            note: format!("first published from {}", file.display()),
            content: None,
        };
        storage.record_revision(&revision, &text).await?;
        if storage
            .publish_head(&name, Some(&hash), Some(None), "file")
            .await?
        {
            synced.published.push(name);
        }
    }
    let heads = storage.heads().await?;
    for head in heads {
        match write_head(storage, dir, &head, &mut |_, _| {}).await? {
            Some(true) => synced.written.push(head.ruleset),
            Some(false) => synced.removed.push(head.ruleset),
            None => {}
        }
    }
    Ok(synced)
}

/// Makes `dir`'s file of `head.ruleset` the published version: `Some(true)` when written,
/// `Some(false)` when removed, `None` when it was that already. `before` is told the version
/// about to be written (whom the reload credits).
async fn write_head(
    storage: &Storage,
    dir: &Path,
    head: &Head,
    before: &mut (dyn FnMut(&str, Attribution) + Send),
) -> Result<Option<bool>, sqlx::Error> {
    let name = head.ruleset.as_str();
    let existing = files_in(dir).remove(name);
    let Some(hash) = &head.hash else {
        let Some(file) = existing else {
            return Ok(None);
        };
        match std::fs::remove_file(&file) {
            Ok(()) => {
                tracing::info!(ruleset = %name, "rule set removed in the database: its file here removed");
                return Ok(Some(false));
            }
            Err(e) => {
                tracing::warn!(ruleset = %name, "cannot remove {}: {e}", file.display());
                return Ok(None);
            }
        }
    };
    let file = existing.unwrap_or_else(|| dir.join(format!("{name}.yaml")));
    if belroute_engine::catalog::read_capped(&file)
        .is_ok_and(|text| belroute_engine::content_version(&text) == *hash)
    {
        return Ok(None);
    }
    let Some(revision) = storage.revision(name, hash).await? else {
        tracing::warn!(ruleset = %name, version = %hash, "the published version is not among the revisions; keeping this instance's file");
        return Ok(None);
    };
    let Some(content) = revision.content else {
        return Ok(None);
    };
    before(
        hash,
        Attribution {
            source: revision.source,
            author: revision.author,
            note: revision.note,
        },
    );
    let target = file.clone();
    let written = tokio::task::spawn_blocking(move || write_atomically(&target, &content))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|r| r);
    match written {
        Ok(()) => {
            tracing::info!(ruleset = %name, version = %hash, author = %belroute_engine::text::escape(&head.author), "published version written here");
            Ok(Some(true))
        }
        Err(e) => {
            tracing::warn!(ruleset = %name, "cannot write {}: {e}; this instance keeps serving its version", file.display());
            Ok(None)
        }
    }
}

impl Changes {
    /// Whether the database is the source of rule sets.
    pub fn shared(&self) -> bool {
        self.cluster.is_some()
    }

    /// Makes this instance's file of `name` the published version (a broadcast came, or a
    /// file saved here lost to a newer publish), and has the reload look at once.
    pub async fn follow(&self, name: &str) {
        let heads = match self.storage.heads().await {
            Ok(heads) => heads,
            Err(e) => {
                tracing::warn!(ruleset = %name, "cannot read the published version (database: {e}); serving this instance's");
                return;
            }
        };
        let Some(head) = heads.into_iter().find(|h| h.ruleset == name) else {
            return;
        };
        let dir = self.store.dir().to_path_buf();
        if head.hash.is_none() {
            self.expect_removal(name);
        }
        let mut credit = |hash: &str, who: Attribution| self.expect(name, hash, who);
        match write_head(&self.storage, &dir, &head, &mut credit).await {
            Ok(written) => {
                if let Some(hash) = &head.hash {
                    self.wrote(name, hash);
                }
                if written.is_none() {
                    return;
                }
                let store = self.store.clone();
                let _ = tokio::task::spawn_blocking(move || store.rescan()).await;
            }
            Err(e) => {
                tracing::warn!(ruleset = %name, "cannot read the published version (database: {e}); serving this instance's")
            }
        }
    }

    /// Makes `hash` the published version of `name` if `base` still is; tells the others.
    /// `false` when another instance published in between.
    pub(super) async fn publish_shared(
        &self,
        name: &str,
        hash: Option<&str>,
        base: Option<&str>,
        author: &str,
    ) -> Result<bool, sqlx::Error> {
        let published = self
            .storage
            .publish_head(name, hash, Some(base), author)
            .await?;
        if published && let Some(cluster) = &self.cluster {
            cluster.broadcast(kind::RULESET, name).await;
        }
        Ok(published)
    }

    /// A version this instance loaded that nobody published through belroute (a file saved
    /// here by hand): it becomes the published one, unless another was published since the
    /// version it replaced; then the published one wins and is written here.
    pub(super) async fn loaded_by_hand(
        &self,
        name: &str,
        previous: Option<&str>,
        loaded: &str,
    ) -> Result<(), sqlx::Error> {
        let head = self
            .storage
            .heads()
            .await?
            .into_iter()
            .find(|h| h.ruleset == name);
        let published = head.as_ref().and_then(|h| h.hash.as_deref());
        if published == Some(loaded) {
            return Ok(());
        }
        // Based on what this instance served, or on what it last wrote from the database (a
        // save right after a sync, before the recorder looked).
        let based_on_published = published == previous
            || head.is_none()
            || published.is_some_and(|p| self.last_written(name).as_deref() == Some(p));
        if based_on_published
            && self
                .publish_shared(name, Some(loaded), published, "file")
                .await?
        {
            tracing::info!(ruleset = %name, version = %loaded, "a file saved here is now the published version of every instance");
            return Ok(());
        }
        tracing::warn!(
            ruleset = %name,
            "rules/{name}.yaml was changed on this instance, but another version was published since: every instance serves the published one; publish your change again from it"
        );
        self.follow(name).await;
        Ok(())
    }

    /// A rule set whose file went from this instance's directory by hand: removed everywhere,
    /// unless it was removed because the database said so.
    pub(super) async fn removed_by_hand(
        &self,
        name: &str,
        version: &str,
    ) -> Result<(), sqlx::Error> {
        if self
            .publish_shared(name, None, Some(version), "file")
            .await?
        {
            tracing::info!(ruleset = %name, "a file removed here: the rule set is removed on every instance");
        }
        Ok(())
    }
}
