//! A model's reasoning, carried through the canonical types: what a provider showed
//! of its thinking, who made it, and what that provider needs to see it again.
//!
//! Reasoning is replayed only to the target that produced it: a signature from one
//! model means nothing (or a 400) to another. Front doors hand reasoning to clients
//! inside a *seal* — the Responses item's `encrypted_content`, the Messages thinking
//! block's `signature` — and read it back from there, so the producer survives the
//! client echoing items back, with or without stored state. A seal holds the
//! provider's name and kind, the model, and the provider's own replay data (its
//! signatures and thought text): never a key or a base URL.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::providers::Target;

/// Marks a seal the proxy made (and its format's version).
const SEAL_PREFIX: &str = "understudy.r1.";

/// The target that produced a piece of reasoning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The provider's name in proxy.toml.
    #[serde(rename = "p")]
    pub provider: String,
    /// Its kind (`anthropic`, `gemini`, …): a renamed provider of another kind is
    /// another provider.
    #[serde(rename = "k")]
    pub kind: String,
    /// The target's model, as configured.
    #[serde(rename = "m")]
    pub model: String,
}

impl Origin {
    pub fn of(target: &Target) -> Origin {
        Origin {
            provider: target.provider.name.clone(),
            kind: target.provider.kind.as_str().to_string(),
            model: target.model.clone(),
        }
    }

    /// Whether `target` is the one that produced the reasoning.
    pub fn is(&self, target: &Target) -> bool {
        self.provider == target.provider.name
            && self.kind == target.provider.kind.as_str()
            && self.model == target.model
    }
}

/// One piece of reasoning (an Anthropic thinking block, a run of Gemini thought
/// parts, an Ollama `thinking`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reasoning {
    /// What the provider showed of its thinking (may be empty: redacted thinking, a
    /// bare signature).
    pub text: String,
    pub origin: Origin,
    /// The producing adapter's replay data, opaque to everyone else; `Null` for none.
    pub data: Value,
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    #[serde(rename = "o")]
    origin: Origin,
    #[serde(rename = "t")]
    text: String,
    #[serde(rename = "d", default)]
    data: Value,
}

impl Reasoning {
    pub fn new(text: impl Into<String>, origin: Origin, data: Value) -> Reasoning {
        Reasoning {
            text: text.into(),
            origin,
            data,
        }
    }

    /// The opaque string a client keeps and sends back.
    pub fn seal(&self) -> String {
        let sealed = Sealed {
            origin: self.origin.clone(),
            text: self.text.clone(),
            data: self.data.clone(),
        };
        // Serialising plain data cannot fail.
        let json = serde_json::to_vec(&sealed).unwrap_or_default();
        format!("{SEAL_PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
    }

    /// The reasoning a seal holds; `None` for anything the proxy did not seal (a
    /// provider's own encrypted content or signature, or garbage).
    pub fn unseal(s: &str) -> Option<Reasoning> {
        let payload = s.strip_prefix(SEAL_PREFIX)?;
        let json = URL_SAFE_NO_PAD.decode(payload.trim()).ok()?;
        let sealed: Sealed = serde_json::from_slice(&json).ok()?;
        Some(Reasoning {
            text: sealed.text,
            origin: sealed.origin,
            data: sealed.data,
        })
    }

    /// Whether `s` is a seal of the proxy's (valid or not).
    pub fn is_seal(s: &str) -> bool {
        s.starts_with(SEAL_PREFIX)
    }
}

/// A piece of streamed reasoning: text as it comes, then the whole piece once it is
/// complete (its replay data often comes last: Anthropic's signature).
#[derive(Debug, Clone, PartialEq)]
pub enum ReasoningDelta {
    Text(String),
    Done(Reasoning),
}

/// How much the client asked the model to think, where its API says more than chat's
/// `reasoning_effort` (an exact budget, or "as much as it likes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Thinking {
    Off,
    /// At most this many thinking tokens.
    Budget(u32),
    /// The model decides (Anthropic's `adaptive`).
    Auto,
}

impl Thinking {
    /// Chat's `reasoning_effort` as a budget: Google's documented mapping for its
    /// OpenAI-compatible endpoint (low 1024, medium 8192, high 24576 tokens; none is
    /// off). Unknown levels say nothing.
    pub fn of_effort(effort: &str) -> Option<Thinking> {
        Some(match effort {
            "none" => Thinking::Off,
            "minimal" | "low" => Thinking::Budget(1024),
            "medium" => Thinking::Budget(8192),
            "high" => Thinking::Budget(24576),
            "xhigh" => Thinking::Budget(32768),
            _ => return None,
        })
    }

    /// A budget as chat's `reasoning_effort`, the inverse of [`Self::of_effort`] with
    /// the boundaries between its levels.
    pub fn effort(self) -> Option<&'static str> {
        match self {
            Thinking::Off => None,
            Thinking::Auto => Some("medium"),
            Thinking::Budget(0..=2048) => Some("low"),
            Thinking::Budget(2049..=16384) => Some("medium"),
            Thinking::Budget(_) => Some("high"),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::providers::testing::target;
    use crate::providers::Kind;

    fn origin() -> Origin {
        Origin {
            provider: "anthropic".into(),
            kind: "anthropic".into(),
            model: "claude".into(),
        }
    }

    #[test]
    fn a_seal_round_trips_and_foreign_strings_are_not_seals() {
        let r = Reasoning::new("hmm", origin(), json!({"signature": "EqQ"}));
        let s = r.seal();
        assert!(Reasoning::is_seal(&s));
        assert!(!s.contains("hmm"), "opaque: {s}");
        assert_eq!(Reasoning::unseal(&s), Some(r));
        for foreign in ["gAAAAABo-openai", "EqQBCgIYAh", "", "understudy.r1.!!!"] {
            assert_eq!(Reasoning::unseal(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn the_origin_is_the_provider_kind_and_model() {
        let t = target(Kind::Gemini, "http://x");
        let o = Origin::of(&t);
        assert!(o.is(&t));
        let other = Origin {
            model: "other".into(),
            ..o.clone()
        };
        assert!(!other.is(&t));
        assert!(!origin().is(&t));
    }

    #[test]
    fn effort_and_budget_map_both_ways() {
        for effort in ["low", "medium", "high"] {
            let t = Thinking::of_effort(effort).unwrap();
            assert_eq!(t.effort(), Some(effort));
        }
        assert_eq!(Thinking::of_effort("none"), Some(Thinking::Off));
        assert_eq!(Thinking::of_effort("galaxy-brain"), None);
        assert_eq!(Thinking::Budget(4000).effort(), Some("medium"));
        assert_eq!(Thinking::Off.effort(), None);
    }
}
