//! The call log writer: answers never wait for the database. Records go through a bounded
//! queue to one task that writes them in batches, one transaction each; while the database is
//! down they wait (and the queue fills); what does not fit is counted and said, never lost
//! silently; a clean shutdown writes everything queued before the process exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use belroute_engine::{Call, Decision};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::{Storage, epoch_ms};
use crate::subscriptions::{EventKind, Subscriptions};

/// One answered call, as it will be stored.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub received_at: SystemTime,
    pub call: Arc<Call>,
    pub decision: Decision,
}

/// A record's column values.
pub(super) struct Row<'a> {
    pub uuid: &'a str,
    pub received_at: i64,
    pub ruleset: &'a str,
    pub version: &'a str,
    pub caller_raw: &'a str,
    pub caller_e164: &'a str,
    pub route: &'a str,
    pub rule: Option<&'a str>,
    pub reason: &'static str,
    pub micros: i64,
    pub call_data: String,
    pub trace: String,
}

impl CallRecord {
    /// The `call.routed` event: what a subscriber learns when it claims it.
    pub(super) fn event(&self) -> (&str, i64, String) {
        let d = &self.decision;
        let received_at = epoch_ms(self.received_at);
        let data = serde_json::json!({
            "uuid": self.call.uuid(),
            "received_at": super::rfc3339(received_at),
            "ruleset": d.ruleset,
            "route": d.route,
            "rule": d.rule,
            "reason": self.row().reason,
            "caller": { "raw": d.caller.raw, "e164": d.caller.e164, "anonymous": d.caller.anonymous },
            "call": self.call.sent_fields(),
        });
        (self.call.uuid(), received_at, data.to_string())
    }

    /// Serialised here, on the writer's task, not on the answer's path.
    pub(super) fn row(&self) -> Row<'_> {
        let d = &self.decision;
        let trace =
            serde_json::json!({ "caller": d.caller, "rules": d.rules, "lookups": d.lookups });
        Row {
            uuid: self.call.uuid(),
            received_at: epoch_ms(self.received_at),
            ruleset: &d.ruleset,
            version: &d.version,
            caller_raw: &d.caller.raw,
            caller_e164: &d.caller.e164,
            route: &d.route,
            rule: d.rule.as_deref(),
            reason: d.reason.as_str(),
            micros: i64::try_from(d.micros).unwrap_or(i64::MAX),
            call_data: serde_json::to_string(self.call.sent_fields())
                .unwrap_or_else(|_| "{}".into()),
            trace: trace.to_string(),
        }
    }
}

/// How the writer queues and batches (from `storage:` in belroute.yaml).
#[derive(Debug, Clone, PartialEq)]
pub struct WriterSettings {
    /// Records that may wait for the database; more are dropped (and counted).
    pub queue: usize,
    /// Records written per transaction at most.
    pub batch: usize,
}

impl Default for WriterSettings {
    fn default() -> Self {
        WriterSettings {
            queue: 10_000,
            batch: 500,
        }
    }
}

enum Message {
    Record(Box<CallRecord>),
    /// Acknowledged once everything sent before it is written.
    Flush(oneshot::Sender<()>),
    /// Write what is queued, then stop.
    Close(oneshot::Sender<()>),
}

#[derive(Debug, Default)]
struct Stats {
    /// Accepted and not yet written (in the queue or in the batch being written).
    pending: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    database_up: AtomicBool,
    last_drop_log_ms: AtomicI64,
}

/// The call log's counters, for metrics and the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct CallLogStats {
    pub written: u64,
    pub dropped: u64,
    pub queued: usize,
    pub database_up: bool,
}

/// The handle the webhook uses to log calls.
#[derive(Debug)]
pub struct CallLog {
    sender: mpsc::Sender<Message>,
    stats: Arc<Stats>,
}

impl CallLog {
    /// Starts the writer task.
    /// Starts the writer task; `subscriptions` get an event per call, in the same transaction.
    pub fn start(
        storage: Storage,
        settings: WriterSettings,
        subscriptions: Arc<Subscriptions>,
    ) -> Self {
        let (sender, receiver) = mpsc::channel(settings.queue.max(1));
        let stats = Arc::new(Stats {
            database_up: AtomicBool::new(true),
            ..Stats::default()
        });
        tokio::spawn(write_loop(
            storage,
            subscriptions,
            receiver,
            stats.clone(),
            settings.batch.max(1),
        ));
        CallLog { sender, stats }
    }

