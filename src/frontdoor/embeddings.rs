//! `POST /v1/embeddings`: OpenAI's embeddings API. Its body is the canonical
//! embeddings request, so reading it is validation; the answer is OpenAI's list shape
//! with each vector written as the client asked — numbers, or the base64 of their
//! little-endian `f32`s, which is what OpenAI sends and the openai SDKs decode.
//! Errors are chat completions' (OpenAI's shape).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::ser::{Serialize, Serializer};

use crate::canonical::{EmbedResponse, EncodingFormat, Vector};

/// The answer as OpenAI's `CreateEmbeddingResponse` JSON.
pub fn render(answer: &EmbedResponse, format: EncodingFormat) -> Vec<u8> {
    let list = List {
        object: "list",
        data: answer
            .vectors
            .iter()
            .enumerate()
            .map(|(index, vector)| Item {
                object: "embedding",
                index,
                embedding: Written(vector, format),
            })
            .collect(),
        model: &answer.model,
        usage: Usage {
            prompt_tokens: answer.usage.prompt_tokens,
            total_tokens: answer.usage.total_tokens,
        },
    };
    // Sized up front: a large answer is not copied again as the buffer grows.
    let mut out = Vec::with_capacity(answer.size() + 64 * answer.vectors.len() + 128);
    // Serialising our own types into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, &list);
    out
}

#[derive(serde::Serialize)]
struct List<'a> {
    object: &'static str,
    data: Vec<Item<'a>>,
    model: &'a str,
    usage: Usage,
}

#[derive(serde::Serialize)]
struct Item<'a> {
    object: &'static str,
    index: usize,
    embedding: Written<'a>,
}

#[derive(serde::Serialize)]
struct Usage {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// One vector in the client's format. An upstream's own text is already in it.
struct Written<'a>(&'a Vector, EncodingFormat);

impl Serialize for Written<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (self.0, self.1) {
            (Vector::Raw(raw), _) => raw.serialize(s),
            (Vector::Floats(v), EncodingFormat::Float) => v.serialize(s),
            (Vector::Floats(v), EncodingFormat::Base64) => {
                // Vectors are f32 at every provider; base64 carries exactly those.
                let bytes: Vec<u8> = v.iter().flat_map(|f| (*f as f32).to_le_bytes()).collect();
                s.serialize_str(&STANDARD.encode(bytes))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, value::RawValue, Value};

    use super::*;
    use crate::canonical::EmbedUsage;

    fn answer(vectors: Vec<Vector>) -> EmbedResponse {
        EmbedResponse {
            model: "text-embedding-3-small".into(),
            vectors,
            usage: EmbedUsage::of_prompt(5),
        }
    }

    #[test]
    fn floats_render_as_openais_list_in_input_order() {
        let a = answer(vec![
            Vector::Floats(vec![0.5, -0.25]),
            Vector::Raw(RawValue::from_string("[1.0e-3,2]".into()).unwrap()),
        ]);
        let out: Value = serde_json::from_slice(&render(&a, EncodingFormat::Float)).unwrap();
        assert_eq!(
            out,
            json!({"object": "list", "model": "text-embedding-3-small",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -0.25]},
                         {"object": "embedding", "index": 1, "embedding": [0.001, 2]}],
                "usage": {"prompt_tokens": 5, "total_tokens": 5}})
        );
    }

    #[test]
    fn base64_is_little_endian_f32_as_openai_sends_it() {
        let a = answer(vec![Vector::Floats(vec![1.0, -2.5, 0.1])]);
        let out: Value = serde_json::from_slice(&render(&a, EncodingFormat::Base64)).unwrap();
        let text = out["data"][0]["embedding"].as_str().unwrap();
        let bytes = STANDARD.decode(text).unwrap();
        let floats: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(floats, vec![1.0, -2.5, 0.1f32]);
        // 1.0f32 is 00 00 80 3f
        assert!(text.starts_with("AACAPw"), "{text}");
    }
}
