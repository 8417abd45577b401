//! Every error the client can see, and the ONE mapping from it to an HTTP status and
//! OpenAI's error body `{"error":{"message","type","param","code"}}`.

use std::time::Duration;

use http::{HeaderValue, StatusCode};
use serde_json::json;

use crate::providers::UpstreamError;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    ProviderRejected {
        message: String,
        code: Option<String>,
    },
    #[error("invalid or missing API key; send `Authorization: Bearer <key>`")]
    Unauthorized,
    #[error("the model `{0}` does not exist or no route serves it")]
    ModelNotFound(String),
    #[error("unknown path {0}")]
    NotFound(String),
    #[error("method {0} is not allowed on this path")]
    MethodNotAllowed(String),
    #[error("request body exceeds the limit of {0} bytes")]
    TooLarge(u64),
    #[error("the request body did not arrive within {0} seconds")]
    BodyTimeout(u64),
    /// An upstream error passed on without failover (status not in `on_status`).
    #[error("{provider}: {}", error.message)]
    Upstream {
        provider: String,
        error: UpstreamError,
    },
    #[error("{0}")]
    RateLimited(String, Duration),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    AllFailed(String),
    /// No target could even be tried. `rate_limited`: some skipped target is cooling
    /// from a rate limit, which makes this a 429 rather than a 503.
    #[error("{message}")]
    NoProvider {
        message: String,
        retry_after: Option<Duration>,
        rate_limited: bool,
    },
}

/// What the client receives for a [`ProxyError`].
pub struct Rendered {
    pub status: StatusCode,
    pub retry_after: Option<HeaderValue>,
    pub body: serde_json::Value,
}

impl ProxyError {
    pub fn render(&self) -> Rendered {
        use ProxyError::*;
        let (status, kind, code): (StatusCode, &str, String) = match self {
            BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_request".into(),
            ),
            ProviderRejected { code, .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                code.clone().unwrap_or_else(|| "invalid_request".into()),
            ),
            Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid_api_key".into(),
            ),
            ModelNotFound(_) => (
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "model_not_found".into(),
            ),
            NotFound(_) => (
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "not_found".into(),
            ),
            MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request_error",
                "method_not_allowed".into(),
            ),
            BodyTimeout(_) => (
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request_error",
                "request_timeout".into(),
            ),
            TooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request_too_large".into(),
            ),
            Upstream { error, .. } => upstream_status(error),
            RateLimited(..) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "rate_limited".into(),
            ),
            Timeout(_) => (
                StatusCode::GATEWAY_TIMEOUT,
                "timeout_error",
                "upstream_timeout".into(),
            ),
            AllFailed(_) => (
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "upstream_failed".into(),
            ),
            NoProvider {
                rate_limited: true, ..
            } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "rate_limited".into(),
            ),
            NoProvider { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "no_provider_available".into(),
            ),
        };
        let retry_after = match self {
            RateLimited(_, d) => Some(retry_after_value(*d)),
            NoProvider { retry_after, .. } => retry_after.map(retry_after_value),
            _ => None,
        };
        Rendered {
            status,
            retry_after,
            body: json!({"error": {"message": self.to_string(), "type": kind, "param": null, "code": code}}),
        }
    }
}

/// An upstream error handed on: 5xx become 502 (the proxy's upstream failed);
/// 4xx keep their status.
fn upstream_status(e: &UpstreamError) -> (StatusCode, &'static str, String) {
    if e.status >= 500 {
        return (
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "upstream_failed".into(),
        );
    }
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let (kind, code) = match e.status {
        401 => ("authentication_error", "invalid_api_key"),
        403 => ("permission_error", "permission_denied"),
        404 => ("invalid_request_error", "not_found"),
        429 => ("rate_limit_error", "rate_limited"),
        _ => ("invalid_request_error", "invalid_request"),
    };
    (status, kind, e.code.clone().unwrap_or_else(|| code.into()))
}

/// Whole seconds, rounded up, at least 1.
pub fn retry_after_value(d: Duration) -> HeaderValue {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    HeaderValue::from(secs.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

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
                ProxyError::RateLimited("x".into(), Duration::from_millis(1500)),
                429,
                "rate_limit_error",
                "rate_limited",
            ),
            (
                ProxyError::AllFailed("x".into()),
                502,
                "upstream_error",
                "upstream_failed",
            ),
            (
                ProxyError::NoProvider {
                    message: "all disabled".into(),
                    retry_after: None,
                    rate_limited: false,
                },
                503,
                "service_unavailable",
                "no_provider_available",
            ),
            (
                ProxyError::NoProvider {
                    message: "cooling".into(),
                    retry_after: Some(Duration::from_secs(3)),
                    rate_limited: true,
                },
                429,
                "rate_limit_error",
                "rate_limited",
            ),
            (
                ProxyError::Timeout("x".into()),
                504,
                "timeout_error",
                "upstream_timeout",
            ),
            (
                ProxyError::Upstream {
                    provider: "p".into(),
                    error: UpstreamError::new(501, "nope"),
                },
                502,
                "upstream_error",
                "upstream_failed",
            ),
        ];
        for (err, status, kind, code) in cases {
            let r = err.render();
            assert_eq!(r.status.as_u16(), status, "{err:?}");
            assert_eq!(r.body["error"]["type"], kind, "{err:?}");
            assert_eq!(r.body["error"]["code"], code, "{err:?}");
            assert!(r.body["error"]["param"].is_null());
        }
        let r = ProxyError::RateLimited("x".into(), Duration::from_millis(1500)).render();
        assert_eq!(r.retry_after.unwrap(), "2");
    }
}
