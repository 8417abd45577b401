//! understudy: an OpenAI-compatible reverse proxy that fails over across providers.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable
    )
)]

pub mod app;
pub mod cache;
pub mod canonical;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod failover;
pub mod frontdoor;
pub mod http;
pub mod metrics;
pub mod pem;
pub mod providers;
pub mod server;
pub mod spend;
pub mod state;
pub mod telemetry;
pub mod upstream;

pub use app::App;
pub use server::serve;
