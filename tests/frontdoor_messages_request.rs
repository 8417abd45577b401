//! What a Messages client sends and what else the front door serves: request fields
//! translated for an OpenAI target, stop reasons and usage, Claude Code's beta query
//! and headers, the models list, count_tokens, the answer cache, the static fallback,
//! body limits and wrong methods or paths in Anthropic's shape.
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
// Models, translation details

#[tokio::test]
async fn models_list_answers_in_anthropics_shape_for_the_sdk() {
    let s = setup(&[OPENAI]).await;
    let r = sdk_one(&s.proxy, json!({"kind": "models"})).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["ids"], json!(["default"]));
    let m = &r["data"][0];
    assert_eq!(m["type"], "model");
    assert!(m["display_name"].is_string());
    assert!(m["created_at"].is_string());
    // raw: Anthropic's list with anthropic-version, OpenAI's without
    let ant = send(
        &s.proxy.url("/v1/models"),
        "GET",
        &[
            ("x-api-key", CLIENT_KEY),
            ("anthropic-version", "2023-06-01"),
        ],
        "",
    )
    .await
    .json();
    assert_eq!(ant["has_more"], false);
    assert_eq!(ant["first_id"], "default");
    assert_eq!(ant["last_id"], "default");
    let oai = send(
        &s.proxy.url("/v1/models"),
        "GET",
        &[("authorization", "Bearer client-key")],
        "",
    )
    .await
    .json();
    assert_eq!(oai["object"], "list");
}

#[tokio::test]
async fn every_model_entry_validates_as_the_sdks_model_info() {
    let s = setup(&[OPENAI]).await;
    let r = sdk_one(&s.proxy, json!({"kind": "models"})).await;
    assert_eq!(r["ok"], true, "{r}");
    for m in r["data"].as_array().unwrap() {
        assert_eq!(m["_valid"], true, "ModelInfo rejects {m}");
    }
}

#[tokio::test]
async fn request_fields_reach_an_openai_target_translated() {
    let s = setup(&[OPENAI]).await;
    let m = s.mock(0);
    m.always(Reply::json(200, completion("gpt-4o", "ok")));
    let body = json!({
        "model": "default",
        "max_tokens": 300,
        "system": [{"type": "text", "text": "Rule one."}, {"type": "text", "text": " Rule two."}],
        "temperature": 0.5,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-42"},
        "thinking": {"type": "enabled", "budget_tokens": 4000},
        "tools": weather_tools(),
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Oslo"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": true,
                 "content": [{"type": "text", "text": "city unknown"}]},
                {"type": "text", "text": "Try again."},
            ]},
        ],
    });
    let r = post_as_sdk(&s.proxy, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = upstream_json(m, 0);
    assert_eq!(up["max_tokens"], 300);
    assert_eq!(up["temperature"], 0.5);
    assert_eq!(up["top_p"], 0.9);
    assert_eq!(up["stop"], json!(["END"]));
    assert_eq!(up["user"], "user-42");
    assert_eq!(up["reasoning_effort"], "medium");
    assert_eq!(up["tool_choice"], "required");
    assert_eq!(up["parallel_tool_calls"], false);
    let msgs = up["messages"].as_array().unwrap();
    assert_eq!(
        msgs[0],
        json!({"role": "system", "content": "Rule one. Rule two."})
    );
    assert_eq!(
        msgs[1]["content"][1],
        json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}})
    );
    assert_eq!(msgs[2]["role"], "assistant");
    assert_eq!(msgs[2]["tool_calls"][0]["id"], "toolu_1");
    assert_eq!(msgs[3]["role"], "tool");
    assert_eq!(msgs[3]["tool_call_id"], "toolu_1");
    assert!(
        msgs[3]["content"]
            .as_str()
            .unwrap()
            .contains("city unknown"),
        "{}",
        msgs[3]
    );
    assert_eq!(msgs[4]["role"], "user");
    assert_eq!(msgs.len(), 5, "{up}");
    let named = json!({"model": "default", "max_tokens": 10, "tools": weather_tools(),
        "tool_choice": {"type": "tool", "name": "get_weather"},
        "messages": [{"role": "user", "content": "hi"}]});
    let r = post_as_sdk(&s.proxy, &named).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        upstream_json(m, 1)["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );
}

