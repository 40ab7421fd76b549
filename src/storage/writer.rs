//! The call log writer: answers never wait for the database. Records go through a bounded
//! queue to one task that writes them in batches, one transaction each. What does not fit in
//! the queue (a flood, or the database down or slow) goes to the spill file (see
//! [`super::spill`]) and is replayed into the database when the writer has slack; only when
//! the spill file is full too (or the disk) is a record dropped, counted and said. A clean
//! shutdown writes everything queued before the process exits.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};
use tokio::sync::{mpsc, oneshot};

use super::events::EventSink;
use super::record::Stats;
pub use super::record::{CallRecord, CallRow};
use super::spill::{self, Replay, SpillMessage, SpillShared};
use super::{Storage, epoch_ms};

/// How the writer queues, batches and spills (from `storage:` in belroute.yaml).
#[derive(Debug, Clone, PartialEq)]
pub struct WriterSettings {
    /// Records that may wait for the database in memory; more go to the spill file.
    pub queue: usize,
    /// Records written per transaction at most.
    pub batch: usize,
    /// The spill file.
    pub spill: std::path::PathBuf,
    /// Bytes the spill files may hold together; past it records are dropped (and counted).
    pub spill_limit: u64,
}

impl Default for WriterSettings {
    fn default() -> Self {
        WriterSettings {
            queue: 10_000,
            batch: 500,
            spill: std::path::PathBuf::from(spill::SPILL_FILE),
            spill_limit: 1 << 30,
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

/// The call log's counters, for metrics and the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct CallLogStats {
    /// Records written to the database (replayed ones included).
    pub written: u64,
    /// Records lost: the spill file was full or could not be written.
    pub dropped: u64,
    /// Records that went to the spill file because the queue was full.
    pub spilled: u64,
    /// Records replayed from the spill file into the database.
    pub replayed: u64,
    /// Records waiting in memory.
    pub queued: usize,
    /// Bytes waiting in the spill files.
    pub spill_bytes: u64,
    pub database_up: bool,
}

/// How an agent report went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentReported {
    /// Stored (and its `call.agent` event written).
    Recorded,
    /// No call with this uuid in the call log, also after a short grace.
    NoSuchCall,
}

/// The handle the webhook and the admin API use to log calls and agent reports.
#[derive(Debug)]
pub struct CallLog {
    storage: Storage,
    events: Arc<dyn EventSink>,
    sender: mpsc::Sender<Message>,
    spill: mpsc::Sender<SpillMessage>,
    spill_shared: Arc<SpillShared>,
    stats: Arc<Stats>,
}

impl CallLog {
    /// Starts the writer task and the spill thread; the sink's subscribers get an event per
    /// call, in the same transaction. A spill file left from before is replayed first.
    pub fn start(
        storage: Storage,
        settings: WriterSettings,
        events: Arc<dyn EventSink>,
    ) -> std::io::Result<Self> {
        let (sender, receiver) = mpsc::channel(settings.queue.max(1));
        let stats = Arc::new(Stats::new());
        let spill_shared = Arc::new(SpillShared::new(settings.spill, settings.spill_limit));
        let spill = spill::start(spill_shared.clone(), stats.clone())?;
        if spill_shared.has_records() {
            tracing::info!(
                "call log: spill file(s) beside {} hold {} bytes of call records from before; they are written to the database first",
                spill_shared.active.display(),
                spill_shared.bytes.load(Ordering::Relaxed)
            );
        }
        let writer = Writer {
            storage: storage.clone(),
            events: events.clone(),
            stats: stats.clone(),
            want_replay: spill_shared.has_records(),
            shared: spill_shared.clone(),
            spill: spill.clone(),
            batch_size: settings.batch.max(1),
            migrated: false,
            replay: None,
        };
        tokio::spawn(writer.run(receiver));
        Ok(CallLog {
            storage,
            events,
            sender,
            spill,
            spill_shared,
            stats,
        })
    }

    /// Queues a record; never waits. A full queue sends it to the spill file (through a
    /// queue of its own); when that is full too, the record is dropped, counted and said.
    pub fn record(&self, record: CallRecord) {
        self.stats.pending.fetch_add(1, Ordering::Relaxed);
        let record = match self.sender.try_send(Message::Record(Box::new(record))) {
            Ok(()) => return,
            Err(TrySendError::Full(Message::Record(record)))
            | Err(TrySendError::Closed(Message::Record(record))) => record,
            Err(_) => return,
        };
        if self.spill.try_send(SpillMessage::Record(record)).is_err() {
            self.stats.pending.fetch_sub(1, Ordering::Relaxed);
            self.stats.drop_record(
                "the queue and the spill queue are full (records arrive faster than the disk takes them)",
            );
        }
    }

