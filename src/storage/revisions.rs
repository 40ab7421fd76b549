//! Rule set revisions, the audit log and run-time tokens, in belroute's own database. Storage
//! keeps rows as given; what they mean (who may do what, when a file counts as changed) is
//! `crate::changes`' and `crate::access`' business.

use serde::Serialize;
use sqlx::Row;

use super::Storage;
use crate::time::rfc3339;

/// Revisions kept per rule set, however old, besides those a retained call points at.
pub const KEEP_REVISIONS: i64 = 100;

/// Where a revision came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Saved in the rules directory by hand (or by any tool but belroute).
    File,
    Console,
    Api,
    /// An older revision published again.
    Restore,
    /// Published with `belroute rules push` (from a directory, e.g. a git checkout).
    Push,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::File => "file",
            Source::Console => "console",
            Source::Api => "api",
            Source::Restore => "restore",
            Source::Push => "push",
        }
    }

    fn parse(text: &str) -> Source {
        match text {
            "console" => Source::Console,
            "api" => Source::Api,
            "restore" => Source::Restore,
            "push" => Source::Push,
            _ => Source::File,
        }
    }
}

/// One stored version of a rule file.
#[derive(Debug, Clone, Serialize)]
pub struct Revision {
    pub ruleset: String,
    /// The content hash call rows carry as their `version`.
    pub hash: String,
    /// When first loaded (ms since the epoch; RFC 3339 in JSON).
    #[serde(serialize_with = "as_rfc3339")]
    pub loaded_at: i64,
    pub source: Source,
    /// The token's name, or `file`.
    pub author: String,
    pub note: String,
    /// The file's text; `None` in listings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

fn as_rfc3339<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ms))
}

/// One entry of the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    #[serde(skip)]
    pub id: i64,
    #[serde(serialize_with = "as_rfc3339")]
    pub at: i64,
    /// Who: a token's name, `file` for a rule file saved on disk.
    pub actor: String,
    /// What: `ruleset.publish`, `ruleset.restore`, `ruleset.file`, `token.create`, …
    pub action: String,
    /// Which: a rule set, token or subscription name.
    pub target: String,
    /// The rest, as a JSON object (`from`/`to` hashes, a note, a role).
    #[serde(serialize_with = "as_json")]
    pub detail: String,
}

fn as_json<S: serde::Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => value.serialize(s),
        Err(_) => s.serialize_str(text),
    }
}

/// A run-time token, without its secret.
#[derive(Debug, Clone, Serialize)]
pub struct TokenRow {
    pub name: String,
    pub role: String,
    #[serde(serialize_with = "as_rfc3339")]
    pub created_at: i64,
    pub created_by: String,
    /// SHA-256 of the token, hex: never shown.
    #[serde(skip)]
    pub token_hash: String,
}

/// Why a token could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum TokenWriteError {
    #[error("a token named `{0}` exists already; delete it first or choose another name")]
    Exists(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn revision<R: Row>(r: &R, with_content: bool) -> Result<Revision, sqlx::Error>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    let source: String = r.try_get("source")?;
    Ok(Revision {
        ruleset: r.try_get("ruleset")?,
        hash: r.try_get("hash")?,
        loaded_at: r.try_get("loaded_at")?,
        source: Source::parse(&source),
        author: r.try_get("author")?,
        note: r.try_get("note")?,
        content: if with_content {
            Some(r.try_get("content")?)
        } else {
            None
        },
    })
}

impl Storage {
    /// Stores a loaded version once: a version stored already keeps its first load's time,
    /// source, author and note, and counts as serving again. `true` when it was new.
    pub async fn record_revision(
        &self,
        revision: &Revision,
        content: &str,
    ) -> Result<bool, sqlx::Error> {
        on_pool!(self, pool => {
            let inserted = sqlx::query(
                "INSERT INTO revisions (ruleset, hash, content, loaded_at, source, author, note, served_until) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, NULL) ON CONFLICT (ruleset, hash) DO NOTHING",
            )
            .bind(&revision.ruleset)
            .bind(&revision.hash)
            .bind(content)
            .bind(revision.loaded_at)
            .bind(revision.source.as_str())
            .bind(&revision.author)
            .bind(&revision.note)
            .execute(pool)
            .await?
            .rows_affected();
            if inserted == 0 {
                sqlx::query("UPDATE revisions SET served_until = NULL WHERE ruleset = $1 AND hash = $2")
                    .bind(&revision.ruleset)
                    .bind(&revision.hash)
                    .execute(pool)
                    .await?;
            }
            Ok(inserted > 0)
        })
    }

