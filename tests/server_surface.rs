//! The proxy's own HTTP surface: bad client input, body limits and stalled bodies,
//! client keys, unknown paths and methods, h2c, direct `provider/model` targets,
//! disabled providers, and keys redacted from upstream errors.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

use common::{openai_config as config, UPSTREAM_KEY as KEY};

#[tokio::test]
async fn bad_client_input_gets_specific_errors_and_no_upstream_call() {
    let (a, _b, p) = two("").await;
    let url = p.url("/v1/chat/completions");
    let cases: Vec<(String, &str)> = vec![
        ("{\"model\": ".into(), "not valid JSON"),
        (json!({"model": "default"}).to_string(), "messages"),
        (json!({"model": "default", "messages": "hi"}).to_string(), "invalid request body"),
        (json!({"model": 5, "messages": [{"role": "user", "content": "x"}]}).to_string(), "invalid request body"),
        (json!({"model": "default", "messages": [{"role": "robot", "content": "x"}]}).to_string(), "robot"),
        (json!({"model": "default", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}).to_string(), "invalid request body"),
        ("[]".into(), "invalid request body"),
    ];
    for (body, want) in cases {
        let r = send(&url, "POST", &[], body.clone()).await;
        assert_eq!(r.status, 400, "{body}");
        let e = r.json();
        assert_eq!(e["error"]["type"], "invalid_request_error");
        assert_eq!(e["error"]["code"], "invalid_request");
        assert!(e["error"]["param"].is_null());
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(msg.contains(want), "{body}: {msg}");
    }
    assert_eq!(a.count(), 0);
}

#[tokio::test]
async fn oversized_bodies_are_413_whether_declared_or_streamed() {
    let a = Mock::start().await;
    let p = Proxy::start(
        &config(&[("a", a.url())], "max_body_bytes = 1000\n"),
        &[KEY],
    )
    .await;
    let big =
        json!({"model": "default", "messages": [{"role": "user", "content": "x".repeat(5000)}]})
            .to_string();
    let r = send(&p.url("/v1/chat/completions"), "POST", &[], big.clone()).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.error_code(), "request_too_large");
    // chunked (no content-length)
    let chunks: Vec<Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>> = big
        .as_bytes()
        .chunks(100)
        .map(|c| Ok(hyper::body::Frame::data(bytes::Bytes::copy_from_slice(c))))
        .collect();
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(chunks));
    let req = http::Request::post(p.url("/v1/chat/completions"))
        .body(body)
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(a.count(), 0);
}

#[tokio::test]
async fn a_client_that_stalls_mid_body_gets_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (a, _b, p) = two("body_timeout = \"300ms\"\n").await;
    let mut conn = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let head = "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"model\":";
    conn.write_all(head.as_bytes()).await.unwrap();
    // the rest of the body never comes: only body_timeout can answer (hyper's own
    // 30 s limit is for heads, and would not answer request_timeout)
    let mut answer = String::new();
    let read = async {
        let mut buf = vec![0u8; 4096];
        loop {
            let n = conn.read(&mut buf).await.unwrap();
            answer.push_str(&String::from_utf8_lossy(&buf[..n]));
            if n == 0 || answer.contains("request_timeout") {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("answered within 20 s");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert_eq!(a.count(), 0);
}

#[tokio::test]
async fn client_keys_guard_v1_in_constant_time() {
    let a = Mock::start().await;
    let toml = config(&[("a", a.url())], "api_keys_env = \"CLIENT_KEYS\"\n");
    let p = Proxy::start(&toml, &[KEY, ("CLIENT_KEYS", "key-one, key-two")]).await;
    a.always(Reply::json(200, completion("m-a", "ok")));
    let url = p.url("/v1/chat/completions");
    let body = user("default").to_string();
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("key-one"),
        Some("Bearer key-on"),
    ] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let r = send(&url, "POST", &headers, body.clone()).await;
        assert_eq!(r.status, 401, "{auth:?}");
        assert_eq!(r.json()["error"]["type"], "authentication_error");
        assert_eq!(r.error_code(), "invalid_api_key");
        assert!(!r.text().contains("key-one"), "no secret in error bodies");
    }
    for key in ["Bearer key-one", "Bearer key-two"] {
        let r = send(&url, "POST", &[("authorization", key)], body.clone()).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            a.received().last().unwrap().headers["authorization"],
            "Bearer sk-upstream-secret"
        );
    }
    assert_eq!(get(&p.url("/v1/models")).await.status, 401);
    // the operator's endpoints are open and show no secret
    for path in ["/healthz", "/readyz", "/status", "/metrics"] {
        let r = get(&p.url(path)).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(
            !r.text().contains("key-one") && !r.text().contains("sk-upstream-secret"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn unknown_paths_models_and_methods() {
    let (_a, _b, p) = two("").await;
    let r = get(&p.url("/v1/nothing")).await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "not_found"));
    let r = p.chat(user("no-such-model")).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "model_not_found")
    );
    let r = get(&p.url("/v1/chat/completions")).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (405, "method_not_allowed")
    );
    assert_eq!(r.header("allow"), Some("POST"));
    let r = send(&p.url("/healthz"), "POST", &[], "").await;
    assert_eq!(r.status, 405);
    let r = get(&p.url("/healthz")).await;
    assert_eq!((r.status, r.text().trim()), (200, "ok"));
    let models = get(&p.url("/v1/models")).await.json();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "default");
    assert_eq!(models["data"][0]["object"], "model");
}

