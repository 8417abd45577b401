//! Anthropic's token count (`POST /v1/messages/count_tokens`, answer
//! `{"input_tokens": N}`), for a Messages client's own count request. The body goes
//! to the client as it came; here it is only checked, so a 200 that is not a count
//! fails over like any malformed answer, and read into usage for the walk.

use serde::Deserialize;

use crate::canonical::{unix_now, ChatResponse, Usage};
use crate::providers::AdapterError;

pub(super) const PATH: &str = "/v1/messages/count_tokens";

/// `MessageTokensCount`: what the proxy needs of it (beta fields ride along in the
/// native body).
#[derive(Deserialize)]
struct Count {
    input_tokens: u64,
}

/// The count as a canonical answer: no choices, the count as prompt tokens, the
/// upstream's body kept for the client. A count has no id of its own, so none is
/// made up; nothing renders the canonical form (the body goes as is, and a request
/// only an Anthropic-kind target can serve is never cached).
pub(super) fn parse(body: &[u8], model: &str) -> Result<ChatResponse, AdapterError> {
    let count: Count = serde_json::from_slice(body)
        .map_err(|e| AdapterError::Protocol(format!("token count: {e}")))?;
    Ok(ChatResponse {
        id: String::new(),
        object: "chat.completion".into(),
        created: unix_now(),
        model: model.to_string(),
        choices: Vec::new(),
        usage: Some(Usage::new(count.input_tokens, 0)),
        extra: Default::default(),
        native: Some(bytes::Bytes::copy_from_slice(body)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_is_read_and_kept_as_it_came() {
        let body =
            br#"{"input_tokens": 2095, "context_management": {"original_input_tokens": 2300}}"#;
        let answer = parse(body, "claude-sonnet-4-5").unwrap();
        assert_eq!(answer.usage.unwrap().prompt_tokens, 2095);
        assert_eq!(answer.native.as_deref(), Some(&body[..]));
        assert!(answer.choices.is_empty());
    }

    #[test]
    fn anything_else_is_a_malformed_answer() {
        for body in [
            &b"{}"[..],
            br#"{"input_tokens": -1}"#,
            br#"{"input_tokens": "12"}"#,
            b"<html>",
        ] {
            assert!(
                matches!(parse(body, "m"), Err(AdapterError::Protocol(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
