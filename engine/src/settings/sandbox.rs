//! `sandbox:` in belroute.yaml: bounds on what one rule may do.
//!
//! In Rhai a limit of `0` means "no limit", so every limit here has a minimum above 0 and a
//! maximum that keeps one rule from holding a worker or allocating without end.

use std::time::Duration;

use crate::script::Limits;

use super::{Range, Section};

impl Limits {
    pub const KEYS: [&'static str; 7] = [
        "max_operations",
        "rule_time",
        "max_string_size",
        "max_array_size",
        "max_map_size",
        "max_call_levels",
        "max_expr_depth",
    ];
    pub const MAX_OPERATIONS: Range<u64> = Range::new(1_000, 100_000_000);
    /// Wall-clock time per rule: never more than the longest rule set `timeout`.
    pub const RULE_TIME: Range<Duration> =
        Range::new(Duration::from_millis(1), Duration::from_secs(10));
    pub const MAX_STRING_SIZE: Range<u64> = Range::new(1 << 10, 16 << 20);
    pub const MAX_COLLECTION_SIZE: Range<usize> = Range::new(16, 1_000_000);
    /// Each level of a rule's recursion takes stack on the HTTP worker thread (2 MiB). Measured
    /// with the deepest function body `max_expr_depth` allows: a release build overflows at
    /// 128 levels (64 is fine), a debug build at 20–24 (16 is fine). Rhai draws the same line
    /// between its own defaults (64 and 8).
    pub const MAX_CALL_LEVELS: Range<usize> = if cfg!(debug_assertions) {
        Range::new(1, 16)
    } else {
        Range::new(1, 32)
    };
    /// Half of it applies inside functions, so the minimum keeps that above 0 (no limit).
    pub const MAX_EXPR_DEPTH: Range<usize> = Range::new(8, 64);

    /// The defaults, within the ranges above (in a debug build the recursion limit is lower).
    pub fn bounded_default() -> Self {
        let mut limits = Limits::default();
        limits.max_call_levels = limits.max_call_levels.min(Self::MAX_CALL_LEVELS.max);
        limits
    }

    /// Reads `sandbox:`; every limit is above 0, so none can mean "unlimited" to Rhai.
    pub fn read(section: &mut Section<'_, '_, '_>) -> Self {
        let default = Limits::bounded_default();
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
