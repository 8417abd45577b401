//! Reading embeddings answers, whichever kind wrote them: one vector per input, and
//! each vector in the format the client asked for.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::{reported_model, AdapterError, Target};
use crate::canonical::{EmbedRequest, EmbedResponse, EmbedUsage, EncodingFormat, Vector};

/// An embeddings answer in a kind's wire type (`what` names it in the error).
pub(super) fn parse_answer<T: DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<T, AdapterError> {
    serde_json::from_slice(body).map_err(|e| AdapterError::Protocol(format!("{what}: {e}")))
}

/// An answer must hold one vector per input: anything else is not an answer to
/// this request.
pub(super) fn one_vector_per_input(req: &EmbedRequest, got: usize) -> Result<(), AdapterError> {
    let want = req.input.len();
    if got == want {
        Ok(())
    } else {
        Err(AdapterError::Protocol(format!(
            "{got} embeddings for {want} inputs"
        )))
    }
}

/// One vector as the client asked for it. In that format already, it is kept as the
/// upstream wrote it — checked without parsing a number: no number is parsed and
/// printed again, which is most of the cost of a large answer. Else it is read: a
/// list of numbers to be encoded, or base64 decoded to its numbers.
pub(super) fn vector(raw: Box<RawValue>, want: EncodingFormat) -> Result<Vector, AdapterError> {
    let text = raw.get();
    let bad = || AdapterError::Protocol("an embedding is neither numbers nor base64".into());
    match (text.as_bytes().first(), want) {
        (Some(b'['), EncodingFormat::Float) if is_number_list(text) => Ok(Vector::Raw(raw)),
        (Some(b'"'), EncodingFormat::Base64) if is_base64(text) => Ok(Vector::Raw(raw)),
        (Some(b'['), EncodingFormat::Base64) => serde_json::from_str::<Vec<f64>>(text)
            .ok()
            .filter(|v| !v.is_empty())
            .map(Vector::Floats)
            .ok_or_else(bad),
        (Some(b'"'), EncodingFormat::Float) if is_base64(text) => {
            let bytes = STANDARD
                .decode(&text[1..text.len() - 1])
                .map_err(|_| bad())?;
            if bytes.len() % 4 != 0 {
                return Err(bad());
            }
            Ok(Vector::Floats(
                bytes
                    .chunks_exact(4)
                    .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                    .collect(),
            ))
        }
        _ => Err(bad()),
    }
}

/// A vector of a kind that writes numbers only (Gemini, Ollama), read the way the
/// client's format needs it — kept as written for floats (`Box<RawValue>`), parsed
/// for base64 (`Vec<f64>`) — chosen before the answer is parsed, so no vector is
/// scanned twice.
pub(super) trait Numbers: DeserializeOwned {
    fn into_vector(self) -> Result<Vector, AdapterError>;
}

impl Numbers for Box<RawValue> {
    fn into_vector(self) -> Result<Vector, AdapterError> {
        if is_number_list(self.get()) {
            Ok(Vector::Raw(self))
        } else {
            Err(AdapterError::Protocol(
                "an embedding is not a list of numbers".into(),
            ))
        }
    }
}

impl Numbers for Vec<f64> {
    fn into_vector(self) -> Result<Vector, AdapterError> {
        if self.is_empty() {
            return Err(AdapterError::Protocol("an empty embedding".into()));
        }
        Ok(Vector::Floats(self))
    }
}

/// What a numbers-only kind's answer holds, its vectors read as `V`.
pub(super) struct Parts<V> {
    pub(super) model: Option<String>,
    pub(super) vectors: Vec<V>,
    pub(super) prompt_tokens: u64,
}

/// A numbers-only kind's answer on the wire, generic in how its vectors are read.
pub(super) trait NumbersWire {
    type Answer<V: Numbers>: DeserializeOwned;
    /// Names the answer in errors.
    const WHAT: &'static str;
    fn parts<V: Numbers>(answer: Self::Answer<V>) -> Parts<V>;
}

/// A numbers-only kind's answer ([`NumbersWire`]) with one vector per input, each
/// read the way the client's format needs it.
pub(super) fn numbers_answer<W: NumbersWire>(
    req: &EmbedRequest,
    target: &Target,
    body: &[u8],
) -> Result<EmbedResponse, AdapterError> {
    match req.encoding_format {
        EncodingFormat::Float => read::<W, Box<RawValue>>(req, target, body),
        EncodingFormat::Base64 => read::<W, Vec<f64>>(req, target, body),
    }
}

