//! Anthropic's SSE event stream → OpenAI chunks.
//!
//! `message_start` gives the answer's id and model and yields the role chunk; text
//! deltas become content, each `tool_use` block one tool call with its own 0-based
//! index (id and name first, then argument fragments; `"{}"` when it got none);
//! `message_delta` yields the finish chunk; `message_stop` a usage-only chunk (the
//! proxy forwards it only if the client asked for usage) and the end. In JSON mode
//! the `json_output` tool's argument fragments are the content. Thinking, signature
//! and citation deltas, pings and unknown events are ignored.

use serde::Deserialize;
use serde_json::Value;

use super::request::JSON_TOOL;
use super::response::{arguments, finish_reason, AnthropicUsage, ErrorBody};
use crate::canonical::{unix_now, ChatChunk, Delta, ToolCallDelta};
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
    /// thinking_delta, signature_delta, citations_delta and future kinds.
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
    /// Thinking and server-tool blocks: not part of the answer.
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
    pub(super) fn new(json_mode: bool, fallback_model: &str) -> Translator {
        Translator {
            json_mode,
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
            (Block::Ignored, _) | (_, BlockDelta::Other) => None,
            (Block::Text, BlockDelta::InputJsonDelta { .. })
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
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::canonical::Usage;
    use crate::http::sse::{Decoder, Framing};
    use crate::providers::UpstreamError;

    const TEXT: &str = include_str!("../../../fixtures/anthropic/stream_text.sse");
    const TOOL_USE: &str = include_str!("../../../fixtures/anthropic/stream_tool_use.sse");
    const NO_ARGS: &str = include_str!("../../../fixtures/anthropic/stream_tool_no_args.sse");
    const MAX_TOKENS: &str = include_str!("../../../fixtures/anthropic/stream_max_tokens.sse");
    const ERROR: &str = include_str!("../../../fixtures/anthropic/stream_error_midstream.sse");
    const PINGS: &str = include_str!("../../../fixtures/anthropic/stream_pings.sse");
    const THINKING: &str = include_str!("../../../fixtures/anthropic/stream_thinking.sse");
    const JSON_OUTPUT: &str = include_str!("../../../fixtures/anthropic/stream_json_output.sse");

    /// Odd split sizes: mid-line, mid-"\n\n", mid-UTF-8 character.
    const SPLITS: [usize; 8] = [1, 2, 3, 5, 7, 13, 64, 1 << 20];

    /// What a client would receive, and how the stream ended.
    struct Run {
        chunks: Vec<ChatChunk>,
        end: Result<(), AdapterError>,
    }

    fn run(sse: &str, json_mode: bool, split: usize) -> Run {
        let mut tr = Translator::new(json_mode, "claude-sonnet-4-5");
        let mut dec = Decoder::new(Framing::Sse);
        let (mut chunks, mut events) = (Vec::new(), Vec::new());
        // Feeds what was decoded; `Some` once the stream ended (message_stop or error).
        let mut feed = |events: &mut Vec<Event>, chunks: &mut Vec<ChatChunk>| {
            for ev in events.drain(..) {
                match tr.on_event(&ev, chunks) {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::Done) => return Some(Ok(())),
                    Err(e) => return Some(Err(e)),
                }
            }
            None
        };
        for piece in sse.as_bytes().chunks(split) {
            dec.push(piece, &mut events).unwrap();
            if let Some(end) = feed(&mut events, &mut chunks) {
                return Run { chunks, end };
            }
        }
        dec.finish(&mut events).unwrap();
        if let Some(end) = feed(&mut events, &mut chunks) {
            return Run { chunks, end };
        }
        let end = tr.finish(&mut chunks);
        Run { chunks, end }
    }

    /// Runs `sse` at every split size; all must give the same chunks (bar `created`).
    fn run_all(sse: &str, json_mode: bool) -> Run {
        let first = run(sse, json_mode, SPLITS[0]);
        let normal = |chunks: &[ChatChunk]| {
            chunks
                .iter()
                .map(|c| {
                    let mut v = serde_json::to_value(c).unwrap();
                    v["created"] = json!(0);
                    v
                })
                .collect::<Vec<_>>()
        };
        for split in &SPLITS[1..] {
            let other = run(sse, json_mode, *split);
            assert_eq!(
                normal(&first.chunks),
                normal(&other.chunks),
                "split {split}"
            );
            assert_eq!(first.end.is_ok(), other.end.is_ok(), "split {split}");
        }
        first
    }

    /// Every chunk carries the answer's real id and model and one `created`.
    fn assert_identity(chunks: &[ChatChunk], id: &str) {
        let created = chunks[0].created;
        assert!(created >= 1_700_000_000);
        for c in chunks {
            assert_eq!(c.id, id);
            assert_eq!(c.model, "claude-sonnet-4-5-20250929");
            assert_eq!(c.created, created);
            assert_eq!(c.object, "chat.completion.chunk");
        }
    }

    fn content(chunks: &[ChatChunk]) -> Vec<&str> {
        chunks
            .iter()
            .flat_map(|c| &c.choices)
            .filter_map(|c| c.delta.content.as_deref())
            .collect()
    }

    fn finish_reasons(chunks: &[ChatChunk]) -> Vec<&str> {
        chunks
            .iter()
            .flat_map(|c| &c.choices)
            .filter_map(|c| c.finish_reason.as_deref())
            .collect()
    }

    /// Tool calls by index: (id, name, concatenated arguments).
    type Calls = BTreeMap<u32, (String, String, String)>;

    /// The streamed tool calls, and the index of each fragment in order.
    fn tool_calls(chunks: &[ChatChunk]) -> (Calls, Vec<u32>) {
        let mut calls = Calls::new();
        let mut order = Vec::new();
        for d in chunks
            .iter()
            .flat_map(|c| &c.choices)
            .filter_map(|c| c.delta.tool_calls.as_ref())
            .flatten()
        {
            order.push(d.index);
            let entry = calls.entry(d.index).or_default();
            if let Some(id) = &d.id {
                assert!(entry.0.is_empty(), "id sent twice for call {}", d.index);
                assert_eq!(d.kind.as_deref(), Some("function"));
                entry.0.clone_from(id);
            }
            let f = d.function.as_ref().unwrap();
            if let Some(name) = &f.name {
                entry.1.clone_from(name);
            }
            entry.2.push_str(f.arguments.as_deref().unwrap_or(""));
        }
        (calls, order)
    }

    fn usage(chunks: &[ChatChunk]) -> &Usage {
        let last = chunks.last().unwrap();
        assert!(last.is_usage_only(), "the usage chunk comes last");
        assert_eq!(
            chunks.iter().filter(|c| c.usage.is_some()).count(),
            1,
            "one usage chunk"
        );
        last.usage.as_ref().unwrap()
    }

    fn role_first(chunks: &[ChatChunk]) {
        let first = &chunks[0].choices[0];
        assert_eq!(first.delta.role.as_deref(), Some("assistant"));
        assert!(!chunks[0].is_content(), "the role chunk is not content");
        assert!(chunks[1..]
            .iter()
            .flat_map(|c| &c.choices)
            .all(|c| c.delta.role.is_none()));
    }

    #[test]
    fn text_stream() {
        let r = run_all(TEXT, false);
        r.end.unwrap();
        assert_identity(&r.chunks, "msg_01VxEzZzHnzW9Yb4oB7Sdk3P");
        role_first(&r.chunks);
        assert_eq!(
            content(&r.chunks),
            ["Hello", "! How can I help you", " today? ✓ héllo"]
        );
        assert_eq!(finish_reasons(&r.chunks), ["stop"]);
        let n = r.chunks.len();
        assert_eq!(
            r.chunks[n - 2].choices[0].finish_reason.as_deref(),
            Some("stop")
        );
        assert_eq!(usage(&r.chunks), &Usage::new(21, 15));
        assert_eq!(n, 1 + 3 + 1 + 1, "role, 3 texts, finish, usage");
    }

    #[test]
    fn crlf_framing_gives_the_same_answer() {
        let crlf = TEXT.replace('\n', "\r\n");
        let r = run_all(&crlf, false);
        r.end.unwrap();
        assert_eq!(
            content(&r.chunks).concat(),
            "Hello! How can I help you today? ✓ héllo"
        );
    }

    #[test]
    fn parallel_tool_calls_stream_with_their_own_indices() {
        let r = run_all(TOOL_USE, false);
        r.end.unwrap();
        assert_identity(&r.chunks, "msg_014p7gG3wDgGV9EUtLvnow3U");
        role_first(&r.chunks);
        assert_eq!(
            content(&r.chunks).concat(),
            "I'll check the weather in both cities."
        );
        let (calls, order) = tool_calls(&r.chunks);
        assert_eq!(
            order,
            [0, 0, 0, 0, 1, 1, 1, 1],
            "block numbering is not used"
        );
        let want = [
            (
                "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                json!({"location":"Paris, France","unit":"celsius"}),
            ),
            (
                "toolu_01VPGbBNYNkvBxAq4tDMTKDx",
                json!({"location":"Tokyo, Japan","unit":"celsius"}),
            ),
        ];
        assert_eq!(calls.len(), 2);
        for (i, (id, input)) in want.iter().enumerate() {
            let (got_id, name, args) = &calls[&(i as u32)];
            assert_eq!(got_id, id);
            assert_eq!(name, "get_weather");
            assert_eq!(&serde_json::from_str::<Value>(args).unwrap(), input);
        }
        // The first fragment of each call carries id and name and empty arguments.
        let starts: Vec<&ToolCallDelta> = r
            .chunks
            .iter()
            .flat_map(|c| &c.choices)
            .filter_map(|c| c.delta.tool_calls.as_ref())
            .flatten()
            .filter(|d| d.id.is_some())
            .collect();
        assert_eq!(
            starts[0],
            &ToolCallDelta::start(0, want[0].0, "get_weather")
        );
        assert_eq!(finish_reasons(&r.chunks), ["tool_calls"]);
        let u = usage(&r.chunks);
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (472 + 1500 + 2000, 124, 472 + 1500 + 2000 + 124)
        );
        assert_eq!(u.extra["prompt_tokens_details"]["cached_tokens"], 2000);
    }

    #[test]
    fn tool_calls_without_arguments_yield_an_empty_object() {
        let r = run_all(NO_ARGS, false);
        r.end.unwrap();
        let (calls, order) = tool_calls(&r.chunks);
        assert_eq!(order, [0, 0, 1, 1], "start, then \"{{}}\", per call");
        assert_eq!(
            calls[&0],
            (
                "toolu_01NtmWyjQ4gkZxH6bUvMaSdP".into(),
                "get_time".into(),
                "{}".into()
            )
        );
        assert_eq!(
            calls[&1],
            (
                "toolu_01Lx3CkRa7PzYbT2mJv9HqWe".into(),
                "list_timezones".into(),
                "{}".into()
            )
        );
        assert_eq!(finish_reasons(&r.chunks), ["tool_calls"]);
        assert_eq!(usage(&r.chunks), &Usage::new(389, 41));
    }

    #[test]
    fn max_tokens_stream_finishes_with_length() {
        let r = run_all(MAX_TOKENS, false);
        r.end.unwrap();
        assert_eq!(
            content(&r.chunks).concat(),
            "Once upon a time, in a kingdom by the sea, there lived a"
        );
        assert_eq!(finish_reasons(&r.chunks), ["length"]);
        assert_eq!(usage(&r.chunks), &Usage::new(17, 16));
    }

    #[test]
    fn an_error_event_mid_stream_is_an_upstream_error_after_the_content() {
        let r = run_all(ERROR, false);
        assert_identity(&r.chunks, "msg_01Wp4cRt8YhN2vXq6KzB7mLs");
        assert_eq!(
            content(&r.chunks),
            ["The three primary colors", " are red,"]
        );
        assert!(finish_reasons(&r.chunks).is_empty());
        assert!(r.chunks.iter().all(|c| c.usage.is_none()));
        match r.end {
            Err(AdapterError::Upstream(e)) => {
                assert_eq!(
                    (
                        e.status,
                        e.message.as_str(),
                        e.kind.as_deref(),
                        e.code.as_deref()
                    ),
                    (529, "Overloaded", Some("server_error"), Some("overloaded"))
                );
            }
            other => panic!("expected an upstream error, got {other:?}"),
        }
    }

    #[test]
    fn error_event_types_carry_their_status() {
        for (kind, status) in [
            ("overloaded_error", 529),
            ("api_error", 500),
            ("rate_limit_error", 429),
            ("invalid_request_error", 400),
            ("timeout_error", 504),
            ("brand_new_error", 500),
        ] {
            let mut tr = Translator::new(false, "m");
            let ev = Event {
                event: Some("error".into()),
                data: format!(r#"{{"type":"error","error":{{"type":"{kind}","message":"x"}}}}"#),
            };
            match tr.on_event(&ev, &mut Vec::new()) {
                Err(AdapterError::Upstream(UpstreamError { status: s, .. })) => {
                    assert_eq!(s, status, "{kind}")
                }
                other => panic!("{kind}: {other:?}"),
            }
        }
    }

    #[test]
    fn pings_are_ignored() {
        let r = run_all(PINGS, false);
        r.end.unwrap();
        assert_identity(&r.chunks, "msg_01Hm6tYq3PzK8wVb2NcR5xJd");
        assert_eq!(content(&r.chunks), ["Still", " thinking", " it over."]);
        assert_eq!(finish_reasons(&r.chunks), ["stop"], "stop_sequence is stop");
        let u = usage(&r.chunks);
        assert_eq!((u.prompt_tokens, u.completion_tokens), (31 + 12, 9));
        assert_eq!(r.chunks.len(), 1 + 3 + 1 + 1);
    }

    #[test]
    fn thinking_is_not_part_of_the_answer() {
        let r = run_all(THINKING, false);
        r.end.unwrap();
        assert_eq!(content(&r.chunks), ["27 * 453 = 12,231"]);
        assert_eq!(r.chunks.len(), 1 + 1 + 1 + 1);
        assert_eq!(usage(&r.chunks), &Usage::new(44, 87));
    }

    #[test]
    fn json_mode_streams_json_output_as_content() {
        let r = run_all(JSON_OUTPUT, true);
        r.end.unwrap();
        assert_identity(&r.chunks, "msg_01Rj7nVb4Xq2WtY8PzK3cLmH");
        role_first(&r.chunks);
        assert!(tool_calls(&r.chunks).0.is_empty());
        let text = content(&r.chunks).concat();
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"name":"Science fair","date":"Friday","participants":["Alice","Bob"]})
        );
        assert_eq!(finish_reasons(&r.chunks), ["stop"]);
        // Not in JSON mode, the same stream is a plain tool call.
        let r = run_all(JSON_OUTPUT, false);
        let (calls, _) = tool_calls(&r.chunks);
        assert_eq!(calls[&0].1, "json_output");
        assert_eq!(finish_reasons(&r.chunks), ["tool_calls"]);
    }

    #[test]
    fn json_mode_without_argument_fragments_is_an_empty_object() {
        let sse = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"json_output","input":{}}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_stop
