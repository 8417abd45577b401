//! A Responses-API request → the canonical (Chat Completions) request: input items
//! become messages, `instructions` the system message, flat function tools the chat
//! shape. Hosted tools no translated target can run are dropped and named; what would
//! change the meaning (a forced hosted tool, `background`, `conversation`) is a 400.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::items;
use crate::canonical::Reasoning;
use crate::error::ProxyError;

/// The fields the proxy reads; everything else is accepted and left out of the
/// translation (logged at debug).
#[derive(Debug, Deserialize)]
pub(super) struct ResponsesRequest {
    pub(super) model: String,
    #[serde(default)]
    pub(super) input: Option<Value>,
    #[serde(default)]
    pub(super) instructions: Option<Value>,
    #[serde(default)]
    pub(super) tools: Option<Vec<Value>>,
    #[serde(default)]
    pub(super) tool_choice: Option<Value>,
    #[serde(default)]
    pub(super) parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub(super) max_output_tokens: Option<u64>,
    #[serde(default)]
    pub(super) temperature: Option<f64>,
    #[serde(default)]
    pub(super) top_p: Option<f64>,
    #[serde(default)]
    pub(super) text: Option<Value>,
    #[serde(default)]
    pub(super) stream: Option<bool>,
    #[serde(default)]
    pub(super) store: Option<bool>,
    #[serde(default)]
    pub(super) previous_response_id: Option<String>,
    #[serde(default)]
    pub(super) metadata: Option<Value>,
    #[serde(default)]
    pub(super) user: Option<String>,
    #[serde(default)]
    pub(super) safety_identifier: Option<String>,
    #[serde(default)]
    pub(super) reasoning: Option<Value>,
    #[serde(default)]
    pub(super) background: Option<bool>,
    #[serde(default)]
    pub(super) conversation: Option<Value>,
    #[serde(default)]
    pub(super) prompt_cache_key: Option<String>,
    #[serde(flatten)]
    pub(super) rest: Map<String, Value>,
}

fn bad(msg: impl Into<String>) -> ProxyError {
    ProxyError::BadRequest(msg.into())
}

impl ResponsesRequest {
    pub(super) fn parse(body: &[u8]) -> Result<ResponsesRequest, ProxyError> {
        let req: ResponsesRequest = serde_json::from_slice(body).map_err(|e| {
            use serde_json::error::Category;
            match e.classify() {
                Category::Syntax | Category::Eof => {
                    bad(format!("request body is not valid JSON: {e}"))
                }
                _ => bad(format!("invalid request body: {e}")),
            }
        })?;
        if req.background == Some(true) {
            return Err(bad(
                "'background': true is not supported: the proxy answers in the request",
            ));
        }
        if req.conversation.as_ref().is_some_and(|c| !c.is_null()) {
            return Err(bad(
                "'conversation' is not supported; chain turns with previous_response_id",
            ));
        }
        if !req.rest.is_empty() {
            let keys: Vec<&String> = req.rest.keys().collect();
            tracing::debug!(?keys, "responses: fields not translated");
        }
        Ok(req)
    }

    /// This request's own input as items (a string is one user message).
    pub(super) fn input_items(&self) -> Result<Vec<Value>, ProxyError> {
        match &self.input {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![json!({
                "type": "message", "role": "user",
                "content": [{"type": "input_text", "text": s}],
            })]),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| normalize_item(i, item))
                .collect(),
            Some(_) => Err(bad("'input' must be a string or an array of items")),
        }
    }
}

/// An item in its full form: `{"role", "content"}` without a type is a message,
/// string content becomes one text part, and `{"id"}` alone is an item reference
/// (the API's `type` is optional there). A type outside the API is a 400 naming it.
fn normalize_item(i: usize, item: &Value) -> Result<Value, ProxyError> {
    let Some(obj) = item.as_object() else {
        return Err(bad(format!("input[{i}]: an input item must be an object")));
    };
    let kind = match obj.get("type").filter(|t| !t.is_null()) {
        Some(t) => Some(items::checked_type(i, t)?),
        None => None,
    };
    if kind.is_none_or(|k| k == "message") && obj.contains_key("role") {
        let mut m = obj.clone();
        m.insert("type".into(), "message".into());
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        if !matches!(role, "user" | "assistant" | "system" | "developer") {
            let param = format!("input[{i}].role");
            return Err(ProxyError::InvalidParam {
                message: format!(
                    "{param}: unknown message role {role:?}; one of user, assistant, system, developer"
                ),
                param,
            });
        }
        if let Some(Value::String(s)) = m.get("content") {
            let part = if role == "assistant" {
                json!({"type": "output_text", "text": s, "annotations": []})
            } else {
                json!({"type": "input_text", "text": s})
            };
            m.insert("content".into(), json!([part]));
        }
        return Ok(Value::Object(m));
    }
    match kind {
        Some(_) => Ok(item.clone()),
        None if obj.get("id").is_some_and(Value::is_string) => {
            let mut r = obj.clone();
            r.insert("type".into(), "item_reference".into());
            Ok(Value::Object(r))
        }
        None => Err(bad(format!(
            "input[{i}]: an input item needs a 'type' (or a 'role', for a message)"
        ))),
    }
}

