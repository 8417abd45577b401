//! OpenAI Chat Completions request → Anthropic Messages request body.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::canonical::{
    ChatRequest, Content, ContentPart, ImageUrl, Message, ResponseFormat, Role, Stop, ToolChoice,
};
use crate::providers::AdapterError;
use crate::providers::Target;

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
    let (system, messages) = conversation(&req.messages)?;
    let (tools, tool_choice) = tools(req)?;
    let (temperature, top_p) = sampling(req, settings.version.as_deref());
    Ok(MessagesRequest {
        model: &target.model,
        max_tokens: req
            .max_output_tokens()
            .or(settings.max_tokens)
            .unwrap_or(DEFAULT_MAX_TOKENS),
        system,
        messages,
        tools,
        tool_choice,
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

/// The top-level `system` text and the user/assistant turns.
fn conversation(messages: &[Message]) -> Result<(Option<String>, Vec<Turn<'_>>), AdapterError> {
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<Turn<'_>> = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let (side, blocks) = match m.role {
            Role::System | Role::Developer => {
                let text = m.text();
                if !text.trim().is_empty() {
                    system.push(text);
                }
                continue;
            }
            Role::User => (Side::User, content_blocks(i, m, true)?),
            Role::Assistant => (Side::Assistant, assistant_blocks(i, m)?),
            Role::Tool | Role::Function => (Side::User, vec![tool_result(i, m)?]),
        };
        if blocks.is_empty() {
            tracing::debug!(message = i, "anthropic: skipping a message with no content");
            continue;
        }
        match turns.last_mut() {
            Some(last) if last.role == side => last.content.extend(blocks),
            _ => turns.push(Turn {
                role: side,
                content: blocks,
            }),
        }
    }
    for turn in turns.iter_mut().filter(|t| t.role == Side::User) {
        // Tool results must open the user turn that answers the tool calls.
        turn.content
            .sort_by_key(|b| !matches!(b, Block::ToolResult { .. }));
    }
    trim_final_assistant(&mut turns);
    if turns.first().is_none_or(|t| t.role != Side::User) {
        tracing::debug!("anthropic: conversation does not start with a user turn, adding one");
        turns.insert(
            0,
            Turn {
                role: Side::User,
                content: vec![Block::Text {
                    text: Cow::Borrowed(PLACEHOLDER_USER),
                }],
            },
        );
    }
    let system = (!system.is_empty()).then(|| system.join("\n\n"));
    Ok((system, turns))
}

/// Anthropic rejects a final (prefill) assistant turn that ends in whitespace.
fn trim_final_assistant(turns: &mut Vec<Turn<'_>>) {
    let Some(last) = turns.last_mut().filter(|t| t.role == Side::Assistant) else {
        return;
    };
    if let Some(Block::Text { text }) = last.content.last_mut() {
        let trimmed = text.trim_end();
        if trimmed.len() != text.len() {
            *text = Cow::Owned(trimmed.to_string());
        }
        if text.is_empty() {
            last.content.pop();
        }
    }
    if last.content.is_empty() {
        turns.pop();
    }
}

