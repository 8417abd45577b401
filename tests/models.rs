//! `/v1/models` and `/v1/models/{id}`: what the SDKs' `models.list()` and
//! `models.retrieve()` see.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use common::*;
use common::{openai_config as config, UPSTREAM_KEY as KEY};

#[tokio::test]
async fn a_route_model_is_retrieved_and_anything_else_is_a_404_in_openais_shape() {
    let a = Mock::start().await;
    let toml = config(&[("a", a.url())], "")
        + "\n[[routes]]\nmodel = \"team/fast:v2\"\ntargets = [\"a/m\"]\n[[routes]]\nmodel = \"*\"\ntargets = [\"a/m\"]\n";
    let p = Proxy::start(&toml, &[KEY]).await;
    let list = get(&p.url("/v1/models")).await.json();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["default", "team/fast:v2"], "never \"*\"");

    let r = get(&p.url("/v1/models/default")).await;
    assert_eq!(r.status, 200);
    let m = r.json();
    assert_eq!(m["id"], "default");
    assert_eq!(m["object"], "model");
    assert_eq!(m["owned_by"], "understudy");
    assert!(m["created"].as_u64().unwrap() > 1_700_000_000);
    // ids with `/` and `:`, raw or percent-encoded as the SDKs send them
    for path in ["/v1/models/team/fast:v2", "/v1/models/team%2Ffast%3Av2"] {
        let r = get(&p.url(path)).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.json()["id"], "team/fast:v2");
    }
    for missing in ["nope", "*", "%2A"] {
        let r = get(&p.url(&format!("/v1/models/{missing}"))).await;
        assert_eq!(r.status, 404, "{missing}");
        assert_eq!(r.error_code(), "model_not_found");
        assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    }
    let r = send(&p.url("/v1/models/default"), "DELETE", &[], "").await;
    assert_eq!(r.status, 405);
    assert_eq!(a.count(), 0);
}

#[tokio::test]
async fn the_openai_sdk_retrieves_a_route_model() {
    let a = Mock::start().await;
    let p = Proxy::start(&config(&[("a", a.url())], ""), &[KEY]).await;
    let script = format!(
        "import openai\nc = openai.OpenAI(base_url='{}', api_key='x')\nm = c.models.retrieve('default')\nprint(m.id, m.object)\ntry:\n    c.models.retrieve('nope')\nexcept openai.NotFoundError as e:\n    print('404', e.code)\n",
        p.url("/v1")
    );
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(sdk_python())
            .args(["-c", &script])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "default model\n404 model_not_found\n");
}
