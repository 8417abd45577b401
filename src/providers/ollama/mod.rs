//! Ollama's native API: `POST {base_url}/api/chat`, answered with one JSON object or
//! an NDJSON stream (one object per line, `done: true` last with `done_reason` and the
//! token counts). A local Ollama needs no key; when one is configured (a hosted or
//! proxied Ollama) it is sent as `Authorization: Bearer`.
//!
//! What the native API cannot express:
//! - `tool_choice`: Ollama always lets the model choose. `"none"` is honoured by not
//!   sending the tools at all; `"required"` and a named function are dropped (debug
//!   log): the model may still call a tool, it is just not forced to.
//! - `n` > 1 (one answer per request): 400 before any call.
//! - image links: Ollama takes inline base64 images only, so an http(s) image URL is a
//!   400 (dropping the image would change the question).
//! - `parallel_tool_calls`, `logprobs`, `user`, a tool's `strict`: dropped (debug log).
//!
//! Ollama gives tool calls no ids: the proxy makes `call_<random>` ones (an id the
//! server does send is kept). A `tool` result is matched to its call by `tool_name`,
//! looked up from the assistant turn that made the call. `message.thinking` (the
//! reasoning of thinking models) becomes reasoning, replayed to the same model only;
//! thinking asked for (or turned off) is `think: true` (`false`).
//!
//! Translation lives in [`request`], [`response`] and [`stream`], embeddings
//! (`/api/embed`) in [`embed`]; errors are read here.

mod embed;
mod request;
mod response;
mod stream;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use super::settings::typed;
use super::{
    get, join_url, json_post, openai_style_error, set_secret, Adapter, AdapterError, FailureClass,
    Kind, KindSettings, NoSettings, Provider, StreamTranslator, Target, UpstreamError,
};
use crate::canonical::{ChatRequest, ChatResponse, EmbedRequest, EmbedResponse};
use crate::http::sse::Framing;
use request::translate_request;
use stream::Translator;

pub(super) struct Ollama;

pub(super) static ADAPTER: Ollama = Ollama;

impl Adapter for Ollama {
    fn settings(&self, table: toml::Table) -> Result<Box<dyn KindSettings>, String> {
        Ok(Box::new(typed::<NoSettings>(Kind::Ollama, table)?))
    }

    /// A final assistant message is a prefill: the model continues it.
    fn build_continuation(
        &self,
        req: &ChatRequest,
        target: &Target,
    ) -> Option<Result<http::Request<Bytes>, AdapterError>> {
        Some(self.build_request(req, target))
    }

    fn build_request(
        &self,
        req: &ChatRequest,
        target: &Target,
    ) -> Result<http::Request<Bytes>, AdapterError> {
        let body = serde_json::to_vec(&translate_request(req, target)?)
            .map_err(|e| AdapterError::InvalidRequest(format!("request body: {e}")))?;
        post(target, "/api/chat", body)
    }

    fn build_embeddings(
        &self,
        req: &EmbedRequest,
        target: &Target,
    ) -> Result<http::Request<Bytes>, AdapterError> {
        post(target, "/api/embed", embed::request(req, &target.model)?)
    }

    fn parse_embeddings(
        &self,
        req: &EmbedRequest,
        target: &Target,
        body: &[u8],
    ) -> Result<EmbedResponse, AdapterError> {
        super::vectors::numbers_answer::<embed::Wire>(req, target, body)
    }

    fn parse_response(
        &self,
        _req: &ChatRequest,
        target: &Target,
        body: &[u8],
    ) -> Result<ChatResponse, AdapterError> {
        response::parse(target, body)
    }

    fn parse_error(&self, status: StatusCode, _headers: &HeaderMap, body: &[u8]) -> UpstreamError {
        #[derive(Deserialize)]
        struct ErrorBody {
            error: Value,
        }
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(ErrorBody {
                error: Value::String(message),
            }) if !message.trim().is_empty() => {
                let mut e = UpstreamError::new(status.as_u16(), message);
                if status == StatusCode::BAD_REQUEST && says_context_too_long(&e.message) {
                    e.class = FailureClass::ContextTooLong;
                }
                e
            }
            // A proxy in front of Ollama may answer in OpenAI's shape; else an excerpt.
            _ => openai_style_error(status, body),
        }
    }

    fn framing(&self) -> Framing {
        Framing::Ndjson
    }

    fn stream_translator(&self, _req: &ChatRequest, target: &Target) -> Box<dyn StreamTranslator> {
        Box::new(Translator::new(target))
    }

    fn probe_request(&self, provider: &Provider) -> Result<http::Request<Bytes>, AdapterError> {
        let mut req = get(join_url(&provider.base_url, "/api/tags")?, provider)?;
        authorize(&mut req, provider)?;
        Ok(req)
    }
}

