//! One client request's walk down its targets: the attempts it sent, how each result
//! is booked (metrics, circuit, cooldown, the steps of the final error), and the
//! final error when no target answered.

use std::cell::OnceCell;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::admission::Skip;
use super::attempt::{attempt, Admitted};
use super::budget::Window;
use super::classify::{decide, Outcome, Verdict};
use super::fit::Estimate;
use super::health::Permit;
use super::hedge::Raced;
use super::limit::Slot;
use super::{Exchange, Success, Work};
use crate::app::App;
use crate::config::Snapshot;
use crate::dashboard::{FailedAttempt, Then};
use crate::error::{tried, Exhausted, ProxyError, SkipReason, Step, StepKind, TooLong, Why};
use crate::providers::{FailureClass, Target};

pub(super) struct Walk<'a, W: Work> {
    pub(super) app: &'a Arc<App>,
    pub(super) snap: &'a Snapshot,
    pub(super) route: String,
    pub(super) call: &'a W,
    pub(super) sent: u32,
    /// Every attempt and every skip, in the order they happened.
    steps: Vec<Step>,
    /// Targets already tried as a hedge in this pass.
    pub(super) hedged: Vec<bool>,
    /// When the soonest skipped target becomes usable again.
    soonest: Option<Instant>,
    /// Some skipped target is cooling from a rate limit.
    skipped_rate_limited: bool,
    /// Skipped for a reason other than a rate-limit cooldown or being disabled.
    skipped_other: bool,
    /// The route's retry budget.
    budget: Arc<Window>,
    /// An attempt was refused for the budget (counted once per client request).
    over_budget: bool,
    /// The request's size, for targets that declare a context window: measured
    /// when first needed, so a route without windows never pays for it.
    estimate: OnceCell<Option<Estimate>>,
}

pub(super) enum Settled<A> {
    /// Answered, or an error to hand to the client.
    Finished(Exchange<A>),
    Next {
        retry_same: bool,
    },
}

