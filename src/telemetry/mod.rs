//! OpenTelemetry traces (`[telemetry]`): one server span per client request and one
//! client span per upstream attempt, attributed by the GenAI semantic conventions,
//! exported over OTLP/HTTP by a task behind a bounded queue. Off, none of it runs: a
//! request checks one pointer.
//!
//! The spans ride in the OpenTelemetry [`Context`] handed down the request: the
//! request span in a [`Trace`] value, which the attempt code finds without knowing
//! about the config; a span ends when the last context holding it is dropped, so a
//! streamed answer's spans end with its stream.

mod client;
mod collector;
mod export;
mod facts;
mod otlp;
mod protobuf;
mod traceparent;

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use prometheus_client::metrics::counter::Counter;

use crate::config::TelemetryPolicy;
use crate::providers::Target;

pub use facts::{attempt_answered, Facts, StreamTrace};

const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// A running exporter for one `[telemetry]` policy.
pub struct Telemetry {
    policy: TelemetryPolicy,
    tracer: SdkTracer,
    /// Dropped with the telemetry: the export task ends with it.
    _provider: SdkTracerProvider,
}

impl Telemetry {
    /// Inside a tokio runtime (the export task starts).
    fn start(
        policy: &TelemetryPolicy,
        dropped: Counter,
        failed: Counter,
    ) -> Result<Telemetry, String> {
        let resource = Resource::builder()
            .with_service_name(policy.service_name.clone())
            .build();
        // The one tracer, so the one scope every exported span carries.
        let scope = InstrumentationScope::builder("understudy").build();
        let collector = collector::Collector::new(policy.endpoint.clone(), &resource, &scope)?;
        let processor =
            export::QueueProcessor::start(collector, policy.queue_size, dropped, failed);
        let mut provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource);
        if policy.sample_ratio < 1.0 {
            // A caller's sampled flag still decides for its trace (the default's rule).
            provider = provider.with_sampler(Sampler::ParentBased(Box::new(
                Sampler::TraceIdRatioBased(policy.sample_ratio),
            )));
        }
        let provider = provider.build();
        Ok(Telemetry {
            policy: policy.clone(),
            tracer: provider.tracer_with_scope(scope),
            _provider: provider,
        })
    }
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

    /// The context a client request runs in: its server span, continuing the
    /// caller's W3C `traceparent` when there is one. `None` while traces are off.
    pub fn request(&self, headers: &http::HeaderMap, api: &'static str) -> Option<Context> {
        let t = self.current.load_full()?;
        // Most callers send none: no propagator work (header-name parsing) then.
        let parent = if headers.contains_key(TRACEPARENT) {
            TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers))
        } else {
            Context::current()
        };
        let operation = operation(api);
        let span = t
            .tracer
            .span_builder(operation)
            .with_kind(SpanKind::Server)
            .with_attributes(attributes([
                KeyValue::new("gen_ai.operation.name", operation),
                KeyValue::new("understudy.api", api),
            ]))
            .start_with_context(&t.tracer, &parent);
        let cx = parent.with_span(span);
        let trace = Trace {
            tracer: t.tracer.clone(),
            capture_content: t.policy.capture_content,
            operation,
            request: cx.clone(),
        };
        Some(cx.with_value(trace))
    }
}

/// A span's first attributes, in a vector with room for the ones set later (the
/// answer's facts, the outcome): the span grows it in place, not two or three times.
fn attributes<const N: usize>(first: [KeyValue; N]) -> Vec<KeyValue> {
    let mut attrs = Vec::with_capacity(16);
    attrs.extend(first);
    attrs
}

/// GenAI's span name, `{operation} {model}`, in one allocation of its exact size
/// (`format!` guesses and grows).
fn span_name(operation: &str, model: &str) -> String {
    let mut name = String::with_capacity(operation.len() + 1 + model.len());
    name.push_str(operation);
    name.push(' ');
    name.push_str(model);
    name
}

