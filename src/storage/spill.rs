//! The spill file: where call records go when the writer's queue is full, so a flood (or a slow
//! database) loses nothing. One JSON line per record ([`CallRow`]), appended by one thread of
//! its own, never on the answer's path; the writer replays the file into the database when it
//! has slack, at start-up, and before it acknowledges a flush.
//!
//! Two files live side by side: the *active* one (`belroute-spill.jsonl`), only appended to,
//! and the *sealed* one (`belroute-spill.replaying.jsonl`), the active file renamed when the
//! writer starts to replay it. The sealed file is removed only after every record in it is
//! committed; a crash in between leaves it for the next start, and replay skips records
//! already in the database, so nothing is written twice.
//!
//! Both files together stay under `storage.spill_limit`; past it (or when the disk is full)
//! records are dropped, counted and logged at most every 10 s.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Notify, mpsc, oneshot};

use super::record::{CallRecord, CallRow, Stats};

/// Records on their way to the spill file. A flood that outruns even a local append drops.
pub(super) const SPILL_QUEUE: usize = 16_384;

/// The default file name, in the SQLite database's directory or the working directory.
pub const SPILL_FILE: &str = "belroute-spill.jsonl";

pub(super) enum SpillMessage {
    Record(Box<CallRecord>),
    /// Make the active file the sealed one (unless a sealed file waits already); answers
    /// whether there is a sealed file to replay.
    Seal(oneshot::Sender<bool>),
}

/// What the spill thread and the writer share.
#[derive(Debug)]
pub(super) struct SpillShared {
    pub active: PathBuf,
    pub sealed: PathBuf,
    pub limit: u64,
    /// Bytes in both files.
    pub bytes: AtomicU64,
    /// Records were appended: the writer may replay them when it has slack.
    pub appended: Notify,
}

impl SpillShared {
    pub fn new(active: PathBuf, limit: u64) -> Self {
        let sealed = sealed_path(&active);
        let size = |path: &Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let bytes = size(&active) + size(&sealed);
        SpillShared {
            active,
            sealed,
            limit,
            bytes: AtomicU64::new(bytes),
            appended: Notify::new(),
        }
    }

    /// Records wait on disk.
    pub fn has_records(&self) -> bool {
        self.bytes.load(Ordering::Relaxed) > 0
    }

    /// The sealed file of `len` bytes was replayed and removed.
    pub fn removed(&self, len: u64) {
        let _ = self
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(len))
            });
    }
}

/// `belroute-spill.jsonl` → `belroute-spill.replaying.jsonl`.
fn sealed_path(active: &Path) -> PathBuf {
    let stem = active
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "belroute-spill".into());
    let name = match active.extension() {
        Some(ext) => format!("{stem}.replaying.{}", ext.to_string_lossy()),
        None => format!("{stem}.replaying"),
    };
    active.with_file_name(name)
}

/// Starts the thread that appends spilled records; it ends when every sender is gone.
pub(super) fn start(
    shared: Arc<SpillShared>,
    stats: Arc<Stats>,
) -> std::io::Result<mpsc::Sender<SpillMessage>> {
    let (sender, receiver) = mpsc::channel(SPILL_QUEUE);
    std::thread::Builder::new()
        .name("belroute-spill".into())
        .spawn(move || spill_loop(receiver, &shared, &stats))?;
    Ok(sender)
}

fn spill_loop(mut receiver: mpsc::Receiver<SpillMessage>, shared: &SpillShared, stats: &Stats) {
    let mut file: Option<File> = None;
    while let Some(message) = receiver.blocking_recv() {
        let mut appended = handle(message, &mut file, shared, stats);
        while let Ok(message) = receiver.try_recv() {
            appended |= handle(message, &mut file, shared, stats);
        }
        if appended {
            shared.appended.notify_one();
        }
    }
}

