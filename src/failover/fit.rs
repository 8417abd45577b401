//! Does a request fit a target's declared `context_window`? The proxy has no
//! tokenizer for most models, so it estimates from the size of the text the model
//! reads, and skips a target only when the request *clearly* exceeds its window:
//! a near miss is left to the provider, whose own "too long" error fails over anyway.
//!
//! The estimate: UTF-8 bytes of every text the model reads — message text, names,
//! tool-call arguments, tool definitions, a response schema — over 4, the typical
//! bytes per token of today's BPE tokenizers on English (code and other scripts
//! take *more* tokens per byte, so they are only under-estimated). Images and other
//! binary parts count nothing: their base64 size says nothing of their tokens.
//!
//! "Clearly": the skip uses a floor of bytes over 6, as if the text packed 1.5× more
//! bytes into each token than typical, plus the output tokens the client reserved
//! (`max_tokens` / `max_completion_tokens`), which OpenAI-kind and Anthropic count
//! against the same window. Only when that floor does not fit is the target skipped.

use crate::canonical::{ChatRequest, Content, ContentPart, EmbedInput, EmbedRequest, Message};

/// Typical UTF-8 bytes per token of English text.
const BYTES_PER_TOKEN: u64 = 4;
/// The most bytes per token the skip assumes, so that only a clear excess skips.
const BYTES_PER_TOKEN_MAX: u64 = 6;

/// A request's size in tokens, as far as the proxy can tell without a tokenizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// Prompt tokens, typical estimate (what the client is shown).
    pub prompt: u64,
    /// Prompt tokens, the least the text could plausibly take.
    pub floor: u64,
    /// Output tokens the client reserved; 0 when it set no limit.
    pub output: u64,
}

impl Estimate {
    fn of_text(bytes: u64, output: u64) -> Estimate {
        Estimate {
            prompt: bytes.div_ceil(BYTES_PER_TOKEN),
            floor: bytes / BYTES_PER_TOKEN_MAX,
            output,
        }
    }

    /// Even at its floor, the request with its reserved output does not fit `window`.
    pub fn clearly_exceeds(&self, window: u64) -> bool {
        self.floor.saturating_add(self.output) > window
    }

    /// For error messages and logs: "~15000 prompt tokens (at least 10000) + 1000
    /// reserved for output".
    pub fn describe(&self) -> String {
        let mut s = if self.floor == self.prompt {
            format!("{} prompt tokens", self.prompt)
        } else {
            format!("~{} prompt tokens (at least {})", self.prompt, self.floor)
        };
        if self.output > 0 {
            s.push_str(&format!(" + {} reserved for output", self.output));
        }
        s
    }

    pub fn of_chat(req: &ChatRequest) -> Estimate {
        let mut bytes: usize = req.messages.iter().map(message_bytes).sum();
        for tool in req.tools.iter().flatten() {
            let f = &tool.function;
            bytes += f.name.len() + f.description.as_ref().map_or(0, String::len);
            bytes += f.parameters.as_ref().map_or(0, json_len);
        }
        if let Some(format) = &req.response_format {
            bytes += serde_json::to_string(format).map_or(0, |s| s.len());
        }
        let output = req.max_completion_tokens.or(req.max_tokens).unwrap_or(0);
        Estimate::of_text(bytes as u64, u64::from(output))
    }

    /// Each input is embedded on its own, so the window bounds the largest one. Token
    /// ids are counted exactly.
    pub fn of_embeddings(req: &EmbedRequest) -> Estimate {
        match &req.input {
            EmbedInput::Texts(texts) => {
                let longest = texts.iter().map(String::len).max().unwrap_or(0);
                Estimate::of_text(longest as u64, 0)
            }
            EmbedInput::Tokens(ids) => {
                let longest = ids.iter().map(Vec::len).max().unwrap_or(0) as u64;
                Estimate {
                    prompt: longest,
                    floor: longest,
                    output: 0,
                }
            }
        }
    }
}

