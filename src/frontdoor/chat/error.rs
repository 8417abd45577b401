//! The ONE mapping from a [`ProxyError`] to OpenAI's error body
//! `{"error":{"message","type","param","code"}}` (DESIGN §6's table).

use serde_json::json;

use crate::error::{retry_after_value, ProxyError, Why};
use crate::failover::classify::Outcome;
use crate::frontdoor::Rendered;
use crate::providers::UpstreamError;

/// OpenAI's `type` and `code` for `err`.
pub fn type_and_code(err: &ProxyError) -> (&'static str, String) {
    use ProxyError::*;
    let (kind, code) = match err {
        BadRequest(_) | InvalidParam { .. } => ("invalid_request_error", "invalid_request"),
        ProviderRejected { error, .. } => {
            let code = error.code.clone();
            return (
                "invalid_request_error",
                code.unwrap_or_else(|| "invalid_request".into()),
            );
        }
        Unauthorized => ("authentication_error", "invalid_api_key"),
        ModelNotFound(_) => ("invalid_request_error", "model_not_found"),
        NotFound(_) => ("invalid_request_error", "not_found"),
        MethodNotAllowed(_) => ("invalid_request_error", "method_not_allowed"),
        BodyTimeout(_) => ("invalid_request_error", "request_timeout"),
        TooLarge(_) => ("invalid_request_error", "request_too_large"),
        HeadersTooLarge(_) => ("invalid_request_error", "request_header_fields_too_large"),
        Upstream { error, .. } => return upstream(error),
        // OpenAI's own code for it, which clients test for to trim their history.
        ContextTooLong(_) => ("invalid_request_error", "context_length_exceeded"),
        Exhausted(e) => match e.why {
            Why::RateLimited | Why::NoneTried { rate_limited: true } => {
                ("rate_limit_error", "rate_limited")
            }
            Why::TimedOut => ("timeout_error", "upstream_timeout"),
            Why::Failed => ("upstream_error", "upstream_failed"),
            Why::AllDisabled | Why::NoneTried { .. } => {
                ("service_unavailable", "no_provider_available")
            }
            Why::Overloaded => ("service_unavailable", "overloaded"),
        },
        MidStream { failure, .. } | PassthroughFailed { failure, .. }
            if matches!(**failure, Outcome::Timeout(_)) =>
        {
            ("timeout_error", "upstream_timeout")
        }
        MidStream { .. } | PassthroughFailed { .. } => ("upstream_error", "upstream_failed"),
        PassthroughDisabled { .. } => ("service_unavailable", "no_provider_available"),
        ShuttingDown => ("service_unavailable", "shutting_down"),
        PreviousResponseNotFound(_) => ("invalid_request_error", "previous_response_not_found"),
        ResponseNotFound(_) => ("invalid_request_error", "not_found"),
        StateUnavailable(_) => ("service_unavailable", "state_unavailable"),
    };
    (kind, code.to_string())
}

/// An upstream error handed on: 5xx become 502 (the proxy's upstream failed);
/// 4xx keep their status and the provider's code when it gave one.
fn upstream(e: &UpstreamError) -> (&'static str, String) {
    if e.status >= 500 {
        return ("upstream_error", "upstream_failed".into());
    }
    let (kind, code) = match e.status {
        401 => ("authentication_error", "invalid_api_key"),
        403 => ("permission_error", "permission_denied"),
        404 => ("invalid_request_error", "not_found"),
        429 => ("rate_limit_error", "rate_limited"),
        _ => ("invalid_request_error", "invalid_request"),
    };
    (kind, e.code.clone().unwrap_or_else(|| code.into()))
}

/// The error object (`{"error": …}`) for a response body or a final stream event.
pub fn body(err: &ProxyError) -> serde_json::Value {
    let (kind, code) = type_and_code(err);
    let param = match err {
        ProxyError::PreviousResponseNotFound(_) => Some("previous_response_id"),
        ProxyError::InvalidParam { param, .. } => Some(param.as_str()),
        _ => None,
    };
    json!({"error": {"message": err.to_string(), "type": kind, "param": param, "code": code}})
}

