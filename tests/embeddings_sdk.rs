//! The official `openai` Python SDK's `embeddings.create` pointed at the proxy, with
//! an OpenAI, an Azure, a Gemini and an Ollama mock behind it: float and base64
//! answers (asked explicitly, and the SDK's own default, which asks base64 and
//! decodes it), `dimensions`, a string and a list of strings — each answer validated
//! against the SDK's `CreateEmbeddingResponse`, its vectors compared with the mock's.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;
mod embeddings_common;

use common::*;
use embeddings_common::*;
use serde_json::{json, Value};

/// How the client asks for its vectors.
#[derive(Clone, Copy, Debug)]
enum Asked {
    Float,
    Base64,
    /// No `encoding_format`: the SDK sends base64 and decodes it itself.
    SdkDefault,
}

/// One `embeddings.create` call: what it sends, what the mock answers, what the SDK
/// must hand back.
struct Case {
    asked: Asked,
    input: Value,
    dims: Option<u32>,
}

fn cases() -> Vec<Case> {
    let two = json!(["alpha", "beta"]);
    vec![
        Case {
            asked: Asked::Float,
            input: two.clone(),
            dims: None,
        },
        Case {
            asked: Asked::Base64,
            input: two.clone(),
            dims: None,
        },
        Case {
            asked: Asked::SdkDefault,
            input: two,
            dims: None,
        },
        Case {
            asked: Asked::Float,
            input: json!("alpha"),
            dims: Some(2),
        },
    ]
}

impl Case {
    fn inputs(&self) -> usize {
        self.input.as_array().map_or(1, Vec::len)
    }

    fn vectors(&self) -> Vec<Vec<f64>> {
        vectors(self.inputs(), self.dims.map_or(3, |d| d as usize))
    }

    fn upstream_base64(&self) -> bool {
        !matches!(self.asked, Asked::Float)
    }

    fn request(&self, model: &str) -> Value {
        let mut r = json!({"model": model, "input": self.input});
        match self.asked {
            Asked::Float => r["encoding_format"] = json!("float"),
            Asked::Base64 => r["encoding_format"] = json!("base64"),
            Asked::SdkDefault => {}
        }
        if let Some(d) = self.dims {
            r["dimensions"] = json!(d);
        }
        r
    }
}

