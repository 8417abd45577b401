//! Helpers shared by the Anthropic provider tests (`translate_anthropic*.rs`): the
//! `fixtures/anthropic/` answers, streams, errors and requests, a proxy with an
//! Anthropic mock (lead) and an OpenAI-kind mock behind a `default` route, and
//! streams replayed in odd-sized pieces.
#![allow(dead_code)]

use std::time::Duration;

use crate::common::*;
use bytes::Bytes;
use serde_json::{json, Value};

pub const TEXT_JSON: &str = include_str!("../../fixtures/anthropic/response_text.json");
pub const TOOL_USE_JSON: &str = include_str!("../../fixtures/anthropic/response_tool_use.json");
pub const MAX_TOKENS_JSON: &str = include_str!("../../fixtures/anthropic/response_max_tokens.json");
pub const JSON_OUTPUT_JSON: &str =
    include_str!("../../fixtures/anthropic/response_json_output.json");

pub const TEXT_SSE: &str = include_str!("../../fixtures/anthropic/stream_text.sse");
pub const TOOL_USE_SSE: &str = include_str!("../../fixtures/anthropic/stream_tool_use.sse");
pub const NO_ARGS_SSE: &str = include_str!("../../fixtures/anthropic/stream_tool_no_args.sse");
pub const MAX_TOKENS_SSE: &str = include_str!("../../fixtures/anthropic/stream_max_tokens.sse");
pub const PINGS_SSE: &str = include_str!("../../fixtures/anthropic/stream_pings.sse");
pub const THINKING_SSE: &str = include_str!("../../fixtures/anthropic/stream_thinking.sse");
pub const JSON_OUTPUT_SSE: &str = include_str!("../../fixtures/anthropic/stream_json_output.sse");
pub const ERROR_MIDSTREAM_SSE: &str =
    include_str!("../../fixtures/anthropic/stream_error_midstream.sse");

pub const ERROR_OVERLOADED: &str = include_str!("../../fixtures/anthropic/error_overloaded.json");
pub const ERROR_RATE_LIMIT: &str = include_str!("../../fixtures/anthropic/error_rate_limit.json");
pub const ERROR_INVALID_REQUEST: &str =
    include_str!("../../fixtures/anthropic/error_invalid_request.json");
pub const ERROR_AUTHENTICATION: &str =
    include_str!("../../fixtures/anthropic/error_authentication.json");

pub const REQUEST_TOOLS_OPENAI: &str =
    include_str!("../../fixtures/anthropic/request_tools.openai.json");
pub const REQUEST_TOOLS_ANTHROPIC: &str =
    include_str!("../../fixtures/anthropic/request_tools.anthropic.json");
pub const REQUEST_SCHEMA_OPENAI: &str =
    include_str!("../../fixtures/anthropic/request_json_schema.openai.json");
pub const REQUEST_SCHEMA_ANTHROPIC: &str =
    include_str!("../../fixtures/anthropic/request_json_schema.anthropic.json");

pub const CLIENT_KEY: &str = "client-key";
pub const ANTHROPIC_KEY: &str = "sk-ant-upstream-secret";
pub const OPENAI_KEY: &str = "sk-openai-upstream-secret";
/// What the fixtures' answers report as their model.
pub const CLAUDE: &str = "claude-sonnet-4-5-20250929";
pub const GPT: &str = "gpt-4o-2024-08-06";

/// The Anthropic mock (lead) and the OpenAI-kind mock behind a `default` route.
pub struct Setup {
    pub anthropic: Mock,
    pub openai: Mock,
    pub proxy: Proxy,
}

pub async fn setup() -> Setup {
    setup_with("").await
}

/// Like [`setup`], with `extra` lines in the Anthropic provider's table.
pub async fn setup_with(extra: &str) -> Setup {
    let anthropic = Mock::start().await;
    let openai = Mock::start().await;
    let toml = format!(
        r#"
[server]
api_keys_env = "CLIENT_KEYS"
[providers.anthropic]
kind = "anthropic"
base_url = "{}"
api_key_env = "ANTHROPIC_KEY"
{}
[providers.openai]
kind = "openai"
base_url = "{}/v1"
api_key_env = "OPENAI_KEY"
[[routes]]
model = "default"
targets = ["anthropic/claude-sonnet-4-5", "openai/gpt-4o"]
"#,
        anthropic.url(),
        extra,
        openai.url()
    );
    let proxy = Proxy::start(
        &toml,
        &[
            ("CLIENT_KEYS", CLIENT_KEY),
            ("ANTHROPIC_KEY", ANTHROPIC_KEY),
            ("OPENAI_KEY", OPENAI_KEY),
        ],
    )
    .await;
    Setup {
        anthropic,
        openai,
        proxy,
    }
}

impl Setup {
    /// A chat request with the client's key, as an SDK would send it.
    pub async fn chat(&self, body: &Value) -> Resp {
        send(
            &self.proxy.url("/v1/chat/completions"),
            "POST",
            &[("authorization", &format!("Bearer {CLIENT_KEY}"))],
            body.to_string(),
        )
        .await
    }

    pub async fn sdk(&self, scenarios: Value) -> Vec<Value> {
        openai_sdk(&self.proxy, CLIENT_KEY, scenarios).await
    }
}

/// `text` cut into pieces of cycling odd sizes (boundaries fall mid-line and between
/// the two newlines of an event's end), and also cut inside every multi-byte UTF-8
/// character.
pub fn pieces(text: &str) -> Vec<Bytes> {
    const SIZES: [usize; 12] = [1, 2, 3, 5, 7, 11, 13, 17, 29, 64, 101, 257];
    let bytes = text.as_bytes();
    let mut cuts: Vec<usize> = SIZES
        .iter()
        .cycle()
        .scan(0, |at, size| {
            *at += size;
            Some(*at)
        })
        .take_while(|&at| at < bytes.len())
        .collect();
    // right after each lead byte of a multi-byte character
    cuts.extend(
        (0..bytes.len())
            .filter(|&i| bytes[i] >= 0xC0)
            .map(|i| i + 1),
    );
    cuts.sort_unstable();
    cuts.dedup();
    cuts.push(bytes.len());
    let mut at = 0;
    cuts.into_iter()
        .map(|end| {
            let piece = Bytes::copy_from_slice(&bytes[at..end]);
            at = end;
            piece
        })
        .collect()
}

/// An Anthropic SSE answer replaying `fixture` piece by piece (1 ms apart, so the
/// proxy really reads the pieces one at a time).
pub fn anthropic_stream(fixture: &str) -> Reply {
    let mut reply = Reply::raw(200, "text/event-stream", &[]);
    reply.events = pieces(fixture)
        .into_iter()
        .map(|b| (Duration::ZERO, b))
        .collect();
    reply.gap(Duration::from_millis(1))
}

pub fn fixture(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture is JSON")
}

pub fn msgs() -> Value {
    json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
}

/// The chunks of a streamed answer (everything but `[DONE]` and error events).
pub fn chunks_of(r: &Resp) -> Vec<Value> {
    r.sse_data()
        .iter()
        .filter(|d| d.as_str() != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("chunk is JSON"))
        .collect()
}
