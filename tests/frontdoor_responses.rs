//! The Responses API front door (`/v1/responses`, DESIGN §7) over OpenAI-kind mock
//! upstreams, which answer in Chat Completions format: answers and streams in the
//! official shapes, tool calls over turns with `previous_response_id`, incomplete
//! answers, hosted tools dropped, client keys. Failover and failures are in
//! `frontdoor_responses_failover.rs`, stored state (GET / DELETE / input_items) in
//! `frontdoor_responses_state.rs`, request translation in
//! `frontdoor_responses_request.rs`, the other provider kinds in
//! `frontdoor_responses_kinds.rs`, the real clients in `sdk_responses.rs`.
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

/// The text of a chat message's content (a string or an array of text parts).
fn text_of(msg: &Value) -> String {
    match &msg["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    }
}

fn weather_tool() -> Value {
    json!({"type": "function", "name": "get_weather", "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
            "required": ["city"], "additionalProperties": false}, "strict": true})
}

#[tokio::test]
async fn a_plain_answer_is_the_official_response_object() {
    let m = Mock::start().await;
    let p = openai_proxy(&m).await;
    m.push(Reply::json(200, completion(GPT, "Hello there")));
    let body = json!({"model": "default", "input": "hi", "instructions": "be brief",
        "temperature": 0.5, "top_p": 0.9, "max_output_tokens": 100,
        "metadata": {"team": "qa"}});
    let auth = format!("Bearer {CLIENT_KEY}");
    let r = send(
        &p.url("/v1/responses"),
        "POST",
        &[("authorization", &auth), ("x-request-id", "req-resp-1")],
        body.to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("openai"));
    assert_eq!(r.header("x-understudy-model"), Some("gpt-4o"));
    assert_eq!(r.header("x-understudy-attempts"), Some("1"));
    assert_eq!(r.header("x-request-id"), Some("req-resp-1"));
    let b = r.json();
    let id = b["id"].as_str().unwrap();
    assert!(id.starts_with("resp_") && id.len() > 10, "id {id}");
    assert_eq!(b["object"], "response");
    assert!(b["created_at"].as_u64().unwrap_or(0) > 1_600_000_000, "{b}");
    assert_eq!(b["status"], "completed");
    assert_eq!(b["model"], GPT, "the model that answered");
    assert!(
        b["error"].is_null() && b["incomplete_details"].is_null(),
        "{b}"
    );
    assert_eq!(items_of(&b, "message").len(), 1, "{b}");
    assert_eq!(output_text(&b), "Hello there");
    check_message_items(&b);
    let u = &b["usage"];
    assert_eq!(
        (&u["input_tokens"], &u["output_tokens"], &u["total_tokens"]),
        (&json!(5), &json!(2), &json!(7)),
        "{u}"
    );
    assert_eq!(u["input_tokens_details"]["cached_tokens"], 0, "{u}");
    assert_eq!(u["output_tokens_details"]["reasoning_tokens"], 0, "{u}");
    // the request's settings, echoed
    assert_eq!(b["instructions"], "be brief");
    assert_eq!(b["temperature"], 0.5);
    assert_eq!(b["top_p"], 0.9);
    assert_eq!(b["max_output_tokens"], 100);
    assert_eq!(b["metadata"], json!({"team": "qa"}));
    assert_eq!(b["store"], true, "store defaults to true");
    assert!(b["previous_response_id"].is_null());
    // what the openai-kind upstream got: a chat request
    let got = &m.received()[0];
    assert_eq!(got.path, "/v1/chat/completions");
    assert_eq!(
        got.headers.get("authorization").map(String::as_str),
        Some("Bearer sk-upstream-secret")
    );
    let up = got.json();
    assert_eq!(up["model"], "gpt-4o");
    assert_ne!(up["stream"], true);
    let msgs = chat_messages(got);
    assert_eq!(msgs.len(), 2, "instructions + input: {msgs:?}");
    assert!(
        msgs[0]["role"] == "system" || msgs[0]["role"] == "developer",
        "{msgs:?}"
    );
    assert_eq!(text_of(&msgs[0]), "be brief");
    assert_eq!(
        (msgs[1]["role"].as_str(), text_of(&msgs[1]).as_str()),
        (Some("user"), "hi")
    );
    assert_eq!(up["temperature"], 0.5);
    assert_eq!(up["top_p"], 0.9);
    let max = if up["max_completion_tokens"].is_null() {
        &up["max_tokens"]
    } else {
        &up["max_completion_tokens"]
    };
    assert_eq!(
        max, 100,
        "max_output_tokens → max(_completion)_tokens: {up}"
    );
}

