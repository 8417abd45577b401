//! Gemini adapter tests: every translation rule, from the fixtures in
//! `fixtures/gemini/` (checked against Google's SDK types by
//! `scripts/fixtures/check_gemini.py`) and small inline cases; the helpers they share.

use super::*;
use crate::providers::testing::target_with;
use crate::providers::Kind;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/gemini/",
            $name
        ))
    };
}

fn gemini_target() -> Target {
    target_with(
        Kind::Gemini,
        "http://127.0.0.1:9/",
        "gemini-2.0-flash",
        |_| {},
    )
}

fn msgs(messages: &str) -> String {
    format!(r#"{{"model":"m","messages":{messages}}}"#)
}

fn is_call_id(id: &str) -> bool {
    id.len() == "call_".len() + 24
        && id.starts_with("call_")
        && id["call_".len()..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric())
}

mod answers;
mod errors;
mod requests;
mod streams;
mod thoughts;
