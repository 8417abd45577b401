//! Active health probes (`health.interval` > 0): each enabled provider's cheap
//! endpoint; a failure counts toward its circuit, a success closes an open one.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::app::App;
use crate::config::{CircuitPolicy, Provider};
use crate::providers::adapter_for;

pub async fn run(app: Arc<App>) {
    loop {
        let snap = app.config.load_full();
        let interval = snap.health_interval;
        if interval.is_zero() {
            // Probing is off; look again later in case a reload turns it on.
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // Concurrently: one provider that hangs must not delay the others' probes.
        let probes = snap
            .providers
            .iter()
            .filter(|p| p.enabled())
            .map(|p| probe(&app, p, snap.circuit));
        futures_util::future::join_all(probes).await;
        tokio::time::sleep(interval).await;
    }
}

async fn probe(app: &App, p: &Provider, circuit: CircuitPolicy) {
    let Ok(req) = adapter_for(p.kind).probe_request(p) else {
        return;
    };
    let t = p.timeouts;
    let start = Instant::now();
    let problem = match app
        .upstream
        .send(req, t.connect, start + t.first_byte, start + t.total)
        .await
    {
        Ok(resp) if resp.status().is_success() => None,
        Ok(resp) => Some(format!("answered {}", resp.status())),
        Err(e) => Some(e.to_string()),
    };
    let key = p.health_key();
    match problem {
        None => {
            if app.health.circuit(&key).0 != "closed" {
                tracing::info!(provider = %p.name, "circuit closed by a good health probe");
            }
            app.health.success(&key);
        }
        Some(why) => {
            tracing::warn!(provider = %p.name, error = %why, "health probe failed");
            if app.health.failure(&key, circuit) {
                tracing::warn!(provider = %p.name, "circuit opened");
            }
        }
    }
}
