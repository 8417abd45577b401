//! Canonical chunks → the Responses event sequence: `response.created`,
//! `response.in_progress`, per output item `output_item.added`, its content part and
//! text (or argument, or reasoning summary) deltas and their `done` events, then `response.completed` (or
//! `.incomplete`); a failure after content ends it with `response.failed`. Every
//! event carries `sequence_number` from 0 upward.

use std::collections::BTreeMap;

use bytes::BytesMut;
use serde_json::{json, Value};

use super::answer::{
    call_item, message_item, new_call_item_id, new_message_id, new_reasoning_id, reasoning_item,
    response, usage, Echo, Ending,
};
use super::Keeper;
use crate::canonical::{ChatChunk, Reasoning, ReasoningDelta, Usage};
use crate::error::ProxyError;
use crate::frontdoor::chat::error::type_and_code;
use crate::frontdoor::StreamRender;
use crate::http::sse;

struct OpenText {
    id: String,
    index: usize,
    text: String,
}

struct OpenReasoning {
    id: String,
    index: usize,
    /// The summary text so far; its part was announced once it is non-empty.
    text: String,
}

struct OpenCall {
    id: String,
    index: usize,
    call_id: String,
    name: String,
    arguments: String,
}

pub(super) struct ResponsesStream {
    /// The upstream speaks Responses itself: its events go out with the proxy's id.
    native: Option<bool>,
    echo: Echo,
    keeper: Option<Keeper>,
    seq: u64,
    started: bool,
    model: String,
    /// Items in output order; `None` while still open.
    output: Vec<Option<Value>>,
    text: Option<OpenText>,
    reasoning: Option<OpenReasoning>,
    /// Open calls by the chunks' tool-call index.
    calls: BTreeMap<u32, OpenCall>,
    finish: Option<String>,
    usage: Option<Usage>,
}

impl ResponsesStream {
    pub(super) fn new(echo: Echo, model: String, keeper: Option<Keeper>) -> ResponsesStream {
        ResponsesStream {
            native: None,
            echo,
            keeper,
            seq: 0,
            started: false,
            model,
            output: Vec::new(),
            text: None,
            reasoning: None,
            calls: BTreeMap::new(),
            finish: None,
            usage: None,
        }
    }

    fn emit(&mut self, kind: &str, mut event: Value, out: &mut BytesMut) {
        event["type"] = kind.into();
        event["sequence_number"] = self.seq.into();
        self.seq += 1;
        // Serialising a Value cannot fail.
        let json = serde_json::to_vec(&event).unwrap_or_default();
        sse::encode_event(kind, &json, out);
    }

    fn snapshot(&self, ending: &Ending) -> Value {
        let output: Vec<Value> = self.output.iter().flatten().cloned().collect();
        response(
            &self.echo,
            &self.model,
            ending,
            output,
            self.usage.as_ref().map(usage),
        )
    }

    fn start(&mut self, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        let r = self.snapshot(&Ending::InProgress);
        self.emit("response.created", json!({ "response": r }), out);
        let r = self.snapshot(&Ending::InProgress);
        self.emit("response.in_progress", json!({ "response": r }), out);
    }

    fn open_reasoning(&mut self, out: &mut BytesMut) {
        if self.reasoning.is_some() {
            return;
        }
        self.close_text(out);
        self.close_calls(out);
        let r = OpenReasoning {
            id: new_reasoning_id(),
            index: self.output.len(),
            text: String::new(),
        };
        self.output.push(None);
        self.emit(
            "response.output_item.added",
            json!({"output_index": r.index, "item": reasoning_item(&r.id, "", None)}),
            out,
        );
        self.reasoning = Some(r);
    }

