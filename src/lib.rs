//! belroute: a call-routing rules engine for Callvoip's Webhook-app.
//!
//! This crate is the server around [`belroute_engine`]: the CLI, the actix-web endpoints,
//! configuration and wiring. Handlers stay thin: parse, authenticate, ask the engine, answer.
#![forbid(unsafe_code)]

pub mod access;
pub mod app;
pub mod changes;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod logging;
pub mod metrics;
pub mod read;
pub mod replay;
pub mod server;
pub mod storage;
pub mod subscriptions;
pub mod time;
