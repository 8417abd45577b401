//! Gemini (the generativelanguage API, `/v1beta`): `POST {base_url}/v1beta/models/
//! {model}:generateContent`, streamed `:streamGenerateContent?alt=sse`, the key in
//! the `x-goog-api-key` header (never in the URL, so it cannot reach a log).
//!
//! Translation lives in [`request`] (with [`schema`] for tool and answer schemas),
//! [`response`] and [`stream`], embeddings (`:batchEmbedContents`) in [`embed`];
//! errors are read here.
//!
//! Errors are Google's `{"error": {"code", "message", "status", "details": [...]}}`:
//! - the effective status is the HTTP status (in a stream: `code`, else the one
//!   `status` maps to), except that a 400 whose `details` hold an `ErrorInfo` with
//!   reason `API_KEY_INVALID` counts as 401, so failover treats it like a bad key;
//! - a `RetryInfo.retryDelay` ("37s", "1.5s") is the retry hint;
//! - type/code: 401 authentication_error/invalid_api_key, 403 permission_error/
//!   permission_denied, 404 invalid_request_error/model_not_found, 429
//!   rate_limit_error/rate_limited, other 4xx invalid_request_error/<status in lower
//!   case, e.g. invalid_argument>, 504 timeout_error/upstream_timeout, other 5xx
//!   server_error/<status in lower case, e.g. unavailable>.

mod embed;
mod request;
mod response;
mod schema;
mod stream;
mod thoughts;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use super::settings::typed;
use super::{
    excerpt, get, join_url, json_post, set_secret, Adapter, AdapterError, FailureClass, Kind,
    KindSettings, NoSettings, Provider, StreamTranslator, Target, UpstreamError,
};
use crate::canonical::{ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, Origin};

pub(super) struct Gemini;

pub(super) static ADAPTER: Gemini = Gemini;

const API_KEY_HEADER: HeaderName = HeaderName::from_static("x-goog-api-key");

impl Adapter for Gemini {
    fn settings(&self, table: toml::Table) -> Result<Box<dyn KindSettings>, String> {
        Ok(Box::new(typed::<NoSettings>(Kind::Gemini, table)?))
    }

    /// A final assistant message is a prefill: the model continues it.
    fn build_continuation(
        &self,
        req: &ChatRequest,
        target: &Target,
    ) -> Option<Result<http::Request<Bytes>, AdapterError>> {
        Some(self.build_request(req, target))
    }

    fn build_request(
        &self,
        req: &ChatRequest,
        target: &Target,
    ) -> Result<http::Request<Bytes>, AdapterError> {
        let body = serde_json::to_vec(&request::translate(req, target)?)
            .map_err(|e| AdapterError::InvalidRequest(format!("request body: {e}")))?;
        let method = if req.is_stream() {
            "streamGenerateContent?alt=sse"
        } else {
            "generateContent"
        };
        post(target, method, body)
    }

    fn parse_response(
        &self,
        _req: &ChatRequest,
        target: &Target,
        body: &[u8],
    ) -> Result<ChatResponse, AdapterError> {
        response::parse(body, &target.model, &Origin::of(target))
    }

    fn build_embeddings(
        &self,
        req: &EmbedRequest,
        target: &Target,
    ) -> Result<http::Request<Bytes>, AdapterError> {
        post(
            target,
            "batchEmbedContents",
            embed::request(req, &target.model)?,
        )
    }

    fn parse_embeddings(
        &self,
        req: &EmbedRequest,
        target: &Target,
        body: &[u8],
    ) -> Result<EmbedResponse, AdapterError> {
        super::vectors::numbers_answer::<embed::Wire>(req, target, body)
    }

    fn parse_error(&self, status: StatusCode, _headers: &HeaderMap, body: &[u8]) -> UpstreamError {
        serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| upstream_error_in(&v, Some(status.as_u16())))
            .unwrap_or_else(|| UpstreamError::new(status.as_u16(), excerpt(status, body)))
    }

    fn stream_translator(&self, _req: &ChatRequest, target: &Target) -> Box<dyn StreamTranslator> {
        Box::new(stream::Translator::new(&target.model, Origin::of(target)))
    }

    fn probe_request(&self, provider: &Provider) -> Result<http::Request<Bytes>, AdapterError> {
        let mut req = get(join_url(&provider.base_url, "/v1beta/models")?, provider)?;
        with_key(&mut req, provider)?;
        Ok(req)
    }
}

/// `POST {base_url}/v1beta/models/{model}:{method}` with the key.
fn post(
    target: &Target,
    method: &str,
    body: Vec<u8>,
) -> Result<http::Request<Bytes>, AdapterError> {
    let path = format!("/v1beta/{}:{method}", model_path(&target.model));
    let mut out = json_post(
        join_url(&target.provider.base_url, &path)?,
        &target.provider,
        body,
    )?;
    with_key(&mut out, &target.provider)?;
    Ok(out)
}