fn read<W: NumbersWire, V: Numbers>(
    req: &EmbedRequest,
    target: &Target,
    body: &[u8],
) -> Result<EmbedResponse, AdapterError> {
    let parts = W::parts(parse_answer::<W::Answer<V>>(body, W::WHAT)?);
    one_vector_per_input(req, parts.vectors.len())?;
    Ok(EmbedResponse {
        model: reported_model(parts.model, target),
        vectors: parts
            .vectors
            .into_iter()
            .map(Numbers::into_vector)
            .collect::<Result<_, _>>()?,
        usage: EmbedUsage::of_prompt(parts.prompt_tokens),
    })
}

fn is_number_list(text: &str) -> bool {
    let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) else {
        return false;
    };
    // serde_json has checked the syntax: an array with none of these bytes inside
    // holds numbers only. A fold without early exit, so it runs as wide compares.
    let other = inner.bytes().fold(false, |seen, b| {
        seen | matches!(b, b'[' | b'{' | b'"' | b't' | b'f' | b'n')
    });
    !other && inner.bytes().any(|b| b.is_ascii_digit())
}

fn is_base64(text: &str) -> bool {
    let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) else {
        return false;
    };
    let alphabet = inner.bytes().fold(true, |ok, b| {
        ok & matches!(b, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' | b'=')
    });
    alphabet && !inner.is_empty() && inner.len() % 4 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.into()).unwrap()
    }

    #[test]
    fn a_vector_in_the_asked_format_is_kept_as_written() {
        for (text, want) in [
            ("[0.25, -1.5e-3,2]", EncodingFormat::Float),
            ("\"AACAPwAAIMA=\"", EncodingFormat::Base64),
        ] {
            match vector(raw(text), want).unwrap() {
                Vector::Raw(r) => assert_eq!(r.get(), text),
                Vector::Floats(f) => panic!("{text}: parsed into {f:?}"),
            }
        }
    }

    #[test]
    fn a_vector_in_the_other_format_is_read() {
        let floats = |v: Vector| match v {
            Vector::Floats(f) => f,
            Vector::Raw(r) => panic!("kept {}", r.get()),
        };
        assert_eq!(
            floats(vector(raw("[1, -2.5]"), EncodingFormat::Base64).unwrap()),
            vec![1.0, -2.5]
        );
        // 1.0f32 and -2.5f32, little-endian
        assert_eq!(
            floats(vector(raw("\"AACAPwAAIMA=\""), EncodingFormat::Float).unwrap()),
            vec![1.0, -2.5]
        );
    }

    #[test]
    fn a_kind_that_writes_numbers_only_is_held_to_it() {
        assert!(matches!(raw("[1]").into_vector(), Ok(Vector::Raw(_))));
        assert!(matches!(vec![1.0].into_vector(), Ok(Vector::Floats(_))));
        for bad in ["\"AACAPw==\"", "[]", "[\"1\"]"] {
            assert!(raw(bad).into_vector().is_err(), "{bad}");
        }
        assert!(Vec::<f64>::new().into_vector().is_err());
    }

    #[test]
    fn anything_else_is_a_protocol_error() {
        for (text, want) in [
            ("[]", EncodingFormat::Float),
            ("[]", EncodingFormat::Base64),
            ("[[1]]", EncodingFormat::Float),
            ("[\"1\"]", EncodingFormat::Float),
            ("[true]", EncodingFormat::Float),
            ("[null]", EncodingFormat::Float),
            ("[{\"a\":1}]", EncodingFormat::Float),
            ("{\"a\":1}", EncodingFormat::Float),
            ("\"\"", EncodingFormat::Base64),
            ("\"AAA\"", EncodingFormat::Base64),
            ("\"AA\\u0041A\"", EncodingFormat::Base64),
            ("\"AAA=\"", EncodingFormat::Float),
            ("3", EncodingFormat::Float),
        ] {
            assert!(
                matches!(vector(raw(text), want), Err(AdapterError::Protocol(_))),
                "{text} as {want:?}"
            );
        }
    }
}
