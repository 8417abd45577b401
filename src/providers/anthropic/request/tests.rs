//! Request translation tests: the fixtures in `fixtures/anthropic/` and each rule
//! on small inline requests.

use serde_json::json;

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
            include_str!("../../../../fixtures/anthropic/request_tools.anthropic.json")
        }
        "request_json_schema.anthropic.json" => {
            include_str!("../../../../fixtures/anthropic/request_json_schema.anthropic.json")
        }
        _ => panic!("unknown fixture {name}"),
    };
    serde_json::from_str(text).unwrap()
}

#[test]
fn tools_conversation_translates_exactly_as_the_fixture() {
    let got = body(include_str!(
        "../../../../fixtures/anthropic/request_tools.openai.json"
    ));
    assert_eq!(got, fixture("request_tools.anthropic.json"));
}

#[test]
fn json_schema_request_translates_exactly_as_the_fixture() {
    let got = body(include_str!(
        "../../../../fixtures/anthropic/request_json_schema.openai.json"
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
    assert!(error(&with(&format!(r#"{tools},"tool_choice":"sometimes""#))).contains("sometimes"));
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
