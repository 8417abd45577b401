//! The attempt loop: walk the route's targets in the strategy's order, skip what is
//! disabled, cooling or open, try the rest until one answers, and keep one record
//! per attempt for the final error.

pub mod classify;
pub mod health;
pub mod probe;
pub mod stream;

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::app::App;
use crate::config::{Snapshot, Strategy, Target};
use crate::error::ProxyError;
use crate::openai::{ChatRequest, ChatResponse};
use crate::providers::{adapter_for, AdapterError};
use crate::upstream::SendError;
use classify::{decide, Outcome, Verdict};
use health::{Admission, Permit};
use stream::{Committed, StreamEnd, StreamError, UpstreamStream};

/// Larger answers are an upstream fault, not something to buffer.
const ANSWER_LIMIT: usize = 64 * 1024 * 1024;
const ERROR_BODY_LIMIT: usize = 1024 * 1024;
/// Role chunks, pings and filter results held before the first content event.
const HELD_LIMIT: usize = 1024 * 1024;

pub enum Answer {
    Complete(ChatResponse),
    Stream(Box<Committed>),
}

pub struct Success {
    pub target: Arc<Target>,
    pub answer: Answer,
}

/// The result of one client request, with how many upstream requests it sent.
pub struct Exchange {
    pub attempts: u32,
    pub result: Result<Success, ProxyError>,
}

struct Record {
    target: String,
    outcome: Outcome,
}

#[derive(Default)]
struct Skips {
    notes: Vec<String>,
    disabled: usize,
    /// When the soonest skipped target becomes usable again.
    soonest: Option<Instant>,
    rate_limited: bool,
    /// Skipped for a reason other than a rate-limit cooldown or being disabled.
    other: bool,
    /// Targets whose kind cannot express the request, and why.
    unsupported: Vec<String>,
}

impl Skips {
    fn usable_at(&mut self, at: Instant) {
        self.soonest = Some(self.soonest.map_or(at, |s| s.min(at)));
    }
}

/// The route's targets in the order its strategy wants them tried.
pub fn order(
    app: &App,
    targets: &[Arc<Target>],
    strategy: Strategy,
    cursor: usize,
) -> Vec<Arc<Target>> {
    let mut v = targets.to_vec();
    match strategy {
        Strategy::Priority => {}
        Strategy::RoundRobin => {
            if !v.is_empty() {
                let n = cursor % v.len();
                v.rotate_left(n);
            }
        }
        Strategy::Weighted => {
            let mut rest = v;
            v = Vec::with_capacity(rest.len());
            while !rest.is_empty() {
                let total: u64 = rest.iter().map(|t| u64::from(t.weight)).sum();
                let mut pick = fastrand::u64(0..total.max(1));
                let i = rest
                    .iter()
                    .position(|t| {
                        let w = u64::from(t.weight);
                        if pick < w {
                            true
                        } else {
                            pick -= w;
                            false
                        }
                    })
                    .unwrap_or(0);
                v.push(rest.remove(i));
            }
        }
        Strategy::LowestLatency => {
            v.sort_by(|a, b| app.health.latency(a).total_cmp(&app.health.latency(b)));
        }
    }
    v
}

