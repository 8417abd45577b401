//! `[passthrough]`: every `/v1/*` request no route serves goes to one OpenAI-kind
//! provider as it is — method, path, query, the client's headers but its
//! credentials, the provider's key — with both bodies streamed: an upload goes up as
//! it arrives, an answer (binary audio, an event stream) comes back as it is sent.
//! One provider, so no failover: an unreachable one is a 502, a slow one a 504.
//! Passthrough neither consults nor feeds circuits and cooldowns, which judge the
//! provider for routed traffic.

mod download;
mod headers;
mod path;
mod upload;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::respond::{error_response, REQUEST_ID};
use crate::app::App;
use crate::config::{PassthroughPolicy, Snapshot};
use crate::error::ProxyError;
use crate::failover::classify::Outcome;
use crate::frontdoor::chat::CHAT;
use crate::http::body::{full, Body};
use crate::metrics::{InflightGuard, ProviderLabel};
use crate::providers::{adapter_for, redact, Provider, Timeouts};
use crate::upstream::{Phase, Streamed};
use download::Download;
use upload::{End, Upload, UploadError};

pub use path::{classify, Forward};

/// The `route` label of forwarded requests in `understudy_requests_total`.
const ROUTE: &str = "passthrough";
/// Error answers are read whole to take keys out of them; larger ones are not errors.
const ERROR_BODY_LIMIT: usize = 1024 * 1024;

/// Forwards `req`, whose path is `/v1{rest}`, to the snapshot's passthrough provider.
pub async fn forward(
    app: &Arc<App>,
    snap: &Snapshot,
    policy: &PassthroughPolicy,
    req: http::Request<Incoming>,
    rest: &str,
    request_id: HeaderValue,
) -> Response<Body> {
    let inflight = InflightGuard::new(&app.metrics.inflight);
    let started = Instant::now();
    let provider = &policy.provider;
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let result = match exchange(app, snap, policy, req, rest, started).await {
        Ok(upstream) => answer(app, provider, upstream, started, inflight).await,
        Err(e) => Err(e),
    };
    let latency_ms = started.elapsed().as_millis() as u64;
    // Like routed requests, the x-understudy headers name an upstream request that
    // had an outcome: none for a request refused here or cut off by its client.
    let (mut resp, attempted) = match result {
        Ok(resp) => {
            tracing::info!(%method, %path, status = resp.status().as_u16(), provider = %provider.name, latency_ms, "forwarded");
            (resp, true)
        }
        Err(err) => {
            tracing::info!(%method, %path, provider = %provider.name, latency_ms, error = %err, "passthrough failed");
            let attempted = matches!(err, ProxyError::PassthroughFailed { .. });
            (error_response(&CHAT, &err, &request_id), attempted)
        }
    };
    app.metrics.request(ROUTE, ROUTE, resp.status().as_u16());
    let h = resp.headers_mut();
    if attempted {
        if let Ok(v) = HeaderValue::from_str(&provider.name) {
            h.insert("x-understudy-provider", v);
        }
        h.insert("x-understudy-attempts", HeaderValue::from(1u32));
    }
    h.insert(REQUEST_ID, request_id);
    resp
}

