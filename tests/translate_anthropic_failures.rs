//! The Anthropic provider when things go wrong: error events inside a 200 stream
//! before and after content, failover from Anthropic as the lead, bad requests
//! returned without failover, and 200s that are not a Messages answer. The official
//! `openai` SDK talks to the proxy; an Anthropic mock replays `fixtures/anthropic/`
//! and an OpenAI-kind mock stands by as the second target.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;
mod translate_anthropic_common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use serde_json::{json, Value};
use translate_anthropic_common::*;

// ---------------------------------------------------------------------------------
// 5. Error events inside a 200 stream

/// A stream that starts (message_start, a ping) and then reports `overloaded_error`.
fn overloaded_before_content() -> String {
    let start = TEXT_SSE.split("\n\n").next().unwrap();
    format!(
        "{start}\n\nevent: ping\ndata: {{\"type\": \"ping\"}}\n\nevent: error\ndata: {{\"type\": \"error\", \"error\": {{\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}}}\n\n"
    )
}

#[tokio::test]
async fn an_overloaded_event_before_content_fails_over_silently() {
    let s = setup().await;
    let early = overloaded_before_content();
    s.anthropic.push(anthropic_stream(&early));
    s.anthropic.push(anthropic_stream(&early));
    s.openai.push(stream_reply(GPT, &["from", " openai"]));
    s.openai.push(stream_reply(GPT, &["again"]));
    let results = s
        .sdk(json!([{"kind": "stream", "request": {"model": "default", "messages": msgs()}}]))
        .await;
    let r = &results[0];
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["content"], "from openai");
    assert_eq!(r["finish_reason"], "stop");
    assert_eq!(r["models"], json!([GPT]), "nothing of Anthropic's leaked");
    assert_eq!(r["ids"], json!(["chatcmpl-mock1"]));

    let raw = s
        .chat(&json!({"model": "default", "stream": true, "messages": msgs()}))
        .await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.header("x-understudy-provider"), Some("openai"));
    assert_eq!(raw.header("x-understudy-attempts"), Some("2"));
    assert!(!raw.text().contains("msg_01VxEz"), "{}", raw.text());
    assert!(!raw.text().contains("error"), "{}", raw.text());
    assert_eq!(s.anthropic.count(), 2);
    assert_eq!(s.openai.count(), 2);
    assert_eq!(
        s.openai.received()[0].headers["authorization"],
        format!("Bearer {OPENAI_KEY}")
    );
}

#[tokio::test]
async fn an_overloaded_error_in_a_200_body_fails_over() {
    let s = setup().await;
    s.anthropic.push(Reply::json(200, ERROR_OVERLOADED));
    s.openai
        .push(Reply::json(200, completion(GPT, "from openai")));
    let r = s
        .chat(&json!({"model": "default", "messages": msgs()}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["choices"][0]["message"]["content"], "from openai");
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
}

/// The mid-stream error fixture in three parts: everything up to and including the
/// first text delta, the second text delta, the `error` event.
fn midstream_parts() -> (&'static str, &'static str, &'static str) {
    let second = ERROR_MIDSTREAM_SSE
        .match_indices("event: content_block_delta")
        .nth(1)
        .unwrap()
        .0;
    let error = ERROR_MIDSTREAM_SSE.find("event: error").unwrap();
    (
        &ERROR_MIDSTREAM_SSE[..second],
        &ERROR_MIDSTREAM_SSE[second..error],
        &ERROR_MIDSTREAM_SSE[error..],
    )
}

/// The text of the content chunks among `datas`.
fn text_of(datas: &[String]) -> String {
    datas
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect()
}

#[tokio::test]
async fn an_overloaded_event_after_content_is_the_final_error_event() {
    let s = setup().await;
    // Each part in its own read (200 ms apart): the first content is committed to the
    // client before the error arrives.
    let (head, second, error) = midstream_parts();
    let reply = || {
        let mut r = anthropic_stream(head);
        let n = r.events.len();
        r.events.push((Duration::ZERO, Bytes::from(second)));
        r.events.push((Duration::ZERO, Bytes::from(error)));
        r.gap_before(n, Duration::from_millis(200))
            .gap_before(n + 1, Duration::from_millis(200))
    };
    s.anthropic.push(reply()).push(reply());
    let results = s
        .sdk(json!([{"kind": "stream", "request": {"model": "default", "messages": msgs()}}]))
        .await;
    let r = &results[0];
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["error"], "APIError", "{r}");
    assert!(r["message"].as_str().unwrap().contains("Overloaded"), "{r}");

    let raw = s
        .chat(&json!({"model": "default", "stream": true, "messages": msgs()}))
        .await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.header("x-understudy-provider"), Some("anthropic"));
    let datas = raw.sse_data();
    assert!(!datas.iter().any(|d| d == "[DONE]"), "{}", raw.text());
    let last: Value = serde_json::from_str(datas.last().unwrap()).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Overloaded"),
        "{last}"
    );
    assert_eq!(
        text_of(&datas[..datas.len() - 1]),
        "The three primary colors are red,",
        "the content came first"
    );
    assert_eq!(s.openai.count(), 0, "no silent switch after content");
}

