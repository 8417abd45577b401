//! Embeddings on the OpenAI wire (OpenAI, Azure, compatible servers). The client's
//! body goes up with only `model` swapped, so `encoding_format`, `dimensions`, token
//! ids and fields the proxy does not know all reach the provider. The answer's
//! vectors are placed by `index` and read by [`vector`]: kept as written when they
//! are in the format the client asked for, converted when a compatible server
//! ignored `encoding_format`.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::vectors::{one_vector_per_input, parse_answer, vector};
use super::{reported_model, AdapterError, Target};
use crate::canonical::{EmbedRequest, EmbedResponse, EmbedUsage, Vector};

/// The client's body with `model` replaced by the target's.
pub(super) fn body(req: &EmbedRequest, model: &str) -> Result<Vec<u8>, AdapterError> {
    super::native::with_model(&req.raw, model)
}

/// OpenAI's `CreateEmbeddingResponse`.
#[derive(Deserialize)]
struct Answer {
    data: Vec<Item>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Item {
    index: usize,
    embedding: Box<RawValue>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    total_tokens: u64,
}

pub(super) fn parse(
    req: &EmbedRequest,
    target: &Target,
    body: &[u8],
) -> Result<EmbedResponse, AdapterError> {
    let answer: Answer = parse_answer(body, "embeddings answer")?;
    one_vector_per_input(req, answer.data.len())?;
    // Placed by `index`, so the answer is in input order whatever order it came in.
    let mut slots: Vec<Option<Vector>> = (0..answer.data.len()).map(|_| None).collect();
    for item in answer.data {
        let slot = slots.get_mut(item.index).ok_or_else(|| {
            AdapterError::Protocol(format!("embedding index {} out of range", item.index))
        })?;
        if slot.is_some() {
            return Err(AdapterError::Protocol(format!(
                "embedding index {} given twice",
                item.index
            )));
        }
        *slot = Some(vector(item.embedding, req.encoding_format)?);
    }
    let usage = answer
        .usage
        .map_or_else(EmbedUsage::default, |u| EmbedUsage {
            prompt_tokens: u.prompt_tokens,
            total_tokens: u.total_tokens,
        });
    Ok(EmbedResponse {
        model: reported_model(answer.model, target),
        // Every index in 0..n was filled exactly once.
        vectors: slots.into_iter().flatten().collect(),
        usage,
    })
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use bytes::Bytes;
    use serde_json::json;

    use super::*;
    use crate::providers::testing::target;
    use crate::providers::Kind;

    fn req(v: serde_json::Value) -> EmbedRequest {
        EmbedRequest::parse(Bytes::from(v.to_string())).unwrap()
    }

    fn b64(v: &[f32]) -> String {
        let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
        STANDARD.encode(bytes)
    }

    fn raw(v: &Vector) -> &str {
        match v {
            Vector::Raw(r) => r.get(),
            Vector::Floats(f) => panic!("expected raw, got floats {f:?}"),
        }
    }

    #[test]
    fn vectors_in_the_asked_format_stay_as_written_and_in_input_order() {
        let t = target(Kind::Openai, "http://x/v1");
        let r = req(json!({"model": "e", "input": ["a", "b"]}));
        let body = br#"{"object":"list","data":[
            {"object":"embedding","index":1,"embedding":[0.25, -1.5e-3]},
            {"object":"embedding","index":0,"embedding":[0.10000000149011612,2]}],
            "model":"text-embedding-3-small","usage":{"prompt_tokens":4,"total_tokens":4}}"#;
        let a = parse(&r, &t, body).unwrap();
        assert_eq!(a.model, "text-embedding-3-small");
        assert_eq!(raw(&a.vectors[0]), "[0.10000000149011612,2]");
        assert_eq!(raw(&a.vectors[1]), "[0.25, -1.5e-3]");
        assert_eq!(a.usage, EmbedUsage::of_prompt(4));

