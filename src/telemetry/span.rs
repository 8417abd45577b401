//! A span being recorded, shared by whoever still works under it, and written to the
//! export queue as OTLP bytes when the last of them lets go: a streamed answer's
//! spans end with its stream.
//!
//! Why not the SDK's spans: measured, its tracer, span builder, `SpanData` and
//! `Context` (a map of values, cloned per span) cost about as many instructions per
//! request as encoding and exporting both spans. Here a span is one allocation with
//! its attributes inside, its identity fixed at the start, and ending is a write
//! into the queue without a lock on the span (nobody else holds it by then).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

use super::attrs::Attributes;
use super::export::Queue;
use super::otlp;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Server,
    Client,
}

/// `{operation} {model}`, GenAI's span name, kept in its parts and joined only in
/// the encoding (no string built per span).
#[derive(Debug)]
pub(super) struct Name {
    pub operation: &'static str,
    pub model: Option<Arc<str>>,
}

/// What changes while a span is open.
#[derive(Debug)]
pub(super) struct Open {
    pub name: Name,
    pub attrs: Attributes,
    /// An error status and its description; unset otherwise.
    pub error: Option<String>,
}

/// What is fixed when a span starts.
#[derive(Debug)]
pub(super) struct Record {
    pub cx: SpanContext,
    /// The parent's id, and whether it is remote (the caller's).
    pub parent: Option<(SpanId, bool)>,
    pub kind: Kind,
    pub start: SystemTime,
    /// Attributes already encoded: its front door's, and an attempt's target's.
    pub fixed: &'static [u8],
    pub target: Option<Arc<[u8]>>,
}

/// A recording span. Clones share it; the last one dropped ends it.
#[derive(Clone, Debug)]
pub(super) struct Span(Arc<Live>);

#[derive(Debug)]
struct Live {
    /// Where it goes when it ends; `None` when its trace is not sampled: it is only
    /// propagated, never recorded.
    queue: Option<Arc<Queue>>,
    record: Record,
    open: Mutex<Open>,
}

/// A new span: what it is and what it starts with.
pub(super) struct Start<F> {
    pub kind: Kind,
    pub name: Name,
    /// Attributes already encoded.
    pub fixed: &'static [u8],
    pub target: Option<Arc<[u8]>>,
    /// Sets its first attributes (in place: the attribute slots are half a KiB, not
    /// worth moving from call to call).
    pub attrs: F,
}

impl Span {
    /// A request's span: under the caller's span when it sent one (then in its trace,
    /// with its flags and state), else the root of a new trace `trace_id`; recorded
    /// only if `sampled`.
    pub(super) fn request(
        queue: &Arc<Queue>,
        caller: Option<&SpanContext>,
        trace_id: TraceId,
        sampled: bool,
        start: Start<impl FnOnce(&mut Attributes)>,
    ) -> Span {
        let (flags, state, parent) = match caller {
            Some(p) => (
                p.trace_flags(),
                p.trace_state().clone(),
                Some((p.span_id(), p.is_remote())),
            ),
            None => (TraceFlags::default(), TraceState::NONE, None),
        };
        let cx = SpanContext::new(
            trace_id,
            new_span_id(),
            flags.with_sampled(sampled),
            false,
            state,
        );
        Span::open(sampled.then(|| queue.clone()), cx, parent, start)
    }

    /// A span under this one, sampled as this one is.
    pub(super) fn child(&self, start: Start<impl FnOnce(&mut Attributes)>) -> Span {
        let parent = &self.0.record.cx;
        let cx = SpanContext::new(
            parent.trace_id(),
            new_span_id(),
            parent.trace_flags(),
            false,
            parent.trace_state().clone(),
        );
        let parent = Some((parent.span_id(), false));
        Span::open(self.0.queue.clone(), cx, parent, start)
    }

    fn open(
        queue: Option<Arc<Queue>>,
        cx: SpanContext,
        parent: Option<(SpanId, bool)>,
        start: Start<impl FnOnce(&mut Attributes)>,
    ) -> Span {
        let record = Record {
            cx,
            parent,
            kind: start.kind,
            start: SystemTime::now(),
            fixed: start.fixed,
            target: start.target,
        };
        let sampled = queue.is_some();
        // Made straight in its allocation and filled in there: moved, the attribute
        // slots cost a copy each time (measured: three half-KiB copies a span).
        let mut live = Arc::new(Live {
            queue,
            record,
            open: Mutex::new(Open {
                name: start.name,
                attrs: Attributes::default(),
                error: None,
            }),
        });
        if let (true, Some(fresh)) = (sampled, Arc::get_mut(&mut live)) {
            let open = fresh.open.get_mut().unwrap_or_else(PoisonError::into_inner);
            (start.attrs)(&mut open.attrs);
        }
        Span(live)
    }

