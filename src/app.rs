//! The shared state every request sees: wiring only.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::cache::AnswerCache;
use crate::config::{EnvLookup, Snapshot, StatePolicy};
use crate::dashboard::Dashboard;
use crate::failover::budget::Budgets;
use crate::failover::health::Health;
use crate::failover::limit::Limits;
use crate::metrics::Metrics;
use crate::state::redis::responses::{EngineSlot, SharedResponses};
use crate::state::redis::Shared;
use crate::state::responses::ResponseStore;
use crate::telemetry::TelemetrySlot;
use crate::upstream::Upstream;

pub struct App {
    /// One snapshot, swapped whole on reload: requests in flight keep theirs.
    pub config: ArcSwap<Snapshot>,
    pub health: Arc<Health>,
    /// Each route's retry budget; outside the snapshot so a reload keeps it.
    pub budgets: Budgets,
    /// Per-provider `max_concurrency` slots; outside the snapshot like health.
    pub limits: Limits,
    pub upstream: Upstream,
    pub metrics: Metrics,
    /// What `/dashboard` shows beyond `/status`: recent attempts, failures, reloads.
    pub dashboard: Dashboard,
    /// Outside the snapshot so cached answers survive reloads.
    pub cache: AnswerCache,
    /// Responses-API answers kept for `previous_response_id` and `GET`: in this
    /// replica's memory, and in the shared engine when there is one.
    pub responses: Arc<dyn ResponseStore>,
    /// The engine replicas share state through (`[state] backend = "redis"`), with
    /// the tasks that keep this replica in step; `None` on memory.
    pub shared: Mutex<Option<Shared>>,
    /// What readers of shared state (cache, stored responses) see of it.
    pub engine: EngineSlot,
    pub reload: Mutex<ReloadStatus>,
    pub env: EnvLookup,
    /// Set when the shutdown grace ran out: streams still open end with their front
    /// door's final error event instead of being cut silently.
    pub draining: tokio::sync::watch::Sender<bool>,
    /// The span exporter (`[telemetry]`), swapped on reload.
    pub telemetry: TelemetrySlot,
}

#[derive(Debug, Default, Clone)]
pub struct ReloadStatus {
    /// Successful reloads since start.
    pub reloads: u64,
    /// The error of the most recent reload, if it failed.
    pub last_error: Option<String>,
}

impl App {
    /// Inside a tokio runtime when the config shares state (the engine's tasks start).
    pub fn new(snapshot: Snapshot, env: EnvLookup) -> Arc<App> {
        let engine = EngineSlot::default();
        let policy = snapshot.state.clone();
        let upstream = Upstream::new();
        upstream.prepare(&snapshot);
        let app = Arc::new(App {
            cache: AnswerCache::new(snapshot.cache.as_ref()).shared_through(engine.clone()),
            responses: Arc::new(SharedResponses::new(engine.clone())),
            shared: Mutex::new(None),
            engine,
            config: ArcSwap::from_pointee(snapshot),
            health: Health::new(),
            budgets: Budgets::default(),
            limits: Limits::default(),
            upstream,
            metrics: Metrics::default(),
            dashboard: Dashboard::default(),
            reload: Mutex::new(ReloadStatus::default()),
            env,
            draining: tokio::sync::watch::Sender::new(false),
            telemetry: TelemetrySlot::default(),
        });
        app.apply_state(&policy);
        app.apply_telemetry();
        app
    }

    /// Starts, stops or switches the shared engine to match `[state]` (at start and on
    /// every reload). Requests in flight finish on whichever they began with; this
    /// replica's own state carries over either way.
    pub fn apply_state(&self, policy: &StatePolicy) {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        let current = shared.as_ref().map(|s| s.policy());
        match (policy, current) {
            (StatePolicy::Memory, None) => return,
            (StatePolicy::Redis(p), Some(c)) if p == c => return,
            _ => {}
        }
        self.engine.store(None);
        *shared = None;
        let StatePolicy::Redis(p) = policy else {
            tracing::info!("shared state: off; this replica keeps its state in memory");
            return;
        };
        match Shared::start(
            p.clone(),
            self.health.clone(),
            self.metrics.state_errors.clone(),
        ) {
            Ok(s) => {
                tracing::info!(engine = %p.url.display(), "shared state: using the engine");
                self.engine.store(Some(s.engine.clone()));
                *shared = Some(s);
            }
            Err(e) => {
                tracing::error!(error = %e, "shared state: not started; this replica keeps its state in memory")
            }
        }
    }

    /// Starts, stops or replaces the span exporter to match the snapshot in force.
    pub fn apply_telemetry(&self) {
        let snap = self.config.load();
        self.telemetry.apply(
            snap.telemetry.as_ref(),
            &self.metrics.spans_dropped,
            &self.metrics.spans_failed,
        );
    }

    pub fn reload_status(&self) -> ReloadStatus {
        self.reload
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
