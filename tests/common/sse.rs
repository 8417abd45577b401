//! OpenAI-shaped mock answers: a completion, a stream chunk, a whole streamed reply.

use super::mock::Reply;

pub fn completion(model: &str, text: &str) -> String {
    serde_json::json!({
        "id": "chatcmpl-mock1", "object": "chat.completion", "created": 1_700_000_000u64,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop", "logprobs": null}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    })
    .to_string()
}

pub fn chunk(model: &str, delta: serde_json::Value, finish: Option<&str>) -> String {
    serde_json::json!({
        "id": "chatcmpl-mock1", "object": "chat.completion.chunk", "created": 1_700_000_000u64,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}]
    })
    .to_string()
}

/// A streamed OpenAI answer of `words`, then finish, usage and [DONE].
pub fn stream_reply(model: &str, words: &[&str]) -> Reply {
    let mut datas = vec![chunk(
        model,
        serde_json::json!({"role": "assistant", "content": ""}),
        None,
    )];
    for w in words {
        datas.push(chunk(model, serde_json::json!({"content": w}), None));
    }
    datas.push(chunk(model, serde_json::json!({}), Some("stop")));
    datas.push(
        serde_json::json!({"id": "chatcmpl-mock1", "object": "chat.completion.chunk", "created": 1_700_000_000u64,
            "model": model, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})
        .to_string(),
    );
    datas.push("[DONE]".into());
    let refs: Vec<&str> = datas.iter().map(String::as_str).collect();
    Reply::sse(&refs)
}
