//! The canonical request: OpenAI Chat Completions' body. Every front door parses its
//! own API into this, and every provider adapter translates from it.
//!
//! Types keep fields they do not model in `extra` maps, so a request that only passes
//! through (OpenAI-kind providers) loses nothing.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Reasoning, Thinking};

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
    /// Chat's `none` … `high`; kinds with their own reasoning setting map it.
    #[serde(default)]
    pub reasoning_effort: Option<String>,
    /// What the client's own API said about thinking, where chat's effort is too
    /// coarse (a Messages `budget_tokens`); front doors set it.
    #[serde(skip)]
    pub thinking: Option<Thinking>,
    /// The body exactly as the client sent it.
    #[serde(skip)]
    pub raw: Bytes,
    /// The client's request in its own API, for targets that speak that API natively.
    #[serde(skip)]
    pub native: Option<std::sync::Arc<Native>>,
    /// Why the client's request has no canonical translation (a block only its own
    /// API can express): only targets that take [`Self::native`] can serve it.
    #[serde(skip)]
    pub untranslatable: Option<String>,
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

    /// How much the model should think: the front door's exact setting, else chat's
    /// `reasoning_effort`; `None` when the client said nothing (the model's default).
    pub fn thinking(&self) -> Option<Thinking> {
        self.thinking.or_else(|| {
            self.reasoning_effort
                .as_deref()
                .and_then(Thinking::of_effort)
        })
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

pub(super) fn describe_json_error(e: serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof => format!("request body is not valid JSON: {e}"),
        Category::Data => format!("invalid request body: {e}"),
        Category::Io => format!("could not read request body: {e}"),
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
    /// Options we do not interpret (`include_obfuscation`), kept for the upstream.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
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
    /// An assistant turn's reasoning, in order; each adapter replays only what its
    /// own target produced. Front doors set it (chat has no field for it).
    #[serde(skip)]
    pub reasoning: Vec<Reasoning>,
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

/// A client API other than Chat Completions that some provider kinds speak natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Anthropic's Messages API.
    Messages,
    /// Anthropic's token count of a Messages request (`/v1/messages/count_tokens`).
    CountTokens,
    /// OpenAI's Responses API.
    Responses,
}

/// The client's own request, kept beside its canonical translation: a target that
/// speaks `api` gets this (model swapped) instead of a translation, so what the
/// canonical types do not model (thinking blocks, cache_control, documents, server
/// tools) survives.
#[derive(Debug)]
pub struct Native {
    pub api: Api,
    pub body: Bytes,
    /// Version and beta headers to forward (`anthropic-version`, `anthropic-beta`).
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// The client's query string (`?beta=true`).
    pub query: Option<String>,
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
}