    /// Queues a record; never waits. A full queue drops the record, counts it and says so.
    pub fn record(&self, record: CallRecord) {
        self.stats.pending.fetch_add(1, Ordering::Relaxed);
        if self
            .sender
            .try_send(Message::Record(Box::new(record)))
            .is_err()
        {
            self.stats.pending.fetch_sub(1, Ordering::Relaxed);
            let dropped = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            let now = epoch_ms(SystemTime::now());
            let last = self.stats.last_drop_log_ms.load(Ordering::Relaxed);
            if now - last >= 10_000
                && self
                    .stats
                    .last_drop_log_ms
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                tracing::error!(
                    dropped_total = dropped,
                    "call log queue full: call records are being dropped (database down or too slow)"
                );
            }
        }
    }

    /// Waits (up to `timeout`) until every record queued so far is written.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let (ack, done) = oneshot::channel();
        if self.sender.send(Message::Flush(ack)).await.is_err() {
            return false;
        }
        matches!(tokio::time::timeout(timeout, done).await, Ok(Ok(())))
    }

    /// Writes everything queued and stops the writer; gives up after `timeout` (the database
    /// is down), saying how many records are lost.
    pub async fn close(&self, timeout: Duration) {
        let queued = self.queued();
        let (ack, done) = oneshot::channel();
        if self.sender.send(Message::Close(ack)).await.is_err() {
            return;
        }
        match tokio::time::timeout(timeout, done).await {
            Ok(_) => tracing::info!("call log flushed ({queued} record(s) were queued)"),
            Err(_) => tracing::error!(
                "call log: the database did not take the {} queued record(s) within {}; they are lost",
                self.queued(),
                humantime::format_duration(timeout)
            ),
        }
    }

    fn queued(&self) -> usize {
        usize::try_from(self.stats.pending.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
    }

    pub fn stats(&self) -> CallLogStats {
        CallLogStats {
            written: self.stats.written.load(Ordering::Relaxed),
            dropped: self.stats.dropped.load(Ordering::Relaxed),
            queued: self.queued(),
            database_up: self.stats.database_up.load(Ordering::Relaxed),
        }
    }
}

async fn write_loop(
    storage: Storage,
    subscriptions: Arc<Subscriptions>,
    mut receiver: mpsc::Receiver<Message>,
    stats: Arc<Stats>,
    batch_size: usize,
) {
    let mut batch: Vec<CallRecord> = Vec::with_capacity(batch_size);
    let mut acks: Vec<oneshot::Sender<()>> = Vec::new();
    let mut closing: Option<oneshot::Sender<()>> = None;
    let mut migrated = false;
    loop {
        if batch.is_empty() && acks.is_empty() && closing.is_none() {
            match receiver.recv().await {
                Some(message) => take(message, &mut batch, &mut acks, &mut closing),
                None => return,
            }
        }
        while batch.len() < batch_size && closing.is_none() {
            match receiver.try_recv() {
                Ok(message) => take(message, &mut batch, &mut acks, &mut closing),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let subscribers = subscriptions.subscribers(EventKind::CallRouted);
            write_with_retry(&storage, &batch, &subscribers, &stats, &mut migrated).await;
            subscriptions.wake(&subscribers);
            batch.clear();
        }
        // More may have been queued behind a flush or close; write that first.
        if !receiver.is_empty() && (closing.is_some() || !acks.is_empty()) && batch.is_empty() {
            let pending = receiver.len();
            for _ in 0..pending {
                if let Ok(message) = receiver.try_recv() {
                    take(message, &mut batch, &mut acks, &mut closing);
                }
            }
            continue;
        }
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
        if let Some(close) = closing.take() {
            let _ = close.send(());
            return;
        }
    }
}

fn take(
    message: Message,
    batch: &mut Vec<CallRecord>,
    acks: &mut Vec<oneshot::Sender<()>>,
    closing: &mut Option<oneshot::Sender<()>>,
) {
    match message {
        Message::Record(record) => batch.push(*record),
        Message::Flush(ack) => acks.push(ack),
        Message::Close(ack) => *closing = Some(ack),
    }
}

/// Writes one batch, retrying with backoff until the database takes it.
async fn write_with_retry(
    storage: &Storage,
    batch: &[CallRecord],
    subscribers: &[String],
    stats: &Stats,
    migrated: &mut bool,
) {
    let mut backoff = Duration::from_millis(100);
    let mut down_since: Option<Instant> = None;
    loop {
        let result = async {
            if !*migrated {
                storage.migrate().await.map_err(|e| e.to_string())?;
                *migrated = true;
            }
            storage
                .insert_calls(batch, subscribers)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        match result {
            Ok(()) => {
                stats
                    .written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                stats
                    .pending
                    .fetch_sub(batch.len() as u64, Ordering::Relaxed);
                if let Some(since) = down_since {
                    stats.database_up.store(true, Ordering::Relaxed);
                    tracing::info!(
                        "call log database is back after {}; queued records are being written",
                        humantime::format_duration(Duration::from_secs(since.elapsed().as_secs()))
                    );
                }
                return;
            }
            Err(error) => {
                if down_since.is_none() {
                    down_since = Some(Instant::now());
                    stats.database_up.store(false, Ordering::Relaxed);
                    tracing::error!(
                        "call log database unavailable ({} {error}); calls are still answered and their records wait in the queue",
                        storage.kind()
                    );
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
