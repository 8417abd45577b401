//! Chunk builders shared by the unit tests of stream assembly, replay and the cache.

use serde_json::{json, Value};

use super::ChatChunk;

fn chunk(v: Value) -> ChatChunk {
    let mut c = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "gpt-x", "system_fingerprint": "fp_1"});
    for (k, val) in v.as_object().unwrap() {
        c[k] = val.clone();
    }
    serde_json::from_value(c).unwrap()
}

pub(crate) fn delta(d: Value, finish: Value) -> ChatChunk {
    chunk(json!({"choices": [{"index": 0, "delta": d, "finish_reason": finish}]}))
}

pub(crate) fn streamed_tool_answer() -> Vec<ChatChunk> {
    vec![
        delta(json!({"role": "assistant", "content": ""}), Value::Null),
        delta(json!({"content": "Let me "}), Value::Null),
        delta(json!({"content": "check."}), Value::Null),
        delta(
            json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "weather", "arguments": ""}}]}),
            Value::Null,
        ),
        delta(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
            Value::Null,
        ),
        delta(
            json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "time", "arguments": "{}"}}]}),
            Value::Null,
        ),
        delta(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
            Value::Null,
        ),
        delta(json!({}), json!("tool_calls")),
        chunk(
            json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}),
        ),
    ]
}
