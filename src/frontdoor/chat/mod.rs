//! `POST /v1/chat/completions`: the canonical format itself, so parsing and rendering
//! are thin — the work is in what the client asked to see (the usage chunk) and in
//! OpenAI's exact error and stream shapes.

pub mod error;

use bytes::{Bytes, BytesMut};

use super::{Dialect, Rendered, StreamRender};
use crate::canonical::{ChatChunk, ChatRequest, ChatResponse};
use crate::error::ProxyError;
use crate::http::sse;

pub struct Chat;

pub static CHAT: Chat = Chat;

impl Dialect for Chat {
    fn parse(&self, body: Bytes) -> Result<ChatRequest, String> {
        ChatRequest::parse(body)
    }

    fn render_answer(&self, _req: &ChatRequest, answer: &ChatResponse) -> Vec<u8> {
        // Serialising our own types cannot fail.
        serde_json::to_vec(answer).unwrap_or_default()
    }

    fn stream_renderer(&self, req: &ChatRequest) -> Box<dyn StreamRender> {
        Box::new(ChatStream {
            include_usage: req.include_usage(),
        })
    }

    fn render_error(&self, err: &ProxyError) -> Rendered {
        error::render(err)
    }
}

/// Chat chunks as SSE `data:` events, `[DONE]` at the end.
struct ChatStream {
    include_usage: bool,
}

impl StreamRender for ChatStream {
    fn chunk(&mut self, mut chunk: ChatChunk, out: &mut BytesMut) {
        if keep(&mut chunk, self.include_usage) {
            encode(&chunk, out);
        }
    }

    fn done(&mut self, out: &mut BytesMut) {
        out.extend_from_slice(sse::DONE);
    }

    fn error(&mut self, err: &ProxyError, out: &mut BytesMut) {
        out.extend_from_slice(&sse::encode_data(error::body(err).to_string().as_bytes()));
    }
}

/// Whether a chunk goes to the client. Drops empty-choice chunks without usage (Azure's
/// prompt-filter results) and usage the client did not ask for.
pub fn keep(chunk: &mut ChatChunk, include_usage: bool) -> bool {
    if !include_usage {
        chunk.usage = None;
    }
    !chunk.choices.is_empty() || chunk.usage.is_some()
}

pub fn encode(chunk: &ChatChunk, into: &mut BytesMut) {
    // Serialising our own types cannot fail.
    let json = serde_json::to_vec(chunk).unwrap_or_default();
    into.extend_from_slice(&sse::encode_data(&json));
}
