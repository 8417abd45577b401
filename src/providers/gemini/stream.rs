//! `:streamGenerateContent?alt=sse` → OpenAI chunks.
//!
//! Every `data:` is a whole `GenerateContentResponse` holding the next piece of
//! each candidate. Per candidate (= choice) the translator sends the role chunk
//! first, then text deltas as they come (thought text as reasoning deltas, each piece
//! of reasoning whole where visible output resumes, see [`super::thoughts`]), and
//! each `functionCall`
//! part as two chunks: `ToolCallDelta::start(i, call_…, name)` then
//! `ToolCallDelta::arguments(i, <whole args JSON>)`, `i` counting the calls of that
//! choice from 0. Gemini sends function calls whole, never in fragments.
//!
//! Gemini streams have no terminator: the body just ends. The finishReason is
//! remembered and sent by [`Translator::finish`] (so text that might still follow it
//! goes first), as `tool_calls` when the choice made calls; then the usage, which
//! Gemini repeats cumulatively in every chunk, once, as a usage-only chunk. A body
//! that ends without any finishReason was cut short: `Protocol` error. A blocked
//! prompt (`promptFeedback.blockReason`, no candidates) finishes with
//! `content_filter`. A `data:` holding `{"error": …}` ends the stream with that
//! upstream error.
//!
//! Every chunk carries the same id (the first chunk's responseId, else one made
//! up once), `created` and model (the first chunk's modelVersion, else the target's).

use std::collections::BTreeMap;

use serde_json::Map;

use super::response::{decode, finish_reason, new_completion_id, Part};
use super::thoughts::Thoughts;
use crate::canonical::{
    new_call_id, unix_now, ChatChunk, ChunkChoice, Delta, Origin, ReasoningDelta, ToolCallDelta,
    Usage,
};
use crate::http::sse::Event;
use crate::providers::{AdapterError, Flow, StreamTranslator};

pub(super) struct Translator {
    fallback_model: String,
    origin: Origin,
    created: u64,
    /// id and model, fixed by the first chunk.
    ident: Option<(String, String)>,
    choices: BTreeMap<u32, ChoiceState>,
    usage: Option<Usage>,
    finished: bool,
}

/// Marks a "finish reason" that is really the prompt's blockReason.
const BLOCKED: &str = "blocked prompt: ";

#[derive(Default)]
struct ChoiceState {
    calls: u32,
    thoughts: Thoughts,
    /// Gemini's finishReason (or the prompt's blockReason), once seen.
    finish: Option<String>,
}

impl Translator {
    pub(super) fn new(fallback_model: &str, origin: Origin) -> Translator {
        Translator {
            fallback_model: fallback_model.to_string(),
            origin,
            created: unix_now(),
            ident: None,
            choices: BTreeMap::new(),
            usage: None,
            finished: false,
        }
    }

    fn chunk(&self, index: u32, delta: Delta, finish: Option<&str>) -> ChatChunk {
        let (id, model) = self.ident.clone().unwrap_or_default();
        let mut chunk = ChatChunk::new(&id, self.created, &model);
        chunk.choices.push(ChunkChoice {
            index,
            delta,
            finish_reason: finish.map(str::to_string),
            logprobs: None,
            extra: Map::new(),
        });
        chunk
    }

    /// The choice's state; its first sighting sends the role chunk.
    fn choice(&mut self, index: u32, out: &mut Vec<ChatChunk>) -> &mut ChoiceState {
        if !self.choices.contains_key(&index) {
            out.push(self.chunk(index, Delta::role(), None));
        }
        self.choices.entry(index).or_default()
    }
}

impl StreamTranslator for Translator {
    fn on_event(&mut self, event: &Event, out: &mut Vec<ChatChunk>) -> Result<Flow, AdapterError> {
        let resp = decode(event.data.trim().as_bytes())?;
        if self.ident.is_none() {
            let id = resp
                .response_id
                .clone()
                .filter(|id| !id.is_empty())
                .unwrap_or_else(new_completion_id);
            let model = resp
                .model_version
                .clone()
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| self.fallback_model.clone());
            self.ident = Some((id, model));
        }
        if let Some(usage) = &resp.usage_metadata {
            self.usage = Some(usage.to_usage());
        }
        let candidates = resp.candidates.unwrap_or_default();
        if candidates.is_empty() {
            if let Some(reason) = resp.prompt_feedback.and_then(|f| f.block_reason) {
                tracing::debug!(block_reason = %reason, "gemini: prompt blocked");
                self.choice(0, out).finish = Some(format!("{BLOCKED}{reason}"));
            }
        }
        for (pos, c) in candidates.iter().enumerate() {
            let index = c.index.unwrap_or(pos as u32);
            self.choice(index, out);
            for part in c.parts() {
                emit_part(self, index, part, out);
            }
            if let Some(reason) = &c.finish_reason {
                self.choice(index, out).finish = Some(reason.clone());
            }
        }
        Ok(Flow::Continue)
    }

    fn finish(&mut self, out: &mut Vec<ChatChunk>) -> Result<(), AdapterError> {
        if self.finished {
            return Ok(());
        }
        if !self.choices.values().any(|c| c.finish.is_some()) {
            return Err(AdapterError::Protocol(
                "stream ended before finishReason".into(),
            ));
        }
        self.finished = true;
        let mut pieces = Vec::new();
        for (&index, state) in &mut self.choices {
            pieces.extend(
                state
                    .thoughts
                    .close(None, None, &self.origin)
                    .map(|r| (index, r)),
            );
        }
        for (index, r) in pieces {
            out.push(self.chunk(index, Delta::reasoning(ReasoningDelta::Done(r)), None));
        }
        for (&index, state) in &self.choices {
            if let Some(reason) = &state.finish {
                let finish = if reason.starts_with(BLOCKED) {
                    "content_filter"
                } else {
                    finish_reason(Some(reason), state.calls > 0)
                };
                out.push(self.chunk(index, Delta::default(), Some(finish)));
            }
        }
        if let Some(usage) = self.usage.clone() {
            let (id, model) = self.ident.clone().unwrap_or_default();
            let mut chunk = ChatChunk::new(&id, self.created, &model);
            chunk.usage = Some(usage);
            out.push(chunk);
        }
        Ok(())
    }
}

fn emit_part(tr: &mut Translator, index: u32, part: &Part, out: &mut Vec<ChatChunk>) {
    if part.is_thought() {
        if let Some(text) = tr.choice(index, out).thoughts.thought(part) {
            let delta = Delta::reasoning(ReasoningDelta::Text(text.to_string()));
            out.push(tr.chunk(index, delta, None));
        }
        return;
    }
    let id = part.function_call.as_ref().map(|_| new_call_id());
    let origin = tr.origin.clone();
    let sig = part.thought_signature.as_deref();
    if let Some(r) = tr
        .choice(index, out)
        .thoughts
        .close(sig, id.as_deref(), &origin)
    {
        out.push(tr.chunk(index, Delta::reasoning(ReasoningDelta::Done(r)), None));
    }
    if let Some(text) = part.answer_text().filter(|t| !t.is_empty()) {
        out.push(tr.chunk(index, Delta::text(text), None));
    }
    if let (Some(call), Some(id)) = (&part.function_call, id) {
        let state = tr.choice(index, out);
        let i = state.calls;
        state.calls += 1;
        out.push(tr.chunk(
            index,
            Delta::tool_call(ToolCallDelta::start(i, id, &call.name)),
            None,
        ));
        out.push(tr.chunk(
            index,
            Delta::tool_call(ToolCallDelta::arguments(i, call.arguments())),
            None,
        ));
    }
}
