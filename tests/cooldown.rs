//! Cooldowns through real HTTP: every form of retry hint keeps traffic off a cooling
//! target, 429 with Retry-After when every target cools, and `max_wait`.
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
    let in_20s = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(20));
    let forms: Vec<(&str, String)> = vec![
        ("retry-after", "20".into()),
        ("retry-after-ms", "20000".into()),
        ("x-ms-retry-after-ms", "20000".into()),
        ("retry-after", in_20s),
        ("x-ratelimit-reset-requests", "20s".into()),
        (
            "anthropic-ratelimit-requests-reset",
            humantime::format_rfc3339_seconds(
                std::time::SystemTime::now() + Duration::from_secs(20),
            )
            .to_string(),
        ),
    ];
    for (header, value) in forms {
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
        assert!((15.0..=20.5).contains(&left), "{header}: {left}");
    }
}

#[tokio::test]
async fn every_target_cooling_answers_429_with_retry_after() {
    let (a, b, p) = two("").await;
    a.push(Reply::json(429, "{}").header("retry-after", "7"));
    b.push(Reply::json(429, "{}").header("retry-after", "12"));
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.error_code(), "rate_limited");
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    assert_eq!(r.header("retry-after"), Some("7"), "the soonest target");
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
    assert!((6..=7).contains(&ra), "{ra}");
    assert_eq!((a.count(), b.count()), (1, 1));
}

#[tokio::test]
async fn rate_limited_attempts_plus_targets_cooling_from_a_503_answer_429() {
    let (a, b, p) = two("").await;
    a.push(Reply::json(503, "{}").header("retry-after", "20"));
    b.push(Reply::json(200, completion("m-b", "b")));
    p.chat(user("default")).await; // a now cools from a 503
    b.push(Reply::json(429, "{}").header("retry-after", "5"));
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("5"));
}

#[tokio::test]
async fn max_wait_waits_for_the_soonest_cooling_target() {
    let a = Mock::start().await;
    let p = Proxy::start(
        &config(&[("a", a.url())], "[failover]\nmax_wait = \"3s\"\n"),
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
