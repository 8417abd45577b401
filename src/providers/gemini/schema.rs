//! JSON Schema (what OpenAI clients send for tool parameters and `json_schema` answers)
//! → Gemini's `Schema`, a select subset of an OpenAPI 3.0 schema object.
//!
//! The generativelanguage v1beta `Schema` message (ai.google.dev/api/caching#Schema)
//! has exactly these fields, and the API answers 400 "Unknown name …" to any other:
//! `type`, `format`, `title`, `description`, `nullable`, `enum`, `maxItems`,
//! `minItems`, `properties`, `required`, `minProperties`, `maxProperties`,
//! `minLength`, `maxLength`, `pattern`, `example`, `anyOf`, `propertyOrdering`,
//! `default`, `items`, `minimum`, `maximum`. (The google-genai SDK's `Schema` type also
//! has `additionalProperties`, `defs` and `ref`, but those are Vertex AI only: the SDK
//! itself refuses `additionalProperties` for the Gemini Developer API.)
//!
//! So the conversion keeps only those keys, recursively, and rewrites what it can:
//! - `$ref` to a local JSON pointer (`#/$defs/X`, `#/definitions/X`, `#`, …) is
//!   inlined, then `$defs` / `definitions` go. A recursive reference, or one that
//!   cannot be resolved, becomes the referenced schema's `type` and `description`
//!   only (`{}` when even that is unknown), like the SDK does.
//! - `type` is upper-cased (the enum's proto name); `"null"` in a type list, in
//!   `anyOf`/`oneOf`, or as an `enum` value becomes `nullable: true`; a type list
//!   of several non-null types becomes `anyOf`; `oneOf` is read as `anyOf`; `allOf`
//!   is merged into its parent; `const` becomes a one-value `enum`; `enum` values
//!   become strings (Gemini's `enum` is `string[]`).
//! - `format` is kept only where the Gemini API accepts it: `enum`/`date-time` for
//!   STRING, `int32`/`int64` for INTEGER, `float`/`double` for NUMBER.
//! - A null `default` or `example` is dropped (it says nothing).
//! - Everything else — `$schema`, `$id`, `$comment`, `additionalProperties`,
//!   `strict`, `patternProperties`, `uniqueItems`, `exclusiveMinimum`,
//!   `exclusiveMaximum`, `multipleOf`, `not`, `if`/`then`/`else`, `examples`, … — is
//!   dropped with a debug log.

use serde_json::{Map, Value};

/// The keys of Gemini's `Schema` that are copied as they are.
const PLAIN_KEYS: &[&str] = &[
    "title",
    "description",
    "maxItems",
    "minItems",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "propertyOrdering",
];

/// Keys this module reads and rewrites (not reported as dropped).
const HANDLED_KEYS: &[&str] = &[
    "$ref",
    "$defs",
    "definitions",
    "type",
    "nullable",
    "anyOf",
    "oneOf",
    "allOf",
    "const",
    "enum",
    "format",
    "properties",
    "items",
    "default",
    "example",
];

/// Inlining `$ref`s can multiply a schema; past this many expansions the rest are
/// cut short like recursive ones.
const MAX_REF_EXPANSIONS: usize = 256;

/// Inlining may add at most this many bytes (as JSON text) per byte of the schema,
/// plus [`INLINE_SLACK`]: a few `$ref`s to one huge definition must not turn one
/// request into gigabytes.
const INLINE_FACTOR: usize = 4;
const INLINE_SLACK: usize = 64 * 1024;

/// Schemas nested deeper than this (after inlining) are cut to `{}`: no real tool
/// needs it, and it bounds the recursion on hostile input.
const MAX_DEPTH: usize = 64;

/// Converts one schema. `root` is the document `$ref` pointers resolve against.
pub(super) fn to_gemini(schema: &Value) -> Value {
    let size = serde_json::to_string(schema).map_or(0, |s| s.len());
    let mut cx = Converter {
        root: schema,
        expanding: Vec::new(),
        expansions: 0,
        inline_budget: size
            .saturating_mul(INLINE_FACTOR)
            .saturating_add(INLINE_SLACK),
        sizes: std::collections::HashMap::new(),
        depth: 0,
        dropped: Vec::new(),
    };
    let out = cx.convert(schema);
    if !cx.dropped.is_empty() {
        cx.dropped.sort();
        cx.dropped.dedup();
        tracing::debug!(dropped = ?cx.dropped, "gemini: schema keywords Gemini does not accept were dropped");
    }
    out
}

