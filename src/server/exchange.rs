//! One front-door request, whichever client API it speaks: limit and read the body,
//! let the front door parse it, resolve the route, answer from the cache or run the
//! failover walk, and let the front door render the answer, stream or error — with
//! the x-understudy headers.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;

use super::respond::{error_response, json, REQUEST_ID};
use crate::app::App;
use crate::cache::{CacheResult, Cacheable, Entry, Lookup};
use crate::canonical::{random_id, unix_now, ChatResponse, Choice, ResponseMessage, Usage};
use crate::config::{Snapshot, Target};
use crate::error::ProxyError;
use crate::failover::{self, Answer, Call};
use crate::frontdoor::{replay_stream, Dialect, Turn};
use crate::http::body::{full, Body};
use crate::metrics::InflightGuard;
use crate::spend;

/// The `route` label of requests refused before a route was chosen.
pub(super) const UNROUTED: &str = "unrouted";

const CACHE_HEADER: &str = "x-understudy-cache";
const COST_HEADER: &str = "x-understudy-cost-usd";

pub async fn handle(
    app: Arc<App>,
    req: http::Request<Incoming>,
    request_id: HeaderValue,
    door: &'static dyn Dialect,
) -> Response<Body> {
    with_cache_header(&app, std::pin::pin!(answer(&app, req, request_id, door))).await
}

/// Every answer carries `x-understudy-cache` while the cache is on; the metric counts
/// exactly what the header says. The answer comes pinned by the caller: an async
/// fn that takes a future by value keeps it twice (the argument, then the copy it
/// awaits), and copies it on every request.
pub(super) async fn with_cache_header(
    app: &App,
    answer: std::pin::Pin<&mut impl std::future::Future<Output = Response<Body>>>,
) -> Response<Body> {
    let cache_on = app.cache.store().is_some();
    let mut resp = answer.await;
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
    app.metrics.cache_result(result.as_str());
    resp
}

