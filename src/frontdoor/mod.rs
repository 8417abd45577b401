//! Front doors: one module per client API. Each parses its requests into the
//! canonical request, renders canonical answers, stream chunks and errors back in its
//! own shape, and says what counts as a content event. Embeddings, which have no
//! stream and one shape of answer, only render it. The failover walk, the cache
//! and health never learn which front door called them.

pub mod chat;
pub mod embeddings;
pub mod messages;
pub mod responses;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue, StatusCode};

use crate::app::App;
use crate::canonical::{ChatChunk, ChatRequest, ChatResponse};
use crate::error::ProxyError;

/// Whether a canonical chunk carries assistant output (the stream's commit point).
pub type IsContent = fn(&ChatChunk) -> bool;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A client API.
pub trait Dialect: Send + Sync {
    /// Reads a client body into one request of this API. Async: a front door may
    /// need stored state (a previous response) to build the canonical request.
    fn begin<'a>(
        &'a self,
        app: &'a Arc<App>,
        head: &'a http::request::Parts,
        body: Bytes,
    ) -> BoxFuture<'a, Result<Box<dyn Turn>, ProxyError>>;

    /// An error in this API's shape.
    fn render_error(&self, err: &ProxyError) -> Rendered;

    /// The `api` label of this front door's requests in `/metrics`.
    fn api(&self) -> &'static str;
}

/// One client request as its front door read it: the canonical request for the walk,
/// and how to render what comes back.
pub trait Turn: Send + Sync {
    fn request(&self) -> &ChatRequest;

    /// Until the first content event the proxy may still fail over silently.
    fn is_content(&self) -> IsContent {
        ChatChunk::is_content
    }

    /// A complete answer as this API's JSON body.
    fn render_answer(&self, answer: &ChatResponse) -> Vec<u8>;

    /// Fresh state for rendering the streamed answer.
    fn stream_renderer(&self) -> Box<dyn StreamRender>;

    /// Headers this front door adds to a successful answer.
    fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        Vec::new()
    }

    /// What answers instead of the walk's `err`, when this API has something better
    /// than the error (a token count's estimate). Checked before the cache's stale
    /// answer and the static fallback, which are answers of another shape.
    fn stand_in(&self, _err: &ProxyError) -> Option<StandIn> {
        None
    }
}

/// A 200 JSON answer standing in for a failed walk, with its own headers.
pub struct StandIn {
    pub body: Vec<u8>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
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

/// The canonical request for a chat body a front door translated its request into.
pub(crate) fn canonical(chat: &serde_json::Value) -> Result<ChatRequest, ProxyError> {
    let bytes = serde_json::to_vec(chat)
        .map_err(|e| ProxyError::BadRequest(format!("invalid request body: {e}")))?;
    ChatRequest::parse(Bytes::from(bytes)).map_err(ProxyError::BadRequest)
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
