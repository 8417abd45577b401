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

use crate::canonical::{ChatChunk, ChatRequest, ChatResponse};
use crate::config::{Provider, Target};
use crate::http::sse::{Event, Framing};

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

/// Key-shaped prefixes of the providers' credentials (OpenAI, Anthropic, Google,
/// Groq, xAI): what an upstream's error message may echo back.
const KEY_PREFIXES: &[&str] = &["sk-", "AIza", "gsk_", "xai-"];

/// Removes secrets from text an upstream wrote (error messages go to clients and
/// logs): the provider's own key wherever it appears, and any token that looks like a
/// key, even a partly masked one such as OpenAI's `sk-proj-AbCd****wXyZ`.
pub fn redact(text: &str, key: Option<&str>) -> String {
    let mut out = match key.filter(|k| k.len() >= 8) {
        Some(k) => text.replace(k, "[redacted]"),
        None => text.to_string(),
    };
    let is_token = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*');
    let mut i = 0;
    while i < out.len() {
        let rest = &out[i..];
        let starts_token = i == 0 || !out[..i].ends_with(is_token);
        match KEY_PREFIXES.iter().find(|p| rest.starts_with(*p)) {
            Some(prefix) if starts_token => {
                let len = rest.find(|c: char| !is_token(c)).unwrap_or(rest.len());
                if len >= prefix.len() + 6 {
                    out.replace_range(i..i + len, "[redacted]");
                    i += "[redacted]".len();
                } else {
                    i += len.max(1);
                }
            }
            _ => i += rest.chars().next().map_or(1, char::len_utf8),
        }
    }
    out
}

#[cfg(test)]
mod redact_tests {
    use super::redact;

    #[test]
    fn keys_and_key_shaped_tokens_are_removed() {
        let cases = [
            (
                "Incorrect API key provided: sk-proj-AbCd****wXyZ. See docs.",
                None,
                "Incorrect API key provided: [redacted]. See docs.",
            ),
            (
                "bad key my-secret-value-123 here",
                Some("my-secret-value-123"),
                "bad key [redacted] here",
            ),
            (
                "API key not valid: AIzaSyD-abcdefghijklmnop",
                None,
                "API key not valid: [redacted]",
            ),
            (
                "task-manager and risk-free stay",
                None,
                "task-manager and risk-free stay",
            ),
            ("sk-1 is short", None, "sk-1 is short"),
            (
                "é unicode sk-ant-api03-xyzxyzxyz ok",
                None,
                "é unicode [redacted] ok",
            ),
        ];
        for (text, key, want) in cases {
            assert_eq!(redact(text, key), want, "{text}");
        }
    }
}