#[tokio::test]
async fn a_streamed_answer_has_the_official_event_sequence() {
    let m = Mock::start().await;
    let p = openai_proxy(&m).await;
    m.push(stream_reply(GPT, &["Hel", "lo", "!"]));
    let r = create(
        &p,
        &json!({"model": "default", "input": "hi", "stream": true}),
    )
    .await;
    assert_eq!(r.header("x-understudy-provider"), Some("openai"));
    assert_eq!(r.header("x-understudy-model"), Some("gpt-4o"));
    let evs = check_stream(&r);
    assert_eq!(
        kinds(&evs),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ],
        "one delta per upstream content chunk"
    );
    let created = &evs[0].data["response"];
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["output"], json!([]));
    let added = &evs[2].data;
    assert_eq!(added["output_index"], 0);
    assert_eq!(added["item"]["type"], "message");
    assert_eq!(added["item"]["status"], "in_progress");
    assert_eq!(added["item"]["content"], json!([]));
    let item_id = added["item"]["id"].as_str().unwrap();
    assert!(item_id.starts_with("msg_"), "{item_id}");
    let part = &evs[3].data["part"];
    assert_eq!(part["type"], "output_text", "{part}");
    assert_eq!(part["text"], "", "{part}");
    assert_eq!(part["annotations"], json!([]), "{part}");
    for e in &evs[4..7] {
        assert_eq!(e.data["item_id"], item_id);
        assert_eq!(
            (&e.data["output_index"], &e.data["content_index"]),
            (&json!(0), &json!(0))
        );
        assert_eq!(e.data["logprobs"], json!([]), "{}", e.data);
    }
    assert_eq!(delta_text(&evs), "Hello!");
    assert_eq!(evs[7].data["text"], "Hello!");
    assert_eq!(evs[7].data["logprobs"], json!([]));
    assert_eq!(evs[8].data["part"]["text"], "Hello!");
    let done_item = &evs[9].data["item"];
    assert_eq!(done_item["id"], item_id);
    assert_eq!(done_item["status"], "completed");
    let fin = &evs[10].data["response"];
    assert_eq!(fin["status"], "completed");
    assert_eq!(fin["model"], GPT);
    assert_eq!(fin["output"], json!([done_item]));
    assert_eq!(fin["usage"]["total_tokens"], 7, "{fin}");
    let up = m.received()[0].json();
    assert_eq!(up["stream"], true);
}