pub async fn run(
    app: &Arc<App>,
    snap: &Snapshot,
    route: &str,
    targets: &[Arc<Target>],
    req: &ChatRequest,
) -> Exchange {
    let mut walk = Walk {
        app,
        snap,
        route,
        req,
        sent: 0,
        log: Vec::new(),
        hedged: vec![false; targets.len()],
    };
    let policy = &snap.failover;
    let wait_until = Instant::now() + policy.max_wait;
    let mut skips;
    loop {
        skips = Skips::default();
        walk.hedged.iter_mut().for_each(|h| *h = false);
        for (idx, target) in targets.iter().enumerate() {
            if walk.sent >= policy.max_attempts {
                break;
            }
            if walk.hedged[idx] {
                continue; // already tried alongside an earlier target
            }
            let provider = &target.provider;
            if let Some(reason) = &provider.disabled_reason {
                skips.disabled += 1;
                skips
                    .notes
                    .push(format!("{}: skipped (disabled: {reason})", target.label));
                continue;
            }
            if let Some(c) = app.health.cooldown(target) {
                skips.usable_at(c.until);
                skips.rate_limited |= c.rate_limited;
                let left = c.until.saturating_duration_since(Instant::now());
                skips.notes.push(format!(
                    "{}: skipped (cooling down, {:.1}s left)",
                    target.label,
                    left.as_secs_f64()
                ));
                continue;
            }
            let pkey = provider.health_key();
            for try_no in 0..=policy.retries_per_target {
                if walk.sent >= policy.max_attempts {
                    break;
                }
                if try_no > 0 {
                    tokio::time::sleep(backoff(policy.backoff, try_no)).await;
                    // Another request may have put the target in cooldown meanwhile.
                    if app.health.cooldown(target).is_some() {
                        break;
                    }
                }
                let admission = app.health.admit(&pkey);
                match admission {
                    Admission::Open { until } => {
                        skips.usable_at(until);
                        skips.other = true;
                        skips
                            .notes
                            .push(format!("{}: skipped (circuit open)", target.label));
                        break;
                    }
                    Admission::TrialBusy => {
                        skips.usable_at(Instant::now() + Duration::from_secs(1));
                        skips.other = true;
                        skips.notes.push(format!(
                            "{}: skipped (circuit half-open, trial in flight)",
                            target.label
                        ));
                        break;
                    }
                    Admission::Closed | Admission::Trial => {}
                }
                let permit = app.health.permit(&pkey, admission);
                let upstream_req = match adapter_for(provider.kind).build_request(req, target) {
                    Ok(r) => r,
                    Err(e) => {
                        // This kind cannot express the request (n > 1 for Anthropic,
                        // say); another target may. 400 only if none can.
                        permit.neutral();
                        let msg = match e {
                            AdapterError::InvalidRequest(m) => m,
                            other => other.to_string(),
                        };
                        skips.unsupported.push(format!("{}: {msg}", target.label));
                        skips.notes.push(format!(
                            "{}: skipped (cannot express the request: {msg})",
                            target.label
                        ));
                        break;
                    }
                };
                walk.start_attempt();
                let head = Notify::new();
                let first = attempt(app, snap, target, req, upstream_req, &head);
                let result = if policy.hedge_after.is_zero() {
                    first.await
                } else {
                    match walk.race(targets, idx, target, permit, first, &head).await {
                        Raced::Alone(result, permit) => match walk.settle(target, permit, result) {
                            Settled::Finished(ex) => return ex,
                            Settled::Next { retry_same } if retry_same => continue,
                            Settled::Next { .. } => break,
                        },
                        Raced::Finished(ex) => return ex,
                        Raced::BothFailed => break,
                    }
                };
                match walk.settle(target, permit, result) {
                    Settled::Finished(ex) => return ex,
                    Settled::Next { retry_same } if retry_same => {}
                    Settled::Next { .. } => break,
                }
            }
        }
        // DESIGN §6: when every usable target is cooling, wait (up to max_wait) for the
        // soonest and try again.
        if walk.sent < policy.max_attempts && !policy.max_wait.is_zero() {
            if let Some(at) = all_cooling_until(app, targets) {
                if at <= wait_until {
                    tracing::debug!(
                        wait_ms = at.saturating_duration_since(Instant::now()).as_millis() as u64,
                        "every target cooling; waiting"
                    );
                    tokio::time::sleep_until(at).await;
                    continue;
                }
            }
        }
        break;
    }
    Exchange {
        attempts: walk.sent,
        result: Err(final_error(app, targets, &walk.log, &skips)),
    }
}

