//! Every non-streamed answer translator: a provider's body (success or error) into the
//! canonical answer, then rendered by the front door that asked, whole (JSON) and
//! replayed as a stream (SSE of JSON).
//! Input: selector (front door × provider × status), then the body.
#![no_main]

use http::{HeaderMap, StatusCode};
use libfuzzer_sys::fuzz_target;
use understudy::frontdoor::replay_stream;
use understudy::providers::adapter_for;
use understudy_fuzz::{assert_client_sse, doors, is_json, world};

/// Statuses whose bodies the adapters read differently.
const STATUSES: [u16; 8] = [400, 401, 403, 404, 429, 500, 503, 529];

fuzz_target!(|data: &[u8]| {
    let [select, body @ ..] = data else {
        return;
    };
    let select = usize::from(*select);
    let w = world::world();
    let target = &w.targets[select % w.targets.len()];
    let door = select / w.targets.len();
    let Ok(turn) = doors::begin(door, REQUESTS[door % REQUESTS.len()].as_bytes()) else {
        return;
    };
    let adapter = adapter_for(target.provider.kind);
    let status = StatusCode::from_u16(STATUSES[select % STATUSES.len()]).unwrap_or_default();
    let _ = adapter.parse_error(status, &HeaderMap::new(), body);
    if let Ok(answer) = adapter.parse_response(turn.request(), target, body) {
        assert!(
            is_json(&turn.render_answer(&answer)),
            "the answer is not JSON"
        );
        assert_client_sse(&replay_stream(turn.stream_renderer().as_mut(), &answer));
    }
});

/// A plain request per front door (chat, Responses, Messages, count_tokens).
const REQUESTS: [&str; 4] = [
    r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
    r#"{"model":"m","input":"hi"}"#,
    r#"{"model":"m","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"#,
    r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
];
