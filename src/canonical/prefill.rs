//! A request that asks a model to continue a partial answer: the conversation plus
//! the assistant text already sent, as a final assistant message (a prefill). What a
//! stream resume sends to the next target (`failover.resume_streams`).

use serde_json::Value;

use super::{ChatRequest, Content, Message, Role};

impl ChatRequest {
    /// This request with `partial` as its final assistant message. `raw` is rebuilt
    /// to match, so kinds that forward the chat body send the prefill too. The
    /// continuation goes without the client's thinking setting (the model's default):
    /// the thinking behind the partial text is done, and Anthropic refuses a prefill
    /// with thinking on. `Err` says why this request cannot be continued.
    pub fn with_prefill(&self, partial: &str) -> Result<ChatRequest, String> {
        if let Some(why) = &self.untranslatable {
            return Err(why.clone());
        }
        if self.n.is_some_and(|n| n > 1) {
            return Err("a request for several choices cannot be continued".into());
        }
        let mut raw: Value = serde_json::from_slice(&self.raw)
            .map_err(|e| format!("the request body cannot be read again: {e}"))?;
        let Some(body) = raw.as_object_mut() else {
            return Err("the request body is not a JSON object".into());
        };
        let Some(messages) = body.get_mut("messages").and_then(Value::as_array_mut) else {
            return Err("the request body has no messages".into());
        };
        messages.push(serde_json::json!({"role": "assistant", "content": partial}));
        body.remove("reasoning_effort");
        let raw = serde_json::to_vec(&raw).map_err(|e| e.to_string())?;

        let mut req = self.clone();
        req.messages.push(Message {
            role: Role::Assistant,
            content: Some(Content::Text(partial.to_string())),
            name: None,
            tool_calls: None,
            tool_call_id: None,
            reasoning: Vec::new(),
        });
        req.raw = raw.into();
        req.reasoning_effort = None;
        req.thinking = None;
        // The client's own API body has no prefill: every target gets the translation.
        req.native = None;
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde_json::{json, Value};

    use crate::canonical::{ChatRequest, Role, Thinking};

    fn request(v: Value) -> ChatRequest {
        ChatRequest::parse(Bytes::from(v.to_string())).unwrap()
    }

    #[test]
    fn the_partial_text_becomes_the_final_assistant_message_in_both_forms() {
        let mut req = request(
            json!({"model": "m", "stream": true, "reasoning_effort": "high",
            "messages": [{"role": "user", "content": "hi"}], "top_k": 3}),
        );
        req.thinking = Some(Thinking::Budget(2048));
        let c = req.with_prefill("Once upon").unwrap();
        let last = c.messages.last().unwrap();
        assert_eq!(
            (last.role, last.text().as_str()),
            (Role::Assistant, "Once upon")
        );
        assert_eq!(c.thinking(), None);
        let raw: Value = serde_json::from_slice(&c.raw).unwrap();
        assert_eq!(
            raw["messages"],
            json!([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Once upon"}])
        );
        assert_eq!(raw["top_k"], 3, "unknown fields still pass through");
        assert!(raw.get("reasoning_effort").is_none());
        assert!(c.is_stream());
        assert_eq!(req.messages.len(), 1, "the original is untouched");
    }

    #[test]
    fn requests_that_cannot_be_continued_say_why() {
        let mut req =
            request(json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "hi"}]}));
        assert!(req
            .with_prefill("x")
            .unwrap_err()
            .contains("several choices"));
        req.n = None;
        req.untranslatable = Some("a document block".into());
        assert_eq!(req.with_prefill("x").unwrap_err(), "a document block");
    }
}
