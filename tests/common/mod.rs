//! Test harness: the real proxy served in-process on 127.0.0.1:0, scriptable mock
//! upstreams that count what they receive, and a small HTTP client. Every test file
//! declares `mod common;` and uses `common::*`; not every file uses every helper,
//! hence the `allow`s.
#![allow(dead_code)]

pub mod client;
pub mod http_proxy;
pub mod logs;
pub mod mock;
pub mod otlp;
pub mod proxy;
pub mod redis;
pub mod sdk;
pub mod sse;
pub mod tls;
pub mod wait;

#[allow(unused_imports)]
pub use self::{
    client::*, http_proxy::*, logs::*, mock::*, otlp::*, proxy::*, redis::*, sdk::*, sse::*,
    tls::*, wait::*,
};
