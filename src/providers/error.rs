//! How an upstream failed, as data: the adapter reads a provider's error into an
//! [`UpstreamError`] with a [`FailureClass`] once, and the failover policy matches on
//! the class — it never parses a provider's wording itself.

use std::time::Duration;

use http::StatusCode;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// The client's request cannot be sent to this kind (400 before any call).
    #[error("{0}")]
    InvalidRequest(String),
    /// The upstream answered 200 with something that is not its format.
    #[error("malformed upstream answer: {0}")]
    Protocol(String),
    /// The upstream reported an error inside a 200 body or stream.
    #[error("{0}")]
    Upstream(UpstreamError),
}

/// What kind of failure an upstream error is, decided once by the adapter that read
/// it; the failover policy acts on this, not on status codes or wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureClass {
    /// The key is wrong or lacks permission (401, 403, Gemini's API_KEY_INVALID).
    Credential,
    /// The account is out of quota or credit (`insufficient_quota`, a low credit
    /// balance, 402): no use asking again for a long while.
    Quota,
    /// The model does not exist (any more) at this provider (404).
    ModelGone,
    /// Rate-limited: come back after the provider's hint (429).
    RateLimit,
    /// The request itself is at fault (400, 422): every provider would refuse it.
    CallerFault,
    /// The prompt does not fit the model's context window.
    ContextTooLong,
    /// The provider is unwell: 5xx, 408, overloaded, timeouts, broken connections.
    Transient,
}

impl FailureClass {
    /// The class a bare status implies, when the body says nothing more precise.
    pub fn of_status(status: u16) -> FailureClass {
        match status {
            401 | 403 => FailureClass::Credential,
            402 => FailureClass::Quota,
            404 => FailureClass::ModelGone,
            429 => FailureClass::RateLimit,
            408 | 500..=599 => FailureClass::Transient,
            _ => FailureClass::CallerFault,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Credential => "credential",
            FailureClass::Quota => "quota",
            FailureClass::ModelGone => "model_gone",
            FailureClass::RateLimit => "rate_limit",
            FailureClass::CallerFault => "caller_fault",
            FailureClass::ContextTooLong => "context_too_long",
            FailureClass::Transient => "transient",
        }
    }
}

/// An error as the upstream reported it, normalised for failover and for the client.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamError {
    /// The HTTP status this error amounts to (an overloaded event in a stream is 529).
    pub status: u16,
    pub class: FailureClass,
    pub message: String,
    /// OpenAI-style `type` / `code` to show the client, when the provider gave one.
    pub kind: Option<String>,
    pub code: Option<String>,
    /// A retry hint found in the body (Gemini's RetryInfo.retryDelay).
    pub retry_after: Option<Duration>,
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl UpstreamError {
    pub fn new(status: u16, message: impl Into<String>) -> UpstreamError {
        UpstreamError {
            status,
            class: FailureClass::of_status(status),
            message: message.into(),
            kind: None,
            code: None,
            retry_after: None,
        }
    }
}

