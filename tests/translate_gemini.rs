//! The Gemini adapter end to end: the official `openai` SDK talks to the proxy, a
//! mock speaking Google's `generativelanguage` wire format replays the fixtures in
//! `fixtures/gemini/` (SSE with CRLF, cut into pieces of odd sizes), and the tests
//! check what the SDK reassembles and what the mock received.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use common::*;
use serde_json::{json, Value};

const GEMINI_KEY: &str = "AIza-gemini-secret-key";
const CLIENT_KEY: &str = "client-key";

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../fixtures/gemini/", $name))
    };
}

fn fixture_json(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture is JSON")
}

fn sse(text: &str) -> Reply {
    Reply::split(200, "text/event-stream", text)
}

fn json_reply(status: u16, text: &str) -> Reply {
    Reply::split(status, "application/json; charset=UTF-8", text)
}

/// A Gemini lead (`gem/gemini-2.0-flash`) and an OpenAI-kind backup. A target cooled
/// without a retry hint stays cool for an hour: no test outlasts that, however slow.
async fn setup() -> (Mock, Mock, Proxy) {
    let gem = Mock::start().await;
    let backup = Mock::start().await;
    let toml = format!(
        r#"
[server]
api_keys_env = "CLIENT_KEYS"
[failover]
default_cooldown = "1h"
max_cooldown = "2h"
[providers.gem]
kind = "gemini"
base_url = "{}"
api_key_env = "GEMINI_KEY"
[providers.backup]
kind = "openai"
base_url = "{}/v1"
api_key_env = "OPENAI_KEY"
[[routes]]
model = "default"
targets = ["gem/gemini-2.0-flash", "backup/gpt-4o"]
"#,
        gem.url(),
        backup.url()
    );
    let p = Proxy::start(
        &toml,
        &[
            ("CLIENT_KEYS", CLIENT_KEY),
            ("GEMINI_KEY", GEMINI_KEY),
            ("OPENAI_KEY", "sk-openai"),
        ],
    )
    .await;
    (gem, backup, p)
}

async fn chat(p: &Proxy, body: Value) -> Resp {
    p.chat_as(CLIENT_KEY, body).await
}

/// The key travels in `x-goog-api-key` only: not in the URL, and the client's key
/// never reaches Google.
fn assert_keyed(got: &Received) {
    assert_eq!(got.method, "POST");
    assert_eq!(
        got.headers.get("x-goog-api-key").map(String::as_str),
        Some(GEMINI_KEY)
    );
    assert!(
        !got.path.contains("key="),
        "no key in the URL: {}",
        got.path
    );
    assert!(!got.path.contains(GEMINI_KEY), "{}", got.path);
    for (k, v) in &got.headers {
        assert!(!v.contains(CLIENT_KEY), "client key leaked in {k}");
    }
    assert!(!got.headers.contains_key("authorization"));
}

/// `call_` ids, all different.
fn assert_unique_call_ids(calls: &[Value]) {
    let ids: Vec<&str> = calls.iter().map(|c| c["id"].as_str().unwrap()).collect();
    for id in &ids {
        assert!(
            id.starts_with("call_") && id.len() > 5,
            "generated id: {id}"
        );
    }
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "unique ids: {ids:?}");
}

/// (name, parsed arguments) of each call; the arguments must be valid JSON text.
fn names_and_args(calls: &[Value]) -> Vec<(String, Value)> {
    calls
        .iter()
        .map(|c| {
            let args = c["arguments"].as_str().expect("arguments are a string");
            let parsed: Value = serde_json::from_str(args)
                .unwrap_or_else(|e| panic!("arguments are not JSON ({e}): {args}"));
            (c["name"].as_str().unwrap().to_string(), parsed)
        })
        .collect()
}

fn fixture_calls() -> Vec<(String, Value)> {
    vec![
        (
            "get_weather".into(),
            json!({"location": "Paris", "unit": "celsius"}),
        ),
        (
            "get_weather".into(),
            json!({"location": "London", "unit": "celsius"}),
        ),
        ("get_time".into(), json!({})),
    ]
}

