//! Extended thinking for a translated request: the canonical thinking setting as
//! `thinking: {type: enabled, budget_tokens}`, within Anthropic's rules — a budget of
//! at least 1024 and below `max_tokens`, no sampling parameters, no forced tool, and
//! a tool-use continuation must open with the model's own thinking block. Where a
//! rule cannot be met, the request goes without thinking (debug log): the answer
//! means the same, only less considered.

use serde::Serialize;

use super::{Block, Choice, Side, Turn};
use crate::canonical::{ChatRequest, Thinking};

/// Anthropic's smallest thinking budget.
const MIN_BUDGET: u32 = 1024;
/// The budget for "the model decides" (chat's medium effort).
const AUTO_BUDGET: u32 = 8192;

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Config {
    Enabled { budget_tokens: u32 },
}

/// The thinking setting and the `max_tokens` to send with it. `asked` is the
/// client's max_tokens, `default` what goes when it gave none.
pub(super) fn config(
    req: &ChatRequest,
    asked: Option<u32>,
    default: u32,
    choice: Option<&Choice<'_>>,
    turns: &[Turn<'_>],
) -> (Option<Config>, u32) {
    let plain = (None, asked.unwrap_or(default));
    let budget = match req.thinking() {
        None | Some(Thinking::Off) => return plain,
        Some(Thinking::Auto) => AUTO_BUDGET,
        Some(Thinking::Budget(b)) => b.max(MIN_BUDGET),
    };
    if matches!(choice, Some(Choice::Any { .. } | Choice::Tool { .. })) {
        tracing::debug!("anthropic: no thinking, the request forces a tool");
        return plain;
    }
    if continues_tool_use_without_thinking(turns) {
        tracing::debug!(
            "anthropic: no thinking, the tool calls being answered came without a thinking block of this model's"
        );
        return plain;
    }
    match asked {
        None => (
            Some(Config::Enabled {
                budget_tokens: budget,
            }),
            default.saturating_add(budget),
        ),
        Some(max) if max > MIN_BUDGET => (
            Some(Config::Enabled {
                budget_tokens: budget.min(max - 1),
            }),
            max,
        ),
        Some(max) => {
            tracing::debug!(
                max,
                "anthropic: no thinking, max_tokens leaves no room for it"
            );
            (None, max)
        }
    }
}

/// The last assistant turn calls tools but does not open with thinking: Anthropic
/// refuses thinking for such a continuation.
fn continues_tool_use_without_thinking(turns: &[Turn<'_>]) -> bool {
    let Some(last) = turns.iter().rev().find(|t| t.role == Side::Assistant) else {
        return false;
    };
    let calls = last
        .content
        .iter()
        .any(|b| matches!(b, Block::ToolUse { .. }));
    let opens_with_thinking = matches!(
        last.content.first(),
        Some(Block::Thinking { .. } | Block::RedactedThinking { .. })
    );
    calls && !opens_with_thinking
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::build;
    use crate::canonical::{Origin, Reasoning, Thinking};
    use crate::providers::testing::{request, target_with};
    use crate::providers::{Kind, Target};

    fn target(model: &str) -> Target {
        target_with(Kind::Anthropic, "https://api.anthropic.com", model, |_| {})
    }

    fn body(json: Value, thinking: Option<Thinking>, t: &Target) -> Value {
        let mut req = request(&json.to_string());
        req.thinking = thinking;
        serde_json::to_value(build(&req, t).unwrap()).unwrap()
    }

    fn hi() -> Value {
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5})
    }

    #[test]
    fn effort_and_budgets_become_a_thinking_budget_below_max_tokens() {
        let t = target("claude");
        let mut effort = hi();
        effort["reasoning_effort"] = "high".into();
        let b = body(effort, None, &t);
        assert_eq!(
            b["thinking"],
            json!({"type": "enabled", "budget_tokens": 24576})
        );
        assert_eq!(b["max_tokens"], 4096 + 24576, "room for the answer too");
        assert!(b.get("temperature").is_none(), "thinking rejects it");

        let mut capped = hi();
        capped["max_tokens"] = 3000.into();
        let b = body(capped.clone(), Some(Thinking::Budget(10_000)), &t);
        assert_eq!(b["thinking"]["budget_tokens"], 2999);
        assert_eq!(b["max_tokens"], 3000);
        let b = body(capped, Some(Thinking::Budget(10)), &t);
        assert_eq!(b["thinking"]["budget_tokens"], 1024, "Anthropic's minimum");

        let mut tiny = hi();
        tiny["max_tokens"] = 500.into();
        assert!(body(tiny, Some(Thinking::Budget(2000)), &t)
            .get("thinking")
            .is_none());
        for off in [None, Some(Thinking::Off)] {
            let b = body(hi(), off, &t);
            assert!(b.get("thinking").is_none());
            assert_eq!(b["temperature"], 0.5);
        }
    }

    #[test]
    fn a_forced_tool_goes_without_thinking() {
        let mut forced = hi();
        forced["tools"] = json!([{"type": "function", "function": {"name": "f"}}]);
        forced["tool_choice"] = "required".into();
        let b = body(forced, Some(Thinking::Budget(2048)), &target("claude"));
        assert!(b.get("thinking").is_none());
    }

    /// A tool-use turn of `model`'s, with its thinking block, and the tool's result.
    fn continuation(t: &Target, thinking_of: &Target) -> Value {
        let json = json!({"model": "m", "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"}]});
        let mut req = request(&json.to_string());
        req.thinking = Some(Thinking::Budget(2048));
        req.messages[1].reasoning = vec![Reasoning::new(
            "call the tool",
            Origin::of(thinking_of),
            json!({"type": "thinking", "thinking": "call the tool", "signature": "sig"}),
        )];
        serde_json::to_value(build(&req, t).unwrap()).unwrap()
    }

    #[test]
    fn only_this_models_thinking_is_replayed_and_opens_the_turn() {
        let claude = target("claude");
        let b = continuation(&claude, &claude);
        assert_eq!(
            b["messages"][1]["content"],
            json!([{"type": "thinking", "thinking": "call the tool", "signature": "sig"},
                   {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {}}])
        );
        assert_eq!(b["thinking"]["budget_tokens"], 2048);

        let other = target("claude-other");
        let b = continuation(&claude, &other);
        assert_eq!(
            b["messages"][1]["content"],
            json!([{"type": "tool_use", "id": "toolu_1", "name": "w", "input": {}}])
        );
        assert!(
            b.get("thinking").is_none(),
            "a tool-use continuation without this model's thinking cannot think"
        );
    }
}
