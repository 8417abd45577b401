//! The client APIs, entered the way the server enters them: `Dialect::begin` with the
//! request head and body.

use bytes::Bytes;
use understudy::error::ProxyError;
use understudy::frontdoor::{chat::CHAT, messages, responses::RESPONSES, Dialect, Turn};

use crate::world::world;

/// Chat completions, Responses, Messages, Messages' count_tokens.
pub const DOORS: [(&dyn Dialect, &str); 4] = [
    (&CHAT, "/v1/chat/completions"),
    (&RESPONSES, "/v1/responses"),
    (&messages::MESSAGES, "/v1/messages"),
    (&messages::COUNT_TOKENS, "/v1/messages/count_tokens"),
];

/// The turn door `door` (an index of [`DOORS`], wrapped) reads from `body`.
pub fn begin(door: usize, body: &[u8]) -> Result<Box<dyn Turn>, ProxyError> {
    let (dialect, path) = DOORS[door % DOORS.len()];
    let (head, ()) = http::Request::post(path)
        .header("anthropic-version", "2023-06-01")
        .body(())
        .map_err(|e| ProxyError::BadRequest(e.to_string()))?
        .into_parts();
    let w = world();
    w.rt.block_on(dialect.begin(&w.app, &head, Bytes::copy_from_slice(body)))
}