    /// Its identity, for children and for the `traceparent` sent upstream.
    pub(super) fn context(&self) -> &SpanContext {
        &self.0.record.cx
    }

    /// Whether it is sampled: recorded and exported.
    pub(super) fn is_recording(&self) -> bool {
        self.0.queue.is_some()
    }

    /// Changes what is recorded; not at all when the span is not sampled.
    pub(super) fn update(&self, f: impl FnOnce(&mut Open)) {
        if self.is_recording() {
            // A panic while a span was updated leaves it as it was then: still worth
            // sending.
            f(&mut self.0.open.lock().unwrap_or_else(PoisonError::into_inner));
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let Some(queue) = &self.queue else {
            return;
        };
        let open = self.open.get_mut().unwrap_or_else(PoisonError::into_inner);
        let end = SystemTime::now();
        queue.push(|batch| otlp::append_span(batch, &self.record, open, end));
    }
}

/// A random, valid (non-zero) trace id.
pub(super) fn new_trace_id() -> TraceId {
    TraceId::from(fastrand::u128(1..))
}

fn new_span_id() -> SpanId {
    SpanId::from(fastrand::u64(1..))
}

/// Spans without an export task, for the telemetry module's tests.
#[cfg(test)]
pub(super) mod testing {
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span as Exported};
    use prometheus_client::metrics::counter::Counter;
    use prost::Message;

    use super::super::attrs::Key;
    use super::*;

    pub fn queue() -> Arc<Queue> {
        Arc::new(Queue::unstarted(16, Counter::default()))
    }

    pub fn start(kind: Kind) -> Start<impl FnOnce(&mut Attributes)> {
        Start {
            kind,
            name: Name {
                operation: "chat",
                model: None,
            },
            fixed: &[],
            target: None,
            attrs: |a: &mut Attributes| a.set(Key::Api, "chat"),
        }
    }

    /// The spans that ended, as a collector decodes them.
    pub fn exported(queue: &Queue) -> Vec<Exported> {
        ScopeSpans::decode(queue.take_bytes().as_slice())
            .unwrap()
            .spans
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TraceFlags;

    use super::testing::{exported, queue, start};
    use super::*;

    #[test]
    fn a_span_ends_when_its_last_handle_goes_and_its_child_is_in_its_trace() {
        let queue = queue();
        let caller = SpanContext::new(
            TraceId::from(7_u128),
            SpanId::from(9_u64),
            TraceFlags::SAMPLED,
            true,
            TraceState::from_key_value([("v", "1")]).unwrap(),
        );
        let request = Span::request(
            &queue,
            Some(&caller),
            caller.trace_id(),
            true,
            start(Kind::Server),
        );
        let attempt = request.child(start(Kind::Client));
        let held = attempt.clone();
        drop(attempt);
        assert!(exported(&queue).is_empty(), "a clone still holds it");
        drop(held);
        let spans = exported(&queue);
        assert_eq!(spans.len(), 1);
        let child = &spans[0];
        let parent = request.context();
        assert_eq!(child.trace_id, 7_u128.to_be_bytes());
        assert_eq!(child.parent_span_id, parent.span_id().to_bytes());
        assert_eq!(child.trace_state, "v=1");
        assert_eq!(child.kind, 3);
        // Sampled, parent known and local.
        assert_eq!(child.flags, 0x101);
        assert_ne!(parent.span_id(), SpanId::INVALID);
        drop(request);
        let spans = exported(&queue);
        assert_eq!(spans[0].parent_span_id, 9_u64.to_be_bytes());
        assert_eq!(spans[0].flags, 0x301, "its parent is the caller's: remote");
        assert!(spans[0].end_time_unix_nano >= spans[0].start_time_unix_nano);
    }

    #[test]
    fn an_unsampled_trace_is_propagated_but_never_recorded() {
        let queue = queue();
        let request = Span::request(&queue, None, new_trace_id(), false, start(Kind::Server));
        let attempt = request.child(start(Kind::Client));
        let mut called = false;
        attempt.update(|_| called = true);
        assert!(!called, "nothing recorded for a span nobody keeps");
        assert!(!request.is_recording() && !attempt.is_recording());
        let (r, a) = (request.context().clone(), attempt.context().clone());
        assert!(r.is_valid() && a.is_valid());
        assert!(!a.is_sampled());
        assert_eq!(a.trace_id(), r.trace_id());
        assert_ne!(a.span_id(), r.span_id());
        drop((request, attempt));
        assert!(exported(&queue).is_empty());
    }
}
