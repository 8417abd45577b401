//! Anthropic answers → OpenAI: a complete Messages answer, usage and stop reasons
//! (shared with the stream translator).

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::ErrorBody;
use super::request::JSON_TOOL;
use crate::canonical::{
    unix_now, ChatResponse, Choice, FunctionCall, Origin, Reasoning, ResponseMessage, ToolCall,
    Usage,
};
use crate::providers::AdapterError;

/// A 200 body: a message, or (rarely) an error Anthropic reports with status 200.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Body {
    Message(MessageBody),
    Error { error: ErrorBody },
}

#[derive(Deserialize)]
struct MessageBody {
    id: String,
    #[serde(default)]
    model: String,
    content: Vec<Block>,
    #[serde(default)]
    stop_reason: Option<String>,
    usage: AnthropicUsage,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    Thinking {
        thinking: String,
        #[serde(default)]
        signature: String,
    },
    RedactedThinking {
        data: String,
    },
    /// Server tool blocks and later kinds: not part of the answer.
    #[serde(other)]
    Other,
}

/// A thinking block as reasoning: its text, and the block itself to replay (Anthropic
/// checks the signature against the exact text).
pub(super) fn thinking(text: String, signature: String, origin: &Origin) -> Reasoning {
    let block = json!({"type": "thinking", "thinking": text, "signature": signature});
    Reasoning::new(text, origin.clone(), block)
}

/// A redacted thinking block: no text to show, only the data to replay.
pub(super) fn redacted(data: String, origin: &Origin) -> Reasoning {
    let block = json!({"type": "redacted_thinking", "data": data});
    Reasoning::new("", origin.clone(), block)
}

/// Anthropic's usage, as in a message and (all fields optional there) in
/// `message_delta`, whose counts are cumulative.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(super) struct AnthropicUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    /// `{"thinking_tokens": N}`: the part of `output_tokens` spent thinking.
    #[serde(default)]
    output_tokens_details: Option<OutputTokensDetails>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(super) struct OutputTokensDetails {
    #[serde(default)]
    thinking_tokens: Option<u64>,
}

impl AnthropicUsage {
    pub(super) fn is_known(&self) -> bool {
        self.input_tokens.is_some() || self.output_tokens.is_some()
    }

    /// Takes every count `later` reports.
    pub(super) fn update(&mut self, later: AnthropicUsage) {
        let pick = |a: &mut Option<u64>, b: Option<u64>| {
            if b.is_some() {
                *a = b;
            }
        };
        pick(&mut self.input_tokens, later.input_tokens);
        pick(&mut self.output_tokens, later.output_tokens);
        pick(
            &mut self.cache_creation_input_tokens,
            later.cache_creation_input_tokens,
        );
        pick(
            &mut self.cache_read_input_tokens,
            later.cache_read_input_tokens,
        );
        if later.output_tokens_details.is_some() {
            self.output_tokens_details = later.output_tokens_details;
        }
    }

    /// prompt = every input token billed (cache writes and reads included).
    pub(super) fn to_openai(self) -> Usage {
        // Saturating: counts come from the upstream, and no input may panic.
        let cache_read = self.cache_read_input_tokens.unwrap_or(0);
        let prompt = self
            .input_tokens
            .unwrap_or(0)
            .saturating_add(self.cache_creation_input_tokens.unwrap_or(0))
            .saturating_add(cache_read);
        let completion = self.output_tokens.unwrap_or(0);
        let mut usage = Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt.saturating_add(completion),
            extra: Map::new(),
            cache_write_tokens: self.cache_creation_input_tokens.unwrap_or(0),
        };
        if cache_read > 0 {
            let mut details = Map::new();
            details.insert("cached_tokens".into(), cache_read.into());
            usage
                .extra
                .insert("prompt_tokens_details".into(), Value::Object(details));
        }
        let thinking = self
            .output_tokens_details
            .and_then(|d| d.thinking_tokens)
            .unwrap_or(0);
        if thinking > 0 {
            let mut details = Map::new();
            details.insert("reasoning_tokens".into(), thinking.into());
            usage
                .extra
                .insert("completion_tokens_details".into(), Value::Object(details));
        }
        usage
    }
}

