//! State that outlives a request: behind traits, so a shared engine can stand in for
//! process memory when several replicas run.

pub mod responses;
