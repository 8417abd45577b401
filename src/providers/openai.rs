//! OpenAI and any OpenAI-compatible endpoint: the request passes through with only
//! `model` and auth rewritten, so fields the proxy does not model still reach it.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::settings::typed;
use super::{
    get, head, join_url, json_post, openai_style_error, set_secret, Adapter, AdapterError, Flow,
    Kind, KindSettings, Provider, StreamTranslator, Target, UpstreamError,
};
use crate::canonical::{
    Api, ChatChunk, ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, Native, Origin,
    Reasoning, ReasoningDelta,
};
use serde::Deserialize;

use super::openai_embed;
use super::openai_prefill::{self, Prefill};
use super::openai_responses::{self, Mode};
use crate::http::sse::{self, Event};

/// Where an OpenAI-wire provider lives and how it authenticates: the only things
/// OpenAI itself and Azure OpenAI do differently.
pub(super) trait Endpoint: Send + Sync {
    /// The kind's own settings (see [`Adapter::settings`]).
    fn settings(&self, table: toml::Table) -> Result<Box<dyn KindSettings>, String>;
    /// The chat-completions URL for a target (its model may be part of the path).
    fn chat_url(&self, target: &Target) -> Result<http::Uri, AdapterError>;
    /// The embeddings URL for a target.
    fn embeddings_url(&self, target: &Target) -> Result<http::Uri, AdapterError>;
    fn probe_url(&self, provider: &Provider) -> Result<http::Uri, AdapterError>;
    /// Puts the provider's key on a request.
    fn authorize(&self, req: &mut http::Request<Bytes>, key: &str) -> Result<(), AdapterError>;
    /// See [`Adapter::base_url_hint`].
    fn base_url_hint(&self, provider: &Provider) -> Option<&'static str>;
    /// Whether the provider takes the Responses API natively (`responses = "native"`).
    fn responses_mode(&self, provider: &Provider) -> Mode;
    /// How the provider continues a final assistant message, if it declares a way.
    fn prefill(&self, _provider: &Provider) -> Option<Prefill> {
        None
    }
    /// Its Responses endpoint.
    fn responses_url(&self, target: &Target) -> Result<http::Uri, AdapterError>;
    /// Where a client's `/v1{rest}` goes under `[passthrough]`, if this endpoint
    /// lays its API out like OpenAI's.
    fn passthrough_url(
        &self,
        provider: &Provider,
        rest: &str,
    ) -> Option<Result<http::Uri, AdapterError>>;
}

/// `[providers.NAME]` keys of kind "openai".
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    responses: Mode,
    #[serde(default)]
    prefill: Option<Prefill>,
}

/// The adapter for every provider that speaks the OpenAI wire format.
pub(super) struct OpenAiWire<E>(pub(super) E);

/// OpenAI itself and any OpenAI-compatible server (vLLM, OpenRouter, Together, …).
pub(super) struct Plain;

pub(super) static ADAPTER: OpenAiWire<Plain> = OpenAiWire(Plain);

impl Endpoint for Plain {
    fn settings(&self, table: toml::Table) -> Result<Box<dyn KindSettings>, String> {
        Ok(Box::new(typed::<Settings>(Kind::Openai, table)?))
    }

    fn responses_mode(&self, provider: &Provider) -> Mode {
        provider
            .settings::<Settings>()
            .map_or(Mode::Translate, |s| s.responses)
    }

    fn responses_url(&self, target: &Target) -> Result<http::Uri, AdapterError> {
        join_url(&target.provider.base_url, "/responses")
    }

    fn prefill(&self, provider: &Provider) -> Option<Prefill> {
        provider.settings::<Settings>().and_then(|s| s.prefill)
    }

    fn chat_url(&self, target: &Target) -> Result<http::Uri, AdapterError> {
        join_url(&target.provider.base_url, "/chat/completions")
    }

    fn embeddings_url(&self, target: &Target) -> Result<http::Uri, AdapterError> {
        join_url(&target.provider.base_url, "/embeddings")
    }