    /// Waits (up to `timeout`) until every record recorded so far is written, spilled ones
    /// included.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let (ack, done) = oneshot::channel();
        let flushed = async {
            if self.sender.send(Message::Flush(ack)).await.is_err() {
                return false;
            }
            matches!(done.await, Ok(()))
        };
        matches!(tokio::time::timeout(timeout, flushed).await, Ok(true))
    }

    /// Records that `agent` handled the latest call with `uuid` (and writes its `call.agent`
    /// event). The report may come moments after the call: what is queued is written first,
    /// and a call not found is looked for again for a second (another instance on the same
    /// database may have answered it and not written it yet).
    pub async fn report_agent(
        &self,
        uuid: &str,
        agent: &str,
    ) -> Result<AgentReported, sqlx::Error> {
        self.flush(Duration::from_secs(2)).await;
        let now = epoch_ms(SystemTime::now());
        for attempt in 0..=REPORT_RETRIES {
            if attempt > 0 {
                tokio::time::sleep(REPORT_RETRY_AFTER).await;
            }
            if self
                .storage
                .report_agent(uuid, agent, now, self.events.as_ref())
                .await?
            {
                tracing::info!(uuid, agent, "agent reported");
                return Ok(AgentReported::Recorded);
            }
        }
        Ok(AgentReported::NoSuchCall)
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
            spilled: self.stats.spilled.load(Ordering::Relaxed),
            replayed: self.stats.replayed.load(Ordering::Relaxed),
            queued: self.queued(),
            spill_bytes: self.spill_shared.bytes.load(Ordering::Relaxed),
            database_up: self.stats.database_up.load(Ordering::Relaxed),
        }
    }
}

/// An agent report for a call not (yet) in the call log is tried again this often…
const REPORT_RETRIES: u32 = 5;
/// …this long apart.
const REPORT_RETRY_AFTER: Duration = Duration::from_millis(200);

/// The writer task's state.
struct Writer {
    storage: Storage,
    events: Arc<dyn EventSink>,
    stats: Arc<Stats>,
    shared: Arc<SpillShared>,
    spill: mpsc::Sender<SpillMessage>,
    batch_size: usize,
    migrated: bool,
    /// The sealed spill file being replayed.
    replay: Option<Replay>,
    /// Records may wait in the spill file: look when there is slack.
    want_replay: bool,
}

