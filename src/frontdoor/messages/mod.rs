//! `POST /v1/messages`: Anthropic's Messages API as a front door. Code written for
//! the Anthropic SDK (and Claude Code) changes only its base URL and gains failover:
//! the request becomes the canonical request, any provider kind answers, and the
//! answer comes back as a `Message` or Anthropic's event stream.

mod answer;
mod count_tokens;
mod error;
mod request;
mod stream;

use std::sync::Arc;

use bytes::Bytes;

use super::{BoxFuture, Dialect, Rendered, StreamRender, Turn};
use crate::app::App;
use crate::canonical::{Api, ChatRequest, ChatResponse, Native};

use crate::error::ProxyError;
pub use count_tokens::COUNT_TOKENS;
use request::MessagesRequest;

/// Headers an Anthropic-kind target receives from the client as they were sent.
const FORWARDED: [http::HeaderName; 2] = [
    http::HeaderName::from_static("anthropic-version"),
    http::HeaderName::from_static("anthropic-beta"),
];

/// The client's own request for Anthropic-kind targets: its body (the adapter swaps
/// the model), its version and beta headers, its query (`?beta=true`).
fn native(api: Api, head: &http::request::Parts, body: Bytes) -> Native {
    Native {
        api,
        headers: FORWARDED
            .iter()
            .filter_map(|h| head.headers.get(h).map(|v| (h.clone(), v.clone())))
            .collect(),
        query: head.uri.query().map(str::to_string),
        body,
    }
}

pub struct Messages;

pub static MESSAGES: Messages = Messages;

impl Dialect for Messages {
    fn begin<'a>(
        &'a self,
        _app: &'a Arc<App>,
        head: &'a http::request::Parts,
        body: Bytes,
    ) -> BoxFuture<'a, Result<Box<dyn Turn>, ProxyError>> {
        Box::pin(async move {
            let req = MessagesRequest::parse(&body)?;
            // A block only Anthropic's API can express (a document, a server tool):
            // only Anthropic-kind targets can serve it; the others are skipped, and
            // the client gets this 400 if none is left.
            let (chat, replays, untranslatable) = match req.chat_body() {
                Ok((chat, replays)) => (chat, replays, None),
                Err(e) => (req.placeholder(), Vec::new(), Some(e.to_string())),
            };
            let mut canonical = super::canonical(&chat)?;
            canonical.untranslatable = untranslatable;
            canonical.thinking = req.thinking();
            for (at, r) in replays {
                if let Some(m) = canonical.messages.get_mut(at) {
                    m.reasoning.push(r);
                }
            }
            // Anthropic-kind targets get the client's body itself (model swapped) and
            // its version and beta headers.
            canonical.native = Some(Arc::new(native(
                Api::Messages,
                head,
                without_sealed_thinking(&req, body)?,
            )));
            Ok(Box::new(MessagesTurn { canonical }) as Box<dyn Turn>)
        })
    }

    fn render_error(&self, err: &ProxyError) -> Rendered {
        error::render(err)
    }

    fn api(&self) -> &'static str {
        "messages"
    }
}

/// The body for Anthropic-kind targets: thinking blocks that another kind produced
/// (the proxy sealed them) are not Anthropic's to read, and are left out. A body
/// without any goes as the client sent it, byte for byte.
fn without_sealed_thinking(req: &MessagesRequest, body: Bytes) -> Result<Bytes, ProxyError> {
    let sealed = |b: &serde_json::Value| request::sealed_thinking(b).is_some();
    let any_sealed = req.messages.iter().any(|m| {
        m.get("content")
            .and_then(serde_json::Value::as_array)
            .is_some_and(|blocks| blocks.iter().any(sealed))
    });
    if !any_sealed {
        return Ok(body);
    }
    let mut v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ProxyError::BadRequest(format!("invalid request body: {e}")))?;
    for m in v["messages"].as_array_mut().into_iter().flatten() {
        if let Some(content) = m
            .get_mut("content")
            .and_then(serde_json::Value::as_array_mut)
        {
            content.retain(|b| !sealed(b));
        }
    }
    tracing::debug!("messages: thinking of another kind of provider left out for Anthropic");
    serde_json::to_vec(&v)
        .map(Bytes::from)
        .map_err(|e| ProxyError::BadRequest(format!("invalid request body: {e}")))
}

struct MessagesTurn {
    canonical: ChatRequest,
}

impl Turn for MessagesTurn {
    fn request(&self) -> &ChatRequest {
        &self.canonical
    }

    fn render_answer(&self, answer: &ChatResponse) -> Vec<u8> {
        if let Some(raw) = &answer.native {
            return raw.to_vec();
        }
        serde_json::to_vec(&answer::render(answer)).unwrap_or_default()
    }

    fn stream_renderer(&self) -> Box<dyn StreamRender> {
        Box::new(stream::MessagesStream::new(self.canonical.model.clone()))
    }
}
