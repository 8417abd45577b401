//! The circuit breaker through real HTTP: opening after consecutive failures, the
//! half-open trial, what does not count as a failure, and active health probes.
//!
//! `open_for` is an hour, passed by moving the runtime's clock ([`skip`]) rather than
//! sleeping, and a slow trial is held by a [`Gate`]: no verdict depends on how fast
//! the machine is.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::time::Duration;

use common::*;

use common::UPSTREAM_KEY as KEY;

/// Just past the `open_for` of an hour the tests configure.
const PAST_OPEN_FOR: Duration = Duration::from_secs(3601);

#[tokio::test]
async fn the_circuit_opens_after_n_failures_and_half_opens_after_open_for() {
    let (a, b, p) = two("[circuit_breaker]\nfailures = 2\nopen_for = \"1h\"\n").await;
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
    skip(PAST_OPEN_FOR).await;
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
    skip(PAST_OPEN_FOR).await;
    let answer = Gate::new();
    a.push(Reply::json(200, completion("m-a", "a is back")).hold(&answer));
    let trial = tokio::spawn({
        let url = p.url("/v1/chat/completions");
        async move { send(&url, "POST", &[], user("default").to_string()).await }
    });
    // the trial is in flight once a holds it
    assert!(eventually(Duration::from_secs(20), || a.count() == 4).await);
    let during = p.chat(user("default")).await;
    assert_eq!(during.header("x-understudy-provider"), Some("b"));
    assert_eq!(
        during.header("x-understudy-attempts"),
        Some("1"),
        "only one trial in flight"
    );
    answer.open();
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
async fn a_trial_whose_client_disconnects_is_given_back() {
    let (a, b, p) = two("[circuit_breaker]\nfailures = 1\nopen_for = \"1h\"\n").await;
    a.push(Reply::json(500, "{}"));
    b.always(Reply::json(200, completion("m-b", "b")));
    p.chat(user("default")).await;
    skip(PAST_OPEN_FOR).await;
    // the half-open trial hangs, and its client gives up once a holds it
    a.push(Reply::json(200, completion("m-a", "too slow")).hold(&Gate::new()));
    let client = tokio::spawn({
        let url = p.url("/v1/chat/completions");
        async move { send(&url, "POST", &[], user("default").to_string()).await }
    });
    let back = eventually(Duration::from_secs(20), || a.count() >= 2).await;
    assert!(back);
    client.abort();
    let gave_up = client.await;
    assert!(gave_up.is_err());
    a.push(Reply::json(200, completion("m-a", "a is back")));
    // b answers until the proxy has seen the client go and given the trial back
    // (bounded: 500 tries, 20 s)
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut provider = String::new();
    for _ in 0..500 {
        let r = p.chat(user("default")).await;
        provider = r.header("x-understudy-provider").unwrap_or("").to_string();
        if provider == "a" || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(provider, "a", "the trial was given back, so a gets another");
    assert_eq!(
        get(&p.url("/status")).await.json()["providers"][0]["circuit"],
        "closed"
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
        eventually(Duration::from_secs(20), || app.health.circuit(&key).0
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
        eventually(Duration::from_secs(20), || app.health.circuit(&key).0
            == "closed")
        .await
    );
}

#[tokio::test]
async fn each_failed_trial_doubles_open_for_up_to_the_cap_and_status_shows_it() {
    let (a, b, p) =
        two("[circuit_breaker]\nfailures = 1\nopen_for = \"1h\"\nmax_open_for = \"3h\"\n").await;
    a.always(Reply::json(500, "{}"));
    b.always(Reply::json(200, completion("m-b", "b")));
    let hour = Duration::from_secs(3600);
    let circuit = || async {
        let s = get(&p.url("/status")).await.json();
        let a = &s["providers"][0];
        assert_eq!(a["name"], "a");
        (
            a["circuit"].as_str().unwrap().to_string(),
            a["open_for_secs"].as_f64().unwrap(),
        )
    };
    let attempts = || async {
        let r = p.chat(user("default")).await;
        assert_eq!(r.header("x-understudy-provider"), Some("b"));
        r.header("x-understudy-attempts").unwrap().to_string()
    };
    assert_eq!(circuit().await, ("closed".into(), 3600.0));
    assert_eq!(attempts().await, "2");
    assert_eq!(circuit().await, ("open".into(), 3600.0));
    // each failed trial re-opens for twice as long: 2 h, then 3 h (capped), 3 h
    for (period, want) in [(hour, 7200.0), (hour * 2, 10800.0), (hour * 3, 10800.0)] {
        skip(period - Duration::from_secs(2)).await;
        assert_eq!(attempts().await, "1", "still open before {period:?}");
        skip(Duration::from_secs(3)).await;
        assert_eq!(attempts().await, "2", "the trial after {period:?}");
        assert_eq!(circuit().await, ("open".into(), want));
    }
    assert_eq!(a.count(), 4, "the failure that opened it and three trials");
    // a success resets it: the next open is an hour again, and doubles from there
    a.push(Reply::json(200, completion("m-a", "a is back")));
    skip(hour * 3 + Duration::from_secs(1)).await;
    let r = p.chat(user("default")).await;
    assert_eq!(r.header("x-understudy-provider"), Some("a"));
    assert_eq!(circuit().await, ("closed".into(), 3600.0));
    assert_eq!(attempts().await, "2");
    assert_eq!(circuit().await, ("open".into(), 3600.0));
    skip(hour + Duration::from_secs(1)).await;
    assert_eq!(attempts().await, "2");
    assert_eq!(circuit().await, ("open".into(), 7200.0));
}