fn weather_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"location": {"type": "string"}, "unit": {"type": "string"}}, "required": ["location"], "additionalProperties": false}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
    ])
}

fn question(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

#[tokio::test]
async fn the_sdk_gets_plain_answers_and_tool_calls() {
    let (gem, backup, p) = setup().await;
    gem.push(json_reply(200, fixture!("response_text.json")));
    gem.push(json_reply(200, fixture!("response_function_calls.json")));
    let results = openai_sdk(
        &p,
        CLIENT_KEY,
        json!([
            {"kind": "complete", "request": {"model": "default", "messages": question("Capital of France?")}},
            {"kind": "complete", "request": {"model": "default", "messages": question("Weather in Paris and London, and the time?"), "tools": weather_tools()}},
        ]),
    )
    .await;

    let r = &results[0];
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        r["content"],
        "Paris is the capital of France. It sits on the Seine."
    );
    assert_eq!(r["finish_reason"], "stop");
    assert_eq!(r["id"], "9oVFIBT5rI1rt1aoXJ2YXP", "Gemini's responseId");
    assert_eq!(r["model"], "gemini-2.0-flash", "Gemini's modelVersion");
    assert_eq!(r["tool_calls"], json!([]));
    assert_eq!(r["usage"]["prompt_tokens"], 9);
    assert_eq!(r["usage"]["completion_tokens"], 14);
    assert_eq!(r["usage"]["total_tokens"], 23);
    assert_eq!(r["headers"]["x-understudy-provider"], "gem");
    assert_eq!(r["headers"]["x-understudy-model"], "gemini-2.0-flash");
    assert_eq!(r["headers"]["x-understudy-attempts"], "1");

    let t = &results[1];
    assert_eq!(t["ok"], true, "{t}");
    assert_eq!(t["finish_reason"], "tool_calls");
    assert!(t["content"].is_null(), "{t}");
    assert_eq!(t["model"], "gemini-2.5-flash");
    let calls = t["tool_calls"].as_array().unwrap();
    assert_unique_call_ids(calls);
    assert_eq!(names_and_args(calls), fixture_calls());
    // completion = candidates + thoughts
    assert_eq!(t["usage"]["prompt_tokens"], 112);
    assert_eq!(t["usage"]["completion_tokens"], 41 + 66);
    assert_eq!(t["usage"]["total_tokens"], 112 + 41 + 66);

    let got = gem.received();
    assert_eq!(got.len(), 2);
    for g in &got {
        assert_eq!(g.path, "/v1beta/models/gemini-2.0-flash:generateContent");
        assert_keyed(g);
    }
    let body = got[0].json();
    assert_eq!(
        body["contents"],
        json!([{"role": "user", "parts": [{"text": "Capital of France?"}]}])
    );
    let decls = &got[1].json()["tools"][0]["functionDeclarations"];
    assert_eq!(decls[0]["name"], "get_weather");
    assert!(
        decls[0]["parameters"].get("additionalProperties").is_none(),
        "schema keys Gemini rejects are stripped: {decls}"
    );
    assert_eq!(backup.count(), 0);
}

