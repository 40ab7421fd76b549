//! Connections and files: the file limit is raised at start, connections are capped so that
//! descriptors stay in reserve for the call log, the spill file and plugins, and every open
//! connection is counted (`/readyz`, `/metrics`).

use prometheus_client::metrics::gauge::Gauge;

use crate::config::Connections;

/// The process's file descriptor limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimit {
    /// What the process may open now; `None`: unlimited.
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// Where the soft limit is raised to when the hard limit is unlimited.
const UNLIMITED_HARD: u64 = 1 << 20;

/// The file limit now.
#[cfg(unix)]
pub fn file_limit() -> FileLimit {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    FileLimit {
        soft: limit.current,
        hard: limit.maximum,
    }
}

#[cfg(not(unix))]
pub fn file_limit() -> FileLimit {
    FileLimit {
        soft: None,
        hard: None,
    }
}

/// Raises the soft file limit to the hard one (a service manager's default soft limit, 1024,
/// is far below what a server with many connections needs), and says what it did.
#[cfg(unix)]
pub fn raise_file_limit() -> FileLimit {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let before = file_limit();
    let target = before.hard.unwrap_or(UNLIMITED_HARD);
    if before.soft.is_none_or(|soft| soft >= target) {
        return before;
    }
    let raised = Rlimit {
        current: Some(target),
        maximum: before.hard,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => {
            let after = file_limit();
            tracing::info!(
                "file limit raised from {} to {} (the hard limit)",
                shown(before.soft),
                shown(after.soft)
            );
            after
        }
        Err(e) => {
            tracing::warn!(
                "cannot raise the file limit from {} to {} ({e}); connections are capped to fit it: raise LimitNOFILE (systemd) or `ulimit -n`",
                shown(before.soft),
                target
            );
            before
        }
    }
}

#[cfg(not(unix))]
pub fn raise_file_limit() -> FileLimit {
    file_limit()
}

fn shown(limit: Option<u64>) -> String {
    limit.map_or_else(|| "unlimited".into(), |n| n.to_string())
}

/// Connections open at once (all workers): `hooks.connections.max`, lowered so that
/// `hooks.connections.reserve_files` descriptors stay free under the file limit.
pub fn max_connections(settings: &Connections, limit: FileLimit) -> usize {
    let budget = limit.soft.map_or(u64::MAX, |soft| {
        soft.saturating_sub(settings.reserve_files).max(16)
    });
    let budget = usize::try_from(budget).unwrap_or(usize::MAX);
    if budget < settings.max {
        tracing::warn!(
            "at most {budget} connections, not hooks.connections.max ({}): the file limit is {} and {} descriptors are kept for the call log, the spill file and plugins (hooks.connections.reserve_files); raise LimitNOFILE (systemd) or `ulimit -n`",
            settings.max,
            shown(limit.soft),
            settings.reserve_files
        );
    }
    settings.max.min(budget)
}

/// One open connection, counted while its data lives (actix-web drops a connection's
/// extensions when the connection ends).
pub(super) struct Open(Gauge);

impl Open {
    pub fn new(open: &Gauge) -> Self {
        open.inc();
        Open(open.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_leave_descriptors_in_reserve() {
        let settings = Connections::default();
        let limit = |soft| FileLimit {
            soft: Some(soft),
            hard: Some(soft),
        };
        assert_eq!(max_connections(&settings, limit(1024)), 768);
        assert_eq!(max_connections(&settings, limit(65_536)), 10_000);
        assert_eq!(max_connections(&settings, limit(100)), 16);
        let unlimited = FileLimit {
            soft: None,
            hard: None,
        };
        assert_eq!(max_connections(&settings, unlimited), 10_000);
    }
}
