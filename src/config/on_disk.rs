//! belroute.yaml is read once, at start (with the `${VARIABLES}` it names). An operator who
//! edits it while belroute runs would otherwise see nothing happen: the running server notices
//! the file changed on disk, logs "belroute.yaml changed on disk; restart to apply" once per
//! change, and `/readyz` says so until the file is as it was read again (or belroute restarts).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

/// How often the file's metadata is looked at (its content only when that changed).
pub const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The configuration file a server was started with, and what has become of it on disk.
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
    /// SHA-256 of the text read at start.
    read: [u8; 32],
    changed: Mutex<Option<Changed>>,
}

/// The file on disk differs from the one read at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// When this was noticed.
    pub at: SystemTime,
    /// `true`: the file is gone.
    pub removed: bool,
}

/// What the file on disk is now, compared with what was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    AsRead,
    Changed,
    Removed,
}

impl ConfigFile {
    /// The file at `path`, whose text read at start was `text`.
    pub fn new(path: &Path, text: &str) -> Self {
        ConfigFile {
            path: path.to_path_buf(),
            read: Sha256::digest(text.as_bytes()).into(),
            changed: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether (and since when) the file on disk differs from the one read at start.
    pub fn changed(&self) -> Option<Changed> {
        self.changed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The sentence for the log and `/readyz`, while the file differs.
    pub fn message(&self) -> Option<String> {
        self.changed().map(|changed| {
            if changed.removed {
                format!(
                    "{} was removed from disk; this server keeps the configuration it read at start (a restart would use built-in defaults or fail)",
                    self.path.display()
                )
            } else {
                format!(
                    "{} changed on disk; restart to apply (belroute.yaml and the ${{VARIABLES}} it names are read at start; run `belroute check` first)",
                    self.path.display()
                )
            }
        })
    }

    fn look(&self) -> Seen {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                let now: [u8; 32] = Sha256::digest(&bytes).into();
                if now == self.read {
                    Seen::AsRead
                } else {
                    Seen::Changed
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Seen::Removed,
            // Unreadable for a moment (permissions being changed): nothing to say yet.
            Err(_) => Seen::AsRead,
        }
    }

    /// Records what the file is now; logs when that differs from what was said before.
    fn update(&self, seen: Seen) {
        let mut changed = self.changed.lock().unwrap_or_else(|p| p.into_inner());
        let before = changed.as_ref().map(|c| c.removed);
        let now = match seen {
            Seen::AsRead => None,
            Seen::Changed => Some(false),
            Seen::Removed => Some(true),
        };
        if before == now {
            return;
        }
        *changed = now.map(|removed| Changed {
            at: SystemTime::now(),
            removed,
        });
        drop(changed);
        match self.message() {
            Some(message) => tracing::warn!(file = %self.path.display(), "{message}"),
            None => tracing::info!(
                file = %self.path.display(),
                "{} is again as read at start; nothing to restart for",
                self.path.display()
            ),
        }
    }

    /// Looks at the file every [`LOOK_EVERY`] while this lives: its metadata, and its content
    /// when the metadata changed (an idle server reads nothing).
    pub fn watch(self: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut last: Option<(u64, Option<SystemTime>)> = None;
            loop {
                tokio::time::sleep(LOOK_EVERY).await;
                let Some(file) = weak.upgrade() else { return };
                let meta = std::fs::metadata(&file.path)
                    .ok()
                    .map(|m| (m.len(), m.modified().ok()));
                if meta.is_some() && meta == last {
                    continue;
                }
                // Two saves within the file system's time stamp granularity can leave the
                // metadata as it was: a file saved just now is read again next time.
                let settled = meta
                    .as_ref()
                    .and_then(|(_, modified)| *modified)
                    .is_some_and(|modified| {
                        modified.elapsed().is_ok_and(|age| age > 2 * LOOK_EVERY)
                    });
                last = if settled { meta } else { None };
                let checker = file.clone();
                let seen = tokio::task::spawn_blocking(move || checker.look())
                    .await
                    .unwrap_or(Seen::AsRead);
                file.update(seen);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_change_a_revert_and_a_removal_are_each_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("belroute.yaml");
        std::fs::write(&path, "timezone: Europe/Amsterdam\n").unwrap();
        let file = ConfigFile::new(&path, "timezone: Europe/Amsterdam\n");
        file.update(file.look());
        assert_eq!(file.changed(), None);
        assert_eq!(file.message(), None);

        std::fs::write(&path, "timezone: Europe/Brussels\n").unwrap();
        file.update(file.look());
        let changed = file.changed().unwrap();
        assert!(!changed.removed);
        assert!(
            file.message()
                .unwrap()
                .ends_with("belroute.yaml changed on disk; restart to apply (belroute.yaml and the ${VARIABLES} it names are read at start; run `belroute check` first)"),
        );

        std::fs::write(&path, "timezone: Europe/Amsterdam\n").unwrap();
        file.update(file.look());
        assert_eq!(file.changed(), None, "as read again");

        std::fs::remove_file(&path).unwrap();
        file.update(file.look());
        assert!(file.changed().unwrap().removed);
        assert!(file.message().unwrap().contains("was removed from disk"));
    }
}
