//! Upstream streams: decode and translate events under the first-byte, idle and total
//! timeouts; hold everything until the first content event (so an early failure can
//! still fail over silently); after that, forward each event as it arrives and turn a
//! failure into a final SSE error event.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use tokio::time::Instant;
use tracing::Instrument;

use super::classify::Outcome;
use super::resume::ResumePlan;
use super::splice::Splice;
use crate::canonical::ChatChunk;
use crate::config::Timeouts;
use crate::error::ProxyError;
use crate::frontdoor::StreamRender;
use crate::http::body::{Body, Cut};
use crate::http::sse::{Decoder, Event, Framing};
use crate::providers::{AdapterError, Flow, StreamTranslator, UpstreamError};
use crate::spend::Meter;
use crate::upstream::Phase;

#[derive(Debug, Clone)]
pub enum StreamError {
    /// `FirstByte` (no first event in time), `Idle` or `Total`.
    Timeout(Phase),
    Upstream(UpstreamError),
    Protocol(String),
    /// The connection broke, or the stream ended before the provider's end marker.
    Broken(String),
}

impl StreamError {
    pub fn into_outcome(self) -> Outcome {
        match self {
            StreamError::Timeout(phase) => Outcome::Timeout(phase),
            StreamError::Upstream(error) => Outcome::Status {
                retry_hint: error.retry_after,
                error,
            },
            StreamError::Protocol(m) => Outcome::Protocol(m),
            StreamError::Broken(m) => Outcome::Stream(m),
        }
    }
}

impl From<AdapterError> for StreamError {
    fn from(e: AdapterError) -> Self {
        match e {
            AdapterError::Upstream(mut u) => {
                u.message = crate::providers::redact(&u.message, None);
                StreamError::Upstream(u)
            }
            AdapterError::Protocol(m) | AdapterError::InvalidRequest(m) => StreamError::Protocol(m),
        }
    }
}

/// An upstream answer being read as translated chunks.
pub struct UpstreamStream {
    body: Incoming,
    decoder: Decoder,
    translator: Box<dyn StreamTranslator>,
    events: Vec<Event>,
    /// What translating one batch of events produced, before it joins `pending`
    /// (kept between batches, like `events`, so no batch allocates its own).
    translated: Vec<ChatChunk>,
    pending: VecDeque<ChatChunk>,
    /// Body bytes received so far.
    received: usize,
    done: bool,
    /// An error to report once the chunks translated before it are delivered.
    failed: Option<StreamError>,
    /// Until the first event this is the first-byte deadline, then now + idle.
    event_deadline: Instant,
    first_event_seen: bool,
    idle: Duration,
    total_deadline: Instant,
}

impl UpstreamStream {
    pub fn new(
        body: Incoming,
        framing: Framing,
        translator: Box<dyn StreamTranslator>,
        timeouts: &Timeouts,
        started: Instant,
    ) -> UpstreamStream {
        UpstreamStream {
            body,
            decoder: Decoder::new(framing),
            translator,
            events: Vec::new(),
            translated: Vec::new(),
            pending: VecDeque::new(),
            received: 0,
            done: false,
            failed: None,
            event_deadline: started + timeouts.first_byte,
            first_event_seen: false,
            idle: timeouts.idle,
            total_deadline: started + timeouts.total,
        }
    }

    pub fn received(&self) -> usize {
        self.received
    }

    /// What `next` would answer without reading the upstream again: a chunk, the end
    /// or the failure the bytes already received hold; `None` when only another read
    /// can tell.
    pub fn ready(&mut self) -> Option<Result<Option<ChatChunk>, StreamError>> {
        loop {
            if let Some(c) = self.pending.pop_front() {
                return Some(Ok(Some(c)));
            }
            if let Some(e) = self.failed.take() {
                return Some(Err(e));
            }
            if self.done {
                return Some(Ok(None));
            }
            if self.events.is_empty() {
                return None;
            }
            self.translate();
        }
    }