    fn probe_url(&self, provider: &Provider) -> Result<http::Uri, AdapterError> {
        join_url(&provider.base_url, "/models")
    }

    /// `base_url` holds the version path (`…/v1`), as for `/chat/completions`.
    fn passthrough_url(
        &self,
        provider: &Provider,
        rest: &str,
    ) -> Option<Result<http::Uri, AdapterError>> {
        Some(join_url(&provider.base_url, rest))
    }

    fn authorize(&self, req: &mut http::Request<Bytes>, key: &str) -> Result<(), AdapterError> {
        set_secret(req, http::header::AUTHORIZATION, &format!("Bearer {key}"))
    }

    /// OpenAI-compatible servers keep their API under a version path that belongs
    /// in `base_url` (`https://api.openai.com/v1`, vLLM's `http://host:8000/v1`).
    fn base_url_hint(&self, provider: &Provider) -> Option<&'static str> {
        let path = super::url_path(&provider.base_url);
        (!path
            .split('/')
            .any(|seg| seg.starts_with('v') && seg[1..].starts_with(|c: char| c.is_ascii_digit())))
        .then_some("add /v1 to base_url: OpenAI-compatible servers serve /v1/chat/completions")
    }
}

impl<E: Endpoint> Adapter for OpenAiWire<E> {
    fn settings(&self, table: toml::Table) -> Result<Box<dyn KindSettings>, String> {
        self.0.settings(table)
    }

    fn native(&self, req: &ChatRequest, target: &Target) -> bool {
        responses_native(req).is_some() && self.0.responses_mode(&target.provider) == Mode::Native
    }

    fn build_request(
        &self,
        req: &ChatRequest,
        target: &Target,
    ) -> Result<http::Request<Bytes>, AdapterError> {
        if let Some(n) = responses_native(req).filter(|_| self.native(req, target)) {
            let body = super::native::with_model(&n.body, &target.model)?;
            return self.post(self.0.responses_url(target)?, target, body);
        }
        let body = with_model(req, &target.model)?;
        self.post(self.0.chat_url(target)?, target, body)
    }

    fn build_continuation(
        &self,
        req: &ChatRequest,
        target: &Target,
    ) -> Option<Result<http::Request<Bytes>, AdapterError>> {
        let how = self.0.prefill(&target.provider)?;
        Some(
            openai_prefill::body(&req.raw, &target.model, how)
                .and_then(|body| self.post(self.0.chat_url(target)?, target, body)),
        )
    }

    fn build_embeddings(
        &self,
        req: &EmbedRequest,
        target: &Target,
    ) -> Result<http::Request<Bytes>, AdapterError> {
        let body = openai_embed::body(req, &target.model)?;
        self.post(self.0.embeddings_url(target)?, target, body)
    }

    fn parse_embeddings(
        &self,
        req: &EmbedRequest,
        target: &Target,
        body: &[u8],
    ) -> Result<EmbedResponse, AdapterError> {
        openai_embed::parse(req, target, body)
    }

    fn parse_response(
        &self,
        req: &ChatRequest,
        target: &Target,
        body: &[u8],
    ) -> Result<ChatResponse, AdapterError> {
        if self.native(req, target) {
            return openai_responses::parse(body, &target.model);
        }
        let mut resp: ChatResponse =
            serde_json::from_slice(body).map_err(|e| AdapterError::Protocol(e.to_string()))?;
        if resp.model.is_empty() {
            resp.model.clone_from(&target.model);
        }
        for c in &mut resp.choices {
            let m = &mut c.message;
            if let Some(text) = reasoning_text(&m.extra) {
                m.reasoning = vec![Reasoning::new(text, Origin::of(target), Value::Null)];
            }
        }
        Ok(resp)
    }

    fn parse_error(&self, status: StatusCode, _headers: &HeaderMap, body: &[u8]) -> UpstreamError {
        openai_style_error(status, body)
    }

    fn stream_translator(&self, req: &ChatRequest, target: &Target) -> Box<dyn StreamTranslator> {
        if self.native(req, target) {
            let events = Box::new(openai_responses::Events::new(&target.model));
            return Box::new(super::native::Passthrough::new(events));
        }
        Box::new(PassThrough::new(target, req.native.is_none()))
    }

