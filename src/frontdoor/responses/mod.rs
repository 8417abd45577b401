//! `POST /v1/responses`: OpenAI's Responses API as a front door. The request becomes
//! the canonical chat request (stored turns first when `previous_response_id` names
//! one), every provider kind answers through its usual translation, and the answer
//! is rendered as a `Response` or its event stream — and kept, when `store` is on, so
//! the next turn can continue it whichever provider answers.

mod answer;
mod items;
mod request;
mod stream;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt;
use http::{HeaderName, HeaderValue};
use serde_json::{json, Map, Value};

use super::{BoxFuture, Dialect, Rendered, StreamRender, Turn};
use crate::app::App;
use crate::canonical::{random_id, unix_now, Api, ChatRequest, ChatResponse, Native};
use crate::config::ResponsesPolicy;
use crate::error::ProxyError;
use crate::state::responses::{ResponseStore, Stored};
use answer::Echo;
use request::{chat_body, Dropped, ResponsesRequest};

pub struct Responses;

pub static RESPONSES: Responses = Responses;

const DROPPED_TOOLS: HeaderName = HeaderName::from_static("x-understudy-dropped-tools");

impl Dialect for Responses {
    fn begin<'a>(
        &'a self,
        app: &'a Arc<App>,
        _head: &'a http::request::Parts,
        body: Bytes,
    ) -> BoxFuture<'a, Result<Box<dyn Turn>, ProxyError>> {
        Box::pin(async move {
            begin(app, &body)
                .await
                .map(|t| Box::new(t) as Box<dyn Turn>)
        })
    }

    fn render_error(&self, err: &ProxyError) -> Rendered {
        // The Responses API reports errors in the same shape as chat completions.
        super::chat::error::render(err)
    }

    fn api(&self) -> &'static str {
        "responses"
    }
}

async fn begin(app: &Arc<App>, body: &[u8]) -> Result<ResponsesTurn, ProxyError> {
    let req = ResponsesRequest::parse(body)?;
    let body = Bytes::copy_from_slice(body);
    let body = &body[..];
    let mut items = match &req.previous_response_id {
        None => Vec::new(),
        Some(id) => match app.responses.get(id).await {
            Ok(Some(prev)) => prev.input.iter().chain(&prev.output).cloned().collect(),
            Ok(None) => return Err(ProxyError::PreviousResponseNotFound(id.clone())),
            Err(e) => return Err(ProxyError::StateUnavailable(e.to_string())),
        },
    };
    for mut item in req.input_items()? {
        if item["type"] == "item_reference" {
            // An item of an earlier response, by id (the Vercel AI SDK sends these).
            let id = item["id"].as_str().unwrap_or_default().to_string();
            match app.responses.get_item(&id).await {
                Ok(Some(found)) => item = found,
                Ok(None) => {
                    return Err(ProxyError::BadRequest(format!(
                        "input: item with id '{id}' not found"
                    )))
                }
                Err(e) => return Err(ProxyError::StateUnavailable(e.to_string())),
            }
        }
        if item.get("id").is_none_or(Value::is_null) {
            item["id"] = item_id(&item).into();
        }
        // `input_items` lists them as the API's item types, which carry a status.
        if matches!(
            item["type"].as_str(),
            Some("function_call" | "function_call_output")
        ) && item.get("status").is_none_or(Value::is_null)
        {
            item["status"] = "completed".into();
        }
        items.push(item);
    }
    let mut dropped = Dropped::default();
    // What the chat translation cannot carry (an image by file_id, say) may still go
    // to a target that speaks Responses natively; the others are skipped, and the
    // client gets this 400 if none is left.
    let (chat, replays, untranslatable) = match chat_body(&req, &items, &mut dropped) {
        Ok((chat, replays)) => (chat, replays, None),
        Err(ProxyError::BadRequest(why)) => (request::placeholder(&req), Vec::new(), Some(why)),
        Err(e) => return Err(e),
    };
    let mut canonical = super::canonical(&chat)?;
    canonical.untranslatable = untranslatable;
    for (at, r) in replays {
        if let Some(m) = canonical.messages.get_mut(at) {
            m.reasoning.push(r);
        }
    }
    canonical.native = Some(Arc::new(Native {
        api: Api::Responses,
        body: native_body(body, &items)?,
        headers: Vec::new(),
        query: None,
    }));
    let echo = Echo {
        id: random_id("resp_", 24),
        created_at: unix_now(),
        settings: settings(&req),
    };
    let keeper = (req.store != Some(false)).then(|| Keeper {
        store: app.responses.clone(),
        policy: app.config.load().responses,
        input: items,
    });
    Ok(ResponsesTurn {
        canonical,
        echo,
        keeper,
        dropped: dropped.tools,
    })
}

