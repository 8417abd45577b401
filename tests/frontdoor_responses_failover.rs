//! Failover and failures of the Responses API front door (DESIGN §4, §7): a failure
//! before the first text or argument delta fails over silently (one
//! `response.created`, headers of the target that answered), one after it ends the
//! stream with `response.failed`; an Anthropic `error` event before content counts as
//! a failed attempt; the answer cache serves Responses requests too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;
mod responses_common;

use common::*;
use responses_common::*;
use serde_json::json;

async fn two_openai(a: &Mock, b: &Mock) -> Proxy {
    proxy_over(
        &[
            Target {
                name: "a",
                kind: "openai",
                mock: a,
                model: "m-a",
            },
            Target {
                name: "b",
                kind: "openai",
                mock: b,
                model: "m-b",
            },
        ],
        "",
    )
    .await
}

#[tokio::test]
async fn failover_before_content_is_silent() {
    let (a, b) = (Mock::start().await, Mock::start().await);
    let p = two_openai(&a, &b).await;
    let overloaded = Reply::json(503, r#"{"error":{"message":"overloaded"}}"#);
    a.push(overloaded.clone());
    b.push(Reply::json(200, completion(GPT, "from b")));
    let r = create(&p, &json!({"model": "default", "input": "hi"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(output_text(&r.json()), "from b");
    assert_eq!(r.header("x-understudy-provider"), Some("b"));
    assert_eq!(r.header("x-understudy-model"), Some("m-b"));
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));

    // streamed: a 503, then a stream that dies after its role chunk (no content yet)
    a.push(overloaded);
    b.push(
        Reply::sse(&[&chunk(
            GPT,
            json!({"role": "assistant", "content": ""}),
            None,
        )])
        .end(End::Drop),
    );
    let c = Mock::start().await;
    let p3 = proxy_over(
        &[
            Target {
                name: "a",
                kind: "openai",
                mock: &a,
                model: "m-a",
            },
            Target {
                name: "b",
                kind: "openai",
                mock: &b,
                model: "m-b",
            },
            Target {
                name: "c",
                kind: "openai",
                mock: &c,
                model: "m-c",
            },
        ],
        "",
    )
    .await;
    c.push(stream_reply(GPT, &["from", " c"]));
    let r = create(
        &p3,
        &json!({"model": "default", "input": "hi", "stream": true}),
    )
    .await;
    let evs = check_stream(&r);
    assert_eq!(
        r.header("x-understudy-provider"),
        Some("c"),
        "the target that answered"
    );
    assert_eq!(r.header("x-understudy-attempts"), Some("3"));
    assert_eq!(delta_text(&evs), "from c");
    let k = kinds(&evs);
    assert_eq!(
        k.iter().filter(|t| **t == "response.created").count(),
        1,
        "{k:?}"
    );
    assert_eq!(k.last(), Some(&"response.completed"), "{k:?}");
    assert!(
        !k.contains(&"response.failed") && !k.contains(&"error"),
        "{k:?}"
    );
}

#[tokio::test]
async fn a_failure_after_content_ends_the_stream_with_response_failed() {
    let m = Mock::start().await;
    let p = openai_proxy(&m).await;
    let datas = [
        chunk(GPT, json!({"role": "assistant", "content": ""}), None),
        chunk(GPT, json!({"content": "Hel"}), None),
        chunk(GPT, json!({"content": "lo"}), None),
    ];
    let refs: Vec<&str> = datas.iter().map(String::as_str).collect();
    m.push(Reply::sse(&refs).end(End::Drop));
    let r = create(
        &p,
        &json!({"model": "default", "input": "hi", "stream": true}),
    )
    .await;
    let evs = check_stream(&r);
    let k = kinds(&evs);
    assert_eq!(delta_text(&evs), "Hello", "{k:?}");
    assert_eq!(k.last(), Some(&"response.failed"), "the last event: {k:?}");
    assert!(!k.contains(&"response.completed"), "{k:?}");
    let failed = &evs.last().unwrap().data["response"];
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"]["code"], "server_error", "{failed}");
    assert!(
        !failed["error"]["message"].as_str().unwrap_or("").is_empty(),
        "{failed}"
    );
    assert!(
        !r.text().contains("sk-upstream-secret"),
        "no secret in the stream"
    );
}

#[tokio::test]
async fn a_failed_anthropic_lead_fails_over_to_openai_silently() {
    let (ant, oai) = (Mock::start().await, Mock::start().await);
    let p = proxy_over(
        &[
            Target {
                name: "anthropic",
                kind: "anthropic",
                mock: &ant,
                model: "claude-sonnet-4-5",
            },
            Target {
                name: "openai",
                kind: "openai",
                mock: &oai,
                model: "gpt-4o",
            },
        ],
        "",
    )
    .await;
    ant.push(Reply::json(
        529,
        include_str!("../fixtures/anthropic/error_overloaded.json"),
    ));
    oai.push(stream_reply(GPT, &["from", " openai"]));
    let r = create(
        &p,
        &json!({"model": "default", "input": "hi", "stream": true}),
    )
    .await;
    let evs = check_stream(&r);
    assert_eq!(r.header("x-understudy-provider"), Some("openai"));
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
    assert_eq!(delta_text(&evs), "from openai");
    let last = evs.last().unwrap();
    assert_eq!(last.kind(), "response.completed", "{:?}", kinds(&evs));
    assert_eq!(last.data["response"]["model"], GPT);
}

async fn anthropic_then_openai(ant: &Mock, oai: &Mock, extra: &str) -> Proxy {
    proxy_over(
        &[
            Target {
                name: "anthropic",
                kind: "anthropic",
                mock: ant,
                model: "claude-sonnet-4-5",
            },
            Target {
                name: "openai",
                kind: "openai",
                mock: oai,
                model: "gpt-4o",
            },
        ],
        extra,
    )
    .await
}

#[tokio::test]
async fn an_anthropic_error_event_before_content_fails_over_silently() {
    let (ant, oai) = (Mock::start().await, Mock::start().await);
    let p = anthropic_then_openai(&ant, &oai, "").await;
    let start = r#"{"type":"message_start","message":{"model":"claude-sonnet-4-5-20250929","id":"msg_01X","type":"message","role":"assistant","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":1}}}"#;
    let overloaded =
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    ant.push(Reply::raw(
        200,
        "text/event-stream",
        &[&format!(
            "event: message_start\ndata: {start}\n\nevent: ping\ndata: {{\"type\": \"ping\"}}\n\nevent: error\ndata: {overloaded}\n\n"
        )],
    ));
    oai.push(stream_reply(GPT, &["backup ", "answer"]));
    let r = create(
        &p,
        &json!({"model": "default", "input": "hi", "stream": true}),
    )
    .await;
    let evs = check_stream(&r);
    assert_eq!(r.header("x-understudy-provider"), Some("openai"));
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
    assert_eq!(delta_text(&evs), "backup answer");
    let k = kinds(&evs);
    assert_eq!(k.last(), Some(&"response.completed"), "{k:?}");
    assert!(!k.contains(&"response.failed"), "{k:?}");
}

#[tokio::test]
async fn the_answer_cache_serves_responses_requests_with_fresh_ids() {
    let m = Mock::start().await;
    let p = proxy_over(
        &[Target {
            name: "openai",
            kind: "openai",
            mock: &m,
            model: "gpt-4o",
        }],
        "[cache]\nenabled = true\n",
    )
    .await;
    m.push(Reply::json(200, completion(GPT, "cached words")));
    let body = json!({"model": "default", "input": "same question", "temperature": 0});
    let first = create(&p, &body).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("x-understudy-cache"), Some("miss"));
    let again = create(&p, &body).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.header("x-understudy-cache"), Some("hit"));
    assert_eq!(m.count(), 1, "the hit made no upstream call");
    let (a, b) = (first.json(), again.json());
    assert_eq!(output_text(&b), "cached words");
    assert_ne!(a["id"], b["id"], "each answer is its own stored response");
    // the hit is stored and continues like any response
    m.push(Reply::json(200, completion(GPT, "next")));
    let next = create(
        &p,
        &json!({"model": "default", "input": "go on", "previous_response_id": b["id"]}),
    )
    .await;
    assert_eq!(next.status, 200, "{}", next.text());
    let msgs = chat_messages(&m.received()[1]);
    assert_eq!(msgs.len(), 3, "user, cached assistant, user: {msgs:?}");
    // streamed, the same answer is replayed as events
    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    let r = create(&p, &sbody).await;
    assert_eq!(r.header("x-understudy-cache"), Some("hit"));
    let evs = check_stream(&r);
    assert_eq!(delta_text(&evs), "cached words");
    assert_eq!(kinds(&evs).last(), Some(&"response.completed"));
    assert_eq!(m.count(), 2);
}