    fn base_url_hint(&self, provider: &Provider) -> Option<&'static str> {
        self.0.base_url_hint(provider)
    }

    fn passthrough(
        &self,
        provider: &Provider,
        method: &http::Method,
        rest: &str,
    ) -> Option<Result<http::Request<Bytes>, AdapterError>> {
        let uri = self.0.passthrough_url(provider, rest)?;
        Some(uri.and_then(|uri| {
            let mut req = head(method.clone(), uri, provider)?;
            if let Some(key) = &provider.api_key {
                self.0.authorize(&mut req, key.expose())?;
            }
            Ok(req)
        }))
    }

    fn probe_request(&self, provider: &Provider) -> Result<http::Request<Bytes>, AdapterError> {
        let mut req = get(self.0.probe_url(provider)?, provider)?;
        if let Some(key) = &provider.api_key {
            self.0.authorize(&mut req, key.expose())?;
        }
        Ok(req)
    }
}

impl<E: Endpoint> OpenAiWire<E> {
    /// A JSON POST to `uri` with the provider's headers and key.
    fn post(
        &self,
        uri: http::Uri,
        target: &Target,
        body: Vec<u8>,
    ) -> Result<http::Request<Bytes>, AdapterError> {
        let mut out = json_post(uri, &target.provider, body)?;
        if let Some(key) = &target.provider.api_key {
            self.0.authorize(&mut out, key.expose())?;
        }
        Ok(out)
    }
}

/// The client's own Responses request, when it sent one.
fn responses_native(req: &ChatRequest) -> Option<&Native> {
    req.native.as_deref().filter(|n| n.api == Api::Responses)
}

/// The client's body with `model` replaced by the target's. A stream always asks for
/// usage, so its tokens can be counted; the chat front door drops the usage chunk
/// for a client that did not ask for it.
fn with_model(req: &ChatRequest, model: &str) -> Result<Vec<u8>, AdapterError> {
    if !req.is_stream() || req.include_usage() {
        return super::native::with_model(&req.raw, model);
    }
    let mut options = req.stream_options.clone().unwrap_or_default();
    options.include_usage = Some(true);
    let options = serde_json::to_vec(&options)
        .map_err(|e| AdapterError::InvalidRequest(format!("stream_options: {e}")))?;
    super::native::with_fields(&req.raw, model, &[("stream_options", &options)])
}

/// The reasoning some OpenAI-compatible servers add to a message or delta
/// (`reasoning_content`: DeepSeek, vLLM; `reasoning`: OpenRouter, Ollama's /v1).
/// Chat clients get it as it came; other APIs get it as reasoning. It is never sent
/// back: the chat body goes upstream as the client wrote it.
fn reasoning_text(extra: &serde_json::Map<String, Value>) -> Option<&str> {
    ["reasoning_content", "reasoning"]
        .iter()
        .find_map(|k| extra.get(*k).and_then(Value::as_str))
        .filter(|t| !t.is_empty())
}

/// OpenAI chunks are already the client's format: validate, keep, forward.
struct PassThrough {
    model: String,
    /// The client speaks chat: each chunk carries its event's bytes, which the chat
    /// front door sends as they came unless it has to change the chunk.
    chat_client: bool,
    finished: bool,
    origin: Origin,
    /// Reasoning text streamed so far, whole once the answer itself begins.
    reasoning: String,
}

impl PassThrough {
    fn new(target: &Target, chat_client: bool) -> PassThrough {
        PassThrough {
            model: target.model.clone(),
            chat_client,
            finished: false,
            origin: Origin::of(target),
            reasoning: String::new(),
        }
    }

