//! Tools through the Messages front door: `tool_use` / `tool_result` round trips
//! through OpenAI-, Anthropic- and Gemini-kind targets, and streamed tool calls as
//! `input_json_delta`s and `tool_use` blocks, judged by the `anthropic` Python SDK.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;
mod messages_common;

use common::*;
use messages_common::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------
// Tools

/// A chat completion that calls `get_weather` for Paris.
fn tool_call_completion() -> String {
    json!({
        "id": "chatcmpl-tool1", "object": "chat.completion", "created": 1_700_000_000u64,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": null,
            "message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_paris", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}]}}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}
    })
    .to_string()
}

#[tokio::test]
async fn a_tool_round_trip_through_an_openai_target() {
    let s = setup(&[OPENAI]).await;
    let m = s.mock(0);
    m.push(Reply::json(200, tool_call_completion()));
    m.push(Reply::json(
        200,
        completion("gpt-4o-2024-08-06", "Sunny, 21°C."),
    ));
    let r = sdk_one(
        &s.proxy,
        json!({"kind": "tool_round_trip", "request": weather_request(),
               "results": {"get_weather": "21°C and sunny"}}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    let first = &r["first"];
    assert_eq!(first["stop_reason"], "tool_use");
    assert_eq!(
        first["tool_uses"],
        json!([{"id": "call_paris", "name": "get_weather", "input": {"location": "Paris"}}])
    );
    assert_eq!(r["second"]["text"], "Sunny, 21°C.");
    assert_eq!(r["second"]["stop_reason"], "end_turn");

    let one = upstream_json(m, 0);
    assert_eq!(
        one["tools"],
        json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
            "parameters": weather_tools()[0]["input_schema"]}}])
    );
    let two = upstream_json(m, 1);
    let msgs = two["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "{two}");
    assert_eq!(msgs[0]["role"], "user");
    assert_eq!(msgs[0]["content"][0]["text"], "Weather in Paris?");
    assert_eq!(msgs[1]["role"], "assistant");
    let call = &msgs[1]["tool_calls"][0];
    assert_eq!(call["id"], "call_paris");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"location": "Paris"}));
    assert_eq!(
        msgs[2],
        json!({"role": "tool", "tool_call_id": "call_paris", "content": "21°C and sunny"})
    );
}

