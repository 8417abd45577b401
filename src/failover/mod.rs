//! The failover walk, read top to bottom in [`run`]: the route's targets in its
//! strategy's order; each one admitted or skipped (disabled, cooling, circuit open,
//! cannot express the request); tried, retried or hedged; every result booked. The
//! walk never learns which client API called it, nor what it fetches: a [`Work`]
//! builds each target's request and reads its answer — a chat turn ([`Call`]), whole
//! or streamed up to its commit point, or an embeddings request.

mod admission;
mod attempt;
pub mod budget;
mod chat;
pub mod classify;
mod embed;
pub mod fit;
pub mod health;
mod hedge;
pub mod limit;
pub mod order;
pub mod probe;
pub mod resume;
mod splice;
pub mod stream;
mod walk;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::app::App;
use crate::canonical::{ChatRequest, ChatResponse};
use crate::config::{Resolved, Snapshot};
use crate::error::{ProxyError, SkipReason};
use crate::frontdoor::IsContent;
use crate::providers::Target;
use admission::{admit, Candidate};
pub use attempt::Answered;
use classify::Outcome;
use stream::Committed;
use walk::{Settled, Walk};

/// A chat turn's answer.
pub enum Answer {
    Complete(Box<ChatResponse>),
    Stream(Box<Committed>),
}

pub struct Success<A = Answer> {
    pub target: Arc<Target>,
    pub answer: A,
}

/// The result of one client request, with how many upstream requests it sent.
pub struct Exchange<A = Answer> {
    pub attempts: u32,
    pub result: Result<Success<A>, ProxyError>,
}

/// What the walk fetches from each target it tries.
pub trait Work: Sync {
    type Answer: Send;

    /// The upstream request for `target`, or why this target cannot take the request
    /// (the walk skips it; 400 if no target can).
    fn build(&self, target: &Target) -> Result<http::Request<Bytes>, String>;

    /// Reads a 2xx answer. An `Err` is a failed attempt, booked and failed over like
    /// any other.
    fn read(
        &self,
        answered: Answered<'_>,
    ) -> impl Future<Output = Result<Self::Answer, Outcome>> + Send;

    /// What a good answer tells its trace span now; `None` when it tells it later
    /// (a stream, at its end).
    /// `capture`: the answer's text may go into the span.
    fn facts(_answer: &Self::Answer, _capture: bool) -> Option<crate::telemetry::Facts> {
        None
    }

    /// The request's size in tokens, for targets that declare a `context_window`.
    fn estimate(&self) -> Option<fit::Estimate> {
        None
    }
}

/// A chat turn, whichever API it came in by.
pub struct Call<'a> {
    pub req: &'a ChatRequest,
    /// The front door's rule for a stream's commit point.
    pub is_content: IsContent,
}

pub async fn run<W: Work>(
    app: &Arc<App>,
    snap: &Snapshot,
    resolved: &Resolved<'_>,
    call: &W,
) -> Exchange<W::Answer> {
    let targets = order::targets(app, resolved);
    run_over(app, snap, resolved.label(), &targets, call, 0).await
}

/// The walk over `targets` in this order, `sent` upstream requests already spent
/// (a resumed stream's walk counts toward its request's `max_attempts`).
async fn run_over<W: Work>(
    app: &Arc<App>,
    snap: &Snapshot,
    route: String,
    targets: &[Arc<Target>],
    call: &W,
    sent: u32,
) -> Exchange<W::Answer> {
    let policy = &snap.failover;
    let mut walk = Walk::new(app, snap, route, call, targets.len());
    walk.sent = sent;
    let wait_until = Instant::now() + policy.max_wait;
    loop {
        walk.new_pass();
        for (idx, target) in targets.iter().enumerate() {
            if walk.hedged(idx) {
                continue; // already tried alongside an earlier target
            }
            for try_no in 0..=policy.retries_per_target {
                if walk.out_of_attempts() {
                    break;
                }
                if try_no > 0 {
                    tokio::time::sleep(backoff(policy.backoff, try_no)).await;
                }
                if let Some(reason) = walk.exceeds_window(target) {
                    walk.skip(
                        target,
                        admission::Skip {
                            reason,
                            usable_at: None,
                            rate_limited: false,
                        },
                    );
                    break;
                }
                let permit = match admit(app, target) {
                    Candidate::Admitted(p) => p,
                    Candidate::Skipped(skip) => {
                        walk.skip(target, skip);
                        break;
                    }
                };
                let upstream_req = match call.build(target) {
                    Ok(r) => r,
                    Err(msg) => {
                        // This target cannot express the request (n > 1 for
                        // Anthropic, say); another may. 400 only if none can.
                        permit.neutral();
                        walk.skip(
                            target,
                            admission::Skip {
                                reason: SkipReason::Unsupported(msg),
                                usable_at: None,
                                rate_limited: false,
                            },
                        );
                        break;
                    }
                };
                if !walk.may_send() {
                    // Over the retry budget: the failure so far is the answer.
                    permit.neutral();
                    return walk.exhausted(targets);
                }
                let slot = match app.limits.acquire(&target.provider).await {
                    Ok(slot) => slot,
                    Err(full) => {
                        permit.neutral();
                        app.metrics.concurrency_skip(&target.provider.name);
                        walk.skip(target, admission::overloaded(target, full));
                        break;
                    }
                };
                match walk
                    .try_target(targets, idx, permit, slot, upstream_req)
                    .await
                {
                    Settled::Finished(ex) => return ex,
                    Settled::Next { retry_same: true } => {}
                    Settled::Next { retry_same: false } => break,
                }
            }
        }
        // DESIGN §6: when every usable target is cooling, wait (up to max_wait) for the
        // soonest and try again.
        if !walk.out_of_attempts() && !policy.max_wait.is_zero() {
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
        return walk.exhausted(targets);
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
