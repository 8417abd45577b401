//! The W3C `traceparent` / `tracestate` an attempt sends upstream: what the SDK's
//! `TraceContextPropagator` writes, without its `format!` and header-name parsing
//! (measured: a fifth of what an attempt span cost on the request path), and without
//! an empty `tracestate`.

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use opentelemetry::trace::{SpanContext, TraceFlags, TraceState};

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// `00-{trace id}-{span id}-{flags}`, lower-case hex; nothing for an invalid context.
pub(super) fn inject(cx: &SpanContext, headers: &mut HeaderMap) {
    if !cx.is_valid() {
        return;
    }
    let mut value = [b'-'; 55];
    value[..2].copy_from_slice(b"00");
    hex(&cx.trace_id().to_bytes(), &mut value[3..35]);
    hex(&cx.span_id().to_bytes(), &mut value[36..52]);
    hex(
        &[(cx.trace_flags() & TraceFlags::SAMPLED).to_u8()],
        &mut value[53..],
    );
    if let Ok(v) = HeaderValue::from_bytes(&value) {
        headers.insert(TRACEPARENT, v);
    }
    // The propagator also sends an empty one; W3C Trace Context: vendors "SHOULD
    // avoid sending them".
    if *cx.trace_state() != TraceState::NONE {
        if let Ok(v) = HeaderValue::try_from(cx.trace_state().header()) {
            headers.insert(TRACESTATE, v);
        }
    }
}

/// Lower-case hex, a byte's two digits at a time from a table made at compile time.
fn hex(bytes: &[u8], out: &mut [u8]) {
    const PAIRS: [[u8; 2]; 256] = {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut pairs = [[0; 2]; 256];
        let mut b = 0;
        while b < 256 {
            pairs[b] = [DIGITS[b >> 4], DIGITS[b & 0xf]];
            b += 1;
        }
        pairs
    };
    for (b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair.copy_from_slice(&PAIRS[usize::from(*b)]);
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::{SpanId, TraceContextExt, TraceId};
    use opentelemetry::Context;
    use opentelemetry_sdk::propagation::TraceContextPropagator;

    use super::*;

    /// The propagator's headers, less the empty `tracestate` it always adds.
    fn propagator(cx: &SpanContext) -> HeaderMap {
        let mut headers = HeaderMap::new();
        TraceContextPropagator::new().inject_context(
            &Context::new().with_remote_span_context(cx.clone()),
            &mut opentelemetry_http::HeaderInjector(&mut headers),
        );
        if headers.get(TRACESTATE).is_some_and(|v| v.is_empty()) {
            headers.remove(TRACESTATE);
        }
        headers
    }

    #[test]
    fn the_headers_are_the_propagators() {
        let state = TraceState::from_key_value([("vendor", "x1"), ("b", "2")]).unwrap();
        for (flags, state) in [
            (TraceFlags::SAMPLED, TraceState::NONE),
            (TraceFlags::new(0xff), state),
            (TraceFlags::default(), TraceState::NONE),
        ] {
            let cx = SpanContext::new(
                TraceId::from(0x0af7651916cd43dd8448eb211c80319c),
                SpanId::from(0x00f067aa0ba902b7),
                flags,
                false,
                state,
            );
            let mut ours = HeaderMap::new();
            inject(&cx, &mut ours);
            assert_eq!(ours, propagator(&cx));
            let with_state = *cx.trace_state() != TraceState::NONE;
            assert_eq!(ours.len(), if with_state { 2 } else { 1 });
        }
    }

    #[test]
    fn an_invalid_context_sends_nothing() {
        let mut headers = HeaderMap::new();
        inject(&SpanContext::NONE, &mut headers);
        assert!(headers.is_empty());
        assert_eq!(headers, propagator(&SpanContext::NONE));
    }
}
