//! The span queue: a finished span is written into the pending batch as OTLP bytes
//! right where it ends (no I/O, no await: a short lock); one task sends batches. A
//! slow or dead collector fills the queue and new spans are dropped and counted —
//! never a request held.
//!
//! Why bytes and not span objects in a channel: measured under load, a batch of 512
//! SDK `SpanData` waiting for export (each with its attribute vector, about 1.5 KiB in
//! several allocations) pushed the request path's own data out of cache, and each
//! span cost a channel send and often a wake of the export task. Written at once, the
//! span's data is freed while still hot and the export task wakes twice a batch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::collector::Collector;

/// Spans per OTLP request, at most.
const MAX_BATCH: usize = 512;
/// A span's usual encoded size, to size a batch's buffer.
const SPAN_BYTES: usize = 640;
/// How long a batch waits for more spans before it is sent.
const LINGER: Duration = Duration::from_millis(500);
/// One export's limit; past it the batch counts as failed and the next one starts.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The queue spans are written into. Spans hold it while they are open: the export
/// task sends what is left and ends once the exporter and every span are gone.
#[derive(Debug)]
pub(super) struct Queue {
    shared: Arc<Shared>,
    dropped: Counter,
}

#[derive(Debug)]
struct Shared {
    pending: Mutex<Pending>,
    /// Rung when a batch gets its first span, when it is full, and at close.
    wake: Notify,
    /// Spans waiting at most (`[telemetry] queue_size`).
    capacity: usize,
    closed: AtomicBool,
}

/// Spans not yet handed to the export task.
#[derive(Debug, Default)]
struct Pending {
    /// `ScopeSpans.spans` entries, one after another.
    bytes: Vec<u8>,
    spans: usize,
    /// Where each full batch of [`MAX_BATCH`] spans ends in `bytes`.
    cuts: Vec<usize>,
    /// When the oldest waiting span arrived.
    since: Option<Instant>,
}

/// What the export task takes at once.
struct Taken {
    bytes: Vec<u8>,
    spans: usize,
    cuts: Vec<usize>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A thread that panicked mid-span left bytes, count and cuts that may not
        // agree: the pending spans are lost, not a reason to stop tracing (or to
        // slice past the end later).
        self.pending.lock().unwrap_or_else(|poisoned| {
            let mut p = poisoned.into_inner();
            *p = Pending::default();
            self.pending.clear_poison();
            p
        })
    }

    /// Pending spans that make a batch worth sending at once: a full request, or a
    /// full queue when `queue_size` is smaller than one.
    fn batch(&self) -> usize {
        MAX_BATCH.min(self.capacity)
    }

    /// Whether the span just counted should wake the export task: the first of a
    /// batch (its linger starts) or the one that fills it.
    fn wakes(&self, spans: usize) -> bool {
        spans == 1 || spans == self.batch()
    }

    fn take(&self) -> Taken {
        let mut p = self.lock();
        p.since = None;
        let spans = std::mem::take(&mut p.spans);
        // The next batch starts with room for a full one: no regrowing under load.
        let room = p.bytes.capacity().min(MAX_BATCH * SPAN_BYTES);
        Taken {
            bytes: std::mem::replace(&mut p.bytes, Vec::with_capacity(room)),
            spans,
            cuts: std::mem::take(&mut p.cuts),
        }
    }
}

impl Queue {
    /// Spawns the export task: call inside a tokio runtime. The task sends what is
    /// left and ends when the processor is dropped.
    pub(super) fn start(
        collector: Collector,
        capacity: usize,
        dropped: Counter,
        failed: Counter,
    ) -> Self {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Notify::new(),
            capacity: capacity.max(1),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(export_loop(collector, shared.clone(), failed));
        Queue { shared, dropped }
    }

    /// A finished span, written into the pending batch by `write` (one
    /// `ScopeSpans.spans` entry); dropped and counted when the queue is full.
    pub(super) fn push(&self, write: impl FnOnce(&mut Vec<u8>)) {
        let mut p = self.shared.lock();
        if p.spans >= self.shared.capacity {
            drop(p);
            self.dropped.inc();
            return;
        }
        write(&mut p.bytes);
        p.spans += 1;
        if p.spans.is_multiple_of(MAX_BATCH) {
            let end = p.bytes.len();
            p.cuts.push(end);
        }
        if p.spans == 1 {
            p.since = Some(Instant::now());
        }
        let wake = self.shared.wakes(p.spans);
        drop(p);
        if wake {
            self.shared.wake.notify_one();
        }
    }
}