/// `true` when a converted schema is an object without properties: Gemini rejects
/// those as function parameters ("properties: should be non-empty for OBJECT type").
pub(super) fn is_empty_object(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("OBJECT")
        && schema
            .get("properties")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
}

struct Converter<'a> {
    root: &'a Value,
    /// `$ref`s being inlined on the current path (recursion guard).
    expanding: Vec<String>,
    expansions: usize,
    /// Bytes of referenced definitions that may still be inlined.
    inline_budget: usize,
    /// JSON size of each definition already measured.
    sizes: std::collections::HashMap<String, usize>,
    depth: usize,
    dropped: Vec<String>,
}

impl Converter<'_> {
    fn convert(&mut self, node: &Value) -> Value {
        match node {
            Value::Object(obj) => Value::Object(self.convert_object(obj)),
            // `true` (anything) and `false` (nothing) have no Gemini spelling.
            _ => Value::Object(Map::new()),
        }
    }

    fn convert_object(&mut self, obj: &Map<String, Value>) -> Map<String, Value> {
        if self.depth >= MAX_DEPTH {
            self.dropped
                .push(format!("nesting deeper than {MAX_DEPTH}"));
            return Map::new();
        }
        self.depth += 1;
        let out = self.convert_object_inner(obj);
        self.depth -= 1;
        out
    }

    fn convert_object_inner(&mut self, obj: &Map<String, Value>) -> Map<String, Value> {
        if let Some(reference) = obj.get("$ref").and_then(Value::as_str) {
            return self.convert_ref(reference, obj);
        }
        let mut out = Map::new();
        let mut nullable = obj.get("nullable").and_then(Value::as_bool) == Some(true);

        match obj.get("type") {
            Some(Value::String(t)) if t == "null" => nullable = true,
            Some(Value::String(t)) => {
                out.insert("type".into(), Value::String(t.to_ascii_uppercase()));
            }
            Some(Value::Array(types)) => {
                let mut named: Vec<String> = Vec::new();
                for t in types.iter().filter_map(Value::as_str) {
                    if t == "null" {
                        nullable = true;
                    } else {
                        named.push(t.to_ascii_uppercase());
                    }
                }
                match named.len() {
                    0 => {}
                    1 => {
                        out.insert("type".into(), Value::String(named.remove(0)));
                    }
                    _ => {
                        let alternatives = named
                            .into_iter()
                            .map(|t| Value::Object(Map::from_iter([("type".into(), t.into())])))
                            .collect();
                        out.insert("anyOf".into(), Value::Array(alternatives));
                    }
                }
            }
            _ => {}
        }

        for key in PLAIN_KEYS {
            if let Some(v) = obj.get(*key) {
                out.insert((*key).into(), v.clone());
            }
        }
        for key in ["default", "example"] {
            if let Some(v) = obj.get(key).filter(|v| !v.is_null()) {
                out.insert(key.into(), v.clone());
            }
        }

        if let Some(Value::Object(props)) = obj.get("properties") {
            let props = props
                .iter()
                .map(|(name, sub)| (name.clone(), self.convert(sub)))
                .collect();
            out.insert("properties".into(), Value::Object(props));
        }
        match obj.get("items") {
            Some(items @ Value::Object(_)) => {
                let items = self.convert(items);
                out.insert("items".into(), items);
            }
            Some(Value::Array(_)) => self.dropped.push("items (tuple form)".into()),
            _ => {}
        }

        // anyOf / oneOf: alternatives; a bare null alternative means "nullable".
        let mut alternatives: Vec<Value> = Vec::new();
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(subs)) = obj.get(key) {
                for sub in subs {
                    if is_null_schema(sub) {
                        nullable = true;
                    } else {
                        alternatives.push(self.convert(sub));
                    }
                }
            }
        }
        if let Some(Value::Array(existing)) = out.remove("anyOf") {
            alternatives.splice(0..0, existing);
        }
        if alternatives.len() == 1 {
            if let Some(Value::Object(only)) = alternatives.pop() {
                merge_into(&mut out, only);
            }
        } else if !alternatives.is_empty() {
            out.insert("anyOf".into(), Value::Array(alternatives));
        }

        if let Some(Value::Array(parts)) = obj.get("allOf") {
            for part in parts {
                if let Value::Object(part) = self.convert(part) {
                    merge_into(&mut out, part);
                }
            }
        }

        // const / enum → string enum
        let values: Option<Vec<Value>> = match (obj.get("const"), obj.get("enum")) {
            (Some(c), _) => Some(vec![c.clone()]),
            (None, Some(Value::Array(e))) => Some(e.clone()),
            _ => None,
        };
        if let Some(values) = values {
            let mut strings = Vec::new();
            for v in values {
                match v {
                    Value::Null => nullable = true,
                    Value::String(s) => strings.push(Value::String(s)),
                    other => strings.push(Value::String(other.to_string())),
                }
            }
            if !strings.is_empty() {
                out.entry("type").or_insert_with(|| "STRING".into());
                out.insert("enum".into(), Value::Array(strings));
            }
        }

        // A schema with no type but object or array keywords says what it is.
        if !out.contains_key("type") && !out.contains_key("anyOf") {
            if out.contains_key("properties") {
                out.insert("type".into(), "OBJECT".into());
            } else if out.contains_key("items") {
                out.insert("type".into(), "ARRAY".into());
            }
        }

        if let Some(format) = obj.get("format").and_then(Value::as_str) {
            let allowed = match out.get("type").and_then(Value::as_str) {
                Some("STRING") => ["enum", "date-time"].contains(&format),
                Some("INTEGER") => ["int32", "int64"].contains(&format),
                Some("NUMBER") => ["float", "double"].contains(&format),
                _ => false,
            };
            if allowed {
                out.insert("format".into(), Value::String(format.into()));
            } else {
                self.dropped.push(format!("format: {format}"));
            }
        }

        if nullable {
            out.insert("nullable".into(), Value::Bool(true));
        }

        for key in obj.keys() {
            if !PLAIN_KEYS.contains(&key.as_str()) && !HANDLED_KEYS.contains(&key.as_str()) {
                self.dropped.push(key.clone());
            }
        }
        out
    }

    /// Inlines a local reference; siblings of `$ref` (a description, say) win.
    fn convert_ref(&mut self, reference: &str, obj: &Map<String, Value>) -> Map<String, Value> {
        let target = reference
            .strip_prefix('#')
            .and_then(|pointer| self.root.pointer(pointer));
        let mut siblings = obj.clone();
        siblings.remove("$ref");
        let recursive = self.expanding.iter().any(|r| r == reference);
        let size = match target {
            Some(t) => *self
                .sizes
                .entry(reference.to_string())
                .or_insert_with(|| serde_json::to_string(t).map_or(usize::MAX, |s| s.len())),
            None => 0,
        };
        let affordable = size <= self.inline_budget;
        let mut out = match target {
            Some(Value::Object(target))
                if !recursive && affordable && self.expansions < MAX_REF_EXPANSIONS =>
            {
                self.expansions += 1;
                self.inline_budget -= size;
                self.expanding.push(reference.to_string());
                let out = self.convert_object(target);
                self.expanding.pop();
                out
            }
            _ => {
                self.dropped.push(format!("$ref: {reference}"));
                let mut stub = Map::new();
                if let Some(Value::Object(target)) = target {
                    if let Some(Value::String(t)) = target.get("type") {
                        stub.insert("type".into(), Value::String(t.to_ascii_uppercase()));
                    }
                    // The description is a copy too: it must fit what is left.
                    if let Some(Value::String(d)) = target.get("description") {
                        if d.len() <= self.inline_budget {
                            self.inline_budget -= d.len();
                            stub.insert("description".into(), Value::String(d.clone()));
                        }
                    }
                }
                stub
            }
        };
        if !siblings.is_empty() {
            let siblings = self.convert_object(&siblings);
            for (k, v) in siblings {
                out.insert(k, v);
            }
        }
        out
    }
}

