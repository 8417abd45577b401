//! Gemini adapter tests: every translation rule, from the fixtures in
//! `fixtures/gemini/` (checked against Google's SDK types by
//! `scripts/fixtures/check_gemini.py`) and small inline cases.

use std::collections::HashSet;
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use super::*;
use crate::canonical::ChatChunk;
use crate::http::sse::Decoder;
use crate::providers::testing::{request, target, target_with};
use crate::providers::{Flow, Kind};

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/gemini/",
            $name
        ))
    };
}

fn gemini_target() -> Target {
    target_with(
        Kind::Gemini,
        "http://127.0.0.1:9/",
        "gemini-2.0-flash",
        |_| {},
    )
}

fn body_of(openai: &str) -> Value {
    let out = ADAPTER
        .build_request(&request(openai), &gemini_target())
        .unwrap();
    serde_json::from_slice(out.body()).unwrap()
}

fn build_err(openai: &str) -> String {
    match ADAPTER.build_request(&request(openai), &gemini_target()) {
        Err(AdapterError::InvalidRequest(m)) => m,
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
}

fn msgs(messages: &str) -> String {
    format!(r#"{{"model":"m","messages":{messages}}}"#)
}

// ---------------------------------------------------------------------------------
// Request: URL, headers, settings

#[test]
fn request_fixture_with_tools_and_tool_results_translates_exactly() {
    let want: Value = serde_json::from_str(fixture!("request_tools.gemini.json")).unwrap();
    assert_eq!(body_of(fixture!("request_tools.openai.json")), want);
}

#[test]
fn request_fixture_with_json_schema_and_named_tool_choice_translates_exactly() {
    let want: Value = serde_json::from_str(fixture!("request_json_schema.gemini.json")).unwrap();
    assert_eq!(body_of(fixture!("request_json_schema.openai.json")), want);
}

#[test]
fn urls_and_the_key_header() {
    let t = gemini_target();
    let plain = ADAPTER
        .build_request(&request(&msgs(r#"[{"role":"user","content":"hi"}]"#)), &t)
        .unwrap();
    assert_eq!(plain.method(), http::Method::POST);
    assert_eq!(
        plain.uri(),
        "http://127.0.0.1:9/v1beta/models/gemini-2.0-flash:generateContent"
    );
    assert_eq!(plain.headers()["x-goog-api-key"], "sk-secret");
    assert!(plain.headers()["x-goog-api-key"].is_sensitive());
    assert_eq!(plain.headers()["content-type"], "application/json");
    assert_eq!(plain.headers()["x-extra"], "1");
    assert!(plain.headers().get("authorization").is_none());
    assert!(!plain.uri().to_string().contains("sk-secret"));

    let streamed = ADAPTER
        .build_request(
            &request(r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#),
            &t,
        )
        .unwrap();
    assert_eq!(
        streamed.uri(),
        "http://127.0.0.1:9/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );
    assert!(!streamed.uri().to_string().contains("key="));
    assert_eq!(ADAPTER.framing(), crate::http::sse::Framing::Sse);
}

#[test]
fn model_names_are_kept_in_their_path_segment() {
    assert_eq!(model_path("gemini-2.5-flash"), "models/gemini-2.5-flash");
    assert_eq!(model_path("models/gemini-pro"), "models/gemini-pro");
    assert_eq!(model_path("tunedModels/my-tune-7"), "tunedModels/my-tune-7");
    assert_eq!(model_path("x?key=1#f y"), "models/x%3Fkey%3D1%23f%20y");
    let t = target_with(Kind::Gemini, "http://h", "evil?alt=json", |_| {});
    let out = ADAPTER
        .build_request(&request(&msgs(r#"[{"role":"user","content":"hi"}]"#)), &t)
        .unwrap();
    assert_eq!(out.uri().query(), None);
}

#[test]
fn a_provider_without_key_sends_no_key_header() {
    let t = target_with(Kind::Gemini, "http://h", "g", |p| p.api_key = None);
    let out = ADAPTER
        .build_request(&request(&msgs(r#"[{"role":"user","content":"hi"}]"#)), &t)
        .unwrap();
    assert!(out.headers().get("x-goog-api-key").is_none());
}

#[test]
fn probe_lists_models_with_the_key() {
    let t = target(Kind::Gemini, "https://generativelanguage.googleapis.com/");
    let probe = ADAPTER.probe_request(&t.provider).unwrap();
    assert_eq!(probe.method(), http::Method::GET);
    assert_eq!(
        probe.uri(),
        "https://generativelanguage.googleapis.com/v1beta/models"
    );
    assert_eq!(probe.headers()["x-goog-api-key"], "sk-secret");
    assert!(probe.headers()["x-goog-api-key"].is_sensitive());
}

// ---------------------------------------------------------------------------------
// Request: messages

#[test]
fn roles_map_and_consecutive_turns_merge() {
    let body = body_of(&msgs(
        r#"[{"role":"system","content":"s1"},{"role":"user","content":"a"},
            {"role":"user","content":[{"type":"text","text":"b"}]},
            {"role":"assistant","content":"c"},{"role":"assistant","content":[{"type":"text","text":"d"}]},
            {"role":"developer","content":"s2"},{"role":"user","content":"e"}]"#,
    ));
    assert_eq!(
        body["systemInstruction"],
        json!({"parts": [{"text": "s1"}, {"text": "s2"}]})
    );
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
            {"role": "model", "parts": [{"text": "c"}, {"text": "d"}]},
            {"role": "user", "parts": [{"text": "e"}]}
        ])
    );
    assert!(body.get("tools").is_none() && body.get("toolConfig").is_none());
    assert!(
        body.get("generationConfig").is_none(),
        "nothing set, nothing sent"
    );
}

#[test]
fn empty_text_and_empty_messages_are_skipped() {
    let body = body_of(&msgs(
        r#"[{"role":"user","content":"a"},{"role":"assistant","content":""},
            {"role":"assistant","content":null},{"role":"user","content":"b"}]"#,
    ));
    assert_eq!(
        body["contents"],
        json!([{"role": "user", "parts": [{"text": "a"}, {"text": "b"}]}])
    );
}

#[test]
fn a_system_only_conversation_becomes_the_user_turn() {
    let body = body_of(&msgs(r#"[{"role":"system","content":"Say hi."}]"#));
    assert_eq!(
        body["contents"],
        json!([{"role": "user", "parts": [{"text": "Say hi."}]}])
    );
    assert!(body.get("systemInstruction").is_none());
}

#[test]
fn images_become_inline_or_file_data() {
    let body = body_of(&msgs(
        r#"[{"role":"user","content":[
            {"type":"image_url","image_url":{"url":"data:image/webp;base64,UklGRg=="}},
            {"type":"image_url","image_url":{"url":"HTTPS://cdn.example.com/a/b/cat.PNG#frag"}},
            {"type":"image_url","image_url":{"url":"http://example.com/doc.pdf?x=1.png"}},
            {"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}},
            {"type":"text","text":"what is this?"}]}]"#,
    ));
    assert_eq!(
        body["contents"][0]["parts"],
        json!([
            {"inlineData": {"mimeType": "image/webp", "data": "UklGRg=="}},
            {"fileData": {"mimeType": "image/png", "fileUri": "HTTPS://cdn.example.com/a/b/cat.PNG#frag"}},
            {"fileData": {"mimeType": "application/pdf", "fileUri": "http://example.com/doc.pdf?x=1.png"}},
            {"text": "what is this?"}
        ])
    );
}

#[test]
fn mime_types_are_guessed_from_the_extension() {
    for (url, want) in [
        ("https://x.io/a.jpg", "image/jpeg"),
        ("https://x.io/a.jpeg", "image/jpeg"),
        ("https://x.io/a.png?v=2", "image/png"),
        ("https://x.io/a.gif", "image/gif"),
        ("https://x.io/a.webp", "image/webp"),
        ("https://x.io/a.heic", "image/heic"),
        ("https://x.io/a.heif", "image/heif"),
        ("https://x.io/a.pdf", "application/pdf"),
        ("https://x.io/image", "image/jpeg"),
        ("https://x.io", "image/jpeg"),
        ("https://x.png/", "image/jpeg"),
        ("https://x.io/a.unknown", "image/jpeg"),
    ] {
        assert_eq!(request::guess_mime(url), want, "{url}");
    }
}

#[test]
fn other_image_urls_are_refused() {
    for url in [
        "gs://bucket/cat.png",
        "data:image/svg+xml,<svg/>",
        "file:///etc/passwd",
        "cat.png",
    ] {
        let err = build_err(&msgs(&format!(
            r#"[{{"role":"user","content":[{{"type":"image_url","image_url":{{"url":"{url}"}}}}]}}]"#
        )));
        assert!(err.contains("image_url"), "{err}");
    }
}

#[test]
fn tool_calls_and_results_round_trip_into_one_turn() {
    let body = body_of(&msgs(
        r#"[{"role":"user","content":"go"},
            {"role":"assistant","tool_calls":[
              {"id":"a","type":"function","function":{"name":"f","arguments":"{\"x\":[1,2]}"}},
              {"id":"b","type":"function","function":{"name":"g","arguments":"  "}}]},
            {"role":"tool","tool_call_id":"b","content":"{\"ok\":true}"},
            {"role":"tool","tool_call_id":"a","content":"42"},
            {"role":"tool","tool_call_id":"a","content":""},
            {"role":"assistant","content":"done"},
            {"role":"function","name":"legacy","content":"[1]"}]"#,
    ));
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "go"}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "f", "args": {"x": [1, 2]}}},
                {"functionCall": {"name": "g", "args": {}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "g", "response": {"ok": true}}},
                {"functionResponse": {"name": "f", "response": {"result": "42"}}},
                {"functionResponse": {"name": "f", "response": {"result": ""}}}]},
            {"role": "model", "parts": [{"text": "done"}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "legacy", "response": {"result": "[1]"}}}]}
        ])
    );
}

