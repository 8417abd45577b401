//! Stream translation tests: the recorded streams in `fixtures/anthropic/` at every
//! split, and malformed or cut streams.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::canonical::Usage;
use crate::http::sse::{Decoder, Framing};
use crate::providers::UpstreamError;

const TEXT: &str = include_str!("../../../../fixtures/anthropic/stream_text.sse");
const TOOL_USE: &str = include_str!("../../../../fixtures/anthropic/stream_tool_use.sse");
const NO_ARGS: &str = include_str!("../../../../fixtures/anthropic/stream_tool_no_args.sse");
const MAX_TOKENS: &str = include_str!("../../../../fixtures/anthropic/stream_max_tokens.sse");
const ERROR: &str = include_str!("../../../../fixtures/anthropic/stream_error_midstream.sse");
const PINGS: &str = include_str!("../../../../fixtures/anthropic/stream_pings.sse");
const THINKING: &str = include_str!("../../../../fixtures/anthropic/stream_thinking.sse");
const JSON_OUTPUT: &str = include_str!("../../../../fixtures/anthropic/stream_json_output.sse");

/// Odd split sizes: mid-line, mid-"\n\n", mid-UTF-8 character.
const SPLITS: [usize; 8] = [1, 2, 3, 5, 7, 13, 64, 1 << 20];

fn origin() -> Origin {
    Origin {
        provider: "anthropic".into(),
        kind: "anthropic".into(),
        model: "claude-sonnet-4-5".into(),
    }
}

/// What a client would receive, and how the stream ended.
struct Run {
    chunks: Vec<ChatChunk>,
    end: Result<(), AdapterError>,
}

fn run(sse: &str, json_mode: bool, split: usize) -> Run {
    let mut tr = Translator::new(json_mode, "claude-sonnet-4-5", origin());
    let mut dec = Decoder::new(Framing::Sse);
    let (mut chunks, mut events) = (Vec::new(), Vec::new());
    // Feeds what was decoded; `Some` once the stream ended (message_stop or error).
    let mut feed = |events: &mut Vec<Event>, chunks: &mut Vec<ChatChunk>| {
        for ev in events.drain(..) {
            match tr.on_event(&ev, chunks) {
                Ok(Flow::Continue) => {}
                Ok(Flow::Done) => return Some(Ok(())),
                Err(e) => return Some(Err(e)),
            }
        }
        None
    };
    for piece in sse.as_bytes().chunks(split) {
        dec.push(piece, &mut events).unwrap();
        if let Some(end) = feed(&mut events, &mut chunks) {
            return Run { chunks, end };
        }
    }
    dec.finish(&mut events).unwrap();
    if let Some(end) = feed(&mut events, &mut chunks) {
        return Run { chunks, end };
    }
    let end = tr.finish(&mut chunks);
    Run { chunks, end }
}

/// Runs `sse` at every split size; all must give the same chunks (bar `created`).
fn run_all(sse: &str, json_mode: bool) -> Run {
    let first = run(sse, json_mode, SPLITS[0]);
    let normal = |chunks: &[ChatChunk]| {
        chunks
            .iter()
            .map(|c| {
                let mut v = serde_json::to_value(c).unwrap();
                v["created"] = json!(0);
                v
            })
            .collect::<Vec<_>>()
    };
    for split in &SPLITS[1..] {
        let other = run(sse, json_mode, *split);
        assert_eq!(
            normal(&first.chunks),
            normal(&other.chunks),
            "split {split}"
        );
        assert_eq!(first.end.is_ok(), other.end.is_ok(), "split {split}");
    }
    first
}

/// Every chunk carries the answer's real id and model and one `created`.
fn assert_identity(chunks: &[ChatChunk], id: &str) {
    let created = chunks[0].created;
    assert!(created >= 1_700_000_000);
    for c in chunks {
        assert_eq!(c.id, id);
        assert_eq!(c.model, "claude-sonnet-4-5-20250929");
        assert_eq!(c.created, created);
        assert_eq!(c.object, "chat.completion.chunk");
    }
}