/// Events decoded from one network read are translated together; when a later one
/// fails, what the earlier ones produced must still reach the client before the error
/// event. Here the second text delta and the error event arrive in the same read
/// after the stream was committed: the client must still get " are red,".
#[tokio::test]
async fn content_read_together_with_a_later_error_event_still_reaches_the_client() {
    let s = setup().await;
    let (head, second, error) = midstream_parts();
    let mut reply = Reply::raw(
        200,
        "text/event-stream",
        &[head, &format!("{second}{error}")],
    );
    reply = reply.gap_before(1, Duration::from_millis(200));
    s.anthropic.push(reply);
    let raw = s
        .chat(&json!({"model": "default", "stream": true, "messages": msgs()}))
        .await;
    let datas = raw.sse_data();
    assert!(
        datas.last().unwrap().contains("Overloaded"),
        "{}",
        raw.text()
    );
    assert_eq!(
        text_of(&datas),
        "The three primary colors are red,",
        "{}",
        raw.text()
    );
}

// ---------------------------------------------------------------------------------
// 6. Failover from Anthropic as the lead

#[tokio::test]
async fn anthropic_529_then_429_with_retry_after_hands_over_to_openai() {
    let s = setup().await;
    s.anthropic.push(
        Reply::json(529, ERROR_OVERLOADED).header("request-id", "req_011CSHoEeqs5C35K2UUqR7Fy"),
    );
    s.anthropic
        .push(Reply::json(429, ERROR_RATE_LIMIT).header("retry-after", "600"));
    s.anthropic.always(Reply::json(200, TEXT_JSON));
    s.openai
        .always(Reply::json(200, completion(GPT, "from openai")));

    let results = s
        .sdk(json!([{"kind": "complete", "request": {"model": "default", "messages": msgs()}}]))
        .await;
    let r = &results[0];
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["content"], "from openai");
    assert_eq!(r["model"], GPT);
    assert_eq!(r["headers"]["x-understudy-provider"], "openai");
    assert_eq!(r["headers"]["x-understudy-model"], "gpt-4o");
    assert_eq!(r["headers"]["x-understudy-attempts"], "2");
    assert_eq!(s.anthropic.count(), 1);
    // 529 is no rate limit: Anthropic is tried again on the next request
    let since = std::time::Instant::now();
    let r = s
        .chat(&json!({"model": "default", "messages": msgs()}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("openai"));
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
    assert_eq!(s.anthropic.count(), 2, "the 429");
    // now Anthropic cools down for 600 s: nothing more reaches it
    for i in 0..3 {
        let stream = i == 1;
        if stream {
            s.openai.push(stream_reply(GPT, &["from openai"]));
        }
        let r = s
            .chat(&json!({"model": "default", "stream": stream, "messages": msgs()}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-understudy-provider"), Some("openai"), "{i}");
        assert_eq!(r.header("x-understudy-attempts"), Some("1"), "{i}: skipped");
    }
    assert_eq!(
        s.anthropic.count(),
        2,
        "no request reaches a cooling target"
    );
    assert_eq!(s.openai.count(), 5);
    let status = get(&s.proxy.url("/status")).await.json();
    let cooldowns = status["cooldowns"].as_array().unwrap();
    assert_eq!(cooldowns.len(), 1, "{status}");
    assert_eq!(cooldowns[0]["target"], "anthropic/claude-sonnet-4-5");
    let left = cooldowns[0]["seconds_left"].as_f64().unwrap();
    assert!((least_left(600.0, since)..=600.0).contains(&left), "{left}");
}

#[tokio::test]
async fn anthropic_529_fails_over_for_streams_too_and_401_fails_over() {
    let s = setup().await;
    s.anthropic.push(Reply::json(529, ERROR_OVERLOADED));
    s.anthropic.push(Reply::json(401, ERROR_AUTHENTICATION));
    s.openai.push(stream_reply(GPT, &["from", " openai"]));
    s.openai
        .push(Reply::json(200, completion(GPT, "from openai")));
    let results = s
        .sdk(json!([
            {"kind": "stream", "request": {"model": "default", "messages": msgs()}},
            {"kind": "complete", "request": {"model": "default", "messages": msgs()}},
        ]))
        .await;
    assert_eq!(results[0]["ok"], true, "{}", results[0]);
    assert_eq!(results[0]["content"], "from openai");
    assert_eq!(results[1]["ok"], true, "{}", results[1]);
    assert_eq!(results[1]["headers"]["x-understudy-attempts"], "2");
    assert_eq!((s.anthropic.count(), s.openai.count()), (2, 2));
}

// ---------------------------------------------------------------------------------
// 7. Bad requests

#[tokio::test]
async fn anthropic_400_is_returned_with_its_message_without_failover() {
    let s = setup().await;
    s.anthropic.push(Reply::json(400, ERROR_INVALID_REQUEST));
    s.anthropic.push(Reply::json(400, ERROR_INVALID_REQUEST));
    let results = s
        .sdk(json!([
            {"kind": "complete", "request": {"model": "default", "messages": msgs()}},
            {"kind": "stream", "request": {"model": "default", "messages": msgs()}},
        ]))
        .await;
    for r in &results {
        assert_eq!(r["ok"], false, "{r}");
        assert_eq!(r["status"], 400, "{r}");
        assert_eq!(r["error"], "BadRequestError");
        assert_eq!(r["type"], "invalid_request_error");
        assert!(
            r["message"].as_str().unwrap().contains(
                "messages.1.content.0.tool_use.input: Input should be a valid dictionary"
            ),
            "{r}"
        );
    }
    assert_eq!(s.anthropic.count(), 2);
    assert_eq!(s.openai.count(), 0, "the same request fails everywhere");
}

#[tokio::test]
async fn requests_anthropic_cannot_express_go_to_a_target_that_can_else_400() {
    let s = setup().await;
    s.anthropic.always(Reply::json(200, TEXT_JSON));
    s.openai.always(Reply::json(200, completion(GPT, "x")));
    let n2 = json!({"model": "default", "n": 2, "messages": msgs()});
    let bad_args = json!({"model": "default", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "x"}
    ]});
    // the route goes on to OpenAI, which takes the request as it is
    for body in [&n2, &bad_args] {
        for stream in [false, true] {
            let mut body = body.clone();
            body["stream"] = json!(stream);
            if stream {
                s.openai.push(stream_reply(GPT, &["x"]));
            }
            let r = s.chat(&body).await;
            assert_eq!(r.status, 200, "{body}: {}", r.text());
            assert_eq!(r.header("x-understudy-provider"), Some("openai"));
            assert_eq!(
                r.header("x-understudy-attempts"),
                Some("1"),
                "skipped targets don't count"
            );
        }
    }
    assert_eq!(
        s.anthropic.count(),
        0,
        "nothing Anthropic cannot express reaches it"
    );
    // Anthropic alone: 400 before any call
    let mut alone = n2.clone();
    alone["model"] = json!("anthropic/claude-sonnet-4-5");
    for stream in [false, true] {
        alone["stream"] = json!(stream);
        let r = s.chat(&alone).await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(r.json()["error"]["type"], "invalid_request_error");
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(
            msg.contains("'n'") && msg.contains("anthropic/claude-sonnet-4-5"),
            "{msg}"
        );
    }
    alone["stream"] = json!(false);
    let results = s.sdk(json!([{"kind": "complete", "request": alone}])).await;
    assert_eq!(results[0]["error"], "BadRequestError", "{}", results[0]);
    assert_eq!(s.anthropic.count(), 0);
}

