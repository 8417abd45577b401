//! The canonical complete answer (`object: "chat.completion"`) and its usage.

use bytes::Bytes;
use serde::de::MapAccess;
use serde::Serialize;
use serde_json::{Map, Value};

use super::draft::{ChoiceDraft, EnvelopeDraft, MessageDraft};
use super::open::{required, Open};
use super::{Reasoning, ToolCall};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct ChatResponse {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    #[serde(skip_serializing_if = "Option::is_none")]
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

#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    pub index: u32,
    pub message: ResponseMessage,
    pub finish_reason: Option<String>,
    pub logprobs: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResponseMessage {
    pub role: String,
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// Required by OpenAI's schema, `null` when there is none: always written.
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

#[derive(Default)]
pub(crate) struct UsageDraft {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    total_tokens: Option<u64>,
}

impl Open for Usage {
    type Draft = UsageDraft;
    const EXPECTING: &'static str = "a usage object";

    fn field<'de, A: MapAccess<'de>>(
        d: &mut UsageDraft,
        key: &str,
        map: &mut A,
    ) -> Result<bool, A::Error> {
        match key {
            "prompt_tokens" => d.prompt_tokens = Some(map.next_value()?),
            "completion_tokens" => d.completion_tokens = Some(map.next_value()?),
            "total_tokens" => d.total_tokens = Some(map.next_value()?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn build(d: UsageDraft, extra: Map<String, Value>) -> Result<Self, &'static str> {
        Ok(Usage {
            prompt_tokens: required(d.prompt_tokens, "prompt_tokens")?,
            completion_tokens: required(d.completion_tokens, "completion_tokens")?,
            total_tokens: required(d.total_tokens, "total_tokens")?,
            extra,
            cache_write_tokens: 0,
        })
    }
}

impl Open for ChatResponse {
    type Draft = EnvelopeDraft<Choice>;
    const EXPECTING: &'static str = "a chat.completion object";

    fn field<'de, A: MapAccess<'de>>(
        d: &mut Self::Draft,
        key: &str,
        map: &mut A,
    ) -> Result<bool, A::Error> {
        d.field(key, map)
    }

    fn build(d: Self::Draft, extra: Map<String, Value>) -> Result<Self, &'static str> {
        Ok(ChatResponse {
            id: required(d.id, "id")?,
            object: d.object.unwrap_or_else(completion_object),
            created: required(d.created, "created")?,
            model: required(d.model, "model")?,
            choices: required(d.choices, "choices")?,
            usage: d.usage,
            extra,
            native: None,
        })
    }
}

impl Open for Choice {
    type Draft = ChoiceDraft<ResponseMessage>;
    const EXPECTING: &'static str = "a choice object";

    fn field<'de, A: MapAccess<'de>>(
        d: &mut Self::Draft,
        key: &str,
        map: &mut A,
    ) -> Result<bool, A::Error> {
        d.field("message", key, map)
    }

    fn build(d: Self::Draft, extra: Map<String, Value>) -> Result<Self, &'static str> {
        Ok(Choice {
            index: required(d.index, "index")?,
            message: required(d.body, "message")?,
            finish_reason: d.finish_reason,
            logprobs: d.logprobs,
            extra,
        })
    }
}

impl Open for ResponseMessage {
    type Draft = MessageDraft<ToolCall>;
    const EXPECTING: &'static str = "a message object";

    fn field<'de, A: MapAccess<'de>>(
        d: &mut Self::Draft,
        key: &str,
        map: &mut A,
    ) -> Result<bool, A::Error> {
        d.field(key, map)
    }

    fn build(d: Self::Draft, extra: Map<String, Value>) -> Result<Self, &'static str> {
        Ok(ResponseMessage {
            role: required(d.role, "role")?,
            content: d.content,
            tool_calls: d.tool_calls,
            refusal: d.refusal,
            extra,
            reasoning: Vec::new(),
        })
    }
}

super::open::deserialize_open!(Usage, ChatResponse, Choice, ResponseMessage);
