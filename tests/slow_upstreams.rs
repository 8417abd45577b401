//! Slow upstreams through real HTTP: connect, first-byte and idle timeouts, and
//! hedged requests.
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
async fn first_byte_timeout_fails_over_and_all_timeouts_are_504() {
    let (a, b, p) = two("[timeouts]\nfirst_byte = \"200ms\"\n").await;
    a.push(Reply::json(200, completion("m-a", "too late")).delay(Duration::from_secs(5)));
    b.push(Reply::json(200, completion("m-b", "b")));
    let t = std::time::Instant::now();
    let r = p.chat(user("default")).await;
    assert_eq!(r.header("x-understudy-provider"), Some("b"));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    a.push(Reply::json(200, "{}").delay(Duration::from_secs(5)));
    b.push(Reply::json(200, "{}").delay(Duration::from_secs(5)));
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "timeout_error");
    assert_eq!(r.error_code(), "upstream_timeout");
}

#[tokio::test]
async fn an_error_body_that_stalls_fails_over_after_idle_not_total() {
    let (a, b, p) = two("[timeouts]\nidle = \"200ms\"\n").await;
    let mut stalled = Reply::json(503, r#"{"error":{"message":"busy"}}"#);
    stalled.events[0].0 = Duration::from_secs(10); // head now, body never in time
    a.push(stalled);
    b.push(Reply::json(200, completion("m-b", "b")));
    let t = std::time::Instant::now();
    let r = p.chat(user("default")).await;
    assert_eq!(r.header("x-understudy-provider"), Some("b"));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[tokio::test]
async fn a_tls_handshake_that_hangs_is_a_connect_timeout() {
    // accepts TCP, reads the ClientHello, never answers it
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let b = Mock::start().await;
    let toml = config(
        &[("a", format!("https://127.0.0.1:{port}")), ("b", b.url())],
        "",
    )
    .replace(
        "[server]\n",
        "[timeouts]\nconnect = \"200ms\"\nfirst_byte = \"20s\"\n[server]\n",
    );
    let p = Proxy::start(&toml, &[KEY]).await;
    b.push(Reply::json(200, completion("m-b", "b")));
    let t = std::time::Instant::now();
    let r = p.chat(user("default")).await;
    assert_eq!(r.header("x-understudy-provider"), Some("b"), "{}", r.text());
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let metrics = get(&p.url("/metrics")).await.text();
    assert!(
        metrics.contains("understudy_attempts_total{provider=\"a\",outcome=\"timeout\"} 1"),
        "{metrics}"
    );
}

const HEDGE: &str = "[failover]\nhedge_after = \"100ms\"\n";

#[tokio::test]
async fn a_hedge_starts_when_the_lead_has_no_head_and_the_first_answer_wins() {
    let (a, b, p) = two(HEDGE).await;
    a.push(Reply::json(200, completion("m-a", "slow a")).delay(Duration::from_secs(2)));
    b.push(Reply::json(200, completion("m-b", "quick b")));
    let t = std::time::Instant::now();
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-understudy-provider"), Some("b"));
    assert_eq!(
        r.header("x-understudy-attempts"),
        Some("2"),
        "hedged attempts count"
    );
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!((a.count(), b.count()), (1, 1));
}

#[tokio::test]
async fn the_lead_still_wins_if_it_answers_before_the_hedge() {
    let (a, b, p) = two(HEDGE).await;
    a.push(Reply::json(200, completion("m-a", "a")).delay(Duration::from_millis(300)));
    b.push(Reply::json(200, completion("m-b", "b")).delay(Duration::from_secs(3)));
    let t = std::time::Instant::now();
    let r = p.chat(user("default")).await;
    assert_eq!(r.header("x-understudy-provider"), Some("a"));
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "the slower hedge was not waited for"
    );
}

#[tokio::test]
async fn no_hedge_once_the_lead_has_sent_its_head() {
    let (a, b, p) = two(HEDGE).await;
    let mut slow_body = Reply::json(200, completion("m-a", "a"));
    slow_body.events[0].0 = Duration::from_millis(500); // head now, body later
    a.push(slow_body);
    let r = p.chat(user("default")).await;
    assert_eq!(r.header("x-understudy-provider"), Some("a"));
    assert_eq!(r.header("x-understudy-attempts"), Some("1"));
    assert_eq!(b.count(), 0);
}

#[tokio::test]
async fn streams_are_hedged_too_and_failures_of_both_are_listed() {
    let (a, b, p) = two(HEDGE).await;
    a.push(stream_reply("m-a", &["slow"]).delay(Duration::from_secs(2)));
    b.push(stream_reply("m-b", &["quick"]));
    let r = p.chat(user_stream("default")).await;
    assert_eq!(r.header("x-understudy-provider"), Some("b"));
    assert!(r.text().contains("quick") && r.text().ends_with("data: [DONE]\n\n"));

    a.push(Reply::json(500, "{}").delay(Duration::from_millis(300)));
    b.push(Reply::json(503, "{}"));
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("a/m-a: 500") && msg.contains("b/m-b: 503"),
        "{msg}"
    );
}
