//! Translation cost per request and per stream event, for every provider kind and
//! every client API: `cargo bench --bench translate`.
//!
//! - request: a 20-message conversation with tools (system, user turns, assistant
//!   tool calls, tool results) → the provider's upstream request. For chat
//!   completions, from the parsed canonical request (build_request); for Messages and
//!   Responses, from the client's body: the front door's parse into the canonical
//!   request, then build_request (an Anthropic-kind target gets a Messages body
//!   natively: only its model swapped).
//! - stream: a 200-event upstream stream in the provider's wire format → decoded,
//!   translated and rendered as the client API's stream (chat chunks, Anthropic
//!   events, Responses events): the whole per-event path the proxy runs, minus the
//!   socket.
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
use futures_util::FutureExt;
use serde_json::json;
use understudy::canonical::{ChatChunk, ChatRequest};
use understudy::config::{self, Provider, Secret, Target, Timeouts};
use understudy::frontdoor::chat::{encode, keep};
use understudy::frontdoor::messages::MESSAGES;
use understudy::frontdoor::responses::RESPONSES;
use understudy::frontdoor::{Dialect, StreamRender, Turn};
use understudy::http::sse::Decoder;
use understudy::providers::{adapter_for, Flow, Kind};
use understudy::App;

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
        egress: Arc::new(understudy::upstream::Egress::direct().expect("default egress")),
        prices: Default::default(),
        concurrency: None,
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

