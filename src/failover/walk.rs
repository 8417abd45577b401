//! One client request's walk down its targets: the attempts it sent, how each
//! result is booked (metrics, circuit, cooldown, the log for the final error), and
//! hedging a target that is slow to answer.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Notify;

use super::attempt::attempt;
use super::classify::{decide, Outcome, Verdict};
use super::health::{Admission, Permit};
use super::{Answer, Exchange, Record, Success};
use crate::app::App;
use crate::canonical::ChatRequest;
use crate::config::{Snapshot, Target};
use crate::error::ProxyError;
use crate::providers::adapter_for;

/// One client request's walk down its targets: what was sent and what failed.
pub(super) struct Walk<'a> {
    pub(super) app: &'a Arc<App>,
    pub(super) snap: &'a Snapshot,
    pub(super) route: &'a str,
    pub(super) req: &'a ChatRequest,
    pub(super) sent: u32,
    pub(super) log: Vec<Record>,
    /// Targets already tried as a hedge in this pass.
    pub(super) hedged: Vec<bool>,
}

pub(super) enum Settled {
    /// Answered, or an error to hand to the client.
    Finished(Exchange),
    Next {
        retry_same: bool,
    },
}

pub(super) enum Raced<'p> {
    /// No hedge was started: the first attempt's own result.
    Alone(Result<Answer, Outcome>, Permit<'p>),
    Finished(Exchange),
    BothFailed,
}

impl<'a> Walk<'a> {
    pub(super) fn start_attempt(&mut self) {
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
    pub(super) fn settle(
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
    pub(super) async fn race<'p>(
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
