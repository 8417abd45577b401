//! State that outlives a request: this replica's own memory, and — with `[state]
//! backend = "redis"` — an engine the replicas share (DESIGN §9).

pub mod redis;
pub mod responses;
