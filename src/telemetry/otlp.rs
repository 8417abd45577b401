//! Finished spans → the body of an OTLP/HTTP `ExportTraceServiceRequest` (protobuf).
//!
//! Why not `opentelemetry-otlp`'s own path: it converts every span into the
//! `opentelemetry-proto` message tree (a `String` per attribute key and value), which
//! prost then encodes; measured, ~24k instructions a span, more than the request it
//! traced. Here a span is written in one pass, when it ends, into the batch's one
//! buffer. The field numbers are those of
//! opentelemetry/proto/{collector/trace,trace,common,resource}/v1/*.proto; the unit
//! test decodes our bytes with `opentelemetry-proto` and compares them with that
//! crate's own conversion of the same spans.

use std::sync::{Arc, LazyLock};
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::TraceState;
use opentelemetry_sdk::Resource;

use super::attrs::{Key, Value, ALL, KEYS};
use super::protobuf::{varint_len, Writer};
use super::span::{Kind, Open, Record};

/// The OTLP `SpanFlags` bit saying whether the parent's remoteness is known, and the
/// bit saying it is remote.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;
/// The `Span.attributes` field.
const ATTRIBUTES: u32 = 9;

/// One finished span, appended to `batch` as a `ScopeSpans.spans` entry: spans are
/// written when they end, while their data is still in cache, and a batch waits as
/// bytes (about half a KiB a span).
pub(super) fn append_span(batch: &mut Vec<u8>, record: &Record, open: &Open, end: SystemTime) {
    let mut w = Writer::append_to(std::mem::take(batch));
    // Span { ... } = 2 in ScopeSpans
    w.message(2, 2, |s| span(s, record, open, end));
    *batch = w.into_bytes();
}

/// The start of the request body for `spans_len` bytes of spans (entries written by
/// [`append_span`]), all of one instrumentation scope — understudy's: the body is this
/// and then the spans, sent as they are (a batch is not copied into a body). `resource`
/// and `scope` are [`resource`]'s and [`scope`]'s encodings, made once.
pub(super) fn request_head(
    resource: &[u8],
    resource_schema: &str,
    scope: &[u8],
    spans_len: usize,
) -> Vec<u8> {
    // ScopeSpans { scope = 1; repeated Span spans = 2; schema_url = 3 }
    let scope_spans = delimited_len(scope.len()) + spans_len;
    // ResourceSpans { resource = 1; repeated ScopeSpans scope_spans = 2; schema_url = 3 },
    // the schema first: protobuf fields may come in any order, and the spans must be
    // last.
    let schema = if resource_schema.is_empty() {
        0
    } else {
        delimited_len(resource_schema.len())
    };
    let resource_spans = delimited_len(resource.len()) + schema + delimited_len(scope_spans);
    let mut out = Writer::with_capacity(resource.len() + scope.len() + 32);
    // ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1 }
    out.delimited(1, resource_spans);
    out.encoded(1, resource);
    out.string(3, resource_schema);
    out.delimited(2, scope_spans);
    out.encoded(1, scope);
    out.into_bytes()
}

/// An `InstrumentationScope` message { name = 1; version = 2; attributes = 3 } of a
/// scope with a name only.
pub(super) fn scope(name: &str) -> Vec<u8> {
    let mut s = Writer::with_capacity(64);
    s.string(1, name);
    s.into_bytes()
}

/// A `Resource` message: the resource's attributes.
pub(super) fn resource(resource: &Resource) -> Vec<u8> {
    use opentelemetry::{Array, Value as Otel};
    let mut out = Writer::with_capacity(256);
    for (k, v) in resource.iter() {
        let value = match v {
            Otel::Bool(b) => Value::Bool(*b),
            Otel::I64(i) => Value::Int(*i),
            Otel::F64(f) => Value::Float(*f),
            Otel::Array(Array::String(list)) => {
                Value::Strings(list.iter().map(|s| s.as_str().into()).collect())
            }
            // Strings, and the rare array of another kind as its text.
            other => Value::Text(other.as_str().into()),
        };
        attribute(&mut out, 1, k.as_str(), &value);
    }
    out.into_bytes()
}

