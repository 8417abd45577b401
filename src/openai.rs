//! The client-facing wire format: OpenAI Chat Completions. Every provider adapter
//! translates to and from these types, so they are the proxy's canonical format.
//!
//! Types keep fields they do not model in `extra` maps, so a request or answer that
//! only passes through (OpenAI-kind providers) loses nothing.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A parsed `POST /v1/chat/completions` body. `raw` keeps the client's exact bytes so
/// pass-through adapters can forward fields the proxy does not know.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub n: Option<u32>,
    #[serde(default)]
    pub stop: Option<Stop>,
    /// Function tools; tools of other types are named in `foreign_tools`.
    #[serde(skip)]
    pub tools: Option<Vec<Tool>>,
    #[serde(default, rename = "tools")]
    raw_tools: Option<Vec<Value>>,
    /// Types of non-function tools (`custom`, …): OpenAI-kind providers get them
    /// in the raw body; a translating adapter cannot express them.
    #[serde(skip)]
    pub foreign_tools: Vec<String>,
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub response_format: Option<ResponseFormat>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub seed: Option<i64>,
    #[serde(default)]
    pub presence_penalty: Option<f64>,
    #[serde(default)]
    pub frequency_penalty: Option<f64>,
    #[serde(default)]
    pub logprobs: Option<bool>,
    #[serde(default)]
    pub top_logprobs: Option<u32>,
    /// The body exactly as the client sent it.
    #[serde(skip)]
    pub raw: Bytes,
}

impl ChatRequest {
    /// Parses and validates a client body. The error text is what the client sees.
    pub fn parse(body: Bytes) -> Result<ChatRequest, String> {
        let mut req: ChatRequest = serde_json::from_slice(&body).map_err(describe_json_error)?;
        if req.messages.is_empty() {
            return Err("'messages' must contain at least one message".into());
        }
        if req.n == Some(0) {
            return Err("'n' must be at least 1".into());
        }
        if let Some(raw) = req.raw_tools.take() {
            let mut tools = Vec::with_capacity(raw.len());
            for (i, v) in raw.into_iter().enumerate() {
                match v.get("type").and_then(Value::as_str).unwrap_or("function") {
                    "function" => tools.push(
                        serde_json::from_value::<Tool>(v)
                            .map_err(|e| format!("invalid request body: tools[{i}]: {e}"))?,
                    ),
                    other => req.foreign_tools.push(other.to_string()),
                }
            }
            req.tools = Some(tools);
        }
        req.raw = body;
        Ok(req)
    }

    /// For translating adapters: the request's tools and tool_choice are all of the
    /// function kind, which every provider can express.
    pub fn function_tools_only(&self, provider: &str) -> Result<(), String> {
        if let Some(kind) = self.foreign_tools.first() {
            return Err(format!(
                "tools of type {kind:?} cannot be sent to {provider}"
            ));
        }
        if let Some(ToolChoice::Other(v)) = &self.tool_choice {
            let kind = v.get("type").and_then(Value::as_str).unwrap_or("?");
            return Err(format!(
                "tool_choice of type {kind:?} cannot be sent to {provider}"
            ));
        }
        Ok(())
    }

    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }

    /// `max_completion_tokens` supersedes the deprecated `max_tokens`.
    pub fn max_output_tokens(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    pub fn stop_sequences(&self) -> Vec<String> {
        match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        }
    }
}