/// A stand-in chat body for a request with no translation: enough to route it
/// (model, stream) to a target that takes it natively.
pub(super) fn placeholder(req: &ResponsesRequest) -> Value {
    let mut body = json!({"model": req.model, "messages": [{"role": "user", "content": ""}]});
    if req.stream == Some(true) {
        body["stream"] = true.into();
    }
    body
}

/// What the translation dropped, for the `x-understudy-dropped-tools` header.
#[derive(Debug, Default)]
pub(super) struct Dropped {
    pub(super) tools: Vec<String>,
}

/// Reasoning read back from the items, by the index of the chat message (an
/// assistant turn) it belongs to; chat has no field for it.
pub(super) type Replays = Vec<(usize, Reasoning)>;

/// The chat request body for `items` (the whole conversation, stored turns first),
/// and the reasoning of its assistant turns.
pub(super) fn chat_body(
    req: &ResponsesRequest,
    items: &[Value],
    dropped: &mut Dropped,
) -> Result<(Value, Replays), ProxyError> {
    let mut messages = Vec::new();
    let mut replays = Replays::new();
    let mut pending = Vec::new();
    match &req.instructions {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(_) => return Err(bad("'instructions' must be a string")),
    }
    let mut calls = std::collections::HashSet::new();
    for (i, item) in items.iter().enumerate() {
        match item.get("type").and_then(Value::as_str) {
            Some("function_call") => {
                calls.insert(
                    item.get("call_id")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                );
            }
            // Every provider refuses a tool result for a call it never made; say so
            // now, with the id, rather than relay a provider's puzzling 400.
            Some("function_call_output") => {
                let id = item
                    .get("call_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !calls.contains(id) {
                    return Err(bad(format!(
                        "input[{i}]: no function_call with call_id '{id}' precedes this function_call_output"
                    )));
                }
            }
            _ => {}
        }
        if item.get("type").and_then(Value::as_str) == Some("reasoning") {
            // The proxy's own seal: reasoning a translated provider produced, for the
            // assistant turn that follows. Anything else (OpenAI's encrypted content)
            // only a native target can read.
            match item
                .get("encrypted_content")
                .and_then(Value::as_str)
                .and_then(Reasoning::unseal)
            {
                Some(r) => pending.push(r),
                None => {
                    tracing::debug!("responses: reasoning item not sent to a translated target")
                }
            }
            continue;
        }
        add_item(&mut messages, item).map_err(|e| bad(format!("input[{i}]: {e}")))?;
        match messages.last() {
            Some(m) if m["role"] == "assistant" => {
                let at = messages.len() - 1;
                replays.extend(pending.drain(..).map(|r| (at, r)));
            }
            // Reasoning that no answer followed has nothing to go with.
            _ => pending.clear(),
        }
    }
    if messages.is_empty() {
        return Err(bad(
            "'input' is empty and no previous response gives a conversation",
        ));
    }
    let mut body = Map::new();
    body.insert("model".into(), req.model.clone().into());
    body.insert("messages".into(), messages.into());
    let mut hosted = Vec::new();
    if let Some(tools) = &req.tools {
        let mut out = Vec::new();
        for (i, t) in tools.iter().enumerate() {
            match t.get("type").and_then(Value::as_str) {
                Some("function") => {
                    out.push(function_tool(t).map_err(|e| bad(format!("tools[{i}]: {e}")))?)
                }
                Some(other) => hosted.push(other.to_string()),
                None => return Err(bad(format!("tools[{i}]: a tool needs a 'type'"))),
            }
        }
        if !out.is_empty() {
            body.insert("tools".into(), out.into());
        }
    }
    if let Some(choice) = &req.tool_choice {
        if let Some(c) = tool_choice(choice, &hosted)? {
            if body.contains_key("tools") || c.is_string() {
                body.insert("tool_choice".into(), c);
            }
        }
    }
    if !hosted.is_empty() {
        tracing::debug!(tools = ?hosted, "responses: hosted tools dropped for translated targets");
        dropped.tools = hosted;
    }
    if let Some(p) = req.parallel_tool_calls {
        if body.contains_key("tools") {
            body.insert("parallel_tool_calls".into(), p.into());
        }
    }
    if let Some(n) = req.max_output_tokens {
        body.insert("max_completion_tokens".into(), n.into());
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), t.into());
    }
    if let Some(p) = req.top_p {
        body.insert("top_p".into(), p.into());
    }
    if let Some(f) = req.text.as_ref().and_then(|t| t.get("format")) {
        if let Some(rf) = response_format(f)? {
            body.insert("response_format".into(), rf);
        }
    }
    if let Some(u) = req.safety_identifier.as_ref().or(req.user.as_ref()) {
        body.insert("user".into(), u.clone().into());
    }
    if let Some(e) = req
        .reasoning
        .as_ref()
        .and_then(|r| r.get("effort"))
        .filter(|e| e.is_string())
    {
        body.insert("reasoning_effort".into(), e.clone());
    }
    if let Some(k) = &req.prompt_cache_key {
        body.insert("prompt_cache_key".into(), k.clone().into());
    }
    if req.stream == Some(true) {
        body.insert("stream".into(), true.into());
        // The final event carries usage: always ask for it.
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok((Value::Object(body), replays))
}

