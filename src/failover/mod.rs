//! The failover walk, read top to bottom in [`run`]: the route's targets in its
//! strategy's order; each one admitted or skipped (disabled, cooling, circuit open,
//! cannot express the request); tried, retried or hedged; every result booked. The
//! walk never learns which client API called it: it sees the canonical request and a
//! rule for what counts as content.

mod admission;
mod attempt;
pub mod classify;
pub mod health;
mod hedge;
mod order;
pub mod probe;
pub mod stream;
mod walk;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::app::App;
use crate::canonical::{ChatRequest, ChatResponse};
use crate::config::{Resolved, Snapshot};
use crate::error::{ProxyError, SkipReason};
use crate::frontdoor::IsContent;
use crate::providers::{build_for, Target};
use admission::{admit, Candidate};
use stream::Committed;
use walk::{Settled, Walk};

pub enum Answer {
    Complete(Box<ChatResponse>),
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

/// What the walk needs of a client's request, whichever API it came in by.
pub struct Call<'a> {
    pub req: &'a ChatRequest,
    /// The front door's rule for a stream's commit point.
    pub is_content: IsContent,
}

pub async fn run(
    app: &Arc<App>,
    snap: &Snapshot,
    resolved: &Resolved<'_>,
    call: &Call<'_>,
) -> Exchange {
    let targets = order::targets(app, resolved);
    let policy = &snap.failover;
    let mut walk = Walk::new(app, snap, resolved.label(), call, targets.len());
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
                let permit = match admit(app, target) {
                    Candidate::Admitted(p) => p,
                    Candidate::Skipped(skip) => {
                        walk.skip(target, skip);
                        break;
                    }
                };
                let upstream_req = match build_for(call.req, target) {
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
                match walk.try_target(&targets, idx, permit, upstream_req).await {
                    Settled::Finished(ex) => return ex,
                    Settled::Next { retry_same: true } => {}
                    Settled::Next { retry_same: false } => break,
                }
            }
        }
        // DESIGN §6: when every usable target is cooling, wait (up to max_wait) for the
        // soonest and try again.
        if !walk.out_of_attempts() && !policy.max_wait.is_zero() {
            if let Some(at) = all_cooling_until(app, &targets) {
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
        return walk.exhausted(&targets);
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
