//! One answer → the chunks that stream it, so an answer the cache holds can be served
//! to a client that asked for a stream.

use serde_json::Value;

use super::assemble::ANSWER_EXTRAS;
use super::{ChatChunk, ChatResponse, Delta, FunctionDelta, ReasoningDelta, ToolCallDelta};

/// The chunks that stream `answer`: per choice its reasoning pieces (text, then the
/// whole piece), a role + content chunk, one chunk per
/// tool call (with its index, id, name and whole arguments) and a finish chunk; then
/// the usage chunk if the client asked for it and the answer has usage.
pub fn replay(answer: &ChatResponse, include_usage: bool) -> Vec<ChatChunk> {
    let base = || {
        let mut c = ChatChunk::new(&answer.id, answer.created, &answer.model);
        for k in ANSWER_EXTRAS {
            if let Some(v) = answer.extra.get(*k) {
                c.extra.insert((*k).to_string(), v.clone());
            }
        }
        c
    };
    let with = |delta: Delta, index: u32, finish: Option<&str>, logprobs: Option<Value>| {
        let mut c = base().with_delta(delta, finish);
        if let Some(choice) = c.choices.first_mut() {
            choice.index = index;
            choice.logprobs = logprobs;
        }
        c
    };
    let mut out = Vec::new();
    for choice in &answer.choices {
        let m = &choice.message;
        for r in &m.reasoning {
            if !r.text.is_empty() {
                let text = ReasoningDelta::Text(r.text.clone());
                out.push(with(Delta::reasoning(text), choice.index, None, None));
            }
            let done = ReasoningDelta::Done(r.clone());
            out.push(with(Delta::reasoning(done), choice.index, None, None));
        }
        let first = Delta {
            role: Some(m.role.clone()),
            content: m.content.clone(),
            refusal: m.refusal.clone(),
            extra: m
                .extra
                .iter()
                .filter(|(_, v)| v.is_string())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..Delta::default()
        };
        out.push(with(first, choice.index, None, choice.logprobs.clone()));
        for (i, call) in m.tool_calls.iter().flatten().enumerate() {
            let delta = Delta::tool_call(ToolCallDelta {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                id: Some(call.id.clone()),
                kind: Some(call.kind.clone()),
                function: Some(FunctionDelta {
                    name: Some(call.function.name.clone()),
                    arguments: Some(call.function.arguments.clone()),
                }),
            });
            out.push(with(delta, choice.index, None, None));
        }
        let finish = choice.finish_reason.as_deref().or(Some("stop"));
        out.push(with(Delta::default(), choice.index, finish, None));
    }
    if include_usage {
        if let Some(u) = &answer.usage {
            let mut c = base();
            c.usage = Some(u.clone());
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::canonical::testing::streamed_tool_answer;
    use crate::canonical::Assembler;

    #[test]
    fn a_replay_streams_role_content_tool_calls_finish_and_usage() {
        let mut a = Assembler::default();
        for c in streamed_tool_answer() {
            a.push(&c);
        }
        let answer = a.finish().unwrap();
        let chunks = replay(&answer, true);
        let shape: Vec<Value> = chunks
            .iter()
            .map(|c| serde_json::to_value(c).unwrap())
            .collect();
        assert_eq!(shape.len(), 5);
        for c in &shape {
            assert_eq!(
                (c["id"].as_str(), c["created"].as_u64(), c["model"].as_str()),
                (Some("chatcmpl-1"), Some(7), Some("gpt-x"))
            );
            assert_eq!(c["object"], "chat.completion.chunk");
            assert_eq!(c["system_fingerprint"], "fp_1");
        }
        assert_eq!(
            shape[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": "Let me check."})
        );
        assert_eq!(
            shape[1]["choices"][0]["delta"]["tool_calls"],
            json!([{"index": 0, "id": "call_a", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}])
        );
        assert_eq!(shape[2]["choices"][0]["delta"]["tool_calls"][0]["index"], 1);
        assert_eq!(shape[3]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(shape[3]["choices"][0]["delta"], json!({}));
        assert_eq!(shape[4]["choices"], json!([]));
        assert_eq!(shape[4]["usage"]["total_tokens"], 7);
        assert_eq!(replay(&answer, false).len(), 4, "usage only when asked for");

        // replaying and assembling again gives the same answer back
        let mut again = Assembler::default();
        for c in &chunks {
            again.push(c);
        }
        assert_eq!(
            serde_json::to_value(again.finish().unwrap()).unwrap(),
            serde_json::to_value(&answer).unwrap()
        );
    }

    #[test]
    fn reasoning_replays_before_the_answer_and_assembles_back() {
        use crate::canonical::{Origin, Reasoning};
        let mut a = Assembler::default();
        let origin = Origin {
            provider: "a".into(),
            kind: "anthropic".into(),
            model: "m".into(),
        };
        let piece = Reasoning::new("think", origin, json!({"signature": "s"}));
        let mut chunks = streamed_tool_answer();
        let mut thought = chunks[0].clone();
        thought.choices[0].delta = Delta::reasoning(ReasoningDelta::Done(piece.clone()));
        chunks.insert(1, thought);
        for c in &chunks {
            a.push(c);
        }
        let answer = a.finish().unwrap();
        assert_eq!(
            answer.choices[0].message.reasoning,
            std::slice::from_ref(&piece)
        );
        let replayed = replay(&answer, false);
        assert_eq!(
            replayed[0].choices[0].delta.reasoning,
            Some(ReasoningDelta::Text("think".into()))
        );
        assert_eq!(
            replayed[1].choices[0].delta.reasoning,
            Some(ReasoningDelta::Done(piece.clone()))
        );
        assert!(
            !replayed[1].is_content(),
            "reasoning is not a content event"
        );
        let mut again = Assembler::default();
        for c in &replayed {
            again.push(c);
        }
        assert_eq!(
            again.finish().unwrap().choices[0].message.reasoning,
            [piece]
        );
    }
}
