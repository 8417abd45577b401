//! `POST /v1/embeddings`: read and check the body, resolve the route, answer from the
//! cache or walk the targets, render OpenAI's list — with the same headers, metrics,
//! cache and error shape as chat completions. There is no stream, and no static
//! fallback: a made-up vector would be worse than an error.

use std::sync::Arc;

use http::{HeaderValue, Response, StatusCode};
use hyper::body::Incoming;

use super::exchange::{
    cached_headers, cost_header, failed, read_body, stand_in, target_headers, with_cache_header,
    UNROUTED,
};
use super::respond::{error_response, json};
use crate::app::App;
use crate::cache::CacheResult;
use crate::canonical::EmbedRequest;
use crate::error::ProxyError;
use crate::failover;
use crate::frontdoor::chat::CHAT;
use crate::frontdoor::embeddings::render;
use crate::http::body::Body;
use crate::metrics::InflightGuard;
use crate::spend::{self, Tokens};

/// The `api` label of its requests.
const API: &str = "embeddings";

pub async fn handle(
    app: Arc<App>,
    req: http::Request<Incoming>,
    request_id: HeaderValue,
) -> Response<Body> {
    with_cache_header(&app, std::pin::pin!(answer(&app, req, request_id))).await
}

async fn answer(
    app: &Arc<App>,
    req: http::Request<Incoming>,
    request_id: HeaderValue,
) -> Response<Body> {
    let _inflight = InflightGuard::new(&app.metrics.inflight);
    let started = tokio::time::Instant::now();
    let snap = app.config.load_full();
    let fail = |route: &str, err: ProxyError| {
        let resp = error_response(&CHAT, &err, &request_id);
        app.metrics.request(API, route, resp.status().as_u16());
        resp
    };
    let (head, body) = req.into_parts();
    let req = read_body(&snap, &head, body)
        .await
        .and_then(|body| EmbedRequest::parse(body).map_err(ProxyError::BadRequest));
    let req = match req {
        Ok(r) => r,
        Err(e) => return fail(UNROUTED, e),
    };
    let Some(resolved) = snap.resolve(&req.model) else {
        return fail(UNROUTED, ProxyError::ModelNotFound(req.model.clone()));
    };
    let route = resolved.label();
    crate::telemetry::routed(&req.model, &route, || None);
    let format = req.encoding_format;

    let cached = app.cache.lookup_embeddings(&route, &req).await;
    if let Some(entry) = cached.fresh() {
        app.metrics.request(API, &route, 200);
        let resp = json(StatusCode::OK, render(&entry.answer, format));
        return cached_headers(resp, entry, CacheResult::Hit, 0, request_id);
    }
    let exchange = failover::run(app, &snap, &resolved, &req).await;
    let success = match exchange.result {
        Ok(s) => s,
        Err(err) => {
            if let Some(entry) = stand_in(app, API, &cached, &err, &route) {
                let resp = json(StatusCode::OK, render(&entry.answer, format));
                return cached_headers(
                    resp,
                    entry,
                    CacheResult::Stale,
                    exchange.attempts,
                    request_id,
                );
            }
            return failed(&route, exchange.attempts, err, fail);
        }
    };
    app.metrics.request(API, &route, 200);
    let target = &success.target;
    let tokens = Tokens::of_input(success.answer.usage.prompt_tokens);
    let cost = spend::book(&app.metrics, target, &tokens);
    tracing::info!(
        %route,
        provider = %target.provider.name,
        model = %target.model,
        attempts = exchange.attempts,
        inputs = req.input.len(),
        latency_ms = started.elapsed().as_millis() as u64,
        cost_usd = cost.map(spend::format_usd),
        "answered embeddings"
    );
    cached.store(&success.answer, target);
    let mut resp = json(StatusCode::OK, render(&success.answer, format));
    cost_header(&mut resp, cost);
    target_headers(&mut resp, target, exchange.attempts, request_id);
    resp
}
