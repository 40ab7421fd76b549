//! The spill file: where call records go when the writer cannot take them now — its queue is
//! full (a flood), or the database is slow or down — so that nothing waits in memory for a
//! database that may never come back before a crash. One JSON line per record ([`CallRow`]),
//! appended by one thread of its own, never on the answer's path; the writer replays the file
//! into the database when it has slack, at start-up, and before it acknowledges a flush.
//!
//! Two files live side by side: the *active* one (`belroute-spill.jsonl`), only appended to,
//! and the *sealed* one (`belroute-spill.replaying.jsonl`), the active file renamed when the
//! writer starts to replay it. The sealed file is removed only after every record in it is
//! committed; a crash in between leaves it for the next start, and replay skips records
//! already in the database, so nothing is written twice.
//!
//! The replay reads lines as bytes: a line that is not a record (cut short by a crash, a torn
//! write, a changed byte) is skipped, counted and logged with its line number, and every other
//! line is still replayed. A file that cannot be read at all, again and again, and records the
//! database refuses for what they hold, are set aside beside it
//! (`belroute-spill.bad-<time>.jsonl`) instead of being retried for ever.
//!
//! Both files together stay under `storage.spill_limit`; past it (or when the disk is full)
//! records are dropped, counted and logged at most every 10 s.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::{Notify, mpsc, oneshot};

use super::record::{CallRow, Stats};

/// Messages on their way to the spill thread. A flood that outruns even a local append drops.
pub(super) const SPILL_QUEUE: usize = 16_384;

/// The default file name, in the SQLite database's directory or the working directory.
pub const SPILL_FILE: &str = "belroute-spill.jsonl";

/// The longest line the replay reads; a longer one is not a record (a record is a few KiB).
const MAX_LINE: usize = 16 << 20;

/// Lines that are not records are logged one by one up to this many per file, then counted.
const SKIPPED_LOGGED: u64 = 10;

pub(super) enum SpillMessage {
    /// A record the queue had no room for (or that came while the writer cannot write).
    Record(Box<CallRow>),
    /// Rows the writer holds but cannot write now (already counted in `lines`).
    Rows(Vec<CallRow>),
    /// A copy of rows the writer is still writing (counted in `lines`): rows that cannot be
    /// appended are not counted as dropped here but answered, since the write may still
    /// succeed.
    Copy(Vec<CallRow>, oneshot::Sender<u64>),
    /// Make the active file the sealed one (unless a sealed file waits already); answers
    /// whether there is a sealed file to replay.
    Seal(oneshot::Sender<bool>),
    /// Everything sent before this is in the file and on the disk (a stop waits for it).
    Sync(oneshot::Sender<()>),
}

/// What the spill thread, the writer and the call log's handle share.
#[derive(Debug)]
pub(super) struct SpillShared {
    pub active: PathBuf,
    pub sealed: PathBuf,
    pub limit: u64,
    /// Bytes in both files.
    pub bytes: AtomicU64,
    /// Records handed to the spill file and not yet replayed (lines of both files, and what is
    /// on its way there).
    pub lines: AtomicU64,
    /// The writer cannot write now (a write failed, or takes long): new records go to the
    /// spill file at once instead of waiting in memory.
    pub divert: AtomicBool,
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
            lines: AtomicU64::new(0),
            divert: AtomicBool::new(false),
            appended: Notify::new(),
        }
    }

    /// Records wait on disk.
    pub fn has_records(&self) -> bool {
        self.bytes.load(Ordering::Relaxed) > 0
    }

    /// The sealed file of `len` bytes was replayed and removed (or set aside).
    pub fn removed(&self, len: u64) {
        let _ = self
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(len))
            });
    }

    /// `n` lines left the spill files (replayed, skipped or set aside).
    pub fn lines_done(&self, n: u64) {
        let _ = self
            .lines
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| {
                Some(l.saturating_sub(n))
            });
    }

    /// A new name beside the active file for what is set aside:
    /// `belroute-spill.bad-20261201T101500Z.jsonl` (`-2`, `-3`… when taken).
    pub fn bad_path(&self) -> PathBuf {
        let stem = self
            .active
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "belroute-spill".into());
        let ext = self
            .active
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default();
        let time = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let mut n = 1;
        loop {
            let suffix = if n == 1 {
                String::new()
            } else {
                format!("-{n}")
            };
            let path = self
                .active
                .with_file_name(format!("{stem}.bad-{time}{suffix}{ext}"));
            if !path.exists() {
                return path;
            }
            n += 1;
        }
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
        .spawn(move || {
            // Records left from before count as waiting (for the stop's message and metrics).
            let left = count_lines(&shared.sealed) + count_lines(&shared.active);
            shared.lines.fetch_add(left, Ordering::Relaxed);
            spill_loop(receiver, &shared, &stats)
        })?;
    Ok(sender)
}