/// Anthropic's `stop_reason` as an OpenAI `finish_reason`.
pub(super) fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("end_turn" | "stop_sequence" | "pause_turn") => "stop",
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        other => {
            tracing::debug!(stop_reason = ?other, "anthropic: unknown stop_reason, reporting stop");
            "stop"
        }
    }
}

/// A tool input as OpenAI's arguments string (`{}` for none).
pub(super) fn arguments(input: &Value) -> String {
    match input {
        Value::Null => "{}".to_string(),
        Value::Object(o) if o.is_empty() => "{}".to_string(),
        v => v.to_string(),
    }
}

/// A complete (non-streamed) answer. `fallback_model` names the answer when the body
/// does not; `origin` is the target that gave it, for its thinking.
pub(super) fn parse(
    body: &[u8],
    json_mode: bool,
    fallback_model: &str,
    origin: &Origin,
) -> Result<ChatResponse, AdapterError> {
    let message = match serde_json::from_slice::<Body>(body) {
        Ok(Body::Message(m)) => m,
        Ok(Body::Error { error }) => return Err(AdapterError::Upstream(error.into_upstream(None))),
        Err(e) => {
            return Err(AdapterError::Protocol(format!(
                "not a Messages answer: {e}"
            )))
        }
    };
    let mut text = String::new();
    let mut json: Option<String> = None;
    let mut calls = Vec::new();
    let mut reasoning = Vec::new();
    for block in message.content {
        match block {
            Block::Thinking {
                thinking: t,
                signature,
            } => reasoning.push(thinking(t, signature, origin)),
            Block::RedactedThinking { data } => reasoning.push(redacted(data, origin)),
            Block::Text { text: t } => text.push_str(&t),
            Block::ToolUse { name, input, .. } if json_mode && name == JSON_TOOL => {
                if json.is_none() {
                    json = Some(arguments(&input));
                } else {
                    tracing::debug!("anthropic: dropping a second json_output call");
                }
            }
            Block::ToolUse { id, name, input } => calls.push(ToolCall {
                id,
                kind: "function".into(),
                function: FunctionCall {
                    arguments: arguments(&input),
                    name,
                },
            }),
            Block::Other => {}
        }
    }
    let mut finish = finish_reason(message.stop_reason.as_deref());
    if finish == "tool_calls" && calls.is_empty() {
        finish = "stop"; // only json_output was called: that is the answer
    }
    let content = if let Some(json) = json {
        if !text.is_empty() {
            tracing::debug!(
                len = text.len(),
                "anthropic: dropping text beside json_output"
            );
        }
        Some(json)
    } else if !text.is_empty() || calls.is_empty() {
        Some(text)
    } else {
        None
    };
    let tool_calls = (!calls.is_empty()).then_some(calls);
    Ok(ChatResponse {
        id: message.id,
        object: "chat.completion".into(),
        created: unix_now(),
        model: if message.model.is_empty() {
            fallback_model.to_string()
        } else {
            message.model
        },
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage {
                reasoning,
                ..ResponseMessage::assistant(content, tool_calls)
            },
            finish_reason: Some(finish.to_string()),
            logprobs: None,
            extra: Map::new(),
        }],
        usage: Some(message.usage.to_openai()),
        extra: Map::new(),
        native: None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::providers::UpstreamError;

    const TEXT: &str = include_str!("../../../fixtures/anthropic/response_text.json");
    const TOOL_USE: &str = include_str!("../../../fixtures/anthropic/response_tool_use.json");
    const MAX_TOKENS: &str = include_str!("../../../fixtures/anthropic/response_max_tokens.json");
    const JSON_OUTPUT: &str = include_str!("../../../fixtures/anthropic/response_json_output.json");

    fn origin() -> Origin {
        Origin {
            provider: "anthropic".into(),
            kind: "anthropic".into(),
            model: "claude-sonnet-4-5".into(),
        }
    }

    fn ok(body: &str, json_mode: bool) -> ChatResponse {
        parse(body.as_bytes(), json_mode, "claude-sonnet-4-5", &origin()).unwrap()
    }

    #[test]
    fn cache_reads_and_thinking_tokens_become_openai_usage_details() {
        let body = r#"{"id":"msg_1","type":"message","role":"assistant","content":[
            {"type":"text","text":"ok"}],"stop_reason":"end_turn",
            "usage":{"input_tokens":10,"cache_creation_input_tokens":5,"cache_read_input_tokens":100,
            "output_tokens":40,"output_tokens_details":{"thinking_tokens":25}}}"#;
        let usage = serde_json::to_value(ok(body, false).usage.unwrap()).unwrap();
        assert_eq!(
            usage,
            json!({"prompt_tokens": 115, "completion_tokens": 40, "total_tokens": 155,
                "prompt_tokens_details": {"cached_tokens": 100},
                "completion_tokens_details": {"reasoning_tokens": 25}})
        );
    }

    #[test]
    fn text_blocks_are_joined_and_thinking_is_reasoning() {
        let r = ok(TEXT, false);
        assert_eq!(r.id, "msg_01XFDUDYJgAACzvnptvVoYEL");
        assert_eq!(r.object, "chat.completion");
        assert_eq!(r.model, "claude-sonnet-4-5-20250929");
        assert!(r.created >= 1_700_000_000);
        let c = &r.choices[0];
        assert_eq!(c.index, 0);
        assert_eq!(c.message.role, "assistant");
        assert_eq!(
            c.message.content.as_deref(),
            Some("Hello! How can I help you today?")
        );
        assert!(c.message.tool_calls.is_none());
        assert_eq!(c.finish_reason.as_deref(), Some("stop"));
        assert_eq!(r.usage, Some(Usage::new(12, 38)));
        let thought = "The user greets me; answer briefly.";
        assert_eq!(
            c.message.reasoning,
            [thinking(
                thought.into(),
                "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds".into(),
                &origin()
            )]
        );
        assert_eq!(c.message.reasoning[0].data["thinking"], thought);
        let redacted_body = r#"{"id":"msg_1","type":"message","role":"assistant","content":[
            {"type":"redacted_thinking","data":"EmwKAhgB"},{"type":"text","text":"ok"}],
            "stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}"#;
        let r2 = ok(redacted_body, false);
        assert_eq!(
            r2.choices[0].message.reasoning[0].data,
            json!({"type": "redacted_thinking", "data": "EmwKAhgB"})
        );
        // The OpenAI shape, as a client receives it.
        let wire = serde_json::to_value(&r).unwrap();
        assert_eq!(wire["choices"][0]["logprobs"], Value::Null);
        assert_eq!(wire["usage"]["total_tokens"], 50);
    }

    #[test]
    fn parallel_tool_use_becomes_tool_calls_with_cache_tokens_counted() {
        let r = ok(TOOL_USE, false);
        let c = &r.choices[0];
        assert_eq!(c.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(
            c.message.content.as_deref(),
            Some("I'll look up the weather in both cities and the current time.")
        );
        let calls = c.message.tool_calls.as_ref().unwrap();
        let got: Vec<(&str, &str, &str, Value)> = calls
            .iter()
            .map(|t| {
                (
                    t.id.as_str(),
                    t.kind.as_str(),
                    t.function.name.as_str(),
                    serde_json::from_str(&t.function.arguments).unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "toolu_01A09q90qw90lq917835lq9",
                    "function",
                    "get_weather",
                    json!({"location":"Paris, France","unit":"celsius"})
                ),
                (
                    "toolu_01B5cPNg1ZkQxRWsyW1uDBkT",
                    "function",
                    "get_weather",
                    json!({"location":"Tokyo, Japan","unit":"celsius"})
                ),
                (
                    "toolu_01CdXd3cMv4aK1AqZ7pW9sRt",
                    "function",
                    "get_time",
                    json!({})
                ),
            ]
        );
        assert_eq!(calls[2].function.arguments, "{}");
        let usage = r.usage.unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens
            ),
            (420 + 1500 + 2000, 151, 420 + 1500 + 2000 + 151)
        );
        assert_eq!(usage.extra["prompt_tokens_details"]["cached_tokens"], 2000);
    }

    #[test]
    fn tool_calls_only_have_null_content() {
        let body = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x",
            "content":[{"type":"tool_use","id":"toolu_1","name":"f","input":{}}],
            "stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":2}}"#;
        let r = ok(body, false);
        assert!(r.choices[0].message.content.is_none());
        assert_eq!(r.usage, Some(Usage::new(1, 2)));
    }

    #[test]
    fn max_tokens_is_length() {
        let r = ok(MAX_TOKENS, false);
        assert_eq!(r.choices[0].finish_reason.as_deref(), Some("length"));
        assert_eq!(
            r.choices[0].message.content.as_deref(),
            Some("Once upon a time, in a kingdom by the sea, there lived a")
        );
    }

    #[test]
    fn json_output_is_unwrapped_into_content_in_json_mode() {
        let r = ok(JSON_OUTPUT, true);
        let c = &r.choices[0];
        assert_eq!(c.finish_reason.as_deref(), Some("stop"));
        assert!(c.message.tool_calls.is_none());
        let content: Value = serde_json::from_str(c.message.content.as_deref().unwrap()).unwrap();
        assert_eq!(
            content,
            json!({"name":"Science fair","date":"Friday","participants":["Alice","Bob"]})
        );
        // A refusal in JSON mode calls no tool: its text is the answer.
        let refusal = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x",
            "content":[{"type":"text","text":"I can't help with that."}],
            "stop_reason":"refusal","usage":{"input_tokens":1,"output_tokens":2}}"#;
        let r = ok(refusal, true);
        assert_eq!(
            r.choices[0].message.content.as_deref(),
            Some("I can't help with that.")
        );
        assert_eq!(
            r.choices[0].finish_reason.as_deref(),
            Some("content_filter")
        );
        // Without JSON mode the same answer is an ordinary tool call.
        let r = ok(JSON_OUTPUT, false);
        assert_eq!(r.choices[0].finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(
            r.choices[0].message.tool_calls.as_ref().unwrap()[0]
                .function
                .name,
            "json_output"
        );
    }

    #[test]
    fn stop_reasons_map() {
        for (reason, want) in [
            (Some("end_turn"), "stop"),
            (Some("stop_sequence"), "stop"),
            (Some("pause_turn"), "stop"),
            (Some("max_tokens"), "length"),
            (Some("model_context_window_exceeded"), "length"),
            (Some("tool_use"), "tool_calls"),
            (Some("refusal"), "content_filter"),
            (Some("something_new"), "stop"),
            (None, "stop"),
        ] {
            assert_eq!(finish_reason(reason), want, "{reason:?}");
        }
    }

    #[test]
    fn absurd_token_counts_saturate() {
        let body = format!(
            r#"{{"id":"msg_1","type":"message","role":"assistant","content":[],"stop_reason":"end_turn",
            "usage":{{"input_tokens":{m},"cache_read_input_tokens":{m},"output_tokens":{m}}}}}"#,
            m = u64::MAX
        );
        let u = ok(&body, false).usage.unwrap();
        assert_eq!((u.prompt_tokens, u.total_tokens), (u64::MAX, u64::MAX));
    }

    #[test]
    fn model_falls_back_to_the_target() {
        let body = r#"{"id":"msg_1","type":"message","role":"assistant","content":[],
            "stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}"#;
        let r = ok(body, false);
        assert_eq!(r.model, "claude-sonnet-4-5");
        assert_eq!(r.choices[0].message.content.as_deref(), Some(""));
    }

    #[test]
    fn an_error_in_a_200_body_is_upstream_and_garbage_is_protocol() {
        let e = parse(
            include_bytes!("../../../fixtures/anthropic/error_overloaded.json"),
            false,
            "m",
            &origin(),
        );
        assert!(matches!(
            e,
            Err(AdapterError::Upstream(UpstreamError { status: 529, ref message, .. })) if message == "Overloaded"
        ));
        for bad in [
            &b"<html>502</html>"[..],
            br#"{"id":"chatcmpl-1","object":"chat.completion","choices":[]}"#,
            br#"{"type":"message","id":"m","content":"text","usage":{}}"#,
            br#"{"type":"message","id":"m","content":[{"type":"text"}],"usage":{}}"#,
            br#"{"type":"completion","completion":"hi"}"#,
            b"",
        ] {
            assert!(
                matches!(
                    parse(bad, false, "m", &origin()),
                    Err(AdapterError::Protocol(_))
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
