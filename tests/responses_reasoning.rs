//! Reasoning through the Responses API front door (DESIGN §7) on translated targets:
//! Anthropic thinking blocks and Gemini thought parts come back as `reasoning` items
//! (answers and streams judged by the official `openai` SDK's types), their tokens in
//! `output_tokens_details.reasoning_tokens`, and they are replayed next turn to the
//! provider that produced them — never to another one after a failover.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;
mod responses_common;

use common::*;
use responses_common::*;
use serde_json::{json, Value};

const THINKING: &str =
    "The user wants the weather in Paris. I should call get_weather with celsius.";
const SIGNATURE: &str = "ErUBCkYIBhgCIkCv3kFzJ1qPk9rM2wXyZaB7cD4eF5gH6iJ8kL0mN1oP2qR3sT4uV5wX6yZ7aB8cD9eF0gH1iJ2kL3mN4oP5qR6sTEgw8xY9zA0bC1dE2fG3hI4jK5lM6nO7pQ8rS9tU0vW1x";
const GEMINI_SIGNATURE: &str = "CiQBVKhc7oP3xR2mW9sJ4nT6yB1qL8vF0aE5cD7gH3kZ2uI9oYwSMwFUqFzu";

fn weather_tool() -> Value {
    json!([{"type": "function", "name": "get_weather", "parameters": {"type": "object",
        "properties": {"location": {"type": "string"}, "unit": {"type": "string"}}}}])
}

fn ask(effort: &str) -> Value {
    json!({"model": "default", "input": "Weather in Paris?", "tools": weather_tool(),
           "reasoning": {"effort": effort, "summary": "auto"}})
}

fn anthropic<'a>(mock: &'a Mock) -> Target<'a> {
    Target {
        name: "anthropic",
        kind: "anthropic",
        mock,
        model: "claude-sonnet-4-5",
    }
}

fn gemini<'a>(mock: &'a Mock) -> Target<'a> {
    Target {
        name: "gemini",
        kind: "gemini",
        mock,
        model: "gemini-2.5-flash",
    }
}

/// A reasoning item as the proxy must send it: a real id, the summary, and the
/// proxy's seal as `encrypted_content`.
fn check_reasoning_item(item: &Value, summary: &str) {
    assert_eq!(item["type"], "reasoning", "{item}");
    assert!(item["id"].as_str().unwrap().starts_with("rs_"), "{item}");
    assert_eq!(item["summary"][0]["type"], "summary_text", "{item}");
    assert_eq!(item["summary"][0]["text"], summary, "{item}");
    let sealed = item["encrypted_content"].as_str().unwrap();
    assert!(sealed.starts_with("understudy.r1."), "{item}");
    assert!(!sealed.contains(UPSTREAM_SECRET));
}

/// A turn's answer, the same turn streamed, then the next turn's plain answer.
fn queue(m: &Mock, answer: &str, stream: &str, next: &str) {
    m.push(Reply::json(200, answer));
    m.push(Reply::split(200, "text/event-stream", stream));
    m.push(Reply::json(200, next));
}

/// Through the `openai` SDK (every answer and event validated by its types): `first`
/// created, `streamed` streamed, then the tool call of the first answered with
/// `previous_response_id`. Every scenario must succeed.
async fn three_turns(p: &Proxy, first: Value, streamed: Value, next: Value) -> Vec<Value> {
    let mut continued = json!({"model": "default", "previous_response_id": "$0.id",
        "tools": weather_tool(),
        "input": [{"type": "function_call_output", "call_id": "$0.call_id", "output": "18C"}]});
    if let Some(o) = next.as_object() {
        for (k, v) in o {
            continued[k] = v.clone();
        }
    }
    let r = responses_sdk(
        p,
        json!([{"kind": "create", "request": first}, {"kind": "stream", "request": streamed},
               {"kind": "create", "request": continued}]),
    )
    .await;
    for (i, res) in r.iter().enumerate() {
        assert_eq!(res["ok"], true, "scenario {i}: {res}");
    }
    r
}

