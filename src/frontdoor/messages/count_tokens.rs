//! `POST /v1/messages/count_tokens` (the Anthropic SDK's `messages.count_tokens`,
//! which Claude Code calls): the walk takes it to the route's Anthropic-kind targets
//! — the client's body with only `model` swapped, its version and beta headers and
//! query — and their `{"input_tokens": N}` comes back as it was. Other kinds cannot
//! count and are skipped. When no Anthropic-kind target answered (there is none,
//! every one is disabled, cooling or open, or every one failed over), an estimate
//! from the request's text stands in, about four bytes a token, marked
//! `x-understudy-estimate: true`: a client sizing its context is better served by a
//! rough count than by an error. An upstream that refuses the request itself (400)
//! is answered as for `/v1/messages`.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{error, stream::MessagesStream};
use crate::app::App;
use crate::canonical::{Api, ChatRequest, ChatResponse};
use crate::error::ProxyError;
use crate::frontdoor::{BoxFuture, Dialect, Rendered, StandIn, StreamRender, Turn};

pub struct CountTokens;

pub static COUNT_TOKENS: CountTokens = CountTokens;

const ESTIMATE: HeaderName = HeaderName::from_static("x-understudy-estimate");

/// Why translated targets are skipped (shown only if a 400 ever names it).
const ANTHROPIC_ONLY: &str = "only an anthropic-kind target counts tokens";

/// What the proxy reads of `MessageCountTokensParams`; the rest goes upstream as sent.
#[derive(Deserialize)]
struct CountRequest {
    model: String,
    messages: Vec<Value>,
    #[serde(default)]
    system: Value,
    #[serde(default)]
    tools: Value,
}

impl Dialect for CountTokens {
    fn begin<'a>(
        &'a self,
        _app: &'a Arc<App>,
        head: &'a http::request::Parts,
        body: Bytes,
    ) -> BoxFuture<'a, Result<Box<dyn Turn>, ProxyError>> {
        Box::pin(async move { begin(head, body).map(|t| Box::new(t) as Box<dyn Turn>) })
    }

    fn render_error(&self, err: &ProxyError) -> Rendered {
        error::render(err)
    }

    fn api(&self) -> &'static str {
        "count_tokens"
    }
}

fn begin(head: &http::request::Parts, body: Bytes) -> Result<CountTurn, ProxyError> {
    let req: CountRequest = serde_json::from_slice(&body).map_err(|e| {
        ProxyError::BadRequest(match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                format!("request body is not valid JSON: {e}")
            }
            _ => format!("invalid request body: {e}"),
        })
    })?;
    let estimate = estimate(&req);
    // Nothing to translate: the canonical request only routes the count.
    let mut canonical = crate::frontdoor::canonical(
        &json!({"model": req.model, "messages": [{"role": "user", "content": ""}]}),
    )?;
    canonical.untranslatable = Some(ANTHROPIC_ONLY.into());
    canonical.native = Some(Arc::new(super::native(Api::CountTokens, head, body)));
    Ok(CountTurn {
        canonical,
        estimate,
    })
}

/// About four bytes of the request's text a token: system, messages and tools.
fn estimate(req: &CountRequest) -> u64 {
    let bytes = text_bytes(&req.system)
        + req.messages.iter().map(text_bytes).sum::<usize>()
        + text_bytes(&req.tools);
    u64::try_from(bytes.div_ceil(4).max(1)).unwrap_or(u64::MAX)
}

/// Bytes of every string in `v` (text, tool names, schemas' words).
fn text_bytes(v: &Value) -> usize {
    match v {
        Value::Null => 0,
        Value::String(s) => s.len(),
        Value::Array(a) => a.iter().map(text_bytes).sum(),
        Value::Object(o) => o.iter().map(|(k, v)| k.len() / 2 + text_bytes(v)).sum(),
        _ => 1,
    }
}

struct CountTurn {
    canonical: ChatRequest,
    estimate: u64,
}

