//! understudy: an OpenAI-compatible reverse proxy that fails over across providers.

pub mod app;
pub mod cache;
pub mod config;
pub mod error;
pub mod failover;
pub mod http;
pub mod metrics;
pub mod openai;
pub mod providers;
pub mod server;
pub mod upstream;

pub use app::App;
pub use server::serve;