/// Lines in `path` (a last line without its newline counts); 0 when it cannot be read.
fn count_lines(path: &Path) -> u64 {
    let Ok(file) = File::open(path) else {
        return 0;
    };
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let chunk = match reader.fill_buf() {
            Ok([]) | Err(_) => break,
            Ok(chunk) => chunk,
        };
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        last = chunk[chunk.len() - 1];
        let n = chunk.len();
        reader.consume(n);
    }
    lines + u64::from(last != b'\n')
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
        SpillMessage::Record(row) => {
            // From waiting in memory to waiting in the spill file.
            shared.lines.fetch_add(1, Ordering::Relaxed);
            stats.pending.fetch_sub(1, Ordering::Relaxed);
            append_row(&row, file, shared, stats, true).is_ok()
        }
        SpillMessage::Rows(rows) => {
            let mut appended = false;
            for row in &rows {
                appended |= append_row(row, file, shared, stats, true).is_ok();
            }
            appended
        }
        SpillMessage::Copy(rows, missed) => {
            let mut appended = false;
            let mut not = 0;
            for row in &rows {
                match append_row(row, file, shared, stats, false) {
                    Ok(()) => appended = true,
                    Err(_) => not += 1,
                }
            }
            let _ = missed.send(not);
            appended
        }
        SpillMessage::Seal(ack) => {
            *file = None;
            let _ = ack.send(seal(shared));
            false
        }
        SpillMessage::Sync(ack) => {
            if let Some(open) = file.as_ref()
                && let Err(e) = open.sync_data()
            {
                tracing::warn!(
                    "call log: cannot force the spill file {} to the disk ({e}); a power cut now may lose its last records",
                    shared.active.display()
                );
            }
            let _ = ack.send(());
            false
        }
    }
}

/// Appends one row (counted in `lines` already). A row that cannot be appended is dropped
/// (counted and said) when `drops` is set, else only answered as `Err` with why.
fn append_row(
    row: &CallRow,
    file: &mut Option<File>,
    shared: &SpillShared,
    stats: &Stats,
    drops: bool,
) -> Result<(), String> {
    let failed = |why: String| {
        shared.lines_done(1);
        if drops {
            stats.drop_record(&why);
        }
        Err(why)
    };
    let mut line = match serde_json::to_vec(row) {
        Ok(line) => line,
        Err(e) => return failed(format!("cannot serialise the record: {e}")),
    };
    line.push(b'\n');
    let len = line.len() as u64;
    if shared.bytes.load(Ordering::Relaxed) + len > shared.limit {
        return failed(format!(
            "the spill file {} is full (storage.spill_limit, {} bytes); raise the limit or fix the database",
            shared.active.display(),
            shared.limit
        ));
    }
    match append(file, &shared.active, &line) {
        Ok(()) => {
            shared.bytes.fetch_add(len, Ordering::Relaxed);
            stats.spilled.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => {
            // Closed, so the next record reopens (the disk may have room again).
            *file = None;
            failed(format!(
                "cannot append to the spill file {} ({e}); free disk space there or set storage.spill to a writable place",
                shared.active.display()
            ))
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
    reader: BufReader<File>,
    /// Line number of the next line (1-based), for messages.
    line: u64,
    /// Lines that were not records.
    pub skipped: u64,
}

/// One batch read from the sealed file.
pub(super) struct ReplayBatch {
    pub rows: Vec<CallRow>,
    /// Lines this batch consumed (records and skipped lines).
    pub lines: u64,
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
            reader: BufReader::with_capacity(1 << 16, file),
            line: 1,
            skipped: 0,
        })
    }

    /// Up to `max` records. A line that is not a record (not UTF-8, not JSON, cut off by a
    /// crash mid-write, too long) is skipped, counted as dropped and logged with its line
    /// number; the lines after it are read as usual. Only an I/O error fails the batch.
    pub fn next_batch(&mut self, max: usize, stats: &Stats) -> std::io::Result<ReplayBatch> {
        let mut rows = Vec::with_capacity(max.min(1024));
        let mut lines = 0;
        let mut buf = Vec::new();
        while rows.len() < max {
            buf.clear();
            let Some(whole) = read_line(&mut self.reader, &mut buf)? else {
                self.finish();
                return Ok(ReplayBatch {
                    rows,
                    lines,
                    done: true,
                });
            };
            let number = self.line;
            self.line += 1;
            lines += 1;
            if whole && buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let parsed = if whole {
                serde_json::from_slice::<CallRow>(&buf).map_err(|e| e.to_string())
            } else {
                Err(format!("longer than {MAX_LINE} bytes"))
            };
            match parsed {
                Ok(row) => rows.push(row),
                Err(why) => self.skip(number, &why, stats),
            }
        }
        Ok(ReplayBatch {
            rows,
            lines,
            done: false,
        })
    }

    fn skip(&mut self, number: u64, why: &str, stats: &Stats) {
        self.skipped += 1;
        stats.dropped.fetch_add(1, Ordering::Relaxed);
        if self.skipped <= SKIPPED_LOGGED {
            tracing::warn!(
                "call log: {}:{number}: not a call record ({why}); the line is skipped, the lines after it are replayed{}",
                self.path.display(),
                if self.skipped == SKIPPED_LOGGED {
                    " (further such lines of this file are counted, not logged)"
                } else {
                    ""
                }
            );
        }
    }

    /// The summary of a file that had more lines that were not records than were logged.
    fn finish(&self) {
        if self.skipped > SKIPPED_LOGGED {
            tracing::warn!(
                "call log: {}: {} line(s) in all were not call records and were skipped",
                self.path.display(),
                self.skipped
            );
        }
    }
}

