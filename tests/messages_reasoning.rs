//! Thinking through the Messages front door (DESIGN §8) on translated targets: the
//! `thinking` setting becomes Gemini's `thinkingConfig` and Ollama's `think`; their
//! reasoning comes back as `thinking` blocks (answers and streams judged by the
//! official `anthropic` SDK's types); a thinking block the client sends back goes to
//! the provider that produced it only — Anthropic itself never sees another's.
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
use serde_json::{json, Value};

const THOUGHT: &str = "**Counting the letters**\n\nThe user wants the number of r's in strawberry. s-t-r-a-w-b-e-r-r-y: positions 3, 8 and 9.\n";
const ANSWER: &str = "There are 3 r's in \"strawberry\".";

fn strawberry(thinking: Value) -> Value {
    json!({"model": "default", "max_tokens": 4096, "thinking": thinking,
           "messages": [{"role": "user", "content": "How many r's in strawberry?"}]})
}

fn enabled() -> Value {
    json!({"type": "enabled", "budget_tokens": 2048})
}

fn check_thinking_block(block: &Value, text: &str) {
    assert_eq!(block["type"], "thinking", "{block}");
    assert_eq!(block["thinking"], text, "{block}");
    let sig = block["signature"].as_str().unwrap();
    assert!(sig.starts_with("understudy.r1."), "{block}");
    assert!(!sig.contains(UPSTREAM));
}

#[tokio::test]
async fn gemini_thoughts_are_thinking_blocks_and_go_back_to_gemini() {
    let s = setup(&[GEMINI]).await;
    let m = s.mock(0);
    m.push(Reply::json(
        200,
        include_str!("../fixtures/gemini/response_thoughts.json"),
    ));
    m.push(sse(include_str!("../fixtures/gemini/stream_thinking.sse")));
    let r = anthropic_sdk(
        &s.proxy,
        CLIENT_KEY,
        json!([
            {"kind": "create", "request": strawberry(enabled())},
            {"kind": "stream", "request": strawberry(enabled())},
        ]),
    )
    .await;
    for (i, res) in r.iter().enumerate() {
        assert_eq!(res["ok"], true, "scenario {i}: {res}");
    }
    assert_eq!(r[0]["block_types"], json!(["thinking", "text"]));
    let answer = &r[0]["message"];
    check_thinking_block(&answer["content"][0], THOUGHT);
    assert_eq!(r[0]["text"], ANSWER);

    let st = &r[1];
    let deltas: Vec<&str> = st["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "content_block_delta")
        .map(|e| e["delta"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        deltas,
        [
            "thinking_delta",
            "thinking_delta",
            "signature_delta",
            "text_delta",
            "text_delta"
        ]
    );
    let start = st["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "content_block_start")
        .unwrap();
    assert_eq!(
        start["content_block"],
        json!({"type": "thinking", "thinking": "", "signature": ""})
    );
    assert_eq!(st["block_types"], json!(["thinking", "text"]));
    check_thinking_block(
        &st["message"]["content"][0],
        "**Counting the letters**\n\nThe user wants the r's in strawberry. s-t-r-a-w-b-e-r-r-y: three.",
    );
    assert_eq!(st["streamed_text"], ANSWER);

    for got in m.received() {
        assert_eq!(
            got.json()["generationConfig"]["thinkingConfig"],
            json!({"thinkingBudget": 2048, "includeThoughts": true})
        );
    }

    // The client sends the conversation back: Gemini gets its thought again.
    m.push(Reply::json(
        200,
        include_str!("../fixtures/gemini/response_text.json"),
    ));
    let mut next = strawberry(json!({"type": "disabled"}));
    next["messages"] = json!([
        {"role": "user", "content": "How many r's in strawberry?"},
        {"role": "assistant", "content": answer["content"]},
        {"role": "user", "content": "And in raspberry?"}
    ]);
    let resp = post_as_sdk(&s.proxy, &next).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let up = upstream_json(m, 2);
    assert_eq!(
        up["contents"][1],
        json!({"role": "model", "parts": [{"text": THOUGHT, "thought": true}, {"text": ANSWER}]})
    );
    assert_eq!(
        up["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 0, "includeThoughts": false}),
        "disabled is no thinking"
    );
}

#[tokio::test]
async fn anthropic_never_gets_thinking_another_provider_produced() {
    let s = setup(&[GEMINI, ANTHROPIC]).await;
    let (g, a) = (s.mock(0), s.mock(1));
    g.push(Reply::json(
        200,
        include_str!("../fixtures/gemini/response_thoughts.json"),
    ));
    let first = post_as_sdk(&s.proxy, &strawberry(enabled())).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let content = first.json()["content"].clone();
    check_thinking_block(&content[0], THOUGHT);

    // Gemini is down: Anthropic answers the follow-up natively, without the block
    // only Gemini could read (and with everything else as the client sent it).
    g.push(Reply::json(
        503,
        include_str!("../fixtures/gemini/error_503_unavailable.json"),
    ));
    a.push(Reply::json(200, ANT_TEXT_JSON));
    let mut next = strawberry(enabled());
    next["messages"] = json!([
        {"role": "user", "content": "How many r's in strawberry?"},
        {"role": "assistant", "content": content},
        {"role": "user", "content": "And in raspberry?"}
    ]);
    let r = post_as_sdk(&s.proxy, &next).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("ant"));
    let tried = upstream_json(g, 1);
    assert_eq!(tried["contents"][1]["parts"][0]["thought"], true);
    let up = upstream_json(a, 0);
    assert_eq!(
        up["messages"][1],
        json!({"role": "assistant", "content": [{"type": "text", "text": ANSWER}]})
    );
    assert_eq!(
        up["thinking"],
        enabled(),
        "the rest is the client's own body"
    );
    assert!(!String::from_utf8_lossy(&a.received()[0].body).contains("understudy.r1."));
}

#[tokio::test]
async fn ollama_gets_think_and_its_thinking_comes_back_as_a_block() {
    let s = setup(&[OLLAMA]).await;
    let m = s.mock(0);
    m.push(Reply::json(
        200,
        include_str!("../fixtures/ollama/response_length.json"),
    ));
    let r = sdk_one(
        &s.proxy,
        json!({"kind": "create", "request": strawberry(enabled())}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["block_types"], json!(["thinking", "text"]));
    check_thinking_block(
        &r["message"]["content"][0],
        "The user wants a story. Keep it short.",
    );
    let up = upstream_json(m, 0);
    assert_eq!(up["think"], true, "{up}");
}
