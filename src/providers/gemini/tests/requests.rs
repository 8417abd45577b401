//! Request tests: URL and headers, messages, tools and generation settings.

use serde_json::{json, Value};

use super::*;
use crate::providers::testing::{request, target, target_with};
use crate::providers::Kind;

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
