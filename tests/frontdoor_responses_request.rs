//! How a Responses request reaches a translated (Chat Completions) upstream, DESIGN §7:
//! every kind of input item (roles, text, images, calls and their outputs, reasoning),
//! tool_choice, parallel_tool_calls, user / safety_identifier, reasoning.effort, and
//! the fields real clients send that a translated target cannot take (accepted, not
//! forwarded); every input item type of the API accepted, any other a 400 naming
//! it. One OpenAI-kind mock upstream.
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
use serde_json::{json, Value};

fn text_of(msg: &Value) -> String {
    match &msg["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    }
}

fn roles(msgs: &[Value]) -> Vec<String> {
    msgs.iter()
        .map(|m| m["role"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// Sends `body` (model `default`) and returns the chat request the upstream got.
async fn upstream_of(body: Value) -> Value {
    let m = Mock::start().await;
    let p = openai_proxy(&m).await;
    m.push(Reply::json(200, completion(GPT, "ok")));
    let r = create(&p, &body).await;
    assert_eq!(r.status, 200, "{body}: {}", r.text());
    assert_eq!(m.count(), 1);
    m.received()[0].json()
}

#[tokio::test]
async fn every_kind_of_input_item_becomes_its_chat_message() {
    let png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let up = upstream_of(json!({"model": "default", "instructions": "be brief", "input": [
        {"type": "message", "role": "developer", "content": "dev rule"},
        {"role": "system", "content": [{"type": "input_text", "text": "sys rule"}]},
        {"id": "msg_client1", "type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "what is in"},
            {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "low"},
            {"type": "input_image", "image_url": png}]},
        {"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": "opaque"},
        {"id": "msg_prev", "type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": "a cat", "annotations": []}]},
        {"id": "fc_prev", "type": "function_call", "call_id": "call_9", "name": "zoom",
            "arguments": "{\"x\":1}", "status": "completed"},
        {"type": "function_call_output", "call_id": "call_9", "output": "zoomed"},
        {"role": "user", "content": "and now?"}
    ]}))
    .await;
    let msgs = up["messages"].as_array().unwrap().clone();
    let r = roles(&msgs);
    let head: Vec<&str> = r[..3].iter().map(String::as_str).collect();
    assert!(
        head.iter().all(|r| *r == "system" || *r == "developer"),
        "instructions, developer and system first: {msgs:?}"
    );
    assert_eq!(text_of(&msgs[0]), "be brief");
    assert_eq!(text_of(&msgs[1]), "dev rule");
    assert_eq!(text_of(&msgs[2]), "sys rule");
    // the assistant's text and its call: one turn, or two consecutive ones
    let merged = r[3..] == ["user", "assistant", "tool", "user"];
    assert!(
        merged || r[3..] == ["user", "assistant", "assistant", "tool", "user"],
        "{msgs:?}"
    );
    let parts = msgs[3]["content"]
        .as_array()
        .expect("multi-part user content");
    assert_eq!(parts[0]["type"], "text");
    assert_eq!(parts[0]["text"], "what is in");
    assert_eq!(parts[1]["type"], "image_url");
    assert_eq!(parts[1]["image_url"]["url"], "https://example.com/cat.png");
    assert_eq!(parts[1]["image_url"]["detail"], "low");
    assert_eq!(parts[2]["image_url"]["url"], png);
    let call_at = if merged { 4 } else { 5 };
    assert_eq!(text_of(&msgs[4]), "a cat");
    assert_eq!(msgs[call_at]["tool_calls"][0]["id"], "call_9");
    assert_eq!(msgs[call_at]["tool_calls"][0]["function"]["name"], "zoom");
    assert_eq!(msgs[call_at + 1]["tool_call_id"], "call_9");
    assert_eq!(text_of(&msgs[call_at + 1]), "zoomed");
    let raw = up.to_string();
    assert!(
        !raw.contains("opaque") && !raw.contains("rs_1"),
        "reasoning items are not sent to a translated target: {raw}"
    );
    assert!(
        !raw.contains("msg_client1"),
        "item ids stay with the proxy: {raw}"
    );
}

#[tokio::test]
async fn tool_choice_and_parallel_tool_calls_are_translated() {
    let tool = json!({"type": "function", "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}});
    for (choice, want) in [
        (json!("none"), json!("none")),
        (json!("required"), json!("required")),
        (json!("auto"), json!("auto")),
        (
            json!({"type": "function", "name": "get_weather"}),
            json!({"type": "function", "function": {"name": "get_weather"}}),
        ),
    ] {
        let up = upstream_of(json!({"model": "default", "input": "hi", "tools": [tool],
            "tool_choice": choice, "parallel_tool_calls": false}))
        .await;
        assert_eq!(up["tool_choice"], want, "tool_choice {choice}");
        assert_eq!(up["parallel_tool_calls"], false, "{up}");
    }
}

#[tokio::test]
async fn user_and_reasoning_effort_reach_an_openai_kind_upstream() {
    let up = upstream_of(json!({"model": "default", "input": "hi",
        "user": "u-42", "reasoning": {"effort": "low", "summary": "auto"}}))
    .await;
    assert_eq!(up["user"], "u-42", "{up}");
    assert_eq!(up["reasoning_effort"], "low", "{up}");
    let up =
        upstream_of(json!({"model": "default", "input": "hi", "safety_identifier": "s-7"})).await;
    let sent = up["safety_identifier"].as_str().or(up["user"].as_str());
    assert_eq!(sent, Some("s-7"), "{up}");
}

#[tokio::test]
async fn fields_real_clients_send_are_accepted_and_not_forwarded_to_translated_targets() {
    // what Codex CLI and the agents SDKs add to their requests
    let m = Mock::start().await;
    let p = openai_proxy(&m).await;
    m.push(Reply::json(200, completion(GPT, "fine")));
    let r = create(
        &p,
        &json!({"model": "default", "input": [{"type": "message", "role": "user",
                "content": [{"type": "input_text", "text": "hi"}]}],
            "include": ["reasoning.encrypted_content"], "prompt_cache_key": "k-1",
            "client_metadata": {"x": "y"}, "truncation": "auto", "service_tier": "auto",
            "store": false, "stream": false, "text": {"verbosity": "low", "format": {"type": "text"}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(output_text(&r.json()), "fine");
    let up = m.received()[0].json();
    for k in [
        "include",
        "client_metadata",
        "truncation",
        "input",
        "instructions",
        "store",
        "text",
    ] {
        assert!(up.get(k).is_none(), "`{k}` is not a chat field: {up}");
    }
}

#[tokio::test]
async fn json_object_and_function_outputs_as_parts_are_translated() {
    let up = upstream_of(json!({"model": "default", "text": {"format": {"type": "json_object"}},
        "input": [
            {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1",
                "output": [{"type": "input_text", "text": "part one"}, {"type": "input_text", "text": " two"}]},
            {"role": "user", "content": "summarise as JSON"}
        ]}))
    .await;
    assert_eq!(up["response_format"], json!({"type": "json_object"}));
    let msgs = up["messages"].as_array().unwrap();
    assert_eq!(roles(msgs), ["assistant", "tool", "user"], "{msgs:?}");
    assert_eq!(text_of(&msgs[1]), "part one two");
}

/// The `type` of every member of the pinned `openai` SDK's `ResponseInputItemParam`.
async fn sdk_input_item_types() -> Vec<String> {
    let script = r#"
import json, re, sys, typing
from openai.types.responses.response_input_item_param import ResponseInputItemParam
types = set()
for member in typing.get_args(ResponseInputItemParam):
    m = re.search(r"Literal\['(\w+)'\]", str(member.__annotations__["type"]))
    types.add(m.group(1))
print(json.dumps(sorted(types)))
"#;
    let v = run_json(
        sdk_python(),
        vec!["-c".into(), script.into()],
        json!(null),
        std::time::Duration::from_secs(60),
    )
    .await;
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn every_input_item_type_of_the_sdk_is_accepted_and_left_out_for_a_translated_target() {
    let types = sdk_input_item_types().await;
    assert!(types.len() >= 30, "the SDK's union: {types:?}");
    let m = Mock::start().await;
    let p = openai_proxy(&m).await;
    m.push(Reply::json(200, completion(GPT, "first")));
    m.push(Reply::json(200, completion(GPT, "second")));
    let first = create(&p, &json!({"model": "default", "input": "hi"})).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let stored_msg = items_of(&first.json(), "message")[0]["id"].clone();
    let mut input = vec![json!({"role": "user", "content": "before"})];
    for t in &types {
        input.push(match t.as_str() {
            "message" => json!({"type": "message", "role": "user", "content": "a message"}),
            "function_call" => json!({"type": "function_call", "call_id": "call_x",
                "name": "f", "arguments": "{}"}),
            "function_call_output" => {
                json!({"type": "function_call_output", "call_id": "call_x", "output": "done"})
            }
            "item_reference" => json!({"type": "item_reference", "id": stored_msg}),
            // what the chat translation has no form for: any shape passes
            other => json!({"type": other, "id": format!("x_{other}"), "status": "completed"}),
        });
    }
    input.push(json!({"role": "user", "content": "after"}));
    let r = create(&p, &json!({"model": "default", "input": input})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(output_text(&r.json()), "second");
    let msgs = chat_messages(&m.received()[1]);
    let texts: Vec<String> = msgs.iter().map(text_of).collect();
    assert_eq!(
        texts.first().map(String::as_str),
        Some("before"),
        "{msgs:?}"
    );
    assert_eq!(texts.last().map(String::as_str), Some("after"), "{msgs:?}");
    assert!(
        texts.iter().any(|t| t == "first"),
        "the referenced item: {msgs:?}"
    );
    assert!(
        msgs.iter().any(|m| m["tool_call_id"] == "call_x"),
        "{msgs:?}"
    );
    let raw = serde_json::to_string(&msgs).unwrap();
    for t in &types {
        assert!(
            !raw.contains(&format!("x_{t}")),
            "{t} has no chat form and is left out: {raw}"
        );
    }
}

#[tokio::test]
async fn an_input_item_type_outside_the_api_is_a_400_naming_it() {
    let m = Mock::start().await;
    let p = openai_proxy(&m).await;
    let r = create(
        &p,
        &json!({"model": "default", "input": [
            {"role": "user", "content": "hi"},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c", "output": "x"},
            {"type": "function_call_result", "call_id": "c", "output": "x"}
        ]}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let e = &r.json()["error"];
    assert_eq!(e["type"], "invalid_request_error");
    assert_eq!(e["param"], "input[3].type", "{e}");
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.contains("'function_call_result'") && msg.contains("function_call_output"),
        "{msg}"
    );
    // a message with a role outside the API names that field
    let r = create(
        &p,
        &json!({"model": "default", "input": [{"role": "tool", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["param"], "input[0].role");
    assert_eq!(m.count(), 0, "no upstream call");
}
