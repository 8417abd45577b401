//! The failover core through real HTTP: status-based failover, Retry-After cooldowns,
//! circuit breakers, timeouts, stream commit semantics and cancellation.
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

async fn two(extra: &str) -> (Mock, Mock, Proxy) {
    let a = Mock::start().await;
    let b = Mock::start().await;
    let p = Proxy::start(&config(&[("a", a.url()), ("b", b.url())], extra), &[KEY]).await;
    (a, b, p)
}

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
async fn retry_after_in_every_form_keeps_traffic_off_the_cooling_target() {
    let in_20s = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(20));
    let forms: Vec<(&str, String)> = vec![
        ("retry-after", "20".into()),
        ("retry-after-ms", "20000".into()),
        ("x-ms-retry-after-ms", "20000".into()),
        ("retry-after", in_20s),
        ("x-ratelimit-reset-requests", "20s".into()),
        (
            "anthropic-ratelimit-requests-reset",
            humantime::format_rfc3339_seconds(
                std::time::SystemTime::now() + Duration::from_secs(20),
            )
            .to_string(),
        ),
    ];
    for (header, value) in forms {
        let (a, b, p) = two("").await;
        a.push(Reply::json(429, r#"{"error":{"message":"slow down"}}"#).header(header, &value));
        a.always(Reply::json(200, completion("m-a", "a")));
        b.always(Reply::json(200, completion("m-b", "b")));
        for i in 0..5 {
            let r = p.chat(user("default")).await;
            assert_eq!(r.status, 200);
            assert_eq!(
                r.header("x-understudy-provider"),
                Some("b"),
                "{header}: request {i}"
            );
        }
        assert_eq!(
            a.count(),
            1,
            "{header}: no request reaches a cooling target"
        );
        let status = get(&p.url("/status")).await.json();
        let left = status["cooldowns"][0]["seconds_left"].as_f64().unwrap();
        assert_eq!(status["cooldowns"][0]["target"], "a/m-a");
        assert!((15.0..=20.5).contains(&left), "{header}: {left}");
    }
}

#[tokio::test]
async fn every_target_cooling_answers_429_with_retry_after() {
    let (a, b, p) = two("").await;
    a.push(Reply::json(429, "{}").header("retry-after", "7"));
    b.push(Reply::json(429, "{}").header("retry-after", "12"));
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.error_code(), "rate_limited");
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    assert_eq!(r.header("retry-after"), Some("7"), "the soonest target");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("a/m-a") && msg.contains("b/m-b"),
        "lists each attempt: {msg}"
    );
    // nothing is tried now: still 429, Retry-After counts down, no upstream request
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-understudy-attempts"), Some("0"));
    let ra: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((6..=7).contains(&ra), "{ra}");
    assert_eq!((a.count(), b.count()), (1, 1));
}

