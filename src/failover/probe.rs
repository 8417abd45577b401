//! Active health probes (`health.interval` > 0): each enabled provider's cheap
//! endpoint; a failure counts toward its circuit, a success closes an open one.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::app::App;
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
        for p in snap.providers.iter().filter(|p| p.enabled()) {
            let Ok(req) = adapter_for(p.kind).probe_request(p) else {
                continue;
            };
            let t = p.timeouts;
            let start = Instant::now();
            let ok = match app
                .upstream
                .send(req, t.connect, start + t.first_byte, start + t.total)
                .await
            {
                Ok(resp) => resp.status().is_success(),
                Err(_) => false,
            };
            let key = p.health_key();
            if ok {
                app.health.success(&key);
            } else {
                tracing::warn!(provider = %p.name, "health probe failed");
                app.health.failure(&key, snap.circuit);
            }
        }
        tokio::time::sleep(interval).await;
    }
}
