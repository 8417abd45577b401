//! Streams through real HTTP: silent failover before the first content, the commit
//! after it, idle gaps, events forwarded as they arrive, the usage chunk, and the
//! upstream cancelled when the client goes away.
//!
//! An upstream that stalls is held by a [`Gate`] (opened by the test, or never), and a
//! short idle timeout is set only where it is meant to fire, so no verdict depends on
//! how fast the machine is.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test]
async fn a_stream_that_idles_before_content_fails_over_silently() {
    // only a has the short idle timeout: b's stream is never timed
    let (a, b, p) = two_with_a_timeouts("idle = \"200ms\"", "").await;
    // role chunk, then silence
    a.push(stream_reply("m-a", &["never"]).hold_before(1, &Gate::new()));
    b.push(stream_reply("m-b", &["Hello", " world"]));
    let r = p.chat(user_stream("default")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-understudy-provider"), Some("b"));
    let data = r.sse_data();
    let text: String = data
        .iter()
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(text, "Hello world", "nothing of a reached the client");
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test]
async fn a_stream_that_ends_or_breaks_before_content_fails_over() {
    for bad in [
        Reply::sse(&["[DONE]"]),
        stream_reply("m-a", &[]).end(End::Drop),
        Reply::sse(&["{not json"]),
    ] {
        let (a, b, p) = two("").await;
        let mut bad = bad;
        if matches!(bad.end, End::Drop) {
            bad.events.truncate(1); // role chunk, then the connection drops
        }
        a.push(bad);
        b.push(stream_reply("m-b", &["ok"]));
        let r = p.chat(user_stream("default")).await;
        assert_eq!(r.header("x-understudy-provider"), Some("b"), "{}", r.text());
        assert_eq!(r.header("x-understudy-attempts"), Some("2"));
        assert_eq!(a.count(), 1);
    }
}

#[tokio::test]
async fn a_mid_stream_failure_sends_content_then_a_final_error_event() {
    let (a, b, p) = two("").await;
    let mut r = stream_reply("m-a", &["Hel", "lo"]);
    r.events.truncate(3); // role, "Hel", "lo" — then the connection drops
    a.push(r.end(End::Drop));
    let resp = p.chat(user_stream("default")).await;
    assert_eq!(resp.status, 200);
    let data = resp.sse_data();
    assert!(data[0].contains("\"role\":\"assistant\""), "{data:?}");
    assert!(
        data[1].contains("Hel") && data[2].contains("lo"),
        "{data:?}"
    );
    let last: serde_json::Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "upstream_error", "{data:?}");
    assert!(
        !data.iter().any(|d| d == "[DONE]"),
        "no [DONE] after the error"
    );
    assert_eq!(b.count(), 0, "committed: no silent switch");
}

#[tokio::test]
async fn an_idle_gap_after_content_ends_the_stream_with_a_timeout_event() {
    let (a, _b, p) = two("[timeouts]\nidle = \"200ms\"\n").await;
    // role, "Hi" and "there" in one piece, so no idle gap can fall between them; then
    // nothing more: only the idle timeout can end the stream
    let mut reply = stream_reply("m-a", &["Hi", "there"]);
    let first: Vec<u8> = reply.events.drain(..3).flat_map(|(_, b)| b).collect();
    reply.events.insert(0, (Duration::ZERO, first.into()));
    a.push(reply.hold_before(1, &Gate::new()));
    let resp = p.chat(user_stream("default")).await;
    let data = resp.sse_data();
    let last: serde_json::Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_timeout", "{data:?}");
}

#[tokio::test]
async fn stream_events_are_forwarded_as_they_arrive_and_end_with_done() {
    let (a, _b, p) = two("").await;
    // the role chunk and "one" go out; the rest waits upstream until the client has
    // seen "one"
    let held = Gate::new();
    a.push(stream_reply("m-a", &["one", "two", "three"]).hold_before(2, &held));
    let mut resp = open_stream(&p.url("/v1/chat/completions"), user_stream("default")).await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let first = read_until(resp.body_mut(), "one").await;
    assert!(!first.contains("three"));
    held.open();
    let rest = read_until(resp.body_mut(), "[DONE]").await;
    assert!(rest.contains("three"));
    assert!(!rest.contains("\"usage\""), "usage only when asked for");
}

