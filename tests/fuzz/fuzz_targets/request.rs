//! Every request translator: a client body through a front door into the canonical
//! request, then into the upstream request of every provider kind (and mode).
//! Every upstream request built carries a JSON body.
//! Input: front-door selector, then the client's JSON body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use understudy::providers::{adapter_for, build_for};
use understudy_fuzz::{doors, is_json, world::world};

fuzz_target!(|data: &[u8]| {
    let [door, body @ ..] = data else {
        return;
    };
    let Ok(turn) = doors::begin(usize::from(*door), body) else {
        return;
    };
    let req = turn.request();
    for target in &world().targets {
        if let Ok(upstream) = build_for(req, target) {
            // Every kind posts JSON: a body that is not would be the proxy's own fault.
            assert!(
                is_json(upstream.body()),
                "{}: the upstream request body is not JSON",
                target.label
            );
        }
        // What a stream would start from: translators take their state from the request.
        let _ = adapter_for(target.provider.kind).stream_translator(req, target);
    }
});
