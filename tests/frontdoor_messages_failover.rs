//! Failover and failures of the Messages front door (DESIGN §4, §7, §8): silent
//! failover before content, an `error` event after it, upstream 400s passed on without
//! failover, and every failure in Anthropic's error shape with the status and the
//! exception class the `anthropic` Python SDK expects.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;
mod messages_common;

use common::*;
use messages_common::*;
use serde_json::json;

// ---------------------------------------------------------------------------------
// Failover

#[tokio::test]
async fn an_overloaded_lead_fails_over_silently_before_content() {
    let s = setup(&[ANTHROPIC, OPENAI]).await;
    let (ant, oai) = (s.mock(0), s.mock(1));
    ant.push(Reply::json(529, ANT_OVERLOADED));
    ant.push(Reply::json(529, ANT_OVERLOADED));
    oai.push(Reply::json(
        200,
        completion("gpt-4o-2024-08-06", "From the backup"),
    ));
    oai.push(stream_reply("gpt-4o-2024-08-06", &["From", " the backup"]));
    let results = anthropic_sdk(
        &s.proxy,
        CLIENT_KEY,
        json!([
            {"kind": "create", "request": hello()},
            {"kind": "stream", "request": hello()},
        ]),
    )
    .await;
    for r in &results {
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["text"], "From the backup");
        assert_eq!(r["model"], "gpt-4o-2024-08-06");
        assert_eq!(r["headers"]["x-understudy-provider"], "oai", "{r}");
        assert_eq!(r["headers"]["x-understudy-model"], "gpt-4o");
        assert_eq!(r["headers"]["x-understudy-attempts"], "2");
    }
    assert_eq!(ant.count(), 2);
    assert_eq!(oai.count(), 2);
}

#[tokio::test]
async fn an_error_event_before_content_fails_over_silently() {
    // Anthropic's overloaded_error inside a 200 stream, before any content.
    let s = setup(&[ANTHROPIC, OPENAI]).await;
    let (ant, oai) = (s.mock(0), s.mock(1));
    ant.push(sse(concat!(
        "event: message_start\n",
        r#"data: {"type":"message_start","message":{"model":"claude-sonnet-4-5-20250929","id":"msg_01early","type":"message","role":"assistant","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":1}}}"#,
        "\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\n",
        "event: error\n",
        r#"data: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#,
        "\n\n"
    )));
    oai.push(stream_reply("gpt-4o-2024-08-06", &["backup"]));
    let mut req = hello();
    req["stream"] = json!(true);
    let r = post_as_sdk(&s.proxy, &req).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("oai"));
    let evs = events(&r);
    assert_eq!(
        evs.iter().filter(|(n, _)| n == "message_start").count(),
        1,
        "one message_start: {}",
        r.text()
    );
    assert!(evs.iter().all(|(n, _)| n != "error"), "{}", r.text());
    assert_eq!(names(&evs).last(), Some(&"message_stop"));
    let text: String = evs
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "backup");
}

/// A stream that sends `Hel` and then breaks.
fn broken_openai_stream() -> Reply {
    let mut r = stream_reply("gpt-4o-2024-08-06", &["Hel", "lo"]);
    r.events.truncate(2);
    r.end(End::Drop)
}

