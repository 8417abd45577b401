//! A chat turn as the walk's [`Work`]: a whole answer, or a stream read up to its
//! first content event, where it is committed to the client.

use std::sync::Arc;

use bytes::Bytes;

use super::classify::{decide, Outcome, Verdict};
use super::stream::{Committed, StreamEnd, StreamError, UpstreamStream};
use super::{Answer, Answered, Call, Work};
use crate::app::App;
use crate::providers::{adapter_for, build_for, Target};

/// Bytes an upstream may send before its first content event (role chunks, pings,
/// filter results) — past that it is not answering.
const HELD_LIMIT: usize = 1024 * 1024;

impl Work for Call<'_> {
    type Answer = Answer;

    fn build(&self, target: &Target) -> Result<http::Request<Bytes>, String> {
        build_for(self.req, target)
    }

    async fn read(&self, answered: Answered<'_>) -> Result<Answer, Outcome> {
        let target = answered.target.clone();
        let adapter = adapter_for(target.provider.kind);
        if !self.req.is_stream() {
            return answered
                .whole(|body| adapter.parse_response(self.req, &target, body))
                .await
                .map(|a| Answer::Complete(Box::new(a)));
        }
        let (app, snap, slot) = (answered.app, answered.snap, answered.slot);
        let mut upstream = UpstreamStream::new(
            answered.resp.into_body(),
            adapter.framing(),
            adapter.stream_translator(self.req, &target),
            &target.timeouts,
            answered.started,
        );
        let mut held = Vec::new();
        let mut first = true;
        loop {
            match upstream.next().await {
                Ok(Some(chunk)) => {
                    if first {
                        super::attempt::observe(app, &target, answered.started, true);
                        first = false;
                    }
                    if upstream.received() > HELD_LIMIT {
                        return Err(Outcome::Protocol(format!(
                            "over {HELD_LIMIT} bytes of stream without any content"
                        )));
                    }
                    let content = (self.is_content)(&chunk);
                    held.push(chunk);
                    if content {
                        return Ok(Answer::Stream(Box::new(Committed {
                            held,
                            tap: None,
                            upstream,
                            provider: target.provider.name.clone(),
                            end: Box::new(CircuitOnEnd {
                                app: app.clone(),
                                provider_key: target.provider.health_key(),
                                provider: target.provider.name.clone(),
                                circuit: snap.circuit,
                                failover: snap.failover.clone(),
                                _slot: slot,
                            }),
                            guard: None,
                            drain: None,
                        })));
                    }
                }
                Ok(None) => return Err(Outcome::Stream("stream ended before any content".into())),
                Err(e) => return Err(e.into_outcome()),
            }
        }
    }
}

/// After commit, a failing upstream still counts against its provider's circuit
/// when the same failure before commit would have.
struct CircuitOnEnd {
    app: Arc<App>,
    provider_key: String,
    provider: String,
    circuit: crate::config::CircuitPolicy,
    failover: crate::config::FailoverPolicy,
    /// The provider's concurrency slot: this stream holds it until it ends.
    _slot: super::limit::Slot,
}

impl StreamEnd for CircuitOnEnd {
    fn finished(&mut self, error: Option<&StreamError>) {
        let Some(e) = error else { return };
        let outcome = e.clone().into_outcome();
        self.app.metrics.attempt(&self.provider, outcome.label());
        let counts = matches!(
            decide(&outcome, &self.failover),
            Verdict::FailOver {
                counts_as_failure: true,
                ..
            }
        );
        if counts && self.app.health.failure(&self.provider_key, self.circuit) {
            tracing::warn!(provider = %self.provider, "circuit opened");
        }
    }
}
