//! The Responses store, measured: memory at 100k stored responses of ~2 KB, and the
//! time to continue a 50-turn conversation (`previous_response_id` expanded into the
//! canonical request by the front door, store lookup included).
//!
//! `cargo bench --bench responses_store`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};
use understudy::config::{self, ResponsesPolicy};
use understudy::frontdoor::responses::RESPONSES;
use understudy::frontdoor::Dialect;
use understudy::state::responses::{MemoryStore, ResponseStore, Stored};
use understudy::App;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn message(role: &str, text: &str, i: usize) -> Value {
    let kind = if role == "assistant" {
        "output_text"
    } else {
        "input_text"
    };
    json!({"id": format!("msg_{i:024}"), "type": "message", "role": role,
           "content": [{"type": kind, "text": text}]})
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let toml = "[providers.p]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[[routes]]\nmodel = \"m\"\ntargets = [\"p/x\"]\n";
    let env: config::EnvLookup = Arc::new(|_| None);
    let snap = config::from_str(toml, std::path::Path::new("proxy.toml"), &env).unwrap();
    let app = App::new(snap, env);
    let policy = ResponsesPolicy {
        ttl: Duration::from_secs(86_400),
        max_bytes: 4 << 30,
    };

    // 100k responses of ~2 KB each: a user turn, an answer, the Response object.
    let text = "lorem ipsum dolor sit amet ".repeat(20); // ~540 B
    let store = MemoryStore::default();
    let before = rss_kib();
    let started = Instant::now();
    rt.block_on(async {
        for i in 0..100_000usize {
            let id = format!("resp_{i:024}");
            let output = vec![message("assistant", &text, 2 * i + 1)];
            let stored = Stored {
                response: json!({"id": id, "object": "response", "status": "completed",
                                 "model": "m", "output": output.clone()}),
                input: vec![message("user", &text, 2 * i)],
                output,
                provider: "m".into(),
                id,
            };
            store.put(stored, policy).await.unwrap();
        }
    });
    let put_secs = started.elapsed().as_secs_f64();
    let grown = rss_kib().saturating_sub(before);
    println!(
        "store: 100000 responses of ~2 KB: RSS +{:.1} MiB ({:.2} KiB each); counted toward max_bytes: {:.1} MiB; {:.2} µs per put",
        grown as f64 / 1024.0,
        grown as f64 / 100_000.0,
        store.bytes() as f64 / (1024.0 * 1024.0),
        put_secs * 1e6 / 100_000.0
    );
    drop(store);

    // A 50-turn conversation: user, assistant tool call, tool result per turn.
    let mut items = Vec::new();
    for t in 0..50usize {
        items.push(message("user", &format!("turn {t}: {text}"), t));
        items.push(
            json!({"id": format!("fc_{t}"), "type": "function_call", "call_id": format!("call_{t}"),
                          "name": "lookup", "arguments": "{\"q\":\"x\"}", "status": "completed"}),
        );
        items.push(json!({"id": format!("fco_{t}"), "type": "function_call_output", "call_id": format!("call_{t}"),
                          "output": text.clone(), "status": "completed"}));
    }
    let output = vec![message("assistant", &text, 999)];
    let chain = Stored {
        id: "resp_chain".into(),
        response: json!({"id": "resp_chain"}),
        input: items,
        output,
        provider: "m".into(),
    };
    rt.block_on(app.responses.put(chain, policy)).unwrap();
    let body = Bytes::from(
        json!({"model": "m", "previous_response_id": "resp_chain", "input": "and now?"})
            .to_string(),
    );
    let (head, ()) = http::Request::post("/v1/responses")
        .body(())
        .unwrap()
        .into_parts();
    let mut times = Vec::new();
    for _ in 0..2_000 {
        let t = Instant::now();
        let turn = rt
            .block_on(RESPONSES.begin(&app, &head, body.clone()))
            .unwrap();
        times.push(t.elapsed());
        assert!(turn.request().messages.len() > 150);
    }
    times.sort();
    println!(
        "expand a 50-turn previous_response_id chain (151 items → canonical request): median {:.1} µs, p99 {:.1} µs",
        times[times.len() / 2].as_secs_f64() * 1e6,
        times[times.len() * 99 / 100].as_secs_f64() * 1e6
    );
}
