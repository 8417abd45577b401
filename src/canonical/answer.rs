//! The canonical complete answer (`object: "chat.completion"`) and its usage.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Reasoning, ToolCall};

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// Prompt tokens written to the provider's prompt cache (Anthropic's
    /// `cache_creation_input_tokens`): chat has no field for it, other APIs do.
    #[serde(skip)]
    pub cache_write_tokens: u64,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
            extra: Map::new(),
            cache_write_tokens: 0,
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
    /// The upstream's own body, when it speaks the client's API natively: the front
    /// door sends it as is instead of rendering the canonical fields.
    #[serde(skip)]
    pub native: Option<Bytes>,
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
    /// Required by OpenAI's schema, `null` when there is none: always written.
    #[serde(default)]
    pub refusal: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// The model's reasoning before its answer (chat shows none of it; the
    /// Responses and Messages front doors do).
    #[serde(skip)]
    pub reasoning: Vec<Reasoning>,
}

impl ResponseMessage {
    pub fn assistant(content: Option<String>, tool_calls: Option<Vec<ToolCall>>) -> Self {
        ResponseMessage {
            role: "assistant".into(),
            content,
            tool_calls,
            refusal: None,
            extra: Map::new(),
            reasoning: Vec::new(),
        }
    }
}
