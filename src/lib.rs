//! understudy: an OpenAI-compatible reverse proxy that fails over across providers.

pub mod config;
pub mod http;
pub mod openai;
pub mod providers;
