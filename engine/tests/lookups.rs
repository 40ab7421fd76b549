//! What the engine does around every plugin — time limit, cache, request sharing, circuit
//! breaker — tested in milliseconds on tokio's paused clock, with lookup doubles.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use belroute_engine::{
    BreakerSettings, CacheSettings, Lookup, LookupResult, LookupSettings, LookupTrace, Lookups,
};
use serde_json::json;
use support::{Answer, Double, request};
use tokio::time::{Instant, advance};

const CALLER: &str = "0152026057";

fn lookups(double: &Arc<Double>, settings: LookupSettings) -> Lookups {
    let mut lookups = Lookups::default();
    let plugin: Arc<dyn Lookup> = double.clone();
    lookups.insert("crm", plugin, settings);
    lookups
}

/// One call's lookup, waited for up to a second.
async fn ask(lookups: &Lookups, caller: &str) -> LookupTrace {
    let now = Instant::now();
    let mut pending = lookups.start("crm", &request(caller), now);
    pending.wait(now + Duration::from_secs(1)).await
}

fn outcome(trace: &LookupTrace) -> &'static str {
    match &trace.result {
        LookupResult::Found { .. } => "found",
        LookupResult::NotFound => "not_found",
        LookupResult::Unavailable { .. } => "unavailable",
    }
}

fn cached(ttl: u64, negative: Option<u64>, stale: u64) -> LookupSettings {
    LookupSettings {
        cache: CacheSettings {
            ttl: Duration::from_secs(ttl),
            negative_ttl: negative.map(Duration::from_secs),
            stale_if_error: Duration::from_secs(stale),
            refresh_ahead: 1.0,
            ..CacheSettings::default()
        },
        ..LookupSettings::default()
    }
}

/// Lets spawned plugin requests run to their end on the paused clock.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn breaker_transitions() {
    let double = Double::new(Answer::Fail);
    let settings = LookupSettings {
        breaker: BreakerSettings {
            failures: 3,
            cool_down: Duration::from_secs(30),
        },
        ..LookupSettings::default()
    };
    let lookups = lookups(&double, settings);
    let breaker = |l: &Lookups| l.status()[0].breaker;
    // (step, answer the plugin gives, time passing before the call, expected outcome,
    //  requests made so far, breaker after)
    let table: &[(&str, Answer, u64, &str, usize, &str)] = &[
        ("failure 1", Answer::Fail, 0, "unavailable", 1, "closed"),
        ("failure 2", Answer::Fail, 0, "unavailable", 2, "closed"),
        ("failure 3 opens", Answer::Fail, 0, "unavailable", 3, "open"),
        (
            "skipped while open",
            Answer::Fail,
            10,
            "unavailable",
            3,
            "open",
        ),
        (
            "probe fails: open again",
            Answer::Fail,
            25,
            "unavailable",
            4,
            "open",
        ),
        ("still open", Answer::NotFound, 29, "unavailable", 4, "open"),
        (
            "probe answers: closed",
            Answer::NotFound,
            2,
            "not_found",
            5,
            "closed",
        ),
        (
            "a success resets the count",
            Answer::Fail,
            0,
            "unavailable",
            6,
            "closed",
        ),
    ];
    for (step, answer, wait, expected, requests, after) in table {
        double.set(answer.clone());
        advance(Duration::from_secs(*wait)).await;
        let trace = ask(&lookups, CALLER).await;
        settle().await;
        assert_eq!(outcome(&trace), *expected, "{step}: {trace:?}");
        assert_eq!(double.requests(), *requests, "{step}: requests");
        assert_eq!(breaker(&lookups), *after, "{step}: breaker");
    }
    let status = &lookups.status()[0];
    assert_eq!((status.skipped, status.failures), (2, 5));
}

#[tokio::test(start_paused = true)]
async fn a_hanging_plugin_is_given_up_at_its_timeout_and_counts_as_a_failure() {
    let double = Double::new(Answer::Hang);
    let lookups = lookups(
        &double,
        LookupSettings {
            timeout: Duration::from_millis(300),
            ..LookupSettings::default()
        },
    );
    let started = Instant::now();
    let mut pending = lookups.start("crm", &request(CALLER), started);
    // The call waits only until its own deadline…
    let trace = pending.wait(started + Duration::from_millis(100)).await;
    assert_eq!(outcome(&trace), "unavailable");
    assert_eq!(started.elapsed(), Duration::from_millis(100));
    // …while the request runs on to the plugin's timeout, and is a failure then.
    advance(Duration::from_millis(250)).await;
    settle().await;
    assert_eq!(lookups.status()[0].failures, 1);
}

