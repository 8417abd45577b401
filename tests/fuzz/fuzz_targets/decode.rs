//! The SSE and NDJSON decoders: whatever the bytes and however they are split, no
//! panic, and the same events (or the same error) as when they arrive in one piece.
//! Input: framing selector, piece size, then the upstream body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use understudy::http::sse::{DecodeError, Decoder, Event, Framing};
use understudy_fuzz::pieces;

fn decode(framing: Framing, pieces: &[&[u8]]) -> Result<Vec<Event>, DecodeError> {
    let mut d = Decoder::new(framing);
    let mut out = Vec::new();
    for p in pieces {
        d.push(p, &mut out)?;
    }
    d.finish(&mut out)?;
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    let [select, every, body @ ..] = data else {
        return;
    };
    let framing = if select & 1 == 0 {
        Framing::Sse
    } else {
        Framing::Ndjson
    };
    let whole = decode(framing, &[body]);
    let split = decode(framing, &pieces(body, *every));
    assert_eq!(whole, split, "split every {every} bytes");
});
