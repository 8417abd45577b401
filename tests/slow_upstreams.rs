//! Slow upstreams through real HTTP: connect, first-byte and idle timeouts, and
//! hedged requests.
//!
//! A slow upstream here is one whose reply is held by a [`Gate`] the test opens (or
//! never does), not a delay racing the proxy's timers; a short timeout is set only on
//! the upstream meant to hit it. So no verdict depends on how fast the machine is.
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
    // a never answers; only a has the short first_byte, so b's answer is never timed
    let never = Gate::new();
    let (a, b, p) = two_with_a_timeouts("first_byte = \"200ms\"", "").await;
    a.push(Reply::json(200, completion("m-a", "too late")).hold(&never));
    b.push(Reply::json(200, completion("m-b", "b")));
    let r = p.chat(user("default")).await;
    assert_eq!(r.header("x-understudy-provider"), Some("b"));

    // neither answers, both with the short first_byte
    let (a, b, p) = two("[timeouts]\nfirst_byte = \"200ms\"\n").await;
    a.push(Reply::json(200, "{}").hold(&never));
    b.push(Reply::json(200, "{}").hold(&never));
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "timeout_error");
    assert_eq!(r.error_code(), "upstream_timeout");
}

#[tokio::test]
async fn an_error_body_that_stalls_fails_over_after_idle_not_total() {
    let (a, b, p) = two_with_a_timeouts("idle = \"200ms\"", "").await;
    // head now, body never: only the idle timeout (not `total`, 10 minutes, beyond
    // the client's 30 s) can end the wait
    let stalled = Reply::json(503, r#"{"error":{"message":"busy"}}"#).hold_before(0, &Gate::new());
    a.push(stalled);
    b.push(Reply::json(200, completion("m-b", "b")));
    let r = p.chat(user("default")).await;
    assert_eq!(r.header("x-understudy-provider"), Some("b"));
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
    // a's first_byte (5 minutes, beyond the client's 30 s) cannot end the handshake:
    // only its connect timeout can
    let toml = with_timeouts(
        &config(
            &[("a", format!("https://127.0.0.1:{port}")), ("b", b.url())],
            "",
        ),
        "a",
        "connect = \"200ms\", first_byte = \"5m\"",
    );
    let p = Proxy::start(&toml, &[KEY]).await;
    b.push(Reply::json(200, completion("m-b", "b")));
    let r = p.chat(user("default")).await;
    assert_eq!(r.header("x-understudy-provider"), Some("b"), "{}", r.text());
    let metrics = get(&p.url("/metrics")).await.text();
    assert!(
        metrics.contains("understudy_attempts_total{provider=\"a\",outcome=\"timeout\"} 1"),
        "{metrics}"
    );
}

const HEDGE: &str = "[failover]\nhedge_after = \"100ms\"\n";

/// A chat request to `p`'s `default` route, to spawn while the test steers the mocks.
fn chat(p: &Proxy) -> impl std::future::Future<Output = Resp> + Send + 'static {
    let url = p.url("/v1/chat/completions");
    async move { send(&url, "POST", &[], user("default").to_string()).await }
}

#[tokio::test]
async fn a_hedge_starts_when_the_lead_has_no_head_and_the_first_answer_wins() {
    let (a, b, p) = two(HEDGE).await;
    // a never answers: b's answer is the only one there is
    a.push(Reply::json(200, completion("m-a", "slow a")).hold(&Gate::new()));
    b.push(Reply::json(200, completion("m-b", "quick b")));
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-understudy-provider"), Some("b"));
    assert_eq!(
        r.header("x-understudy-attempts"),
        Some("2"),
        "hedged attempts count"
    );
    assert_eq!((a.count(), b.count()), (1, 1));
}

#[tokio::test]
async fn the_lead_still_wins_if_it_answers_before_the_hedge() {
    let (a, b, p) = two(HEDGE).await;
    // a answers once the hedge has reached b; b never answers, so an answer at all
    // means the slower hedge was not waited for
    let a_answers = Gate::new();
    a.push(Reply::json(200, completion("m-a", "a")).hold(&a_answers));
    b.push(Reply::json(200, completion("m-b", "b")).hold(&Gate::new()));
    let request = tokio::spawn(chat(&p));
    assert!(eventually(Duration::from_secs(20), || b.count() == 1).await);
    a_answers.open();
    let r = request.await.unwrap();
    assert_eq!(r.header("x-understudy-provider"), Some("a"));
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
}

#[tokio::test]
async fn no_hedge_once_the_lead_has_sent_its_head() {
    // hedge_after is passed by moving the clock once the head is out (a second of real
    // time later, for the proxy to read it), so the head does not race the hedge
    let (a, b, p) = two("[failover]\nhedge_after = \"10s\"\n").await;
    let body = Gate::new();
    a.push(Reply::json(200, completion("m-a", "a")).hold_before(0, &body)); // head now, body later
    let request = tokio::spawn(chat(&p));
    assert!(eventually(Duration::from_secs(20), || body.reached() == 1).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    skip(Duration::from_secs(11)).await; // below every other timeout in flight
    body.open();
    let r = request.await.unwrap();
    assert_eq!(r.header("x-understudy-provider"), Some("a"));
    assert_eq!(r.header("x-understudy-attempts"), Some("1"));
    assert_eq!(b.count(), 0);
}

#[tokio::test]
async fn streams_are_hedged_too_and_failures_of_both_are_listed() {
    let (a, b, p) = two(HEDGE).await;
    a.push(stream_reply("m-a", &["slow"]).hold(&Gate::new()));
    b.push(stream_reply("m-b", &["quick"]));
    let r = p.chat(user_stream("default")).await;
    assert_eq!(r.header("x-understudy-provider"), Some("b"));
    assert!(r.text().contains("quick") && r.text().ends_with("data: [DONE]\n\n"));

    // a fails once the hedge has reached b
    let a_fails = Gate::new();
    a.push(Reply::json(500, "{}").hold(&a_fails));
    b.push(Reply::json(503, "{}"));
    let request = tokio::spawn(chat(&p));
    assert!(eventually(Duration::from_secs(20), || b.count() == 2).await);
    a_fails.open();
    let r = request.await.unwrap();
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("a/m-a: 500") && msg.contains("b/m-b: 503"),
        "{msg}"
    );
}
