//! `POST /v1/chat/completions`: limit and parse the body, resolve the route, run the
//! failover loop, render the answer (JSON or SSE) with the x-understudy headers.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use subtle::ConstantTimeEq;

use super::respond::{error_response, json, REQUEST_ID};
use crate::app::App;
use crate::cache::{CacheResult, Entry};
use crate::canonical::{
    random_id, unix_now, ChatChunk, ChatRequest, ChatResponse, Choice, Delta, ResponseMessage,
    Usage,
};
use crate::config::Resolved;
use crate::error::ProxyError;
use crate::failover::{self, Answer};
use crate::http::body::{full, Body};
use crate::http::sse;
use crate::metrics::{InflightGuard, ResultLabel};

/// The `route` label of requests refused before a route was chosen.
const UNROUTED: &str = "unrouted";

const CACHE_HEADER: &str = "x-understudy-cache";

/// Constant-time comparison against every configured key.
pub fn authorized(app: &App, req: &http::Request<Incoming>) -> bool {
    let snap = app.config.load();
    let keys = &snap.server.api_keys;
    if keys.is_empty() {
        return true;
    }
    let Some(given) = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
    else {
        return false;
    };
    let mut ok = subtle::Choice::from(0u8);
    for k in keys {
        ok |= k.expose().as_bytes().ct_eq(given.as_bytes());
    }
    ok.into()
}

/// Every answer carries `x-understudy-cache` while the cache is on; the metric counts
/// exactly what the header says.
pub async fn handle(
    app: Arc<App>,
    req: http::Request<Incoming>,
    request_id: HeaderValue,
) -> Response<Body> {
    let cache_on = app.cache.store().is_some();
    let mut resp = answer(&app, req, request_id).await;
    let result = match resp.headers().get(CACHE_HEADER).map(HeaderValue::as_bytes) {
        Some(b"hit") => CacheResult::Hit,
        Some(b"stale") => CacheResult::Stale,
        Some(_) => CacheResult::Miss,
        None if cache_on => {
            let miss = CacheResult::Miss;
            resp.headers_mut()
                .insert(CACHE_HEADER, HeaderValue::from_static(miss.as_str()));
            miss
        }
        None => return resp,
    };
    app.metrics
        .cache
        .get_or_create(&ResultLabel {
            result: result.as_str(),
        })
        .inc();
    resp
}

async fn answer(
    app: &Arc<App>,
    req: http::Request<Incoming>,
    request_id: HeaderValue,
) -> Response<Body> {
    let inflight = InflightGuard::new(&app.metrics.inflight);
    let snap = app.config.load_full();
    let fail = |route: &str, err: ProxyError| {
        let resp = error_response(&err, &request_id);
        app.metrics.request(route, resp.status().as_u16());
        resp
    };

    let limit = snap.server.max_body_bytes;
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return fail(UNROUTED, ProxyError::TooLarge(limit));
    }
    let body = Limited::new(
        req.into_body(),
        usize::try_from(limit).unwrap_or(usize::MAX),
    )
    .collect();
    // hyper bounds the wait for the request head; this bounds the body.
    let body = match tokio::time::timeout(snap.server.body_timeout, body).await {
        Err(_) => {
            let secs = snap.server.body_timeout.as_secs();
            return fail(UNROUTED, ProxyError::BodyTimeout(secs));
        }
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return fail(UNROUTED, ProxyError::TooLarge(limit));
        }
        Ok(Err(e)) => {
            return fail(
                UNROUTED,
                ProxyError::BadRequest(format!("could not read request body: {e}")),
            )
        }
    };
    let chat = match ChatRequest::parse(body) {
        Ok(c) => c,
        Err(msg) => return fail(UNROUTED, ProxyError::BadRequest(msg)),
    };

    let (route, targets) = match snap.resolve(&chat.model) {
        Some(Resolved::Route(r)) => {
            let cursor = failover::next_cursor(&r.cursor);
            (
                r.model.clone(),
                failover::order(app, &r.targets, r.strategy, cursor),
            )
        }
        // One label per provider: the model is the client's string, and metric
        // labels must not grow with whatever clients send.
        Some(Resolved::Direct(t)) => (format!("{}/*", t.provider.name), vec![t]),
        None => return fail(UNROUTED, ProxyError::ModelNotFound(chat.model.clone())),
    };

    let cached = app.cache.lookup(&route, &chat);
    if let Some(entry) = cached.fresh() {
        app.metrics.request(&route, 200);
        return from_cache(entry, &chat, CacheResult::Hit, 0, request_id);
    }

    let exchange = failover::run(app, &snap, &route, &targets, &chat).await;
    let success = match exchange.result {
        Ok(s) => s,
        Err(err) => {
            if let (Some(entry), true) = (cached.stale(), is_exhausted(&err)) {
                tracing::warn!(%route, error = %err, "every target failed; answering from the cache (stale)");
                app.metrics.request(&route, 200);
                return from_cache(
                    entry,
                    &chat,
                    CacheResult::Stale,
                    exchange.attempts,
                    request_id,
                );
            }
            if let (Some(message), true) = (&snap.fallback_message, is_exhausted(&err)) {
                tracing::warn!(%route, error = %err, "every target failed; answering with the static fallback");
                let mut resp = static_fallback(&chat, message, inflight);
                let h = resp.headers_mut();
                h.insert("x-understudy-degraded", HeaderValue::from_static("static"));
                h.insert(
                    "x-understudy-attempts",
                    HeaderValue::from(exchange.attempts),
                );
                h.insert(REQUEST_ID, request_id.clone());
                app.metrics.request(&route, 200);
                return resp;
            }
            tracing::info!(%route, attempts = exchange.attempts, error = %err, "request failed");
            let mut resp = fail(&route, err);
            resp.headers_mut().insert(
                "x-understudy-attempts",
                HeaderValue::from(exchange.attempts),
            );
            return resp;
        }
    };
    app.metrics.request(&route, 200);
    tracing::debug!(
        %route,
        provider = %success.target.provider.name,
        model = %success.target.model,
        attempts = exchange.attempts,
        "answered"
    );
    let mut resp = match success.answer {
        Answer::Complete(answer) => match serde_json::to_vec(&answer) {
            Ok(body) => {
                cached.store(&answer, &success.target);
                json(StatusCode::OK, body)
            }
            Err(e) => {
                return fail(
                    &route,
                    ProxyError::AllFailed(format!("could not encode the answer: {e}")),
                )
            }
        },
        Answer::Stream(mut committed) => {
            committed.guard = Some(inflight);
            committed.tap = cached.recorder(&success.target);
            sse_response(failover::stream::into_body(committed))
        }
    };
    let target = &success.target;
    origin_headers(
        &mut resp,
        &target.provider.name,
        &target.model,
        exchange.attempts,
        request_id,
    );
    resp
}

