//! What an answer tells a span: the model that answered, token usage, why it
//! finished, and (only with `capture_content`) the answer itself.

use std::sync::{Arc, LazyLock};

use super::attrs::{Attributes, Key, Value};
use super::AttemptTrace;
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
                .filter_map(|c| Some(finish_reason(c.finish_reason.as_deref()?)))
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

    /// On the attempt span of `trace` (with `outcome` when it is known) and on its
    /// request's span: the strings are shared by both, not copied again.
    fn record_both(&self, trace: &AttemptTrace, outcome: Option<&'static str>) {
        self.record(trace, outcome, true);
    }

    /// On the attempt span, and on the request span too when `on_request`.
    fn record(&self, trace: &AttemptTrace, outcome: Option<&'static str>, on_request: bool) {
        let reasons = (!self.finish_reasons.is_empty()).then(|| reasons(&self.finish_reasons));
        // Up to 64 KiB of answer: one copy for both spans.
        let output: Option<Arc<str>> = self.output.as_deref().map(Arc::from);
        let set = |a: &mut Attributes| {
            if let Some(m) = &self.response_model {
                a.set(Key::ResponseModel, m.clone());
            }
            if let Some(n) = self.input_tokens {
                a.set(Key::InputTokens, n);
            }
            if let Some(n) = self.output_tokens {
                a.set(Key::OutputTokens, n);
            }
            if let Some(r) = &reasons {
                a.set(Key::FinishReasons, Value::Strings(r.clone()));
            }
            if let Some(text) = &output {
                a.set(Key::OutputMessages, text.clone());
            }
        };
        if on_request {
            trace.request.update(|s| set(&mut s.attrs));
        }
        trace.span.update(|s| {
            set(&mut s.attrs);
            if let Some(outcome) = outcome {
                s.attrs.set(Key::Outcome, outcome);
            }
        });
    }
}

/// The finish reasons nearly every answer gives, made once.
const COMMON: [&str; 4] = ["stop", "length", "tool_calls", "content_filter"];

struct Common {
    reasons: [Arc<str>; 4],
    /// Each as a list of one: an answer's usual `gen_ai.response.finish_reasons`.
    lists: [Arc<[Arc<str>]>; 4],
}

static SHARED: LazyLock<Common> = LazyLock::new(|| {
    let reasons = COMMON.map(Arc::from);
    Common {
        lists: reasons.clone().map(|r| Arc::from([r])),
        reasons,
    }
});

/// An answer's finish reason, shared: most answers cost a reference count here, not
/// an allocation.
fn finish_reason(reason: &str) -> Arc<str> {
    SHARED
        .reasons
        .iter()
        .find(|common| ***common == *reason)
        .cloned()
        .unwrap_or_else(|| reason.into())
}

/// The reasons as one list for both spans; a common one alone is shared, not made.
fn reasons(list: &[Arc<str>]) -> Arc<[Arc<str>]> {
    if let [one] = list {
        let common = SHARED.reasons.iter().position(|r| Arc::ptr_eq(r, one));
        if let Some(i) = common {
            return SHARED.lists[i].clone();
        }
    }
    list.iter().cloned().collect()
}

/// A good answer: on the attempt span and on its request span.
pub fn attempt_answered(trace: &AttemptTrace, facts: &Facts) {
    facts.record_both(trace, Some("ok"));
}

/// A committed stream's attempt span: facts gathered from the chunks as they go
/// out, recorded on both spans when the stream ends; dropping it ends the spans.
pub struct StreamTrace {
    trace: AttemptTrace,
    facts: Facts,
    ended: bool,
}

impl StreamTrace {
    /// The stream of the attempt `trace`.
    pub fn of(trace: &AttemptTrace) -> StreamTrace {
        StreamTrace {
            trace: trace.clone(),
            facts: Facts {
                output: trace.capture.then(String::new),
                ..Facts::default()
            },
            ended: false,
        }
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
                self.facts.finish_reasons.push(finish_reason(r));
            }
            if let (Some(out), Some(text)) = (&mut self.facts.output, &choice.delta.content) {
                if out.len() + text.len() <= OUTPUT_LIMIT {
                    out.push_str(text);
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
            None => attempt_answered(&self.trace, &self.facts),
            Some((outcome, message)) => {
                // A provider's message may quote the prompt: only with content capture.
                let message = if self.trace.capture {
                    message
                } else {
                    outcome.to_string()
                };
                // What did arrive still counts: usage may have come before the cut.
                self.facts.record_both(&self.trace, None);
                self.trace.request.update(|s| {
                    s.attrs.set(Key::ErrorType, outcome);
                    s.error = Some(message.clone());
                });
                self.trace.failed(outcome, outcome.to_string(), message);
            }
        }
    }
}

/// A client that leaves mid-stream drops the body: the spans end, the attempt's
/// marked so with what had arrived (the request span tells only what the client got).
impl Drop for StreamTrace {
    fn drop(&mut self) {
        if !self.ended {
            self.facts.record(&self.trace, Some("cancelled"), false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{Choice, ResponseMessage};

    #[test]
    fn a_common_reason_is_shared_and_any_other_kept_as_given() {
        let stop = reasons(&[finish_reason("stop")]);
        assert!(Arc::ptr_eq(&stop, &reasons(&[finish_reason("stop")])));
        assert_eq!(&*stop, [Arc::from("stop")]);
        let odd = reasons(&[finish_reason("pause_turn")]);
        assert_eq!(&*odd, [Arc::from("pause_turn")]);
        let two = reasons(&[finish_reason("stop"), finish_reason("length")]);
        assert_eq!(&*two, [Arc::from("stop"), Arc::from("length")]);
    }

    #[test]
    fn a_stream_the_client_left_marks_its_attempt_cancelled_and_tells_the_request_nothing() {
        use super::super::span::testing::{exported, queue, start};
        use super::super::span::{Kind, Span};

        let queue = queue();
        let request = Span::request(
            &queue,
            None,
            super::super::span::new_trace_id(),
            true,
            start(Kind::Server),
        );
        let trace = AttemptTrace {
            span: request.child(start(Kind::Client)),
            request,
            capture: false,
        };
        let mut stream = StreamTrace::of(&trace);
        let chunk: ChatChunk = serde_json::from_value(serde_json::json!({
            "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "delta": {"content": "secret"}}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8}
        }))
        .unwrap();
        stream.chunk(&chunk);
        drop((stream, trace));
        let spans = exported(&queue);
        let attr = |s: &opentelemetry_proto::tonic::trace::v1::Span, key: &str| {
            s.attributes
                .iter()
                .find(|kv| kv.key == key)
                .map(|kv| format!("{:?}", kv.value))
        };
        let (attempt, request) = (&spans[0], &spans[1]);
        assert_eq!(attempt.kind, 3, "the attempt ends first");
        assert!(attr(attempt, "understudy.outcome")
            .unwrap()
            .contains("cancelled"));
        assert!(attr(attempt, "gen_ai.usage.input_tokens")
            .unwrap()
            .contains('7'));
        assert_eq!(attr(request, "gen_ai.usage.input_tokens"), None);
        assert_eq!(attr(request, "understudy.outcome"), None);
        for s in &spans {
            assert_eq!(
                attr(s, "gen_ai.output.messages"),
                None,
                "no content without capture"
            );
        }
    }

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
