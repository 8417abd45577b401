//! `POST /v1/chat/completions`: the canonical format itself, so parsing and rendering
//! are thin — the work is in what the client asked to see (the usage chunk) and in
//! OpenAI's exact error and stream shapes.

pub mod error;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::{BoxFuture, Dialect, Rendered, StreamRender, Turn};
use crate::app::App;
use crate::canonical::{ChatChunk, ChatRequest, ChatResponse};
use crate::error::ProxyError;
use crate::http::sse;

pub struct Chat;

pub static CHAT: Chat = Chat;

impl Dialect for Chat {
    fn begin<'a>(
        &'a self,
        _app: &'a Arc<App>,
        _head: &'a http::request::Parts,
        body: Bytes,
    ) -> BoxFuture<'a, Result<Box<dyn Turn>, ProxyError>> {
        Box::pin(async move {
            let req = ChatRequest::parse(body).map_err(ProxyError::BadRequest)?;
            Ok(Box::new(ChatTurn { req }) as Box<dyn Turn>)
        })
    }

    fn render_error(&self, err: &ProxyError) -> Rendered {
        error::render(err)
    }

    fn api(&self) -> &'static str {
        "chat"
    }
}

struct ChatTurn {
    req: ChatRequest,
}

impl Turn for ChatTurn {
    fn request(&self) -> &ChatRequest {
        &self.req
    }

    fn render_answer(&self, answer: &ChatResponse) -> Vec<u8> {
        // Serialising our own types cannot fail.
        serde_json::to_vec(answer).unwrap_or_default()
    }

    fn stream_renderer(&self) -> Box<dyn StreamRender> {
        Box::new(ChatStream {
            include_usage: self.req.include_usage(),
            json: Vec::new(),
        })
    }
}

/// Chat chunks as SSE `data:` events, `[DONE]` at the end.
struct ChatStream {
    include_usage: bool,
    json: Vec<u8>,
}

impl StreamRender for ChatStream {
    fn chunk(&mut self, mut chunk: ChatChunk, out: &mut BytesMut) {
        let native = chunk.native.take();
        let (usage, choices) = (chunk.usage.is_some(), chunk.choices.len());
        if keep(&mut chunk, self.include_usage) {
            match native {
                // The upstream's own event, when keeping the chunk changed nothing.
                Some(raw) if chunk.usage.is_some() == usage && chunk.choices.len() == choices => {
                    out.extend_from_slice(&raw);
                }
                _ => encode(&chunk, &mut self.json, out),
            }
        }
    }

    fn done(&mut self, out: &mut BytesMut) {
        out.extend_from_slice(sse::DONE);
    }

    fn error(&mut self, err: &ProxyError, out: &mut BytesMut) {
        sse::encode_data(error::body(err).to_string().as_bytes(), out);
    }
}

/// Whether a chunk goes to the client. Drops empty-choice chunks without usage (Azure's
/// prompt-filter results), usage the client did not ask for, and choices that carry
/// only reasoning chat has no field for (an Anthropic thinking delta would otherwise
/// reach the client as an empty delta).
pub fn keep(chunk: &mut ChatChunk, include_usage: bool) -> bool {
    if !include_usage {
        chunk.usage = None;
    }
    chunk.choices.retain(|c| !only_reasoning(c));
    !chunk.choices.is_empty() || chunk.usage.is_some()
}

fn only_reasoning(c: &crate::canonical::ChunkChoice) -> bool {
    let d = &c.delta;
    d.reasoning.is_some()
        && d.role.is_none()
        && d.content.is_none()
        && d.refusal.is_none()
        && d.tool_calls.is_none()
        && d.extra.is_empty()
        && c.finish_reason.is_none()
        && c.logprobs.is_none()
}

/// `json` is the stream's scratch buffer, reused so no event allocates its own (writing
/// through `BytesMut`'s `io::Write` instead costs more: serde writes many tiny pieces).
pub fn encode(chunk: &ChatChunk, json: &mut Vec<u8>, into: &mut BytesMut) {
    json.clear();
    // Serialising our own types into memory cannot fail.
    let _ = serde_json::to_writer(&mut *json, chunk);
    sse::encode_data(json, into);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::testing::streamed_tool_answer;
    use crate::canonical::Assembler;
    use crate::frontdoor::replay_stream;

    fn events(body: &[u8]) -> Vec<String> {
        String::from_utf8(body.to_vec())
            .unwrap()
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| e.strip_prefix("data: ").unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_whole_answer_replays_as_one_sse_body_with_usage_only_when_asked() {
        let mut a = Assembler::default();
        for c in streamed_tool_answer() {
            a.push(&c);
        }
        let answer = a.finish().unwrap();
        assert!(answer.usage.is_some());
        for (include_usage, usage_chunks) in [(false, 0), (true, 1)] {
            let mut render = ChatStream {
                include_usage,
                json: Vec::new(),
            };
            let body = replay_stream(&mut render, &answer);
            let events = events(&body);
            assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
            let chunks: Vec<ChatChunk> = events[..events.len() - 1]
                .iter()
                .map(|e| serde_json::from_str(e).unwrap())
                .collect();
            assert!(chunks
                .iter()
                .all(|c| c.id == answer.id && c.model == answer.model));
            let usage = chunks.iter().filter(|c| c.is_usage_only()).count();
            assert_eq!(usage, usage_chunks, "include_usage {include_usage}");
        }
    }

    #[test]
    fn reasoning_alone_is_not_sent_to_chat_clients() {
        use crate::canonical::{Delta, ReasoningDelta};
        let thinking = Delta::reasoning(ReasoningDelta::Text("hmm".into()));
        let mut chunk = ChatChunk::new("c", 1, "m").with_delta(thinking, None);
        assert!(!keep(&mut chunk, true));
        // an OpenAI-compatible server's reasoning_content still passes as it came
        let mut passthrough: ChatChunk = serde_json::from_str(
            r#"{"id":"c","created":1,"model":"m","choices":[{"index":0,"delta":{"reasoning_content":"hmm"}}]}"#,
        )
        .unwrap();
        passthrough.choices[0].delta.reasoning = Some(ReasoningDelta::Text("hmm".into()));
        assert!(keep(&mut passthrough, true));
    }

    #[test]
    fn an_upstream_event_goes_out_as_it_came_unless_keeping_it_changes_it() {
        let raw = br#"{"id":"c","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hi"} }],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;
        let parsed = |native: bool| {
            let mut c: ChatChunk = serde_json::from_slice(raw).unwrap();
            if native {
                let mut framed = BytesMut::new();
                sse::encode_data(raw, &mut framed);
                c.native = Some(framed.freeze());
            }
            c
        };
        let render = |include_usage: bool, chunk: ChatChunk| {
            let mut r = ChatStream {
                include_usage,
                json: Vec::new(),
            };
            let mut out = BytesMut::new();
            r.chunk(chunk, &mut out);
            out
        };
        let verbatim = render(true, parsed(true));
        assert_eq!(&verbatim[..], [b"data: ", &raw[..], b"\n\n"].concat());
        let stripped = render(false, parsed(true));
        assert_eq!(stripped, render(false, parsed(false)), "usage left out");
        let event = events(&stripped).remove(0);
        assert!(!event.contains("usage") && event.contains(r#""content":"hi""#));
    }
}
