//! Errors in Anthropic's shape, `{"type":"error","error":{"type","message"}}`, with the
//! status mapping of DESIGN §8.

use http::StatusCode;
use serde_json::{json, Value};

use crate::error::{retry_after_value, tried, ProxyError, Why};
use crate::frontdoor::Rendered;

const OVERLOADED: u16 = 529;

/// The status and Anthropic error type for `err`.
pub(super) fn status_and_type(err: &ProxyError) -> (StatusCode, &'static str) {
    // Every target overloaded: the overloaded error Anthropic's SDKs retry on.
    if let ProxyError::Exhausted(e) = err {
        let tried = tried(&e.steps);
        if e.why == Why::Failed
            && !tried.is_empty()
            && tried.iter().all(|o| o.status() == Some(OVERLOADED))
        {
            let status =
                StatusCode::from_u16(OVERLOADED).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return (status, "overloaded_error");
        }
    }
    // Shed by the proxy's own concurrency limits: the overloaded error, as 503.
    if let ProxyError::Exhausted(e) = err {
        if e.why == Why::Overloaded {
            return (StatusCode::SERVICE_UNAVAILABLE, "overloaded_error");
        }
    }
    // A stream cut by the upstream's own error: name that error, as Anthropic would.
    if let ProxyError::MidStream { failure, .. } = err {
        if let Some(s @ (429 | OVERLOADED)) = failure.status() {
            let kind = if s == 429 {
                "rate_limit_error"
            } else {
                "overloaded_error"
            };
            return (
                StatusCode::from_u16(s).unwrap_or(StatusCode::BAD_GATEWAY),
                kind,
            );
        }
    }
    let status = err.status();
    let kind = match status.as_u16() {
        400 | 405 | 408 | 431 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        OVERLOADED => "overloaded_error",
        _ => "api_error",
    };
    (status, kind)
}

pub(super) fn body(err: &ProxyError) -> Value {
    let (_, kind) = status_and_type(err);
    let mut message = err.to_string();
    // Anthropic's own wording for it, whichever provider refused last, so a
    // Messages client that tests for it need not know the other providers' words.
    if matches!(err, ProxyError::ContextTooLong(_))
        && !message.to_ascii_lowercase().contains("prompt is too long")
    {
        message = format!("prompt is too long: {message}");
    }
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

pub(super) fn render(err: &ProxyError) -> Rendered {
    let (status, _) = status_and_type(err);
    Rendered {
        status,
        retry_after: err.retry_after().map(retry_after_value),
        body: body(err).to_string().into_bytes(),
    }
}
