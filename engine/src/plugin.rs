//! The plugin interface: how the engine asks a CRM what it knows about a caller.
//!
//! Words: a *plugin* is code that can ask one kind of system (`http`, `sql`, `history`); a
//! configured instance of it has a name in belroute.yaml `plugins:`. A *lookup* is the engine
//! asking an instance about one call; rule sets list the instances they read in `lookups:`,
//! and rules see each answer as a variable of that name. A plugin implements [`Lookup`]: it
//! answers one question for one call; the engine, not the plugin, starts lookups, enforces
//! the call's deadline, caches answers and trips the circuit breaker.

use std::sync::Arc;

use async_trait::async_trait;

use crate::call::Call;
use crate::caller::Caller;

/// What a lookup found: a JSON-like map that rules read as `name.field`.
pub type Facts = serde_json::Map<String, serde_json::Value>;

/// One call, as a plugin sees it.
#[derive(Debug, Clone)]
pub struct LookupRequest {
    pub caller: Arc<Caller>,
    pub call: Arc<Call>,
}

/// Why a lookup gave no answer. The kind decides how the engine reacts (all count as failures
/// for the circuit breaker; `Misconfigured` is logged loudest because a person must fix it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("timed out")]
    Timeout,
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    #[error("bad response: {0}")]
    BadResponse(String),
    #[error("misconfigured: {0}")]
    Misconfigured(String),
}

impl LookupError {
    /// A short stable name for logs, metrics and the call log.
    pub fn kind(&self) -> &'static str {
        match self {
            LookupError::Timeout => "timeout",
            LookupError::Unavailable(_) => "unavailable",
            LookupError::BadResponse(_) => "bad_response",
            LookupError::Misconfigured(_) => "misconfigured",
        }
    }
}

/// A CRM (or any source of facts about a caller).
///
/// Implement [`Lookup::lookup`]; the rest has defaults. Return `Ok(None)` when the system does
/// not know the caller: rules then see an empty map, which they can tell from `()`, "the CRM
/// could not answer".
#[async_trait]
pub trait Lookup: Send + Sync + 'static {
    /// Finds what the system knows about this call's caller.
    async fn lookup(&self, request: &LookupRequest) -> Result<Option<Facts>, LookupError>;

    /// What makes two requests the same question, for caching and for sharing one in-flight
    /// request. `None` disables caching for this request. The default is the caller's
    /// [`Caller::key`] (E.164, or the number as received).
    fn cache_key(&self, request: &LookupRequest) -> Option<String> {
        let caller = &request.caller;
        (!caller.anonymous).then(|| caller.key().to_string())
    }

    /// Does the question depend on the caller's number? Then the engine does not ask it for a
    /// caller without a usable number (withheld, not a valid number, a SIP extension): rules
    /// see "not found" (`{}`) instead of facts about an empty number. A plugin keyed on other
    /// call data returns `false`; an operator can also opt a plugin in (`ask_without_number`).
    fn keyed_on_caller(&self) -> bool {
        true
    }

    /// The facts it answers, by name, with their types: what rules may read of it (a typo is a
    /// load error), and the shape rules see whatever the source answers (an undeclared fact is
    /// dropped, one of another type is `()`; both logged once and counted). `None`: the plugin
    /// cannot say, and rules cannot read its facts.
    fn facts(&self) -> Option<crate::vocabulary::DeclaredFacts> {
        None
    }
}