    /// The next translated chunk; `None` once the upstream ended properly.
    pub async fn next(&mut self) -> Result<Option<ChatChunk>, StreamError> {
        loop {
            if let Some(step) = self.ready() {
                return step;
            }
            let deadline = self.event_deadline.min(self.total_deadline);
            let frame = match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) if deadline == self.total_deadline => {
                    return Err(StreamError::Timeout(Phase::Total))
                }
                Err(_) if self.first_event_seen => return Err(StreamError::Timeout(Phase::Idle)),
                Err(_) => return Err(StreamError::Timeout(Phase::FirstByte)),
                Ok(f) => f,
            };
            match frame {
                None => {
                    self.decoder
                        .finish(&mut self.events)
                        .map_err(|e| StreamError::Protocol(e.to_string()))?;
                    self.translate();
                    if !self.done {
                        let mut out = Vec::new();
                        self.translator.finish(&mut out).map_err(|e| match e {
                            AdapterError::Protocol(m) => StreamError::Broken(m),
                            other => other.into(),
                        })?;
                        self.pending.extend(out);
                        self.done = true;
                    }
                }
                Some(Err(e)) => return Err(StreamError::Broken(e.to_string())),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.received += data.len();
                        self.decoder
                            .push(&data, &mut self.events)
                            .map_err(|e| StreamError::Protocol(e.to_string()))?;
                        if !self.events.is_empty() {
                            self.first_event_seen = true;
                            self.event_deadline = Instant::now() + self.idle;
                        }
                    }
                }
            }
        }
    }

    /// Translates the decoded events. A failing event ends the stream, but what the
    /// events before it produced is still delivered first.
    fn translate(&mut self) {
        let mut out = std::mem::take(&mut self.translated);
        let mut events = std::mem::take(&mut self.events);
        for event in events.drain(..) {
            // Nothing after the provider's end marker (or an error) counts.
            if !self.done {
                match self.translator.on_event(&event, &mut out) {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::Done) => self.done = true,
                    Err(e) => {
                        self.failed = Some(e.into());
                        self.done = true;
                    }
                }
            }
            self.decoder.recycle(event);
        }
        self.events = events;
        self.pending.extend(out.drain(..));
        self.translated = out;
    }
}

/// Told how a committed stream ended, exactly once.
pub trait StreamEnd: Send {
    fn finished(&mut self, error: Option<&StreamError>);
}

/// Watches a committed stream's chunks as they go out (before usage filtering, so it
/// sees usage the client did not ask for) and learns whether it ended properly. The
/// answer cache records streams with it.
pub trait StreamTap: Send {
    fn chunk(&mut self, chunk: &ChatChunk);
    /// The upstream ended properly and `[DONE]` goes out. Never called for a stream
    /// that failed or whose client left: the tap is just dropped.
    fn done(self: Box<Self>);
}

/// A stream that has sent (or is about to send) its first content event.
pub struct Committed {
    /// What arrived up to and including the first content event, unfiltered: the
    /// client's first frame, and what a tap set after the commit must see first.
    pub held: Vec<ChatChunk>,
    pub tap: Option<Box<dyn StreamTap>>,
    pub upstream: UpstreamStream,
    pub provider: String,
    pub end: Box<dyn StreamEnd>,
    /// Dropped when the stream ends (the in-flight gauge).
    pub guard: Option<crate::metrics::InflightGuard>,
    /// Turns true when the proxy stops waiting for streams (shutdown grace over).
    pub drain: Option<tokio::sync::watch::Receiver<bool>>,
    /// The attempt's trace span, ended with the stream (traces on).
    pub trace: Option<crate::telemetry::StreamTrace>,
    /// Set when `resume_streams` is on: a failure after content is continued by
    /// another target instead of ending the stream.
    pub resume: Option<ResumePlan>,
    /// Counts the stream's tokens and cost.
    pub meter: Meter,
}

struct BodyState {
    /// The held chunks, rendered: they open the client's first frame.
    first: Option<BytesMut>,
    upstream: UpstreamStream,
    render: Box<dyn StreamRender>,
    provider: String,
    end: Box<dyn StreamEnd>,
    tap: Option<Box<dyn StreamTap>>,
    ended: bool,
    drain: Option<tokio::sync::watch::Receiver<bool>>,
    trace: Option<crate::telemetry::StreamTrace>,
    meter: Meter,
    _guard: Option<crate::metrics::InflightGuard>,
    resume: Option<ResumePlan>,
    /// What the client has received, and how a continuation joins it.
    splice: Splice,
    /// The upstream now read is a continuation: its chunks go through `splice`.
    continuing: bool,
    /// A failure to resume (or report) once what came before it has gone out.
    failed: Option<StreamError>,
}

