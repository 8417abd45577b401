//! What a resumed stream (`failover.resume_streams`) needs to know about the answer
//! the client has received — its text, whether it may be continued — and how a
//! continuation's chunks join it: the first answer's `id`, `created` and `model`, no
//! second role chunk, and no text the client already has (a provider that echoes the
//! prefill, or the whitespace the prefill was trimmed of).

use crate::canonical::{ChatChunk, ChunkChoice};

/// Why a failed stream cannot be continued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotResumable {
    NoText,
    InToolCall,
    /// The answer had already finished (only usage or the end marker was missing).
    Finished,
    /// A refusal, or choices beyond the first.
    Other,
    /// The client got the upstream's own events (a native target): a translated
    /// continuation cannot join them.
    Native,
}

impl NotResumable {
    pub fn describe(self) -> &'static str {
        match self {
            NotResumable::NoText => "no text was sent",
            NotResumable::InToolCall => "it was inside a tool call",
            NotResumable::Finished => "the answer had finished",
            NotResumable::Other => "it carried a refusal or several choices",
            NotResumable::Native => "the client got the provider's own events",
        }
    }
}

/// The answer as the client has received it.
pub struct Splice {
    text: String,
    blocked: Option<NotResumable>,
    /// `id`, `created`, `model` of the first answer.
    head: Option<(String, u64, String)>,
    echo: Option<Echo>,
    /// The client speaks chat: an upstream's own bytes are chat chunks too (an
    /// OpenAI-kind target's events, forwarded as they came), so a translated
    /// continuation joins them like any other chunk.
    chat_client: bool,
}

/// Text a continuation may repeat before its own: the prefill (`sent`, trimmed), and
/// the whitespace the prefill was trimmed of (`tail`).
struct Echo {
    sent: String,
    tail: String,
    held: String,
    /// Past the prefill check; only the whitespace check is left.
    prefill_checked: bool,
}

impl Default for Splice {
    fn default() -> Self {
        Splice::new()
    }
}

impl Splice {
    pub fn new() -> Splice {
        Splice {
            text: String::new(),
            blocked: None,
            head: None,
            echo: None,
            chat_client: false,
        }
    }

    /// For a client that speaks chat completions (see the field).
    pub fn for_chat_client(mut self) -> Splice {
        self.chat_client = true;
        self
    }

    /// Learns from a chunk on its way to the client.
    pub fn observe(&mut self, chunk: &ChatChunk) {
        if self.head.is_none() && !chunk.id.is_empty() {
            self.head = Some((chunk.id.clone(), chunk.created, chunk.model.clone()));
        }
        if chunk.native.is_some() && !self.chat_client {
            self.block(NotResumable::Native);
        }
        for c in &chunk.choices {
            if c.index != 0 || c.delta.refusal.as_deref().is_some_and(|r| !r.is_empty()) {
                self.block(NotResumable::Other);
            }
            if c.delta.tool_calls.as_ref().is_some_and(|t| !t.is_empty()) {
                self.block(NotResumable::InToolCall);
            }
            if c.finish_reason.is_some() {
                self.block(NotResumable::Finished);
            }
            if let Some(t) = &c.delta.content {
                self.text.push_str(t);
            }
        }
    }

    fn block(&mut self, why: NotResumable) {
        self.blocked.get_or_insert(why);
    }

    /// The prefill to continue from, or why there is none.
    pub fn prefill(&self) -> Result<&str, NotResumable> {
        if let Some(why) = self.blocked {
            return Err(why);
        }
        // Anthropic refuses a prefill that ends in whitespace; no model needs it.
        let p = self.text.trim_end();
        if p.is_empty() {
            return Err(NotResumable::NoText);
        }
        Ok(p)
    }

    /// A continuation of [`Self::prefill`] starts.
    pub fn begin(&mut self) {
        let sent = self.text.trim_end().to_string();
        let tail = self.text[sent.len()..].to_string();
        self.echo = Some(Echo {
            sent,
            tail,
            held: String::new(),
            prefill_checked: false,
        });
    }

    /// A continuation's chunk as the client gets it (`None`: nothing to send yet).
    /// Text that may still be an echo is held until it is told apart, or until a
    /// tool call or finish reason comes.
    pub fn rewrite(&mut self, mut chunk: ChatChunk) -> Option<ChatChunk> {
        if let Some((id, created, model)) = &self.head {
            chunk.id.clone_from(id);
            chunk.created = *created;
            chunk.model.clone_from(model);
        }
        chunk.native = None;
        chunk.choices.retain(|c| c.index == 0);
        let mut release = false;
        for c in &mut chunk.choices {
            let d = &mut c.delta;
            d.role = None;
            d.reasoning = None;
            release |= c.finish_reason.is_some() || d.tool_calls.is_some() || d.refusal.is_some();
            let text = d.content.take();
            if text.is_some() || release {
                let out = self.unecho(text.as_deref().unwrap_or_default(), release);
                d.content = (!out.is_empty()).then_some(out);
            }
        }
        chunk.choices.retain(|c| !empty(c));
        if chunk.choices.is_empty() && chunk.usage.is_none() {
            return None;
        }
        self.observe(&chunk);
        Some(chunk)
    }