#[tokio::test]
async fn a_failure_after_content_ends_the_stream_with_an_error_event() {
    let s = setup(&[OPENAI, ANTHROPIC]).await;
    let (oai, ant) = (s.mock(0), s.mock(1));
    oai.push(broken_openai_stream());
    oai.push(broken_openai_stream());
    let mut req = hello();
    req["stream"] = json!(true);
    let r = post_as_sdk(&s.proxy, &req).await;
    assert_eq!(r.status, 200);
    let evs = events(&r);
    let names = names(&evs);
    assert_eq!(
        &names[..3],
        [
            "message_start",
            "content_block_start",
            "content_block_delta"
        ],
        "{}",
        r.text()
    );
    let (last, data) = evs.last().unwrap();
    assert_eq!(last, "error", "the error event is the last: {}", r.text());
    assert_eq!(data["type"], "error");
    assert_eq!(data["error"]["type"], "api_error", "{data}");
    assert!(data["error"]["message"].is_string(), "{data}");
    assert!(
        !names.contains(&"message_stop"),
        "no message_stop after a failure: {}",
        r.text()
    );
    // the SDK sees the text, then raises
    let sdk = sdk_one(&s.proxy, json!({"kind": "raw_stream", "request": hello()})).await;
    assert_eq!(sdk["ok"], false, "{sdk}");
    assert_eq!(sdk["error"], "APIStatusError", "{sdk}");
    assert!(sdk["type"].is_string(), "{sdk}");
    let got: String = sdk["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(got, "Hel");
    assert_eq!(ant.count(), 0, "no failover after content");
}

#[tokio::test]
async fn an_upstream_error_event_after_content_reaches_the_client() {
    let s = setup(&[ANTHROPIC, OPENAI]).await;
    let (ant, oai) = (s.mock(0), s.mock(1));
    ant.push(sse(ANT_ERROR_MIDSTREAM_SSE));
    let sdk = sdk_one(&s.proxy, json!({"kind": "raw_stream", "request": hello()})).await;
    assert_eq!(sdk["ok"], false, "{sdk}");
    assert_eq!(sdk["error"], "APIStatusError", "{sdk}");
    assert!(sdk["type"].is_string(), "{sdk}");
    let got: String = sdk["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(got, "The three primary colors are red,");
    assert_eq!(oai.count(), 0, "no failover after content");
}

#[tokio::test]
async fn an_upstream_overloaded_error_after_content_keeps_its_type() {
    let s = setup(&[ANTHROPIC, OPENAI]).await;
    s.mock(0).push(sse(ANT_ERROR_MIDSTREAM_SSE));
    let sdk = sdk_one(&s.proxy, json!({"kind": "raw_stream", "request": hello()})).await;
    assert_eq!(sdk["ok"], false, "{sdk}");
    assert_eq!(sdk["type"], "overloaded_error", "{sdk}");
}

#[tokio::test]
async fn a_native_stream_that_breaks_after_content_ends_with_an_error_event() {
    let s = setup(&[ANTHROPIC, OPENAI]).await;
    let (ant, oai) = (s.mock(0), s.mock(1));
    // stream_text.sse up to its first text delta, then the connection drops
    let cut = ANT_TEXT_SSE.find("\"Hello\"").unwrap();
    let cut = cut + ANT_TEXT_SSE[cut..].find("\n\n").unwrap() + 2;
    ant.push(Reply::raw(200, "text/event-stream", &[&ANT_TEXT_SSE[..cut]]).end(End::Drop));
    let mut req = hello();
    req["stream"] = json!(true);
    let r = post_as_sdk(&s.proxy, &req).await;
    assert_eq!(r.status, 200);
    let evs = events(&r);
    let names = names(&evs);
    assert_eq!(
        names.iter().filter(|n| **n == "message_start").count(),
        1,
        "{}",
        r.text()
    );
    assert!(names.contains(&"content_block_delta"), "{}", r.text());
    let (last, data) = evs.last().unwrap();
    assert_eq!(last, "error", "the error event is the last: {}", r.text());
    assert_eq!(data["type"], "error");
    assert!(data["error"]["type"].is_string(), "{data}");
    assert!(!names.contains(&"message_stop"), "{}", r.text());
    assert_eq!(oai.count(), 0, "no failover after content");
}

#[tokio::test]
async fn a_bad_provider_key_fails_over_and_the_client_never_sees_it() {
    let s = setup(&[ANTHROPIC, OPENAI]).await;
    s.mock(0).push(Reply::json(
        401,
        include_str!("../fixtures/anthropic/error_authentication.json"),
    ));
    s.mock(1).push(stream_reply("gpt-4o-2024-08-06", &["fine"]));
    let r = sdk_one(&s.proxy, json!({"kind": "stream", "request": hello()})).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["text"], "fine");
    assert_eq!(r["headers"]["x-understudy-provider"], "oai");
    assert_eq!(r["headers"]["x-understudy-attempts"], "2");
}

// ---------------------------------------------------------------------------------
// Errors in Anthropic's shape, and the SDK's exception classes

#[tokio::test]
async fn every_target_overloaded_is_a_529_overloaded_error() {
    let s = setup(&[ANTHROPIC, OPENAI]).await;
    s.mock(0).always(Reply::json(529, ANT_OVERLOADED));
    s.mock(1)
        .always(Reply::json(529, r#"{"error":{"message":"overloaded"}}"#));
    let r = post_as_sdk(&s.proxy, &hello()).await;
    assert_eq!(r.status, 529, "{}", r.text());
    assert_eq!(anthropic_error(&r), "overloaded_error");
    let results = anthropic_sdk(
        &s.proxy,
        CLIENT_KEY,
        json!([
            {"kind": "create", "request": hello()},
            {"kind": "stream", "request": hello()},
        ]),
    )
    .await;
    for e in &results {
        assert_eq!(e["ok"], false, "{e}");
        assert_eq!(e["status"], 529);
        assert_eq!(e["error"], "OverloadedError", "{e}");
        assert!(
            e["bases"]
                .as_array()
                .unwrap()
                .contains(&json!("InternalServerError")),
            "{e}"
        );
        assert_eq!(e["type"], "overloaded_error");
    }
}

#[tokio::test]
async fn a_rate_limit_is_a_429_rate_limit_error_with_retry_after() {
    let s = setup(&[ANTHROPIC, OPENAI]).await;
    s.mock(0)
        .always(Reply::json(429, ANT_RATE_LIMIT).header("retry-after", "30"));
    s.mock(1).always(
        Reply::json(429, r#"{"error":{"message":"slow down"}}"#).header("retry-after", "30"),
    );
    let r = post_as_sdk(&s.proxy, &hello()).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(anthropic_error(&r), "rate_limit_error");
    let secs: u64 = r
        .header("retry-after")
        .expect("retry-after")
        .parse()
        .expect("whole seconds");
    assert!((1..=30).contains(&secs), "{secs}");
    let results = anthropic_sdk(
        &s.proxy,
        CLIENT_KEY,
        json!([
            {"kind": "create", "request": hello()},
            {"kind": "stream", "request": hello()},
        ]),
    )
    .await;
    for e in &results {
        assert_eq!(e["error"], "RateLimitError", "{e}");
        assert_eq!(e["status"], 429);
        assert_eq!(e["type"], "rate_limit_error");
        assert!(e["retry_after"].is_string(), "{e}");
    }
}

#[tokio::test]
async fn server_errors_everywhere_are_an_api_error() {
    let s = setup(&[ANTHROPIC, OPENAI]).await;
    s.mock(0).always(Reply::json(
        500,
        r#"{"type":"error","error":{"type":"api_error","message":"boom"}}"#,
    ));
    s.mock(1)
        .always(Reply::json(502, r#"{"error":{"message":"bad gateway"}}"#));
    let r = post_as_sdk(&s.proxy, &hello()).await;
    assert!(
        r.status >= 500 && r.status != 529,
        "{} {}",
        r.status,
        r.text()
    );
    assert_eq!(anthropic_error(&r), "api_error");
    let e = sdk_one(&s.proxy, json!({"kind": "create", "request": hello()})).await;
    assert!(
        e["bases"]
            .as_array()
            .unwrap()
            .contains(&json!("InternalServerError")),
        "{e}"
    );
    assert_eq!(e["type"], "api_error");
}

#[tokio::test]
async fn an_unknown_model_is_a_not_found_error() {
    let s = setup(&[OPENAI]).await;
    let mut req = hello();
    req["model"] = json!("no-such-model");
    let r = post_as_sdk(&s.proxy, &req).await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(anthropic_error(&r), "not_found_error");
    let e = sdk_one(&s.proxy, json!({"kind": "create", "request": req})).await;
    assert_eq!(e["error"], "NotFoundError", "{e}");
    assert_eq!(e["type"], "not_found_error");
    assert_eq!(s.mock(0).count(), 0);
}

#[tokio::test]
async fn client_keys_come_as_x_api_key_or_bearer_and_a_wrong_one_is_401() {
    let s = setup(&[OPENAI]).await;
    s.mock(0)
        .always(Reply::json(200, completion("gpt-4o", "ok")));
    let results = anthropic_sdk(
        &s.proxy,
        CLIENT_KEY,
        json!([
            {"kind": "create", "request": hello()},
            {"kind": "create", "request": hello(), "auth": "bearer"},
            {"kind": "create", "request": hello(), "api_key": "wrong-key"},
            {"kind": "stream", "request": hello(), "api_key": "wrong-key"},
            {"kind": "create", "request": hello(), "auth": "bearer", "api_key": "wrong-key"},
        ]),
    )
    .await;
    assert_eq!(results[0]["ok"], true, "x-api-key: {}", results[0]);
    assert_eq!(results[1]["ok"], true, "bearer: {}", results[1]);
    for e in &results[2..] {
        assert_eq!(e["error"], "AuthenticationError", "{e}");
        assert_eq!(e["status"], 401);
        assert_eq!(e["type"], "authentication_error");
    }
    assert_eq!(s.mock(0).count(), 2);
    // raw: no key at all, and a wrong x-api-key
    let none = post(&s.proxy, &[("anthropic-version", "2023-06-01")], &hello()).await;
    assert_eq!(none.status, 401);
    assert_eq!(anthropic_error(&none), "authentication_error");
    let wrong = post(&s.proxy, &[("x-api-key", "nope")], &hello()).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(anthropic_error(&wrong), "authentication_error");
    assert!(!wrong.text().contains("nope"), "the key is not echoed");
}

#[tokio::test]
async fn a_block_no_target_can_express_is_a_400_before_any_call() {
    let s = setup(&[OPENAI, GEMINI]).await;
    let document = json!({
        "model": "default",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "A contract."}},
            {"type": "text", "text": "Summarise it."},
        ]}],
    });
    let r = post_as_sdk(&s.proxy, &document).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(anthropic_error(&r), "invalid_request_error");
    assert!(
        r.text().contains("document"),
        "names the block: {}",
        r.text()
    );
    let e = sdk_one(&s.proxy, json!({"kind": "create", "request": document})).await;
    assert_eq!(e["error"], "BadRequestError", "{e}");
    assert_eq!(e["type"], "invalid_request_error");
    let mut streamed = document.clone();
    streamed["stream"] = json!(true);
    let r = post_as_sdk(&s.proxy, &streamed).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(s.mock(0).count() + s.mock(1).count(), 0, "no upstream call");
}

#[tokio::test]
async fn malformed_requests_are_invalid_request_errors() {
    let s = setup(&[OPENAI]).await;
    let cases = [
        json!({"model": "default", "messages": [{"role": "user", "content": "hi"}]}),
        json!({"model": "default", "max_tokens": 10, "messages": []}),
        json!({"model": "default", "max_tokens": 10, "messages": "hi"}),
        json!({"model": "default", "max_tokens": 10, "messages": [{"role": "robot", "content": "hi"}]}),
        json!({"model": "default", "max_tokens": 10, "messages": [{"role": "user", "content": [{"text": "untyped"}]}]}),
        json!({"model": "default", "max_tokens": 10, "tool_choice": {"type": "sometimes"},
               "messages": [{"role": "user", "content": "hi"}]}),
    ];
    for body in &cases {
        let r = post_as_sdk(&s.proxy, body).await;
        assert_eq!(r.status, 400, "{body} -> {}", r.text());
        assert_eq!(anthropic_error(&r), "invalid_request_error", "{body}");
    }
    let r = send(
        &s.proxy.url("/v1/messages"),
        "POST",
        &[("x-api-key", CLIENT_KEY)],
        "{not json",
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(anthropic_error(&r), "invalid_request_error");
    assert_eq!(s.mock(0).count(), 0);
}

#[tokio::test]
async fn an_upstream_400_is_an_invalid_request_error_without_failover() {
    let s = setup(&[OPENAI, GEMINI]).await;
    s.mock(0).push(Reply::json(
        400,
        r#"{"error":{"message":"max_tokens is too large: 128000. This model supports at most 16384 completion tokens.","type":"invalid_request_error","param":"max_tokens","code":"invalid_value"}}"#,
    ));
    let r = post_as_sdk(&s.proxy, &hello()).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(anthropic_error(&r), "invalid_request_error");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens is too large"),
        "the provider's message: {}",
        r.text()
    );
    assert_eq!(s.mock(1).count(), 0, "no failover on a bad request");
}

#[tokio::test]
async fn an_anthropic_400_reaches_the_client_as_it_was_without_failover() {
    let s = setup(&[ANTHROPIC, OPENAI]).await;
    s.mock(0).push(Reply::json(
        400,
        include_str!("../fixtures/anthropic/error_invalid_request.json"),
    ));
    let e = sdk_one(&s.proxy, json!({"kind": "create", "request": hello()})).await;
    assert_eq!(e["error"], "BadRequestError", "{e}");
    assert_eq!(e["type"], "invalid_request_error");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("Input should be a valid dictionary"),
        "the provider's message: {e}"
    );
    assert_eq!(s.mock(1).count(), 0, "no failover on a bad request");
}
