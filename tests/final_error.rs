//! The error a client gets when no target answered: it says what happened to every
//! target, in priority order, tried and skipped together.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use common::*;

#[tokio::test]
async fn the_final_502_lists_every_target_in_priority_order_tried_or_skipped() {
    let a = Mock::start().await;
    let c = Mock::start().await;
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[providers.a]
kind = "openai"
base_url = "{}/v1"
api_key_env = "TEST_KEY"
[providers.b]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "UNSET_KEY"
[providers.c]
kind = "openai"
base_url = "{}/v1"
api_key_env = "TEST_KEY"
[[routes]]
model = "default"
targets = ["a/m-a", "b/m-b", "c/m-c"]
"#,
        a.url(),
        c.url()
    );
    let p = Proxy::start(&toml, &[("TEST_KEY", "sk-upstream-secret")]).await;
    a.push(Reply::json(500, r#"{"error":{"message":"a is down"}}"#));
    c.push(Reply::json(404, r#"{"error":{"message":"no such model"}}"#));
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    let at = |needle: &str| {
        msg.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} missing from {msg:?}"))
    };
    let (ia, ib, ic) = (
        at("a/m-a: 500 a is down"),
        at("b/m-b: skipped (disabled: UNSET_KEY is not set)"),
        at("c/m-c: 404 no such model (POST /v1/chat/completions)"),
    );
    assert!(ia < ib && ib < ic, "priority order: {msg}");
    assert!(msg.starts_with("every target failed: "), "{msg}");
}