fn function_tool(t: &Value) -> Result<Value, String> {
    let name = t
        .get("name")
        .and_then(Value::as_str)
        .ok_or("a function tool needs a 'name'")?;
    let mut f = Map::new();
    f.insert("name".into(), name.into());
    for key in ["description", "parameters", "strict"] {
        if let Some(v) = t.get(key).filter(|v| !v.is_null()) {
            f.insert(key.into(), v.clone());
        }
    }
    Ok(json!({"type": "function", "function": f}))
}

fn tool_choice(choice: &Value, hosted: &[String]) -> Result<Option<Value>, ProxyError> {
    match choice {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => {
            Ok(Some(choice.clone()))
        }
        Value::String(s) => Err(bad(format!("unknown tool_choice {s:?}"))),
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("function") => {
                let name = o
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("tool_choice: a function choice needs a 'name'"))?;
                Ok(Some(json!({"type": "function", "function": {"name": name}})))
            }
            Some("allowed_tools") => {
                let mode = o.get("mode").cloned().unwrap_or_else(|| "auto".into());
                let tools: Vec<Value> = o
                    .get("tools")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|t| t.get("type").and_then(Value::as_str) == Some("function"))
                    .filter_map(|t| t.get("name").cloned())
                    .map(|name| json!({"type": "function", "function": {"name": name}}))
                    .collect();
                Ok(Some(json!({"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": tools}})))
            }
            Some(other) => Err(bad(format!(
                "tool_choice forces the hosted tool {other:?}{}, which no translated target can run",
                if hosted.iter().any(|h| h == other) { "" } else { " (not among 'tools')" }
            ))),
            None => Err(bad("tool_choice: an object needs a 'type'")),
        },
        Value::Null => Ok(None),
        _ => Err(bad("tool_choice must be a string or an object")),
    }
}