#[test]
fn bad_tool_call_arguments_are_a_400() {
    let call = |args: &str| {
        msgs(&format!(
            r#"[{{"role":"user","content":"x"}},{{"role":"assistant","tool_calls":[{{"id":"a","type":"function","function":{{"name":"f","arguments":{args}}}}}]}}]"#
        ))
    };
    assert!(build_err(&call(r#""{not json""#)).contains("not valid JSON"));
    assert!(build_err(&call(r#""[1,2]""#)).contains("JSON object"));
    assert!(build_err(&call(r#""\"s\"""#)).contains("JSON object"));
}

#[test]
fn tool_results_must_answer_a_known_call() {
    let err = build_err(&msgs(
        r#"[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"zzz","content":"r"}]"#,
    ));
    assert!(err.contains("zzz"), "{err}");
    let err = build_err(&msgs(r#"[{"role":"tool","content":"r"}]"#));
    assert!(err.contains("tool_call_id"), "{err}");
    let err = build_err(&msgs(r#"[{"role":"function","content":"r"}]"#));
    assert!(err.contains("name"), "{err}");
    // A result may not name a call that only comes later.
    let err = build_err(&msgs(
        r#"[{"role":"tool","tool_call_id":"a","content":"r"},{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]}]"#,
    ));
    assert!(err.contains("\"a\""), "{err}");
}

// ---------------------------------------------------------------------------------
// Request: tools, tool_choice, generation settings

const TOOLS: &str = r#""tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"string"}}}}}]"#;

fn with_choice(choice: &str) -> String {
    format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}],{TOOLS},"tool_choice":{choice}}}"#
    )
}

#[test]
fn tool_choice_maps_to_function_calling_modes() {
    for (choice, want) in [
        (r#""auto""#, json!({"mode": "AUTO"})),
        (r#""none""#, json!({"mode": "NONE"})),
        (r#""required""#, json!({"mode": "ANY"})),
        (
            r#"{"type":"function","function":{"name":"f"}}"#,
            json!({"mode": "ANY", "allowedFunctionNames": ["f"]}),
        ),
    ] {
        assert_eq!(
            body_of(&with_choice(choice))["toolConfig"]["functionCallingConfig"],
            want,
            "{choice}"
        );
    }
    let no_choice = body_of(&format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}],{TOOLS}}}"#
    ));
    assert!(no_choice.get("toolConfig").is_none());
    assert!(build_err(&with_choice(r#""sometimes""#)).contains("sometimes"));
}

#[test]
fn tool_choice_without_tools() {
    let base = r#""model":"m","messages":[{"role":"user","content":"x"}]"#;
    for mode in [r#""auto""#, r#""none""#] {
        let body = body_of(&format!(r#"{{{base},"tool_choice":{mode}}}"#));
        assert!(body.get("toolConfig").is_none() && body.get("tools").is_none());
    }
    assert!(build_err(&format!(r#"{{{base},"tool_choice":"required"}}"#)).contains("tools"));
}

#[test]
fn tools_become_one_declaration_list_with_clean_schemas() {
    let body = body_of(
        r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[
          {"type":"function","function":{"name":"a","description":"A","strict":true,
            "parameters":{"$schema":"x","type":"object","additionalProperties":false,
              "properties":{"q":{"type":"string","additionalProperties":false}},"required":["q"]}}},
          {"type":"function","function":{"name":"b"}},
          {"type":"function","function":{"name":"c","parameters":{"type":"object"}}}]}"#,
    );
    assert_eq!(
        body["tools"],
        json!([{"functionDeclarations": [
            {"name": "a", "description": "A", "parameters": {"type": "OBJECT",
                "properties": {"q": {"type": "STRING"}}, "required": ["q"]}},
            {"name": "b"},
            {"name": "c"}
        ]}])
    );
    // a tool Gemini cannot express is refused, not silently dropped
    let msg = build_err(
        r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"custom","custom":{"name":"d"}}]}"#,
    );
    assert!(msg.contains("\"custom\""), "{msg}");
}

#[test]
fn generation_settings_map_to_generation_config() {
    let body = body_of(
        r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":0,"top_p":1,
           "max_tokens":7,"stop":"~~~","n":3,"seed":-5,"presence_penalty":-1.5,
           "frequency_penalty":2,"response_format":{"type":"json_object"}}"#,
    );
    assert_eq!(
        body["generationConfig"],
        json!({"temperature": 0.0, "topP": 1.0, "maxOutputTokens": 7, "stopSequences": ["~~~"],
               "candidateCount": 3, "seed": -5, "presencePenalty": -1.5, "frequencyPenalty": 2.0,
               "responseMimeType": "application/json"})
    );
    let text = body_of(
        r#"{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"text"},
           "max_completion_tokens":9,"max_tokens":5}"#,
    );
    assert_eq!(text["generationConfig"], json!({"maxOutputTokens": 9}));
    let no_schema = body_of(
        r#"{"model":"m","messages":[{"role":"user","content":"x"}],
           "response_format":{"type":"json_schema","json_schema":{"name":"n"}}}"#,
    );
    assert_eq!(
        no_schema["generationConfig"],
        json!({"responseMimeType": "application/json"})
    );
}

#[test]
fn a_seed_beyond_32_bits_is_wrapped_deterministically() {
    let body = body_of(&format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}],"seed":{}}}"#,
        (1_i64 << 32) + 7
    ));
    assert_eq!(body["generationConfig"]["seed"], 7);
}

// ---------------------------------------------------------------------------------
// Answers

fn parse(body: &str) -> Result<ChatResponse, AdapterError> {
    let req = request(&msgs(r#"[{"role":"user","content":"x"}]"#));
    ADAPTER.parse_response(&req, &gemini_target(), body.as_bytes())
}

fn is_call_id(id: &str) -> bool {
    id.len() == "call_".len() + 24
        && id.starts_with("call_")
        && id["call_".len()..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric())
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

// ---------------------------------------------------------------------------------
// Errors

fn error_of(status: u16, body: &str) -> UpstreamError {
    ADAPTER.parse_error(
        StatusCode::from_u16(status).unwrap(),
        &HeaderMap::new(),
        body.as_bytes(),
    )
}

#[test]
fn resource_exhausted_is_a_rate_limit_with_its_retry_delay() {
    let e = error_of(429, fixture!("error_429_resource_exhausted.json"));
    assert_eq!(e.status, 429);
    assert_eq!(e.retry_after, Some(Duration::from_secs(37)));
    assert_eq!(e.kind.as_deref(), Some("rate_limit_error"));
    assert_eq!(e.code.as_deref(), Some("rate_limited"));
    assert!(e.message.starts_with("You exceeded your current quota"));
}

#[test]
fn an_invalid_key_400_counts_as_401() {
    let e = error_of(400, fixture!("error_400_api_key_invalid.json"));
    assert_eq!(e.status, 401);
    assert_eq!(e.kind.as_deref(), Some("authentication_error"));
    assert_eq!(e.code.as_deref(), Some("invalid_api_key"));
    assert_eq!(e.message, "API key not valid. Please pass a valid API key.");
    assert_eq!(e.retry_after, None);
}

#[test]
fn invalid_argument_stays_a_400() {
    let e = error_of(400, fixture!("error_400_invalid_argument.json"));
    assert_eq!(e.status, 400);
    assert_eq!(e.kind.as_deref(), Some("invalid_request_error"));
    assert_eq!(e.code.as_deref(), Some("invalid_argument"));
    assert!(e.message.contains("additionalProperties"));
}

#[test]
fn unavailable_is_a_503() {
    let e = error_of(503, fixture!("error_503_unavailable.json"));
    assert_eq!(
        (e.status, e.kind.as_deref(), e.code.as_deref()),
        (503, Some("server_error"), Some("unavailable"))
    );
    assert_eq!(
        e.message,
        "The model is overloaded. Please try again later."
    );
}

#[test]
fn other_statuses_are_classified() {
    for (status, name, kind, code) in [
        (
            403,
            "PERMISSION_DENIED",
            "permission_error",
            "permission_denied",
        ),
        (404, "NOT_FOUND", "invalid_request_error", "model_not_found"),
        (
            401,
            "UNAUTHENTICATED",
            "authentication_error",
            "invalid_api_key",
        ),
        (
            400,
            "FAILED_PRECONDITION",
            "invalid_request_error",
            "failed_precondition",
        ),
        (500, "INTERNAL", "server_error", "internal"),
        (
            504,
            "DEADLINE_EXCEEDED",
            "timeout_error",
            "upstream_timeout",
        ),
    ] {
        let e = error_of(
            status,
            &format!(r#"{{"error":{{"code":{status},"message":"m","status":"{name}"}}}}"#),
        );
        assert_eq!(
            (e.status, e.kind.as_deref(), e.code.as_deref()),
            (status, Some(kind), Some(code)),
            "{name}"
        );
    }
}

#[test]
fn retry_delays_parse_or_are_ignored() {
    let with_delay = |d: &str| {
        error_of(
            429,
            &format!(
                r#"{{"error":{{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"{d}"}}]}}}}"#
            ),
        )
        .retry_after
    };
    assert_eq!(with_delay("37s"), Some(Duration::from_secs(37)));
    assert_eq!(with_delay("1.5s"), Some(Duration::from_millis(1500)));
    assert_eq!(
        with_delay("29.723877525s"),
        Some(Duration::from_nanos(29_723_877_525))
    );
    assert_eq!(with_delay("0s"), Some(Duration::ZERO));
    for garbage in [
        "",
        "s",
        "37",
        "-1s",
        "1e3s",
        "abc",
        "1.2.3s",
        "99999999999999999999999s",
    ] {
        assert_eq!(with_delay(garbage), None, "{garbage:?}");
    }
}

#[test]
fn unreadable_error_bodies_are_excerpted() {
    let e = error_of(502, "<html>Bad Gateway</html>");
    assert_eq!(e.status, 502);
    assert!(e.message.contains("Bad Gateway"));
    let e = error_of(500, "");
    assert_eq!((e.status, e.message.contains("500")), (500, true));
    let e = error_of(400, r#"{"message":"not google's shape"}"#);
    assert!(e.message.contains("not google's shape"));
}

#[test]
fn array_and_string_error_shapes_are_read() {
    let e = error_of(
        429,
        r#"[{"error":{"code":429,"message":"slow down","status":"RESOURCE_EXHAUSTED"}}]"#,
    );
    assert_eq!((e.status, e.message.as_str()), (429, "slow down"));
    let e = error_of(500, r#"{"error":"boom"}"#);
    assert_eq!((e.status, e.message.as_str()), (500, "boom"));
    let e = error_of(500, r#"{"error":{"status":"INTERNAL"}}"#);
    assert_eq!(e.message, "INTERNAL");
}

// ---------------------------------------------------------------------------------
// Streams

/// What a chunk says, without the ids (checked separately).
#[derive(Debug, PartialEq)]
enum Ev {
    Role(u32),
    Text(u32, String),
    Start(u32, u32, String),
    Args(u32, u32, String),
    Finish(u32, String),
    Usage(u64, u64, u64),
}

fn describe(chunks: &[ChatChunk]) -> Vec<Ev> {
    let mut out = Vec::new();
    for c in chunks {
        if let Some(u) = &c.usage {
            assert!(c.choices.is_empty(), "usage chunks carry no choices");
            out.push(Ev::Usage(
                u.prompt_tokens,
                u.completion_tokens,
                u.total_tokens,
            ));
            continue;
        }
        assert_eq!(c.choices.len(), 1, "one choice per chunk");
        let ch = &c.choices[0];
        let d = &ch.delta;
        if d.role.is_some() {
            assert_eq!(d.role.as_deref(), Some("assistant"));
            out.push(Ev::Role(ch.index));
        }
        if let Some(t) = &d.content {
            out.push(Ev::Text(ch.index, t.clone()));
        }
        for t in d.tool_calls.iter().flatten() {
            let f = t.function.as_ref().unwrap();
            match (&t.id, &f.name) {
                (Some(id), Some(name)) => {
                    assert!(is_call_id(id), "{id}");
                    assert_eq!(t.kind.as_deref(), Some("function"));
                    assert_eq!(f.arguments.as_deref(), Some(""));
                    out.push(Ev::Start(ch.index, t.index, name.clone()));
                }
                _ => out.push(Ev::Args(ch.index, t.index, f.arguments.clone().unwrap())),
            }
        }
        if let Some(f) = &ch.finish_reason {
            out.push(Ev::Finish(ch.index, f.clone()));
        }
    }
    out
}

/// Feeds raw SSE bytes through the real decoder in `split`-byte pieces.
fn run_stream_on(
    raw: &str,
    split: usize,
    t: &Target,
) -> (Vec<ChatChunk>, Result<(), AdapterError>) {
    let req = request(r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}"#);
    let mut tr = ADAPTER.stream_translator(&req, t);
    let mut decoder = Decoder::new(ADAPTER.framing());
    let mut events = Vec::new();
    let mut out = Vec::new();
    for piece in raw.as_bytes().chunks(split) {
        decoder.push(piece, &mut events).unwrap();
        for ev in events.drain(..) {
            match tr.on_event(&ev, &mut out) {
                Ok(flow) => assert_eq!(flow, Flow::Continue, "Gemini streams have no terminator"),
                Err(e) => return (out, Err(e)),
            }
        }
    }
    decoder.finish(&mut events).unwrap();
    for ev in events.drain(..) {
        if let Err(e) = tr.on_event(&ev, &mut out) {
            return (out, Err(e));
        }
    }
    let end = tr.finish(&mut out);
    (out, end)
}

fn run_stream(raw: &str, split: usize) -> (Vec<ChatChunk>, Result<(), AdapterError>) {
    run_stream_on(raw, split, &gemini_target())
}

const SPLITS: [usize; 9] = [1, 2, 3, 5, 7, 13, 61, 256, 1 << 20];

fn assert_one_identity(chunks: &[ChatChunk], id: &str, model: &str) {
    for c in chunks {
        assert_eq!(c.id, id);
        assert_eq!(c.model, model);
        assert_eq!(c.created, chunks[0].created);
        assert_eq!(c.object, "chat.completion.chunk");
    }
}

#[test]
fn text_stream_at_any_split() {
    for split in SPLITS {
        let (chunks, end) = run_stream(fixture!("stream_text.sse"), split);
        end.unwrap();
        assert_eq!(
            describe(&chunks),
            vec![
                Ev::Role(0),
                Ev::Text(0, "Bonjour".into()),
                Ev::Text(0, " ! Le café est prêt ☕ — voulez-vous du lait".into()),
                Ev::Text(0, " ?\n".into()),
                Ev::Finish(0, "stop".into()),
                Ev::Usage(8, 17, 25),
            ],
            "split {split}"
        );
        assert_one_identity(&chunks, "YfJMyR8bhO2JqNOpflco3D", "gemini-2.0-flash");
        assert!(!chunks[0].is_content(), "the role chunk is not content");
        assert!(chunks[1].is_content());
        assert!(chunks.last().unwrap().is_usage_only());
    }
}

#[test]
fn function_call_stream_at_any_split() {
    for split in SPLITS {
        let (chunks, end) = run_stream(fixture!("stream_function_calls.sse"), split);
        end.unwrap();
        let weather = |city: &str| format!(r#"{{"location":"{city}","unit":"celsius"}}"#);
        assert_eq!(
            describe(&chunks),
            vec![
                Ev::Role(0),
                Ev::Text(0, "I will look both up.".into()),
                Ev::Start(0, 0, "get_weather".into()),
                Ev::Args(0, 0, weather("Paris")),
                Ev::Start(0, 1, "get_weather".into()),
                Ev::Args(0, 1, weather("London")),
                Ev::Start(0, 2, "get_time".into()),
                Ev::Args(0, 2, "{}".into()),
                Ev::Finish(0, "tool_calls".into()),
                Ev::Usage(112, 47 + 66, 225),
            ],
            "split {split}"
        );
        assert_one_identity(&chunks, "Qm3xT0v8Ka2Lz1YpRn4sWc", "gemini-2.5-flash");
        let ids: HashSet<String> = chunks
            .iter()
            .flat_map(|c| &c.choices)
            .flat_map(|c| c.delta.tool_calls.iter().flatten())
            .filter_map(|t| t.id.clone())
            .collect();
        assert_eq!(ids.len(), 3, "unique call ids");
        for c in &chunks {
            for t in c
                .choices
                .iter()
                .flat_map(|c| c.delta.tool_calls.iter().flatten())
            {
                if t.id.is_none() {
                    let args = t.function.as_ref().unwrap().arguments.as_deref().unwrap();
                    assert!(serde_json::from_str::<Value>(args).unwrap().is_object());
                }
            }
        }
    }
}

#[test]
fn an_error_event_ends_the_stream_with_the_upstream_error() {
    for split in SPLITS {
        let (chunks, end) = run_stream(fixture!("stream_error.sse"), split);
        assert_eq!(
            describe(&chunks),
            vec![
                Ev::Role(0),
                Ev::Text(0, "The first half of the answer".into())
            ]
        );
        match end {
            Err(AdapterError::Upstream(e)) => {
                assert_eq!(e.status, 503);
                assert_eq!(
                    e.message,
                    "The model is overloaded. Please try again later."
                );
                assert_eq!(e.code.as_deref(), Some("unavailable"));
            }
            other => panic!("split {split}: {other:?}"),
        }
    }
}

#[test]
fn an_error_event_before_any_content_is_an_error_too() {
    let raw = "data: {\"error\": {\"code\": 429,\"message\": \"Resource has been exhausted (e.g. check quota).\",\"status\": \"RESOURCE_EXHAUSTED\",\"details\": [{\"@type\": \"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\": \"2s\"}]}}\r\n\r\n";
    let (chunks, end) = run_stream(raw, 7);
    assert!(chunks.is_empty());
    match end {
        Err(AdapterError::Upstream(e)) => {
            assert_eq!(
                (e.status, e.retry_after),
                (429, Some(Duration::from_secs(2)))
            )
        }
        other => panic!("{other:?}"),
    }
    // No code: the status name decides; neither: 500.
    let (_, end) = run_stream("data: {\"error\": {\"status\": \"UNAVAILABLE\"}}\n\n", 3);
    assert!(matches!(end, Err(AdapterError::Upstream(e)) if e.status == 503));
    let (_, end) = run_stream("data: {\"error\": {\"message\": \"?\"}}\n\n", 3);
    assert!(matches!(end, Err(AdapterError::Upstream(e)) if e.status == 500));
}

#[test]
fn a_blocked_prompt_stream_finishes_with_content_filter() {
    for split in SPLITS {
        let (chunks, end) = run_stream(fixture!("stream_blocked.sse"), split);
        end.unwrap();
        assert_eq!(
            describe(&chunks),
            vec![
                Ev::Role(0),
                Ev::Finish(0, "content_filter".into()),
                Ev::Usage(21, 0, 21)
            ]
        );
        assert_one_identity(&chunks, "Wd4sLk9QeB3nZt7Ypa0XfM", "gemini-2.0-flash");
    }
}

#[test]
fn a_stream_cut_before_finish_reason_is_a_protocol_error() {
    let raw = fixture!("stream_text.sse");
    let first_two: String = raw.split_inclusive("\r\n\r\n").take(2).collect();
    let (chunks, end) = run_stream(&first_two, 5);
    assert_eq!(describe(&chunks).len(), 3);
    match end {
        Err(AdapterError::Protocol(m)) => assert!(m.contains("finishReason")),
        other => panic!("{other:?}"),
    }
    let (chunks, end) = run_stream("", 1);
    assert!(chunks.is_empty() && matches!(end, Err(AdapterError::Protocol(_))));
}

#[test]
fn garbage_in_a_stream_is_a_protocol_error() {
    for raw in [
        "data: not json\n\n",
        "data: [DONE]\n\n",
        "data: {}\n\n",
        "data: {\"choices\":[]}\n\n",
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"functionCall\": {}}]}}]}\n\n",
    ] {
        let (_, end) = run_stream(raw, 4);
        assert!(matches!(end, Err(AdapterError::Protocol(_))), "{raw:?}");
    }
}

#[test]
fn a_stream_without_ids_gets_one_generated_id_and_the_target_model() {
    let raw = "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"a\"}]}}]}\n\n\
               data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"b\"}]},\"finishReason\": \"MAX_TOKENS\"}]}\n\n";
    let t = target_with(Kind::Gemini, "http://h", "gemini-exp", |_| {});
    let (chunks, end) = run_stream_on(raw, 3, &t);
    end.unwrap();
    assert_eq!(
        describe(&chunks),
        vec![
            Ev::Role(0),
            Ev::Text(0, "a".into()),
            Ev::Text(0, "b".into()),
            Ev::Finish(0, "length".into())
        ],
        "no usageMetadata, no usage chunk"
    );
    let id = chunks[0].id.clone();
    assert!(id.starts_with("chatcmpl-") && id.len() > "chatcmpl-".len());
    assert_one_identity(&chunks, &id, "gemini-exp");
}

#[test]
fn streamed_candidates_keep_their_own_choice_and_call_counter() {
    let raw = concat!(
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"functionCall\": {\"name\": \"f\"}}]},\"index\": 0},",
        "{\"content\": {\"parts\": [{\"text\": \"x\"}]},\"index\": 1}],\"responseId\": \"r\"}\n\n",
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"functionCall\": {\"name\": \"g\",\"args\": {\"k\": 1}}}]},\"index\": 1,\"finishReason\": \"STOP\"},",
        "{\"content\": {\"parts\": [{\"text\": \"\"}]},\"index\": 0,\"finishReason\": \"STOP\"}],",
        "\"usageMetadata\": {\"promptTokenCount\": 3,\"candidatesTokenCount\": 4}}\n\n",
    );
    let (chunks, end) = run_stream(raw, 9);
    end.unwrap();
    assert_eq!(
        describe(&chunks),
        vec![
            Ev::Role(0),
            Ev::Start(0, 0, "f".into()),
            Ev::Args(0, 0, "{}".into()),
            Ev::Role(1),
            Ev::Text(1, "x".into()),
            Ev::Start(1, 0, "g".into()),
            Ev::Args(1, 0, r#"{"k":1}"#.into()),
            Ev::Finish(0, "tool_calls".into()),
            Ev::Finish(1, "tool_calls".into()),
            Ev::Usage(3, 4, 7),
        ]
    );
    assert_one_identity(&chunks, "r", "gemini-2.0-flash");
}

#[test]
fn thought_parts_and_empty_text_are_not_streamed() {
    let raw = "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"hmm\", \"thought\": true},{\"text\": \"\"},{\"text\": \"ok\"}]},\"finishReason\": \"STOP\"}],\"usageMetadata\": {\"promptTokenCount\": 1,\"candidatesTokenCount\": 1,\"thoughtsTokenCount\": 5}}\n\n";
    let (chunks, end) = run_stream(raw, 2);
    end.unwrap();
    assert_eq!(
        describe(&chunks),
        vec![
            Ev::Role(0),
            Ev::Text(0, "ok".into()),
            Ev::Finish(0, "stop".into()),
            Ev::Usage(1, 6, 7)
        ]
    );
}

#[test]
fn finish_is_idempotent() {
    let req = request(r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}"#);
    let mut tr = ADAPTER.stream_translator(&req, &gemini_target());
    let mut out = Vec::new();
    let ev = crate::http::sse::Event {
        event: None,
        data: r#"{"candidates":[{"content":{"parts":[{"text":"a"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":1}}"#.into(),
    };
    tr.on_event(&ev, &mut out).unwrap();
    tr.finish(&mut out).unwrap();
    let n = out.len();
    tr.finish(&mut out).unwrap();
    assert_eq!(out.len(), n, "usage reported once");
}
