//! What an answer tells a span: the model that answered, token usage, why it
//! finished, and (only with `capture_content`) the answer itself.

use std::sync::Arc;

use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::{Context, KeyValue, StringValue, Value};

use super::Trace;
use crate::canonical::{ChatChunk, ChatResponse, Usage};
use crate::providers::Kind;

/// Streamed answer text kept for `gen_ai.output.messages`, at most.
const OUTPUT_LIMIT: usize = 64 * 1024;

/// GenAI's `gen_ai.system` for a provider kind (the semantic conventions' well-known
/// values; Ollama has none and names itself).
pub(super) fn system(kind: Kind) -> &'static str {
    match kind {
        Kind::Openai => "openai",
        Kind::Azure => "az.ai.openai",
        Kind::Anthropic => "anthropic",
        Kind::Gemini => "gcp.gemini",
        Kind::Ollama => "ollama",
    }
}

/// Strings are `Arc<str>`: the same values go on the attempt span and the request
/// span without another copy.
#[derive(Debug, Default)]
pub struct Facts {
    pub response_model: Option<Arc<str>>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub finish_reasons: Vec<Arc<str>>,
    /// The answer's text, only when content capture is on.
    pub output: Option<String>,
}

impl Facts {
    pub fn of_chat(answer: &ChatResponse, capture: bool) -> Facts {
        let mut facts = Facts {
            response_model: (!answer.model.is_empty()).then(|| answer.model.as_str().into()),
            finish_reasons: answer
                .choices
                .iter()
                .filter_map(|c| Some(c.finish_reason.as_deref()?.into()))
                .collect(),
            ..Facts::default()
        };
        facts.usage(answer.usage.as_ref());
        if capture {
            let text: String = answer
                .choices
                .iter()
                .filter_map(|c| c.message.content.as_deref())
                .collect();
            facts.output = Some(text);
        }
        facts
    }

    pub fn usage(&mut self, usage: Option<&Usage>) {
        if let Some(u) = usage {
            self.input_tokens = Some(u.prompt_tokens);
            self.output_tokens = Some(u.completion_tokens);
        }
    }

    /// The facts as span attributes, built once for the two spans they go on: the
    /// strings are shared, not copied again.
    pub(super) fn attributes(&self) -> Vec<KeyValue> {
        let mut attrs = Vec::with_capacity(5);
        if let Some(m) = &self.response_model {
            attrs.push(KeyValue::new("gen_ai.response.model", m.clone()));
        }
        if let Some(n) = self.input_tokens {
            attrs.push(KeyValue::new("gen_ai.usage.input_tokens", n as i64));
        }
        if let Some(n) = self.output_tokens {
            attrs.push(KeyValue::new("gen_ai.usage.output_tokens", n as i64));
        }
        if !self.finish_reasons.is_empty() {
            let reasons: Vec<StringValue> = self
                .finish_reasons
                .iter()
                .map(|r| StringValue::from(r.clone()))
                .collect();
            attrs.push(KeyValue::new(
                "gen_ai.response.finish_reasons",
                Value::Array(reasons.into()),
            ));
        }
        if let Some(text) = &self.output {
            // Shared by the two spans: up to 64 KiB not copied twice.
            let text: Arc<str> = text.as_str().into();
            attrs.push(KeyValue::new("gen_ai.output.messages", text));
        }
        attrs
    }

    /// On the attempt span of `cx` and on its request's span.
    fn record_both(&self, cx: &Context, also: Option<KeyValue>) {
        let attrs = self.attributes();
        if let Some(trace) = cx.get::<Trace>() {
            trace.request.span().set_attributes(attrs.iter().cloned());
        }
        cx.span().set_attributes(attrs.into_iter().chain(also));
    }
}

/// A good answer: on the attempt span and on its request span.
pub fn attempt_answered(cx: &Context, facts: &Facts) {
    facts.record_both(cx, Some(KeyValue::new("understudy.outcome", "ok")));
}

