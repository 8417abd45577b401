//! The shared state every request sees: wiring only.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::cache::AnswerCache;
use crate::config::{EnvLookup, Snapshot};
use crate::failover::health::Health;
use crate::metrics::Metrics;
use crate::state::responses::{MemoryStore, ResponseStore};
use crate::upstream::Upstream;

pub struct App {
    /// One snapshot, swapped whole on reload: requests in flight keep theirs.
    pub config: ArcSwap<Snapshot>,
    pub health: Arc<Health>,
    pub upstream: Upstream,
    pub metrics: Metrics,
    /// Outside the snapshot so cached answers survive reloads.
    pub cache: AnswerCache,
    /// Responses-API answers kept for `previous_response_id` and `GET`.
    pub responses: Arc<dyn ResponseStore>,
    pub reload: Mutex<ReloadStatus>,
    pub env: EnvLookup,
    /// Set when the shutdown grace ran out: streams still open end with their front
    /// door's final error event instead of being cut silently.
    pub draining: tokio::sync::watch::Sender<bool>,
}

#[derive(Debug, Default, Clone)]
pub struct ReloadStatus {
    /// Successful reloads since start.
    pub reloads: u64,
    /// The error of the most recent reload, if it failed.
    pub last_error: Option<String>,
}

impl App {
    pub fn new(snapshot: Snapshot, env: EnvLookup) -> Arc<App> {
        Arc::new(App {
            cache: AnswerCache::new(snapshot.cache.as_ref()),
            responses: Arc::new(MemoryStore::default()),
            config: ArcSwap::from_pointee(snapshot),
            health: Health::new(),
            upstream: Upstream::new(),
            metrics: Metrics::default(),
            reload: Mutex::new(ReloadStatus::default()),
            env,
            draining: tokio::sync::watch::Sender::new(false),
        })
    }

    pub fn reload_status(&self) -> ReloadStatus {
        self.reload
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
