//! Stream resume (`failover.resume_streams`): a stream that fails after content has
//! reached the client is continued by another of the route's targets. The request
//! goes out again with the text sent so far as a final assistant message (a
//! prefill), to targets whose kind can continue one, through the same walk as any
//! request (admission, cooldowns, circuits, attempts, metrics); the first to stream
//! content is spliced into the client's stream (see [`super::splice`]).

use std::sync::Arc;

use bytes::Bytes;

use super::classify::Outcome;
use super::stream::Committed;
use super::{Answer, Answered, Call, Work};
use crate::app::App;
use crate::canonical::ChatRequest;
use crate::config::{Resolved, Snapshot};
use crate::error::ProxyError;
use crate::frontdoor::IsContent;
use crate::providers::{build_continuation_for, Target};

/// What a committed stream needs to continue elsewhere; present only when
/// `resume_streams` is on.
pub struct ResumePlan {
    app: Arc<App>,
    snap: Arc<Snapshot>,
    route: String,
    /// The route's targets in their configured order.
    targets: Vec<Arc<Target>>,
    req: ChatRequest,
    is_content: IsContent,
    /// The target streaming now.
    current: Arc<Target>,
    /// Upstream requests this client request has sent.
    attempts: u32,
}

/// The plan for a stream `target` is answering, if `resume_streams` is on.
pub fn plan(
    app: &Arc<App>,
    snap: &Arc<Snapshot>,
    resolved: &Resolved<'_>,
    call: &Call<'_>,
    target: &Arc<Target>,
    attempts: u32,
) -> Option<ResumePlan> {
    if !snap.failover.resume_streams {
        return None;
    }
    let targets = match resolved {
        Resolved::Route(r) => r.targets.clone(),
        Resolved::Direct(t) => vec![t.clone()],
    };
    Some(ResumePlan {
        app: app.clone(),
        snap: snap.clone(),
        route: resolved.label(),
        targets,
        req: call.req.clone(),
        is_content: call.is_content,
        current: target.clone(),
        attempts,
    })
}

/// Why a resume found no continuation.
pub enum Unresumed {
    /// The request itself cannot be continued (see [`ChatRequest::with_prefill`]).
    Request(String),
    /// No target continued it: the walk's error.
    Walk(ProxyError),
}

impl std::fmt::Display for Unresumed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unresumed::Request(m) => write!(f, "the request cannot be continued: {m}"),
            Unresumed::Walk(e) => write!(f, "no target continued the answer: {e}"),
        }
    }
}

impl ResumePlan {
    /// Messages and Responses clients always carry their own API in `native`.
    pub fn client_speaks_chat(&self) -> bool {
        self.req.native.is_none()
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    /// The targets a continuation may come from: those after the current one in the
    /// route's order, then those before it (they already failed this request, so
    /// they go last; admission skips the ones cooling or open).
    fn order(&self) -> Vec<Arc<Target>> {
        let at = self
            .targets
            .iter()
            .position(|t| Arc::ptr_eq(t, &self.current) || t.label == self.current.label);
        match at {
            Some(i) => {
                let (before, after) = self.targets.split_at(i);
                after[1..].iter().chain(before).cloned().collect()
            }
            None => self.targets.clone(),
        }
    }

    /// A continuation of `prefill` from another target, committed on its first
    /// content event.
    pub async fn resume(&mut self, prefill: &str) -> Result<Box<Committed>, Unresumed> {
        let req = self.req.with_prefill(prefill).map_err(Unresumed::Request)?;
        let order = self.order();
        let work = Continuation(Call {
            req: &req,
            is_content: self.is_content,
        });
        self.app.metrics.failover(&self.route);
        let exchange = super::run_over(
            &self.app,
            &self.snap,
            self.route.clone(),
            &order,
            &work,
            self.attempts,
        )
        .await;
        self.attempts = exchange.attempts;
        match exchange.result {
            Ok(success) => match success.answer {
                Answer::Stream(c) => {
                    self.current = success.target;
                    Ok(c)
                }
                Answer::Complete(_) => Err(Unresumed::Request(
                    "the continuation was not streamed".into(),
                )),
            },
            Err(e) => Err(Unresumed::Walk(e)),
        }
    }
}

/// A chat turn continuing a prefill: only targets that can continue an assistant
/// turn build it; the answer is read like any streamed turn.
struct Continuation<'a>(Call<'a>);

impl Work for Continuation<'_> {
    type Answer = Answer;

    fn build(&self, target: &Target) -> Result<http::Request<Bytes>, String> {
        build_continuation_for(self.0.req, target)
    }

    async fn read(&self, answered: Answered<'_>) -> Result<Answer, Outcome> {
        self.0.read(answered).await
    }
}