/// Text and image blocks of a message's content. Parts Anthropic cannot take are an
/// error where they carry the client's input (`strict`), else dropped.
fn content_blocks(i: usize, m: &Message, strict: bool) -> Result<Vec<Block<'_>>, AdapterError> {
    let mut out = Vec::new();
    match &m.content {
        None => {}
        Some(Content::Text(s)) => push_text(&mut out, s),
        Some(Content::Parts(parts)) => {
            for part in parts {
                match part {
                    ContentPart::Text { text } => push_text(&mut out, text),
                    ContentPart::ImageUrl { image_url } => out.push(image(i, image_url)?),
                    ContentPart::Unsupported if strict => {
                        return Err(invalid(format!(
                            "messages[{i}]: a content part of a type Anthropic cannot take (only text and image_url are supported)"
                        )))
                    }
                    ContentPart::Unsupported => {
                        tracing::debug!(message = i, "anthropic: dropping an unsupported content part");
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Anthropic rejects empty and whitespace-only text blocks; they carry nothing.
fn push_text<'a>(out: &mut Vec<Block<'a>>, text: &'a str) {
    if !text.trim().is_empty() {
        out.push(Block::Text {
            text: Cow::Borrowed(text),
        });
    }
}

fn image<'a>(i: usize, image: &'a ImageUrl) -> Result<Block<'a>, AdapterError> {
    let source = if let Some(data) = image.as_data_url() {
        if !IMAGE_TYPES.contains(&data.media_type) {
            return Err(invalid(format!(
                "messages[{i}]: image type {:?} is not supported by Anthropic (jpeg, png, gif, webp)",
                data.media_type
            )));
        }
        ImageSource::Base64 {
            media_type: data.media_type,
            data: data.base64,
        }
    } else if is_http_url(&image.url) {
        ImageSource::Url { url: &image.url }
    } else {
        return Err(invalid(format!(
            "messages[{i}]: image_url must be a base64 data URL or an http(s) URL"
        )));
    };
    Ok(Block::Image { source })
}

fn is_http_url(url: &str) -> bool {
    let lower = |n: usize| url.get(..n).map(str::to_ascii_lowercase);
    lower(7).as_deref() == Some("http://") || lower(8).as_deref() == Some("https://")
}

fn assistant_blocks(i: usize, m: &Message) -> Result<Vec<Block<'_>>, AdapterError> {
    let mut out = content_blocks(i, m, false)?;
    for (j, call) in m.tool_calls.iter().flatten().enumerate() {
        let args = call.function.arguments.trim();
        let input = if args.is_empty() {
            Value::Object(Map::new())
        } else {
            serde_json::from_str::<Value>(args).map_err(|e| {
                invalid(format!(
                    "messages[{i}].tool_calls[{j}] (id {:?}, function {:?}): arguments are not valid JSON: {e}",
                    call.id, call.function.name
                ))
            })?
        };
        if !input.is_object() {
            return Err(invalid(format!(
                "messages[{i}].tool_calls[{j}] (id {:?}, function {:?}): arguments must be a JSON object",
                call.id, call.function.name
            )));
        }
        out.push(Block::ToolUse {
            id: &call.id,
            name: &call.function.name,
            input,
        });
    }
    Ok(out)
}

fn tool_result(i: usize, m: &Message) -> Result<Block<'_>, AdapterError> {
    let Some(id) = m.tool_call_id.as_deref() else {
        return Err(invalid(format!(
            "messages[{i}]: a tool message needs the tool_call_id of the call it answers"
        )));
    };
    let content = match &m.content {
        None => None,
        Some(Content::Text(s)) => Some(ResultContent::Text(Cow::Borrowed(s.as_str()))),
        Some(Content::Parts(parts)) => {
            if parts
                .iter()
                .any(|p| matches!(p, ContentPart::ImageUrl { .. }))
            {
                Some(ResultContent::Blocks(content_blocks(i, m, true)?))
            } else {
                if parts.iter().any(|p| matches!(p, ContentPart::Unsupported)) {
                    content_blocks(i, m, true)?; // the same error as in a user message
                }
                Some(ResultContent::Text(Cow::Owned(m.text())))
            }
        }
    };
    let content = content.filter(|c| match c {
        ResultContent::Text(t) => !t.is_empty(),
        ResultContent::Blocks(b) => !b.is_empty(),
    });
    Ok(Block::ToolResult {
        tool_use_id: id,
        content,
    })
}

