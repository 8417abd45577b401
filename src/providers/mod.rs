//! Provider adapters: each kind translates the canonical OpenAI request into its own
//! wire format and its answers (plain and streamed) back. Adapters are pure — no I/O,
//! no async — so each is unit-tested from fixtures alone.
//!
//! Adding a provider kind = one file here + one arm in [`adapter_for`]: nothing outside
//! this module matches on a kind.

mod anthropic;
mod azure;
#[cfg(test)]
mod context_errors;
#[cfg(test)]
mod continuation_tests;
mod error;
mod gemini;
pub(crate) mod native;
mod ollama;
mod openai;
mod openai_embed;
mod openai_prefill;
mod openai_responses;
mod settings;
mod target;
#[cfg(test)]
pub(crate) mod testing;
mod vectors;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

pub use error::*;
pub use settings::{KindSettings, NoSettings};
pub use target::{Concurrency, Provider, Secret, Target, Timeouts};

use crate::canonical::{ChatChunk, ChatRequest, ChatResponse, EmbedRequest, EmbedResponse};
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
    /// This kind's own keys of a `[providers.NAME]` table (everything but the keys
    /// every kind has), typed and validated when the config is loaded. The error is
    /// shown after the provider's key path.
    fn settings(&self, table: toml::Table) -> Result<Box<dyn KindSettings>, String>;

    /// The upstream request (absolute URI, auth and provider headers) for `req`.
    /// `Err(InvalidRequest)` means the request cannot be expressed: 400, no call.
    fn build_request(
        &self,
        req: &ChatRequest,
        target: &Target,
    ) -> Result<http::Request<Bytes>, AdapterError>;

    /// The upstream request that continues `req`'s final assistant message (a
    /// prefill, see [`ChatRequest::with_prefill`]) instead of answering after it;
    /// `None` when this target cannot continue an assistant turn.
    fn build_continuation(
        &self,
        _req: &ChatRequest,
        _target: &Target,
    ) -> Option<Result<http::Request<Bytes>, AdapterError>> {
        None
    }

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

    /// The upstream request for an embeddings request. `Err(InvalidRequest)` means
    /// this target cannot serve it (no embeddings API, or input it cannot take): the
    /// walk skips it, as it skips a chat request a kind cannot express.
    fn build_embeddings(
        &self,
        _req: &EmbedRequest,
        _target: &Target,
    ) -> Result<http::Request<Bytes>, AdapterError> {
        Err(AdapterError::InvalidRequest(
            "this provider kind has no embeddings API".into(),
        ))
    }

    /// An embeddings answer: one vector per input, in input order.
    fn parse_embeddings(
        &self,
        _req: &EmbedRequest,
        _target: &Target,
        _body: &[u8],
    ) -> Result<EmbedResponse, AdapterError> {
        Err(AdapterError::Protocol(
            "this provider kind has no embeddings API".into(),
        ))
    }

    /// The cheap request an active health probe sends.
    fn probe_request(&self, provider: &Provider) -> Result<http::Request<Bytes>, AdapterError>;

    /// Whether this target would send `req` in the client's own API (see
    /// [`crate::canonical::Native`]) rather than a translation.
    fn native(&self, _req: &ChatRequest, _target: &Target) -> bool {
        false
    }

    /// `[passthrough]`: the head of the request that forwards a client's `/v1{rest}`
    /// (`rest` keeps its query) as it is — method, URI, the provider's headers and
    /// key; the caller adds the client's headers and body. `None`: this kind's API is
    /// not laid out like OpenAI's `/v1`, so it cannot take passthrough.
    fn passthrough(
        &self,
        _provider: &Provider,
        _method: &http::Method,
        _rest: &str,
    ) -> Option<Result<http::Request<Bytes>, AdapterError>> {
        None
    }

    /// What to change in `base_url` when the probe's URL answered 404. Most kinds add
    /// their API's own versioned path, so a base URL ending in `/v1` is the usual slip.
    fn base_url_hint(&self, provider: &Provider) -> Option<&'static str> {
        provider
            .base_url
            .ends_with("/v1")
            .then_some("remove /v1 from base_url: the proxy adds this API's own path")
    }
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

/// The upstream request for `req` on `target`, or why this target cannot take it:
/// the kind cannot express it, or it has no translation and the kind no native form.
pub fn build_for(req: &ChatRequest, target: &Target) -> Result<http::Request<Bytes>, String> {
    let adapter = adapter_for(target.provider.kind);
    if let Some(why) = req
        .untranslatable
        .as_ref()
        .filter(|_| !adapter.native(req, target))
    {
        return Err(why.clone());
    }
    adapter.build_request(req, target).map_err(cannot)
}

/// The upstream request continuing `req`'s final assistant message on `target`, or
/// why this target cannot (see [`Adapter::build_continuation`]).
pub fn build_continuation_for(
    req: &ChatRequest,
    target: &Target,
) -> Result<http::Request<Bytes>, String> {
    adapter_for(target.provider.kind)
        .build_continuation(req, target)
        .unwrap_or_else(|| {
            Err(AdapterError::InvalidRequest(format!(
                "provider kind {} cannot continue an assistant turn",
                target.provider.kind.as_str()
            )))
        })
        .map_err(cannot)
}

/// The upstream embeddings request for `req` on `target`, or why this target cannot
/// take it (see [`Adapter::build_embeddings`]).
pub fn build_embeddings_for(
    req: &EmbedRequest,
    target: &Target,
) -> Result<http::Request<Bytes>, String> {
    adapter_for(target.provider.kind)
        .build_embeddings(req, target)
        .map_err(cannot)
}

/// Why a target cannot take a request, as the walk's skip reason says it.
fn cannot(e: AdapterError) -> String {
    match e {
        AdapterError::InvalidRequest(m) => m,
        other => other.to_string(),
    }
}

/// The model the upstream reported, else the target's.
pub(crate) fn reported_model(reported: Option<String>, target: &Target) -> String {
    reported
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| target.model.clone())
}

/// The path part of a base URL (`v1` of `https://api.openai.com/v1`), for hints.
pub(crate) fn url_path(base: &str) -> &str {
    base.split_once("://")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map_or("", |(_, path)| path)
}

/// Joins a provider's base URL and a path into an absolute URI.
pub(crate) fn join_url(base: &str, path: &str) -> Result<http::Uri, AdapterError> {
    // Once per attempt: built in one allocation and handed to the Uri as it is (no
    // formatting machinery, no copy).
    let base = base.trim_end_matches('/');
    let mut url = String::with_capacity(base.len() + path.len());
    url.push_str(base);
    url.push_str(path);
    let url = Bytes::from(url);
    http::Uri::from_maybe_shared(url.clone()).map_err(|e| {
        let url = String::from_utf8_lossy(&url);
        AdapterError::InvalidRequest(format!("bad upstream URL {url:?}: {e}"))
    })
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
    head(http::Method::GET, uri, provider)
}

/// A request without a body of its own, with the provider's extra headers.
pub(crate) fn head(
    method: http::Method,
    uri: http::Uri,
    provider: &Provider,
) -> Result<http::Request<Bytes>, AdapterError> {
    let mut req = http::Request::builder()
        .method(method)
        .uri(uri)
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