fn types(output: &Value) -> Vec<&str> {
    output
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn anthropic_thinking_is_a_reasoning_item_and_goes_back_with_its_signature() {
    let m = Mock::start().await;
    let p = proxy_over(&[anthropic(&m)], "").await;
    queue(
        &m,
        include_str!("../fixtures/anthropic/response_thinking_tool_use.json"),
        include_str!("../fixtures/anthropic/stream_thinking_tool_use.sse"),
        include_str!("../fixtures/anthropic/response_text.json"),
    );
    let effort = json!({"reasoning": {"effort": "low"}});
    let r = three_turns(&p, ask("low"), ask("low"), effort).await;
    let out = &r[0]["output"];
    assert_eq!(types(out), ["reasoning", "function_call"]);
    check_reasoning_item(&out[0], THINKING);

    let stream = &r[1];
    let kinds: Vec<&str> = stream["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let at = |k: &str| {
        kinds
            .iter()
            .position(|t| *t == k)
            .unwrap_or_else(|| panic!("{k}: {kinds:?}"))
    };
    assert!(at("response.output_item.added") < at("response.reasoning_summary_part.added"));
    assert!(
        at("response.reasoning_summary_text.delta") < at("response.reasoning_summary_text.done")
    );
    assert!(
        at("response.reasoning_summary_part.done") < at("response.function_call_arguments.delta")
    );
    let summary: String = stream["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "response.reasoning_summary_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(summary, THINKING);
    let final_out = &stream["final"]["output"];
    assert_eq!(types(final_out), ["reasoning", "function_call"]);
    check_reasoning_item(&final_out[0], THINKING);

    assert_eq!(r[2]["output_text"], "Hello! How can I help you today?");
    let sent = m.received();
    let first = sent[0].json();
    assert_eq!(
        first["thinking"],
        json!({"type": "enabled", "budget_tokens": 1024})
    );
    assert_eq!(first["max_tokens"], 4096 + 1024);
    // Turn 2 replays the thinking block, signature intact, at the head of the turn.
    let turn2 = sent[2].json();
    assert_eq!(turn2["messages"][1]["role"], "assistant");
    assert_eq!(
        turn2["messages"][1]["content"][0],
        json!({"type": "thinking", "thinking": THINKING, "signature": SIGNATURE})
    );
    assert_eq!(turn2["messages"][1]["content"][1]["type"], "tool_use");
    assert_eq!(turn2["thinking"]["budget_tokens"], 1024);
}

#[tokio::test]
async fn reasoning_items_the_client_sends_back_reach_their_producer_only() {
    let (ma, mg) = (Mock::start().await, Mock::start().await);
    let p = proxy_over(&[anthropic(&ma), gemini(&mg)], "").await;
    ma.push(Reply::json(
        200,
        include_str!("../fixtures/anthropic/response_thinking_tool_use.json"),
    ));
    let r = create(&p, &ask("high")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let first = r.json();
    let call_id = items_of(&first, "function_call")[0]["call_id"].clone();

    // Turn 2 without stored state: the client sends the items back itself. Anthropic
    // is overloaded: Gemini answers, and must not see Anthropic's thinking.
    ma.push(Reply::json(
        529,
        include_str!("../fixtures/anthropic/error_overloaded.json"),
    ));
    mg.push(Reply::json(
        200,
        include_str!("../fixtures/gemini/response_text.json"),
    ));
    let mut input = vec![json!({"role": "user", "content": "Weather in Paris?"})];
    input.extend(first["output"].as_array().unwrap().iter().cloned());
    input.push(json!({"type": "function_call_output", "call_id": call_id, "output": "18C"}));
    let r = create(
        &p,
        &json!({"model": "default", "store": false, "tools": weather_tool(),
                "reasoning": {"effort": "high"}, "input": input}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("gemini"));
    let tried = ma.received()[1].json();
    assert_eq!(
        tried["messages"][1]["content"][0]["signature"], SIGNATURE,
        "Anthropic gets its own thinking back: {tried}"
    );
    let got = &mg.received()[0];
    let body = got.json();
    let model_turn = &body["contents"][1];
    assert_eq!(model_turn["role"], "model");
    assert_eq!(
        model_turn["parts"],
        json!([{"functionCall": {"name": "get_weather", "args": {"location": "Paris, France", "unit": "celsius"}}}]),
        "no thought of Anthropic's: {body}"
    );
    let text = String::from_utf8_lossy(&got.body).to_string();
    for leak in ["thought", SIGNATURE, THINKING, "understudy.r1."] {
        assert!(!text.contains(leak), "{leak} reached Gemini: {text}");
    }
    assert_eq!(
        body["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 24576, "includeThoughts": true})
    );
}

#[tokio::test]
async fn gemini_thoughts_are_reasoning_with_their_tokens_and_signatures_go_back() {
    let m = Mock::start().await;
    let p = proxy_over(&[gemini(&m)], "").await;
    queue(
        &m,
        include_str!("../fixtures/gemini/response_thinking_function_call.json"),
        include_str!("../fixtures/gemini/stream_thinking.sse"),
        include_str!("../fixtures/gemini/response_text.json"),
    );
    let strawberry = json!({"model": "default", "input": "How many r's in strawberry?",
                            "reasoning": {"effort": "medium"}});
    let r = three_turns(&p, ask("medium"), strawberry, json!({})).await;
    let out = &r[0]["output"];
    assert_eq!(types(out), ["reasoning", "function_call"]);
    let thought = "**Checking the weather**\n\nThe user asks about Paris; the get_weather tool answers that.\n";
    check_reasoning_item(&out[0], thought);
    let u = &r[0]["usage"];
    assert_eq!(u["output_tokens_details"]["reasoning_tokens"], 127, "{u}");
    assert_eq!(u["output_tokens"], 18 + 127, "{u}");

    let fin = &r[1]["final"];
    assert_eq!(types(&fin["output"]), ["reasoning", "message"]);
    check_reasoning_item(
        &fin["output"][0],
        "**Counting the letters**\n\nThe user wants the r's in strawberry. s-t-r-a-w-b-e-r-r-y: three.",
    );
    assert_eq!(fin["output_text"], "There are 3 r's in \"strawberry\".");
    assert_eq!(
        fin["usage"]["output_tokens_details"]["reasoning_tokens"],
        283
    );

    let sent = m.received();
    assert_eq!(
        sent[0].json()["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 8192, "includeThoughts": true})
    );
    let turn2 = sent[2].json();
    assert_eq!(
        turn2["contents"][1],
        json!({"role": "model", "parts": [
            {"text": thought, "thought": true},
            {"functionCall": {"name": "get_weather", "args": {"location": "Paris, France"}},
             "thoughtSignature": GEMINI_SIGNATURE}
        ]}),
        "the thought and the call's signature go back where they came from"
    );
    assert!(
        turn2["generationConfig"].get("thinkingConfig").is_none(),
        "no effort asked this turn: the model's default"
    );
}