fn message_bytes(m: &Message) -> usize {
    let content = match &m.content {
        None => 0,
        Some(Content::Text(s)) => s.len(),
        Some(Content::Parts(parts)) => parts
            .iter()
            .map(|p| match p {
                ContentPart::Text { text } => text.len(),
                ContentPart::ImageUrl { .. } | ContentPart::Unsupported => 0,
            })
            .sum(),
    };
    let calls: usize = m
        .tool_calls
        .iter()
        .flatten()
        .map(|c| c.function.name.len() + c.function.arguments.len())
        .sum();
    content + calls + m.name.as_ref().map_or(0, String::len)
}

fn json_len(v: &serde_json::Value) -> usize {
    serde_json::to_string(v).map_or(0, |s| s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: serde_json::Value) -> ChatRequest {
        ChatRequest::parse(body.to_string().into()).unwrap()
    }

    #[test]
    fn text_counts_at_four_bytes_a_token_and_images_count_nothing() {
        let text = "x".repeat(4000);
        let image = format!("data:image/png;base64,{}", "A".repeat(1_000_000));
        let req = chat(serde_json::json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": text},
                {"role": "user", "content": [
                    {"type": "text", "text": text},
                    {"type": "image_url", "image_url": {"url": image}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function",
                     "function": {"name": "abcd", "arguments": "{\"q\":\"1234567\"}"}}
                ]}
            ],
            "max_tokens": 100
        }));
        let e = Estimate::of_chat(&req);
        // 8000 text + 4 name + 16 arguments = 8020 bytes
        assert_eq!(
            e,
            Estimate {
                prompt: 2005,
                floor: 1336,
                output: 100
            }
        );
    }

    #[test]
    fn tools_and_schemas_count_and_the_newer_output_limit_wins() {
        let req = chat(serde_json::json!({
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {
                "name": "lookup", "description": "Find a thing",
                "parameters": {"type": "object"}}}],
            "max_tokens": 10,
            "max_completion_tokens": 20
        }));
        let e = Estimate::of_chat(&req);
        // "hi" 2 + "lookup" 6 + "Find a thing" 12 + {"type":"object"} 17 = 37
        assert_eq!((e.prompt, e.floor, e.output), (10, 6, 20));
    }

    #[test]
    fn only_a_clear_excess_skips() {
        // 60 000 bytes: typically 15 000 tokens, at least 10 000.
        let e = Estimate::of_text(60_000, 0);
        assert_eq!((e.prompt, e.floor), (15_000, 10_000));
        assert!(e.clearly_exceeds(9_999));
        assert!(
            !e.clearly_exceeds(10_000),
            "over the typical estimate but within the floor: left to the provider"
        );
        let with_output = Estimate::of_text(60_000, 1_000);
        assert!(
            with_output.clearly_exceeds(10_999),
            "reserved output counts"
        );
        assert!(!with_output.clearly_exceeds(11_000));
        let huge = Estimate::of_text(u64::MAX, u64::MAX);
        assert!(huge.clearly_exceeds(1), "no overflow");
    }

    #[test]
    fn embeddings_are_bounded_by_their_longest_input() {
        let req = EmbedRequest::parse(
            serde_json::json!({"model": "e", "input": ["a".repeat(600), "b".repeat(60)]})
                .to_string()
                .into(),
        )
        .unwrap();
        assert_eq!(
            Estimate::of_embeddings(&req),
            Estimate {
                prompt: 150,
                floor: 100,
                output: 0
            }
        );
        let req = EmbedRequest::parse(
            serde_json::json!({"model": "e", "input": [[1, 2, 3], [4]]})
                .to_string()
                .into(),
        )
        .unwrap();
        let e = Estimate::of_embeddings(&req);
        assert_eq!((e.prompt, e.floor), (3, 3), "token ids are exact");
        assert!(e.clearly_exceeds(2) && !e.clearly_exceeds(3));
    }
}