fn content(chunks: &[ChatChunk]) -> Vec<&str> {
    chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.content.as_deref())
        .collect()
}

fn finish_reasons(chunks: &[ChatChunk]) -> Vec<&str> {
    chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.finish_reason.as_deref())
        .collect()
}

/// Tool calls by index: (id, name, concatenated arguments).
type Calls = BTreeMap<u32, (String, String, String)>;

/// The streamed tool calls, and the index of each fragment in order.
fn tool_calls(chunks: &[ChatChunk]) -> (Calls, Vec<u32>) {
    let mut calls = Calls::new();
    let mut order = Vec::new();
    for d in chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.tool_calls.as_ref())
        .flatten()
    {
        order.push(d.index);
        let entry = calls.entry(d.index).or_default();
        if let Some(id) = &d.id {
            assert!(entry.0.is_empty(), "id sent twice for call {}", d.index);
            assert_eq!(d.kind.as_deref(), Some("function"));
            entry.0.clone_from(id);
        }
        let f = d.function.as_ref().unwrap();
        if let Some(name) = &f.name {
            entry.1.clone_from(name);
        }
        entry.2.push_str(f.arguments.as_deref().unwrap_or(""));
    }
    (calls, order)
}

fn usage(chunks: &[ChatChunk]) -> &Usage {
    let last = chunks.last().unwrap();
    assert!(last.is_usage_only(), "the usage chunk comes last");
    assert_eq!(
        chunks.iter().filter(|c| c.usage.is_some()).count(),
        1,
        "one usage chunk"
    );
    last.usage.as_ref().unwrap()
}

fn role_first(chunks: &[ChatChunk]) {
    let first = &chunks[0].choices[0];
    assert_eq!(first.delta.role.as_deref(), Some("assistant"));
    assert!(!chunks[0].is_content(), "the role chunk is not content");
    assert!(chunks[1..]
        .iter()
        .flat_map(|c| &c.choices)
        .all(|c| c.delta.role.is_none()));
}

#[test]
fn text_stream() {
    let r = run_all(TEXT, false);
    r.end.unwrap();
    assert_identity(&r.chunks, "msg_01VxEzZzHnzW9Yb4oB7Sdk3P");
    role_first(&r.chunks);
    assert_eq!(
        content(&r.chunks),
        ["Hello", "! How can I help you", " today? ✓ héllo"]
    );
    assert_eq!(finish_reasons(&r.chunks), ["stop"]);
    let n = r.chunks.len();
    assert_eq!(
        r.chunks[n - 2].choices[0].finish_reason.as_deref(),
        Some("stop")
    );
    assert_eq!(usage(&r.chunks), &Usage::new(21, 15));
    assert_eq!(n, 1 + 3 + 1 + 1, "role, 3 texts, finish, usage");
}

#[test]
fn crlf_framing_gives_the_same_answer() {
    let crlf = TEXT.replace('\n', "\r\n");
    let r = run_all(&crlf, false);
    r.end.unwrap();
    assert_eq!(
        content(&r.chunks).concat(),
        "Hello! How can I help you today? ✓ héllo"
    );
}

