//! An answer's token counts, read from the canonical usage every adapter fills:
//! cache reads as OpenAI's `prompt_tokens_details.cached_tokens` (Anthropic's
//! `cache_read_input_tokens`, Gemini's `cachedContentTokenCount`), reasoning as
//! `completion_tokens_details.reasoning_tokens` (Gemini's `thoughtsTokenCount`).

use serde_json::Value;

use crate::canonical::Usage;

/// `cached` is part of `input`, `reasoning` part of `output`, as providers bill them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cached: u64,
    pub reasoning: u64,
}

impl Tokens {
    pub fn of(u: &Usage) -> Tokens {
        let detail = |field: &str, key: &str| {
            u.extra
                .get(field)
                .and_then(|d| d.get(key))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        Tokens {
            input: u.prompt_tokens,
            output: u.completion_tokens,
            cached: detail("prompt_tokens_details", "cached_tokens"),
            reasoning: detail("completion_tokens_details", "reasoning_tokens"),
        }
    }

    /// An embeddings answer: input only.
    pub fn of_input(input: u64) -> Tokens {
        Tokens {
            input,
            ..Tokens::default()
        }
    }

    /// `(type label, count)` for `understudy_tokens_total`.
    pub fn by_type(&self) -> [(&'static str, u64); 4] {
        [
            ("input", self.input),
            ("output", self.output),
            ("cached", self.cached),
            ("reasoning", self.reasoning),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_read_where_reported_and_zero_elsewhere() {
        let u: Usage = serde_json::from_str(
            r#"{"prompt_tokens":120,"completion_tokens":40,"total_tokens":160,
                "prompt_tokens_details":{"cached_tokens":100,"audio_tokens":0},
                "completion_tokens_details":{"reasoning_tokens":30}}"#,
        )
        .unwrap();
        assert_eq!(
            Tokens::of(&u),
            Tokens {
                input: 120,
                output: 40,
                cached: 100,
                reasoning: 30
            }
        );
        let bare: Usage = serde_json::from_str(
            r#"{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,"prompt_tokens_details":null}"#,
        )
        .unwrap();
        assert_eq!(
            Tokens::of(&bare),
            Tokens {
                input: 3,
                output: 4,
                ..Tokens::default()
            }
        );
    }
}
