//! Every stream translator and stream renderer: a provider's streamed body, split
//! anywhere, decoded with the kind's framing, translated into canonical chunks the way
//! the failover walk reads them, rendered by the front door that asked, and assembled
//! into the whole answer the cache would keep. Whatever the upstream sent, the client
//! receives well-formed SSE whose every `data:` is JSON (or `[DONE]`).
//! Input: selector (front door × request variant × provider), piece size, body.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use understudy::canonical::Assembler;
use understudy::error::ProxyError;
use understudy::failover::stream::StreamError;
use understudy::http::sse::{Decoder, Event};
use understudy::providers::{adapter_for, AdapterError, Flow, StreamTranslator};
use understudy_fuzz::{assert_client_sse, doors, is_json, pieces, world};

/// Streamed requests per front door (chat, Responses, Messages): plain with a tool,
/// and a variant whose translation differs (JSON output, thinking).
const REQUESTS: [[&str; 2]; 3] = [
    [
        r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}"#,
        r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}}}"#,
    ],
    [
        r#"{"model":"m","stream":true,"input":"hi","tools":[{"type":"function","name":"f","parameters":{"type":"object"}}]}"#,
        r#"{"model":"m","stream":true,"input":"hi","text":{"format":{"type":"json_schema","name":"x","schema":{"type":"object"}}}}"#,
    ],
    [
        r#"{"model":"m","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"f","input_schema":{"type":"object"}}]}"#,
        r#"{"model":"m","max_tokens":2048,"stream":true,"thinking":{"type":"enabled","budget_tokens":1024},"messages":[{"role":"user","content":"hi"}]}"#,
    ],
];

/// Upstream events through `translator` as `UpstreamStream::translate` feeds them:
/// nothing after the end marker or the first error counts.
fn translate(
    translator: &mut dyn StreamTranslator,
    events: &mut Vec<Event>,
    out: &mut Vec<understudy::canonical::ChatChunk>,
    done: &mut bool,
) -> Result<(), StreamError> {
    for event in events.drain(..) {
        if *done {
            break;
        }
        if translator.on_event(&event, out)? == Flow::Done {
            *done = true;
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let [select, every, body @ ..] = data else {
        return;
    };
    let select = usize::from(*select);
    let w = world::world();
    let target = &w.targets[select % w.targets.len()];
    let door = (select / w.targets.len()) % REQUESTS.len();
    let variant = (select / w.targets.len() / REQUESTS.len()) % 2;
    let Ok(turn) = doors::begin(door, REQUESTS[door][variant].as_bytes()) else {
        return;
    };
    let adapter = adapter_for(target.provider.kind);
    let mut translator = adapter.stream_translator(turn.request(), target);
    let mut decoder = Decoder::new(adapter.framing());
    let (mut events, mut chunks, mut done) = (Vec::new(), Vec::new(), false);
    let mut result = Ok(());
    for piece in pieces(body, *every) {
        result = decoder
            .push(piece, &mut events)
            .map_err(|e| StreamError::Protocol(e.to_string()))
            .and_then(|()| translate(translator.as_mut(), &mut events, &mut chunks, &mut done));
        if result.is_err() || done {
            break;
        }
    }
    if result.is_ok() && !done {
        result = decoder
            .finish(&mut events)
            .map_err(|e| StreamError::Protocol(e.to_string()))
            .and_then(|()| translate(translator.as_mut(), &mut events, &mut chunks, &mut done))
            .and_then(|()| match done {
                true => Ok(()),
                false => translator.finish(&mut chunks).map_err(|e| match e {
                    AdapterError::Protocol(m) => StreamError::Broken(m),
                    other => other.into(),
                }),
            });
    }

    let mut render = turn.stream_renderer();
    let mut assembler = Assembler::default();
    let mut out = BytesMut::new();
    for chunk in chunks {
        assembler.push(&chunk);
        render.chunk(chunk, &mut out);
    }
    match result {
        Ok(()) => render.done(&mut out),
        Err(e) => {
            let err = ProxyError::MidStream {
                provider: target.provider.name.clone(),
                failure: Box::new(e.into_outcome()),
            };
            render.error(&err, &mut out);
        }
    }
    if let Some(answer) = assembler.finish() {
        assert!(
            is_json(&turn.render_answer(&answer)),
            "the assembled answer is not JSON"
        );
    }

    assert_client_sse(&out);
});
