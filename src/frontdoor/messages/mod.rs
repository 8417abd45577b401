//! `POST /v1/messages`: Anthropic's Messages API as a front door. Code written for
//! the Anthropic SDK (and Claude Code) changes only its base URL and gains failover:
//! the request becomes the canonical request, any provider kind answers, and the
//! answer comes back as a `Message` or Anthropic's event stream.

mod answer;
mod error;
mod request;
mod stream;

use std::sync::Arc;

use bytes::Bytes;

use super::{BoxFuture, Dialect, Rendered, StreamRender, Turn};
use crate::app::App;
use crate::canonical::{ChatRequest, ChatResponse};
use crate::error::ProxyError;
use request::MessagesRequest;

pub struct Messages;

pub static MESSAGES: Messages = Messages;

impl Dialect for Messages {
    fn begin<'a>(
        &'a self,
        _app: &'a Arc<App>,
        body: Bytes,
    ) -> BoxFuture<'a, Result<Box<dyn Turn>, ProxyError>> {
        Box::pin(async move {
            let req = MessagesRequest::parse(&body)?;
            let chat = req.chat_body()?;
            let bytes = serde_json::to_vec(&chat)
                .map_err(|e| ProxyError::BadRequest(format!("invalid request body: {e}")))?;
            let canonical =
                ChatRequest::parse(Bytes::from(bytes)).map_err(ProxyError::BadRequest)?;
            Ok(Box::new(MessagesTurn { canonical }) as Box<dyn Turn>)
        })
    }

    fn render_error(&self, err: &ProxyError) -> Rendered {
        error::render(err)
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
        serde_json::to_vec(&answer::render(answer)).unwrap_or_default()
    }

    fn stream_renderer(&self) -> Box<dyn StreamRender> {
        Box::new(stream::MessagesStream::new(self.canonical.model.clone()))
    }
}
