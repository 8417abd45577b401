//! `/status` as an operator reads it: the counters DESIGN §3 promises beside the
//! config, routes, providers and cooldowns.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use common::*;
use common::{openai_config as config, UPSTREAM_KEY as KEY};

#[tokio::test]
async fn status_counts_requests_attempts_failovers_and_cache_results() {
    let a = Mock::start().await;
    let b = Mock::start().await;
    let extra = "[cache]\nenabled = true\nmode = \"all\"\n";
    let p = Proxy::start(&config(&[("a", a.url()), ("b", b.url())], extra), &[KEY]).await;
    let before = get(&p.url("/status")).await.json();
    assert_eq!(before["counters"]["requests"], 0);

    a.push(Reply::json(503, r#"{"error":{"message":"down"}}"#));
    b.push(Reply::json(200, completion("m-b", "hello")));
    assert_eq!(p.chat(user("default")).await.status, 200);
    // the same request again: a cache hit, no upstream call
    assert_eq!(p.chat(user("default")).await.status, 200);
    // an unknown model: a 4xx that never reaches a route
    assert_eq!(p.chat(user("nope")).await.status, 404);

    let c = &get(&p.url("/status")).await.json()["counters"];
    assert_eq!(c["requests"], 3, "{c}");
    assert_eq!(c["responses"]["2xx"], 2, "{c}");
    assert_eq!(c["responses"]["4xx"], 1, "{c}");
    assert_eq!(c["responses"]["5xx"], 0, "{c}");
    assert_eq!(c["attempts"]["ok"], 1, "{c}");
    assert_eq!(c["attempts"]["error_status"], 1, "{c}");
    assert_eq!(c["attempts"]["rate_limited"], 0, "{c}");
    assert_eq!(c["failovers"], 1, "{c}");
    assert_eq!(c["cache"]["miss"], 2, "{c}");
    assert_eq!(c["cache"]["hit"], 1, "{c}");
    assert_eq!(c["cache"]["stale"], 0, "{c}");
    assert_eq!(a.count() + b.count(), 2);
}

#[tokio::test]
async fn metrics_tell_the_client_apis_apart() {
    let ant = Mock::start().await;
    let toml = format!(
        "[providers.ant]\nkind = \"anthropic\"\nbase_url = \"{}\"\napi_key_env = \"TEST_KEY\"\n\
         [[routes]]\nmodel = \"default\"\ntargets = [\"ant/claude-sonnet-4-5\"]\n",
        ant.url()
    );
    let p = Proxy::start(&toml, &[KEY]).await;
    let message = include_str!("../fixtures/anthropic/response_text.json");
    for _ in 0..3 {
        ant.push(Reply::json(200, message));
    }
    ant.push(Reply::json(200, r#"{"input_tokens":12}"#));
    let post = |path: &str, body: serde_json::Value| {
        let url = p.url(path);
        async move {
            send(
                &url,
                "POST",
                &[("anthropic-version", "2023-06-01")],
                body.to_string(),
            )
            .await
        }
    };
    assert_eq!(p.chat(user("default")).await.status, 200);
    let hi = serde_json::json!([{"role": "user", "content": "hi"}]);
    let r = post(
        "/v1/responses",
        serde_json::json!({"model": "default", "input": "hi"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post(
        "/v1/responses",
        serde_json::json!({"model": "nope", "input": "hi"}),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());
    let msg = serde_json::json!({"model": "default", "max_tokens": 10, "messages": hi});
    assert_eq!(post("/v1/messages", msg).await.status, 200);
    let count = serde_json::json!({"model": "default", "messages": hi});
    assert_eq!(post("/v1/messages/count_tokens", count).await.status, 200);
    assert_eq!(ant.count(), 4);

    let metrics = get(&p.url("/metrics")).await.text();
    for line in [
        r#"understudy_requests_total{route="default",status="200",api="chat"} 1"#,
        r#"understudy_requests_total{route="default",status="200",api="responses"} 1"#,
        r#"understudy_requests_total{route="unrouted",status="404",api="responses"} 1"#,
        r#"understudy_requests_total{route="default",status="200",api="messages"} 1"#,
        r#"understudy_requests_total{route="default",status="200",api="count_tokens"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
    let c = &get(&p.url("/status")).await.json()["counters"];
    assert_eq!(c["requests"], 5, "/status sums every API: {c}");
}