async fn answer(
    app: &Arc<App>,
    req: http::Request<Incoming>,
    request_id: HeaderValue,
    door: &'static dyn Dialect,
) -> Response<Body> {
    let inflight = InflightGuard::new(&app.metrics.inflight);
    let started = tokio::time::Instant::now();
    let snap = app.config.load_full();
    let fail = |route: &str, err: ProxyError| {
        let resp = error_response(door, &err, &request_id);
        app.metrics
            .request(door.api(), route, resp.status().as_u16());
        resp
    };

    let (head, body) = req.into_parts();
    let body = match read_body(&snap, &head, body).await {
        Ok(b) => b,
        Err(e) => return fail(UNROUTED, e),
    };
    let turn = match door.begin(app, &head, body).await {
        Ok(t) => t,
        Err(e) => return fail(UNROUTED, e),
    };
    let chat = turn.request();

    let Some(resolved) = snap.resolve(&chat.model) else {
        return fail(UNROUTED, ProxyError::ModelNotFound(chat.model.clone()));
    };
    let route = resolved.label();
    crate::telemetry::routed(&chat.model, &route, || {
        serde_json::to_string(&chat.messages).ok()
    });

    let cached = app.cache.lookup(&route, chat).await;
    if let Some(entry) = cached.fresh() {
        app.metrics.request(door.api(), &route, 200);
        return from_cache(turn.as_ref(), entry, CacheResult::Hit, 0, request_id);
    }

    let call = Call {
        req: chat,
        is_content: turn.is_content(),
    };
    let exchange = failover::run(app, &snap, &resolved, &call).await;
    let success = match exchange.result {
        Ok(s) => s,
        Err(err) => {
            if let Some(stand_in) = turn.stand_in(&err) {
                app.metrics.request(door.api(), &route, 200);
                let mut resp = json(StatusCode::OK, stand_in.body);
                for (name, value) in stand_in.headers {
                    resp.headers_mut().insert(name, value);
                }
                let h = resp.headers_mut();
                h.insert(
                    "x-understudy-attempts",
                    HeaderValue::from(exchange.attempts),
                );
                h.insert(REQUEST_ID, request_id);
                return resp;
            }
            if let Some(entry) = stand_in(app, door.api(), &cached, &err, &route) {
                return from_cache(
                    turn.as_ref(),
                    entry,
                    CacheResult::Stale,
                    exchange.attempts,
                    request_id,
                );
            }
            if let (Some(message), true) = (&snap.fallback_message, err.is_exhausted()) {
                tracing::warn!(%route, error = %err, "every target failed; answering with the static fallback");
                let mut resp = static_fallback(turn.as_ref(), message);
                drop(inflight);
                let h = resp.headers_mut();
                h.insert("x-understudy-degraded", HeaderValue::from_static("static"));
                h.insert(
                    "x-understudy-attempts",
                    HeaderValue::from(exchange.attempts),
                );
                h.insert(REQUEST_ID, request_id.clone());
                app.metrics.request(door.api(), &route, 200);
                return resp;
            }
            return failed(&route, exchange.attempts, err, fail);
        }
    };
    app.metrics.request(door.api(), &route, 200);
    // A stream's usage comes at its end: its meter books and logs it then.
    let cost = match &success.answer {
        Answer::Complete(a) => spend::book_usage(&app.metrics, &success.target, a.usage.as_ref()),
        Answer::Stream(_) => None,
    };
    // For a stream this is the time to its first content event.
    tracing::info!(
        %route,
        provider = %success.target.provider.name,
        model = %success.target.model,
        attempts = exchange.attempts,
        latency_ms = started.elapsed().as_millis() as u64,
        stream = matches!(success.answer, Answer::Stream(_)),
        cost_usd = cost.map(spend::format_usd),
        "answered"
    );
    let mut resp = match success.answer {
        Answer::Complete(answer) => {
            cached.store(&answer, &success.target);
            let mut resp = json(StatusCode::OK, turn.render_answer(&answer));
            cost_header(&mut resp, cost);
            resp
        }
        Answer::Stream(mut committed) => {
            committed.guard = Some(inflight);
            committed.drain = Some(app.draining.subscribe());
            committed.tap = cached.recorder(&success.target);
            committed.resume = failover::resume::plan(
                app,
                &snap,
                &resolved,
                &call,
                &success.target,
                exchange.attempts,
            );
            let render = turn.stream_renderer();
            sse_response(failover::stream::into_body(committed, render))
        }
    };
    for (name, value) in turn.headers() {
        resp.headers_mut().insert(name, value);
    }
    target_headers(&mut resp, &success.target, exchange.attempts, request_id);
    resp
}

/// The headers of the target that answered, and how many attempts it took.
pub(super) fn target_headers(
    resp: &mut Response<Body>,
    target: &Target,
    attempts: u32,
    request_id: HeaderValue,
) {
    origin_headers(
        resp,
        &target.provider.name,
        &target.model,
        attempts,
        request_id,
    );
}

/// The stale answer that stands in when every target failed, if the cache has one
/// (logged, and counted as a 200).
pub(super) fn stand_in<'l, A: Cacheable + Clone>(
    app: &App,
    api: &'static str,
    cached: &'l Lookup<A>,
    err: &ProxyError,
    route: &str,
) -> Option<&'l Arc<Entry<A>>> {
    let entry = cached.stale().filter(|_| err.is_exhausted())?;
    tracing::warn!(%route, error = %err, "every target failed; answering from the cache (stale)");
    app.metrics.request(api, route, 200);
    Some(entry)
}

/// A client body within `max_body_bytes` and `body_timeout`.
pub(super) async fn read_body(
    snap: &Snapshot,
    head: &http::request::Parts,
    body: Incoming,
) -> Result<Bytes, ProxyError> {
    let limit = snap.server.max_body_bytes;
    let declared = head
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ProxyError::TooLarge(limit));
    }
    let body = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX)).collect();
    // hyper bounds the wait for the request head; this bounds the body.
    match tokio::time::timeout(snap.server.body_timeout, body).await {
        Err(_) => Err(ProxyError::BodyTimeout(snap.server.body_timeout.as_secs())),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ProxyError::TooLarge(limit))
        }
        Ok(Err(e)) => Err(ProxyError::BadRequest(format!(
            "could not read request body: {e}"
        ))),
    }
}

