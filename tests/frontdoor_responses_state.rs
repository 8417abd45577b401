//! The proxy's Responses store (DESIGN §7): `GET /v1/responses/{id}`,
//! `DELETE /v1/responses/{id}`, `GET /v1/responses/{id}/input_items` in OpenAI's list
//! shape with `order` / `after` / `limit`, `store: false`, and continuing a deleted
//! response. One OpenAI-kind mock upstream.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;
mod responses_common;

use common::*;
use responses_common::*;
use serde_json::{json, Value};

/// The text of an input item (a message with text parts).
fn item_text(item: &Value) -> String {
    item["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["text"].as_str())
        .collect()
}

fn texts(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .expect("data array")
        .iter()
        .map(item_text)
        .collect()
}

/// Checks OpenAI's list shape and returns the page.
fn list_page(r: &Resp) -> Value {
    assert_eq!(r.status, 200, "{}", r.text());
    let b = r.json();
    assert_eq!(b["object"], "list", "{b}");
    let data = b["data"].as_array().expect("data");
    assert!(b["has_more"].is_boolean(), "{b}");
    if let (Some(first), Some(last)) = (data.first(), data.last()) {
        assert_eq!(b["first_id"], first["id"], "{b}");
        assert_eq!(b["last_id"], last["id"], "{b}");
    }
    for item in data {
        assert!(
            item["id"].as_str().is_some_and(|s| !s.is_empty()),
            "every item has an id: {item}"
        );
    }
    b
}

/// Creates a stored response over three input messages (user, assistant, user).
async fn stored(p: &Proxy, m: &Mock) -> Value {
    m.push(Reply::json(200, completion(GPT, "four")));
    let r = create(
        p,
        &json!({"model": "default", "input": [
            {"role": "user", "content": "one"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "two"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "three"}]}
        ]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[tokio::test]
async fn a_stored_response_can_be_retrieved_listed_and_deleted() {
    let m = Mock::start().await;
    let p = openai_proxy(&m).await;
    let created = stored(&p, &m).await;
    let id = created["id"].as_str().unwrap();

    let got = call(&p, "GET", &format!("/v1/responses/{id}")).await;
    assert_eq!(got.status, 200, "{}", got.text());
    let g = got.json();
    for k in [
        "id",
        "object",
        "created_at",
        "status",
        "model",
        "output",
        "usage",
    ] {
        assert_eq!(g[k], created[k], "GET returns the stored {k}");
    }
    assert_eq!(output_text(&g), "four");

    // default order: desc (OpenAI's default), newest input item first
    let all = list_page(&call(&p, "GET", &format!("/v1/responses/{id}/input_items")).await);
    assert_eq!(texts(&all), ["three", "two", "one"], "{all}");
    assert_eq!(all["has_more"], false);
    let data = all["data"].as_array().unwrap();
    for item in data {
        assert_eq!(item["type"], "message", "{item}");
    }
    let assistant = &data[1];
    assert_eq!(assistant["role"], "assistant");
    assert_eq!(
        assistant["content"][0]["type"], "output_text",
        "assistant turns are listed as output messages: {assistant}"
    );
    assert_eq!(data[0]["role"], "user");
    assert_eq!(data[0]["content"][0]["type"], "input_text", "{}", data[0]);

    // asc, two at a time
    let page1 = list_page(
        &call(
            &p,
            "GET",
            &format!("/v1/responses/{id}/input_items?order=asc&limit=2"),
        )
        .await,
    );
    assert_eq!(texts(&page1), ["one", "two"], "{page1}");
    assert_eq!(page1["has_more"], true, "{page1}");
    let after = page1["last_id"].as_str().unwrap();
    let page2 = list_page(
        &call(
            &p,
            "GET",
            &format!("/v1/responses/{id}/input_items?order=asc&limit=2&after={after}"),
        )
        .await,
    );
    assert_eq!(texts(&page2), ["three"], "{page2}");
    assert_eq!(page2["has_more"], false, "{page2}");

    let del = call(&p, "DELETE", &format!("/v1/responses/{id}")).await;
    assert_eq!(del.status, 200, "{}", del.text());
    assert_eq!(
        del.json(),
        json!({"id": id, "object": "response.deleted", "deleted": true})
    );
    for path in [
        format!("/v1/responses/{id}"),
        format!("/v1/responses/{id}/input_items"),
    ] {
        let r = call(&p, "GET", &path).await;
        assert_eq!(r.status, 404, "GET {path} after delete: {}", r.text());
        assert_eq!(r.json()["error"]["code"], "not_found", "{}", r.text());
    }
    let again = call(&p, "DELETE", &format!("/v1/responses/{id}")).await;
    assert_eq!(again.status, 404, "a second delete: {}", again.text());

    let cont = create(
        &p,
        &json!({"model": "default", "input": "five", "previous_response_id": id}),
    )
    .await;
    assert_eq!(
        cont.status,
        400,
        "continuing a deleted response: {}",
        cont.text()
    );
    assert_eq!(cont.error_code(), "previous_response_not_found");
    assert_eq!(m.count(), 1, "no upstream call after the first");
}

#[tokio::test]
async fn unknown_ids_are_404_in_openai_shape() {
    let m = Mock::start().await;
    let p = openai_proxy(&m).await;
    for (method, path) in [
        ("GET", "/v1/responses/resp_nope"),
        ("DELETE", "/v1/responses/resp_nope"),
        ("GET", "/v1/responses/resp_nope/input_items"),
    ] {
        let r = call(&p, method, path).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text());
        let e = &r.json()["error"];
        assert_eq!(e["type"], "invalid_request_error", "{e}");
        assert_eq!(e["code"], "not_found", "{e}");
    }
    assert_eq!(m.count(), 0);
}

#[tokio::test]
async fn store_false_keeps_nothing() {
    let m = Mock::start().await;
    let p = openai_proxy(&m).await;
    m.push(Reply::json(200, completion(GPT, "ephemeral")));
    let r = create(
        &p,
        &json!({"model": "default", "input": "hi", "store": false}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let b = r.json();
    assert_eq!(b["store"], false, "store echoed: {b}");
    let id = b["id"].as_str().unwrap();
    assert!(id.starts_with("resp_"), "{id}");
    let got = call(&p, "GET", &format!("/v1/responses/{id}")).await;
    assert_eq!(got.status, 404, "{}", got.text());
    let cont = create(
        &p,
        &json!({"model": "default", "input": "again", "previous_response_id": id}),
    )
    .await;
    assert_eq!(cont.status, 400, "{}", cont.text());
    assert_eq!(cont.error_code(), "previous_response_not_found");
    assert_eq!(m.count(), 1);
}

#[tokio::test]
async fn a_streamed_response_is_stored_too() {
    let m = Mock::start().await;
    let p = openai_proxy(&m).await;
    m.push(stream_reply(GPT, &["str", "eamed"]));
    m.push(Reply::json(200, completion(GPT, "next")));
    let r = create(
        &p,
        &json!({"model": "default", "input": "hi", "stream": true}),
    )
    .await;
    let evs = check_stream(&r);
    let fin = &evs.last().unwrap().data["response"];
    assert_eq!(fin["status"], "completed");
    let id = fin["id"].as_str().unwrap();
    let got = call(&p, "GET", &format!("/v1/responses/{id}")).await;
    assert_eq!(got.status, 200, "{}", got.text());
    let g = got.json();
    assert_eq!(output_text(&g), "streamed");
    assert_eq!(
        g["output"], fin["output"],
        "the stored output is what was streamed"
    );
    let cont = create(
        &p,
        &json!({"model": "default", "input": "and?", "previous_response_id": id}),
    )
    .await;
    assert_eq!(cont.status, 200, "{}", cont.text());
    let msgs = chat_messages(&m.received()[1]);
    let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "user"], "{msgs:?}");
}
