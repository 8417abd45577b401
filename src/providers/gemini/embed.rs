//! Embeddings: `POST {base_url}/v1beta/models/{model}:batchEmbedContents`, one
//! `EmbedContentRequest` per input text — the body google-genai's `embed_content`
//! sends to the Gemini API. `dimensions` → `outputDimensionality`; `user` has no
//! place and is dropped; token-id input cannot be sent (Gemini has its own
//! tokenizer), so a Gemini target is skipped for it.
//!
//! The answer's `embeddings[i].values` are input i's vector, kept as written when the
//! client asked for floats. Gemini does not name the model that answered, so the
//! answer carries the target's; usage is `usageMetadata.promptTokenCount` when Gemini
//! reports it, else 0.

use serde::{Deserialize, Serialize};

use super::model_name;
use crate::canonical::EmbedRequest;
use crate::providers::vectors::{Numbers, NumbersWire, Parts};
use crate::providers::AdapterError;

#[derive(Serialize)]
struct Batch<'a> {
    requests: Vec<One<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct One<'a> {
    model: &'a str,
    content: Content<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimensionality: Option<u32>,
}

#[derive(Serialize)]
struct Content<'a> {
    parts: [Part<'a>; 1],
    role: &'static str,
}

#[derive(Serialize)]
struct Part<'a> {
    text: &'a str,
}

pub(super) fn request(req: &EmbedRequest, model: &str) -> Result<Vec<u8>, AdapterError> {
    let texts = req.texts().map_err(AdapterError::InvalidRequest)?;
    let name = model_name(model);
    let batch = Batch {
        requests: texts
            .iter()
            .map(|text| One {
                model: &name,
                content: Content {
                    parts: [Part { text }],
                    role: "user",
                },
                output_dimensionality: req.dimensions,
            })
            .collect(),
    };
    serde_json::to_vec(&batch)
        .map_err(|e| AdapterError::InvalidRequest(format!("request body: {e}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Answer<V> {
    #[serde(default = "Vec::new")]
    embeddings: Vec<Embedding<V>>,
    #[serde(default)]
    usage_metadata: Option<Usage>,
}

#[derive(Deserialize)]
struct Embedding<V> {
    values: V,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Usage {
    #[serde(default)]
    prompt_token_count: u64,
}

/// The Gemini answer, read by [`crate::providers::vectors::numbers_answer`].
pub(super) struct Wire;

impl NumbersWire for Wire {
    type Answer<V: Numbers> = Answer<V>;
    const WHAT: &'static str = "batchEmbedContents answer";

    fn parts<V: Numbers>(answer: Answer<V>) -> Parts<V> {
        Parts {
            model: None,
            vectors: answer.embeddings.into_iter().map(|e| e.values).collect(),
            prompt_tokens: answer.usage_metadata.map_or(0, |u| u.prompt_token_count),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::canonical::{EmbedUsage, Vector};
    use crate::providers::gemini::ADAPTER;
    use crate::providers::testing::{embed_request as req, fixture, target_with};
    use crate::providers::{Adapter, Kind, Target};

    fn embed_target() -> Target {
        target_with(
            Kind::Gemini,
            "http://127.0.0.1:9",
            "gemini-embedding-001",
            |_| {},
        )
    }

    #[test]
    fn texts_become_one_request_each_as_the_sdk_sends_them() {
        let r = req(&fixture("gemini/embed_request.openai.json"));
        let out = ADAPTER.build_embeddings(&r, &embed_target()).unwrap();
        assert_eq!(
            out.uri(),
            "http://127.0.0.1:9/v1beta/models/gemini-embedding-001:batchEmbedContents"
        );
        assert_eq!(out.headers()["x-goog-api-key"], "sk-secret");
        let body: Value = serde_json::from_slice(out.body()).unwrap();
        let want: Value =
            serde_json::from_str(&fixture("gemini/embed_request.gemini.json")).unwrap();
        assert_eq!(body, want);

        let plain = request(&req(r#"{"model":"m","input":"x"}"#), "models/e").unwrap();
        let plain: Value = serde_json::from_slice(&plain).unwrap();
        assert_eq!(plain["requests"][0]["model"], "models/e");
        assert!(plain["requests"][0].get("outputDimensionality").is_none());
    }

    #[test]
    fn token_ids_cannot_be_sent() {
        let r = req(r#"{"model":"m","input":[[1,2]]}"#);
        let err = ADAPTER.build_embeddings(&r, &embed_target()).unwrap_err();
        assert!(
            matches!(&err, AdapterError::InvalidRequest(m) if m.contains("token")),
            "{err}"
        );
    }

    #[test]
    fn values_become_vectors_in_order_with_the_targets_model() {
        let r = req(&fixture("gemini/embed_request.openai.json"));
        let a = ADAPTER
            .parse_embeddings(
                &r,
                &embed_target(),
                fixture("gemini/embed_response.json").as_bytes(),
            )
            .unwrap();
        assert_eq!(a.model, "gemini-embedding-001");
        assert_eq!(a.usage, EmbedUsage::of_prompt(13));
        let floats: Vec<&Vec<f64>> = a
            .vectors
            .iter()
            .map(|v| match v {
                Vector::Floats(f) => f,
                Vector::Raw(_) => panic!("raw"),
            })
            .collect();
        assert_eq!(floats[0], &vec![0.013168523, -0.008711934, -0.046782676]);
        assert_eq!(floats[1], &vec![-0.02094339, 0.0031240203, 0.0125]);
        let float = req(r#"{"model":"m","input":["a","b"]}"#);
        let a = ADAPTER
            .parse_embeddings(
                &float,
                &embed_target(),
                fixture("gemini/embed_response.json").as_bytes(),
            )
            .unwrap();
        assert!(
            matches!(&a.vectors[0], Vector::Raw(v) if v.get() == "[0.013168523, -0.008711934, -0.046782676]"),
            "floats asked: kept as written"
        );

        let no_usage = br#"{"embeddings":[{"values":[1]},{"values":[2]}]}"#;
        assert_eq!(
            ADAPTER
                .parse_embeddings(&r, &embed_target(), no_usage)
                .unwrap()
                .usage,
            EmbedUsage::default()
        );
        for bad in [
            &br#"{"embeddings":[{"values":[1]}]}"#[..],
            br#"{"embeddings":[{"values":[1]},{"values":[]}]}"#,
            br#"{"embeddings":[{"values":[1]},{"values":["x"]}]}"#,
            br#"{}"#,
        ] {
            assert!(matches!(
                ADAPTER.parse_embeddings(&r, &embed_target(), bad),
                Err(AdapterError::Protocol(_))
            ));
        }
    }
}
