//! OpenAI Chat Completions request → Ollama `/api/chat` body: messages, images, tools,
//! `format` and `options`, and the refusals for what Ollama cannot express.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::canonical::{
    ChatRequest, Content, ContentPart, FunctionCall, Message, ResponseFormat, Role, Thinking,
    ToolChoice,
};
use crate::providers::{AdapterError, Target};

#[derive(Debug, Serialize)]
pub(super) struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<WireTool<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<Value>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    options: Map<String, Value>,
    /// Thinking models think by default; `false` turns it off, `true` asks for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    think: Option<bool>,
    stream: bool,
}

#[derive(Debug, Serialize)]
struct WireMessage {
    role: &'static str,
    content: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    images: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCall>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_name: Option<String>,
    /// This model's own earlier thinking.
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<String>,
}

impl WireMessage {
    fn new(role: &'static str, content: String) -> WireMessage {
        WireMessage {
            thinking: None,
            role,
            content,
            images: Vec::new(),
            tool_calls: Vec::new(),
            tool_name: None,
        }
    }
}

#[derive(Debug, Serialize)]
struct WireToolCall {
    function: WireCalledFunction,
}

#[derive(Debug, Serialize)]
struct WireCalledFunction {
    name: String,
    /// A JSON object, not OpenAI's JSON-encoded string.
    arguments: Value,
}

#[derive(Debug, Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(Debug, Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    parameters: Value,
}

pub(super) fn translate_request<'a>(
    req: &'a ChatRequest,
    target: &'a Target,
) -> Result<WireRequest<'a>, AdapterError> {
    let model = target.model.as_str();
    if req.n.is_some_and(|n| n > 1) {
        return Err(AdapterError::InvalidRequest(
            "'n' greater than 1 is not supported by Ollama: it returns one choice per request"
                .into(),
        ));
    }
    req.function_tools_only("Ollama")
        .map_err(AdapterError::InvalidRequest)?;
    log_dropped(req);
    Ok(WireRequest {
        model,
        messages: translate_messages(&req.messages, target)?,
        tools: translate_tools(req)?,
        format: format(req),
        options: options(req),
        think: req.thinking().map(|t| t != Thinking::Off),
        stream: req.is_stream(),
    })
}

fn log_dropped(req: &ChatRequest) {
    if req.parallel_tool_calls.is_some() {
        tracing::debug!("ollama: parallel_tool_calls cannot be expressed; dropped");
    }
    if req.logprobs.is_some() || req.top_logprobs.is_some() {
        tracing::debug!("ollama: logprobs / top_logprobs are not translated; dropped");
    }
    if req.user.is_some() {
        tracing::debug!("ollama: user cannot be expressed; dropped");
    }
}

fn translate_messages(
    messages: &[Message],
    target: &Target,
) -> Result<Vec<WireMessage>, AdapterError> {
    // tool_call_id → function name, from the assistant turns seen so far.
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    let mut out = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let wire = match m.role {
            Role::System | Role::Developer => WireMessage::new("system", text_of(m, i)?),
            Role::User => {
                let mut wire = WireMessage::new("user", String::new());
                (wire.content, wire.images) = content_of(m, i)?;
                wire
            }
            Role::Assistant => {
                let mut wire = WireMessage::new("assistant", text_of(m, i)?);
                let own: String = m
                    .reasoning
                    .iter()
                    .filter(|r| r.origin.is(target))
                    .map(|r| r.text.as_str())
                    .collect();
                wire.thinking = (!own.is_empty()).then_some(own);
                for call in m.tool_calls.iter().flatten() {
                    call_names.insert(&call.id, &call.function.name);
                    wire.tool_calls.push(WireToolCall {
                        function: WireCalledFunction {
                            name: call.function.name.clone(),
                            arguments: parse_arguments(&call.function)?,
                        },
                    });
                }
                wire
            }
            Role::Tool | Role::Function => {
                let mut wire = WireMessage::new("tool", text_of(m, i)?);
                wire.tool_name = m
                    .tool_call_id
                    .as_deref()
                    .and_then(|id| call_names.get(id).copied())
                    .or(m.name.as_deref())
                    .map(str::to_string);
                wire
            }
        };
        out.push(wire);
    }
    Ok(out)
}

