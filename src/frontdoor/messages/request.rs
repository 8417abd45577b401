//! An Anthropic Messages request → the canonical (Chat Completions) request: system
//! and content blocks become chat messages, `tool_use` / `tool_result` blocks tool
//! calls and tool messages, `tool_choice` and `thinking` their chat counterparts. A
//! block no translated target can express is a 400 naming it.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::canonical::{Reasoning, Thinking};
use crate::error::ProxyError;

#[derive(Debug, Deserialize)]
pub(super) struct MessagesRequest {
    pub(super) model: String,
    pub(super) messages: Vec<Value>,
    #[serde(default)]
    pub(super) system: Option<Value>,
    pub(super) max_tokens: u64,
    #[serde(default)]
    pub(super) tools: Option<Vec<Value>>,
    #[serde(default)]
    pub(super) tool_choice: Option<Value>,
    #[serde(default)]
    pub(super) temperature: Option<f64>,
    #[serde(default)]
    pub(super) top_p: Option<f64>,
    #[serde(default)]
    pub(super) stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    pub(super) metadata: Option<Value>,
    #[serde(default)]
    pub(super) thinking: Option<Value>,
    #[serde(default)]
    pub(super) stream: Option<bool>,
    #[serde(flatten)]
    pub(super) rest: Map<String, Value>,
}

fn bad(msg: impl Into<String>) -> ProxyError {
    ProxyError::BadRequest(msg.into())
}

impl MessagesRequest {
    pub(super) fn parse(body: &[u8]) -> Result<MessagesRequest, ProxyError> {
        let req: MessagesRequest = serde_json::from_slice(body).map_err(|e| {
            use serde_json::error::Category;
            match e.classify() {
                Category::Syntax | Category::Eof => {
                    bad(format!("request body is not valid JSON: {e}"))
                }
                _ => bad(format!("invalid request body: {e}")),
            }
        })?;
        if req.messages.is_empty() {
            return Err(bad("messages: at least one message is required"));
        }
        if !req.rest.is_empty() {
            let keys: Vec<&String> = req.rest.keys().collect();
            tracing::debug!(?keys, "messages: fields not translated");
        }
        Ok(req)
    }

    /// A stand-in canonical body for a request with no translation: enough to route
    /// it (model, stream) to a target that takes it natively.
    pub(super) fn placeholder(&self) -> Value {
        let mut body = json!({"model": self.model, "messages": [{"role": "user", "content": ""}]});
        if self.stream == Some(true) {
            body["stream"] = true.into();
        }
        body
    }

    /// The `thinking` setting in canonical terms: an exact budget, off, or the
    /// model's own choice (`adaptive`, `between_tools`).
    pub(super) fn thinking(&self) -> Option<Thinking> {
        let t = self.thinking.as_ref()?;
        match t.get("type").and_then(Value::as_str) {
            Some("enabled") => {
                let budget = t.get("budget_tokens").and_then(Value::as_u64).unwrap_or(0);
                Some(Thinking::Budget(u32::try_from(budget).unwrap_or(u32::MAX)))
            }
            Some("disabled") => Some(Thinking::Off),
            Some("adaptive" | "between_tools") => Some(Thinking::Auto),
            other => {
                tracing::debug!(kind = ?other, "messages: thinking type not translated");
                None
            }
        }
    }

    /// The chat body for this request, and the reasoning of its assistant turns that
    /// a translated provider produced (by chat message index).
    pub(super) fn chat_body(&self) -> Result<(Value, Vec<(usize, Reasoning)>), ProxyError> {
        let mut messages = Vec::new();
        let mut replays = Vec::new();
        if let Some(system) = &self.system {
            let text = text_of(system).map_err(|e| bad(format!("system: {e}")))?;
            if !text.is_empty() {
                messages.push(json!({"role": "system", "content": text}));
            }
        }
        for (i, m) in self.messages.iter().enumerate() {
            let reasoning =
                add_message(&mut messages, m).map_err(|e| bad(format!("messages[{i}]: {e}")))?;
            let at = messages.len().saturating_sub(1);
            replays.extend(reasoning.into_iter().map(|r| (at, r)));
        }
        let mut body = Map::new();
        body.insert("model".into(), self.model.clone().into());
        body.insert("messages".into(), messages.into());
        body.insert("max_tokens".into(), self.max_tokens.into());
        if let Some(tools) = &self.tools {
            let mut out = Vec::new();
            for (i, t) in tools.iter().enumerate() {
                out.push(tool(t).map_err(|e| bad(format!("tools[{i}]: {e}")))?);
            }
            if !out.is_empty() {
                body.insert("tools".into(), out.into());
            }
        }
        if let Some(choice) = &self.tool_choice {
            let (c, parallel) = tool_choice(choice)?;
            if let Some(c) = c {
                body.insert("tool_choice".into(), c);
            }
            if let (Some(p), true) = (parallel, body.contains_key("tools")) {
                body.insert("parallel_tool_calls".into(), p.into());
            }
        }
        if let Some(t) = self.temperature {
            body.insert("temperature".into(), t.into());
        }
        if let Some(p) = self.top_p {
            body.insert("top_p".into(), p.into());
        }
        if let Some(s) = self.stop_sequences.as_ref().filter(|s| !s.is_empty()) {
            body.insert("stop".into(), json!(s));
        }
        if let Some(u) = self
            .metadata
            .as_ref()
            .and_then(|m| m.get("user_id"))
            .and_then(Value::as_str)
        {
            body.insert("user".into(), u.into());
        }
        // OpenAI-kind targets read chat's effort; the others the exact setting.
        if let Some(effort) = self.thinking().and_then(Thinking::effort) {
            body.insert("reasoning_effort".into(), effort.into());
        }
        if self.stream == Some(true) {
            body.insert("stream".into(), true.into());
            body.insert("stream_options".into(), json!({"include_usage": true}));
        }
        Ok((Value::Object(body), replays))
    }
}

