//! OpenAI Chat Completions request → Anthropic Messages request body: the wire
//! types and top-level fields here, the conversation in [`messages`], tools and
//! JSON mode in [`tools`].

mod messages;
mod thinking;
mod tools;

use std::borrow::Cow;

use serde::Serialize;
use serde_json::Value;

use crate::canonical::{ChatRequest, ResponseFormat, Stop};
use crate::providers::AdapterError;
use crate::providers::Target;
use messages::conversation;
use tools::tools;

/// The tool that carries a JSON-mode answer (DESIGN §6).
pub(super) const JSON_TOOL: &str = "json_output";
/// `max_tokens` when neither the client nor the provider's setting gives one.
const DEFAULT_MAX_TOKENS: u32 = 4096;
/// The user turn put in front of a conversation that does not start with one.
const PLACEHOLDER_USER: &str = ".";
/// The first `anthropic-version` that rejects `temperature` / `top_p` / `top_k`.
const SAMPLING_REMOVED_IN: &str = "2026-10-21";
const JSON_TOOL_DESCRIPTION: &str =
    "Give the final answer through this tool, as a JSON object that matches its input schema.";
/// Media types Anthropic accepts for base64 images.
const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// Whether the client asked for JSON mode (emulated with the [`JSON_TOOL`]).
pub(super) fn json_mode(req: &ChatRequest) -> bool {
    matches!(
        req.response_format,
        Some(ResponseFormat::JsonObject | ResponseFormat::JsonSchema { .. })
    )
}

#[derive(Debug, Serialize)]
pub(super) struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolDef<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Choice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<thinking::Config>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
}

#[derive(Debug, Serialize)]
struct Turn<'a> {
    role: Side,
    content: Vec<Block<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Side {
    User,
    Assistant,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text {
        text: Cow<'a, str>,
    },
    Image {
        source: ImageSource<'a>,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Value,
    },
    ToolResult {
        tool_use_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<ResultContent<'a>>,
    },
    /// This model's own thinking, replayed exactly as it came.
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    RedactedThinking {
        data: &'a str,
    },
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum ResultContent<'a> {
    Text(Cow<'a, str>),
    Blocks(Vec<Block<'a>>),
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ImageSource<'a> {
    Base64 { media_type: &'a str, data: &'a str },
    Url { url: &'a str },
}

#[derive(Debug, Serialize)]
struct ToolDef<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    input_schema: Cow<'a, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Choice<'a> {
    Auto {
        #[serde(skip_serializing_if = "is_false")]
        disable_parallel_tool_use: bool,
    },
    Any {
        #[serde(skip_serializing_if = "is_false")]
        disable_parallel_tool_use: bool,
    },
    Tool {
        name: &'a str,
        #[serde(skip_serializing_if = "is_false")]
        disable_parallel_tool_use: bool,
    },
    None,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Serialize)]
struct Metadata<'a> {
    user_id: &'a str,
}

fn invalid(msg: String) -> AdapterError {
    AdapterError::InvalidRequest(msg)
}

/// The Messages request for `req`; `Err(InvalidRequest)` when it cannot be expressed.
pub(super) fn build<'a>(
    req: &'a ChatRequest,
    target: &'a Target,
) -> Result<MessagesRequest<'a>, AdapterError> {
    if let Some(n) = req.n.filter(|&n| n > 1) {
        return Err(invalid(format!(
            "'n' = {n} is not supported by this provider: Anthropic returns one choice per request; send n = 1 or omit it"
        )));
    }
    req.function_tools_only("Anthropic").map_err(invalid)?;
    log_dropped(req);
    let settings = super::settings(&target.provider);
    let (system, messages) = conversation(&req.messages, target)?;
    let (tools, tool_choice) = tools(req)?;
    let (thinking, max_tokens) = thinking::config(
        req,
        req.max_output_tokens(),
        settings.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        tool_choice.as_ref(),
        &messages,
    );
    let (temperature, top_p) = if thinking.is_some() {
        if req.temperature.is_some() || req.top_p.is_some() {
            tracing::debug!("anthropic: dropping temperature/top_p, thinking rejects them");
        }
        (None, None)
    } else {
        sampling(req, settings.version.as_deref())
    };
    Ok(MessagesRequest {
        model: &target.model,
        max_tokens,
        system,
        messages,
        tools,
        tool_choice,
        thinking,
        temperature,
        top_p,
        stop_sequences: stop_sequences(req.stop.as_ref()),
        metadata: req
            .user
            .as_deref()
            .filter(|u| !u.is_empty())
            .map(|user_id| Metadata { user_id }),
        stream: req.is_stream().then_some(true),
    })
}

/// Fields Anthropic has no equivalent for and whose loss keeps the request's meaning.
fn log_dropped(req: &ChatRequest) {
    let dropped = [
        ("logprobs", req.logprobs.is_some()),
        ("top_logprobs", req.top_logprobs.is_some()),
        ("presence_penalty", req.presence_penalty.is_some()),
        ("frequency_penalty", req.frequency_penalty.is_some()),
        ("seed", req.seed.is_some()),
    ];
    for (field, set) in dropped {
        if set {
            tracing::debug!(
                field,
                "anthropic: dropping a field Anthropic cannot express"
            );
        }
    }
}

/// `temperature` clamped to Anthropic's 0..=1; `top_p` only without `temperature`;
/// neither for API versions that reject sampling parameters.
fn sampling(req: &ChatRequest, version: Option<&str>) -> (Option<f64>, Option<f64>) {
    if version.is_some_and(|v| v >= SAMPLING_REMOVED_IN) {
        if req.temperature.is_some() || req.top_p.is_some() {
            tracing::debug!(
                version,
                "anthropic: dropping temperature/top_p, this API version rejects them"
            );
        }
        return (None, None);
    }
    let temperature = req.temperature.map(|t| {
        let clamped = t.clamp(0.0, 1.0);
        if clamped != t {
            tracing::debug!(
                requested = t,
                sent = clamped,
                "anthropic: temperature clamped to 0..=1"
            );
        }
        clamped
    });
    let top_p = match (temperature, req.top_p) {
        (Some(_), Some(p)) => {
            tracing::debug!(
                top_p = p,
                "anthropic: dropping top_p, current models reject it together with temperature"
            );
            None
        }
        (_, p) => p,
    };
    (temperature, top_p)
}

fn stop_sequences(stop: Option<&Stop>) -> Vec<&str> {
    let all: Vec<&str> = match stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s.as_str()],
        Some(Stop::Many(v)) => v.iter().map(String::as_str).collect(),
    };
    all.into_iter()
        .filter(|s| {
            let keep = !s.trim().is_empty();
            if !keep {
                tracing::debug!(
                    stop = s,
                    "anthropic: dropping a whitespace-only stop sequence"
                );
            }
            keep
        })
        .collect()
}

#[cfg(test)]
mod tests;
