//! `POST /v1/responses`: OpenAI's Responses API as a front door. The request becomes
//! the canonical chat request (stored turns first when `previous_response_id` names
//! one), every provider kind answers through its usual translation, and the answer
//! is rendered as a `Response` or its event stream — and kept, when `store` is on, so
//! the next turn can continue it whichever provider answers.

mod answer;
mod request;
mod stream;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt;
use http::{HeaderName, HeaderValue};
use serde_json::{json, Map, Value};

use super::{BoxFuture, Dialect, Rendered, StreamRender, Turn};
use crate::app::App;
use crate::canonical::{random_id, unix_now, ChatRequest, ChatResponse};
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
}

async fn begin(app: &Arc<App>, body: &[u8]) -> Result<ResponsesTurn, ProxyError> {
    let req = ResponsesRequest::parse(body)?;
    let mut items = match &req.previous_response_id {
        None => Vec::new(),
        Some(id) => match app.responses.get(id).await {
            Ok(Some(prev)) => prev.input.iter().chain(&prev.output).cloned().collect(),
            Ok(None) => return Err(ProxyError::PreviousResponseNotFound(id.clone())),
            Err(e) => return Err(ProxyError::StateUnavailable(e.to_string())),
        },
    };
    for mut item in req.input_items()? {
        if item.get("id").is_none_or(Value::is_null) {
            item["id"] = item_id(&item).into();
        }
        items.push(item);
    }
    let mut dropped = Dropped::default();
    let chat = chat_body(&req, &items, &mut dropped)?;
    let bytes = serde_json::to_vec(&chat)
        .map_err(|e| ProxyError::BadRequest(format!("invalid request body: {e}")))?;
    let canonical = ChatRequest::parse(Bytes::from(bytes)).map_err(ProxyError::BadRequest)?;
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

/// Ids for the client's input items, so `input_items` can list them.
fn item_id(item: &Value) -> String {
    let prefix = match item.get("type").and_then(Value::as_str) {
        Some("message") => "msg_",
        Some("function_call") => "fc_",
        Some("function_call_output") => "fco_",
        _ => "item_",
    };
    random_id(prefix, 24)
}

/// The request settings a Response echoes, with the API's defaults.
fn settings(req: &ResponsesRequest) -> Map<String, Value> {
    let or_null = |v: Option<Value>| v.unwrap_or(Value::Null);
    let mut s = Map::new();
    s.insert("instructions".into(), or_null(req.instructions.clone()));
    s.insert("tools".into(), json!(req.tools.clone().unwrap_or_default()));
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
        let response = answer::render(&self.echo, answer);
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