#[tokio::test(start_paused = true)]
async fn cache_fresh_negative_and_expired() {
    let double = Double::new(Answer::Found(json!({"open": 1})));
    let lookups = lookups(&double, cached(60, Some(10), 0));
    let table: &[(&str, Answer, u64, &str, bool, usize)] = &[
        // (step, plugin answer, time before, outcome, from the cache, requests so far)
        (
            "first call asks",
            Answer::Found(json!({"open": 1})),
            0,
            "found",
            false,
            1,
        ),
        (
            "fresh: from the cache",
            Answer::NotFound,
            59,
            "found",
            true,
            1,
        ),
        (
            "expired: asks again",
            Answer::NotFound,
            2,
            "not_found",
            false,
            2,
        ),
        (
            "not found is cached for the negative ttl",
            Answer::Fail,
            9,
            "not_found",
            true,
            2,
        ),
        (
            "negative entry expired",
            Answer::NotFound,
            2,
            "not_found",
            false,
            3,
        ),
    ];
    for (step, answer, wait, expected, from_cache, requests) in table {
        double.set(answer.clone());
        advance(Duration::from_secs(*wait)).await;
        let trace = ask(&lookups, CALLER).await;
        settle().await;
        assert_eq!(
            (outcome(&trace), trace.cached),
            (*expected, *from_cache),
            "{step}"
        );
        assert_eq!(double.requests(), *requests, "{step}: requests");
    }
}

#[tokio::test(start_paused = true)]
async fn stale_if_error_stands_in_only_within_its_window() {
    let double = Double::new(Answer::Found(json!({"open": 1})));
    let lookups = lookups(&double, cached(60, None, 600));
    assert_eq!(outcome(&ask(&lookups, CALLER).await), "found");
    settle().await;
    double.set(Answer::Fail);
    advance(Duration::from_secs(61)).await;
    let stale = ask(&lookups, CALLER).await;
    assert_eq!((outcome(&stale), stale.stale), ("found", true));
    settle().await;
    advance(Duration::from_secs(600)).await;
    let gone = ask(&lookups, CALLER).await;
    assert_eq!((outcome(&gone), gone.stale), ("unavailable", false));
}

#[tokio::test(start_paused = true)]
async fn refresh_ahead_answers_from_the_cache_and_refreshes_behind() {
    let double = Double::new(Answer::Found(json!({"open": 1})));
    let mut settings = cached(100, None, 0);
    settings.cache.refresh_ahead = 0.8;
    let lookups = lookups(&double, settings);
    ask(&lookups, CALLER).await;
    settle().await;
    double.set(Answer::Found(json!({"open": 2})));
    advance(Duration::from_secs(50)).await;
    assert!(ask(&lookups, CALLER).await.cached);
    settle().await;
    assert_eq!(double.requests(), 1, "before 80 % of the ttl: no refresh");
    advance(Duration::from_secs(35)).await;
    let answered = ask(&lookups, CALLER).await;
    assert!(answered.cached, "past 80 %: still answered from the cache");
    settle().await;
    assert_eq!(double.requests(), 2, "…and refreshed in the background");
    let refreshed = ask(&lookups, CALLER).await;
    let LookupResult::Found { facts } = &refreshed.result else {
        panic!("{refreshed:?}")
    };
    assert_eq!(facts["open"], 2);
}

#[tokio::test(start_paused = true)]
async fn calls_asking_the_same_question_at_once_share_one_request() {
    let double = Double::new(Answer::After(
        Duration::from_millis(200),
        Box::new(Answer::Found(json!({"open": 1}))),
    ));
    let lookups = lookups(&double, LookupSettings::default());
    let now = Instant::now();
    let mut first = lookups.start("crm", &request(CALLER), now);
    let mut second = lookups.start("crm", &request("+31 15 202 6057"), now);
    let mut other = lookups.start("crm", &request("0612345678"), now);
    let deadline = now + Duration::from_secs(1);
    let (a, b, c) = tokio::join!(
        first.wait(deadline),
        second.wait(deadline),
        other.wait(deadline)
    );
    assert_eq!([outcome(&a), outcome(&b), outcome(&c)], ["found"; 3]);
    assert_eq!(double.requests(), 2, "one per caller, not per call");
    assert_eq!(lookups.status()[0].shared, 1);
}

#[tokio::test(start_paused = true)]
async fn callers_without_a_number_are_not_asked_unless_the_plugin_opts_in() {
    let double = Double::new(Answer::Found(json!({"open": 1})));
    let lookups = lookups(&double, LookupSettings::default());
    for caller in ["anonymous", "0699999999", "1003"] {
        assert_eq!(
            outcome(&ask(&lookups, caller).await),
            "not_found",
            "{caller}"
        );
    }
    assert_eq!(double.requests(), 0);
    assert_eq!(lookups.status()[0].no_number, 3);

    let asked = self::lookups(
        &double,
        LookupSettings {
            ask_without_number: true,
            ..LookupSettings::default()
        },
    );
    assert_eq!(outcome(&ask(&asked, "anonymous").await), "found");
    assert_eq!(double.requests(), 1);
}
