//! The attempt loop: walk the route's targets in the strategy's order, skip what is
//! disabled, cooling or open, try the rest until one answers, and keep one record
//! per attempt for the final error.

mod attempt;
pub mod classify;
pub mod health;
pub mod probe;
pub mod stream;
mod walk;

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::app::App;
use crate::canonical::{ChatRequest, ChatResponse};
use crate::config::{Snapshot, Strategy, Target};
use crate::error::ProxyError;
use crate::providers::{adapter_for, AdapterError};
use attempt::attempt;
use classify::Outcome;
use health::Admission;
use stream::Committed;
use walk::{Raced, Settled, Walk};

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

/// A round-robin cursor per route, advanced once per request.
pub fn next_cursor(counter: &std::sync::atomic::AtomicUsize) -> usize {
    counter.fetch_add(1, Ordering::Relaxed)
}
