//! Embeddings: native `POST {base_url}/api/embed` (`model`, `input` as a list of
//! texts, `dimensions` — the ollama SDK's `EmbedRequest`), answered with
//! `embeddings` in input order (kept as written when the client asked for floats),
//! the `model` and `prompt_eval_count` (the usage).
//! `user` is dropped; token-id input cannot be sent (each model has its own
//! tokenizer), so an Ollama target is skipped for it.

use serde::{Deserialize, Serialize};

use crate::canonical::EmbedRequest;
use crate::providers::vectors::{Numbers, NumbersWire, Parts};
use crate::providers::AdapterError;

#[derive(Serialize)]
struct Request<'a> {
    model: &'a str,
    input: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<u32>,
}

pub(super) fn request(req: &EmbedRequest, model: &str) -> Result<Vec<u8>, AdapterError> {
    let input = req.texts().map_err(AdapterError::InvalidRequest)?;
    serde_json::to_vec(&Request {
        model,
        input,
        dimensions: req.dimensions,
    })
    .map_err(|e| AdapterError::InvalidRequest(format!("request body: {e}")))
}

#[derive(Deserialize)]
pub(super) struct Answer<V> {
    #[serde(default)]
    model: Option<String>,
    embeddings: Vec<V>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
}

/// The Ollama answer, read by [`crate::providers::vectors::numbers_answer`].
pub(super) struct Wire;

impl NumbersWire for Wire {
    type Answer<V: Numbers> = Answer<V>;
    const WHAT: &'static str = "embed answer";

    fn parts<V: Numbers>(answer: Answer<V>) -> Parts<V> {
        Parts {
            model: answer.model,
            vectors: answer.embeddings,
            prompt_tokens: answer.prompt_eval_count.unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::canonical::{EmbedUsage, Vector};
    use crate::providers::ollama::tests::local;
    use crate::providers::ollama::ADAPTER;
    use crate::providers::testing::{embed_request as req, fixture};
    use crate::providers::Adapter;

    #[test]
    fn texts_go_to_api_embed_as_a_list_with_dimensions() {
        let t = local("nomic-embed-text");
        let pair: Value = serde_json::from_str(&fixture("ollama/embed_request.json")).unwrap();
        let r = req(&pair["openai"].to_string());
        let out = ADAPTER.build_embeddings(&r, &t).unwrap();
        assert_eq!(out.uri(), "http://127.0.0.1:11434/api/embed");
        assert!(out.headers().get("authorization").is_none());
        let body: Value = serde_json::from_slice(out.body()).unwrap();
        assert_eq!(body, pair["ollama"]);

        let one: Value = serde_json::from_slice(
            &request(&req(r#"{"model":"m","input":"x"}"#), "all-minilm").unwrap(),
        )
        .unwrap();
        assert_eq!(
            one,
            serde_json::json!({"model": "all-minilm", "input": ["x"]})
        );
        let tokens = ADAPTER.build_embeddings(&req(r#"{"model":"m","input":[1,2]}"#), &t);
        assert!(matches!(tokens, Err(AdapterError::InvalidRequest(_))));
    }

    #[test]
    fn embeddings_become_vectors_with_prompt_eval_count_as_usage() {
        let t = local("nomic-embed-text:latest");
        let r = req(r#"{"model":"docs","input":["a","b"]}"#);
        let a = ADAPTER
            .parse_embeddings(&r, &t, fixture("ollama/embed_response.json").as_bytes())
            .unwrap();
        assert_eq!(a.model, "nomic-embed-text");
        assert_eq!(a.usage, EmbedUsage::of_prompt(16));
        assert!(
            matches!(&a.vectors[1], Vector::Raw(v) if v.get() == "[-0.0098027075, 0.06042469, 0.025257962]"),
            "floats asked: kept as written"
        );
        let b64 = req(r#"{"model":"docs","input":["a","b"],"encoding_format":"base64"}"#);
        let a = ADAPTER
            .parse_embeddings(&b64, &t, fixture("ollama/embed_response.json").as_bytes())
            .unwrap();
        assert!(
            matches!(&a.vectors[1], Vector::Floats(f) if f == &[-0.0098027075, 0.06042469, 0.025257962]),
            "base64 asked: read, for the front door to encode"
        );
        let bare = br#"{"embeddings":[[1],[2]]}"#;
        let a = ADAPTER.parse_embeddings(&r, &t, bare).unwrap();
        assert_eq!(
            (a.model.as_str(), a.usage),
            ("nomic-embed-text:latest", EmbedUsage::default())
        );
        for bad in [
            &br#"{"embeddings":[[1]]}"#[..],
            br#"{"embeddings":[[1],[]]}"#,
            br#"{"error":"model not found"}"#,
        ] {
            assert!(matches!(
                ADAPTER.parse_embeddings(&r, &t, bad),
                Err(AdapterError::Protocol(_))
            ));
        }
    }
}