/// What a provider that speaks Responses natively gets: the client's request with the
/// conversation expanded (the proxy keeps the state, so `store: false` and no
/// `previous_response_id`), ids the proxy minted left out, reasoning a translated
/// provider produced left out (it is not this provider's), and encrypted reasoning
/// asked for so it can be replayed next turn.
fn native_body(body: &[u8], items: &[Value]) -> Result<Bytes, ProxyError> {
    let mut req: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| ProxyError::BadRequest(format!("invalid request body: {e}")))?;
    let input: Vec<Value> = items
        .iter()
        .filter(|item| !sealed_reasoning(item))
        .map(|item| {
            let mut item = item.clone();
            if item["type"] != "reasoning" {
                if let Some(o) = item.as_object_mut() {
                    o.remove("id");
                    o.remove("status");
                }
            }
            item
        })
        .collect();
    req.insert("input".into(), input.into());
    req.remove("previous_response_id");
    req.insert("store".into(), false.into());
    if req.get("reasoning").is_some_and(|r| !r.is_null()) {
        let mut include: Vec<Value> = req
            .get("include")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let encrypted = Value::from("reasoning.encrypted_content");
        if !include.contains(&encrypted) {
            include.push(encrypted);
        }
        req.insert("include".into(), include.into());
    }
    serde_json::to_vec(&req)
        .map(Bytes::from)
        .map_err(|e| ProxyError::BadRequest(format!("invalid request body: {e}")))
}

/// A reasoning item whose content the proxy sealed (a translated provider's).
fn sealed_reasoning(item: &Value) -> bool {
    item["type"] == "reasoning"
        && item["encrypted_content"]
            .as_str()
            .is_some_and(crate::canonical::Reasoning::is_seal)
}

/// Ids for the client's input items, so `input_items` can list them.
fn item_id(item: &Value) -> String {
    let prefix = match item.get("type").and_then(Value::as_str) {
        Some("message") => "msg_",
        Some("function_call") => "fc_",
        Some("function_call_output") => "fco_",
        Some("reasoning") => "rs_",
        _ => "item_",
    };
    random_id(prefix, 24)
}

/// The request settings a Response echoes, with the API's defaults.
fn settings(req: &ResponsesRequest) -> Map<String, Value> {
    let or_null = |v: Option<Value>| v.unwrap_or(Value::Null);
    let mut s = Map::new();
    s.insert("instructions".into(), or_null(req.instructions.clone()));
    let tools: Vec<Value> = req
        .tools
        .iter()
        .flatten()
        .map(|t| {
            let mut t = t.clone();
            // The Response's FunctionTool has both; the API's defaults.
            if t["type"] == "function" {
                if t.get("strict").is_none_or(Value::is_null) {
                    t["strict"] = true.into();
                }
                if t.get("parameters").is_none() {
                    t["parameters"] = Value::Null;
                }
            }
            t
        })
        .collect();
    s.insert("tools".into(), tools.into());
    s.insert(
        "tool_choice".into(),
        req.tool_choice.clone().unwrap_or_else(|| "auto".into()),
    );
    s.insert(
        "temperature".into(),
        or_null(req.temperature.map(Value::from)),
    );
    s.insert("top_p".into(), or_null(req.top_p.map(Value::from)));
    s.insert(
        "max_output_tokens".into(),
        or_null(req.max_output_tokens.map(Value::from)),
    );
    s.insert(
        "parallel_tool_calls".into(),
        req.parallel_tool_calls.unwrap_or(true).into(),
    );
    s.insert(
        "previous_response_id".into(),
        or_null(req.previous_response_id.clone().map(Value::from)),
    );
    s.insert(
        "text".into(),
        req.text
            .clone()
            .unwrap_or_else(|| json!({"format": {"type": "text"}})),
    );
    s.insert(
        "metadata".into(),
        req.metadata.clone().unwrap_or_else(|| json!({})),
    );
    s.insert("store".into(), (req.store != Some(false)).into());
    s.insert("reasoning".into(), or_null(req.reasoning.clone()));
    s.insert("truncation".into(), "disabled".into());
    s.insert("background".into(), false.into());
    if let Some(u) = &req.user {
        s.insert("user".into(), u.clone().into());
    }
    if let Some(u) = &req.safety_identifier {
        s.insert("safety_identifier".into(), u.clone().into());
    }
    s
}

