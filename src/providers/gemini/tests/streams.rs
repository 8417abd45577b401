//! Stream tests: `streamGenerateContent` SSE at every split → OpenAI chunks.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use super::*;
use crate::canonical::ChatChunk;
use crate::http::sse::Decoder;
use crate::providers::testing::{request, target_with};
use crate::providers::{Flow, Kind};

/// What a chunk says, without the ids (checked separately).
#[derive(Debug, PartialEq)]
enum Ev {
    Role(u32),
    Text(u32, String),
    Start(u32, u32, String),
    Args(u32, u32, String),
    Finish(u32, String),
    Usage(u64, u64, u64),
}

fn describe(chunks: &[ChatChunk]) -> Vec<Ev> {
    let mut out = Vec::new();
    for c in chunks {
        if let Some(u) = &c.usage {
            assert!(c.choices.is_empty(), "usage chunks carry no choices");
            out.push(Ev::Usage(
                u.prompt_tokens,
                u.completion_tokens,
                u.total_tokens,
            ));
            continue;
        }
        assert_eq!(c.choices.len(), 1, "one choice per chunk");
        let ch = &c.choices[0];
        let d = &ch.delta;
        if d.role.is_some() {
            assert_eq!(d.role.as_deref(), Some("assistant"));
            out.push(Ev::Role(ch.index));
        }
        if let Some(t) = &d.content {
            out.push(Ev::Text(ch.index, t.clone()));
        }
        for t in d.tool_calls.iter().flatten() {
            let f = t.function.as_ref().unwrap();
            match (&t.id, &f.name) {
                (Some(id), Some(name)) => {
                    assert!(is_call_id(id), "{id}");
                    assert_eq!(t.kind.as_deref(), Some("function"));
                    assert_eq!(f.arguments.as_deref(), Some(""));
                    out.push(Ev::Start(ch.index, t.index, name.clone()));
                }
                _ => out.push(Ev::Args(ch.index, t.index, f.arguments.clone().unwrap())),
            }
        }
        if let Some(f) = &ch.finish_reason {
            out.push(Ev::Finish(ch.index, f.clone()));
        }
    }
    out
}

/// Feeds raw SSE bytes through the real decoder in `split`-byte pieces.
fn run_stream_on(
    raw: &str,
    split: usize,
    t: &Target,
) -> (Vec<ChatChunk>, Result<(), AdapterError>) {
    let req = request(r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}"#);
    let mut tr = ADAPTER.stream_translator(&req, t);
    let mut decoder = Decoder::new(ADAPTER.framing());
    let mut events = Vec::new();
    let mut out = Vec::new();
    for piece in raw.as_bytes().chunks(split) {
        decoder.push(piece, &mut events).unwrap();
        for ev in events.drain(..) {
            match tr.on_event(&ev, &mut out) {
                Ok(flow) => assert_eq!(flow, Flow::Continue, "Gemini streams have no terminator"),
                Err(e) => return (out, Err(e)),
            }
        }
    }
    decoder.finish(&mut events).unwrap();
    for ev in events.drain(..) {
        if let Err(e) = tr.on_event(&ev, &mut out) {
            return (out, Err(e));
        }
    }
    let end = tr.finish(&mut out);
    (out, end)
}

fn run_stream(raw: &str, split: usize) -> (Vec<ChatChunk>, Result<(), AdapterError>) {
    run_stream_on(raw, split, &gemini_target())
}

const SPLITS: [usize; 9] = [1, 2, 3, 5, 7, 13, 61, 256, 1 << 20];

fn assert_one_identity(chunks: &[ChatChunk], id: &str, model: &str) {
    for c in chunks {
        assert_eq!(c.id, id);
        assert_eq!(c.model, model);
        assert_eq!(c.created, chunks[0].created);
        assert_eq!(c.object, "chat.completion.chunk");
    }
}

#[test]
fn text_stream_at_any_split() {
    for split in SPLITS {
        let (chunks, end) = run_stream(fixture!("stream_text.sse"), split);
        end.unwrap();
        assert_eq!(
            describe(&chunks),
            vec![
                Ev::Role(0),
                Ev::Text(0, "Bonjour".into()),
                Ev::Text(0, " ! Le café est prêt ☕ — voulez-vous du lait".into()),
                Ev::Text(0, " ?\n".into()),
                Ev::Finish(0, "stop".into()),
                Ev::Usage(8, 17, 25),
            ],
            "split {split}"
        );
        assert_one_identity(&chunks, "YfJMyR8bhO2JqNOpflco3D", "gemini-2.0-flash");
        assert!(!chunks[0].is_content(), "the role chunk is not content");
        assert!(chunks[1].is_content());
        assert!(chunks.last().unwrap().is_usage_only());
    }
}

