//! Front doors: one module per client API. Each parses its requests into the
//! canonical request, renders canonical answers, stream chunks and errors back in its
//! own shape, and says what counts as a content event. The failover walk, the cache
//! and health never learn which front door called them.

pub mod chat;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, StatusCode};

use crate::canonical::{ChatChunk, ChatRequest, ChatResponse};
use crate::error::ProxyError;

/// Whether a canonical chunk carries assistant output (the stream's commit point).
pub type IsContent = fn(&ChatChunk) -> bool;

/// A client API.
pub trait Dialect: Send + Sync {
    /// Parses a client body; the error is the client's 400 message.
    fn parse(&self, body: Bytes) -> Result<ChatRequest, String>;

    /// A complete answer as this API's JSON body.
    fn render_answer(&self, req: &ChatRequest, answer: &ChatResponse) -> Vec<u8>;

    /// Fresh state for rendering one streamed answer.
    fn stream_renderer(&self, req: &ChatRequest) -> Box<dyn StreamRender>;

    /// An error in this API's shape.
    fn render_error(&self, err: &ProxyError) -> Rendered;

    /// Until the first content event the proxy may still fail over silently.
    fn is_content(&self) -> IsContent {
        ChatChunk::is_content
    }
}

/// Renders one streamed answer's canonical chunks as this API's stream events.
pub trait StreamRender: Send {
    fn chunk(&mut self, chunk: ChatChunk, out: &mut BytesMut);
    /// The upstream ended properly.
    fn done(&mut self, out: &mut BytesMut);
    /// The stream failed after content reached the client: the final event.
    fn error(&mut self, err: &ProxyError, out: &mut BytesMut);
}

/// What the client receives for an error.
pub struct Rendered {
    pub status: StatusCode,
    pub retry_after: Option<HeaderValue>,
    pub body: Vec<u8>,
}

/// Renders a whole answer as one stream body: what a cached answer and the static
/// fallback send to a streaming client.
pub fn replay_stream(render: &mut dyn StreamRender, answer: &ChatResponse) -> Bytes {
    let mut out = BytesMut::new();
    for chunk in crate::canonical::replay(answer, true) {
        render.chunk(chunk, &mut out);
    }
    render.done(&mut out);
    out.freeze()
}
