//! The canonical embeddings request and answer: OpenAI's `POST /v1/embeddings` body
//! and its list answer. Like chat, OpenAI-shaped, so OpenAI-kind targets take the
//! client's body unchanged and translating kinds map from it.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::request::describe_json_error;

/// How the client wants each vector written: a JSON array of numbers, or the base64
/// of its little-endian `f32`s (what the openai SDKs ask for by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncodingFormat {
    #[default]
    Float,
    Base64,
}

/// What is to be embedded; never empty, and no text in it is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbedInput {
    Texts(Vec<String>),
    /// Token-id arrays: only OpenAI-kind providers take them (they share the tokenizer
    /// the ids come from).
    Tokens(Vec<Vec<u32>>),
}

impl EmbedInput {
    /// How many vectors the answer must hold.
    pub fn len(&self) -> usize {
        match self {
            EmbedInput::Texts(t) => t.len(),
            EmbedInput::Tokens(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A parsed `POST /v1/embeddings` body.
#[derive(Debug, Clone)]
pub struct EmbedRequest {
    pub model: String,
    pub input: EmbedInput,
    pub encoding_format: EncodingFormat,
    pub dimensions: Option<u32>,
    /// The body exactly as the client sent it: OpenAI-kind targets get it with only
    /// `model` swapped, unknown fields included.
    pub raw: Bytes,
}

#[derive(Deserialize)]
struct Wire {
    model: String,
    #[serde(default)]
    input: Value,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<u32>,
}

impl EmbedRequest {
    /// Parses and validates a client body. The error text is what the client sees.
    pub fn parse(body: Bytes) -> Result<EmbedRequest, String> {
        let wire: Wire = serde_json::from_slice(&body).map_err(describe_json_error)?;
        let encoding_format = match wire.encoding_format.as_deref() {
            None | Some("float") => EncodingFormat::Float,
            Some("base64") => EncodingFormat::Base64,
            Some(other) => {
                return Err(format!(
                    "'encoding_format' must be \"float\" or \"base64\", not {other:?}"
                ))
            }
        };
        if wire.dimensions == Some(0) {
            return Err("'dimensions' must be at least 1".into());
        }
        Ok(EmbedRequest {
            model: wire.model,
            input: input(wire.input)?,
            encoding_format,
            dimensions: wire.dimensions,
            raw: body,
        })
    }

    /// The texts, for a kind that embeds text only; else why it cannot take them.
    pub fn texts(&self) -> Result<&[String], String> {
        match &self.input {
            EmbedInput::Texts(t) => Ok(t),
            EmbedInput::Tokens(_) => Err(
                "token-id input can only be sent to OpenAI-kind providers (openai, azure)".into(),
            ),
        }
    }
}

const INPUT_SHAPES: &str = "'input' must be a string, a list of strings, a list of token ids \
     or a list of token-id lists";

/// OpenAI's four input shapes, checked so that no target is sent a request every
/// target would refuse (empty input, an empty string, mixed lists).
fn input(v: Value) -> Result<EmbedInput, String> {
    let items = match v {
        Value::Null => return Err("'input' is required".into()),
        Value::String(s) => return texts(vec![Value::String(s)]),
        Value::Array(items) => items,
        _ => return Err(INPUT_SHAPES.into()),
    };
    match items.first() {
        None => Err("'input' must not be an empty list".into()),
        Some(Value::String(_)) => texts(items),
        Some(Value::Number(_)) => Ok(EmbedInput::Tokens(vec![tokens(&items)?])),
        Some(Value::Array(_)) => items
            .iter()
            .map(|item| match item {
                Value::Array(ids) => tokens(ids),
                _ => Err(INPUT_SHAPES.into()),
            })
            .collect::<Result<_, _>>()
            .map(EmbedInput::Tokens),
        Some(_) => Err(INPUT_SHAPES.into()),
    }
}

fn texts(items: Vec<Value>) -> Result<EmbedInput, String> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) if s.is_empty() => {
                Err(format!("'input' must not hold an empty string (item {i})"))
            }
            Value::String(s) => Ok(s),
            _ => Err(INPUT_SHAPES.into()),
        })
        .collect::<Result<_, _>>()
        .map(EmbedInput::Texts)
}

fn tokens(ids: &[Value]) -> Result<Vec<u32>, String> {
    if ids.is_empty() {
        return Err("'input' must not hold an empty token list".into());
    }
    ids.iter()
        .map(|id| {
            id.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("{INPUT_SHAPES}; a token id is a non-negative integer"))
        })
        .collect()
}

