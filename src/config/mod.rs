//! The validated runtime configuration. Raw TOML is turned into one [`Snapshot`]
//! before anything else sees it; a snapshot is immutable and published atomically.

mod raw;
mod validate;
mod warnings;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use raw::Strategy;
pub use validate::{check_listen, from_str, load, ConfigError};

pub use crate::providers::{Provider, Secret, Target, Timeouts};

/// Reads an environment variable; injectable so tests need not mutate the process env.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

pub fn process_env() -> EnvLookup {
    Arc::new(|name| std::env::var(name).ok())
}

#[derive(Debug)]
pub struct Snapshot {
    pub path: PathBuf,
    pub loaded_at: SystemTime,
    pub server: Server,
    pub failover: FailoverPolicy,
    pub circuit: CircuitPolicy,
    pub health_interval: Duration,
    pub fallback_message: Option<String>,
    /// `None` when `[cache]` is off.
    pub cache: Option<CachePolicy>,
    pub responses: ResponsesPolicy,
    pub state: StatePolicy,
    /// `None`: traces off.
    pub telemetry: Option<TelemetryPolicy>,
    /// `None` unless `[passthrough]` names a provider.
    pub passthrough: Option<PassthroughPolicy>,
    /// Sorted by name.
    pub providers: Vec<Arc<Provider>>,
    pub routes: Vec<Route>,
}

#[derive(Debug)]
pub struct Server {
    pub listen: String,
    /// TLS termination; read when the listener starts (a change needs a restart).
    pub tls: Option<TlsFiles>,
    /// Client keys; empty means the proxy is open.
    pub api_keys: Vec<Secret>,
    /// The variable they come from, for messages.
    pub api_keys_env: Option<String>,
    pub max_body_bytes: u64,
    pub body_timeout: Duration,
    pub shutdown_grace: Duration,
    /// Read when the listener starts, like `tls`: a change needs a restart.
    pub limits: ConnLimits,
}

/// Per-connection limits of the listener (`[server]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_header_total_bytes: usize,
}

/// PEM files, resolved against the config file's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct FailoverPolicy {
    pub on_status: Vec<u16>,
    pub max_attempts: u32,
    pub retries_per_target: u32,
    pub backoff: Duration,
    pub default_cooldown: Duration,
    pub max_cooldown: Duration,
    pub max_wait: Duration,
    /// When non-zero: start the next target too if the current one has no
    /// response head by then.
    pub hedge_after: Duration,
    /// The retry budget: extra attempts a route may send over the budget window.
    pub budget: BudgetPolicy,
    /// A stream that fails after content continues on the next target that can
    /// continue an assistant turn (DESIGN §10).
    pub resume_streams: bool,
}

/// Failovers, retries and hedges of a route may add at most `ratio` extra upstream
/// requests per client request over the window, and always `min_per_s` a second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetPolicy {
    pub ratio: f64,
    pub min_per_s: u32,
}

/// The validated `[cache]` section, present only when the cache is enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePolicy {
    pub mode: CacheMode,
    pub max_entries: u64,
    /// Fresh for this long: served without an upstream call.
    pub ttl: Duration,
    /// Kept this long: past `ttl`, served only when every target failed.
    pub stale_ttl: Duration,
}

/// `[responses]`: stored Responses-API answers.
/// `[state]`: this replica's own memory, or an engine the replicas share.
#[derive(Debug, Clone, PartialEq)]
pub enum StatePolicy {
    Memory,
    Redis(RedisPolicy),
}