pub fn render(err: &ProxyError) -> Rendered {
    Rendered {
        status: err.status(),
        retry_after: err.retry_after().map(retry_after_value),
        body: body(err).to_string().into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::error::Exhausted;

    fn exhausted(why: Why, retry_after: Option<Duration>) -> ProxyError {
        ProxyError::Exhausted(Exhausted {
            why,
            steps: Vec::new(),
            retry_after,
        })
    }

    #[test]
    fn statuses_types_and_codes_follow_the_contract() {
        let cases: Vec<(ProxyError, u16, &str, &str)> = vec![
            (
                ProxyError::BadRequest("x".into()),
                400,
                "invalid_request_error",
                "invalid_request",
            ),
            (
                ProxyError::Unauthorized,
                401,
                "authentication_error",
                "invalid_api_key",
            ),
            (
                ProxyError::ModelNotFound("m".into()),
                404,
                "invalid_request_error",
                "model_not_found",
            ),
            (
                ProxyError::NotFound("/x".into()),
                404,
                "invalid_request_error",
                "not_found",
            ),
            (
                ProxyError::MethodNotAllowed("GET".into()),
                405,
                "invalid_request_error",
                "method_not_allowed",
            ),
            (
                ProxyError::BodyTimeout(30),
                408,
                "invalid_request_error",
                "request_timeout",
            ),
            (
                ProxyError::TooLarge(1),
                413,
                "invalid_request_error",
                "request_too_large",
            ),
            (
                exhausted(Why::RateLimited, Some(Duration::from_millis(1500))),
                429,
                "rate_limit_error",
                "rate_limited",
            ),
            (
                exhausted(Why::Failed, None),
                502,
                "upstream_error",
                "upstream_failed",
            ),
            (
                exhausted(Why::AllDisabled, None),
                503,
                "service_unavailable",
                "no_provider_available",
            ),
            (
                exhausted(
                    Why::NoneTried { rate_limited: true },
                    Some(Duration::from_secs(3)),
                ),
                429,
                "rate_limit_error",
                "rate_limited",
            ),
            (
                exhausted(Why::TimedOut, None),
                504,
                "timeout_error",
                "upstream_timeout",
            ),
            (
                ProxyError::Upstream {
                    provider: "p".into(),
                    error: Box::new(UpstreamError::new(501, "nope")),
                },
                502,
                "upstream_error",
                "upstream_failed",
            ),
            (
                ProxyError::ContextTooLong(crate::error::TooLong {
                    refused: None,
                    estimate: None,
                    steps: Vec::new(),
                }),
                400,
                "invalid_request_error",
                "context_length_exceeded",
            ),
            (
                ProxyError::ShuttingDown,
                503,
                "service_unavailable",
                "shutting_down",
            ),
            (
                ProxyError::PassthroughDisabled {
                    provider: "openai".into(),
                    reason: "OPENAI_API_KEY is not set".into(),
                },
                503,
                "service_unavailable",
                "no_provider_available",
            ),
            (
                ProxyError::PassthroughFailed {
                    provider: "openai".into(),
                    failure: Box::new(Outcome::Refused("connection refused".into())),
                },
                502,
                "upstream_error",
                "upstream_failed",
            ),
            (
                ProxyError::PassthroughFailed {
                    provider: "openai".into(),
                    failure: Box::new(Outcome::Timeout(crate::upstream::Phase::FirstByte)),
                },
                504,
                "timeout_error",
                "upstream_timeout",
            ),
        ];
        for (err, status, kind, code) in cases {
            let r = render(&err);
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(r.status.as_u16(), status, "{err:?}");
            assert_eq!(body["error"]["type"], kind, "{err:?}");
            assert_eq!(body["error"]["code"], code, "{err:?}");
            assert!(body["error"]["param"].is_null());
        }
        let r = render(&exhausted(
            Why::RateLimited,
            Some(Duration::from_millis(1500)),
        ));
        assert_eq!(r.retry_after.unwrap(), "2");
    }

    #[test]
    fn a_field_at_fault_is_named_in_param() {
        let err = ProxyError::InvalidParam {
            param: "input[3].type".into(),
            message: "input[3].type: unknown".into(),
        };
        let r = render(&err);
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(r.status.as_u16(), 400);
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["code"], "invalid_request");
        assert_eq!(body["error"]["param"], "input[3].type");
        assert_eq!(body["error"]["message"], "input[3].type: unknown");
    }
}