    /// Marks a version as no longer serving (from `at` on).
    pub async fn revision_replaced(
        &self,
        ruleset: &str,
        hash: &str,
        at: i64,
    ) -> Result<(), sqlx::Error> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE revisions SET served_until = $3 WHERE ruleset = $1 AND hash = $2")
                .bind(ruleset)
                .bind(hash)
                .bind(at)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// A rule set's revisions, newest first, at most `limit`, without their content.
    pub async fn revisions(&self, ruleset: &str, limit: i64) -> Result<Vec<Revision>, sqlx::Error> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT ruleset, hash, loaded_at, source, author, note FROM revisions \
                 WHERE ruleset = $1 ORDER BY loaded_at DESC, hash LIMIT $2",
            )
            .bind(ruleset)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.iter().map(|r| revision(r, false)).collect()
        })
    }

    /// One revision with its content.
    pub async fn revision(
        &self,
        ruleset: &str,
        hash: &str,
    ) -> Result<Option<Revision>, sqlx::Error> {
        on_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT ruleset, hash, loaded_at, source, author, note, content FROM revisions \
                 WHERE ruleset = $1 AND hash = $2",
            )
            .bind(ruleset)
            .bind(hash)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(|r| revision(r, true)).transpose()
        })
    }

    /// Deletes revisions no retained call can point at (they stopped serving before
    /// `before`) that are not among their rule set's last [`KEEP_REVISIONS`].
    pub async fn purge_revisions(&self, before: i64) -> Result<u64, sqlx::Error> {
        on_pool!(self, pool => {
            let deleted = sqlx::query(
                "DELETE FROM revisions WHERE served_until IS NOT NULL AND served_until < $1 \
                 AND (SELECT COUNT(*) FROM revisions newer WHERE newer.ruleset = revisions.ruleset \
                      AND newer.loaded_at > revisions.loaded_at) >= $2",
            )
            .bind(before)
            .bind(KEEP_REVISIONS)
            .execute(pool)
            .await?
            .rows_affected();
            Ok(deleted)
        })
    }

    /// Adds an entry to the audit log.
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: &serde_json::Value,
    ) -> Result<(), sqlx::Error> {
        let at = crate::time::now_ms();
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO audit (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)")
                .bind(at)
                .bind(actor)
                .bind(action)
                .bind(target)
                .bind(detail.to_string())
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Audit entries at or after `since` (ms), oldest first, at most `limit`.
    pub async fn audit_since(
        &self,
        since: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, sqlx::Error> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT id, at, actor, action, target, detail FROM audit WHERE at >= $1 ORDER BY at, id LIMIT $2",
            )
            .bind(since)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(AuditEntry {
                        id: r.try_get("id")?,
                        at: r.try_get("at")?,
                        actor: r.try_get("actor")?,
                        action: r.try_get("action")?,
                        target: r.try_get("target")?,
                        detail: r.try_get("detail")?,
                    })
                })
                .collect()
        })
    }

    /// Every run-time token, by name.
    pub async fn tokens(&self) -> Result<Vec<TokenRow>, sqlx::Error> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT name, role, token_hash, created_at, created_by FROM tokens ORDER BY name")
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(TokenRow {
                        name: r.try_get("name")?,
                        role: r.try_get("role")?,
                        token_hash: r.try_get("token_hash")?,
                        created_at: r.try_get("created_at")?,
                        created_by: r.try_get("created_by")?,
                    })
                })
                .collect()
        })
    }

    /// Stores a new token (its hash only).
    pub async fn insert_token(&self, token: &TokenRow) -> Result<(), TokenWriteError> {
        let inserted = on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO tokens (name, role, token_hash, created_at, created_by) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
            )
            .bind(&token.name)
            .bind(&token.role)
            .bind(&token.token_hash)
            .bind(token.created_at)
            .bind(&token.created_by)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if inserted == 0 {
            return Err(TokenWriteError::Exists(token.name.clone()));
        }
        Ok(())
    }

    /// Deletes a token; `false` when there was none of that name.
    pub async fn delete_token(&self, name: &str) -> Result<bool, sqlx::Error> {
        on_pool!(self, pool => {
            let deleted = sqlx::query("DELETE FROM tokens WHERE name = $1")
                .bind(name)
                .execute(pool)
                .await?
                .rows_affected();
            Ok(deleted > 0)
        })
    }
}