impl Writer {
    async fn run(mut self, mut receiver: mpsc::Receiver<Message>) {
        let mut batch: Vec<CallRecord> = Vec::with_capacity(self.batch_size);
        let mut acks: Vec<oneshot::Sender<()>> = Vec::new();
        let mut closing: Option<oneshot::Sender<()>> = None;
        loop {
            if batch.is_empty() && acks.is_empty() && closing.is_none() {
                if self.replay.is_some() || self.want_replay {
                    // Slack: live records first, else the next batch from the spill file.
                    match receiver.try_recv() {
                        Ok(message) => take(message, &mut batch, &mut acks, &mut closing),
                        Err(TryRecvError::Empty) => {
                            self.replay_step().await;
                            continue;
                        }
                        Err(TryRecvError::Disconnected) => return,
                    }
                } else {
                    tokio::select! {
                        message = receiver.recv() => match message {
                            Some(message) => take(message, &mut batch, &mut acks, &mut closing),
                            None => return,
                        },
                        () = self.shared.appended.notified() => {
                            self.want_replay = true;
                            continue;
                        }
                    }
                }
            }
            while batch.len() < self.batch_size && closing.is_none() {
                match receiver.try_recv() {
                    Ok(message) => take(message, &mut batch, &mut acks, &mut closing),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                let rows: Vec<CallRow> = batch.iter().map(CallRow::from).collect();
                self.write(&rows, false).await;
                batch.clear();
            }
            // More may have been queued behind a flush or close; write that first.
            if !receiver.is_empty() && (closing.is_some() || !acks.is_empty()) {
                let pending = receiver.len();
                for _ in 0..pending {
                    if let Ok(message) = receiver.try_recv() {
                        take(message, &mut batch, &mut acks, &mut closing);
                    }
                }
                continue;
            }
            if !acks.is_empty() || closing.is_some() {
                // Records spilled before the flush are written before it is acknowledged.
                self.want_replay = true;
                while self.replay.is_some() || self.want_replay {
                    self.replay_step().await;
                }
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

    /// Writes rows with their events (retrying until the database takes them).
    async fn write(&mut self, rows: &[CallRow], replayed: bool) {
        let inserted = write_with_retry(
            &self.storage,
            rows,
            self.events.as_ref(),
            replayed,
            &self.stats,
            &mut self.migrated,
        )
        .await;
        self.stats.written.fetch_add(inserted, Ordering::Relaxed);
        if replayed {
            self.stats
                .replayed
                .fetch_add(rows.len() as u64, Ordering::Relaxed);
        } else {
            self.stats
                .pending
                .fetch_sub(rows.len() as u64, Ordering::Relaxed);
        }
    }

    /// Replays one batch from the sealed spill file (sealing the active one first if needed).
    async fn replay_step(&mut self) {
        if self.replay.is_none() {
            if !self.seal().await {
                self.want_replay = false;
                return;
            }
            match Replay::open(&self.shared.sealed) {
                Ok(replay) => {
                    tracing::info!(
                        "call log: replaying {} ({} bytes) into the database",
                        replay.path.display(),
                        replay.len
                    );
                    self.replay = Some(replay);
                }
                Err(e) => {
                    tracing::error!(
                        "call log: cannot read the spill file {} ({e}); its records wait until belroute can read it",
                        self.shared.sealed.display()
                    );
                    self.want_replay = false;
                    return;
                }
            }
        }
        let Some(mut replay) = self.replay.take() else {
            return;
        };
        let (stats, max) = (self.stats.clone(), self.batch_size);
        let read = tokio::task::spawn_blocking(move || {
            let batch = replay.next_batch(max, &stats);
            (replay, batch)
        })
        .await;
        let (replay, batch) = match read {
            Ok((replay, Ok(batch))) => (replay, batch),
            Ok((replay, Err(e))) => {
                tracing::error!(
                    "call log: cannot read the spill file {} ({e}); it is replayed again at the next start",
                    replay.path.display()
                );
                self.want_replay = false;
                return;
            }
            Err(e) => {
                tracing::error!("call log: reading the spill file failed ({e})");
                self.want_replay = false;
                return;
            }
        };
        if !batch.rows.is_empty() {
            self.write(&batch.rows, true).await;
        }
        if !batch.done {
            self.replay = Some(replay);
            return;
        }
        match std::fs::remove_file(&replay.path) {
            Ok(()) => {
                self.shared.removed(replay.len);
                tracing::info!(
                    "call log: {} replayed into the database and removed",
                    replay.path.display()
                );
            }
            Err(e) => {
                tracing::error!(
                    "call log: {} is replayed but cannot be removed ({e}); remove it by hand (replaying it again writes nothing twice)",
                    replay.path.display()
                );
                self.want_replay = false;
            }
        }
    }

    /// Asks the spill thread (after every record it was sent) for a sealed file to replay.
    async fn seal(&self) -> bool {
        let (ack, done) = oneshot::channel();
        if self.spill.send(SpillMessage::Seal(ack)).await.is_err() {
            return false;
        }
        done.await.unwrap_or(false)
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

/// Writes one batch, retrying with backoff until the database takes it; returns how many rows
/// were inserted (`replayed` rows already in the database are skipped).
async fn write_with_retry(
    storage: &Storage,
    rows: &[CallRow],
    events: &dyn EventSink,
    replayed: bool,
    stats: &Stats,
    migrated: &mut bool,
) -> u64 {
    let mut backoff = Duration::from_millis(100);
    let mut down_since: Option<Instant> = None;
    loop {
        let result = async {
            if !*migrated {
                storage.migrate().await.map_err(|e| e.to_string())?;
                *migrated = true;
            }
            storage
                .insert_rows(rows, events, replayed)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        match result {
            Ok(inserted) => {
                if let Some(since) = down_since {
                    stats.database_up.store(true, Ordering::Relaxed);
                    tracing::info!(
                        "call log database is back after {}; queued records are being written",
                        humantime::format_duration(Duration::from_secs(since.elapsed().as_secs()))
                    );
                }
                return inserted;
            }
            Err(error) => {
                if down_since.is_none() {
                    down_since = Some(Instant::now());
                    stats.database_up.store(false, Ordering::Relaxed);
                    tracing::error!(
                        "call log database unavailable ({} {error}); calls are still answered and their records wait in the queue and the spill file",
                        storage.kind()
                    );
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
