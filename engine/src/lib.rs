//! belroute-engine: decides where a call goes.
//!
//! Rule sets are YAML files with short Rhai expressions ([`RuleSet`]), validated completely
//! and compiled once at load, served from a directory that is watched and swapped atomically
//! ([`RuleStore`], [`watch`]). A call's route is decided by [`Router`]: its lookups (a plugin
//! implements [`Lookup`]) start at once, rules run in order — inline when proven bounded and
//! quick, else in worker processes the operating system limits and the server kills at the
//! deadline ([`sandbox`]) — and the answer is ready by the call's [`Deadline`] whatever a
//! plugin or a rule does.
//!
//! The engine knows nothing of HTTP, storage or any particular plugin. Its public surface is
//! what this file re-exports; `settings` and `yaml` are the toolkit configuration readers and
//! plugins use.
#![forbid(unsafe_code)]

pub mod calendar;
mod call;
mod caller;
pub mod catalog;
mod clock;
mod decide;
pub mod diagnostic;
mod lookups;
mod plain;
mod plugin;
mod ruleset;
pub mod sandbox;
mod script;
pub mod settings;
mod test_case;
mod test_run;
pub mod text;
mod trace;
pub mod vocabulary;
pub mod watch;
pub mod yaml;

pub use call::{CALLVOIP_FIELDS, Call, CallDataError, MAX_FIELDS, MAX_NAME_LEN, MAX_VALUE_LEN};
pub use caller::{Caller, Normaliser, UnknownRegion};
pub use catalog::{Catalog, Loader, Refusal, RuleLoader, RuleStore, StoreContext, rule_files};
pub use clock::{
    DEFAULT_TIME_ZONE, Deadline, Holidays, LocalTime, OfficeHours, local_to_utc, micros,
    parse_local_time, parse_time_zone,
};
pub use decide::{
    Decision, HEAVY_FOR, INLINE_BUDGET, Reason, Router, RuleOutcome, RuleTrace, facts_to_dynamic,
};
pub use diagnostic::{Diagnostic, Diagnostics, Position, suggestion};
pub use lookups::{
    BreakerSettings, CacheSettings, LookupResult, LookupSettings, LookupStatus, LookupTrace,
    Lookups, PendingLookup,
};
pub use plugin::{Facts, Lookup, LookupError, LookupRequest};
pub use ruleset::{
    CALL_VARIABLES, DEFAULT_TIMEOUT, LoadContext, LookupFacts, MAX_ROUTE_LEN, MAX_TIMEOUT,
    MIN_TIMEOUT, Rule, RuleSet, check_route, content_version, route_matches, valid_name,
};
pub use sandbox::{
    Pool, PoolError, PoolSettings, PoolStatus, Quarantine, QuarantinePolicy, Quarantined,
    WorkerCommand, inherited_descriptors, panic_message,
};
pub use script::{
    BOUNDED_FUNCTIONS, FUNCTIONS, Limits, PRINT_LINES_PER_SECOND, PRINT_MAX_CHARS, ScriptEngine,
    Unbounded,
};
pub use test_case::{TestCase, load_test_file, read_tests, test_file_for};
pub use test_run::{TestReport, TestedLoader, run_test};
pub use trace::Trace;