/// Records the database refuses for what they hold (it would refuse them again), kept in a
/// file beside the spill file so the replay goes on and nothing is lost: one such file per
/// replayed spill file.
#[derive(Default)]
pub(super) struct SetAside {
    file: Option<(PathBuf, File)>,
    count: u64,
}

impl SetAside {
    /// Keeps `row` (read from the spill file `from`) aside; logs the first few.
    pub fn keep(&mut self, row: &CallRow, why: &str, from: &Path, shared: &SpillShared) {
        self.count += 1;
        let uuid = belroute_engine::text::escape(&row.uuid);
        match self.append(row, shared) {
            Ok(bad) if self.count <= SKIPPED_LOGGED => tracing::error!(
                %uuid,
                "call log: the database refuses a record from {} ({why}); it is set aside in {}: look at it, correct it and append it to the spill file to replay it",
                from.display(),
                bad.display()
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(
                %uuid,
                "call log: the database refuses a record from {} ({why}) and it cannot be set aside ({e}); it is lost",
                from.display()
            ),
        }
    }

    fn append(&mut self, row: &CallRow, shared: &SpillShared) -> std::io::Result<PathBuf> {
        if self.file.is_none() {
            let path = shared.bad_path();
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            self.file = Some((path, file));
        }
        let Some((path, file)) = self.file.as_mut() else {
            return Err(std::io::Error::other("no file to set records aside in"));
        };
        let mut line = serde_json::to_vec(row).map_err(std::io::Error::other)?;
        line.push(b'\n');
        file.write_all(&line)?;
        Ok(path.clone())
    }
}

/// Reads one line (without its `\n`) into `buf`, at most [`MAX_LINE`] bytes of it: `None` at
/// the end of the file, `Some(false)` for a line that was longer (its rest is consumed).
fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
    let mut read_any = false;
    let mut whole = true;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(read_any.then_some(whole));
        }
        read_any = true;
        let (taken, end) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (&chunk[..i], Some(i + 1)),
            None => (chunk, None),
        };
        if whole && buf.len() + taken.len() <= MAX_LINE {
            buf.extend_from_slice(taken);
        } else {
            whole = false;
            buf.clear();
        }
        let consumed = end.unwrap_or(chunk.len());
        reader.consume(consumed);
        if end.is_some() {
            return Ok(Some(whole));
        }
    }
}

/// Moves a file whose replay keeps failing aside (`belroute-spill.bad-<time>.jsonl`), so the
/// spill files after it are replayed; returns where it went.
pub(super) fn move_aside(path: &Path, shared: &SpillShared) -> std::io::Result<PathBuf> {
    let bad = shared.bad_path();
    std::fs::rename(path, &bad)?;
    Ok(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sealed_and_bad_files_go_beside_the_spill_file() {
        assert_eq!(
            sealed_path(Path::new("/x/belroute-spill.jsonl")),
            PathBuf::from("/x/belroute-spill.replaying.jsonl")
        );
        let shared = SpillShared::new(PathBuf::from("/x/belroute-spill.jsonl"), 1 << 20);
        let bad = shared.bad_path().display().to_string();
        assert!(
            bad.starts_with("/x/belroute-spill.bad-") && bad.ends_with("Z.jsonl"),
            "{bad}"
        );
    }

    #[test]
    fn lines_are_read_as_bytes_and_bounded() {
        let mut text: Vec<u8> = b"one\n\xff\xfe two\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        text.extend(b"\nlast without newline");
        let mut reader = BufReader::with_capacity(7, &text[..]);
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        while let Some(whole) = read_line(&mut reader, &mut buf).unwrap() {
            lines.push((whole, buf.len().min(30), buf.first().copied()));
            buf.clear();
        }
        assert_eq!(
            lines,
            [
                (true, 3, Some(b'o')),
                (true, 6, Some(0xff)),
                (false, 0, None),
                (true, 20, Some(b'l')),
            ]
        );
        let dir = std::env::temp_dir().join(format!("belroute-count-{}", std::process::id()));
        std::fs::write(&dir, &text).unwrap();
        assert_eq!(count_lines(&dir), 4);
        std::fs::remove_file(&dir).unwrap();
    }
}
