//! Gemini's reasoning: `thought: true` parts (thought summaries, shown when
//! `includeThoughts` is on) and `thoughtSignature`s, which ride on a thought part, on
//! the first text part, or on a `functionCall` part (Gemini 3 requires that one back
//! on the same call in the next request).
//!
//! A piece of reasoning ends where the model's visible output resumes: the thought
//! parts before it, plus the signature of the part that ends it (and which call that
//! is). Its replay data:
//! `{"thoughts": [<thought parts as sent>], "signature": "…", "call": "call_…"}`;
//! [`super::request`] puts the thoughts back at the head of the model turn and the
//! signature on its call (or, without `call`, on the turn's first text part).

use serde_json::{json, Map, Value};

use super::response::Part;
use crate::canonical::{Origin, Reasoning};

/// The open piece of one candidate's reasoning.
#[derive(Debug, Default)]
pub(super) struct Thoughts {
    text: String,
    parts: Vec<Value>,
}

impl Thoughts {
    /// Takes a thought part; its text (the part to show) when it has any.
    pub(super) fn thought<'p>(&mut self, part: &'p Part) -> Option<&'p str> {
        let mut kept = Map::new();
        kept.insert("thought".into(), true.into());
        if let Some(t) = &part.text {
            kept.insert("text".into(), t.clone().into());
            self.text.push_str(t);
        }
        if let Some(s) = &part.thought_signature {
            kept.insert("thoughtSignature".into(), s.clone().into());
        }
        self.parts.push(Value::Object(kept));
        part.text.as_deref().filter(|t| !t.is_empty())
    }

    /// Visible output resumes with a part carrying `signature` (on the call `call`,
    /// when it is one): the piece that ends here, if there is one.
    pub(super) fn close(
        &mut self,
        signature: Option<&str>,
        call: Option<&str>,
        origin: &Origin,
    ) -> Option<Reasoning> {
        if self.parts.is_empty() && signature.is_none() {
            return None;
        }
        let mut data = json!({"thoughts": std::mem::take(&mut self.parts)});
        if let Some(s) = signature {
            data["signature"] = s.into();
            if let Some(c) = call {
                data["call"] = c.into();
            }
        }
        Some(Reasoning::new(
            std::mem::take(&mut self.text),
            origin.clone(),
            data,
        ))
    }
}

/// Replay data read back: thought parts, and signatures for calls and text.
#[derive(Debug, Default)]
pub(super) struct Replay {
    pub(super) thoughts: Vec<Value>,
    /// Signatures by the id of the call they ride on.
    pub(super) calls: Vec<(String, String)>,
    pub(super) text: Option<String>,
}

impl Replay {
    /// The replay data of the pieces of `reasoning` that this target produced.
    pub(super) fn of<'a>(reasoning: impl Iterator<Item = &'a Reasoning>) -> Replay {
        let mut out = Replay::default();
        for r in reasoning {
            if let Some(parts) = r.data.get("thoughts").and_then(Value::as_array) {
                out.thoughts
                    .extend(parts.iter().filter(|p| p.is_object()).cloned());
            }
            let Some(sig) = r.data.get("signature").and_then(Value::as_str) else {
                continue;
            };
            match r.data.get("call").and_then(Value::as_str) {
                Some(call) => out.calls.push((call.to_string(), sig.to_string())),
                None => {
                    out.text.get_or_insert_with(|| sig.to_string());
                }
            }
        }
        out
    }

    pub(super) fn call_signature(&self, id: &str) -> Option<String> {
        self.calls
            .iter()
            .find(|(c, _)| c == id)
            .map(|(_, s)| s.clone())
    }
}
