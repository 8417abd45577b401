//! `GET /dashboard`: one self-contained page (inline CSS and JS, embedded in the
//! binary) that polls `GET /dashboard/data` and redraws. Open like `/status`, and
//! like it free of secrets: provider names, targets, states, and failure reasons
//! that went through the same key redaction as the logs.

use std::time::SystemTime;

use http::{HeaderValue, Response, StatusCode};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::respond::json;
use crate::app::App;
use crate::config::Route;
use crate::dashboard::window::{BUCKETS, BUCKET_SECS};
use crate::failover::order::preview;
use crate::http::body::{full, Body};
use crate::providers::{Provider, Target};

const PAGE: &str = include_str!("dashboard.html");

/// The page may run its own inline script and fetch from this origin, nothing else.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

pub fn page() -> Response<Body> {
    let mut resp = Response::new(full(PAGE));
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    resp
}

pub fn data(app: &App) -> Response<Body> {
    let snap = app.config.load();
    let reload = app.reload_status();
    let body = json!({
        "now": rfc3339(SystemTime::now()),
        "window_secs": BUCKETS as u64 * BUCKET_SECS,
        "config": {
            "path": snap.path.display().to_string(),
            "loaded_at": humantime::format_rfc3339_seconds(snap.loaded_at).to_string(),
            "reloads": reload.reloads,
            "last_error": reload.last_error,
        },
        "providers": snap.providers.iter().map(|p| provider(app, p)).collect::<Vec<_>>(),
        "routes": snap.routes.iter().map(|r| route(app, r)).collect::<Vec<_>>(),
        "failures": failures(app),
        "reloads": app.dashboard.reloads.newest_first().into_iter().map(|r| json!({
            "at": rfc3339(r.at), "ok": r.ok, "message": r.message,
        })).collect::<Vec<_>>(),
    });
    let mut resp = json(StatusCode::OK, body.to_string().into_bytes());
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    resp
}

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

fn secs_left(until: Instant) -> f64 {
    let left = until
        .saturating_duration_since(Instant::now())
        .as_secs_f64();
    (left * 10.0).round() / 10.0
}

fn provider(app: &App, p: &Provider) -> Value {
    let key = p.health_key();
    let (circuit, failures) = app.health.circuit(&key);
    let prefix = format!("{key}|");
    let cooldowns: Vec<_> = app
        .health
        .cooldowns()
        .into_iter()
        .filter_map(|(k, left)| {
            let model = k.strip_prefix(&prefix)?;
            Some(
                json!({"model": model, "seconds_left": (left.as_secs_f64() * 10.0).round() / 10.0}),
            )
        })
        .collect();
    let last = app.dashboard.summary(&p.name);
    json!({
        "name": p.name, "kind": p.kind.as_str(), "enabled": p.enabled(),
        "disabled_reason": p.disabled_reason,
        "circuit": circuit, "consecutive_failures": failures,
        "open_seconds_left": app.health.open_until(&key).map(secs_left),
        "cooldowns": cooldowns,
        "window": {
            "ok": last.ok, "failed": last.failed,
            "success_ratio": last.success_ratio(), "p50_ms": last.p50_ms,
        },
    })
}

/// Each target in the order the next request would walk them, with what admission
/// would say of it now (read only: no trial is taken, no cursor moved).
fn route(app: &App, r: &Route) -> Value {
    let order: Vec<_> = preview(app, r)
        .iter()
        .map(|t| {
            let (state, left) = target_state(app, t);
            json!({"target": t.label, "state": state, "seconds_left": left})
        })
        .collect();
    json!({"model": r.model, "strategy": r.strategy.as_str(), "order": order})
}

fn target_state(app: &App, t: &Target) -> (&'static str, Option<f64>) {
    if !t.provider.enabled() {
        return ("disabled", None);
    }
    if let Some(c) = app.health.cooldown(t) {
        return ("cooling", Some(secs_left(c.until)));
    }
    let key = t.provider_key();
    if let Some(until) = app.health.open_until(key) {
        return ("circuit_open", Some(secs_left(until)));
    }
    match app.health.circuit(key).0 {
        "half_open" => ("trial", None),
        _ => ("ready", None),
    }
}

fn failures(app: &App) -> Vec<Value> {
    app.dashboard
        .failures
        .newest_first()
        .into_iter()
        .map(|f| {
            json!({
                "at": rfc3339(f.at), "route": f.route, "target": f.target,
                "outcome": f.outcome, "reason": f.reason,
                "then": f.then.as_str(),
            })
        })
        .collect()
}