#[test]
fn parallel_tool_calls_stream_with_their_own_indices() {
    let r = run_all(TOOL_USE, false);
    r.end.unwrap();
    assert_identity(&r.chunks, "msg_014p7gG3wDgGV9EUtLvnow3U");
    role_first(&r.chunks);
    assert_eq!(
        content(&r.chunks).concat(),
        "I'll check the weather in both cities."
    );
    let (calls, order) = tool_calls(&r.chunks);
    assert_eq!(
        order,
        [0, 0, 0, 0, 1, 1, 1, 1],
        "block numbering is not used"
    );
    let want = [
        (
            "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            json!({"location":"Paris, France","unit":"celsius"}),
        ),
        (
            "toolu_01VPGbBNYNkvBxAq4tDMTKDx",
            json!({"location":"Tokyo, Japan","unit":"celsius"}),
        ),
    ];
    assert_eq!(calls.len(), 2);
    for (i, (id, input)) in want.iter().enumerate() {
        let (got_id, name, args) = &calls[&(i as u32)];
        assert_eq!(got_id, id);
        assert_eq!(name, "get_weather");
        assert_eq!(&serde_json::from_str::<Value>(args).unwrap(), input);
    }
    // The first fragment of each call carries id and name and empty arguments.
    let starts: Vec<&ToolCallDelta> = r
        .chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.tool_calls.as_ref())
        .flatten()
        .filter(|d| d.id.is_some())
        .collect();
    assert_eq!(
        starts[0],
        &ToolCallDelta::start(0, want[0].0, "get_weather")
    );
    assert_eq!(finish_reasons(&r.chunks), ["tool_calls"]);
    let u = usage(&r.chunks);
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (472 + 1500 + 2000, 124, 472 + 1500 + 2000 + 124)
    );
    assert_eq!(u.extra["prompt_tokens_details"]["cached_tokens"], 2000);
}

#[test]
fn tool_calls_without_arguments_yield_an_empty_object() {
    let r = run_all(NO_ARGS, false);
    r.end.unwrap();
    let (calls, order) = tool_calls(&r.chunks);
    assert_eq!(order, [0, 0, 1, 1], "start, then \"{{}}\", per call");
    assert_eq!(
        calls[&0],
        (
            "toolu_01NtmWyjQ4gkZxH6bUvMaSdP".into(),
            "get_time".into(),
            "{}".into()
        )
    );
    assert_eq!(
        calls[&1],
        (
            "toolu_01Lx3CkRa7PzYbT2mJv9HqWe".into(),
            "list_timezones".into(),
            "{}".into()
        )
    );
    assert_eq!(finish_reasons(&r.chunks), ["tool_calls"]);
    assert_eq!(usage(&r.chunks), &Usage::new(389, 41));
}

#[test]
fn max_tokens_stream_finishes_with_length() {
    let r = run_all(MAX_TOKENS, false);
    r.end.unwrap();
    assert_eq!(
        content(&r.chunks).concat(),
        "Once upon a time, in a kingdom by the sea, there lived a"
    );
    assert_eq!(finish_reasons(&r.chunks), ["length"]);
    assert_eq!(usage(&r.chunks), &Usage::new(17, 16));
}

#[test]
fn an_error_event_mid_stream_is_an_upstream_error_after_the_content() {
    let r = run_all(ERROR, false);
    assert_identity(&r.chunks, "msg_01Wp4cRt8YhN2vXq6KzB7mLs");
    assert_eq!(
        content(&r.chunks),
        ["The three primary colors", " are red,"]
    );
    assert!(finish_reasons(&r.chunks).is_empty());
    assert!(r.chunks.iter().all(|c| c.usage.is_none()));
    match r.end {
        Err(AdapterError::Upstream(e)) => {
            assert_eq!(
                (
                    e.status,
                    e.message.as_str(),
                    e.kind.as_deref(),
                    e.code.as_deref()
                ),
                (529, "Overloaded", Some("server_error"), Some("overloaded"))
            );
        }
        other => panic!("expected an upstream error, got {other:?}"),
    }
}