/// One client request's walk down its targets: what was sent and what failed.
struct Walk<'a> {
    app: &'a Arc<App>,
    snap: &'a Snapshot,
    route: &'a str,
    req: &'a ChatRequest,
    sent: u32,
    log: Vec<Record>,
    /// Targets already tried as a hedge in this pass.
    hedged: Vec<bool>,
}

enum Settled {
    /// Answered, or an error to hand to the client.
    Finished(Exchange),
    Next {
        retry_same: bool,
    },
}

enum Raced<'p> {
    /// No hedge was started: the first attempt's own result.
    Alone(Result<Answer, Outcome>, Permit<'p>),
    Finished(Exchange),
    BothFailed,
}

impl<'a> Walk<'a> {
    fn start_attempt(&mut self) {
        if !self.log.is_empty() {
            // This attempt follows a failed one: the request failed over.
            self.app
                .metrics
                .failovers
                .get_or_create(&crate::metrics::RouteLabel {
                    route: self.route.to_string(),
                })
                .inc();
        }
        self.sent += 1;
    }

    /// Books an attempt's result: metrics, circuit, cooldown, the attempt log.
    fn settle(
        &mut self,
        target: &Arc<Target>,
        permit: Permit<'_>,
        result: Result<Answer, Outcome>,
    ) -> Settled {
        let provider = &target.provider;
        let outcome = match result {
            Ok(answer) => {
                permit.success();
                self.app.metrics.attempt(&provider.name, "ok");
                return Settled::Finished(Exchange {
                    attempts: self.sent,
                    result: Ok(Success {
                        target: target.clone(),
                        answer,
                    }),
                });
            }
            Err(o) => o,
        };
        self.app.metrics.attempt(&provider.name, outcome.label());
        tracing::info!(target = %target.label, outcome = %outcome.describe(), "attempt failed");
        match decide(&outcome, &self.snap.failover) {
            Verdict::Return => {
                permit.neutral();
                Settled::Finished(Exchange {
                    attempts: self.sent,
                    result: Err(returned(&provider.name, outcome)),
                })
            }
            Verdict::FailOver {
                cooldown,
                rate_limited,
                counts_as_failure,
                retry_same,
            } => {
                if let Some(d) = cooldown {
                    self.app.health.cool(target, d, rate_limited);
                }
                if counts_as_failure {
                    if permit.failure(self.snap.circuit) {
                        tracing::warn!(provider = %provider.name, "circuit opened");
                    }
                } else {
                    permit.neutral();
                }
                self.log.push(Record {
                    target: target.label.clone(),
                    outcome,
                });
                Settled::Next { retry_same }
            }
        }
    }

    /// The next target after `idx` that could take the request now, admitted and
    /// with its upstream request built.
    fn hedge_candidate(
        &mut self,
        targets: &[Arc<Target>],
        idx: usize,
    ) -> Option<(Arc<Target>, Permit<'a>, http::Request<Bytes>)> {
        if self.sent >= self.snap.failover.max_attempts {
            return None;
        }
        for (j, t) in targets.iter().enumerate().skip(idx + 1) {
            if self.hedged[j] || !t.provider.enabled() || self.app.health.cooldown(t).is_some() {
                continue;
            }
            let pkey = t.provider.health_key();
            let admission = self.app.health.admit(&pkey);
            if !matches!(admission, Admission::Closed | Admission::Trial) {
                continue;
            }
            let permit = self.app.health.permit(&pkey, admission);
            match adapter_for(t.provider.kind).build_request(self.req, t) {
                Ok(r) => {
                    self.hedged[j] = true;
                    return Some((t.clone(), permit, r));
                }
                Err(_) => permit.neutral(), // the main walk notes it when it gets there
            }
        }
        None
    }