#[test]
fn function_call_stream_at_any_split() {
    for split in SPLITS {
        let (chunks, end) = run_stream(fixture!("stream_function_calls.sse"), split);
        end.unwrap();
        let weather = |city: &str| format!(r#"{{"location":"{city}","unit":"celsius"}}"#);
        assert_eq!(
            describe(&chunks),
            vec![
                Ev::Role(0),
                Ev::Text(0, "I will look both up.".into()),
                Ev::Start(0, 0, "get_weather".into()),
                Ev::Args(0, 0, weather("Paris")),
                Ev::Start(0, 1, "get_weather".into()),
                Ev::Args(0, 1, weather("London")),
                Ev::Start(0, 2, "get_time".into()),
                Ev::Args(0, 2, "{}".into()),
                Ev::Finish(0, "tool_calls".into()),
                Ev::Usage(112, 47 + 66, 225),
            ],
            "split {split}"
        );
        assert_one_identity(&chunks, "Qm3xT0v8Ka2Lz1YpRn4sWc", "gemini-2.5-flash");
        let ids: HashSet<String> = chunks
            .iter()
            .flat_map(|c| &c.choices)
            .flat_map(|c| c.delta.tool_calls.iter().flatten())
            .filter_map(|t| t.id.clone())
            .collect();
        assert_eq!(ids.len(), 3, "unique call ids");
        for c in &chunks {
            for t in c
                .choices
                .iter()
                .flat_map(|c| c.delta.tool_calls.iter().flatten())
            {
                if t.id.is_none() {
                    let args = t.function.as_ref().unwrap().arguments.as_deref().unwrap();
                    assert!(serde_json::from_str::<Value>(args).unwrap().is_object());
                }
            }
        }
    }
}

#[test]
fn an_error_event_ends_the_stream_with_the_upstream_error() {
    for split in SPLITS {
        let (chunks, end) = run_stream(fixture!("stream_error.sse"), split);
        assert_eq!(
            describe(&chunks),
            vec![
                Ev::Role(0),
                Ev::Text(0, "The first half of the answer".into())
            ]
        );
        match end {
            Err(AdapterError::Upstream(e)) => {
                assert_eq!(e.status, 503);
                assert_eq!(
                    e.message,
                    "The model is overloaded. Please try again later."
                );
                assert_eq!(e.code.as_deref(), Some("unavailable"));
            }
            other => panic!("split {split}: {other:?}"),
        }
    }
}

#[test]
fn an_error_event_before_any_content_is_an_error_too() {
    let raw = "data: {\"error\": {\"code\": 429,\"message\": \"Resource has been exhausted (e.g. check quota).\",\"status\": \"RESOURCE_EXHAUSTED\",\"details\": [{\"@type\": \"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\": \"2s\"}]}}\r\n\r\n";
    let (chunks, end) = run_stream(raw, 7);
    assert!(chunks.is_empty());
    match end {
        Err(AdapterError::Upstream(e)) => {
            assert_eq!(
                (e.status, e.retry_after),
                (429, Some(Duration::from_secs(2)))
            )
        }
        other => panic!("{other:?}"),
    }
    // No code: the status name decides; neither: 500.
    let (_, end) = run_stream("data: {\"error\": {\"status\": \"UNAVAILABLE\"}}\n\n", 3);
    assert!(matches!(end, Err(AdapterError::Upstream(e)) if e.status == 503));
    let (_, end) = run_stream("data: {\"error\": {\"message\": \"?\"}}\n\n", 3);
    assert!(matches!(end, Err(AdapterError::Upstream(e)) if e.status == 500));
}

#[test]
fn a_blocked_prompt_stream_finishes_with_content_filter() {
    for split in SPLITS {
        let (chunks, end) = run_stream(fixture!("stream_blocked.sse"), split);
        end.unwrap();
        assert_eq!(
            describe(&chunks),
            vec![
                Ev::Role(0),
                Ev::Finish(0, "content_filter".into()),
                Ev::Usage(21, 0, 21)
            ]
        );
        assert_one_identity(&chunks, "Wd4sLk9QeB3nZt7Ypa0XfM", "gemini-2.0-flash");
    }
}

#[test]
fn a_stream_cut_before_finish_reason_is_a_protocol_error() {
    let raw = fixture!("stream_text.sse");
    let first_two: String = raw.split_inclusive("\r\n\r\n").take(2).collect();
    let (chunks, end) = run_stream(&first_two, 5);
    assert_eq!(describe(&chunks).len(), 3);
    match end {
        Err(AdapterError::Protocol(m)) => assert!(m.contains("finishReason")),
        other => panic!("{other:?}"),
    }
    let (chunks, end) = run_stream("", 1);
    assert!(chunks.is_empty() && matches!(end, Err(AdapterError::Protocol(_))));
}

#[test]
fn garbage_in_a_stream_is_a_protocol_error() {
    for raw in [
        "data: not json\n\n",
        "data: [DONE]\n\n",
        "data: {}\n\n",
        "data: {\"choices\":[]}\n\n",
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"functionCall\": {}}]}}]}\n\n",
    ] {
        let (_, end) = run_stream(raw, 4);
        assert!(matches!(end, Err(AdapterError::Protocol(_))), "{raw:?}");
    }
}

#[test]
fn a_stream_without_ids_gets_one_generated_id_and_the_target_model() {
    let raw = "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"a\"}]}}]}\n\n\
               data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"b\"}]},\"finishReason\": \"MAX_TOKENS\"}]}\n\n";
    let t = target_with(Kind::Gemini, "http://h", "gemini-exp", |_| {});
    let (chunks, end) = run_stream_on(raw, 3, &t);
    end.unwrap();
    assert_eq!(
        describe(&chunks),
        vec![
            Ev::Role(0),
            Ev::Text(0, "a".into()),
            Ev::Text(0, "b".into()),
            Ev::Finish(0, "length".into())
        ],
        "no usageMetadata, no usage chunk"
    );
    let id = chunks[0].id.clone();
    assert!(id.starts_with("chatcmpl-") && id.len() > "chatcmpl-".len());
    assert_one_identity(&chunks, &id, "gemini-exp");
}

#[test]
fn streamed_candidates_keep_their_own_choice_and_call_counter() {
    let raw = concat!(
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"functionCall\": {\"name\": \"f\"}}]},\"index\": 0},",
        "{\"content\": {\"parts\": [{\"text\": \"x\"}]},\"index\": 1}],\"responseId\": \"r\"}\n\n",
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"functionCall\": {\"name\": \"g\",\"args\": {\"k\": 1}}}]},\"index\": 1,\"finishReason\": \"STOP\"},",
        "{\"content\": {\"parts\": [{\"text\": \"\"}]},\"index\": 0,\"finishReason\": \"STOP\"}],",
        "\"usageMetadata\": {\"promptTokenCount\": 3,\"candidatesTokenCount\": 4}}\n\n",
    );
    let (chunks, end) = run_stream(raw, 9);
    end.unwrap();
    assert_eq!(
        describe(&chunks),
        vec![
            Ev::Role(0),
            Ev::Start(0, 0, "f".into()),
            Ev::Args(0, 0, "{}".into()),
            Ev::Role(1),
            Ev::Text(1, "x".into()),
            Ev::Start(1, 0, "g".into()),
            Ev::Args(1, 0, r#"{"k":1}"#.into()),
            Ev::Finish(0, "tool_calls".into()),
            Ev::Finish(1, "tool_calls".into()),
            Ev::Usage(3, 4, 7),
        ]
    );
    assert_one_identity(&chunks, "r", "gemini-2.0-flash");
}

#[test]
fn thought_parts_and_empty_text_are_not_streamed() {
    let raw = "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"hmm\", \"thought\": true},{\"text\": \"\"},{\"text\": \"ok\"}]},\"finishReason\": \"STOP\"}],\"usageMetadata\": {\"promptTokenCount\": 1,\"candidatesTokenCount\": 1,\"thoughtsTokenCount\": 5}}\n\n";
    let (chunks, end) = run_stream(raw, 2);
    end.unwrap();
    assert_eq!(
        describe(&chunks),
        vec![
            Ev::Role(0),
            Ev::Text(0, "ok".into()),
            Ev::Finish(0, "stop".into()),
            Ev::Usage(1, 6, 7)
        ]
    );
}

#[test]
fn finish_is_idempotent() {
    let req = request(r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}"#);
    let mut tr = ADAPTER.stream_translator(&req, &gemini_target());
    let mut out = Vec::new();
    let ev = crate::http::sse::Event {
        event: None,
        data: r#"{"candidates":[{"content":{"parts":[{"text":"a"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":1}}"#.into(),
    };
    tr.on_event(&ev, &mut out).unwrap();
    tr.finish(&mut out).unwrap();
    let n = out.len();
    tr.finish(&mut out).unwrap();
    assert_eq!(out.len(), n, "usage reported once");
}
