//! Tokens and cost end to end: each provider kind's mock answers with the usage its
//! real API reports (cache reads and reasoning included), whole and streamed; each
//! front door (chat, Responses, Messages, embeddings) asks; `/metrics` must count
//! exactly those tokens and their price, and non-stream answers carry
//! `x-understudy-cost-usd`. Strategy `cheapest` is checked here too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use common::*;
use serde_json::{json, Value};

/// Every mock reports 100 input tokens of which 60 were read from the prompt cache,
/// and 40 output tokens of which 10 were reasoning (Ollama reports neither detail).
const FULL: [u64; 4] = [100, 40, 60, 10];
const PRICE: &str = "{ input = 2.0, output = 8.0, cached_input = 0.5 }";

/// `[input, output, cached, reasoning]` at [`PRICE`], in USD.
fn cost_of(t: [u64; 4]) -> f64 {
    ((t[0] - t[2]) as f64 * 2.0 + t[2] as f64 * 0.5 + t[1] as f64 * 8.0) / 1e6
}

const TYPES: [&str; 4] = ["input", "output", "cached", "reasoning"];

/// One sample of `/metrics`, 0 when absent.
fn sample(metrics: &str, series: &str) -> f64 {
    let prefix = format!("{series} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0.0, |v| v.parse().unwrap())
}

/// `[input, output, cached, reasoning, cost]` of `provider`/`model` so far.
async fn spent(p: &Proxy, provider: &str, model: &str) -> [f64; 5] {
    let m = get(&p.url("/metrics")).await.text();
    let mut out = [0.0; 5];
    for (i, t) in TYPES.iter().enumerate() {
        out[i] = sample(
            &m,
            &format!(
                r#"understudy_tokens_total{{provider="{provider}",model="{model}",type="{t}"}}"#
            ),
        );
    }
    out[4] = sample(
        &m,
        &format!(r#"understudy_cost_usd_total{{provider="{provider}",model="{model}"}}"#),
    );
    out
}

#[derive(Clone, Copy, Debug)]
enum Door {
    Chat,
    Responses,
    Messages,
}

const DOORS: [Door; 3] = [Door::Chat, Door::Responses, Door::Messages];

async fn ask(p: &Proxy, door: Door, stream: bool) -> Resp {
    let (path, body) = match door {
        Door::Chat => (
            "/v1/chat/completions",
            json!({"model": "default", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}),
        ),
        Door::Responses => (
            "/v1/responses",
            json!({"model": "default", "stream": stream, "input": "hi"}),
        ),
        Door::Messages => (
            "/v1/messages",
            json!({"model": "default", "stream": stream, "max_tokens": 256,
                "messages": [{"role": "user", "content": "hi"}]}),
        ),
    };
    send(&p.url(path), "POST", &[], body.to_string()).await
}

/// A proxy with one provider `up` of `kind` (its keys `keys`) priced at [`PRICE`]
/// for `m-up`, the `default` route's only target.
async fn one(kind: &str, base: &str, keys: &str) -> Proxy {
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[providers.up]
kind = "{kind}"
base_url = "{base}"
api_key_env = "TEST_KEY"
{keys}
prices."m-up" = {PRICE}
[[routes]]
model = "default"
targets = ["up/m-up"]
"#
    );
    Proxy::start(&toml, &[UPSTREAM_KEY]).await
}

/// Every front door, whole and streamed, against `mock` answering with `whole()` or
/// `stream()`: the metrics grow by `expect` and its cost, and whole answers say the
/// cost in their header.
async fn every_door(
    p: &Proxy,
    mock: &Mock,
    whole: impl Fn() -> Reply,
    stream: impl Fn() -> Reply,
    expect: [u64; 4],
) {
    let cost = cost_of(expect);
    for door in DOORS {
        for streamed in [false, true] {
            mock.push(if streamed { stream() } else { whole() });
            let before = spent(p, "up", "m-up").await;
            let r = ask(p, door, streamed).await;
            let case = format!("{door:?} stream={streamed}");
            assert_eq!(r.status, 200, "{case}: {}", r.text());
            let after = spent(p, "up", "m-up").await;
            for (i, t) in TYPES.iter().enumerate() {
                assert_eq!(after[i] - before[i], expect[i] as f64, "{case}: {t} tokens");
            }
            assert!(
                (after[4] - before[4] - cost).abs() < 1e-12,
                "{case}: cost {} != {cost}",
                after[4] - before[4]
            );
            let header = r.header("x-understudy-cost-usd");
            if streamed {
                assert_eq!(header, None, "{case}: a stream has no trailer");
            } else {
                let shown: f64 = header.expect("cost header").parse().unwrap();
                assert!((shown - cost).abs() < 1e-9, "{case}: header {shown}");
            }
        }
    }
}

fn openai_usage() -> Value {
    json!({"prompt_tokens": 100, "completion_tokens": 40, "total_tokens": 140,
        "prompt_tokens_details": {"cached_tokens": 60, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 10, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}})
}

fn openai_whole() -> Reply {
    let mut body: Value = serde_json::from_str(&completion("m-up", "Hello there")).unwrap();
    body["usage"] = openai_usage();
    Reply::json(200, body.to_string())
}

fn openai_stream() -> Reply {
    let usage = json!({"id": "chatcmpl-mock1", "object": "chat.completion.chunk",
        "created": 1_700_000_000u64, "model": "m-up", "choices": [], "usage": openai_usage()});
    let datas = [
        chunk("m-up", json!({"role": "assistant", "content": ""}), None),
        chunk("m-up", json!({"content": "Hello"}), None),
        chunk("m-up", json!({}), Some("stop")),
        usage.to_string(),
        "[DONE]".into(),
    ];
    let refs: Vec<&str> = datas.iter().map(String::as_str).collect();
    Reply::sse(&refs)
}

#[tokio::test]
async fn openai_kind_tokens_and_cost_through_every_front_door() {
    let mock = Mock::start().await;
    let p = one("openai", &format!("{}/v1", mock.url()), "").await;
    every_door(&p, &mock, openai_whole, openai_stream, FULL).await;
}

#[tokio::test]
async fn azure_tokens_and_cost_through_every_front_door() {
    let mock = Mock::start().await;
    let p = one("azure", &mock.url(), "").await;
    every_door(&p, &mock, openai_whole, openai_stream, FULL).await;
    assert!(mock.received()[0]
        .path
        .starts_with("/openai/deployments/m-up/chat/completions"));
}

#[tokio::test]
async fn openai_native_responses_tokens_and_cost() {
    let mock = Mock::start().await;
    let p = one(
        "openai",
        &format!("{}/v1", mock.url()),
        r#"responses = "native""#,
    )
    .await;
    let usage = json!({"input_tokens": 100, "input_tokens_details": {"cached_tokens": 60},
        "output_tokens": 40, "output_tokens_details": {"reasoning_tokens": 10}, "total_tokens": 140});
    let whole = || {
        let mut body: Value =
            serde_json::from_str(include_str!("../fixtures/openai/responses_reasoning.json"))
                .unwrap();
        body["usage"] = usage.clone();
        Reply::json(200, body.to_string())
    };
    let stream = || {
        let text = include_str!("../fixtures/openai/responses_stream.sse");
        let old = r#""usage":{"input_tokens":9,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},"output_tokens":3,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":12}"#;
        assert!(text.contains(old));
        let text = text.replace(old, &format!(r#""usage":{usage}"#));
        Reply::split(200, "text/event-stream", &text)
    };
    let cost = cost_of(FULL);
    for streamed in [false, true] {
        mock.push(if streamed { stream() } else { whole() });
        let r = ask(&p, Door::Responses, streamed).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(mock.received().last().unwrap().path.ends_with("/responses"));
    }
    let after = spent(&p, "up", "m-up").await;
    assert_eq!(after[..4], [200.0, 80.0, 120.0, 20.0]);
    assert!((after[4] - 2.0 * cost).abs() < 1e-12, "{after:?}");
}

#[tokio::test]
async fn anthropic_tokens_and_cost_through_every_front_door() {
    let mock = Mock::start().await;
    let p = one("anthropic", &mock.url(), "").await;
    let whole = || {
        let mut body: Value =
            serde_json::from_str(include_str!("../fixtures/anthropic/response_text.json")).unwrap();
        body["usage"] = json!({"input_tokens": 10, "cache_creation_input_tokens": 30,
            "cache_read_input_tokens": 60, "output_tokens": 40,
            "output_tokens_details": {"thinking_tokens": 10}, "service_tier": "standard"});
        Reply::json(200, body.to_string())
    };
    let stream = || {
        let text = include_str!("../fixtures/anthropic/stream_text.sse");
        let start =
            r#""input_tokens":21,"cache_creation_input_tokens":0,"cache_read_input_tokens":0"#;
        let delta = r#""usage":{"output_tokens":15}"#;
        assert!(text.contains(start) && text.contains(delta));
        let text = text
            .replace(
                start,
                r#""input_tokens":10,"cache_creation_input_tokens":30,"cache_read_input_tokens":60"#,
            )
            .replace(
                delta,
                r#""usage":{"output_tokens":40,"output_tokens_details":{"thinking_tokens":10}}"#,
            );
        Reply::split(200, "text/event-stream", &text)
    };
    every_door(&p, &mock, whole, stream, FULL).await;
}

const GEMINI_USAGE: &str = r#"{"promptTokenCount": 100, "cachedContentTokenCount": 60, "candidatesTokenCount": 30, "thoughtsTokenCount": 10, "totalTokenCount": 140}"#;

#[tokio::test]
async fn gemini_tokens_and_cost_through_every_front_door() {
    let mock = Mock::start().await;
    let p = one("gemini", &mock.url(), "").await;
    let whole = || {
        let mut body: Value =
            serde_json::from_str(include_str!("../fixtures/gemini/response_text.json")).unwrap();
        body["usageMetadata"] = serde_json::from_str(GEMINI_USAGE).unwrap();
        Reply::json(200, body.to_string())
    };
    let stream = || {
        let text = include_str!("../fixtures/gemini/stream_text.sse");
        let last = r#""usageMetadata": {"promptTokenCount": 8,"candidatesTokenCount": 17,"totalTokenCount": 25,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 8}],"candidatesTokensDetails": [{"modality": "TEXT","tokenCount": 17}]}"#;
        assert!(text.contains(last));
        let text = text.replace(last, &format!(r#""usageMetadata": {GEMINI_USAGE}"#));
        Reply::split(200, "text/event-stream", &text)
    };
    every_door(&p, &mock, whole, stream, FULL).await;
}

#[tokio::test]
async fn ollama_tokens_and_cost_through_every_front_door() {
    let mock = Mock::start().await;
    let p = one("ollama", &mock.url(), "").await;
    let counts = |text: &str, p: &str, e: &str| {
        let (p, e) = (
            format!(r#""prompt_eval_count":{p}"#),
            format!(r#""eval_count":{e}"#),
        );
        assert!(text.contains(&p) && text.contains(&e), "{text}");
        text.replace(&p, r#""prompt_eval_count":100"#)
            .replace(&e, r#""eval_count":40"#)
    };
    let whole = || {
        let body: Value =
            serde_json::from_str(include_str!("../fixtures/ollama/response_text.json")).unwrap();
        let (pc, ec) = (&body["prompt_eval_count"], &body["eval_count"]);
        let text = counts(&body.to_string(), &pc.to_string(), &ec.to_string());
        Reply::json(200, text)
    };
    let stream = || {
        let text = counts(
            include_str!("../fixtures/ollama/stream_text.ndjson"),
            "26",
            "3",
        );
        Reply::split(200, "application/x-ndjson", &text)
    };
    // Ollama reports neither cache reads nor reasoning tokens.
    every_door(&p, &mock, whole, stream, [100, 40, 0, 0]).await;
}

#[tokio::test]
async fn embeddings_count_input_tokens_and_their_cost() {
    let mock = Mock::start().await;
    let p = one("openai", &format!("{}/v1", mock.url()), "").await;
    let mut body: Value =
        serde_json::from_str(include_str!("../fixtures/openai/embeddings_float.json")).unwrap();
    body["usage"] = json!({"prompt_tokens": 100, "total_tokens": 100});
    let n = body["data"].as_array().unwrap().len();
    mock.push(Reply::json(200, body.to_string()));
    let input: Vec<&str> = vec!["a text"; n];
    let r = send(
        &p.url("/v1/embeddings"),
        "POST",
        &[],
        json!({"model": "default", "input": input}).to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let cost = cost_of([100, 0, 0, 0]);
    assert_eq!(spent(&p, "up", "m-up").await, [100.0, 0.0, 0.0, 0.0, cost]);
    assert_eq!(r.header("x-understudy-cost-usd"), Some("0.0002"));
}

/// A chat client that did not ask for usage gets none, though the proxy asked the
/// upstream for it and counted it; one that asked gets exactly the upstream's.
#[tokio::test]
async fn stream_usage_is_counted_but_reaches_only_clients_that_asked() {
    let mock = Mock::start().await;
    let p = one("openai", &format!("{}/v1", mock.url()), "").await;
    for asked in [false, true] {
        mock.push(openai_stream());
        let mut body = user_stream("default");
        if asked {
            body["stream_options"] = json!({"include_usage": true});
        }
        let r = send(
            &p.url("/v1/chat/completions"),
            "POST",
            &[],
            body.to_string(),
        )
        .await;
        assert_eq!(r.status, 200);
        let sent = mock.received().last().unwrap().json();
        assert_eq!(sent["stream_options"], json!({"include_usage": true}));
        let usages: Vec<Value> = r
            .sse_data()
            .iter()
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str::<Value>(d).unwrap())
            .filter(|c| c.get("usage").is_some_and(|u| !u.is_null()))
            .map(|c| c["usage"].clone())
            .collect();
        if asked {
            assert_eq!(usages, [openai_usage()]);
        } else {
            assert_eq!(usages, Vec::<Value>::new(), "usage leaked: {}", r.text());
        }
    }
    let n = 2.0;
    let after = spent(&p, "up", "m-up").await;
    assert_eq!(after[..4], [100.0 * n, 40.0 * n, 60.0 * n, 10.0 * n]);
}

/// A stream has no trailer: its cost is in the log line booked at its end (the
/// tests run on one thread, proxy included, so the capture sees the proxy's lines).
#[tokio::test]
async fn a_streams_cost_is_logged_when_it_ends() {
    let (logs, _logging) = Logs::capture();
    let mock = Mock::start().await;
    let p = one("openai", &format!("{}/v1", mock.url()), "").await;
    mock.push(openai_stream());
    let r = send(
        &p.url("/v1/chat/completions"),
        "POST",
        &[],
        user_stream("default").to_string(),
    )
    .await;
    assert!(r.text().ends_with("data: [DONE]\n\n"), "{}", r.text());
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("stream usage"))
        .unwrap_or_else(|| panic!("no stream usage line in {text}"));
    for field in [
        "provider=up",
        "model=m-up",
        "input_tokens=100",
        "output_tokens=40",
        "cached_tokens=60",
        "reasoning_tokens=10",
        "cost_usd=\"0.00043\"",
    ] {
        assert!(line.contains(field), "{field} not in {line}");
    }
}

/// An answer from the cache sent nothing upstream: it costs 0 and adds no tokens.
#[tokio::test]
async fn a_cache_hit_costs_nothing() {
    let mock = Mock::start().await;
    let p = one("openai", &format!("{}/v1", mock.url()), "").await;
    let toml = std::fs::read_to_string(&p.config_path).unwrap();
    drop(p);
    let toml = toml.replace("[providers.up]", "[cache]\nenabled = true\n[providers.up]");
    let p = Proxy::start(&toml, &[UPSTREAM_KEY]).await;
    mock.push(openai_whole());
    let mut body = user("default");
    body["temperature"] = json!(0);
    let first = p.chat(body.clone()).await;
    assert_eq!(first.header("x-understudy-cache"), Some("miss"));
    assert_eq!(first.header("x-understudy-cost-usd"), Some("0.00043"));
    let before = spent(&p, "up", "m-up").await;
    let hit = p.chat(body).await;
    assert_eq!(hit.header("x-understudy-cache"), Some("hit"));
    assert_eq!(hit.header("x-understudy-cost-usd"), Some("0"));
    assert_eq!(spent(&p, "up", "m-up").await, before);
    assert_eq!(mock.count(), 1);
}

/// A target without a price counts tokens but no cost, and its answers carry no
/// cost header.
#[tokio::test]
async fn an_unpriced_target_counts_tokens_only() {
    let mock = Mock::start().await;
    let p = one("openai", &format!("{}/v1", mock.url()), "").await;
    mock.push(openai_whole());
    let r = p.chat(user("up/other-model")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-understudy-cost-usd"), None);
    // Named directly and unpriced: one label for whatever model the client wrote.
    let s = spent(&p, "up", "*").await;
    assert_eq!(s, [100.0, 40.0, 60.0, 10.0, 0.0]);
    let m = get(&p.url("/metrics")).await.text();
    assert!(!m.contains("other-model"), "{m}");
}

/// `cheapest` tries the cheapest target first whatever the route's order, and fails
/// over from it down the price list.
#[tokio::test]
async fn cheapest_orders_by_price_and_fails_over_in_that_order() {
    let dear = Mock::start().await;
    let cheap = Mock::start().await;
    let mid = Mock::start().await;
    let unpriced = Mock::start().await;
    let mut toml = openai_config(
        &[
            ("unpriced", unpriced.url()),
            ("dear", dear.url()),
            ("cheap", cheap.url()),
            ("mid", mid.url()),
        ],
        "",
    );
    toml = toml.replace(
        "model = \"default\"\n",
        "model = \"default\"\nstrategy = \"cheapest\"\n",
    );
    for (name, price) in [
        ("dear", "{ input = 5, output = 15 }"),
        ("cheap", "{ input = 0.15, output = 0.6 }"),
        ("mid", "{ input = 1, output = 1 }"),
    ] {
        toml = with_keys(&toml, name, &format!("prices.\"m-{name}\" = {price}"));
    }
    let p = Proxy::start(&toml, &[UPSTREAM_KEY]).await;

    cheap.push(Reply::json(200, completion("m-cheap", "cheap one")));
    let r = p.chat(user("default")).await;
    assert_eq!(r.header("x-understudy-provider"), Some("cheap"));

    // The cheapest fails: the next by price answers; the unpriced one comes last.
    cheap.always(Reply::json(503, r#"{"error":{"message":"down"}}"#));
    mid.push(Reply::json(503, r#"{"error":{"message":"down"}}"#));
    dear.push(Reply::json(503, r#"{"error":{"message":"down"}}"#));
    unpriced.push(Reply::json(200, completion("m-unpriced", "last resort")));
    let r = p.chat(user("default")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("unpriced"));
    assert_eq!(r.header("x-understudy-attempts"), Some("4"));
    assert_eq!(
        [cheap.count(), mid.count(), dear.count(), unpriced.count()],
        [2, 1, 1, 1]
    );
    let status = get(&p.url("/status")).await.json();
    let route = &status["routes"][0];
    assert_eq!(route["strategy"], "cheapest", "{status}");
}
