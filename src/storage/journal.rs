//! The crash journal: every answered call's record is appended here — one `write`, no `fsync`
//! — before its answer leaves, so a process that dies at any moment (SIGKILL, the OOM killer,
//! an abort) loses no answered call's record: the operating system holds what was written,
//! and the next start moves what it finds into the spill file, whose replay skips records the
//! database has already. A power cut can still lose the last seconds (the operating system
//! writes the files out within about 30 s); that is what the spill file's `fsync` at a stop is
//! for.
//!
//! The journal is a few files, one per generation (`belroute-spill.journal-7.jsonl`). Every
//! second the current one is closed and a new one opened; once the writer says everything
//! recorded before that is in the database or in the spill file (a barrier through its
//! queue), the older files are removed. While the database is down the files wait, up to
//! [`MAX_BYTES`]; past it records are journaled no more (said once) until they are removed.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::record::CallRow;

/// How often a new generation starts (and older ones may go).
pub const ROTATE_EVERY: Duration = Duration::from_secs(1);
/// The journal files together hold at most this much.
pub const MAX_BYTES: u64 = 256 << 20;

struct Current {
    file: Option<File>,
    generation: u64,
    /// Records appended to this generation.
    records: u64,
}

/// The journal of one call log.
pub struct Journal {
    /// The spill file it lives beside; its files are named after it.
    spill: PathBuf,
    current: Mutex<Current>,
    bytes: AtomicU64,
    /// [`MAX_BYTES`], but for tests.
    limit: u64,
    full_said: AtomicBool,
    failed_said: AtomicBool,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("spill", &self.spill)
            .finish()
    }
}

/// `belroute-spill.jsonl`, 7 → `belroute-spill.journal-7.jsonl`.
fn path_of(spill: &Path, generation: u64) -> PathBuf {
    let stem = spill
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "belroute-spill".into());
    spill.with_file_name(format!("{stem}.journal-{generation}.jsonl"))
}

/// The journal files beside `spill`, by generation.
fn files(spill: &Path) -> Vec<(u64, PathBuf)> {
    let stem = spill
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "belroute-spill".into());
    let prefix = format!("{stem}.journal-");
    let dir = match spill.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut found: Vec<(u64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let generation = name
                .strip_prefix(&prefix)?
                .strip_suffix(".jsonl")?
                .parse()
                .ok()?;
            Some((generation, entry.path()))
        })
        .collect();
    found.sort();
    found
}

/// A record's journal line: its row as JSON, with the call data and the trace (JSON already)
/// written as they are rather than escaped into strings as the spill file has them — the
/// escaping cost more than the rest of the line. Recovery turns lines back into rows.
pub fn line(row: &CallRow) -> Vec<u8> {
    fn text(out: &mut Vec<u8>, key: &str, value: &str) {
        out.extend_from_slice(key.as_bytes());
        // Writing a str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, value);
    }
    let mut out = Vec::with_capacity(row.call_data.len() + row.trace.len() + 256);
    text(&mut out, "{\"uuid\":", &row.uuid);
    let _ = write!(out, ",\"received_at\":{}", row.received_at);
    text(&mut out, ",\"ruleset\":", &row.ruleset);
    text(&mut out, ",\"version\":", &row.version);
    text(&mut out, ",\"caller_raw\":", &row.caller_raw);
    text(&mut out, ",\"caller_e164\":", &row.caller_e164);
    let _ = write!(out, ",\"caller_anonymous\":{}", row.caller_anonymous);
    text(&mut out, ",\"route\":", &row.route);
    match &row.rule {
        Some(rule) => text(&mut out, ",\"rule\":", rule),
        None => out.extend_from_slice(b",\"rule\":null"),
    }
    text(&mut out, ",\"reason\":", &row.reason);
    let _ = write!(out, ",\"micros\":{}", row.micros);
    out.extend_from_slice(b",\"call_data\":");
    out.extend_from_slice(row.call_data.as_bytes());
    out.extend_from_slice(b",\"trace\":");
    out.extend_from_slice(row.trace.as_bytes());
    out.extend_from_slice(b"}\n");
    out
}