#[tokio::test]
async fn the_sdk_embeds_through_every_kind_that_has_embeddings() {
    let (oa, az, gm, ol) = (
        Mock::start().await,
        Mock::start().await,
        Mock::start().await,
        Mock::start().await,
    );
    let p = proxy(
        "",
        &[
            provider("oa", "openai", &oa),
            provider("az", "azure", &az),
            provider("gm", "gemini", &gm),
            provider("ol", "ollama", &ol),
            route("emb-openai", &["oa/text-embedding-3-small"]),
            route("emb-azure", &["az/embed-deploy"]),
            route("emb-gemini", &["gm/gemini-embedding-001"]),
            route("emb-ollama", &["ol/nomic-embed-text"]),
        ]
        .concat(),
    )
    .await;
    let kinds = [
        ("emb-openai", "oa", "text-embedding-3-small", &oa),
        ("emb-azure", "az", "embed-deploy", &az),
        ("emb-gemini", "gm", "gemini-embedding-001", &gm),
        ("emb-ollama", "ol", "nomic-embed-text", &ol),
    ];
    let mut scenarios = Vec::new();
    for (route, provider, _, mock) in kinds {
        for c in cases() {
            let v = c.vectors();
            mock.push(match provider {
                "oa" | "az" => openai_answer("text-embedding-3-small", &v, c.upstream_base64(), 3),
                "gm" => gemini_answer(&v, 3),
                _ => ollama_answer("nomic-embed-text", &v, 3),
            });
            scenarios.push(json!({"request": c.request(route)}));
        }
    }
    let results = embeddings_sdk(&p, json!(scenarios)).await;

    let mut i = 0;
    for (_, provider, model, _) in kinds {
        for c in cases() {
            let r = &results[i];
            i += 1;
            let what = format!("{provider} {:?} dims {:?}", c.asked, c.dims);
            assert_eq!(r["ok"], true, "{what}: {r}");
            assert_eq!(r["object"], "list");
            assert_eq!(r["headers"]["x-understudy-provider"], provider, "{what}");
            assert_eq!(r["headers"]["x-understudy-model"], model, "{what}");
            assert_eq!(r["headers"]["x-understudy-attempts"], "1", "{what}");
            let want_model = match provider {
                "gm" => "gemini-embedding-001", // Gemini names no model: the target's
                "ol" => "nomic-embed-text",
                _ => "text-embedding-3-small", // what the upstream reported
            };
            assert_eq!(r["model"], want_model, "{what}");
            assert_eq!(
                r["usage"],
                json!({"prompt_tokens": 3, "total_tokens": 3}),
                "{what}"
            );
            let n = c.inputs();
            assert_eq!(r["indices"], json!((0..n).collect::<Vec<_>>()), "{what}");
            assert!(r["objects"]
                .as_array()
                .unwrap()
                .iter()
                .all(|o| o == "embedding"));
            let want = match c.asked {
                Asked::Float => c.vectors(),
                Asked::Base64 | Asked::SdkDefault => as_f32(&c.vectors()),
            };
            assert_eq!(got_vectors(r), want, "{what}");
            let strings = matches!(c.asked, Asked::Base64);
            assert_eq!(r["base64_strings"], json!(vec![strings; n]), "{what}");
        }
    }

    // What each upstream was sent, in its own wire format.
    for (k, got) in oa.received().iter().enumerate() {
        let c = &cases()[k];
        assert_eq!(got.path, "/v1/embeddings");
        assert_eq!(got.headers["authorization"], "Bearer sk-upstream-secret");
        let body = got.json();
        assert_eq!(body["model"], "text-embedding-3-small");
        assert_eq!(body["input"], c.input);
        let format = if c.upstream_base64() {
            "base64"
        } else {
            "float"
        };
        assert_eq!(body["encoding_format"], format, "passed through");
        assert_eq!(body.get("dimensions"), c.dims.map(|d| json!(d)).as_ref());
    }
    for (k, got) in az.received().iter().enumerate() {
        let c = &cases()[k];
        assert_eq!(
            got.path,
            "/openai/deployments/embed-deploy/embeddings?api-version=2024-10-21"
        );
        assert_eq!(got.headers["api-key"], "sk-upstream-secret");
        assert!(!got.headers.contains_key("authorization"));
        assert_eq!(got.json()["input"], c.input);
        assert_eq!(
            got.json().get("dimensions"),
            c.dims.map(|d| json!(d)).as_ref()
        );
    }
    for (k, got) in gm.received().iter().enumerate() {
        let c = &cases()[k];
        assert_eq!(
            got.path,
            "/v1beta/models/gemini-embedding-001:batchEmbedContents"
        );
        assert_eq!(got.headers["x-goog-api-key"], "sk-upstream-secret");
        let body = got.json();
        let requests = body["requests"].as_array().unwrap();
        assert_eq!(requests.len(), c.inputs());
        let texts: Vec<&Value> = requests
            .iter()
            .map(|r| &r["content"]["parts"][0]["text"])
            .collect();
        assert_eq!(texts[0], "alpha");
        for r in requests {
            assert_eq!(r["model"], "models/gemini-embedding-001");
            assert_eq!(
                r.get("outputDimensionality"),
                c.dims.map(|d| json!(d)).as_ref()
            );
        }
    }
    for (k, got) in ol.received().iter().enumerate() {
        let c = &cases()[k];
        assert_eq!(got.path, "/api/embed");
        assert!(!got.headers.contains_key("authorization"));
        let body = got.json();
        assert_eq!(body["model"], "nomic-embed-text");
        let input = if c.input.is_string() {
            json!([c.input])
        } else {
            c.input.clone()
        };
        assert_eq!(body["input"], input);
        assert_eq!(body.get("dimensions"), c.dims.map(|d| json!(d)).as_ref());
    }
    assert_eq!(
        (oa.count(), az.count(), gm.count(), ol.count()),
        (4, 4, 4, 4)
    );
}

#[tokio::test]
async fn the_sdk_sees_a_failover_from_openai_to_azure_on_a_429() {
    let (oa, az) = (Mock::start().await, Mock::start().await);
    let p = proxy(
        "",
        &[
            provider("oa", "openai", &oa),
            provider("az", "azure", &az),
            route(
                "docs",
                &["oa/text-embedding-3-small", "az/text-embedding-3-small"],
            ),
        ]
        .concat(),
    )
    .await;
    oa.push(
        Reply::json(
            429,
            r#"{"error":{"message":"Rate limit reached for text-embedding-3-small","type":"requests","code":"rate_limit_exceeded"}}"#,
        )
        .header("retry-after", "20"),
    );
    let v = vectors(2, 3);
    az.push(openai_answer("text-embedding-3-small", &v, true, 4));
    az.push(openai_answer("text-embedding-3-small", &v, true, 4));
    let req = json!({"request": {"model": "docs", "input": ["alpha", "beta"]}});
    let results = embeddings_sdk(&p, json!([req, req])).await;
    for (n, r) in results.iter().enumerate() {
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["headers"]["x-understudy-provider"], "az");
        assert_eq!(r["headers"]["x-understudy-model"], "text-embedding-3-small");
        let attempts = if n == 0 { "2" } else { "1" };
        assert_eq!(
            r["headers"]["x-understudy-attempts"], attempts,
            "the second request skips the cooling lead: {r}"
        );
        assert_eq!(got_vectors(r), as_f32(&v));
    }
    assert_eq!((oa.count(), az.count()), (1, 2));
    let metrics = get(&p.url("/metrics")).await.text();
    assert!(
        metrics.contains(r#"understudy_attempts_total{provider="oa",outcome="rate_limited"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"understudy_failovers_total{route="docs"} 1"#),
        "{metrics}"
    );
    let status = get(&p.url("/status")).await.json();
    let cooling = &status["cooldowns"][0];
    assert_eq!(cooling["target"], "oa/text-embedding-3-small");
    assert!(cooling["seconds_left"].as_f64().unwrap() > 10.0, "{status}");
}
