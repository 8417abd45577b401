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
            let (chat, untranslatable) = match req.chat_body() {
                Ok(chat) => (chat, None),
                Err(e) => (req.placeholder(), Some(e.to_string())),
            };
            let mut canonical = super::canonical(&chat)?;
            canonical.untranslatable = untranslatable;
            canonical.native = Some(Arc::new(native(Api::Messages, head, body)));
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
