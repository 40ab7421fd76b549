//! Doubles of the storage seams ([`super::store`]) for unit tests: a call log and a delivery
//! table in memory that can be made slow, unavailable or refusing, counting what was asked.
//! Their clock is tokio's, so a test with a paused clock controls them too.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::events::{EventKind, EventSink};
use super::replay::{PageCursor, ReplayWindow};
use super::store::{CallStore, DeliveryStore, StoreError};
use super::{CallRow, LoggedCall};

/// How the double answers writes now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Health {
    #[default]
    Up,
    /// Every write fails as with a database that does not answer.
    Down,
    /// Every write fails as with rows the database will never take.
    Refusing,
}

#[derive(Debug, Default)]
struct Calls {
    rows: Vec<CallRow>,
    /// The size of every write that went through, in order.
    batches: Vec<usize>,
    /// Writes tried (through or not; a migration that fails counts as one).
    attempts: usize,
    health: Health,
    /// Each write takes this long (tokio time).
    delay: Duration,
}

/// A call log in memory.
#[derive(Debug, Default)]
pub struct MemoryCallStore {
    calls: Mutex<Calls>,
}

impl MemoryCallStore {
    fn calls(&self) -> std::sync::MutexGuard<'_, Calls> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_health(&self, health: Health) {
        self.calls().health = health;
    }

    pub fn set_delay(&self, delay: Duration) {
        self.calls().delay = delay;
    }

    /// The uuids written, in order.
    pub fn uuids(&self) -> Vec<String> {
        self.calls().rows.iter().map(|r| r.uuid.clone()).collect()
    }

    pub fn batches(&self) -> Vec<usize> {
        self.calls().batches.clone()
    }

    pub fn attempts(&self) -> usize {
        self.calls().attempts
    }

    /// Rows as if they had been logged before (for replay).
    pub fn insert(&self, rows: impl IntoIterator<Item = CallRow>) {
        self.calls().rows.extend(rows);
    }
}

#[async_trait]
impl CallStore for MemoryCallStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut calls = self.calls();
        if calls.health == Health::Down {
            calls.attempts += 1;
        }
        match calls.health {
            Health::Down => Err(StoreError::unavailable("connection refused")),
            _ => Ok(()),
        }
    }

    async fn insert_rows(
        &self,
        rows: &[CallRow],
        events: &dyn EventSink,
        skip_existing: bool,
    ) -> Result<u64, StoreError> {
        let delay = {
            let mut calls = self.calls();
            calls.attempts += 1;
            calls.delay
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut calls = self.calls();
        match calls.health {
            Health::Down => return Err(StoreError::unavailable("connection refused")),
            Health::Refusing => {
                return Err(StoreError {
                    message: "invalid byte sequence".into(),
                    refused: true,
                });
            }
            Health::Up => {}
        }
        let existing: HashSet<(String, i64)> = calls
            .rows
            .iter()
            .map(|r| (r.uuid.clone(), r.received_at))
            .collect();
        let fresh: Vec<CallRow> = rows
            .iter()
            .filter(|r| !skip_existing || !existing.contains(&(r.uuid.clone(), r.received_at)))
            .cloned()
            .collect();
        let n = fresh.len();
        calls.rows.extend(fresh);
        calls.batches.push(rows.len());
        drop(calls);
        let subscribers = events.subscribers(EventKind::CallRouted);
        if n > 0 && !subscribers.is_empty() {
            events.wake(&subscribers);
        }
        Ok(n as u64)
    }

    async fn report_agent(
        &self,
        uuid: &str,
        _agent: &str,
        _at_ms: i64,
        _events: &dyn EventSink,
    ) -> Result<bool, StoreError> {
        Ok(self.calls().rows.iter().any(|r| r.uuid == uuid))
    }

    async fn replay_page(
        &self,
        window: &ReplayWindow,
        after: Option<PageCursor>,
        limit: i64,
    ) -> Result<Vec<LoggedCall>, StoreError> {
        let calls = self.calls();
        let mut page: Vec<LoggedCall> = calls
            .rows
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let mut call = LoggedCall::from(row.clone());
                call.id = i as i64 + 1;
                call
            })
            .filter(|c| c.received_at >= window.from_ms && c.received_at < window.to_ms)
            .filter(|c| window.rulesets.is_empty() || window.rulesets.contains(&c.ruleset))
            .filter(|c| window.except_version.as_ref() != Some(&c.version))
            .filter(|c| after.is_none_or(|a| (c.received_at, c.id) > (a.received_at, a.id)))
            .collect();
        page.sort_by_key(|c| (c.received_at, c.id));
        page.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(page)
    }
}

/// One delivery of an event to a subscription.
#[derive(Debug, Clone)]
struct Delivery {
    subscription: String,
    /// `None`: new; `Some(until)`: claimed until then.
    claimed_until: Option<Instant>,
    done: bool,
}

/// A delivery table in memory: events added, claimed with a visibility timeout, closed.
#[derive(Debug, Default)]
pub struct MemoryDeliveries {
    deliveries: Mutex<Vec<Delivery>>,
    /// `has_new_events` calls.
    pub looks: std::sync::atomic::AtomicUsize,
}

impl MemoryDeliveries {
    fn deliveries(&self) -> std::sync::MutexGuard<'_, Vec<Delivery>> {
        self.deliveries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new event for `subscription`.
    pub fn add(&self, subscription: &str) {
        self.deliveries().push(Delivery {
            subscription: subscription.into(),
            claimed_until: None,
            done: false,
        });
    }

    /// GetNextNewAndClaim: the oldest claimable delivery, claimed for `visibility`; its index.
    pub fn claim(&self, subscription: &str, visibility: Duration) -> Option<usize> {
        let now = Instant::now();
        let mut deliveries = self.deliveries();
        let (i, d) = deliveries.iter_mut().enumerate().find(|(_, d)| {
            d.subscription == subscription && !d.done && d.claimed_until.is_none_or(|u| u < now)
        })?;
        d.claimed_until = Some(now + visibility);
        Some(i)
    }

    /// Closes a claim with success.
    pub fn close(&self, index: usize) {
        if let Some(d) = self.deliveries().get_mut(index) {
            d.done = true;
        }
    }
}

#[async_trait]
impl DeliveryStore for MemoryDeliveries {
    async fn has_new_events(&self, subscription: &str, _now_ms: i64) -> Result<bool, StoreError> {
        self.looks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = Instant::now();
        Ok(self.deliveries().iter().any(|d| {
            d.subscription == subscription && !d.done && d.claimed_until.is_none_or(|u| u < now)
        }))
    }
}
