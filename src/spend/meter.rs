//! A committed stream's usage: providers report it in the final chunk (Anthropic's
//! `message_delta`, Gemini's last candidate, OpenAI's usage-only chunk, Ollama's
//! `done`), so the meter keeps the last one seen and books it when the stream ends —
//! logged, since a stream has no trailer to carry the cost. The chunks are watched
//! before the front door filters them: counting never depends on whether the client
//! asked for usage.

use std::sync::Arc;

use super::{book, format_usd, Tokens};
use crate::app::App;
use crate::canonical::{ChatChunk, Usage};
use crate::providers::Target;

pub struct Meter {
    app: Arc<App>,
    target: Arc<Target>,
    usage: Option<Usage>,
}

impl Meter {
    pub fn new(app: Arc<App>, target: Arc<Target>) -> Meter {
        Meter {
            app,
            target,
            usage: None,
        }
    }

    pub fn chunk(&mut self, chunk: &ChatChunk) {
        if let Some(u) = &chunk.usage {
            self.usage = Some(u.clone());
        }
    }

    /// Books the usage seen, once. Called when the stream ends, well or badly; a
    /// stream whose client left is booked when it is dropped.
    pub fn finish(&mut self) {
        let Some(usage) = self.usage.take() else {
            return;
        };
        let tokens = Tokens::of(&usage);
        let cost = book(&self.app.metrics, &self.target, &tokens);
        tracing::info!(
            provider = %self.target.provider.name,
            model = %self.target.model,
            input_tokens = tokens.input,
            output_tokens = tokens.output,
            cached_tokens = tokens.cached,
            reasoning_tokens = tokens.reasoning,
            cost_usd = cost.map(format_usd),
            "stream usage"
        );
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.finish();
    }
}
