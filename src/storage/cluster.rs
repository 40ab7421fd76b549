//! What several instances on one database share: the published version of each rule set
//! (`rule_heads`), what one instance tells the others (`broadcasts`, woken with PostgreSQL's
//! `NOTIFY`), console sessions, and which instances run with which versions. Storage keeps
//! rows as given; [`crate::cluster`] decides what they mean.

use sqlx::Row;

use super::Storage;

/// The `NOTIFY` channel a broadcast wakes (PostgreSQL).
pub const CHANNEL: &str = "belroute";

/// The version every instance serves of one rule set (`rules.source: database`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub ruleset: String,
    /// `None`: removed.
    pub hash: Option<String>,
    pub published_at: i64,
    pub author: String,
}

/// One message of one instance to the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broadcast {
    pub id: i64,
    pub instance: String,
    pub kind: String,
    pub subject: String,
}

/// One stored console session.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub csrf: String,
    pub name: String,
    pub role: String,
    pub created_at: i64,
    pub last_used: i64,
}

/// One running (or recently seen) instance.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InstanceRow {
    pub id: String,
    pub host: String,
    #[serde(serialize_with = "as_rfc3339")]
    pub started_at: i64,
    #[serde(serialize_with = "as_rfc3339")]
    pub seen_at: i64,
    pub draining: bool,
    /// Rule set → version it serves.
    pub versions: serde_json::Value,
}

fn as_rfc3339<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::time::rfc3339(*ms))
}

