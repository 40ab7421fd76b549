//! Who may do what: roles, the tokens that carry them, and the one table of what each role
//! may do. `admin.token` in belroute.yaml is the bootstrap admin; further tokens are created
//! at run time (`POST /api/v1/tokens`, the console's Tokens page), each with one role, and
//! only their SHA-256 is stored. The API guard and the console ask [`Tokens::principal`] and
//! [`Role::may`], nothing else.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::storage::Storage;
use crate::storage::revisions::{TokenRow, TokenWriteError};
use belroute_engine::settings::Secret;

/// How often every instance reads the stored tokens again: a token deleted on another
/// instance stops working here within this.
pub const REFRESH: Duration = Duration::from_secs(5);

/// The name the bootstrap token (`admin.token`) goes by in revisions and the audit log.
pub const BOOTSTRAP: &str = "admin";

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// The console; change rule sets; forget a plugin's cached answers. Not tokens or
    /// subscriptions.
    Editor,
    /// The console and the API read-only; numbers always masked.
    Viewer,
    /// Only `POST /api/v1/calls/{uuid}/agent`: what an agent app or CRM needs.
    Agent,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Editor, Role::Viewer, Role::Agent];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
            Role::Agent => "agent",
        }
    }

    pub fn parse(text: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| format!("`{text}` is no role; write admin, editor, viewer or agent"))
    }

    /// The one table of what each role may do.
    pub fn may(self, what: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::Editor => matches!(what, Read | Console | ChangeRules | RevealNumbers),
            Role::Viewer => matches!(what, Read | Console),
            Role::Agent => matches!(what, ReportAgent),
        }
    }
}

/// Something a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read the API: rule sets, revisions, calls, plugins, subscriptions, the audit log.
    Read,
    /// Log into the console.
    Console,
    /// Check, compare, publish and restore rule sets; release a quarantine; forget a
    /// plugin's cached answers.
    ChangeRules,
    /// See a caller's number in full.
    RevealNumbers,
    /// Tokens, subscriptions, re-queueing events.
    Administer,
    /// Report which agent took a call.
    ReportAgent,
}

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// The token's name (`admin` for `admin.token`): the author of what it changes.
    pub name: String,
    pub role: Role,
}

impl Principal {
    pub fn may(&self, what: Permission) -> bool {
        self.role.may(what)
    }
}

/// The stored tokens, by hash, read again every [`REFRESH`] and after every change here.
#[derive(Debug, Default)]
pub struct Tokens {
    by_hash: ArcSwap<HashMap<String, Principal>>,
}

/// SHA-256 of a token, hex: what is stored and looked up.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Why a token could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Write(#[from] TokenWriteError),
    #[error("the operating system's random number generator failed ({0}); no token was created")]
    NoRandom(String),
}

impl Tokens {
    /// Who `given` is: the bootstrap admin, a stored token, or nobody. The bootstrap token is
    /// compared in constant time; stored ones are found by their hash.
    pub fn principal(&self, given: &str, bootstrap: Option<&Secret>) -> Option<Principal> {
        if given.is_empty() {
            return None;
        }
        if let Some(token) = bootstrap
            && crate::server::same_secret(given.as_bytes(), token.expose())
        {
            return Some(Principal {
                name: BOOTSTRAP.into(),
                role: Role::Admin,
            });
        }
        self.by_hash.load().get(&token_hash(given)).cloned()
    }

    /// Whether `who` still holds: the bootstrap admin always, a stored token until deleted
    /// (a console session of a deleted token ends at its next request).
    pub fn holds(&self, who: &Principal) -> bool {
        who.name == BOOTSTRAP && who.role == Role::Admin
            || self.by_hash.load().values().any(|p| p == who)
    }

    /// Reads the stored tokens again.
    pub async fn refresh(&self, storage: &Storage) -> Result<(), sqlx::Error> {
        let rows = storage.tokens().await?;
        let map = rows
            .into_iter()
            .filter_map(|row| {
                let role = Role::parse(&row.role).ok()?;
                Some((
                    row.token_hash,
                    Principal {
                        name: row.name,
                        role,
                    },
                ))
            })
            .collect();
        self.by_hash.store(Arc::new(map));
        Ok(())
    }

