//! `POST /v1/messages/count_tokens` (the Anthropic SDK's `messages.count_tokens`, which
//! Claude Code calls): an estimate from the request's text, about four bytes a token,
//! marked `x-understudy-estimate: true` — no provider is asked, so it costs nothing
//! and works whichever provider would answer.

use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::respond::{error_response, json};
use crate::app::App;
use crate::error::ProxyError;
use crate::frontdoor::messages::MESSAGES;
use crate::http::body::Body;

pub async fn estimate(
    app: &App,
    req: http::Request<Incoming>,
    request_id: &HeaderValue,
) -> Response<Body> {
    let snap = app.config.load();
    let limit = usize::try_from(snap.server.max_body_bytes).unwrap_or(usize::MAX);
    let read = Limited::new(req.into_body(), limit).collect();
    let body = match tokio::time::timeout(snap.server.body_timeout, read).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(_)) => {
            let err = ProxyError::TooLarge(snap.server.max_body_bytes);
            return error_response(&MESSAGES, &err, request_id);
        }
        Err(_) => {
            let err = ProxyError::BodyTimeout(snap.server.body_timeout.as_secs());
            return error_response(&MESSAGES, &err, request_id);
        }
    };
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            let err = ProxyError::BadRequest("request body is not a JSON object".into());
            return error_response(&MESSAGES, &err, request_id);
        }
    };
    let model = parsed["model"].as_str().unwrap_or_default();
    if snap.resolve(model).is_none() {
        let err = ProxyError::ModelNotFound(model.to_string());
        return error_response(&MESSAGES, &err, request_id);
    }
    if !parsed["messages"].is_array() {
        let err = ProxyError::BadRequest("messages: an array is required".into());
        return error_response(&MESSAGES, &err, request_id);
    }
    let mut bytes = 0usize;
    for key in ["system", "messages", "tools"] {
        bytes += text_bytes(&parsed[key]);
    }
    let tokens = bytes.div_ceil(4).max(1);
    let mut resp = json(
        StatusCode::OK,
        json!({ "input_tokens": tokens }).to_string().into_bytes(),
    );
    resp.headers_mut()
        .insert("x-understudy-estimate", HeaderValue::from_static("true"));
    resp.headers_mut()
        .insert(super::respond::REQUEST_ID, request_id.clone());
    resp
}

/// Bytes of every string in `v` (text, tool names, schemas' words).
fn text_bytes(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len(),
        Value::Array(a) => a.iter().map(text_bytes).sum(),
        Value::Object(o) => o.iter().map(|(k, v)| k.len() / 2 + text_bytes(v)).sum(),
        _ => 1,
    }
}
