//! Context-window fallback (issue 16, item 2): each kind's "prompt too long" 400 fails
//! over to the next target without cooling or tripping the provider; a target whose
//! declared `context_window` the request clearly exceeds is never called; when no
//! target fits, the client gets a 400 with the provider's message (or ours) and the
//! estimate, in its own API's error shape.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use common::*;
use serde_json::{json, Value};

/// One provider of a route: its name, kind, model and optional `context_window`.
struct T {
    name: &'static str,
    kind: &'static str,
    model: &'static str,
    window: Option<u64>,
}

const fn t(name: &'static str, kind: &'static str, model: &'static str) -> T {
    T {
        name,
        kind,
        model,
        window: None,
    }
}

const fn windowed(name: &'static str, model: &'static str, window: u64) -> T {
    T {
        name,
        kind: "openai",
        model,
        window: Some(window),
    }
}

/// A proxy with one mock per target, in priority order, behind the `default` route;
/// the circuit opens at the first counted failure, so a provider that is wrongly
/// blamed shows it in `/status`.
async fn setup(targets: &[T]) -> (Vec<Mock>, Proxy) {
    let mut toml = String::from(
        "[server]\nlisten = \"127.0.0.1:0\"\n[circuit_breaker]\nfailures = 1\nopen_for = \"1h\"\n",
    );
    let mut mocks = Vec::new();
    for t in targets {
        let mock = Mock::start().await;
        let base = match t.kind {
            "openai" => format!("{}/v1", mock.url()),
            _ => mock.url(),
        };
        toml.push_str(&format!(
            "[providers.{}]\nkind = \"{}\"\nbase_url = \"{base}\"\napi_key_env = \"TEST_KEY\"\n",
            t.name, t.kind
        ));
        mocks.push(mock);
    }
    let list: Vec<String> = targets
        .iter()
        .map(|t| match t.window {
            Some(w) => format!(
                "{{ target = \"{}/{}\", context_window = {w} }}",
                t.name, t.model
            ),
            None => format!("\"{}/{}\"", t.name, t.model),
        })
        .collect();
    toml.push_str(&format!(
        "[[routes]]\nmodel = \"default\"\ntargets = [{}]\n",
        list.join(", ")
    ));
    (mocks, Proxy::start(&toml, &[UPSTREAM_KEY]).await)
}

/// A chat request whose text is `bytes` long: ~bytes/4 tokens, at least bytes/6.
fn long_chat(bytes: usize) -> Value {
    json!({"model": "default", "messages": [{"role": "user", "content": "w".repeat(bytes)}]})
}