// ---------------------------------------------------------------------------------
// 8. Malformed 200s

#[tokio::test]
async fn a_200_that_is_not_a_messages_answer_fails_over() {
    let s = setup().await;
    s.anthropic
        .push(Reply::json(
            200,
            r#"{"id":"msg_1","type":"message","role":"assistant"}"#,
        ))
        .push(Reply::json(200, "<html>bad gateway</html>"))
        .push(Reply::json(
            200,
            r#"{"choices":[{"message":{"content":"hi"}}]}"#,
        ));
    s.openai
        .always(Reply::json(200, completion(GPT, "from openai")));
    for i in 0..3 {
        let r = s
            .chat(&json!({"model": "default", "messages": msgs()}))
            .await;
        assert_eq!(r.status, 200, "{i}: {}", r.text());
        assert_eq!(
            r.json()["choices"][0]["message"]["content"],
            "from openai",
            "{i}"
        );
        assert_eq!(r.header("x-understudy-attempts"), Some("2"), "{i}");
    }
    // a good answer between the failures keeps Anthropic's circuit closed (five
    // failures in a row would open it)
    s.anthropic.push(Reply::json(200, TEXT_JSON));
    let r = s
        .chat(&json!({"model": "default", "messages": msgs()}))
        .await;
    assert_eq!(r.header("x-understudy-provider"), Some("anthropic"));

    // streams: garbage before content, an event before message_start, cut short
    // before any content (that one is a broken stream, not a protocol error)
    s.anthropic
        .push(Reply::raw(200, "text/event-stream", &["data: not json\n\n"]))
        .push(Reply::raw(
            200,
            "text/event-stream",
            &["event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n"],
        ))
        .push(anthropic_stream(
            TEXT_SSE.split("event: content_block_delta").next().unwrap(),
        ));
    s.openai.always(stream_reply(GPT, &["from openai"]));
    for i in 0..3 {
        let r = s
            .chat(&json!({"model": "default", "stream": true, "messages": msgs()}))
            .await;
        assert_eq!(r.status, 200, "{i}: {}", r.text());
        assert_eq!(r.header("x-understudy-provider"), Some("openai"), "{i}");
        assert_eq!(r.header("x-understudy-attempts"), Some("2"), "{i}");
        assert!(!r.text().contains("msg_01"), "{i}: {}", r.text());
        assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));
    }
    assert_eq!((s.anthropic.count(), s.openai.count()), (7, 6));
    let metrics = get(&s.proxy.url("/metrics")).await.text();
    let count = |outcome: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("understudy_attempts_total")
                    && l.contains("provider=\"anthropic\"")
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {outcome} line: {metrics}"))
    };
    assert_eq!(count("protocol"), 5.0);
    assert_eq!(count("stream"), 1.0);
}

#[tokio::test]
async fn openai_only_tool_types_skip_anthropic_and_reach_openai_untouched() {
    let s = setup().await;
    s.openai
        .push(Reply::json(200, completion(GPT, "used the custom tool")));
    let tools =
        json!([{"type": "custom", "custom": {"name": "code_exec", "description": "runs code"}}]);
    let choice = json!({"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [{"type": "custom", "custom": {"name": "code_exec"}}]}});
    let r = s
        .chat(
            &json!({"model": "default", "messages": msgs(), "tools": tools, "tool_choice": choice}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("openai"));
    assert_eq!(s.anthropic.count(), 0);
    let sent = s.openai.received()[0].json();
    assert_eq!(sent["tools"], tools);
    assert_eq!(sent["tool_choice"], choice);
}
