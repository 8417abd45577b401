//! Streamed chunks → the one answer they spell. The cache records streams with it;
//! it lives here because it is about the canonical wire types, not about caching.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{
    ChatChunk, ChatResponse, Choice, FunctionCall, Reasoning, ReasoningDelta, ResponseMessage,
    ToolCall,
};

/// Answer-level fields copied between streamed chunks and a whole answer.
pub(super) const ANSWER_EXTRAS: &[&str] = &["system_fingerprint", "service_tier"];

/// A stream whose text grows past this is not recorded: the cache is for answers, not
/// for holding arbitrarily large bodies in memory.
pub(crate) const RECORD_LIMIT: usize = 8 * 1024 * 1024;

#[derive(Default)]
struct CallParts {
    id: Option<String>,
    kind: Option<String>,
    name: String,
    arguments: String,
}

#[derive(Default)]
struct ChoiceParts {
    role: Option<String>,
    content: Option<String>,
    refusal: Option<String>,
    /// Text fields the proxy does not model (`reasoning_content`, …), concatenated.
    extra: Map<String, Value>,
    calls: BTreeMap<u32, CallParts>,
    /// Completed pieces of reasoning (their text came in the pieces' deltas too).
    reasoning: Vec<Reasoning>,
    finish_reason: Option<String>,
    logprobs: Option<Map<String, Value>>,
}

/// Assembles streamed chunks into the answer they spell, the way SDKs do: text and
/// argument fragments concatenate, tool calls gather by their `index`.
#[derive(Default)]
pub struct Assembler {
    head: Option<(String, u64, String)>,
    extra: Map<String, Value>,
    choices: BTreeMap<u32, ChoiceParts>,
    usage: Option<crate::canonical::Usage>,
    size: usize,
}

fn append(slot: &mut Option<String>, piece: &str) {
    slot.get_or_insert_with(String::new).push_str(piece);
}

impl Assembler {
    pub fn push(&mut self, chunk: &ChatChunk) {
        if self.size > RECORD_LIMIT {
            return;
        }
        if self.head.is_none() && !chunk.id.is_empty() {
            self.head = Some((chunk.id.clone(), chunk.created, chunk.model.clone()));
        }
        for k in ANSWER_EXTRAS {
            if let Some(v) = chunk.extra.get(*k).filter(|v| !v.is_null()) {
                self.extra.insert((*k).to_string(), v.clone());
            }
        }
        if let Some(u) = &chunk.usage {
            self.usage = Some(u.clone());
        }
        for c in &chunk.choices {
            let parts = self.choices.entry(c.index).or_default();
            let d = &c.delta;
            if let Some(r) = &d.role {
                parts.role = Some(r.clone());
            }
            if let Some(t) = &d.content {
                self.size += t.len();
                append(&mut parts.content, t);
            }
            if let Some(t) = &d.refusal {
                self.size += t.len();
                append(&mut parts.refusal, t);
            }
            for (k, v) in &d.extra {
                if let Value::String(t) = v {
                    self.size += t.len();
                    match parts.extra.get_mut(k) {
                        Some(Value::String(s)) => s.push_str(t),
                        _ => {
                            parts.extra.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            if let Some(ReasoningDelta::Done(r)) = &d.reasoning {
                self.size += r.text.len();
                parts.reasoning.push(r.clone());
            }
            for t in d.tool_calls.iter().flatten() {
                let call = parts.calls.entry(t.index).or_default();
                if let Some(id) = &t.id {
                    call.id = Some(id.clone());
                }
                if let Some(kind) = &t.kind {
                    call.kind = Some(kind.clone());
                }
                if let Some(f) = &t.function {
                    if let Some(n) = &f.name {
                        call.name.push_str(n);
                    }
                    if let Some(a) = &f.arguments {
                        self.size += a.len();
                        call.arguments.push_str(a);
                    }
                }
            }
            if let Some(f) = &c.finish_reason {
                parts.finish_reason = Some(f.clone());
            }
            if let Some(Value::Object(lp)) = &c.logprobs {
                let into = parts.logprobs.get_or_insert_with(Map::new);
                for (k, v) in lp {
                    match (into.get_mut(k), v) {
                        (Some(Value::Array(have)), Value::Array(more)) => {
                            have.extend(more.iter().cloned())
                        }
                        (Some(_), Value::Null) => {}
                        _ => {
                            into.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
        }
    }

    /// The answer, or `None` when the stream does not add up to one worth repeating
    /// (too large, a choice without finish_reason, a tool call without id or name).
    pub fn finish(self) -> Option<ChatResponse> {
        if self.size > RECORD_LIMIT {
            return None;
        }
        let (id, created, model) = self.head?;
        let mut choices = Vec::with_capacity(self.choices.len());
        for (index, p) in self.choices {
            let mut calls = Vec::with_capacity(p.calls.len());
            for c in p.calls.into_values() {
                if c.name.is_empty() {
                    return None;
                }
                calls.push(ToolCall {
                    id: c.id?,
                    kind: c.kind.unwrap_or_else(|| "function".into()),
                    function: FunctionCall {
                        name: c.name,
                        arguments: c.arguments,
                    },
                });
            }
            choices.push(Choice {
                index,
                message: ResponseMessage {
                    role: p.role.unwrap_or_else(|| "assistant".into()),
                    content: p.content,
                    tool_calls: (!calls.is_empty()).then_some(calls),
                    refusal: p.refusal,
                    extra: p.extra,
                    reasoning: p.reasoning,
                },
                finish_reason: Some(p.finish_reason?),
                logprobs: p.logprobs.map(Value::Object),
                extra: Map::new(),
            });
        }
        let answer = ChatResponse {
            id,
            object: "chat.completion".into(),
            created,
            model,
            choices,
            usage: self.usage,
            extra: self.extra,
            native: None,
        };
        complete(&answer).then_some(answer)
    }
}

/// Only answers that finished are worth repeating.
pub(crate) fn complete(answer: &ChatResponse) -> bool {
    !answer.choices.is_empty() && answer.choices.iter().all(|c| c.finish_reason.is_some())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::canonical::testing::{delta, streamed_tool_answer};

    #[test]
    fn a_stream_assembles_into_its_answer() {
        let mut a = Assembler::default();
        for c in streamed_tool_answer() {
            a.push(&c);
        }
        let answer = serde_json::to_value(a.finish().unwrap()).unwrap();
        assert_eq!(
            answer,
            json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "gpt-x",
                "system_fingerprint": "fp_1",
                "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": null, "message": {
                    "role": "assistant", "content": "Let me check.", "refusal": null,
                    "tool_calls": [
                        {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                        {"id": "call_b", "type": "function", "function": {"name": "time", "arguments": "{}"}}
                    ]}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
            })
        );
    }

    #[test]
    fn an_unfinished_stream_assembles_into_nothing() {
        let mut a = Assembler::default();
        for c in &streamed_tool_answer()[..7] {
            a.push(c);
        }
        assert!(a.finish().is_none(), "no finish_reason");
        let mut a = Assembler::default();
        a.push(&delta(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
            json!("tool_calls"),
        ));
        assert!(a.finish().is_none(), "a tool call without id or name");
        assert!(Assembler::default().finish().is_none());
    }
}