#[tokio::test]
async fn finish_reasons_become_anthropic_stop_reasons() {
    let s = setup(&[OPENAI]).await;
    let m = s.mock(0);
    let with_finish = |finish: &str| {
        let mut c: Value = serde_json::from_str(&completion("gpt-4o", "text")).unwrap();
        c["choices"][0]["finish_reason"] = json!(finish);
        Reply::json(200, c.to_string())
    };
    m.push(with_finish("length"));
    m.push(with_finish("content_filter"));
    m.push(with_finish("stop"));
    let mut stopped = hello();
    stopped["stop_sequences"] = json!(["STOP"]);
    let results = anthropic_sdk(
        &s.proxy,
        CLIENT_KEY,
        json!([
            {"kind": "create", "request": hello()},
            {"kind": "create", "request": hello()},
            {"kind": "create", "request": stopped},
        ]),
    )
    .await;
    assert_eq!(results[0]["stop_reason"], "max_tokens", "{}", results[0]);
    assert_eq!(results[1]["stop_reason"], "refusal", "{}", results[1]);
    assert!(
        ["end_turn", "stop_sequence"].contains(&results[2]["stop_reason"].as_str().unwrap()),
        "{}",
        results[2]
    );
}

#[tokio::test]
async fn claude_codes_beta_query_and_headers_are_accepted() {
    let s = setup(&[OPENAI]).await;
    s.mock(0)
        .always(Reply::json(200, completion("gpt-4o", "ok")));
    let r = send(
        &s.proxy.url("/v1/messages?beta=true"),
        "POST",
        &[
            ("x-api-key", CLIENT_KEY),
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "interleaved-thinking-2025-05-14"),
        ],
        hello().to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["content"][0]["text"], "ok");
    assert!(r.header("x-request-id").is_some());
}

#[tokio::test]
async fn anthropic_usage_keeps_cache_reads_and_writes_apart() {
    // response_tool_use.json: input 420, cache_creation 1500, cache_read 2000.
    let s = setup(&[ANTHROPIC]).await;
    s.mock(0).push(Reply::json(200, ANT_TOOL_USE_JSON));
    let r = sdk_one(
        &s.proxy,
        json!({"kind": "create", "request": weather_request()}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    let u = &r["usage"];
    assert_eq!(u["output_tokens"], 151, "{u}");
    assert_eq!(u["cache_read_input_tokens"], 2000, "{u}");
    assert_eq!(u["cache_creation_input_tokens"], 1500, "{u}");
    assert_eq!(u["input_tokens"], 420, "{u}");
}

// ---------------------------------------------------------------------------------
// What real clients send, and the rest of §8

#[tokio::test]
async fn a_body_over_the_limit_is_request_too_large() {
    let s = setup_with(&[OPENAI], "max_body_bytes = 2000").await;
    let mut req = hello();
    req["messages"][0]["content"] = json!("x".repeat(5000));
    let r = post_as_sdk(&s.proxy, &req).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(anthropic_error(&r), "request_too_large");
    assert_eq!(s.mock(0).count(), 0);
}

#[tokio::test]
async fn wrong_methods_and_paths_under_v1_messages_answer_in_anthropics_shape() {
    let s = setup(&[OPENAI]).await;
    let r = send(
        &s.proxy.url("/v1/messages"),
        "GET",
        &[("x-api-key", CLIENT_KEY)],
        "",
    )
    .await;
    assert_eq!(r.status, 405, "{}", r.text());
    anthropic_error(&r);
    assert!(r.header("allow").unwrap().contains("POST"));
    let r = post_as_sdk_to(&s.proxy, "/v1/messages/batches", &hello()).await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(anthropic_error(&r), "not_found_error");
}

async fn post_as_sdk_to(p: &Proxy, path: &str, body: &Value) -> Resp {
    send(
        &p.url(path),
        "POST",
        &[
            ("x-api-key", CLIENT_KEY),
            ("anthropic-version", "2023-06-01"),
        ],
        body.to_string(),
    )
    .await
}

#[tokio::test]
async fn a_cached_answer_is_replayed_as_a_message_and_as_anthropic_events() {
    let s = setup_with(&[OPENAI], "[cache]\nenabled = true").await;
    s.mock(0).push(Reply::json(
        200,
        completion("gpt-4o-2024-08-06", "Cached words"),
    ));
    let mut req = hello();
    req["temperature"] = json!(0);
    let first = post_as_sdk(&s.proxy, &req).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("x-understudy-cache"), Some("miss"));
    let again = post_as_sdk(&s.proxy, &req).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.header("x-understudy-cache"), Some("hit"));
    assert_eq!(again.json()["content"][0]["text"], "Cached words");
    assert_eq!(again.json()["type"], "message");
    req["stream"] = json!(true);
    let streamed = post_as_sdk(&s.proxy, &req).await;
    assert_eq!(streamed.header("x-understudy-cache"), Some("hit"));
    let evs = events(&streamed);
    assert_eq!(names(&evs).first(), Some(&"message_start"));
    assert_eq!(names(&evs).last(), Some(&"message_stop"));
    let text: String = evs
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "Cached words");
    assert_eq!(s.mock(0).count(), 1);
}