/// Sends the request upstream while its body streams, and waits for the answer's
/// head: `first_byte` runs from the end of the upload, `total` from the start.
async fn exchange(
    app: &Arc<App>,
    snap: &Snapshot,
    policy: &PassthroughPolicy,
    req: http::Request<Incoming>,
    rest: &str,
    started: Instant,
) -> Result<http::Response<Incoming>, ProxyError> {
    let provider = &policy.provider;
    if let Some(reason) = &provider.disabled_reason {
        return Err(ProxyError::PassthroughDisabled {
            provider: provider.name.clone(),
            reason: reason.clone(),
        });
    }
    let limit = policy.max_body_bytes;
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ProxyError::TooLarge(limit));
    }
    let (head, body) = req.into_parts();
    let target = match head.uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    let mut upstream_req =
        match adapter_for(provider.kind).passthrough(provider, &head.method, &target) {
            Some(Ok(r)) => r,
            Some(Err(e)) => return Err(ProxyError::BadRequest(e.to_string())),
            // The config only names a provider whose kind takes passthrough.
            None => return Err(ProxyError::NotFound(head.uri.path().to_string())),
        };
    headers::forward_request(&head.headers, upstream_req.headers_mut());
    let (upload, ended) = Upload::new(body, limit, snap.server.body_timeout);
    let mut uploaded = http_body::Body::is_end_stream(&upload);
    let body: Streamed = upload
        .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
        .boxed_unsync();
    let t = provider.timeouts;
    let total = started + t.total;
    let mut head_due = uploaded.then(|| Instant::now() + t.first_byte);
    let sending =
        app.upstream
            .send_streamed(upstream_req.map(|_| body), &provider.egress, t.connect);
    tokio::pin!(sending, ended);
    let resp = loop {
        let due = head_due.map_or(total, |d| d.min(total));
        tokio::select! {
            // An upload cut short says why before its aborted request does.
            biased;
            end = &mut ended, if !uploaded => match end {
                Ok(End::Failed(e)) => {
                    return Err(match e {
                        UploadError::TooLarge(n) => ProxyError::TooLarge(n),
                        UploadError::TimedOut(d) => ProxyError::BodyTimeout(d.as_secs()),
                        UploadError::Client(m) => ProxyError::BadRequest(m),
                    });
                }
                // Whole, or dropped unfinished by a connection that failed (whose
                // error follows).
                Ok(End::Complete) | Err(_) => {
                    uploaded = true;
                    head_due = Some(Instant::now() + t.first_byte);
                }
            },
            sent = &mut sending => break sent.map_err(|e| failed(app, provider, Outcome::from(e))),
            () = tokio::time::sleep_until(due) => {
                let phase = if due == total { Phase::Total } else { Phase::FirstByte };
                return Err(failed(app, provider, Outcome::Timeout(phase)));
            }
        }
    }?;
    app.metrics
        .upstream_seconds
        .get_or_create(&ProviderLabel {
            provider: provider.name.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    let outcome = match resp.status().as_u16() {
        429 => "rate_limited",
        400.. => "error_status",
        _ => "ok",
    };
    app.metrics.attempt(&provider.name, outcome);
    Ok(resp)
}

/// The client's answer: the upstream's status and headers, and its body streamed —
/// or, for an error, read whole and cleared of keys.
async fn answer(
    app: &Arc<App>,
    provider: &Arc<Provider>,
    upstream: http::Response<Incoming>,
    started: Instant,
    inflight: InflightGuard,
) -> Result<Response<Body>, ProxyError> {
    let t: Timeouts = provider.timeouts;
    let total = started + t.total;
    let (parts, incoming) = upstream.into_parts();
    let mut resp = if is_error(parts.status) && is_text(&parts.headers) {
        let deadline = total.min(Instant::now() + t.idle);
        let read = Limited::new(incoming, ERROR_BODY_LIMIT).collect();
        let bytes = match tokio::time::timeout_at(deadline, read).await {
            Ok(Ok(c)) => c.to_bytes(),
            Ok(Err(e)) => {
                let why = format!("reading its {} answer: {e}", parts.status.as_u16());
                return Err(failed(app, provider, Outcome::Stream(why)));
            }
            Err(_) => {
                let phase = if deadline == total {
                    Phase::Total
                } else {
                    Phase::Idle
                };
                return Err(failed(app, provider, Outcome::Timeout(phase)));
            }
        };
        let key = provider.api_key.as_ref().map(|k| k.expose());
        let clean = match std::str::from_utf8(&bytes) {
            Ok(text) => Bytes::from(redact(text, key)),
            Err(_) => bytes,
        };
        let mut resp = Response::new(full(clean));
        headers::return_response(&parts.headers, resp.headers_mut());
        // The cleaned body has its own length; hyper sets it.
        resp.headers_mut().remove(http::header::CONTENT_LENGTH);
        resp
    } else {
        let app2 = app.clone();
        let name = provider.name.clone();
        let span = tracing::Span::current();
        let body = Download::new(incoming, t.idle, total)
            .inflight(inflight)
            .on_cut(move |outcome| {
                let _entered = span.enter();
                tracing::warn!(provider = %name, error = %outcome.describe(), "forwarded answer cut short");
                app2.metrics.attempt(&name, outcome.label());
            });
        let mut resp = Response::new(body.boxed_unsync());
        headers::return_response(&parts.headers, resp.headers_mut());
        resp
    };
    *resp.status_mut() = parts.status;
    Ok(resp)
}

fn is_error(status: StatusCode) -> bool {
    status.is_client_error() || status.is_server_error()
}

/// JSON or text: what an error message (and a key in it) can be read from.
fn is_text(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("application/json") || ct.starts_with("text/")
        })
}

/// Books a failed exchange and turns it into the client's 502 / 504.
fn failed(app: &App, provider: &Provider, outcome: Outcome) -> ProxyError {
    app.metrics.attempt(&provider.name, outcome.label());
    ProxyError::PassthroughFailed {
        provider: provider.name.clone(),
        failure: Box::new(outcome),
    }
}