/// `tools` and `tool_choice`, the JSON-mode tool included.
fn tools(req: &ChatRequest) -> Result<(Vec<ToolDef<'_>>, Option<Choice<'_>>), AdapterError> {
    let json = json_mode(req);
    let mut defs = Vec::with_capacity(req.tools.as_ref().map_or(0, Vec::len) + 1);
    for (k, tool) in req.tools.iter().flatten().enumerate() {
        if tool.kind != "function" {
            return Err(invalid(format!(
                "tools[{k}]: tool type {:?} is not supported by Anthropic (only function tools)",
                tool.kind
            )));
        }
        let f = &tool.function;
        if json && f.name == JSON_TOOL {
            return Err(invalid(format!(
                "tools[{k}]: the name {JSON_TOOL:?} is reserved for response_format on this provider"
            )));
        }
        if f.strict.is_some() {
            tracing::debug!(tool = %f.name, "anthropic: dropping the tool's strict flag");
        }
        defs.push(ToolDef {
            name: &f.name,
            description: f.description.as_deref(),
            input_schema: input_schema(f.parameters.as_ref()),
        });
    }
    let own_tools = !defs.is_empty();
    let parallel_off = req.parallel_tool_calls == Some(false);
    let choice = match &req.tool_choice {
        None => None,
        Some(ToolChoice::Mode(mode)) => Some(match mode.as_str() {
            "auto" => Choice::Auto {
                disable_parallel_tool_use: parallel_off,
            },
            "none" => Choice::None,
            "required" => Choice::Any {
                disable_parallel_tool_use: parallel_off,
            },
            other => {
                return Err(invalid(format!(
                    "tool_choice {other:?} is not one of \"auto\", \"none\", \"required\""
                )))
            }
        }),
        Some(ToolChoice::Named(named)) => Some(Choice::Tool {
            name: &named.function.name,
            disable_parallel_tool_use: parallel_off,
        }),
        Some(ToolChoice::Other(_)) => None, // refused up front by function_tools_only
    };

    if let Some(format) = &req.response_format {
        if let Some(def) = json_tool(format) {
            defs.push(def);
            let forced = Choice::Tool {
                name: JSON_TOOL,
                disable_parallel_tool_use: true,
            };
            let choice = match choice {
                _ if !own_tools => forced,
                Some(Choice::None) => forced,
                Some(named @ Choice::Tool { .. }) => named,
                None | Some(Choice::Auto { .. } | Choice::Any { .. }) => Choice::Any {
                    disable_parallel_tool_use: parallel_off,
                },
            };
            return Ok((defs, Some(choice)));
        }
    }
    if !own_tools {
        if choice.is_some() || parallel_off {
            tracing::debug!("anthropic: dropping tool_choice / parallel_tool_calls without tools");
        }
        return Ok((defs, None));
    }
    let choice = match choice {
        None if parallel_off => Some(Choice::Auto {
            disable_parallel_tool_use: true,
        }),
        other => other,
    };
    Ok((defs, choice))
}

/// A function's parameters as an Anthropic input schema, which must be an object
/// schema: none → an empty object schema; an object schema without `type` gets one.
fn input_schema(parameters: Option<&Value>) -> Cow<'_, Value> {
    match parameters {
        None | Some(Value::Null) => Cow::Owned(json!({"type": "object", "properties": {}})),
        Some(Value::Object(o)) if !o.contains_key("type") => {
            let mut o = o.clone();
            o.insert("type".into(), Value::String("object".into()));
            Cow::Owned(Value::Object(o))
        }
        Some(v) => Cow::Borrowed(v),
    }
}