/// The text of a message that may not carry images.
fn text_of(m: &Message, i: usize) -> Result<String, AdapterError> {
    let (text, images) = content_of(m, i)?;
    if images.is_empty() {
        Ok(text)
    } else {
        Err(AdapterError::InvalidRequest(format!(
            "messages[{i}]: images are only accepted in user messages"
        )))
    }
}

/// Text parts joined, and the bare base64 payloads of the image parts.
fn content_of(m: &Message, i: usize) -> Result<(String, Vec<String>), AdapterError> {
    let parts = match &m.content {
        None => return Ok((String::new(), Vec::new())),
        Some(Content::Text(s)) => return Ok((s.clone(), Vec::new())),
        Some(Content::Parts(parts)) => parts,
    };
    let mut text = String::new();
    let mut images = Vec::new();
    for part in parts {
        match part {
            ContentPart::Text { text: t } => text.push_str(t),
            ContentPart::ImageUrl { image_url } => match image_url.as_data_url() {
                Some(data) => images.push(data.base64.to_string()),
                None => {
                    return Err(AdapterError::InvalidRequest(format!(
                        "messages[{i}]: Ollama takes inline images only; send the image as a \
                         base64 data URL (data:image/png;base64,...) instead of a link"
                    )))
                }
            },
            // A refusal part of an earlier assistant turn: history only, safe to drop.
            ContentPart::Unsupported if m.role == Role::Assistant => {
                tracing::debug!("ollama: non-text assistant content part dropped");
            }
            ContentPart::Unsupported => {
                return Err(AdapterError::InvalidRequest(format!(
                    "messages[{i}]: Ollama accepts text and image content parts only \
                     (audio and file parts cannot be sent)"
                )))
            }
        }
    }
    Ok((text, images))
}

/// OpenAI's JSON-encoded arguments as the object Ollama wants (`""` means none).
fn parse_arguments(f: &FunctionCall) -> Result<Value, AdapterError> {
    let raw = f.arguments.trim();
    if raw.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(AdapterError::InvalidRequest(format!(
            "tool call {:?}: arguments must be a JSON object",
            f.name
        ))),
        Err(e) => Err(AdapterError::InvalidRequest(format!(
            "tool call {:?}: arguments are not valid JSON: {e}",
            f.name
        ))),
    }
}

