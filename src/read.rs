//! The read side, built once for every face: what the admin API (JSON), the console (HTML) and
//! the CLI (text) show of calls, rule sets, plugins and subscriptions, and deciding a call
//! without Callvoip (`simulate`, the console's "Try a call"). Each view is a typed value read
//! from the running parts or storage; the faces only render it.

pub mod calls;
pub mod plugins;
pub mod privacy;
pub mod rulesets;
pub mod simulate;
pub mod subscriptions;