/// A journal line read back.
#[derive(Deserialize)]
struct Line {
    uuid: String,
    received_at: i64,
    ruleset: String,
    version: String,
    caller_raw: String,
    caller_e164: String,
    #[serde(default)]
    caller_anonymous: bool,
    route: String,
    rule: Option<String>,
    reason: String,
    micros: i64,
    call_data: Box<RawValue>,
    trace: Box<RawValue>,
}

/// The spill file's line for a journal line; `None` for what is not a record.
fn spill_line(journal_line: &[u8]) -> Option<Vec<u8>> {
    let l: Line = serde_json::from_slice(journal_line).ok()?;
    let row = CallRow {
        uuid: l.uuid,
        received_at: l.received_at,
        ruleset: l.ruleset,
        version: l.version,
        caller_raw: l.caller_raw,
        caller_e164: l.caller_e164,
        caller_anonymous: l.caller_anonymous,
        route: l.route,
        rule: l.rule,
        reason: l.reason,
        micros: l.micros,
        call_data: l.call_data.get().to_string(),
        trace: l.trace.get().to_string(),
    };
    let mut out = serde_json::to_vec(&row).ok()?;
    out.push(b'\n');
    Some(out)
}

/// At start, before the spill file is opened: the journal files a process that did not stop
/// left behind are appended to the spill file as its lines and removed (a line cut short by
/// the crash is not a record, and is left out). Returns how many records were recovered.
pub fn recover(spill: &Path) -> std::io::Result<u64> {
    let left = files(spill);
    if left.is_empty() {
        return Ok(0);
    }
    let mut out = OpenOptions::new().create(true).append(true).open(spill)?;
    let mut records = 0;
    for (_, path) in &left {
        let text = std::fs::read(path)?;
        for journal_line in text.split(|b| *b == b'\n') {
            if let Some(line) = spill_line(journal_line) {
                out.write_all(&line)?;
                records += 1;
            }
        }
    }
    out.sync_all()?;
    for (_, path) in &left {
        std::fs::remove_file(path)?;
    }
    Ok(records)
}

