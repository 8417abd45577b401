//! Anthropic error bodies → [`UpstreamError`]: a non-2xx answer's, and the error
//! inside a 200 body or an event stream.

use http::StatusCode;
use serde::Deserialize;

use crate::providers::{excerpt, FailureClass, UpstreamError};

/// `{"type":"error","error":{"type","message"}}`'s inner object.
#[derive(Debug, Deserialize)]
pub(super) struct ErrorBody {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

impl ErrorBody {
    /// The normalised error. `status` is the HTTP status when there was one; an error
    /// inside a 200 body or stream gets the status its type stands for.
    pub(super) fn into_upstream(self, status: Option<u16>) -> UpstreamError {
        let (typical, kind, code) = classify(&self.kind, &self.message);
        // An account out of credit answers 400 (or 402 billing_error), but it is
        // this provider that cannot serve, not the request that is bad: say 403,
        // which fails over without counting against the circuit.
        let billing = is_billing(&self.kind, &self.message);
        let status = if billing {
            403
        } else {
            status.unwrap_or(typical)
        };
        let class = if billing {
            FailureClass::Quota
        } else if self.kind == "invalid_request_error" && is_context_too_long(&self.message) {
            FailureClass::ContextTooLong
        } else {
            FailureClass::of_status(status)
        };
        let message = if self.message.is_empty() {
            format!("upstream reported {}", self.kind)
        } else {
            self.message
        };
        UpstreamError {
            status,
            class,
            message,
            kind: Some(kind.unwrap_or(self.kind)),
            code: code.map(str::to_string),
            retry_after: None,
        }
    }
}

/// An Anthropic error type → (the status it stands for, OpenAI-style type, code).
/// `None` as type keeps Anthropic's.
fn classify(kind: &str, message: &str) -> (u16, Option<String>, Option<&'static str>) {
    let (status, openai_type, code) = match kind {
        "invalid_request_error" => (400, "invalid_request_error", "invalid_request"),
        "authentication_error" => (401, "authentication_error", "invalid_api_key"),
        "billing_error" => (402, "insufficient_quota", "insufficient_quota"),
        "permission_error" => (403, "permission_error", "permission_denied"),
        "not_found_error" if message.starts_with("model:") => {
            (404, "invalid_request_error", "model_not_found")
        }
        "not_found_error" => (404, "invalid_request_error", "not_found"),
        "request_too_large" => (413, "invalid_request_error", "request_too_large"),
        "rate_limit_error" => (429, "rate_limit_error", "rate_limited"),
        "api_error" => (500, "server_error", "server_error"),
        "timeout_error" => (504, "timeout_error", "upstream_timeout"),
        "overloaded_error" => (529, "server_error", "overloaded"),
        _ => return (500, None, None),
    };
    (status, Some(openai_type.to_string()), Some(code))
}

/// "prompt is too long: 208656 tokens > 200000 maximum", or the input and
/// `max_tokens` together: "input length and `max_tokens` exceed context limit: 188240
/// + 21333 > 200000, decrease input length or `max_tokens` and try again".
fn is_context_too_long(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("prompt is too long") || m.contains("exceed context limit")
}

fn is_billing(kind: &str, message: &str) -> bool {
    kind == "billing_error"
        || (kind == "invalid_request_error"
            && message.to_ascii_lowercase().contains("credit balance"))
}

/// A non-2xx answer: Anthropic's error body, or an excerpt of whatever came instead.
pub(super) fn parse_error(status: StatusCode, body: &[u8]) -> UpstreamError {
    #[derive(Deserialize)]
    struct Outer {
        error: ErrorBody,
    }
    match serde_json::from_slice::<Outer>(body) {
        Ok(o) if !o.error.kind.is_empty() || !o.error.message.is_empty() => {
            o.error.into_upstream(Some(status.as_u16()))
        }
        _ => UpstreamError::new(status.as_u16(), excerpt(status, body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_out_of_credit_fails_over_like_a_403() {
        let low = br#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}}"#;
        assert_eq!(parse_error(StatusCode::BAD_REQUEST, low).status, 403);
        let billing =
            br#"{"type":"error","error":{"type":"billing_error","message":"billing issue"}}"#;
        assert_eq!(
            parse_error(StatusCode::PAYMENT_REQUIRED, billing).status,
            403
        );
        let bad = br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too large"}}"#;
        assert_eq!(
            parse_error(StatusCode::BAD_REQUEST, bad).status,
            400,
            "a real bad request stays 400"
        );
    }

    #[test]
    fn error_bodies_map_to_openai_types_and_codes() {
        let cases: [(&[u8], u16, &str, &str, &str); 5] = [
            (
                include_bytes!("../../../fixtures/anthropic/error_overloaded.json"),
                529,
                "server_error",
                "overloaded",
                "Overloaded",
            ),
            (
                include_bytes!("../../../fixtures/anthropic/error_invalid_request.json"),
                400,
                "invalid_request_error",
                "invalid_request",
                "messages.1.content.0.tool_use.input: Input should be a valid dictionary",
            ),
            (
                include_bytes!("../../../fixtures/anthropic/error_rate_limit.json"),
                429,
                "rate_limit_error",
                "rate_limited",
                "This request would exceed the rate limit",
            ),
            (
                include_bytes!("../../../fixtures/anthropic/error_authentication.json"),
                401,
                "authentication_error",
                "invalid_api_key",
                "invalid x-api-key",
            ),
            (
                include_bytes!("../../../fixtures/anthropic/error_not_found.json"),
                404,
                "invalid_request_error",
                "model_not_found",
                "model: claude-sonnet-9",
            ),
        ];
        for (body, status, kind, code, message) in cases {
            let e = parse_error(StatusCode::from_u16(status).unwrap(), body);
            assert_eq!(e.status, status);
            assert_eq!(e.kind.as_deref(), Some(kind));
            assert_eq!(e.code.as_deref(), Some(code));
            assert!(e.message.starts_with(message), "{}", e.message);
        }
    }

    #[test]
    fn the_http_status_wins_and_unknown_types_are_kept() {
        // An overloaded body behind a 503 stays a 503: the status is what fails over.
        let e = parse_error(
            StatusCode::SERVICE_UNAVAILABLE,
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert_eq!(e.status, 503);
        let e = parse_error(
            StatusCode::CONFLICT,
            br#"{"type":"error","error":{"type":"conflict_error","message":"busy"}}"#,
        );
        assert_eq!(
            (e.status, e.kind.as_deref(), e.code, e.message.as_str()),
            (409, Some("conflict_error"), None, "busy")
        );
    }

    #[test]
    fn unreadable_error_bodies_are_excerpted() {
        let e = parse_error(StatusCode::BAD_GATEWAY, b"<html>cloudflare</html>");
        assert_eq!(e.status, 502);
        assert!(e.message.contains("cloudflare"), "{}", e.message);
        assert!(e.kind.is_none());
        let e = parse_error(StatusCode::INTERNAL_SERVER_ERROR, br#"{"error":{}}"#);
        assert!(e.message.contains("500"), "{}", e.message);
        let e = parse_error(StatusCode::INTERNAL_SERVER_ERROR, b"");
        assert_eq!(e.message, "upstream answered 500 Internal Server Error");
    }
}
