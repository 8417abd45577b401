//! `prefill = "continue_final_message" | "prefix"` of OpenAI-kind providers: how an
//! OpenAI-compatible server is asked to continue a final assistant message. OpenAI
//! itself has no such request (it answers after the message), so only a provider that
//! declares one can take a resumed stream.

use serde::Deserialize;
use serde_json::Value;

use super::AdapterError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Prefill {
    /// vLLM, SGLang, Aphrodite: `continue_final_message: true` with
    /// `add_generation_prompt: false` at the top level.
    ContinueFinalMessage,
    /// DeepSeek's chat prefix completion: `prefix: true` on the final assistant
    /// message (its beta base URL).
    Prefix,
}

/// The chat body `raw` (its last message the prefill) with `model` set and the
/// server's continue flag added.
pub(super) fn body(raw: &[u8], model: &str, how: Prefill) -> Result<Vec<u8>, AdapterError> {
    let invalid = |m: String| AdapterError::InvalidRequest(m);
    let mut body: Value =
        serde_json::from_slice(raw).map_err(|e| invalid(format!("request body: {e}")))?;
    let Some(obj) = body.as_object_mut() else {
        return Err(invalid("request body is not a JSON object".into()));
    };
    obj.insert("model".into(), Value::from(model));
    match how {
        Prefill::ContinueFinalMessage => {
            obj.insert("continue_final_message".into(), Value::Bool(true));
            obj.insert("add_generation_prompt".into(), Value::Bool(false));
        }
        Prefill::Prefix => {
            let last = obj
                .get_mut("messages")
                .and_then(Value::as_array_mut)
                .and_then(|m| m.last_mut())
                .and_then(Value::as_object_mut)
                .filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
                .ok_or_else(|| invalid("no final assistant message to continue".into()))?;
            last.insert("prefix".into(), Value::Bool(true));
        }
    }
    serde_json::to_vec(&body).map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::{body, Prefill};
    use crate::providers::testing::{request, settings, target_with};
    use crate::providers::{adapter_for, Kind};

    fn continued() -> crate::canonical::ChatRequest {
        request(r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#)
            .with_prefill("The sky is")
            .unwrap()
    }

    fn sent(prefill: Option<&str>) -> Option<Value> {
        let own = prefill.map_or(String::new(), |how| format!("prefill = {how:?}"));
        let t = target_with(Kind::Openai, "http://h/v1", "served", |p| {
            p.settings = settings(Kind::Openai, &own);
        });
        let req = adapter_for(Kind::Openai).build_continuation(&continued(), &t)?;
        Some(serde_json::from_slice(req.unwrap().body()).unwrap())
    }

    #[test]
    fn vllm_style_servers_get_the_continue_flags() {
        let b = sent(Some("continue_final_message")).unwrap();
        assert_eq!(b["model"], "served");
        assert_eq!(
            (
                b["continue_final_message"].clone(),
                b["add_generation_prompt"].clone()
            ),
            (json!(true), json!(false))
        );
        assert_eq!(
            b["messages"][1],
            json!({"role": "assistant", "content": "The sky is"})
        );
    }

    #[test]
    fn deepseek_style_servers_get_a_prefix_message() {
        let b = sent(Some("prefix")).unwrap();
        assert_eq!(
            b["messages"][1],
            json!({"role": "assistant", "content": "The sky is", "prefix": true})
        );
        assert!(b.get("continue_final_message").is_none());
    }

    #[test]
    fn without_a_declared_prefill_an_openai_target_cannot_continue() {
        assert!(sent(None).is_none());
        let raw = br#"{"messages":[{"role":"user","content":"x"}]}"#;
        assert!(body(raw, "m", Prefill::Prefix).is_err());
    }
}
