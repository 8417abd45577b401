//! The protobuf wire format, as much of it as OTLP's trace messages need (proto3:
//! scalar fields holding their default are left out).
//!
//! One pass: a nested message's length goes before it, so [`Writer::message`]
//! leaves room for the length it expects, writes the message, then writes the
//! length there — moving the message only in the rare case the guess was wrong.
//! Nothing is measured twice and nothing is built on the side. Varint lengths and
//! wire types are prost's; varints are written here, straight into the `Vec`:
//! prost's `encode_varint` goes through `BufMut`, a bounds-checked `put_slice` per
//! byte — measured, about a fifth of a span's encoding, for the one- and two-byte
//! varints (keys, lengths) nearly every field has.

use prost::encoding::{encoded_len_varint, WireType};

pub(super) struct Writer(Vec<u8>);

impl Writer {
    pub(super) fn with_capacity(n: usize) -> Writer {
        Writer(Vec::with_capacity(n))
    }

    /// Writes on after what `buf` holds.
    pub(super) fn append_to(buf: Vec<u8>) -> Writer {
        Writer(buf)
    }

    pub(super) fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// Fields already encoded, as they are.
    #[inline]
    pub(super) fn raw(&mut self, fields: &[u8]) {
        self.0.extend_from_slice(fields);
    }

    /// `bytes` as they are, with the one at `at` replaced by `byte`: a prefix made
    /// once, with a one-byte length filled in.
    #[inline]
    pub(super) fn raw_patched(&mut self, bytes: &[u8], at: usize, byte: u8) {
        let start = self.0.len();
        self.0.extend_from_slice(bytes);
        self.0[start + at] = byte;
    }

    #[inline]
    pub(super) fn varint(&mut self, v: u64) {
        put_varint(&mut self.0, v);
    }

    #[inline]
    fn key(&mut self, field: u32, wire: WireType) {
        self.varint(u64::from(field) << 3 | wire as u64);
    }

    /// A nested message in `field`, written by `body`; `guess` is the byte count its
    /// length usually takes (1: under 128 bytes, 2: under 16 KiB, 3: under 2 MiB).
    #[inline]
    pub(super) fn message(&mut self, field: u32, guess: usize, body: impl FnOnce(&mut Writer)) {
        self.key(field, WireType::LengthDelimited);
        let at = self.0.len();
        for _ in 0..guess {
            self.0.push(0);
        }
        body(self);
        let end = self.0.len();
        let len = end - at - guess;
        let need = varint_len(len as u64);
        if need > guess {
            self.0.resize(end + need - guess, 0);
            self.0.copy_within(at + guess..end, at + need);
        } else if need < guess {
            self.0.copy_within(at + guess..end, at + need);
            self.0.truncate(end - (guess - need));
        }
        let mut i = at;
        varint_bytes(len as u64, |b| {
            self.0[i] = b;
            i += 1;
        });
    }

    /// A length-delimited field's key and length: its `len` bytes must follow.
    #[inline]
    pub(super) fn delimited(&mut self, field: u32, len: usize) {
        self.key(field, WireType::LengthDelimited);
        self.varint(len as u64);
    }

    /// Bytes already encoded as a message, in `field`.
    #[inline]
    pub(super) fn encoded(&mut self, field: u32, message: &[u8]) {
        self.delimited(field, message.len());
        self.0.extend_from_slice(message);
    }

    #[inline]
    pub(super) fn string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }

    #[inline]
    pub(super) fn bytes(&mut self, field: u32, b: &[u8]) {
        if !b.is_empty() {
            self.encoded(field, b);
        }
    }

    /// A string in a oneof: written even when empty.
    #[inline]
    pub(super) fn string_always(&mut self, field: u32, s: &str) {
        self.encoded(field, s.as_bytes());
    }

    #[inline]
    pub(super) fn uint(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.uint_always(field, v);
        }
    }

    /// A varint in a oneof (an `int64` is its two's complement): written even when 0.
    #[inline]
    pub(super) fn uint_always(&mut self, field: u32, v: u64) {
        self.key(field, WireType::Varint);
        self.varint(v);
    }

    #[inline]
    pub(super) fn fixed64(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.fixed64_always(field, v);
        }
    }

    #[inline]
    pub(super) fn fixed64_always(&mut self, field: u32, v: u64) {
        self.key(field, WireType::SixtyFourBit);
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    #[inline]
    pub(super) fn fixed32(&mut self, field: u32, v: u32) {
        if v != 0 {
            self.key(field, WireType::ThirtyTwoBit);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }
}

#[inline]
fn put_varint(out: &mut Vec<u8>, v: u64) {
    varint_bytes(v, |b| out.push(b));
}

/// `v`'s varint bytes, in order: base 128, least significant group first, the high
/// bit saying more follow.
#[inline]
fn varint_bytes(mut v: u64, mut put: impl FnMut(u8)) {
    while v >= 0x80 {
        put((v as u8) | 0x80);
        v >>= 7;
    }
    put(v as u8);
}

pub(super) fn varint_len(v: u64) -> usize {
    encoded_len_varint(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_lengths_match_what_is_written() {
        for v in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut w = Writer::with_capacity(0);
            w.varint(v);
            assert_eq!(w.0.len(), varint_len(v), "{v}");
            let mut theirs = Vec::new();
            prost::encoding::encode_varint(v, &mut theirs);
            assert_eq!(w.0, theirs, "{v}: prost's bytes");
        }
    }

    #[test]
    fn a_wrong_length_guess_moves_the_message_not_its_bytes() {
        for (len, guess) in [
            (0, 1),
            (5, 2),
            (5, 3),
            (127, 1),
            (128, 1),
            (200, 3),
            (20_000, 1),
        ] {
            let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut w = Writer::with_capacity(0);
            w.uint(1, 300);
            w.message(2, guess, |m| m.0.extend_from_slice(&body));
            w.uint(3, 1);
            let mut expected = Writer::with_capacity(0);
            expected.uint(1, 300);
            expected.encoded(2, &body);
            expected.uint(3, 1);
            assert_eq!(w.0, expected.0, "{len} bytes, guessed {guess}");
        }
    }
}