    /// `hedge_after` > 0: if the first attempt has no response head by then, start the
    /// next target too; the first to answer wins and the other is cancelled.
    async fn race<'p>(
        &mut self,
        targets: &[Arc<Target>],
        idx: usize,
        target: &Arc<Target>,
        permit: Permit<'p>,
        first: impl std::future::Future<Output = Result<Answer, Outcome>>,
        head: &Notify,
    ) -> Raced<'p>
    where
        'a: 'p,
    {
        tokio::pin!(first);
        let hedge_after = self.snap.failover.hedge_after;
        let slow = async {
            tokio::select! {
                _ = tokio::time::sleep(hedge_after) => {}
                _ = head.notified() => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            result = &mut first => return Raced::Alone(result, permit),
            _ = slow => {}
        }
        let Some((second, second_permit, second_req)) = self.hedge_candidate(targets, idx) else {
            return Raced::Alone(first.await, permit);
        };
        tracing::info!(slow = %target.label, hedge = %second.label, "no response head yet; hedging");
        self.start_attempt();
        let never = Notify::new();
        let hedge = attempt(self.app, self.snap, &second, self.req, second_req, &never);
        tokio::pin!(hedge);
        let (mut permit, mut second_permit) = (Some(permit), Some(second_permit));
        while permit.is_some() || second_permit.is_some() {
            let (who, result) = tokio::select! {
                r = &mut first, if permit.is_some() => (0, r),
                r = &mut hedge, if second_permit.is_some() => (1, r),
            };
            let (t, p) = if who == 0 {
                (target, permit.take())
            } else {
                (&second, second_permit.take())
            };
            let Some(p) = p else { break };
            if let Settled::Finished(ex) = self.settle(t, p, result) {
                return Raced::Finished(ex); // the other attempt is dropped: cancelled
            }
        }
        Raced::BothFailed
    }
}

/// `Some(soonest end)` when every enabled target is cooling down right now.
fn all_cooling_until(app: &App, targets: &[Arc<Target>]) -> Option<Instant> {
    let mut soonest: Option<Instant> = None;
    for t in targets.iter().filter(|t| t.provider.enabled()) {
        let c = app.health.cooldown(t)?;
        soonest = Some(soonest.map_or(c.until, |s| s.min(c.until)));
    }
    soonest
}

/// Full jitter: uniform in [0, base * 2^(try-1)].
fn backoff(base: Duration, try_no: u32) -> Duration {
    let cap = base.saturating_mul(1u32 << (try_no - 1).min(16));
    cap.mul_f64(fastrand::f64())
}

/// An upstream error handed to the client without failover.
fn returned(provider: &str, outcome: Outcome) -> ProxyError {
    match outcome {
        Outcome::Status { error, .. } if error.status == 400 || error.status == 422 => {
            ProxyError::ProviderRejected {
                message: format!("{provider}: {}", error.message),
                code: error.code,
            }
        }
        Outcome::Status { error, .. } => ProxyError::Upstream {
            provider: provider.to_string(),
            error,
        },
        other => ProxyError::AllFailed(format!("{provider}: {}", other.describe())),
    }
}

fn final_error(app: &App, targets: &[Arc<Target>], log: &[Record], skips: &Skips) -> ProxyError {
    let mut msg = String::new();
    for r in log {
        let _ = write!(msg, "; {}: {}", r.target, r.outcome.describe());
    }
    for n in &skips.notes {
        let _ = write!(msg, "; {n}");
    }
    let detail = msg.trim_start_matches("; ");
    let now = Instant::now();
    if log.is_empty() {
        if !skips.unsupported.is_empty()
            && skips.unsupported.len() + skips.disabled == targets.len()
        {
            return ProxyError::BadRequest(format!(
                "no target can serve this request: {}",
                skips.unsupported.join("; ")
            ));
        }
        if skips.disabled == targets.len() {
            return ProxyError::NoProvider {
                message: format!("no provider available: every target is disabled: {detail}"),
                retry_after: None,
                rate_limited: false,
            };
        }
        return ProxyError::NoProvider {
            message: format!("no target could be tried: {detail}"),
            retry_after: skips.soonest.map(|s| s.saturating_duration_since(now)),
            rate_limited: skips.rate_limited,
        };
    }
    let all_rate_limited = log
        .iter()
        .all(|r| matches!(&r.outcome, Outcome::Status { error, .. } if error.status == 429))
        && !skips.other;
    if all_rate_limited {
        let soonest = targets
            .iter()
            .filter_map(|t| app.health.cooldown(t).map(|c| c.until))
            .min()
            .map_or(Duration::from_secs(1), |s| s.saturating_duration_since(now));
        return ProxyError::RateLimited(format!("every target is rate-limited: {detail}"), soonest);
    }
    if matches!(log.last().map(|r| &r.outcome), Some(Outcome::Timeout(_))) {
        return ProxyError::Timeout(format!("upstream timed out: {detail}"));
    }
    ProxyError::AllFailed(format!("every target failed: {detail}"))
}