impl BodyState {
    /// One client frame: everything the upstream reads so far have delivered. It waits
    /// for a read only while it has nothing to send, so events that came in one read
    /// leave in one frame (one write, one chunk) and none waits for a later read.
    async fn next_frame(&mut self) -> Option<Bytes> {
        let mut out = self.first.take().unwrap_or_default();
        while !self.ended {
            if let Some(e) = self.failed.take() {
                if !out.is_empty() {
                    // What came before the failure goes out first.
                    self.failed = Some(e);
                    break;
                }
                // Boxed: continuing on another target is a whole attempt, rare, and
                // inline it would size every stream's body for it.
                Box::pin(self.recover(e, &mut out)).await;
                continue;
            }
            if out.is_empty() {
                let next = match &mut self.drain {
                    None => Some(self.upstream.next().await),
                    Some(drain) => tokio::select! {
                        biased;
                        _ = drain.wait_for(|d| *d) => None,
                        next = self.upstream.next() => Some(next),
                    },
                };
                let Some(next) = next else {
                    self.shut_down(&mut out);
                    break;
                };
                self.emit(next, &mut out);
            }
            while !self.ended && self.failed.is_none() {
                let Some(next) = self.upstream.ready() else {
                    break;
                };
                self.emit(next, &mut out);
            }
            if !out.is_empty() {
                break;
            }
        }
        (!out.is_empty()).then(|| out.freeze())
    }

    fn shut_down(&mut self, out: &mut BytesMut) {
        self.ended = true;
        tracing::warn!(provider = %self.provider, "shutdown grace over; ending the stream with an error event");
        self.render.error(&ProxyError::ShuttingDown, out);
    }

    /// One chunk to the client (the tap sees it too).
    fn send(&mut self, chunk: ChatChunk, out: &mut BytesMut) {
        if let Some(tap) = &mut self.tap {
            tap.chunk(&chunk);
        }
        if let Some(trace) = &mut self.trace {
            trace.chunk(&chunk);
        }
        self.meter.chunk(&chunk);
        self.render.chunk(chunk, out);
    }

    /// A chunk of the upstream now read: as it came, or joined to what was sent.
    fn pass(&mut self, chunk: ChatChunk, out: &mut BytesMut) {
        if self.continuing {
            if let Some(c) = self.splice.rewrite(chunk) {
                self.send(c, out);
            }
        } else {
            if self.resume.is_some() {
                self.splice.observe(&chunk);
            }
            self.send(chunk, out);
        }
    }

    /// Renders one step of the upstream into `out`; the end or a failure ends the
    /// body, unless the failure is left to [`Self::recover`].
    fn emit(&mut self, next: Result<Option<ChatChunk>, StreamError>, out: &mut BytesMut) {
        match next {
            Ok(Some(chunk)) => self.pass(chunk, out),
            Ok(None) => {
                if self.continuing {
                    if let Some(c) = self.splice.flush() {
                        self.send(c, out);
                    }
                }
                self.ended = true;
                // Booked before the end goes out: whoever reads the last byte can
                // read the metric.
                self.meter.finish();
                self.end.finished(None);
                if let Some(trace) = &mut self.trace {
                    trace.end(None);
                }
                if let Some(tap) = self.tap.take() {
                    tap.done();
                }
                self.render.done(out);
            }
            Err(e) if self.resume.is_some() => self.failed = Some(e),
            Err(e) => self.fail(e, out),
        }
    }

    /// Today's end of a failed stream: the final error event.
    fn fail(&mut self, e: StreamError, out: &mut BytesMut) {
        // Logged before the booking, whose own lines (a circuit opening) follow it.
        self.error_event(e.clone().into_outcome(), out);
        self.end.finished(Some(&e));
    }

    fn error_event(&mut self, failure: Outcome, out: &mut BytesMut) {
        self.ended = true;
        self.meter.finish();
        if let Some(trace) = &mut self.trace {
            trace.end(Some((failure.label(), failure.describe())));
        }
        let err = ProxyError::MidStream {
            provider: self.provider.clone(),
            failure: Box::new(failure),
        };
        tracing::warn!(provider = %self.provider, error = %err, "stream failed after its first content event");
        self.render.error(&err, out);
    }