#[tokio::test]
async fn the_sdk_reassembles_streamed_text_exactly() {
    let (gem, backup, p) = setup().await;
    gem.push(sse(fixture!("stream_text.sse")));
    gem.push(sse(fixture!("stream_text.sse")));
    let msgs = question("Bonjour ?");
    let results = openai_sdk(
        &p,
        CLIENT_KEY,
        json!([
            {"kind": "stream", "request": {"model": "default", "messages": msgs, "stream_options": {"include_usage": true}}},
            {"kind": "stream", "request": {"model": "default", "messages": msgs}},
        ]),
    )
    .await;
    for (i, s) in results.iter().enumerate() {
        assert_eq!(s["ok"], true, "{s}");
        assert_eq!(
            s["content"], "Bonjour ! Le café est prêt ☕ — voulez-vous du lait ?\n",
            "scenario {i}"
        );
        assert_eq!(s["finish_reason"], "stop", "scenario {i}");
        assert_eq!(s["tool_calls"], json!([]));
        assert_eq!(s["ids"], json!(["YfJMyR8bhO2JqNOpflco3D"]), "one id: {s}");
        assert_eq!(s["models"], json!(["gemini-2.0-flash"]), "one model: {s}");
    }
    // Gemini repeats cumulative usage in every chunk: reported once, the last one.
    assert_eq!(
        results[0]["usage"],
        json!({"prompt_tokens": 8, "completion_tokens": 17, "total_tokens": 25})
    );
    assert!(
        results[1]["usage"].is_null(),
        "no usage unless asked: {}",
        results[1]
    );

    let got = gem.received();
    assert_eq!(got.len(), 2);
    for g in &got {
        assert_eq!(
            g.path,
            "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
        );
        assert_keyed(g);
        assert!(g.json().get("stream").is_none(), "no OpenAI fields leak");
    }
    assert_eq!(backup.count(), 0);
}

#[tokio::test]
async fn the_sdk_reassembles_streamed_tool_calls_exactly() {
    let (gem, _backup, p) = setup().await;
    gem.push(sse(fixture!("stream_function_calls.sse")));
    let results = openai_sdk(
        &p,
        CLIENT_KEY,
        json!([{"kind": "stream", "request": {"model": "default", "messages": question("Weather in Paris and London, and the time?"), "tools": weather_tools(), "stream_options": {"include_usage": true}}}]),
    )
    .await;
    let s = &results[0];
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(
        s["content"], "I will look both up.",
        "thought summaries are not answer text"
    );
    assert_eq!(s["finish_reason"], "tool_calls");
    assert_eq!(s["tool_call_indices"], json!([0, 1, 2]));
    let calls = s["tool_calls"].as_array().unwrap();
    assert_unique_call_ids(calls);
    assert_eq!(names_and_args(calls), fixture_calls());
    assert_eq!(s["ids"], json!(["Qm3xT0v8Ka2Lz1YpRn4sWc"]));
    assert_eq!(s["models"], json!(["gemini-2.5-flash"]));
    assert_eq!(
        s["usage"],
        json!({"prompt_tokens": 112, "completion_tokens": 47 + 66, "total_tokens": 112 + 47 + 66,
               "completion_tokens_details": {"reasoning_tokens": 66}})
    );
}

