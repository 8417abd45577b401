//! Reasoning tests: thought parts and thought signatures read from answers and
//! streams, `thinkingConfig` sent, and this model's own reasoning replayed.

use serde_json::{json, Value};

use super::*;
use crate::canonical::{Origin, Reasoning, ReasoningDelta, Thinking};
use crate::http::sse::{Decoder, Event};
use crate::providers::testing::request;
use crate::providers::Flow;

/// A thinking model's tool-calling answer: a thought (signed), text, then two calls,
/// the first signed (Gemini 3's shape).
fn thinking_answer() -> Value {
    json!({"candidates": [{"content": {"role": "model", "parts": [
        {"text": "**Planning**\nCheck the weather first.", "thought": true},
        {"text": "Let me check.", "thoughtSignature": "c2lnLXRleHQ="},
        {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnLWNhbGw="},
        {"functionCall": {"name": "time", "args": {}}}
    ]}, "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 40},
    "modelVersion": "gemini-3-pro", "responseId": "r1"})
}

#[test]
fn an_answer_keeps_thoughts_and_signatures_as_reasoning() {
    let t = gemini_target();
    let req = request(&msgs(r#"[{"role":"user","content":"x"}]"#));
    let body = thinking_answer().to_string();
    let r = ADAPTER.parse_response(&req, &t, body.as_bytes()).unwrap();
    let m = &r.choices[0].message;
    assert_eq!(m.content.as_deref(), Some("Let me check."));
    let calls = m.tool_calls.as_ref().unwrap();
    assert_eq!(m.reasoning.len(), 2, "{:?}", m.reasoning);
    let first = &m.reasoning[0];
    assert_eq!(first.text, "**Planning**\nCheck the weather first.");
    assert_eq!(first.origin, Origin::of(&t));
    assert_eq!(
        first.data,
        json!({"thoughts": [{"text": "**Planning**\nCheck the weather first.", "thought": true}],
               "signature": "c2lnLXRleHQ="})
    );
    assert_eq!(
        m.reasoning[1].data,
        json!({"thoughts": [], "signature": "c2lnLWNhbGw=", "call": calls[0].id})
    );
    let u = r.usage.unwrap();
    assert_eq!(u.completion_tokens, 45);
    assert_eq!(u.extra["completion_tokens_details"]["reasoning_tokens"], 40);
}

#[test]
fn a_stream_sends_thought_text_then_each_piece_before_what_it_signs() {
    let t = gemini_target();
    let req = request(r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}"#);
    let answer = thinking_answer();
    let parts = answer["candidates"][0]["content"]["parts"]
        .as_array()
        .unwrap();
    let mut sse = String::new();
    for (i, p) in parts.iter().enumerate() {
        let mut c = json!({"candidates": [{"content": {"role": "model", "parts": [p]}, "index": 0}],
                           "responseId": "r1", "modelVersion": "gemini-3-pro"});
        if i == parts.len() - 1 {
            c["candidates"][0]["finishReason"] = "STOP".into();
        }
        sse.push_str(&format!("data: {c}\n\n"));
    }
    let mut tr = ADAPTER.stream_translator(&req, &t);
    let mut decoder = Decoder::new(ADAPTER.framing());
    let mut events: Vec<Event> = Vec::new();
    decoder.push(sse.as_bytes(), &mut events).unwrap();
    let mut out = Vec::new();
    for ev in &events {
        assert_eq!(tr.on_event(ev, &mut out).unwrap(), Flow::Continue);
    }
    tr.finish(&mut out).unwrap();
    let seen: Vec<String> = out
        .iter()
        .filter_map(|c| c.choices.first())
        .filter_map(|c| {
            let d = &c.delta;
            match (&d.reasoning, &d.content, &d.tool_calls, &c.finish_reason) {
                (Some(ReasoningDelta::Text(t)), ..) => Some(format!("thinking {t}")),
                (Some(ReasoningDelta::Done(r)), ..) => Some(format!(
                    "piece {}",
                    r.data.get("call").map_or("text", |_| "call")
                )),
                (_, Some(t), ..) => Some(format!("text {t}")),
                (_, _, Some(calls), _) if calls[0].id.is_some() => Some("call".into()),
                (_, _, _, Some(f)) => Some(format!("finish {f}")),
                _ => None,
            }
        })
        .collect();
    assert_eq!(
        seen,
        [
            "thinking **Planning**\nCheck the weather first.",
            "piece text",
            "text Let me check.",
            "piece call",
            "call",
            "call",
            "finish tool_calls"
        ]
    );
    // The signed call's piece names the id the call went out with.
    let ids: Vec<&str> = out
        .iter()
        .filter_map(|c| {
            c.choices.first()?.delta.tool_calls.as_ref()?[0]
                .id
                .as_deref()
        })
        .collect();
    let call_piece = out
        .iter()
        .find_map(|c| match &c.choices.first()?.delta.reasoning {
            Some(ReasoningDelta::Done(r)) if r.data.get("call").is_some() => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(call_piece.data["call"], ids[0]);
}

#[test]
fn a_thought_only_stream_finishes_its_piece() {
    let raw = "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"hmm\", \"thought\": true}]},\"finishReason\": \"STOP\"}]}\n\n";
    let t = gemini_target();
    let req = request(r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}"#);
    let mut tr = ADAPTER.stream_translator(&req, &t);
    let mut out = Vec::new();
    let ev = Event {
        event: None,
        data: raw.trim_start_matches("data: ").trim().into(),
    };
    tr.on_event(&ev, &mut out).unwrap();
    tr.finish(&mut out).unwrap();
    assert!(out.iter().any(|c| matches!(
        &c.choices.first().and_then(|c| c.delta.reasoning.clone()),
        Some(ReasoningDelta::Done(r)) if r.text == "hmm"
    )));
}

fn body_for(req: &crate::canonical::ChatRequest) -> Value {
    let out = ADAPTER.build_request(req, &gemini_target()).unwrap();
    serde_json::from_slice(out.body()).unwrap()
}

#[test]
fn thinking_settings_become_a_thinking_config() {
    let mut req = request(&msgs(r#"[{"role":"user","content":"x"}]"#));
    assert!(body_for(&req).get("generationConfig").is_none());
    for (thinking, budget, include) in [
        (Thinking::Budget(3000), 3000, true),
        (Thinking::Auto, -1, true),
        (Thinking::Off, 0, false),
    ] {
        req.thinking = Some(thinking);
        assert_eq!(
            body_for(&req)["generationConfig"]["thinkingConfig"],
            json!({"thinkingBudget": budget, "includeThoughts": include})
        );
    }
    let effort = request(
        r#"{"model":"m","reasoning_effort":"low","messages":[{"role":"user","content":"x"}]}"#,
    );
    assert_eq!(
        body_for(&effort)["generationConfig"]["thinkingConfig"]["thinkingBudget"],
        1024
    );
}

#[test]
fn only_this_models_reasoning_is_replayed_with_signatures_in_place() {
    let mut req = request(&msgs(
        r#"[{"role":"user","content":"x"},
            {"role":"assistant","content":"Let me check.","tool_calls":[
              {"id":"call_a","type":"function","function":{"name":"weather","arguments":"{}"}},
              {"id":"call_b","type":"function","function":{"name":"time","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"call_a","content":"sunny"},
            {"role":"tool","tool_call_id":"call_b","content":"noon"}]"#,
    ));
    let mine = Origin::of(&gemini_target());
    let other = Origin {
        provider: "elsewhere".into(),
        ..mine.clone()
    };
    req.messages[1].reasoning = vec![
        Reasoning::new(
            "plan",
            mine.clone(),
            json!({"thoughts": [{"text": "plan", "thought": true}], "signature": "c1"}),
        ),
        Reasoning::new(
            "",
            mine,
            json!({"thoughts": [], "signature": "c2", "call": "call_a"}),
        ),
        Reasoning::new(
            "not mine",
            other,
            json!({"thoughts": [{"text": "not mine", "thought": true}]}),
        ),
    ];
    let body = body_for(&req);
    assert_eq!(
        body["contents"][1],
        json!({"role": "model", "parts": [
            {"text": "plan", "thought": true},
            {"text": "Let me check.", "thoughtSignature": "c1"},
            {"functionCall": {"name": "weather", "args": {}}, "thoughtSignature": "c2"},
            {"functionCall": {"name": "time", "args": {}}}
        ]})
    );
}
