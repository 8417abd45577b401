//! Provider adapters: each kind translates the canonical OpenAI request into its own
//! wire format and its answers (plain and streamed) back. Adapters are pure — no I/O,
//! no async — so each is unit-tested from fixtures alone.
//!
//! Adding a provider kind = one file here + one arm in [`adapter_for`]: nothing outside
//! this module matches on a kind.

mod anthropic;
mod azure;
mod gemini;
mod ollama;
mod openai;
#[cfg(test)]
pub(crate) mod testing;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use crate::config::{Provider, Target};
use crate::http::sse::{Event, Framing};
use crate::openai::{ChatChunk, ChatRequest, ChatResponse};

/// The provider kinds `proxy.toml` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Openai,
    Azure,
    Anthropic,
    Gemini,
    Ollama,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Openai => "openai",
            Kind::Azure => "azure",
            Kind::Anthropic => "anthropic",
            Kind::Gemini => "gemini",
            Kind::Ollama => "ollama",
        }
    }
}

/// The one place a kind selects its behaviour.
pub fn adapter_for(kind: Kind) -> &'static dyn Adapter {
    match kind {
        Kind::Openai => &openai::ADAPTER,
        Kind::Azure => &azure::ADAPTER,
        Kind::Anthropic => &anthropic::ADAPTER,
        Kind::Gemini => &gemini::ADAPTER,
        Kind::Ollama => &ollama::ADAPTER,
    }
}

pub trait Adapter: Send + Sync {
    /// Settings this kind requires or forbids, checked when the config is loaded.
    /// The error is shown after the provider's key path.
    fn validate(&self, _provider: &Provider) -> Result<(), String> {
        Ok(())
    }

    /// The upstream request (absolute URI, auth and provider headers) for `req`.
    /// `Err(InvalidRequest)` means the request cannot be expressed: 400, no call.
    fn build_request(
        &self,
        req: &ChatRequest,
        target: &Target,
    ) -> Result<http::Request<Bytes>, AdapterError>;

    /// A complete non-streamed answer in OpenAI's shape.
    fn parse_response(
        &self,
        req: &ChatRequest,
        target: &Target,
        body: &[u8],
    ) -> Result<ChatResponse, AdapterError>;

    /// Reads a non-2xx answer. The returned `status` is what failover classifies,
    /// so a kind may say a 400 really means 401 (Gemini's API_KEY_INVALID).
    fn parse_error(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> UpstreamError;

    /// How this kind frames a streamed answer.
    fn framing(&self) -> Framing {
        Framing::Sse
    }

    /// Fresh translation state for one streamed answer.
    fn stream_translator(&self, req: &ChatRequest, target: &Target) -> Box<dyn StreamTranslator>;

    /// The cheap request an active health probe sends.
    fn probe_request(&self, provider: &Provider) -> Result<http::Request<Bytes>, AdapterError>;
}

/// Whether the upstream stream is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The upstream signalled a proper end (`[DONE]`, `message_stop`, `done: true`).
    Done,
}

pub trait StreamTranslator: Send {
    /// Translates one upstream event into zero or more chunks. An `Err` ends the
    /// stream: `Upstream` for an error the provider reported, `Protocol` for garbage.
    fn on_event(&mut self, event: &Event, out: &mut Vec<ChatChunk>) -> Result<Flow, AdapterError>;

    /// The upstream body ended without [`Flow::Done`]. Kinds whose streams have no
    /// terminator finish here; others return `Protocol` (the stream was cut short).
    fn finish(&mut self, out: &mut Vec<ChatChunk>) -> Result<(), AdapterError>;
}

#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// The client's request cannot be sent to this kind (400 before any call).
    #[error("{0}")]
    InvalidRequest(String),
    /// The upstream answered 200 with something that is not its format.
    #[error("malformed upstream answer: {0}")]
    Protocol(String),
    /// The upstream reported an error inside a 200 body or stream.
    #[error("{0}")]
    Upstream(UpstreamError),
}

/// An error as the upstream reported it, normalised for failover and for the client.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamError {
    /// The HTTP status this error amounts to (an overloaded event in a stream is 529).
    pub status: u16,
    pub message: String,
    /// OpenAI-style `type` / `code` to show the client, when the provider gave one.
    pub kind: Option<String>,
    pub code: Option<String>,
    /// A retry hint found in the body (Gemini's RetryInfo.retryDelay).
    pub retry_after: Option<Duration>,
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl UpstreamError {
    pub fn new(status: u16, message: impl Into<String>) -> UpstreamError {
        UpstreamError {
            status,
            message: message.into(),
            kind: None,
            code: None,
            retry_after: None,
        }
    }
}

/// Joins a provider's base URL and a path into an absolute URI.
pub(crate) fn join_url(base: &str, path: &str) -> Result<http::Uri, AdapterError> {
    let url = format!("{}{}", base.trim_end_matches('/'), path);
    url.parse()
        .map_err(|e| AdapterError::InvalidRequest(format!("bad upstream URL {url:?}: {e}")))
}

/// A JSON POST with the provider's extra headers applied last-but-auth.
pub(crate) fn json_post(
    uri: http::Uri,
    provider: &Provider,
    body: Vec<u8>,
) -> Result<http::Request<Bytes>, AdapterError> {
    let mut req = http::Request::post(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Bytes::from(body))
        .map_err(|e| AdapterError::InvalidRequest(e.to_string()))?;
    for (name, value) in &provider.headers {
        req.headers_mut().insert(name.clone(), value.clone());
    }
    Ok(req)
}

/// A GET with the provider's extra headers, for health probes.
pub(crate) fn get(
    uri: http::Uri,
    provider: &Provider,
) -> Result<http::Request<Bytes>, AdapterError> {
    let mut req = http::Request::get(uri)
        .body(Bytes::new())
        .map_err(|e| AdapterError::InvalidRequest(e.to_string()))?;
    for (name, value) in &provider.headers {
        req.headers_mut().insert(name.clone(), value.clone());
    }
    Ok(req)
}

/// Sets a secret header value, marked sensitive so no debug print shows it.
pub(crate) fn set_secret(
    req: &mut http::Request<Bytes>,
    name: http::HeaderName,
    value: &str,
) -> Result<(), AdapterError> {
    let mut v = http::HeaderValue::from_str(value).map_err(|_| {
        AdapterError::InvalidRequest("provider key is not a valid header value".into())
    })?;
    v.set_sensitive(true);
    req.headers_mut().insert(name, v);
    Ok(())
}

/// Reads OpenAI's error body `{"error":{"message","type","code"}}`; anything else
/// becomes a generic message with a short excerpt.
pub(crate) fn openai_style_error(status: StatusCode, body: &[u8]) -> UpstreamError {
    #[derive(Deserialize)]
    struct Outer {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        #[serde(default)]
        message: Option<String>,
        #[serde(default, rename = "type")]
        kind: Option<String>,
        #[serde(default)]
        code: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Outer>(body) {
        Ok(o) => UpstreamError {
            status: status.as_u16(),
            message: o.error.message.unwrap_or_else(|| status.to_string()),
            kind: o.error.kind,
            code: o.error.code.and_then(|c| match c {
                serde_json::Value::String(s) => Some(s),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            }),
            retry_after: None,
        },
        Err(_) => UpstreamError::new(status.as_u16(), excerpt(status, body)),
    }
}

/// A short, printable summary of an unreadable error body.
pub(crate) fn excerpt(status: StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let text = text.trim();
    if text.is_empty() {
        format!("upstream answered {status}")
    } else {
        format!("upstream answered {status}: {text}")
    }
}
