//! Speaking the client's own API to a target that speaks it too: the body passes
//! with only `model` swapped, and each upstream event passes through framed as it
//! came, riding on the canonical chunks it translates to — so the walk still sees
//! content, finish and errors, and the front door can send the bytes unchanged.

use bytes::{Bytes, BytesMut};
use serde_json::value::RawValue;

use super::{AdapterError, Flow, StreamTranslator};
use crate::canonical::ChatChunk;
use crate::http::sse::Event;

/// `body` with `model` replaced. Every other field is copied as raw JSON text, never
/// parsed into a tree: the pass-through stays cheap and loses nothing.
pub(crate) fn with_model(body: &[u8], model: &str) -> Result<Vec<u8>, AdapterError> {
    with_fields(body, model, &[])
}

/// `body` with `model` replaced and each `(key, raw JSON)` of `set` put in place of
/// the client's own value of that key.
pub(crate) fn with_fields(
    body: &[u8],
    model: &str,
    set: &[(&str, &[u8])],
) -> Result<Vec<u8>, AdapterError> {
    let fields: std::collections::BTreeMap<String, &RawValue> = serde_json::from_slice(body)
        .map_err(|e| AdapterError::InvalidRequest(format!("request body: {e}")))?;
    let encode = |e: serde_json::Error| AdapterError::InvalidRequest(e.to_string());
    let mut out = Vec::with_capacity(body.len() + model.len() + 16);
    out.extend_from_slice(b"{\"model\":");
    serde_json::to_writer(&mut out, model).map_err(encode)?;
    for (key, value) in set {
        out.push(b',');
        serde_json::to_writer(&mut out, key).map_err(encode)?;
        out.push(b':');
        out.extend_from_slice(value);
    }
    let replaced = |k: &str| k == "model" || set.iter().any(|(s, _)| *s == k);
    for (key, value) in fields.iter().filter(|(k, _)| !replaced(k)) {
        out.push(b',');
        serde_json::to_writer(&mut out, key).map_err(encode)?;
        out.push(b':');
        out.extend_from_slice(value.get().as_bytes());
    }
    out.push(b'}');
    Ok(out)
}

/// An SSE event framed again as it arrived (`event:` line, `data:` lines).
fn frame(event: &Event) -> Bytes {
    let mut b = BytesMut::with_capacity(event.data.len() + 32);
    if let Some(name) = &event.event {
        b.extend_from_slice(b"event: ");
        b.extend_from_slice(name.as_bytes());
        b.extend_from_slice(b"\n");
    }
    for line in event.data.split('\n') {
        b.extend_from_slice(b"data: ");
        b.extend_from_slice(line.as_bytes());
        b.extend_from_slice(b"\n");
    }
    b.extend_from_slice(b"\n");
    b.freeze()
}

/// Wraps a kind's own translator: its chunks decide commit and failover as usual;
/// each upstream event also rides along, on the last chunk it produced or on an
/// empty carrier chunk (pings, block starts) that no translated renderer shows.
pub(crate) struct Passthrough {
    inner: Box<dyn StreamTranslator>,
    /// Id and model of the last chunk, for carriers.
    last: Option<(String, u64, String)>,
}

impl Passthrough {
    pub(crate) fn new(inner: Box<dyn StreamTranslator>) -> Passthrough {
        Passthrough { inner, last: None }
    }

    fn attach(&mut self, raw: Bytes, produced: &mut Vec<ChatChunk>, out: &mut Vec<ChatChunk>) {
        match produced.last_mut() {
            Some(c) => {
                // One answer's id and model do not change: remember them once, not
                // per event.
                if self.last.is_none() {
                    self.last = Some((c.id.clone(), c.created, c.model.clone()));
                }
                c.native = Some(raw);
            }
            None => {
                let (id, created, model) = self.last.clone().unwrap_or_default();
                let mut carrier = ChatChunk::new(&id, created, &model);
                carrier.native = Some(raw);
                produced.push(carrier);
            }
        }
        out.append(produced);
    }
}

impl StreamTranslator for Passthrough {
    fn on_event(&mut self, event: &Event, out: &mut Vec<ChatChunk>) -> Result<Flow, AdapterError> {
        let mut produced = Vec::new();
        let flow = self.inner.on_event(event, &mut produced)?;
        self.attach(frame(event), &mut produced, out);
        Ok(flow)
    }

    fn finish(&mut self, out: &mut Vec<ChatChunk>) -> Result<(), AdapterError> {
        self.inner.finish(out)
    }
}
