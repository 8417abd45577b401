//! OpenAI Chat Completions request → Gemini `GenerateContentRequest`.
//!
//! - `system` / `developer` messages → `systemInstruction.parts` (text only; when
//!   they are the whole conversation they become the user turn, since Gemini needs
//!   `contents`).
//! - `user` → role `user`, `assistant` → role `model`; consecutive turns of one role
//!   are merged into one (tool results included: they are `user` turns).
//! - Text parts → `{text}` (empty ones are skipped: Gemini rejects empty text);
//!   images: a base64 data URL → `inlineData{mimeType,data}`, an http(s) URL →
//!   `fileData{mimeType,fileUri}` with the type guessed from the extension
//!   (`image/jpeg` when unknown); any other URL is a 400 (dropping it would change the
//!   question). Audio, files and other part kinds are dropped with a debug log.
//! - Assistant `tool_calls` → `functionCall{name,args}` parts; the arguments must be
//!   a JSON object (empty means `{}`), anything else is a 400.
//! - `tool` messages → `functionResponse{name,response}` parts, `name` taken from the
//!   earlier assistant tool call with that id (unknown id: 400). `response` is the
//!   tool's output parsed as JSON when it is an object, else `{"result": <text>}`
//!   (Gemini's `response` is a Struct). Legacy `function` messages use their `name`.
//! - `tools` → one `tools[0].functionDeclarations` list, parameters converted by
//!   [`super::schema`]; a parameter object without properties is left out (Gemini
//!   rejects an OBJECT without properties). `tool_choice` → `toolConfig.
//!   functionCallingConfig.mode` AUTO / NONE / ANY, a named function → ANY +
//!   `allowedFunctionNames`.
//! - `generationConfig`: temperature, topP, maxOutputTokens (max_completion_tokens,
//!   else max_tokens), stopSequences, candidateCount (n), seed (wrapped to int32),
//!   presencePenalty, frequencyPenalty; `json_object` → responseMimeType
//!   `application/json`, `json_schema` → that plus `responseSchema`.
//! - Thinking (the canonical setting, else `reasoning_effort`) → `thinkingConfig`:
//!   `thinkingBudget` (0 off, -1 dynamic) and `includeThoughts` when on. This
//!   model's own reasoning is replayed: thought parts at the head of its turn, each
//!   signature back on the call (or text) it came with; other models' is left out.
//! - Dropped with a debug log: `parallel_tool_calls`, `user`, `logprobs`,
//!   `top_logprobs`, `detail` of images, non-function tools.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::schema;
use super::thoughts::Replay;
use crate::canonical::{
    ChatRequest, Content as OaContent, ContentPart, ImageUrl, Message, ResponseFormat, Role,
    Thinking, ToolCall, ToolChoice,
};
use crate::providers::{AdapterError, Target};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GenerateContentRequest {
    contents: Vec<Content>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<SystemInstruction>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolDecls>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<ToolConfig>,
    #[serde(skip_serializing_if = "GenerationConfig::is_empty")]
    generation_config: GenerationConfig,
}

#[derive(Debug, Serialize)]
struct Content {
    role: &'static str,
    parts: Vec<Part>,
}

#[derive(Debug, Serialize)]
struct SystemInstruction {
    parts: Vec<Part>,
}

