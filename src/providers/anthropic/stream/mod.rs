//! Anthropic's SSE event stream → OpenAI chunks.
//!
//! `message_start` gives the answer's id and model and yields the role chunk; text
//! deltas become content, each `tool_use` block one tool call with its own 0-based
//! index (id and name first, then argument fragments; `"{}"` when it got none);
//! `message_delta` yields the finish chunk; `message_stop` a usage-only chunk (the
//! proxy forwards it only if the client asked for usage) and the end. In JSON mode
//! the `json_output` tool's argument fragments are the content. A thinking block's
//! text streams as reasoning, and the whole block (its signature came last) follows
//! at its `content_block_stop`; a redacted one is whole at once. Citation deltas,
//! pings and unknown events are ignored.

use serde::Deserialize;
use serde_json::Value;

use super::error::ErrorBody;
use super::request::JSON_TOOL;
use super::response::{arguments, finish_reason, redacted, thinking, AnthropicUsage};
use crate::canonical::{unix_now, ChatChunk, Delta, Origin, ReasoningDelta, ToolCallDelta};
use crate::http::sse::Event;
use crate::providers::{AdapterError, Flow, StreamTranslator};

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamEvent {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: u32,
        content_block: StartBlock,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDelta,
        #[serde(default)]
        usage: AnthropicUsage,
    },
    MessageStop {},
    Ping {},
    Error {
        error: ErrorBody,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Deserialize)]
struct StartMessage {
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: AnthropicUsage,
}

/// `content_block_start`'s block: like an answer's, but its text starts empty (an
/// answer's text block without text is malformed, and fails over).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
        #[serde(default)]
        signature: String,
    },
    RedactedThinking {
        data: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        #[serde(default)]
        partial_json: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    SignatureDelta {
        signature: String,
    },
    /// citations_delta and future kinds.
    #[serde(other)]
    Other,
}

#[derive(Default, Deserialize)]
struct MessageDelta {
    #[serde(default)]
    stop_reason: Option<String>,
}

/// Anthropic streams one block at a time; this many open at once is not its format
/// (and would make the block lookup slow).
const MAX_OPEN_BLOCKS: usize = 64;

/// What an open content block turns into.
enum Block {
    Text,
    /// A tool call: its OpenAI index, whether any argument text was sent, and the
    /// input the start event carried (sent at the end if no fragments came).
    Tool {
        call: u32,
        sent: bool,
        input: Value,
    },
    /// The JSON-mode answer: its fragments are content.
    Json {
        sent: bool,
        input: Value,
    },
    /// A thinking block: its text and signature so far.
    Thinking {
        text: String,
        signature: String,
    },
    /// A redacted thinking block, whole from its start.
    Redacted {
        data: String,
    },
    /// Server-tool blocks: not part of the answer.
    Ignored,
}

/// The answer's identity, taken from `message_start` and stamped on every chunk.
struct Meta {
    id: String,
    model: String,
    created: u64,
}

pub(super) struct Translator {
    json_mode: bool,
    /// The target answering, for its reasoning.
    origin: Origin,
    fallback_model: String,
    meta: Option<Meta>,
    /// Open blocks by Anthropic's block index (few at a time; a Vec is enough).
    blocks: Vec<(u32, Block)>,
    next_call: u32,
    tool_calls: bool,
    finished: bool,
    usage: AnthropicUsage,
    done: bool,
}

impl Translator {
    pub(super) fn new(json_mode: bool, fallback_model: &str, origin: Origin) -> Translator {
        Translator {
            json_mode,
            origin,
            fallback_model: fallback_model.to_string(),
            meta: None,
            blocks: Vec::new(),
            next_call: 0,
            tool_calls: false,
            finished: false,
            usage: AnthropicUsage::default(),
            done: false,
        }
    }

    fn meta(&self) -> Result<&Meta, AdapterError> {
        self.meta
            .as_ref()
            .ok_or_else(|| AdapterError::Protocol("stream event before message_start".into()))
    }

    fn chunk(&self, delta: Delta, finish: Option<&str>) -> Result<ChatChunk, AdapterError> {
        let m = self.meta()?;
        Ok(ChatChunk::new(&m.id, m.created, &m.model).with_delta(delta, finish))
    }