impl Storage {
    /// Every rule set's published version, removed ones too.
    pub async fn heads(&self) -> Result<Vec<Head>, sqlx::Error> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT ruleset, hash, published_at, author FROM rule_heads ORDER BY ruleset")
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(Head {
                        ruleset: r.try_get("ruleset")?,
                        hash: r.try_get("hash")?,
                        published_at: r.try_get("published_at")?,
                        author: r.try_get("author")?,
                    })
                })
                .collect()
        })
    }

    /// Makes `hash` (`None`: removed) the published version of `ruleset` if it still is
    /// `base` (`None`: no row, or removed) — or whatever it is, when `base` is not checked.
    /// `false` when someone published in between. The revision must be stored first.
    pub async fn publish_head(
        &self,
        ruleset: &str,
        hash: Option<&str>,
        base: Option<Option<&str>>,
        author: &str,
    ) -> Result<bool, sqlx::Error> {
        let now = crate::time::now_ms();
        on_pool!(self, pool => {
            let changed = match base {
                None => sqlx::query(
                    "INSERT INTO rule_heads (ruleset, hash, published_at, author) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (ruleset) DO UPDATE SET hash = excluded.hash, published_at = excluded.published_at, author = excluded.author",
                )
                .bind(ruleset)
                .bind(hash)
                .bind(now)
                .bind(author)
                .execute(pool)
                .await?
                .rows_affected(),
                Some(Some(base)) => sqlx::query(
                    "UPDATE rule_heads SET hash = $2, published_at = $3, author = $4 WHERE ruleset = $1 AND hash = $5",
                )
                .bind(ruleset)
                .bind(hash)
                .bind(now)
                .bind(author)
                .bind(base)
                .execute(pool)
                .await?
                .rows_affected(),
                Some(None) => {
                    let updated = sqlx::query(
                        "UPDATE rule_heads SET hash = $2, published_at = $3, author = $4 WHERE ruleset = $1 AND hash IS NULL",
                    )
                    .bind(ruleset)
                    .bind(hash)
                    .bind(now)
                    .bind(author)
                    .execute(pool)
                    .await?
                    .rows_affected();
                    if updated > 0 {
                        updated
                    } else {
                        sqlx::query(
                            "INSERT INTO rule_heads (ruleset, hash, published_at, author) VALUES ($1, $2, $3, $4) ON CONFLICT (ruleset) DO NOTHING",
                        )
                        .bind(ruleset)
                        .bind(hash)
                        .bind(now)
                        .bind(author)
                        .execute(pool)
                        .await?
                        .rows_affected()
                    }
                }
            };
            Ok(changed > 0)
        })
    }

    /// Tells every instance (this one too) `kind` about `subject`.
    pub async fn broadcast(
        &self,
        instance: &str,
        kind: &str,
        subject: &str,
    ) -> Result<(), sqlx::Error> {
        let now = crate::time::now_ms();
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO broadcasts (at, instance, kind, subject) VALUES ($1, $2, $3, $4)")
                .bind(now)
                .bind(instance)
                .bind(kind)
                .bind(subject)
                .execute(pool)
                .await?;
            Ok::<(), sqlx::Error>(())
        })?;
        if let Storage::Postgres(pool) = self {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(CHANNEL)
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// The broadcasts after `after`, oldest first (at most 1,000).
    pub async fn broadcasts_after(&self, after: i64) -> Result<Vec<Broadcast>, sqlx::Error> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT id, instance, kind, subject FROM broadcasts WHERE id > $1 ORDER BY id LIMIT 1000")
                .bind(after)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(Broadcast {
                        id: r.try_get("id")?,
                        instance: r.try_get("instance")?,
                        kind: r.try_get("kind")?,
                        subject: r.try_get("subject")?,
                    })
                })
                .collect()
        })
    }

    /// The newest broadcast's id (0 when there is none): an instance starts reading after it.
    pub async fn last_broadcast(&self) -> Result<i64, sqlx::Error> {
        on_pool!(self, pool => {
            let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM broadcasts")
                .fetch_one(pool)
                .await?;
            Ok(id.unwrap_or(0))
        })
    }

    /// Removes broadcasts, sessions and instances past use.
    pub async fn purge_cluster(
        &self,
        broadcasts_before: i64,
        sessions_idle_before: i64,
        sessions_created_before: i64,
        instances_before: i64,
    ) -> Result<(), sqlx::Error> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM broadcasts WHERE at < $1")
                .bind(broadcasts_before)
                .execute(pool)
                .await?;
            sqlx::query("DELETE FROM console_sessions WHERE last_used < $1 OR created_at < $2")
                .bind(sessions_idle_before)
                .bind(sessions_created_before)
                .execute(pool)
                .await?;
            sqlx::query("DELETE FROM instances WHERE seen_at < $1")
                .bind(instances_before)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Stores a new console session and keeps at most `max` (the least recently used go).
    pub async fn insert_session(
        &self,
        id_hash: &str,
        row: &SessionRow,
        max: i64,
    ) -> Result<(), sqlx::Error> {
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO console_sessions (id_hash, csrf, name, role, created_at, last_used) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(id_hash)
                .bind(&row.csrf)
                .bind(&row.name)
                .bind(&row.role)
                .bind(row.created_at)
                .bind(row.last_used)
                .execute(pool)
                .await?;
            sqlx::query(
                "DELETE FROM console_sessions WHERE id_hash NOT IN (SELECT id_hash FROM console_sessions ORDER BY last_used DESC, id_hash LIMIT $1)",
            )
            .bind(max)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// The stored session with this id hash.
    pub async fn session(&self, id_hash: &str) -> Result<Option<SessionRow>, sqlx::Error> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT csrf, name, role, created_at, last_used FROM console_sessions WHERE id_hash = $1")
                .bind(id_hash)
                .fetch_optional(pool)
                .await?;
            row.map(|r| {
                Ok(SessionRow {
                    csrf: r.try_get("csrf")?,
                    name: r.try_get("name")?,
                    role: r.try_get("role")?,
                    created_at: r.try_get("created_at")?,
                    last_used: r.try_get("last_used")?,
                })
            })
            .transpose()
        })
    }

    pub async fn touch_session(&self, id_hash: &str, at: i64) -> Result<(), sqlx::Error> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE console_sessions SET last_used = $2 WHERE id_hash = $1")
                .bind(id_hash)
                .bind(at)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<(), sqlx::Error> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
                .bind(id_hash)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    pub async fn count_sessions(&self) -> Result<i64, sqlx::Error> {
        on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM console_sessions").fetch_one(pool).await
        })
    }

    /// Says that this instance runs, serving `versions`.
    pub async fn instance_seen(&self, row: &InstanceRow) -> Result<(), sqlx::Error> {
        let versions = row.versions.to_string();
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO instances (id, host, started_at, seen_at, draining, versions) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at, draining = excluded.draining, versions = excluded.versions",
            )
            .bind(&row.id)
            .bind(&row.host)
            .bind(row.started_at)
            .bind(row.seen_at)
            .bind(i64::from(row.draining))
            .bind(&versions)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// The instances seen since `since`, by id.
    pub async fn instances(&self, since: i64) -> Result<Vec<InstanceRow>, sqlx::Error> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT id, host, started_at, seen_at, draining, versions FROM instances WHERE seen_at >= $1 ORDER BY id")
                .bind(since)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|r| {
                    let versions: String = r.try_get("versions")?;
                    let draining: i64 = r.try_get("draining")?;
                    Ok(InstanceRow {
                        id: r.try_get("id")?,
                        host: r.try_get("host")?,
                        started_at: r.try_get("started_at")?,
                        seen_at: r.try_get("seen_at")?,
                        draining: draining != 0,
                        versions: serde_json::from_str(&versions).unwrap_or(serde_json::Value::Null),
                    })
                })
                .collect()
        })
    }
}