#[cfg(test)]
impl Queue {
    /// A queue no task exports from: tests take what was written.
    pub(super) fn unstarted(capacity: usize, dropped: Counter) -> Queue {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Notify::new(),
            capacity,
            closed: AtomicBool::new(false),
        });
        Queue { shared, dropped }
    }

    /// The spans written so far (`ScopeSpans.spans` entries), taken.
    pub(super) fn take_bytes(&self) -> Vec<u8> {
        self.shared.take().bytes
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

async fn export_loop(collector: Collector, shared: Arc<Shared>, failed: Counter) {
    loop {
        // Read before the batch: spans that end after it are still sent next round.
        let closed = shared.closed.load(Ordering::Acquire);
        let (spans, since) = {
            let p = shared.lock();
            (p.spans, p.since)
        };
        if spans == 0 {
            if closed {
                return;
            }
            shared.wake.notified().await;
            continue;
        }
        if spans < shared.batch() && !closed {
            let linger = since.unwrap_or_else(Instant::now) + LINGER;
            tokio::select! {
                () = tokio::time::sleep_until(linger) => {}
                // Full or closing: look again (a wake left from the first span only
                // costs one more look).
                () = shared.wake.notified() => continue,
            }
        }
        let taken = shared.take();
        let requests = taken.requests();
        // Sent in slices of the batch's buffer, no copy.
        let bytes = bytes::Bytes::from(taken.bytes);
        for (range, n) in requests {
            send(&collector, bytes.slice(range), n, &failed).await;
        }
    }
}

impl Taken {
    /// The OTLP requests to send: byte ranges of at most [`MAX_BATCH`] spans each, and
    /// how many spans each holds.
    fn requests(&self) -> Vec<(std::ops::Range<usize>, usize)> {
        let mut out = Vec::with_capacity(self.cuts.len() + 1);
        let (mut start, mut left) = (0, self.spans);
        for end in self.cuts.iter().copied().chain([self.bytes.len()]) {
            let n = left.min(MAX_BATCH);
            if end > start {
                out.push((start..end, n));
            }
            left -= n;
            start = end;
        }
        out
    }
}

async fn send(collector: &Collector, spans: bytes::Bytes, n: usize, failed: &Counter) {
    let n = n as u64;
    match tokio::time::timeout(EXPORT_TIMEOUT, collector.export(spans)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            failed.inc_by(n);
            tracing::warn!(error = %e, spans = n, "telemetry: export failed; spans lost");
        }
        Err(_) => {
            failed.inc_by(n);
            tracing::warn!(spans = n, "telemetry: export timed out; spans lost");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn processor(capacity: usize) -> (Queue, Counter) {
        let dropped = Counter::default();
        (Queue::unstarted(capacity, dropped.clone()), dropped)
    }

    /// A span's entry as the encoder writes it: key, length, body.
    fn span(id: u64) -> impl FnOnce(&mut Vec<u8>) {
        move |batch: &mut Vec<u8>| {
            let body = id.to_le_bytes();
            batch.extend_from_slice(&[0x12, body.len() as u8]);
            batch.extend_from_slice(&body);
        }
    }

    #[test]
    fn a_long_queue_goes_out_in_requests_of_at_most_a_batch_and_past_capacity_spans_are_counted() {
        let total = 2 * MAX_BATCH + 7;
        let (p, dropped) = processor(total);
        for id in 1..=total as u64 + 3 {
            p.push(span(id));
        }
        assert_eq!(dropped.get(), 3);
        let taken = p.shared.take();
        let requests = taken.requests();
        let counts: Vec<usize> = requests.iter().map(|(_, n)| *n).collect();
        assert_eq!(counts, [MAX_BATCH, MAX_BATCH, 7]);
        // Each range holds whole span entries: as many as it says.
        for (range, n) in requests {
            let mut bytes = &taken.bytes[range];
            let mut seen = 0;
            while !bytes.is_empty() {
                assert_eq!(bytes[0], 0x12, "a ScopeSpans.spans key");
                let mut rest = &bytes[1..];
                let len = prost::encoding::decode_varint(&mut rest).unwrap() as usize;
                bytes = &rest[len..];
                seen += 1;
            }
            assert_eq!(seen, n);
        }
        // Taken: the queue is empty again and takes spans anew.
        p.push(span(1));
        assert_eq!(p.shared.take().spans, 1);
    }

    #[test]
    fn the_export_task_is_woken_by_a_full_batch_or_a_full_queue() {
        let (big, _) = processor(4096);
        assert!(big.shared.wakes(1) && big.shared.wakes(MAX_BATCH));
        assert!(!big.shared.wakes(2) && !big.shared.wakes(MAX_BATCH + 1));
        // A queue smaller than a batch would otherwise drop spans until the linger
        // ran out.
        let (small, _) = processor(100);
        assert!(small.shared.wakes(100));
        assert_eq!(small.shared.batch(), 100);
    }

    #[test]
    fn a_panic_while_a_span_was_written_loses_the_pending_spans_not_the_queue() {
        let (p, _) = processor(4096);
        p.push(span(1));
        let shared = p.shared.clone();
        let _ = std::thread::spawn(move || {
            let _guard = shared.pending.lock().unwrap();
            panic!("mid-span");
        })
        .join();
        assert!(p.shared.pending.is_poisoned());
        p.push(span(2));
        let taken = p.shared.take();
        assert_eq!(taken.spans, 1);
        assert_eq!(taken.requests().len(), 1);
        assert!(!p.shared.pending.is_poisoned());
    }

    #[test]
    fn an_exact_batch_is_one_request() {
        let (p, _) = processor(4096);
        for id in 1..=MAX_BATCH as u64 {
            p.push(span(id));
        }
        let taken = p.shared.take();
        let requests = taken.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0], (0..taken.bytes.len(), MAX_BATCH));
    }
}