/// A committed stream's attempt span: facts gathered from the chunks as they go
/// out, recorded on both spans when the stream ends; dropping it ends the spans.
pub struct StreamTrace {
    cx: Context,
    facts: Facts,
    capture: bool,
    ended: bool,
}

impl StreamTrace {
    /// The stream of the attempt whose span is in `cx`.
    pub fn of(cx: &Context) -> Option<StreamTrace> {
        let capture = cx.get::<Trace>()?.capture_content;
        let cx = cx.clone();
        Some(StreamTrace {
            cx,
            facts: Facts {
                output: capture.then(String::new),
                ..Facts::default()
            },
            capture,
            ended: false,
        })
    }

    pub fn chunk(&mut self, chunk: &ChatChunk) {
        if self.facts.response_model.is_none() && !chunk.model.is_empty() {
            self.facts.response_model = Some(chunk.model.as_str().into());
        }
        if chunk.usage.is_some() {
            self.facts.usage(chunk.usage.as_ref());
        }
        for choice in &chunk.choices {
            if let Some(r) = &choice.finish_reason {
                self.facts.finish_reasons.push(r.as_str().into());
            }
            if self.capture {
                if let (Some(out), Some(text)) = (&mut self.facts.output, &choice.delta.content) {
                    if out.len() + text.len() <= OUTPUT_LIMIT {
                        out.push_str(text);
                    }
                }
            }
        }
    }

    /// The stream ended: properly (`None`) or with this outcome label and message.
    pub fn end(&mut self, error: Option<(&'static str, String)>) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        match error {
            None => attempt_answered(&self.cx, &self.facts),
            Some((outcome, message)) => {
                // A provider's message may quote the prompt: only with content capture.
                let message = if self.capture {
                    message
                } else {
                    outcome.to_string()
                };
                // What did arrive still counts: usage may have come before the cut.
                self.facts.record_both(&self.cx, None);
                super::attempt_failed(&self.cx, outcome, outcome.to_string(), &message);
                if let Some(trace) = self.cx.get::<Trace>() {
                    let span = trace.request.span();
                    span.set_attribute(KeyValue::new("error.type", outcome));
                    span.set_status(Status::error(message));
                }
            }
        }
    }
}

/// A client that leaves mid-stream drops the body: the spans end, marked so.
impl Drop for StreamTrace {
    fn drop(&mut self) {
        if !self.ended {
            let attrs = self.facts.attributes();
            let cancelled = KeyValue::new("understudy.outcome", "cancelled");
            self.cx
                .span()
                .set_attributes(attrs.into_iter().chain([cancelled]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{Choice, ResponseMessage};

    #[test]
    fn kinds_map_to_genai_systems() {
        assert_eq!(system(Kind::Openai), "openai");
        assert_eq!(system(Kind::Azure), "az.ai.openai");
        assert_eq!(system(Kind::Anthropic), "anthropic");
        assert_eq!(system(Kind::Gemini), "gcp.gemini");
        assert_eq!(system(Kind::Ollama), "ollama");
    }

    #[test]
    fn a_chat_answer_gives_model_usage_and_reasons_but_no_text_by_default() {
        let answer: ChatResponse = serde_json::from_value(serde_json::json!({
            "id": "x", "created": 1, "model": "gpt-4o-2024",
            "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": "secret answer"}}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
        }))
        .unwrap();
        let _: &Choice = &answer.choices[0];
        let _: &ResponseMessage = &answer.choices[0].message;
        let f = Facts::of_chat(&answer, false);
        assert_eq!(f.response_model.as_deref(), Some("gpt-4o-2024"));
        assert_eq!((f.input_tokens, f.output_tokens), (Some(7), Some(3)));
        assert_eq!(f.finish_reasons, [Arc::from("stop")]);
        assert_eq!(f.output, None);
    }
}
