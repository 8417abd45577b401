//! The Retry-After and rate-limit reset header parsers: any header values, at any
//! time of day, give a hint or none — and the hint renders as a Retry-After value.
//! Input: 4 bytes of clock offset, then `name: value` lines.
#![no_main]

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use understudy::error::retry_after_value;
use understudy::failover::classify::retry_hint;

fuzz_target!(|data: &[u8]| {
    let [a, b, c, d, lines @ ..] = data else {
        return;
    };
    // Any clock from 2020 on, over ~136 years.
    let now = SystemTime::UNIX_EPOCH
        + Duration::from_secs(1_577_836_800 + u64::from(u32::from_le_bytes([*a, *b, *c, *d])));
    let mut headers = HeaderMap::new();
    for line in lines.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name),
            HeaderValue::from_bytes(value.trim_ascii()),
        ) {
            headers.append(n, v);
        }
    }
    if let Some(hint) = retry_hint(&headers, now) {
        let _ = retry_after_value(hint);
    }
});