/// `{"type": "null"}`, as found among `anyOf` alternatives.
fn is_null_schema(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str) == Some("null")
        && v.as_object().is_some_and(|o| o.len() == 1)
}

/// Shallow merge for `allOf` and single alternatives: properties and required
/// lists are united, other keys already set win.
fn merge_into(out: &mut Map<String, Value>, part: Map<String, Value>) {
    for (k, v) in part {
        match (k.as_str(), out.get_mut(&k), v) {
            ("properties", Some(Value::Object(mine)), Value::Object(theirs)) => {
                for (name, sub) in theirs {
                    mine.entry(name).or_insert(sub);
                }
            }
            ("required", Some(Value::Array(mine)), Value::Array(theirs)) => {
                for name in theirs {
                    if !mine.contains(&name) {
                        mine.push(name);
                    }
                }
            }
            (_, Some(_), _) => {}
            (_, None, v) => {
                out.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_only_gemini_keys_and_uppercases_types() {
        let got = to_gemini(&json!({
            "$schema": "http://json-schema.org/draft-07/schema#", "$id": "x", "strict": true,
            "type": "object", "additionalProperties": false, "title": "T",
            "properties": {
                "a": {"type": "string", "description": "d", "pattern": "^x", "minLength": 1,
                      "maxLength": 9, "format": "email", "examples": ["x"]},
                "b": {"type": "array", "items": {"type": "integer", "format": "int64",
                      "exclusiveMinimum": 0}, "minItems": 1, "maxItems": 3, "uniqueItems": true},
                "c": {"type": "object", "properties": {"d": {"type": "boolean"}},
                      "additionalProperties": {"type": "string"}, "minProperties": 1},
                "n": {"type": "number", "minimum": 0, "maximum": 1, "multipleOf": 0.5,
                      "format": "double", "default": 0.5, "example": null}
            },
            "required": ["a"], "propertyOrdering": ["a", "b", "c", "n"]
        }));
        assert_eq!(
            got,
            json!({
                "type": "OBJECT", "title": "T",
                "properties": {
                    "a": {"type": "STRING", "description": "d", "pattern": "^x", "minLength": 1,
                          "maxLength": 9},
                    "b": {"type": "ARRAY", "items": {"type": "INTEGER", "format": "int64"},
                          "minItems": 1, "maxItems": 3},
                    "c": {"type": "OBJECT", "properties": {"d": {"type": "BOOLEAN"}},
                          "minProperties": 1},
                    "n": {"type": "NUMBER", "minimum": 0, "maximum": 1, "format": "double",
                          "default": 0.5}
                },
                "required": ["a"], "propertyOrdering": ["a", "b", "c", "n"]
            })
        );
    }

    #[test]
    fn nullability_is_spelled_nullable() {
        let got = to_gemini(&json!({"type": "object", "properties": {
            "a": {"type": ["string", "null"]},
            "b": {"anyOf": [{"type": "integer"}, {"type": "null"}], "description": "b"},
            "c": {"oneOf": [{"type": "string"}, {"type": "number"}]},
            "d": {"type": ["string", "integer"]},
            "e": {"enum": ["x", null, 3, true]},
            "f": {"const": "only"},
            "g": {"type": "null"}
        }}));
        assert_eq!(
            got["properties"],
            json!({
                "a": {"type": "STRING", "nullable": true},
                "b": {"type": "INTEGER", "nullable": true, "description": "b"},
                "c": {"anyOf": [{"type": "STRING"}, {"type": "NUMBER"}]},
                "d": {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]},
                "e": {"type": "STRING", "enum": ["x", "3", "true"], "nullable": true},
                "f": {"type": "STRING", "enum": ["only"]},
                "g": {"nullable": true}
            })
        );
    }

    #[test]
    fn refs_are_inlined_and_recursion_is_cut() {
        let got = to_gemini(&json!({
            "type": "object",
            "definitions": {"Leaf": {"type": "string", "description": "leaf"}},
            "$defs": {"Node": {"type": "object", "description": "a node", "properties": {
                "value": {"$ref": "#/definitions/Leaf", "description": "the value"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}
            }}},
            "properties": {
                "tree": {"$ref": "#/$defs/Node"},
                "self": {"$ref": "#"},
                "missing": {"$ref": "#/$defs/Nope"},
                "remote": {"$ref": "https://example.com/s.json"},
                "merged": {"allOf": [
                    {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]},
                    {"properties": {"y": {"type": "string"}}, "required": ["y"]}
                ]}
            }
        }));
        assert_eq!(
            got["properties"]["tree"],
            json!({"type": "OBJECT", "description": "a node", "properties": {
                "value": {"type": "STRING", "description": "the value"},
                "children": {"type": "ARRAY", "items": {"type": "OBJECT", "description": "a node"}}
            }})
        );
        assert_eq!(got["properties"]["self"]["type"], "OBJECT");
        assert_eq!(
            got["properties"]["self"]["properties"]["self"],
            json!({"type": "OBJECT"})
        );
        assert_eq!(got["properties"]["missing"], json!({}));
        assert_eq!(got["properties"]["remote"], json!({}));
        assert_eq!(
            got["properties"]["merged"],
            json!({"type": "OBJECT", "properties": {"x": {"type": "STRING"}, "y": {"type": "STRING"}},
                   "required": ["x", "y"]})
        );
        assert!(got.get("$defs").is_none() && got.get("definitions").is_none());
    }

    #[test]
    fn ref_expansion_is_bounded() {
        // Each level references the next twice: 2^40 copies if expanded naively.
        let mut defs = Map::new();
        for i in 0..40 {
            let next = format!("#/$defs/D{}", i + 1);
            defs.insert(
                format!("D{i}"),
                json!({"type": "object", "properties": {"a": {"$ref": next}, "b": {"$ref": next}}}),
            );
        }
        defs.insert("D40".into(), json!({"type": "string"}));
        let schema = json!({"$defs": defs, "$ref": "#/$defs/D0"});
        let got = to_gemini(&schema);
        assert!(serde_json::to_string(&got).map(|s| s.len()).unwrap_or(0) < 1_000_000);
    }

    #[test]
    fn inlining_a_huge_definition_many_times_is_bounded_by_the_schema_size() {
        // 300 references to one 200 KB definition: 60 MB if every one were inlined.
        let big = "x".repeat(200_000);
        let props: Map<String, Value> = (0..300)
            .map(|i| (format!("p{i}"), json!({"$ref": "#/$defs/A"})))
            .collect();
        let schema = json!({"type": "object", "properties": props,
            "$defs": {"A": {"type": "string", "description": big}}});
        let input = serde_json::to_string(&schema).unwrap().len();
        let got = serde_json::to_string(&to_gemini(&schema)).unwrap().len();
        assert!(
            got <= input * (INLINE_FACTOR + 1) + INLINE_SLACK,
            "{got} vs input {input}"
        );
        assert!(got > 400_000, "some references are still inlined: {got}");
    }

    #[test]
    fn nesting_is_bounded() {
        let mut deep = json!({"type": "string"});
        for _ in 0..120 {
            deep = json!({"type": "object", "properties": {"x": deep}});
        }
        let got = to_gemini(&deep);
        let mut node = &got;
        let mut levels = 0;
        while let Some(next) = node.get("properties").and_then(|p| p.get("x")) {
            node = next;
            levels += 1;
        }
        assert_eq!(levels, MAX_DEPTH, "objects 1..=64 kept, the 65th cut");
        assert_eq!(node, &json!({}));

        // A chain of distinct definitions, each inlined inside the previous one.
        let mut defs = Map::new();
        for i in 0..1000 {
            defs.insert(
                format!("D{i}"),
                json!({"type": "object", "properties": {"n": {"$ref": format!("#/$defs/D{}", i + 1)}}}),
            );
        }
        let got = to_gemini(&json!({"$defs": defs, "$ref": "#/$defs/D0"}));
        assert_eq!(got["type"], "OBJECT");
    }

    #[test]
    fn empty_objects_are_recognised() {
        assert!(is_empty_object(&to_gemini(
            &json!({"type": "object", "properties": {}})
        )));
        assert!(is_empty_object(&to_gemini(&json!({"type": "object"}))));
        assert!(!is_empty_object(&to_gemini(
            &json!({"type": "object", "properties": {"a": {"type": "string"}}})
        )));
        assert_eq!(to_gemini(&json!(true)), json!({}));
    }
}
