//! The canonical answer → OpenAI's `Response` object: output items (`reasoning`,
//! `message` with `output_text`, `function_call`), status from the finish reason, usage with its
//! details, and the request's settings echoed.

use serde_json::{json, Map, Value};

use crate::canonical::{random_id, ChatResponse, Reasoning, Usage};

/// What every rendering of one response shares: its id, when it was created, and the
/// request settings it echoes.
#[derive(Debug, Clone)]
pub(super) struct Echo {
    pub(super) id: String,
    pub(super) created_at: u64,
    /// The settings part of the Response object, as the SDKs expect to find it.
    pub(super) settings: Map<String, Value>,
}

/// How a response ended, for its `status` and `incomplete_details` / `error`.
pub(super) enum Ending {
    InProgress,
    Completed,
    /// With the reason: `max_output_tokens` or `content_filter`.
    Incomplete(&'static str),
    /// With the error object (`code`, `message`).
    Failed(Value),
}

impl Ending {
    /// From a chat finish reason.
    pub(super) fn of_finish(finish: Option<&str>) -> Ending {
        match finish {
            Some("length") => Ending::Incomplete("max_output_tokens"),
            Some("content_filter") => Ending::Incomplete("content_filter"),
            _ => Ending::Completed,
        }
    }

    pub(super) fn status(&self) -> &'static str {
        match self {
            Ending::InProgress => "in_progress",
            Ending::Completed => "completed",
            Ending::Incomplete(_) => "incomplete",
            Ending::Failed(_) => "failed",
        }
    }
}

/// A Response object with `status`, `output` and `usage` filled in.
pub(super) fn response(
    echo: &Echo,
    model: &str,
    ending: &Ending,
    output: Vec<Value>,
    usage: Option<Value>,
) -> Value {
    let mut r = Map::new();
    r.insert("id".into(), echo.id.clone().into());
    r.insert("object".into(), "response".into());
    r.insert("created_at".into(), echo.created_at.into());
    r.insert("status".into(), ending.status().into());
    r.insert(
        "error".into(),
        match ending {
            Ending::Failed(e) => e.clone(),
            _ => Value::Null,
        },
    );
    r.insert(
        "incomplete_details".into(),
        match ending {
            Ending::Incomplete(reason) => json!({ "reason": reason }),
            _ => Value::Null,
        },
    );
    r.insert("model".into(), model.into());
    r.insert("output".into(), output.into());
    r.insert("usage".into(), usage.unwrap_or(Value::Null));
    for (k, v) in &echo.settings {
        r.insert(k.clone(), v.clone());
    }
    Value::Object(r)
}

pub(super) fn usage(u: &Usage) -> Value {
    let detail = |outer: &str, inner: &str| {
        u.extra
            .get(outer)
            .and_then(|d| d.get(inner))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    json!({
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": detail("prompt_tokens_details", "cached_tokens"),
            "cache_write_tokens": u.cache_write_tokens,
        },
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {
            "reasoning_tokens": detail("completion_tokens_details", "reasoning_tokens"),
        },
        "total_tokens": u.total_tokens,
    })
}

pub(super) fn message_item(id: &str, status: &str, text: Option<&str>) -> Value {
    let content = match text {
        Some(t) => json!([{"type": "output_text", "text": t, "annotations": [], "logprobs": []}]),
        None => json!([]),
    };
    json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": content})
}

pub(super) fn call_item(
    id: &str,
    status: &str,
    call_id: &str,
    name: &str,
    arguments: &str,
) -> Value {
    json!({"id": id, "type": "function_call", "status": status,
           "call_id": call_id, "name": name, "arguments": arguments})
}

/// A reasoning item: the provider's thinking as its summary, and the sealed piece
/// (see [`Reasoning::seal`]) as `encrypted_content`, which the client sends back.
pub(super) fn reasoning_item(id: &str, text: &str, sealed: Option<&Reasoning>) -> Value {
    let summary = if text.is_empty() {
        json!([])
    } else {
        json!([{"type": "summary_text", "text": text}])
    };
    let mut item = json!({"id": id, "type": "reasoning", "summary": summary});
    if let Some(r) = sealed {
        item["encrypted_content"] = r.seal().into();
    }
    item
}

pub(super) fn new_reasoning_id() -> String {
    random_id("rs_", 24)
}

pub(super) fn new_message_id() -> String {
    random_id("msg_", 24)
}

pub(super) fn new_call_item_id() -> String {
    random_id("fc_", 24)
}

/// The whole Response for a complete answer (its first choice).
pub(super) fn render(echo: &Echo, answer: &ChatResponse) -> Value {
    let mut output = Vec::new();
    let choice = answer.choices.first();
    if let Some(m) = choice.map(|c| &c.message) {
        for r in &m.reasoning {
            output.push(reasoning_item(&new_reasoning_id(), &r.text, Some(r)));
        }
        let text = m.content.as_deref().filter(|t| !t.is_empty());
        if let Some(refusal) = m.refusal.as_deref().filter(|r| !r.is_empty()) {
            output.push(
                json!({"id": new_message_id(), "type": "message", "status": "completed",
                "role": "assistant", "content": [{"type": "refusal", "refusal": refusal}]}),
            );
        } else if let Some(t) = text {
            output.push(message_item(&new_message_id(), "completed", Some(t)));
        }
        for call in m.tool_calls.iter().flatten() {
            let args = if call.function.arguments.is_empty() {
                "{}"
            } else {
                call.function.arguments.as_str()
            };
            output.push(call_item(
                &new_call_item_id(),
                "completed",
                &call.id,
                &call.function.name,
                args,
            ));
        }
    }
    let ending = Ending::of_finish(choice.and_then(|c| c.finish_reason.as_deref()));
    response(
        echo,
        &answer.model,
        &ending,
        output,
        answer.usage.as_ref().map(usage),
    )
}
