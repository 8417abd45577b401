//! `POST /v1/embeddings` beyond the SDK's happy path: which targets are skipped
//! (no embeddings API, token ids a kind cannot take), bad bodies answered 400 in
//! OpenAI's shape without any upstream call, answers that fail over or are returned,
//! and the cache.
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
use serde_json::json;

#[tokio::test]
async fn a_kind_without_embeddings_is_skipped_and_alone_is_a_400() {
    let (an, oa) = (Mock::start().await, Mock::start().await);
    let p = proxy(
        "",
        &[
            provider("an", "anthropic", &an),
            provider("oa", "openai", &oa),
            route(
                "docs",
                &["an/claude-sonnet-4-5", "oa/text-embedding-3-small"],
            ),
            route("claude-only", &["an/claude-sonnet-4-5"]),
        ]
        .concat(),
    )
    .await;
    oa.push(openai_answer(
        "text-embedding-3-small",
        &vectors(1, 3),
        false,
        1,
    ));
    let r = embed(&p, json!({"model": "docs", "input": "alpha"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("oa"));
    assert_eq!(
        r.header("x-understudy-attempts"),
        Some("1"),
        "a skipped target is no attempt"
    );
    assert_eq!(r.json()["data"][0]["embedding"], json!(vectors(1, 3)[0]));

    let r = embed(&p, json!({"model": "claude-only", "input": "alpha"})).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "invalid_request");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("an/claude-sonnet-4-5: this provider kind has no embeddings API"),
        "{msg}"
    );
    assert_eq!(an.count(), 0, "anthropic never sees an embeddings request");
}

#[tokio::test]
async fn token_ids_go_only_to_openai_kind_targets() {
    let (gm, ol, az) = (
        Mock::start().await,
        Mock::start().await,
        Mock::start().await,
    );
    let p = proxy(
        "",
        &[
            provider("gm", "gemini", &gm),
            provider("ol", "ollama", &ol),
            provider("az", "azure", &az),
            route(
                "docs",
                &[
                    "gm/text-embedding-3-small",
                    "ol/text-embedding-3-small",
                    "az/text-embedding-3-small",
                ],
            ),
            route(
                "native",
                &["gm/gemini-embedding-001", "ol/nomic-embed-text"],
            ),
        ]
        .concat(),
    )
    .await;
    az.push(openai_answer(
        "text-embedding-3-small",
        &vectors(2, 3),
        false,
        5,
    ));
    let tokens = json!([[15339, 1917], [9906]]);
    let r = embed(&p, json!({"model": "docs", "input": tokens})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("az"));
    assert_eq!(r.header("x-understudy-attempts"), Some("1"));
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 2);
    assert_eq!(
        az.received()[0].json()["input"],
        tokens,
        "sent as they came"
    );
    assert_eq!((gm.count(), ol.count()), (0, 0));

    // With no OpenAI-kind target: 400 before any call, naming why each was skipped.
    let r = embed(&p, json!({"model": "native", "input": [1, 2, 3]})).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("gm/gemini-embedding-001: token-id input"),
        "{msg}"
    );
    assert!(msg.contains("ol/nomic-embed-text: token-id input"), "{msg}");
    assert_eq!((gm.count(), ol.count()), (0, 0));

    // Text still goes to the lead.
    gm.push(gemini_answer(&vectors(1, 3), 2));
    let r = embed(&p, json!({"model": "native", "input": ["alpha"]})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("gm"));
}

#[tokio::test]
async fn bad_bodies_are_400s_in_openais_shape_without_any_upstream_call() {
    let (oa, p) = openai_docs("").await;
    let cases = [
        (json!({"model": "docs"}), "'input' is required"),
        (json!({"model": "docs", "input": []}), "empty list"),
        (json!({"model": "docs", "input": ""}), "empty string"),
        (json!({"model": "docs", "input": 42}), "must be a string"),
        (
            json!({"model": "docs", "input": ["a", 1]}),
            "must be a string",
        ),
        (
            json!({"model": "docs", "input": [[1], []]}),
            "empty token list",
        ),
        (
            json!({"model": "docs", "input": "a", "encoding_format": "int8"}),
            "encoding_format",
        ),
        (
            json!({"model": "docs", "input": "a", "dimensions": -1}),
            "invalid request body",
        ),
        (json!({"input": "a"}), "missing field `model`"),
    ];
    for (body, want) in cases {
        let r = embed(&p, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        let e = &r.json()["error"];
        assert_eq!(e["type"], "invalid_request_error", "{body}");
        assert_eq!(e["code"], "invalid_request", "{body}");
        assert!(e["param"].is_null(), "{body}");
        assert!(e["message"].as_str().unwrap().contains(want), "{body}: {e}");
        assert!(r.header("x-request-id").is_some());
    }
    let auth = format!("Bearer {CLIENT_KEY}");
    let r = send(
        &p.url("/v1/embeddings"),
        "POST",
        &[("authorization", &auth)],
        "{not json",
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("not valid JSON"), "{}", r.text());

    let r = embed(&p, json!({"model": "nope", "input": "a"})).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "model_not_found")
    );
    let r = send(
        &p.url("/v1/embeddings"),
        "GET",
        &[("authorization", &auth)],
        "",
    )
    .await;
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    let r = send(
        &p.url("/v1/embeddings"),
        "POST",
        &[],
        json!({"model": "docs", "input": "a"}).to_string(),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (401, "invalid_api_key")
    );
    assert_eq!(oa.count(), 0);
}

