//! OpenTelemetry traces through the real proxy to an OTLP/HTTP collector that decodes
//! the protobuf: the span tree (a server span per request, a client span per attempt),
//! GenAI attributes, `traceparent` continued from the client and sent upstream, no
//! content or key in a span unless `capture_content`, and a hung collector never
//! holding a request (its spans dropped and counted), and `sample_ratio` keeping a
//! caller's sampled trace while dropping new ones.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use common::*;
use serde_json::{json, Value};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const PROMPT: &str = "the-secret-prompt-5c1e";
const ANSWER: &str = "Hello! How can I help you today?";

async fn proxy_with(collector: &Collector, telemetry: &str) -> (Mock, Mock, Proxy) {
    let extra = format!(
        "[telemetry]\notlp_endpoint = \"{}\"\nservice_name = \"understudy-test\"\n{telemetry}\n",
        collector.url()
    );
    let a = Mock::start().await;
    let b = Mock::start().await;
    let p = Proxy::start(
        &openai_config(&[("a", a.url()), ("b", b.url())], &extra),
        &[UPSTREAM_KEY],
    )
    .await;
    (a, b, p)
}

fn ask(stream: bool) -> Value {
    let mut body = json!({"model": "default", "messages": [{"role": "user", "content": PROMPT}]});
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

async fn chat_traced(p: &Proxy, body: Value) -> Resp {
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    send(
        &p.url("/v1/chat/completions"),
        "POST",
        &[("traceparent", traceparent.as_str())],
        serde_json::to_vec(&body).unwrap(),
    )
    .await
}

/// The request span and its attempt spans, attempts in order.
fn tree(spans: &[SpanRecord]) -> (SpanRecord, Vec<SpanRecord>) {
    let servers: Vec<_> = spans.iter().filter(|s| s.kind == 2).collect();
    assert_eq!(servers.len(), 1, "one server span: {spans:#?}");
    let request = servers[0].clone();
    let mut attempts: Vec<SpanRecord> = spans.iter().filter(|s| s.kind == 3).cloned().collect();
    attempts.sort_by_key(|s| s.attr("understudy.attempt").as_i64());
    for a in &attempts {
        assert_eq!(
            a.parent_span_id, request.span_id,
            "attempts are children: {a:#?}"
        );
        assert_eq!(a.trace_id, request.trace_id);
    }
    (request, attempts)
}

fn assert_nothing_secret(collector: &Collector) {
    let raw = collector.raw();
    let text = String::from_utf8_lossy(&raw);
    for secret in [PROMPT, ANSWER, UPSTREAM_KEY.1, "Hello"] {
        assert!(!text.contains(secret), "{secret:?} reached a span");
    }
}

#[tokio::test]
async fn a_failed_over_request_is_one_server_span_with_a_client_span_per_attempt() {
    let collector = Collector::start().await;
    let (a, b, p) = proxy_with(&collector, "").await;
    a.push(Reply::json(
        500,
        r#"{"error":{"message":"boom the-secret-prompt-5c1e","type":"server_error"}}"#,
    ));
    b.push(Reply::json(
        200,
        include_str!("../fixtures/openai/response_text.json"),
    ));

    let r = chat_traced(&p, ask(false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));

    let (request, attempts) = tree(&collector.wait_for(3).await);
    // The caller's trace is continued.
    assert_eq!(request.trace_id, TRACE_ID);
    assert_eq!(request.parent_span_id, CALLER_SPAN);
    assert_eq!(request.service_name.as_deref(), Some("understudy-test"));
    assert_eq!(request.name, "chat default");
    assert_eq!(request.attr("gen_ai.operation.name"), "chat");
    assert_eq!(request.attr("gen_ai.request.model"), "default");
    assert_eq!(request.attr("gen_ai.response.model"), "gpt-4o-2024-08-06");
    assert_eq!(request.attr("gen_ai.usage.input_tokens"), 9);
    assert_eq!(request.attr("gen_ai.usage.output_tokens"), 9);
    assert_eq!(
        request.attr("gen_ai.response.finish_reasons"),
        &json!(["stop"])
    );
    assert_eq!(request.attr("understudy.failover"), true);
    assert_eq!(request.attr("understudy.attempts"), 2);
    assert_eq!(request.attr("http.response.status_code"), 200);
    assert_eq!(request.status, 0, "a good answer is not an error");

    assert_eq!(attempts.len(), 2);
    let (first, second) = (&attempts[0], &attempts[1]);
    assert_eq!(first.name, "chat m-a");
    assert_eq!(first.attr("gen_ai.system"), "openai");
    assert_eq!(first.attr("gen_ai.request.model"), "m-a");
    assert_eq!(first.attr("understudy.attempt"), 1);
    assert_eq!(first.attr("understudy.failover"), false);
    assert_eq!(first.attr("understudy.outcome"), "error_status");
    assert_eq!(first.attr("error.type"), "500");
    assert_eq!(first.attr("server.address"), "127.0.0.1");
    assert_eq!(first.status, 2);

    assert_eq!(second.name, "chat m-b");
    assert_eq!(second.attr("understudy.attempt"), 2);
    assert_eq!(second.attr("understudy.failover"), true);
    assert_eq!(second.attr("understudy.outcome"), "ok");
    assert_eq!(second.attr("gen_ai.response.model"), "gpt-4o-2024-08-06");
    assert_eq!(second.attr("gen_ai.usage.input_tokens"), 9);
    assert_eq!(
        second.attr("gen_ai.response.finish_reasons"),
        &json!(["stop"])
    );
    assert_eq!(second.attrs.get("error.type"), None);

    // Each upstream got the trace, with its own attempt span as the parent.
    for (mock, span) in [(&a, first), (&b, second)] {
        let got = &mock.received()[0];
        assert_eq!(
            got.headers["traceparent"],
            format!("00-{TRACE_ID}-{}-01", span.span_id)
        );
    }
    assert_eq!(
        collector.content_types.lock().unwrap()[0],
        "application/x-protobuf"
    );
    assert_nothing_secret(&collector);
}

#[tokio::test]
async fn a_stream_records_usage_and_finish_on_both_spans_when_it_ends() {
    let collector = Collector::start().await;
    let (a, _b, p) = proxy_with(&collector, "").await;
    let events: Vec<&str> = include_str!("../fixtures/openai/stream_text.sse")
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .collect();
    a.push(Reply::sse(&events));

    let r = chat_traced(&p, ask(true)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));

    let (request, attempts) = tree(&collector.wait_for(2).await);
    assert_eq!(attempts.len(), 1);
    for span in [&request, &attempts[0]] {
        assert_eq!(span.attr("gen_ai.usage.input_tokens"), 9, "{span:#?}");
        assert_eq!(span.attr("gen_ai.usage.output_tokens"), 2, "{span:#?}");
        assert_eq!(span.attr("gen_ai.response.model"), "gpt-4o-2024-08-06");
        assert_eq!(
            span.attr("gen_ai.response.finish_reasons"),
            &json!(["stop"])
        );
    }
    assert_eq!(attempts[0].attr("understudy.outcome"), "ok");
    assert_eq!(request.attr("understudy.failover"), false);
    assert_nothing_secret(&collector);
}

