//! Incremental decoding of upstream event streams (SSE and NDJSON framing) and
//! encoding of the SSE the client receives.
//!
//! Upstream bytes arrive split anywhere — mid-line, mid-CRLF, mid-UTF-8 character — so
//! the decoder buffers partial lines and only yields whole events.

use bytes::{Buf, BytesMut};

/// How a provider frames its streamed answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `text/event-stream`: `event:` / `data:` fields, a blank line ends an event.
    Sse,
    /// One JSON object per line (Ollama).
    Ndjson,
}

/// One decoded event. For NDJSON, `data` is the line and `event` is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
}

/// A line longer than this is an upstream fault, not something to buffer forever.
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("stream event exceeds {MAX_EVENT_BYTES} bytes")]
    TooLarge,
    #[error("stream is not valid UTF-8")]
    Utf8,
}

pub struct Decoder {
    framing: Framing,
    buf: BytesMut,
    /// Where the next scan for a line end starts (everything before has none).
    scanned: usize,
    /// A CR ended the last line; a LF right after it belongs to that line end.
    skip_lf: bool,
    fields: Fields,
}

/// The event being read, apart from the bytes still to read, so a line can be read
/// in place in the buffer.
struct Fields {
    event: Option<String>,
    data: String,
    has_data: bool,
    /// Strings of events already handed on and given back ([`Decoder::recycle`]):
    /// the next events' data goes into them instead of new allocations.
    spare: Vec<String>,
}

impl Decoder {
    pub fn new(framing: Framing) -> Decoder {
        Decoder {
            framing,
            buf: BytesMut::new(),
            scanned: 0,
            skip_lf: false,
            fields: Fields {
                event: None,
                data: String::new(),
                has_data: false,
                spare: Vec::new(),
            },
        }
    }

    /// Appends upstream bytes and pushes every event they complete onto `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<Event>) -> Result<(), DecodeError> {
        self.buf.extend_from_slice(chunk);
        while let Some((end, is_cr)) = self.next_line_end() {
            self.fields.on_line(self.framing, &self.buf[..end], out)?;
            self.buf.advance(end + 1);
            self.scanned = 0;
            if is_cr {
                if self.buf.first() == Some(&b'\n') {
                    self.buf.advance(1);
                } else if self.buf.is_empty() {
                    self.skip_lf = true;
                }
            }
        }
        if self.buf.len() + self.fields.data.len() > MAX_EVENT_BYTES {
            return Err(DecodeError::TooLarge);
        }
        Ok(())
    }

    /// The stream ended: a final line or event without its terminator still counts.
    pub fn finish(&mut self, out: &mut Vec<Event>) -> Result<(), DecodeError> {
        if !self.buf.is_empty() {
            let rest = self.buf.split();
            self.fields.on_line(self.framing, &rest, out)?;
        }
        if self.framing == Framing::Sse {
            self.fields.dispatch(out);
        }
        Ok(())
    }

    /// Gives back an event that was handed on: its string holds a later event's data.
    pub fn recycle(&mut self, event: Event) {
        // A few are enough: one upstream read rarely completes more events than that.
        if self.fields.spare.len() < 16 {
            let mut data = event.data;
            data.clear();
            self.fields.spare.push(data);
        }
    }

    /// Where the next whole line in the buffer ends, and whether a CR ends it.
    fn next_line_end(&mut self) -> Option<(usize, bool)> {
        if self.skip_lf && !self.buf.is_empty() {
            if self.buf[0] == b'\n' {
                self.buf.advance(1);
            }
            self.skip_lf = false;
        }
        let Some(pos) = memchr::memchr2(b'\n', b'\r', &self.buf[self.scanned..]) else {
            self.scanned = self.buf.len();
            return None;
        };
        let end = pos + self.scanned;
        Some((end, self.buf[end] == b'\r'))
    }
}

