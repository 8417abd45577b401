//! Cooldowns through real HTTP: every form of retry hint keeps traffic off a cooling
//! target, 429 with Retry-After when every target cools, and `max_wait`.
//!
//! Cooldowns are long enough never to run out during a test, and the time left they
//! show is checked against bounds that allow for however long the test took.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::time::Duration;

use common::*;

use common::{openai_config as config, UPSTREAM_KEY as KEY};

#[tokio::test]
async fn retry_after_in_every_form_keeps_traffic_off_the_cooling_target() {
    // 200 s each way, from when the form is used (a date made up front would shrink
    // with every earlier form)
    type Value = fn(std::time::SystemTime) -> String;
    let forms: [(&str, Value); 6] = [
        ("retry-after", |_| "200".into()),
        ("retry-after-ms", |_| "200000".into()),
        ("x-ms-retry-after-ms", |_| "200000".into()),
        ("retry-after", httpdate::fmt_http_date),
        ("x-ratelimit-reset-requests", |_| "200s".into()),
        ("anthropic-ratelimit-requests-reset", |at| {
            humantime::format_rfc3339_seconds(at).to_string()
        }),
    ];
    for (header, value) in forms {
        let since = std::time::Instant::now();
        let value = value(std::time::SystemTime::now() + Duration::from_secs(200));
        let (a, b, p) = two("").await;
        a.push(Reply::json(429, r#"{"error":{"message":"slow down"}}"#).header(header, &value));
        a.always(Reply::json(200, completion("m-a", "a")));
        b.always(Reply::json(200, completion("m-b", "b")));
        for i in 0..5 {
            let r = p.chat(user("default")).await;
            assert_eq!(r.status, 200);
            assert_eq!(
                r.header("x-understudy-provider"),
                Some("b"),
                "{header}: request {i}"
            );
        }
        assert_eq!(
            a.count(),
            1,
            "{header}: no request reaches a cooling target"
        );
        let status = get(&p.url("/status")).await.json();
        let left = status["cooldowns"][0]["seconds_left"].as_f64().unwrap();
        assert_eq!(status["cooldowns"][0]["target"], "a/m-a");
        // the dates have whole seconds: up to one less
        assert!(
            (least_left(199.0, since)..=200.5).contains(&left),
            "{header}: {left}"
        );
    }
}

#[tokio::test]
async fn every_target_cooling_answers_429_with_retry_after() {
    let (a, b, p) = two("").await;
    a.push(Reply::json(429, "{}").header("retry-after", "70"));
    b.push(Reply::json(429, "{}").header("retry-after", "120"));
    let since = std::time::Instant::now();
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.error_code(), "rate_limited");
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    let ra: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(
        retry_after_range(70, since).contains(&ra),
        "the soonest target: {ra}"
    );
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("a/m-a") && msg.contains("b/m-b"),
        "lists each attempt: {msg}"
    );
    // nothing is tried now: still 429, Retry-After counts down, no upstream request
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-understudy-attempts"), Some("0"));
    let ra: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after_range(70, since).contains(&ra), "{ra}");
    assert_eq!((a.count(), b.count()), (1, 1));
}

#[tokio::test]
async fn rate_limited_attempts_plus_targets_cooling_from_a_503_answer_429() {
    let (a, b, p) = two("").await;
    a.push(Reply::json(503, "{}").header("retry-after", "600"));
    b.push(Reply::json(200, completion("m-b", "b")));
    p.chat(user("default")).await; // a now cools from a 503
    b.push(Reply::json(429, "{}").header("retry-after", "5"));
    let since = std::time::Instant::now();
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 429, "{}", r.text());
    let ra: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after_range(5, since).contains(&ra), "{ra}");
}

#[tokio::test]
async fn max_wait_waits_for_the_soonest_cooling_target() {
    let a = Mock::start().await;
    let p = Proxy::start(
        &config(&[("a", a.url())], "[failover]\nmax_wait = \"1m\"\n"),
        &[KEY],
    )
    .await;
    a.push(Reply::json(429, "{}").header("retry-after-ms", "300"));
    a.push(Reply::json(200, completion("m-a", "after the wait")));
    let t = std::time::Instant::now();
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
    assert!(
        t.elapsed() >= Duration::from_millis(280),
        "{:?}",
        t.elapsed()
    );
}
