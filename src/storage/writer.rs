//! The call log writer: answers never wait for the database, and records do not wait in memory
//! for a database that cannot take them. Records go through a bounded queue to one task that
//! writes them in batches, one transaction each. While the writer cannot write — a write
//! failed, or one has taken longer than [`STALL`] — new records go straight to the spill file
//! (see [`super::spill`]), and so do the records the writer held, so a crash loses at most the
//! last moment's records; the spill file is replayed into the database when it takes writes
//! again and the writer has slack. Only when the spill file is full too (or the disk) is a
//! record dropped, counted and said. A stop writes everything queued and spilled if the
//! database takes it within the stop's wait, and otherwise leaves it in the spill file, which
//! the next start replays.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::events::EventSink;
use super::journal::{self, Journal};
use super::record::Stats;
pub use super::record::{CallRecord, CallRow};
use super::spill::{self, Replay, ReplayBatch, SetAside, SpillMessage, SpillShared};
use super::store::{CallStore, StoreError};

/// A write that has not finished after this long sends new records to the spill file (and a
/// copy of the records it is writing), so they do not wait in memory; it is also how much a
/// crash while the database hangs can lose.
pub const STALL: Duration = Duration::from_millis(500);

/// While the database is unavailable it is tried again after 100 ms, doubling up to 5 s
/// (1 s while stopping).
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const BACKOFF_MAX_STOPPING: Duration = Duration::from_secs(1);

/// A spill file that cannot be read this many times in a row is moved aside.
const READ_FAILURES: u32 = 3;

/// How long a stop waits for the spill thread to put what was in memory on disk.
const TO_DISK_WITHIN: Duration = Duration::from_secs(10);

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

impl WriterSettings {
    /// The lock beside the spill file a running call log holds (`belroute-spill.lock`).
    pub fn lock_file(&self) -> std::path::PathBuf {
        self.spill.with_extension("lock")
    }
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
    /// A record's row, built once when it was recorded (for the crash journal too).
    Record(Box<CallRow>),
    /// Acknowledged once everything sent before it is written.
    Flush(oneshot::Sender<()>),
    /// Write what is queued and spilled, then stop (or, told to give up, put it on disk).
    Close(oneshot::Sender<()>),
    /// Acknowledged once every record sent before it is in the database or on its way to the
    /// disk in the spill file (the crash journal's older files may go then).
    Barrier(oneshot::Sender<()>),
}

/// The call log's counters, for metrics and the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct CallLogStats {
    /// Records written to the database (replayed ones included).
    pub written: u64,
    /// Records lost: the spill file was full or could not be written, or a line of it was not
    /// a record.
    pub dropped: u64,
    /// Records that went to the spill file: the queue was full, or the database could not
    /// take them.
    pub spilled: u64,
    /// Records replayed from the spill file into the database.
    pub replayed: u64,
    /// Records the database refused for what they hold, kept in a file beside the spill file.
    pub set_aside: u64,
    /// Records waiting in memory.
    pub queued: usize,
    /// Records waiting in the spill files.
    pub spill_records: u64,
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
    store: Arc<dyn CallStore>,
    events: Arc<dyn EventSink>,
    sender: mpsc::Sender<Message>,
    spill: mpsc::Sender<SpillMessage>,
    spill_shared: Arc<SpillShared>,
    stats: Arc<Stats>,
    /// Set when a stop has waited long enough: the writer puts what it holds on disk.
    give_up: watch::Sender<bool>,
    /// Every record, appended before its answer leaves (see [`super::journal`]).
    journal: Arc<Journal>,
    /// Held while this call log runs: no other process uses its spill file and journal.
    _lock: std::fs::File,
}