impl Fields {
    fn on_line(
        &mut self,
        framing: Framing,
        line: &[u8],
        out: &mut Vec<Event>,
    ) -> Result<(), DecodeError> {
        let line = std::str::from_utf8(line).map_err(|_| DecodeError::Utf8)?;
        match framing {
            Framing::Ndjson => {
                if !line.trim().is_empty() {
                    let mut data = self.spare.pop().unwrap_or_default();
                    data.push_str(line);
                    out.push(Event { event: None, data });
                }
            }
            Framing::Sse => {
                if line.is_empty() {
                    self.dispatch(out);
                    return Ok(());
                }
                if line.starts_with(':') {
                    return Ok(()); // comment / keep-alive
                }
                let (field, value) = match line.split_once(':') {
                    Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                    None => (line, ""),
                };
                match field {
                    "event" => self.event = Some(value.to_string()),
                    "data" => {
                        if self.has_data {
                            self.data.push('\n');
                        } else if self.data.capacity() == 0 {
                            if let Some(spare) = self.spare.pop() {
                                self.data = spare;
                            }
                        }
                        self.data.push_str(value);
                        self.has_data = true;
                    }
                    _ => {} // id, retry and unknown fields carry nothing we use
                }
            }
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<Event>) {
        if self.has_data {
            out.push(Event {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
            });
        }
        self.event = None;
        self.has_data = false;
    }
}

/// `data: <json>\n\n`, appended to `out`.
pub fn encode_data(json: &[u8], out: &mut BytesMut) {
    out.reserve(json.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
}

pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// `event: <name>\ndata: <json>\n\n`, appended to `out`.
pub fn encode_event(name: &str, json: &[u8], out: &mut BytesMut) {
    out.reserve(name.len() + json.len() + 16);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_split(framing: Framing, input: &[u8], split_every: usize) -> Vec<Event> {
        let mut d = Decoder::new(framing);
        let mut out = Vec::new();
        for piece in input.chunks(split_every) {
            d.push(piece, &mut out).unwrap();
        }
        d.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn sse_events_survive_any_split_and_line_ending() {
        let lf =
            b"event: a\ndata: {\"x\":1}\n\n: ping\n\ndata: line1\ndata: line2\n\ndata: [DONE]\n\n";
        let crlf = String::from_utf8_lossy(lf).replace('\n', "\r\n");
        let cr = String::from_utf8_lossy(lf).replace('\n', "\r");
        let want = vec![
            Event {
                event: Some("a".into()),
                data: "{\"x\":1}".into(),
            },
            Event {
                event: None,
                data: "line1\nline2".into(),
            },
            Event {
                event: None,
                data: "[DONE]".into(),
            },
        ];
        for input in [lf.to_vec(), crlf.into_bytes(), cr.into_bytes()] {
            for split in [1, 2, 3, 7, 1000] {
                assert_eq!(
                    decode_split(Framing::Sse, &input, split),
                    want,
                    "split {split}"
                );
            }
        }
    }

    #[test]
    fn sse_multibyte_utf8_split_mid_character() {
        let input = "data: héllo ✓\n\n".as_bytes();
        let got = decode_split(Framing::Sse, input, 1);
        assert_eq!(got[0].data, "héllo ✓");
    }

    #[test]
    fn sse_final_event_without_blank_line_is_kept() {
        let got = decode_split(Framing::Sse, b"data: last", 4);
        assert_eq!(
            got,
            vec![Event {
                event: None,
                data: "last".into()
            }]
        );
    }

    #[test]
    fn ndjson_lines() {
        let got = decode_split(Framing::Ndjson, b"{\"a\":1}\r\n\n{\"b\":2}", 3);
        let data: Vec<_> = got.into_iter().map(|e| e.data).collect();
        assert_eq!(data, vec!["{\"a\":1}", "{\"b\":2}"]);
    }

    #[test]
    fn a_recycled_event_holds_the_next_ones_data() {
        for (framing, input) in [
            (Framing::Sse, &b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\n"[..]),
            (Framing::Ndjson, &b"{\"a\":1}\n{\"b\":2}\n"[..]),
        ] {
            let mut d = Decoder::new(framing);
            let mut out = Vec::new();
            d.push(&input[..input.len() / 2], &mut out).unwrap();
            let first = out.pop().unwrap();
            let storage = first.data.as_ptr();
            d.recycle(first);
            d.push(&input[input.len() / 2..], &mut out).unwrap();
            assert_eq!(out[0].data, "{\"b\":2}");
            assert_eq!(out[0].data.as_ptr(), storage, "{framing:?}: no new string");
        }
    }

    #[test]
    fn oversized_and_invalid_input_is_an_error() {
        let mut d = Decoder::new(Framing::Sse);
        let mut out = Vec::new();
        assert_eq!(
            d.push(&vec![b'x'; MAX_EVENT_BYTES + 1], &mut out),
            Err(DecodeError::TooLarge)
        );
        let mut d = Decoder::new(Framing::Sse);
        assert_eq!(d.push(b"data: \xff\n", &mut out), Err(DecodeError::Utf8));
    }
}
