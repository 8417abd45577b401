//! Ollama's NDJSON stream → OpenAI chunks: one answer object per line, the
//! `done: true` line last with the finish reason and token counts.

use super::response::{
    arguments_json, call_id, completion_id, created, finish_reason, in_band_error, Answer,
};
use serde_json::Value;

use crate::canonical::{
    unix_now, ChatChunk, Delta, Origin, Reasoning, ReasoningDelta, ToolCallDelta, Usage,
};
use crate::http::sse::Event;
use crate::providers::Target;
use crate::providers::{AdapterError, Flow, StreamTranslator};

pub(super) struct Translator {
    id: String,
    target_model: String,
    /// `created` and `model`, fixed by the first line for every chunk.
    meta: Option<(u64, String)>,
    /// Tool calls started so far: the next call's `index`.
    calls: u32,
    /// Thinking streamed so far, whole once the answer itself begins.
    thinking: String,
    origin: Origin,
    done: bool,
}

impl Translator {
    pub(super) fn new(target: &Target) -> Translator {
        Translator {
            id: completion_id(),
            target_model: target.model.clone(),
            meta: None,
            calls: 0,
            thinking: String::new(),
            origin: Origin::of(target),
            done: false,
        }
    }

    /// The thinking so far as one whole piece, when the answer itself begins.
    fn end_thinking(&mut self, out: &mut Vec<ChatChunk>) {
        if self.thinking.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.thinking);
        let piece = Reasoning::new(text, self.origin.clone(), Value::Null);
        let delta = Delta::reasoning(ReasoningDelta::Done(piece));
        out.push(self.chunk().with_delta(delta, None));
    }

    fn chunk(&self) -> ChatChunk {
        match &self.meta {
            Some((created, model)) => ChatChunk::new(&self.id, *created, model),
            None => ChatChunk::new(&self.id, unix_now(), &self.target_model),
        }
    }
}

