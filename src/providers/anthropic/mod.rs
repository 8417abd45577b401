//! Anthropic Messages API (`POST {base_url}/v1/messages`) behind the OpenAI Chat
//! Completions surface: [`request`] translates the client's request, [`response`] a
//! complete answer, [`error`] error bodies, [`stream`] the SSE event stream.
//!
//! Choices this adapter makes where the contract leaves room:
//! - system and developer messages are hoisted, in order, into the top-level `system`
//!   string, joined with a blank line (`"\n\n"`);
//! - a conversation that does not start with a user turn (it starts with an assistant
//!   message, or holds only system messages) gets a placeholder user turn `"."` in
//!   front, as Anthropic requires one (what LiteLLM does too);
//! - `temperature` and `top_p` together: only `temperature` is sent (Claude 4.5+
//!   models reject both); with an `anthropic-version` of 2026-10-21 or later, which
//!   rejects sampling parameters altogether, neither is sent. Both drops are logged.
//! - JSON mode (`response_format` json_object / json_schema) forces the `json_output`
//!   tool when the request has no tools of its own; with the client's tools present the
//!   choice becomes `any` (call one of your tools, or answer through `json_output`),
//!   unless the client named a tool. A forced tool call comes without text around it;
//!   an answer that calls no tool (a refusal) passes its text on as the content.

mod count_tokens;
mod error;
mod request;
mod response;
mod stream;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::Deserialize;

use super::settings::{check_version, typed};
use super::{
    get, join_url, json_post, set_secret, Adapter, AdapterError, Kind, KindSettings, Provider,
    StreamTranslator, Target, UpstreamError,
};
use crate::canonical::{Api, ChatRequest, ChatResponse, Native, Origin};

pub(super) struct Anthropic;

pub(super) static ADAPTER: Anthropic = Anthropic;

/// The `anthropic-version` sent when the provider sets none.
const DEFAULT_VERSION: &str = "2023-06-01";
const API_KEY: HeaderName = HeaderName::from_static("x-api-key");
const VERSION: HeaderName = HeaderName::from_static("anthropic-version");

/// `[providers.NAME]` keys of kind "anthropic".
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Settings {
    /// The `anthropic-version` header.
    pub(super) version: Option<String>,
    /// `max_tokens` when the client sent none (Anthropic requires it).
    pub(super) max_tokens: Option<u32>,
}

static DEFAULTS: Settings = Settings {
    version: None,
    max_tokens: None,
};

pub(super) fn settings(provider: &Provider) -> &Settings {
    provider.settings::<Settings>().unwrap_or(&DEFAULTS)
}

fn version(provider: &Provider) -> &str {
    settings(provider)
        .version
        .as_deref()
        .unwrap_or(DEFAULT_VERSION)
}

/// `anthropic-version` (unless the provider's own headers set it) and `x-api-key`.
fn authorize(req: &mut http::Request<Bytes>, provider: &Provider) -> Result<(), AdapterError> {
    if !req.headers().contains_key(&VERSION) {
        let v = HeaderValue::from_str(version(provider)).map_err(|_| {
            AdapterError::InvalidRequest("anthropic version is not a valid header value".into())
        })?;
        req.headers_mut().insert(VERSION, v);
    }
    if let Some(key) = &provider.api_key {
        set_secret(req, API_KEY, key.expose())?;
    }
    Ok(())
}

/// The client's own Messages request (or token count), when it sent one.
fn native(req: &ChatRequest) -> Option<&Native> {
    req.native
        .as_deref()
        .filter(|n| matches!(n.api, Api::Messages | Api::CountTokens))
}

impl Adapter for Anthropic {
    fn settings(&self, table: toml::Table) -> Result<Box<dyn KindSettings>, String> {
        let s: Settings = typed(Kind::Anthropic, table)?;
        if let Some(v) = &s.version {
            check_version("version", v, DEFAULT_VERSION)?;
        }
        if s.max_tokens == Some(0) {
            return Err("max_tokens: must be at least 1".into());
        }
        Ok(Box::new(s))
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
        if let Some(n) = native(req) {
            // The client speaks Messages too: its body, only the model swapped, and
            // its version and beta headers.
            let body = super::native::with_model(&n.body, &target.model)?;
            let path = match n.api {
                Api::CountTokens => count_tokens::PATH,
                _ => "/v1/messages",
            };
            let path = match &n.query {
                Some(q) => format!("{path}?{q}"),
                None => path.to_string(),
            };
            let uri = join_url(&target.provider.base_url, &path)?;
            let mut out = json_post(uri, &target.provider, body)?;
            for (name, value) in &n.headers {
                out.headers_mut().insert(name.clone(), value.clone());
            }
            authorize(&mut out, &target.provider)?;
            return Ok(out);
        }
        let body = request::build(req, target)?;
        let body = serde_json::to_vec(&body)
            .map_err(|e| AdapterError::InvalidRequest(format!("request body: {e}")))?;
        let uri = join_url(&target.provider.base_url, "/v1/messages")?;
        let mut out = json_post(uri, &target.provider, body)?;
        authorize(&mut out, &target.provider)?;
        Ok(out)
    }

    fn parse_response(
        &self,
        req: &ChatRequest,
        target: &Target,
        body: &[u8],
    ) -> Result<ChatResponse, AdapterError> {
        if native(req).is_some_and(|n| n.api == Api::CountTokens) {
            return count_tokens::parse(body, &target.model);
        }
        let origin = Origin::of(target);
        let mut answer = response::parse(body, request::json_mode(req), &target.model, &origin)?;
        if native(req).is_some() {
            answer.native = Some(Bytes::copy_from_slice(body));
        }
        Ok(answer)
    }

