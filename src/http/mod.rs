//! Wire-level helpers shared by the server and the upstream client.

pub mod body;
pub mod sse;