fn response_format(f: &Value) -> Result<Option<Value>, ProxyError> {
    match f.get("type").and_then(Value::as_str) {
        None | Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = Map::new();
            schema.insert(
                "name".into(),
                f.get("name").cloned().unwrap_or_else(|| "response".into()),
            );
            for key in ["description", "schema", "strict"] {
                if let Some(v) = f.get(key).filter(|v| !v.is_null()) {
                    schema.insert(key.into(), v.clone());
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        Some(other) => Err(bad(format!("text.format type {other:?} is not supported"))),
    }
}

/// Appends one input item to the chat messages. Function calls join the assistant
/// turn before them; references to server-side items are skipped (reasoning is read
/// by [`chat_body`]).
fn add_item(messages: &mut Vec<Value>, item: &Value) -> Result<(), String> {
    let kind = item
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message");
    match kind {
        "message" => {
            let role = item.get("role").and_then(Value::as_str).unwrap_or("user");
            let parts = item
                .get("content")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if role == "assistant" {
                let text: String = parts
                    .iter()
                    .filter_map(|p| {
                        p.get("text")
                            .or_else(|| p.get("refusal"))
                            .and_then(Value::as_str)
                    })
                    .collect();
                messages.push(json!({"role": "assistant", "content": text}));
                return Ok(());
            }
            let mut content = Vec::new();
            for p in &parts {
                content.push(input_part(p)?);
            }
            messages.push(json!({"role": role, "content": content}));
        }
        "function_call" => {
            let call_id = item
                .get("call_id")
                .and_then(Value::as_str)
                .ok_or("a function_call needs a 'call_id'")?;
            let name = item
                .get("name")
                .and_then(Value::as_str)
                .ok_or("a function_call needs a 'name'")?;
            let arguments = item
                .get("arguments")
                .and_then(Value::as_str)
                .unwrap_or("{}");
            let call = json!({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}});
            match messages.last_mut() {
                Some(m) if m["role"] == "assistant" => {
                    if !m["tool_calls"].is_array() {
                        m["tool_calls"] = json!([]);
                    }
                    if let Some(calls) = m["tool_calls"].as_array_mut() {
                        calls.push(call);
                    }
                    if m["content"] == "" {
                        m["content"] = Value::Null;
                    }
                }
                _ => messages
                    .push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
            }
        }
        "function_call_output" => {
            let call_id = item
                .get("call_id")
                .and_then(Value::as_str)
                .ok_or("a function_call_output needs a 'call_id'")?;
            let output = match item.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            messages.push(json!({"role": "tool", "tool_call_id": call_id, "content": output}));
        }
        "item_reference" => {
            tracing::debug!(kind, "responses: item not sent to a translated target");
        }
        other => {
            tracing::debug!(kind = other, "responses: item type not translated; skipped");
        }
    }
    Ok(())
}

fn input_part(p: &Value) -> Result<Value, String> {
    match p.get("type").and_then(Value::as_str) {
        Some("input_text" | "output_text" | "text") => Ok(json!({
            "type": "text",
            "text": p.get("text").and_then(Value::as_str).unwrap_or(""),
        })),
        Some("input_image") => {
            let url = p
                .get("image_url")
                .and_then(Value::as_str)
                .ok_or("an input_image needs an 'image_url' (a file_id cannot be sent: the proxy keeps no files)")?;
            let mut image = json!({"url": url});
            if let Some(d) = p.get("detail").filter(|d| d.is_string()) {
                image["detail"] = d.clone();
            }
            Ok(json!({"type": "image_url", "image_url": image}))
        }
        Some(other) => Err(format!("content part {other:?} cannot be translated")),
        None => Err("a content part needs a 'type'".into()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::canonical::Origin;

    fn sealed(text: &str) -> String {
        let origin = Origin {
            provider: "a".into(),
            kind: "anthropic".into(),
            model: "m".into(),
        };
        Reasoning::new(text, origin, json!({"signature": "s"})).seal()
    }

    #[test]
    fn sealed_reasoning_goes_with_the_assistant_turn_that_follows_it() {
        let req = ResponsesRequest::parse(br#"{"model":"m","instructions":"sys"}"#).unwrap();
        let items = [
            json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "q"}]}),
            json!({"type": "reasoning", "summary": [], "encrypted_content": sealed("one")}),
            json!({"type": "reasoning", "summary": [], "encrypted_content": "gAAAA-openai-own"}),
            json!({"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}),
            json!({"type": "function_call_output", "call_id": "c1", "output": "r"}),
            json!({"type": "reasoning", "summary": [], "encrypted_content": sealed("orphan")}),
            json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "q2"}]}),
        ];
        let (body, replays) = chat_body(&req, &items, &mut Dropped::default()).unwrap();
        assert_eq!(body["messages"][2]["tool_calls"][0]["id"], "c1");
        let texts: Vec<(usize, &str)> =
            replays.iter().map(|(i, r)| (*i, r.text.as_str())).collect();
        assert_eq!(
            texts,
            [(2, "one")],
            "system, user, then the assistant turn; OpenAI's own and orphaned reasoning left out"
        );
        assert!(
            !body.to_string().contains("understudy.r1."),
            "never in the chat body"
        );
    }
}