#[tokio::test]
async fn requests_reach_gemini_translated_exactly() {
    let (gem, _backup, p) = setup().await;
    gem.push(json_reply(200, fixture!("response_function_calls.json")));
    gem.push(sse(fixture!("stream_text.sse")));

    let r = chat(&p, fixture_json(fixture!("request_tools.openai.json"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = &gem.received()[0];
    assert_eq!(got.path, "/v1beta/models/gemini-2.0-flash:generateContent");
    assert_keyed(got);
    let body = got.json();
    assert_eq!(body, fixture_json(fixture!("request_tools.gemini.json")));
    // spelled out: the three results are one user turn, each named after its call
    let results = &body["contents"][2];
    assert_eq!(results["role"], "user");
    let names: Vec<&str> = results["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["functionResponse"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["get_weather", "get_weather", "get_time"]);

    // JSON mode with a schema and a forced tool, streamed
    let r = chat(
        &p,
        fixture_json(fixture!("request_json_schema.openai.json")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().ends_with("data: [DONE]\n\n"), "{}", r.text());
    let got = &gem.received()[1];
    assert_eq!(
        got.path,
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );
    assert_keyed(got);
    assert_eq!(
        got.json(),
        fixture_json(fixture!("request_json_schema.gemini.json"))
    );
}

#[tokio::test]
async fn a_429_with_retry_delay_fails_over_and_cools_the_target_that_long() {
    let (gem, backup, p) = setup().await;
    gem.push(json_reply(
        429,
        fixture!("error_429_resource_exhausted.json"),
    ));
    backup.always(Reply::json(
        200,
        completion("gpt-4o-2024-08-06", "from backup"),
    ));

    let since = std::time::Instant::now();
    let r = chat(&p, user("default")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("backup"));
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
    assert_eq!(r.json()["choices"][0]["message"]["content"], "from backup");

    // RetryInfo.retryDelay = "37s"
    let status = get(&p.url("/status")).await.json();
    let cooling: Vec<&Value> = status["cooldowns"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["target"] == "gem/gemini-2.0-flash")
        .collect();
    assert_eq!(cooling.len(), 1, "{status}");
    let left = cooling[0]["seconds_left"].as_f64().unwrap();
    assert!(
        (least_left(37.0, since)..=37.0).contains(&left),
        "cools for the retryDelay, not the 1h default nor the 2h cap: {left}"
    );

    // while it cools, nothing more reaches Gemini
    for _ in 0..2 {
        let r = chat(&p, user("default")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-understudy-provider"), Some("backup"));
        assert_eq!(r.header("x-understudy-attempts"), Some("1"));
    }
    assert_eq!(gem.count(), 1);
    assert_eq!(backup.count(), 3);
}

#[tokio::test]
async fn a_400_api_key_invalid_fails_over_like_a_401() {
    let (gem, backup, p) = setup().await;
    gem.push(json_reply(400, fixture!("error_400_api_key_invalid.json")));
    backup.push(Reply::json(200, completion("gpt-4o", "from backup")));
    let r = chat(&p, user("default")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("backup"));
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
    assert_eq!((gem.count(), backup.count()), (1, 1));

    // the rejected target now cools: the next (streamed) request skips it
    backup.push(stream_reply("gpt-4o", &["from", " backup"]));
    let results = openai_sdk(
        &p,
        CLIENT_KEY,
        json!([{"kind": "stream", "request": {"model": "default", "messages": question("hi")}}]),
    )
    .await;
    assert_eq!(results[0]["ok"], true, "{}", results[0]);
    assert_eq!(results[0]["content"], "from backup");
    assert_eq!((gem.count(), backup.count()), (1, 2));
}

#[tokio::test]
async fn another_invalid_argument_is_returned_as_400_without_failover() {
    let (gem, backup, p) = setup().await;
    gem.push(json_reply(400, fixture!("error_400_invalid_argument.json")));
    gem.push(json_reply(400, fixture!("error_400_invalid_argument.json")));
    backup.always(Reply::json(200, completion("gpt-4o", "never")));

    let r = chat(&p, user("default")).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let err = &r.json()["error"];
    assert_eq!(err["type"], "invalid_request_error", "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("Unknown name \"additionalProperties\""),
        "Google's message: {err}"
    );

    let results = openai_sdk(
        &p,
        CLIENT_KEY,
        json!([{"kind": "stream", "request": {"model": "default", "messages": question("hi")}}]),
    )
    .await;
    assert_eq!(results[0]["error"], "BadRequestError", "{}", results[0]);
    assert_eq!(results[0]["status"], 400);
    assert_eq!(gem.count(), 2);
    assert_eq!(backup.count(), 0, "the same request would fail everywhere");
}

#[tokio::test]
async fn a_blocked_prompt_is_content_filter_not_an_error() {
    let (gem, backup, p) = setup().await;
    gem.push(json_reply(200, fixture!("response_blocked_prompt.json")));
    gem.push(sse(fixture!("stream_blocked.sse")));
    let results = openai_sdk(
        &p,
        CLIENT_KEY,
        json!([
            {"kind": "complete", "request": {"model": "default", "messages": question("something bad")}},
            {"kind": "stream", "request": {"model": "default", "messages": question("something bad"), "stream_options": {"include_usage": true}}},
        ]),
    )
    .await;
    let r = &results[0];
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["finish_reason"], "content_filter");
    assert!(r["content"].is_null(), "{r}");
    assert_eq!(r["id"], "RZJYn7nDPc6-u50zvGLXK-");
    assert_eq!(r["usage"]["prompt_tokens"], 18);
    assert_eq!(r["usage"]["completion_tokens"], 0);
    let s = &results[1];
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(s["finish_reason"], "content_filter");
    assert_eq!(s["content"], "");
    assert_eq!(s["ids"], json!(["Wd4sLk9QeB3nZt7Ypa0XfM"]));
    assert_eq!(s["usage"]["prompt_tokens"], 21);
    assert_eq!(gem.count(), 2);
    assert_eq!(backup.count(), 0, "a blocked prompt is an answer");
}

#[tokio::test]
async fn a_503_fails_over_and_an_error_event_before_content_too() {
    let (gem, backup, p) = setup().await;
    gem.push(json_reply(503, fixture!("error_503_unavailable.json")));
    backup.push(Reply::json(200, completion("gpt-4o", "from backup")));
    let r = chat(&p, user("default")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("backup"));
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));

    // an UNAVAILABLE error inside a 200 stream, before any content
    let only_error = fixture!("stream_error.sse")
        .split("\r\n\r\n")
        .nth(1)
        .unwrap()
        .to_string()
        + "\r\n\r\n";
    assert!(only_error.starts_with("data: {\"error\""), "{only_error}");
    gem.push(sse(&only_error));
    backup.push(stream_reply("gpt-4o", &["from", " backup"]));
    let results = openai_sdk(
        &p,
        CLIENT_KEY,
        json!([{"kind": "stream", "request": {"model": "default", "messages": question("hi")}}]),
    )
    .await;
    assert_eq!(results[0]["ok"], true, "{}", results[0]);
    assert_eq!(results[0]["content"], "from backup");
    assert_eq!((gem.count(), backup.count()), (2, 2));
}

#[tokio::test]
async fn an_error_event_after_content_reaches_the_sdk_as_an_error() {
    let (gem, backup, p) = setup().await;
    gem.push(sse(fixture!("stream_error.sse")));
    let r = chat(&p, user_stream("default")).await;
    assert_eq!(r.status, 200);
    let datas = r.sse_data();
    assert!(
        r.text().contains("The first half of the answer"),
        "{}",
        r.text()
    );
    let last: Value = serde_json::from_str(datas.last().unwrap()).unwrap();
    assert!(last["error"]["message"]
        .as_str()
        .unwrap()
        .contains("overloaded"));
    assert!(!datas.iter().any(|d| d == "[DONE]"), "{datas:?}");

    gem.push(sse(fixture!("stream_error.sse")));
    let results = openai_sdk(
        &p,
        CLIENT_KEY,
        json!([{"kind": "stream", "request": {"model": "default", "messages": question("hi")}}]),
    )
    .await;
    assert_eq!(results[0]["ok"], false, "{}", results[0]);
    assert_eq!(results[0]["error"], "APIError");
    assert_eq!(backup.count(), 0, "content was sent: no silent switch");
}

#[tokio::test]
async fn a_resource_exhausted_event_before_content_fails_over_and_cools() {
    let (gem, backup, p) = setup().await;
    // the 429 body, as the one event of a 200 stream
    let error: Value = fixture_json(fixture!("error_429_resource_exhausted.json"));
    gem.push(sse(&format!("data: {error}\r\n\r\n")));
    backup.always(stream_reply("gpt-4o", &["from", " backup"]));
    let since = std::time::Instant::now();
    let r = chat(&p, user_stream("default")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("backup"));
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
    assert!(!r.text().contains("RESOURCE_EXHAUSTED"), "{}", r.text());
    let status = get(&p.url("/status")).await.json();
    let left = status["cooldowns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["target"] == "gem/gemini-2.0-flash")
        .unwrap_or_else(|| panic!("gemini cools: {status}"))["seconds_left"]
        .as_f64()
        .unwrap();
    assert!(
        (least_left(37.0, since)..=37.0).contains(&left),
        "the retryDelay: {left}"
    );
    let r = chat(&p, user_stream("default")).await;
    assert_eq!(r.header("x-understudy-attempts"), Some("1"));
    assert_eq!((gem.count(), backup.count()), (1, 2));
}
