//! The proxy's canonical types: OpenAI Chat Completions' request, answer and stream
//! chunk, and OpenAI's embeddings request and answer. Front doors parse into and
//! render from these; provider adapters translate between them and each provider's
//! wire.
//!
//! Chat-shaped on purpose: it is the richest common denominator of every provider we
//! speak (tools, multi-part content, usage, finish reasons), and the one that
//! OpenAI-kind upstreams take unchanged, so the commonest path does no translation.

mod answer;
mod assemble;
mod chunk;
mod draft;
mod embed;
mod ids;
mod open;
mod prefill;
mod reasoning;
mod replay;
mod request;
#[cfg(test)]
pub(crate) mod testing;

pub use answer::*;
pub use assemble::Assembler;
pub(crate) use assemble::{complete, RECORD_LIMIT};
pub use chunk::*;
pub use embed::*;
pub use ids::*;
pub use reasoning::*;
pub use replay::replay;
pub use request::*;