#[test]
fn error_event_types_carry_their_status() {
    for (kind, status) in [
        ("overloaded_error", 529),
        ("api_error", 500),
        ("rate_limit_error", 429),
        ("invalid_request_error", 400),
        ("timeout_error", 504),
        ("brand_new_error", 500),
    ] {
        let mut tr = Translator::new(false, "m", origin());
        let ev = Event {
            event: Some("error".into()),
            data: format!(r#"{{"type":"error","error":{{"type":"{kind}","message":"x"}}}}"#),
        };
        match tr.on_event(&ev, &mut Vec::new()) {
            Err(AdapterError::Upstream(UpstreamError { status: s, .. })) => {
                assert_eq!(s, status, "{kind}")
            }
            other => panic!("{kind}: {other:?}"),
        }
    }
}

#[test]
fn pings_are_ignored() {
    let r = run_all(PINGS, false);
    r.end.unwrap();
    assert_identity(&r.chunks, "msg_01Hm6tYq3PzK8wVb2NcR5xJd");
    assert_eq!(content(&r.chunks), ["Still", " thinking", " it over."]);
    assert_eq!(finish_reasons(&r.chunks), ["stop"], "stop_sequence is stop");
    let u = usage(&r.chunks);
    assert_eq!((u.prompt_tokens, u.completion_tokens), (31 + 12, 9));
    assert_eq!(r.chunks.len(), 1 + 3 + 1 + 1);
}

#[test]
fn thinking_streams_as_reasoning_then_the_signed_block() {
    let r = run_all(THINKING, false);
    r.end.unwrap();
    assert_eq!(content(&r.chunks), ["27 * 453 = 12,231"]);
    let reasoning: Vec<&ReasoningDelta> = r
        .chunks
        .iter()
        .filter_map(|c| c.choices.first()?.delta.reasoning.as_ref())
        .collect();
    let text = "27 * 453: 27 * 400 = 10800, 27 * 53 = 1431. Sum 12231.";
    let signature = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds";
    let ReasoningDelta::Done(done) = reasoning.last().unwrap() else {
        panic!("the block comes whole last: {reasoning:?}")
    };
    assert_eq!(
        done.data,
        json!({"type": "thinking", "thinking": text, "signature": signature})
    );
    assert_eq!((done.text.as_str(), &done.origin), (text, &origin()));
    let streamed: String = reasoning
        .iter()
        .filter_map(|d| match d {
            ReasoningDelta::Text(t) => Some(t.as_str()),
            ReasoningDelta::Done(_) => None,
        })
        .collect();
    assert_eq!(streamed, text);
    assert!(r
        .chunks
        .iter()
        .filter(|c| c
            .choices
            .first()
            .is_some_and(|c| c.delta.reasoning.is_some()))
        .all(|c| !c.is_content()));
    assert_eq!(usage(&r.chunks), &Usage::new(44, 87));
}

#[test]
fn redacted_thinking_is_whole_at_its_stop() {
    let sse = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"m\",\"usage\":{\"input_tokens\":1}}}\n\n\
        event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"redacted_thinking\",\"data\":\"EmwK\"}}\n\n\
        event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
        event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":3}}\n\n\
        event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    let r = run_all(sse, false);
    r.end.unwrap();
    let done: Vec<&ReasoningDelta> = r
        .chunks
        .iter()
        .filter_map(|c| c.choices.first()?.delta.reasoning.as_ref())
        .collect();
    assert_eq!(done.len(), 1);
    assert!(
        matches!(done[0], ReasoningDelta::Done(d) if d.data == json!({"type": "redacted_thinking", "data": "EmwK"}) && d.text.is_empty())
    );
}

#[test]
fn json_mode_streams_json_output_as_content() {
    let r = run_all(JSON_OUTPUT, true);
    r.end.unwrap();
    assert_identity(&r.chunks, "msg_01Rj7nVb4Xq2WtY8PzK3cLmH");
    role_first(&r.chunks);
    assert!(tool_calls(&r.chunks).0.is_empty());
    let text = content(&r.chunks).concat();
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"name":"Science fair","date":"Friday","participants":["Alice","Bob"]})
    );
    assert_eq!(finish_reasons(&r.chunks), ["stop"]);
    // Not in JSON mode, the same stream is a plain tool call.
    let r = run_all(JSON_OUTPUT, false);
    let (calls, _) = tool_calls(&r.chunks);
    assert_eq!(calls[&0].1, "json_output");
    assert_eq!(finish_reasons(&r.chunks), ["tool_calls"]);
}

