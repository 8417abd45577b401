//! Per-provider `max_concurrency` through the real server: a full provider is
//! skipped so the request fails over to one with room; with no room anywhere the
//! client gets 503 `overloaded` with `Retry-After`, and `/readyz` says 503 while the
//! proxy sheds; a bounded queue holds a request until a slot frees.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;

/// `a` limited to one request in flight and no queue.
const ONE_NO_QUEUE: &str = "max_concurrency = 1\nmax_queue = 0";

async fn limited(keys_a: &str, with_b: bool) -> (Mock, Mock, Arc<Proxy>) {
    let a = Mock::start().await;
    let b = Mock::start().await;
    let mocks = if with_b {
        vec![("a", a.url()), ("b", b.url())]
    } else {
        vec![("a", a.url())]
    };
    let toml = with_keys(&openai_config(&mocks, ""), "a", keys_a);
    let p = Proxy::start(&toml, &[UPSTREAM_KEY]).await;
    (a, b, Arc::new(p))
}

/// Starts a request that `a` holds at `gate`, and waits until it is held there.
async fn hold_one(a: &Mock, p: &Arc<Proxy>, gate: &Gate) -> tokio::task::JoinHandle<Resp> {
    a.push(Reply::json(200, completion("m-a", "held")).hold(gate));
    let p2 = p.clone();
    let first = tokio::spawn(async move { p2.chat(user("default")).await });
    assert!(
        eventually(Duration::from_secs(10), || gate.reached() == 1).await,
        "the first request reached a"
    );
    first
}

#[tokio::test]
async fn with_no_room_anywhere_the_client_gets_503_overloaded_and_readyz_turns_503() {
    let (a, _b, p) = limited(ONE_NO_QUEUE, false).await;
    assert_eq!(get(&p.url("/readyz")).await.status, 200);
    let gate = Gate::new();
    let first = hold_one(&a, &p, &gate).await;

    let shed = p.chat(user("default")).await;
    assert_eq!(shed.status, 503, "{}", shed.text());
    assert_eq!(shed.json()["error"]["type"], "service_unavailable");
    assert_eq!(shed.error_code(), "overloaded");
    assert_eq!(shed.header("retry-after"), Some("1"));
    assert!(
        shed.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("a/m-a: skipped (at max_concurrency, queue full)")),
        "{}",
        shed.text()
    );
    assert_eq!(a.count(), 1, "the shed request never went upstream");
    let ready = get(&p.url("/readyz")).await;
    assert_eq!(ready.status, 503, "not ready while shedding");
    let metrics = get(&p.url("/metrics")).await.text();
    assert!(
        metrics.contains("understudy_shed_requests_total{route=\"default\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("understudy_concurrency_skips_total{provider=\"a\"} 1"),
        "{metrics}"
    );

    gate.open();
    assert_eq!(first.await.unwrap().status, 200);
    // The slot came back with the answer: ready again, and the next request is served.
    assert_eq!(get(&p.url("/readyz")).await.status, 200);
    a.push(Reply::json(200, completion("m-a", "again")));
    assert_eq!(p.chat(user("default")).await.status, 200);
}

#[tokio::test]
async fn a_full_provider_is_skipped_and_the_request_fails_over_to_one_with_room() {
    let (a, b, p) = limited(ONE_NO_QUEUE, true).await;
    let gate = Gate::new();
    let first = hold_one(&a, &p, &gate).await;
    b.push(Reply::json(200, completion("m-b", "from b")));
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("b"));
    assert_eq!(
        r.header("x-understudy-attempts"),
        Some("1"),
        "a skip is no attempt"
    );
    assert_eq!((a.count(), b.count()), (1, 1));
    // b still has room: the proxy is ready though a is full.
    assert_eq!(get(&p.url("/readyz")).await.status, 200);
    gate.open();
    assert_eq!(first.await.unwrap().status, 200);
}

#[tokio::test]
async fn a_queued_request_waits_for_the_slot_and_is_served() {
    let (a, _b, p) = limited(
        "max_concurrency = 1\nmax_queue = 1\nqueue_wait = \"30s\"",
        false,
    )
    .await;
    let gate = Gate::new();
    let first = hold_one(&a, &p, &gate).await;
    a.push(Reply::json(200, completion("m-a", "second")));
    let p2 = p.clone();
    let second = tokio::spawn(async move { p2.chat(user("default")).await });
    // The queue's one place taken: /readyz reports no room, and a third is shed.
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            get(&p.url("/readyz")).await.status == 503
        })
        .await,
        "the second request queued"
    );
    let third = p.chat(user("default")).await;
    assert_eq!(third.error_code(), "overloaded", "{}", third.text());
    assert_eq!(a.count(), 1, "the queued request waits, not sent yet");
    gate.open();
    assert_eq!(first.await.unwrap().status, 200);
    let second = second.await.unwrap();
    assert_eq!(second.status, 200, "{}", second.text());
    assert_eq!(a.count(), 2);
}

#[tokio::test]
async fn a_stream_holds_its_slot_until_it_ends() {
    let (a, _b, p) = limited(ONE_NO_QUEUE, false).await;
    let gate = Gate::new();
    a.push(stream_reply("m-a", &["one", "two"]).hold_before(2, &gate));
    let mut open = open_stream(&p.url("/v1/chat/completions"), user_stream("default")).await;
    read_until(open.body_mut(), "one").await;
    let shed = p.chat(user("default")).await;
    assert_eq!(shed.error_code(), "overloaded", "{}", shed.text());
    gate.open();
    read_until(open.body_mut(), "[DONE]").await;
    drop(open);
    a.push(Reply::json(200, completion("m-a", "after")));
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            get(&p.url("/readyz")).await.status == 200
        })
        .await,
        "the slot came back when the stream ended"
    );
    assert_eq!(p.chat(user("default")).await.status, 200);
}

#[tokio::test]
async fn the_messages_door_sheds_with_anthropics_overloaded_error() {
    let (a, _b, p) = limited(ONE_NO_QUEUE, false).await;
    let gate = Gate::new();
    let first = hold_one(&a, &p, &gate).await;
    let body = serde_json::json!({"model": "default", "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}]});
    let r = send(&p.url("/v1/messages"), "POST", &[], body.to_string()).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "overloaded_error");
    assert_eq!(r.header("retry-after"), Some("1"));
    gate.open();
    assert_eq!(first.await.unwrap().status, 200);
}