data: {"type":"message_stop"}

"#;
        let r = run_all(sse, true);
        r.end.unwrap();
        assert_eq!(content(&r.chunks), ["{}"]);
        assert_eq!(finish_reasons(&r.chunks), ["stop"], "message_stop finishes");
        assert_eq!(usage(&r.chunks), &Usage::new(3, 1));
    }

    fn events(tr: &mut Translator, lines: &[&str]) -> Result<Vec<ChatChunk>, AdapterError> {
        let mut out = Vec::new();
        for data in lines {
            let ev = Event {
                event: None,
                data: (*data).to_string(),
            };
            tr.on_event(&ev, &mut out)?;
        }
        Ok(out)
    }

    const START: &str = r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"","content":[],"stop_reason":null,"usage":{"input_tokens":5,"output_tokens":1}}}"#;

    #[test]
    fn unknown_events_and_delta_types_are_ignored() {
        let mut tr = Translator::new(false, "claude-sonnet-4-5");
        let out = events(
            &mut tr,
            &[
                START,
                r#"{"type":"brand_new_event","whatever":[1]}"#,
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{}}}"#,
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"q\":1}"}}"#,
                r#"{"type":"content_block_stop","index":0}"#,
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":"Hi"}}"#,
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"citations_delta","citation":{}}}"#,
                r#"{"type":"content_block_stop","index":1}"#,
            ],
        )
        .unwrap();
        assert_eq!(content(&out), ["Hi"], "initial text of a block counts");
        assert!(
            out.iter().all(|c| c.model == "claude-sonnet-4-5"),
            "model fallback"
        );
    }

    #[test]
    fn malformed_streams_are_protocol_errors() {
        let cases: [&[&str]; 7] = [
            &[
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ],
            &[START, START],
            &[START, "not json"],
            &[
                START,
                r#"{"type":"content_block_delta","index":3,"delta":{"type":"text_delta","text":"x"}}"#,
            ],
            &[START, r#"{"type":"content_block_stop","index":0}"#],
            &[
                START,
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{"}}"#,
            ],
            &[r#"{"no_type":true}"#],
        ];
        for lines in cases {
            let mut tr = Translator::new(false, "m");
            assert!(
                matches!(events(&mut tr, lines), Err(AdapterError::Protocol(_))),
                "{lines:?}"
            );
        }
    }

    #[test]
    fn too_many_open_blocks_is_a_protocol_error() {
        let starts: Vec<String> = (0..=MAX_OPEN_BLOCKS)
            .map(|i| {
                format!(
                    r#"{{"type":"content_block_start","index":{i},"content_block":{{"type":"text","text":""}}}}"#
                )
            })
            .collect();
        let mut lines = vec![START];
        lines.extend(starts.iter().map(String::as_str));
        let mut tr = Translator::new(false, "m");
        assert!(matches!(
            events(&mut tr, &lines),
            Err(AdapterError::Protocol(m)) if m.contains("open at once")
        ));
    }

    #[test]
    fn a_stream_cut_before_message_stop_is_a_protocol_error() {
        let cut = TEXT.split("event: message_delta").next().unwrap();
        let r = run(cut, false, 7);
        assert!(matches!(r.end, Err(AdapterError::Protocol(_))));
        assert_eq!(content(&r.chunks).len(), 3, "what came is still translated");
    }

    #[test]
    fn message_stop_without_message_delta_still_finishes() {
        let mut tr = Translator::new(false, "m");
        let mut out = events(
            &mut tr,
            &[
                START,
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"ok"}}"#,
                r#"{"type":"content_block_stop","index":0}"#,
            ],
        )
        .unwrap();
        let flow = tr
            .on_event(
                &Event {
                    event: Some("message_stop".into()),
                    data: r#"{"type":"message_stop"}"#.into(),
                },
                &mut out,
            )
            .unwrap();
        assert_eq!(flow, Flow::Done);
        assert_eq!(finish_reasons(&out), ["stop"]);
        assert_eq!(usage(&out), &Usage::new(5, 1));
        assert!(tr.finish(&mut out).is_ok());
    }
}