/// A thinking block's sealed reasoning (a translated provider's), if it is one.
pub(super) fn sealed_thinking(block: &Value) -> Option<Reasoning> {
    if block.get("type").and_then(Value::as_str) != Some("thinking") {
        return None;
    }
    block
        .get("signature")
        .and_then(Value::as_str)
        .and_then(Reasoning::unseal)
}

/// A string, or text blocks joined (system prompts, tool results).
fn text_of(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => {
            let mut out = String::new();
            for b in blocks {
                match b.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        out.push_str(b.get("text").and_then(Value::as_str).unwrap_or(""))
                    }
                    Some(other) => {
                        return Err(format!("a {other:?} block cannot be translated here"))
                    }
                    None => return Err("a block needs a 'type'".into()),
                }
            }
            Ok(out)
        }
        Value::Null => Ok(String::new()),
        _ => Err("must be a string or an array of text blocks".into()),
    }
}

/// Appends one message; returns the reasoning of an assistant message that a
/// translated provider produced (it goes with the message just appended).
fn add_message(messages: &mut Vec<Value>, m: &Value) -> Result<Vec<Reasoning>, String> {
    let role = m
        .get("role")
        .and_then(Value::as_str)
        .ok_or("a message needs a 'role'")?;
    if role == "system" {
        // Not in Anthropic's documented API, but Claude Code sends one mid-conversation.
        let text = text_of(m.get("content").unwrap_or(&Value::Null))?;
        messages.push(json!({"role": "system", "content": text}));
        return Ok(Vec::new());
    }
    if !matches!(role, "user" | "assistant") {
        return Err(format!("unknown role {role:?}"));
    }
    let blocks = match m.get("content") {
        Some(Value::String(s)) => vec![json!({"type": "text", "text": s})],
        Some(Value::Array(b)) => b.clone(),
        _ => return Err("'content' must be a string or an array of blocks".into()),
    };
    if role == "assistant" {
        let mut text = String::new();
        let mut calls = Vec::new();
        let mut reasoning = Vec::new();
        for b in &blocks {
            match b.get("type").and_then(Value::as_str) {
                Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
                Some("tool_use") => {
                    let id = b
                        .get("id")
                        .and_then(Value::as_str)
                        .ok_or("a tool_use block needs an 'id'")?;
                    let name = b
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or("a tool_use block needs a 'name'")?;
                    let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                    calls.push(json!({"id": id, "type": "function",
                        "function": {"name": name, "arguments": input.to_string()}}));
                }
                // A model's own reasoning goes back only to the provider that made it:
                // the proxy's seal names it; Anthropic's own only Anthropic can read.
                Some("thinking" | "redacted_thinking") => reasoning.extend(sealed_thinking(b)),
                Some(other) => return Err(format!("a {other:?} block cannot be translated")),
                None => return Err("a block needs a 'type'".into()),
            }
        }
        let mut msg = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { text.into() }});
        if !calls.is_empty() {
            msg["tool_calls"] = calls.into();
        }
        messages.push(msg);
        return Ok(reasoning);
    }
    // A user turn: tool results first (chat wants them right after the calls), then
    // the rest as one user message.
    let mut parts = Vec::new();
    for b in &blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("tool_result") => {
                let id = b.get("tool_use_id").and_then(Value::as_str).ok_or("a tool_result needs a 'tool_use_id'")?;
                let mut content = match b.get("content") {
                    None => String::new(),
                    Some(c) => text_of(c).map_err(|e| format!("tool_result content: {e}"))?,
                };
                if b.get("is_error") == Some(&Value::Bool(true)) {
                    content = format!("Error: {content}");
                }
                messages.push(json!({"role": "tool", "tool_call_id": id, "content": content}));
            }
            Some("text") => parts.push(json!({"type": "text", "text": b.get("text").and_then(Value::as_str).unwrap_or("")})),
            Some("image") => parts.push(image(b)?),
            Some(other) => return Err(format!("a {other:?} block cannot be translated")),
            None => return Err("a block needs a 'type'".into()),
        }
    }
    if !parts.is_empty() {
        messages.push(json!({"role": "user", "content": parts}));
    }
    Ok(Vec::new())
}

