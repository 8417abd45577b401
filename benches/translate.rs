//! Translation cost per request and per stream event, for every provider kind:
//! `cargo bench --bench translate`.
//!
//! - request: a 20-message conversation with tools (system, user turns, assistant
//!   tool calls, tool results) → the provider's upstream request (build_request).
//! - stream: a 200-event upstream stream in the provider's wire format → decoded,
//!   translated, filtered and encoded as the client's SSE: the whole per-event path
//!   the proxy runs, minus the socket.
//!
//! Prints medians (and p99) over many samples; no assertions.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use serde_json::json;
use understudy::canonical::{ChatChunk, ChatRequest};
use understudy::config::{Provider, Secret, Target, Timeouts};
use understudy::frontdoor::chat::{encode, keep};
use understudy::http::sse::Decoder;
use understudy::providers::{adapter_for, Flow, Kind};

fn target(kind: Kind) -> Target {
    let provider = Provider {
        name: kind.as_str().into(),
        kind,
        base_url: "http://127.0.0.1:1".into(),
        api_key_env: Some("K".into()),
        api_key: Some(Secret::new("sk-bench".into())),
        disabled_reason: None,
        headers: Vec::new(),
        timeouts: Timeouts::default(),
        settings: adapter_for(kind)
            .settings(Default::default())
            .expect("no settings are valid settings"),
    };
    Target::new(Arc::new(provider), "bench-model", 1, Timeouts::default())
}

