//! The input item types of OpenAI's Responses API: what a client may put in `input`.
//! Only these are accepted. Types the chat translation has no form for (hosted-tool
//! calls, shell and patch calls, MCP items, compaction, …) still pass to a target that
//! speaks Responses natively and are left out for translated ones, as hosted tools
//! are: Codex CLI and openai-agents replay them from earlier turns. A type outside
//! the API is a client's mistake and a 400 naming the item.

use serde_json::Value;

use crate::error::ProxyError;

/// The `type`s of the official `ResponseInputItemParam` union: the OpenAPI
/// description's `InputItem` plus what the pinned `openai` SDK adds
/// (`configuration_update`). Both are checked against this list by tests.
pub(super) const INPUT_ITEM_TYPES: &[&str] = &[
    "message",
    "function_call",
    "function_call_output",
    "reasoning",
    "item_reference",
    "file_search_call",
    "web_search_call",
    "computer_call",
    "computer_call_output",
    "image_generation_call",
    "code_interpreter_call",
    "local_shell_call",
    "local_shell_call_output",
    "shell_call",
    "shell_call_output",
    "apply_patch_call",
    "apply_patch_call_output",
    "custom_tool_call",
    "custom_tool_call_output",
    "mcp_list_tools",
    "mcp_approval_request",
    "mcp_approval_response",
    "mcp_call",
    "tool_search_call",
    "tool_search_output",
    "additional_tools",
    "configuration_update",
    "compaction",
    "compaction_trigger",
    "program",
    "program_output",
];

/// `input[i]`'s type, when it is one of the API's; else a 400 whose `param` is
/// `input[i].type`.
pub(super) fn checked_type(i: usize, kind: &Value) -> Result<&str, ProxyError> {
    let param = format!("input[{i}].type");
    match kind.as_str() {
        Some(k) if INPUT_ITEM_TYPES.contains(&k) => Ok(k),
        Some(k) => Err(ProxyError::InvalidParam {
            message: format!(
                "{param}: unknown input item type '{k}'; the Responses API's are {}",
                INPUT_ITEM_TYPES.join(", ")
            ),
            param,
        }),
        None => Err(ProxyError::InvalidParam {
            message: format!("{param}: must be a string, got {kind}"),
            param,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::*;

    /// Every `type` the OpenAPI description's `InputItem` union allows.
    fn schema_types() -> BTreeSet<String> {
        let schema: Value = serde_json::from_str(include_str!(
            "../../../fixtures/openai/responses_schemas.json"
        ))
        .unwrap();
        let defs = &schema["$defs"];
        fn walk(defs: &Value, name: &str, out: &mut BTreeSet<String>) {
            let def = &defs[name];
            if let Some(refs) = def["oneOf"].as_array() {
                for r in refs {
                    let name = r["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
                    walk(defs, name, out);
                }
                return;
            }
            let ty = &def["properties"]["type"];
            let options = std::iter::once(ty).chain(ty["anyOf"].as_array().into_iter().flatten());
            let mut named = 0;
            for o in options {
                for v in o["enum"].as_array().into_iter().flatten() {
                    out.insert(v.as_str().unwrap().to_string());
                    named += 1;
                }
            }
            assert!(named > 0, "{name} names its type");
        }
        let mut out = BTreeSet::new();
        walk(defs, "InputItem", &mut out);
        out
    }

    #[test]
    fn every_input_item_type_of_the_openapi_description_is_accepted() {
        let ours: BTreeSet<String> = INPUT_ITEM_TYPES.iter().map(|s| s.to_string()).collect();
        let schema = schema_types();
        assert!(schema.len() >= 30, "{schema:?}");
        let missing: Vec<_> = schema.difference(&ours).collect();
        assert!(missing.is_empty(), "not accepted: {missing:?}");
        let extra: Vec<_> = ours.difference(&schema).collect();
        assert_eq!(
            extra,
            ["configuration_update"],
            "only what the pinned SDK adds"
        );
    }

    #[test]
    fn an_unknown_type_names_the_item_and_a_non_string_type_is_refused() {
        assert_eq!(
            checked_type(0, &json!("local_shell_call")).unwrap(),
            "local_shell_call"
        );
        let Err(ProxyError::InvalidParam { param, message }) = checked_type(3, &json!("banana"))
        else {
            panic!("a 400 naming the field")
        };
        assert_eq!(param, "input[3].type");
        assert!(
            message.starts_with("input[3].type: unknown input item type 'banana'"),
            "{message}"
        );
        assert!(message.contains("function_call_output"), "{message}");
        let Err(ProxyError::InvalidParam { param, .. }) = checked_type(1, &json!(7)) else {
            panic!("a 400 naming the field")
        };
        assert_eq!(param, "input[1].type");
    }
}
