//! The Responses API front door translated to the other provider kinds (DESIGN §7):
//! Anthropic, Gemini and Ollama mocks replay the recorded answers and streams of
//! `fixtures/<kind>/` (streams cut into odd-sized pieces); the client sees the
//! official Response object and event sequence, and tool calls continue over turns
//! with `previous_response_id` in each kind's own wire format.
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

const CLAUDE: &str = "claude-sonnet-4-5-20250929";

async fn one(kind: &str, name: &str, model: &str, mock: &Mock) -> Proxy {
    proxy_over(
        &[Target {
            name,
            kind,
            mock,
            model,
        }],
        "",
    )
    .await
}

fn parsed(args: &Value) -> Value {
    serde_json::from_str(args.as_str().unwrap_or("")).unwrap_or_else(|e| {
        panic!("arguments are JSON ({e}): {args}");
    })
}

/// Every output item is one the Responses API knows for a translated target.
fn check_items(b: &Value) {
    for item in b["output"].as_array().expect("output") {
        let ty = item["type"].as_str().unwrap_or("");
        assert!(
            ["message", "function_call", "reasoning"].contains(&ty),
            "unexpected item {item}"
        );
    }
    check_message_items(b);
}

/// A stream ends with `response.completed` whose output equals the `output_item.done`
/// items in order, with `output_index` counting 0, 1, ….
fn check_stream_items(evs: &[Event]) -> Value {
    let done: Vec<&Value> = evs
        .iter()
        .filter(|e| e.kind() == "response.output_item.done")
        .map(|e| &e.data["item"])
        .collect();
    let indices: Vec<&Value> = evs
        .iter()
        .filter(|e| e.kind() == "response.output_item.added")
        .map(|e| &e.data["output_index"])
        .collect();
    let want: Vec<Value> = (0..indices.len()).map(|i| json!(i)).collect();
    assert_eq!(indices, want.iter().collect::<Vec<_>>(), "{:?}", kinds(evs));
    let last = evs.last().unwrap();
    assert_eq!(last.kind(), "response.completed", "{:?}", kinds(evs));
    let fin = last.data["response"].clone();
    assert_eq!(fin["output"], json!(done), "completed output = items done");
    check_items(&fin);
    fin
}

