//! OpenAI's Responses API spoken natively by an OpenAI-kind provider set to
//! `responses = "native"`: the client's Responses request goes to `/responses` as it
//! is (the conversation already expanded, `store: false`: the proxy keeps the state),
//! and the answer and its events are read into canonical form — for failover,
//! caching and metrics — while riding along unchanged for the front door.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{AdapterError, Flow, StreamTranslator, UpstreamError};
use crate::canonical::{
    unix_now, ChatChunk, ChatResponse, Choice, Delta, FunctionCall, ResponseMessage, ToolCall,
    ToolCallDelta, Usage,
};
use crate::http::sse::Event;

/// `responses = "translate" | "native"` of OpenAI-kind providers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Mode {
    /// Through the chat-completions translation, like every other kind.
    #[default]
    Translate,
    /// The provider's own `/responses` endpoint.
    Native,
}

fn usage(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let mut usage = Usage::new(n("input_tokens"), n("output_tokens"));
    let cached = u["input_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap_or(0);
    let reasoning = u["output_tokens_details"]["reasoning_tokens"]
        .as_u64()
        .unwrap_or(0);
    usage.extra.insert(
        "prompt_tokens_details".into(),
        serde_json::json!({"cached_tokens": cached}),
    );
    usage.extra.insert(
        "completion_tokens_details".into(),
        serde_json::json!({"reasoning_tokens": reasoning}),
    );
    usage
}

/// A chat finish reason from a Response's status and output.
fn finish(response: &Value, has_calls: bool) -> &'static str {
    match (
        response["status"].as_str(),
        response["incomplete_details"]["reason"].as_str(),
    ) {
        (Some("incomplete"), Some("content_filter")) => "content_filter",
        (Some("incomplete"), _) => "length",
        _ if has_calls => "tool_calls",
        _ => "stop",
    }
}

fn upstream_error(error: &Value, status: u16) -> UpstreamError {
    let message = error["message"]
        .as_str()
        .unwrap_or("the upstream reported an error");
    let mut e = UpstreamError::new(status, message);
    e.code = error["code"].as_str().map(str::to_string);
    if e.code.as_deref() == Some("rate_limit_exceeded") {
        e.status = 429;
        e.class = super::FailureClass::RateLimit;
    }
    e
}

/// A complete Response → the canonical answer, keeping the body for the front door.
pub(super) fn parse(body: &[u8], fallback_model: &str) -> Result<ChatResponse, AdapterError> {
    let r: Value =
        serde_json::from_slice(body).map_err(|e| AdapterError::Protocol(e.to_string()))?;
    if r["object"] != "response" {
        return Err(AdapterError::Protocol("not a Response object".into()));
    }
    if r["status"] == "failed" {
        return Err(AdapterError::Upstream(upstream_error(&r["error"], 500)));
    }
    let mut text = String::new();
    let mut calls = Vec::new();
    for item in r["output"].as_array().into_iter().flatten() {
        match item["type"].as_str() {
            Some("message") => {
                for part in item["content"].as_array().into_iter().flatten() {
                    if let Some(t) = part["text"].as_str().or_else(|| part["refusal"].as_str()) {
                        text.push_str(t);
                    }
                }
            }
            Some("function_call") => calls.push(ToolCall {
                id: item["call_id"].as_str().unwrap_or_default().to_string(),
                kind: "function".into(),
                function: FunctionCall {
                    name: item["name"].as_str().unwrap_or_default().to_string(),
                    arguments: item["arguments"].as_str().unwrap_or("{}").to_string(),
                },
            }),
            _ => {}
        }
    }
    let finish = finish(&r, !calls.is_empty());
    Ok(ChatResponse {
        id: r["id"].as_str().unwrap_or_default().to_string(),
        object: "chat.completion".into(),
        created: r["created_at"].as_u64().unwrap_or_else(unix_now),
        model: r["model"]
            .as_str()
            .filter(|m| !m.is_empty())
            .unwrap_or(fallback_model)
            .to_string(),
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage::assistant(
                (!text.is_empty()).then_some(text),
                (!calls.is_empty()).then_some(calls),
            ),
            finish_reason: Some(finish.into()),
            logprobs: None,
            extra: Map::new(),
        }],
        usage: r.get("usage").filter(|u| u.is_object()).map(usage),
        extra: Map::new(),
        native: Some(Bytes::copy_from_slice(body)),
    })
}