    /// Summary text of the open reasoning item (its summary part opens with it).
    fn reasoning_delta(&mut self, delta: &str, out: &mut BytesMut) {
        if delta.is_empty() {
            return;
        }
        self.open_reasoning(out);
        let Some(r) = &mut self.reasoning else { return };
        let ids = json!({"item_id": r.id, "output_index": r.index, "summary_index": 0});
        let first = r.text.is_empty();
        r.text.push_str(delta);
        if first {
            let mut e = ids.clone();
            e["part"] = json!({"type": "summary_text", "text": ""});
            self.emit("response.reasoning_summary_part.added", e, out);
        }
        let mut e = ids;
        e["delta"] = delta.into();
        self.emit("response.reasoning_summary_text.delta", e, out);
    }

    /// Ends the reasoning item; `sealed` is the whole piece, when it came.
    fn close_reasoning(&mut self, sealed: Option<&Reasoning>, out: &mut BytesMut) {
        let Some(r) = self.reasoning.take() else {
            return;
        };
        if !r.text.is_empty() {
            let ids = json!({"item_id": r.id, "output_index": r.index, "summary_index": 0});
            let mut e = ids.clone();
            e["text"] = r.text.clone().into();
            self.emit("response.reasoning_summary_text.done", e, out);
            let mut e = ids;
            e["part"] = json!({"type": "summary_text", "text": r.text});
            self.emit("response.reasoning_summary_part.done", e, out);
        }
        let item = reasoning_item(&r.id, &r.text, sealed);
        self.output[r.index] = Some(item.clone());
        self.emit(
            "response.output_item.done",
            json!({"output_index": r.index, "item": item}),
            out,
        );
    }

    fn reasoning(&mut self, delta: ReasoningDelta, out: &mut BytesMut) {
        match delta {
            ReasoningDelta::Text(t) => self.reasoning_delta(&t, out),
            ReasoningDelta::Done(piece) => {
                // Its text came as deltas unless the piece came whole (a replay).
                let told = self.reasoning.as_ref().map_or(0, |r| r.text.len());
                if let Some(rest) = piece.text.get(told..) {
                    self.reasoning_delta(rest, out);
                }
                self.open_reasoning(out);
                self.close_reasoning(Some(&piece), out);
            }
        }
    }

    fn close_text(&mut self, out: &mut BytesMut) {
        let Some(t) = self.text.take() else { return };
        let ids = json!({"item_id": t.id, "output_index": t.index, "content_index": 0});
        let mut e = ids.clone();
        e["text"] = t.text.clone().into();
        e["logprobs"] = json!([]);
        self.emit("response.output_text.done", e, out);
        let mut e = ids;
        e["part"] =
            json!({"type": "output_text", "text": t.text, "annotations": [], "logprobs": []});
        self.emit("response.content_part.done", e, out);
        let item = message_item(&t.id, "completed", Some(&t.text));
        self.output[t.index] = Some(item.clone());
        self.emit(
            "response.output_item.done",
            json!({"output_index": t.index, "item": item}),
            out,
        );
    }

    fn close_calls(&mut self, out: &mut BytesMut) {
        for (_, mut c) in std::mem::take(&mut self.calls) {
            if c.arguments.is_empty() {
                c.arguments = "{}".into();
            }
            self.emit(
                "response.function_call_arguments.done",
                json!({"item_id": c.id, "output_index": c.index, "name": c.name, "arguments": c.arguments}),
                out,
            );
            let item = call_item(&c.id, "completed", &c.call_id, &c.name, &c.arguments);
            self.output[c.index] = Some(item.clone());
            self.emit(
                "response.output_item.done",
                json!({"output_index": c.index, "item": item}),
                out,
            );
        }
    }

