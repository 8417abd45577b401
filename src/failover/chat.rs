//! A chat turn as the walk's [`Work`]: a whole answer, or a stream read up to its
//! first content event, where it is committed to the client.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use super::classify::{decide, Outcome, Verdict};
use super::fit::Estimate;
use super::stream::{Committed, StreamEnd, StreamError, UpstreamStream};
use super::{Answer, Answered, Call, Work};
use crate::app::App;
use crate::canonical::Api;
use crate::dashboard::{FailedAttempt, Then};
use crate::providers::{adapter_for, build_for, Target};
use crate::spend::Meter;

/// Bytes an upstream may send before its first content event (role chunks, pings,
/// filter results) — past that it is not answering.
const HELD_LIMIT: usize = 1024 * 1024;

impl Work for Call<'_> {
    type Answer = Answer;

    fn build(&self, target: &Target) -> Result<http::Request<Bytes>, String> {
        build_for(self.req, target)
    }

    fn facts(answer: &Answer, capture: bool) -> Option<crate::telemetry::Facts> {
        match answer {
            Answer::Complete(a) => Some(crate::telemetry::Facts::of_chat(a, capture)),
            Answer::Stream(_) => None,
        }
    }

    fn estimate(&self) -> Option<Estimate> {
        // Counting the tokens of a prompt too long to answer is what a count is for.
        let counting = self.req.native.as_ref().map(|n| n.api) == Some(Api::CountTokens);
        (!counting).then(|| Estimate::of_chat(self.req))
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
        let trace = answered.trace;
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
                                provider_key: target.provider_key().to_string(),
                                provider: target.provider.name.clone(),
                                target: target.label.clone(),
                                circuit: snap.circuit,
                                failover: snap.failover.clone(),
                                _slot: slot,
                            }),
                            guard: None,
                            drain: None,
                            trace: trace.map(crate::telemetry::StreamTrace::of),
                            resume: None,
                            meter: Meter::new(app.clone(), target.clone()),
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
    target: String,
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
        self.app.dashboard.attempt(&self.provider, false);
        self.app.dashboard.failed(FailedAttempt {
            at: SystemTime::now(),
            route: None,
            target: self.target.clone(),
            outcome: outcome.label(),
            reason: outcome.describe(),
            then: Then::StreamCut,
        });
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
