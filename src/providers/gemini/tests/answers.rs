//! Answer tests: complete `generateContent` bodies → OpenAI responses.

use std::collections::HashSet;

use serde_json::{json, Value};

use super::*;
use crate::providers::testing::request;

fn parse(body: &str) -> Result<ChatResponse, AdapterError> {
    let req = request(&msgs(r#"[{"role":"user","content":"x"}]"#));
    ADAPTER.parse_response(&req, &gemini_target(), body.as_bytes())
}

#[test]
fn text_answer() {
    let r = parse(fixture!("response_text.json")).unwrap();
    assert_eq!(r.id, "9oVFIBT5rI1rt1aoXJ2YXP");
    assert_eq!(r.object, "chat.completion");
    assert_eq!(r.model, "gemini-2.0-flash");
    assert!(r.created > 1_700_000_000);
    assert_eq!(r.choices.len(), 1);
    let c = &r.choices[0];
    assert_eq!(c.index, 0);
    assert_eq!(c.message.role, "assistant");
    assert_eq!(
        c.message.content.as_deref(),
        Some("Paris is the capital of France. It sits on the Seine.")
    );
    assert!(c.message.tool_calls.is_none());
    assert_eq!(c.finish_reason.as_deref(), Some("stop"));
    assert_eq!(r.usage, Some(crate::canonical::Usage::new(9, 14)));
    assert_eq!(r.usage.as_ref().map(|u| u.total_tokens), Some(23));
}

#[test]
fn parallel_function_calls_answer() {
    let r = parse(fixture!("response_function_calls.json")).unwrap();
    let c = &r.choices[0];
    assert_eq!(c.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(c.message.content, None);
    let calls = c.message.tool_calls.as_ref().unwrap();
    let got: Vec<(&str, Value)> = calls
        .iter()
        .map(|t| {
            assert!(is_call_id(&t.id), "{}", t.id);
            assert_eq!(t.kind, "function");
            (
                t.function.name.as_str(),
                serde_json::from_str(&t.function.arguments).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "get_weather",
                json!({"location": "Paris", "unit": "celsius"})
            ),
            (
                "get_weather",
                json!({"location": "London", "unit": "celsius"})
            ),
            ("get_time", json!({})),
        ]
    );
    assert_eq!(calls[2].function.arguments, "{}");
    let ids: HashSet<_> = calls.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids.len(), 3, "ids are unique");
    let usage = r.usage.unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (112, 41 + 66, 219)
    );
    assert_eq!(
        usage.extra["completion_tokens_details"],
        json!({"reasoning_tokens": 66})
    );
}

#[test]
fn max_tokens_answer_is_length() {
    let r = parse(fixture!("response_max_tokens.json")).unwrap();
    assert_eq!(r.choices[0].finish_reason.as_deref(), Some("length"));
    assert_eq!(
        r.choices[0].message.content.as_deref(),
        Some("Once upon a time, in a valley between two")
    );
}

#[test]
fn blocked_prompt_is_one_content_filter_choice() {
    let r = parse(fixture!("response_blocked_prompt.json")).unwrap();
    assert_eq!(r.id, "RZJYn7nDPc6-u50zvGLXK-");
    assert_eq!(r.choices.len(), 1);
    assert_eq!(r.choices[0].index, 0);
    assert_eq!(r.choices[0].message.content, None);
    assert!(r.choices[0].message.tool_calls.is_none());
    assert_eq!(
        r.choices[0].finish_reason.as_deref(),
        Some("content_filter")
    );
    assert_eq!(r.usage, Some(crate::canonical::Usage::new(18, 0)));
}

#[test]
fn thoughts_are_skipped_but_billed() {
    let r = parse(fixture!("response_thoughts.json")).unwrap();
    assert_eq!(
        r.choices[0].message.content.as_deref(),
        Some("There are 3 r's in \"strawberry\".")
    );
    assert_eq!(r.model, "gemini-2.5-pro");
    let u = r.usage.unwrap();
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (11, 293, 304)
    );
}