fn with_key(req: &mut http::Request<Bytes>, provider: &Provider) -> Result<(), AdapterError> {
    match &provider.api_key {
        Some(key) => set_secret(req, API_KEY_HEADER, key.expose()),
        None => Ok(()),
    }
}

/// `models/{model}` (or the model's own `models/…` / `tunedModels/…` name), with
/// anything that could end the path segment (`?`, `#`, `%`, spaces, …) escaped.
fn model_path(model: &str) -> String {
    let name = model_name(model);
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The model's resource name: `models/{model}`, unless it already is one.
fn model_name(model: &str) -> String {
    if model.starts_with("models/") || model.starts_with("tunedModels/") {
        model.to_string()
    } else {
        format!("models/{model}")
    }
}

#[derive(Debug, Default, Deserialize)]
struct GoogleError {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    details: Vec<Value>,
}

/// The upstream error in `value` when it is Google's error shape (`{"error": …}`, or
/// that inside a one-element array as some Google endpoints send it). `http` is the
/// response status when there is one; inside a 200 stream the body's code decides.
pub(super) fn upstream_error_in(value: &Value, http: Option<u16>) -> Option<UpstreamError> {
    let inner = match value {
        Value::Object(o) => o.get("error")?,
        Value::Array(a) if a.len() == 1 => a.first()?.get("error")?,
        _ => return None,
    };
    let err = match inner {
        Value::String(s) => GoogleError {
            message: Some(s.clone()),
            ..GoogleError::default()
        },
        other => serde_json::from_value::<GoogleError>(other.clone()).unwrap_or_default(),
    };
    let status_name = err.status.as_deref().filter(|s| !s.is_empty());
    let mut status = http
        .or_else(|| {
            err.code
                .and_then(|c| u16::try_from(c).ok())
                .filter(|c| (400..=599).contains(c))
        })
        .or_else(|| status_name.and_then(http_of_status))
        .unwrap_or(500);
    if err.details.iter().any(is_api_key_invalid) {
        status = 401;
    }
    let retry_after = err.details.iter().find_map(retry_delay);
    let (kind, code) = classify(status, status_name);
    let message = err
        .message
        .filter(|m| !m.is_empty())
        .or_else(|| status_name.map(str::to_string))
        .unwrap_or_else(|| format!("Gemini reported an error ({status})"));
    let class = if status == 400 && message.contains("exceeds the maximum number of tokens") {
        FailureClass::ContextTooLong
    } else {
        FailureClass::of_status(status)
    };
    Some(UpstreamError {
        status,
        class,
        message,
        kind: Some(kind.to_string()),
        code: Some(code),
        retry_after,
    })
}

fn detail_type_is(detail: &Value, name: &str) -> bool {
    detail
        .get("@type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.rsplit('/').next() == Some(name))
}

fn is_api_key_invalid(detail: &Value) -> bool {
    detail_type_is(detail, "google.rpc.ErrorInfo")
        && detail.get("reason").and_then(Value::as_str) == Some("API_KEY_INVALID")
}

fn retry_delay(detail: &Value) -> Option<Duration> {
    if !detail_type_is(detail, "google.rpc.RetryInfo") {
        return None;
    }
    parse_duration(detail.get("retryDelay")?.as_str()?)
}

/// A protobuf JSON Duration: decimal seconds with an `s` suffix ("37s", "1.5s").
fn parse_duration(s: &str) -> Option<Duration> {
    let secs = s.trim().strip_suffix('s')?;
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    Duration::try_from_secs_f64(secs.parse().ok()?).ok()
}

/// The HTTP status Google maps a `google.rpc.Code` name to.
fn http_of_status(status: &str) -> Option<u16> {
    Some(match status {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => 400,
        "UNAUTHENTICATED" => 401,
        "PERMISSION_DENIED" => 403,
        "NOT_FOUND" => 404,
        "ABORTED" | "ALREADY_EXISTS" => 409,
        "RESOURCE_EXHAUSTED" => 429,
        "CANCELLED" => 499,
        "UNKNOWN" | "INTERNAL" | "DATA_LOSS" => 500,
        "UNIMPLEMENTED" => 501,
        "UNAVAILABLE" => 503,
        "DEADLINE_EXCEEDED" => 504,
        _ => return None,
    })
}

fn classify(status: u16, status_name: Option<&str>) -> (&'static str, String) {
    let named = |fallback: &str| {
        status_name
            .map(str::to_ascii_lowercase)
            .unwrap_or_else(|| fallback.to_string())
    };
    match status {
        401 => ("authentication_error", "invalid_api_key".into()),
        403 => ("permission_error", "permission_denied".into()),
        404 => ("invalid_request_error", "model_not_found".into()),
        429 => ("rate_limit_error", "rate_limited".into()),
        504 => ("timeout_error", "upstream_timeout".into()),
        400..=499 => ("invalid_request_error", named("invalid_request")),
        _ => ("server_error", named("upstream_failed")),
    }
}

#[cfg(test)]
mod tests;