#[tokio::test]
async fn http2_cleartext_clients_are_served() {
    let (a, _b, p) = two("").await;
    a.push(Reply::json(200, completion("m-a", "over h2")));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = http::Request::post(p.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            user("default").to_string(),
        )))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn provider_slash_model_reaches_that_target_alone() {
    let (a, b, p) = two("").await;
    b.push(Reply::json(200, completion("gpt-x", "direct")));
    let r = p.chat(user("b/gpt-x")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-understudy-provider"), Some("b"));
    assert_eq!(r.header("x-understudy-model"), Some("gpt-x"));
    assert_eq!(b.received()[0].json()["model"], "gpt-x");
    assert_eq!(a.count(), 0);
}

#[tokio::test]
async fn direct_targets_share_one_metric_label_and_odd_models_are_refused() {
    let (_a, b, p) = two("").await;
    b.always(Reply::json(200, completion("x", "ok")));
    for i in 0..3 {
        assert_eq!(p.chat(user(&format!("b/model-{i}"))).await.status, 200);
    }
    let metrics = get(&p.url("/metrics")).await.text();
    assert!(
        metrics.contains("understudy_requests_total{route=\"b/*\",status=\"200\",api=\"chat\"} 3"),
        "{metrics}"
    );
    assert!(!metrics.contains("model-1"), "{metrics}");
    let long = format!("b/{}", "m".repeat(300));
    for bad in ["b/../admin", "b/a b", long.as_str()] {
        assert_eq!(p.chat(user(bad)).await.status, 404, "{bad}");
    }
    assert_eq!(b.count(), 3);
}

#[tokio::test]
async fn disabled_providers_are_skipped_and_all_disabled_is_503() {
    let a = Mock::start().await;
    let b = Mock::start().await;
    let toml = config(&[("a", a.url()), ("b", b.url())], "").replacen(
        "api_key_env = \"TEST_KEY\"",
        "api_key_env = \"UNSET_KEY\"",
        1,
    );
    let p = Proxy::start(&toml, &[KEY]).await;
    b.push(Reply::json(200, completion("m-b", "b")));
    let r = p.chat(user("default")).await;
    assert_eq!(
        r.header("x-understudy-attempts"),
        Some("1"),
        "disabled targets don't count"
    );
    let status = get(&p.url("/status")).await.json();
    assert_eq!(status["providers"][0]["enabled"], false);
    assert_eq!(
        status["providers"][0]["disabled_reason"],
        "UNSET_KEY is not set"
    );

    let all_off = toml.replace("api_key_env = \"TEST_KEY\"", "api_key_env = \"UNSET_KEY\"");
    let p = Proxy::start(&all_off, &[KEY]).await;
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"]["type"], "service_unavailable");
    assert_eq!(r.error_code(), "no_provider_available");
    assert_eq!(get(&p.url("/readyz")).await.status, 503);
}

#[tokio::test]
async fn keys_an_upstream_echoes_never_reach_the_client() {
    let a = Mock::start().await;
    let p = Proxy::start(&config(&[("a", a.url())], ""), &[KEY]).await;
    a.push(Reply::json(
        401,
        r#"{"error":{"message":"Incorrect API key provided: sk-proj-AbCd****wXyZ (you sent sk-upstream-secret)","type":"invalid_request_error","code":"invalid_api_key"}}"#,
    ));
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 502);
    let text = r.text();
    assert!(
        text.contains("Incorrect API key provided: [redacted]"),
        "{text}"
    );
    assert!(
        !text.contains("AbCd") && !text.contains("sk-upstream-secret"),
        "{text}"
    );
}