fn origin_headers(
    resp: &mut Response<Body>,
    provider: &str,
    model: &str,
    attempts: u32,
    request_id: HeaderValue,
) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(provider) {
        h.insert("x-understudy-provider", v);
    }
    if let Ok(v) = HeaderValue::from_str(model) {
        h.insert("x-understudy-model", v);
    }
    h.insert("x-understudy-attempts", HeaderValue::from(attempts));
    h.insert(REQUEST_ID, request_id);
}

/// A cached answer in the client's mode, with the headers of the target that first
/// gave it.
fn from_cache(
    entry: &Entry,
    chat: &ChatRequest,
    outcome: CacheResult,
    attempts: u32,
    request_id: HeaderValue,
) -> Response<Body> {
    let mut resp = if chat.is_stream() {
        sse_response(full(entry.sse(chat.include_usage())))
    } else {
        json(StatusCode::OK, entry.json())
    };
    origin_headers(
        &mut resp,
        &entry.provider,
        &entry.model,
        attempts,
        request_id,
    );
    resp.headers_mut()
        .insert(CACHE_HEADER, HeaderValue::from_static(outcome.as_str()));
    resp
}

fn sse_response(body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    resp
}

/// Every target failed or is waiting out a failure (as opposed to the request
/// being refused, or every target being disabled: a config problem that a
/// degraded answer would hide).
fn is_exhausted(err: &ProxyError) -> bool {
    match err {
        ProxyError::RateLimited(..) | ProxyError::Timeout(_) | ProxyError::AllFailed(_) => true,
        ProxyError::NoProvider { retry_after, .. } => retry_after.is_some(),
        _ => false,
    }
}

/// The configured apology, in the client's mode (DESIGN §6).
fn static_fallback(chat: &ChatRequest, message: &str, inflight: InflightGuard) -> Response<Body> {
    let id = random_id("chatcmpl-", 24);
    let created = unix_now();
    let model = "understudy-fallback";
    if chat.is_stream() {
        let mut out = Vec::new();
        let first = ChatChunk::new(&id, created, model).with_delta(
            Delta {
                role: Some("assistant".into()),
                content: Some(message.to_string()),
                ..Delta::default()
            },
            None,
        );
        let stop = ChatChunk::new(&id, created, model).with_delta(Delta::default(), Some("stop"));
        for c in [first, stop] {
            out.extend_from_slice(&sse::encode_data(
                &serde_json::to_vec(&c).unwrap_or_default(),
            ));
        }
        if chat.include_usage() {
            let mut u = ChatChunk::new(&id, created, model);
            u.usage = Some(Usage::new(0, 0));
            out.extend_from_slice(&sse::encode_data(
                &serde_json::to_vec(&u).unwrap_or_default(),
            ));
        }
        out.extend_from_slice(sse::DONE);
        drop(inflight);
        return sse_response(full(Bytes::from(out)));
    }
    let answer = ChatResponse {
        id,
        object: "chat.completion".into(),
        created,
        model: model.into(),
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage::assistant(Some(message.to_string()), None),
            finish_reason: Some("stop".into()),
            logprobs: None,
            extra: Default::default(),
        }],
        usage: Some(Usage::new(0, 0)),
        extra: Default::default(),
    };
    drop(inflight);
    json(
        StatusCode::OK,
        serde_json::to_vec(&answer).unwrap_or_default(),
    )
}
