//! The response body type and its constructors.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// Why a response body stopped short. It is the body's error so that hyper cuts the
/// connection (HTTP/1.1) or resets the stream (HTTP/2): a client never takes a
/// partial body for a whole one. Only forwarded bodies (`[passthrough]`) end this
/// way; the proxy's own streams turn a failing upstream into a final error event.
#[derive(Debug, thiserror::Error)]
#[error("response body cut short: {0}")]
pub struct Cut(pub String);

/// Every response body: a whole buffer, an event stream that cannot fail, or a
/// forwarded body that may be [`Cut`].
pub type Body = UnsyncBoxBody<Bytes, Cut>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}