#[tokio::test]
async fn a_tool_round_trip_through_an_anthropic_target() {
    let s = setup(&[ANTHROPIC]).await;
    let m = s.mock(0);
    m.push(Reply::json(200, ANT_TOOL_USE_JSON));
    m.push(Reply::json(200, ANT_TEXT_JSON));
    let r = sdk_one(
        &s.proxy,
        json!({"kind": "tool_round_trip", "request": weather_request(),
               "results": {"get_weather": "21°C", "get_time": "14:00"}}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    let first = &r["first"];
    assert_eq!(first["stop_reason"], "tool_use");
    assert_eq!(
        first["block_types"],
        json!(["text", "tool_use", "tool_use", "tool_use"])
    );
    assert_eq!(first["tool_uses"][0]["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(
        first["tool_uses"][1]["input"],
        json!({"location": "Tokyo, Japan", "unit": "celsius"})
    );
    assert_eq!(first["tool_uses"][2]["input"], json!({}));
    assert_eq!(r["second"]["text"], "Hello! How can I help you today?");

    let bodies: Vec<Value> = m.received().iter().map(|r| r.json()).collect();
    assert_eq!(bodies[0]["tools"][0]["name"], "get_weather");
    assert_eq!(
        bodies[0]["tools"][0]["input_schema"],
        weather_tools()[0]["input_schema"]
    );
    // The second turn holds the user's text, the assistant's tool_use blocks and one
    // user turn of tool_result blocks.
    let msgs = bodies[1]["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "{}", bodies[1]);
    assert_eq!(msgs[0]["role"], "user");
    assert_eq!(msgs[1]["role"], "assistant");
    let uses: Vec<&Value> = msgs[1]["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .collect();
    assert_eq!(uses.len(), 3, "{}", msgs[1]);
    assert_eq!(uses[0]["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(uses[0]["name"], "get_weather");
    assert_eq!(
        uses[0]["input"],
        json!({"location": "Paris, France", "unit": "celsius"})
    );
    assert_eq!(uses[2]["input"], json!({}));
    assert_eq!(msgs[2]["role"], "user");
    let results = msgs[2]["content"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{}", msgs[2]);
    assert!(results.iter().all(|b| b["type"] == "tool_result"));
    assert_eq!(results[0]["tool_use_id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(results[2]["tool_use_id"], "toolu_01CdXd3cMv4aK1AqZ7pW9sRt");
    let text = |b: &Value| match &b["content"] {
        Value::String(t) => t.clone(),
        Value::Array(parts) => parts[0]["text"].as_str().unwrap().to_string(),
        other => panic!("tool_result content: {other}"),
    };
    assert_eq!(text(&results[0]), "21°C");
    assert_eq!(text(&results[2]), "14:00");
    let check = sdk_one(
        &s.proxy,
        json!({"kind": "check_requests", "bodies": bodies}),
    )
    .await;
    assert_eq!(check["ok"], true, "{check}");
}

#[tokio::test]
async fn a_tool_round_trip_through_a_gemini_target() {
    let s = setup(&[GEMINI]).await;
    let m = s.mock(0);
    m.push(Reply::json(200, GEM_CALLS_JSON));
    m.push(Reply::json(200, GEM_TEXT_JSON));
    let r = sdk_one(
        &s.proxy,
        json!({"kind": "tool_round_trip", "request": weather_request(),
               "results": {"get_weather": "mild", "get_time": "noon"}}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    let uses = r["first"]["tool_uses"].as_array().unwrap();
    assert_eq!(uses.len(), 3, "{r}");
    assert_eq!(r["first"]["stop_reason"], "tool_use");
    let ids: std::collections::HashSet<&str> =
        uses.iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "unique ids for Gemini's calls: {r}");
    assert_eq!(
        uses[0]["input"],
        json!({"location": "Paris", "unit": "celsius"})
    );
    // the function responses go back named after the calls they answer
    let two = upstream_json(m, 1);
    let turns = two["contents"].as_array().unwrap();
    assert_eq!(turns.len(), 3, "{two}");
    assert_eq!(turns[1]["role"], "model");
    assert_eq!(turns[1]["parts"].as_array().unwrap().len(), 3);
    assert_eq!(turns[2]["role"], "user");
    let names: Vec<&str> = turns[2]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["functionResponse"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["get_weather", "get_weather", "get_time"]);
}

#[tokio::test]
async fn streamed_tool_use_arrives_as_input_json_deltas() {
    let s = setup(&[OPENAI, ANTHROPIC]).await;
    let (oai, ant) = (s.mock(0), s.mock(1));
    let m = "gpt-4o-2024-08-06";
    let datas = [
        chunk(
            m,
            json!({"role": "assistant", "content": "Let me check."}),
            None,
        ),
        chunk(
            m,
            json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
            None,
        ),
        chunk(
            m,
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"location\":"}}]}),
            None,
        ),
        chunk(
            m,
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
            None,
        ),
        chunk(
            m,
            json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]}),
            None,
        ),
        chunk(m, json!({}), Some("tool_calls")),
        "[DONE]".to_string(),
    ];
    let refs: Vec<&str> = datas.iter().map(String::as_str).collect();
    oai.push(Reply::sse(&refs));
    // the OpenAI lead is overloaded for the second request: Anthropic's stream answers
    oai.push(Reply::json(503, r#"{"error":{"message":"busy"}}"#));
    ant.push(sse(ANT_TOOL_USE_SSE));
    let results = anthropic_sdk(
        &s.proxy,
        CLIENT_KEY,
        json!([
            {"kind": "stream", "request": weather_request()},
            {"kind": "stream", "request": weather_request()},
        ]),
    )
    .await;
    let r = &results[0];
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["stop_reason"], "tool_use");
    assert_eq!(r["block_types"], json!(["text", "tool_use", "tool_use"]));
    assert_eq!(r["text"], "Let me check.");
    assert_eq!(
        r["tool_uses"],
        json!([
            {"id": "call_a", "name": "get_weather", "input": {"location": "Paris"}},
            {"id": "call_b", "name": "get_time", "input": {}},
        ])
    );
    let deltas: Vec<&Value> = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "content_block_delta" && e["delta"]["type"] == "input_json_delta")
        .collect();
    assert!(deltas.len() >= 2, "{r}");
    assert!(deltas.iter().all(|d| d["index"] != 0), "not the text block");

    let a = &results[1];
    assert_eq!(a["ok"], true, "{a}");
    assert_eq!(a["headers"]["x-understudy-provider"], "ant");
    assert_eq!(a["stop_reason"], "tool_use");
    assert_eq!(a["text"], "I'll check the weather in both cities.");
    assert_eq!(a["tool_uses"][0]["id"], "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
    assert_eq!(
        a["tool_uses"][0]["input"],
        json!({"location": "Paris, France", "unit": "celsius"})
    );
    assert_eq!(
        a["tool_uses"][1]["input"],
        json!({"location": "Tokyo, Japan", "unit": "celsius"})
    );
}

#[tokio::test]
async fn gemini_streamed_function_calls_arrive_as_tool_use_blocks() {
    let s = setup(&[GEMINI]).await;
    s.mock(0).push(sse(include_str!(
        "../fixtures/gemini/stream_function_calls.sse"
    )));
    let r = sdk_one(
        &s.proxy,
        json!({"kind": "stream", "request": weather_request()}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        r["text"], "I will look both up.",
        "no thoughts in the text: {r}"
    );
    assert_eq!(r["stop_reason"], "tool_use");
    // The thought, then the first call's thought signature, are thinking blocks
    // (see messages_reasoning.rs): the signature must go back with that call.
    assert_eq!(
        r["block_types"],
        json!(["thinking", "text", "thinking", "tool_use", "tool_use", "tool_use"])
    );
    let uses = r["tool_uses"].as_array().unwrap();
    assert_eq!(uses[0]["name"], "get_weather");
    assert_eq!(
        uses[0]["input"],
        json!({"location": "Paris", "unit": "celsius"})
    );
    assert_eq!(
        uses[1]["input"],
        json!({"location": "London", "unit": "celsius"})
    );
    assert_eq!(uses[2]["name"], "get_time");
    assert_eq!(uses[2]["input"], json!({}));
    let ids: std::collections::HashSet<&str> =
        uses.iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "unique ids: {r}");
    // every block index is opened once, in order, and closed
    let starts: Vec<u64> = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "content_block_start")
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(starts, [0, 1, 2, 3, 4, 5]);
    let stops = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "content_block_stop")
        .count();
    assert_eq!(stops, 6);
}