impl<'a, W: Work> Walk<'a, W> {
    pub(super) fn new(
        app: &'a Arc<App>,
        snap: &'a Snapshot,
        route: String,
        call: &'a W,
        targets: usize,
    ) -> Walk<'a, W> {
        let budget = app.budgets.route(&route);
        budget.request();
        Walk {
            app,
            snap,
            budget,
            over_budget: false,
            route,
            call,
            sent: 0,
            steps: Vec::new(),
            hedged: vec![false; targets],
            soonest: None,
            skipped_rate_limited: false,
            skipped_other: false,
            estimate: OnceCell::new(),
        }
    }

    fn estimate(&self) -> Option<Estimate> {
        *self.estimate.get_or_init(|| self.call.estimate())
    }

    /// Why `target` is skipped before it is asked: the request clearly exceeds the
    /// context window the route declares for it.
    pub(super) fn exceeds_window(&self, target: &Target) -> Option<SkipReason> {
        let window = target.context_window?;
        let estimate = self.estimate()?;
        if !estimate.clearly_exceeds(window) {
            return None;
        }
        tracing::debug!(target = %target.label, window, estimate = %estimate.describe(), "skipped: request exceeds the context window");
        Some(SkipReason::ContextWindow { window, estimate })
    }

    /// Another pass over the targets (after waiting for a cooling one): what was
    /// skipped before is judged afresh; what was tried stays in the record.
    pub(super) fn new_pass(&mut self) {
        self.steps.retain(|s| matches!(s.what, StepKind::Tried(_)));
        self.hedged.iter_mut().for_each(|h| *h = false);
        self.soonest = None;
        self.skipped_rate_limited = false;
        self.skipped_other = false;
    }

    pub(super) fn hedged(&self, idx: usize) -> bool {
        self.hedged[idx]
    }

    pub(super) fn out_of_attempts(&self) -> bool {
        self.sent >= self.snap.failover.max_attempts
    }

    pub(super) fn skip(&mut self, target: &Target, skip: Skip) {
        if let Some(at) = skip.usable_at {
            self.soonest = Some(self.soonest.map_or(at, |s| s.min(at)));
        }
        self.skipped_rate_limited |= skip.rate_limited;
        // A cooling target says when it is back; an open circuit does not promise it.
        self.skipped_other |=
            matches!(skip.reason, SkipReason::CircuitOpen | SkipReason::TrialBusy);
        self.steps.push(Step {
            target: target.label.clone(),
            what: StepKind::Skipped(skip.reason),
        });
    }

    /// Whether the next attempt may be sent: the first always may; any other
    /// (failover, retry, hedge) spends the route's retry budget.
    pub(super) fn may_send(&mut self) -> bool {
        if self.sent == 0 || self.budget.try_extra(self.snap.failover.budget) {
            return true;
        }
        if !self.over_budget {
            self.over_budget = true;
            self.app.metrics.budget_exhausted(&self.route);
            tracing::info!(route = %self.route, "retry budget exhausted; no further attempt");
        }
        false
    }

    pub(super) fn start_attempt(&mut self) {
        if self
            .steps
            .iter()
            .any(|s| matches!(s.what, StepKind::Tried(_)))
        {
            // This attempt follows a failed one: the request failed over.
            self.app.metrics.failover(&self.route);
        }
        self.sent += 1;
    }

    /// One attempt on `targets[idx]`, hedged when `hedge_after` says so.
    pub(super) async fn try_target(
        &mut self,
        targets: &[Arc<Target>],
        idx: usize,
        permit: Permit<'a>,
        slot: Slot,
        upstream_req: http::Request<Bytes>,
    ) -> Settled<W::Answer> {
        let target = &targets[idx];
        self.start_attempt();
        let head = Notify::new();
        // Pinned here once and lent to the race: an async fn that takes a future by
        // value keeps it twice (the argument, then the copy it awaits).
        let mut first = std::pin::pin!(attempt(
            self.app,
            self.snap,
            target,
            self.call,
            upstream_req,
            &head,
            Admitted {
                slot,
                number: self.sent,
            },
        ));
        if self.snap.failover.hedge_after.is_zero() {
            let result = first.await;
            return self.settle(target, permit, result);
        }
        match self.race(targets, idx, permit, first.as_mut(), &head).await {
            Raced::Alone(result, permit) => self.settle(target, permit, result),
            Raced::Finished(ex) => Settled::Finished(ex),
            Raced::BothFailed => Settled::Next { retry_same: false },
        }
    }

    /// Books an attempt's result: metrics, circuit, cooldown, the step record.
    pub(super) fn settle(
        &mut self,
        target: &Arc<Target>,
        permit: Permit<'_>,
        result: Result<W::Answer, Outcome>,
    ) -> Settled<W::Answer> {
        let provider = &target.provider;
        let outcome = match result {
            Ok(answer) => {
                permit.success();
                self.app.metrics.attempt(&provider.name, "ok");
                self.app.dashboard.attempt(&provider.name, true);
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
        let verdict = decide(&outcome, &self.snap.failover);
        self.book_failure(target, &outcome, &verdict);
        match verdict {
            Verdict::Return => {
                tracing::info!(target = %target.label, outcome = %outcome.describe(), "attempt failed; returned to the client");
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
                match cooldown {
                    Some(d) => {
                        tracing::info!(target = %target.label, outcome = %outcome.describe(), cooldown_secs = d.as_secs_f64(), "attempt failed; target cooling down");
                        self.app.health.cool(target, d, rate_limited);
                    }
                    None => {
                        tracing::info!(target = %target.label, outcome = %outcome.describe(), "attempt failed")
                    }
                }
                if counts_as_failure {
                    if permit.failure(self.snap.circuit) {
                        tracing::warn!(provider = %provider.name, "circuit opened");
                    }
                } else {
                    permit.neutral();
                }
                self.steps.push(Step {
                    target: target.label.clone(),
                    what: StepKind::Tried(outcome),
                });
                Settled::Next { retry_same }
            }
        }
    }

    /// For the dashboard: the provider's window and the list of failed attempts.
    fn book_failure(&self, target: &Target, outcome: &Outcome, verdict: &Verdict) {
        self.app.dashboard.attempt(&target.provider.name, false);
        self.app.dashboard.failed(FailedAttempt {
            at: SystemTime::now(),
            route: Some(self.route.clone()),
            target: target.label.clone(),
            outcome: outcome.label(),
            reason: outcome.describe(),
            then: match verdict {
                Verdict::FailOver { .. } => Then::FailedOver,
                Verdict::Return => Then::Returned,
            },
        });
    }

    /// No target answered: the final error, with every step in order.
    pub(super) fn exhausted(self, targets: &[Arc<Target>]) -> Exchange<W::Answer> {
        if too_long(&self.steps) {
            let refused = self.steps.iter().rev().find_map(|s| match &s.what {
                StepKind::Tried(Outcome::Status { error, .. }) => Some((
                    s.target.split('/').next().unwrap_or_default().to_string(),
                    Box::new(error.clone()),
                )),
                _ => None,
            });
            return Exchange {
                attempts: self.sent,
                result: Err(ProxyError::ContextTooLong(TooLong {
                    refused,
                    estimate: self.estimate(),
                    steps: self.steps,
                })),
            };
        }
        let now = Instant::now();
        let tried = tried(&self.steps);
        let skipped = |pred: fn(&SkipReason) -> bool| {
            self.steps
                .iter()
                .filter(|s| matches!(&s.what, StepKind::Skipped(r) if pred(r)))
                .count()
        };
        let disabled = skipped(|r| matches!(r, SkipReason::Disabled(_)));
        let unsupported = skipped(|r| matches!(r, SkipReason::Unsupported(_)));
        let error =
            if tried.is_empty() && unsupported > 0 && unsupported + disabled == targets.len() {
                let reasons: Vec<String> = self
                    .steps
                    .iter()
                    .filter_map(|s| match &s.what {
                        StepKind::Skipped(SkipReason::Unsupported(m)) => {
                            Some(format!("{}: {m}", s.target))
                        }
                        _ => None,
                    })
                    .collect();
                ProxyError::BadRequest(format!(
                    "no target can serve this request: {}",
                    reasons.join("; ")
                ))
            } else {
                let overloaded = skipped(|r| matches!(r, SkipReason::Overloaded { .. }));
                let (why, retry_after) = if tried.is_empty() {
                    if overloaded > 0 {
                        self.app.metrics.shed_request(&self.route);
                        // Shed: every target with capacity was busy (DESIGN §6 shape,
                        // code `overloaded`); a second lets slots turn over.
                        (Why::Overloaded, Some(Duration::from_secs(1)))
                    } else if disabled == targets.len() {
                        (Why::AllDisabled, None)
                    } else {
                        let rate_limited = self.skipped_rate_limited;
                        let after = self.soonest.map(|s| s.saturating_duration_since(now));
                        (Why::NoneTried { rate_limited }, after)
                    }
                } else if tried
                    .iter()
                    .all(|o| matches!(o.class(), FailureClass::RateLimit | FailureClass::Quota))
                    && !self.skipped_other
                {
                    let soonest = targets
                        .iter()
                        .filter_map(|t| self.app.health.cooldown(t).map(|c| c.until))
                        .min()
                        .map_or(Duration::from_secs(1), |s| s.saturating_duration_since(now));
                    (Why::RateLimited, Some(soonest))
                } else if matches!(tried.last(), Some(Outcome::Timeout(_))) {
                    (Why::TimedOut, None)
                } else {
                    (Why::Failed, None)
                };
                ProxyError::Exhausted(Exhausted {
                    why,
                    steps: self.steps,
                    retry_after,
                })
            };
        Exchange {
            attempts: self.sent,
            result: Err(error),
        }
    }
}

/// Every target that could take the request is too small for it: it said so, or
/// was skipped by its declared window (disabled ones and kinds that cannot express
/// the request aside).
fn too_long(steps: &[Step]) -> bool {
    let mut any = false;
    for s in steps {
        match &s.what {
            StepKind::Tried(o) if o.class() == FailureClass::ContextTooLong => any = true,
            StepKind::Skipped(SkipReason::ContextWindow { .. }) => any = true,
            StepKind::Skipped(SkipReason::Disabled(_) | SkipReason::Unsupported(_)) => {}
            _ => return false,
        }
    }
    any
}

/// An upstream error handed to the client without failover.
fn returned(provider: &str, outcome: Outcome) -> ProxyError {
    match outcome {
        Outcome::Status { error, .. } if error.status == 400 || error.status == 422 => {
            ProxyError::ProviderRejected {
                provider: provider.to_string(),
                error: Box::new(error),
            }
        }
        Outcome::Status { error, .. } => ProxyError::Upstream {
            provider: provider.to_string(),
            error: Box::new(error),
        },
        // `decide` fails over on everything else; should that change, the client
        // still gets a truthful 502.
        other => ProxyError::Exhausted(Exhausted {
            why: Why::Failed,
            steps: vec![Step {
                target: provider.to_string(),
                what: StepKind::Tried(other),
            }],
            retry_after: None,
        }),
    }
}