/// Returns whether a record was appended.
fn handle(
    message: SpillMessage,
    file: &mut Option<File>,
    shared: &SpillShared,
    stats: &Stats,
) -> bool {
    match message {
        SpillMessage::Record(record) => {
            stats.pending.fetch_sub(1, Ordering::Relaxed);
            let row = CallRow::from(record.as_ref());
            let mut line = match serde_json::to_vec(&row) {
                Ok(line) => line,
                Err(e) => {
                    stats.drop_record(&format!("cannot serialise the record: {e}"));
                    return false;
                }
            };
            line.push(b'\n');
            let len = line.len() as u64;
            if shared.bytes.load(Ordering::Relaxed) + len > shared.limit {
                stats.drop_record(&format!(
                    "the spill file {} is full (storage.spill_limit, {} bytes); raise the limit or fix the database",
                    shared.active.display(),
                    shared.limit
                ));
                return false;
            }
            match append(file, &shared.active, &line) {
                Ok(()) => {
                    shared.bytes.fetch_add(len, Ordering::Relaxed);
                    stats.spilled.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(e) => {
                    // Closed, so the next record reopens (the disk may have room again).
                    *file = None;
                    stats.drop_record(&format!(
                        "cannot append to the spill file {} ({e}); free disk space there or set storage.spill to a writable place",
                        shared.active.display()
                    ));
                    false
                }
            }
        }
        SpillMessage::Seal(ack) => {
            *file = None;
            let _ = ack.send(seal(shared));
            false
        }
    }
}

/// Appends one whole line; a partial write is cut off again, so the file holds whole lines.
fn append(file: &mut Option<File>, path: &Path, line: &[u8]) -> std::io::Result<()> {
    if file.is_none() {
        *file = Some(OpenOptions::new().create(true).append(true).open(path)?);
    }
    let Some(open) = file.as_mut() else {
        return Ok(());
    };
    let before = open.seek(SeekFrom::End(0))?;
    if let Err(e) = open.write_all(line) {
        let _ = open.set_len(before);
        return Err(e);
    }
    Ok(())
}

/// Is there a sealed file to replay (made now from the active one, or left from before)?
fn seal(shared: &SpillShared) -> bool {
    if shared.sealed.exists() {
        return true;
    }
    match std::fs::metadata(&shared.active) {
        Ok(meta) if meta.len() > 0 => match std::fs::rename(&shared.active, &shared.sealed) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(
                    "call log: cannot rename the spill file {} to {} for replay ({e}); its records wait",
                    shared.active.display(),
                    shared.sealed.display()
                );
                false
            }
        },
        _ => false,
    }
}

/// The sealed file, read a batch at a time.
pub(super) struct Replay {
    pub path: PathBuf,
    pub len: u64,
    lines: std::io::Lines<BufReader<File>>,
    /// Line number of the next line (1-based), for messages.
    line: u64,
}

/// One batch read from the sealed file.
pub(super) struct ReplayBatch {
    pub rows: Vec<CallRow>,
    /// The end of the file was reached.
    pub done: bool,
}

impl Replay {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Replay {
            path: path.to_path_buf(),
            len,
            lines: BufReader::new(file).lines(),
            line: 1,
        })
    }

    /// Up to `max` records. A line that is not a record (cut off by a crash mid-write) is
    /// logged, counted as dropped and skipped.
    pub fn next_batch(&mut self, max: usize, stats: &Stats) -> std::io::Result<ReplayBatch> {
        let mut rows = Vec::with_capacity(max.min(1024));
        while rows.len() < max {
            let Some(line) = self.lines.next() else {
                return Ok(ReplayBatch { rows, done: true });
            };
            let line = line?;
            let number = self.line;
            self.line += 1;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<CallRow>(&line) {
                Ok(row) => rows.push(row),
                Err(e) => stats.drop_record(&format!(
                    "{}:{number}: not a call record ({e}); the line is skipped",
                    self.path.display()
                )),
            }
        }
        Ok(ReplayBatch { rows, done: false })
    }
}

/// Where the spill file goes when `storage.spill` is not set: beside a SQLite database file,
/// else in the working directory.
pub fn default_spill_path(database_url: &str) -> PathBuf {
    let file = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
        .map(|rest| rest.split('?').next().unwrap_or_default())
        .filter(|path| !path.is_empty() && !path.contains(":memory:"))
        .filter(|_| !database_url.contains("mode=memory"));
    match file.and_then(|f| Path::new(f).parent()) {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(SPILL_FILE),
        _ => PathBuf::from(SPILL_FILE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spill_file_goes_beside_a_sqlite_file() {
        assert_eq!(
            default_spill_path("sqlite:///var/lib/belroute/calls.db?mode=rwc"),
            PathBuf::from("/var/lib/belroute/belroute-spill.jsonl")
        );
        assert_eq!(
            default_spill_path("sqlite://data/belroute.db"),
            PathBuf::from("data/belroute-spill.jsonl")
        );
        assert_eq!(
            default_spill_path("sqlite://belroute.db"),
            PathBuf::from(SPILL_FILE)
        );
        assert_eq!(
            default_spill_path("sqlite::memory:"),
            PathBuf::from(SPILL_FILE)
        );
        assert_eq!(
            default_spill_path("postgres://u@db/belroute"),
            PathBuf::from(SPILL_FILE)
        );
        assert_eq!(
            sealed_path(Path::new("/x/belroute-spill.jsonl")),
            PathBuf::from("/x/belroute-spill.replaying.jsonl")
        );
    }
}