impl Turn for CountTurn {
    fn request(&self) -> &ChatRequest {
        &self.canonical
    }

    fn render_answer(&self, answer: &ChatResponse) -> Vec<u8> {
        match &answer.native {
            Some(raw) => raw.to_vec(),
            None => {
                let n = answer.usage.as_ref().map_or(0, |u| u.prompt_tokens);
                json!({ "input_tokens": n }).to_string().into_bytes()
            }
        }
    }

    /// A count is never streamed; the Messages renderer keeps the trait whole.
    fn stream_renderer(&self) -> Box<dyn StreamRender> {
        Box::new(MessagesStream::new(self.canonical.model.clone()))
    }

    fn stand_in(&self, err: &ProxyError) -> Option<StandIn> {
        // The walk's 400 here means no target could take the count (none is
        // Anthropic-kind); an upstream's own refusal is `ProviderRejected`.
        if !matches!(err, ProxyError::BadRequest(_) | ProxyError::Exhausted(_)) {
            return None;
        }
        tracing::debug!(error = %err, "no anthropic-kind target counted the tokens; estimating");
        Some(StandIn {
            body: json!({ "input_tokens": self.estimate })
                .to_string()
                .into_bytes(),
            headers: vec![(ESTIMATE, HeaderValue::from_static("true"))],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Exhausted, Why};

    fn turn(body: &str) -> Result<CountTurn, ProxyError> {
        let (head, ()) = http::Request::post("/v1/messages/count_tokens?beta=true")
            .header("anthropic-version", "2023-06-01")
            .header("x-api-key", "client-key")
            .body(())
            .unwrap()
            .into_parts();
        begin(&head, Bytes::from(body.to_string()))
    }

    #[test]
    fn the_count_request_goes_native_with_version_and_query_and_nowhere_else() {
        let t = turn(r#"{"model":"default","messages":[{"role":"user","content":"Hi"}]}"#).unwrap();
        let req = t.request();
        assert_eq!(req.model, "default");
        assert!(!req.is_stream());
        assert!(req.untranslatable.is_some(), "translated kinds are skipped");
        let native = req.native.as_deref().unwrap();
        assert_eq!(native.api, Api::CountTokens);
        assert_eq!(native.query.as_deref(), Some("beta=true"));
        let names: Vec<&str> = native.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["anthropic-version"],
            "the client's key is not forwarded"
        );
    }

    #[test]
    fn more_text_is_a_larger_estimate_and_only_a_failed_walk_gets_one() {
        let short = turn(r#"{"model":"m","messages":[{"role":"user","content":"Hi"}]}"#).unwrap();
        let long = turn(
            r#"{"model":"m","system":"Be brief and exact.","messages":[{"role":"user","content":"Count the tokens of this longer sentence, please."}]}"#,
        )
        .unwrap();
        assert!(short.estimate >= 1 && short.estimate < long.estimate);
        let none_can = ProxyError::BadRequest("no target can serve this request".into());
        let stand_in = long.stand_in(&none_can).unwrap();
        let body: Value = serde_json::from_slice(&stand_in.body).unwrap();
        assert_eq!(body, json!({"input_tokens": long.estimate}));
        assert_eq!(stand_in.headers[0].1, "true");
        let all_failed = ProxyError::Exhausted(Exhausted {
            why: Why::Failed,
            steps: Vec::new(),
            retry_after: None,
        });
        assert!(long.stand_in(&all_failed).is_some());
        let rejected = ProxyError::ProviderRejected {
            provider: "claude".into(),
            error: Box::new(crate::providers::UpstreamError::new(400, "bad")),
        };
        assert!(
            long.stand_in(&rejected).is_none(),
            "the upstream's 400 is returned"
        );
    }

    #[test]
    fn a_body_without_messages_or_model_is_a_400() {
        for body in [r#"{"model":"default"}"#, r#"{"messages":[]}"#, "[]", "{"] {
            assert!(
                matches!(turn(body), Err(ProxyError::BadRequest(_))),
                "{body}"
            );
        }
    }
}
