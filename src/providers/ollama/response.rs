//! Ollama answers → OpenAI: the whole answer, and what the stream translator shares
//! with it (in-band errors, tool-call arguments and ids, finish reasons, times).

use std::time::UNIX_EPOCH;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::canonical::{
    new_call_id, random_id, unix_now, ChatResponse, Choice, FunctionCall, Origin, Reasoning,
    ResponseMessage, ToolCall, Usage,
};
use crate::providers::Target;
use crate::providers::{AdapterError, UpstreamError};

/// One answer object: the whole non-streamed answer, or one line of a stream.
#[derive(Debug, Deserialize)]
pub(super) struct Answer {
    #[serde(default)]
    pub(super) model: Option<String>,
    #[serde(default)]
    pub(super) created_at: Option<String>,
    #[serde(default)]
    pub(super) message: Option<AnswerMessage>,
    #[serde(default)]
    pub(super) done: Option<bool>,
    #[serde(default)]
    pub(super) done_reason: Option<String>,
    #[serde(default)]
    pub(super) prompt_eval_count: Option<u64>,
    #[serde(default)]
    pub(super) eval_count: Option<u64>,
    #[serde(default)]
    pub(super) error: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub(super) struct AnswerMessage {
    #[serde(default)]
    pub(super) content: Option<String>,
    #[serde(default)]
    pub(super) tool_calls: Option<Vec<AnswerToolCall>>,
    #[serde(default)]
    pub(super) thinking: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct AnswerToolCall {
    #[serde(default)]
    pub(super) id: Option<String>,
    pub(super) function: AnswerFunction,
}

#[derive(Debug, Deserialize)]
pub(super) struct AnswerFunction {
    pub(super) name: String,
    #[serde(default)]
    pub(super) arguments: Value,
}

/// A whole (non-streamed) answer.
pub(super) fn parse(target: &Target, body: &[u8]) -> Result<ChatResponse, AdapterError> {
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|e| AdapterError::Protocol(format!("Ollama answer: {e}")))?;
    if let Some(err) = &answer.error {
        return Err(in_band_error(err));
    }
    match answer.done {
        Some(true) => {}
        Some(false) => return Err(AdapterError::Protocol("Ollama answer is not done".into())),
        None => {
            return Err(AdapterError::Protocol(
                "Ollama answer has no \"done\"".into(),
            ))
        }
    }
    let Some(message) = answer.message else {
        return Err(AdapterError::Protocol(
            "Ollama answer has no message".into(),
        ));
    };
    let calls = message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .map(|call| {
            Ok(ToolCall {
                id: call_id(call.id),
                kind: "function".into(),
                function: FunctionCall {
                    arguments: arguments_json(call.function.arguments)?,
                    name: call.function.name,
                },
            })
        })
        .collect::<Result<Vec<_>, AdapterError>>()?;
    let finish = finish_reason(!calls.is_empty(), answer.done_reason.as_deref());
    let reasoning: Vec<Reasoning> = message
        .thinking
        .filter(|t| !t.is_empty())
        .map(|t| Reasoning::new(t, Origin::of(target), Value::Null))
        .into_iter()
        .collect();
    let content = message.content.unwrap_or_default();
    let content = (!content.is_empty() || calls.is_empty()).then_some(content);
    Ok(ChatResponse {
        id: completion_id(),
        object: "chat.completion".into(),
        created: created(answer.created_at.as_deref()),
        model: answered_model(answer.model, target),
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage {
                reasoning,
                ..ResponseMessage::assistant(content, (!calls.is_empty()).then_some(calls))
            },
            finish_reason: Some(finish.into()),
            logprobs: None,
            extra: Map::new(),
        }],
        usage: Some(Usage::new(
            answer.prompt_eval_count.unwrap_or(0),
            answer.eval_count.unwrap_or(0),
        )),
        extra: Map::new(),
        native: None,
    })
}

/// `{"error": "..."}` inside a 200: the server failed while answering.
pub(super) fn in_band_error(error: &Value) -> AdapterError {
    let message = match error {
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("message") {
            Some(Value::String(s)) => s.clone(),
            _ => error.to_string(),
        },
        other => other.to_string(),
    };
    AdapterError::Upstream(UpstreamError::new(500, message))
}

/// Ollama's argument object as OpenAI's JSON string (`"{}"` when there are none).
pub(super) fn arguments_json(arguments: Value) -> Result<String, AdapterError> {
    match arguments {
        Value::Null => Ok("{}".into()),
        Value::String(s) if serde_json::from_str::<serde::de::IgnoredAny>(&s).is_ok() => Ok(s),
        Value::String(_) => Err(AdapterError::Protocol(
            "tool call arguments are neither an object nor JSON text".into(),
        )),
        other => Ok(other.to_string()),
    }
}

