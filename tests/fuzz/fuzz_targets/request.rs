//! Every request translator: a client body through a front door into the canonical
//! request, then into the upstream request of every provider kind (and mode).
//! Input: front-door selector, then the client's JSON body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use understudy::providers::{adapter_for, build_for};
use understudy_fuzz::{doors, world::world};

fuzz_target!(|data: &[u8]| {
    let [door, body @ ..] = data else {
        return;
    };
    let Ok(turn) = doors::begin(usize::from(*door), body) else {
        return;
    };
    let req = turn.request();
    for target in &world().targets {
        let _ = build_for(req, target);
        // What a stream would start from: translators take their state from the request.
        let _ = adapter_for(target.provider.kind).stream_translator(req, target);
    }
});
