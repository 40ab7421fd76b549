//! Hot reload: a saved rule file is live within a second.
//!
//! The whole directory is watched, not single files, because editors save by writing in place,
//! by writing a temporary file and renaming it, or (Kubernetes ConfigMaps) by swapping a
//! symlinked directory; the parent is watched too, so replacing the directory itself is seen.
//! Any event triggers a rescan of the directory, which only recompiles files whose content
//! changed. A slow poll backs the watcher up on file systems that send no events (NFS, SMB).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};

use crate::catalog::RuleStore;

/// How long the directory must be quiet before a rescan: editors write a file in several steps.
pub const DEBOUNCE: Duration = Duration::from_millis(100);
/// Rescan this often even without events.
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

pub fn watch_with(
    store: Arc<RuleStore>,
    debounce: Duration,
    poll: Duration,
) -> notify::Result<RulesWatcher> {
    let (tx, rx) = mpsc::channel();
    let events = tx.clone();
    let dir = absolute(store.dir());
    let relevant_dir = dir.clone();
    let mut debouncer = new_debouncer(debounce, move |result: DebounceEventResult| match result {
        Ok(batch) => {
            // The parent directory's other entries are not ours.
            if batch.iter().any(|e| is_relevant(&e.path, &relevant_dir)) {
                let _ = events.send(Signal::Changed);
            }
        }
        Err(e) => tracing::warn!("watching the rules directory: {e}"),
    })?;
    let mut watched = Watched::default();
    watched.update(&mut debouncer, &dir)?;

    let thread = thread::Builder::new()
        .name("rules-watch".into())
        .spawn(move || {
            loop {
                match rx.recv_timeout(poll) {
                    Ok(Signal::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                    Ok(Signal::Changed) | Err(RecvTimeoutError::Timeout) => {
                        // Drain a burst of signals into one rescan.
                        while let Ok(signal) = rx.try_recv() {
                            if matches!(signal, Signal::Stop) {
                                return;
                            }
                        }
                        if let Err(e) = watched.update(&mut debouncer, &dir) {
                            tracing::warn!("re-watching {}: {e}", dir.display());
                        }
                        store.rescan();
                    }
                }
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
    fn update(
        &mut self,
        debouncer: &mut Debouncer<RecommendedWatcher>,
        dir: &Path,
    ) -> notify::Result<()> {
        let watcher = debouncer.watcher();
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