/// One vector of an answer.
#[derive(Debug, Clone)]
pub enum Vector {
    /// Numbers the proxy holds (a translating kind's answer); written in the format
    /// the client asked for.
    Floats(Vec<f64>),
    /// An OpenAI-kind upstream's own JSON for this vector, already in the format the
    /// client asked for: written as it came.
    Raw(Box<RawValue>),
}

impl Vector {
    /// Bytes it takes, roughly: what the cache weighs an answer by.
    pub fn size(&self) -> usize {
        match self {
            Vector::Floats(v) => v.len() * std::mem::size_of::<f64>(),
            Vector::Raw(r) => r.get().len(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmbedUsage {
    pub prompt_tokens: u64,
    pub total_tokens: u64,
}

impl EmbedUsage {
    /// Embeddings bill input tokens only.
    pub fn of_prompt(tokens: u64) -> EmbedUsage {
        EmbedUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        }
    }
}

/// An embeddings answer: one vector per input, in input order.
#[derive(Debug, Clone)]
pub struct EmbedResponse {
    /// What the upstream reported, else the target's configured model.
    pub model: String,
    pub vectors: Vec<Vector>,
    pub usage: EmbedUsage,
}

impl EmbedResponse {
    pub fn size(&self) -> usize {
        self.vectors.iter().map(Vector::size).sum::<usize>() + self.model.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<EmbedRequest, String> {
        EmbedRequest::parse(Bytes::from(v.to_string()))
    }

    #[test]
    fn the_four_input_shapes_parse() {
        let cases = [
            (
                serde_json::json!("hi"),
                EmbedInput::Texts(vec!["hi".into()]),
            ),
            (
                serde_json::json!(["a", "b"]),
                EmbedInput::Texts(vec!["a".into(), "b".into()]),
            ),
            (
                serde_json::json!([1, 2, 3]),
                EmbedInput::Tokens(vec![vec![1, 2, 3]]),
            ),
            (
                serde_json::json!([[1], [2, 3]]),
                EmbedInput::Tokens(vec![vec![1], vec![2, 3]]),
            ),
        ];
        for (input, want) in cases {
            let r = parse(serde_json::json!({"model": "e", "input": input})).unwrap();
            assert_eq!(r.input, want);
            assert_eq!(r.encoding_format, EncodingFormat::Float);
            assert_eq!(r.dimensions, None);
        }
        let r = parse(serde_json::json!({"model": "e", "input": "x",
            "encoding_format": "base64", "dimensions": 256, "user": "u"}))
        .unwrap();
        assert_eq!(
            (r.encoding_format, r.dimensions),
            (EncodingFormat::Base64, Some(256))
        );
        assert!(r.texts().is_ok());
        let t = parse(serde_json::json!({"model": "e", "input": [7]})).unwrap();
        assert!(t.texts().unwrap_err().contains("OpenAI-kind"));
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        let cases = [
            (serde_json::json!({"model": "e"}), "'input' is required"),
            (
                serde_json::json!({"model": "e", "input": null}),
                "'input' is required",
            ),
            (serde_json::json!({"model": "e", "input": []}), "empty list"),
            (
                serde_json::json!({"model": "e", "input": ""}),
                "empty string",
            ),
            (
                serde_json::json!({"model": "e", "input": ["a", ""]}),
                "empty string (item 1)",
            ),
            (
                serde_json::json!({"model": "e", "input": [[]]}),
                "empty token list",
            ),
            (
                serde_json::json!({"model": "e", "input": 5}),
                "must be a string",
            ),
            (
                serde_json::json!({"model": "e", "input": ["a", 1]}),
                "must be a string",
            ),
            (
                serde_json::json!({"model": "e", "input": [1, "a"]}),
                "token id",
            ),
            (serde_json::json!({"model": "e", "input": [-1]}), "token id"),
            (
                serde_json::json!({"model": "e", "input": [[1], 2]}),
                "must be a string",
            ),
            (
                serde_json::json!({"model": "e", "input": [{"text": "a"}]}),
                "must be a string",
            ),
            (serde_json::json!({"input": "a"}), "missing field `model`"),
            (
                serde_json::json!({"model": "e", "input": "a", "encoding_format": "int8"}),
                "encoding_format",
            ),
            (
                serde_json::json!({"model": "e", "input": "a", "dimensions": 0}),
                "at least 1",
            ),
            (
                serde_json::json!({"model": "e", "input": "a", "dimensions": "8"}),
                "invalid request body",
            ),
        ];
        for (body, want) in cases {
            let err = parse(body.clone()).unwrap_err();
            assert!(err.contains(want), "{body}: {err}");
        }
        let err = EmbedRequest::parse(Bytes::from_static(b"{not json")).unwrap_err();
        assert!(err.contains("not valid JSON"), "{err}");
    }
}