    /// The text to send for a piece of continuation text. `release`: nothing more
    /// may be held (the continuation moves on to a tool call or its end).
    fn unecho(&mut self, piece: &str, release: bool) -> String {
        let Some(e) = &mut self.echo else {
            return piece.to_string();
        };
        e.held.push_str(piece);
        if !e.prefill_checked {
            if !release && e.held.len() < e.sent.len() && e.sent.starts_with(e.held.as_str()) {
                return String::new(); // may still be the prefill repeated
            }
            e.prefill_checked = true;
            if e.held.starts_with(e.sent.as_str()) {
                e.held.drain(..e.sent.len());
            }
        }
        if !release && e.held.len() < e.tail.len() && e.tail.starts_with(e.held.as_str()) {
            return String::new(); // may still be the trimmed whitespace
        }
        let common: usize = e
            .held
            .chars()
            .zip(e.tail.chars())
            .take_while(|(a, b)| a == b)
            .map(|(a, _)| a.len_utf8())
            .sum();
        let out = e.held[common..].to_string();
        self.echo = None;
        out
    }

    /// Whatever a continuation that ended still holds, as a last text chunk.
    pub fn flush(&mut self) -> Option<ChatChunk> {
        let text = self.unecho("", true);
        if text.is_empty() {
            return None;
        }
        let (id, created, model) = self.head.clone().unwrap_or_default();
        let chunk = ChatChunk::new(&id, created, &model)
            .with_delta(crate::canonical::Delta::text(text), None);
        self.observe(&chunk);
        Some(chunk)
    }
}

fn empty(c: &ChunkChoice) -> bool {
    let d = &c.delta;
    c.finish_reason.is_none()
        && c.logprobs.is_none()
        && d.content.is_none()
        && d.refusal.is_none()
        && d.tool_calls.is_none()
        && d.role.is_none()
        && d.reasoning.is_none()
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::canonical::testing::delta;

    fn text(s: &str) -> ChatChunk {
        delta(json!({"content": s}), Value::Null)
    }

    /// The text a client gets from a continuation's pieces (`finish` ends it).
    fn spliced(sent: &str, pieces: &[&str]) -> String {
        let mut s = Splice::new();
        s.observe(&delta(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        ));
        s.observe(&text(sent));
        s.begin();
        let mut out = String::new();
        for p in pieces {
            if let Some(c) = s.rewrite(text(p)) {
                out.push_str(c.choices[0].delta.content.as_deref().unwrap_or(""));
            }
        }
        if let Some(c) = s.rewrite(delta(json!({}), json!("stop"))) {
            out.push_str(c.choices[0].delta.content.as_deref().unwrap_or(""));
        }
        out
    }

    #[test]
    fn a_continuation_joins_without_repeating_what_was_sent() {
        assert_eq!(spliced("The sky is", &[" blue", "."]), " blue.");
        // An echo of the whole prefill, in pieces, is dropped.
        assert_eq!(
            spliced("The sky is", &["The sky", " is", " blue."]),
            " blue."
        );
        assert_eq!(spliced("The sky is", &["The sky is blue."]), " blue.");
        // The prefill went without its trailing space; the client has it already.
        assert_eq!(spliced("The sky is ", &[" blue."]), "blue.");
        assert_eq!(spliced("Lines\n\n", &["\n", "\nNext"]), "Next");
        assert_eq!(spliced("The sky is ", &["blue."]), "blue.");
        // A continuation that starts like the prefill but is not an echo.
        assert_eq!(spliced("The sky is", &["The", " end."]), "The end.");
        // Held text is not lost when the continuation ends.
        assert_eq!(spliced("The sky is", &["The"]), "The");
    }

    #[test]
    fn a_continuation_keeps_the_first_answers_identity_and_drops_its_role() {
        let mut s = Splice::new();
        s.observe(&text("Hello"));
        s.begin();
        let mut first = ChatChunk::new("other-id", 99, "other-model")
            .with_delta(crate::canonical::Delta::role(), None);
        assert!(
            s.rewrite(first.clone()).is_none(),
            "a role-only chunk is dropped"
        );
        first.choices[0].delta.content = Some(" world".into());
        let c = s.rewrite(first).unwrap();
        assert_eq!(
            (c.id.as_str(), c.created, c.model.as_str()),
            ("chatcmpl-1", 7, "gpt-x")
        );
        assert_eq!(c.choices[0].delta.role, None);
        assert_eq!(s.prefill(), Ok("Hello world"));
    }

    #[test]
    fn tool_calls_finishes_and_refusals_cannot_be_resumed() {
        let mut s = Splice::new();
        assert_eq!(s.prefill(), Err(NotResumable::NoText));
        s.observe(&text("Let me check."));
        assert_eq!(s.prefill(), Ok("Let me check."));
        s.observe(&delta(
            json!({"tool_calls": [{"index": 0, "id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"a"}}]}),
            Value::Null,
        ));
        assert_eq!(s.prefill(), Err(NotResumable::InToolCall));
        let mut s = Splice::new();
        s.observe(&text("Done"));
        s.observe(&delta(json!({}), json!("stop")));
        assert_eq!(s.prefill(), Err(NotResumable::Finished));
        let mut s = Splice::new();
        s.observe(&delta(json!({"refusal": "No"}), Value::Null));
        assert_eq!(s.prefill(), Err(NotResumable::Other));
        let mut s = Splice::new();
        let mut native = text("Hi");
        native.native = Some(bytes::Bytes::from_static(b"event: x\n\n"));
        let mut chat = Splice::new().for_chat_client();
        chat.observe(&native);
        assert_eq!(
            chat.prefill(),
            Ok("Hi"),
            "a chat client's forwarded chunks resume"
        );
        s.observe(&native);
        assert_eq!(s.prefill(), Err(NotResumable::Native));
    }
}
