//! Console sessions: stored in belroute's database, so that behind a load balancer any
//! instance serves any page (and a restart logs nobody out); bounded and expiring. A session id
//! and its CSRF token are 256-bit random values from the operating system's CSPRNG; only the
//! id's SHA-256 is stored.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::access::{Principal, Role};
use crate::storage::Storage;
use crate::storage::cluster::SessionRow;

/// At most this many sessions; logging in past it ends the least recently used one.
pub const MAX_SESSIONS: usize = 1_000;
/// A session not used for this long is over.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(8 * 3600);
/// A session is over this long after its login, used or not.
pub const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// A session's last use is written at most this often (not on every page).
const TOUCH_EVERY: i64 = 60_000;

/// The name of the session cookie.
pub const COOKIE: &str = "belroute_session";

/// What a handler knows of the operator's session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    /// The token every form of this session carries in its `csrf` field.
    pub csrf: String,
    /// Who logged in: the token's name and role.
    pub principal: Principal,
}

impl Session {
    pub fn may(&self, what: crate::access::Permission) -> bool {
        self.principal.may(what)
    }
}

fn live_at(row: &SessionRow, now: i64) -> bool {
    now.saturating_sub(row.last_used) < IDLE_TIMEOUT.as_millis() as i64
        && now.saturating_sub(row.created_at) < ABSOLUTE_TIMEOUT.as_millis() as i64
}

/// Why no session was created.
#[derive(Debug, thiserror::Error)]
pub enum NoSession {
    #[error("the operating system's random number generator failed ({0}); no session was created")]
    NoRandom(getrandom::Error),
    #[error("the database did not store the session ({0}); try again when it answers")]
    Database(#[from] sqlx::Error),
}

/// Every live console session, in the database.
#[derive(Debug, Clone)]
pub struct Sessions {
    storage: Storage,
}

impl Sessions {
    pub fn new(storage: Storage) -> Self {
        Sessions { storage }
    }

    /// A new session of `principal` (after a successful login).
    pub async fn create(&self, principal: Principal) -> Result<Session, NoSession> {
        self.create_at(principal, crate::time::now_ms()).await
    }

    async fn create_at(&self, principal: Principal, now: i64) -> Result<Session, NoSession> {
        let id = random_token().map_err(NoSession::NoRandom)?;
        let csrf = random_token().map_err(NoSession::NoRandom)?;
        let row = SessionRow {
            csrf: csrf.clone(),
            name: principal.name.clone(),
            role: principal.role.as_str().to_string(),
            created_at: now,
            last_used: now,
        };
        self.storage
            .insert_session(&hashed(&id), &row, MAX_SESSIONS as i64)
            .await?;
        Ok(Session {
            id,
            csrf,
            principal,
        })
    }

    /// The live session with this id (and it counts as used now), or `None` — also when the
    /// database does not answer (logged).
    pub async fn get(&self, id: &str) -> Option<Session> {
        self.get_at(id, crate::time::now_ms()).await
    }

    async fn get_at(&self, id: &str, now: i64) -> Option<Session> {
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let key = hashed(id);
        let row = match self.storage.session(&key).await {
            Ok(row) => row?,
            Err(e) => {
                tracing::warn!("console: cannot read the session from the database: {e}");
                return None;
            }
        };
        if !live_at(&row, now) {
            let _ = self.storage.delete_session(&key).await;
            return None;
        }
        if now - row.last_used >= TOUCH_EVERY
            && let Err(e) = self.storage.touch_session(&key, now).await
        {
            tracing::warn!("console: cannot note the session's use: {e}");
        }
        let role = Role::parse(&row.role).ok()?;
        Some(Session {
            id: id.to_string(),
            csrf: row.csrf,
            principal: Principal {
                name: row.name,
                role,
            },
        })
    }

    /// Ends a session (logout), on every instance.
    pub async fn remove(&self, id: &str) {
        if let Err(e) = self.storage.delete_session(&hashed(id)).await {
            tracing::warn!("console: cannot end the session in the database: {e}");
        }
    }

    /// How many sessions are stored (live or not yet purged).
    pub async fn count(&self) -> usize {
        self.storage
            .count_sessions()
            .await
            .map_or(0, |n| usize::try_from(n).unwrap_or(0))
    }
}

fn hashed(id: &str) -> String {
    Sha256::digest(id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// 256 random bits from the OS, as 64 hex digits.
fn random_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn admin() -> Principal {
        Principal {
            name: "admin".into(),
            role: crate::access::Role::Admin,
        }
    }

    async fn sessions() -> Sessions {
        let storage = Storage::open("sqlite::memory:").unwrap();
        storage.migrate().await.unwrap();
        Sessions::new(storage)
    }

    const HOUR: i64 = 3_600_000;

    #[tokio::test]
    async fn tokens_are_long_random_and_distinct() {
        let sessions = sessions().await;
        let a = sessions.create(admin()).await.unwrap();
        let b = sessions.create(admin()).await.unwrap();
        assert_eq!(a.id.len(), 64);
        assert_ne!(a.id, b.id);
        assert_ne!(a.id, a.csrf);
        let found = sessions.get(&a.id).await.unwrap();
        assert_eq!((found.csrf, found.principal.name), (a.csrf, "admin".into()));
        assert!(sessions.get("nope").await.is_none());
        assert!(sessions.get(&"0".repeat(64)).await.is_none());
        // Only the id's hash is stored: the id itself opens nothing in the table.
        assert!(sessions.storage.session(&a.id).await.unwrap().is_none());
        sessions.remove(&a.id).await;
        assert!(sessions.get(&a.id).await.is_none());
    }

    #[tokio::test]
    async fn sessions_expire_when_idle_and_absolutely() {
        let sessions = sessions().await;
        let start = crate::time::now_ms();
        let s = sessions.create_at(admin(), start).await.unwrap();
        assert!(sessions.get_at(&s.id, start + 7 * HOUR).await.is_some());
        // Used every 7 h: still live at 21 h, over at 24 h however recently used.
        assert!(sessions.get_at(&s.id, start + 14 * HOUR).await.is_some());
        assert!(sessions.get_at(&s.id, start + 21 * HOUR).await.is_some());
        assert!(sessions.get_at(&s.id, start + 24 * HOUR).await.is_none());
        // Idle for 8 h: over.
        let t = sessions.create_at(admin(), start).await.unwrap();
        assert!(sessions.get_at(&t.id, start + 8 * HOUR).await.is_none());
    }

    #[tokio::test]
    async fn the_count_is_bounded_and_the_least_recently_used_goes() {
        let sessions = sessions().await;
        let start = crate::time::now_ms();
        let first = sessions.create_at(admin(), start).await.unwrap();
        let second = sessions.create_at(admin(), start + 1).await.unwrap();
        for i in 2..MAX_SESSIONS {
            sessions.create_at(admin(), start + i as i64).await.unwrap();
        }
        assert_eq!(sessions.count().await, MAX_SESSIONS);
        // The first one is used again; the next login evicts the second.
        let later = start + 2 * TOUCH_EVERY;
        assert!(sessions.get_at(&first.id, later).await.is_some());
        sessions.create_at(admin(), later).await.unwrap();
        assert_eq!(sessions.count().await, MAX_SESSIONS);
        assert!(sessions.get_at(&first.id, later).await.is_some());
        assert!(sessions.get_at(&second.id, later).await.is_none());
    }
}
