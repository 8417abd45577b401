//! One upstream attempt: send, then read the answer — whole, or a stream up to its
//! first content event, where it is committed to the client.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::classify::{self, decide, Outcome, Verdict};
use super::stream::{Committed, StreamEnd, StreamError, UpstreamStream};
use super::{Answer, Call};
use crate::app::App;
use crate::config::{Snapshot, Target};
use crate::providers::adapter_for;
use crate::upstream::Phase;

/// Larger answers are an upstream fault, not something to buffer.
const ANSWER_LIMIT: usize = 64 * 1024 * 1024;
const ERROR_BODY_LIMIT: usize = 1024 * 1024;
/// Bytes an upstream may send before its first content event (role chunks, pings,
/// filter results) — past that it is not answering.
const HELD_LIMIT: usize = 1024 * 1024;

async fn read_body(body: Incoming, limit: usize, deadline: Instant) -> Result<Bytes, Outcome> {
    match tokio::time::timeout_at(deadline, Limited::new(body, limit).collect()).await {
        Err(_) => Err(Outcome::Timeout(Phase::Total)),
        Ok(Err(e)) => Err(Outcome::Stream(format!("reading the answer: {e}"))),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

pub(super) async fn attempt(
    app: &Arc<App>,
    snap: &Snapshot,
    target: &Arc<Target>,
    call: &Call<'_>,
    upstream_req: http::Request<Bytes>,
    head: &Notify,
) -> Result<Answer, Outcome> {
    let adapter = adapter_for(target.provider.kind);
    let t = &target.timeouts;
    let started = Instant::now();
    let total = started + t.total;
    // For a 404's message: what was asked for where (the path, never the query).
    let asked = format!("{} {}", upstream_req.method(), upstream_req.uri().path());
    let resp = app
        .upstream
        .send(
            upstream_req,
            &target.provider.egress,
            t.connect,
            started + t.first_byte,
            total,
        )
        .await
        .map_err(Outcome::from)?;
    head.notify_one(); // a response head: no reason to hedge this attempt
                       // Time to the head (streams: to the first event) feeds the histogram; only
                       // good answers teach the lowest-latency strategy, or a provider failing fast
                       // would look fastest.
    let observe = |app: &App, good: bool| {
        let secs = started.elapsed().as_secs_f64();
        app.metrics
            .upstream_seconds
            .get_or_create(&crate::metrics::ProviderLabel {
                provider: target.provider.name.clone(),
            })
            .observe(secs);
        if good {
            app.health.observe_latency(target, secs);
        }
    };
    let status = resp.status();
    if !status.is_success() {
        observe(app, false);
        if !status.is_client_error() && !status.is_server_error() {
            // A redirect or informational answer to a POST: not the provider's API.
            return Err(Outcome::Protocol(format!("unexpected status {status}")));
        }
        let headers = resp.headers().clone();
        // An error body that stalls must not hold the failover for `total`.
        let deadline = total.min(Instant::now() + t.idle);
        let body = read_body(resp.into_body(), ERROR_BODY_LIMIT, deadline)
            .await
            .unwrap_or_default();
        let mut error = adapter.parse_error(status, &headers, &body);
        let key = target.provider.api_key.as_ref().map(|k| k.expose());
        error.message = crate::providers::redact(&error.message, key);
        if status == http::StatusCode::NOT_FOUND {
            // A wrong base_url or model answers 404; the path shows which.
            error.message = format!("{} ({asked})", error.message);
        }
        let retry_hint = classify::retry_hint(&headers, SystemTime::now()).or(error.retry_after);
        return Err(Outcome::Status { error, retry_hint });
    }
    if !call.req.is_stream() {
        let body = read_body(resp.into_body(), ANSWER_LIMIT, total).await?;
        return match adapter.parse_response(call.req, target, &body) {
            Ok(answer) => {
                observe(app, true);
                Ok(Answer::Complete(Box::new(answer)))
            }
            Err(e) => {
                observe(app, false);
                Err(StreamError::from(e).into_outcome())
            }
        };
    }
    let mut upstream = UpstreamStream::new(
        resp.into_body(),
        adapter.framing(),
        adapter.stream_translator(call.req, target),
        t,
        started,
    );
    let mut held = Vec::new();
    let mut first = true;
    loop {
        match upstream.next().await {
            Ok(Some(chunk)) => {
                if first {
                    observe(app, true);
                    first = false;
                }
                if upstream.received() > HELD_LIMIT {
                    return Err(Outcome::Protocol(format!(
                        "over {HELD_LIMIT} bytes of stream without any content"
                    )));
                }
                let content = (call.is_content)(&chunk);
                held.push(chunk);
                if content {
                    return Ok(Answer::Stream(Box::new(Committed {
                        held,
                        tap: None,
                        upstream,
                        provider: target.provider.name.clone(),
                        end: Box::new(CircuitOnEnd {
                            app: app.clone(),
                            provider_key: target.provider.health_key(),
                            provider: target.provider.name.clone(),
                            circuit: snap.circuit,
                            failover: snap.failover.clone(),
                        }),
                        guard: None,
                        drain: None,
                    })));
                }
            }
            Ok(None) => return Err(Outcome::Stream("stream ended before any content".into())),
            Err(e) => return Err(e.into_outcome()),
        }
    }
}

/// After commit, a failing upstream still counts against its provider's circuit
/// when the same failure before commit would have.
struct CircuitOnEnd {
    app: Arc<App>,
    provider_key: String,
    provider: String,
    circuit: crate::config::CircuitPolicy,
    failover: crate::config::FailoverPolicy,
}

impl StreamEnd for CircuitOnEnd {
    fn finished(&mut self, error: Option<&StreamError>) {
        let Some(e) = error else { return };
        let outcome = e.clone().into_outcome();
        self.app.metrics.attempt(&self.provider, outcome.label());
        let counts = matches!(
            decide(&outcome, &self.failover),
            Verdict::FailOver {
                counts_as_failure: true,
                ..
            }
        );
        if counts && self.app.health.failure(&self.provider_key, self.circuit) {
            tracing::warn!(provider = %self.provider, "circuit opened");
        }
    }
}
