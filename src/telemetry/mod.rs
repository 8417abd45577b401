//! OpenTelemetry traces (`[telemetry]`): one server span per client request and one
//! client span per upstream attempt, attributed by the GenAI semantic conventions,
//! exported over OTLP/HTTP by a task behind a bounded queue. Off, none of it runs: a
//! request checks one pointer.
//!
//! The request's span rides in a task-local value around its front door (the
//! attempt code finds it without knowing about the config); an attempt's span is
//! handed down to what reads its answer. A span ends when the last handle on it is
//! dropped, so a streamed answer's spans end with its stream.

mod attrs;
mod client;
mod collector;
mod export;
mod facts;
mod fixed;
mod otlp;
mod protobuf;
mod span;
mod traceparent;

use std::future::Future;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceId};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::Resource;
use prometheus_client::metrics::counter::Counter;

use crate::config::TelemetryPolicy;
use crate::providers::Target;

use attrs::{Attributes, Key};
use span::{Kind, Name, Span, Start};

pub use facts::{attempt_answered, Facts, StreamTrace};
pub use fixed::TargetAttributes;

const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
/// The instrumentation scope every span is exported under.
const SCOPE: &str = "understudy";

/// A running exporter for one `[telemetry]` policy.
pub struct Telemetry {
    policy: TelemetryPolicy,
    /// Dropped with the telemetry and its last open span: the export task ends then.
    queue: Arc<export::Queue>,
    /// With a `sample_ratio` under 1: a new trace is kept when its id's low 63 bits
    /// are under this (the SDK's `TraceIdRatioBased` rule, so a trace id is kept or
    /// not the same way by every process that follows it).
    keep_below: Option<u64>,
}

impl Telemetry {
    /// Inside a tokio runtime (the export task starts).
    fn start(
        policy: &TelemetryPolicy,
        dropped: Counter,
        failed: Counter,
    ) -> Result<Telemetry, String> {
        // The SDK's resource: service.name, telemetry.sdk.*, OTEL_RESOURCE_ATTRIBUTES.
        let resource = Resource::builder()
            .with_service_name(policy.service_name.clone())
            .build();
        let collector = collector::Collector::new(policy.endpoint.clone(), &resource, SCOPE)?;
        let queue = export::Queue::start(collector, policy.queue_size, dropped, failed);
        Ok(Telemetry {
            policy: policy.clone(),
            queue: Arc::new(queue),
            keep_below: keep_below(policy.sample_ratio),
        })
    }

    /// Whether a trace is recorded: the caller's sampled flag decides for its own
    /// trace (the SDK default's parent-based rule), the ratio for a new one.
    fn sampled(&self, caller: Option<&SpanContext>, trace_id: TraceId) -> bool {
        match caller {
            Some(caller) => caller.is_sampled(),
            None => keeps(self.keep_below, trace_id),
        }
    }
}

/// The SDK's `TraceIdRatioBased` bound for `ratio`: `None` keeps every trace.
fn keep_below(ratio: f64) -> Option<u64> {
    (ratio < 1.0).then(|| (ratio.max(0.0) * (1_u64 << 63) as f64) as u64)
}

/// Whether a new trace is kept: its id's low 63 bits under the bound.
fn keeps(keep_below: Option<u64>, trace_id: TraceId) -> bool {
    keep_below.is_none_or(|bound| {
        let low = u64::from_be_bytes(trace_id.to_bytes()[8..].try_into().unwrap_or_default());
        (low >> 1) < bound
    })
}

/// The exporter in force, swapped on reload.
#[derive(Default)]
pub struct TelemetrySlot {
    current: ArcSwapOption<Telemetry>,
}

impl TelemetrySlot {
    /// Starts, stops or replaces the exporter to match `[telemetry]` (at start and on
    /// every reload). Spans already queued by the old one are still sent.
    pub fn apply(&self, policy: Option<&TelemetryPolicy>, dropped: &Counter, failed: &Counter) {
        let current = self.current.load();
        if current.as_ref().map(|t| &t.policy) == policy {
            return;
        }
        let Some(policy) = policy else {
            self.current.store(None);
            tracing::info!("telemetry: traces off");
            return;
        };
        match Telemetry::start(policy, dropped.clone(), failed.clone()) {
            Ok(t) => {
                tracing::info!(endpoint = %policy.endpoint, "telemetry: exporting traces");
                self.current.store(Some(Arc::new(t)));
            }
            Err(e) => {
                self.current.store(None);
                tracing::error!(error = %e, "telemetry: not started; traces off");
            }
        }
    }

    /// A client request's trace: its server span, continuing the caller's W3C
    /// `traceparent` when there is one. `None` while traces are off.
    pub fn request(&self, headers: &http::HeaderMap, api: &'static str) -> Option<RequestTrace> {
        let current = self.current.load();
        let t = current.as_ref()?;
        // Most callers send none: no propagator work (header-name parsing) then.
        let caller = headers
            .contains_key(TRACEPARENT)
            .then(|| {
                let cx = TraceContextPropagator::new()
                    .extract(&opentelemetry_http::HeaderExtractor(headers));
                Some(cx.span().span_context().clone()).filter(SpanContext::is_valid)
            })
            .flatten();
        let trace_id = caller
            .as_ref()
            .map_or_else(span::new_trace_id, SpanContext::trace_id);
        let sampled = t.sampled(caller.as_ref(), trace_id);
        let operation = operation(api);
        let door = fixed::door(api);
        let start = Start {
            kind: Kind::Server,
            name: Name {
                operation,
                model: None,
            },
            fixed: &door.request,
            target: None,
            attrs: |_: &mut Attributes| {},
        };
        Some(RequestTrace {
            span: Span::request(&t.queue, caller.as_ref(), trace_id, sampled, start),
            capture: t.policy.capture_content,
            operation,
            door,
        })
    }
}