#[tokio::test]
async fn a_tool_call_round_trip_over_turns_with_previous_response_id() {
    let m = Mock::start().await;
    let p = openai_proxy(&m).await;
    m.push(Reply::json(
        200,
        tool_call_completion("call_abc", "get_weather", r#"{"city":"Paris"}"#),
    ));
    m.push(Reply::json(200, completion(GPT, "It is 18°C in Paris.")));
    m.push(Reply::json(200, completion(GPT, "You're welcome.")));

    let first = create(
        &p,
        &json!({"model": "default", "input": "Weather in Paris?", "instructions": "be brief",
            "tools": [weather_tool()], "tool_choice": "auto"}),
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.text());
    let b1 = first.json();
    assert_eq!(b1["status"], "completed");
    let calls = items_of(&b1, "function_call");
    assert_eq!(calls.len(), 1, "{b1}");
    let fc = calls[0];
    assert!(fc["id"].as_str().unwrap_or("").starts_with("fc_"), "{fc}");
    assert_eq!(fc["call_id"], "call_abc", "the upstream's call id is kept");
    assert_eq!(fc["name"], "get_weather");
    assert_eq!(fc["arguments"], r#"{"city":"Paris"}"#);
    assert_eq!(fc["status"], "completed");
    assert_eq!(b1["tools"][0]["name"], "get_weather", "tools echoed: {b1}");
    assert_eq!(b1["tool_choice"], "auto");
    let up1 = m.received()[0].json();
    assert_eq!(up1["tools"][0]["type"], "function");
    assert_eq!(up1["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(
        up1["tools"][0]["function"]["parameters"]["required"],
        json!(["city"])
    );

    let id1 = b1["id"].as_str().unwrap();
    let second = create(
        &p,
        &json!({"model": "default", "previous_response_id": id1, "tools": [weather_tool()],
            "input": [{"type": "function_call_output", "call_id": "call_abc", "output": "18°C, sunny"}]}),
    )
    .await;
    assert_eq!(second.status, 200, "{}", second.text());
    let b2 = second.json();
    assert_eq!(output_text(&b2), "It is 18°C in Paris.");
    assert_eq!(b2["previous_response_id"], id1);
    assert!(
        b2["instructions"].is_null(),
        "instructions are not carried over: {b2}"
    );
    let msgs = chat_messages(&m.received()[1]);
    let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        ["user", "assistant", "tool"],
        "the whole conversation, without the first turn's instructions: {msgs:?}"
    );
    assert_eq!(text_of(&msgs[0]), "Weather in Paris?");
    let tc = &msgs[1]["tool_calls"][0];
    assert_eq!(tc["id"], "call_abc");
    assert_eq!(tc["type"], "function");
    assert_eq!(tc["function"]["name"], "get_weather");
    assert_eq!(tc["function"]["arguments"], r#"{"city":"Paris"}"#);
    assert_eq!(msgs[2]["tool_call_id"], "call_abc");
    assert_eq!(text_of(&msgs[2]), "18°C, sunny");

    // a third turn continues the second: the chain is expanded all the way back
    let id2 = b2["id"].as_str().unwrap();
    let third = create(
        &p,
        &json!({"model": "default", "previous_response_id": id2, "input": "thanks"}),
    )
    .await;
    assert_eq!(third.status, 200, "{}", third.text());
    let msgs = chat_messages(&m.received()[2]);
    let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        ["user", "assistant", "tool", "assistant", "user"],
        "{msgs:?}"
    );
    assert_eq!(text_of(&msgs[3]), "It is 18°C in Paris.");
    assert_eq!(text_of(&msgs[4]), "thanks");
}

#[tokio::test]
async fn a_streamed_tool_call_has_argument_events() {
    let m = Mock::start().await;
    let p = openai_proxy(&m).await;
    m.push(tool_call_stream(
        "call_xyz",
        "get_weather",
        &["{\"city\":", "\"Paris\"}"],
    ));
    let r = create(
        &p,
        &json!({"model": "default", "input": "Weather?", "stream": true,
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]}),
    )
    .await;
    let evs = check_stream(&r);
    assert_eq!(
        kinds(&evs),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let tool = &evs[0].data["response"]["tools"][0];
    assert!(
        tool["strict"].is_boolean(),
        "an echoed function tool always says whether it is strict (OpenAI's schema requires it): {tool}"
    );
    let item = &evs[2].data["item"];
    assert_eq!(item["type"], "function_call");
    assert_eq!(item["call_id"], "call_xyz");
    assert_eq!(item["name"], "get_weather");
    assert_eq!(item["status"], "in_progress");
    let fc_id = item["id"].as_str().unwrap();
    assert!(fc_id.starts_with("fc_"), "{fc_id}");
    assert_eq!(evs[3].data["delta"], "{\"city\":");
    assert_eq!(evs[4].data["delta"], "\"Paris\"}");
    assert_eq!(evs[3].data["item_id"], fc_id);
    assert_eq!(evs[5].data["arguments"], r#"{"city":"Paris"}"#);
    assert_eq!(
        evs[5].data["name"], "get_weather",
        "arguments.done names the function (required by OpenAI's schema)"
    );
    let done = &evs[6].data["item"];
    assert_eq!(done["arguments"], r#"{"city":"Paris"}"#);
    assert_eq!(done["status"], "completed");
    let fin = &evs[7].data["response"];
    assert_eq!(fin["status"], "completed");
    assert_eq!(fin["output"], json!([done]));
}

#[tokio::test]
async fn an_unknown_previous_response_id_is_a_400_before_any_call() {
    let m = Mock::start().await;
    let p = openai_proxy(&m).await;
    m.always(Reply::json(200, completion(GPT, "never")));
    for stream in [false, true] {
        let r = create(
            &p,
            &json!({"model": "default", "input": "hi", "stream": stream,
                "previous_response_id": "resp_doesnotexist123"}),
        )
        .await;
        assert_eq!(r.status, 400, "stream={stream}: {}", r.text());
        let e = &r.json()["error"];
        assert_eq!(e["type"], "invalid_request_error", "{e}");
        assert_eq!(e["code"], "previous_response_not_found", "{e}");
        assert_eq!(e["param"], "previous_response_id", "{e}");
        assert!(
            e["message"]
                .as_str()
                .unwrap_or("")
                .contains("resp_doesnotexist123"),
            "the message names the id: {e}"
        );
    }
    let r = send(
        &p.url("/v1/responses"),
        "POST",
        &[("authorization", &format!("Bearer {CLIENT_KEY}"))],
        "{not json",
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    assert_eq!(m.count(), 0, "no upstream call");
}

#[tokio::test]
async fn hosted_tools_are_dropped_for_translated_targets_unless_forced() {
    let m = Mock::start().await;
    let p = openai_proxy(&m).await;
    m.push(Reply::json(200, completion(GPT, "no search needed")));
    let r = create(
        &p,
        &json!({"model": "default", "input": "hi",
            "tools": [{"type": "web_search"}, weather_tool()]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(output_text(&r.json()), "no search needed");
    let dropped = r.header("x-understudy-dropped-tools").unwrap_or("");
    assert!(
        dropped.contains("web_search"),
        "dropped-tools header: {dropped:?}"
    );
    let up = m.received()[0].json();
    let names: Vec<&str> = up["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t["function"]["name"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        names,
        ["get_weather"],
        "only the function tool goes upstream: {up}"
    );

    let forced = create(
        &p,
        &json!({"model": "default", "input": "search",
            "tools": [{"type": "web_search_preview"}], "tool_choice": {"type": "web_search_preview"}}),
    )
    .await;
    assert_eq!(forced.status, 400, "{}", forced.text());
    assert_eq!(forced.json()["error"]["type"], "invalid_request_error");
    assert_eq!(m.count(), 1, "no call for the forced hosted tool");
}

#[tokio::test]
async fn truncated_answers_are_incomplete_with_their_reason() {
    let m = Mock::start().await;
    let p = openai_proxy(&m).await;
    m.push(Reply::json(200, completion_finished("A long", "length")));
    m.push(Reply::json(200, completion_finished("", "content_filter")));
    let mut cut = stream_reply(GPT, &["A", " long"]);
    let n = cut.events.len();
    cut.events[n - 3].1 = bytes::Bytes::from(format!(
        "data: {}\n\n",
        chunk(GPT, json!({}), Some("length"))
    ));
    m.push(cut);
    let body = json!({"model": "default", "input": "tell me", "max_output_tokens": 16});
    let b = create(&p, &body).await.json();
    assert_eq!(b["status"], "incomplete", "{b}");
    assert_eq!(
        b["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(output_text(&b), "A long");
    let b = create(&p, &body).await.json();
    assert_eq!(b["status"], "incomplete", "{b}");
    assert_eq!(b["incomplete_details"], json!({"reason": "content_filter"}));

    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    let r = create(&p, &sbody).await;
    let evs = check_stream(&r);
    let last = evs.last().unwrap();
    assert_eq!(last.kind(), "response.incomplete", "{:?}", kinds(&evs));
    assert_eq!(last.data["response"]["status"], "incomplete");
    assert_eq!(
        last.data["response"]["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
}

#[tokio::test]
async fn text_format_json_schema_reaches_the_upstream_as_response_format() {
    let m = Mock::start().await;
    let p = openai_proxy(&m).await;
    m.push(Reply::json(200, completion(GPT, r#"{"city":"Paris"}"#)));
    let format = json!({"type": "json_schema", "name": "place", "strict": true,
        "schema": {"type": "object", "properties": {"city": {"type": "string"}},
            "required": ["city"], "additionalProperties": false}});
    let r = create(
        &p,
        &json!({"model": "default", "input": "where?", "text": {"format": format}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let b = r.json();
    assert_eq!(
        b["text"]["format"]["type"], "json_schema",
        "text echoed: {b}"
    );
    assert_eq!(b["text"]["format"]["name"], "place");
    let rf = &m.received()[0].json()["response_format"];
    assert_eq!(rf["type"], "json_schema", "{rf}");
    assert_eq!(rf["json_schema"]["name"], "place");
    assert_eq!(rf["json_schema"]["schema"]["required"], json!(["city"]));
}

#[tokio::test]
async fn client_keys_guard_the_responses_endpoints() {
    let m = Mock::start().await;
    let p = openai_proxy(&m).await;
    let body = json!({"model": "default", "input": "hi"}).to_string();
    let r = send(&p.url("/v1/responses"), "POST", &[], body.clone()).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "invalid_api_key");
    let r = send(
        &p.url("/v1/responses"),
        "POST",
        &[("authorization", "Bearer wrong")],
        body,
    )
    .await;
    assert_eq!(r.status, 401);
    let r = get(&p.url("/v1/responses/resp_abc")).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(m.count(), 0);
}
