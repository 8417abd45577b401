//! Real clients of the Responses API pointed at the proxy (only their base URL
//! changed) are the judges (DESIGN §7): the official `openai` Python SDK
//! (`responses.create`, the `responses.stream` helper, retrieve, delete,
//! input_items; every answer and event validated with its pydantic types),
//! openai-agents' `Runner` with a function tool, and the Vercel AI SDK's default
//! `openai()` provider (`generateText`, `streamText`, a tool loop, `generateObject`
//! and `streamObject`) under Node. Mock upstreams of the openai, anthropic and gemini
//! kinds answer behind the proxy.
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

fn weather_tool() -> Value {
    json!({"type": "function", "name": "get_weather", "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
            "required": ["city"], "additionalProperties": false}, "strict": true})
}

fn ok(r: &Value) {
    assert_eq!(r["ok"], true, "the client failed: {r:#}");
}

#[tokio::test]
async fn the_openai_sdk_creates_streams_continues_and_manages_stored_responses() {
    let m = Mock::start().await;
    let p = openai_proxy(&m).await;
    m.push(Reply::json(200, completion(GPT, "Hello from the proxy")));
    m.push(stream_reply(GPT, &["Hel", "lo", "!"]));
    m.push(Reply::json(
        200,
        tool_call_completion("call_abc", "get_weather", r#"{"city":"Paris"}"#),
    ));
    m.push(Reply::json(200, completion(GPT, "It is 18°C in Paris.")));
    m.push(tool_call_stream(
        "call_def",
        "get_weather",
        &["{\"ci", "ty\":\"Rome\"}"],
    ));
    let cut = [
        chunk(GPT, json!({"role": "assistant", "content": ""}), None),
        chunk(GPT, json!({"content": "partial"}), None),
    ];
    let refs: Vec<&str> = cut.iter().map(String::as_str).collect();
    m.push(Reply::sse(&refs).end(End::Drop));
    let tools = json!([weather_tool()]);
    let results = responses_sdk(
        &p,
        json!([
            {"kind": "create", "request": {"model": "default", "input": "hi",
                "instructions": "be brief", "metadata": {"k": "v"}, "temperature": 0.2}},
            {"kind": "stream", "request": {"model": "default", "input": "hi"}},
            {"kind": "create", "request": {"model": "default", "input": "Weather in Paris?", "tools": tools}},
            {"kind": "create", "request": {"model": "default", "previous_response_id": "$2.id", "tools": tools,
                "input": [{"type": "function_call_output", "call_id": "$2.call_id", "output": "18°C"}]}},
            {"kind": "stream", "request": {"model": "default", "input": "Weather in Rome?", "tools": tools}},
            {"kind": "stream", "request": {"model": "default", "input": "this one breaks"}},
            {"kind": "retrieve", "id": "$3.id"},
            {"kind": "input_items", "id": "$0.id"},
            {"kind": "input_items_all", "id": "$3.id", "params": {"order": "asc", "limit": 1}},
            {"kind": "delete", "id": "$0.id"},
            {"kind": "retrieve", "id": "$0.id"},
            {"kind": "create", "request": {"model": "default", "input": "hi",
                "previous_response_id": "resp_unknown0000"}},
        ]),
    )
    .await;

    let plain = &results[0];
    ok(plain);
    assert_eq!(plain["output_text"], "Hello from the proxy");
    assert_eq!(plain["sdk_output_text"], "Hello from the proxy");
    assert_eq!(plain["status"], "completed");
    assert_eq!(plain["instructions"], "be brief");
    assert_eq!(plain["metadata"], json!({"k": "v"}));
    assert_eq!(plain["temperature"], 0.2);
    assert_eq!(plain["headers"]["x-understudy-provider"], "openai");

    let streamed = &results[1];
    ok(streamed);
    assert_eq!(streamed["text"], "Hello!");
    assert_eq!(streamed["final"]["output_text"], "Hello!");
    assert_eq!(streamed["final"]["status"], "completed");
    assert!(streamed["final_error"].is_null(), "{streamed}");
    assert_eq!(streamed["headers"]["x-understudy-provider"], "openai");

    let call = &results[2];
    ok(call);
    assert_eq!(call["function_calls"][0]["call_id"], "call_abc", "{call:#}");
    assert_eq!(call["function_calls"][0]["name"], "get_weather");
    let answer = &results[3];
    ok(answer);
    assert_eq!(answer["output_text"], "It is 18°C in Paris.");
    assert_eq!(answer["previous_response_id"], call["id"]);
    let msgs = chat_messages(&m.received()[3]);
    assert_eq!(msgs.len(), 3, "user, assistant call, tool result: {msgs:?}");
    assert_eq!(msgs[2]["tool_call_id"], "call_abc");

    let streamed_call = &results[4];
    ok(streamed_call);
    assert_eq!(streamed_call["arguments"], r#"{"city":"Rome"}"#);
    let fc = &streamed_call["final"]["function_calls"][0];
    assert_eq!(fc["call_id"], "call_def");
    assert_eq!(fc["arguments"], r#"{"city":"Rome"}"#);
    let types: Vec<&str> = streamed_call["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"response.function_call_arguments.done"),
        "{types:?}"
    );

    let broken = &results[5];
    assert_eq!(
        broken["ok"], true,
        "the SDK takes response.failed: {broken:#}"
    );
    assert_eq!(broken["text"], "partial");
    assert_eq!(broken["last"]["type"], "response.failed", "{broken:#}");
    assert_eq!(broken["last"]["response"]["error"]["code"], "server_error");
    assert!(
        broken["final"].is_null(),
        "no final response after a failure: {broken:#}"
    );

    let got = &results[6];
    ok(got);
    assert_eq!(got["id"], answer["id"]);
    assert_eq!(got["output_text"], "It is 18°C in Paris.");
    let items = &results[7];
    ok(items);
    assert_eq!(
        items["body"]["data"].as_array().map(Vec::len),
        Some(1),
        "{items:#}"
    );
    let all = &results[8];
    ok(all);
    // DESIGN is silent on whether a continued response lists only its own input or
    // the whole conversation; either way the newest item (asc: last) is its own.
    let types: Vec<&str> = all["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        types == ["function_call_output"]
            || types == ["message", "function_call", "function_call_output"],
        "input items of the second turn, oldest first, one page at a time: {all:#}"
    );
    let deleted = &results[9];
    ok(deleted);
    assert_eq!(
        deleted["body"],
        json!({"id": plain["id"], "object": "response.deleted", "deleted": true})
    );
    let gone = &results[10];
    assert_eq!(gone["status"], 404, "{gone:#}");
    assert_eq!(gone["error"], "NotFoundError");
    let unknown = &results[11];
    assert_eq!(unknown["status"], 400, "{unknown:#}");
    assert_eq!(unknown["code"], "previous_response_not_found");
    assert_eq!(unknown["param"], "previous_response_id");
    assert_eq!(m.count(), 6, "one upstream call per answered turn");
}

#[tokio::test]
async fn the_openai_sdk_judges_answers_translated_from_anthropic() {
    let m = Mock::start().await;
    let p = proxy_over(
        &[Target {
            name: "anthropic",
            kind: "anthropic",
            mock: &m,
            model: "claude-sonnet-4-5",
        }],
        "",
    )
    .await;
    m.push(Reply::json(
        200,
        include_str!("../fixtures/anthropic/response_tool_use.json"),
    ));
    m.push(Reply::split(
        200,
        "text/event-stream",
        include_str!("../fixtures/anthropic/stream_tool_use.sse"),
    ));
    m.push(Reply::split(
        200,
        "text/event-stream",
        include_str!("../fixtures/anthropic/stream_thinking.sse"),
    ));
    m.push(Reply::split(
        200,
        "text/event-stream",
        include_str!("../fixtures/anthropic/stream_error_midstream.sse"),
    ));
    let tools = json!([weather_tool(),
        {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}}]);
    let results = responses_sdk(
        &p,
        json!([
            {"kind": "create", "request": {"model": "default", "input": "weather?", "tools": tools}},
            {"kind": "stream", "request": {"model": "default", "input": "weather?", "tools": tools}},
            {"kind": "stream", "request": {"model": "default", "input": "think"}},
            {"kind": "stream", "request": {"model": "default", "input": "break"}},
        ]),
    )
    .await;
    let c = &results[0];
    ok(c);
    assert_eq!(
        c["function_calls"].as_array().map(Vec::len),
        Some(3),
        "{c:#}"
    );
    assert_eq!(c["model"], "claude-sonnet-4-5-20250929");
    let s = &results[1];
    ok(s);
    assert_eq!(
        s["final"]["function_calls"].as_array().map(Vec::len),
        Some(2),
        "{s:#}"
    );
    assert_eq!(s["final"]["status"], "completed");
    let t = &results[2];
    ok(t);
    assert_eq!(t["final"]["status"], "completed", "{t:#}");
    let e = &results[3];
    ok(e);
    assert_eq!(e["last"]["type"], "response.failed", "{e:#}");
}

#[tokio::test]
async fn openai_agents_runs_a_function_tool_through_the_proxy() {
    let m = Mock::start().await;
    let p = openai_proxy(&m).await;
    let call = || {
        Reply::json(
            200,
            tool_call_completion("call_w1", "get_weather", r#"{"city":"Paris"}"#),
        )
    };
    let answer = || Reply::json(200, completion(GPT, "It is 18C and sunny in Paris."));
    // Runner.run, Runner.run_streamed, then chained by previous_response_id
    m.push(call()).push(answer());
    m.push(tool_call_stream(
        "call_w2",
        "get_weather",
        &["{\"city\":\"Paris\"}"],
    ));
    m.push(stream_reply(GPT, &["It is 18C ", "and sunny in Paris."]));
    m.push(call()).push(answer());
    m.push(Reply::json(200, completion(GPT, "You're welcome.")));
    let results = agents(
        &p,
        json!([
            {"input": "What's the weather in Paris?"},
            {"input": "What's the weather in Paris?", "stream": true},
            {"input": "What's the weather in Paris?", "auto_previous_response_id": true},
            {"input": "Thanks!", "previous_response_id": "$2"},
        ]),
    )
    .await;
    for (i, r) in results.iter().take(3).enumerate() {
        ok(r);
        assert_eq!(
            r["final_output"], "It is 18C and sunny in Paris.",
            "run {i}"
        );
        assert_eq!(r["tool_calls"], json!(["Paris"]), "run {i}: the tool ran");
        assert_eq!(
            r["items"],
            json!([
                "tool_call_item",
                "tool_call_output_item",
                "message_output_item"
            ]),
            "run {i}"
        );
        let ids = r["response_ids"].as_array().unwrap();
        assert_eq!(ids.len(), 2, "run {i}: {r}");
        assert!(
            ids.iter()
                .all(|id| id.as_str().unwrap_or("").starts_with("resp_")),
            "{ids:?}"
        );
    }
    let thanks = &results[3];
    ok(thanks);
    assert_eq!(thanks["final_output"], "You're welcome.");
    let got = m.received();
    assert_eq!(got.len(), 7);
    // each tool turn reached the upstream with the whole conversation
    for i in [1, 3, 5] {
        let msgs = chat_messages(&got[i]);
        let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(
            &roles[roles.len() - 3..],
            ["user", "assistant", "tool"],
            "request {i}: {msgs:?}"
        );
        assert!(
            msgs.last().unwrap()["content"]
                .to_string()
                .contains("18C and sunny in Paris"),
            "the tool's result: {msgs:?}"
        );
    }
    let last = chat_messages(&got[6]);
    let roles: Vec<&str> = last.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(
        &roles[roles.len() - 5..],
        ["user", "assistant", "tool", "assistant", "user"],
        "the chained run carries the earlier one: {last:?}"
    );
}

#[tokio::test]
async fn the_vercel_ai_sdk_generates_and_streams_through_the_proxy() {
    let m = Mock::start().await;
    let p = openai_proxy(&m).await;
    m.push(Reply::json(200, completion(GPT, "Hello from the proxy")));
    m.push(stream_reply(GPT, &["Hel", "lo", "!"]));
    m.push(Reply::json(
        200,
        tool_call_completion("call_v1", "get_weather", r#"{"city":"Paris"}"#),
    ));
    m.push(Reply::json(200, completion(GPT, "It is 18C in Paris.")));
    m.push(tool_call_stream(
        "call_v2",
        "get_weather",
        &["{\"city\":", "\"Paris\"}"],
    ));
    m.push(stream_reply(GPT, &["It is 18C ", "in Paris."]));
    m.push(Reply::json(200, completion(GPT, "Still 18C.")));
    let results = ai_sdk(
        &p,
        json!([
            {"kind": "generate", "prompt": "hi"},
            {"kind": "stream", "prompt": "hi"},
            {"kind": "generate", "prompt": "Weather in Paris?", "tools": true},
            {"kind": "stream", "prompt": "Weather in Paris?", "tools": true},
            {"kind": "generate", "prompt": "And now?", "previous": 2},
        ]),
    )
    .await;
    let g = &results[0];
    ok(g);
    assert_eq!(g["text"], "Hello from the proxy");
    assert_eq!(g["finishReason"], "stop");
    assert_eq!(g["usage"]["totalTokens"], 7, "{g:#}");
    assert_eq!(g["headers"]["x-understudy-provider"], "openai");
    assert!(
        g["responseId"].as_str().unwrap_or("").starts_with("resp_"),
        "{g:#}"
    );
    let s = &results[1];
    ok(s);
    assert_eq!(s["text"], "Hello!");
    assert_eq!(s["finalText"], "Hello!");
    assert_eq!(s["finishReason"], "stop");
    assert_eq!(s["usage"]["totalTokens"], 7, "{s:#}");
    for (i, r) in results[2..4].iter().enumerate() {
        ok(r);
        assert_eq!(r["steps"], 2, "tool step then answer: {r:#}");
        assert_eq!(r["executed"], json!(["Paris"]), "{r:#}");
        assert_eq!(r["text"], "It is 18C in Paris.", "scenario {}", i + 2);
        assert_eq!(r["finishReason"], "stop");
    }
    let cont = &results[4];
    ok(cont);
    assert_eq!(cont["text"], "Still 18C.");
    let got = m.received();
    assert_eq!(got.len(), 7);
    for i in [3, 5] {
        let msgs = chat_messages(&got[i]);
        let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(
            roles,
            ["user", "assistant", "tool"],
            "request {i}: {msgs:?}"
        );
    }
    let chained = chat_messages(&got[6]);
    let roles: Vec<&str> = chained
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["user", "assistant", "tool", "assistant", "user"],
        "previousResponseId expands the earlier run's last response: {chained:?}"
    );
}

#[tokio::test]
async fn the_vercel_ai_sdk_continues_a_turn_that_had_text_and_a_tool_call() {
    // A model that says something before calling a tool (Claude does): on the next
    // step the AI SDK refers to the stored text item by id (`item_reference`).
    let m = Mock::start().await;
    let p = openai_proxy(&m).await;
    let both = json!({
        "id": "chatcmpl-both", "object": "chat.completion", "created": 1_700_000_000u64, "model": GPT,
        "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": null,
            "message": {"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "call_t1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}
    });
    m.push(Reply::json(200, both.to_string()));
    m.push(Reply::json(200, completion(GPT, "It is 18C in Paris.")));
    let results = ai_sdk(
        &p,
        json!([{"kind": "generate", "prompt": "Weather in Paris?", "tools": true}]),
    )
    .await;
    let r = &results[0];
    ok(r);
    assert_eq!(r["steps"], 2, "{r:#}");
    assert!(
        r["sentInputTypes"][1]
            .to_string()
            .contains("item_reference"),
        "the AI SDK refers to the stored text item by id: {r:#}"
    );
    assert!(
        r["text"]
            .as_str()
            .unwrap_or("")
            .ends_with("It is 18C in Paris."),
        "{r:#}"
    );
    let msgs = chat_messages(&m.received()[1]);
    let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(
        (roles.first(), roles.last()),
        (Some(&"user"), Some(&"tool")),
        "{msgs:?}"
    );
    let assistant: String = msgs
        .iter()
        .filter(|m| m["role"] == "assistant")
        .map(Value::to_string)
        .collect();
    assert!(
        assistant.contains("Let me check.") && assistant.contains("call_t1"),
        "the referenced text item and the call are replayed: {msgs:?}"
    );
}

#[tokio::test]
async fn the_vercel_ai_sdk_generates_and_streams_objects_through_translated_targets() {
    // generateObject / streamObject send `text.format` json_schema: Anthropic gets it
    // as the forced `json_output` tool, Gemini as its response schema.
    let ant = Mock::start().await;
    let gem = Mock::start().await;
    let p = proxy_over(
        &[
            Target {
                name: "anthropic",
                kind: "anthropic",
                mock: &ant,
                model: "claude-sonnet-4-5",
            },
            Target {
                name: "gemini",
                kind: "gemini",
                mock: &gem,
                model: "gemini-2.0-flash",
            },
        ],
        "",
    )
    .await;
    ant.push(Reply::json(
        200,
        include_str!("../fixtures/anthropic/response_json_output.json"),
    ));
    ant.push(Reply::split(
        200,
        "text/event-stream",
        include_str!("../fixtures/anthropic/stream_json_output.sse"),
    ));
    // then Anthropic is overloaded and Gemini answers with JSON text
    ant.push(Reply::json(
        529,
        include_str!("../fixtures/anthropic/error_overloaded.json"),
    ));
    let mut gemini: Value =
        serde_json::from_str(include_str!("../fixtures/gemini/response_text.json")).unwrap();
    gemini["candidates"][0]["content"]["parts"] = json!([
        {"text": "{\"name\": \"Bake sale\", \"date\": \"Sunday\", "},
        {"text": "\"participants\": [\"Carol\"]}"}
    ]);
    gem.push(Reply::json(200, gemini.to_string()));
    let results = ai_sdk(
        &p,
        json!([
            {"kind": "object", "prompt": "Plan the science fair."},
            {"kind": "stream_object", "prompt": "Plan the science fair."},
            {"kind": "object", "prompt": "Plan the bake sale."},
        ]),
    )
    .await;
    let fair = json!({"name": "Science fair", "date": "Friday", "participants": ["Alice", "Bob"]});
    let g = &results[0];
    ok(g);
    assert_eq!(g["object"], fair, "{g:#}");
    assert_eq!(g["finishReason"], "stop", "{g:#}");
    assert_eq!(g["headers"]["x-understudy-provider"], "anthropic");
    assert!(
        g["responseId"].as_str().unwrap_or("").starts_with("resp_"),
        "{g:#}"
    );
    let s = &results[1];
    ok(s);
    assert_eq!(s["object"], fair, "{s:#}");
    assert!(
        s["partials"].as_u64().unwrap() >= 2,
        "streamed in pieces: {s:#}"
    );
    assert_eq!(s["finishReason"], "stop", "{s:#}");
    let b = &results[2];
    ok(b);
    assert_eq!(
        b["object"],
        json!({"name": "Bake sale", "date": "Sunday", "participants": ["Carol"]}),
        "{b:#}"
    );
    assert_eq!(b["headers"]["x-understudy-provider"], "gemini");

    // what the upstreams were asked: the SDK's schema, in each kind's own form
    let sent = ant.received();
    assert_eq!(sent.len(), 3);
    for (i, r) in sent.iter().enumerate() {
        let body = r.json();
        let tools = body["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 1, "request {i}: {body}");
        assert_eq!(tools[0]["name"], "json_output");
        let schema = &tools[0]["input_schema"];
        assert_eq!(schema["type"], "object", "{schema}");
        assert_eq!(
            schema["required"],
            json!(["name", "date", "participants"]),
            "{schema}"
        );
        assert_eq!(schema["properties"]["participants"]["type"], "array");
        assert_eq!(body["tool_choice"]["type"], "tool");
        assert_eq!(body["tool_choice"]["name"], "json_output");
        assert_eq!(body["stream"] == true, i == 1, "request {i}: {body}");
    }
    let g = gem.received()[0].json();
    let config = &g["generationConfig"];
    assert_eq!(config["responseMimeType"], "application/json", "{g}");
    let schema = &config["responseSchema"];
    assert_eq!(
        schema["required"],
        json!(["name", "date", "participants"]),
        "{g}"
    );
    assert!(schema["properties"]["participants"].is_object(), "{schema}");
}
