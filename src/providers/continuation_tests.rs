//! The continuation (prefill) request each kind builds for a resumed stream: the
//! partial answer as the final assistant turn in the kind's own shape, without the
//! client's thinking setting. OpenAI-kind's declared prefills: `openai_prefill`.

use serde_json::{json, Value};

use super::testing::{request, target_with};
use super::{build_continuation_for, Kind};

fn continued(kind: Kind, partial: &str) -> Result<Value, String> {
    let base = match kind {
        Kind::Openai => "http://h/v1",
        _ => "http://h",
    };
    let t = target_with(kind, base, "m1", |_| {});
    let req = request(
        r#"{"model":"x","stream":true,"reasoning_effort":"high","max_tokens":2000,
        "messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Why is the sky blue?"}]}"#,
    )
    .with_prefill(partial)?;
    let built = build_continuation_for(&req, &t)?;
    Ok(serde_json::from_slice(built.body()).unwrap())
}

#[test]
fn anthropic_continues_a_final_assistant_message_without_thinking() {
    let b = continued(Kind::Anthropic, "The sky is blue because").unwrap();
    let messages = b["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(
        messages[1],
        json!({"role": "assistant", "content": [{"type": "text", "text": "The sky is blue because"}]})
    );
    assert!(
        b.get("thinking").is_none(),
        "Anthropic refuses a prefill with thinking"
    );
    assert_eq!(b["stream"], true);
}

#[test]
fn ollama_continues_a_final_assistant_message() {
    let b = continued(Kind::Ollama, "The sky is blue because").unwrap();
    let messages = b["messages"].as_array().unwrap();
    assert_eq!(
        messages.last().unwrap(),
        &json!({"role": "assistant", "content": "The sky is blue because"})
    );
    assert_eq!(messages[1]["role"], "user");
    assert!(
        b.get("think").is_none(),
        "the model's default, not the client's effort"
    );
}

#[test]
fn gemini_continues_a_final_model_turn() {
    let b = continued(Kind::Gemini, "The sky is blue because").unwrap();
    let contents = b["contents"].as_array().unwrap();
    assert_eq!(
        contents.last().unwrap(),
        &json!({"role": "model", "parts": [{"text": "The sky is blue because"}]})
    );
    assert!(b["generationConfig"].get("thinkingConfig").is_none());
}

#[test]
fn kinds_without_a_way_to_continue_are_skipped_with_a_reason() {
    for kind in [Kind::Openai, Kind::Azure] {
        let err = continued(kind, "The sky").unwrap_err();
        assert!(err.contains("cannot continue an assistant turn"), "{err}");
    }
}
