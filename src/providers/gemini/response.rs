//! Gemini `GenerateContentResponse` → OpenAI answer. The wire types here are shared
//! with the stream translator: each streamed `data:` is one of these too.
//!
//! - candidates → choices (`index` = the candidate's index, else its position);
//!   text parts joined, `thought: true` parts and signatures as reasoning (see
//!   [`super::thoughts`]); `functionCall` parts →
//!   `tool_calls` with fresh `call_…` ids and the args serialised (`{}` if absent).
//! - finishReason: STOP (or none) → `stop`, or `tool_calls` when the turn holds
//!   calls; MAX_TOKENS → `length`; anything else (SAFETY, RECITATION, BLOCKLIST,
//!   PROHIBITED_CONTENT, SPII, IMAGE_SAFETY, MALFORMED_FUNCTION_CALL, OTHER, …) →
//!   `content_filter`.
//! - No candidates but `promptFeedback.blockReason`: the prompt was blocked; one
//!   choice, content null, `content_filter`.
//! - usage: prompt = promptTokenCount, completion = candidatesTokenCount +
//!   thoughtsTokenCount (thoughts are billed as output), total = their sum;
//!   `completion_tokens_details.reasoning_tokens` and
//!   `prompt_tokens_details.cached_tokens` when Gemini reports them.
//! - `id` = responseId, else a fresh `chatcmpl-…`; `model` = modelVersion, else the
//!   target's model; `created` = now (Gemini reports no time).

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::thoughts::Thoughts;
use super::upstream_error_in;
use crate::canonical::{
    new_call_id, random_id, unix_now, ChatResponse, Choice, FunctionCall, Origin, ResponseMessage,
    ToolCall, Usage,
};
use crate::providers::AdapterError;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GenerateContentResponse {
    #[serde(default)]
    pub candidates: Option<Vec<Candidate>>,
    #[serde(default)]
    pub prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    pub usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    pub model_version: Option<String>,
    #[serde(default)]
    pub response_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Candidate {
    #[serde(default)]
    pub content: Option<CandidateContent>,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub index: Option<u32>,
}

impl Candidate {
    pub fn parts(&self) -> &[Part] {
        self.content
            .as_ref()
            .and_then(|c| c.parts.as_deref())
            .unwrap_or_default()
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct CandidateContent {
    #[serde(default)]
    pub parts: Option<Vec<Part>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Part {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub thought: Option<bool>,
    #[serde(default)]
    pub thought_signature: Option<String>,
    #[serde(default)]
    pub function_call: Option<FunctionCallPart>,
}

impl Part {
    pub fn is_thought(&self) -> bool {
        self.thought == Some(true)
    }

    /// Visible answer text (thought summaries are not part of the answer).
    pub fn answer_text(&self) -> Option<&str> {
        match (&self.text, self.thought) {
            (Some(t), None | Some(false)) => Some(t),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct FunctionCallPart {
    pub name: String,
    #[serde(default)]
    pub args: Option<Value>,
}

impl FunctionCallPart {
    /// The arguments as OpenAI's JSON string (`{}` when Gemini sent none).
    pub fn arguments(&self) -> String {
        match &self.args {
            None | Some(Value::Null) => "{}".to_string(),
            Some(v) => v.to_string(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PromptFeedback {
    #[serde(default)]
    pub block_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UsageMetadata {
    #[serde(default)]
    pub prompt_token_count: Option<u64>,
    #[serde(default)]
    pub candidates_token_count: Option<u64>,
    #[serde(default)]
    pub thoughts_token_count: Option<u64>,
    #[serde(default)]
    pub cached_content_token_count: Option<u64>,
}

impl UsageMetadata {
    pub fn to_usage(&self) -> Usage {
        let thoughts = self.thoughts_token_count.unwrap_or(0);
        let mut usage = Usage::new(
            self.prompt_token_count.unwrap_or(0),
            self.candidates_token_count
                .unwrap_or(0)
                .saturating_add(thoughts),
        );
        if thoughts > 0 {
            usage.extra.insert(
                "completion_tokens_details".into(),
                json!({ "reasoning_tokens": thoughts }),
            );
        }
        if let Some(cached) = self.cached_content_token_count.filter(|c| *c > 0) {
            usage.extra.insert(
                "prompt_tokens_details".into(),
                json!({ "cached_tokens": cached }),
            );
        }
        usage
    }
}

/// Reads one `GenerateContentResponse` (a whole answer or one stream chunk).
/// `{"error": …}` is the upstream's error; anything that is not the format is a
/// protocol error.
pub(super) fn decode(body: &[u8]) -> Result<GenerateContentResponse, AdapterError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| AdapterError::Protocol(format!("Gemini answer is not JSON: {e}")))?;
    if let Some(err) = upstream_error_in(&value, None) {
        return Err(AdapterError::Upstream(err));
    }
    let resp: GenerateContentResponse = serde_json::from_value(value).map_err(|e| {
        AdapterError::Protocol(format!("not a Gemini GenerateContentResponse: {e}"))
    })?;
    if resp.candidates.is_none() && resp.prompt_feedback.is_none() && resp.usage_metadata.is_none()
    {
        return Err(AdapterError::Protocol(
            "not a Gemini GenerateContentResponse: no candidates, promptFeedback or usageMetadata"
                .into(),
        ));
    }
    Ok(resp)
}

/// OpenAI's finish_reason for Gemini's (see the module docs).
pub(super) fn finish_reason(reason: Option<&str>, has_calls: bool) -> &'static str {
    match reason {
        None | Some("STOP") | Some("FINISH_REASON_UNSPECIFIED") => {
            if has_calls {
                "tool_calls"
            } else {
                "stop"
            }
        }
        Some("MAX_TOKENS") => "length",
        Some(_) => "content_filter",
    }
}

/// A fresh OpenAI-style completion id, for answers without a responseId.
pub(super) fn new_completion_id() -> String {
    random_id("chatcmpl-", 24)
}

pub(super) fn parse(
    body: &[u8],
    fallback_model: &str,
    origin: &Origin,
) -> Result<ChatResponse, AdapterError> {
    let resp = decode(body)?;
    let candidates = resp.candidates.unwrap_or_default();
    let mut choices = Vec::with_capacity(candidates.len().max(1));
    for (pos, c) in candidates.iter().enumerate() {
        let mut text = String::new();
        let mut calls = Vec::new();
        let mut reasoning = Vec::new();
        let mut thoughts = Thoughts::default();
        for part in c.parts() {
            if part.is_thought() {
                thoughts.thought(part);
                continue;
            }
            let id = part.function_call.as_ref().map(|_| new_call_id());
            let sig = part.thought_signature.as_deref();
            reasoning.extend(thoughts.close(sig, id.as_deref(), origin));
            text.push_str(part.answer_text().unwrap_or_default());
            if let (Some(f), Some(id)) = (&part.function_call, id) {
                calls.push(ToolCall {
                    id,
                    kind: "function".into(),
                    function: FunctionCall {
                        name: f.name.clone(),
                        arguments: f.arguments(),
                    },
                });
            }
        }
        reasoning.extend(thoughts.close(None, None, origin));
        let finish = finish_reason(c.finish_reason.as_deref(), !calls.is_empty());
        let content = if text.is_empty() && (!calls.is_empty() || finish == "content_filter") {
            None
        } else {
            Some(text)
        };
        choices.push(Choice {
            index: c.index.unwrap_or(pos as u32),
            message: ResponseMessage {
                reasoning,
                ..ResponseMessage::assistant(content, (!calls.is_empty()).then_some(calls))
            },
            finish_reason: Some(finish.to_string()),
            logprobs: None,
            extra: Map::new(),
        });
    }
    if choices.is_empty() {
        let Some(reason) = resp.prompt_feedback.and_then(|f| f.block_reason) else {
            return Err(AdapterError::Protocol(
                "Gemini answered without candidates and without a blockReason".into(),
            ));
        };
        tracing::debug!(block_reason = %reason, "gemini: prompt blocked");
        choices.push(Choice {
            index: 0,
            message: ResponseMessage::assistant(None, None),
            finish_reason: Some("content_filter".into()),
            logprobs: None,
            extra: Map::new(),
        });
    }
    Ok(ChatResponse {
        id: resp
            .response_id
            .filter(|id| !id.is_empty())
            .unwrap_or_else(new_completion_id),
        object: "chat.completion".into(),
        created: unix_now(),
        model: resp
            .model_version
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| fallback_model.to_string()),
        choices,
        usage: resp.usage_metadata.as_ref().map(UsageMetadata::to_usage),
        extra: Map::new(),
        native: None,
    })
}
