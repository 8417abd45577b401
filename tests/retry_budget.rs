//! The retry budget through real HTTP: when every provider fails under a steady
//! load, failovers add at most the budget's share of upstream requests; low traffic
//! still fails over (the floor); past the budget the client gets the failure so far,
//! counted in `/metrics`.
//!
//! Load is a fixed number of requests with the runtime's clock moved between them
//! ([`skip`]), and every bound is counted at the mocks: no verdict depends on how fast
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

/// `understudy_budget_exhausted_total` for the `default` route, 0 when absent.
async fn exhausted(p: &Proxy) -> u64 {
    let metrics = get(&p.url("/metrics")).await.text();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("understudy_budget_exhausted_total{route=\"default\"} "))
        .map_or(0, |v| v.trim().parse().unwrap())
}

async fn three(extra: &str) -> ([Mock; 3], Proxy) {
    let mocks = [
        Mock::start().await,
        Mock::start().await,
        Mock::start().await,
    ];
    let toml = openai_config(
        &[
            ("a", mocks[0].url()),
            ("b", mocks[1].url()),
            ("c", mocks[2].url()),
        ],
        extra,
    );
    let p = Proxy::start(&toml, &[UPSTREAM_KEY]).await;
    (mocks, p)
}

#[tokio::test]
async fn every_provider_failing_under_a_steady_load_sends_at_most_the_budget() {
    // The breaker never trips here, so only the budget holds the load back.
    let (mocks, p) = three(
        "[circuit_breaker]\nfailures = 1000000\n[failover]\nbudget_ratio = 0.1\nbudget_min_per_s = 0\n",
    )
    .await;
    for m in &mocks {
        m.always(Reply::json(500, r#"{"error":{"message":"down"}}"#));
    }
    // 10 requests a second for 30 seconds of the proxy's clock
    const N: u64 = 300;
    let (mut attempts, mut short) = (0u64, 0u64);
    for _ in 0..N {
        let r = p.chat(user("default")).await;
        assert_eq!(r.status, 502, "{}", r.text());
        let n: u64 = r.header("x-understudy-attempts").unwrap().parse().unwrap();
        assert!((1..=3).contains(&n), "{n}");
        attempts += n;
        short += u64::from(n < 3);
        skip(Duration::from_millis(100)).await;
    }
    let upstream: u64 = mocks.iter().map(|m| m.count() as u64).sum();
    assert_eq!(
        upstream, attempts,
        "the header counts what the mocks received"
    );
    let extra = upstream - N;
    // Without a budget every request would try all three: 2 N extra. With it, each
    // ten-second block's extras are under 10% of its requests and the block's
    // before (a sliding window), plus one for rounding: at most 0.2 N and one per
    // block however slowly the test ran.
    assert!(
        extra <= N / 5 + 10,
        "{extra} extra upstream requests for {N} client requests"
    );
    assert!(extra >= 1, "the budget still allowed some failover");
    assert_eq!(
        exhausted(&p).await,
        short,
        "each request cut short by the budget is counted once"
    );
}

#[tokio::test]
async fn low_traffic_below_the_floor_still_fails_over() {
    // The defaults: ratio 0.2, a floor of 10 a second (100 in the window). 30
    // failovers are 100% of the traffic, far over the ratio, and all allowed.
    // Past `failures` a's circuit would open and the walk skip it: keep it closed.
    let (a, b, p) = two("[circuit_breaker]\nfailures = 1000\n").await;
    a.always(Reply::json(500, r#"{"error":{"message":"down"}}"#));
    b.always(Reply::json(200, completion("m-b", "b")));
    for i in 0..30 {
        let r = p.chat(user("default")).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.header("x-understudy-attempts"), Some("2"), "request {i}");
    }
    assert_eq!((a.count(), b.count()), (30, 30));
    assert_eq!(exhausted(&p).await, 0);
}

#[tokio::test]
async fn past_the_budget_the_client_gets_the_failure_it_would_get() {
    let (a, b, p) = two("[failover]\nbudget_ratio = 0\nbudget_min_per_s = 0\n").await;
    a.always(Reply::json(503, r#"{"error":{"message":"a is down"}}"#));
    b.always(Reply::json(200, completion("m-b", "b")));
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.header("x-understudy-attempts"), Some("1"));
    assert_eq!(r.error_code(), "upstream_failed");
    assert!(r.text().contains("a is down"), "{}", r.text());
    assert_eq!((a.count(), b.count()), (1, 0), "no attempt past the budget");
    let metrics = get(&p.url("/metrics")).await.text();
    assert!(
        metrics.contains("# TYPE understudy_budget_exhausted counter"),
        "{metrics}"
    );
    assert_eq!(exhausted(&p).await, 1);
    // a first attempt never needs budget: a healthy lead still answers
    a.always(Reply::json(200, completion("m-a", "a")));
    let r = p.chat(user("default")).await;
    assert_eq!(r.header("x-understudy-provider"), Some("a"));
}

#[tokio::test]
async fn past_the_budget_no_hedge_is_started() {
    let (a, b, p) =
        two("[failover]\nhedge_after = \"100ms\"\nbudget_ratio = 0\nbudget_min_per_s = 0\n").await;
    let a_answers = Gate::new();
    a.push(Reply::json(200, completion("m-a", "a")).hold(&a_answers));
    b.always(Reply::json(200, completion("m-b", "b")));
    let request = tokio::spawn({
        let url = p.url("/v1/chat/completions");
        async move { send(&url, "POST", &[], user("default").to_string()).await }
    });
    // the hedge's turn comes (a has no head after hedge_after) and the budget refuses it
    assert!(
        eventually_async(Duration::from_secs(20), || async {
            exhausted(&p).await == 1
        })
        .await
    );
    a_answers.open();
    let r = request.await.unwrap();
    assert_eq!(r.header("x-understudy-provider"), Some("a"));
    assert_eq!(r.header("x-understudy-attempts"), Some("1"));
    assert_eq!(b.count(), 0, "the hedge was never sent");
}