async fn provider_status(p: &Proxy, name: &str) -> Value {
    let status = get(&p.url("/status")).await.json();
    status["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .cloned()
        .unwrap()
}

const OPENAI_TOO_LONG: &str = include_str!("../fixtures/openai/error_context_length_exceeded.json");
const ANTHROPIC_TOO_LONG: &str = include_str!("../fixtures/anthropic/error_prompt_too_long.json");

#[tokio::test]
async fn a_context_length_400_from_each_kind_fails_over_to_the_next_target() {
    let cases: [(&str, &str, &str); 5] = [
        ("openai", "gpt-4o-mini", OPENAI_TOO_LONG),
        (
            "azure",
            "my-deployment",
            include_str!("../fixtures/openai/error_azure_context_length_exceeded.json"),
        ),
        ("anthropic", "claude-sonnet-4-5", ANTHROPIC_TOO_LONG),
        (
            "gemini",
            "gemini-2.0-flash",
            include_str!("../fixtures/gemini/error_400_input_token_count.json"),
        ),
        (
            "ollama",
            "llama3.2",
            include_str!("../fixtures/ollama/error_context_length.json"),
        ),
    ];
    for (kind, model, body) in cases {
        let (mocks, p) = setup(&[t("lead", kind, model), t("big", "openai", "gpt-4.1")]).await;
        let (lead, big) = (&mocks[0], &mocks[1]);
        lead.always(Reply::json(400, body));
        big.always(Reply::json(
            200,
            completion("gpt-4.1-2025-04-14", "fits here"),
        ));
        for round in 1..=2 {
            let r = p.chat(long_chat(2_000)).await;
            assert_eq!(r.status, 200, "{kind}: {}", r.text());
            assert_eq!(r.json()["choices"][0]["message"]["content"], "fits here");
            assert_eq!(r.header("x-understudy-provider"), Some("big"), "{kind}");
            assert_eq!(r.header("x-understudy-attempts"), Some("2"), "{kind}");
            // Not cooled down: the lead is asked again on the next request.
            assert_eq!(lead.count(), round, "{kind}: the lead is asked every time");
        }
        let s = provider_status(&p, "lead").await;
        assert_eq!(
            s["circuit"], "closed",
            "{kind}: the provider is healthy: {s}"
        );
        assert_eq!(s["consecutive_failures"], 0, "{kind}: {s}");
        let status = get(&p.url("/status")).await.json();
        assert_eq!(status["cooldowns"], json!([]), "{kind}: no cooldown");
        let metrics = get(&p.url("/metrics")).await.text();
        assert!(
            metrics.contains("understudy_failovers_total{route=\"default\"} 2"),
            "{kind}: {metrics}"
        );
    }
}

#[tokio::test]
async fn a_streamed_request_fails_over_on_a_context_length_400_too() {
    let (mocks, p) = setup(&[
        t("lead", "anthropic", "claude-haiku-4-5"),
        t("big", "openai", "gpt-4.1"),
    ])
    .await;
    mocks[0].push(Reply::json(400, ANTHROPIC_TOO_LONG));
    mocks[1].push(stream_reply("gpt-4.1-2025-04-14", &["fits", " here"]));
    let mut body = long_chat(2_000);
    body["stream"] = json!(true);
    let r = p.chat(body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("big"));
    assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test]
async fn a_target_whose_window_the_request_clearly_exceeds_is_never_called() {
    let (mocks, p) = setup(&[
        windowed("small", "llama-8k", 8_000),
        t("big", "openai", "gpt-4.1"),
    ])
    .await;
    let (small, big) = (&mocks[0], &mocks[1]);
    small.always(Reply::json(200, completion("llama-8k", "from small")));
    big.always(Reply::json(
        200,
        completion("gpt-4.1-2025-04-14", "from big"),
    ));

    // 60 000 bytes: ~15 000 tokens, at least 10 000 > 8 000.
    let r = p.chat(long_chat(60_000)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("big"));
    assert_eq!(
        r.header("x-understudy-attempts"),
        Some("1"),
        "a skip is no attempt"
    );
    assert_eq!(small.count(), 0, "the small target is never called");

    // 40 000 bytes: ~10 000 tokens by the typical estimate, but at least only ~6 666:
    // not clearly over, so the provider decides.
    let r = p.chat(long_chat(40_000)).await;
    assert_eq!(
        r.header("x-understudy-provider"),
        Some("small"),
        "{}",
        r.text()
    );
    // Reserved output counts against the window: 6 666 + 2 000 > 8 000.
    let mut body = long_chat(40_000);
    body["max_tokens"] = json!(2_000);
    let r = p.chat(body).await;
    assert_eq!(
        r.header("x-understudy-provider"),
        Some("big"),
        "{}",
        r.text()
    );
    assert_eq!(small.count(), 1);
    assert_eq!(big.count(), 2);
}

#[tokio::test]
async fn every_target_too_long_is_a_400_with_the_providers_message() {
    let (mocks, p) = setup(&[
        t("oai", "openai", "gpt-4o"),
        t("ant", "anthropic", "claude-sonnet-4-5"),
    ])
    .await;
    mocks[0].always(Reply::json(400, OPENAI_TOO_LONG));
    mocks[1].always(Reply::json(400, ANTHROPIC_TOO_LONG));

    let r = p.chat(long_chat(2_000)).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let e = &r.json()["error"];
    assert_eq!(e["type"], "invalid_request_error");
    assert_eq!(e["code"], "context_length_exceeded");
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.starts_with("ant: prompt is too long: 208656 tokens > 200000 maximum"),
        "the last provider's own message leads: {msg}"
    );
    assert!(msg.contains("~500 prompt tokens"), "the estimate: {msg}");
    assert!(
        msg.contains("oai/gpt-4o: 400 This model's maximum context length is 128000 tokens"),
        "every step: {msg}"
    );

    // The Responses API: the same shape as chat.
    let r = send(
        &p.url("/v1/responses"),
        "POST",
        &[],
        json!({"model": "default", "input": "w".repeat(2_000)}).to_string(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "context_length_exceeded");

    // The Messages API: Anthropic's shape and wording.
    let r = send(
        &p.url("/v1/messages"),
        "POST",
        &[("anthropic-version", "2023-06-01")],
        json!({"model": "default", "max_tokens": 100,
               "messages": [{"role": "user", "content": "w".repeat(2_000)}]})
        .to_string(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("ant: prompt is too long"),
        "{}",
        r.text()
    );
    assert_eq!((mocks[0].count(), mocks[1].count()), (3, 3));
    for name in ["oai", "ant"] {
        assert_eq!(provider_status(&p, name).await["circuit"], "closed");
    }
}

#[tokio::test]
async fn no_target_fits_is_a_400_with_the_estimate_and_no_call() {
    let (mocks, p) = setup(&[windowed("a", "m-4k", 4_000), windowed("b", "m-8k", 8_000)]).await;
    let r = p.chat(long_chat(120_000)).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "context_length_exceeded");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.starts_with("the request does not fit the context window of any target"),
        "{msg}"
    );
    assert!(
        msg.contains("~30000 prompt tokens (at least 20000)"),
        "{msg}"
    );
    assert!(
        msg.contains("b/m-8k: skipped (context window of 8000 tokens clearly exceeded"),
        "{msg}"
    );
    assert_eq!(r.header("x-understudy-attempts"), Some("0"));

    // Through the Messages front door: Anthropic's wording leads.
    let r = send(
        &p.url("/v1/messages"),
        "POST",
        &[("anthropic-version", "2023-06-01")],
        json!({"model": "default", "max_tokens": 100,
               "messages": [{"role": "user", "content": "w".repeat(120_000)}]})
        .to_string(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let m = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        m.starts_with("prompt is too long: the request does not fit"),
        "{m}"
    );
    assert_eq!(
        mocks[0].count() + mocks[1].count(),
        0,
        "no upstream was called"
    );
}

#[tokio::test]
async fn too_long_for_one_and_down_elsewhere_is_not_a_400() {
    // The other target might have fit: the client learns that it failed, not that
    // its request is too long.
    let (mocks, p) = setup(&[t("a", "openai", "m-a"), t("b", "openai", "m-b")]).await;
    mocks[0].push(Reply::json(400, OPENAI_TOO_LONG));
    mocks[1].push(Reply::json(503, r#"{"error":{"message":"overloaded"}}"#));
    let r = p.chat(long_chat(2_000)).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.error_code(), "upstream_failed");
}

#[tokio::test]
async fn embeddings_skip_a_small_window_and_fail_over_on_a_too_long_input() {
    let embedded = include_str!("../fixtures/openai/embeddings_float.json");
    let too_long = include_str!("../fixtures/openai/error_embeddings_context_length.json");
    let (mocks, p) = setup(&[
        windowed("small", "embed-512", 512),
        t("lead", "openai", "text-embedding-3-small"),
        t("big", "openai", "text-embedding-3-large"),
    ])
    .await;
    mocks[1].push(Reply::json(400, too_long));
    mocks[2].push(Reply::json(200, embedded));
    // The longest input decides: 6 000 bytes, at least 1 000 tokens > 512.
    let body = json!({"model": "default", "input": ["short", "w".repeat(6_000)]});
    let r = send(&p.url("/v1/embeddings"), "POST", &[], body.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("big"));
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
    assert_eq!(mocks[0].count(), 0, "the small window is never called");

    // Every target too long: OpenAI's error shape, the provider's message.
    mocks[1].push(Reply::json(400, too_long));
    mocks[2].push(Reply::json(400, too_long));
    let r = send(&p.url("/v1/embeddings"), "POST", &[], body.to_string()).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "context_length_exceeded");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.starts_with("big: This model's maximum context length is 8192 tokens"),
        "{msg}"
    );
    assert!(
        msg.contains("small/embed-512: skipped (context window of 512"),
        "{msg}"
    );
    assert_eq!(mocks[0].count(), 0);
}