/// GenAI's `gen_ai.operation.name` for a front door.
fn operation(api: &'static str) -> &'static str {
    match api {
        "embeddings" => "embeddings",
        "count_tokens" => "count_tokens",
        _ => "chat",
    }
}

/// A traced client request: its span, and what its attempts need.
#[derive(Clone)]
pub struct RequestTrace {
    span: Span,
    capture: bool,
    operation: &'static str,
    door: &'static fixed::Door,
}

tokio::task_local! {
    /// The request whose front door is running: its attempts' spans go under it.
    static CURRENT: RequestTrace;
}

impl RequestTrace {
    /// Runs a request's front door with this as its current trace.
    pub fn around<F: Future>(&self, work: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self.clone(), work)
    }

    /// Ends the request span's story: the status the client got and how many
    /// upstream requests it took.
    pub fn answered(&self, status: http::StatusCode, attempts: Option<u32>) {
        self.span.update(|s| {
            s.attrs.set(Key::StatusCode, i64::from(status.as_u16()));
            if let Some(n) = attempts {
                s.attrs.set(Key::Attempts, i64::from(n));
                s.attrs.set(Key::Failover, n > 1);
            }
            if status.is_client_error() || status.is_server_error() {
                s.attrs.set(Key::ErrorType, status.as_str().to_string());
            }
            if status.is_server_error() {
                s.error = Some(format!("answered {status}"));
            }
        });
    }
}

/// Names the current request span by its model and route once the front door has
/// read the body.
pub fn routed(model: &str, route: &str, input: impl FnOnce() -> Option<String>) {
    let _ = CURRENT.try_with(|trace| {
        // The prompt as JSON only for a span that keeps it.
        let input = (trace.capture && trace.span.is_recording())
            .then(input)
            .flatten();
        trace.span.update(|s| {
            let model: Arc<str> = model.into();
            // A route is most often named by the model asked for: one string for both.
            let route: Arc<str> = if route == &*model {
                model.clone()
            } else {
                route.into()
            };
            s.name.model = Some(model.clone());
            s.attrs.set(Key::RequestModel, model);
            s.attrs.set(Key::Route, route);
            if let Some(messages) = input {
                s.attrs.set(Key::InputMessages, messages);
            }
        });
    });
}

/// One upstream attempt's trace: its span and its request's.
#[derive(Clone)]
pub struct AttemptTrace {
    span: Span,
    request: Span,
    capture: bool,
}

impl AttemptTrace {
    /// Whether prompts and answers may go into its spans.
    pub fn capture_content(&self) -> bool {
        self.capture
    }

    /// A failed attempt: its outcome on the attempt span.
    pub fn failed(&self, outcome: &'static str, error_type: String, message: String) {
        self.span.update(|s| {
            s.attrs.set(Key::Outcome, outcome);
            s.attrs.set(Key::ErrorType, error_type);
            s.error = Some(message);
        });
    }
}

/// One upstream attempt's span, a child of the current request span, and the
/// `traceparent` it sends upstream. `None` while traces are off.
pub fn attempt<B>(
    target: &Target,
    number: u32,
    upstream: &mut http::Request<B>,
) -> Option<AttemptTrace> {
    CURRENT
        .try_with(|trace| {
            let fixed = target.trace.get(target, upstream.uri());
            let span = trace.span.child(Start {
                kind: Kind::Client,
                name: Name {
                    operation: trace.operation,
                    model: Some(fixed.model.clone()),
                },
                fixed: &trace.door.attempt,
                target: Some(fixed.encoded.clone()),
                attrs: |a: &mut Attributes| {
                    a.set(Key::Attempt, i64::from(number));
                    a.set(Key::Failover, number > 1);
                },
            });
            traceparent::inject(span.context(), upstream.headers_mut());
            AttemptTrace {
                span,
                request: trace.span.clone(),
                capture: trace.capture,
            }
        })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_doors_map_to_genai_operations() {
        assert_eq!(operation("chat"), "chat");
        assert_eq!(operation("responses"), "chat");
        assert_eq!(operation("messages"), "chat");
        assert_eq!(operation("embeddings"), "embeddings");
        assert_eq!(operation("count_tokens"), "count_tokens");
    }

    #[test]
    fn new_traces_are_kept_as_the_sdks_ratio_sampler_keeps_them() {
        use opentelemetry::trace::SpanKind;
        use opentelemetry_sdk::trace::{Sampler, SamplingDecision, ShouldSample};
        for ratio in [0.0, 1e-12, 0.1, 0.5, 0.999, 1.0, 2.0] {
            let sdk = Sampler::TraceIdRatioBased(ratio);
            let bound = keep_below(ratio);
            let mut kept = 0;
            for i in 0..2000_u128 {
                let id = TraceId::from(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835));
                let theirs = sdk
                    .should_sample(None, id, "chat", &SpanKind::Server, &[], &[])
                    .decision
                    == SamplingDecision::RecordAndSample;
                assert_eq!(keeps(bound, id), theirs, "ratio {ratio}, trace {id}");
                kept += usize::from(theirs);
            }
            if ratio == 0.5 {
                assert!((800..1200).contains(&kept), "{kept} of 2000 at 0.5");
            }
        }
    }

    #[test]
    fn nothing_is_traced_without_a_request_span() {
        let mut upstream = http::Request::new(());
        let target =
            crate::providers::testing::target(crate::providers::Kind::Openai, "http://127.0.0.1:9");
        assert!(attempt(&target, 1, &mut upstream).is_none());
        assert!(upstream.headers().is_empty());
    }
}
