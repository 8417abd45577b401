//! Prometheus metrics; the names are part of the contract (DESIGN §6).

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// `understudy_requests_total`'s labels: DESIGN §6's `route` and `status`, then the
/// client API the request came in by (`chat`, `responses`, `messages`,
/// `count_tokens`), so the front doors can be told apart; sums over `api` give the
/// contract's series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    pub route: String,
    pub status: u16,
    pub api: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderOutcome {
    pub provider: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabel {
    pub provider: String,
}

/// `understudy_tokens_total`'s labels: `type` is input, output, cached or reasoning.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub provider: String,
    pub model: String,
    pub r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderModel {
    pub provider: String,
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

type HistogramFamily = Family<ProviderLabel, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RouteStatus, Counter>,
    pub attempts: Family<ProviderOutcome, Counter>,
    pub failovers: Family<RouteLabel, Counter>,
    pub budget_exhausted: Family<RouteLabel, Counter>,
    pub upstream_seconds: HistogramFamily,
    pub circuit_open: Family<ProviderLabel, Gauge>,
    pub cooldowns: Gauge,
    pub reloads: Family<ResultLabel, Counter>,
    pub cache: Family<ResultLabel, Counter>,
    pub inflight: Gauge,
    pub state_errors: Counter,
    /// Finished spans dropped because the export queue was full.
    pub spans_dropped: Counter,
    /// Spans lost to a failed or timed-out export.
    pub spans_failed: Counter,
    /// Streams that failed after content, by what resuming them did.
    pub stream_resumes: Family<ResultLabel, Counter>,
    pub tokens: Family<TokenLabels, Counter>,
    pub cost_usd: Family<ProviderModel, Counter<f64, AtomicU64>>,
    /// Load shedding: client connections open, and those closed at accept past
    /// `server.max_connections`; requests answered 503 `overloaded`; targets
    /// skipped because their provider was at `max_concurrency`.
    pub connections: Gauge,
    pub shed_connections: Counter,
    pub shed_requests: Family<RouteLabel, Counter>,
    pub concurrency_skips: Family<ProviderLabel, Counter>,
    /// Process-wide totals of the same events, for `/status`.
    pub totals: Totals,
}

/// The `attempts` outcomes in `/status` order (DESIGN §6 labels).
const OUTCOMES: [&str; 7] = [
    "ok",
    "rate_limited",
    "error_status",
    "timeout",
    "connect",
    "protocol",
    "stream",
];
const CACHE_RESULTS: [&str; 3] = ["hit", "miss", "stale"];

/// Label-free counters that `/status` shows without walking the metric families.
#[derive(Default)]
pub struct Totals {
    requests: AtomicU64,
    /// By status class: 2xx, 4xx, 5xx (anything else counts as 5xx).
    by_class: [AtomicU64; 3],
    attempts: [AtomicU64; OUTCOMES.len()],
    failovers: AtomicU64,
    cache: [AtomicU64; CACHE_RESULTS.len()],
}

impl Totals {
    pub fn to_json(&self) -> serde_json::Value {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let named =
            |names: &[&str], values: &[AtomicU64]| -> serde_json::Map<String, serde_json::Value> {
                names
                    .iter()
                    .zip(values)
                    .map(|(n, v)| ((*n).to_string(), get(v).into()))
                    .collect()
            };
        serde_json::json!({
            "requests": get(&self.requests),
            "responses": named(&["2xx", "4xx", "5xx"], &self.by_class),
            "attempts": named(&OUTCOMES, &self.attempts),
            "failovers": get(&self.failovers),
            "cache": named(&CACHE_RESULTS, &self.cache),
        })
    }
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~33 s
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RouteStatus, Counter>::default();
        let attempts = Family::<ProviderOutcome, Counter>::default();
        let failovers = Family::<RouteLabel, Counter>::default();
        let budget_exhausted = Family::<RouteLabel, Counter>::default();
        let upstream_seconds: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let circuit_open = Family::<ProviderLabel, Gauge>::default();
        let cooldowns = Gauge::default();
        let reloads = Family::<ResultLabel, Counter>::default();
        let cache = Family::<ResultLabel, Counter>::default();
        let inflight = Gauge::default();
        let state_errors = Counter::default();
        let spans_dropped = Counter::default();
        let spans_failed = Counter::default();
        registry.register(
            "understudy_spans_dropped",
            "Finished trace spans dropped because the export queue was full",
            spans_dropped.clone(),
        );
        registry.register(
            "understudy_spans_failed",
            "Trace spans lost to a failed or timed-out OTLP export",
            spans_failed.clone(),
        );
        let stream_resumes = Family::<ResultLabel, Counter>::default();
        let tokens = Family::<TokenLabels, Counter>::default();
        let cost_usd = Family::<ProviderModel, Counter<f64, AtomicU64>>::default();
        registry.register(
            "understudy_requests",
            "Client requests by route, final status and client API",
            requests.clone(),
        );
        registry.register(
            "understudy_attempts",
            "Upstream attempts by provider and outcome",
            attempts.clone(),
        );
        registry.register(
            "understudy_failovers",
            "Attempts that failed over to another target",
            failovers.clone(),
        );
        registry.register(
            "understudy_budget_exhausted",
            "Client requests refused a further attempt by the route's retry budget",
            budget_exhausted.clone(),
        );
        registry.register(
            "understudy_upstream_seconds",
            "Time to the upstream's response head (streams: first event)",
            upstream_seconds.clone(),
        );
        registry.register(
            "understudy_circuit_open",
            "1 while a provider's circuit is open",
            circuit_open.clone(),
        );
        registry.register(
            "understudy_cooldowns",
            "Targets cooling down now",
            cooldowns.clone(),
        );
        registry.register(
            "understudy_config_reloads",
            "Config reloads by result",
            reloads.clone(),
        );
        registry.register(
            "understudy_cache",
            "Answer cache lookups by result",
            cache.clone(),
        );
        registry.register(
            "understudy_inflight_requests",
            "Client requests in flight",
            inflight.clone(),
        );
        registry.register(
            "understudy_state_errors",
            "Shared-state operations that failed or timed out (the replica used its own state)",
            state_errors.clone(),
        );
        registry.register(
            "understudy_stream_resumes",
            "Streams that failed after content with resume_streams on: resumed, failed (no target continued), not_resumable (inside a tool call, finished, native)",
            stream_resumes.clone(),
        );
        registry.register(
            "understudy_tokens",
            "Tokens of upstream answers by provider, model and type (input, output, cached input, reasoning)",
            tokens.clone(),
        );
        registry.register(
            "understudy_cost_usd",
            "Spend in USD of upstream answers by provider and model, from the price table",
            cost_usd.clone(),
        );
        let connections = Gauge::default();
        let shed_connections = Counter::default();
        let shed_requests = Family::<RouteLabel, Counter>::default();
        let concurrency_skips = Family::<ProviderLabel, Counter>::default();
        registry.register(
            "understudy_connections",
            "Client connections open",
            connections.clone(),
        );
        registry.register(
            "understudy_shed_connections",
            "Client connections closed at accept: server.max_connections reached",
            shed_connections.clone(),
        );
        registry.register(
            "understudy_shed_requests",
            "Client requests answered 503 overloaded: every target at its concurrency limit",
            shed_requests.clone(),
        );
        registry.register(
            "understudy_concurrency_skips",
            "Targets skipped because their provider was at max_concurrency",
            concurrency_skips.clone(),
        );
        Metrics {
            connections,
            shed_connections,
            shed_requests,
            concurrency_skips,
            registry,
            requests,
            attempts,
            failovers,
            budget_exhausted,
            upstream_seconds,
            circuit_open,
            cooldowns,
            reloads,
            cache,
            inflight,
            state_errors,
            spans_dropped,
            spans_failed,
            stream_resumes,
            tokens,
            cost_usd,
            totals: Totals::default(),
        }
    }
}