/// Attributes encoded once and written into spans as they are (`fixed`).
pub(super) fn fixed_attributes<'a>(attrs: impl IntoIterator<Item = (&'a str, Value)>) -> Vec<u8> {
    let mut out = Writer::with_capacity(256);
    for (key, value) in attrs {
        attribute(&mut out, ATTRIBUTES, key, &value);
    }
    out.into_bytes()
}

fn span(s: &mut Writer, record: &Record, open: &Open, end: SystemTime) {
    let cx = &record.cx;
    s.bytes(1, &cx.trace_id().to_bytes());
    s.bytes(2, &cx.span_id().to_bytes());
    trace_state(s, 3, cx.trace_state());
    let remote = match record.parent {
        Some((id, remote)) => {
            s.bytes(4, &id.to_bytes());
            remote
        }
        None => false,
    };
    s.fixed32(16, flags(cx.trace_flags().to_u8(), remote));
    let name = &open.name;
    match &name.model {
        Some(model) => {
            s.delimited(5, name.operation.len() + 1 + model.len());
            s.raw(name.operation.as_bytes());
            s.raw(b" ");
            s.raw(model.as_bytes());
        }
        None => s.string(5, name.operation),
    }
    s.uint(6, kind(record.kind));
    s.fixed64(7, nanos(record.start));
    s.fixed64(8, nanos(end));
    s.raw(record.fixed);
    if let Some(target) = &record.target {
        s.raw(target);
    }
    for (key, value) in open.attrs.iter() {
        key_attribute(s, key, value);
    }
    // Status { message = 2; code = 3 }: unset (empty) or an error (code 2).
    s.message(15, 1, |m| {
        if let Some(text) = &open.error {
            m.string(2, text);
            m.uint(3, 2);
        }
    });
}

fn flags(trace_flags: u8, remote: bool) -> u32 {
    u32::from(trace_flags) | HAS_IS_REMOTE | if remote { IS_REMOTE } else { 0 }
}

fn trace_state(s: &mut Writer, field: u32, state: &TraceState) {
    // Almost always empty: only then is its header free (no allocation).
    if *state != TraceState::NONE {
        s.string(field, &state.header());
    }
}

