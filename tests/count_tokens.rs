//! `POST /v1/messages/count_tokens` (DESIGN §8): counted by an Anthropic-kind target
//! of the route — the client's body with only the model swapped, its version and beta
//! headers and query, the provider's key — and the count returned as it came; an
//! estimate (`x-understudy-estimate: true`) only when no Anthropic-kind target
//! answered. Admission and health apply as for any request. The official `anthropic`
//! SDK's `messages.count_tokens` is the judge.
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

const COUNT: &str = r#"{"input_tokens":2095}"#;

fn count_request() -> Value {
    json!({"model": "default", "system": "Be brief.", "tools": weather_tools(),
        "messages": [{"role": "user", "content": "Count the tokens of this sentence, please."}]})
}

async fn count_raw(p: &Proxy, query: &str, headers: &[(&str, &str)], body: &Value) -> Resp {
    send(
        &p.url(&format!("/v1/messages/count_tokens{query}")),
        "POST",
        headers,
        body.to_string(),
    )
    .await
}

#[tokio::test]
async fn the_count_is_asked_of_the_anthropic_target_and_returned_as_it_came() {
    let s = setup(&[ANTHROPIC]).await;
    let ant = s.mock(0);
    let beta_count = r#"{"input_tokens":14,"context_management":{"original_input_tokens":20}}"#;
    ant.push(Reply::json(200, beta_count));
    let r = count_raw(
        &s.proxy,
        "?beta=true",
        &[
            ("x-api-key", CLIENT_KEY),
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "context-management-2025-06-27"),
        ],
        &count_request(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), beta_count, "the provider's answer, byte for byte");
    assert_eq!(r.header("x-understudy-estimate"), None);
    assert_eq!(r.header("x-understudy-provider"), Some("ant"));
    assert_eq!(r.header("x-understudy-attempts"), Some("1"));
    let got = &ant.received()[0];
    assert_eq!(got.method, "POST");
    assert_eq!(got.path, "/v1/messages/count_tokens?beta=true");
    assert_eq!(got.headers["x-api-key"], UPSTREAM, "the provider's key");
    assert_eq!(got.headers["anthropic-version"], "2023-06-01");
    assert_eq!(
        got.headers["anthropic-beta"],
        "context-management-2025-06-27"
    );
    assert!(!got.headers.contains_key("authorization"));
    let body = got.json();
    assert_eq!(body["model"], "claude-sonnet-4-5", "the target's model");
    let mut sent = count_request();
    sent["model"] = json!("claude-sonnet-4-5");
    assert_eq!(body, sent, "otherwise the client's body");

    // the official SDK reads it
    ant.push(Reply::json(200, COUNT));
    let r = sdk_one(
        &s.proxy,
        json!({"kind": "count_tokens", "request": count_request()}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["input_tokens"], 2095);
    assert_eq!(r["estimate"], Value::Null);
    assert_eq!(ant.received()[1].path, "/v1/messages/count_tokens");
}

#[tokio::test]
async fn an_openai_lead_is_skipped_and_the_anthropic_second_counts() {
    let s = setup(&[OPENAI, ANTHROPIC]).await;
    s.mock(1).push(Reply::json(200, COUNT));
    let r = sdk_one(
        &s.proxy,
        json!({"kind": "count_tokens", "request": count_request()}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["input_tokens"], 2095);
    assert_eq!(r["estimate"], Value::Null);
    assert_eq!(s.mock(0).count(), 0, "an OpenAI-kind target cannot count");
    assert_eq!(s.mock(1).count(), 1);
    assert_eq!(s.mock(1).received()[0].json()["model"], "claude-sonnet-4-5");
}

#[tokio::test]
async fn when_no_anthropic_target_answers_the_estimate_stands_in() {
    let s = setup(&[ANTHROPIC, OPENAI]).await;
    let ant = s.mock(0);
    // rate-limited: the target cools down for the hint, and the client gets an estimate
    ant.push(Reply::json(429, ANT_RATE_LIMIT).header("retry-after", "60"));
    let headers = [
        ("x-api-key", CLIENT_KEY),
        ("anthropic-version", "2023-06-01"),
    ];
    let r = count_raw(&s.proxy, "", &headers, &count_request()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-estimate"), Some("true"));
    assert_eq!(r.header("x-understudy-attempts"), Some("1"));
    let estimate = r.json()["input_tokens"].as_u64().unwrap();
    assert!(estimate > 10, "{estimate}");
    // cooling: not asked again, estimated at once
    let r = count_raw(&s.proxy, "", &headers, &count_request()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-estimate"), Some("true"));
    assert_eq!(r.header("x-understudy-attempts"), Some("0"));
    assert_eq!(r.json()["input_tokens"], estimate);
    assert_eq!(ant.count(), 1, "no request to a cooling target");
    assert_eq!(s.mock(1).count(), 0, "nor to one that cannot count");
    let status = get(&s.proxy.url("/status")).await.json();
    let cooling: Vec<&str> = status["cooldowns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["target"].as_str().unwrap())
        .collect();
    assert_eq!(cooling, ["ant/claude-sonnet-4-5"], "{status}");
}

#[tokio::test]
async fn a_disabled_anthropic_target_is_never_asked() {
    let mock = Mock::start().await;
    let toml = format!(
        "[providers.ant]\nkind = \"anthropic\"\nbase_url = \"{}\"\napi_key_env = \"UNSET_ANTHROPIC_KEY\"\n\
         [[routes]]\nmodel = \"default\"\ntargets = [\"ant/claude-sonnet-4-5\"]\n",
        mock.url()
    );
    let p = Proxy::start(&toml, &[]).await;
    let r = count_raw(
        &p,
        "",
        &[("anthropic-version", "2023-06-01")],
        &count_request(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-estimate"), Some("true"));
    assert_eq!(mock.count(), 0);
}

#[tokio::test]
async fn an_upstream_that_refuses_the_request_is_answered_not_estimated() {
    let s = setup(&[ANTHROPIC]).await;
    s.mock(0).push(Reply::json(
        400,
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"messages: roles must alternate"}}"#,
    ));
    let r = sdk_one(
        &s.proxy,
        json!({"kind": "count_tokens", "request": count_request()}),
    )
    .await;
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["status"], 400);
    assert_eq!(r["type"], "invalid_request_error");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("roles must alternate"),
        "{r}"
    );
}
