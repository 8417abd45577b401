//! The canonical answer → Anthropic's `Message`: thinking, text and `tool_use` blocks, the stop
//! reason from the finish reason, and usage.

use serde_json::{json, Value};

use crate::canonical::{random_id, ChatResponse, Usage};

/// Anthropic's stop reason for a chat finish reason.
pub(super) fn stop_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// An id in Anthropic's form: the upstream's when it is one (`msg_…`), else fresh.
pub(super) fn message_id(upstream: &str) -> String {
    if upstream.starts_with("msg_") {
        upstream.to_string()
    } else {
        random_id("msg_", 24)
    }
}

pub(super) fn usage(u: Option<&Usage>) -> Value {
    let Some(u) = u else {
        return json!({"input_tokens": 0, "output_tokens": 0});
    };
    let cached = u
        .extra
        .get("prompt_tokens_details")
        .and_then(|d| d.get("cached_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    // Anthropic counts cache reads apart from input; chat's prompt_tokens holds both.
    json!({
        "input_tokens": u.prompt_tokens.saturating_sub(cached),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
        "output_tokens": u.completion_tokens,
    })
}

/// Parsed tool arguments; a call whose arguments are not a JSON object gets them
/// under `_raw` rather than being dropped.
pub(super) fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({ "_raw": arguments }),
    }
}

/// A thinking block: the provider's reasoning, sealed in the signature (see
/// [`crate::canonical::Reasoning::seal`]) for the client to send back.
pub(super) fn thinking_block(text: &str, signature: &str) -> Value {
    json!({"type": "thinking", "thinking": text, "signature": signature})
}

pub(super) fn render(answer: &ChatResponse) -> Value {
    let choice = answer.choices.first();
    let mut content = Vec::new();
    if let Some(m) = choice.map(|c| &c.message) {
        for r in &m.reasoning {
            content.push(thinking_block(&r.text, &r.seal()));
        }
        for text in [m.content.as_deref(), m.refusal.as_deref()]
            .into_iter()
            .flatten()
        {
            if !text.is_empty() {
                content.push(json!({"type": "text", "text": text}));
            }
        }
        for call in m.tool_calls.iter().flatten() {
            content.push(
                json!({"type": "tool_use", "id": call.id, "name": call.function.name,
                "input": tool_input(&call.function.arguments)}),
            );
        }
    }
    json!({
        "id": message_id(&answer.id),
        "type": "message",
        "role": "assistant",
        "model": answer.model,
        "content": content,
        "stop_reason": stop_reason(choice.and_then(|c| c.finish_reason.as_deref())),
        "stop_sequence": null,
        "usage": usage(answer.usage.as_ref()),
    })
}
