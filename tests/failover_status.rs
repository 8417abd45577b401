//! Status-based failover through real HTTP: which answers fail over and which are
//! returned, attempt limits, retries on the same target, protocol failures and the
//! static fallback.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use common::*;
use serde_json::json;

use common::{openai_config as config, UPSTREAM_KEY as KEY};

#[tokio::test]
async fn answers_pass_through_with_headers_and_provider_auth() {
    let (a, b, p) = two("").await;
    a.push(Reply::json(200, completion("gpt-4o-2024-08-06", "hello")));
    let r = send(
        &p.url("/v1/chat/completions"),
        "POST",
        &[("x-request-id", "rid-123"), ("authorization", "Bearer client-key")],
        json!({"model": "default", "messages": [{"role": "user", "content": "hi"}], "logit_bias": {"5": 1}}).to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(
        body["model"], "gpt-4o-2024-08-06",
        "the model that answered"
    );
    assert_eq!(body["choices"][0]["message"]["content"], "hello");
    assert_eq!(r.header("x-understudy-provider"), Some("a"));
    assert_eq!(r.header("x-understudy-model"), Some("m-a"));
    assert_eq!(r.header("x-understudy-attempts"), Some("1"));
    assert_eq!(r.header("x-request-id"), Some("rid-123"));
    let got = &a.received()[0];
    assert_eq!(got.path, "/v1/chat/completions");
    assert_eq!(
        got.headers["authorization"], "Bearer sk-upstream-secret",
        "provider key, never the client's"
    );
    assert_eq!(got.json()["model"], "m-a");
    assert_eq!(
        got.json()["logit_bias"]["5"],
        1,
        "unknown fields pass through"
    );
    assert_eq!(b.count(), 0);
    // a fresh request id when the client sends none
    a.push(Reply::json(200, completion("m", "x")));
    let r = p.chat(user("default")).await;
    assert!(r
        .header("x-request-id")
        .is_some_and(|v| v.starts_with("req_")));
}

#[tokio::test]
async fn fails_over_on_every_default_status() {
    for status in [401, 403, 404, 408, 429, 500, 502, 503, 504, 529] {
        let (a, b, p) = two("").await;
        a.push(Reply::json(
            status,
            r#"{"error":{"message":"nope","type":"x"}}"#,
        ));
        b.push(Reply::json(200, completion("m-b", "from b")));
        let r = p.chat(user("default")).await;
        assert_eq!(r.status, 200, "status {status}: {}", r.text());
        assert_eq!(
            r.header("x-understudy-provider"),
            Some("b"),
            "status {status}"
        );
        assert_eq!(
            r.header("x-understudy-attempts"),
            Some("2"),
            "status {status}"
        );
        assert_eq!((a.count(), b.count()), (1, 1), "status {status}");
    }
}

#[tokio::test]
async fn fails_over_on_a_refused_connection() {
    let b = Mock::start().await;
    let p = Proxy::start(
        &config(&[("a", refused_url().await), ("b", b.url())], ""),
        &[KEY],
    )
    .await;
    b.push(Reply::json(200, completion("m-b", "ok")));
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
    assert_eq!(r.header("x-understudy-provider"), Some("b"));
}

#[tokio::test]
async fn a_bad_request_is_returned_not_failed_over() {
    for status in [400, 422] {
        let (a, b, p) = two("").await;
        a.push(Reply::json(
            status,
            r#"{"error":{"message":"temperature too high","type":"invalid_request_error","code":"invalid_value"}}"#,
        ));
        let r = p.chat(user("default")).await;
        assert_eq!(r.status, 400);
        let e = r.json();
        assert_eq!(e["error"]["type"], "invalid_request_error");
        assert_eq!(e["error"]["code"], "invalid_value", "the provider's code");
        assert!(e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("temperature too high"));
        assert_eq!(b.count(), 0, "the same request fails everywhere");
    }
}

#[tokio::test]
async fn a_5xx_outside_on_status_is_a_502_without_failover() {
    let (a, b, p) = two("").await;
    a.push(Reply::json(
        501,
        r#"{"error":{"message":"not implemented here"}}"#,
    ));
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.error_code(), "upstream_failed");
    assert!(r.text().contains("not implemented here"));
    assert_eq!(b.count(), 0);
}

#[tokio::test]
async fn max_attempts_bounds_the_upstream_requests() {
    let (a, b, c) = (
        Mock::start().await,
        Mock::start().await,
        Mock::start().await,
    );
    let p = Proxy::start(
        &config(
            &[("a", a.url()), ("b", b.url()), ("c", c.url())],
            "[failover]\nmax_attempts = 2\n",
        ),
        &[KEY],
    )
    .await;
    a.always(Reply::json(500, "{}"));
    b.always(Reply::json(502, "{}"));
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.error_code(), "upstream_failed");
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
    assert_eq!(c.count(), 0);
}

#[tokio::test]
async fn retries_per_target_retries_a_5xx_on_the_same_target() {
    let (a, b, p) = two("[failover]\nretries_per_target = 1\nbackoff = \"10ms\"\n").await;
    a.push(Reply::json(503, "{}"));
    a.push(Reply::json(200, completion("m-a", "second try")));
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-understudy-provider"), Some("a"));
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
    assert_eq!(b.count(), 0);
}

#[tokio::test]
async fn a_malformed_200_is_a_protocol_failure_that_fails_over() {
    let (a, b, p) = two("").await;
    a.push(Reply::json(200, "<html>captive portal</html>"));
    b.push(Reply::json(200, completion("m-b", "b")));
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-understudy-provider"), Some("b"));
    let metrics = get(&p.url("/metrics")).await.text();
    assert!(
        metrics.contains("understudy_attempts_total{provider=\"a\",outcome=\"protocol\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("understudy_requests_total{route=\"default\",status=\"200\",api=\"chat\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("understudy_failovers_total{route=\"default\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_redirect_is_a_protocol_failure_that_fails_over() {
    let (a, b, p) = two("").await;
    a.push(Reply::json(301, "").header("location", "https://elsewhere/"));
    b.push(Reply::json(200, completion("m-b", "b")));
    let r = p.chat(user("default")).await;
    assert_eq!(
        (r.status, r.header("x-understudy-provider")),
        (200, Some("b"))
    );
    let metrics = get(&p.url("/metrics")).await.text();
    assert!(
        metrics.contains("understudy_attempts_total{provider=\"a\",outcome=\"protocol\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_static_fallback_answers_when_every_target_failed() {
    let (a, b, p) = two("\n[fallback]\nmessage = \"Back in a minute.\"\n").await;
    a.always(Reply::json(500, "{}"));
    b.always(Reply::json(503, "{}"));
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-understudy-degraded"), Some("static"));
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "Back in a minute."
    );
    let r = p.chat(user_stream("default")).await;
    let data = r.sse_data();
    assert!(data[0].contains("Back in a minute."));
    assert!(data[1].contains("\"finish_reason\":\"stop\""));
    assert_eq!(data.last().unwrap(), "[DONE]");
}
