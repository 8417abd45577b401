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