#[test]
fn finish_reasons_map() {
    for (reason, calls, want) in [
        ("STOP", false, "stop"),
        ("STOP", true, "tool_calls"),
        ("FINISH_REASON_UNSPECIFIED", false, "stop"),
        ("MAX_TOKENS", false, "length"),
        ("MAX_TOKENS", true, "length"),
        ("SAFETY", false, "content_filter"),
        ("RECITATION", false, "content_filter"),
        ("BLOCKLIST", false, "content_filter"),
        ("PROHIBITED_CONTENT", false, "content_filter"),
        ("SPII", false, "content_filter"),
        ("IMAGE_SAFETY", false, "content_filter"),
        ("LANGUAGE", false, "content_filter"),
        ("MALFORMED_FUNCTION_CALL", false, "content_filter"),
        ("OTHER", false, "content_filter"),
        ("SOMETHING_NEW", false, "content_filter"),
    ] {
        assert_eq!(
            response::finish_reason(Some(reason), calls),
            want,
            "{reason}"
        );
        let part = if calls {
            r#"{"functionCall":{"name":"f"}}"#
        } else {
            r#"{"text":"t"}"#
        };
        let body = format!(
            r#"{{"candidates":[{{"content":{{"parts":[{part}],"role":"model"}},"finishReason":"{reason}"}}]}}"#
        );
        assert_eq!(
            parse(&body).unwrap().choices[0].finish_reason.as_deref(),
            Some(want),
            "{reason}"
        );
    }
    assert_eq!(response::finish_reason(None, false), "stop");
}

#[test]
fn candidates_become_choices_and_missing_fields_are_filled() {
    let r = parse(
        r#"{"candidates":[
            {"content":{"parts":[{"text":"a"}],"role":"model"},"finishReason":"STOP","index":0},
            {"content":{"role":"model"},"finishReason":"MAX_TOKENS","index":1},
            {"finishReason":"SAFETY","index":2}]}"#,
    )
    .unwrap();
    assert!(r.id.starts_with("chatcmpl-") && r.id.len() > "chatcmpl-".len());
    assert_eq!(r.model, "gemini-2.0-flash", "the target's model");
    assert!(r.usage.is_none());
    let got: Vec<_> = r
        .choices
        .iter()
        .map(|c| (c.index, c.message.content.clone(), c.finish_reason.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, Some("a".into()), Some("stop".into())),
            (1, Some(String::new()), Some("length".into())),
            (2, None, Some("content_filter".into())),
        ]
    );
}

#[test]
fn text_next_to_calls_is_kept() {
    let r = parse(
        r#"{"candidates":[{"content":{"parts":[{"text":"Checking."},{"functionCall":{"name":"f","args":{"a":1}}}]},"finishReason":"STOP"}]}"#,
    )
    .unwrap();
    let m = &r.choices[0].message;
    assert_eq!(m.content.as_deref(), Some("Checking."));
    assert_eq!(
        m.tool_calls.as_ref().unwrap()[0].function.arguments,
        r#"{"a":1}"#
    );
    assert_eq!(r.choices[0].finish_reason.as_deref(), Some("tool_calls"));
}

#[test]
fn answers_that_are_not_the_format_are_protocol_errors() {
    for body in [
        "",
        "not json",
        "[]",
        "{}",
        r#"{"id":"x","choices":[]}"#,
        r#"{"candidates":[]}"#,
        r#"{"candidates":"nope"}"#,
        r#"{"candidates":[{"content":{"parts":[{"functionCall":{"args":{}}}]}}]}"#,
    ] {
        assert!(
            matches!(parse(body), Err(AdapterError::Protocol(_))),
            "{body:?}"
        );
    }
}

#[test]
fn an_error_inside_a_200_body_is_the_upstream_error() {
    match parse(fixture!("error_503_unavailable.json")) {
        Err(AdapterError::Upstream(e)) => assert_eq!(e.status, 503),
        other => panic!("{other:?}"),
    }
}