/// One Gemini `Part`: serialised as `{"text": …}`, `{"inlineData": {…}}`, ….
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
enum Part {
    Text(String),
    InlineData(Blob),
    FileData(FileData),
    FunctionCall(FunctionCall),
    FunctionResponse(FunctionResponse),
    /// A thought part of this model's, replayed as it came.
    #[serde(untagged)]
    Thought(Value),
    /// A part with the thought signature it came with.
    #[serde(untagged)]
    Signed(Signed),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Signed {
    #[serde(flatten)]
    part: Signable,
    thought_signature: String,
}

/// The parts a signature rides on.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
enum Signable {
    Text(String),
    FunctionCall(FunctionCall),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Blob {
    mime_type: String,
    data: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FileData {
    mime_type: &'static str,
    file_uri: String,
}

#[derive(Debug, Serialize)]
struct FunctionCall {
    name: String,
    args: Map<String, Value>,
}

#[derive(Debug, Serialize)]
struct FunctionResponse {
    name: String,
    response: Map<String, Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolDecls {
    function_declarations: Vec<FunctionDeclaration>,
}

#[derive(Debug, Serialize)]
struct FunctionDeclaration {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig {
    function_calling_config: FunctionCallingConfig,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionCallingConfig {
    mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_function_names: Option<Vec<String>>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidate_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_schema: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_config: Option<ThinkingConfig>,
}

/// `thinkingBudget`: tokens, 0 for none, -1 for "the model decides".
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ThinkingConfig {
    thinking_budget: i64,
    include_thoughts: bool,
}

impl ThinkingConfig {
    /// The canonical setting: thoughts are included whenever thinking is on, so the
    /// client sees them as its own API shows reasoning.
    fn of(req: &ChatRequest) -> Option<ThinkingConfig> {
        let thinking_budget = match req.thinking()? {
            Thinking::Off => 0,
            Thinking::Auto => -1,
            Thinking::Budget(b) => i64::from(b),
        };
        Some(ThinkingConfig {
            thinking_budget,
            include_thoughts: thinking_budget != 0,
        })
    }
}

impl GenerationConfig {
    fn is_empty(&self) -> bool {
        self.temperature.is_none()
            && self.top_p.is_none()
            && self.max_output_tokens.is_none()
            && self.stop_sequences.is_empty()
            && self.candidate_count.is_none()
            && self.seed.is_none()
            && self.presence_penalty.is_none()
            && self.frequency_penalty.is_none()
            && self.response_mime_type.is_none()
            && self.response_schema.is_none()
            && self.thinking_config.is_none()
    }
}

fn invalid(msg: impl Into<String>) -> AdapterError {
    AdapterError::InvalidRequest(msg.into())
}

/// The Gemini request body for `req`.
pub(super) fn translate(
    req: &ChatRequest,
    target: &Target,
) -> Result<GenerateContentRequest, AdapterError> {
    req.function_tools_only("Gemini").map_err(invalid)?;
    let mut system: Vec<Part> = Vec::new();
    let mut contents: Vec<Content> = Vec::new();
    // Tool-call id → function name, from the assistant turns seen so far.
    let mut call_names: HashMap<&str, &str> = HashMap::new();

    for (i, m) in req.messages.iter().enumerate() {
        match m.role {
            Role::System | Role::Developer => system.extend(system_parts(m, i)),
            Role::User => push_turn(&mut contents, "user", user_parts(m, i)?),
            Role::Assistant => {
                let mut replay = Replay::of(m.reasoning.iter().filter(|r| r.origin.is(target)));
                let mut parts: Vec<Part> = std::mem::take(&mut replay.thoughts)
                    .into_iter()
                    .map(Part::Thought)
                    .collect();
                let mut text = text_parts(m);
                if let (Some(first), Some(sig)) = (text.first_mut(), replay.text.clone()) {
                    sign(first, sig);
                }
                parts.extend(text);
                for call in m.tool_calls.iter().flatten() {
                    call_names.insert(call.id.as_str(), call.function.name.as_str());
                    let mut part = Part::FunctionCall(function_call(call, i)?);
                    if let Some(sig) = replay.call_signature(&call.id) {
                        sign(&mut part, sig);
                    }
                    parts.push(part);
                }
                push_turn(&mut contents, "model", parts);
            }
            Role::Tool | Role::Function => {
                let name = match (m.role, m.tool_call_id.as_deref()) {
                    (Role::Tool, Some(id)) => call_names.get(id).copied().ok_or_else(|| {
                        invalid(format!(
                            "messages[{i}]: tool_call_id {id:?} does not answer any earlier assistant tool call"
                        ))
                    })?,
                    (Role::Tool, None) => {
                        return Err(invalid(format!("messages[{i}]: tool message without tool_call_id")))
                    }
                    _ => m.name.as_deref().ok_or_else(|| {
                        invalid(format!("messages[{i}]: function message without name"))
                    })?,
                };
                let response = function_response(&m.text());
                push_turn(
                    &mut contents,
                    "user",
                    vec![Part::FunctionResponse(FunctionResponse {
                        name: name.to_string(),
                        response,
                    })],
                );
            }
        }
    }

    let mut system_instruction =
        (!system.is_empty()).then_some(SystemInstruction { parts: system });
    if contents.is_empty() {
        if let Some(si) = system_instruction.take() {
            tracing::debug!("gemini: only system messages; sent as the user turn");
            contents.push(Content {
                role: "user",
                parts: si.parts,
            });
        }
    }

    let tools = tool_declarations(req);
    let tool_config = tool_config(req, !tools.is_empty())?;
    Ok(GenerateContentRequest {
        contents,
        system_instruction,
        tools,
        tool_config,
        generation_config: generation_config(req),
    })
}

/// Puts a thought signature back on the part it came with.
fn sign(part: &mut Part, thought_signature: String) {
    let signable = match std::mem::replace(part, Part::Text(String::new())) {
        Part::Text(t) => Signable::Text(t),
        Part::FunctionCall(f) => Signable::FunctionCall(f),
        other => {
            *part = other;
            return;
        }
    };
    *part = Part::Signed(Signed {
        part: signable,
        thought_signature,
    });
}

/// Appends a turn, merging it into the previous one when the role is the same.
fn push_turn(contents: &mut Vec<Content>, role: &'static str, parts: Vec<Part>) {
    if parts.is_empty() {
        tracing::debug!(role, "gemini: message without content skipped");
        return;
    }
    match contents.last_mut() {
        Some(last) if last.role == role => last.parts.extend(parts),
        _ => contents.push(Content { role, parts }),
    }
}

fn system_parts(m: &Message, i: usize) -> Vec<Part> {
    if let Some(OaContent::Parts(parts)) = &m.content {
        if parts.iter().any(|p| !matches!(p, ContentPart::Text { .. })) {
            tracing::debug!(
                message = i,
                "gemini: non-text parts of a system message dropped"
            );
        }
    }
    text_parts(m)
}

/// The text of a message as parts; images and other kinds are not looked at.
fn text_parts(m: &Message) -> Vec<Part> {
    match &m.content {
        None => Vec::new(),
        Some(OaContent::Text(s)) => text(s).into_iter().collect(),
        Some(OaContent::Parts(parts)) => parts
            .iter()
            .filter_map(|p| match p {
                ContentPart::Text { text: t } => text(t),
                _ => None,
            })
            .collect(),
    }
}

fn text(s: &str) -> Option<Part> {
    (!s.is_empty()).then(|| Part::Text(s.to_string()))
}

fn user_parts(m: &Message, i: usize) -> Result<Vec<Part>, AdapterError> {
    let Some(OaContent::Parts(parts)) = &m.content else {
        return Ok(text_parts(m));
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, p) in parts.iter().enumerate() {
        match p {
            ContentPart::Text { text: t } => out.extend(text(t)),
            ContentPart::ImageUrl { image_url } => out.push(image(image_url, i, j)?),
            ContentPart::Unsupported => {
                tracing::debug!(
                    message = i,
                    part = j,
                    "gemini: content part kind not supported, dropped"
                );
            }
        }
    }
    Ok(out)
}

fn image(image: &ImageUrl, i: usize, j: usize) -> Result<Part, AdapterError> {
    if image.detail.is_some() {
        tracing::debug!(message = i, part = j, "gemini: image detail dropped");
    }
    if let Some(data) = image.as_data_url() {
        let mime = data.media_type.split(';').next().unwrap_or_default();
        return Ok(Part::InlineData(Blob {
            mime_type: mime.to_string(),
            data: data.base64.to_string(),
        }));
    }
    let lower = image
        .url
        .get(..8)
        .unwrap_or(&image.url)
        .to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        return Ok(Part::FileData(FileData {
            mime_type: guess_mime(&image.url),
            file_uri: image.url.clone(),
        }));
    }
    Err(invalid(format!(
        "messages[{i}].content[{j}]: image_url must be an http(s) URL or a base64 data URL"
    )))
}

/// The media type a URL's file extension suggests; `image/jpeg` when it says none.
pub(super) fn guess_mime(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let after_host = path.splitn(4, '/').nth(3).unwrap_or_default();
    let file = after_host.rsplit('/').next().unwrap_or_default();
    let ext = file
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        _ => "image/jpeg",
    }
}

fn function_call(call: &ToolCall, i: usize) -> Result<FunctionCall, AdapterError> {
    if call.kind != "function" {
        return Err(invalid(format!(
            "messages[{i}]: tool call {:?} of type {:?} cannot be sent to Gemini",
            call.id, call.kind
        )));
    }
    let args = if call.function.arguments.trim().is_empty() {
        Map::new()
    } else {
        match serde_json::from_str::<Value>(&call.function.arguments) {
            Ok(Value::Object(args)) => args,
            Ok(_) => {
                return Err(invalid(format!(
                    "messages[{i}]: arguments of tool call {:?} must be a JSON object",
                    call.id
                )))
            }
            Err(e) => {
                return Err(invalid(format!(
                    "messages[{i}]: arguments of tool call {:?} are not valid JSON: {e}",
                    call.id
                )))
            }
        }
    };
    Ok(FunctionCall {
        name: call.function.name.clone(),
        args,
    })
}

/// A tool's output as Gemini's `response` Struct: a JSON object as it is, anything
/// else as `{"result": <text>}`.
fn function_response(output: &str) -> Map<String, Value> {
    match serde_json::from_str::<Value>(output) {
        Ok(Value::Object(o)) => o,
        _ => Map::from_iter([("result".to_string(), Value::String(output.to_string()))]),
    }
}

fn tool_declarations(req: &ChatRequest) -> Vec<ToolDecls> {
    let declarations: Vec<FunctionDeclaration> = req
        .tools
        .iter()
        .flatten()
        .filter(|t| {
            let keep = t.kind == "function";
            if !keep {
                tracing::debug!(kind = %t.kind, "gemini: non-function tool dropped");
            }
            keep
        })
        .map(|t| {
            let parameters = t
                .function
                .parameters
                .as_ref()
                .map(schema::to_gemini)
                .filter(|p| {
                    !schema::is_empty_object(p) && p.as_object().is_some_and(|o| !o.is_empty())
                });
            FunctionDeclaration {
                name: t.function.name.clone(),
                description: t.function.description.clone(),
                parameters,
            }
        })
        .collect();
    if declarations.is_empty() {
        Vec::new()
    } else {
        vec![ToolDecls {
            function_declarations: declarations,
        }]
    }
}

fn tool_config(req: &ChatRequest, has_tools: bool) -> Result<Option<ToolConfig>, AdapterError> {
    let (mode, names) = match &req.tool_choice {
        None => return Ok(None),
        Some(ToolChoice::Mode(m)) => match m.as_str() {
            "auto" => ("AUTO", None),
            "none" => ("NONE", None),
            "required" => ("ANY", None),
            other => {
                return Err(invalid(format!(
                    "tool_choice {other:?} is not one of auto, none, required"
                )))
            }
        },
        Some(ToolChoice::Named(named)) => ("ANY", Some(vec![named.function.name.clone()])),
        Some(ToolChoice::Other(_)) => return Ok(None), // refused up front
    };
    if !has_tools {
        if mode == "ANY" {
            return Err(invalid("tool_choice requires tools"));
        }
        return Ok(None);
    }
    Ok(Some(ToolConfig {
        function_calling_config: FunctionCallingConfig {
            mode,
            allowed_function_names: names,
        },
    }))
}

fn generation_config(req: &ChatRequest) -> GenerationConfig {
    if req.parallel_tool_calls.is_some() {
        tracing::debug!("gemini: parallel_tool_calls dropped (not expressible)");
    }
    if req.user.is_some() {
        tracing::debug!("gemini: user dropped (not expressible)");
    }
    if req.logprobs.is_some() || req.top_logprobs.is_some() {
        tracing::debug!("gemini: logprobs / top_logprobs dropped (not supported)");
    }
    let seed = req.seed.map(|s| {
        let wrapped = s as i32;
        if i64::from(wrapped) != s {
            tracing::debug!(seed = s, wrapped, "gemini: seed wrapped to 32 bits");
        }
        wrapped
    });
    let (response_mime_type, response_schema) = match &req.response_format {
        None | Some(ResponseFormat::Text) => (None, None),
        Some(ResponseFormat::JsonObject) => (Some("application/json"), None),
        Some(ResponseFormat::JsonSchema { json_schema }) => (
            Some("application/json"),
            json_schema.schema.as_ref().map(schema::to_gemini),
        ),
    };
    GenerationConfig {
        temperature: req.temperature,
        top_p: req.top_p,
        max_output_tokens: req.max_output_tokens(),
        stop_sequences: req.stop_sequences(),
        candidate_count: req.n,
        seed,
        presence_penalty: req.presence_penalty,
        frequency_penalty: req.frequency_penalty,
        response_mime_type,
        response_schema,
        thinking_config: ThinkingConfig::of(req),
    }
}
