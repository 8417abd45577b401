//! Ollama's native API: `POST {base_url}/api/chat`, answered with one JSON object or
//! an NDJSON stream (one object per line, `done: true` last with `done_reason` and the
//! token counts). A local Ollama needs no key; when one is configured (a hosted or
//! proxied Ollama) it is sent as `Authorization: Bearer`.
//!
//! What the native API cannot express:
//! - `tool_choice`: Ollama always lets the model choose. `"none"` is honoured by not
//!   sending the tools at all; `"required"` and a named function are dropped (debug
//!   log): the model may still call a tool, it is just not forced to.
//! - `n` > 1 (one answer per request): 400 before any call.
//! - image links: Ollama takes inline base64 images only, so an http(s) image URL is a
//!   400 (dropping the image would change the question).
//! - `parallel_tool_calls`, `logprobs`, `user`, a tool's `strict`: dropped (debug log).
//!
//! Ollama gives tool calls no ids: the proxy makes `call_<random>` ones (an id the
//! server does send is kept). A `tool` result is matched to its call by `tool_name`,
//! looked up from the assistant turn that made the call. `message.thinking` (the
//! reasoning of thinking models) has no place in Chat Completions and is not shown.

use std::collections::HashMap;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::settings::typed;
use super::{
    get, join_url, json_post, openai_style_error, set_secret, Adapter, AdapterError, Flow, Kind,
    KindSettings, NoSettings, Provider, StreamTranslator, Target, UpstreamError,
};
use crate::canonical::{
    new_call_id, random_id, unix_now, ChatChunk, ChatRequest, ChatResponse, Choice, Content,
    ContentPart, Delta, FunctionCall, Message, ResponseFormat, ResponseMessage, Role, ToolCall,
    ToolCallDelta, ToolChoice, Usage,
};
use crate::http::sse::{Event, Framing};

pub(super) struct Ollama;

pub(super) static ADAPTER: Ollama = Ollama;

impl Adapter for Ollama {
    fn settings(&self, table: toml::Table) -> Result<Box<dyn KindSettings>, String> {
        Ok(Box::new(typed::<NoSettings>(Kind::Ollama, table)?))
    }

    fn build_request(
        &self,
        req: &ChatRequest,
        target: &Target,
    ) -> Result<http::Request<Bytes>, AdapterError> {
        let body = serde_json::to_vec(&translate_request(req, &target.model)?)
            .map_err(|e| AdapterError::InvalidRequest(format!("request body: {e}")))?;
        let uri = join_url(&target.provider.base_url, "/api/chat")?;
        let mut out = json_post(uri, &target.provider, body)?;
        authorize(&mut out, &target.provider)?;
        Ok(out)
    }

    fn parse_response(
        &self,
        _req: &ChatRequest,
        target: &Target,
        body: &[u8],
    ) -> Result<ChatResponse, AdapterError> {
        let answer: Answer = serde_json::from_slice(body)
            .map_err(|e| AdapterError::Protocol(format!("Ollama answer: {e}")))?;
        if let Some(err) = &answer.error {
            return Err(in_band_error(err));
        }
        match answer.done {
            Some(true) => {}
            Some(false) => return Err(AdapterError::Protocol("Ollama answer is not done".into())),
            None => {
                return Err(AdapterError::Protocol(
                    "Ollama answer has no \"done\"".into(),
                ))
            }
        }
        let Some(message) = answer.message else {
            return Err(AdapterError::Protocol(
                "Ollama answer has no message".into(),
            ));
        };
        let calls = message
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .map(|call| {
                Ok(ToolCall {
                    id: call_id(call.id),
                    kind: "function".into(),
                    function: FunctionCall {
                        arguments: arguments_json(call.function.arguments)?,
                        name: call.function.name,
                    },
                })
            })
            .collect::<Result<Vec<_>, AdapterError>>()?;
        let finish = finish_reason(!calls.is_empty(), answer.done_reason.as_deref());
        let content = message.content.unwrap_or_default();
        let content = (!content.is_empty() || calls.is_empty()).then_some(content);
        Ok(ChatResponse {
            id: completion_id(),
            object: "chat.completion".into(),
            created: created(answer.created_at.as_deref()),
            model: answered_model(answer.model, target),
            choices: vec![Choice {
                index: 0,
                message: ResponseMessage::assistant(content, (!calls.is_empty()).then_some(calls)),
                finish_reason: Some(finish.into()),
                logprobs: None,
                extra: Map::new(),
            }],
            usage: Some(Usage::new(
                answer.prompt_eval_count.unwrap_or(0),
                answer.eval_count.unwrap_or(0),
            )),
            extra: Map::new(),
        })
    }