#[tokio::test]
async fn a_malformed_answer_fails_over_and_a_refusal_is_returned() {
    let (gm, ol) = (Mock::start().await, Mock::start().await);
    let p = proxy(
        "",
        &[
            provider("gm", "gemini", &gm),
            provider("ol", "ollama", &ol),
            route("docs", &["gm/embeddinggemma", "ol/embeddinggemma"]),
        ]
        .concat(),
    )
    .await;
    // One vector for two inputs is not an answer to this request.
    gm.push(gemini_answer(&vectors(1, 3), 2));
    ol.push(ollama_answer("embeddinggemma", &vectors(2, 3), 6));
    let r = embed(&p, json!({"model": "docs", "input": ["alpha", "beta"]})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-understudy-provider"), Some("ol"));
    assert_eq!(r.header("x-understudy-attempts"), Some("2"));
    assert_eq!(r.json()["data"][1]["embedding"], json!(vectors(2, 3)[1]));
    assert_eq!(
        r.json()["usage"],
        json!({"prompt_tokens": 6, "total_tokens": 6})
    );

    // The provider refuses the request itself: the same request would fail everywhere.
    gm.push(Reply::json(
        400,
        r#"{"error":{"code":400,"message":"Request contains an invalid argument.","status":"INVALID_ARGUMENT"}}"#,
    ));
    let r = embed(
        &p,
        json!({"model": "docs", "input": "alpha", "dimensions": 99999}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("invalid argument"), "{}", r.text());
    assert_eq!(r.header("x-understudy-attempts"), Some("1"));
    assert_eq!((gm.count(), ol.count()), (2, 1));

    // Every target down: 502 listing each attempt.
    gm.push(Reply::json(
        503,
        r#"{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}"#,
    ));
    ol.push(Reply::json(
        500,
        r#"{"error":"llama runner process has terminated"}"#,
    ));
    let r = embed(&p, json!({"model": "docs", "input": "alpha"})).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.error_code(), "upstream_failed");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("gm/embeddinggemma") && msg.contains("ol/embeddinggemma"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_repeated_request_is_a_cache_hit_and_a_stale_one_stands_in_for_failures() {
    let (oa, p) = openai_docs("[cache]\nenabled = true\nttl = \"1h\"\n").await;
    let v = vectors(2, 4);
    oa.push(openai_answer("text-embedding-3-small", &v, true, 7));
    oa.push(openai_answer("text-embedding-3-small", &v, false, 7));
    let body = json!({"model": "docs", "input": ["alpha", "beta"], "encoding_format": "base64"});
    let first = embed(&p, body.clone()).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("x-understudy-cache"), Some("miss"));
    // Deterministic: cached without `temperature`, and `user` does not split the key.
    let mut again = body.clone();
    again["user"] = json!("someone-else");
    let second = embed(&p, again).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.header("x-understudy-cache"), Some("hit"));
    assert_eq!(second.header("x-understudy-attempts"), Some("0"));
    assert_eq!(second.header("x-understudy-provider"), Some("oa"));
    assert_eq!(
        second.header("x-understudy-model"),
        Some("text-embedding-3-small")
    );
    assert_eq!(second.json(), first.json(), "the same answer");
    assert_eq!(
        first.json()["data"][0]["embedding"],
        json!(b64(&v[0])),
        "base64 passed through as written"
    );
    assert_eq!(oa.count(), 1);

    // Another encoding is another entry: the answer is kept as it was asked.
    let mut float = body;
    float["encoding_format"] = json!("float");
    let third = embed(&p, float).await;
    assert_eq!(third.header("x-understudy-cache"), Some("miss"));
    assert_eq!(third.json()["data"][1]["embedding"], json!(v[1]));
    assert_eq!(oa.count(), 2);

    // Past ttl, with every target failing: the stale answer stands in.
    skip(std::time::Duration::from_secs(3601)).await;
    oa.always(Reply::json(
        500,
        r#"{"error":{"message":"down","type":"server_error"}}"#,
    ));
    let stale = embed(
        &p,
        json!({"model": "docs", "input": ["alpha", "beta"], "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(stale.status, 200, "{}", stale.text());
    assert_eq!(stale.header("x-understudy-cache"), Some("stale"));
    assert_eq!(stale.header("x-understudy-attempts"), Some("1"));
    assert_eq!(stale.json(), first.json());
    let metrics = get(&p.url("/metrics")).await.text();
    assert!(
        metrics.contains(r#"understudy_cache_total{result="hit"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"understudy_cache_total{result="stale"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"understudy_requests_total{route="docs",status="200",api="embeddings"} 4"#),
        "{metrics}"
    );
}
