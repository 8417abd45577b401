//! Per-provider `max_concurrency`: a semaphore of upstream slots with a bounded
//! queue and a bounded wait. A request that gets no slot skips the provider, like a
//! cooling one, so the walk fails over to a target with room; memory stays bounded
//! because nothing waits past `max_queue`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::providers::{Concurrency, Provider};

/// The slots of every limited provider, keyed like its health (name, kind, base_url)
/// so requests in flight across a reload still count against the same limit.
#[derive(Default)]
pub struct Limits {
    gates: Mutex<HashMap<String, Arc<Gate>>>,
}

struct Gate {
    conf: Concurrency,
    slots: Arc<Semaphore>,
    waiting: AtomicU32,
}

/// One upstream request's place in its provider's limit, given back on drop (for a
/// stream: when the stream ends). Unlimited providers hand out empty slots.
#[derive(Debug)]
pub struct Slot(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

/// Why no slot was had: every slot busy and the queue full, or the wait ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSlot {
    QueueFull,
    WaitedOut,
}

impl Limits {
    fn gate(&self, p: &Provider) -> Option<Arc<Gate>> {
        let conf = p.concurrency?;
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        let gate = gates
            .entry(p.health_key())
            .and_modify(|g| {
                // A reload changed the limit: a fresh gate; slots held on the old one
                // are given back to it and vanish with it.
                if g.conf != conf {
                    *g = Arc::new(Gate::new(conf));
                }
            })
            .or_insert_with(|| Arc::new(Gate::new(conf)));
        Some(gate.clone())
    }

    /// A slot now, or after waiting in the queue up to `queue_wait`.
    pub async fn acquire(&self, p: &Provider) -> Result<Slot, NoSlot> {
        let Some(gate) = self.gate(p) else {
            return Ok(Slot(None));
        };
        if let Ok(permit) = gate.slots.clone().try_acquire_owned() {
            return Ok(Slot(Some(permit)));
        }
        if gate.waiting.fetch_add(1, Ordering::AcqRel) >= gate.conf.queue {
            gate.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(NoSlot::QueueFull);
        }
        let waited = tokio::time::timeout(gate.conf.wait, gate.slots.clone().acquire_owned()).await;
        gate.waiting.fetch_sub(1, Ordering::AcqRel);
        match waited {
            Ok(Ok(permit)) => Ok(Slot(Some(permit))),
            _ => Err(NoSlot::WaitedOut),
        }
    }

    /// A slot only if one is free right now (a hedge does not queue).
    pub fn try_acquire(&self, p: &Provider) -> Option<Slot> {
        let Some(gate) = self.gate(p) else {
            return Some(Slot(None));
        };
        gate.slots
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|s| Slot(Some(s)))
    }

    /// Could a request to `p` get a slot or a place in the queue right now?
    pub fn has_room(&self, p: &Provider) -> bool {
        match self.gate(p) {
            None => true,
            Some(g) => {
                g.slots.available_permits() > 0 || g.waiting.load(Ordering::Acquire) < g.conf.queue
            }
        }
    }
}

impl Gate {
    fn new(conf: Concurrency) -> Gate {
        Gate {
            conf,
            slots: Arc::new(Semaphore::new(conf.max as usize)),
            waiting: AtomicU32::new(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::providers::testing::target_with;
    use crate::providers::Kind;

    fn limited(max: u32, queue: u32) -> Arc<Provider> {
        let t = target_with(Kind::Openai, "http://x", "m", |p| {
            p.concurrency = Some(Concurrency {
                max,
                queue,
                wait: Duration::from_millis(100),
            })
        });
        t.provider.clone()
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_is_refused_at_once() {
        let (limits, p) = (Limits::default(), limited(1, 0));
        let held = limits.acquire(&p).await.expect("the one slot");
        assert!(!limits.has_room(&p));
        assert_eq!(limits.acquire(&p).await.map(|_| ()), Err(NoSlot::QueueFull));
        drop(held);
        assert!(limits.has_room(&p));
        assert!(limits.acquire(&p).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_gets_the_slot_given_back_or_gives_up_after_the_wait() {
        let (limits, p) = (Arc::new(Limits::default()), limited(1, 1));
        let held = limits.acquire(&p).await.expect("the one slot");
        let waiter = {
            let (limits, p) = (limits.clone(), p.clone());
            tokio::spawn(async move { limits.acquire(&p).await.map(|_| ()) })
        };
        tokio::task::yield_now().await;
        // The queue (1) is taken by the waiter: a third request is refused.
        assert!(!limits.has_room(&p));
        assert_eq!(limits.acquire(&p).await.map(|_| ()), Err(NoSlot::QueueFull));
        drop(held);
        assert_eq!(waiter.await.expect("joined"), Ok(()));

        let held = limits.acquire(&p).await.expect("free again");
        let started = tokio::time::Instant::now();
        assert_eq!(limits.acquire(&p).await.map(|_| ()), Err(NoSlot::WaitedOut));
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        assert!(limits.try_acquire(&p).is_none());
        drop(held);
        assert!(limits.try_acquire(&p).is_some());
    }

    #[tokio::test]
    async fn an_unlimited_provider_always_has_room() {
        let limits = Limits::default();
        let t = target_with(Kind::Openai, "http://x", "m", |_| {});
        for _ in 0..3 {
            assert!(limits.acquire(&t.provider).await.is_ok());
        }
        assert!(limits.has_room(&t.provider));
    }
}