#[tokio::test]
async fn max_wait_waits_for_the_soonest_cooling_target() {
    let a = Mock::start().await;
    let p = Proxy::start(
        &config(&[("a", a.url())], "[failover]\nmax_wait = \"3s\"\n"),
        &[KEY],
    )
    .await;
    a.push(Reply::json(429, "{}").header("retry-after-ms", "300"));
    a.push(Reply::json(200, completion("m-a", "after the wait")));
    let t = std::time::Instant::now();
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
    assert!(
        t.elapsed() >= Duration::from_millis(280),
        "{:?}",
        t.elapsed()
    );
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
async fn the_circuit_opens_after_n_failures_and_half_opens_after_open_for() {
    let (a, b, p) = two("[circuit_breaker]\nfailures = 2\nopen_for = \"400ms\"\n").await;
    a.always(Reply::json(500, "{}"));
    b.always(Reply::json(200, completion("m-b", "b")));
    for _ in 0..2 {
        assert_eq!(
            p.chat(user("default"))
                .await
                .header("x-understudy-attempts"),
            Some("2")
        );
    }
    assert_eq!(a.count(), 2);
    let status = get(&p.url("/status")).await.json();
    let pa = &status["providers"][0];
    assert_eq!(
        (pa["name"].as_str(), pa["circuit"].as_str()),
        (Some("a"), Some("open"))
    );
    assert_eq!(pa["consecutive_failures"], 2);
    // open: skipped, so one attempt only
    let r = p.chat(user("default")).await;
    assert_eq!(r.header("x-understudy-attempts"), Some("1"));
    assert_eq!(a.count(), 2);
    let metrics = get(&p.url("/metrics")).await.text();
    assert!(
        metrics.contains("understudy_circuit_open{provider=\"a\"} 1"),
        "{metrics}"
    );
    // after open_for: one trial, which fails and re-opens
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        p.chat(user("default"))
            .await
            .header("x-understudy-attempts"),
        Some("2")
    );
    assert_eq!(a.count(), 3);
    assert_eq!(
        p.chat(user("default"))
            .await
            .header("x-understudy-attempts"),
        Some("1")
    );
    // after open_for again: the trial is slow; a concurrent request skips a meanwhile
    tokio::time::sleep(Duration::from_millis(450)).await;
    a.push(Reply::json(200, completion("m-a", "a is back")).delay(Duration::from_millis(400)));
    let trial = tokio::spawn({
        let url = p.url("/v1/chat/completions");
        async move { send(&url, "POST", &[], user("default").to_string()).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let during = p.chat(user("default")).await;
    assert_eq!(during.header("x-understudy-provider"), Some("b"));
    assert_eq!(
        during.header("x-understudy-attempts"),
        Some("1"),
        "only one trial in flight"
    );
    let trial = trial.await.unwrap();
    assert_eq!(trial.header("x-understudy-provider"), Some("a"));
    assert_eq!(a.count(), 4);
    let status = get(&p.url("/status")).await.json();
    assert_eq!(status["providers"][0]["circuit"], "closed");
}

#[tokio::test]
async fn a_429_does_not_count_toward_the_circuit() {
    let (a, b, p) =
        two("[circuit_breaker]\nfailures = 1\n[failover]\ndefault_cooldown = \"1ms\"\n").await;
    a.always(Reply::json(429, "{}"));
    b.always(Reply::json(200, completion("m-b", "b")));
    for _ in 0..3 {
        p.chat(user("default")).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(a.count(), 3);
    let status = get(&p.url("/status")).await.json();
    assert_eq!(status["providers"][0]["circuit"], "closed");
}

#[tokio::test]
async fn first_byte_timeout_fails_over_and_all_timeouts_are_504() {
    let (a, b, p) = two("[timeouts]\nfirst_byte = \"200ms\"\n").await;
    a.push(Reply::json(200, completion("m-a", "too late")).delay(Duration::from_secs(5)));
    b.push(Reply::json(200, completion("m-b", "b")));
    let t = std::time::Instant::now();
    let r = p.chat(user("default")).await;
    assert_eq!(r.header("x-understudy-provider"), Some("b"));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    a.push(Reply::json(200, "{}").delay(Duration::from_secs(5)));
    b.push(Reply::json(200, "{}").delay(Duration::from_secs(5)));
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "timeout_error");
    assert_eq!(r.error_code(), "upstream_timeout");
}

#[tokio::test]
async fn a_stream_that_idles_before_content_fails_over_silently() {
    let (a, b, p) = two("[timeouts]\nidle = \"200ms\"\n").await;
    // role chunk, then silence
    a.push(stream_reply("m-a", &["never"]).gap_before(1, Duration::from_secs(5)));
    b.push(stream_reply("m-b", &["Hello", " world"]));
    let r = p.chat(user_stream("default")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-understudy-provider"), Some("b"));
    let data = r.sse_data();
    let text: String = data
        .iter()
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(text, "Hello world", "nothing of a reached the client");
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test]
async fn a_stream_that_ends_or_breaks_before_content_fails_over() {
    for bad in [
        Reply::sse(&["[DONE]"]),
        stream_reply("m-a", &[]).end(End::Drop),
        Reply::sse(&["{not json"]),
    ] {
        let (a, b, p) = two("").await;
        let mut bad = bad;
        if matches!(bad.end, End::Drop) {
            bad.events.truncate(1); // role chunk, then the connection drops
        }
        a.push(bad);
        b.push(stream_reply("m-b", &["ok"]));
        let r = p.chat(user_stream("default")).await;
        assert_eq!(r.header("x-understudy-provider"), Some("b"), "{}", r.text());
        assert_eq!(r.header("x-understudy-attempts"), Some("2"));
        assert_eq!(a.count(), 1);
    }
}

#[tokio::test]
async fn a_mid_stream_failure_sends_content_then_a_final_error_event() {
    let (a, b, p) = two("").await;
    let mut r = stream_reply("m-a", &["Hel", "lo"]);
    r.events.truncate(3); // role, "Hel", "lo" — then the connection drops
    a.push(r.end(End::Drop));
    let resp = p.chat(user_stream("default")).await;
    assert_eq!(resp.status, 200);
    let data = resp.sse_data();
    assert!(data[0].contains("\"role\":\"assistant\""), "{data:?}");
    assert!(
        data[1].contains("Hel") && data[2].contains("lo"),
        "{data:?}"
    );
    let last: serde_json::Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "upstream_error", "{data:?}");
    assert!(
        !data.iter().any(|d| d == "[DONE]"),
        "no [DONE] after the error"
    );
    assert_eq!(b.count(), 0, "committed: no silent switch");
}

#[tokio::test]
async fn an_idle_gap_after_content_ends_the_stream_with_a_timeout_event() {
    let (a, _b, p) = two("[timeouts]\nidle = \"200ms\"\n").await;
    a.push(stream_reply("m-a", &["Hi", "there"]).gap_before(3, Duration::from_secs(5)));
    let t = std::time::Instant::now();
    let resp = p.chat(user_stream("default")).await;
    let data = resp.sse_data();
    let last: serde_json::Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_timeout", "{data:?}");
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn stream_events_are_forwarded_as_they_arrive_and_end_with_done() {
    let (a, _b, p) = two("").await;
    a.push(stream_reply("m-a", &["one", "two", "three"]).gap(Duration::from_millis(300)));
    let mut resp = open_stream(&p.url("/v1/chat/completions"), user_stream("default")).await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let t = std::time::Instant::now();
    let first = read_until(resp.body_mut(), "one").await;
    // the first word arrives long before the whole answer (4 gaps of 300 ms)
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    assert!(!first.contains("three"));
    let rest = read_until(resp.body_mut(), "[DONE]").await;
    assert!(rest.contains("three"));
    assert!(!rest.contains("\"usage\""), "usage only when asked for");
}

#[tokio::test]
async fn the_usage_chunk_is_sent_only_when_asked_for() {
    let (a, _b, p) = two("").await;
    a.push(stream_reply("m-a", &["x"]));
    let mut body = user_stream("default");
    body["stream_options"] = json!({"include_usage": true});
    let data = p.chat(body).await.sse_data();
    let usage: serde_json::Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["total_tokens"], 7);
    assert_eq!(data.last().unwrap(), "[DONE]");
    // all chunks carry the upstream's id and model
    for d in &data[..data.len() - 1] {
        let c: serde_json::Value = serde_json::from_str(d).unwrap();
        assert_eq!(
            (c["id"].as_str(), c["model"].as_str()),
            (Some("chatcmpl-mock1"), Some("m-a"))
        );
    }
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_cancels_the_upstream() {
    let (a, _b, p) = two("").await;
    let words: Vec<String> = (0..50).map(|i| format!("w{i} ")).collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    a.push(
        stream_reply("m-a", &refs)
            .gap(Duration::from_millis(100))
            .end(End::Hang),
    );
    let mut resp = open_stream(&p.url("/v1/chat/completions"), user_stream("default")).await;
    read_until(resp.body_mut(), "w1 ").await;
    assert_eq!(a.cancelled.load(std::sync::atomic::Ordering::SeqCst), 0);
    drop(resp);
    let cancelled = eventually(Duration::from_secs(3), || {
        a.cancelled.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    assert!(cancelled, "the upstream stream was not cancelled");
    let inflight = eventually(Duration::from_secs(3), || true).await;
    assert!(inflight);
    let metrics = get(&p.url("/metrics")).await.text();
    assert!(
        metrics.contains("understudy_inflight_requests 0"),
        "{metrics}"
    );
}

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
        metrics.contains("understudy_requests_total{route=\"default\",status=\"200\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("understudy_failovers_total{route=\"default\"} 1"),
        "{metrics}"
    );
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

#[tokio::test]
async fn a_trial_whose_client_disconnects_is_given_back() {
    let (a, b, p) = two("[circuit_breaker]\nfailures = 1\nopen_for = \"200ms\"\n").await;
    a.push(Reply::json(500, "{}"));
    b.always(Reply::json(200, completion("m-b", "b")));
    p.chat(user("default")).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    // the half-open trial hangs, and its client gives up
    a.push(Reply::json(200, completion("m-a", "too slow")).delay(Duration::from_secs(5)));
    let gave_up = tokio::time::timeout(Duration::from_millis(300), p.chat(user("default"))).await;
    assert!(gave_up.is_err());
    a.push(Reply::json(200, completion("m-a", "a is back")));
    let back = eventually(Duration::from_secs(3), || a.count() >= 2).await;
    assert!(back);
    let mut provider = String::new();
    for _ in 0..20 {
        let r = p.chat(user("default")).await;
        provider = r.header("x-understudy-provider").unwrap_or("").to_string();
        if provider == "a" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(provider, "a", "the trial was given back, so a gets another");
    assert_eq!(
        get(&p.url("/status")).await.json()["providers"][0]["circuit"],
        "closed"
    );
}

#[tokio::test]
async fn an_error_body_that_stalls_fails_over_after_idle_not_total() {
    let (a, b, p) = two("[timeouts]\nidle = \"200ms\"\n").await;
    let mut stalled = Reply::json(503, r#"{"error":{"message":"busy"}}"#);
    stalled.events[0].0 = Duration::from_secs(10); // head now, body never in time
    a.push(stalled);
    b.push(Reply::json(200, completion("m-b", "b")));
    let t = std::time::Instant::now();
    let r = p.chat(user("default")).await;
    assert_eq!(r.header("x-understudy-provider"), Some("b"));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
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
async fn a_rate_limit_event_after_content_does_not_trip_the_circuit() {
    let a = Mock::start().await;
    let toml = format!(
        "[circuit_breaker]\nfailures = 1\n[providers.a]\nkind = \"anthropic\"\nbase_url = \"{}\"\napi_key_env = \"TEST_KEY\"\n[[routes]]\nmodel = \"default\"\ntargets = [\"a/claude\"]\n",
        a.url()
    );
    let p = Proxy::start(&toml, &[KEY]).await;
    let start = r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}}"#;
    let block =
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#;
    let delta =
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#;
    let err = r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#;
    let sse = format!("event: message_start\ndata: {start}\n\nevent: content_block_start\ndata: {block}\n\nevent: content_block_delta\ndata: {delta}\n\n");
    a.push(
        Reply::raw(
            200,
            "text/event-stream",
            &[&sse, &format!("event: error\ndata: {err}\n\n")],
        )
        .gap(Duration::from_millis(100)),
    );
    let data = p.chat(user_stream("default")).await.sse_data();
    assert!(data.last().unwrap().contains("slow down"), "{data:?}");
    let status = get(&p.url("/status")).await.json();
    assert_eq!(
        status["providers"][0]["circuit"], "closed",
        "a 429 never counts"
    );
    // a server error after content does count
    a.push(
        Reply::raw(
            200,
            "text/event-stream",
            &[
                &sse,
                &format!(
                    "event: error\ndata: {}\n\n",
                    err.replace("rate_limit_error", "api_error")
                ),
            ],
        )
        .gap(Duration::from_millis(100)),
    );
    p.chat(user_stream("default")).await;
    let status = get(&p.url("/status")).await.json();
    assert_eq!(status["providers"][0]["circuit"], "open");
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
        metrics.contains("understudy_requests_total{route=\"b/*\",status=\"200\"} 3"),
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
async fn rate_limited_attempts_plus_targets_cooling_from_a_503_answer_429() {
    let (a, b, p) = two("").await;
    a.push(Reply::json(503, "{}").header("retry-after", "20"));
    b.push(Reply::json(200, completion("m-b", "b")));
    p.chat(user("default")).await; // a now cools from a 503
    b.push(Reply::json(429, "{}").header("retry-after", "5"));
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("5"));
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

#[tokio::test]
async fn a_client_that_stalls_mid_body_gets_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (a, _b, p) = two("body_timeout = \"300ms\"\n").await;
    let mut conn = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let head = "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"model\":";
    conn.write_all(head.as_bytes()).await.unwrap();
    let t = std::time::Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
        .await
        .expect("answered within 5 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(a.count(), 0);
}

#[tokio::test]
async fn health_probes_open_a_sick_providers_circuit_and_close_it_when_it_recovers() {
    let (a, b, p) =
        two("[health]\ninterval = \"100ms\"\n[circuit_breaker]\nfailures = 2\nopen_for = \"1h\"\n")
            .await;
    a.always(Reply::json(503, "{}"));
    b.always(Reply::json(200, r#"{"object":"list","data":[]}"#));
    tokio::spawn(understudy::failover::probe::run(p.app.clone()));
    let app = p.app.clone();
    let key = app.config.load().provider("a").unwrap().health_key();
    assert!(
        eventually(Duration::from_secs(5), || app.health.circuit(&key).0
            == "open")
        .await
    );
    let probe = &a.received()[0];
    assert_eq!(
        (probe.method.as_str(), probe.path.as_str()),
        ("GET", "/v1/models")
    );
    assert_eq!(probe.headers["authorization"], "Bearer sk-upstream-secret");
    assert_eq!(
        get(&p.url("/status")).await.json()["providers"][0]["circuit"],
        "open"
    );
    // requests skip the open provider; a good probe closes it (open_for is an hour)
    b.always(Reply::json(200, completion("m-b", "b")));
    assert_eq!(
        p.chat(user("default"))
            .await
            .header("x-understudy-attempts"),
        Some("1")
    );
    a.always(Reply::json(200, r#"{"object":"list","data":[]}"#));
    assert!(
        eventually(Duration::from_secs(5), || app.health.circuit(&key).0
            == "closed")
        .await
    );
}

#[tokio::test]
async fn a_tls_handshake_that_hangs_is_a_connect_timeout() {
    // accepts TCP, reads the ClientHello, never answers it
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let b = Mock::start().await;
    let toml = config(
        &[("a", format!("https://127.0.0.1:{port}")), ("b", b.url())],
        "",
    )
    .replace(
        "[server]\n",
        "[timeouts]\nconnect = \"200ms\"\nfirst_byte = \"20s\"\n[server]\n",
    );
    let p = Proxy::start(&toml, &[KEY]).await;
    b.push(Reply::json(200, completion("m-b", "b")));
    let t = std::time::Instant::now();
    let r = p.chat(user("default")).await;
    assert_eq!(r.header("x-understudy-provider"), Some("b"), "{}", r.text());
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let metrics = get(&p.url("/metrics")).await.text();
    assert!(
        metrics.contains("understudy_attempts_total{provider=\"a\",outcome=\"timeout\"} 1"),
        "{metrics}"
    );
}

const HEDGE: &str = "[failover]\nhedge_after = \"100ms\"\n";

#[tokio::test]
async fn a_hedge_starts_when_the_lead_has_no_head_and_the_first_answer_wins() {
    let (a, b, p) = two(HEDGE).await;
    a.push(Reply::json(200, completion("m-a", "slow a")).delay(Duration::from_secs(2)));
    b.push(Reply::json(200, completion("m-b", "quick b")));
    let t = std::time::Instant::now();
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-understudy-provider"), Some("b"));
    assert_eq!(
        r.header("x-understudy-attempts"),
        Some("2"),
        "hedged attempts count"
    );
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!((a.count(), b.count()), (1, 1));
}

#[tokio::test]
async fn the_lead_still_wins_if_it_answers_before_the_hedge() {
    let (a, b, p) = two(HEDGE).await;
    a.push(Reply::json(200, completion("m-a", "a")).delay(Duration::from_millis(300)));
    b.push(Reply::json(200, completion("m-b", "b")).delay(Duration::from_secs(3)));
    let t = std::time::Instant::now();
    let r = p.chat(user("default")).await;
    assert_eq!(r.header("x-understudy-provider"), Some("a"));
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "the slower hedge was not waited for"
    );
}

#[tokio::test]
async fn no_hedge_once_the_lead_has_sent_its_head() {
    let (a, b, p) = two(HEDGE).await;
    let mut slow_body = Reply::json(200, completion("m-a", "a"));
    slow_body.events[0].0 = Duration::from_millis(500); // head now, body later
    a.push(slow_body);
    let r = p.chat(user("default")).await;
    assert_eq!(r.header("x-understudy-provider"), Some("a"));
    assert_eq!(r.header("x-understudy-attempts"), Some("1"));
    assert_eq!(b.count(), 0);
}

#[tokio::test]
async fn streams_are_hedged_too_and_failures_of_both_are_listed() {
    let (a, b, p) = two(HEDGE).await;
    a.push(stream_reply("m-a", &["slow"]).delay(Duration::from_secs(2)));
    b.push(stream_reply("m-b", &["quick"]));
    let r = p.chat(user_stream("default")).await;
    assert_eq!(r.header("x-understudy-provider"), Some("b"));
    assert!(r.text().contains("quick") && r.text().ends_with("data: [DONE]\n\n"));

    a.push(Reply::json(500, "{}").delay(Duration::from_millis(300)));
    b.push(Reply::json(503, "{}"));
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("a/m-a: 500") && msg.contains("b/m-b: 503"),
        "{msg}"
    );
}