pub(super) fn call_id(given: Option<String>) -> String {
    given
        .filter(|id| !id.is_empty())
        .unwrap_or_else(new_call_id)
}

pub(super) fn completion_id() -> String {
    random_id("chatcmpl-", 24)
}

fn answered_model(model: Option<String>, target: &Target) -> String {
    model
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| target.model.clone())
}

pub(super) fn finish_reason(has_calls: bool, done_reason: Option<&str>) -> &'static str {
    match done_reason {
        _ if has_calls => "tool_calls",
        Some("length") => "length",
        _ => "stop",
    }
}

pub(super) fn created(created_at: Option<&str>) -> u64 {
    created_at.and_then(rfc3339_secs).unwrap_or_else(unix_now)
}

/// Seconds since the epoch of an RFC 3339 time. Ollama writes the server's local time
/// with its offset (`2023-08-04T08:52:19.385406455-07:00`); humantime reads UTC only,
/// so a numeric offset is applied here.
fn rfc3339_secs(s: &str) -> Option<u64> {
    let s = s.trim();
    let bytes = s.as_bytes();
    let n = bytes.len();
    let (base, offset) = if n > 6 && matches!(bytes[n - 6], b'+' | b'-') && bytes[n - 3] == b':' {
        let hours: i64 = s.get(n - 5..n - 3)?.parse().ok()?;
        let minutes: i64 = s.get(n - 2..)?.parse().ok()?;
        let sign = if bytes[n - 6] == b'-' { -1 } else { 1 };
        (s.get(..n - 6)?, sign * (hours * 3600 + minutes * 60))
    } else {
        (s, 0)
    };
    let local = humantime::parse_rfc3339_weak(base).ok()?;
    let secs = i64::try_from(local.duration_since(UNIX_EPOCH).ok()?.as_secs()).ok()?;
    u64::try_from(secs - offset).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::providers::ollama::tests::local;
    use crate::providers::ollama::ADAPTER;
    use crate::providers::testing::request;
    use crate::providers::Adapter;

    fn parse(body: &[u8]) -> Result<ChatResponse, AdapterError> {
        let req = request(r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#);
        ADAPTER.parse_response(&req, &local("llama3.2"), body)
    }

    fn protocol(body: &[u8]) -> String {
        match parse(body) {
            Err(AdapterError::Protocol(m)) => m,
            other => panic!("expected Protocol, got {other:?}"),
        }
    }

    #[test]
    fn fixture_text_answer() {
        let r = parse(include_bytes!(
            "../../../fixtures/ollama/response_text.json"
        ))
        .unwrap();
        assert!(r.id.starts_with("chatcmpl-") && r.id.len() > 20, "{}", r.id);
        assert_eq!(r.object, "chat.completion");
        assert_eq!(r.created, 1_733_446_018);
        assert_eq!(r.model, "llama3.2");
        assert_eq!(r.choices.len(), 1);
        let c = &r.choices[0];
        assert_eq!(c.index, 0);
        assert_eq!(c.message.role, "assistant");
        assert_eq!(
            c.message.content.as_deref(),
            Some("The sky is blue because of Rayleigh scattering.")
        );
        assert!(c.message.tool_calls.is_none());
        assert_eq!(c.finish_reason.as_deref(), Some("stop"));
        assert_eq!(r.usage, Some(Usage::new(34, 12)));
        assert_eq!(r.usage.as_ref().map(|u| u.total_tokens), Some(46));
    }

    #[test]
    fn fixture_tool_call_answer() {
        let r = parse(include_bytes!(
            "../../../fixtures/ollama/response_tool_calls.json"
        ))
        .unwrap();
        assert_eq!(r.created, 1_721_680_408);
        let c = &r.choices[0];
        assert_eq!(c.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(c.message.content, None, "empty content with calls is null");
        let calls = c.message.tool_calls.as_ref().unwrap();
        assert_eq!(calls.len(), 2);
        assert_ne!(calls[0].id, calls[1].id);
        for (call, city) in calls.iter().zip(["Paris, FR", "Tokyo, JP"]) {
            assert!(
                call.id.starts_with("call_") && call.id.len() == 29,
                "{}",
                call.id
            );
            assert_eq!(call.kind, "function");
            assert_eq!(call.function.name, "get_current_weather");
            let args: Value = serde_json::from_str(&call.function.arguments).unwrap();
            assert_eq!(args, json!({"format": "celsius", "location": city}));
        }
        assert_eq!(r.usage, Some(Usage::new(122, 33)));
    }

    #[test]
    fn fixture_length_answer_with_offset_time_and_cached_prompt() {
        let r = parse(include_bytes!(
            "../../../fixtures/ollama/response_length.json"
        ))
        .unwrap();
        assert_eq!(r.created, 1_748_536_556, "-07:00 applied");
        assert_eq!(r.model, "qwen3:8b");
        let c = &r.choices[0];
        assert_eq!(c.finish_reason.as_deref(), Some("length"));
        assert_eq!(
            c.message.content.as_deref(),
            Some("Once upon a time, in a land far")
        );
        assert!(c.message.extra.is_empty(), "chat shows no thinking");
        assert_eq!(c.message.reasoning.len(), 1);
        assert_eq!(
            c.message.reasoning[0].text,
            "The user wants a story. Keep it short."
        );
        assert_eq!(
            r.usage,
            Some(Usage::new(0, 10)),
            "missing prompt_eval_count is 0"
        );
    }

    #[test]
    fn answers_fill_gaps_and_ids_are_fresh() {
        let body =
            br#"{"message":{"role":"assistant","content":"hi"},"done":true,"done_reason":"load"}"#;
        let before = unix_now();
        let a = parse(body).unwrap();
        let b = parse(body).unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(a.model, "llama3.2", "target model when none is reported");
        assert!(a.created >= before && a.created <= unix_now());
        assert_eq!(a.choices[0].finish_reason.as_deref(), Some("stop"));
        assert_eq!(a.usage, Some(Usage::new(0, 0)));
        let empty =
            parse(br#"{"model":"x","message":{"role":"assistant","content":""},"done":true}"#)
                .unwrap();
        assert_eq!(empty.choices[0].message.content.as_deref(), Some(""));
        assert_eq!(empty.choices[0].finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn a_tool_call_id_the_server_sends_is_kept() {
        let r = parse(
            br#"{"model":"m","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"",
            "tool_calls":[{"id":"call_srv","function":{"index":0,"name":"f","arguments":{}}},
                          {"id":"","function":{"name":"g"}}]},"done":true,"done_reason":"stop"}"#,
        )
        .unwrap();
        let calls = r.choices[0].message.tool_calls.as_ref().unwrap();
        assert_eq!(calls[0].id, "call_srv");
        assert_eq!(calls[0].function.arguments, "{}");
        assert!(calls[1].id.starts_with("call_") && calls[1].id.len() == 29);
        assert_eq!(calls[1].function.arguments, "{}", "no arguments is {{}}");
    }

    #[test]
    fn non_ollama_200_bodies_are_protocol_errors() {
        assert!(protocol(b"<html>hello</html>").contains("Ollama answer"));
        assert!(protocol(b"").contains("Ollama answer"));
        assert!(protocol(b"[1]").contains("Ollama answer"));
        // OpenAI's shape at the wrong URL: no `done`.
        protocol(br#"{"id":"x","object":"chat.completion","choices":[]}"#);
        protocol(br#"{"model":"m","message":{"role":"assistant","content":"x"},"done":false}"#);
        protocol(br#"{"model":"m","done":true,"done_reason":"stop"}"#);
        protocol(br#"{"model":"m","message":{"content":5},"done":true}"#);
        protocol(br#"{"model":"m","message":{"tool_calls":[{"function":{"name":"f","arguments":"{oops"}}]},"done":true}"#);
    }

    #[test]
    fn an_error_inside_a_200_is_an_upstream_error() {
        match parse(br#"{"error":"llama runner process has terminated"}"#) {
            Err(AdapterError::Upstream(e)) => {
                assert_eq!(e.status, 500);
                assert_eq!(e.message, "llama runner process has terminated");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rfc3339_times_with_offsets() {
        for (s, want) in [
            ("2024-12-06T00:46:58.265747Z", Some(1_733_446_018)),
            ("2024-12-06T00:46:58Z", Some(1_733_446_018)),
            ("2024-12-06T00:46:58.123456789+00:00", Some(1_733_446_018)),
            ("2023-08-04T08:52:19.385406455-07:00", Some(1_691_164_339)),
            ("2024-12-06T06:16:58+05:30", Some(1_733_446_018)),
            ("not a time", None),
            ("2024-12-06T00:46:58+xx:00", None),
            ("é2024-12-06T00:46:58-07:00", None),
            ("", None),
        ] {
            assert_eq!(rfc3339_secs(s), want, "{s}");
        }
    }
}