#[tokio::test]
async fn content_goes_into_spans_only_when_asked() {
    let collector = Collector::start().await;
    let (a, _b, p) = proxy_with(&collector, "capture_content = true").await;
    a.push(Reply::json(
        200,
        include_str!("../fixtures/openai/response_text.json"),
    ));

    // No traceparent: a new trace, the request span its root.
    let r = p.chat(ask(false)).await;
    assert_eq!(r.status, 200, "{}", r.text());

    let (request, attempts) = tree(&collector.wait_for(2).await);
    assert_eq!(request.parent_span_id, "");
    assert_ne!(request.trace_id, TRACE_ID);
    let input = request.attr("gen_ai.input.messages").as_str().unwrap();
    assert!(input.contains(PROMPT), "{input}");
    assert_eq!(request.attr("gen_ai.output.messages"), ANSWER);
    assert_eq!(attempts[0].attr("gen_ai.output.messages"), ANSWER);
    // Keys are never content.
    let raw = collector.raw();
    assert!(!String::from_utf8_lossy(&raw).contains(UPSTREAM_KEY.1));
}

#[tokio::test]
async fn a_hung_collector_never_holds_a_request_and_its_spans_are_counted() {
    let collector = Collector::stuck().await;
    let (a, _b, p) = proxy_with(&collector, "queue_size = 2").await;
    a.always(Reply::json(
        200,
        include_str!("../fixtures/openai/response_text.json"),
    ));
    // The first request's spans go out in an export the collector never answers.
    let r = p.chat(ask(false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let hung = eventually(std::time::Duration::from_secs(20), || {
        collector.exports.load(std::sync::atomic::Ordering::SeqCst) >= 1
    })
    .await;
    assert!(hung, "the proxy exported to the collector");
    // Meanwhile every request is answered; each ends two spans, the queue holds two,
    // so most of the 40 are dropped.
    for _ in 0..20 {
        let r = p.chat(ask(false)).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let metrics = get(&p.url("/metrics")).await.text();
    let dropped: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("understudy_spans_dropped_total "))
        .expect("understudy_spans_dropped_total exposed")
        .trim()
        .parse()
        .unwrap();
    assert!(dropped >= 1.0, "{metrics}");
    assert!(collector.spans().is_empty());
}

#[tokio::test]
async fn every_front_door_is_traced_under_its_api() {
    let collector = Collector::start().await;
    let (a, _b, p) = proxy_with(&collector, "").await;
    a.always(Reply::json(
        200,
        include_str!("../fixtures/openai/response_text.json"),
    ));
    let messages = json!({"model": "default", "max_tokens": 64,
        "messages": [{"role": "user", "content": PROMPT}]});
    let r = send(
        &p.url("/v1/messages"),
        "POST",
        &[("anthropic-version", "2023-06-01")],
        serde_json::to_vec(&messages).unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let responses = json!({"model": "default", "input": PROMPT, "store": false});
    let r = send(
        &p.url("/v1/responses"),
        "POST",
        &[],
        serde_json::to_vec(&responses).unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());

    let spans = collector.wait_for(4).await;
    let mut apis: Vec<&str> = spans
        .iter()
        .filter(|s| s.kind == 2)
        .map(|s| s.attr("understudy.api").as_str().unwrap())
        .collect();
    apis.sort();
    assert_eq!(apis, ["messages", "responses"]);
    for s in spans.iter().filter(|s| s.kind == 2) {
        assert_eq!(s.attr("gen_ai.operation.name"), "chat");
        assert_eq!(s.attr("gen_ai.usage.input_tokens"), 9);
        assert_eq!(s.attr("gen_ai.response.finish_reasons"), &json!(["stop"]));
    }
    assert_nothing_secret(&collector);
}

#[tokio::test]
async fn a_sample_ratio_drops_new_traces_but_keeps_a_sampled_callers() {
    let collector = Collector::start().await;
    // So small a share that no new trace is kept.
    let (a, _b, p) = proxy_with(&collector, "sample_ratio = 1e-12").await;
    for _ in 0..2 {
        a.push(Reply::json(
            200,
            include_str!("../fixtures/openai/response_text.json"),
        ));
    }
    let r = p.chat(ask(false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The caller sampled its trace: kept. Its spans queue after any of the first
    // request's, so those would arrive first or with them.
    let r = chat_traced(&p, ask(false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (request, attempts) = tree(&collector.wait_for(2).await);
    assert_eq!(request.trace_id, TRACE_ID);
    assert_eq!(attempts.len(), 1);
}
