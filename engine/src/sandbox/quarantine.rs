//! Quarantine: a rule set whose evaluations keep making the operating system stop workers
//! answers its default at once, until its file changes or an operator releases it. Each
//! version of a rule file has its own quarantine, so saving a fix ends it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::time::Instant;

/// When a rule set is quarantined: `kills` stopped workers within `window`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinePolicy {
    pub kills: u32,
    pub window: Duration,
}

impl Default for QuarantinePolicy {
    fn default() -> Self {
        QuarantinePolicy {
            kills: 3,
            window: Duration::from_secs(60),
        }
    }
}

/// Why a rule set is quarantined, as `/readyz`, the console and the admin API show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quarantined {
    /// The rule that was running at the last stop (`(unknown)` when it could not be told).
    pub rule: String,
    /// What happened the last time: "killed at the deadline", "died: out of memory …".
    pub cause: String,
    /// Workers stopped within the window.
    pub kills: u32,
    #[serde(serialize_with = "rfc3339")]
    pub since: SystemTime,
}

fn rfc3339<S: serde::Serializer>(at: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let at: chrono::DateTime<chrono::Utc> = (*at).into();
    s.serialize_str(&at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// One rule set version's record of stopped workers.
#[derive(Debug, Default)]
pub struct Quarantine {
    /// Read on every call: one atomic load while nothing is wrong.
    active: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    stops: VecDeque<Instant>,
    since: Option<Quarantined>,
}

impl Quarantine {
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// The quarantine, while it lasts.
    pub fn status(&self) -> Option<Quarantined> {
        if !self.is_active() {
            return None;
        }
        self.state().since.clone()
    }

    /// Counts one stopped worker; returns the quarantine when this stop began it.
    pub fn record(
        &self,
        rule: &str,
        cause: &str,
        policy: &QuarantinePolicy,
    ) -> Option<Quarantined> {
        let mut state = self.state();
        let now = Instant::now();
        while state
            .stops
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) > policy.window)
        {
            state.stops.pop_front();
        }
        state.stops.push_back(now);
        let kills = u32::try_from(state.stops.len()).unwrap_or(u32::MAX);
        if self.is_active() || kills < policy.kills.max(1) {
            return None;
        }
        let quarantined = Quarantined {
            rule: rule.to_string(),
            cause: cause.to_string(),
            kills,
            since: SystemTime::now(),
        };
        state.since = Some(quarantined.clone());
        self.active.store(true, Ordering::Relaxed);
        Some(quarantined)
    }

    /// Ends the quarantine (an operator's release); returns whether there was one.
    pub fn release(&self) -> bool {
        let mut state = self.state();
        state.stops.clear();
        state.since = None;
        self.active.swap(false, Ordering::Relaxed)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn three_stops_within_the_window_quarantine_and_a_release_ends_it() {
        let policy = QuarantinePolicy::default();
        let q = Quarantine::default();
        assert!(
            q.record("Loop", "killed at the deadline", &policy)
                .is_none()
        );
        tokio::time::advance(Duration::from_secs(61)).await;
        // The first stop is out of the window by now.
        assert!(
            q.record("Loop", "killed at the deadline", &policy)
                .is_none()
        );
        assert!(
            q.record("Loop", "killed at the deadline", &policy)
                .is_none()
        );
        assert!(!q.is_active());
        let began = q.record("Loop", "died: out of memory", &policy).unwrap();
        assert_eq!((began.rule.as_str(), began.kills), ("Loop", 3));
        assert!(q.is_active());
        assert_eq!(q.status().unwrap().cause, "died: out of memory");
        // Further stops do not begin it again.
        assert!(
            q.record("Loop", "killed at the deadline", &policy)
                .is_none()
        );
        assert!(q.release());
        assert!(!q.is_active() && q.status().is_none());
        assert!(!q.release());
    }
}