fn translate_tools(req: &ChatRequest) -> Result<Option<Vec<WireTool<'_>>>, AdapterError> {
    let Some(tools) = req.tools.as_ref().filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    match &req.tool_choice {
        None => {}
        Some(ToolChoice::Mode(mode)) if mode == "auto" => {}
        Some(ToolChoice::Mode(mode)) if mode == "none" => {
            tracing::debug!("ollama: tool_choice \"none\": tools not sent");
            return Ok(None);
        }
        Some(choice) => {
            tracing::debug!(
                ?choice,
                "ollama: cannot force a tool call; tool_choice dropped"
            );
        }
    }
    tools
        .iter()
        .map(|tool| {
            if tool.kind != "function" {
                return Err(AdapterError::InvalidRequest(format!(
                    "tools: type {:?} is not supported by Ollama (function tools only)",
                    tool.kind
                )));
            }
            if tool.function.strict.is_some() {
                tracing::debug!("ollama: tool strict flag dropped");
            }
            Ok(WireTool {
                kind: "function",
                function: WireFunction {
                    name: &tool.function.name,
                    description: tool.function.description.as_deref(),
                    parameters: tool
                        .function
                        .parameters
                        .clone()
                        .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
                },
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// `"json"` for JSON mode, the schema itself for structured outputs.
fn format(req: &ChatRequest) -> Option<Value> {
    match &req.response_format {
        None | Some(ResponseFormat::Text) => None,
        Some(ResponseFormat::JsonObject) => Some(Value::String("json".into())),
        Some(ResponseFormat::JsonSchema { json_schema }) => Some(
            json_schema
                .schema
                .clone()
                .unwrap_or_else(|| Value::String("json".into())),
        ),
    }
}

fn options(req: &ChatRequest) -> Map<String, Value> {
    let mut o = Map::new();
    let mut set = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            o.insert(key.to_string(), v);
        }
    };
    set("temperature", req.temperature.map(Value::from));
    set("top_p", req.top_p.map(Value::from));
    set("num_predict", req.max_output_tokens().map(Value::from));
    let stop = req.stop_sequences();
    set("stop", (!stop.is_empty()).then(|| Value::from(stop)));
    set("seed", req.seed.map(Value::from));
    set("presence_penalty", req.presence_penalty.map(Value::from));
    set("frequency_penalty", req.frequency_penalty.map(Value::from));
    o
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde_json::json;

    use super::*;
    use crate::providers::ollama::tests::local;
    use crate::providers::ollama::ADAPTER;
    use crate::providers::testing::request;
    use crate::providers::Adapter;

    fn body_of(req: &http::Request<Bytes>) -> Value {
        serde_json::from_slice(req.body()).unwrap()
    }

    fn build(json: &str) -> Result<Value, AdapterError> {
        ADAPTER
            .build_request(&request(json), &local("llama3.2"))
            .map(|r| body_of(&r))
    }

    fn invalid(json: &str) -> String {
        match build(json) {
            Err(AdapterError::InvalidRequest(m)) => m,
            other => panic!("expected InvalidRequest, got {other:?}"),
        }
    }

    fn user(content: Value) -> String {
        json!({"model": "m", "messages": [{"role": "user", "content": content}]}).to_string()
    }

    fn check_request_fixture(text: &str, model: &str) {
        let doc: Value = serde_json::from_str(text).unwrap();
        let req = request(&doc["openai"].to_string());
        let out = ADAPTER.build_request(&req, &local(model)).unwrap();
        assert_eq!(body_of(&out), doc["ollama"]);
    }

    #[test]
    fn fixture_multimodal_options_and_json_mode() {
        // system + developer → system, parts joined, data URL → bare base64, every
        // option, max_completion_tokens over max_tokens, json_object → "json",
        // stream: true, `user` and `stream_options` dropped.
        check_request_fixture(
            include_str!("../../../fixtures/ollama/request_multimodal.json"),
            "llava:7b",
        );
    }

    #[test]
    fn fixture_tools_tool_calls_results_and_schema() {
        // assistant tool calls with object arguments ("" → {}), tool results named
        // after their calls, tools without `strict`, a tool without parameters, the
        // json_schema as `format`, max_tokens → num_predict, one stop string → list.
        check_request_fixture(
            include_str!("../../../fixtures/ollama/request_tools.json"),
            "llama3.2",
        );
    }

    #[test]
    fn fixture_plain_request_sends_stream_false_explicitly() {
        check_request_fixture(
            include_str!("../../../fixtures/ollama/request_plain.json"),
            "llama3.2",
        );
    }

    #[test]
    fn stream_is_always_explicit() {
        let base = r#"{"model":"m","messages":[{"role":"user","content":"x"}]"#;
        assert_eq!(build(&format!("{base}}}")).unwrap()["stream"], false);
        assert_eq!(
            build(&format!(r#"{base},"stream":false}}"#)).unwrap()["stream"],
            false
        );
        assert_eq!(
            build(&format!(r#"{base},"stream":true}}"#)).unwrap()["stream"],
            true
        );
    }

    #[test]
    fn no_options_or_format_when_none_are_set() {
        let body = build(
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"text"},"stop":[]}"#,
        )
        .unwrap();
        assert!(body.get("options").is_none(), "{body}");
        assert!(body.get("format").is_none(), "{body}");
        assert!(body.get("tools").is_none(), "{body}");
    }

    #[test]
    fn json_schema_without_a_schema_is_json_mode() {
        let body = build(
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"n"}}}"#,
        )
        .unwrap();
        assert_eq!(body["format"], "json");
    }

    #[test]
    fn n_above_one_is_refused_and_one_is_fine() {
        let m = invalid(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":2}"#);
        assert!(m.contains("'n'"), "{m}");
        assert!(build(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":1}"#).is_ok());
    }

    #[test]
    fn image_links_cannot_be_expressed() {
        let m = invalid(&user(json!([
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
        ])));
        assert!(m.contains("data URL") && m.contains("messages[0]"), "{m}");
        // A data URL that is not base64 is no better.
        invalid(&user(json!([
            {"type": "image_url", "image_url": {"url": "data:image/svg+xml,%3Csvg%3E"}}
        ])));
    }

    #[test]
    fn images_outside_user_messages_are_refused() {
        let m = invalid(
            &json!({"model": "m", "messages": [{"role": "system", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
            ]}]})
            .to_string(),
        );
        assert!(m.contains("user messages"), "{m}");
    }

    #[test]
    fn audio_and_file_parts_are_refused_but_assistant_refusals_dropped() {
        let m = invalid(&user(json!([
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
        ])));
        assert!(m.contains("text and image"), "{m}");
        let body = build(
            &json!({"model": "m", "messages": [
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"},
                                                  {"type": "text", "text": "ok"}]}
            ]})
            .to_string(),
        )
        .unwrap();
        assert_eq!(
            body["messages"][1],
            json!({"role": "assistant", "content": "ok"})
        );
    }

    #[test]
    fn tool_call_arguments_must_be_a_json_object() {
        let with_args = |args: &str| {
            json!({"model": "m", "messages": [
                {"role": "user", "content": "x"},
                {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                    "function": {"name": "f", "arguments": args}}]}
            ]})
            .to_string()
        };
        let m = invalid(&with_args("{\"a\":"));
        assert!(m.contains("not valid JSON") && m.contains("\"f\""), "{m}");
        let m = invalid(&with_args("[1,2]"));
        assert!(m.contains("JSON object"), "{m}");
        let body = build(&with_args(" {\"a\": [1, {\"b\": null}]} ")).unwrap();
        assert_eq!(
            body["messages"][1]["tool_calls"][0]["function"]["arguments"],
            json!({"a": [1, {"b": null}]})
        );
    }

    #[test]
    fn tool_results_are_named_after_their_call() {
        let body = build(
            &json!({"model": "m", "messages": [
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": "let me look", "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "lookup", "arguments": "{}"}},
                    {"id": "b", "type": "function", "function": {"name": "search", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "b", "content": "found"},
                {"role": "tool", "tool_call_id": "a", "content": "looked"},
                {"role": "tool", "tool_call_id": "unknown", "content": "orphan"},
                {"role": "function", "name": "legacy", "content": "old style"}
            ]})
            .to_string(),
        )
        .unwrap();
        let msgs = body["messages"].as_array().unwrap();
        assert_eq!(msgs[1]["content"], "let me look");
        assert_eq!(
            msgs[2],
            json!({"role": "tool", "content": "found", "tool_name": "search"})
        );
        assert_eq!(msgs[3]["tool_name"], "lookup");
        assert_eq!(msgs[4], json!({"role": "tool", "content": "orphan"}));
        assert_eq!(
            msgs[5],
            json!({"role": "tool", "content": "old style", "tool_name": "legacy"})
        );
    }

    #[test]
    fn tool_choice_none_omits_tools_and_forcing_is_dropped() {
        let with_choice = |choice: Value| {
            build(
                &json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                    "tools": [{"type": "function", "function": {"name": "f",
                        "parameters": {"type": "object", "properties": {}}}}],
                    "tool_choice": choice})
                .to_string(),
            )
            .unwrap()
        };
        assert!(with_choice(json!("none")).get("tools").is_none());
        for choice in [
            json!("auto"),
            json!("required"),
            json!({"type": "function", "function": {"name": "f"}}),
        ] {
            let body = with_choice(choice.clone());
            assert_eq!(body["tools"][0]["function"]["name"], "f", "{choice}");
            assert!(body.get("tool_choice").is_none());
        }
    }

    #[test]
    fn non_function_tools_are_refused() {
        let m = invalid(
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"custom","function":{"name":"g"}}]}"#,
        );
        assert!(m.contains("custom"), "{m}");
    }

    #[test]
    fn thinking_is_think_and_own_thinking_is_replayed() {
        use crate::canonical::{Origin, Reasoning, Thinking};
        let t = local("qwen3:8b");
        let mut req = request(
            r#"{"model":"m","reasoning_effort":"high","messages":[{"role":"user","content":"a"},
            {"role":"assistant","content":"b"},{"role":"user","content":"c"}]}"#,
        );
        let body =
            |req: &ChatRequest| serde_json::to_value(translate_request(req, &t).unwrap()).unwrap();
        assert_eq!(body(&req)["think"], true);
        req.thinking = Some(Thinking::Off);
        assert_eq!(body(&req)["think"], false);
        req.thinking = None;
        req.reasoning_effort = None;
        assert!(body(&req).get("think").is_none());
        let other = Origin {
            provider: "x".into(),
            ..Origin::of(&t)
        };
        req.messages[1].reasoning = vec![
            Reasoning::new("mine", Origin::of(&t), Value::Null),
            Reasoning::new("theirs", other, Value::Null),
        ];
        assert_eq!(body(&req)["messages"][1]["thinking"], "mine");
        assert!(body(&req)["messages"][0].get("thinking").is_none());
    }
}
