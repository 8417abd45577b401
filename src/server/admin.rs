//! The operator's surface: /v1/models, /healthz, /readyz, /status, /metrics.

use std::time::UNIX_EPOCH;

use http::{HeaderValue, Response, StatusCode};
use serde_json::json;

use super::respond::{error_response, json};
use crate::app::App;
use crate::config::Snapshot;
use crate::error::ProxyError;
use crate::frontdoor::chat::CHAT;
use crate::http::body::{full, Body};
use crate::metrics::ProviderLabel;

/// OpenAI's model object for a route model.
fn model_object(snap: &Snapshot, id: &str) -> serde_json::Value {
    let created = snap
        .loaded_at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    json!({"id": id, "object": "model", "created": created, "owned_by": "understudy"})
}

pub fn models(app: &App) -> Response<Body> {
    let snap = app.config.load();
    let data: Vec<_> = snap
        .routes
        .iter()
        .filter(|r| r.model != "*")
        .map(|r| model_object(&snap, &r.model))
        .collect();
    json(
        StatusCode::OK,
        json!({"object": "list", "data": data})
            .to_string()
            .into_bytes(),
    )
}

/// Anthropic's model list (`models.list()` of its SDKs).
pub fn anthropic_models(app: &App) -> Response<Body> {
    let snap = app.config.load();
    let created = humantime::format_rfc3339_seconds(snap.loaded_at).to_string();
    let data: Vec<_> = snap
        .routes
        .iter()
        .filter(|r| r.model != "*")
        .map(|r| json!({"type": "model", "id": r.model, "display_name": r.model, "created_at": created, "lifecycle": "active"}))
        .collect();
    let first = data.first().map(|m| m["id"].clone());
    let last = data.last().map(|m| m["id"].clone());
    json(
        StatusCode::OK,
        json!({"data": data, "has_more": false, "first_id": first, "last_id": last})
            .to_string()
            .into_bytes(),
    )
}

/// `GET /v1/models/{id}` (the SDKs' `models.retrieve`): a route model, else 404.
/// The id is percent-decoded: route names may hold `/` or `:`.
pub fn model(app: &App, raw_id: &str, request_id: &HeaderValue) -> Response<Body> {
    let snap = app.config.load();
    let id = percent_decode(raw_id);
    match snap.routes.iter().find(|r| r.model != "*" && r.model == id) {
        Some(r) => json(
            StatusCode::OK,
            model_object(&snap, &r.model).to_string().into_bytes(),
        ),
        None => error_response(&CHAT, &ProxyError::ModelNotFound(id), request_id),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

pub fn healthz() -> Response<Body> {
    text(StatusCode::OK, "ok\n")
}

/// Ready when some route has a target whose provider is enabled, not open (cooling
/// targets count: they recover by themselves) and not shedding load (a slot or a
/// place in its `max_concurrency` queue is free).
pub fn readyz(app: &App) -> Response<Body> {
    let snap = app.config.load();
    let ready = snap.routes.iter().flat_map(|r| &r.targets).any(|t| {
        t.provider.enabled()
            && app.health.open_until(t.provider_key()).is_none()
            && app.limits.has_room(&t.provider)
    });
    if ready {
        text(StatusCode::OK, "ready\n")
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no route has a usable target\n",
        )
    }
}

pub fn status(app: &App) -> Response<Body> {
    let snap = app.config.load();
    let reload = app.reload_status();
    let providers: Vec<_> = snap
        .providers
        .iter()
        .map(|p| {
            let (circuit, failures) = app.health.circuit(&p.health_key());
            // The period in force (or, closed, the one a first open would take).
            let open_for = app
                .health
                .open_period(&p.health_key())
                .unwrap_or(snap.circuit.open_for);
            json!({
                "name": p.name, "kind": p.kind.as_str(), "enabled": p.enabled(),
                "disabled_reason": p.disabled_reason, "circuit": circuit,
                "consecutive_failures": failures,
                "open_for_secs": open_for.as_secs_f64(),
                "proxy": p.proxy_shown(),
            })
        })
        .collect();
    let cooldowns: Vec<_> = app
        .health
        .cooldowns()
        .into_iter()
        .filter_map(|(key, left)| {
            let p = snap.providers.iter().find(|p| {
                let pk = p.health_key();
                key.len() > pk.len() && key.starts_with(&pk) && key.as_bytes()[pk.len()] == b'|'
            })?;
            let model = &key[p.health_key().len() + 1..];
            Some(json!({"target": format!("{}/{}", p.name, model), "seconds_left": (left.as_secs_f64() * 10.0).round() / 10.0}))
        })
        .collect();
    let routes: Vec<_> = snap
        .routes
        .iter()
        .map(|r| json!({"model": r.model, "strategy": r.strategy.as_str(), "targets": r.targets.iter().map(|t| &t.label).collect::<Vec<_>>()}))
        .collect();
    let loaded_at = humantime::format_rfc3339_seconds(snap.loaded_at).to_string();
    let body = json!({
        "config": {"path": snap.path.display().to_string(), "loaded_at": loaded_at,
                   "reloads": reload.reloads, "last_error": reload.last_error},
        "routes": routes,
        "providers": providers,
        "cooldowns": cooldowns,
        "counters": app.metrics.totals.to_json(),
        "state": state(app),
    });
    json(StatusCode::OK, body.to_string().into_bytes())
}

/// Where shared state lives and whether this replica reaches it; never the URL's
/// credentials (DESIGN §9).
fn state(app: &App) -> serde_json::Value {
    match app.engine.load().as_ref() {
        None => json!({"backend": "memory"}),
        Some(engine) => json!({
            "backend": "redis",
            "engine": engine.link.endpoint,
            "connected": engine.link.is_up(),
            "errors": engine.link.errors(),
            "last_error": engine.link.last_error(),
        }),
    }
}

pub fn metrics(app: &App) -> Response<Body> {
    let snap = app.config.load();
    for p in &snap.providers {
        let open = app.health.open_until(&p.health_key()).is_some();
        app.metrics
            .circuit_open
            .get_or_create(&ProviderLabel {
                provider: p.name.clone(),
            })
            .set(i64::from(open));
    }
    app.metrics
        .cooldowns
        .set(app.health.cooldowns().len() as i64);
    let mut resp = Response::new(full(app.metrics.encode()));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}