#[tokio::test]
async fn the_static_fallback_answers_as_an_anthropic_message() {
    let s = setup_with(&[OPENAI], "[fallback]\nmessage = \"Briefly unavailable.\"").await;
    s.mock(0)
        .always(Reply::json(503, r#"{"error":{"message":"down"}}"#));
    let results = anthropic_sdk(
        &s.proxy,
        CLIENT_KEY,
        json!([
            {"kind": "create", "request": hello()},
            {"kind": "stream", "request": hello()},
        ]),
    )
    .await;
    for r in &results {
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["text"], "Briefly unavailable.");
        assert_eq!(r["stop_reason"], "end_turn");
    }
    let raw = post_as_sdk(&s.proxy, &hello()).await;
    assert_eq!(raw.header("x-understudy-degraded"), Some("static"));
}

#[tokio::test]
async fn a_system_message_inside_messages_is_accepted() {
    let s = setup(&[OPENAI]).await;
    let m = s.mock(0);
    m.always(Reply::json(200, completion("gpt-4o", "ok")));
    let body = json!({
        "model": "default",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "You are terse."}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Say PONG"}]},
            {"role": "system", "content": [{"type": "text", "text": "# Environment\\ncwd: /tmp", "cache_control": {"type": "ephemeral"}}]},
        ],
    });
    let r = post_as_sdk(&s.proxy, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = upstream_json(m, 0);
    let roles: Vec<&str> = up["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "system"], "{up}");
}

#[tokio::test]
async fn count_tokens_without_an_anthropic_target_is_an_estimate() {
    let s = setup(&[OPENAI, GEMINI]).await;
    let body = json!({"model": "default", "system": "Be brief.", "tools": weather_tools(),
        "messages": [{"role": "user", "content": "Count the tokens of this sentence, please."}]});
    let r = sdk_one(&s.proxy, json!({"kind": "count_tokens", "request": body})).await;
    assert_eq!(r["ok"], true, "{r}");
    assert!(r["input_tokens"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["estimate"], "true");
    let short = json!({"model": "default", "messages": [{"role": "user", "content": "Hi"}]});
    let r2 = sdk_one(&s.proxy, json!({"kind": "count_tokens", "request": short})).await;
    assert!(
        r2["input_tokens"].as_u64().unwrap() < r["input_tokens"].as_u64().unwrap(),
        "more text, more tokens: {r2} vs {r}"
    );
    assert_eq!(
        s.mock(0).count() + s.mock(1).count(),
        0,
        "no provider asked"
    );
}

#[tokio::test]
async fn count_tokens_for_an_unknown_model_is_not_found() {
    let s = setup(&[OPENAI]).await;
    let unknown =
        json!({"model": "no-such-model", "messages": [{"role": "user", "content": "Hi"}]});
    let e = sdk_one(
        &s.proxy,
        json!({"kind": "count_tokens", "request": unknown}),
    )
    .await;
    assert_eq!(e["error"], "NotFoundError", "{e}");
    assert_eq!(e["type"], "not_found_error");
}

#[tokio::test]
async fn a_native_answer_in_the_cache_serves_chat_and_messages_clients_alike() {
    let s = setup_with(&[ANTHROPIC], "[cache]\nenabled = true").await;
    s.mock(0).push(Reply::json(200, ANT_TEXT_JSON));
    let mut req = hello();
    req["temperature"] = json!(0);
    let first = post_as_sdk(&s.proxy, &req).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("x-understudy-cache"), Some("miss"));
    // the same conversation from a chat-completions client
    let chat = json!({
        "model": "default", "max_tokens": 256, "temperature": 0,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Say hello"}]},
        ],
    });
    let c = s.proxy.chat_as(CLIENT_KEY, chat).await;
    assert_eq!(c.status, 200, "{}", c.text());
    let body = c.json();
    assert_eq!(body["object"], "chat.completion", "a chat answer: {body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello! How can I help you today?"
    );
    // and streamed to a Messages client
    req["stream"] = json!(true);
    let st = post_as_sdk(&s.proxy, &req).await;
    assert_eq!(st.header("x-understudy-cache"), Some("hit"));
    let text: String = events(&st)
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "Hello! How can I help you today?");
    assert_eq!(s.mock(0).count(), 1);
}
