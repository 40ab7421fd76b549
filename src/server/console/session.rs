//! Console sessions: kept in memory, bounded, expiring. A session id and its CSRF token are
//! 256-bit random values from the operating system's CSPRNG.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::access::Principal;

/// At most this many sessions; logging in past it ends the least recently used one.
pub const MAX_SESSIONS: usize = 1_000;
/// A session not used for this long is over.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(8 * 3600);
/// A session is over this long after its login, used or not.
pub const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

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

#[derive(Debug)]
struct Entry {
    csrf: String,
    principal: Principal,
    created: Instant,
    last_seen: Instant,
}

impl Entry {
    fn live_at(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_seen) < IDLE_TIMEOUT
            && now.saturating_duration_since(self.created) < ABSOLUTE_TIMEOUT
    }
}

/// The random number generator of the operating system failed.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed ({0}); no session was created")]
pub struct NoRandom(getrandom::Error);

/// Every live console session.
#[derive(Debug, Default)]
pub struct Sessions {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Sessions {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session of `principal` (after a successful login).
    pub fn create(&self, principal: Principal) -> Result<Session, NoRandom> {
        self.create_at(principal, Instant::now())
    }

    fn create_at(&self, principal: Principal, now: Instant) -> Result<Session, NoRandom> {
        let id = random_token()?;
        let csrf = random_token()?;
        let mut entries = self.entries();
        entries.retain(|_, e| e.live_at(now));
        while entries.len() >= MAX_SESSIONS {
            let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.last_seen)
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            entries.remove(&oldest);
        }
        entries.insert(
            id.clone(),
            Entry {
                csrf: csrf.clone(),
                principal: principal.clone(),
                created: now,
                last_seen: now,
            },
        );
        Ok(Session {
            id,
            csrf,
            principal,
        })
    }

    /// The live session with this id (and it counts as used now), or `None`.
    pub fn get(&self, id: &str) -> Option<Session> {
        self.get_at(id, Instant::now())
    }

    fn get_at(&self, id: &str, now: Instant) -> Option<Session> {
        let mut entries = self.entries();
        let entry = entries.get_mut(id)?;
        if !entry.live_at(now) {
            entries.remove(id);
            return None;
        }
        entry.last_seen = now;
        Some(Session {
            id: id.to_string(),
            csrf: entry.csrf.clone(),
            principal: entry.principal.clone(),
        })
    }

    /// Ends a session (logout).
    pub fn remove(&self, id: &str) {
        self.entries().remove(id);
    }

    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// 256 random bits from the OS, as 64 hex digits.
fn random_token() -> Result<String, NoRandom> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(NoRandom)?;
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

    #[test]
    fn tokens_are_long_random_and_distinct() {
        let sessions = Sessions::default();
        let a = sessions.create(admin()).unwrap();
        let b = sessions.create(admin()).unwrap();
        assert_eq!(a.id.len(), 64);
        assert_ne!(a.id, b.id);
        assert_ne!(a.id, a.csrf);
        assert!(sessions.get(&a.id).is_some());
        assert!(sessions.get("nope").is_none());
    }

    #[test]
    fn sessions_expire_when_idle_and_absolutely() {
        let sessions = Sessions::default();
        let start = Instant::now();
        let s = sessions.create_at(admin(), start).unwrap();
        let seven_hours = start + Duration::from_secs(7 * 3600);
        assert!(sessions.get_at(&s.id, seven_hours).is_some());
        // Used every 7 h: still live at 21 h, over at 24 h however recently used.
        assert!(
            sessions
                .get_at(&s.id, seven_hours + Duration::from_secs(7 * 3600))
                .is_some()
        );
        assert!(
            sessions
                .get_at(&s.id, start + Duration::from_secs(21 * 3600))
                .is_some()
        );
        assert!(sessions.get_at(&s.id, start + ABSOLUTE_TIMEOUT).is_none());
        // Idle for 8 h: over.
        let t = sessions.create_at(admin(), start).unwrap();
        assert!(sessions.get_at(&t.id, start + IDLE_TIMEOUT).is_none());
    }

    #[test]
    fn the_count_is_bounded_and_the_least_recently_used_goes() {
        let sessions = Sessions::default();
        let start = Instant::now();
        let first = sessions.create_at(admin(), start).unwrap();
        let second = sessions
            .create_at(admin(), start + Duration::from_millis(1))
            .unwrap();
        for i in 2..MAX_SESSIONS {
            sessions
                .create_at(admin(), start + Duration::from_millis(i as u64))
                .unwrap();
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        // The first one is used again; the next login evicts the second.
        let later = start + Duration::from_secs(1);
        assert!(sessions.get_at(&first.id, later).is_some());
        sessions.create_at(admin(), later).unwrap();
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(sessions.get_at(&first.id, later).is_some());
        assert!(sessions.get_at(&second.id, later).is_none());
    }
}