async fn read_body(body: Incoming, limit: usize, deadline: Instant) -> Result<Bytes, Outcome> {
    match tokio::time::timeout_at(deadline, Limited::new(body, limit).collect()).await {
        Err(_) => Err(Outcome::Timeout("total")),
        Ok(Err(e)) => Err(Outcome::Stream(format!("reading the answer: {e}"))),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

async fn attempt(
    app: &Arc<App>,
    snap: &Snapshot,
    target: &Arc<Target>,
    req: &ChatRequest,
    upstream_req: http::Request<Bytes>,
    head: &Notify,
) -> Result<Answer, Outcome> {
    let adapter = adapter_for(target.provider.kind);
    let t = &target.timeouts;
    let started = Instant::now();
    let total = started + t.total;
    let resp = app
        .upstream
        .send(upstream_req, t.connect, started + t.first_byte, total)
        .await
        .map_err(|e| match e {
            SendError::Timeout(phase) => Outcome::Timeout(phase),
            SendError::Connect(m) | SendError::Other(m) => Outcome::Connect(m),
        })?;
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
        let retry_hint = classify::retry_hint(&headers, SystemTime::now()).or(error.retry_after);
        return Err(Outcome::Status { error, retry_hint });
    }
    if !req.is_stream() {
        let body = read_body(resp.into_body(), ANSWER_LIMIT, total).await?;
        return match adapter.parse_response(req, target, &body) {
            Ok(answer) => {
                observe(app, true);
                Ok(Answer::Complete(answer))
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
        adapter.stream_translator(req, target),
        t,
        started,
    );
    let include_usage = req.include_usage();
    let mut held = BytesMut::new();
    let mut held_chunks = Vec::new();
    let mut first = true;
    loop {
        match upstream.next().await {
            Ok(Some(mut chunk)) => {
                if first {
                    observe(app, true);
                    first = false;
                }
                if held.len() > HELD_LIMIT {
                    return Err(Outcome::Protocol(format!(
                        "over {HELD_LIMIT} bytes of stream without any content"
                    )));
                }
                held_chunks.push(chunk.clone());
                if !stream::keep(&mut chunk, include_usage) {
                    continue;
                }
                let content = chunk.is_content();
                stream::encode(&chunk, &mut held);
                if content {
                    return Ok(Answer::Stream(Box::new(Committed {
                        first: held.freeze(),
                        held: held_chunks,
                        tap: None,
                        upstream,
                        include_usage,
                        provider: target.provider.name.clone(),
                        end: Box::new(CircuitOnEnd {
                            app: app.clone(),
                            provider_key: target.provider.health_key(),
                            provider: target.provider.name.clone(),
                            circuit: snap.circuit,
                            failover: snap.failover.clone(),
                        }),
                        guard: None,
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

/// A round-robin cursor per route, advanced once per request.
pub fn next_cursor(counter: &std::sync::atomic::AtomicUsize) -> usize {
    counter.fetch_add(1, Ordering::Relaxed)
}
