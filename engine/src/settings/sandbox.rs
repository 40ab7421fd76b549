//! `sandbox:` in belroute.yaml: bounds on what one rule may do, and the worker processes that
//! run the rules the checker cannot prove bounded.
//!
//! In Rhai a limit of `0` means "no limit", so every limit here has a minimum above 0 and a
//! maximum that keeps one rule from holding a thread or allocating without end.

use std::time::Duration;

use crate::sandbox::{PoolSettings, QuarantinePolicy};
use crate::script::Limits;

use super::{Range, Section};

/// Everything under `sandbox:`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SandboxSettings {
    pub limits: Limits,
    pub pool: PoolSettings,
}

impl SandboxSettings {
    pub const KEYS: [&'static str; 13] = [
        "max_operations",
        "rule_time",
        "max_string_size",
        "max_array_size",
        "max_map_size",
        "max_call_levels",
        "max_expr_depth",
        "workers",
        "threads",
        "share",
        "worker_memory",
        "quarantine_after",
        "quarantine_window",
    ];

    pub fn read(section: &mut Section<'_, '_, '_>) -> Self {
        SandboxSettings {
            limits: Limits::read(section),
            pool: PoolSettings::read(section),
        }
    }
}

impl PoolSettings {
    /// Worker processes: enough for every CPU, not so many that slow rules crowd out the
    /// server's own threads.
    pub const WORKERS: Range<usize> = Range::new(1, 64);
    pub const SHARE: Range<usize> = Range::new(1, 64);
    /// A worker's address space: below 64 MiB the worker itself does not start (measured: an
    /// idle worker maps about 30 MiB); 16 GiB is more than any rule needs.
    pub const WORKER_MEMORY: Range<u64> = Range::new(64 << 20, 16 << 30);
    pub const QUARANTINE_AFTER: Range<u32> = Range::new(1, 1_000);
    pub const QUARANTINE_WINDOW: Range<Duration> =
        Range::new(Duration::from_secs(1), Duration::from_secs(86_400));

    /// Reads `workers` (`threads`, its name before worker processes, is read the same way),
    /// `share`, `worker_memory` and the quarantine; a share larger than the pool is refused.
    pub fn read(section: &mut Section<'_, '_, '_>) -> Self {
        let default = PoolSettings::default();
        let key = if section.contains("workers") || !section.contains("threads") {
            "workers"
        } else {
            "threads"
        };
        let workers = section.count(key, default.workers, Self::WORKERS);
        let share = section.count(
            "share",
            default.share.min(workers),
            Self::SHARE.because("evaluations of one rule set in the pool at once"),
        );
        if share > workers {
            section.error(
                "share",
                format!(
                    "is {share}, more than the pool's {workers} workers; one rule set may use at most all of them"
                ),
            );
        }
        let worker_memory =
            section.size("worker_memory", default.worker_memory, Self::WORKER_MEMORY);
        let quarantine = QuarantinePolicy {
            kills: section.count(
                "quarantine_after",
                default.quarantine.kills,
                Self::QUARANTINE_AFTER,
            ),
            window: section.duration(
                "quarantine_window",
                default.quarantine.window,
                Self::QUARANTINE_WINDOW,
            ),
        };
        PoolSettings {
            workers,
            share: share.min(workers),
            worker_memory,
            quarantine,
        }
    }
}

impl Limits {
    pub const MAX_OPERATIONS: Range<u64> = Range::new(1_000, 100_000_000);
    /// Wall-clock time per rule: never more than the longest rule set `timeout`.
    pub const RULE_TIME: Range<Duration> =
        Range::new(Duration::from_millis(1), Duration::from_secs(10));
    pub const MAX_STRING_SIZE: Range<u64> = Range::new(1 << 10, 16 << 20);
    pub const MAX_COLLECTION_SIZE: Range<usize> = Range::new(16, 1_000_000);
    /// Each level of a rule's recursion takes stack. Measured on a 2 MiB thread with the
    /// deepest function body `max_expr_depth` allows: a release build overflows at 128 levels
    /// (64 is fine), a debug build at 20–24 (16 is fine). Rules recurse deeper than
    /// [`INLINE_CALL_LEVELS`](crate::script::INLINE_CALL_LEVELS) only on the evaluation pool's
    /// threads, which have 16 MiB: 64 levels fit there in either build.
    pub const MAX_CALL_LEVELS: Range<usize> = Range::new(1, 64);
    /// Half of it applies inside functions, so the minimum keeps that above 0 (no limit).
    pub const MAX_EXPR_DEPTH: Range<usize> = Range::new(8, 64);

    /// Reads `sandbox:`; every limit is above 0, so none can mean "unlimited" to Rhai.
    pub fn read(section: &mut Section<'_, '_, '_>) -> Self {
        let default = Limits::default();
        let zero = "there is no unlimited";
        Limits {
            max_operations: section.count(
                "max_operations",
                default.max_operations,
                Self::MAX_OPERATIONS.because(zero),
            ),
            rule_time: section.duration("rule_time", default.rule_time, Self::RULE_TIME),
            max_string_size: usize::try_from(section.size(
                "max_string_size",
                u64::try_from(default.max_string_size).unwrap_or(u64::MAX),
                Self::MAX_STRING_SIZE.because(zero),
            ))
            .unwrap_or(default.max_string_size),
            max_array_size: section.count(
                "max_array_size",
                default.max_array_size,
                Self::MAX_COLLECTION_SIZE.because(zero),
            ),
            max_map_size: section.count(
                "max_map_size",
                default.max_map_size,
                Self::MAX_COLLECTION_SIZE.because(zero),
            ),
            max_call_levels: section.count(
                "max_call_levels",
                default.max_call_levels,
                Self::MAX_CALL_LEVELS,
            ),
            max_expr_depth: section.count(
                "max_expr_depth",
                default.max_expr_depth,
                Self::MAX_EXPR_DEPTH,
            ),
        }
    }
}