fn describe_json_error(e: serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof => format!("request body is not valid JSON: {e}"),
        Category::Data => format!("invalid request body: {e}"),
        Category::Io => format!("could not read request body: {e}"),
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    /// Legacy function-result role; treated like `tool` by translators.
    Function,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Message {
    pub role: Role,
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    /// All text of the message, parts joined; images and other parts are skipped.
    pub fn text(&self) -> String {
        match &self.content {
            None => String::new(),
            Some(Content::Text(s)) => s.clone(),
            Some(Content::Parts(parts)) => parts
                .iter()
                .filter_map(|p| match p {
                    ContentPart::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(""),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type")]
pub enum ContentPart {
    #[serde(rename = "text")]
    Text { text: String },
    #[serde(rename = "image_url")]
    ImageUrl { image_url: ImageUrl },
    /// Audio, files and future part types: adapters that cannot express them drop them.
    #[serde(other)]
    Unsupported,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ImageUrl {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A data URL split into its media type and base64 payload.
pub struct DataUrl<'a> {
    pub media_type: &'a str,
    pub base64: &'a str,
}

impl ImageUrl {
    /// `Some` when the URL is `data:<media>;base64,<payload>`.
    pub fn as_data_url(&self) -> Option<DataUrl<'_>> {
        let rest = self.url.strip_prefix("data:")?;
        let (meta, payload) = rest.split_once(',')?;
        let media_type = meta.strip_suffix(";base64")?;
        Some(DataUrl {
            media_type,
            base64: payload,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionCall,
}

fn function_type() -> String {
    "function".into()
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct FunctionCall {
    pub name: String,
    #[serde(default)]
    pub arguments: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Tool {
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionDef,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FunctionDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ToolChoice {
    /// "auto" | "none" | "required"
    Mode(String),
    Named(NamedToolChoice),
    /// `allowed_tools`, `custom` and later kinds: passed through to OpenAI-kind
    /// providers, refused by translating adapters.
    Other(Value),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct NamedToolChoice {
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: NamedFunction,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct NamedFunction {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaFormat },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct JsonSchemaFormat {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

// ---------------------------------------------------------------------------------
// Answers

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
            extra: Map::new(),
        }
    }
}

/// A non-streamed answer (`object: "chat.completion"`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ChatResponse {
    pub id: String,
    #[serde(default = "completion_object")]
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn completion_object() -> String {
    "chat.completion".into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Choice {
    pub index: u32,
    pub message: ResponseMessage,
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub logprobs: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ResponseMessage {
    pub role: String,
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResponseMessage {
    pub fn assistant(content: Option<String>, tool_calls: Option<Vec<ToolCall>>) -> Self {
        ResponseMessage {
            role: "assistant".into(),
            content,
            tool_calls,
            refusal: None,
            extra: Map::new(),
        }
    }
}

/// One streamed event (`object: "chat.completion.chunk"`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ChatChunk {
    pub id: String,
    #[serde(default = "chunk_object")]
    pub object: String,
    pub created: u64,
    pub model: String,
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn chunk_object() -> String {
    "chat.completion.chunk".into()
}

impl ChatChunk {
    pub fn new(id: &str, created: u64, model: &str) -> ChatChunk {
        ChatChunk {
            id: id.to_string(),
            object: chunk_object(),
            created,
            model: model.to_string(),
            choices: Vec::new(),
            usage: None,
            extra: Map::new(),
        }
    }

    /// A chunk with one choice at index 0 holding `delta`.
    pub fn with_delta(mut self, delta: Delta, finish_reason: Option<&str>) -> ChatChunk {
        self.choices.push(ChunkChoice {
            index: 0,
            delta,
            finish_reason: finish_reason.map(str::to_string),
            logprobs: None,
            extra: Map::new(),
        });
        self
    }

    /// Carries assistant output: text, a tool-call fragment, a refusal or a
    /// finish_reason (DESIGN §6). Until one is sent, failover can stay silent.
    pub fn is_content(&self) -> bool {
        self.choices.iter().any(|c| {
            c.finish_reason.is_some()
                || c.delta.content.as_deref().is_some_and(|s| !s.is_empty())
                || c.delta.refusal.as_deref().is_some_and(|s| !s.is_empty())
                || c.delta.tool_calls.as_ref().is_some_and(|t| !t.is_empty())
        })
    }

    /// The final usage report of a stream (`choices: []`, `usage` set).
    pub fn is_usage_only(&self) -> bool {
        self.choices.is_empty() && self.usage.is_some()
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ChunkChoice {
    pub index: u32,
    #[serde(default)]
    pub delta: Delta,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub logprobs: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Delta {
    pub fn role() -> Delta {
        Delta {
            role: Some("assistant".into()),
            ..Delta::default()
        }
    }

    pub fn text(text: impl Into<String>) -> Delta {
        Delta {
            content: Some(text.into()),
            ..Delta::default()
        }
    }

    pub fn tool_call(call: ToolCallDelta) -> Delta {
        Delta {
            tool_calls: Some(vec![call]),
            ..Delta::default()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ToolCallDelta {
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionDelta>,
}

impl ToolCallDelta {
    /// The first fragment of a call: its id and name, no arguments yet.
    pub fn start(index: u32, id: impl Into<String>, name: impl Into<String>) -> Self {
        ToolCallDelta {
            index,
            id: Some(id.into()),
            kind: Some("function".into()),
            function: Some(FunctionDelta {
                name: Some(name.into()),
                arguments: Some(String::new()),
            }),
        }
    }

    /// A later fragment carrying only argument text.
    pub fn arguments(index: u32, fragment: impl Into<String>) -> Self {
        ToolCallDelta {
            index,
            id: None,
            kind: None,
            function: Some(FunctionDelta {
                name: None,
                arguments: Some(fragment.into()),
            }),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct FunctionDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// Seconds since the Unix epoch, for `created` where a provider reports none.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A fresh tool-call id for providers that give none (`call_<random>`).
pub fn new_call_id() -> String {
    random_id("call_", 24)
}

/// `prefix` followed by `len` random alphanumerics.
pub fn random_id(prefix: &str, len: usize) -> String {
    let mut s = String::with_capacity(prefix.len() + len);
    s.push_str(prefix);
    s.extend(std::iter::repeat_with(fastrand::alphanumeric).take(len));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ChatRequest, String> {
        ChatRequest::parse(Bytes::from(s.to_string()))
    }

    #[test]
    fn parses_a_full_request() {
        let req = parse(
            r#"{"model":"m","messages":[{"role":"system","content":"s"},
            {"role":"user","content":[{"type":"text","text":"hi"},
              {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
              "function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"r"}],
            "stop":"x","tool_choice":{"type":"function","function":{"name":"f"}},
            "response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object"}}},
            "stream":true,"stream_options":{"include_usage":true},"unknown_field":1}"#,
        )
        .unwrap();
        assert!(req.is_stream() && req.include_usage());
        assert_eq!(req.stop_sequences(), vec!["x"]);
        assert!(matches!(req.tool_choice, Some(ToolChoice::Named(_))));
        let Some(Content::Parts(parts)) = &req.messages[1].content else {
            panic!("parts expected")
        };
        let ContentPart::ImageUrl { image_url } = &parts[1] else {
            panic!("image expected")
        };
        let data = image_url.as_data_url().unwrap();
        assert_eq!((data.media_type, data.base64), ("image/png", "AAAA"));
    }

    #[test]
    fn tools_of_other_types_parse_and_are_named() {
        let req = parse(
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],
            "tools":[{"type":"function","function":{"name":"f"}},{"type":"custom","custom":{"name":"g"}}],
            "tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"auto","tools":[]}}}"#,
        )
        .unwrap();
        assert_eq!(req.tools.as_ref().map(Vec::len), Some(1));
        assert_eq!(req.foreign_tools, ["custom"]);
        assert!(matches!(req.tool_choice, Some(ToolChoice::Other(_))));
        assert!(req
            .function_tools_only("X")
            .unwrap_err()
            .contains("\"custom\""));
        let bad = parse(
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]}"#,
        );
        assert!(bad.unwrap_err().contains("tools[0]"));
    }

    #[test]
    fn rejects_bad_bodies_with_specific_messages() {
        assert!(parse("{").unwrap_err().contains("not valid JSON"));
        assert!(parse(r#"{"model":"m"}"#).unwrap_err().contains("messages"));
        assert!(parse(r#"{"model":"m","messages":[]}"#)
            .unwrap_err()
            .contains("at least one"));
        assert!(
            parse(r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#)
                .unwrap_err()
                .contains("wizard")
        );
        assert!(parse(r#"{"model":1,"messages":[{"role":"user","content":"x"}]}"#).is_err());
        assert!(parse(r#"[1,2]"#).is_err());
    }

    #[test]
    fn content_events_are_classified() {
        let c = ChatChunk::new("id", 1, "m");
        assert!(!c.clone().with_delta(Delta::role(), None).is_content());
        assert!(!c.clone().with_delta(Delta::text(""), None).is_content());
        assert!(c.clone().with_delta(Delta::text("x"), None).is_content());
        assert!(c
            .clone()
            .with_delta(Delta::default(), Some("stop"))
            .is_content());
        assert!(c
            .with_delta(Delta::tool_call(ToolCallDelta::start(0, "c", "f")), None)
            .is_content());
    }
}
