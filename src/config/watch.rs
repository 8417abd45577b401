//! Hot reload: watch the config file's directory (so saves by rename, in-place writes
//! and Kubernetes' symlink swaps are all seen), debounce, validate, publish one new
//! snapshot. A bad file leaves the old config serving and is reported once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::Notify;

use super::{load, ConfigError, Snapshot};
use crate::app::App;
use crate::metrics::ResultLabel;

const DEBOUNCE: Duration = Duration::from_millis(200);

/// Loads the file again and, if valid, swaps it in. Returns whether it was applied.
/// A reload to a config that declares no providers would take every route away at
/// once — and is what a watcher sees when it reads a file an editor has just
/// truncated. The running config stays instead.
fn serves_something(new: Snapshot, old: &Snapshot) -> Result<Snapshot, ConfigError> {
    if new.providers.is_empty() && !old.providers.is_empty() {
        return Err(ConfigError {
            file: old.path.clone(),
            message: "the new config declares no providers (empty, or caught mid-write?); keeping the running one".into(),
        });
    }
    Ok(new)
}

pub fn reload(app: &App) -> bool {
    let old = app.config.load_full();
    match load(&old.path, &app.env).and_then(|new| serves_something(new, &old)) {
        Ok(mut new) => {
            new.path.clone_from(&old.path);
            log_changes(&old, &new);
            for w in new.warnings() {
                tracing::warn!("{w}");
            }
            app.health.retain(&new);
            app.budgets.retain(&new);
            app.cache.apply(new.cache.as_ref());
            app.apply_state(&new.state);
            app.upstream.prepare(&new);
            app.config.store(Arc::new(new));
            app.apply_telemetry();
            let mut st = app.reload.lock().unwrap_or_else(|e| e.into_inner());
            st.reloads += 1;
            st.last_error = None;
            app.dashboard.reloaded(true, summary(app));
            app.metrics
                .reloads
                .get_or_create(&ResultLabel { result: "ok" })
                .inc();
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "config reload failed; the previous config stays in force");
            let mut st = app.reload.lock().unwrap_or_else(|e| e.into_inner());
            st.last_error = Some(e.to_string());
            app.dashboard.reloaded(false, e.to_string());
            app.metrics
                .reloads
                .get_or_create(&ResultLabel { result: "error" })
                .inc();
            false
        }
    }
}

/// A good reload's line in the dashboard's history.
fn summary(app: &App) -> String {
    let snap = app.config.load();
    format!(
        "applied: {} routes, {} providers",
        snap.routes.len(),
        snap.providers.len()
    )
}

fn log_changes(old: &Snapshot, new: &Snapshot) {
    let names = |s: &Snapshot| {
        s.providers
            .iter()
            .map(|p| p.name.clone())
            .collect::<BTreeSet<_>>()
    };
    let (before, after) = (names(old), names(new));
    let added: Vec<_> = after.difference(&before).collect();
    let removed: Vec<_> = before.difference(&after).collect();
    let mut changed_routes = Vec::new();
    for r in &new.routes {
        let list = |route: &super::Route| {
            route
                .targets
                .iter()
                .map(|t| t.label.clone())
                .collect::<Vec<_>>()
        };
        match old.routes.iter().find(|o| o.model == r.model) {
            Some(o) if list(o) == list(r) && o.strategy == r.strategy => {}
            _ => changed_routes.push(format!("{} -> [{}]", r.model, list(r).join(", "))),
        }
    }
    let dropped: Vec<_> = old
        .routes
        .iter()
        .filter(|o| !new.routes.iter().any(|r| r.model == o.model))
        .map(|o| o.model.clone())
        .collect();
    let changed_providers: Vec<_> = new
        .providers
        .iter()
        .filter(|p| {
            old.provider(&p.name)
                .is_some_and(|o| o.health_key() != p.health_key() || o.enabled() != p.enabled())
        })
        .map(|p| p.name.clone())
        .collect();
    let passthrough = new.passthrough.as_ref().map(|p| p.provider.name.as_str());
    tracing::info!(
        providers_added = ?added,
        providers_removed = ?removed,
        providers_changed = ?changed_providers,
        routes_changed = ?changed_routes,
        routes_removed = ?dropped,
        passthrough = ?passthrough,
        "config reloaded"
    );
}

/// Watches the config's directory until the returned guard is dropped.
pub fn spawn_watcher(app: Arc<App>) -> notify::Result<WatchGuard> {
    let path = app.config.load().path.clone();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let wake = Arc::new(Notify::new());
    let wake_fs = wake.clone();
    let file_name = path.file_name().map(|n| n.to_os_string());
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            // Only our file, or a `..data`-style symlink swap that may replace it.
            let relevant = ev.paths.iter().any(|p| {
                p.file_name().map(|n| n.to_os_string()) == file_name
                    || p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(".."))
            });
            if relevant && !ev.kind.is_access() {
                wake_fs.notify_one();
            }
        }
    })?;
    // The baseline is read before watching starts, so no write can slip between.
    let baseline = std::fs::read(&path).ok();
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    let task = tokio::spawn(debounce_loop(app, path, wake, baseline));
    Ok(WatchGuard {
        _watcher: watcher,
        task,
    })
}

pub struct WatchGuard {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn debounce_loop(app: Arc<App>, path: PathBuf, wake: Arc<Notify>, baseline: Option<Vec<u8>>) {
    let mut last = baseline;
    loop {
        wake.notified().await;
        // Settle: every further event restarts the wait, so a half-written file is
        // not loaded.
        while tokio::time::timeout(DEBOUNCE, wake.notified())
            .await
            .is_ok()
        {}
        let now = read(&path).await;
        if now == last {
            continue; // touched, renamed over with the same text, or a sibling changed
        }
        last = now;
        reload(&app);
    }
}

async fn read(path: &Path) -> Option<Vec<u8>> {
    tokio::fs::read(path).await.ok()
}