#[tokio::test]
async fn anthropic_plain_and_streamed() {
    let m = Mock::start().await;
    let p = one("anthropic", "anthropic", "claude-sonnet-4-5", &m).await;
    m.push(Reply::json(
        200,
        include_str!("../fixtures/anthropic/response_text.json"),
    ));
    m.push(Reply::split(
        200,
        "text/event-stream",
        include_str!("../fixtures/anthropic/stream_text.sse"),
    ));
    let r = create(
        &p,
        &json!({"model": "default", "input": "hi", "instructions": "be brief", "max_output_tokens": 100}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("anthropic"));
    assert_eq!(r.header("x-understudy-model"), Some("claude-sonnet-4-5"));
    let b = r.json();
    assert_eq!(b["status"], "completed");
    assert_eq!(b["model"], CLAUDE);
    assert_eq!(output_text(&b), "Hello! How can I help you today?");
    check_items(&b);
    let u = &b["usage"];
    assert_eq!(
        (&u["input_tokens"], &u["output_tokens"], &u["total_tokens"]),
        (&json!(12), &json!(38), &json!(50)),
        "{u}"
    );
    let got = &m.received()[0];
    assert_eq!(got.path, "/v1/messages");
    let up = got.json();
    assert_eq!(up["model"], "claude-sonnet-4-5");
    assert_eq!(up["max_tokens"], 100);
    let system = match &up["system"] {
        Value::String(s) => s.clone(),
        v => v[0]["text"].as_str().unwrap_or("").to_string(),
    };
    assert_eq!(system, "be brief", "instructions → system: {up}");
    assert_eq!(up["messages"][0]["role"], "user");

    let r = create(
        &p,
        &json!({"model": "default", "input": "hi", "stream": true}),
    )
    .await;
    let evs = check_stream(&r);
    assert_eq!(delta_text(&evs), "Hello! How can I help you today? ✓ héllo");
    let fin = check_stream_items(&evs);
    assert_eq!(fin["model"], CLAUDE);
    assert_eq!(fin["usage"]["input_tokens"], 21, "{fin}");
    assert_eq!(fin["usage"]["output_tokens"], 15, "{fin}");
    assert_eq!(m.received()[1].json()["stream"], true);
}

#[tokio::test]
async fn anthropic_tool_use_continues_with_previous_response_id() {
    let m = Mock::start().await;
    let p = one("anthropic", "anthropic", "claude-sonnet-4-5", &m).await;
    m.push(Reply::json(
        200,
        include_str!("../fixtures/anthropic/response_tool_use.json"),
    ));
    m.push(Reply::json(
        200,
        include_str!("../fixtures/anthropic/response_text.json"),
    ));
    let tools = json!([
        {"type": "function", "name": "get_weather", "parameters": {"type": "object",
            "properties": {"location": {"type": "string"}, "unit": {"type": "string"}}}},
        {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}}
    ]);
    let r = create(
        &p,
        &json!({"model": "default", "input": "Weather in Paris and Tokyo, and the time?", "tools": tools}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let b = r.json();
    check_items(&b);
    assert_eq!(
        output_text(&b),
        "I'll look up the weather in both cities and the current time."
    );
    let calls = items_of(&b, "function_call");
    let ids: Vec<&str> = calls
        .iter()
        .map(|c| c["call_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "toolu_01A09q90qw90lq917835lq9",
            "toolu_01B5cPNg1ZkQxRWsyW1uDBkT",
            "toolu_01CdXd3cMv4aK1AqZ7pW9sRt"
        ]
    );
    assert_eq!(
        parsed(&calls[0]["arguments"]),
        json!({"location": "Paris, France", "unit": "celsius"})
    );
    assert_eq!(parsed(&calls[2]["arguments"]), json!({}));
    let mut fc_ids: Vec<&str> = calls.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert!(fc_ids.iter().all(|i| i.starts_with("fc_")), "{fc_ids:?}");
    fc_ids.sort_unstable();
    fc_ids.dedup();
    assert_eq!(fc_ids.len(), 3, "unique item ids");
    let u = &b["usage"];
    assert_eq!(
        u["input_tokens"], 3920,
        "input + cache creation + cache read: {u}"
    );
    assert_eq!(u["input_tokens_details"]["cached_tokens"], 2000, "{u}");
    assert_eq!(
        u["input_tokens_details"]["cache_write_tokens"], 1500,
        "cache creation: {u}"
    );
    assert_eq!(u["output_tokens"], 151, "{u}");
    assert_eq!(u["total_tokens"], 4071, "{u}");

    let outputs: Vec<Value> = ids
        .iter()
        .zip(["18°C", "22°C", "14:05"])
        .map(|(id, out)| json!({"type": "function_call_output", "call_id": id, "output": out}))
        .collect();
    let r = create(
        &p,
        &json!({"model": "default", "previous_response_id": b["id"], "input": outputs, "tools": tools}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(output_text(&r.json()), "Hello! How can I help you today?");
    let msgs = m.received()[1].json()["messages"].clone();
    let roles: Vec<&str> = msgs
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user"], "{msgs}");
    let blocks = msgs[1]["content"].as_array().unwrap();
    let uses: Vec<&Value> = blocks.iter().filter(|b| b["type"] == "tool_use").collect();
    assert_eq!(uses.len(), 3, "{msgs}");
    assert_eq!(uses[0]["id"], ids[0]);
    assert_eq!(uses[0]["name"], "get_weather");
    assert_eq!(
        uses[0]["input"],
        json!({"location": "Paris, France", "unit": "celsius"})
    );
    let results = msgs[2]["content"].as_array().unwrap();
    assert_eq!(results.len(), 3, "one user turn of all results: {msgs}");
    for (res, id) in results.iter().zip(&ids) {
        assert_eq!(res["type"], "tool_result");
        assert_eq!(res["tool_use_id"], *id);
    }
}

#[tokio::test]
async fn anthropic_streamed_tool_use_has_argument_events_per_call() {
    let m = Mock::start().await;
    let p = one("anthropic", "anthropic", "claude-sonnet-4-5", &m).await;
    m.push(Reply::split(
        200,
        "text/event-stream",
        include_str!("../fixtures/anthropic/stream_tool_use.sse"),
    ));
    let r = create(
        &p,
        &json!({"model": "default", "input": "Weather?", "stream": true,
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]}),
    )
    .await;
    let evs = check_stream(&r);
    let fin = check_stream_items(&evs);
    assert_eq!(output_text(&fin), "I'll check the weather in both cities.");
    let calls = items_of(&fin, "function_call");
    assert_eq!(calls.len(), 2, "{fin}");
    assert_eq!(calls[0]["call_id"], "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
    assert_eq!(calls[1]["call_id"], "toolu_01VPGbBNYNkvBxAq4tDMTKDx");
    assert_eq!(
        parsed(&calls[1]["arguments"]),
        json!({"location": "Tokyo, Japan", "unit": "celsius"})
    );
    for c in &calls {
        let id = &c["id"];
        let deltas: String = evs
            .iter()
            .filter(|e| {
                e.kind() == "response.function_call_arguments.delta" && e.data["item_id"] == *id
            })
            .map(|e| e.data["delta"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(json!(deltas), c["arguments"], "deltas of {id} concatenate");
        let done = evs
            .iter()
            .find(|e| {
                e.kind() == "response.function_call_arguments.done" && e.data["item_id"] == *id
            })
            .unwrap_or_else(|| panic!("arguments.done for {id}"));
        assert_eq!(done.data["arguments"], c["arguments"]);
    }
    assert_eq!(fin["usage"]["output_tokens"], 124, "{fin}");
}

#[tokio::test]
async fn gemini_plain_streamed_and_a_function_round_trip() {
    let m = Mock::start().await;
    let p = one("gemini", "gem", "gemini-2.0-flash", &m).await;
    m.push(Reply::json(
        200,
        include_str!("../fixtures/gemini/response_text.json"),
    ));
    m.push(Reply::split(
        200,
        "text/event-stream",
        include_str!("../fixtures/gemini/stream_text.sse"),
    ));
    m.push(Reply::json(
        200,
        include_str!("../fixtures/gemini/response_function_calls.json"),
    ));
    m.push(Reply::json(
        200,
        include_str!("../fixtures/gemini/response_text.json"),
    ));
    let r = create(
        &p,
        &json!({"model": "default", "input": "Capital of France?"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("gem"));
    let b = r.json();
    assert_eq!(
        output_text(&b),
        "Paris is the capital of France. It sits on the Seine."
    );
    check_items(&b);
    assert_eq!(b["usage"]["total_tokens"], 23, "{b}");
    assert_eq!(
        m.received()[0].path,
        "/v1beta/models/gemini-2.0-flash:generateContent"
    );

    let r = create(
        &p,
        &json!({"model": "default", "input": "Bonjour", "stream": true}),
    )
    .await;
    let evs = check_stream(&r);
    assert_eq!(
        delta_text(&evs),
        "Bonjour ! Le café est prêt ☕ — voulez-vous du lait ?\n"
    );
    check_stream_items(&evs);
    assert!(
        m.received()[1].path.contains(":streamGenerateContent"),
        "{}",
        m.received()[1].path
    );

    let r = create(
        &p,
        &json!({"model": "default", "input": "Weather and time?",
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}},
                  {"type": "function", "name": "get_time", "parameters": {"type": "object"}}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let b = r.json();
    let calls = items_of(&b, "function_call");
    assert_eq!(calls.len(), 3, "{b}");
    let mut call_ids: Vec<&str> = calls
        .iter()
        .map(|c| c["call_id"].as_str().unwrap())
        .collect();
    assert!(
        call_ids
            .iter()
            .all(|c| c.starts_with("call_") && c.len() > 8),
        "made-up ids are real: {call_ids:?}"
    );
    call_ids.sort_unstable();
    call_ids.dedup();
    assert_eq!(call_ids.len(), 3, "unique call ids");
    assert_eq!(parsed(&calls[2]["arguments"]), json!({}), "no args → {{}}");
    let u = &b["usage"];
    assert_eq!(u["output_tokens"], 107, "candidates + thoughts: {u}");
    assert_eq!(u["output_tokens_details"]["reasoning_tokens"], 66, "{u}");

    let outputs: Vec<Value> = calls
        .iter()
        .map(|c| json!({"type": "function_call_output", "call_id": c["call_id"], "output": "ok"}))
        .collect();
    let r = create(
        &p,
        &json!({"model": "default", "previous_response_id": b["id"], "input": outputs}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let contents = m.received()[3].json()["contents"].clone();
    let turns = contents.as_array().unwrap();
    assert_eq!(turns.len(), 3, "user, model calls, responses: {contents}");
    assert_eq!(turns[1]["role"], "model");
    let responses: Vec<&str> = turns[2]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["functionResponse"]["name"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        responses,
        ["get_weather", "get_weather", "get_time"],
        "each response named after its call: {contents}"
    );
    assert_eq!(turns[2]["role"], "user");
}

#[tokio::test]
async fn ollama_plain_and_streamed() {
    let m = Mock::start().await;
    let p = one("ollama", "local", "llama3.2", &m).await;
    m.push(Reply::json(
        200,
        include_str!("../fixtures/ollama/response_text.json"),
    ));
    m.push(Reply::split(
        200,
        "application/x-ndjson",
        include_str!("../fixtures/ollama/stream_text.ndjson"),
    ));
    let r = create(
        &p,
        &json!({"model": "default", "input": "Why is the sky blue?"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("local"));
    let b = r.json();
    assert_eq!(
        output_text(&b),
        "The sky is blue because of Rayleigh scattering."
    );
    check_items(&b);
    assert_eq!(b["usage"]["input_tokens"], 34);
    assert_eq!(b["usage"]["output_tokens"], 12);
    let got = &m.received()[0];
    assert_eq!(got.path, "/api/chat");
    assert_eq!(got.json()["stream"], false);

    let r = create(
        &p,
        &json!({"model": "default", "input": "Why?", "stream": true}),
    )
    .await;
    let evs = check_stream(&r);
    assert_eq!(delta_text(&evs), "The sky is blue ✓");
    let fin = check_stream_items(&evs);
    assert_eq!(fin["usage"]["output_tokens"], 3, "{fin}");
    assert_eq!(m.received()[1].json()["stream"], true);
}