/// OTLP's `Span.SpanKind` numbers.
fn kind(kind: Kind) -> u64 {
    match kind {
        Kind::Server => 2,
        Kind::Client => 3,
    }
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Each [`Key`]'s `Span.attributes` entry up to its value's length: the entry's tag,
/// a byte for its length (filled in per value), the key field, and the value's tag.
static PREFIXES: LazyLock<[Vec<u8>; KEYS]> = LazyLock::new(|| {
    ALL.map(|key| {
        let name = key.name();
        let mut w = Writer::with_capacity(name.len() + 4);
        w.delimited(ATTRIBUTES, 0);
        w.string(1, name);
        w.delimited(2, 0);
        let mut bytes = w.into_bytes();
        // The value's length is written after the prefix.
        bytes.pop();
        bytes
    })
});

/// An attribute of ours: the bytes before its value from [`PREFIXES`] (measured:
/// half of what writing each key's fields one by one cost), unless the entry is too
/// long for a one-byte length.
fn key_attribute(s: &mut Writer, key: Key, value: &Value) {
    let prefix = &PREFIXES[key as usize];
    let any_len = any_len(value);
    // Less the entry's tag and length byte; plus the value's length and the value.
    let entry = prefix.len() - 2 + varint_len(any_len as u64) + any_len;
    match u8::try_from(entry) {
        Ok(len) if len < 0x80 => {
            s.raw_patched(prefix, 1, len);
            s.varint(any_len as u64);
            any(s, value);
        }
        _ => attribute(s, ATTRIBUTES, key.name(), value),
    }
}

/// KeyValue { key = 1; AnyValue value = 2 }, its lengths computed, not guessed.
fn attribute(s: &mut Writer, field: u32, key: &str, value: &Value) {
    let any_len = any_len(value);
    let key_len = if key.is_empty() {
        0
    } else {
        delimited_len(key.len())
    };
    s.delimited(field, key_len + delimited_len(any_len));
    s.string(1, key);
    s.delimited(2, any_len);
    any(s, value);
}

/// A length-delimited field of `len` bytes with a one-byte key, all told.
fn delimited_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// The size of `value`'s `AnyValue` message. Inlined, as [`any`] is, into every
/// attribute's writing (measured: the calls cost a tenth of a span's encoding); the
/// rare array is written out of line.
#[inline(always)]
fn any_len(value: &Value) -> usize {
    match value {
        Value::Bool(_) => 2,
        Value::Int(i) => 1 + varint_len(*i as u64),
        Value::Float(_) => 9,
        Value::Strings(list) => delimited_len(strings_len(list)),
        text => delimited_len(text.as_str().map_or(0, str::len)),
    }
}

/// AnyValue { oneof { string_value = 1; bool_value = 2; int_value = 3;
/// double_value = 4; ArrayValue array_value = 5 } } — a oneof: written even when it
/// holds a default.
#[inline(always)]
fn any(s: &mut Writer, value: &Value) {
    match value {
        Value::Bool(b) => s.uint_always(2, u64::from(*b)),
        Value::Int(i) => s.uint_always(3, *i as u64),
        Value::Float(f) => s.fixed64_always(4, f.to_bits()),
        Value::Strings(list) => strings(s, list),
        text => s.string_always(1, text.as_str().unwrap_or_default()),
    }
}

/// ArrayValue { repeated AnyValue values = 1 }, each a string: its size.
#[inline(never)]
fn strings_len(list: &[Arc<str>]) -> usize {
    list.iter()
        .map(|t| delimited_len(delimited_len(t.len())))
        .sum()
}

#[inline(never)]
fn strings(s: &mut Writer, list: &[Arc<str>]) {
    s.delimited(5, strings_len(list));
    for t in list {
        s.delimited(1, delimited_len(t.len()));
        s.string_always(1, t);
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::time::Duration;

    use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId};
    use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::trace::SpanData;
    use prost::Message;

    use super::super::attrs::{Attributes, Key};
    use super::super::span::Name;
    use super::*;

    fn every_kind_of_value() -> Attributes {
        let mut a = Attributes::default();
        a.set(Key::System, "openai");
        a.set(Key::Api, "");
        a.set(Key::Failover, false);
        a.set(Key::Attempt, 2_i64);
        a.set(Key::InputTokens, -7_i64);
        a.set(Key::OutputTokens, 0_i64);
        a.set(Key::OutputMessages, "é".repeat(200));
        a.set(Key::ResponseModel, Arc::<str>::from("gpt-4o"));
        a.set(
            Key::FinishReasons,
            Value::Strings(vec![Arc::from("stop"), Arc::from("")].into()),
        );
        a.set(Key::Route, Value::Strings(Vec::new().into()));
        a
    }

    fn context(trace: u128, span: u64, state: TraceState) -> SpanContext {
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            TraceFlags::SAMPLED,
            false,
            state,
        )
    }

    fn fixed() -> Vec<(&'static str, Value)> {
        vec![
            ("understudy.provider", Value::Text("a".into())),
            ("server.port", Value::Int(8080)),
            ("ratio", Value::Float(0.25)),
        ]
    }

    /// Our spans, and what the SDK would have made of the same.
    fn spans() -> Vec<(Record, Open, SystemTime, SpanData)> {
        let t0 = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let t1 = t0 + Duration::from_millis(12);
        let state = TraceState::from_key_value([("vendor", "x1")]).unwrap();
        let cases = [
            (
                context(0xabc, 0x1, state),
                Some((SpanId::from(0x99), true)),
                Kind::Server,
                Name {
                    operation: "chat",
                    model: Some("default".into()),
                },
                None,
                every_kind_of_value(),
                Some("answered 502 Bad Gateway".to_string()),
            ),
            (
                context(0xabc, 0x2, TraceState::NONE),
                Some((SpanId::from(0x1), false)),
                Kind::Client,
                Name {
                    operation: "chat",
                    model: Some("gpt-4o".into()),
                },
                Some(fixed()),
                {
                    let mut a = Attributes::default();
                    a.set(Key::Outcome, "ok");
                    a
                },
                None,
            ),
            (
                context(0xfff, 0x3, TraceState::NONE),
                None,
                Kind::Server,
                Name {
                    operation: "embeddings",
                    model: None,
                },
                None,
                Attributes::default(),
                Some(String::new()),
            ),
        ];
        let scope = InstrumentationScope::builder("understudy").build();
        cases
            .into_iter()
            .map(|(cx, parent, kind, name, fixed, attrs, error)| {
                let mut attributes: Vec<KeyValue> = fixed
                    .iter()
                    .flatten()
                    .map(|(k, v)| KeyValue::new(*k, otel(v)))
                    .collect();
                attributes.extend(attrs.iter().map(|(k, v)| KeyValue::new(k.name(), otel(v))));
                let data = SpanData {
                    span_context: cx.clone(),
                    parent_span_id: parent.map_or(SpanId::INVALID, |(id, _)| id),
                    parent_span_is_remote: parent.is_some_and(|(_, r)| r),
                    span_kind: match kind {
                        Kind::Server => SpanKind::Server,
                        Kind::Client => SpanKind::Client,
                    },
                    name: Cow::Owned(match &name.model {
                        Some(m) => format!("{} {m}", name.operation),
                        None => name.operation.to_string(),
                    }),
                    start_time: t0,
                    end_time: t1,
                    attributes,
                    dropped_attributes_count: 0,
                    events: Default::default(),
                    links: Default::default(),
                    status: match &error {
                        Some(text) => Status::error(text.clone()),
                        None => Status::Unset,
                    },
                    instrumentation_scope: scope.clone(),
                };
                let record = Record {
                    cx,
                    parent,
                    kind,
                    start: t0,
                    fixed: &[],
                    target: fixed
                        .map(|f| fixed_attributes(f.iter().map(|(k, v)| (*k, v.clone()))).into()),
                };
                let open = Open { name, attrs, error };
                (record, open, t1, data)
            })
            .collect()
    }

    fn otel(v: &Value) -> opentelemetry::Value {
        use opentelemetry::Value as O;
        match v {
            Value::Bool(b) => O::Bool(*b),
            Value::Int(i) => O::I64(*i),
            Value::Float(f) => O::F64(*f),
            Value::Strings(list) => O::Array(Array::String(
                list.iter()
                    .map(|s| StringValue::from(s.to_string()))
                    .collect(),
            )),
            text => O::String(text.as_str().unwrap().to_string().into()),
        }
    }

    #[test]
    fn a_batch_decodes_to_what_opentelemetry_proto_makes_of_the_same_spans() {
        let resource = Resource::builder()
            .with_service_name("understudy-test")
            .with_attribute(KeyValue::new("deployment.environment", "test"))
            .with_attribute(KeyValue::new("replica", 3_i64))
            .build();
        let cases = spans();
        let mut bytes = Vec::new();
        for (record, open, end, _) in &cases {
            append_span(&mut bytes, record, open, *end);
        }
        for schema in ["", "https://opentelemetry.io/schemas/1.30.0"] {
            let resource = Resource::builder_empty()
                .with_schema_url(
                    resource
                        .iter()
                        .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
                    schema,
                )
                .build();
            let mut ours = request_head(
                &super::resource(&resource),
                schema,
                &scope("understudy"),
                bytes.len(),
            );
            ours.extend_from_slice(&bytes);
            let theirs = ExportTraceServiceRequest {
                resource_spans: group_spans_by_resource_and_scope(
                    cases.iter().map(|c| c.3.clone()).collect(),
                    &(&resource).into(),
                ),
            };
            let decoded = ExportTraceServiceRequest::decode(ours.as_slice()).unwrap();
            assert_eq!(decoded, theirs, "schema {schema:?}");
            // Same fields, and no more bytes than prost itself writes.
            assert_eq!(ours.len(), theirs.encoded_len());
        }
    }
}