#[tokio::test]
async fn two_events_that_arrive_in_one_upstream_read_reach_the_client_without_waiting_for_a_third()
{
    let (a, _b, p) = two("").await;
    // pieces: role, "one", then "two" and "three" written together as one piece; the
    // rest ("four", finish, usage, [DONE]) stays upstream until the client saw "three"
    let mut reply = stream_reply("m-a", &["one", "two", "three", "four"]);
    let together: Vec<u8> = reply.events.drain(2..4).flat_map(|(_, b)| b).collect();
    reply.events.insert(2, (Duration::ZERO, together.into()));
    let held = Gate::new();
    a.push(reply.hold_before(3, &held));
    let mut resp = open_stream(&p.url("/v1/chat/completions"), user_stream("default")).await;
    // the gate stays shut until "three" is seen: a proxy that waited for one more
    // read after "two" would never deliver it, and the read would time out
    let seen = read_until(resp.body_mut(), "\"three\"").await;
    assert!(seen.contains("\"two\""), "{seen}");
    assert!(!seen.contains("\"four\""), "{seen}");
    held.open();
    let rest = read_until(resp.body_mut(), "[DONE]").await;
    assert!(rest.contains("\"four\""), "{rest}");
}

#[tokio::test]
async fn the_usage_chunk_is_sent_only_when_asked_for() {
    let (a, _b, p) = two("").await;
    a.push(stream_reply("m-a", &["x"]));
    let mut body = user_stream("default");
    body["stream_options"] = json!({"include_usage": true});
    let data = p.chat(body).await.sse_data();
    let usage: serde_json::Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["total_tokens"], 7);
    assert_eq!(data.last().unwrap(), "[DONE]");
    // all chunks carry the upstream's id and model
    for d in &data[..data.len() - 1] {
        let c: serde_json::Value = serde_json::from_str(d).unwrap();
        assert_eq!(
            (c["id"].as_str(), c["model"].as_str()),
            (Some("chatcmpl-mock1"), Some("m-a"))
        );
    }
}

#[tokio::test]
async fn a_chat_client_gets_the_upstreams_events_byte_for_byte_but_usage_only_when_asked() {
    let (a, _b, p) = two("").await;
    let reply = stream_reply("m-a", &["one", "two"]);
    // the mock writes keys in sorted order, which re-encoding the canonical chunk
    // (id, object, created, model, choices) would not keep
    let upstream: Vec<String> = reply
        .events
        .iter()
        .flat_map(|(_, b)| {
            String::from_utf8(b.to_vec())
                .unwrap()
                .split("\n\n")
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter_map(|e| e.strip_prefix("data: ").map(str::to_string))
        .collect();
    assert!(upstream[1].starts_with(r#"{"choices":"#), "{}", upstream[1]);
    a.push(reply.clone());
    a.push(reply);
    let data = p.chat(user_stream("default")).await.sse_data();
    let without_usage: Vec<&String> = upstream
        .iter()
        .filter(|d| !d.contains("\"usage\""))
        .collect();
    assert_eq!(data.iter().collect::<Vec<_>>(), without_usage);
    let mut body = user_stream("default");
    body["stream_options"] = json!({"include_usage": true});
    assert_eq!(p.chat(body).await.sse_data(), upstream);
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_cancels_the_upstream() {
    let (a, _b, p) = two("").await;
    let words: Vec<String> = (0..50).map(|i| format!("w{i} ")).collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    a.push(
        stream_reply("m-a", &refs)
            .gap(Duration::from_millis(100))
            .end(End::Hang),
    );
    let mut resp = open_stream(&p.url("/v1/chat/completions"), user_stream("default")).await;
    read_until(resp.body_mut(), "w1 ").await;
    assert_eq!(a.cancelled.load(std::sync::atomic::Ordering::SeqCst), 0);
    drop(resp);
    let cancelled = eventually(Duration::from_secs(20), || {
        a.cancelled.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    assert!(cancelled, "the upstream stream was not cancelled");
    let url = p.url("/metrics");
    let url = &url;
    let inflight = eventually_async(Duration::from_secs(20), move || async move {
        get(url)
            .await
            .text()
            .contains("understudy_inflight_requests 0")
    })
    .await;
    assert!(inflight);
    let metrics = get(&p.url("/metrics")).await.text();
    assert!(
        metrics.contains("understudy_inflight_requests 0"),
        "{metrics}"
    );
}
