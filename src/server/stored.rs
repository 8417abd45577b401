//! `GET` / `DELETE /v1/responses/{id}` and `GET /v1/responses/{id}/input_items`: the
//! responses the proxy kept, in the Responses API's own shapes.

use http::{HeaderValue, Response, StatusCode};
use serde_json::{json, Value};

use super::respond::{error_response, json};
use crate::app::App;
use crate::error::ProxyError;
use crate::frontdoor::responses::RESPONSES;
use crate::http::body::Body;
use crate::state::responses::Stored;

async fn find(app: &App, id: &str) -> Result<std::sync::Arc<Stored>, ProxyError> {
    match app.responses.get(id).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(ProxyError::ResponseNotFound(id.to_string())),
        Err(e) => Err(ProxyError::StateUnavailable(e.to_string())),
    }
}

fn ok(body: &Value) -> Response<Body> {
    json(StatusCode::OK, body.to_string().into_bytes())
}

pub async fn get(app: &App, id: &str, request_id: &HeaderValue) -> Response<Body> {
    match find(app, id).await {
        Ok(s) => ok(&s.response),
        Err(e) => error_response(&RESPONSES, &e, request_id),
    }
}

pub async fn delete(app: &App, id: &str, request_id: &HeaderValue) -> Response<Body> {
    match app.responses.delete(id).await {
        Ok(true) => ok(&json!({"id": id, "object": "response.deleted", "deleted": true})),
        Ok(false) => error_response(
            &RESPONSES,
            &ProxyError::ResponseNotFound(id.to_string()),
            request_id,
        ),
        Err(e) => error_response(
            &RESPONSES,
            &ProxyError::StateUnavailable(e.to_string()),
            request_id,
        ),
    }
}

/// OpenAI's list shape; `order` (`desc` by default), `after` (an item id) and `limit`
/// (1–100, default 20) as the API defines them.
pub async fn input_items(
    app: &App,
    id: &str,
    query: Option<&str>,
    request_id: &HeaderValue,
) -> Response<Body> {
    let stored = match find(app, id).await {
        Ok(s) => s,
        Err(e) => return error_response(&RESPONSES, &e, request_id),
    };
    let (mut order_desc, mut after, mut limit) = (true, None::<String>, 20usize);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "order" if v == "asc" => order_desc = false,
            "order" if v == "desc" => order_desc = true,
            "after" => after = Some(v.to_string()),
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=100).contains(&n) => limit = n,
                _ => {
                    let err = ProxyError::BadRequest(format!(
                        "limit: {v:?} is not a number from 1 to 100"
                    ));
                    return error_response(&RESPONSES, &err, request_id);
                }
            },
            "order" => {
                let err = ProxyError::BadRequest(format!("order: {v:?} is not asc or desc"));
                return error_response(&RESPONSES, &err, request_id);
            }
            _ => {}
        }
    }
    let mut items: Vec<&Value> = stored.input.iter().collect();
    if order_desc {
        items.reverse();
    }
    let start = match &after {
        None => 0,
        Some(a) => match items.iter().position(|i| i["id"] == a.as_str()) {
            Some(p) => p + 1,
            None => items.len(),
        },
    };
    let page: Vec<&Value> = items.iter().skip(start).take(limit).copied().collect();
    let has_more = start + page.len() < items.len();
    ok(&json!({
        "object": "list",
        "data": page,
        "first_id": page.first().map(|i| i["id"].clone()),
        "last_id": page.last().map(|i| i["id"].clone()),
        "has_more": has_more,
    }))
}
