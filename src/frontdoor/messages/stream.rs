//! Canonical chunks → Anthropic's event sequence: `message_start`, per content block
//! `content_block_start`, `content_block_delta` (`thinking_delta` and a closing
//! `signature_delta`, `text_delta`, `input_json_delta`)
//! and `content_block_stop`, then `message_delta` with the stop reason and usage and
//! `message_stop`; a failure after content ends it with an `error` event.

use bytes::BytesMut;
use serde_json::{json, Value};

use super::answer::{message_id, stop_reason, usage};
use super::error;
use crate::canonical::{ChatChunk, ReasoningDelta, Usage};
use crate::error::ProxyError;
use crate::frontdoor::StreamRender;
use crate::http::sse;

enum Open {
    /// A thinking block, with the text it has streamed.
    Thinking(String),
    Text,
    /// A tool call, by the chunks' tool-call index.
    Tool(u32),
}

pub(super) struct MessagesStream {
    /// The upstream speaks Messages itself: its events go out as they came.
    native: Option<bool>,
    started: bool,
    /// Index of the next content block.
    next_block: u32,
    open: Option<Open>,
    finish: Option<String>,
    usage: Option<Usage>,
    model: String,
}

impl MessagesStream {
    pub(super) fn new(model: String) -> MessagesStream {
        MessagesStream {
            native: None,
            started: false,
            next_block: 0,
            open: None,
            finish: None,
            usage: None,
            model,
        }
    }

    fn emit(kind: &str, event: Value, out: &mut BytesMut) {
        // Serialising a Value cannot fail.
        let json = serde_json::to_vec(&event).unwrap_or_default();
        sse::encode_event(kind, &json, out);
    }

    fn start(&mut self, id: &str, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        let message = json!({"id": message_id(id), "type": "message", "role": "assistant",
            "model": self.model, "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0}});
        Self::emit(
            "message_start",
            json!({"type": "message_start", "message": message}),
            out,
        );
    }

    fn close(&mut self, out: &mut BytesMut) {
        if self.open.take().is_some() {
            let index = self.next_block - 1;
            Self::emit(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
                out,
            );
        }
    }

    fn open(&mut self, open: Open, block: Value, out: &mut BytesMut) {
        self.close(out);
        let index = self.next_block;
        self.next_block += 1;
        self.open = Some(open);
        Self::emit(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": block}),
            out,
        );
    }

    fn delta(&self, delta: Value, out: &mut BytesMut) {
        let index = self.next_block.saturating_sub(1);
        Self::emit(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index, "delta": delta}),
            out,
        );
    }
}

impl MessagesStream {
    fn thinking_delta(&mut self, text: &str, out: &mut BytesMut) {
        if text.is_empty() {
            return;
        }
        if !matches!(self.open, Some(Open::Thinking(_))) {
            let block = json!({"type": "thinking", "thinking": "", "signature": ""});
            self.open(Open::Thinking(String::new()), block, out);
        }
        if let Some(Open::Thinking(told)) = &mut self.open {
            told.push_str(text);
        }
        self.delta(json!({"type": "thinking_delta", "thinking": text}), out);
    }

    fn reasoning(&mut self, delta: ReasoningDelta, out: &mut BytesMut) {
        match delta {
            ReasoningDelta::Text(t) => self.thinking_delta(&t, out),
            ReasoningDelta::Done(piece) => {
                // Its text came as deltas unless the piece came whole (a replay).
                let told = match &self.open {
                    Some(Open::Thinking(t)) => t.len(),
                    _ => 0,
                };
                if let Some(rest) = piece.text.get(told..) {
                    self.thinking_delta(rest, out);
                }
                if !matches!(self.open, Some(Open::Thinking(_))) {
                    let block = json!({"type": "thinking", "thinking": "", "signature": ""});
                    self.open(Open::Thinking(String::new()), block, out);
                }
                self.delta(
                    json!({"type": "signature_delta", "signature": piece.seal()}),
                    out,
                );
                self.close(out);
            }
        }
    }
}