/// Keeps a finished response in the store (`store` on).
pub(super) struct Keeper {
    store: Arc<dyn ResponseStore>,
    policy: ResponsesPolicy,
    /// The conversation's input items, earlier turns included.
    input: Vec<Value>,
}

impl Keeper {
    pub(super) fn keep(self, response: Value) {
        let stored = Stored {
            id: response["id"].as_str().unwrap_or_default().to_string(),
            output: response["output"].as_array().cloned().unwrap_or_default(),
            provider: response["model"].as_str().unwrap_or_default().to_string(),
            input: self.input,
            response,
        };
        let mut put = self.store.put(stored, self.policy);
        // The memory store is done at once: the answer's id is usable the moment the
        // client reads it. A networked store finishes in the background.
        match (&mut put).now_or_never() {
            Some(Ok(())) => {}
            Some(Err(e)) => tracing::warn!(error = %e, "could not store the response"),
            None => {
                tokio::spawn(async move {
                    if let Err(e) = put.await {
                        tracing::warn!(error = %e, "could not store the response");
                    }
                });
            }
        }
    }
}

struct ResponsesTurn {
    canonical: ChatRequest,
    echo: Echo,
    keeper: Option<Keeper>,
    dropped: Vec<String>,
}

impl Turn for ResponsesTurn {
    fn request(&self) -> &ChatRequest {
        &self.canonical
    }

    fn render_answer(&self, answer: &ChatResponse) -> Vec<u8> {
        let response = match answer
            .native
            .as_deref()
            .map(serde_json::from_slice::<Value>)
        {
            // The provider's own Response, under the proxy's id (the one the client
            // continues with), with the request's settings it was not sent.
            Some(Ok(mut native)) => {
                native["id"] = self.echo.id.clone().into();
                native["store"] = (self.keeper.is_some()).into();
                native["previous_response_id"] = self.echo.settings["previous_response_id"].clone();
                native
            }
            _ => answer::render(&self.echo, answer),
        };
        if let Some(k) = &self.keeper {
            k.clone_for_keep().keep(response.clone());
        }
        serde_json::to_vec(&response).unwrap_or_default()
    }

    fn stream_renderer(&self) -> Box<dyn StreamRender> {
        Box::new(stream::ResponsesStream::new(
            self.echo.clone(),
            self.canonical.model.clone(),
            self.keeper.as_ref().map(Keeper::clone_for_keep),
        ))
    }

    fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        if self.dropped.is_empty() {
            return Vec::new();
        }
        match HeaderValue::from_str(&self.dropped.join(", ")) {
            Ok(v) => vec![(DROPPED_TOOLS, v)],
            Err(_) => Vec::new(),
        }
    }
}

impl Keeper {
    fn clone_for_keep(&self) -> Keeper {
        Keeper {
            store: self.store.clone(),
            policy: self.policy,
            input: self.input.clone(),
        }
    }
}