    fn native(&self, req: &ChatRequest, _target: &Target) -> bool {
        native(req).is_some()
    }

    fn parse_error(&self, status: StatusCode, _headers: &HeaderMap, body: &[u8]) -> UpstreamError {
        error::parse_error(status, body)
    }

    fn stream_translator(&self, req: &ChatRequest, target: &Target) -> Box<dyn StreamTranslator> {
        let own = Box::new(stream::Translator::new(
            request::json_mode(req),
            &target.model,
            Origin::of(target),
        ));
        if native(req).is_some() {
            return Box::new(super::native::Passthrough::new(own));
        }
        own
    }

    fn probe_request(&self, provider: &Provider) -> Result<http::Request<Bytes>, AdapterError> {
        let mut req = get(join_url(&provider.base_url, "/v1/models")?, provider)?;
        authorize(&mut req, provider)?;
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::providers::testing::{request, target_with};
    use crate::providers::Kind;

    #[test]
    fn anthropic_has_no_embeddings_so_the_walk_skips_it() {
        let req = crate::canonical::EmbedRequest::parse(bytes::Bytes::from_static(
            br#"{"model":"m","input":"hi"}"#,
        ))
        .unwrap();
        let why = crate::providers::build_embeddings_for(&req, &anthropic(|_| {})).unwrap_err();
        assert_eq!(why, "this provider kind has no embeddings API");
    }

    fn anthropic(adjust: impl FnOnce(&mut Provider)) -> Target {
        target_with(
            Kind::Anthropic,
            "https://api.anthropic.com/",
            "claude-sonnet-4-5",
            adjust,
        )
    }

    #[test]
    fn request_goes_to_v1_messages_with_key_version_and_extra_headers() {
        let t = anthropic(|_| {});
        let req = request(r#"{"model":"default","messages":[{"role":"user","content":"hi"}]}"#);
        let out = ADAPTER.build_request(&req, &t).unwrap();
        assert_eq!(out.method(), http::Method::POST);
        assert_eq!(out.uri(), "https://api.anthropic.com/v1/messages");
        let h = out.headers();
        assert_eq!(h["x-api-key"], "sk-secret");
        assert!(h["x-api-key"].is_sensitive(), "the key never prints");
        assert!(h.get("authorization").is_none());
        assert_eq!(h["anthropic-version"], "2023-06-01");
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["x-extra"], "1");
        let body: Value = serde_json::from_slice(out.body()).unwrap();
        assert_eq!(body["model"], "claude-sonnet-4-5");
        assert_eq!(body["max_tokens"], 4096);
    }

    #[test]
    fn configured_version_is_sent_and_provider_headers_win() {
        let t = anthropic(|p| {
            p.settings =
                crate::providers::testing::settings(Kind::Anthropic, "version = \"2024-01-01\"")
        });
        let req = request(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
        let out = ADAPTER.build_request(&req, &t).unwrap();
        assert_eq!(out.headers()["anthropic-version"], "2024-01-01");

        let t = anthropic(|p| {
            p.headers
                .push((VERSION, HeaderValue::from_static("2099-01-01")));
        });
        let out = ADAPTER.build_request(&req, &t).unwrap();
        assert_eq!(out.headers()["anthropic-version"], "2099-01-01");
    }

    #[test]
    fn probe_lists_models_with_the_same_auth() {
        let t = anthropic(|_| {});
        let probe = ADAPTER.probe_request(&t.provider).unwrap();
        assert_eq!(probe.method(), http::Method::GET);
        assert_eq!(probe.uri(), "https://api.anthropic.com/v1/models");
        assert_eq!(probe.headers()["x-api-key"], "sk-secret");
        assert_eq!(probe.headers()["anthropic-version"], "2023-06-01");
        assert_eq!(probe.headers()["x-extra"], "1");
    }

    #[test]
    fn a_token_count_goes_to_count_tokens_with_the_clients_headers_and_query() {
        let t = anthropic(|_| {});
        let mut req = request(r#"{"model":"m","messages":[{"role":"user","content":""}]}"#);
        req.native = Some(std::sync::Arc::new(Native {
            api: Api::CountTokens,
            body: Bytes::from_static(
                br#"{"model":"default","messages":[{"role":"user","content":"Hi"}]}"#,
            ),
            headers: vec![(
                HeaderName::from_static("anthropic-beta"),
                HeaderValue::from_static("token-counting-2024-11-01"),
            )],
            query: Some("beta=true".into()),
        }));
        assert!(ADAPTER.native(&req, &t));
        let out = ADAPTER.build_request(&req, &t).unwrap();
        assert_eq!(
            out.uri(),
            "https://api.anthropic.com/v1/messages/count_tokens?beta=true"
        );
        assert_eq!(out.headers()["anthropic-beta"], "token-counting-2024-11-01");
        assert_eq!(out.headers()["x-api-key"], "sk-secret");
        assert_eq!(out.headers()["anthropic-version"], "2023-06-01");
        let body: Value = serde_json::from_slice(out.body()).unwrap();
        assert_eq!(body["model"], "claude-sonnet-4-5");
        assert_eq!(body["messages"][0]["content"], "Hi");
        let answer = ADAPTER
            .parse_response(&req, &t, br#"{"input_tokens":14}"#)
            .unwrap();
        assert_eq!(
            answer.native.as_deref(),
            Some(&br#"{"input_tokens":14}"#[..])
        );
    }

    #[test]
    fn invalid_requests_never_build() {
        let t = anthropic(|_| {});
        let req = request(r#"{"model":"m","n":2,"messages":[{"role":"user","content":"hi"}]}"#);
        assert!(matches!(
            ADAPTER.build_request(&req, &t),
            Err(AdapterError::InvalidRequest(m)) if m.contains("'n'")
        ));
    }
}