/// The error answer of a request whose walk failed: how many attempts it took.
pub(super) fn failed(
    route: &str,
    attempts: u32,
    err: ProxyError,
    render: impl FnOnce(&str, ProxyError) -> Response<Body>,
) -> Response<Body> {
    tracing::info!(%route, attempts, error = %err, "request failed");
    let mut resp = render(route, err);
    resp.headers_mut()
        .insert("x-understudy-attempts", HeaderValue::from(attempts));
    resp
}

fn origin_headers(
    resp: &mut Response<Body>,
    provider: &str,
    model: &str,
    attempts: u32,
    request_id: HeaderValue,
) {
    // Every answer: names made at compile time, not parsed from a &str each time.
    use http::HeaderName;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(provider) {
        h.insert(
            const { HeaderName::from_static("x-understudy-provider") },
            v,
        );
    }
    if let Ok(v) = HeaderValue::from_str(model) {
        h.insert(const { HeaderName::from_static("x-understudy-model") }, v);
    }
    h.insert(
        const { HeaderName::from_static("x-understudy-attempts") },
        HeaderValue::from(attempts),
    );
    h.insert(const { HeaderName::from_static(REQUEST_ID) }, request_id);
}

/// A whole answer in the client's mode: JSON, or replayed as the front door's stream.
fn whole_answer(turn: &dyn Turn, answer: &ChatResponse) -> Response<Body> {
    if turn.request().is_stream() {
        let mut render = turn.stream_renderer();
        sse_response(full(replay_stream(render.as_mut(), answer)))
    } else {
        json(StatusCode::OK, turn.render_answer(answer))
    }
}

/// A cached answer in the client's mode, with the headers of the target that first
/// gave it.
fn from_cache(
    turn: &dyn Turn,
    entry: &Entry,
    outcome: CacheResult,
    attempts: u32,
    request_id: HeaderValue,
) -> Response<Body> {
    cached_headers(
        whole_answer(turn, &entry.answer),
        entry,
        outcome,
        attempts,
        request_id,
    )
}

/// What the cache did, and the headers of the target that first gave the answer.
pub(super) fn cached_headers<A>(
    mut resp: Response<Body>,
    entry: &Entry<A>,
    outcome: CacheResult,
    attempts: u32,
    request_id: HeaderValue,
) -> Response<Body> {
    origin_headers(
        &mut resp,
        &entry.provider,
        &entry.model,
        attempts,
        request_id,
    );
    resp.headers_mut()
        .insert(CACHE_HEADER, HeaderValue::from_static(outcome.as_str()));
    // No upstream request was sent for it.
    cost_header(&mut resp, Some(0.0));
    resp
}

/// `x-understudy-cost-usd`, when the answer's target has a price.
pub(super) fn cost_header(resp: &mut Response<Body>, cost: Option<f64>) {
    if let Some(v) = cost.and_then(|c| HeaderValue::from_str(&spend::format_usd(c)).ok()) {
        resp.headers_mut().insert(COST_HEADER, v);
    }
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

/// The configured apology as an answer, in the client's mode (DESIGN §6).
fn static_fallback(turn: &dyn Turn, message: &str) -> Response<Body> {
    let answer = ChatResponse {
        id: random_id("chatcmpl-", 24),
        object: "chat.completion".into(),
        created: unix_now(),
        model: "understudy-fallback".into(),
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage::assistant(Some(message.to_string()), None),
            finish_reason: Some("stop".into()),
            logprobs: None,
            extra: Default::default(),
        }],
        usage: Some(Usage::new(0, 0)),
        extra: Default::default(),
        native: None,
    };
    whole_answer(turn, &answer)
}
