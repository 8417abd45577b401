//! `/v1/responses` to an OpenAI-kind provider with `responses = "native"`: the request
//! goes to its `/responses` with the conversation expanded and `store: false` (the
//! proxy keeps the state), encrypted reasoning survives to the next turn, and the
//! answer and events come back as the provider sent them under the proxy's id.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use common::*;
use serde_json::{json, Value};

const REASONING_JSON: &str = include_str!("../fixtures/openai/responses_reasoning.json");
const STREAM_SSE: &str = include_str!("../fixtures/openai/responses_stream.sse");

async fn setup() -> (Mock, Mock, Proxy) {
    let native = Mock::start().await;
    let chat = Mock::start().await;
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[providers.oai]
kind = "openai"
base_url = "{}/v1"
api_key_env = "TEST_KEY"
responses = "native"
[providers.compat]
kind = "openai"
base_url = "{}/v1"
api_key_env = "TEST_KEY"
[[routes]]
model = "default"
targets = ["oai/o4-mini", "compat/llama"]
[[routes]]
model = "translated"
targets = ["compat/llama"]
"#,
        native.url(),
        chat.url()
    );
    let p = Proxy::start(&toml, &[("TEST_KEY", "sk-upstream-secret")]).await;
    (native, chat, p)
}

async fn create(p: &Proxy, body: Value) -> Resp {
    send(&p.url("/v1/responses"), "POST", &[], body.to_string()).await
}

#[tokio::test]
async fn the_native_endpoint_gets_the_expanded_conversation_and_keeps_reasoning() {
    let (native, chat, p) = setup().await;
    native.push(Reply::json(200, REASONING_JSON));
    let r = create(
        &p,
        json!({"model": "default", "input": "Primes below 10?",
        "reasoning": {"effort": "low"}, "metadata": {"k": "v"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let first = r.json();
    let id = first["id"].as_str().unwrap().to_string();
    assert!(
        id.starts_with("resp_") && id != "resp_68d1a2b3c4d5e6f708192a3b4c5d6e7f",
        "the proxy's id: {id}"
    );
    assert_eq!(
        first["output"][0]["encrypted_content"],
        "gAAAAABo0aKz-encrypted-reasoning-blob"
    );
    assert_eq!(first["output"][1]["content"][0]["text"], "2, 3, 5 and 7.");
    assert_eq!(
        first["usage"]["output_tokens_details"]["reasoning_tokens"],
        64
    );
    assert_eq!(first["store"], true, "the proxy stored it");
    let got = &native.received()[0];
    assert_eq!(got.path, "/v1/responses");
    let sent = got.json();
    assert_eq!(sent["model"], "o4-mini");
    assert_eq!(sent["store"], false);
    assert_eq!(sent["include"], json!(["reasoning.encrypted_content"]));
    assert_eq!(sent["metadata"], json!({"k": "v"}), "fields pass through");

    // the next turn: expanded by the proxy, reasoning item included, to the native target
    native.push(Reply::json(200, REASONING_JSON));
    let r = create(
        &p,
        json!({"model": "default", "previous_response_id": id,
        "input": "And below 20?", "reasoning": {"effort": "low"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["previous_response_id"], id.as_str());
    let sent = native.received()[1].json();
    assert!(sent.get("previous_response_id").is_none());
    let types: Vec<&str> = sent["input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["message", "reasoning", "message", "message"]);
    assert_eq!(
        sent["input"][1]["encrypted_content"],
        "gAAAAABo0aKz-encrypted-reasoning-blob"
    );
    assert_eq!(chat.count(), 0);

    // the same conversation, the native target down: the translated target gets it,
    // without the reasoning item it could not use
    native.push(Reply::json(503, r#"{"error":{"message":"down"}}"#));
    chat.push(Reply::json(
        200,
        completion("llama", "Up to 19: 2, 3, 5, 7, 11, 13, 17, 19."),
    ));
    let r = create(
        &p,
        json!({"model": "default", "previous_response_id": id, "input": "And below 20?"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("compat"));
    let sent = chat.received()[0].json();
    let roles: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    assert_eq!(
        r.json()["output"][0]["content"][0]["text"],
        "Up to 19: 2, 3, 5, 7, 11, 13, 17, 19."
    );
}

#[tokio::test]
async fn native_stream_events_pass_under_the_proxys_id() {
    let (native, _chat, p) = setup().await;
    native.push(Reply::split(200, "text/event-stream", STREAM_SSE));
    let r = create(
        &p,
        json!({"model": "default", "input": "hi", "stream": true}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ours = datas(&r.text());
    let theirs = datas(STREAM_SSE);
    assert_eq!(ours.len(), theirs.len());
    let id = ours[0]["response"]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("resp_") && id != "resp_68d1b0");
    for (mut mine, mut up) in ours.into_iter().zip(theirs) {
        if mine["response"].is_object() {
            assert_eq!(mine["response"]["id"], id.as_str());
            for v in [&mut mine, &mut up] {
                let r = v["response"].as_object_mut().unwrap();
                for k in ["id", "store", "previous_response_id"] {
                    r.remove(k);
                }
            }
        }
        assert_eq!(mine, up);
    }
    // stored under the proxy's id, retrievable
    let got = get(&p.url(&format!("/v1/responses/{id}"))).await;
    assert_eq!(got.status, 200);
    assert_eq!(
        got.json()["output"][0]["content"][0]["text"],
        "Hello there!"
    );
}

/// The JSON `data:` of each SSE event (events carry an `event:` line first).
fn datas(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|b| b.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test]
async fn bad_input_items_get_precise_400s_before_any_call() {
    let (native, chat, p) = setup().await;
    let cases = [
        (
            json!([{"type": "function_call_output", "call_id": "call_nowhere", "output": "x"}]),
            "no function_call with call_id 'call_nowhere'",
        ),
        (
            json!([{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]),
            "file_id cannot be sent",
        ),
    ];
    for (input, want) in cases {
        let r = create(&p, json!({"model": "translated", "input": input})).await;
        assert_eq!(r.status, 400, "{}", r.text());
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.contains(want), "{msg}");
        assert!(msg.contains("no target can serve this request"), "{msg}");
    }
    let cases = [
        (
            json!([{"type": "item_reference", "id": "msg_gone"}]),
            "item with id 'msg_gone' not found",
        ),
        (json!([42]), "an input item must be an object"),
    ];
    for (input, want) in cases {
        let r = create(&p, json!({"model": "default", "input": input})).await;
        assert_eq!(r.status, 400, "{}", r.text());
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.contains(want), "{msg}");
        assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    }
    let r = create(
        &p,
        json!({"model": "default", "input": "x", "background": true}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(native.count() + chat.count(), 0);
    // an image by file_id: the native target can take it, the translated one cannot
    native.push(Reply::json(200, REASONING_JSON));
    let input =
        json!([{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]);
    let r = create(&p, json!({"model": "default", "input": input})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        native.received()[0].json()["input"][0]["content"][0]["file_id"],
        "file-1"
    );
    assert_eq!(chat.count(), 0);
}
