//! Probes of each provider's cheap endpoint (DESIGN §6): the active health loop
//! (`health.interval` > 0: a failure counts toward the circuit, a success closes an
//! open one) and `understudy --check --probe`, which says what is wrong before any
//! traffic.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::app::App;
use crate::config::{CircuitPolicy, Provider};
use crate::providers::adapter_for;
use crate::upstream::Upstream;

/// What a probe found.
pub enum Probe {
    Ok,
    /// No answer: refused, timed out, TLS failed.
    Unreachable(String),
    /// Answered with an error status.
    Status {
        status: u16,
        /// `GET scheme://host/path` (no query: never a key).
        request: String,
        hint: Option<&'static str>,
    },
    /// The probe request could not even be built.
    Invalid(String),
}

impl Probe {
    pub fn is_ok(&self) -> bool {
        matches!(self, Probe::Ok)
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Probe::Ok => f.write_str("ok"),
            Probe::Unreachable(e) => write!(f, "unreachable: {e}"),
            Probe::Invalid(e) => write!(f, "cannot probe: {e}"),
            Probe::Status {
                status,
                request,
                hint,
            } => {
                let what = match status {
                    401 => " (bad key?)",
                    403 => " (key lacks permission?)",
                    404 => " (wrong base_url?)",
                    _ => "",
                };
                write!(f, "{status}{what} from {request}")?;
                if let Some(h) = hint {
                    write!(f, ": {h}")?;
                }
                Ok(())
            }
        }
    }
}

/// Probes one provider once.
pub async fn check(upstream: &Upstream, p: &Provider) -> Probe {
    let adapter = adapter_for(p.kind);
    let req = match adapter.probe_request(p) {
        Ok(r) => r,
        Err(e) => return Probe::Invalid(e.to_string()),
    };
    let uri = req.uri();
    let request = format!(
        "{} {}://{}{}",
        req.method(),
        uri.scheme_str().unwrap_or("http"),
        uri.authority().map_or("", |a| a.as_str()),
        uri.path()
    );
    let t = p.timeouts;
    let start = Instant::now();
    match upstream
        .send(
            req,
            &p.egress,
            t.connect,
            start + t.first_byte,
            start + t.total,
        )
        .await
    {
        Ok(resp) if resp.status().is_success() => Probe::Ok,
        Ok(resp) => {
            let status = resp.status().as_u16();
            Probe::Status {
                status,
                request,
                hint: if status == 404 {
                    adapter.base_url_hint(p)
                } else {
                    None
                },
            }
        }
        Err(e) => Probe::Unreachable(e.to_string()),
    }
}

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
    let result = check(&app.upstream, p).await;
    if matches!(result, Probe::Invalid(_)) {
        return;
    }
    let key = p.health_key();
    if result.is_ok() {
        if app.health.circuit(&key).0 != "closed" {
            tracing::info!(provider = %p.name, "circuit closed by a good health probe");
        }
        app.health.success(&key);
    } else {
        tracing::warn!(provider = %p.name, error = %result, "health probe failed");
        if app.health.failure(&key, circuit) {
            tracing::warn!(provider = %p.name, "circuit opened");
        }
    }
}
