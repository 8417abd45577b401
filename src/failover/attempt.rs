//! One upstream attempt: send, read an error answer into an outcome, and hand a 2xx
//! answer to the [`Work`] that asked for it.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::classify::{self, Outcome};
use super::limit::Slot;
use super::stream::StreamError;
use super::Work;
use crate::app::App;
use crate::config::{Snapshot, Target};
use crate::providers::{adapter_for, AdapterError};
use crate::telemetry;
use crate::upstream::Phase;

/// Larger answers are an upstream fault, not something to buffer.
const ANSWER_LIMIT: usize = 64 * 1024 * 1024;
const ERROR_BODY_LIMIT: usize = 1024 * 1024;

async fn read_body(body: Incoming, limit: usize, deadline: Instant) -> Result<Bytes, Outcome> {
    match tokio::time::timeout_at(deadline, Limited::new(body, limit).collect()).await {
        Err(_) => Err(Outcome::Timeout(Phase::Total)),
        Ok(Err(e)) => Err(Outcome::Stream(format!("reading the answer: {e}"))),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// A 2xx response head from a target, and what reading its answer needs.
pub struct Answered<'a> {
    pub(super) resp: http::Response<Incoming>,
    pub(super) app: &'a Arc<App>,
    pub(super) snap: &'a Snapshot,
    pub(super) target: &'a Arc<Target>,
    pub(super) started: Instant,
    /// The attempt's `total` deadline.
    pub(super) total: Instant,
    /// Its place under the provider's `max_concurrency`, held until the answer has
    /// been read (a stream: until it ends).
    pub(super) slot: Slot,
    /// The attempt's trace span, when traces are on: a stream carries it to its end.
    pub(super) trace: Option<&'a telemetry::AttemptTrace>,
}

impl Answered<'_> {
    /// The whole body read by `parse`; an answer it cannot read is a failed attempt.
    pub(super) async fn whole<T>(
        self,
        parse: impl FnOnce(&[u8]) -> Result<T, AdapterError>,
    ) -> Result<T, Outcome> {
        let body = read_body(self.resp.into_body(), ANSWER_LIMIT, self.total).await?;
        let parsed = parse(&body);
        observe(self.app, self.target, self.started, parsed.is_ok());
        parsed.map_err(|e| StreamError::from(e).into_outcome())
    }
}

/// Time to the head (streams: to the first event) feeds the histogram; only good
/// answers teach the lowest-latency strategy, or a provider failing fast would look
/// fastest.
pub(super) fn observe(app: &App, target: &Target, started: Instant, good: bool) {
    let secs = started.elapsed().as_secs_f64();
    app.metrics
        .upstream_seconds
        .get_or_create(&crate::metrics::ProviderLabel {
            provider: target.provider.name.clone(),
        })
        .observe(secs);
    if good {
        app.health.observe_latency(target, secs);
        app.dashboard.latency(&target.provider.name, secs);
    }
}

/// What admission gave an attempt: its provider's concurrency slot, and its place
/// among the request's upstream requests (1 for the first).
pub(super) struct Admitted {
    pub slot: Slot,
    pub number: u32,
}

/// One attempt, in its own trace span when traces are on.
pub(super) async fn attempt<W: Work>(
    app: &Arc<App>,
    snap: &Snapshot,
    target: &Arc<Target>,
    work: &W,
    mut upstream_req: http::Request<Bytes>,
    head: &Notify,
    admitted: Admitted,
) -> Result<W::Answer, Outcome> {
    let Admitted { slot, number } = admitted;
    let Some(cx) = telemetry::attempt(target, number, &mut upstream_req) else {
        let carried = Carried { slot, trace: None };
        return send(app, snap, target, work, upstream_req, head, carried).await;
    };
    // The span is handed down, not made the task's current context: nothing below
    // reads it but a stream's end, and entering a context costs every poll.
    let carried = Carried {
        slot,
        trace: Some(&cx),
    };
    let result = send(app, snap, target, work, upstream_req, head, carried).await;
    match &result {
        Ok(answer) => {
            if let Some(facts) = W::facts(answer, cx.capture_content()) {
                telemetry::attempt_answered(&cx, &facts);
            }
        }
        Err(outcome) => {
            let error_type = match outcome {
                Outcome::Status { error, .. } => error.status.to_string(),
                other => other.label().to_string(),
            };
            // A provider's message may quote the prompt: only with content capture.
            let message = if cx.capture_content() {
                outcome.describe()
            } else {
                format!("{} ({error_type})", outcome.label())
            };
            cx.failed(outcome.label(), error_type, message);
        }
    }
    result
}

/// What a 2xx answer carries on: the attempt's concurrency slot and its trace span.
struct Carried<'a> {
    slot: Slot,
    trace: Option<&'a telemetry::AttemptTrace>,
}

async fn send<W: Work>(
    app: &Arc<App>,
    snap: &Snapshot,
    target: &Arc<Target>,
    work: &W,
    upstream_req: http::Request<Bytes>,
    head: &Notify,
    carried: Carried<'_>,
) -> Result<W::Answer, Outcome> {
    let Carried { slot, trace } = carried;
    let adapter = adapter_for(target.provider.kind);
    let t = &target.timeouts;
    let started = Instant::now();
    let total = started + t.total;
    // For a 404's message: what was asked for where (the path, never the query).
    // Kept, not formatted: a Uri clone shares its bytes, and most answers are 200.
    let (method, uri) = (upstream_req.method().clone(), upstream_req.uri().clone());
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
    let status = resp.status();
    if !status.is_success() {
        observe(app, target, started, false);
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
            error.message = format!("{} ({method} {})", error.message, uri.path());
        }
        let retry_hint = classify::retry_hint(&headers, SystemTime::now()).or(error.retry_after);
        return Err(Outcome::Status { error, retry_hint });
    }
    work.read(Answered {
        resp,
        app,
        snap,
        target,
        started,
        total,
        slot,
        trace,
    })
    .await
}