/// system + 19 turns: user questions, assistant tool calls, tool results, answers.
fn conversation(stream: bool) -> ChatRequest {
    let mut messages =
        vec![json!({"role": "system", "content": "You are a travel assistant. Be concise."})];
    let mut i = 0;
    while messages.len() < 20 {
        messages.push(json!({"role": "user", "content": format!("What is the weather in city number {i}, and what time is it there?")}));
        messages.push(json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": format!("call_w{i}"), "type": "function", "function": {"name": "get_weather", "arguments": format!("{{\"city\":\"City {i}\",\"unit\":\"celsius\"}}")}},
            {"id": format!("call_t{i}"), "type": "function", "function": {"name": "get_time", "arguments": format!("{{\"city\":\"City {i}\"}}")}}
        ]}));
        messages.push(json!({"role": "tool", "tool_call_id": format!("call_w{i}"), "content": "{\"temp\":21,\"sky\":\"clear\"}"}));
        messages.push(
            json!({"role": "tool", "tool_call_id": format!("call_t{i}"), "content": "14:05"}),
        );
        messages.push(json!({"role": "assistant", "content": format!("In City {i} it is 21°C and clear; the local time is 14:05.")}));
        i += 1;
    }
    messages.truncate(20);
    messages.push(json!({"role": "user", "content": "Thanks! And tomorrow?"}));
    messages.truncate(20);
    let tools = json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}},
        {"type": "function", "function": {"name": "get_time", "description": "Local time in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    ]);
    let body = json!({"model": "default", "messages": messages, "tools": tools, "temperature": 0.2, "max_tokens": 512, "stream": stream});
    ChatRequest::parse(Bytes::from(body.to_string())).expect("valid bench request")
}

/// A 200-event stream in `kind`'s wire format: 198 text deltas plus its framing.
fn stream_body(kind: Kind) -> String {
    let words: Vec<String> = (0..198).map(|i| format!("word{i} ")).collect();
    let mut s = String::new();
    match kind {
        Kind::Anthropic => {
            s.push_str("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_bench\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n");
            s.push_str("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
            for w in &words[..195] {
                s.push_str(&format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{w}\"}}}}\n\n"));
            }
            s.push_str("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n");
            s.push_str("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":198}}\n\n");
            s.push_str("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        }
        Kind::Gemini => {
            for (i, w) in words.iter().enumerate().take(200) {
                let finish = if i == words.len() - 1 {
                    ",\"finishReason\":\"STOP\""
                } else {
                    ""
                };
                s.push_str(&format!("data: {{\"candidates\":[{{\"content\":{{\"parts\":[{{\"text\":\"{w}\"}}],\"role\":\"model\"}}{finish},\"index\":0}}],\"usageMetadata\":{{\"promptTokenCount\":25,\"candidatesTokenCount\":{i},\"totalTokenCount\":{}}},\"modelVersion\":\"gemini-2.0-flash\",\"responseId\":\"bench-id\"}}\r\n\r\n", 25 + i));
            }
        }
        Kind::Ollama => {
            for w in &words {
                s.push_str(&format!("{{\"model\":\"llama3.2\",\"created_at\":\"2026-11-21T14:00:00.000000Z\",\"message\":{{\"role\":\"assistant\",\"content\":\"{w}\"}},\"done\":false}}\n"));
            }
            s.push_str("{\"model\":\"llama3.2\",\"created_at\":\"2026-11-21T14:00:01Z\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":25,\"eval_count\":198}\n");
        }
        Kind::Openai | Kind::Azure => {
            s.push_str("data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n");
            for w in &words {
                s.push_str(&format!("data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{w}\"}},\"finish_reason\":null}}]}}\n\n"));
            }
            s.push_str("data: [DONE]\n\n");
        }
    }
    s
}

/// The proxy's per-event path over a whole upstream body, fed in 512-byte pieces.
fn translate_stream(kind: Kind, req: &ChatRequest, target: &Target, body: &[u8]) -> (usize, usize) {
    let adapter = adapter_for(kind);
    let mut decoder = Decoder::new(adapter.framing());
    let mut tr = adapter.stream_translator(req, target);
    let (mut events, mut chunks): (Vec<_>, Vec<ChatChunk>) = (Vec::new(), Vec::new());
    let mut out = BytesMut::new();
    let mut n_events = 0;
    let mut done = false;
    for piece in body.chunks(512) {
        decoder.push(piece, &mut events).expect("decodes");
        for ev in events.drain(..) {
            n_events += 1;
            if !done && tr.on_event(&ev, &mut chunks).expect("translates") == Flow::Done {
                done = true;
            }
        }
        for mut c in chunks.drain(..) {
            if keep(&mut c, false) {
                encode(&c, &mut out);
            }
        }
    }
    decoder.finish(&mut events).expect("decodes");
    for ev in events.drain(..) {
        n_events += 1;
        tr.on_event(&ev, &mut chunks).expect("translates");
    }
    if !done {
        tr.finish(&mut chunks).expect("finishes");
    }
    for mut c in chunks.drain(..) {
        if keep(&mut c, false) {
            encode(&c, &mut out);
        }
    }
    (n_events, out.len())
}

fn measure(samples: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..samples / 10 {
        f();
    }
    let mut t: Vec<Duration> = (0..samples)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort();
    (t[t.len() / 2], t[t.len() * 99 / 100])
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    println!("kind        request (20 msgs + tools)   stream (200 events)          per event");
    println!("            median      p99             median       p99             median");
    for kind in [
        Kind::Openai,
        Kind::Azure,
        Kind::Anthropic,
        Kind::Gemini,
        Kind::Ollama,
    ] {
        let t = target(kind);
        let adapter = adapter_for(kind);
        let req = conversation(false);
        let (rq50, rq99) = measure(2000, || {
            std::hint::black_box(adapter.build_request(&req, &t).expect("builds"));
        });
        let sreq = conversation(true);
        let body = stream_body(kind);
        let (events, _) = translate_stream(kind, &sreq, &t, body.as_bytes());
        let (s50, s99) = measure(500, || {
            std::hint::black_box(translate_stream(kind, &sreq, &t, body.as_bytes()));
        });
        println!(
            "{:<10}  {:>7.1} us  {:>7.1} us      {:>8.1} us  {:>8.1} us     {:>6.2} us   ({events} events)",
            kind.as_str(),
            us(rq50),
            us(rq99),
            us(s50),
            us(s99),
            us(s50) / events as f64
        );
    }
}
