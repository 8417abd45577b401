//! Request header limits (`server.max_header_bytes` each, `max_header_total_bytes`
//! in all), checked before anything is routed or sent upstream. hyper refuses an HTTP/1.1 head larger than its read buffer and h2 a
//! header list over its limit, both with 431; this check holds the per-header limit
//! (and the total, should those ever allow more) the same for both protocols.

use http::HeaderMap;

use crate::config::ConnLimits;
use crate::error::ProxyError;

pub(super) fn check(headers: &HeaderMap, limits: &ConnLimits) -> Result<(), ProxyError> {
    let mut total = 0usize;
    for (name, value) in headers {
        let size = name.as_str().len() + value.len();
        if size > limits.max_header_bytes {
            return Err(ProxyError::HeadersTooLarge(format!(
                "header {name} is {size} bytes; the limit is {} per header",
                limits.max_header_bytes
            )));
        }
        total += size;
    }
    if total > limits.max_header_total_bytes {
        return Err(ProxyError::HeadersTooLarge(format!(
            "the request headers are {total} bytes; the limit is {} in all",
            limits.max_header_total_bytes
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::HeaderValue;

    use super::*;

    const LIMITS: ConnLimits = ConnLimits {
        max_connections: 1,
        header_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        max_header_bytes: 100,
        max_header_total_bytes: 250,
    };

    fn headers(sizes: &[usize]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (i, n) in sizes.iter().enumerate() {
            let name = format!("x-h{i}");
            let value = "v".repeat(n - name.len());
            h.insert(
                http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(&value).expect("value"),
            );
        }
        h
    }

    #[test]
    fn limits_hold_per_header_and_in_all() {
        assert!(check(&headers(&[100, 100]), &LIMITS).is_ok());
        let one = check(&headers(&[101]), &LIMITS).expect_err("one too large");
        assert!(one.to_string().contains("x-h0 is 101 bytes"), "{one}");
        assert_eq!(
            one.status(),
            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        assert!(check(&headers(&[100, 100, 50]), &LIMITS).is_ok());
        let all = check(&headers(&[100, 100, 51]), &LIMITS).expect_err("too large in all");
        assert!(all.to_string().contains("251 bytes"), "{all}");
    }
}