fn image(b: &Value) -> Result<Value, String> {
    let source = b.get("source").ok_or("an image block needs a 'source'")?;
    let url = match source.get("type").and_then(Value::as_str) {
        Some("base64") => format!(
            "data:{};base64,{}",
            source
                .get("media_type")
                .and_then(Value::as_str)
                .unwrap_or("image/png"),
            source.get("data").and_then(Value::as_str).unwrap_or("")
        ),
        Some("url") => source
            .get("url")
            .and_then(Value::as_str)
            .ok_or("an image url source needs a 'url'")?
            .to_string(),
        _ => {
            return Err(
                "an image source must be base64 or url (a file cannot be translated)".into(),
            )
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

fn tool(t: &Value) -> Result<Value, String> {
    match t.get("type").and_then(Value::as_str) {
        None | Some("custom") => {}
        Some(other) => return Err(format!("the server tool {other:?} cannot be translated")),
    }
    let name = t
        .get("name")
        .and_then(Value::as_str)
        .ok_or("a tool needs a 'name'")?;
    let mut f = Map::new();
    f.insert("name".into(), name.into());
    if let Some(d) = t.get("description").filter(|d| d.is_string()) {
        f.insert("description".into(), d.clone());
    }
    f.insert(
        "parameters".into(),
        t.get("input_schema")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object"})),
    );
    Ok(json!({"type": "function", "function": f}))
}

/// (chat tool_choice, parallel_tool_calls).
fn tool_choice(c: &Value) -> Result<(Option<Value>, Option<bool>), ProxyError> {
    let parallel = c
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        .map(|d| !d);
    let choice = match c.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("tool_choice: type tool needs a 'name'"))?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => return Err(bad("tool_choice: 'type' must be auto, any, tool or none")),
    };
    Ok((Some(choice), parallel))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::canonical::Origin;

    fn parse(v: Value) -> MessagesRequest {
        MessagesRequest::parse(v.to_string().as_bytes()).unwrap()
    }

    fn with_thinking(t: Value) -> MessagesRequest {
        parse(json!({"model": "m", "max_tokens": 10, "thinking": t,
                     "messages": [{"role": "user", "content": "q"}]}))
    }

    #[test]
    fn thinking_settings_map_to_canonical_and_chat_effort() {
        for (t, want, effort) in [
            (
                json!({"type": "enabled", "budget_tokens": 2048}),
                Some(Thinking::Budget(2048)),
                Some("low"),
            ),
            (
                json!({"type": "enabled", "budget_tokens": 10000}),
                Some(Thinking::Budget(10000)),
                Some("medium"),
            ),
            (
                json!({"type": "adaptive"}),
                Some(Thinking::Auto),
                Some("medium"),
            ),
            (json!({"type": "disabled"}), Some(Thinking::Off), None),
            (json!({"type": "telepathy"}), None, None),
        ] {
            let req = with_thinking(t.clone());
            assert_eq!(req.thinking(), want, "{t}");
            let (body, _) = req.chat_body().unwrap();
            assert_eq!(body["reasoning_effort"].as_str(), effort, "{t}");
        }
    }

    #[test]
    fn sealed_thinking_goes_with_its_assistant_turn_and_anthropics_own_is_left_out() {
        let origin = Origin {
            provider: "gem".into(),
            kind: "gemini".into(),
            model: "g".into(),
        };
        let piece = Reasoning::new("hmm", origin, json!({"thoughts": []}));
        let req = parse(json!({"model": "m", "max_tokens": 10, "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": piece.seal()},
                {"type": "thinking", "thinking": "claude's", "signature": "EqQBCgIY"},
                {"type": "redacted_thinking", "data": "EmwK"},
                {"type": "text", "text": "a"}]},
            {"role": "user", "content": "q2"}]}));
        let (body, replays) = req.chat_body().unwrap();
        assert_eq!(
            body["messages"][1],
            json!({"role": "assistant", "content": "a"})
        );
        assert_eq!(replays, [(1, piece)]);
    }
}
