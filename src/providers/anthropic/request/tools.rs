//! `tools` and `tool_choice`, with JSON mode carried by the `json_output` tool.

use std::borrow::Cow;

use serde_json::{json, Value};

use super::{invalid, json_mode, Choice, ToolDef, JSON_TOOL, JSON_TOOL_DESCRIPTION};
use crate::canonical::{ChatRequest, ResponseFormat, ToolChoice};
use crate::providers::AdapterError;

/// `tools` and `tool_choice`, the JSON-mode tool included.
pub(super) fn tools(
    req: &ChatRequest,
) -> Result<(Vec<ToolDef<'_>>, Option<Choice<'_>>), AdapterError> {
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
