//! belroute-engine: decides where a call goes.
//!
//! Rule sets are YAML files with short Rhai expressions ([`ruleset`]), validated completely
//! and compiled once at load ([`script`]), served from a directory that is watched and swapped
//! atomically ([`catalog`], [`watch`]). A call's route is decided by [`decide::Router`]: its
//! lookups ([`lookup`] is the plugin trait) start at once, rules run in order, and the answer
//! is ready before the rule set's deadline whatever a plugin or a rule does.
//!
//! The engine knows nothing of HTTP and nothing of any particular plugin.
#![forbid(unsafe_code)]

pub mod call;
pub mod caller;
pub mod catalog;
pub mod clock;
pub mod decide;
pub mod diagnostic;
pub mod lookup;
pub mod lookups;
pub mod ruleset;
pub mod script;
pub mod settings;
pub mod testing;
pub mod watch;
pub mod yaml;

pub use call::Call;
pub use caller::{Caller, Normaliser};
pub use catalog::{Catalog, RuleStore, StoreContext};
pub use decide::{Decision, Reason, Router};
pub use diagnostic::{Diagnostic, Position};
pub use lookup::{Facts, Lookup, LookupError, LookupRequest};
pub use lookups::{LookupResult, LookupSettings, Lookups};
pub use ruleset::RuleSet;
pub use script::{Limits, ScriptEngine};
