//! Lookup doubles for engine tests: plugins that answer, fail, hang or count, on no network.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use belroute_engine::{Call, Facts, Lookup, LookupError, LookupRequest, Normaliser};

/// What a double answers.
#[derive(Debug, Clone)]
pub enum Answer {
    Found(serde_json::Value),
    NotFound,
    Fail,
    /// Never answers (the engine's timeout ends it).
    Hang,
    /// Answers after a while.
    After(Duration, Box<Answer>),
}

/// A plugin whose answer the test sets and changes, counting requests.
#[derive(Debug)]
pub struct Double {
    answer: std::sync::Mutex<Answer>,
    requests: AtomicUsize,
}

impl Double {
    pub fn new(answer: Answer) -> Arc<Self> {
        Arc::new(Double {
            answer: std::sync::Mutex::new(answer),
            requests: AtomicUsize::new(0),
        })
    }

    pub fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn facts(value: &serde_json::Value) -> Facts {
    value.as_object().cloned().unwrap_or_default()
}

async fn give(answer: Answer) -> Result<Option<Facts>, LookupError> {
    let mut answer = answer;
    loop {
        match answer {
            Answer::Found(value) => return Ok(Some(facts(&value))),
            Answer::NotFound => return Ok(None),
            Answer::Fail => return Err(LookupError::Unavailable("HTTP 503".into())),
            Answer::Hang => std::future::pending::<()>().await,
            Answer::After(wait, then) => {
                tokio::time::sleep(wait).await;
                answer = *then;
            }
        }
    }
}

#[async_trait]
impl Lookup for Double {
    async fn lookup(&self, _request: &LookupRequest) -> Result<Option<Facts>, LookupError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let answer = self.answer.lock().unwrap().clone();
        give(answer).await
    }
}

/// A plugin that panics when asked which question a call is (a plugin developer's bug).
#[derive(Debug)]
pub struct Panicking;

#[async_trait]
impl Lookup for Panicking {
    async fn lookup(&self, _request: &LookupRequest) -> Result<Option<Facts>, LookupError> {
        Ok(None)
    }

    fn cache_key(&self, _request: &LookupRequest) -> Option<String> {
        panic!("a bug in the plugin")
    }
}

/// A call from `number`, as plugins receive it.
pub fn request(number: &str) -> LookupRequest {
    LookupRequest {
        caller: Normaliser::default().normalise(number),
        call: Arc::new(Call::from_pairs([("caller_number", number)])),
    }
}