/// Responses events → canonical chunks (text and argument deltas, the finish and
/// usage), so the walk can commit, fail over and book the stream.
pub(super) struct Events {
    id: String,
    model: String,
    /// Tool-call index by the upstream's output_index.
    calls: Vec<u64>,
    done: bool,
}

impl Events {
    pub(super) fn new(model: &str) -> Events {
        Events {
            id: String::new(),
            model: model.to_string(),
            calls: Vec::new(),
            done: false,
        }
    }

    fn chunk(&self) -> ChatChunk {
        ChatChunk::new(&self.id, unix_now(), &self.model)
    }

    fn call_index(&self, output_index: u64) -> Option<u32> {
        self.calls
            .iter()
            .position(|o| *o == output_index)
            .and_then(|i| u32::try_from(i).ok())
    }
}

impl StreamTranslator for Events {
    fn on_event(&mut self, event: &Event, out: &mut Vec<ChatChunk>) -> Result<Flow, AdapterError> {
        if self.done {
            return Ok(Flow::Done);
        }
        let e: Value = serde_json::from_str(&event.data)
            .map_err(|err| AdapterError::Protocol(format!("stream event: {err}")))?;
        match e["type"].as_str().unwrap_or_default() {
            "response.created" => {
                self.id = e["response"]["id"].as_str().unwrap_or_default().to_string();
                if let Some(m) = e["response"]["model"].as_str().filter(|m| !m.is_empty()) {
                    self.model = m.to_string();
                }
                out.push(self.chunk().with_delta(Delta::role(), None));
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                let delta = e["delta"].as_str().unwrap_or_default();
                out.push(self.chunk().with_delta(Delta::text(delta), None));
            }
            "response.output_item.added" if e["item"]["type"] == "function_call" => {
                let index = u32::try_from(self.calls.len()).unwrap_or(u32::MAX);
                self.calls
                    .push(e["output_index"].as_u64().unwrap_or_default());
                let item = &e["item"];
                let start = ToolCallDelta::start(
                    index,
                    item["call_id"].as_str().unwrap_or_default(),
                    item["name"].as_str().unwrap_or_default(),
                );
                out.push(self.chunk().with_delta(Delta::tool_call(start), None));
            }
            "response.function_call_arguments.delta" => {
                let at = e["output_index"].as_u64().unwrap_or_default();
                let index = self.call_index(at).ok_or_else(|| {
                    AdapterError::Protocol("arguments for an unknown call".into())
                })?;
                let args = ToolCallDelta::arguments(index, e["delta"].as_str().unwrap_or_default());
                out.push(self.chunk().with_delta(Delta::tool_call(args), None));
            }
            "response.completed" | "response.incomplete" => {
                let r = &e["response"];
                let finish = finish(r, !self.calls.is_empty());
                out.push(self.chunk().with_delta(Delta::default(), Some(finish)));
                if let Some(u) = r.get("usage").filter(|u| u.is_object()) {
                    let mut c = self.chunk();
                    c.usage = Some(usage(u));
                    out.push(c);
                }
                self.done = true;
                return Ok(Flow::Done);
            }
            "response.failed" => {
                return Err(AdapterError::Upstream(upstream_error(
                    &e["response"]["error"],
                    500,
                )));
            }
            "error" => return Err(AdapterError::Upstream(upstream_error(&e, 500))),
            _ => {}
        }
        Ok(Flow::Continue)
    }

    fn finish(&mut self, _out: &mut Vec<ChatChunk>) -> Result<(), AdapterError> {
        if self.done {
            Ok(())
        } else {
            Err(AdapterError::Protocol(
                "stream ended before response.completed".into(),
            ))
        }
    }
}