/// GenAI's `gen_ai.operation.name` for a front door.
fn operation(api: &'static str) -> &'static str {
    match api {
        "embeddings" => "embeddings",
        "count_tokens" => "count_tokens",
        _ => "chat",
    }
}

/// What the attempt code needs from the request's trace.
#[derive(Clone)]
struct Trace {
    tracer: SdkTracer,
    capture_content: bool,
    operation: &'static str,
    /// The request span (in a context of its own): every attempt's context inherits
    /// this value, so an attempt, and a streamed answer until its end, reach and keep
    /// the request span without a context value of their own.
    request: Context,
}

/// Whether prompts and answers may go into spans for the current request.
pub fn capture_content() -> bool {
    capture_content_in(&Context::current())
}

/// Whether prompts and answers may go into the spans of `cx`.
pub fn capture_content_in(cx: &Context) -> bool {
    cx.get::<Trace>().is_some_and(|t| t.capture_content)
}

/// Names the current request span by its model and route once the front door has
/// read the body.
pub fn routed(model: &str, route: &str, input: impl FnOnce() -> Option<String>) {
    let cx = Context::current();
    let Some(trace) = cx.get::<Trace>() else {
        return;
    };
    let span = cx.span();
    span.update_name(span_name(trace.operation, model));
    let input = trace
        .capture_content
        .then(input)
        .flatten()
        .map(|messages| KeyValue::new("gen_ai.input.messages", messages));
    span.set_attributes(
        [
            KeyValue::new("gen_ai.request.model", model.to_string()),
            KeyValue::new("understudy.route", route.to_string()),
        ]
        .into_iter()
        .chain(input),
    );
}

/// Ends the request span's story: the status the client got and how many upstream
/// requests it took.
pub fn answered(cx: &Context, status: http::StatusCode, attempts: Option<u32>) {
    let span = cx.span();
    let code = KeyValue::new("http.response.status_code", i64::from(status.as_u16()));
    let tries = attempts.into_iter().flat_map(|n| {
        [
            KeyValue::new("understudy.attempts", i64::from(n)),
            KeyValue::new("understudy.failover", n > 1),
        ]
    });
    let error = (status.is_client_error() || status.is_server_error())
        .then(|| KeyValue::new("error.type", status.as_str().to_string()));
    // One call: each takes the span's lock.
    span.set_attributes(std::iter::once(code).chain(tries).chain(error));
    if status.is_server_error() {
        span.set_status(Status::error(format!("answered {status}")));
    }
}

/// One upstream attempt's span, a child of the current request span, and the
/// `traceparent` it sends upstream. `None` while traces are off.
pub fn attempt<B>(
    target: &Target,
    number: u32,
    upstream: &mut http::Request<B>,
) -> Option<Context> {
    let parent = Context::current();
    let trace = parent.get::<Trace>()?.clone();
    let mut attrs = attributes([
        KeyValue::new("gen_ai.operation.name", trace.operation),
        KeyValue::new("understudy.attempt", i64::from(number)),
        KeyValue::new("understudy.failover", number > 1),
    ]);
    let fixed = target
        .trace
        .0
        .get_or_init(|| fixed_attributes(target, upstream.uri()));
    attrs.extend(fixed.iter().cloned());
    let span = trace
        .tracer
        .span_builder(span_name(trace.operation, &target.model))
        .with_kind(SpanKind::Client)
        .with_attributes(attrs)
        .start_with_context(&trace.tracer, &parent);
    traceparent::inject(span.span_context(), upstream.headers_mut());
    Some(parent.with_span(span))
}

/// A target's attempt attributes that do not change from one attempt to the next,
/// made on its first traced attempt: later attempts share their strings (`Arc<str>`)
/// instead of copying model, provider, target and host again.
#[derive(Debug, Default)]
pub struct TargetAttributes(std::sync::OnceLock<Box<[KeyValue]>>);

fn fixed_attributes(target: &Target, uri: &http::Uri) -> Box<[KeyValue]> {
    let shared = |s: &str| -> Arc<str> { s.into() };
    let provider = &target.provider;
    let mut attrs = vec![
        KeyValue::new("gen_ai.system", facts::system(provider.kind)),
        KeyValue::new("gen_ai.request.model", shared(&target.model)),
        KeyValue::new("understudy.provider", shared(&provider.name)),
        KeyValue::new("understudy.target", shared(&target.label)),
    ];
    // The base URL's host: the same for every attempt at this target.
    if let Some(host) = uri.host() {
        attrs.push(KeyValue::new("server.address", shared(host)));
    }
    if let Some(port) = uri.port_u16() {
        attrs.push(KeyValue::new("server.port", i64::from(port)));
    }
    attrs.into_boxed_slice()
}

/// A failed attempt: its outcome on the attempt span.
pub fn attempt_failed(cx: &Context, outcome: &'static str, error_type: String, message: &str) {
    let span = cx.span();
    span.set_attributes([
        KeyValue::new("understudy.outcome", outcome),
        KeyValue::new("error.type", error_type),
    ]);
    span.set_status(Status::error(message.to_string()));
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
    fn nothing_is_traced_without_a_request_span() {
        let mut upstream = http::Request::new(());
        let target =
            crate::providers::testing::target(crate::providers::Kind::Openai, "http://127.0.0.1:9");
        assert!(attempt(&target, 1, &mut upstream).is_none());
        assert!(upstream.headers().is_empty());
        assert!(!capture_content());
    }
}