    /// A failure after content, with `resume_streams` on: continue on another target
    /// if the answer can be continued and one does, else end as [`Self::fail`] does.
    async fn recover(&mut self, e: StreamError, out: &mut BytesMut) {
        let Some(plan) = &mut self.resume else {
            return self.fail(e, out);
        };
        let prefill = match self.splice.prefill() {
            Ok(p) => p.to_string(),
            Err(why) => {
                plan.app().metrics.stream_resume("not_resumable");
                tracing::info!(provider = %self.provider, reason = why.describe(), "stream failed; not resumable");
                return self.fail(e, out);
            }
        };
        // The failed target is booked as if the stream had simply ended.
        let failure = e.clone().into_outcome();
        self.end.finished(Some(&e));
        let cut = Instant::now();
        let resume = plan.resume(&prefill);
        let resumed = match &mut self.drain {
            None => Some(resume.await),
            Some(drain) => tokio::select! {
                biased;
                _ = drain.wait_for(|d| *d) => None,
                r = resume => Some(r),
            },
        };
        match resumed {
            None => self.shut_down(out),
            Some(Ok(c)) => {
                plan.app().metrics.stream_resume("resumed");
                tracing::info!(
                    from = %self.provider,
                    to = %c.provider,
                    failure = %failure.describe(),
                    prefill_chars = prefill.chars().count(),
                    stall_ms = cut.elapsed().as_millis() as u64,
                    "stream resumed on another target"
                );
                self.adopt(*c, out);
            }
            Some(Err(why)) => {
                plan.app().metrics.stream_resume("failed");
                tracing::warn!(provider = %self.provider, reason = %why, "resume found no target to continue the stream");
                self.error_event(failure, out);
            }
        }
    }

    /// Reads on from a continuation.
    fn adopt(&mut self, c: Committed, out: &mut BytesMut) {
        self.upstream = c.upstream;
        self.provider = c.provider;
        self.end = c.end;
        // The failed target's meter books what it saw as it goes; the continuation's
        // tokens are its own target's.
        self.meter = c.meter;
        self.continuing = true;
        self.splice.begin();
        for chunk in c.held {
            self.pass(chunk, out);
        }
    }
}

/// The client's SSE body. Pulled by hyper: when the client goes away the body is
/// dropped, and with it the upstream connection.
pub fn into_body(c: Box<Committed>, mut render: Box<dyn StreamRender>) -> Body {
    let mut c = *c;
    // The role-only chunk goes out together with the first content, in one frame.
    let mut first = BytesMut::new();
    let mut splice = Splice::new();
    if c.resume
        .as_ref()
        .is_some_and(ResumePlan::client_speaks_chat)
    {
        splice = splice.for_chat_client();
    }
    for chunk in c.held {
        if c.resume.is_some() {
            splice.observe(&chunk);
        }
        if let Some(tap) = &mut c.tap {
            tap.chunk(&chunk);
        }
        if let Some(trace) = &mut c.trace {
            trace.chunk(&chunk);
        }
        c.meter.chunk(&chunk);
        render.chunk(chunk, &mut first);
    }
    // Boxed: `unfold` holds its state beside the future that borrows it, so an
    // unboxed state would be held twice by every open stream.
    let state = Box::new(BodyState {
        first: Some(first),
        upstream: c.upstream,
        render,
        provider: c.provider,
        end: c.end,
        tap: c.tap,
        ended: false,
        drain: c.drain,
        trace: c.trace,
        meter: c.meter,
        _guard: c.guard,
        resume: c.resume,
        splice,
        continuing: false,
        failed: None,
    });
    // hyper polls the body outside the request's span: carry it, so every line this
    // stream logs names its request.
    let span = tracing::Span::current();
    let stream = futures_util::stream::unfold(state, move |mut st| {
        let span = span.clone();
        async move {
            let b = st.next_frame().instrument(span).await?;
            Some((Ok::<_, Cut>(Frame::data(b)), st))
        }
    });
    UnsyncBoxBody::new(StreamBody::new(stream))
}