#[tokio::test]
async fn the_official_sdks_see_a_bad_request_they_can_act_on() {
    let (mocks, p) = setup(&[windowed("a", "m-4k", 4_000), t("b", "openai", "m-b")]).await;
    mocks[1].always(Reply::json(400, OPENAI_TOO_LONG));
    let long = "w".repeat(60_000);
    let chat = json!({"model": "default", "messages": [{"role": "user", "content": long}]});
    let results = openai_sdk(
        &p,
        "client-key",
        json!([{"kind": "complete", "request": chat}, {"kind": "stream", "request": chat}]),
    )
    .await;
    for r in &results {
        assert_eq!(r["error"], "BadRequestError", "{r}");
        assert_eq!(r["status"], 400);
        assert_eq!(r["code"], "context_length_exceeded", "{r}");
        assert_eq!(r["type"], "invalid_request_error");
    }
    let messages = json!({"model": "default", "max_tokens": 100,
                          "messages": [{"role": "user", "content": long}]});
    let e = run_sdk_script(
        "anthropic_client.py",
        p.url(""),
        "client-key",
        json!([{"kind": "create", "request": messages}]),
    )
    .await
    .remove(0);
    assert_eq!(e["error"], "BadRequestError", "{e}");
    assert_eq!(e["type"], "invalid_request_error", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("prompt is too long"),
        "{e}"
    );
    assert_eq!(mocks[0].count(), 0);
}