    fn text_delta(&mut self, delta: &str, out: &mut BytesMut) {
        if self.text.is_none() {
            self.close_reasoning(None, out);
            self.close_calls(out);
            let t = OpenText {
                id: new_message_id(),
                index: self.output.len(),
                text: String::new(),
            };
            self.output.push(None);
            let item = message_item(&t.id, "in_progress", None);
            self.emit(
                "response.output_item.added",
                json!({"output_index": t.index, "item": item}),
                out,
            );
            self.emit(
                "response.content_part.added",
                json!({"item_id": t.id, "output_index": t.index, "content_index": 0,
                       "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}),
                out,
            );
            self.text = Some(t);
        }
        let Some(t) = &mut self.text else { return };
        t.text.push_str(delta);
        let e = json!({"item_id": t.id, "output_index": t.index, "content_index": 0,
                       "delta": delta, "logprobs": []});
        self.emit("response.output_text.delta", e, out);
    }

    fn call_delta(
        &mut self,
        index: u32,
        id: Option<&str>,
        name: Option<&str>,
        args: &str,
        out: &mut BytesMut,
    ) {
        if !self.calls.contains_key(&index) {
            self.close_reasoning(None, out);
            self.close_text(out);
            let c = OpenCall {
                id: new_call_item_id(),
                index: self.output.len(),
                call_id: id.map_or_else(crate::canonical::new_call_id, str::to_string),
                name: name.unwrap_or_default().to_string(),
                arguments: String::new(),
            };
            self.output.push(None);
            let item = call_item(&c.id, "in_progress", &c.call_id, &c.name, "");
            self.emit(
                "response.output_item.added",
                json!({"output_index": c.index, "item": item}),
                out,
            );
            self.calls.insert(index, c);
        }
        if args.is_empty() {
            return;
        }
        let Some(c) = self.calls.get_mut(&index) else {
            return;
        };
        c.arguments.push_str(args);
        let e = json!({"item_id": c.id, "output_index": c.index, "delta": args});
        self.emit("response.function_call_arguments.delta", e, out);
    }
}

impl ResponsesStream {
    /// One native upstream event: the same event under the proxy's response id;
    /// the final one is kept for `previous_response_id`.
    fn pass(&mut self, raw: &[u8], out: &mut BytesMut) {
        let text = String::from_utf8_lossy(raw);
        let mut name = None;
        let mut data = String::new();
        for line in text.lines() {
            if let Some(n) = line.strip_prefix("event: ") {
                name = Some(n.to_string());
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push_str(d);
            }
        }
        let Ok(mut event) = serde_json::from_str::<Value>(&data) else {
            out.extend_from_slice(raw);
            return;
        };
        if let Some(n) = event["sequence_number"].as_u64() {
            self.seq = n + 1;
        }
        let kind = event["type"].as_str().unwrap_or_default().to_string();
        if event["response"].is_object() {
            event["response"]["id"] = self.echo.id.clone().into();
            event["response"]["store"] = self.keeper.is_some().into();
            event["response"]["previous_response_id"] =
                self.echo.settings["previous_response_id"].clone();
            if matches!(kind.as_str(), "response.completed" | "response.incomplete") {
                if let Some(keeper) = self.keeper.take() {
                    keeper.keep(event["response"].clone());
                }
            }
        }
        let json = serde_json::to_vec(&event).unwrap_or_default();
        sse::encode_event(name.as_deref().unwrap_or(&kind), &json, out);
    }
}

impl StreamRender for ResponsesStream {
    fn chunk(&mut self, chunk: ChatChunk, out: &mut BytesMut) {
        if *self.native.get_or_insert(chunk.native.is_some()) {
            if let Some(raw) = &chunk.native {
                self.pass(raw, out);
            }
            return;
        }
        if !chunk.model.is_empty() {
            self.model.clone_from(&chunk.model);
        }
        self.start(out);
        if let Some(u) = chunk.usage {
            self.usage = Some(u);
        }
        // One answer: the first choice (the front door never asks for more).
        let Some(choice) = chunk.choices.into_iter().find(|c| c.index == 0) else {
            return;
        };
        let d = choice.delta;
        if let Some(r) = d.reasoning {
            self.reasoning(r, out);
        }
        for text in [d.content, d.refusal].into_iter().flatten() {
            if !text.is_empty() {
                self.text_delta(&text, out);
            }
        }
        for tc in d.tool_calls.into_iter().flatten() {
            let f = tc.function.unwrap_or_default();
            self.call_delta(
                tc.index,
                tc.id.as_deref(),
                f.name.as_deref(),
                f.arguments.as_deref().unwrap_or(""),
                out,
            );
        }
        if let Some(f) = choice.finish_reason {
            self.finish = Some(f);
        }
    }

    fn done(&mut self, out: &mut BytesMut) {
        if self.native == Some(true) {
            return; // response.completed went out with the upstream's events
        }
        self.start(out);
        self.close_reasoning(None, out);
        self.close_text(out);
        self.close_calls(out);
        let ending = Ending::of_finish(self.finish.as_deref());
        let r = self.snapshot(&ending);
        if let Some(keeper) = self.keeper.take() {
            keeper.keep(r.clone());
        }
        let kind = match ending {
            Ending::Incomplete(_) => "response.incomplete",
            _ => "response.completed",
        };
        self.emit(kind, json!({ "response": r }), out);
    }

    fn error(&mut self, err: &ProxyError, out: &mut BytesMut) {
        if self.native != Some(true) {
            self.start(out);
        }
        let (_, code) = type_and_code(err);
        // The SDK's ResponseError codes: a rate limit, or the server's fault.
        let code = if code == "rate_limited" {
            "rate_limit_exceeded"
        } else {
            "server_error"
        };
        let ending = Ending::Failed(json!({"code": code, "message": err.to_string()}));
        let r = self.snapshot(&ending);
        self.emit("response.failed", json!({ "response": r }), out);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Map};

    use super::*;
    use crate::canonical::{Delta, Origin};

    fn piece(text: &str) -> Reasoning {
        let origin = Origin {
            provider: "a".into(),
            kind: "anthropic".into(),
            model: "m".into(),
        };
        Reasoning::new(text, origin, json!({"signature": "s"}))
    }

    /// Event types and data of what `deltas` render to.
    fn render(deltas: Vec<Delta>) -> Vec<Value> {
        let echo = Echo {
            id: "resp_1".into(),
            created_at: 1,
            settings: Map::new(),
        };
        let mut s = ResponsesStream::new(echo, "m".into(), None);
        let mut out = BytesMut::new();
        for d in deltas {
            s.chunk(ChatChunk::new("c", 1, "m").with_delta(d, None), &mut out);
        }
        s.done(&mut out);
        String::from_utf8_lossy(&out)
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }

    fn kinds(events: &[Value]) -> Vec<&str> {
        events.iter().map(|e| e["type"].as_str().unwrap()).collect()
    }

    #[test]
    fn streamed_reasoning_is_a_summary_then_the_sealed_item() {
        let events = render(vec![
            Delta::reasoning(ReasoningDelta::Text("th".into())),
            Delta::reasoning(ReasoningDelta::Text("ink".into())),
            Delta::reasoning(ReasoningDelta::Done(piece("think"))),
            Delta::text("hi"),
        ]);
        assert_eq!(
            kinds(&events)[2..9],
            [
                "response.output_item.added",
                "response.reasoning_summary_part.added",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                "response.reasoning_summary_part.done",
                "response.output_item.done",
            ]
        );
        let done = &events[8]["item"];
        assert_eq!(
            done["summary"],
            json!([{"type": "summary_text", "text": "think"}])
        );
        assert_eq!(
            Reasoning::unseal(done["encrypted_content"].as_str().unwrap()),
            Some(piece("think"))
        );
        let last = events.last().unwrap();
        assert_eq!(last["type"], "response.completed");
        assert_eq!(last["response"]["output"][0], *done);
        assert_eq!(last["response"]["output"][1]["type"], "message");
    }

    #[test]
    fn a_piece_without_streamed_text_and_a_bare_signature_are_items_too() {
        let events = render(vec![
            Delta::reasoning(ReasoningDelta::Done(piece("whole"))),
            Delta::reasoning(ReasoningDelta::Done(piece(""))),
        ]);
        let items: Vec<&Value> = events
            .iter()
            .filter(|e| e["type"] == "response.output_item.done")
            .map(|e| &e["item"])
            .collect();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["summary"][0]["text"], "whole");
        assert_eq!(items[1]["summary"], json!([]));
        assert!(items[1]["encrypted_content"].is_string());
    }
}