fn json_tool(format: &ResponseFormat) -> Option<ToolDef<'_>> {
    match format {
        ResponseFormat::Text => None,
        ResponseFormat::JsonObject => Some(ToolDef {
            name: JSON_TOOL,
            description: Some(JSON_TOOL_DESCRIPTION),
            input_schema: Cow::Owned(json!({"type": "object"})),
        }),
        ResponseFormat::JsonSchema { json_schema } => Some(ToolDef {
            name: JSON_TOOL,
            description: Some(
                json_schema
                    .description
                    .as_deref()
                    .unwrap_or(JSON_TOOL_DESCRIPTION),
            ),
            input_schema: json_schema
                .schema
                .as_ref()
                .map_or_else(|| Cow::Owned(json!({"type": "object"})), Cow::Borrowed),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::{request, target_with};
    use crate::providers::Kind;
    use crate::providers::Provider;

    fn target(adjust: impl FnOnce(&mut Provider)) -> Target {
        target_with(
            Kind::Anthropic,
            "https://api.anthropic.com",
            "claude-sonnet-4-5",
            adjust,
        )
    }

    /// The body sent for `req_json` to the default test target.
    fn body(req_json: &str) -> Value {
        body_for(req_json, &target(|_| {}))
    }

    fn body_for(req_json: &str, t: &Target) -> Value {
        let req = request(req_json);
        serde_json::to_value(build(&req, t).unwrap()).unwrap()
    }

    fn error(req_json: &str) -> String {
        let req = request(req_json);
        match build(&req, &target(|_| {})) {
            Err(AdapterError::InvalidRequest(m)) => m,
            other => panic!("expected InvalidRequest, got {other:?}"),
        }
    }

    /// `{"model":"m","messages":[...],<extra>}` with one user message "hi".
    fn with(extra: &str) -> String {
        format!(r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}]{extra}}}"#)
    }

    fn fixture(name: &str) -> Value {
        let text = match name {
            "request_tools.anthropic.json" => {
                include_str!("../../../fixtures/anthropic/request_tools.anthropic.json")
            }
            "request_json_schema.anthropic.json" => {
                include_str!("../../../fixtures/anthropic/request_json_schema.anthropic.json")
            }
            _ => panic!("unknown fixture {name}"),
        };
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn tools_conversation_translates_exactly_as_the_fixture() {
        let got = body(include_str!(
            "../../../fixtures/anthropic/request_tools.openai.json"
        ));
        assert_eq!(got, fixture("request_tools.anthropic.json"));
    }

    #[test]
    fn json_schema_request_translates_exactly_as_the_fixture() {
        let got = body(include_str!(
            "../../../fixtures/anthropic/request_json_schema.openai.json"
        ));
        assert_eq!(got, fixture("request_json_schema.anthropic.json"));
    }

    #[test]
    fn system_and_developer_messages_are_hoisted_and_joined_in_order() {
        let b = body(
            r#"{"model":"m","messages":[{"role":"system","content":"one"},
            {"role":"user","content":"hi"},{"role":"developer","content":"two"},
            {"role":"system","content":"  "},{"role":"assistant","content":"yo"}]}"#,
        );
        assert_eq!(b["system"], "one\n\ntwo");
        assert_eq!(b["messages"].as_array().unwrap().len(), 2);
        assert!(body(&with("")).get("system").is_none());
    }

    #[test]
    fn consecutive_same_role_turns_are_merged() {
        let b = body(
            r#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"},
            {"role":"assistant","content":"c"},{"role":"assistant","content":[{"type":"text","text":"d"}]},
            {"role":"user","content":"e"}]}"#,
        );
        assert_eq!(
            b["messages"],
            json!([
                {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
                {"role":"assistant","content":[{"type":"text","text":"c"},{"type":"text","text":"d"}]},
                {"role":"user","content":[{"type":"text","text":"e"}]}
            ])
        );
    }

    #[test]
    fn a_conversation_must_start_with_a_user_turn() {
        let b = body(
            r#"{"model":"m","messages":[{"role":"system","content":"s"},
            {"role":"assistant","content":"Hello, how can I help?"},{"role":"user","content":"hi"}]}"#,
        );
        assert_eq!(
            b["messages"][0],
            json!({"role":"user","content":[{"type":"text","text":"."}]})
        );
        assert_eq!(b["messages"][1]["role"], "assistant");
        let b = body(r#"{"model":"m","messages":[{"role":"system","content":"only"}]}"#);
        assert_eq!(
            b["messages"],
            json!([{"role":"user","content":[{"type":"text","text":"."}]}])
        );
        assert_eq!(b["system"], "only");
    }

    #[test]
    fn empty_messages_are_skipped_and_a_final_prefill_is_trimmed() {
        let b = body(
            r#"{"model":"m","messages":[{"role":"user","content":"q"},{"role":"user","content":""},
            {"role":"assistant","content":"The answer is "}]}"#,
        );
        assert_eq!(
            b["messages"],
            json!([
                {"role":"user","content":[{"type":"text","text":"q"}]},
                {"role":"assistant","content":[{"type":"text","text":"The answer is"}]}
            ])
        );
    }

    #[test]
    fn tool_calls_become_tool_use_blocks_and_bad_arguments_are_rejected() {
        let b = body(
            r#"{"model":"m","messages":[{"role":"user","content":"q"},
            {"role":"assistant","content":null,"tool_calls":[
              {"id":"toolu_1","type":"function","function":{"name":"f","arguments":"{\"a\":[1,2]}"}},
              {"id":"toolu_2","type":"function","function":{"name":"g","arguments":"  "}}]}]}"#,
        );
        assert_eq!(
            b["messages"][1]["content"],
            json!([
                {"type":"tool_use","id":"toolu_1","name":"f","input":{"a":[1,2]}},
                {"type":"tool_use","id":"toolu_2","name":"g","input":{}}
            ])
        );
        let msg = error(
            r#"{"model":"m","messages":[{"role":"user","content":"q"},
            {"role":"assistant","tool_calls":[{"id":"call_x","type":"function","function":{"name":"lookup","arguments":"{\"a\":"}}]}]}"#,
        );
        assert!(
            msg.contains("messages[1].tool_calls[0]")
                && msg.contains("call_x")
                && msg.contains("lookup")
                && msg.contains("not valid JSON"),
            "{msg}"
        );
        let msg = error(
            r#"{"model":"m","messages":[{"role":"user","content":"q"},
            {"role":"assistant","tool_calls":[{"id":"call_y","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}"#,
        );
        assert!(
            msg.contains("call_y") && msg.contains("JSON object"),
            "{msg}"
        );
    }

    #[test]
    fn consecutive_tool_messages_become_one_user_turn_of_results_first() {
        let b = body(
            r#"{"model":"m","messages":[{"role":"user","content":"q"},
            {"role":"assistant","tool_calls":[
              {"id":"t1","type":"function","function":{"name":"f","arguments":"{}"}},
              {"id":"t2","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"user","content":"by the way"},
            {"role":"tool","tool_call_id":"t1","content":"r1"},
            {"role":"tool","tool_call_id":"t2","content":""}]}"#,
        );
        let msgs = b["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3);
        assert_eq!(
            msgs[2],
            json!({"role":"user","content":[
                {"type":"tool_result","tool_use_id":"t1","content":"r1"},
                {"type":"tool_result","tool_use_id":"t2"},
                {"type":"text","text":"by the way"}
            ]})
        );
        let msg = error(
            r#"{"model":"m","messages":[{"role":"user","content":"q"},{"role":"tool","content":"r"}]}"#,
        );
        assert!(
            msg.contains("messages[1]") && msg.contains("tool_call_id"),
            "{msg}"
        );
    }

    #[test]
    fn tool_results_with_images_keep_them_as_blocks() {
        let b = body(
            r#"{"model":"m","messages":[{"role":"user","content":"q"},
            {"role":"assistant","tool_calls":[{"id":"t1","type":"function","function":{"name":"shot","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"t1","content":[{"type":"text","text":"here"},
              {"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]}"#,
        );
        assert_eq!(
            b["messages"][2]["content"][0],
            json!({"type":"tool_result","tool_use_id":"t1","content":[
                {"type":"text","text":"here"},
                {"type":"image","source":{"type":"url","url":"https://example.com/a.png"}}
            ]})
        );
    }

    #[test]
    fn images_need_a_supported_data_url_or_an_http_url() {
        let img = |url: &str| {
            format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"image_url","image_url":{{"url":"{url}"}}}}]}}]}}"#
            )
        };
        assert_eq!(
            body(&img("data:image/webp;base64,UklGRg=="))["messages"][0]["content"][0],
            json!({"type":"image","source":{"type":"base64","media_type":"image/webp","data":"UklGRg=="}})
        );
        assert_eq!(
            body(&img("HTTP://example.com/x.jpg"))["messages"][0]["content"][0]["source"],
            json!({"type":"url","url":"HTTP://example.com/x.jpg"})
        );
        assert!(error(&img("data:image/bmp;base64,Qk0=")).contains("image/bmp"));
        assert!(error(&img("ftp://example.com/x.png")).contains("image_url"));
        assert!(error(&img("data:image/png,rawbytes")).contains("image_url"));
    }

    #[test]
    fn content_parts_anthropic_cannot_take_are_rejected_in_user_input() {
        let msg = error(
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"listen"},
            {"type":"input_audio","input_audio":{"data":"AAA=","format":"wav"}}]}]}"#,
        );
        assert!(
            msg.contains("messages[0]") && msg.contains("content part"),
            "{msg}"
        );
        // In the assistant's own history it is dropped instead.
        let b = body(
            r#"{"model":"m","messages":[{"role":"user","content":"q"},
            {"role":"assistant","content":[{"type":"refusal","refusal":"no"},{"type":"text","text":"ok"}]},
            {"role":"user","content":"again"}]}"#,
        );
        assert_eq!(
            b["messages"][1]["content"],
            json!([{"type":"text","text":"ok"}])
        );
    }

    #[test]
    fn tools_map_to_input_schemas() {
        let b = body(&with(
            r#","tools":[{"type":"function","function":{"name":"a","parameters":{"properties":{"x":{"type":"integer"}}}}},
            {"type":"function","function":{"name":"b","description":"B","strict":true}}]"#,
        ));
        assert_eq!(
            b["tools"],
            json!([
                {"name":"a","input_schema":{"type":"object","properties":{"x":{"type":"integer"}}}},
                {"name":"b","description":"B","input_schema":{"type":"object","properties":{}}}
            ])
        );
        assert!(b.get("tool_choice").is_none());
        let msg = error(&with(
            r#","tools":[{"type":"custom","function":{"name":"a"}}]"#,
        ));
        assert!(msg.contains("\"custom\""), "{msg}");
    }

    #[test]
    fn tool_choice_and_parallel_tool_calls_map() {
        let tools = r#","tools":[{"type":"function","function":{"name":"f"}}]"#;
        let choice = |rest: &str| body(&with(&format!("{tools}{rest}")))["tool_choice"].clone();
        assert_eq!(choice(r#","tool_choice":"auto""#), json!({"type":"auto"}));
        assert_eq!(choice(r#","tool_choice":"none""#), json!({"type":"none"}));
        assert_eq!(
            choice(r#","tool_choice":"required""#),
            json!({"type":"any"})
        );
        assert_eq!(
            choice(r#","tool_choice":{"type":"function","function":{"name":"f"}}"#),
            json!({"type":"tool","name":"f"})
        );
        assert_eq!(
            choice(r#","parallel_tool_calls":false"#),
            json!({"type":"auto","disable_parallel_tool_use":true})
        );
        assert_eq!(
            choice(r#","tool_choice":"required","parallel_tool_calls":false"#),
            json!({"type":"any","disable_parallel_tool_use":true})
        );
        assert_eq!(
            choice(
                r#","tool_choice":{"type":"function","function":{"name":"f"}},"parallel_tool_calls":false"#
            ),
            json!({"type":"tool","name":"f","disable_parallel_tool_use":true})
        );
        assert_eq!(choice(r#","parallel_tool_calls":true"#), Value::Null);
        assert!(
            error(&with(&format!(r#"{tools},"tool_choice":"sometimes""#))).contains("sometimes")
        );
        // No tools: nothing to choose from.
        assert!(body(&with(
            r#","tool_choice":"none","parallel_tool_calls":false"#
        ))
        .get("tool_choice")
        .is_none());
    }

    #[test]
    fn json_mode_forces_the_json_output_tool() {
        let b = body(&with(r#","response_format":{"type":"json_object"}"#));
        assert_eq!(
            b["tools"],
            json!([{"name":"json_output","description":JSON_TOOL_DESCRIPTION,"input_schema":{"type":"object"}}])
        );
        assert_eq!(
            b["tool_choice"],
            json!({"type":"tool","name":"json_output","disable_parallel_tool_use":true})
        );
        let b = body(&with(
            r#","response_format":{"type":"json_schema","json_schema":{"name":"n"}}"#,
        ));
        assert_eq!(b["tools"][0]["input_schema"], json!({"type":"object"}));
        let b = body(&with(r#","response_format":{"type":"text"}"#));
        assert!(b.get("tools").is_none() && b.get("tool_choice").is_none());
    }

    #[test]
    fn json_mode_with_the_clients_own_tools() {
        let tools = r#","tools":[{"type":"function","function":{"name":"f"}}],"response_format":{"type":"json_object"}"#;
        let b = body(&with(tools));
        let names: Vec<&str> = b["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["f", "json_output"]);
        assert_eq!(b["tool_choice"], json!({"type":"any"}));
        let b = body(&with(&format!(r#"{tools},"tool_choice":"none""#)));
        assert_eq!(b["tool_choice"]["name"], "json_output");
        let b = body(&with(&format!(
            r#"{tools},"tool_choice":{{"type":"function","function":{{"name":"f"}}}}"#
        )));
        assert_eq!(b["tool_choice"], json!({"type":"tool","name":"f"}));
        let msg = error(&with(
            r#","tools":[{"type":"function","function":{"name":"json_output"}}],"response_format":{"type":"json_object"}"#,
        ));
        assert!(
            msg.contains("json_output") && msg.contains("reserved"),
            "{msg}"
        );
    }

    #[test]
    fn max_tokens_precedence() {
        let t = target(|p| {
            p.settings = crate::providers::testing::settings(Kind::Anthropic, "max_tokens = 2048")
        });
        let mt = |extra: &str, t: &Target| body_for(&with(extra), t)["max_tokens"].clone();
        assert_eq!(mt(r#","max_completion_tokens":10,"max_tokens":20"#, &t), 10);
        assert_eq!(mt(r#","max_tokens":20"#, &t), 20);
        assert_eq!(mt("", &t), 2048);
        assert_eq!(mt("", &target(|_| {})), 4096);
    }

    #[test]
    fn temperature_is_clamped_and_top_p_never_joins_it() {
        let b = body(&with(r#","temperature":-0.5"#));
        assert_eq!(b["temperature"], 0.0);
        let b = body(&with(r#","temperature":0.7,"top_p":0.5"#));
        assert_eq!(b["temperature"], 0.7);
        assert!(b.get("top_p").is_none());
        let b = body(&with(r#","top_p":0.5"#));
        assert_eq!(b["top_p"], 0.5);
        assert!(b.get("temperature").is_none());
        // API versions from 2026-10-21 reject sampling parameters outright.
        let t = target(|p| {
            p.settings =
                crate::providers::testing::settings(Kind::Anthropic, "version = \"2026-10-21\"")
        });
        let b = body_for(&with(r#","temperature":0.2,"top_p":0.5"#), &t);
        assert!(b.get("temperature").is_none() && b.get("top_p").is_none());
    }

    #[test]
    fn stop_user_and_stream() {
        let b = body(&with(r#","stop":"END","user":"u-1","stream":true"#));
        assert_eq!(b["stop_sequences"], json!(["END"]));
        assert_eq!(b["metadata"], json!({"user_id":"u-1"}));
        assert_eq!(b["stream"], true);
        let b = body(&with(r#","stop":[" ","\n"],"user":"","stream":false"#));
        assert!(b.get("stop_sequences").is_none());
        assert!(b.get("metadata").is_none());
        assert!(b.get("stream").is_none());
    }

    #[test]
    fn fields_anthropic_cannot_express() {
        let msg = error(&with(r#","n":3"#));
        assert!(msg.contains("'n'") && msg.contains("one choice"), "{msg}");
        let b = body(&with(
            r#","n":1,"logprobs":true,"top_logprobs":3,"presence_penalty":1,"frequency_penalty":1,"seed":7"#,
        ));
        let mut keys: Vec<&String> = b.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["max_tokens", "messages", "model"]);
    }
}