impl Metrics {
    pub fn attempt(&self, provider: &str, outcome: &'static str) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.totals.attempts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.attempts
            .get_or_create(&ProviderOutcome {
                provider: provider.to_string(),
                outcome,
            })
            .inc();
    }

    /// One client request of `api` (the front door's [`crate::frontdoor::Dialect::api`]).
    pub fn request(&self, api: &'static str, route: &str, status: u16) {
        let class = match status {
            200..=299 => 0,
            400..=499 => 1,
            _ => 2,
        };
        self.totals.requests.fetch_add(1, Ordering::Relaxed);
        self.totals.by_class[class].fetch_add(1, Ordering::Relaxed);
        self.requests
            .get_or_create(&RouteStatus {
                route: route.to_string(),
                status,
                api,
            })
            .inc();
    }

    pub fn failover(&self, route: &str) {
        self.totals.failovers.fetch_add(1, Ordering::Relaxed);
        self.failovers
            .get_or_create(&RouteLabel {
                route: route.to_string(),
            })
            .inc();
    }

    pub fn budget_exhausted(&self, route: &str) {
        self.budget_exhausted
            .get_or_create(&RouteLabel {
                route: route.to_string(),
            })
            .inc();
    }

    pub fn concurrency_skip(&self, provider: &str) {
        self.concurrency_skips
            .get_or_create(&ProviderLabel {
                provider: provider.to_string(),
            })
            .inc();
    }

    pub fn shed_request(&self, route: &str) {
        self.shed_requests
            .get_or_create(&RouteLabel {
                route: route.to_string(),
            })
            .inc();
    }

    /// `result` is one of resumed, failed, not_resumable.
    pub fn stream_resume(&self, result: &'static str) {
        self.stream_resumes
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// `result` is one of hit, miss, stale.
    pub fn cache_result(&self, result: &'static str) {
        if let Some(i) = CACHE_RESULTS.iter().position(|r| *r == result) {
            self.totals.cache[i].fetch_add(1, Ordering::Relaxed);
        }
        self.cache.get_or_create(&ResultLabel { result }).inc();
    }

    pub fn tokens(&self, provider: &str, model: &str, tokens: &crate::spend::Tokens) {
        // One label set for the four types: its strings made once, not four times.
        let mut labels = TokenLabels {
            provider: provider.to_string(),
            model: model.to_string(),
            r#type: "",
        };
        for (r#type, n) in tokens.by_type() {
            labels.r#type = r#type;
            self.tokens.get_or_create(&labels).inc_by(n);
        }
    }

    pub fn cost(&self, provider: &str, model: &str, usd: f64) {
        self.cost_usd
            .get_or_create(&ProviderModel {
                provider: provider.to_string(),
                model: model.to_string(),
            })
            .inc_by(usd);
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Decrements the in-flight gauge when the request's response is done (for a
/// stream: when the stream ends or the client leaves).
pub struct InflightGuard(Gauge);

impl InflightGuard {
    pub fn new(gauge: &Gauge) -> InflightGuard {
        gauge.inc();
        InflightGuard(gauge.clone())
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