        let r = req(json!({"model": "e", "input": "a", "encoding_format": "base64"}));
        let s = b64(&[0.5, -2.0]);
        let body = json!({"data": [{"index": 0, "embedding": s}], "model": ""}).to_string();
        let a = parse(&r, &t, body.as_bytes()).unwrap();
        assert_eq!(raw(&a.vectors[0]), format!("\"{s}\""));
        assert_eq!(a.model, "gpt-4o", "no model reported: the target's");
        assert_eq!(a.usage, EmbedUsage::default());
    }

    #[test]
    fn the_recorded_answers_read_the_same_in_either_format() {
        let fixture = |name: &str| {
            let path = format!("{}/fixtures/openai/{name}", env!("CARGO_MANIFEST_DIR"));
            std::fs::read(path).unwrap()
        };
        let t = target(Kind::Openai, "http://x/v1");
        let float = req(json!({"model": "e", "input": ["a", "b"]}));
        let a = parse(&float, &t, &fixture("embeddings_float.json")).unwrap();
        let floats: Vec<Vec<f64>> = a
            .vectors
            .iter()
            .map(|v| serde_json::from_str(raw(v)).unwrap())
            .collect();
        assert_eq!(
            (a.model.as_str(), a.usage.total_tokens),
            ("text-embedding-3-small", 8)
        );
        let b64 = req(json!({"model": "e", "input": ["a", "b"], "encoding_format": "base64"}));
        let a = parse(&b64, &t, &fixture("embeddings_base64.json")).unwrap();
        for (v, want) in a.vectors.iter().zip(&floats) {
            let text: String = serde_json::from_str(raw(v)).unwrap();
            let bytes = STANDARD.decode(text).unwrap();
            let got: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            let want: Vec<f32> = want.iter().map(|f| *f as f32).collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn a_server_that_ignored_encoding_format_is_converted() {
        let t = target(Kind::Openai, "http://x/v1");
        let asked_b64 = req(json!({"model": "e", "input": "a", "encoding_format": "base64"}));
        let body = br#"{"data":[{"index":0,"embedding":[0.5,-2]}],"model":"m"}"#;
        let a = parse(&asked_b64, &t, body).unwrap();
        assert!(matches!(&a.vectors[0], Vector::Floats(f) if f == &[0.5, -2.0]));

        let asked_float = req(json!({"model": "e", "input": "a"}));
        let body = json!({"data": [{"index": 0, "embedding": b64(&[0.1, 3.0])}], "model": "m"});
        let a = parse(&asked_float, &t, body.to_string().as_bytes()).unwrap();
        assert!(
            matches!(&a.vectors[0], Vector::Floats(f) if f == &[f64::from(0.1f32), 3.0]),
            "{:?}",
            a.vectors
        );
    }

    #[test]
    fn answers_that_do_not_answer_this_request_are_protocol_errors() {
        let t = target(Kind::Openai, "http://x/v1");
        let two = req(json!({"model": "e", "input": ["a", "b"]}));
        let b64 = req(json!({"model": "e", "input": "a", "encoding_format": "base64"}));
        let one = req(json!({"model": "e", "input": "a"}));
        let cases: [(&EmbedRequest, &str); 9] = [
            (&two, r#"{"data":[{"index":0,"embedding":[1]}]}"#),
            (
                &two,
                r#"{"data":[{"index":0,"embedding":[1]},{"index":0,"embedding":[2]}]}"#,
            ),
            (
                &two,
                r#"{"data":[{"index":0,"embedding":[1]},{"index":2,"embedding":[2]}]}"#,
            ),
            (&one, r#"{"data":[{"index":0,"embedding":["x"]}]}"#),
            (&one, r#"{"data":[{"index":0,"embedding":[[1]]}]}"#),
            (&one, r#"{"data":[{"index":0,"embedding":[]}]}"#),
            (&b64, r#"{"data":[{"index":0,"embedding":"not base64!"}]}"#),
            (&one, r#"{"data":[{"index":0,"embedding":{"a":1}}]}"#),
            (&one, r#"{"error":{"message":"x"}}"#),
        ];
        for (r, body) in cases {
            assert!(
                matches!(
                    parse(r, &t, body.as_bytes()),
                    Err(AdapterError::Protocol(_))
                ),
                "{body}"
            );
        }
    }
}
