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

/// At start, before the spill file is opened: the journal files a process that did not stop
/// left behind are appended to the spill file (whole lines only) and removed. Returns how many
/// records were recovered.
pub fn recover(spill: &Path) -> std::io::Result<u64> {
    let left = files(spill);
    if left.is_empty() {
        return Ok(0);
    }
    let mut out = OpenOptions::new().create(true).append(true).open(spill)?;
    let mut records = 0;
    for (_, path) in &left {
        let text = std::fs::read(path)?;
        // A line cut short by the crash is not a record: only whole lines are kept.
        let whole = text
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(&text[..0], |end| &text[..=end]);
        records += whole.iter().filter(|b| **b == b'\n').count() as u64;
        out.write_all(whole)?;
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
        if self.bytes.load(Ordering::Relaxed) + line.len() as u64 > MAX_BYTES {
            if !self.full_said.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "call log: the crash journal beside {} holds {} MiB (the database has not taken records for a while); new records are not journaled until it has, so a crash now could lose the last ones",
                    self.spill.display(),
                    MAX_BYTES >> 20
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
        if self.bytes.load(Ordering::Relaxed) < MAX_BYTES / 2 {
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

    #[test]
    fn generations_rotate_retire_and_what_is_left_is_recovered_whole() {
        let dir = tempfile::tempdir().unwrap();
        let spill = dir.path().join("belroute-spill.jsonl");
        let journal = Journal::new(&spill);
        assert_eq!(journal.rotate(), None, "nothing to rotate");
        journal.append(b"{\"a\":1}\n");
        journal.append(b"{\"a\":2}\n");
        assert_eq!(journal.rotate(), Some(1));
        journal.append(b"{\"a\":3}\n");
        assert!(path_of(&spill, 1).exists() && path_of(&spill, 2).exists());
        journal.retire(1);
        assert!(!path_of(&spill, 1).exists());
        assert!(path_of(&spill, 2).exists());
        // A crash: generation 2 and a torn last line in generation 3 are left.
        drop(journal);
        std::fs::write(path_of(&spill, 3), b"{\"a\":4}\n{\"a\":").unwrap();
        assert_eq!(recover(&spill).unwrap(), 2);
        assert_eq!(
            std::fs::read_to_string(&spill).unwrap(),
            "{\"a\":3}\n{\"a\":4}\n"
        );
        assert!(files(&spill).is_empty());
        // A new journal starts after what it found.
        std::fs::write(path_of(&spill, 9), b"").unwrap();
        assert_eq!(Journal::new(&spill).generation(), 10);
    }
}
