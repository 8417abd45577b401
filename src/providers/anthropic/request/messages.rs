//! The conversation: system and developer text hoisted, every other message a
//! user or assistant turn of content blocks (text, images, tool calls and results).

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::{
    invalid, Block, ImageSource, ResultContent, Side, Turn, IMAGE_TYPES, PLACEHOLDER_USER,
};
use crate::canonical::{Content, ContentPart, ImageUrl, Message, Reasoning, Role};
use crate::providers::{AdapterError, Target};

/// The top-level `system` text and the user/assistant turns.
pub(super) fn conversation<'a>(
    messages: &'a [Message],
    target: &Target,
) -> Result<(Option<String>, Vec<Turn<'a>>), AdapterError> {
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
            Role::Assistant => (Side::Assistant, assistant_blocks(i, m, target)?),
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

/// This target's own thinking blocks of an assistant turn: they open it. Thinking of
/// any other model is left out.
fn own_thinking<'a>(m: &'a Message, target: &Target) -> Vec<Block<'a>> {
    let str_of = |r: &'a Reasoning, key: &str| r.data.get(key).and_then(Value::as_str);
    m.reasoning
        .iter()
        .filter(|r| r.origin.is(target))
        .filter_map(|r| match str_of(r, "type") {
            Some("thinking") => Some(Block::Thinking {
                thinking: str_of(r, "thinking")?,
                signature: str_of(r, "signature")?,
            }),
            Some("redacted_thinking") => Some(Block::RedactedThinking {
                data: str_of(r, "data")?,
            }),
            _ => None,
        })
        .collect()
}

fn assistant_blocks<'a>(
    i: usize,
    m: &'a Message,
    target: &Target,
) -> Result<Vec<Block<'a>>, AdapterError> {
    let mut out = own_thinking(m, target);
    out.extend(content_blocks(i, m, false)?);
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