    fn parse_error(&self, status: StatusCode, _headers: &HeaderMap, body: &[u8]) -> UpstreamError {
        #[derive(Deserialize)]
        struct ErrorBody {
            error: Value,
        }
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(ErrorBody {
                error: Value::String(message),
            }) if !message.trim().is_empty() => UpstreamError::new(status.as_u16(), message),
            // A proxy in front of Ollama may answer in OpenAI's shape; else an excerpt.
            _ => openai_style_error(status, body),
        }
    }

    fn framing(&self) -> Framing {
        Framing::Ndjson
    }

    fn stream_translator(&self, _req: &ChatRequest, target: &Target) -> Box<dyn StreamTranslator> {
        Box::new(Translator {
            id: completion_id(),
            target_model: target.model.clone(),
            meta: None,
            calls: 0,
            done: false,
        })
    }

    fn probe_request(&self, provider: &Provider) -> Result<http::Request<Bytes>, AdapterError> {
        let mut req = get(join_url(&provider.base_url, "/api/tags")?, provider)?;
        authorize(&mut req, provider)?;
        Ok(req)
    }
}

fn authorize(req: &mut http::Request<Bytes>, provider: &Provider) -> Result<(), AdapterError> {
    match &provider.api_key {
        Some(key) => set_secret(
            req,
            http::header::AUTHORIZATION,
            &format!("Bearer {}", key.expose()),
        ),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------
// Request

#[derive(Debug, Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<WireTool<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<Value>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    options: Map<String, Value>,
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
}

impl WireMessage {
    fn new(role: &'static str, content: String) -> WireMessage {
        WireMessage {
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

fn translate_request<'a>(
    req: &'a ChatRequest,
    model: &'a str,
) -> Result<WireRequest<'a>, AdapterError> {
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
        messages: translate_messages(&req.messages)?,
        tools: translate_tools(req)?,
        format: format(req),
        options: options(req),
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

fn translate_messages(messages: &[Message]) -> Result<Vec<WireMessage>, AdapterError> {
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

// ---------------------------------------------------------------------------------
// Answers

/// One answer object: the whole non-streamed answer, or one line of a stream.
#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    message: Option<AnswerMessage>,
    #[serde(default)]
    done: Option<bool>,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
    #[serde(default)]
    eval_count: Option<u64>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct AnswerMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<AnswerToolCall>>,
}

#[derive(Debug, Deserialize)]
struct AnswerToolCall {
    #[serde(default)]
    id: Option<String>,
    function: AnswerFunction,
}

#[derive(Debug, Deserialize)]
struct AnswerFunction {
    name: String,
    #[serde(default)]
    arguments: Value,
}

/// `{"error": "..."}` inside a 200: the server failed while answering.
fn in_band_error(error: &Value) -> AdapterError {
    let message = match error {
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("message") {
            Some(Value::String(s)) => s.clone(),
            _ => error.to_string(),
        },
        other => other.to_string(),
    };
    AdapterError::Upstream(UpstreamError::new(500, message))
}

/// Ollama's argument object as OpenAI's JSON string (`"{}"` when there are none).
fn arguments_json(arguments: Value) -> Result<String, AdapterError> {
    match arguments {
        Value::Null => Ok("{}".into()),
        Value::String(s) if serde_json::from_str::<serde::de::IgnoredAny>(&s).is_ok() => Ok(s),
        Value::String(_) => Err(AdapterError::Protocol(
            "tool call arguments are neither an object nor JSON text".into(),
        )),
        other => Ok(other.to_string()),
    }
}

fn call_id(given: Option<String>) -> String {
    given
        .filter(|id| !id.is_empty())
        .unwrap_or_else(new_call_id)
}

fn completion_id() -> String {
    random_id("chatcmpl-", 24)
}

fn answered_model(model: Option<String>, target: &Target) -> String {
    model
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| target.model.clone())
}

fn finish_reason(has_calls: bool, done_reason: Option<&str>) -> &'static str {
    match done_reason {
        _ if has_calls => "tool_calls",
        Some("length") => "length",
        _ => "stop",
    }
}

fn created(created_at: Option<&str>) -> u64 {
    created_at.and_then(rfc3339_secs).unwrap_or_else(unix_now)
}

/// Seconds since the epoch of an RFC 3339 time. Ollama writes the server's local time
/// with its offset (`2023-08-04T08:52:19.385406455-07:00`); humantime reads UTC only,
/// so a numeric offset is applied here.
fn rfc3339_secs(s: &str) -> Option<u64> {
    let s = s.trim();
    let bytes = s.as_bytes();
    let n = bytes.len();
    let (base, offset) = if n > 6 && matches!(bytes[n - 6], b'+' | b'-') && bytes[n - 3] == b':' {
        let hours: i64 = s.get(n - 5..n - 3)?.parse().ok()?;
        let minutes: i64 = s.get(n - 2..)?.parse().ok()?;
        let sign = if bytes[n - 6] == b'-' { -1 } else { 1 };
        (s.get(..n - 6)?, sign * (hours * 3600 + minutes * 60))
    } else {
        (s, 0)
    };
    let local = humantime::parse_rfc3339_weak(base).ok()?;
    let secs = i64::try_from(local.duration_since(UNIX_EPOCH).ok()?.as_secs()).ok()?;
    u64::try_from(secs - offset).ok()
}

// ---------------------------------------------------------------------------------
// Streams

struct Translator {
    id: String,
    target_model: String,
    /// `created` and `model`, fixed by the first line for every chunk.
    meta: Option<(u64, String)>,
    /// Tool calls started so far: the next call's `index`.
    calls: u32,
    done: bool,
}

impl Translator {
    fn chunk(&self) -> ChatChunk {
        match &self.meta {
            Some((created, model)) => ChatChunk::new(&self.id, *created, model),
            None => ChatChunk::new(&self.id, unix_now(), &self.target_model),
        }
    }
}

impl StreamTranslator for Translator {
    fn on_event(&mut self, event: &Event, out: &mut Vec<ChatChunk>) -> Result<Flow, AdapterError> {
        if self.done {
            return Ok(Flow::Done);
        }
        let line: Answer = serde_json::from_str(event.data.trim())
            .map_err(|e| AdapterError::Protocol(format!("Ollama stream line: {e}")))?;
        if let Some(err) = &line.error {
            return Err(in_band_error(err));
        }
        let Some(done) = line.done else {
            return Err(AdapterError::Protocol(
                "Ollama stream line has no \"done\"".into(),
            ));
        };
        if self.meta.is_none() {
            let model = line
                .model
                .clone()
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| self.target_model.clone());
            self.meta = Some((created(line.created_at.as_deref()), model));
            out.push(self.chunk().with_delta(Delta::role(), None));
        }
        if let Some(message) = line.message {
            if let Some(text) = message.content.filter(|t| !t.is_empty()) {
                out.push(self.chunk().with_delta(Delta::text(text), None));
            }
            for call in message.tool_calls.unwrap_or_default() {
                let index = self.calls;
                self.calls = self.calls.saturating_add(1);
                let arguments = arguments_json(call.function.arguments)?;
                let start = ToolCallDelta::start(index, call_id(call.id), call.function.name);
                out.push(self.chunk().with_delta(Delta::tool_call(start), None));
                let args = ToolCallDelta::arguments(index, arguments);
                out.push(self.chunk().with_delta(Delta::tool_call(args), None));
            }
        }
        if !done {
            return Ok(Flow::Continue);
        }
        self.done = true;
        let reason = finish_reason(self.calls > 0, line.done_reason.as_deref());
        out.push(self.chunk().with_delta(Delta::default(), Some(reason)));
        let mut usage = self.chunk();
        usage.usage = Some(Usage::new(
            line.prompt_eval_count.unwrap_or(0),
            line.eval_count.unwrap_or(0),
        ));
        out.push(usage);
        Ok(Flow::Done)
    }

    fn finish(&mut self, _out: &mut Vec<ChatChunk>) -> Result<(), AdapterError> {
        if self.done {
            Ok(())
        } else {
            Err(AdapterError::Protocol(
                "Ollama stream ended before its done: true line".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::http::sse::Decoder;
    use crate::providers::testing::{request, target, target_with};
    use crate::providers::Kind;

    const BASE: &str = "http://127.0.0.1:11434";

    fn local(model: &str) -> Target {
        target_with(Kind::Ollama, BASE, model, |p| {
            p.api_key_env = None;
            p.api_key = None;
        })
    }

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

    // -- config and plumbing ------------------------------------------------------

    #[test]
    fn request_goes_to_api_chat_without_auth_for_a_local_ollama() {
        let t = target_with(Kind::Ollama, "http://127.0.0.1:11434/", "llama3.2", |p| {
            p.api_key = None;
        });
        let req = request(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
        let out = ADAPTER.build_request(&req, &t).unwrap();
        assert_eq!(out.method(), http::Method::POST);
        assert_eq!(out.uri(), "http://127.0.0.1:11434/api/chat");
        assert_eq!(out.headers()["content-type"], "application/json");
        assert_eq!(out.headers()["x-extra"], "1");
        assert!(out.headers().get("authorization").is_none());
    }

    #[test]
    fn a_configured_key_is_sent_as_a_sensitive_bearer_token() {
        let t = target(Kind::Ollama, "https://ollama.example.com");
        let req = request(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
        let out = ADAPTER.build_request(&req, &t).unwrap();
        assert_eq!(out.headers()["authorization"], "Bearer sk-secret");
        assert!(out.headers()["authorization"].is_sensitive());
    }

    #[test]
    fn probe_lists_tags_with_auth_when_keyed() {
        let t = local("m");
        let probe = ADAPTER.probe_request(&t.provider).unwrap();
        assert_eq!(probe.method(), http::Method::GET);
        assert_eq!(probe.uri(), "http://127.0.0.1:11434/api/tags");
        assert!(probe.headers().get("authorization").is_none());
        let keyed = target(Kind::Ollama, BASE);
        let probe = ADAPTER.probe_request(&keyed.provider).unwrap();
        assert_eq!(probe.headers()["authorization"], "Bearer sk-secret");
        assert_eq!(probe.headers()["x-extra"], "1");
    }

    #[test]
    fn framing_is_ndjson() {
        assert_eq!(ADAPTER.framing(), Framing::Ndjson);
    }

    // -- requests -------------------------------------------------------------------

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
            include_str!("../../fixtures/ollama/request_multimodal.json"),
            "llava:7b",
        );
    }

    #[test]
    fn fixture_tools_tool_calls_results_and_schema() {
        // assistant tool calls with object arguments ("" → {}), tool results named
        // after their calls, tools without `strict`, a tool without parameters, the
        // json_schema as `format`, max_tokens → num_predict, one stop string → list.
        check_request_fixture(
            include_str!("../../fixtures/ollama/request_tools.json"),
            "llama3.2",
        );
    }

    #[test]
    fn fixture_plain_request_sends_stream_false_explicitly() {
        check_request_fixture(
            include_str!("../../fixtures/ollama/request_plain.json"),
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

    // -- answers --------------------------------------------------------------------

    fn parse(body: &[u8]) -> Result<ChatResponse, AdapterError> {
        let req = request(r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#);
        ADAPTER.parse_response(&req, &local("llama3.2"), body)
    }

    fn protocol(body: &[u8]) -> String {
        match parse(body) {
            Err(AdapterError::Protocol(m)) => m,
            other => panic!("expected Protocol, got {other:?}"),
        }
    }

    #[test]
    fn fixture_text_answer() {
        let r = parse(include_bytes!("../../fixtures/ollama/response_text.json")).unwrap();
        assert!(r.id.starts_with("chatcmpl-") && r.id.len() > 20, "{}", r.id);
        assert_eq!(r.object, "chat.completion");
        assert_eq!(r.created, 1_733_446_018);
        assert_eq!(r.model, "llama3.2");
        assert_eq!(r.choices.len(), 1);
        let c = &r.choices[0];
        assert_eq!(c.index, 0);
        assert_eq!(c.message.role, "assistant");
        assert_eq!(
            c.message.content.as_deref(),
            Some("The sky is blue because of Rayleigh scattering.")
        );
        assert!(c.message.tool_calls.is_none());
        assert_eq!(c.finish_reason.as_deref(), Some("stop"));
        assert_eq!(r.usage, Some(Usage::new(34, 12)));
        assert_eq!(r.usage.as_ref().map(|u| u.total_tokens), Some(46));
    }

    #[test]
    fn fixture_tool_call_answer() {
        let r = parse(include_bytes!(
            "../../fixtures/ollama/response_tool_calls.json"
        ))
        .unwrap();
        assert_eq!(r.created, 1_721_680_408);
        let c = &r.choices[0];
        assert_eq!(c.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(c.message.content, None, "empty content with calls is null");
        let calls = c.message.tool_calls.as_ref().unwrap();
        assert_eq!(calls.len(), 2);
        assert_ne!(calls[0].id, calls[1].id);
        for (call, city) in calls.iter().zip(["Paris, FR", "Tokyo, JP"]) {
            assert!(
                call.id.starts_with("call_") && call.id.len() == 29,
                "{}",
                call.id
            );
            assert_eq!(call.kind, "function");
            assert_eq!(call.function.name, "get_current_weather");
            let args: Value = serde_json::from_str(&call.function.arguments).unwrap();
            assert_eq!(args, json!({"format": "celsius", "location": city}));
        }
        assert_eq!(r.usage, Some(Usage::new(122, 33)));
    }

    #[test]
    fn fixture_length_answer_with_offset_time_and_cached_prompt() {
        let r = parse(include_bytes!("../../fixtures/ollama/response_length.json")).unwrap();
        assert_eq!(r.created, 1_748_536_556, "-07:00 applied");
        assert_eq!(r.model, "qwen3:8b");
        let c = &r.choices[0];
        assert_eq!(c.finish_reason.as_deref(), Some("length"));
        assert_eq!(
            c.message.content.as_deref(),
            Some("Once upon a time, in a land far")
        );
        assert!(c.message.extra.is_empty(), "thinking is not shown");
        assert_eq!(
            r.usage,
            Some(Usage::new(0, 10)),
            "missing prompt_eval_count is 0"
        );
    }

    #[test]
    fn answers_fill_gaps_and_ids_are_fresh() {
        let body =
            br#"{"message":{"role":"assistant","content":"hi"},"done":true,"done_reason":"load"}"#;
        let before = unix_now();
        let a = parse(body).unwrap();
        let b = parse(body).unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(a.model, "llama3.2", "target model when none is reported");
        assert!(a.created >= before && a.created <= unix_now());
        assert_eq!(a.choices[0].finish_reason.as_deref(), Some("stop"));
        assert_eq!(a.usage, Some(Usage::new(0, 0)));
        let empty =
            parse(br#"{"model":"x","message":{"role":"assistant","content":""},"done":true}"#)
                .unwrap();
        assert_eq!(empty.choices[0].message.content.as_deref(), Some(""));
        assert_eq!(empty.choices[0].finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn a_tool_call_id_the_server_sends_is_kept() {
        let r = parse(
            br#"{"model":"m","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"",
            "tool_calls":[{"id":"call_srv","function":{"index":0,"name":"f","arguments":{}}},
                          {"id":"","function":{"name":"g"}}]},"done":true,"done_reason":"stop"}"#,
        )
        .unwrap();
        let calls = r.choices[0].message.tool_calls.as_ref().unwrap();
        assert_eq!(calls[0].id, "call_srv");
        assert_eq!(calls[0].function.arguments, "{}");
        assert!(calls[1].id.starts_with("call_") && calls[1].id.len() == 29);
        assert_eq!(calls[1].function.arguments, "{}", "no arguments is {{}}");
    }

    #[test]
    fn non_ollama_200_bodies_are_protocol_errors() {
        assert!(protocol(b"<html>hello</html>").contains("Ollama answer"));
        assert!(protocol(b"").contains("Ollama answer"));
        assert!(protocol(b"[1]").contains("Ollama answer"));
        // OpenAI's shape at the wrong URL: no `done`.
        protocol(br#"{"id":"x","object":"chat.completion","choices":[]}"#);
        protocol(br#"{"model":"m","message":{"role":"assistant","content":"x"},"done":false}"#);
        protocol(br#"{"model":"m","done":true,"done_reason":"stop"}"#);
        protocol(br#"{"model":"m","message":{"content":5},"done":true}"#);
        protocol(br#"{"model":"m","message":{"tool_calls":[{"function":{"name":"f","arguments":"{oops"}}]},"done":true}"#);
    }

    #[test]
    fn an_error_inside_a_200_is_an_upstream_error() {
        match parse(br#"{"error":"llama runner process has terminated"}"#) {
            Err(AdapterError::Upstream(e)) => {
                assert_eq!(e.status, 500);
                assert_eq!(e.message, "llama runner process has terminated");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn error_bodies_keep_their_status_and_message() {
        let e = ADAPTER.parse_error(
            StatusCode::NOT_FOUND,
            &HeaderMap::new(),
            include_bytes!("../../fixtures/ollama/error_model_not_found.json"),
        );
        assert_eq!(e.status, 404, "a model that is not pulled fails over");
        assert_eq!(
            e.message,
            "model 'llama3.2' not found, try pulling it first"
        );
        let e = ADAPTER.parse_error(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            br#"{"error":"invalid options: num_predict"}"#,
        );
        assert_eq!(
            (e.status, e.message.as_str()),
            (400, "invalid options: num_predict")
        );
        let e = ADAPTER.parse_error(
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            b"<html>bad gateway</html>",
        );
        assert_eq!(e.status, 502);
        assert!(e.message.contains("bad gateway"), "{}", e.message);
        let e = ADAPTER.parse_error(
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
            br#"{"error":{"message":"bad key","type":"invalid_request_error"}}"#,
        );
        assert_eq!((e.status, e.message.as_str()), (401, "bad key"));
    }

    #[test]
    fn rfc3339_times_with_offsets() {
        for (s, want) in [
            ("2024-12-06T00:46:58.265747Z", Some(1_733_446_018)),
            ("2024-12-06T00:46:58Z", Some(1_733_446_018)),
            ("2024-12-06T00:46:58.123456789+00:00", Some(1_733_446_018)),
            ("2023-08-04T08:52:19.385406455-07:00", Some(1_691_164_339)),
            ("2024-12-06T06:16:58+05:30", Some(1_733_446_018)),
            ("not a time", None),
            ("2024-12-06T00:46:58+xx:00", None),
            ("é2024-12-06T00:46:58-07:00", None),
            ("", None),
        ] {
            assert_eq!(rfc3339_secs(s), want, "{s}");
        }
    }

    // -- streams --------------------------------------------------------------------

    /// Feeds `input` split every `split` bytes through the NDJSON decoder and a fresh
    /// translator; returns the chunks, and the first error or the finish() result.
    fn run(input: &[u8], split: usize) -> (Vec<Value>, Result<(), AdapterError>) {
        let req =
            request(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true}"#);
        let mut tr = ADAPTER.stream_translator(&req, &local("llama3.2"));
        let mut decoder = Decoder::new(Framing::Ndjson);
        let mut events = Vec::new();
        for piece in input.chunks(split) {
            decoder.push(piece, &mut events).unwrap();
        }
        decoder.finish(&mut events).unwrap();
        let mut chunks = Vec::new();
        let mut result = Ok(());
        let mut done = false;
        for ev in &events {
            match tr.on_event(ev, &mut chunks) {
                Ok(Flow::Continue) => assert!(!done, "Continue after Done"),
                Ok(Flow::Done) => done = true,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if result.is_ok() {
            result = tr.finish(&mut chunks);
        }
        let chunks = chunks
            .iter()
            .map(|c| serde_json::to_value(c).unwrap())
            .collect();
        (chunks, result)
    }

    const SPLITS: [usize; 8] = [1, 2, 3, 5, 7, 13, 64, 100_000];

    /// One expected chunk with the stream's id/created/model.
    fn chunk(first: &Value, created: u64, model: &str, delta: Value, finish: Value) -> Value {
        json!({"id": first["id"], "object": "chat.completion.chunk", "created": created,
               "model": model, "choices": [{"index": 0, "delta": delta,
               "finish_reason": finish, "logprobs": null}]})
    }

    fn usage_chunk(first: &Value, created: u64, model: &str, p: u64, c: u64) -> Value {
        json!({"id": first["id"], "object": "chat.completion.chunk", "created": created,
               "model": model, "choices": [],
               "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}})
    }

    #[test]
    fn fixture_text_stream_at_any_split() {
        let input = include_bytes!("../../fixtures/ollama/stream_text.ndjson");
        for split in SPLITS {
            let (chunks, result) = run(input, split);
            assert!(result.is_ok(), "split {split}: {result:?}");
            let first = &chunks[0];
            assert!(first["id"].as_str().unwrap().starts_with("chatcmpl-"));
            let (t, m) = (1_736_936_430, "llama3.2");
            let want = vec![
                chunk(first, t, m, json!({"role": "assistant"}), Value::Null),
                chunk(first, t, m, json!({"content": "The"}), Value::Null),
                chunk(first, t, m, json!({"content": " sky"}), Value::Null),
                chunk(first, t, m, json!({"content": " is blue ✓"}), Value::Null),
                chunk(first, t, m, json!({}), json!("stop")),
                usage_chunk(first, t, m, 26, 3),
            ];
            assert_eq!(chunks, want, "split {split}");
        }
    }

    #[test]
    fn fixture_tool_call_stream_indexes_calls_across_lines() {
        let input = include_bytes!("../../fixtures/ollama/stream_tool_call.ndjson");
        for split in SPLITS {
            let (chunks, result) = run(input, split);
            assert!(result.is_ok(), "split {split}: {result:?}");
            let first = &chunks[0];
            let id0 = chunks[1]["choices"][0]["delta"]["tool_calls"][0]["id"].clone();
            let id1 = chunks[3]["choices"][0]["delta"]["tool_calls"][0]["id"].clone();
            for id in [&id0, &id1] {
                let id = id.as_str().unwrap();
                assert!(id.starts_with("call_") && id.len() == 29, "{id}");
            }
            assert_ne!(id0, id1);
            let (t, m) = (1_748_536_801, "qwen3:8b");
            let start = |i: u32, id: &Value, name: &str| {
                json!({"tool_calls": [{"index": i, "id": id, "type": "function",
                       "function": {"name": name, "arguments": ""}}]})
            };
            let args = |i: u32, a: &str| json!({"tool_calls": [{"index": i, "function": {"arguments": a}}]});
            let want = vec![
                chunk(first, t, m, json!({"role": "assistant"}), Value::Null),
                chunk(
                    first,
                    t,
                    m,
                    start(0, &id0, "get_current_weather"),
                    Value::Null,
                ),
                chunk(
                    first,
                    t,
                    m,
                    args(0, r#"{"format":"celsius","location":"Paris, FR"}"#),
                    Value::Null,
                ),
                chunk(first, t, m, start(1, &id1, "get_time"), Value::Null),
                chunk(first, t, m, args(1, "{}"), Value::Null),
                chunk(first, t, m, json!({}), json!("tool_calls")),
                usage_chunk(first, t, m, 190, 41),
            ];
            assert_eq!(chunks, want, "split {split}");
        }
    }

    #[test]
    fn fixture_error_line_is_an_upstream_500() {
        let input = include_bytes!("../../fixtures/ollama/stream_error.ndjson");
        for split in SPLITS {
            let (chunks, result) = run(input, split);
            let first = &chunks[0];
            let t = 1_736_936_430;
            assert_eq!(
                chunks,
                vec![
                    chunk(
                        first,
                        t,
                        "llama3.2",
                        json!({"role": "assistant"}),
                        Value::Null
                    ),
                    chunk(
                        first,
                        t,
                        "llama3.2",
                        json!({"content": "Once"}),
                        Value::Null
                    ),
                ]
            );
            match result {
                Err(AdapterError::Upstream(e)) => {
                    assert_eq!(e.status, 500);
                    assert_eq!(
                        e.message,
                        "an error was encountered while running the model: unexpected EOF"
                    );
                }
                other => panic!("split {split}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_error_before_any_content_emits_nothing() {
        let (chunks, result) = run(b"{\"error\":\"model is loading\"}\n", 4);
        assert!(chunks.is_empty());
        assert!(matches!(result, Err(AdapterError::Upstream(e)) if e.status == 500));
    }

    #[test]
    fn a_stream_cut_before_done_is_a_protocol_error() {
        let input = include_bytes!("../../fixtures/ollama/stream_text.ndjson");
        let text = std::str::from_utf8(input).unwrap();
        let cut: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
        let (chunks, result) = run(cut.as_bytes(), 7);
        assert_eq!(chunks.len(), 3, "role and two texts");
        assert!(matches!(result, Err(AdapterError::Protocol(m)) if m.contains("done")));
        let (chunks, result) = run(b"", 1);
        assert!(chunks.is_empty());
        assert!(matches!(result, Err(AdapterError::Protocol(_))));
    }

    #[test]
    fn garbage_lines_are_protocol_errors() {
        for line in [
            "data: {\"x\":1}\n",
            "not json\n",
            "{\"model\":\"m\",\"message\":{\"content\":\"x\"}}\n",
            "{\"model\":\"m\",\"done\":\"yes\"}\n",
        ] {
            let (_, result) = run(line.as_bytes(), 3);
            assert!(
                matches!(result, Err(AdapterError::Protocol(_))),
                "{line}: {result:?}"
            );
        }
    }

    #[test]
    fn a_done_only_stream_and_content_on_the_done_line() {
        let (chunks, result) = run(
            b"{\"model\":\"\",\"created_at\":\"2025-01-01T00:00:00Z\",\"message\":{\"role\":\"assistant\",\"content\":\"Hi!\"},\"done\":true,\"done_reason\":\"length\",\"eval_count\":2}",
            6,
        );
        assert!(result.is_ok(), "{result:?}");
        let first = &chunks[0];
        let (t, m) = (1_735_689_600, "llama3.2");
        assert_eq!(
            chunks,
            vec![
                chunk(first, t, m, json!({"role": "assistant"}), Value::Null),
                chunk(first, t, m, json!({"content": "Hi!"}), Value::Null),
                chunk(first, t, m, json!({}), json!("length")),
                usage_chunk(first, t, m, 0, 2),
            ]
        );
    }

    #[test]
    fn every_chunk_of_a_stream_shares_one_id_and_streams_differ() {
        let input = include_bytes!("../../fixtures/ollama/stream_text.ndjson");
        let (a, _) = run(input, 9);
        let (b, _) = run(input, 9);
        assert!(a
            .iter()
            .all(|c| c["id"] == a[0]["id"] && c["created"] == a[0]["created"]));
        assert_ne!(a[0]["id"], b[0]["id"]);
    }

    #[test]
    fn lines_after_done_are_ignored() {
        let req = request(r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#);
        let mut tr = ADAPTER.stream_translator(&req, &local("llama3.2"));
        let mut out = Vec::new();
        let ev = |d: &str| Event {
            event: None,
            data: d.into(),
        };
        let done = r#"{"model":"m","message":{"role":"assistant","content":""},"done":true}"#;
        assert_eq!(tr.on_event(&ev(done), &mut out).unwrap(), Flow::Done);
        let n = out.len();
        assert_eq!(tr.on_event(&ev("garbage"), &mut out).unwrap(), Flow::Done);
        assert_eq!(out.len(), n);
        assert!(tr.finish(&mut out).is_ok());
    }
}
