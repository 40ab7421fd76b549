//! What the server and a worker process say to each other: one JSON document per line on the
//! worker's stdin and stdout.
//!
//! The server sends a rule file once per worker ([`Load`]: the worker compiles it as the server
//! did), then jobs: "go on with this call's evaluation from rule `next`, with these facts".
//! The worker answers each job with an [`Outcome`]; while a job runs longer than a few
//! milliseconds it also says which rule it is in ([`FromWorker::Running`]), so a worker killed
//! at the deadline is blamed on the right rule.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::call::Call;
use crate::caller::Caller;
use crate::decide::{Reason, RuleOutcome};
use crate::lookups::LookupResult;
use crate::script::Printed;

/// Longest line either side reads: a job or an outcome of the largest rule file allowed.
pub(crate) const MAX_MESSAGE: u64 = 64 << 20;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ToWorker {
    Load(Load),
    Job(Job),
}

/// A rule file for the worker to compile and keep under `key`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Load {
    pub key: String,
    pub name: String,
    pub file: PathBuf,
    pub text: String,
    /// The lookups the set declares, and the facts each declares (the only ones it may read).
    pub lookups: crate::ruleset::LookupFacts,
    /// The company calendars the server has (the set may include some).
    pub calendars: crate::calendar::Calendars,
    /// The set's time zone, as the default for a file that names none.
    pub time_zone: String,
}

/// One call's evaluation, to go on from rule `next`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Job {
    /// The rule set's key (`name@version`) in the worker.
    pub set: String,
    pub call: Arc<Call>,
    pub caller: Arc<Caller>,
    /// The call's time as rules see it, Unix milliseconds.
    pub now: i64,
    /// Time left until the call's deadline when the job was sent, in microseconds.
    pub budget: u64,
    pub next: usize,
    /// What each declared lookup gave so far, by index.
    pub facts: Vec<Option<Given>>,
}

/// A lookup's result on the wire. Externally tagged: read several times faster than the
/// internally tagged form the call log keeps, which serde must buffer to find the tag.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Given {
    Found(Arc<crate::plugin::Facts>),
    NotFound,
    Unavailable(String),
}

impl From<&LookupResult> for Given {
    fn from(result: &LookupResult) -> Self {
        match result {
            LookupResult::Found { facts } => Given::Found(facts.clone()),
            LookupResult::NotFound => Given::NotFound,
            LookupResult::Unavailable { reason } => Given::Unavailable(reason.clone()),
        }
    }
}

impl From<&Given> for LookupResult {
    fn from(given: &Given) -> Self {
        match given {
            Given::Found(facts) => LookupResult::Found {
                facts: facts.clone(),
            },
            Given::NotFound => LookupResult::NotFound,
            Given::Unavailable(reason) => LookupResult::Unavailable {
                reason: reason.clone(),
            },
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FromWorker {
    /// Started and confined; the first message of every worker.
    Ready,
    Loaded {
        key: String,
    },
    LoadFailed {
        key: String,
        message: String,
    },
    /// A job has been running a while; it is in rule `rule`.
    Running {
        rule: usize,
    },
    Done(Outcome),
    /// The job named a rule set the worker does not have.
    Unknown {
        key: String,
    },
}

/// How far a job got.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Outcome {
    /// The rules it ran, from the job's `next` on.
    pub rules: Vec<Ran>,
    /// The next rule to run.
    pub next: usize,
    /// The route and the index of the rule that gave it.
    pub matched: Option<(String, usize)>,
    pub reason: Reason,
    /// Lookups the rules it ran read.
    pub read: Vec<usize>,
    /// The lookup the next rule waits for.
    pub need: Option<usize>,
    pub printed: Vec<Printed>,
}

/// One rule the worker ran: its outcome and its time in microseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Ran(pub Done, pub u64);

/// A rule's outcome on the wire, externally tagged and short (see [`Given`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Done {
    Matched,
    NoMatch,
    FellThrough,
    Skipped(String),
    Error(String, usize, usize),
    NotReached,
}

impl From<RuleOutcome> for Done {
    fn from(outcome: RuleOutcome) -> Self {
        match outcome {
            RuleOutcome::Matched => Done::Matched,
            RuleOutcome::NoMatch => Done::NoMatch,
            RuleOutcome::FellThrough => Done::FellThrough,
            RuleOutcome::Skipped { reason } => Done::Skipped(reason),
            RuleOutcome::Error { message, position } => {
                Done::Error(message, position.line, position.column)
            }
            RuleOutcome::NotReached => Done::NotReached,
        }
    }
}

impl From<Done> for RuleOutcome {
    fn from(done: Done) -> Self {
        match done {
            Done::Matched => RuleOutcome::Matched,
            Done::NoMatch => RuleOutcome::NoMatch,
            Done::FellThrough => RuleOutcome::FellThrough,
            Done::Skipped(reason) => RuleOutcome::Skipped { reason },
            Done::Error(message, line, column) => RuleOutcome::Error {
                message,
                position: crate::diagnostic::Position::new(line, column),
            },
            Done::NotReached => RuleOutcome::NotReached,
        }
    }
}