impl CallLog {
    /// Starts the writer task and the spill thread; the sink's subscribers get an event per
    /// call, in the same transaction. A spill file left from before is replayed first.
    pub fn start(
        store: Arc<dyn CallStore>,
        settings: WriterSettings,
        events: Arc<dyn EventSink>,
    ) -> std::io::Result<Self> {
        let lock = lock_spill(&settings.spill, &settings.lock_file())?;
        let (sender, receiver) = mpsc::channel(settings.queue.max(1));
        let stats = Arc::new(Stats::new());
        // Before the spill file is looked at: what a process that did not stop journaled.
        match journal::recover(&settings.spill) {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                "call log: {n} call record(s) recovered from the crash journal beside {} (belroute did not stop cleanly last time); they are written to the database first, skipping any it has",
                settings.spill.display()
            ),
            Err(e) => tracing::error!(
                "call log: cannot recover the crash journal beside {} ({e}); its files are left there",
                settings.spill.display()
            ),
        }
        let journal = Arc::new(Journal::new(&settings.spill));
        let spill_shared = Arc::new(SpillShared::new(settings.spill, settings.spill_limit));
        let spill = spill::start(spill_shared.clone(), stats.clone())?;
        if spill_shared.has_records() {
            tracing::info!(
                "call log: spill file(s) beside {} hold {} bytes of call records from before; they are written to the database first",
                spill_shared.active.display(),
                spill_shared.bytes.load(Ordering::Relaxed)
            );
        }
        let (give_up, give_up_seen) = watch::channel(false);
        let writer = Writer {
            store: store.clone(),
            events: events.clone(),
            stats: stats.clone(),
            want_replay: spill_shared.has_records(),
            shared: spill_shared.clone(),
            spill: spill.clone(),
            receiver,
            disconnected: false,
            give_up: give_up_seen,
            batch_size: settings.batch.max(1),
            migrated: false,
            replay: None,
            in_hand: None,
            set_aside: SetAside::default(),
            diverted: Vec::new(),
            acks: Vec::new(),
            closing: None,
            down_since: None,
            backoff: BACKOFF_FIRST,
            retry_at: None,
            read_failures: 0,
            barriers: Vec::new(),
        };
        tokio::spawn(writer.run());
        tokio::spawn(retire_journal(journal.clone(), sender.downgrade()));
        Ok(CallLog {
            store,
            events,
            sender,
            spill,
            spill_shared,
            stats,
            give_up,
            journal,
            _lock: lock,
        })
    }

    /// Queues a record; never waits. While the writer cannot write, or when the queue is
    /// full, the record goes to the spill file (through a queue of its own); when that is
    /// full too, the record is dropped, counted and said.
    pub fn record(&self, record: CallRecord) {
        let row = CallRow::from(&record);
        drop(record);
        self.journal.append(&journal::line(&row));
        self.stats.pending.fetch_add(1, Ordering::Relaxed);
        let record = Box::new(row);
        let record = if self.spill_shared.divert.load(Ordering::Relaxed) {
            record
        } else {
            match self.sender.try_send(Message::Record(record)) {
                Ok(()) => return,
                Err(TrySendError::Full(Message::Record(record)))
                | Err(TrySendError::Closed(Message::Record(record))) => record,
                Err(_) => return,
            }
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
    pub async fn report_agent(&self, uuid: &str, agent: &str) -> Result<AgentReported, StoreError> {
        self.flush(Duration::from_secs(2)).await;
        let now = crate::time::now_ms();
        for attempt in 0..=REPORT_RETRIES {
            if attempt > 0 {
                tokio::time::sleep(REPORT_RETRY_AFTER).await;
            }
            if self
                .store
                .report_agent(uuid, agent, now, self.events.as_ref())
                .await?
            {
                tracing::info!(uuid, agent, "agent reported");
                return Ok(AgentReported::Recorded);
            }
        }
        Ok(AgentReported::NoSuchCall)
    }

    /// Writes everything queued and spilled and stops the writer, waiting up to `wait` for
    /// the database; what it has not taken by then is put in the spill file (and on the
    /// disk), where the next start finds it.
    pub async fn close(&self, wait: Duration) {
        let waiting = self.waiting();
        let (ack, mut done) = oneshot::channel();
        let deadline = Instant::now() + wait;
        match tokio::time::timeout_at(deadline, self.sender.send(Message::Close(ack))).await {
            Ok(Ok(())) => {
                if tokio::time::timeout_at(deadline, &mut done).await.is_ok() {
                    tracing::info!("call log flushed ({waiting} record(s) were queued)");
                    self.journal_done();
                    return;
                }
            }
            Ok(Err(_)) => return,
            Err(_) => {
                // The queue is full and the writer busy: it takes the close once it gives up.
                let _ = self.give_up.send(true);
                let (ack, again) = oneshot::channel();
                let sent =
                    tokio::time::timeout(TO_DISK_WITHIN, self.sender.send(Message::Close(ack)))
                        .await;
                if !matches!(sent, Ok(Ok(()))) {
                    self.lost_at_stop();
                    return;
                }
                done = again;
            }
        }
        let _ = self.give_up.send(true);
        match tokio::time::timeout(TO_DISK_WITHIN, done).await {
            Ok(Ok(())) => {
                tracing::warn!(
                    "call log: the database did not take the waiting call records within {}; {} record(s) are kept in the spill file beside {} and written to the database at the next start",
                    humantime::format_duration(wait),
                    self.waiting(),
                    self.spill_shared.active.display()
                );
                self.journal_done();
            }
            _ => self.lost_at_stop(),
        }
    }

    /// Everything is in the database or the spill file: the crash journal is not needed.
    fn journal_done(&self) {
        if let Some(closed) = self.journal.rotate() {
            self.journal.retire(closed);
        }
    }

    fn lost_at_stop(&self) {
        tracing::error!(
            "call log: {} record(s) still in memory could not be put in the spill file {} within {}; they stay in the crash journal beside it, which the next start reads",
            self.queued(),
            self.spill_shared.active.display(),
            humantime::format_duration(TO_DISK_WITHIN)
        );
    }

    fn queued(&self) -> usize {
        usize::try_from(self.stats.pending.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
    }

    /// Records not yet in the database: in memory or in the spill files.
    fn waiting(&self) -> u64 {
        self.stats.pending.load(Ordering::Relaxed) + self.spill_shared.lines.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> CallLogStats {
        CallLogStats {
            written: self.stats.written.load(Ordering::Relaxed),
            dropped: self.stats.dropped.load(Ordering::Relaxed),
            spilled: self.stats.spilled.load(Ordering::Relaxed),
            replayed: self.stats.replayed.load(Ordering::Relaxed),
            set_aside: self.stats.set_aside.load(Ordering::Relaxed),
            queued: self.queued(),
            spill_records: self.spill_shared.lines.load(Ordering::Relaxed),
            spill_bytes: self.spill_shared.bytes.load(Ordering::Relaxed),
            database_up: self.stats.database_up.load(Ordering::Relaxed),
        }
    }
}

/// An agent report for a call not (yet) in the call log is tried again this often…
const REPORT_RETRIES: u32 = 5;
/// …this long apart.
const REPORT_RETRY_AFTER: Duration = Duration::from_millis(200);

/// Why one write did not go through.
type Failure = StoreError;

/// How one write went.
enum Attempt {
    /// `copied`: the rows were also handed to the spill file while the write took long.
    Written {
        inserted: u64,
        copied: Copied,
    },
    Failed {
        failure: Failure,
        copied: Copied,
    },
    /// The stop gave up waiting; the write was abandoned.
    GaveUp {
        copied: Copied,
    },
}

/// Whether the rows of a write were copied to the spill file while it took long; then the
/// spill thread answers how many of them it could not append.
type Copied = Option<oneshot::Receiver<u64>>;

/// The writer task's state.
struct Writer {
    store: Arc<dyn CallStore>,
    events: Arc<dyn EventSink>,
    stats: Arc<Stats>,
    shared: Arc<SpillShared>,
    spill: mpsc::Sender<SpillMessage>,
    receiver: mpsc::Receiver<Message>,
    /// The call log's handle is gone: nothing more will come.
    disconnected: bool,
    give_up: watch::Receiver<bool>,
    batch_size: usize,
    migrated: bool,
    /// The sealed spill file being replayed.
    replay: Option<Replay>,
    /// Rows read from the sealed file and not yet written.
    in_hand: Option<ReplayBatch>,
    /// Where records of the file being replayed that the database refuses go.
    set_aside: SetAside,
    /// Records taken from the queue while diverting, on their way to the spill file.
    diverted: Vec<CallRow>,
    /// Records may wait in the spill file: look when there is slack.
    want_replay: bool,
    acks: Vec<oneshot::Sender<()>>,
    closing: Option<oneshot::Sender<()>>,
    /// Since when the database is unavailable (a write failed).
    down_since: Option<Instant>,
    backoff: Duration,
    /// Not before this is the spill file tried again (the database is down, or it could not
    /// be read).
    retry_at: Option<Instant>,
    /// Failed reads of the sealed file in a row.
    read_failures: u32,
    /// Barriers taken: acknowledged once the records before them are written or spilled.
    barriers: Vec<oneshot::Sender<()>>,
}

impl Writer {
    async fn run(mut self) {
        let mut batch: Vec<CallRow> = Vec::with_capacity(self.batch_size);
        loop {
            if *self.give_up.borrow() {
                self.stop_now(batch).await;
                return;
            }
            while batch.len() < self.batch_size {
                match self.receiver.try_recv() {
                    Ok(message) => self.take(message, &mut batch),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.disconnected = true;
                        break;
                    }
                }
            }
            self.send_diverted().await;
            if !batch.is_empty() {
                let records = std::mem::replace(&mut batch, Vec::with_capacity(self.batch_size));
                self.write_live(records).await;
                self.pass_barriers().await;
                continue;
            }
            self.pass_barriers().await;
            let replay_pending =
                self.replay.is_some() || self.in_hand.is_some() || self.want_replay;
            if replay_pending {
                if self.retry_at.is_none_or(|at| Instant::now() >= at) {
                    self.replay_step().await;
                    continue;
                }
            } else {
                // Everything is written: flushes are done, a stop stops.
                for ack in self.acks.drain(..) {
                    let _ = ack.send(());
                }
                if let Some(close) = self.closing.take() {
                    self.to_disk().await;
                    let _ = close.send(());
                    return;
                }
                if self.disconnected {
                    return;
                }
            }
            // Nothing to do now: wait for a record, an append to the spill file, the next try
            // or a stop.
            let retry_at = self.retry_at.filter(|_| replay_pending);
            let mut give_up = self.give_up.clone();
            tokio::select! {
                message = self.receiver.recv(), if !self.disconnected => match message {
                    Some(message) => self.take(message, &mut batch),
                    None => self.disconnected = true,
                },
                () = self.shared.appended.notified(), if !replay_pending => self.want_replay = true,
                () = sleep_until(retry_at), if retry_at.is_some() => {}
                true = gave_up(&mut give_up) => {}
                else => return,
            }
        }
    }

    fn take(&mut self, message: Message, batch: &mut Vec<CallRow>) {
        match message {
            Message::Record(row) => {
                if self.shared.divert.load(Ordering::Relaxed) {
                    self.diverted.push(*row);
                } else {
                    batch.push(*row);
                }
            }
            Message::Flush(ack) => {
                // Records spilled before the flush are written before it is acknowledged.
                self.acks.push(ack);
                self.want_replay = true;
            }
            Message::Close(ack) => {
                self.closing = Some(ack);
                self.want_replay = true;
            }
            Message::Barrier(ack) => self.barriers.push(ack),
        }
    }

    /// Acknowledges the barriers taken: every record before them is written, or handed to the
    /// spill file — and on the disk once the spill thread has synced it.
    async fn pass_barriers(&mut self) {
        if self.barriers.is_empty() {
            return;
        }
        self.send_diverted().await;
        self.to_disk().await;
        for barrier in self.barriers.drain(..) {
            let _ = barrier.send(());
        }
    }

    /// Hands the records taken from the queue while diverting to the spill file.
    async fn send_diverted(&mut self) {
        if !self.diverted.is_empty() {
            let rows = std::mem::take(&mut self.diverted);
            self.to_spill(rows).await;
        }
    }

    /// Hands rows the writer holds (counted as pending) to the spill file.
    async fn to_spill(&self, rows: Vec<CallRow>) {
        let n = rows.len() as u64;
        self.shared.lines.fetch_add(n, Ordering::Relaxed);
        self.stats.pending.fetch_sub(n, Ordering::Relaxed);
        if self.spill.send(SpillMessage::Rows(rows)).await.is_err() {
            self.shared.lines_done(n);
            for _ in 0..n {
                self.stats.drop_record("the spill thread has stopped");
            }
        }
    }

    /// Hands a copy of rows still being written (counted as pending) to the spill file; the
    /// answer says how many it could not append.
    async fn copy_to_spill(&self, rows: Vec<CallRow>) -> oneshot::Receiver<u64> {
        let n = rows.len() as u64;
        self.shared.lines.fetch_add(n, Ordering::Relaxed);
        self.stats.pending.fetch_sub(n, Ordering::Relaxed);
        let (missed, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError(SpillMessage::Copy(_, missed))) =
            self.spill.send(SpillMessage::Copy(rows, missed)).await
        {
            self.shared.lines_done(n);
            let _ = missed.send(n);
        }
        answer
    }

    /// Asks the spill thread to put everything sent to it on the disk, and waits for it.
    async fn to_disk(&self) {
        let (ack, done) = oneshot::channel();
        if self.spill.send(SpillMessage::Sync(ack)).await.is_ok() {
            let _ = tokio::time::timeout(TO_DISK_WITHIN, done).await;
        }
    }

    /// The stop gave up waiting for the database: what is still in memory goes to the spill
    /// file, which is forced to the disk; the sealed file stays for the next start.
    async fn stop_now(&mut self, batch: Vec<CallRow>) {
        let mut rows = batch;
        while let Ok(message) = self.receiver.try_recv() {
            match message {
                Message::Record(row) => rows.push(*row),
                // Dropped: the flush reports that it did not complete.
                Message::Flush(_) => {}
                Message::Close(ack) => self.closing = Some(ack),
                Message::Barrier(ack) => self.barriers.push(ack),
            }
        }
        rows.append(&mut self.diverted);
        if !rows.is_empty() {
            self.to_spill(rows).await;
        }
        self.to_disk().await;
        for barrier in self.barriers.drain(..) {
            let _ = barrier.send(());
        }
        if let Some(close) = self.closing.take() {
            let _ = close.send(());
        }
    }

    /// Writes records taken from the queue; what cannot be written goes to the spill file.
    async fn write_live(&mut self, rows: Vec<CallRow>) {
        let n = rows.len() as u64;
        match self.attempt(&rows, true).await {
            Attempt::Written { inserted, copied } => {
                self.stats.written.fetch_add(inserted, Ordering::Relaxed);
                if copied.is_none() {
                    self.stats.pending.fetch_sub(n, Ordering::Relaxed);
                }
                self.up();
            }
            Attempt::Failed { failure, copied } => {
                match copied {
                    Some(missed) => self.copy_missed(missed).await,
                    None => self.to_spill(rows).await,
                }
                if failure.refused {
                    // Not the database: the replay writes these one by one and sets aside
                    // the ones it refuses.
                    self.want_replay = true;
                } else {
                    self.down(&failure.message);
                }
            }
            Attempt::GaveUp { copied } => match copied {
                Some(missed) => self.copy_missed(missed).await,
                None => self.to_spill(rows).await,
            },
        }
    }

    /// A write whose rows were copied to the spill file did not go through: the copies the
    /// spill file could not take are lost now, and counted so.
    async fn copy_missed(&self, missed: oneshot::Receiver<u64>) {
        let missed = tokio::time::timeout(TO_DISK_WITHIN, missed)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0);
        for _ in 0..missed {
            self.stats.drop_record(&format!(
                "neither the database nor the spill file {} could take them (storage.spill_limit, or the disk)",
                self.shared.active.display()
            ));
        }
    }

    /// One write of `rows` (`live`: from the queue; else replayed, skipping rows already in
    /// the database). When it takes longer than [`STALL`], new records go to the spill file
    /// meanwhile, and live rows are copied there too; a stop that gives up abandons it.
    async fn attempt(&mut self, rows: &[CallRow], live: bool) -> Attempt {
        let (store, events, migrate) = (self.store.clone(), self.events.clone(), !self.migrated);
        let write = async move {
            if migrate {
                store.migrate().await?;
            }
            store.insert_rows(rows, events.as_ref(), !live).await
        };
        tokio::pin!(write);
        let stall = tokio::time::sleep(STALL);
        tokio::pin!(stall);
        let mut give_up = self.give_up.clone();
        let (mut stalled, mut give_up_gone) = (false, false);
        let mut copied: Copied = None;
        let mut spare = Vec::new();
        loop {
            tokio::select! {
                biased;
                seen = gave_up(&mut give_up), if !give_up_gone => {
                    if seen {
                        return Attempt::GaveUp { copied };
                    }
                    give_up_gone = true;
                }
                result = &mut write => {
                    return match result {
                        Ok(inserted) => {
                            self.migrated = true;
                            Attempt::Written { inserted, copied }
                        }
                        Err(failure) => Attempt::Failed { failure, copied },
                    };
                }
                () = &mut stall, if !stalled => {
                    stalled = true;
                    self.shared.divert.store(true, Ordering::Relaxed);
                    tracing::debug!(
                        "call log: a write has taken over {}; new records go to the spill file meanwhile",
                        humantime::format_duration(STALL)
                    );
                    if live {
                        copied = Some(self.copy_to_spill(rows.to_vec()).await);
                    }
                }
                message = self.receiver.recv(), if stalled && !self.disconnected => {
                    match message {
                        Some(message) => self.take(message, &mut spare),
                        None => self.disconnected = true,
                    }
                    if !spare.is_empty() {
                        let rows = std::mem::take(&mut spare);
                        self.to_spill(rows).await;
                    }
                    self.send_diverted().await;
                }
            }
        }
    }

    /// The database took a write: records go through the queue again.
    fn up(&mut self) {
        self.shared.divert.store(false, Ordering::Relaxed);
        self.backoff = BACKOFF_FIRST;
        self.retry_at = None;
        if let Some(since) = self.down_since.take() {
            self.stats.database_up.store(true, Ordering::Relaxed);
            self.want_replay = true;
            tracing::info!(
                "call log database is back after {}; the records in the spill file are being written",
                humantime::format_duration(Duration::from_secs(since.elapsed().as_secs()))
            );
        }
    }

    /// A write failed: the database is unavailable. Records go to the spill file until a
    /// replay (tried after a growing wait) goes through.
    fn down(&mut self, error: &str) {
        self.shared.divert.store(true, Ordering::Relaxed);
        self.want_replay = true;
        if self.down_since.is_none() {
            self.down_since = Some(Instant::now());
            self.stats.database_up.store(false, Ordering::Relaxed);
            tracing::error!(
                "call log database unavailable ({} {error}); calls are still answered and their records go to the spill file {} until it is back",
                self.store.kind(),
                self.shared.active.display()
            );
        }
        let max = if self.closing.is_some() {
            BACKOFF_MAX_STOPPING
        } else {
            BACKOFF_MAX
        };
        self.retry_at = Some(Instant::now() + self.backoff.min(max));
        self.backoff = (self.backoff * 2).min(max);
    }

    /// Replays one batch from the sealed spill file (sealing the active one first if needed).
    async fn replay_step(&mut self) {
        let batch = match self.in_hand.take() {
            Some(batch) => batch,
            None => match self.read_batch().await {
                Some(batch) => batch,
                None => return,
            },
        };
        self.write_replayed(batch).await;
    }

    /// The next batch of the sealed file, opening it first; `None` when there is none or it
    /// cannot be read now.
    async fn read_batch(&mut self) -> Option<ReplayBatch> {
        if self.replay.is_none() {
            if !self.seal().await {
                self.want_replay = false;
                return None;
            }
            let sealed = self.shared.sealed.clone();
            match Replay::open(&sealed) {
                Ok(replay) => {
                    tracing::info!(
                        "call log: replaying {} ({} bytes) into the database",
                        replay.path.display(),
                        replay.len
                    );
                    self.replay = Some(replay);
                }
                Err(e) => {
                    let len = std::fs::metadata(&sealed).map(|m| m.len()).unwrap_or(0);
                    self.read_failed(&sealed, len, &e);
                    return None;
                }
            }
        }
        let mut replay = self.replay.take()?;
        let (stats, max) = (self.stats.clone(), self.batch_size);
        let read = tokio::task::spawn_blocking(move || {
            let batch = replay.next_batch(max, &stats);
            (replay, batch)
        })
        .await;
        match read {
            Ok((replay, Ok(batch))) => {
                self.read_failures = 0;
                self.replay = Some(replay);
                Some(batch)
            }
            Ok((replay, Err(e))) => {
                self.read_failed(&replay.path, replay.len, &e);
                None
            }
            Err(e) => {
                let sealed = self.shared.sealed.clone();
                let len = std::fs::metadata(&sealed).map(|m| m.len()).unwrap_or(0);
                self.read_failed(&sealed, len, &std::io::Error::other(e.to_string()));
                None
            }
        }
    }

    /// The sealed file could not be read: tried again from its start a little later (replay
    /// writes nothing twice); after [`READ_FAILURES`] in a row it is moved aside, so the
    /// records after it are not held up for ever.
    fn read_failed(&mut self, path: &Path, len: u64, error: &std::io::Error) {
        self.replay = None;
        self.read_failures += 1;
        if self.read_failures < READ_FAILURES {
            let wait = Duration::from_secs(u64::from(self.read_failures));
            tracing::warn!(
                "call log: cannot read the spill file {} ({error}); trying again in {}",
                path.display(),
                humantime::format_duration(wait)
            );
            self.retry_at = Some(Instant::now() + wait);
            return;
        }
        self.read_failures = 0;
        match spill::move_aside(path, &self.shared) {
            Ok(bad) => {
                self.shared.removed(len);
                tracing::error!(
                    "call log: the spill file {} could not be read {READ_FAILURES} times in a row ({error}); it is moved aside to {} so that the records after it are replayed: look at it, and append what is readable to the spill file to replay it",
                    path.display(),
                    bad.display()
                );
            }
            Err(e) => {
                tracing::error!(
                    "call log: the spill file {} cannot be read ({error}) nor moved aside ({e}); its records and the ones after it wait until belroute can read it: move it away by hand",
                    path.display()
                );
                self.want_replay = false;
            }
        }
    }

    /// Writes a batch read from the spill file; rows the database refuses are set aside one
    /// by one, and a database that is down keeps the batch in hand for the next try.
    async fn write_replayed(&mut self, mut batch: ReplayBatch) {
        if !batch.rows.is_empty() {
            match self.attempt(&batch.rows, false).await {
                Attempt::Written { inserted, .. } => {
                    self.stats.written.fetch_add(inserted, Ordering::Relaxed);
                    self.stats
                        .replayed
                        .fetch_add(batch.rows.len() as u64, Ordering::Relaxed);
                    self.up();
                }
                Attempt::Failed { failure, .. } if failure.refused => {
                    if !self.write_one_by_one(&mut batch).await {
                        self.in_hand = Some(batch);
                        return;
                    }
                }
                Attempt::Failed { failure, .. } => {
                    self.down(&failure.message);
                    self.in_hand = Some(batch);
                    return;
                }
                Attempt::GaveUp { .. } => {
                    self.in_hand = Some(batch);
                    return;
                }
            }
        }
        self.shared.lines_done(batch.lines);
        if batch.done {
            self.replayed_file();
        }
    }

    /// Writes the rows of a batch the database refused one at a time, setting aside each it
    /// refuses; `false` when the database became unavailable (or the stop gave up) first,
    /// with the rows not yet written left in `batch`.
    async fn write_one_by_one(&mut self, batch: &mut ReplayBatch) -> bool {
        let mut done = 0;
        let mut finished = true;
        while done < batch.rows.len() {
            let row = std::slice::from_ref(&batch.rows[done]);
            match self.attempt(row, false).await {
                Attempt::Written { inserted, .. } => {
                    self.stats.written.fetch_add(inserted, Ordering::Relaxed);
                    self.stats.replayed.fetch_add(1, Ordering::Relaxed);
                    self.up();
                }
                Attempt::Failed { failure, .. } if failure.refused => {
                    self.stats.set_aside.fetch_add(1, Ordering::Relaxed);
                    let from = self
                        .replay
                        .as_ref()
                        .map_or_else(|| self.shared.sealed.clone(), |r| r.path.clone());
                    self.set_aside
                        .keep(&batch.rows[done], &failure.message, &from, &self.shared);
                }
                Attempt::Failed { failure, .. } => {
                    self.down(&failure.message);
                    finished = false;
                    break;
                }
                Attempt::GaveUp { .. } => {
                    finished = false;
                    break;
                }
            }
            done += 1;
        }
        batch.rows.drain(..done);
        finished
    }

    /// Every record of the sealed file is in the database: it goes.
    fn replayed_file(&mut self) {
        let Some(replay) = self.replay.take() else {
            return;
        };
        self.set_aside = SetAside::default();
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

/// Whether a stop gave up waiting (`false` when the call log's handle is gone).
async fn gave_up(give_up: &mut watch::Receiver<bool>) -> bool {
    give_up.wait_for(|g| *g).await.is_ok()
}

/// Sleeps until `at` (for ever when `None`: the branch is disabled then anyway).
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Takes the spill file's lock (`belroute-spill.lock` beside it), so that two processes never
/// share a spill file and crash journal: the second would replay, and remove, the first's.
fn lock_spill(spill: &Path, path: &Path) -> std::io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| {
            std::io::Error::other(format!(
                "cannot open {} ({e}); set storage.spill to a writable place",
                path.display()
            ))
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(std::io::Error::other(format!(
            "another belroute uses the spill file {} (it holds {}): give each instance its own storage.spill (or working directory)",
            spill.display(),
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(std::io::Error::other(format!(
            "cannot lock {} ({e})",
            path.display()
        ))),
    }
}

/// Every [`journal::ROTATE_EVERY`]: a new journal generation, and the older ones removed
/// once the writer has the records they hold. Ends with the call log (it holds no sender of
/// its own, so the writer still sees the call log go).
async fn retire_journal(journal: Arc<Journal>, sender: mpsc::WeakSender<Message>) {
    let mut tick = tokio::time::interval(journal::ROTATE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(sender) = sender.upgrade() else {
            return;
        };
        let Some(closed) = journal.rotate() else {
            continue;
        };
        let (ack, done) = oneshot::channel();
        if sender.send(Message::Barrier(ack)).await.is_err() || done.await.is_err() {
            return;
        }
        journal.retire(closed);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! The writer on a paused clock, with the database in memory
    //! ([`crate::storage::memory::MemoryCallStore`]): batching, a stalled or failing database
    //! and the spill file's replay. The spill file is real (a thread of its own appends it), so
    //! the clock is held still while a blocking task runs and moved only by the test.

    use std::sync::Arc;
    use std::time::Duration;

    use belroute_engine::{Call, Decision, Reason};

    use super::*;
    use crate::storage::NoSubscribers;
    use crate::storage::memory::{Health, MemoryCallStore};

    /// Holds tokio's paused clock still (no auto-advance) until dropped: the spill thread's
    /// answers arrive in real time, and time moves only by `advance`.
    struct Hold(std::sync::mpsc::Sender<()>);

    impl Hold {
        fn new() -> Self {
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            tokio::task::spawn_blocking(move || {
                let _ = rx.recv();
            });
            Hold(tx)
        }
    }

    impl Drop for Hold {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }

    /// Lets the writer and the spill thread work until `done` (10 s of real time at most).
    async fn settle(what: &str, done: impl Fn() -> bool) {
        let started = std::time::Instant::now();
        while !done() {
            assert!(started.elapsed() < Duration::from_secs(10), "never: {what}");
            tokio::task::yield_now().await;
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn record(i: usize) -> CallRecord {
        let call = Call::from_pairs([
            ("uuid", format!("call-{i}")),
            ("caller_number", "0152026057".into()),
        ]);
        CallRecord {
            received_at: std::time::SystemTime::now(),
            call: Arc::new(call),
            decision: Decision {
                route: "receptie".into(),
                rule: None,
                reason: Reason::NoMatch,
                ruleset: "main".into(),
                version: "v1".into(),
                caller: Arc::default(),
                rules: Vec::new(),
                lookups: Vec::new(),
                micros: 100,
                panicked: false,
            },
        }
    }

    fn start(store: &Arc<MemoryCallStore>, dir: &Path, batch: usize) -> CallLog {
        let settings = WriterSettings {
            queue: 10_000,
            batch,
            spill: dir.join(spill::SPILL_FILE),
            spill_limit: 1 << 20,
        };
        CallLog::start(store.clone(), settings, Arc::new(NoSubscribers)).unwrap()
    }

    #[tokio::test]
    async fn two_call_logs_never_share_a_spill_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MemoryCallStore::default());
        let first = start(&store, dir.path(), 10);
        let settings = WriterSettings {
            spill: dir.path().join(spill::SPILL_FILE),
            ..WriterSettings::default()
        };
        let second = CallLog::start(store.clone(), settings.clone(), Arc::new(NoSubscribers));
        let error = second.err().unwrap().to_string();
        assert!(
            error.contains("another belroute uses the spill file")
                && error.contains("give each instance its own storage.spill"),
            "{error}"
        );
        // Once the first is gone, its spill file is free again.
        drop(first);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(CallLog::start(store, settings, Arc::new(NoSubscribers)).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn records_are_written_in_batches_of_at_most_the_batch_size() {
        let _hold = Hold::new();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MemoryCallStore::default());
        let log = start(&store, dir.path(), 100);
        for i in 0..250 {
            log.record(record(i));
        }
        assert!(log.flush(Duration::from_secs(2)).await, "flushed");
        assert_eq!(store.batches(), [100, 100, 50]);
        assert_eq!(store.uuids().len(), 250);
        assert_eq!(store.uuids()[249], "call-249", "in order");
        let stats = log.stats();
        assert_eq!((stats.written, stats.spilled, stats.queued), (250, 0, 0));
        assert!(stats.database_up);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_write_sends_records_to_the_spill_file_and_each_is_written_once() {
        let _hold = Hold::new();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MemoryCallStore::default());
        store.set_delay(Duration::from_secs(2));
        let log = start(&store, dir.path(), 500);
        for i in 0..10 {
            log.record(record(i));
        }
        settle("the write starts", || store.attempts() == 1).await;
        // Past STALL: the writer copies what it is writing to the spill file, and new records
        // go there at once instead of waiting in memory.
        tokio::time::advance(STALL + Duration::from_millis(10)).await;
        settle("the copy is on disk", || log.stats().spilled == 10).await;
        for i in 10..15 {
            log.record(record(i));
        }
        settle("new records spilled", || log.stats().spilled == 15).await;
        assert_eq!(log.stats().queued, 0, "nothing waits in memory");
        // The slow write goes through; the spill file is replayed, skipping the copies.
        store.set_delay(Duration::ZERO);
        tokio::time::advance(Duration::from_secs(2)).await;
        settle("everything written", || store.uuids().len() == 15).await;
        assert!(log.flush(Duration::from_secs(2)).await);
        let mut uuids = store.uuids();
        uuids.sort();
        uuids.dedup();
        assert_eq!(uuids.len(), 15, "each record once");
        let stats = log.stats();
        assert_eq!(
            (stats.written, stats.dropped, stats.spill_records),
            (15, 0, 0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn records_wait_in_the_spill_file_while_the_database_is_down() {
        let _hold = Hold::new();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MemoryCallStore::default());
        store.set_health(Health::Down);
        let log = start(&store, dir.path(), 500);
        for i in 0..20 {
            log.record(record(i));
        }
        settle("spilled", || log.stats().spilled == 20).await;
        let stats = log.stats();
        assert!(!stats.database_up);
        assert_eq!(
            (stats.written, stats.queued, stats.spill_records),
            (0, 0, 20)
        );
        // Tried again after 100 ms, doubling: still down, nothing lost.
        let tries = store.attempts();
        tokio::time::advance(Duration::from_millis(150)).await;
        settle("tried again", || store.attempts() > tries).await;
        assert!(store.uuids().is_empty());
        // Back: the next try replays the spill file.
        store.set_health(Health::Up);
        tokio::time::advance(Duration::from_secs(5)).await;
        settle("replayed", || store.uuids().len() == 20).await;
        let stats = log.stats();
        assert!(stats.database_up);
        assert_eq!((stats.written, stats.replayed, stats.dropped), (20, 20, 0));
        settle("the spill file is gone", || log.stats().spill_bytes == 0).await;
    }
}
