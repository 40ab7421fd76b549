//! Hot reload: a saved rule file is live within a second.
//!
//! The whole directory is watched, not single files, because editors save by writing in place,
//! by writing a temporary file and renaming it, or (Kubernetes ConfigMaps) by swapping a
//! symlinked directory; the parent is watched too, so replacing the directory itself is seen.
//! A burst of events becomes one scan of the directory, which compares each file's metadata
//! with the version last read and loads only the files that changed ([`RuleStore::scan`]).
//!
//! Only events that can mean a change count: opening or reading a file (as belroute itself
//! does when it loads one) is ignored, so loading never triggers another scan. A slow safety
//! scan backs the watcher up on file systems that send no events (NFS, SMB); it too only
//! looks at metadata, so an idle server reads no rule file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use crate::catalog::RuleStore;

/// How long the directory must be quiet before a scan: editors write a file in several steps.
pub const DEBOUNCE: Duration = Duration::from_millis(100);
/// A directory that never goes quiet is still scanned this often.
pub const MAX_DEBOUNCE: Duration = Duration::from_millis(500);
/// Scan this often even without events (metadata only; files are read when it changed).
pub const POLL: Duration = Duration::from_secs(5);

/// Keeps the watch alive; dropping it stops watching.
#[derive(Debug)]
pub struct RulesWatcher {
    stop: mpsc::Sender<Signal>,
    thread: Option<thread::JoinHandle<()>>,
}

enum Signal {
    Changed,
    Stop,
}

impl Drop for RulesWatcher {
    fn drop(&mut self) {
        let _ = self.stop.send(Signal::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts watching `store`'s directory.
pub fn watch(store: Arc<RuleStore>) -> notify::Result<RulesWatcher> {
    watch_with(store, DEBOUNCE, POLL)
}

/// As [`watch`], with another quiet time before a scan and another safety scan interval.
pub fn watch_with(
    store: Arc<RuleStore>,
    debounce: Duration,
    poll: Duration,
) -> notify::Result<RulesWatcher> {
    let (tx, rx) = mpsc::channel();
    let events = tx.clone();
    let dir = absolute(store.dir());
    let relevant_dir = dir.clone();
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<Event>| {
        match result {
            Ok(event) if !may_change(&event) => {}
            // The parent directory's other entries are not ours.
            Ok(event)
                if !event.need_rescan()
                    && !event.paths.iter().any(|p| is_relevant(p, &relevant_dir)) => {}
            Ok(_) => {
                let _ = events.send(Signal::Changed);
            }
            Err(e) => {
                tracing::warn!("watching the rules directory: {e}");
                let _ = events.send(Signal::Changed);
            }
        }
    })?;
    let mut watched = Watched::default();
    watched.update(&mut watcher, &dir)?;

    let thread = thread::Builder::new()
        .name("rules-watch".into())
        .spawn(move || {
            loop {
                match rx.recv_timeout(poll) {
                    Ok(Signal::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                    Ok(Signal::Changed) => {
                        if !settle(&rx, debounce) {
                            return;
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                }
                if let Err(e) = watched.update(&mut watcher, &dir) {
                    tracing::warn!("re-watching {}: {e}", dir.display());
                }
                store.scan();
            }
        });
    let thread = thread.map_err(|e| {
        notify::Error::generic(&format!("cannot start the rules watcher thread: {e}"))
    })?;
    Ok(RulesWatcher {
        stop: tx,
        thread: Some(thread),
    })
}

/// Waits until no event came for `debounce` (at most [`MAX_DEBOUNCE`]); false on stop.
fn settle(rx: &mpsc::Receiver<Signal>, debounce: Duration) -> bool {
    let give_up = Instant::now() + MAX_DEBOUNCE.max(debounce);
    loop {
        let wait = debounce.min(give_up.saturating_duration_since(Instant::now()));
        match rx.recv_timeout(wait) {
            Ok(Signal::Changed) if Instant::now() < give_up => {}
            Ok(Signal::Changed) | Err(RecvTimeoutError::Timeout) => return true,
            Ok(Signal::Stop) | Err(RecvTimeoutError::Disconnected) => return false,
        }
    }
}

/// Can this event mean a rule file changed? Opening or reading one cannot; closing a file
/// that was open for writing can (the write is complete).
fn may_change(event: &Event) -> bool {
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

fn absolute(dir: &Path) -> PathBuf {
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

fn is_relevant(path: &Path, dir: &Path) -> bool {
    path.starts_with(dir) || std::fs::canonicalize(dir).is_ok_and(|real| path.starts_with(real))
}

/// What is being watched, so a swapped directory symlink can be followed to its new target.
#[derive(Default)]
struct Watched {
    target: Option<PathBuf>,
    parent: Option<PathBuf>,
}

impl Watched {
    fn update(&mut self, watcher: &mut RecommendedWatcher, dir: &Path) -> notify::Result<()> {
        if self.parent.is_none()
            && let Some(parent) = dir.parent().filter(|p| p.is_dir())
        {
            watcher.watch(parent, RecursiveMode::NonRecursive)?;
            self.parent = Some(parent.to_path_buf());
        }
        let target = std::fs::canonicalize(dir).ok();
        if target != self.target {
            if let Some(old) = self.target.take() {
                let _ = watcher.unwatch(&old);
            }
            if let Some(new) = &target {
                watcher.watch(new, RecursiveMode::Recursive)?;
                tracing::debug!("watching {} for rule changes", new.display());
            }
            self.target = target;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind};

    #[test]
    fn opening_and_reading_are_not_changes() {
        let event = |kind| Event::new(kind);
        assert!(!may_change(&event(EventKind::Access(AccessKind::Open(
            AccessMode::Any
        )))));
        assert!(!may_change(&event(EventKind::Access(AccessKind::Read))));
        assert!(!may_change(&event(EventKind::Access(AccessKind::Close(
            AccessMode::Read
        )))));
        assert!(may_change(&event(EventKind::Access(AccessKind::Close(
            AccessMode::Write
        )))));
        assert!(may_change(&event(EventKind::Create(CreateKind::File))));
        assert!(may_change(&event(EventKind::Modify(ModifyKind::Any))));
    }
}
