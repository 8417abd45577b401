//! Error tests: Google's error bodies → statuses, failure classes and retry delays.

use std::time::Duration;

use http::{HeaderMap, StatusCode};

use super::*;

fn error_of(status: u16, body: &str) -> UpstreamError {
    ADAPTER.parse_error(
        StatusCode::from_u16(status).unwrap(),
        &HeaderMap::new(),
        body.as_bytes(),
    )
}

#[test]
fn resource_exhausted_is_a_rate_limit_with_its_retry_delay() {
    let e = error_of(429, fixture!("error_429_resource_exhausted.json"));
    assert_eq!(e.status, 429);
    assert_eq!(e.retry_after, Some(Duration::from_secs(37)));
    assert_eq!(e.kind.as_deref(), Some("rate_limit_error"));
    assert_eq!(e.code.as_deref(), Some("rate_limited"));
    assert!(e.message.starts_with("You exceeded your current quota"));
}

#[test]
fn an_invalid_key_400_counts_as_401() {
    let e = error_of(400, fixture!("error_400_api_key_invalid.json"));
    assert_eq!(e.status, 401);
    assert_eq!(e.kind.as_deref(), Some("authentication_error"));
    assert_eq!(e.code.as_deref(), Some("invalid_api_key"));
    assert_eq!(e.message, "API key not valid. Please pass a valid API key.");
    assert_eq!(e.retry_after, None);
}

#[test]
fn invalid_argument_stays_a_400() {
    let e = error_of(400, fixture!("error_400_invalid_argument.json"));
    assert_eq!(e.status, 400);
    assert_eq!(e.kind.as_deref(), Some("invalid_request_error"));
    assert_eq!(e.code.as_deref(), Some("invalid_argument"));
    assert!(e.message.contains("additionalProperties"));
}

#[test]
fn unavailable_is_a_503() {
    let e = error_of(503, fixture!("error_503_unavailable.json"));
    assert_eq!(
        (e.status, e.kind.as_deref(), e.code.as_deref()),
        (503, Some("server_error"), Some("unavailable"))
    );
    assert_eq!(
        e.message,
        "The model is overloaded. Please try again later."
    );
}

#[test]
fn other_statuses_are_classified() {
    for (status, name, kind, code) in [
        (
            403,
            "PERMISSION_DENIED",
            "permission_error",
            "permission_denied",
        ),
        (404, "NOT_FOUND", "invalid_request_error", "model_not_found"),
        (
            401,
            "UNAUTHENTICATED",
            "authentication_error",
            "invalid_api_key",
        ),
        (
            400,
            "FAILED_PRECONDITION",
            "invalid_request_error",
            "failed_precondition",
        ),
        (500, "INTERNAL", "server_error", "internal"),
        (
            504,
            "DEADLINE_EXCEEDED",
            "timeout_error",
            "upstream_timeout",
        ),
    ] {
        let e = error_of(
            status,
            &format!(r#"{{"error":{{"code":{status},"message":"m","status":"{name}"}}}}"#),
        );
        assert_eq!(
            (e.status, e.kind.as_deref(), e.code.as_deref()),
            (status, Some(kind), Some(code)),
            "{name}"
        );
    }
}

#[test]
fn retry_delays_parse_or_are_ignored() {
    let with_delay = |d: &str| {
        error_of(
            429,
            &format!(
                r#"{{"error":{{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"{d}"}}]}}}}"#
            ),
        )
        .retry_after
    };
    assert_eq!(with_delay("37s"), Some(Duration::from_secs(37)));
    assert_eq!(with_delay("1.5s"), Some(Duration::from_millis(1500)));
    assert_eq!(
        with_delay("29.723877525s"),
        Some(Duration::from_nanos(29_723_877_525))
    );
    assert_eq!(with_delay("0s"), Some(Duration::ZERO));
    for garbage in [
        "",
        "s",
        "37",
        "-1s",
        "1e3s",
        "abc",
        "1.2.3s",
        "99999999999999999999999s",
    ] {
        assert_eq!(with_delay(garbage), None, "{garbage:?}");
    }
}

#[test]
fn unreadable_error_bodies_are_excerpted() {
    let e = error_of(502, "<html>Bad Gateway</html>");
    assert_eq!(e.status, 502);
    assert!(e.message.contains("Bad Gateway"));
    let e = error_of(500, "");
    assert_eq!((e.status, e.message.contains("500")), (500, true));
    let e = error_of(400, r#"{"message":"not google's shape"}"#);
    assert!(e.message.contains("not google's shape"));
}

#[test]
fn array_and_string_error_shapes_are_read() {
    let e = error_of(
        429,
        r#"[{"error":{"code":429,"message":"slow down","status":"RESOURCE_EXHAUSTED"}}]"#,
    );
    assert_eq!((e.status, e.message.as_str()), (429, "slow down"));
    let e = error_of(500, r#"{"error":"boom"}"#);
    assert_eq!((e.status, e.message.as_str()), (500, "boom"));
    let e = error_of(500, r#"{"error":{"status":"INTERNAL"}}"#);
    assert_eq!(e.message, "INTERNAL");
}