impl StreamRender for MessagesStream {
    fn chunk(&mut self, chunk: ChatChunk, out: &mut BytesMut) {
        // The first chunk tells: a native upstream's events ride on its chunks; a
        // translated one's never do.
        if *self.native.get_or_insert(chunk.native.is_some()) {
            if let Some(raw) = chunk.native {
                out.extend_from_slice(&raw);
            }
            return;
        }
        if !chunk.model.is_empty() {
            self.model.clone_from(&chunk.model);
        }
        self.start(&chunk.id, out);
        if let Some(u) = chunk.usage {
            self.usage = Some(u);
        }
        let Some(choice) = chunk.choices.into_iter().find(|c| c.index == 0) else {
            return;
        };
        let d = choice.delta;
        if let Some(r) = d.reasoning {
            self.reasoning(r, out);
        }
        for text in [d.content, d.refusal].into_iter().flatten() {
            if text.is_empty() {
                continue;
            }
            if !matches!(self.open, Some(Open::Text)) {
                self.open(Open::Text, json!({"type": "text", "text": ""}), out);
            }
            self.delta(json!({"type": "text_delta", "text": text}), out);
        }
        for tc in d.tool_calls.into_iter().flatten() {
            let f = tc.function.unwrap_or_default();
            if !matches!(self.open, Some(Open::Tool(i)) if i == tc.index) {
                let id = tc.id.unwrap_or_else(crate::canonical::new_call_id);
                let name = f.name.clone().unwrap_or_default();
                self.open(
                    Open::Tool(tc.index),
                    json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                    out,
                );
            }
            if let Some(args) = f.arguments.filter(|a| !a.is_empty()) {
                self.delta(
                    json!({"type": "input_json_delta", "partial_json": args}),
                    out,
                );
            }
        }
        if let Some(f) = choice.finish_reason {
            self.finish = Some(f);
        }
    }

    fn done(&mut self, out: &mut BytesMut) {
        if self.native == Some(true) {
            return; // message_stop went out with the upstream's events
        }
        self.start("", out);
        self.close(out);
        let mut u = usage(self.usage.as_ref());
        if let Some(o) = u.as_object_mut() {
            // message_delta's usage is cumulative and needs output_tokens.
            o.entry("output_tokens").or_insert(0.into());
        }
        Self::emit(
            "message_delta",
            json!({"type": "message_delta",
                   "delta": {"stop_reason": stop_reason(self.finish.as_deref()), "stop_sequence": null},
                   "usage": u}),
            out,
        );
        Self::emit("message_stop", json!({"type": "message_stop"}), out);
    }

    fn error(&mut self, err: &ProxyError, out: &mut BytesMut) {
        Self::emit("error", error::body(err), out);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::canonical::{Delta, Origin, Reasoning};

    #[test]
    fn reasoning_is_a_thinking_block_closed_by_its_sealed_signature() {
        let origin = Origin {
            provider: "g".into(),
            kind: "gemini".into(),
            model: "m".into(),
        };
        let piece = Reasoning::new("hmm", origin, json!({"thoughts": []}));
        let mut s = MessagesStream::new("m".into());
        let mut out = BytesMut::new();
        for d in [
            Delta::reasoning(ReasoningDelta::Text("hmm".into())),
            Delta::reasoning(ReasoningDelta::Done(piece.clone())),
            Delta::text("ok"),
        ] {
            s.chunk(ChatChunk::new("c", 1, "m").with_delta(d, None), &mut out);
        }
        s.done(&mut out);
        let events: Vec<Value> = String::from_utf8_lossy(&out)
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        let shape: Vec<String> = events
            .iter()
            .map(|e| {
                let t = e["type"].as_str().unwrap();
                match e["delta"]["type"].as_str() {
                    Some(d) => format!("{t} {d}"),
                    None => t.to_string(),
                }
            })
            .collect();
        assert_eq!(
            shape[1..7],
            [
                "content_block_start",
                "content_block_delta thinking_delta",
                "content_block_delta signature_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta text_delta",
            ]
        );
        assert_eq!(
            events[1]["content_block"],
            json!({"type": "thinking", "thinking": "", "signature": ""})
        );
        let sig = events[3]["delta"]["signature"].as_str().unwrap();
        assert_eq!(Reasoning::unseal(sig), Some(piece));
        assert_eq!(events[5]["index"], 1);
    }
}