    fn block(&mut self, index: u32) -> Result<&mut Block, AdapterError> {
        self.blocks
            .iter_mut()
            .find(|(i, _)| *i == index)
            .map(|(_, b)| b)
            .ok_or_else(|| {
                AdapterError::Protocol(format!(
                    "delta for content block {index}, which is not open"
                ))
            })
    }

    fn finish_chunk(&mut self, stop_reason: Option<&str>) -> Result<ChatChunk, AdapterError> {
        let mut reason = finish_reason(stop_reason);
        if reason == "tool_calls" && !self.tool_calls {
            reason = "stop"; // only json_output was called: that is the answer
        }
        self.finished = true;
        self.chunk(Delta::default(), Some(reason))
    }

    fn start_block(
        &mut self,
        index: u32,
        block: StartBlock,
        out: &mut Vec<ChatChunk>,
    ) -> Result<(), AdapterError> {
        self.meta()?;
        if self.blocks.iter().any(|(i, _)| *i == index) {
            return Err(AdapterError::Protocol(format!(
                "content block {index} started twice"
            )));
        }
        if self.blocks.len() >= MAX_OPEN_BLOCKS {
            return Err(AdapterError::Protocol(format!(
                "more than {MAX_OPEN_BLOCKS} content blocks open at once"
            )));
        }
        let state = match block {
            StartBlock::Text { text } => {
                if !text.is_empty() {
                    out.push(self.chunk(Delta::text(text), None)?);
                }
                Block::Text
            }
            StartBlock::ToolUse { name, input, .. } if self.json_mode && name == JSON_TOOL => {
                Block::Json { sent: false, input }
            }
            StartBlock::ToolUse { id, name, input } => {
                let call = self.next_call;
                self.next_call = self.next_call.saturating_add(1);
                self.tool_calls = true;
                out.push(self.chunk(Delta::tool_call(ToolCallDelta::start(call, id, name)), None)?);
                Block::Tool {
                    call,
                    sent: false,
                    input,
                }
            }
            StartBlock::Thinking {
                thinking,
                signature,
            } => {
                if !thinking.is_empty() {
                    let text = ReasoningDelta::Text(thinking.clone());
                    out.push(self.chunk(Delta::reasoning(text), None)?);
                }
                Block::Thinking {
                    text: thinking,
                    signature,
                }
            }
            StartBlock::RedactedThinking { data } => Block::Redacted { data },
            StartBlock::Other => Block::Ignored,
        };
        self.blocks.push((index, state));
        Ok(())
    }

    fn block_delta(
        &mut self,
        index: u32,
        delta: BlockDelta,
        out: &mut Vec<ChatChunk>,
    ) -> Result<(), AdapterError> {
        let delta = match (self.block(index)?, delta) {
            (Block::Text, BlockDelta::TextDelta { text }) => {
                (!text.is_empty()).then(|| Delta::text(text))
            }
            (Block::Tool { call, sent, .. }, BlockDelta::InputJsonDelta { partial_json }) => {
                (!partial_json.is_empty()).then(|| {
                    *sent = true;
                    Delta::tool_call(ToolCallDelta::arguments(*call, partial_json))
                })
            }
            (Block::Json { sent, .. }, BlockDelta::InputJsonDelta { partial_json }) => {
                (!partial_json.is_empty()).then(|| {
                    *sent = true;
                    Delta::text(partial_json)
                })
            }
            (Block::Thinking { text, .. }, BlockDelta::ThinkingDelta { thinking }) => {
                text.push_str(&thinking);
                (!thinking.is_empty()).then(|| Delta::reasoning(ReasoningDelta::Text(thinking)))
            }
            (Block::Thinking { signature, .. }, BlockDelta::SignatureDelta { signature: s }) => {
                signature.push_str(&s);
                None
            }
            (Block::Ignored | Block::Redacted { .. }, _) | (_, BlockDelta::Other) => None,
            (
                Block::Text | Block::Tool { .. } | Block::Json { .. },
                BlockDelta::ThinkingDelta { .. } | BlockDelta::SignatureDelta { .. },
            )
            | (
                Block::Thinking { .. },
                BlockDelta::TextDelta { .. } | BlockDelta::InputJsonDelta { .. },
            )
            | (Block::Text, BlockDelta::InputJsonDelta { .. })
            | (Block::Tool { .. } | Block::Json { .. }, BlockDelta::TextDelta { .. }) => {
                return Err(AdapterError::Protocol(format!(
                    "content block {index} got a delta of another block type"
                )))
            }
        };
        if let Some(delta) = delta {
            out.push(self.chunk(delta, None)?);
        }
        Ok(())
    }