impl StreamTranslator for Translator {
    fn on_event(&mut self, event: &Event, out: &mut Vec<ChatChunk>) -> Result<Flow, AdapterError> {
        if self.done {
            return Ok(Flow::Done);
        }
        let line: Answer = serde_json::from_str(event.data.trim())
            .map_err(|e| AdapterError::Protocol(format!("Ollama stream line: {e}")))?;
        if let Some(err) = &line.error {
            return Err(in_band_error(err));
        }
        let Some(done) = line.done else {
            return Err(AdapterError::Protocol(
                "Ollama stream line has no \"done\"".into(),
            ));
        };
        if self.meta.is_none() {
            let model = line
                .model
                .clone()
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| self.target_model.clone());
            self.meta = Some((created(line.created_at.as_deref()), model));
            out.push(self.chunk().with_delta(Delta::role(), None));
        }
        if let Some(message) = line.message {
            if let Some(t) = message.thinking.filter(|t| !t.is_empty()) {
                self.thinking.push_str(&t);
                let delta = Delta::reasoning(ReasoningDelta::Text(t));
                out.push(self.chunk().with_delta(delta, None));
            }
            let answering = message.content.as_ref().is_some_and(|t| !t.is_empty())
                || message.tool_calls.as_ref().is_some_and(|c| !c.is_empty());
            if answering {
                self.end_thinking(out);
            }
            if let Some(text) = message.content.filter(|t| !t.is_empty()) {
                out.push(self.chunk().with_delta(Delta::text(text), None));
            }
            for call in message.tool_calls.unwrap_or_default() {
                let index = self.calls;
                self.calls = self.calls.saturating_add(1);
                let arguments = arguments_json(call.function.arguments)?;
                let start = ToolCallDelta::start(index, call_id(call.id), call.function.name);
                out.push(self.chunk().with_delta(Delta::tool_call(start), None));
                let args = ToolCallDelta::arguments(index, arguments);
                out.push(self.chunk().with_delta(Delta::tool_call(args), None));
            }
        }
        if !done {
            return Ok(Flow::Continue);
        }
        self.done = true;
        self.end_thinking(out);
        let reason = finish_reason(self.calls > 0, line.done_reason.as_deref());
        out.push(self.chunk().with_delta(Delta::default(), Some(reason)));
        let mut usage = self.chunk();
        usage.usage = Some(Usage::new(
            line.prompt_eval_count.unwrap_or(0),
            line.eval_count.unwrap_or(0),
        ));
        out.push(usage);
        Ok(Flow::Done)
    }

    fn finish(&mut self, _out: &mut Vec<ChatChunk>) -> Result<(), AdapterError> {
        if self.done {
            Ok(())
        } else {
            Err(AdapterError::Protocol(
                "Ollama stream ended before its done: true line".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::http::sse::{Decoder, Framing};
    use crate::providers::ollama::tests::local;
    use crate::providers::ollama::ADAPTER;
    use crate::providers::testing::request;
    use crate::providers::Adapter;

    /// Feeds `input` split every `split` bytes through the NDJSON decoder and a fresh
    /// translator; returns the chunks, and the first error or the finish() result.
    fn run(input: &[u8], split: usize) -> (Vec<Value>, Result<(), AdapterError>) {
        let req =
            request(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true}"#);
        let mut tr = ADAPTER.stream_translator(&req, &local("llama3.2"));
        let mut decoder = Decoder::new(Framing::Ndjson);
        let mut events = Vec::new();
        for piece in input.chunks(split) {
            decoder.push(piece, &mut events).unwrap();
        }
        decoder.finish(&mut events).unwrap();
        let mut chunks = Vec::new();
        let mut result = Ok(());
        let mut done = false;
        for ev in &events {
            match tr.on_event(ev, &mut chunks) {
                Ok(Flow::Continue) => assert!(!done, "Continue after Done"),
                Ok(Flow::Done) => done = true,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if result.is_ok() {
            result = tr.finish(&mut chunks);
        }
        // Reasoning is not chat's: see `thinking_streams_then_ends_as_one_piece`.
        let chunks = chunks
            .iter()
            .filter(|c| {
                c.choices
                    .first()
                    .is_none_or(|c| c.delta.reasoning.is_none())
            })
            .map(|c| serde_json::to_value(c).unwrap())
            .collect();
        (chunks, result)
    }

    #[test]
    fn thinking_streams_then_ends_as_one_piece() {
        let input = include_bytes!("../../../fixtures/ollama/stream_tool_call.ndjson");
        let req =
            request(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true}"#);
        let target = local("qwen3:8b");
        let mut tr = ADAPTER.stream_translator(&req, &target);
        let mut events = Vec::new();
        let mut decoder = Decoder::new(Framing::Ndjson);
        decoder.push(input, &mut events).unwrap();
        let mut out = Vec::new();
        for ev in &events {
            tr.on_event(ev, &mut out).unwrap();
        }
        let kinds: Vec<&str> = out
            .iter()
            .filter_map(|c| c.choices.first())
            .map(|c| match (&c.delta.reasoning, &c.delta.tool_calls) {
                (Some(ReasoningDelta::Text(_)), _) => "thinking",
                (Some(ReasoningDelta::Done(r)), _) => {
                    assert_eq!(r.text, "I should call the weather tool.");
                    assert_eq!(r.origin, Origin::of(&target));
                    "piece"
                }
                (_, Some(_)) => "call",
                _ => "other",
            })
            .collect();
        let first_call = kinds.iter().position(|k| *k == "call").unwrap();
        assert_eq!(&kinds[1..=first_call], ["thinking", "piece", "call"]);
    }

    const SPLITS: [usize; 8] = [1, 2, 3, 5, 7, 13, 64, 100_000];

    /// One expected chunk with the stream's id/created/model.
    fn chunk(first: &Value, created: u64, model: &str, delta: Value, finish: Value) -> Value {
        json!({"id": first["id"], "object": "chat.completion.chunk", "created": created,
               "model": model, "choices": [{"index": 0, "delta": delta,
               "finish_reason": finish, "logprobs": null}]})
    }

    fn usage_chunk(first: &Value, created: u64, model: &str, p: u64, c: u64) -> Value {
        json!({"id": first["id"], "object": "chat.completion.chunk", "created": created,
               "model": model, "choices": [],
               "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}})
    }

    #[test]
    fn fixture_text_stream_at_any_split() {
        let input = include_bytes!("../../../fixtures/ollama/stream_text.ndjson");
        for split in SPLITS {
            let (chunks, result) = run(input, split);
            assert!(result.is_ok(), "split {split}: {result:?}");
            let first = &chunks[0];
            assert!(first["id"].as_str().unwrap().starts_with("chatcmpl-"));
            let (t, m) = (1_736_936_430, "llama3.2");
            let want = vec![
                chunk(first, t, m, json!({"role": "assistant"}), Value::Null),
                chunk(first, t, m, json!({"content": "The"}), Value::Null),
                chunk(first, t, m, json!({"content": " sky"}), Value::Null),
                chunk(first, t, m, json!({"content": " is blue ✓"}), Value::Null),
                chunk(first, t, m, json!({}), json!("stop")),
                usage_chunk(first, t, m, 26, 3),
            ];
            assert_eq!(chunks, want, "split {split}");
        }
    }

    #[test]
    fn fixture_tool_call_stream_indexes_calls_across_lines() {
        let input = include_bytes!("../../../fixtures/ollama/stream_tool_call.ndjson");
        for split in SPLITS {
            let (chunks, result) = run(input, split);
            assert!(result.is_ok(), "split {split}: {result:?}");
            let first = &chunks[0];
            let id0 = chunks[1]["choices"][0]["delta"]["tool_calls"][0]["id"].clone();
            let id1 = chunks[3]["choices"][0]["delta"]["tool_calls"][0]["id"].clone();
            for id in [&id0, &id1] {
                let id = id.as_str().unwrap();
                assert!(id.starts_with("call_") && id.len() == 29, "{id}");
            }
            assert_ne!(id0, id1);
            let (t, m) = (1_748_536_801, "qwen3:8b");
            let start = |i: u32, id: &Value, name: &str| {
                json!({"tool_calls": [{"index": i, "id": id, "type": "function",
                       "function": {"name": name, "arguments": ""}}]})
            };
            let args = |i: u32, a: &str| json!({"tool_calls": [{"index": i, "function": {"arguments": a}}]});
            let want = vec![
                chunk(first, t, m, json!({"role": "assistant"}), Value::Null),
                chunk(
                    first,
                    t,
                    m,
                    start(0, &id0, "get_current_weather"),
                    Value::Null,
                ),
                chunk(
                    first,
                    t,
                    m,
                    args(0, r#"{"format":"celsius","location":"Paris, FR"}"#),
                    Value::Null,
                ),
                chunk(first, t, m, start(1, &id1, "get_time"), Value::Null),
                chunk(first, t, m, args(1, "{}"), Value::Null),
                chunk(first, t, m, json!({}), json!("tool_calls")),
                usage_chunk(first, t, m, 190, 41),
            ];
            assert_eq!(chunks, want, "split {split}");
        }
    }

    #[test]
    fn fixture_error_line_is_an_upstream_500() {
        let input = include_bytes!("../../../fixtures/ollama/stream_error.ndjson");
        for split in SPLITS {
            let (chunks, result) = run(input, split);
            let first = &chunks[0];
            let t = 1_736_936_430;
            assert_eq!(
                chunks,
                vec![
                    chunk(
                        first,
                        t,
                        "llama3.2",
                        json!({"role": "assistant"}),
                        Value::Null
                    ),
                    chunk(
                        first,
                        t,
                        "llama3.2",
                        json!({"content": "Once"}),
                        Value::Null
                    ),
                ]
            );
            match result {
                Err(AdapterError::Upstream(e)) => {
                    assert_eq!(e.status, 500);
                    assert_eq!(
                        e.message,
                        "an error was encountered while running the model: unexpected EOF"
                    );
                }
                other => panic!("split {split}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_error_before_any_content_emits_nothing() {
        let (chunks, result) = run(b"{\"error\":\"model is loading\"}\n", 4);
        assert!(chunks.is_empty());
        assert!(matches!(result, Err(AdapterError::Upstream(e)) if e.status == 500));
    }

    #[test]
    fn a_stream_cut_before_done_is_a_protocol_error() {
        let input = include_bytes!("../../../fixtures/ollama/stream_text.ndjson");
        let text = std::str::from_utf8(input).unwrap();
        let cut: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
        let (chunks, result) = run(cut.as_bytes(), 7);
        assert_eq!(chunks.len(), 3, "role and two texts");
        assert!(matches!(result, Err(AdapterError::Protocol(m)) if m.contains("done")));
        let (chunks, result) = run(b"", 1);
        assert!(chunks.is_empty());
        assert!(matches!(result, Err(AdapterError::Protocol(_))));
    }

    #[test]
    fn garbage_lines_are_protocol_errors() {
        for line in [
            "data: {\"x\":1}\n",
            "not json\n",
            "{\"model\":\"m\",\"message\":{\"content\":\"x\"}}\n",
            "{\"model\":\"m\",\"done\":\"yes\"}\n",
        ] {
            let (_, result) = run(line.as_bytes(), 3);
            assert!(
                matches!(result, Err(AdapterError::Protocol(_))),
                "{line}: {result:?}"
            );
        }
    }

    #[test]
    fn a_done_only_stream_and_content_on_the_done_line() {
        let (chunks, result) = run(
            b"{\"model\":\"\",\"created_at\":\"2025-01-01T00:00:00Z\",\"message\":{\"role\":\"assistant\",\"content\":\"Hi!\"},\"done\":true,\"done_reason\":\"length\",\"eval_count\":2}",
            6,
        );
        assert!(result.is_ok(), "{result:?}");
        let first = &chunks[0];
        let (t, m) = (1_735_689_600, "llama3.2");
        assert_eq!(
            chunks,
            vec![
                chunk(first, t, m, json!({"role": "assistant"}), Value::Null),
                chunk(first, t, m, json!({"content": "Hi!"}), Value::Null),
                chunk(first, t, m, json!({}), json!("length")),
                usage_chunk(first, t, m, 0, 2),
            ]
        );
    }

    #[test]
    fn every_chunk_of_a_stream_shares_one_id_and_streams_differ() {
        let input = include_bytes!("../../../fixtures/ollama/stream_text.ndjson");
        let (a, _) = run(input, 9);
        let (b, _) = run(input, 9);
        assert!(a
            .iter()
            .all(|c| c["id"] == a[0]["id"] && c["created"] == a[0]["created"]));
        assert_ne!(a[0]["id"], b[0]["id"]);
    }

    #[test]
    fn lines_after_done_are_ignored() {
        let req = request(r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#);
        let mut tr = ADAPTER.stream_translator(&req, &local("llama3.2"));
        let mut out = Vec::new();
        let ev = |d: &str| Event {
            event: None,
            data: d.into(),
        };
        let done = r#"{"model":"m","message":{"role":"assistant","content":""},"done":true}"#;
        assert_eq!(tr.on_event(&ev(done), &mut out).unwrap(), Flow::Done);
        let n = out.len();
        assert_eq!(tr.on_event(&ev("garbage"), &mut out).unwrap(), Flow::Done);
        assert_eq!(out.len(), n);
        assert!(tr.finish(&mut out).is_ok());
    }
}