#[test]
fn json_mode_without_argument_fragments_is_an_empty_object() {
    let sse = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"json_output","input":{}}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_stop
data: {"type":"message_stop"}

"#;
    let r = run_all(sse, true);
    r.end.unwrap();
    assert_eq!(content(&r.chunks), ["{}"]);
    assert_eq!(finish_reasons(&r.chunks), ["stop"], "message_stop finishes");
    assert_eq!(usage(&r.chunks), &Usage::new(3, 1));
}

fn events(tr: &mut Translator, lines: &[&str]) -> Result<Vec<ChatChunk>, AdapterError> {
    let mut out = Vec::new();
    for data in lines {
        let ev = Event {
            event: None,
            data: (*data).to_string(),
        };
        tr.on_event(&ev, &mut out)?;
    }
    Ok(out)
}

const START: &str = r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"","content":[],"stop_reason":null,"usage":{"input_tokens":5,"output_tokens":1}}}"#;

#[test]
fn unknown_events_and_delta_types_are_ignored() {
    let mut tr = Translator::new(false, "claude-sonnet-4-5", origin());
    let out = events(
        &mut tr,
        &[
            START,
            r#"{"type":"brand_new_event","whatever":[1]}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{}}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"q\":1}"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":"Hi"}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"citations_delta","citation":{}}}"#,
            r#"{"type":"content_block_stop","index":1}"#,
        ],
    )
    .unwrap();
    assert_eq!(content(&out), ["Hi"], "initial text of a block counts");
    assert!(
        out.iter().all(|c| c.model == "claude-sonnet-4-5"),
        "model fallback"
    );
}

#[test]
fn malformed_streams_are_protocol_errors() {
    let cases: [&[&str]; 7] = [
        &[r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#],
        &[START, START],
        &[START, "not json"],
        &[
            START,
            r#"{"type":"content_block_delta","index":3,"delta":{"type":"text_delta","text":"x"}}"#,
        ],
        &[START, r#"{"type":"content_block_stop","index":0}"#],
        &[
            START,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{"}}"#,
        ],
        &[r#"{"no_type":true}"#],
    ];
    for lines in cases {
        let mut tr = Translator::new(false, "m", origin());
        assert!(
            matches!(events(&mut tr, lines), Err(AdapterError::Protocol(_))),
            "{lines:?}"
        );
    }
}

#[test]
fn too_many_open_blocks_is_a_protocol_error() {
    let starts: Vec<String> = (0..=MAX_OPEN_BLOCKS)
        .map(|i| {
            format!(
                r#"{{"type":"content_block_start","index":{i},"content_block":{{"type":"text","text":""}}}}"#
            )
        })
        .collect();
    let mut lines = vec![START];
    lines.extend(starts.iter().map(String::as_str));
    let mut tr = Translator::new(false, "m", origin());
    assert!(matches!(
        events(&mut tr, &lines),
        Err(AdapterError::Protocol(m)) if m.contains("open at once")
    ));
}

#[test]
fn a_stream_cut_before_message_stop_is_a_protocol_error() {
    let cut = TEXT.split("event: message_delta").next().unwrap();
    let r = run(cut, false, 7);
    assert!(matches!(r.end, Err(AdapterError::Protocol(_))));
    assert_eq!(content(&r.chunks).len(), 3, "what came is still translated");
}

#[test]
fn message_stop_without_message_delta_still_finishes() {
    let mut tr = Translator::new(false, "m", origin());
    let mut out = events(
        &mut tr,
        &[
            START,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"ok"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
        ],
    )
    .unwrap();
    let flow = tr
        .on_event(
            &Event {
                event: Some("message_stop".into()),
                data: r#"{"type":"message_stop"}"#.into(),
            },
            &mut out,
        )
        .unwrap();
    assert_eq!(flow, Flow::Done);
    assert_eq!(finish_reasons(&out), ["stop"]);
    assert_eq!(usage(&out), &Usage::new(5, 1));
    assert!(tr.finish(&mut out).is_ok());
}