    /// Reasoning deltas as reasoning; the whole piece rides on the chunk that
    /// starts the answer (renderers take a delta's reasoning before its content).
    fn reasoning(&mut self, chunk: &mut ChatChunk) {
        for c in &mut chunk.choices {
            if let Some(t) = reasoning_text(&c.delta.extra) {
                self.reasoning.push_str(t);
                c.delta.reasoning = Some(ReasoningDelta::Text(t.to_string()));
            } else if !self.reasoning.is_empty() && ChatChunk::is_content_choice(c) {
                let text = std::mem::take(&mut self.reasoning);
                let piece = Reasoning::new(text, self.origin.clone(), Value::Null);
                c.delta.reasoning = Some(ReasoningDelta::Done(piece));
            }
        }
    }
}

impl StreamTranslator for PassThrough {
    fn on_event(&mut self, event: &Event, out: &mut Vec<ChatChunk>) -> Result<Flow, AdapterError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            return Ok(Flow::Done);
        }
        match serde_json::from_str::<ChatChunk>(data) {
            Ok(mut chunk) => {
                if chunk.model.is_empty() {
                    chunk.model.clone_from(&self.model);
                } else if self.chat_client && !data.contains('\n') {
                    let mut framed = BytesMut::with_capacity(data.len() + 8);
                    sse::encode_data(data.as_bytes(), &mut framed);
                    chunk.native = Some(framed.freeze());
                }
                self.reasoning(&mut chunk);
                self.finished |= chunk.choices.iter().any(|c| c.finish_reason.is_some());
                out.push(chunk);
                Ok(Flow::Continue)
            }
            Err(e) => {
                if let Ok(Value::Object(o)) = serde_json::from_str::<Value>(data) {
                    if o.contains_key("error") {
                        let mut err = openai_style_error(StatusCode::BAD_GATEWAY, data.as_bytes());
                        // A mid-stream error usually means the server side failed.
                        err.status = 500;
                        return Err(AdapterError::Upstream(err));
                    }
                }
                Err(AdapterError::Protocol(format!("stream chunk: {e}")))
            }
        }
    }

    fn finish(&mut self, _out: &mut Vec<ChatChunk>) -> Result<(), AdapterError> {
        // Some compatible servers omit [DONE]; a finish_reason is as good an ending.
        if self.finished {
            Ok(())
        } else {
            Err(AdapterError::Protocol(
                "stream ended before [DONE] or a finish_reason".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::{request, target};
    use crate::providers::Kind;

    #[test]
    fn request_passes_through_with_model_and_auth_rewritten() {
        let t = target(Kind::Openai, "http://127.0.0.1:1/v1");
        let req = request(
            r#"{"model":"default","messages":[{"role":"user","content":"hi"}],"logit_bias":{"1":2}}"#,
        );
        let out = ADAPTER.build_request(&req, &t).unwrap();
        assert_eq!(out.uri(), "http://127.0.0.1:1/v1/chat/completions");
        assert_eq!(out.headers()["authorization"], "Bearer sk-secret");
        assert!(out.headers()["authorization"].is_sensitive());
        assert_eq!(out.headers()["x-extra"], "1");
        let body: Value = serde_json::from_slice(out.body()).unwrap();
        assert_eq!(body["model"], "gpt-4o");
        assert_eq!(body["logit_bias"]["1"], 2, "unknown fields pass through");
    }

    #[test]
    fn a_forwarded_path_joins_base_url_with_its_query_method_and_key() {
        let t = target(Kind::Openai, "http://127.0.0.1:1/v1");
        let out = ADAPTER
            .passthrough(
                &t.provider,
                &http::Method::DELETE,
                "/files/file-1?after=x&limit=2",
            )
            .unwrap()
            .unwrap();
        assert_eq!(out.method(), http::Method::DELETE);
        assert_eq!(
            out.uri(),
            "http://127.0.0.1:1/v1/files/file-1?after=x&limit=2"
        );
        assert_eq!(out.headers()["authorization"], "Bearer sk-secret");
        assert!(out.headers()["authorization"].is_sensitive());
        assert_eq!(out.headers()["x-extra"], "1");
        assert!(out.body().is_empty());
        let azure = target(Kind::Azure, "https://r.openai.azure.com");
        let adapter = crate::providers::adapter_for(Kind::Azure);
        assert!(adapter
            .passthrough(&azure.provider, &http::Method::GET, "/models")
            .is_none());
    }

    #[test]
    fn embeddings_pass_through_to_base_url_embeddings() {
        let t = target(Kind::Openai, "http://127.0.0.1:1/v1");
        let req = crate::canonical::EmbedRequest::parse(Bytes::from_static(
            br#"{"model":"default","input":[[1,2],[3]],"encoding_format":"base64","dimensions":64,"user":"u"}"#,
        ))
        .unwrap();
        let out = ADAPTER.build_embeddings(&req, &t).unwrap();
        assert_eq!(out.uri(), "http://127.0.0.1:1/v1/embeddings");
        assert_eq!(out.headers()["authorization"], "Bearer sk-secret");
        assert_eq!(out.headers()["x-extra"], "1");
        let body: Value = serde_json::from_slice(out.body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"model": "gpt-4o", "input": [[1, 2], [3]],
                "encoding_format": "base64", "dimensions": 64, "user": "u"})
        );
    }

    #[test]
    fn a_stream_always_asks_for_usage_keeping_the_clients_other_options() {
        let t = target(Kind::Openai, "http://x/v1");
        let sent = |body: &str| -> Value {
            let out = ADAPTER.build_request(&request(body), &t).unwrap();
            serde_json::from_slice(out.body()).unwrap()
        };
        let msgs = r#""messages":[{"role":"user","content":"hi"}]"#;
        for (options, expected) in [
            ("", serde_json::json!({"include_usage": true})),
            (
                r#","stream_options":{"include_usage":false,"include_obfuscation":false}"#,
                serde_json::json!({"include_usage": true, "include_obfuscation": false}),
            ),
            (
                r#","stream_options":{"include_usage":true}"#,
                serde_json::json!({"include_usage": true}),
            ),
        ] {
            let v = sent(&format!(r#"{{"model":"m","stream":true,{msgs}{options}}}"#));
            assert_eq!(v["stream_options"], expected, "{options}");
            assert_eq!(v["model"], "gpt-4o");
            assert_eq!(v.as_object().unwrap().len(), 4, "{v}");
        }
        let whole = sent(&format!(r#"{{"model":"m",{msgs}}}"#));
        assert!(whole.get("stream_options").is_none(), "{whole}");
    }

    #[test]
    fn passthrough_copies_every_other_field_verbatim() {
        let t = target(Kind::Openai, "http://x/v1");
        let body = r#"{"messages":[{"role":"user","content":"h\u00e9 \"q\""}],"model":"default",
            "we\"ird":{"a":[1,2.50,{"b":null}]},"temperature":0.70,"n":1}"#;
        let out = ADAPTER.build_request(&request(body), &t).unwrap();
        let text = std::str::from_utf8(out.body()).unwrap();
        assert!(text.starts_with(r#"{"model":"gpt-4o","#), "{text}");
        assert!(
            text.contains(r#""temperature":0.70"#),
            "numbers keep their text: {text}"
        );
        assert!(
            text.contains(r#""we\"ird":{"a":[1,2.50,{"b":null}]}"#),
            "{text}"
        );
        let v: Value = serde_json::from_slice(out.body()).unwrap();
        assert_eq!(v["messages"][0]["content"], "h\u{e9} \"q\"");
        assert_eq!(v.as_object().unwrap().len(), 5, "one model, nothing lost");
    }

    #[test]
    fn stream_chunks_pass_and_errors_are_typed() {
        let t = target(Kind::Openai, "http://x");
        let mut tr = ADAPTER.stream_translator(
            &request(r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#),
            &t,
        );
        let mut out = Vec::new();
        let ev = |d: &str| Event {
            event: None,
            data: d.into(),
        };
        let flow = tr
            .on_event(&ev(r#"{"id":"c1","object":"chat.completion.chunk","created":5,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#), &mut out)
            .unwrap();
        assert_eq!(flow, Flow::Continue);
        assert_eq!(out[0].choices[0].delta.content.as_deref(), Some("Hi"));
        assert!(tr.finish(&mut out).is_err(), "no [DONE], no finish_reason");
        assert_eq!(tr.on_event(&ev("[DONE]"), &mut out).unwrap(), Flow::Done);
        assert!(matches!(
            tr.on_event(&ev(r#"{"error":{"message":"boom","type":"server_error"}}"#), &mut out),
            Err(AdapterError::Upstream(e)) if e.message == "boom"
        ));
        assert!(matches!(
            tr.on_event(&ev("not json"), &mut out),
            Err(AdapterError::Protocol(_))
        ));
    }

    #[test]
    fn chat_clients_get_each_event_as_it_came_unless_the_model_is_filled() {
        let t = target(Kind::Openai, "http://x");
        let chat = request(r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#);
        let mut other = chat.clone();
        other.native = Some(std::sync::Arc::new(Native {
            api: Api::Messages,
            body: Bytes::new(),
            headers: Vec::new(),
            query: None,
        }));
        let data = r#"{"id":"c", "created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hi"}}]}"#;
        let ev = |d: &str| Event {
            event: None,
            data: d.into(),
        };
        let first = |req: &ChatRequest, d: &str| {
            let mut out = Vec::new();
            let mut tr = ADAPTER.stream_translator(req, &t);
            tr.on_event(&ev(d), &mut out).unwrap();
            out.remove(0)
        };
        let c = first(&chat, data);
        assert_eq!(
            c.native.as_deref(),
            Some(format!("data: {data}\n\n").as_bytes())
        );
        assert!(first(&other, data).native.is_none(), "only chat clients");
        let unnamed = data.replace("gpt-4o", "");
        let c = first(&chat, &unnamed);
        assert!(
            c.native.is_none(),
            "an empty model is filled in: re-rendered"
        );
        assert_eq!(c.model, "gpt-4o");
    }

    #[test]
    fn reasoning_content_is_reasoning_too() {
        let t = target(Kind::Openai, "http://x");
        let req = request(r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#);
        let body = br#"{"id":"c","object":"chat.completion","created":1,"model":"deepseek-reasoner",
            "choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"4","reasoning_content":"2+2"}}]}"#;
        let r = ADAPTER.parse_response(&req, &t, body).unwrap();
        let m = &r.choices[0].message;
        assert_eq!(m.reasoning[0].text, "2+2");
        assert_eq!(m.reasoning[0].origin, Origin::of(&t));
        assert_eq!(
            m.extra["reasoning_content"], "2+2",
            "chat clients still get it"
        );

        let mut tr = ADAPTER.stream_translator(&req, &t);
        let mut out = Vec::new();
        for delta in [
            r#"{"reasoning_content":"2+"}"#,
            r#"{"reasoning_content":"2"}"#,
            r#"{"content":"4"}"#,
        ] {
            let ev = Event {
                event: None,
                data: format!(
                    r#"{{"id":"c","object":"chat.completion.chunk","created":1,"model":"d","choices":[{{"index":0,"delta":{delta},"finish_reason":null}}]}}"#
                ),
            };
            tr.on_event(&ev, &mut out).unwrap();
        }
        let r: Vec<_> = out
            .iter()
            .map(|c| c.choices[0].delta.reasoning.clone())
            .collect();
        assert_eq!(r[0], Some(ReasoningDelta::Text("2+".into())));
        assert!(matches!(&r[2], Some(ReasoningDelta::Done(p)) if p.text == "2+2"));
        assert_eq!(out[2].choices[0].delta.content.as_deref(), Some("4"));
    }

    #[test]
    fn error_bodies_are_read_or_excerpted() {
        let e = ADAPTER.parse_error(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            br#"{"error":{"message":"bad temp","type":"invalid_request_error","code":"invalid_value"}}"#,
        );
        assert_eq!(
            (e.status, e.message.as_str(), e.code.as_deref()),
            (400, "bad temp", Some("invalid_value"))
        );
        let e = ADAPTER.parse_error(
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            b"<html>nginx</html>",
        );
        assert!(e.message.contains("nginx"));
    }
}