    /// Reads the stored tokens now and every [`REFRESH`].
    pub fn start(self: &Arc<Self>, storage: Storage) {
        let tokens = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tick.tick().await;
                match tokens.refresh(&storage).await {
                    Ok(()) => failing = false,
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(
                            "cannot read the tokens from the database ({e}); the ones read before still work, and admin.token always does"
                        );
                    }
                    Err(_) => {}
                }
            }
        });
    }

    /// Creates a token named `name` with `role`: the token itself is returned, once; only its
    /// hash is stored.
    pub async fn create(
        &self,
        storage: &Storage,
        name: &str,
        role: Role,
        by: &str,
    ) -> Result<String, CreateError> {
        check_name(name).map_err(CreateError::Invalid)?;
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| CreateError::NoRandom(e.to_string()))?;
        let token: String = std::iter::once("brt_".to_string())
            .chain(bytes.iter().map(|b| format!("{b:02x}")))
            .collect();
        storage
            .insert_token(&TokenRow {
                name: name.to_string(),
                role: role.as_str().to_string(),
                created_at: crate::time::now_ms(),
                created_by: by.to_string(),
                token_hash: token_hash(&token),
            })
            .await?;
        let _ = self.refresh(storage).await;
        Ok(token)
    }

    /// Deletes the token named `name`; `false` when there is none.
    pub async fn delete(&self, storage: &Storage, name: &str) -> Result<bool, sqlx::Error> {
        let deleted = storage.delete_token(name).await?;
        let _ = self.refresh(storage).await;
        Ok(deleted)
    }
}

/// A token's name: what revisions and the audit log say changed something.
pub fn check_name(name: &str) -> Result<(), String> {
    if name == BOOTSTRAP {
        return Err(format!(
            "`{BOOTSTRAP}` is the name of admin.token in belroute.yaml; choose another name"
        ));
    }
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "token name `{}` must be 1 to 64 letters, digits, `-`, `_` or `.` (e.g. `anna` or `ci-deploy`)",
            belroute_engine::text::escape(name)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each role's permissions, row by row: the table docs/api.md shows.
    #[test]
    fn what_each_role_may_do() {
        use Permission::*;
        let table = [
            (
                Role::Admin,
                vec![
                    Read,
                    Console,
                    ChangeRules,
                    RevealNumbers,
                    Administer,
                    ReportAgent,
                ],
            ),
            (
                Role::Editor,
                vec![Read, Console, ChangeRules, RevealNumbers],
            ),
            (Role::Viewer, vec![Read, Console]),
            (Role::Agent, vec![ReportAgent]),
        ];
        let all = [
            Read,
            Console,
            ChangeRules,
            RevealNumbers,
            Administer,
            ReportAgent,
        ];
        for (role, allowed) in table {
            for what in all {
                assert_eq!(role.may(what), allowed.contains(&what), "{role:?} {what:?}");
            }
        }
    }

    #[test]
    fn names_are_short_plain_and_not_the_bootstrap() {
        assert!(check_name("anna").is_ok());
        assert!(check_name("ci-deploy.2").is_ok());
        assert!(check_name("admin").is_err());
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
    }

    #[test]
    fn a_stored_token_is_found_by_its_hash_and_the_bootstrap_by_its_text() {
        let tokens = Tokens::default();
        let mut map = HashMap::new();
        map.insert(
            token_hash("brt_abc"),
            Principal {
                name: "anna".into(),
                role: Role::Editor,
            },
        );
        tokens.by_hash.store(Arc::new(map));
        let bootstrap = Secret::new("the-admin-token");
        assert_eq!(
            tokens
                .principal("brt_abc", Some(&bootstrap))
                .map(|p| p.role),
            Some(Role::Editor)
        );
        assert_eq!(
            tokens
                .principal("the-admin-token", Some(&bootstrap))
                .map(|p| p.name),
            Some("admin".to_string())
        );
        assert_eq!(tokens.principal("brt_abd", Some(&bootstrap)), None);
        assert_eq!(tokens.principal("", Some(&bootstrap)), None);
    }
}
