//! The canonical stream event (`object: "chat.completion.chunk"`) and its deltas.

use bytes::Bytes;
use serde::de::MapAccess;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::draft::{ChoiceDraft, EnvelopeDraft, MessageDraft};
use super::open::{required, Open};
use super::{ReasoningDelta, Usage};

/// One streamed event (`object: "chat.completion.chunk"`).
#[derive(Debug, Clone, Serialize)]
pub struct ChatChunk {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// The upstream event this chunk came from, framed, when the upstream speaks the
    /// client's API natively (see [`crate::providers::native`]; chat clients of
    /// OpenAI-kind targets too). A front door sends it in place of the chunk, so
    /// whoever changes a chunk's fields clears it.
    #[serde(skip)]
    pub native: Option<Bytes>,
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
            native: None,
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
        self.choices.iter().any(ChatChunk::is_content_choice)
    }

    /// Whether one choice of a chunk carries assistant output.
    pub fn is_content_choice(c: &ChunkChoice) -> bool {
        c.finish_reason.is_some()
            || c.delta.content.as_deref().is_some_and(|s| !s.is_empty())
            || c.delta.refusal.as_deref().is_some_and(|s| !s.is_empty())
            || c.delta.tool_calls.as_ref().is_some_and(|t| !t.is_empty())
    }

    /// The final usage report of a stream (`choices: []`, `usage` set).
    pub fn is_usage_only(&self) -> bool {
        self.choices.is_empty() && self.usage.is_some()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub finish_reason: Option<String>,
    pub logprobs: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// Streamed reasoning (not chat's: see [`super::ResponseMessage::reasoning`]).
    /// Not a content event: until text or a tool call comes, failover stays silent.
    #[serde(skip)]
    pub reasoning: Option<ReasoningDelta>,
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

    pub fn reasoning(delta: ReasoningDelta) -> Delta {
        Delta {
            reasoning: Some(delta),
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

impl Open for ChatChunk {
    type Draft = EnvelopeDraft<ChunkChoice>;
    const EXPECTING: &'static str = "a chat.completion.chunk object";

    fn field<'de, A: MapAccess<'de>>(
        d: &mut Self::Draft,
        key: &str,
        map: &mut A,
    ) -> Result<bool, A::Error> {
        d.field(key, map)
    }

    fn build(d: Self::Draft, extra: Map<String, Value>) -> Result<Self, &'static str> {
        Ok(ChatChunk {
            id: required(d.id, "id")?,
            object: d.object.unwrap_or_else(chunk_object),
            created: required(d.created, "created")?,
            model: required(d.model, "model")?,
            choices: d.choices.unwrap_or_default(),
            usage: d.usage,
            extra,
            native: None,
        })
    }
}

impl Open for ChunkChoice {
    type Draft = ChoiceDraft<Delta>;
    const EXPECTING: &'static str = "a chunk choice object";

    fn field<'de, A: MapAccess<'de>>(
        d: &mut Self::Draft,
        key: &str,
        map: &mut A,
    ) -> Result<bool, A::Error> {
        d.field("delta", key, map)
    }

    fn build(d: Self::Draft, extra: Map<String, Value>) -> Result<Self, &'static str> {
        Ok(ChunkChoice {
            index: required(d.index, "index")?,
            delta: d.body.unwrap_or_default(),
            finish_reason: d.finish_reason,
            logprobs: d.logprobs,
            extra,
        })
    }
}

impl Open for Delta {
    type Draft = MessageDraft<ToolCallDelta>;
    const EXPECTING: &'static str = "a delta object";

    fn field<'de, A: MapAccess<'de>>(
        d: &mut Self::Draft,
        key: &str,
        map: &mut A,
    ) -> Result<bool, A::Error> {
        d.field(key, map)
    }

    fn build(d: Self::Draft, extra: Map<String, Value>) -> Result<Self, &'static str> {
        Ok(Delta {
            role: d.role,
            content: d.content,
            tool_calls: d.tool_calls,
            refusal: d.refusal,
            extra,
            reasoning: None,
        })
    }
}

super::open::deserialize_open!(ChatChunk, ChunkChoice, Delta);

#[cfg(test)]
mod tests {
    use super::*;

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