/// Where and how spans are exported (`[telemetry]`).
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryPolicy {
    /// The full OTLP/HTTP traces URL (`…/v1/traces`).
    pub endpoint: http::Uri,
    /// Prompts and answers in spans; off by default, as they may hold personal data.
    pub capture_content: bool,
    pub service_name: String,
    /// Spans waiting for export; past it new spans are dropped (and counted), so a
    /// slow collector never holds a request.
    pub queue_size: usize,
    /// The share of new traces kept (a caller's sampled flag decides for its own);
    /// 1 keeps all.
    pub sample_ratio: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RedisPolicy {
    /// `redis://[user:pass@]host:port/db`; a secret, as it may hold a password.
    pub url: RedisUrl,
    /// The variable it came from, for messages.
    pub url_env: String,
    pub key_prefix: String,
    /// Per state operation; past it, the replica acts on its local state.
    pub timeout: Duration,
}

/// A Redis URL: compared whole, shown only without its credentials.
#[derive(Clone, PartialEq)]
pub struct RedisUrl(String);

impl RedisUrl {
    pub fn new(url: String) -> RedisUrl {
        RedisUrl(url)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// `host:port` (and db), for logs and `/status`.
    pub fn display(&self) -> String {
        let rest = self.0.split_once("://").map_or(self.0.as_str(), |(_, r)| r);
        let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
        rest.split(['?', '#'])
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisUrl({})", self.display())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponsesPolicy {
    /// How long a stored response can be fetched or continued.
    pub ttl: Duration,
    /// Memory backend: total size of stored responses; the oldest go first.
    pub max_bytes: u64,
}

/// `[passthrough]`: every other `/v1/*` request goes to this provider as it is.
#[derive(Debug, Clone)]
pub struct PassthroughPolicy {
    /// An OpenAI-kind provider of this snapshot (it may be disabled).
    pub provider: Arc<Provider>,
    /// Request bodies larger than this get 413.
    pub max_body_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// Only `temperature: 0` requests: the ones that ask for a repeatable answer.
    TemperatureZero,
    All,
}

#[derive(Debug, Clone, Copy)]
pub struct CircuitPolicy {
    pub failures: u32,
    pub open_for: Duration,
    /// Each consecutive re-open doubles the open period up to this (never below
    /// `open_for`).
    pub max_open_for: Duration,
}

#[derive(Debug)]
pub struct Route {
    pub model: String,
    pub strategy: Strategy,
    pub targets: Vec<Arc<Target>>,
    /// Where round-robin starts next; per snapshot, so a reload restarts it.
    pub cursor: std::sync::atomic::AtomicUsize,
}

/// What a request's `model` resolved to.
pub enum Resolved<'a> {
    Route(&'a Route),
    /// `PROVIDER/MODEL` naming a declared provider directly.
    Direct(Arc<Target>),
}

impl Resolved<'_> {
    /// The `route` label of metrics and logs. A direct target gets one label per
    /// provider: the model is the client's string, and labels must not grow with
    /// whatever clients send.
    pub fn label(&self) -> String {
        match self {
            Resolved::Route(r) => r.model.clone(),
            Resolved::Direct(t) => format!("{}/*", t.provider.name),
        }
    }
}

/// A client-named model goes into an upstream URL or body and into health state:
/// short, printable, and no path tricks.
fn direct_model_ok(model: &str) -> bool {
    !model.is_empty()
        && model.len() <= 256
        && !model.chars().any(|c| c.is_control() || c.is_whitespace())
        && !model.split('/').any(|seg| seg == ".." || seg == ".")
        && !model.starts_with('/')
}

impl Snapshot {
    pub fn provider(&self, name: &str) -> Option<&Arc<Provider>> {
        self.providers
            .binary_search_by(|p| p.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.providers[i])
    }

    /// Routes in file order, `*` matching anything; else `provider/model` directly.
    pub fn resolve(&self, model: &str) -> Option<Resolved<'_>> {
        if let Some(route) = self
            .routes
            .iter()
            .find(|r| r.model == model || r.model == "*")
        {
            return Some(Resolved::Route(route));
        }
        let (provider, target_model) = model.split_once('/')?;
        let provider = self.provider(provider)?;
        if !direct_model_ok(target_model) {
            return None;
        }
        let mut target = Target::new(provider.clone(), target_model, 1, provider.timeouts);
        target.direct = true;
        Some(Resolved::Direct(Arc::new(target)))
    }

    /// Whether any request could be served: some route has a target whose provider is
    /// enabled, or (with no routes) some provider is, for `PROVIDER/MODEL` requests.
    pub fn servable(&self) -> bool {
        if self.routes.is_empty() {
            return self.providers.iter().any(|p| p.enabled());
        }
        self.routes
            .iter()
            .flat_map(|r| &r.targets)
            .any(|t| t.provider.enabled())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One line for `--check` and startup: routes, providers, disabled ones and why.
    pub fn summary(&self) -> String {
        let enabled = self.providers.iter().filter(|p| p.enabled()).count();
        let disabled: Vec<String> = self
            .providers
            .iter()
            .filter_map(|p| {
                p.disabled_reason
                    .as_ref()
                    .map(|r| format!("{} ({})", p.name, r))
            })
            .collect();
        let routes: Vec<&str> = self.routes.iter().map(|r| r.model.as_str()).collect();
        format!(
            "{}: ok: {} route(s) [{}], {} provider(s) ({} enabled), disabled: {}",
            self.path.display(),
            self.routes.len(),
            routes.join(", "),
            self.providers.len(),
            enabled,
            if disabled.is_empty() {
                "none".to_string()
            } else {
                disabled.join(", ")
            }
        )
    }
}
