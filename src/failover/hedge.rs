//! Hedging (`hedge_after` > 0): if an attempt has no response head by then, the next
//! admissible target is tried too; the first to answer wins, the other is cancelled.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Notify;

use super::admission::{admit, Candidate};
use super::attempt::{attempt, Admitted};
use super::classify::Outcome;
use super::health::Permit;
use super::limit::Slot;
use super::walk::{Settled, Walk};
use super::{Exchange, Work};
use crate::providers::Target;

pub(super) enum Raced<'p, A> {
    /// No hedge was started: the first attempt's own result.
    Alone(Result<A, Outcome>, Permit<'p>),
    Finished(Exchange<A>),
    BothFailed,
}

impl<'a, W: Work> Walk<'a, W> {
    /// The next target after `idx` that could take the request now, admitted and
    /// with its upstream request built. Skips are not recorded here: the main walk
    /// records them when it reaches those targets.
    fn hedge_candidate(
        &mut self,
        targets: &[Arc<Target>],
        idx: usize,
    ) -> Option<(Arc<Target>, Permit<'a>, Slot, http::Request<Bytes>)> {
        if self.out_of_attempts() {
            return None;
        }
        for (j, t) in targets.iter().enumerate().skip(idx + 1) {
            if self.hedged[j] || self.exceeds_window(t).is_some() {
                continue;
            }
            let Candidate::Admitted(permit) = admit(self.app, t) else {
                continue;
            };
            // A hedge does not queue: only a provider with a free slot now.
            let (Ok(r), Some(slot)) =
                (self.call.build(t), self.app.limits.try_acquire(&t.provider))
            else {
                permit.neutral();
                continue;
            };
            if !self.may_send() {
                // Over the retry budget: the first attempt goes on alone.
                permit.neutral();
                return None;
            }
            self.hedged[j] = true;
            return Some((t.clone(), permit, slot, r));
        }
        None
    }

    pub(super) async fn race(
        &mut self,
        targets: &[Arc<Target>],
        idx: usize,
        permit: Permit<'a>,
        mut first: std::pin::Pin<
            &mut impl std::future::Future<Output = Result<W::Answer, Outcome>>,
        >,
        head: &Notify,
    ) -> Raced<'a, W::Answer> {
        let target = &targets[idx];
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
        let Some((second, second_permit, second_slot, second_req)) =
            self.hedge_candidate(targets, idx)
        else {
            return Raced::Alone(first.await, permit);
        };
        tracing::info!(slow = %target.label, hedge = %second.label, "no response head yet; hedging");
        self.start_attempt();
        let never = Notify::new();
        // Boxed: hedges are rare, and inline the second attempt would double every
        // request's future.
        let mut hedge = Box::pin(attempt(
            self.app,
            self.snap,
            &second,
            self.call,
            second_req,
            &never,
            Admitted {
                slot: second_slot,
                number: self.sent,
            },
        ));
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