    fn stop_block(&mut self, index: u32, out: &mut Vec<ChatChunk>) -> Result<(), AdapterError> {
        let pos = self
            .blocks
            .iter()
            .position(|(i, _)| *i == index)
            .ok_or_else(|| {
                AdapterError::Protocol(format!("stop of content block {index}, which is not open"))
            })?;
        let delta = match self.blocks.swap_remove(pos).1 {
            // Arguments must concatenate to valid JSON: `{}` when none came.
            Block::Tool {
                call,
                sent: false,
                input,
            } => Some(Delta::tool_call(ToolCallDelta::arguments(
                call,
                arguments(&input),
            ))),
            Block::Json { sent: false, input } => Some(Delta::text(arguments(&input))),
            Block::Thinking { text, signature } => Some(Delta::reasoning(ReasoningDelta::Done(
                thinking(text, signature, &self.origin),
            ))),
            Block::Redacted { data } => Some(Delta::reasoning(ReasoningDelta::Done(redacted(
                data,
                &self.origin,
            )))),
            _ => None,
        };
        if let Some(delta) = delta {
            out.push(self.chunk(delta, None)?);
        }
        Ok(())
    }
}

impl StreamTranslator for Translator {
    fn on_event(&mut self, event: &Event, out: &mut Vec<ChatChunk>) -> Result<Flow, AdapterError> {
        if self.done {
            return Ok(Flow::Done);
        }
        let parsed: StreamEvent = serde_json::from_str(&event.data).map_err(|e| {
            AdapterError::Protocol(format!(
                "stream event {:?}: {e}",
                event.event.as_deref().unwrap_or("message")
            ))
        })?;
        match parsed {
            StreamEvent::Ping {} | StreamEvent::Unknown => {}
            StreamEvent::Error { error } => {
                return Err(AdapterError::Upstream(error.into_upstream(None)))
            }
            StreamEvent::MessageStart { message } => {
                if self.meta.is_some() {
                    return Err(AdapterError::Protocol("a second message_start".into()));
                }
                self.meta = Some(Meta {
                    id: message.id,
                    model: if message.model.is_empty() {
                        self.fallback_model.clone()
                    } else {
                        message.model
                    },
                    created: unix_now(),
                });
                self.usage = message.usage;
                out.push(self.chunk(Delta::role(), None)?);
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => self.start_block(index, content_block, out)?,
            StreamEvent::ContentBlockDelta { index, delta } => {
                self.block_delta(index, delta, out)?
            }
            StreamEvent::ContentBlockStop { index } => self.stop_block(index, out)?,
            StreamEvent::MessageDelta { delta, usage } => {
                self.meta()?;
                self.usage.update(usage);
                if let Some(reason) = delta.stop_reason.as_deref() {
                    if !self.finished {
                        out.push(self.finish_chunk(Some(reason))?);
                    }
                }
            }
            StreamEvent::MessageStop {} => {
                if !self.finished {
                    out.push(self.finish_chunk(None)?);
                }
                if self.usage.is_known() {
                    let m = self.meta()?;
                    let mut chunk = ChatChunk::new(&m.id, m.created, &m.model);
                    chunk.usage = Some(self.usage.to_openai());
                    out.push(chunk);
                }
                self.done = true;
                return Ok(Flow::Done);
            }
        }
        Ok(Flow::Continue)
    }

    fn finish(&mut self, _out: &mut Vec<ChatChunk>) -> Result<(), AdapterError> {
        if self.done {
            Ok(())
        } else {
            Err(AdapterError::Protocol(
                "stream ended before message_stop".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests;