/// Reads OpenAI's error body `{"error":{"message","type","code"}}`; anything else
/// becomes a generic message with a short excerpt.
pub(crate) fn openai_style_error(status: StatusCode, body: &[u8]) -> UpstreamError {
    #[derive(Deserialize)]
    struct Outer {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        #[serde(default)]
        message: Option<String>,
        #[serde(default, rename = "type")]
        kind: Option<String>,
        #[serde(default)]
        code: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Outer>(body) {
        Ok(o) => {
            let code = o.error.code.and_then(|c| match c {
                serde_json::Value::String(s) => Some(s),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
            let class = match (code.as_deref(), o.error.kind.as_deref()) {
                (Some("insufficient_quota"), _) | (_, Some("insufficient_quota")) => {
                    FailureClass::Quota
                }
                (Some("context_length_exceeded"), _) | (_, Some("exceed_context_size_error")) => {
                    FailureClass::ContextTooLong
                }
                // vLLM and other OpenAI-compatible servers give no code, only the
                // wording OpenAI once used.
                _ if status == StatusCode::BAD_REQUEST
                    && says_context_too_long(o.error.message.as_deref().unwrap_or("")) =>
                {
                    FailureClass::ContextTooLong
                }
                (Some("model_not_found"), _) if status != StatusCode::BAD_REQUEST => {
                    FailureClass::ModelGone
                }
                _ => FailureClass::of_status(status.as_u16()),
            };
            UpstreamError {
                status: status.as_u16(),
                class,
                message: o.error.message.unwrap_or_else(|| status.to_string()),
                kind: o.error.kind,
                code,
                retry_after: None,
            }
        }
        Err(_) => {
            let mut e = UpstreamError::new(status.as_u16(), excerpt(status, body));
            // vLLM before its `{"error": …}` envelope: `{"object":"error","message":…}`.
            if status == StatusCode::BAD_REQUEST
                && says_context_too_long(&String::from_utf8_lossy(body))
            {
                e.class = FailureClass::ContextTooLong;
            }
            e
        }
    }
}

/// OpenAI's "This model's maximum context length is N tokens…", which vLLM and
/// other OpenAI-compatible servers copy.
fn says_context_too_long(message: &str) -> bool {
    message.contains("maximum context length")
}

/// A short, printable summary of an unreadable error body.
pub(crate) fn excerpt(status: StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let text = text.trim();
    if text.is_empty() {
        format!("upstream answered {status}")
    } else {
        format!("upstream answered {status}: {text}")
    }
}

/// Key-shaped prefixes of the providers' credentials (OpenAI, Anthropic, Google,
/// Groq, xAI): what an upstream's error message may echo back.
const KEY_PREFIXES: &[&str] = &["sk-", "AIza", "gsk_", "xai-"];

/// Removes secrets from text an upstream wrote (error messages go to clients and
/// logs): the provider's own key wherever it appears, and any token that looks like a
/// key, even a partly masked one such as OpenAI's `sk-proj-AbCd****wXyZ`.
pub fn redact(text: &str, key: Option<&str>) -> String {
    let mut out = match key.filter(|k| k.len() >= 8) {
        Some(k) => text.replace(k, "[redacted]"),
        None => text.to_string(),
    };
    let is_token = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*');
    let mut i = 0;
    while i < out.len() {
        let rest = &out[i..];
        let starts_token = i == 0 || !out[..i].ends_with(is_token);
        match KEY_PREFIXES.iter().find(|p| rest.starts_with(*p)) {
            Some(prefix) if starts_token => {
                let len = rest.find(|c: char| !is_token(c)).unwrap_or(rest.len());
                if len >= prefix.len() + 6 {
                    out.replace_range(i..i + len, "[redacted]");
                    i += "[redacted]".len();
                } else {
                    i += len.max(1);
                }
            }
            _ => i += rest.chars().next().map_or(1, char::len_utf8),
        }
    }
    out
}

#[cfg(test)]
mod redact_tests {
    use super::redact;

    #[test]
    fn keys_and_key_shaped_tokens_are_removed() {
        let cases = [
            (
                "Incorrect API key provided: sk-proj-AbCd****wXyZ. See docs.",
                None,
                "Incorrect API key provided: [redacted]. See docs.",
            ),
            (
                "bad key my-secret-value-123 here",
                Some("my-secret-value-123"),
                "bad key [redacted] here",
            ),
            (
                "API key not valid: AIzaSyD-abcdefghijklmnop",
                None,
                "API key not valid: [redacted]",
            ),
            (
                "task-manager and risk-free stay",
                None,
                "task-manager and risk-free stay",
            ),
            ("sk-1 is short", None, "sk-1 is short"),
            (
                "é unicode sk-ant-api03-xyzxyzxyz ok",
                None,
                "é unicode [redacted] ok",
            ),
        ];
        for (text, key, want) in cases {
            assert_eq!(redact(text, key), want, "{text}");
        }
    }
}