/// The same conversation as an Anthropic Messages body.
fn messages_body(stream: bool) -> Bytes {
    let mut messages = Vec::new();
    let mut i = 0;
    while messages.len() < 19 {
        messages.push(json!({"role": "user", "content": format!("What is the weather in city number {i}, and what time is it there?")}));
        messages.push(json!({"role": "assistant", "content": [
            {"type": "tool_use", "id": format!("toolu_w{i}"), "name": "get_weather", "input": {"city": format!("City {i}"), "unit": "celsius"}},
            {"type": "tool_use", "id": format!("toolu_t{i}"), "name": "get_time", "input": {"city": format!("City {i}")}}
        ]}));
        messages.push(json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": format!("toolu_w{i}"), "content": "{\"temp\":21,\"sky\":\"clear\"}"},
            {"type": "tool_result", "tool_use_id": format!("toolu_t{i}"), "content": "14:05"}
        ]}));
        messages.push(json!({"role": "assistant", "content": format!("In City {i} it is 21°C and clear; the local time is 14:05.")}));
        i += 1;
    }
    messages.truncate(18);
    messages.push(json!({"role": "user", "content": "Thanks! And tomorrow?"}));
    let tools = json!([
        {"name": "get_weather", "description": "Current weather for a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}},
        {"name": "get_time", "description": "Local time in a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
    ]);
    let body = json!({"model": "default", "system": "You are a travel assistant. Be concise.",
        "messages": messages, "tools": tools, "temperature": 0.2, "max_tokens": 512, "stream": stream});
    Bytes::from(body.to_string())
}

/// The same conversation as a Responses body (`store: false`: no store in the path).
fn responses_body(stream: bool) -> Bytes {
    let mut input = Vec::new();
    let mut i = 0;
    while input.len() < 19 {
        input.push(json!({"role": "user", "content": format!("What is the weather in city number {i}, and what time is it there?")}));
        input.push(json!({"type": "function_call", "call_id": format!("call_w{i}"), "name": "get_weather", "arguments": format!("{{\"city\":\"City {i}\",\"unit\":\"celsius\"}}")}));
        input.push(json!({"type": "function_call", "call_id": format!("call_t{i}"), "name": "get_time", "arguments": format!("{{\"city\":\"City {i}\"}}")}));
        input.push(json!({"type": "function_call_output", "call_id": format!("call_w{i}"), "output": "{\"temp\":21,\"sky\":\"clear\"}"}));
        input.push(json!({"type": "function_call_output", "call_id": format!("call_t{i}"), "output": "14:05"}));
        input.push(json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": format!("In City {i} it is 21°C and clear; the local time is 14:05."), "annotations": []}]}));
        i += 1;
    }
    input.truncate(18);
    input.push(json!({"role": "user", "content": "Thanks! And tomorrow?"}));
    let tools = json!([
        {"type": "function", "name": "get_weather", "description": "Current weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}},
        {"type": "function", "name": "get_time", "description": "Local time in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
    ]);
    let body = json!({"model": "default", "instructions": "You are a travel assistant. Be concise.",
        "input": input, "tools": tools, "temperature": 0.2, "max_output_tokens": 512,
        "store": false, "stream": stream});
    Bytes::from(body.to_string())
}

/// Where translated chunks go: the client API's stream renderer.
enum Sink<'a> {
    /// The chat front door's rendering, with its scratch buffer.
    Chat(Vec<u8>),
    Door(&'a mut dyn StreamRender),
}

impl Sink<'_> {
    fn chunk(&mut self, mut c: ChatChunk, out: &mut BytesMut) {
        match self {
            Sink::Chat(json) => {
                if keep(&mut c, false) {
                    encode(&c, json, out);
                }
            }
            Sink::Door(r) => r.chunk(c, out),
        }
    }

    fn done(&mut self, out: &mut BytesMut) {
        match self {
            Sink::Chat(_) => out.extend_from_slice(b"data: [DONE]\n\n"),
            Sink::Door(r) => r.done(out),
        }
    }
}

/// The proxy's per-event path over a whole upstream body, fed in 512-byte pieces.
fn translate_stream(
    kind: Kind,
    req: &ChatRequest,
    target: &Target,
    body: &[u8],
    mut sink: Sink<'_>,
) -> (usize, usize) {
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
        for c in chunks.drain(..) {
            sink.chunk(c, &mut out);
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
    for c in chunks.drain(..) {
        sink.chunk(c, &mut out);
    }
    sink.done(&mut out);
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

const KINDS: [Kind; 5] = [
    Kind::Openai,
    Kind::Azure,
    Kind::Anthropic,
    Kind::Gemini,
    Kind::Ollama,
];

fn header(api: &str) {
    println!();
    println!("client API: {api}");
    println!("kind        request (20 msgs + tools)   stream (200 events)          per event");
    println!("            median      p99             median       p99             median");
}

fn row(kind: Kind, request: (Duration, Duration), stream: (Duration, Duration), events: usize) {
    println!(
        "{:<10}  {:>7.1} us  {:>7.1} us      {:>8.1} us  {:>8.1} us     {:>6.2} us   ({events} events)",
        kind.as_str(),
        us(request.0),
        us(request.1),
        us(stream.0),
        us(stream.1),
        us(stream.0) / events as f64
    );
}

/// A client API: its name in the table, its front door, its bench body (streamed or
/// not).
type Door = (&'static str, &'static dyn Dialect, fn(bool) -> Bytes);

/// A client request read by its front door, which must not wait: no stored state is
/// involved.
fn turn(door: &dyn Dialect, app: &Arc<App>, body: Bytes) -> Box<dyn Turn> {
    let (head, ()) = http::Request::post("/")
        .header("anthropic-version", "2023-06-01")
        .body(())
        .unwrap()
        .into_parts();
    door.begin(app, &head, body)
        .now_or_never()
        .expect("no stored state to wait for")
        .expect("a valid bench request")
}

fn main() {
    header("chat completions (request: from the parsed canonical request)");
    for kind in KINDS {
        let t = target(kind);
        let adapter = adapter_for(kind);
        let req = conversation(false);
        let request = measure(2000, || {
            std::hint::black_box(adapter.build_request(&req, &t).expect("builds"));
        });
        let sreq = conversation(true);
        let body = stream_body(kind);
        let (events, _) =
            translate_stream(kind, &sreq, &t, body.as_bytes(), Sink::Chat(Vec::new()));
        let stream = measure(500, || {
            std::hint::black_box(translate_stream(
                kind,
                &sreq,
                &t,
                body.as_bytes(),
                Sink::Chat(Vec::new()),
            ));
        });
        row(kind, request, stream, events);
    }
    let raw = conversation(false).raw.clone();
    let (p50, p99) = measure(2000, || {
        std::hint::black_box(ChatRequest::parse(raw.clone()).expect("parses"));
    });
    println!(
        "(parsing that chat body into the canonical request: {:.1} us median, {:.1} us p99)",
        us(p50),
        us(p99)
    );

    let toml = "[providers.p]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[[routes]]\nmodel = \"default\"\ntargets = [\"p/x\"]\n";
    let env: config::EnvLookup = Arc::new(|_| None);
    let snap = config::from_str(toml, std::path::Path::new("proxy.toml"), &env).unwrap();
    let app = App::new(snap, env);
    let doors: [Door; 2] = [
        (
            "Anthropic Messages (request: client body → canonical → upstream)",
            &MESSAGES,
            messages_body,
        ),
        (
            "Responses (request: client body → canonical → upstream)",
            &RESPONSES,
            responses_body,
        ),
    ];
    for (name, door, body_of) in doors {
        header(name);
        let plain = body_of(false);
        let streamed = turn(door, &app, body_of(true));
        for kind in KINDS {
            let t = target(kind);
            let adapter = adapter_for(kind);
            let request = measure(2000, || {
                let turn = turn(door, &app, plain.clone());
                std::hint::black_box(adapter.build_request(turn.request(), &t).expect("builds"));
            });
            let body = stream_body(kind);
            let sreq = streamed.request();
            let mut render = streamed.stream_renderer();
            let (events, _) =
                translate_stream(kind, sreq, &t, body.as_bytes(), Sink::Door(render.as_mut()));
            let stream = measure(500, || {
                let mut render = streamed.stream_renderer();
                std::hint::black_box(translate_stream(
                    kind,
                    sreq,
                    &t,
                    body.as_bytes(),
                    Sink::Door(render.as_mut()),
                ));
            });
            row(kind, request, stream, events);
        }
    }
}