fn post(target: &Target, path: &str, body: Vec<u8>) -> Result<http::Request<Bytes>, AdapterError> {
    let uri = join_url(&target.provider.base_url, path)?;
    let mut out = json_post(uri, &target.provider, body)?;
    authorize(&mut out, &target.provider)?;
    Ok(out)
}

/// Ollama's 400s for an input past the model's context (`num_ctx`): "the prompt is
/// longer than the context length currently available to the model; …" (chat, since
/// 0.30.10, when context shift is off), "the input length exceeds the context length"
/// and "input exceeds maximum context length …" (embed). Older versions truncate
/// silently instead.
fn says_context_too_long(message: &str) -> bool {
    message.contains("context length")
}

fn authorize(req: &mut http::Request<Bytes>, provider: &Provider) -> Result<(), AdapterError> {
    match &provider.api_key {
        Some(key) => set_secret(
            req,
            http::header::AUTHORIZATION,
            &format!("Bearer {}", key.expose()),
        ),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::{request, target, target_with};
    use crate::providers::Kind;

    const BASE: &str = "http://127.0.0.1:11434";

    pub(super) fn local(model: &str) -> Target {
        target_with(Kind::Ollama, BASE, model, |p| {
            p.api_key_env = None;
            p.api_key = None;
        })
    }

    #[test]
    fn request_goes_to_api_chat_without_auth_for_a_local_ollama() {
        let t = target_with(Kind::Ollama, "http://127.0.0.1:11434/", "llama3.2", |p| {
            p.api_key = None;
        });
        let req = request(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
        let out = ADAPTER.build_request(&req, &t).unwrap();
        assert_eq!(out.method(), http::Method::POST);
        assert_eq!(out.uri(), "http://127.0.0.1:11434/api/chat");
        assert_eq!(out.headers()["content-type"], "application/json");
        assert_eq!(out.headers()["x-extra"], "1");
        assert!(out.headers().get("authorization").is_none());
    }

    #[test]
    fn a_configured_key_is_sent_as_a_sensitive_bearer_token() {
        let t = target(Kind::Ollama, "https://ollama.example.com");
        let req = request(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
        let out = ADAPTER.build_request(&req, &t).unwrap();
        assert_eq!(out.headers()["authorization"], "Bearer sk-secret");
        assert!(out.headers()["authorization"].is_sensitive());
    }

    #[test]
    fn probe_lists_tags_with_auth_when_keyed() {
        let t = local("m");
        let probe = ADAPTER.probe_request(&t.provider).unwrap();
        assert_eq!(probe.method(), http::Method::GET);
        assert_eq!(probe.uri(), "http://127.0.0.1:11434/api/tags");
        assert!(probe.headers().get("authorization").is_none());
        let keyed = target(Kind::Ollama, BASE);
        let probe = ADAPTER.probe_request(&keyed.provider).unwrap();
        assert_eq!(probe.headers()["authorization"], "Bearer sk-secret");
        assert_eq!(probe.headers()["x-extra"], "1");
    }

    #[test]
    fn framing_is_ndjson() {
        assert_eq!(ADAPTER.framing(), Framing::Ndjson);
    }
    #[test]
    fn error_bodies_keep_their_status_and_message() {
        let e = ADAPTER.parse_error(
            StatusCode::NOT_FOUND,
            &HeaderMap::new(),
            include_bytes!("../../../fixtures/ollama/error_model_not_found.json"),
        );
        assert_eq!(e.status, 404, "a model that is not pulled fails over");
        assert_eq!(
            e.message,
            "model 'llama3.2' not found, try pulling it first"
        );
        let e = ADAPTER.parse_error(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            br#"{"error":"invalid options: num_predict"}"#,
        );
        assert_eq!(
            (e.status, e.message.as_str()),
            (400, "invalid options: num_predict")
        );
        let e = ADAPTER.parse_error(
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            b"<html>bad gateway</html>",
        );
        assert_eq!(e.status, 502);
        assert!(e.message.contains("bad gateway"), "{}", e.message);
        let e = ADAPTER.parse_error(
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
            br#"{"error":{"message":"bad key","type":"invalid_request_error"}}"#,
        );
        assert_eq!((e.status, e.message.as_str()), (401, "bad key"));
    }
}
