//! The drafts a `chat.completion` and its stream chunks share: the same envelope,
//! choices that differ only in naming their body `message` or `delta`, and bodies
//! that differ only in the type of their tool calls. One reader for each, so the
//! answer and the chunk cannot drift apart in how they read the wire.

use serde::de::{DeserializeOwned, MapAccess};

use super::Usage;

/// `id`, `object`, `created`, `model`, `choices` and `usage`, as read so far.
pub(crate) struct EnvelopeDraft<C> {
    pub id: Option<String>,
    pub object: Option<String>,
    pub created: Option<u64>,
    pub model: Option<String>,
    pub choices: Option<Vec<C>>,
    pub usage: Option<Usage>,
}

impl<C> Default for EnvelopeDraft<C> {
    fn default() -> Self {
        EnvelopeDraft {
            id: None,
            object: None,
            created: None,
            model: None,
            choices: None,
            usage: None,
        }
    }
}

impl<C: DeserializeOwned> EnvelopeDraft<C> {
    /// Reads `key` when it is an envelope field; `false` leaves it for `extra`.
    pub fn field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<bool, A::Error> {
        match key {
            "id" => self.id = Some(map.next_value()?),
            "object" => self.object = Some(map.next_value()?),
            "created" => self.created = Some(map.next_value()?),
            "model" => self.model = Some(map.next_value()?),
            "choices" => self.choices = Some(map.next_value()?),
            "usage" => self.usage = map.next_value()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// A choice: `index`, its body under `body_key`, `finish_reason`, `logprobs`.
pub(crate) struct ChoiceDraft<B> {
    pub index: Option<u32>,
    pub body: Option<B>,
    pub finish_reason: Option<String>,
    pub logprobs: Option<serde_json::Value>,
}

impl<B> Default for ChoiceDraft<B> {
    fn default() -> Self {
        ChoiceDraft {
            index: None,
            body: None,
            finish_reason: None,
            logprobs: None,
        }
    }
}

impl<B: DeserializeOwned> ChoiceDraft<B> {
    pub fn field<'de, A: MapAccess<'de>>(
        &mut self,
        body_key: &str,
        key: &str,
        map: &mut A,
    ) -> Result<bool, A::Error> {
        match key {
            "index" => self.index = Some(map.next_value()?),
            "finish_reason" => self.finish_reason = map.next_value()?,
            "logprobs" => self.logprobs = map.next_value()?,
            k if k == body_key => self.body = Some(map.next_value()?),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// A message or delta: `role`, `content`, `tool_calls`, `refusal`.
pub(crate) struct MessageDraft<T> {
    pub role: Option<String>,
    pub content: Option<String>,
    pub tool_calls: Option<Vec<T>>,
    pub refusal: Option<String>,
}

impl<T> Default for MessageDraft<T> {
    fn default() -> Self {
        MessageDraft {
            role: None,
            content: None,
            tool_calls: None,
            refusal: None,
        }
    }
}

impl<T: DeserializeOwned> MessageDraft<T> {
    pub fn field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<bool, A::Error> {
        match key {
            "role" => self.role = map.next_value()?,
            "content" => self.content = map.next_value()?,
            "tool_calls" => self.tool_calls = map.next_value()?,
            "refusal" => self.refusal = map.next_value()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}