impl Journal {
    /// A journal beside `spill`, starting after any generation left there.
    pub fn new(spill: &Path) -> Journal {
        let next = files(spill).last().map_or(1, |(g, _)| g + 1);
        Journal {
            spill: spill.to_path_buf(),
            current: Mutex::new(Current {
                file: None,
                generation: next,
                records: 0,
            }),
            bytes: AtomicU64::new(0),
            limit: MAX_BYTES,
            full_said: AtomicBool::new(false),
            failed_said: AtomicBool::new(false),
        }
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends one record's line. A journal that is full or cannot be written is said once;
    /// the record still goes to the database as always.
    pub fn append(&self, line: &[u8]) {
        if self.bytes.load(Ordering::Relaxed) + line.len() as u64 > self.limit {
            if !self.full_said.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "call log: the crash journal beside {} holds {} MiB (the database has not taken records for a while); new records are not journaled until it has, so a crash now could lose the last ones",
                    self.spill.display(),
                    self.limit >> 20
                );
            }
            return;
        }
        let mut current = self.current();
        let generation = current.generation;
        if current.file.is_none() {
            match OpenOptions::new()
                .create(true)
                .append(true)
                .open(path_of(&self.spill, generation))
            {
                Ok(file) => current.file = Some(file),
                Err(e) => return self.failed(&e),
            }
        }
        let Some(file) = current.file.as_mut() else {
            return;
        };
        match file.write_all(line) {
            Ok(()) => {
                current.records += 1;
                self.bytes.fetch_add(line.len() as u64, Ordering::Relaxed);
                self.failed_said.store(false, Ordering::Relaxed);
            }
            Err(e) => {
                current.file = None;
                self.failed(&e);
            }
        }
    }

    fn failed(&self, e: &std::io::Error) {
        if !self.failed_said.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "call log: cannot write the crash journal beside {} ({e}); calls are still answered and recorded, but a crash could lose the last ones: make the spill file's directory writable",
                self.spill.display()
            );
        }
    }

    /// Starts a new generation if the current one has records; returns the last generation
    /// closed (every record of it and before is older than now).
    pub fn rotate(&self) -> Option<u64> {
        let mut current = self.current();
        if current.records == 0 {
            return None;
        }
        let closed = current.generation;
        *current = Current {
            file: None,
            generation: closed + 1,
            records: 0,
        };
        Some(closed)
    }

    /// Removes the files of `generation` and before: their records are in the database or the
    /// spill file now.
    pub fn retire(&self, generation: u64) {
        for (g, path) in files(&self.spill) {
            if g > generation {
                break;
            }
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if std::fs::remove_file(&path).is_ok() {
                let _ = self
                    .bytes
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                        Some(b.saturating_sub(len))
                    });
            }
        }
        if self.bytes.load(Ordering::Relaxed) < self.limit / 2 {
            self.full_said.store(false, Ordering::Relaxed);
        }
    }

    /// The generation being written now.
    #[cfg(test)]
    pub fn generation(&self) -> u64 {
        self.current().generation
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn row(n: i64) -> CallRow {
        CallRow {
            uuid: format!("call-{n}"),
            received_at: 1_765_000_000_000 + n,
            ruleset: "main".into(),
            version: "abc".into(),
            caller_raw: "31612345678".into(),
            caller_e164: "+31612345678".into(),
            caller_anonymous: false,
            route: "receptie".into(),
            rule: (n % 2 == 0).then(|| "Quote \" and \\ and\nline".into()),
            reason: "matched".into(),
            micros: 12,
            call_data: r#"{"caller_number":"31612345678","x":"a\"b"}"#.into(),
            trace: r#"{"caller":{"raw":"31612345678"},"rules":[]}"#.into(),
        }
    }

    #[test]
    fn a_full_journal_takes_no_more_until_retired() {
        let dir = tempfile::tempdir().unwrap();
        let spill = dir.path().join("belroute-spill.jsonl");
        let one = line(&row(1));
        let mut journal = Journal::new(&spill);
        journal.limit = one.len() as u64 * 2;
        for _ in 0..5 {
            journal.append(&one);
        }
        let held = std::fs::metadata(path_of(&spill, 1)).unwrap().len();
        assert_eq!(held, one.len() as u64 * 2, "two lines, then full");
        // Retired (the writer has them): room again.
        let closed = journal.rotate().unwrap();
        journal.retire(closed);
        journal.append(&one);
        assert_eq!(
            std::fs::metadata(path_of(&spill, 2)).unwrap().len(),
            one.len() as u64
        );
    }

    #[test]
    fn a_journal_line_is_the_row_again() {
        for n in 0..2 {
            let line = line(&row(n));
            let spilled = spill_line(&line[..line.len() - 1]).unwrap();
            let back: CallRow = serde_json::from_slice(&spilled).unwrap();
            assert_eq!(back, row(n));
            // The JSON columns are written as JSON, not escaped into strings.
            let text = String::from_utf8(line).unwrap();
            assert!(text.contains(r#","call_data":{"caller_number""#), "{text}");
        }
        assert!(spill_line(b"{\"uuid\":").is_none());
    }

    #[test]
    fn generations_rotate_retire_and_what_is_left_is_recovered_whole() {
        let dir = tempfile::tempdir().unwrap();
        let spill = dir.path().join("belroute-spill.jsonl");
        let journal = Journal::new(&spill);
        assert_eq!(journal.rotate(), None, "nothing to rotate");
        journal.append(&line(&row(1)));
        journal.append(&line(&row(2)));
        assert_eq!(journal.rotate(), Some(1));
        journal.append(&line(&row(3)));
        assert!(path_of(&spill, 1).exists() && path_of(&spill, 2).exists());
        journal.retire(1);
        assert!(!path_of(&spill, 1).exists());
        assert!(path_of(&spill, 2).exists());
        // A crash: generation 2 and a torn last line in generation 3 are left.
        drop(journal);
        let mut torn = line(&row(4));
        torn.extend_from_slice(br#"{"uuid":"call-5","rec"#);
        std::fs::write(path_of(&spill, 3), torn).unwrap();
        assert_eq!(recover(&spill).unwrap(), 2);
        let spilled: Vec<CallRow> = std::fs::read_to_string(&spill)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(spilled, vec![row(3), row(4)]);
        assert!(files(&spill).is_empty());
        // A new journal starts after what it found.
        std::fs::write(path_of(&spill, 9), b"").unwrap();
        assert_eq!(Journal::new(&spill).generation(), 10);
    }
}
